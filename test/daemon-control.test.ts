// Issue 3 end to end: real daemons against the real dev control plane on loopback.
import { afterEach, describe, expect, it } from 'vitest';
import { createDevStore, DevControlPlane } from '../src/dev/index.js';
import {
  AGENT_SECRET,
  EXAMPLES,
  feedSource,
  requestGrant,
  startAgent,
  type TestAgent,
} from './helpers/agent.js';
import path from 'node:path';

const planes: DevControlPlane[] = [];
const agents: TestAgent[] = [];

async function plane(opts: Partial<Parameters<typeof DevControlPlane.start>[0]> = {}) {
  const p = await DevControlPlane.start({
    agentAuthSecret: AGENT_SECRET,
    claimWaitMs: 1500,
    heartbeatIntervalMs: 500,
    ...opts,
  });
  planes.push(p);
  return p;
}

async function agent(p: { url: string }, env: Record<string, string> = {}) {
  let ready!: () => void;
  const connected = new Promise<void>((r) => (ready = r));
  const a = await startAgent(p, env, ready);
  agents.push(a);
  await connected;
  return a;
}

afterEach(async () => {
  await Promise.all(
    agents.splice(0).map(async (a) => {
      await a.daemon.cancelAll('test over');
      await a.daemon.stop();
    }),
  );
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

describe('daemon ↔ control plane', () => {
  it('registers its toolchains and claims a matching job; the grant names it as audience', async () => {
    const p = await plane();
    const a = await agent(p, { AGENT_ID: 'agent-a' });
    const listed = (await (await fetch(`${p.url}/agents`)).json()) as {
      agent_id: string;
      toolchains: { id: string; idf_version: string }[];
    }[];
    expect(listed[0]!.agent_id).toBe('agent-a');
    expect(listed[0]!.toolchains.map((t) => t.idf_version).sort()).toEqual(['5.1.4', '5.3.1']);

    // The curl of the docs: a JSON body labelled form-urlencoded.
    const res = await fetch(`${p.url}/grant/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify({ target: 'esp32c3', channels: ['control', 'logs'] }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { job_id: string; agent_id: string; grant: string };
    expect(body.agent_id).toBe('agent-a');
    const claims = JSON.parse(Buffer.from(body.grant.split('.')[1]!, 'base64url').toString()) as {
      aud: string;
      job: string;
    };
    expect(claims).toMatchObject({ aud: 'agent-a', job: body.job_id });
    const job = await a.jobState(body.job_id, 'assigned');
    expect(job.toolchainId).toBe('esp-idf-sim');
    await p.waitFor('job.update', (u) => u.job_id === body.job_id && u.state === 'assigned');
  });

  it.each<[string, Record<string, string>, Record<string, unknown>]>([
    ['wrong target', {}, { target: 'esp32s9' }],
    ['wrong idf spec', {}, { target: 'esp32c3', idf: '4.4' }],
    ['target absent in that idf', {}, { target: 'esp32p4', idf: '5.1' }],
    ['disk low', { DISK_FLOOR_BYTES: String(Number.MAX_SAFE_INTEGER) }, { target: 'esp32c3' }],
  ])('does not claim: %s', async (_name, env, request) => {
    const p = await plane();
    const a = await agent(p, env);
    const res = await requestGrant(p, { channels: ['control'], ...request });
    expect(res.status).toBe(503);
    expect(res.body['code']).toBe('AEGIS_ERR_NO_AGENT');
    expect(a.daemon.registry.list()).toHaveLength(0);
  });

  it('does not claim beyond MAX_JOBS, nor while draining', async () => {
    const p = await plane();
    const a = await agent(p, { MAX_JOBS: '1' });
    expect((await requestGrant(p, { target: 'esp32c3', channels: ['control'] })).status).toBe(200);
    expect((await requestGrant(p, { target: 'esp32c3', channels: ['control'] })).status).toBe(503);
    const b = await agent(p, { AGENT_ID: 'agent-b' });
    b.daemon.setDraining(true);
    await p.waitFor(
      'agent.changed',
      (id) => id === 'agent-b' && p.agent('agent-b')?.draining === true,
    );
    expect((await requestGrant(p, { target: 'esp32c3', channels: ['control'] })).status).toBe(503);
    expect(a.daemon.registry.list()).toHaveLength(1);
    expect(b.daemon.registry.list()).toHaveLength(0);
  });

  it('two agents, one job: exactly one wins, 50 times', async () => {
    const p = await plane();
    const a = await agent(p, { AGENT_ID: 'agent-a', MAX_JOBS: '64' });
    const b = await agent(p, { AGENT_ID: 'agent-b', MAX_JOBS: '64' });
    const winners: string[] = [];
    for (let i = 0; i < 50; i++) {
      const res = await requestGrant(p, { target: 'esp32c3', channels: ['control'] });
      expect(res.status).toBe(200);
      winners.push(res.body['agent_id'] as string);
      const jobId = res.body['job_id'] as string;
      const winner = res.body['agent_id'] === 'agent-a' ? a : b;
      const loser = winner === a ? b : a;
      await winner.jobState(jobId, 'assigned');
      expect(loser.daemon.registry.get(jobId)).toBeUndefined();
    }
    expect(a.daemon.registry.list().length + b.daemon.registry.list().length).toBe(50);
    await Promise.all([a, b].map((x) => x.daemon.cancelAll('test over')));
  });

  it('control plane stopped mid-job and restarted: every job.update arrives once, in order', async () => {
    const store = createDevStore();
    const p1 = await plane({ store });
    const port = p1.port;
    const a = await agent(p1);
    const res = await requestGrant(p1, { target: 'esp32c3', channels: ['control'] });
    const jobId = res.body['job_id'] as string;
    await p1.waitFor('job.update', (u) => u.job_id === jobId && u.state === 'assigned');
    await p1.close();
    // The whole build happens while the control plane is down.
    await feedSource(a, jobId, path.join(EXAMPLES, 'blink'));
    await a.jobState(jobId, 'succeeded');
    const p2 = await plane({ store, port });
    await p2.waitFor('job.update', (u) => u.job_id === jobId && u.state === 'succeeded', 20_000);
    const job = p2.job(jobId)!;
    expect(job.states).toEqual(['assigned', 'receiving', 'building', 'succeeded']);
    const seqs = job.history.map((h) => h.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(job.artifacts?.some((f) => f.name === 'blink.bin')).toBe(true);
  });

  it('malformed and oversized frames from the control plane are dropped; the link stays up', async () => {
    const p = await plane();
    const a = await agent(p, { AGENT_ID: 'agent-m' });
    for (const raw of [
      '{not json',
      '[]',
      '{"type":7}',
      '{"type":"job.offer","job_id":"../../etc"}',
      '{"type":"ack","seq":-1}',
    ]) {
      p.sendToAgent('agent-m', raw);
    }
    await a.sink.waitFor(
      (l) =>
        l['code'] === 'AEGIS_ERR_PROTOCOL' && JSON.stringify(l['reason'] ?? '').includes('job_id'),
    );
    expect(a.sink.withCode('AEGIS_ERR_PROTOCOL').length).toBeGreaterThanOrEqual(4);
    const res = await requestGrant(p, { target: 'esp32c3', channels: ['control'] });
    expect(res.status).toBe(200);
    expect(a.daemon.link.connected).toBe(true);
  });

  it('a control plane 40 s off yields the clock-skew error line', async () => {
    const p = await plane({ clockOffsetMs: 40_000 });
    const a = await agent(p);
    const line = await a.sink.waitFor((l) => l['code'] === 'AEGIS_ERR_CLOCK_SKEW');
    expect(line['level']).toBe(50);
  });

  it('a wrong secret: 401 logged once as AEGIS_ERR_AUTH, with backoff between attempts', async () => {
    const p = await plane({ agentAuthSecret: 'another-secret-entirely' });
    const a = await startAgent(p, {});
    agents.push(a);
    await a.sink.waitFor((l) => l['code'] === 'AEGIS_ERR_AUTH');
    const start = Date.now();
    // Watch 4 s of attempts: full-jitter backoff from 500 ms allows only a handful.
    await new Promise((r) => setTimeout(r, 4000));
    const attempts = a.sink.lines.filter(
      (l) => (l['time'] as number) >= start && l['delay_ms'] !== undefined,
    ).length;
    // Once per failure streak at error; the later attempts of the streak log at debug.
    expect(
      a.sink.withCode('AEGIS_ERR_AUTH').filter((l) => (l['level'] as number) >= 40),
    ).toHaveLength(1);
    expect(a.sink.withCode('AEGIS_ERR_AUTH')[0]!['level']).toBe(50);
    expect(attempts).toBeLessThan(10);
    expect(JSON.stringify(a.sink.raw)).not.toContain(AGENT_SECRET);
  });
});
