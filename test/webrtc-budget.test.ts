// The send budget under a multi-MiB download: the sum of bufferedAmount() over the session's
// channels never passes SEND_QUEUE_BYTES, every byte arrives in order, and control stays
// responsive meanwhile. Prints the measured throughput and pong latency.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/log/index.js';
import { createHarness, type Harness } from './helpers/peer.js';
import { TestJob } from './helpers/session-job.js';

const SIZE = 24 * 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
let h: Harness;
let data: Buffer;

beforeAll(async () => {
  const job = await TestJob.create({ jobId: 'job-1', log: createLogger({ level: 'silent' }) });
  data = randomBytes(SIZE);
  await job.setArtifacts([{ name: 'big.bin', data }]);
  job.finish('succeeded', 0);
  h = await createHarness({ jobs: [job] });
});

afterAll(async () => {
  h.closeOfferers();
  await h.manager.shutdown();
});

it('holds the budget over a 24 MiB download, in order, with control responsive', async () => {
  const { id, offerer } = await h.connect(['control', 'artifacts'], {
    channels: ['control', 'artifacts'],
  });
  const queue = h.manager.session(id)!.queue;
  const ch = offerer.channel('artifacts');
  const control = offerer.channel('control');
  ch.keepBinary = false;
  let maxSample = 0;
  let samples = 0;
  const sampler = setInterval(() => {
    samples++;
    maxSample = Math.max(maxSample, queue.inFlight());
  }, 2);
  const pongs: number[] = [];
  let pings = 0;
  let sentAt = 0;
  const pinger = setInterval(() => {
    // One ping in flight at a time: the latency of each is its own.
    if (control.frames().filter((f) => f['type'] === 'pong').length < pings) return;
    if (pings > 0) pongs.push(Date.now() - sentAt);
    sentAt = Date.now();
    pings++;
    control.json({ type: 'ping' });
  }, 20);
  const started = Date.now();
  ch.json({ type: 'get', name: 'big.bin', from: 0 });
  const end = await ch.frameOf('end', 0, 50_000);
  const ms = Date.now() - started;
  clearInterval(sampler);
  clearInterval(pinger);

  expect(end).toEqual({ type: 'end', name: 'big.bin', bytes: SIZE });
  expect(ch.binaryBytes).toBe(SIZE);
  expect(ch.hash.digest('hex')).toBe(sha(data));
  expect(samples).toBeGreaterThan(10);
  expect(maxSample).toBeLessThanOrEqual(131072);
  const stats = queue.stats();
  expect(stats.maxInFlight).toBeLessThanOrEqual(131072);
  pongs.sort((a, b) => a - b);
  const median = pongs[Math.floor(pongs.length / 2)] ?? -1;
  console.log(
    `download ${SIZE} B in ${ms} ms = ${(SIZE / 1e6 / (ms / 1000)).toFixed(1)} MB/s; ` +
      `inFlight max sampled ${maxSample} (${samples} samples), max after send ${stats.maxInFlight}, ` +
      `waits ${stats.waits}/${stats.sends}; pong median ${median} ms max ${pongs.at(-1)} ms (${pongs.length})`,
  );
  expect(pongs.length).toBeGreaterThan(0);
});
