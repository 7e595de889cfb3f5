// The UDP delay relay (test/helpers/udp-relay.ts) and what it lets us measure: the relay
// honours delay, loss and bandwidth; two raw node-datachannel peers behind a 500 ms RTT path
// (the baseline for the benchmarks); and issue 5's acceptance test: the session's send budget
// and the agent's memory hold while a large artifact crawls to a client behind a slow relay.
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/log/index.js';
import { cleanupNodeDataChannel } from '../src/webrtc/ndc.js';
import { createHarness, TestOfferer, type Harness } from './helpers/peer.js';
import { TestJob } from './helpers/session-job.js';
import {
  hostCandidate,
  parseCandidates,
  rewriteCandidates,
  startUdpRelay,
  throughRelay,
  type UdpRelay,
} from './helpers/udp-relay.js';

const MiB = 1024 * 1024;
const BUDGET = 131072;
// Issue 5 asks for 32 MiB; at 4 MB/s behind 100 ms RTT it takes ~9–10 s here.
const ARTIFACT_BYTES = 32 * MiB;

let h: Harness;
/**
 * The artifact's bytes, held for the whole file: were they freed during the budget test's
 * download, the RSS they give back could hide growth.
 */
let artifact: Buffer;
/** sha256 of what the budget test's client receives: the file twice (warm-up, then measured). */
let expectedSha = '';
const relays: UdpRelay[] = [];
const sockets: dgram.Socket[] = [];
/**
 * Raw peer connections and channels, closed after their test but kept referenced to the end:
 * once a closed raw PeerConnection/DataChannel had been garbage-collected (a forced gc() after
 * the raw test), closing the agent's session at shutdown killed the process (node-datachannel
 * 0.33.4 here: "Worker exited unexpectedly").
 */
const keep: unknown[] = [];

const relay = async (opts: Parameters<typeof startUdpRelay>[0]): Promise<UdpRelay> => {
  const r = await startUdpRelay(opts);
  relays.push(r);
  return r;
};

const udp = async (): Promise<dgram.Socket> => {
  const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * MiB, sendBufferSize: 4 * MiB });
  sockets.push(s);
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  return s;
};

/** Resolves when `check` holds, re-checked on every `event` of `emitter`; rejects after `timeoutMs`. */
function until(
  emitter: NodeJS.EventEmitter,
  event: string,
  check: () => boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  if (check()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const on = () => {
      if (!check()) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve();
    };
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    emitter.on(event, on);
  });
}

/** A peer connection's local description once gathering completed (polled: its callback may fire early). */
function gathered(pc: PeerConnection, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const t = setInterval(() => {
      try {
        const sdp = pc.localDescription()?.sdp;
        if (pc.gatheringState() === 'complete' && sdp) {
          clearInterval(t);
          resolve(sdp);
        } else if (Date.now() - started > timeoutMs) {
          throw new Error('gathering did not complete');
        }
      } catch (err) {
        clearInterval(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    }, 5);
  });
}

/** `promise`, or a rejection after `timeoutMs`. */
async function within<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  const job = await TestJob.create({ jobId: 'job-1', log: createLogger({ level: 'silent' }) });
  const data = randomBytes(ARTIFACT_BYTES);
  artifact = data;
  expectedSha = createHash('sha256').update(data).update(data).digest('hex');
  await job.setArtifacts([{ name: 'big.bin', data }]);
  job.finish('succeeded', 0);
  // The harness sets node-datachannel's process-wide SCTP settings (default 1 MiB send buffer)
  // before any peer connection of this file exists.
  h = await createHarness({ jobs: [job] });
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await Promise.all(relays.splice(0).map((r) => r.close()));
});

afterAll(async () => {
  h.closeOfferers();
  await h.manager.shutdown({ releaseNative: false });
  cleanupNodeDataChannel();
});

