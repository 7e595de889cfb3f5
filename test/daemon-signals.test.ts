// The daemon as a child process: SIGTERM drains, SIGTERM then SIGINT cancels, SIGHUP rescans,
// and SIGKILL mid-build is recovered on restart (the job reported lost once, no orphan left).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { JobState } from '../src/control/messages.js';
import { DevControlPlane } from '../src/dev/index.js';
import { cleanupNodeDataChannel } from '../src/webrtc/ndc.js';
import { alive, REPO, testEnv, tmpDir } from './helpers/agent-env.js';
import { AGENT_SECRET } from './helpers/agent.js';
import { spawnAgent, submitJob, waitForLog, type ChildAgent } from './helpers/child-agent.js';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'projects');
let plane: DevControlPlane;
const children: ChildAgent[] = [];

beforeAll(async () => {
  plane = await DevControlPlane.start({ agentAuthSecret: AGENT_SECRET, heartbeatIntervalMs: 1000 });
});
afterEach(async () => {
  for (const c of children.splice(0)) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await c.exited;
  }
});
afterAll(async () => {
  await plane.close();
  cleanupNodeDataChannel();
});

async function start(env: Record<string, string>): Promise<ChildAgent> {
  const c = spawnAgent(plane.url, env);
  children.push(c);
  await c.waitLine(
    (l) => typeof l['msg'] === 'string' && l['msg'].startsWith('connected to control plane'),
  );
  return c;
}

const stateOf = (jobId: string) => plane.job(jobId)?.states ?? [];
const reached = (jobId: string, state: JobState, timeoutMs = 30_000) =>
  stateOf(jobId).includes(state)
    ? Promise.resolve()
    : plane
        .waitFor('job.update', (u) => u.job_id === jobId && u.state === state, timeoutMs)
        .then(() => undefined);

describe('signals', () => {
  it('SIGTERM mid-build drains: the build finishes, its result is reported, exit 0', async () => {
    const agent = await start(testEnv({ AGENT_ID: 'agent-drain' }));
    const jobId = await submitJob(plane.url, path.join(FIXTURES, 'slow'));
    await agent.waitLine((l) => l['msg'] === 'build started');
    agent.proc.kill('SIGTERM');
    await plane.waitFor(
      'agent.changed',
      (id) => id === 'agent-drain' && plane.agent('agent-drain')?.draining === true,
    );
    const exit = await agent.exited;
    expect(exit.code).toBe(0);
    expect(stateOf(jobId)).toEqual(['assigned', 'receiving', 'building', 'succeeded']);
    expect(
      agent.lines.some(
        (l) => l['msg'] === 'drain complete' && l['finished'] === 1 && l['canceled'] === 0,
      ),
    ).toBe(true);
  });

  it('SIGTERM then SIGINT cancels the running build and reports it, exit 0', async () => {
    const agent = await start(testEnv({ AGENT_ID: 'agent-cancel' }));
    const jobId = await submitJob(plane.url, path.join(FIXTURES, 'grandchildren'));
    await agent.waitLine((l) => l['msg'] === 'build started');
    agent.proc.kill('SIGTERM');
    await plane.waitFor(
      'agent.changed',
      (id) => id === 'agent-cancel' && plane.agent('agent-cancel')?.draining === true,
    );
    agent.proc.kill('SIGINT');
    const exit = await agent.exited;
    expect(exit.code).toBe(0);
    expect(stateOf(jobId)).toEqual(['assigned', 'receiving', 'building', 'canceled']);
  });

  it('SIGHUP after adding a toolchain: the control plane hears of it and offers match it', async () => {
    const root = tmpDir('aegis-tc-root-');
    fs.symlinkSync(
      path.join(REPO, 'toolchains', 'esp-idf-sim-v5.1'),
      path.join(root, 'esp-idf-sim-v5.1'),
    );
    const agent = await start(testEnv({ AGENT_ID: 'agent-hup', TOOLCHAINS_DIR: root }));
    expect(plane.agent('agent-hup')?.toolchains.map((t) => t.idf_version)).toEqual(['5.1.4']);
    fs.symlinkSync(path.join(REPO, 'toolchains', 'esp-idf-sim'), path.join(root, 'esp-idf-sim'));
    agent.proc.kill('SIGHUP');
    await plane.waitFor(
      'agent.changed',
      (id) => id === 'agent-hup' && (plane.agent('agent-hup')?.toolchains.length ?? 0) === 2,
    );
    const res = await fetch(`${plane.url}/grant/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'esp32p4', channels: ['control'] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { agent_id: string }).agent_id).toBe('agent-hup');
  });
});

describe('crash recovery', () => {
  it('SIGKILL mid-build, then a restart: the job is reported lost exactly once, no build process is left', async () => {
    const env = testEnv({ AGENT_ID: 'agent-crash' });
    const first = await start(env);
    const jobId = await submitJob(plane.url, path.join(FIXTURES, 'grandchildren'));
    const started = await first.waitLine((l) => l['msg'] === 'build started');
    const m = await waitForLog(plane.url, jobId, /GRANDCHILD_PIDS (\d+) (\d+)/);
    const pids = [Number(m[1]), Number(m[2])];
    expect(pids.every(alive)).toBe(true);
    first.proc.kill('SIGKILL');
    await first.exited;

    const second = await start(env);
    await reached(jobId, 'lost');
    await second.waitLine((l) => l['code'] === 'AEGIS_ERR_JOB_LOST');
    expect(stateOf(jobId).filter((s) => s === 'lost')).toHaveLength(1);
    expect(stateOf(jobId).at(-1)).toBe('lost');
    expect(pids.filter(alive)).toEqual([]);
    expect(alive(started['pid'] as number)).toBe(false);
    // A third start does not report it again.
    second.proc.kill('SIGTERM');
    await second.exited;
    const third = await start(env);
    await third.waitLine((l) => l['msg'] === 'aegis-agent started');
    expect(third.lines.filter((l) => l['code'] === 'AEGIS_ERR_JOB_LOST')).toHaveLength(0);
    expect(stateOf(jobId).filter((s) => s === 'lost')).toHaveLength(1);
  });
});
