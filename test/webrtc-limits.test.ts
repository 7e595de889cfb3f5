// Session limits (MAX_SESSIONS_PER_JOB, MAX_SESSIONS) and the ICE timeout (a client that never
// applies the answer), with small limits in a real config.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/log/index.js';
import { createHarness, type Harness } from './helpers/peer.js';
import { TestJob } from './helpers/session-job.js';

let h: Harness;

beforeAll(async () => {
  const log = createLogger({ level: 'silent' });
  const jobs = await Promise.all(['job-1', 'job-2'].map((jobId) => TestJob.create({ jobId, log })));
  h = await createHarness({
    jobs,
    env: { MAX_SESSIONS_PER_JOB: '2', MAX_SESSIONS: '3', ICE_TIMEOUT_S: '2' },
  });
});

afterAll(async () => {
  h.closeOfferers();
  await h.manager.shutdown();
});

it('refuses sessions past the per-job and the total limit, and frees slots on close', async () => {
  const one = { job: 'job-1', channels: ['control'] };
  const two = { job: 'job-2', channels: ['control'] };
  const a = await h.connect(['control'], one);
  await h.connect(['control'], one);
  const before = h.manager.peerConnectionsCreated();
  expect(await h.open({ labels: ['control'], claims: one })).toMatchObject({
    kind: 'rejected',
    code: 'AEGIS_ERR_SESSION_LIMIT',
  });
  await h.connect(['control'], two);
  expect(h.manager.count()).toBe(3);
  expect(h.manager.countForJob('job-1')).toBe(2);
  expect(await h.open({ labels: ['control'], claims: two })).toMatchObject({
    kind: 'rejected',
    code: 'AEGIS_ERR_SESSION_LIMIT',
  });
  expect(h.manager.peerConnectionsCreated()).toBe(before + 1);

  a.offerer.close();
  await h.signal.wait((f) => f.type === 'session.closed' && f.session_id === a.id);
  await h.connect(['control'], one);
  h.closeOfferers();
  for (const id of h.signal.frames.flatMap((f) =>
    f.type === 'session.answer' ? [f.session_id] : [],
  )) {
    await h.signal.wait((f) => f.type === 'session.closed' && f.session_id === id);
  }
  expect(h.manager.count()).toBe(0);
});

it('closes a session whose ICE never connects with ice_failed within ICE_TIMEOUT_S', async () => {
  const started = Date.now();
  const opened = await h.open({
    labels: ['control'],
    claims: { channels: ['control'] },
    applyAnswer: false,
  });
  expect(opened.kind).toBe('answer');
  const closed = await h.signal.wait(
    (f) => f.type === 'session.closed' && f.session_id === opened.id,
    5000,
  );
  expect(closed).toMatchObject({ reason: 'ice_failed' });
  expect(Date.now() - started).toBeLessThan(4000);
  expect(h.manager.count()).toBe(0);
});