it('rewrites candidates and the default address, dropping what would bypass the relay', () => {
  const sdp = [
    'v=0',
    'm=application 52869 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 192.0.2.2',
    'a=mid:0',
    'a=candidate:2 1 UDP 2116026111 fd00::2 52869 typ host',
    'a=candidate:1 1 UDP 2114977791 192.0.2.2 52869 typ host',
    'a=candidate:3 1 UDP 1677729535 198.51.100.7 40000 typ srflx raddr 0.0.0.0 rport 0',
    'a=end-of-candidates',
    '',
  ].join('\r\n');
  expect(hostCandidate(sdp)).toEqual({ host: '192.0.2.2', port: 52869 });
  const through = throughRelay(sdp, { host: '127.0.0.1', port: 40001 });
  expect(parseCandidates(through).map((c) => c.line)).toEqual([
    'a=candidate:1 1 UDP 2114977791 127.0.0.1 40001 typ host',
  ]);
  expect(through).toContain('m=application 40001 UDP/DTLS/SCTP webrtc-datachannel\r\n');
  expect(through).toContain('c=IN IP4 127.0.0.1\r\n');
  expect(through).toContain('a=end-of-candidates\r\n');
  // A general mapping keeps the rest of the line (raddr/rport) intact.
  const mapped = rewriteCandidates(sdp, (c) =>
    c.type === 'srflx' ? { host: '127.0.0.1', port: 1 } : c,
  );
  expect(mapped).toContain(
    'a=candidate:3 1 UDP 1677729535 127.0.0.1 1 typ srflx raddr 0.0.0.0 rport 0',
  );
  expect(mapped).toContain('m=application 52869 ');
});

it('delays an echo by 2 × delayMs, honours loss, and caps bandwidth with a bounded queue', async () => {
  // Delay: sequential pings through a 40 ms one-way relay to an echo server.
  const echo = await udp();
  echo.on('message', (msg, from) => echo.send(msg, from.port, from.address));
  const delayed = await relay({
    delayMs: 40,
    target: { host: '127.0.0.1', port: echo.address().port },
  });
  const client = await udp();
  const rtts: number[] = [];
  for (let i = 0; i < 15; i++) {
    const sent = performance.now();
    const back = new Promise<void>((resolve) => client.once('message', () => resolve()));
    client.send(Buffer.from(`ping ${i}`), delayed.port, '127.0.0.1');
    await back;
    rtts.push(performance.now() - sent);
  }
  rtts.sort((a, b) => a - b);
  const median = rtts[Math.floor(rtts.length / 2)] as number;
  expect(rtts[0]).toBeGreaterThanOrEqual(79.5);
  expect(median).toBeLessThan(90);

  // Loss: 20 % each way, seeded; an echo survives both ways with p = 0.64.
  const lossy = await relay({
    delayMs: 2,
    lossRate: 0.2,
    seed: 7,
    target: { host: '127.0.0.1', port: echo.address().port },
  });
  const lossClient = await udp();
  let echoed = 0;
  lossClient.on('message', () => echoed++);
  const N = 2000;
  const payload = Buffer.alloc(200, 1);
  for (let i = 0; i < N; i++) lossClient.send(payload, lossy.port, '127.0.0.1');
  // Every ping in, every surviving ping echoed back into the relay, nothing held any more.
  await lossy.until(
    (st) =>
      st.forward.packets === N && st.reverse.packets === st.forward.delivered && st.heldBytes === 0,
  );
  const lossStats = lossy.stats();
  expect(lossStats.forward.packets).toBe(N);
  await until(
    lossClient,
    'message',
    () => echoed >= lossStats.reverse.delivered,
    5000,
    'the echoes delivered',
  );
  const fwdLoss = lossStats.forward.lost / lossStats.forward.packets;
  const revLoss = lossStats.reverse.lost / lossStats.reverse.packets;
  expect(fwdLoss).toBeGreaterThan(0.17);
  expect(fwdLoss).toBeLessThan(0.23);
  expect(revLoss).toBeGreaterThan(0.16);
  expect(revLoss).toBeLessThan(0.24);
  expect(echoed / N).toBeGreaterThan(0.59);
  expect(echoed / N).toBeLessThan(0.69);

  // Bandwidth: 600 × 1200 B bursted into a 1 MB/s relay with room to queue them all.
  const sink = await udp();
  const arrivals: number[] = [];
  sink.on('message', () => arrivals.push(performance.now()));
  const shaped = await relay({
    delayMs: 5,
    bandwidthBytesPerSec: 1_000_000,
    queueLimitBytes: 1 * MiB,
    target: { host: '127.0.0.1', port: sink.address().port },
  });
  const sender = await udp();
  const packet = Buffer.alloc(1200, 2);
  for (let i = 0; i < 600; i++) sender.send(packet, shaped.port, '127.0.0.1');
  await until(sink, 'message', () => arrivals.length === 600, 10_000, '600 packets at the sink');
  const span = ((arrivals.at(-1) as number) - (arrivals[0] as number)) / 1000;
  const rate = (599 * 1200) / span;
  expect(rate).toBeGreaterThan(0.9e6);
  expect(rate).toBeLessThan(1.1e6);
  expect(shaped.stats().forward.queueDrops).toBe(0);

  // The same burst into a 64 KiB queue: tail drops, counted, and the queue stays bounded.
  const sink2 = await udp();
  let got = 0;
  sink2.on('message', () => got++);
  const small = await relay({
    delayMs: 5,
    bandwidthBytesPerSec: 1_000_000,
    queueLimitBytes: 64 * 1024,
    target: { host: '127.0.0.1', port: sink2.address().port },
  });
  for (let i = 0; i < 600; i++) sender.send(packet, small.port, '127.0.0.1');
  await small.until((st) => st.forward.packets === 600 && st.heldBytes === 0);
  const s = small.stats();
  await until(sink2, 'message', () => got >= s.forward.delivered, 5000, 'the survivors');
  expect(s.forward.packets).toBe(600);
  expect(s.forward.queueDrops).toBeGreaterThan(400);
  expect(s.forward.maxQueuedBytes).toBeLessThanOrEqual(64 * 1024);
  expect(s.forward.delivered + s.forward.queueDrops).toBe(600);
  console.log(
    `relay echo RTT through 40 ms one way: min ${rtts[0]?.toFixed(1)} median ${median.toFixed(1)} ` +
      `max ${rtts.at(-1)?.toFixed(1)} ms; loss fwd ${(fwdLoss * 100).toFixed(1)} % rev ${(revLoss * 100).toFixed(1)} %, ` +
      `echoed ${echoed}/${N}; shaped ${(rate / 1e6).toFixed(3)} MB/s; 64 KiB queue: ${s.forward.delivered} delivered, ` +
      `${s.forward.queueDrops} dropped`,
  );
});

