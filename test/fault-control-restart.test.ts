// Fault: the control plane dies and comes back (same port, same database) while a build runs,
// 20 times. Every build still finishes, and the control plane applies its states exactly once,
// in order. The agent is the real daemon in a child process.
//
// Four lanes of five restarts, in parallel, each with its own agent and plane: the agent's
// reconnect backoff (full jitter, base 500 ms, cap 30 s) only starts over after a connection has
// stayed up 60 s (PROTOCOL §1), so one agent restarted 20 times in a minute would wait up to
// 30 s per restart from the 7th on. Five restarts keep the ceiling at 8 s.
//
// SIGTERM mid-build (drain) and SIGKILL mid-build (restart → `lost` once, no orphan) are in
// test/daemon-signals.test.ts and not repeated here.
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createDevStore, type DevControlPlane } from '../src/dev/index.js';
import { cleanupNodeDataChannel } from '../src/webrtc/ndc.js';
import { testEnv } from './helpers/agent-env.js';
import { EXAMPLES } from './helpers/agent.js';
import { spawnAgent, submitJob, type ChildAgent } from './helpers/child-agent.js';
import { isConnectedLine, restartPlane, startPlane } from './helpers/fault.js';

const LANES = 4;
const ROUNDS = 5;
const BLINK = path.join(EXAMPLES, 'blink');

const planes = new Set<DevControlPlane>();
const children: ChildAgent[] = [];

afterAll(async () => {
  for (const c of children) {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await c.exited;
  }
  await Promise.all([...planes].map((p) => p.close()));
  cleanupNodeDataChannel();
});

/** Resolves once `plane` has applied `state` for the job (already, or later). */
function reached(plane: DevControlPlane, jobId: string, state: string, timeoutMs = 30_000) {
  if (plane.job(jobId)?.states.includes(state as never)) return Promise.resolve();
  return plane
    .waitFor('job.update', (u) => u.job_id === jobId && u.state === state, timeoutMs)
    .then(() => undefined);
}

interface Round {
  lane: number;
  round: number;
  jobId: string;
  states: string[];
  /** The plane had not heard the outcome when it was closed: the restart hit a running build. */
  midBuild: boolean;
  duplicates: number;
  ms: number;
}

async function lane(n: number): Promise<Round[]> {
  const store = createDevStore();
  let plane = await startPlane({ store });
  planes.add(plane);
  const agent = spawnAgent(plane.url, testEnv({ AGENT_ID: `agent-restart-${n}` }));
  children.push(agent);
  await agent.waitLine(isConnectedLine);
  const rounds: Round[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const t0 = Date.now();
    const jobId = await submitJob(plane.url, BLINK);
    await reached(plane, jobId, 'building');
    // The kill: every connection dropped, the port closed, while the build runs.
    await plane.close();
    planes.delete(plane);
    const midBuild = !plane.job(jobId)!.states.includes('succeeded');
    plane = await restartPlane(plane, store);
    planes.add(plane);
    // Backoff ceiling before the r-th reconnect: 500 ms · 2^(r-1), plus a failed attempt or two.
    await reached(plane, jobId, 'succeeded', 45_000);
    const job = plane.job(jobId)!;
    rounds.push({
      lane: n,
      round: r,
      jobId,
      states: [...job.states],
      midBuild,
      duplicates: job.duplicates,
      ms: Date.now() - t0,
    });
  }
  return rounds;
}

it(`control plane killed and restarted mid-build ${LANES * ROUNDS}×: each build finishes, its final state applied exactly once`, async () => {
  const t0 = Date.now();
  const rounds = (await Promise.all(Array.from({ length: LANES }, (_, i) => lane(i + 1)))).flat();
  const ok = rounds.filter(
    (r) => r.states.join(',') === 'assigned,receiving,building,succeeded',
  ).length;
  const final = rounds.filter((r) => r.states.filter((s) => s === 'succeeded').length === 1);
  const mid = rounds.filter((r) => r.midBuild).length;
  const dups = rounds.reduce((n, r) => n + r.duplicates, 0);
  const slowest = Math.max(...rounds.map((r) => r.ms));
  console.log(
    `fault: control plane restarted ${rounds.length}× (${LANES} agents × ${ROUNDS}, each mid-build: ${mid}/${rounds.length}): ` +
      `${ok}/${rounds.length} builds succeeded with states assigned→receiving→building→succeeded, ` +
      `final state received exactly once each (${final.length}/${rounds.length}); ` +
      `${dups} re-sent updates dropped as duplicates; slowest round ${slowest} ms, total ${Date.now() - t0} ms`,
  );
  expect(rounds).toHaveLength(LANES * ROUNDS);
  for (const r of rounds) {
    expect(r.states, `lane ${r.lane} round ${r.round} (${r.jobId})`).toEqual([
      'assigned',
      'receiving',
      'building',
      'succeeded',
    ]);
  }
  expect(mid).toBe(rounds.length);
  // Every agent is connected to the last plane of its lane, and none reported an error.
  for (const c of children) {
    expect(c.proc.exitCode).toBeNull();
    expect(c.lines.filter((l) => (l['level'] as number) >= 50)).toEqual([]);
  }
}, 150_000);
