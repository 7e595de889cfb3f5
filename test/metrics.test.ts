// /metrics parses as Prometheus text and counts a finished job; /healthz flips with the link.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DevControlPlane } from '../src/dev/index.js';
import {
  AGENT_SECRET,
  EXAMPLES,
  feedSource,
  requestGrant,
  startAgent,
  type TestAgent,
} from './helpers/agent.js';

let plane: DevControlPlane | undefined;
let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.daemon.stop();
  await plane?.close();
});

/** A minimal Prometheus text-format parser: every sample line must be `name{labels} value`. */
function parseProm(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|[Nn]a[Nn]|[+-]Inf)$/i.exec(
      line,
    );
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    samples.set(m[1]!, Number(m[2]));
  }
  return samples;
}

describe('metrics and health', () => {
  it('exports Prometheus text that counts a finished job; /healthz flips when the control plane goes away', async () => {
    plane = await DevControlPlane.start({
      agentAuthSecret: AGENT_SECRET,
      heartbeatIntervalMs: 300,
    });
    let ready!: () => void;
    const connected = new Promise<void>((r) => (ready = r));
    agent = await startAgent(plane, { METRICS_ADDR: '127.0.0.1:0' }, ready);
    await connected;
    const base = `http://127.0.0.1:${agent.daemon.metricsPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);

    const res = await requestGrant(plane, { target: 'esp32c3', channels: ['control'] });
    const jobId = res.body['job_id'] as string;
    await feedSource(agent, jobId, path.join(EXAMPLES, 'blink'));
    await agent.jobState(jobId, 'succeeded');

    const scrape = await fetch(`${base}/metrics`);
    expect(scrape.headers.get('content-type')).toContain('text/plain');
    const samples = parseProm(await scrape.text());
    expect(samples.get('aegis_agent_jobs{state="succeeded"}')).toBe(1);
    expect(samples.get('aegis_agent_build_duration_seconds_count{outcome="succeeded"}')).toBe(1);
    expect(samples.get('aegis_agent_control_plane_connected')).toBe(1);
    expect(samples.get('aegis_agent_last_heartbeat_age_seconds')).toBeGreaterThanOrEqual(0);

    const disconnected = agent.sink.waitFor((l) => /disconnected/.test(String(l['msg'])));
    await plane.close();
    await disconnected;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(503);
    expect(
      ((await health.json()) as { control_plane_connected: boolean }).control_plane_connected,
    ).toBe(false);
    expect(
      parseProm(await (await fetch(`${base}/metrics`)).text()).get(
        'aegis_agent_control_plane_connected',
      ),
    ).toBe(0);
  });
});