interface RawResult {
  connectMs: number;
  ms: number;
  mbps: number;
  relay: ReturnType<UdpRelay['stats']>;
}

/**
 * Two raw node-datachannel peers through `path`: the client offers a `bulk` channel, the server
 * answers and sends `size` bytes in 16 KiB messages while bufferedAmount() ≤ `cap`.
 */
async function rawTransfer(
  path: UdpRelay,
  size: number,
  cap: number,
  timeoutMs: number,
): Promise<RawResult> {
  const CHUNK = 16 * 1024;
  const client = new TestOfferer(['bulk']);
  keep.push(client);
  const server = new nodeDataChannel.PeerConnection('relay-server', { iceServers: [] });
  keep.push(server);
  let serverDc: DataChannel | undefined;
  let pump: NodeJS.Timeout | undefined;
  try {
    const incoming = new Promise<DataChannel>((resolve) => {
      server.onDataChannel((dc) => {
        serverDc = dc; // referenced until closed, or it is garbage-collected and closed
        keep.push(dc);
        resolve(dc);
      });
    });
    const connectStarted = performance.now();
    const offer = await client.offer();
    server.setRemoteDescription(
      throughRelay(offer, { host: path.host, port: path.backPort }),
      'offer',
    );
    const answer = await gathered(server);
    path.setTarget(hostCandidate(answer));
    client.applyAnswer(throughRelay(answer, { host: path.host, port: path.port }));
    const ch = client.channel('bulk');
    ch.keepBinary = false;
    await ch.opened(20_000);
    const dc = await within(incoming, 10_000, 'the data channel on the server');
    const connectMs = performance.now() - connectStarted;

    const data = randomBytes(size);
    let sent = 0;
    const fill = () => {
      try {
        while (sent < size && dc.isOpen() && dc.bufferedAmount() <= cap) {
          dc.sendMessageBinary(data.subarray(sent, sent + CHUNK));
          sent += CHUNK;
        }
        if (sent >= size && pump !== undefined) {
          clearInterval(pump);
          pump = undefined;
        }
      } catch (err) {
        console.error('relay sender failed', err);
      }
    };
    dc.setBufferedAmountLowThreshold(cap / 2);
    dc.onBufferedAmountLow(fill);
    // onBufferedAmountLow only fires on a downward crossing: a fallback wake-up.
    pump = setInterval(fill, 5);
    const started = performance.now();
    fill();
    await ch.binaryAtLeast(size, timeoutMs);
    const ms = performance.now() - started;
    expect(ch.binaryBytes).toBe(size);
    expect(ch.hash.digest('hex')).toBe(sha(data));
    return { connectMs, ms, mbps: size / 1e6 / (ms / 1000), relay: path.stats() };
  } finally {
    if (pump !== undefined) clearInterval(pump);
    try {
      serverDc?.close();
    } catch {
      // already closed
    }
    server.close();
    client.close();
  }
}

