// P3: the agent's memory while it serves 64 MiB to a client behind a slow relay (100 ms RTT, a
// 4 MB/s bottleneck with a 2 MiB router queue): the agent's session layer runs in a child
// process, whose VmRSS is sampled from /proc every 20 ms after a full GC; the client (this
// process) writes the file to disk. The session's in-flight bytes (the sum of bufferedAmount()
// over its channels) are sampled inside the child every 5 ms. Baseline, same run, same relay
// settings: a raw node-datachannel server (128 KiB cap) in a child of its own.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { downloadArtifact } from '../src/client/transfer.js';
import { startUdpRelay, type UdpRelay } from '../test/helpers/udp-relay.js';
import type { BenchContext, FigureOutput } from './context.js';
import { MiB, row, rssOf, sampleRss, withTimeout } from './lib.js';
import { BenchChild, connectAgent, connectRaw } from './peers.js';

const BYTES = 64 * MiB;
const CAP = 128 * 1024;
const GOAL_MIB = 16;

const slowPath = (seed: number) =>
  startUdpRelay({ delayMs: 50, bandwidthBytesPerSec: 4_000_000, queueLimitBytes: 2 * MiB, seed });

interface Run {
  rssStart: number;
  rssMax: number;
  rssEnd: number;
  growth: number;
  samples: number;
  ms: number;
  maxInFlight: number;
  inFlightSamples: number;
  queue?: unknown;
  relay: unknown;
}

async function agentRun(ctx: BenchContext): Promise<Run> {
  const art = ctx.artifact(BYTES);
  const child = await BenchChild.start('agent');
  let relay: UdpRelay | undefined;
  try {
    await child.call('init', { files: [{ name: art.name, path: art.path }] }, 60_000);
    relay = await slowPath(3);
    const conn = await connectAgent(child, {
      jobId: 'job-dl',
      channels: ['control', 'artifacts'],
      relay,
    });
    const ch = conn.channel('artifacts');
    ch.sendJson({ type: 'list' });
    const manifest = await withTimeout(ch.expect(['manifest']), 20_000, 'the manifest');
    const entry = manifest.files.find((f) => f.name === art.name);
    if (!entry) throw new Error('no artifact');
    const outDir = ctx.dir('p3-');
    await child.call('gc');
    const rssStart = rssOf(child.pid);
    await child.call('sampleStart', { sessionId: conn.sessionId });
    const rss = sampleRss(child.pid, 20);
    const started = performance.now();
    let done;
    let sampled = { max: 0, samples: 0 };
    try {
      done = await withTimeout(
        downloadArtifact(ch, outDir, entry, () => undefined),
        100_000,
        'the download',
      );
    } finally {
      sampled = rss.stop();
    }
    const { max: rssMax, samples } = sampled;
    const ms = performance.now() - started;
    const rssEnd = rssOf(child.pid);
    const q = await child.call<{ maxInFlight: number; samples: number; queue: unknown }>(
      'sampleStop',
      {
        sessionId: conn.sessionId,
      },
    );
    if (done.sha256 !== art.sha256) throw new Error('the downloaded artifact does not match');
    fs.rmSync(path.join(outDir, entry.name), { force: true });
    conn.close();
    return {
      rssStart,
      rssMax,
      rssEnd,
      growth: rssMax - rssStart,
      samples,
      ms,
      maxInFlight: q.maxInFlight,
      inFlightSamples: q.samples,
      queue: q.queue,
      relay: relay.stats(),
    };
  } finally {
    await child.stop();
    await relay?.close();
  }
}

async function rawRun(ctx: BenchContext): Promise<Run> {
  const art = ctx.artifact(BYTES);
  const child = await BenchChild.start('raw');
  let relay: UdpRelay | undefined;
  try {
    relay = await slowPath(4);
    const conn = await connectRaw(child, { relay });
    await child.call('gc');
    const rssStart = rssOf(child.pid);
    await child.call('sampleStart');
    const rss = sampleRss(child.pid, 20);
    let ms;
    let s = { max: 0, samples: 0 };
    try {
      ms = await conn.fetch(art.path, art.bytes, CAP, 100_000);
    } finally {
      s = rss.stop();
    }
    const rssEnd = rssOf(child.pid);
    const q = await child.call<{ maxInFlight: number; samples: number }>('sampleStop');
    conn.close();
    return {
      rssStart,
      rssMax: s.max,
      rssEnd,
      growth: s.max - rssStart,
      samples: s.samples,
      ms,
      maxInFlight: q.maxInFlight,
      inFlightSamples: q.samples,
      relay: relay.stats(),
    };
  } finally {
    await child.stop();
    await relay?.close();
  }
}

export async function p3(ctx: BenchContext): Promise<FigureOutput> {
  const agent = await agentRun(ctx);
  ctx.progress(
    `agent: RSS +${(agent.growth / MiB).toFixed(1)} MiB, in flight max ${agent.maxInFlight} B, ${(BYTES / agent.ms).toFixed(0)} KB/s`,
  );
  const raw = await rawRun(ctx);
  ctx.progress(
    `raw: RSS +${(raw.growth / MiB).toFixed(1)} MiB, ${(BYTES / raw.ms).toFixed(0)} KB/s`,
  );
  return {
    rows: [
      row(
        'P3',
        'agent RSS growth serving 64 MiB behind a slow relay (100 ms RTT, 4 MB/s)',
        agent.growth / MiB,
        'MiB',
        { op: '<=', bound: GOAL_MIB },
        `raw ndc server: +${(raw.growth / MiB).toFixed(1)} MiB; agent at the end: +${((agent.rssEnd - agent.rssStart) / MiB).toFixed(1)} MiB`,
      ),
      row(
        'P3',
        "session's buffered bytes, sampled max (every 5 ms)",
        agent.maxInFlight / 1024,
        'KiB',
        { op: '<=', bound: 128 },
        `raw ndc channel: ${(raw.maxInFlight / 1024).toFixed(0)} KiB (cap 128 KiB + 1 message)`,
      ),
    ],
    details: { bytes: BYTES, agent, raw },
  };
}
