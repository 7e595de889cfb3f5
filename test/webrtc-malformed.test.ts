// Hostile input: 1000 malformed messages on every channel. The session is closed with
// AEGIS_ERR_PROTOCOL after 100 of them (error frames rate-limited meanwhile), the process
// lives, and the manager serves a new session afterwards.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CHANNEL_LABELS } from '../src/grants/index.js';
import { createLogger } from '../src/log/index.js';
import { createHarness, type Harness } from './helpers/peer.js';
import { TestJob } from './helpers/session-job.js';

let h: Harness;

beforeAll(async () => {
  const job = await TestJob.create({ jobId: 'job-1', log: createLogger({ level: 'silent' }) });
  job.setState('building');
  job.spool.append('some log\n');
  h = await createHarness({ jobs: [job] });
});

afterAll(async () => {
  h.closeOfferers();
  await h.manager.shutdown();
});

const BAD: ((i: number) => string | Buffer)[] = [
  () => 'not json',
  () => '{"type":',
  () => '[]',
  () => 'null',
  () => '{"no":"type"}',
  (i) => JSON.stringify({ type: `unknown-${i}` }),
  () => JSON.stringify({ type: 'follow', from: -1 }),
  () => JSON.stringify({ type: 'attach', from: 0, cols: 'wide', rows: 1e9 }),
  () => JSON.stringify({ type: 'get', name: 'x', from: 1.5 }),
  () => JSON.stringify({ type: 'begin', format: 'zip', size: 1, sha256: 'abc' }),
  () => JSON.stringify({ type: 'ping', extra: 'x'.repeat(20_000) }),
  () => Buffer.alloc(300_000),
];

it('closes a session after 100 malformed messages and keeps serving others', async () => {
  const all = [...CHANNEL_LABELS];
  const { id, offerer } = await h.connect(all, { channels: all });
  const control = offerer.channel('control');
  await control.frameOf('hello');
  for (let i = 0; i < 1000; i++) {
    for (const ch of offerer.channels) {
      const msg = BAD[i % BAD.length]!(i);
      try {
        if (typeof msg === 'string') ch.text(msg);
        else if (ch.label !== 'source' && ch.label !== 'pty') ch.binary(msg);
        else ch.binary(Buffer.alloc(300_000)); // oversized even where binary is allowed
      } catch {
        // The agent closed the channel under us: expected once the limit is hit.
      }
    }
  }
  const closed = await h.signal.wait((f) => f.type === 'session.closed' && f.session_id === id);
  expect(closed).toMatchObject({ reason: 'AEGIS_ERR_PROTOCOL' });
  await control.closed();
  const errors = offerer.channels.flatMap((c) => c.frames()).filter((f) => f['type'] === 'error');
  expect(errors.length).toBeGreaterThan(0);
  // Rate-limited: far fewer answers than malformed messages.
  expect(errors.length).toBeLessThanOrEqual(20);
  expect(errors.every((f) => f['code'] === 'AEGIS_ERR_PROTOCOL')).toBe(true);
  // The last word on control says why the session ends.
  expect(control.frames().at(-1)).toMatchObject({
    type: 'error',
    code: 'AEGIS_ERR_PROTOCOL',
    message: expect.stringContaining('is closed') as unknown,
  });
  expect(h.manager.session(id)).toBeUndefined();

  const next = await h.connect(['control', 'logs'], { channels: ['control', 'logs'] });
  await next.offerer.channel('control').frameOf('hello');
  next.offerer.channel('logs').json({ type: 'follow', from: 0 });
  await next.offerer.channel('logs').binaryAtLeast(9);
  expect(next.offerer.channel('logs').bytes().toString()).toBe('some log\n');
});

it('survives malformed messages below the limit', async () => {
  const { id, offerer } = await h.connect(['control'], { channels: ['control'] });
  const control = offerer.channel('control');
  for (let i = 0; i < 50; i++) control.text('garbage');
  control.json({ type: 'ping' });
  await control.frameOf('pong');
  expect(h.manager.session(id)?.protocolErrors).toBe(50);
});