it('connects two raw node-datachannel peers through a 500 ms RTT relay and moves 2 MiB', async () => {
  const SIZE = 2 * MiB;
  const path = await relay({ delayMs: 250, seed: 1 });
  // The cap on bufferedAmount() does not matter at this RTT: the 1 MiB SCTP send buffer does
  // (WEBRTC-NOTES).
  const r = await rawTransfer(path, SIZE, 256 * 1024, 40_000);
  expect(r.relay.reverse.deliveredBytes).toBeGreaterThan(SIZE);
  console.log(
    `raw ndc through 250 ms one way (500 ms RTT), 1 MiB SCTP send buffer: connected in ` +
      `${r.connectMs.toFixed(0)} ms; ${SIZE} B in ${r.ms.toFixed(0)} ms = ${r.mbps.toFixed(2)} MB/s; ` +
      `relay held max ${r.relay.maxHeldBytes} B, ${r.relay.reverse.packets} packets down, ` +
      `${r.relay.forward.packets} up`,
  );
}, 45_000);

it('holds the send budget and the agent memory while a 32 MiB artifact crawls through a slow relay', async () => {
  // 50 ms one way (100 ms RTT) and a 4 MB/s bottleneck. The router queue (2 MiB) is deeper
  // than the 1 MiB SCTP send buffer, so the queue never overflows: with a 256 KiB queue, slow
  // start overshoots into a burst of ~700 tail drops and usrsctp's congestion control then
  // recovers at about one packet per RTT (measured ~0.3 MB/s for 30 s), too slow for 32 MiB.
  const path = await relay({
    delayMs: 50,
    bandwidthBytesPerSec: 4_000_000,
    queueLimitBytes: 2 * MiB,
    seed: 3,
  });
  const id = 's-relay-budget';
  const offerer = new TestOfferer(['control', 'artifacts']);
  h.offerers.push(offerer);
  const offer = await offerer.offer();
  await h.manager.onOffer({
    type: 'session.offer',
    session_id: id,
    job_id: 'job-1',
    grant: await h.grant({ channels: ['control', 'artifacts'] }),
    // The agent must know the client only as the relay's back port.
    sdp: throughRelay(offer, { host: path.host, port: path.backPort }),
  });
  const reply = await h.signal.wait(
    (f) => (f.type === 'session.answer' || f.type === 'session.rejected') && f.session_id === id,
  );
  if (reply.type !== 'session.answer') throw new Error(`no answer: ${JSON.stringify(reply)}`);
  path.setTarget(hostCandidate(reply.sdp));
  offerer.applyAnswer(throughRelay(reply.sdp, { host: path.host, port: path.port }));
  await Promise.all(offerer.channels.map((c) => c.opened(15_000)));
  const session = h.manager.session(id);
  if (!session) throw new Error('no live session');
  const queue = session.queue;
  const ch = offerer.channel('artifacts');
  // The client is this process too: it hashes as bytes arrive and keeps none of them.
  ch.keepBinary = false;

  let maxInFlight = 0;
  let samples = 0;
  let rssMax = 0;
  const sampler = setInterval(() => {
    samples++;
    maxInFlight = Math.max(maxInFlight, queue.inFlight());
    rssMax = Math.max(rssMax, process.memoryUsage.rss());
  }, 5);
  const download = async (from: number): Promise<{ end: unknown; ms: number }> => {
    const nth = ch.frames().filter((f) => f['type'] === 'end').length;
    const started = performance.now();
    ch.json({ type: 'get', name: 'big.bin', from });
    const end = await ch.frameOf('end', nth, 25_000);
    return { end, ms: performance.now() - started };
  };
  let warm: { end: unknown; ms: number };
  let big: { end: unknown; ms: number };
  let rssCold: number;
  let rssStart: number;
  let rssEnd: number;
  let memStart: NodeJS.MemoryUsage;
  let memEnd: NodeJS.MemoryUsage;
  try {
    // Warm-up: the first download through a fresh peer connection grows the native heaps
    // (libdatachannel/usrsctp buffers, per-thread malloc arenas) and V8's heap to their
    // working size once, by ~35 MiB here; later 32 MiB downloads added < 1 MiB each (measured:
    // three in a row). That one-time cost would hide the question asked — does memory grow
    // with the bytes sent? — so the whole file goes once unmeasured, then once measured. The
    // cold growth is printed and bounded loosely: a download kept in memory would add 32 MiB.
    // No forced gc(): it shrinks V8's young generation, which then regrows by ~16 MiB of RSS
    // (heapTotal) during the next download whatever that download holds.
    rssCold = process.memoryUsage.rss();
    warm = await download(0);
    memStart = process.memoryUsage();
    rssStart = memStart.rss;
    rssMax = rssStart;
    big = await download(0);
    memEnd = process.memoryUsage();
    rssEnd = memEnd.rss;
  } finally {
    clearInterval(sampler);
  }
  const stats = queue.stats();
  const relayStats = path.stats();
  const rate = ARTIFACT_BYTES / 1e6 / (big.ms / 1000);
  const mib = (n: number) => (n / MiB).toFixed(1);
  console.log(
    `budget behind 50 ms one way + 4 MB/s: warm-up ${ARTIFACT_BYTES} B in ${warm.ms.toFixed(0)} ms ` +
      `(RSS ${rssStart >= rssCold ? '+' : ''}${mib(rssStart - rssCold)} MiB); again, measured: ${ARTIFACT_BYTES} B in ${big.ms.toFixed(0)} ms = ` +
      `${rate.toFixed(2)} MB/s; inFlight max sampled ${maxInFlight} (${samples} samples), ` +
      `max after send ${stats.maxInFlight}, waits ${stats.waits}/${stats.sends}; RSS at start ` +
      `${mib(rssStart)} MiB, end ${rssEnd >= rssStart ? '+' : ''}${mib(rssEnd - rssStart)} MiB, ` +
      `max +${mib(rssMax - rssStart)} MiB (V8 heapTotal ${mib(memStart.heapTotal)} → ${mib(memEnd.heapTotal)} MiB, ` +
      `heapUsed ${mib(memStart.heapUsed)} → ${mib(memEnd.heapUsed)}, arrayBuffers ${mib(memStart.arrayBuffers)} → ` +
      `${mib(memEnd.arrayBuffers)}); relay: queue drops ${relayStats.reverse.queueDrops}, ` +
      `max queued ${relayStats.reverse.maxQueuedBytes} B, max held ${relayStats.maxHeldBytes} B`,
  );
  expect(warm.end).toEqual({ type: 'end', name: 'big.bin', bytes: ARTIFACT_BYTES });
  expect(big.end).toEqual({ type: 'end', name: 'big.bin', bytes: ARTIFACT_BYTES });
  expect(ch.binaryBytes).toBe(2 * ARTIFACT_BYTES);
  expect(artifact.length).toBe(ARTIFACT_BYTES); // held to here
  expect(ch.hash.digest('hex')).toBe(expectedSha);
  // Every byte went through the relay: nothing found a way around it.
  expect(relayStats.reverse.deliveredBytes).toBeGreaterThan(2 * ARTIFACT_BYTES);
  expect(samples).toBeGreaterThan(1000);
  expect(maxInFlight).toBeLessThanOrEqual(BUDGET);
  expect(stats.maxInFlight).toBeLessThanOrEqual(BUDGET);
  // Memory over the measured download. Raw RSS grew by 0.6–15.6 MiB over runs here; every
  // large value was V8 committing heap pages (heapTotal +8 to +17 MiB) while heapUsed stayed
  // within a few MiB: GC scheduling of this process (the client and the relay's ~3000 packets/s
  // of JS objects included), not bytes held. So the 16 MiB bound applies to what the download
  // could hold — RSS outside V8's managed heap (native buffers, Buffers) and the JS heap in use —
  // and raw RSS gets the bound plus V8's largest swing seen.
  const heapGrowth = Math.max(0, memEnd.heapTotal - memStart.heapTotal);
  expect(rssEnd - rssStart - heapGrowth).toBeLessThan(16 * MiB);
  expect(memEnd.heapUsed - memStart.heapUsed).toBeLessThan(16 * MiB);
  expect(rssEnd - rssStart).toBeLessThan(32 * MiB);
  expect(rssMax - rssStart).toBeLessThan(32 * MiB);
  expect(rssEnd - rssCold).toBeLessThan(64 * MiB);
  expect(warm.ms).toBeLessThan(25_000);
  expect(big.ms).toBeLessThan(25_000);
}, 60_000);
