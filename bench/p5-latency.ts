// P5: log latency. A build (a real pty, in the agent child) prints a line every 10 ms carrying
// the wall-clock time it was written (performance.timeOrigin + now(), comparable across
// processes of this machine); the reference client follows `logs` on loopback and notes when
// each line arrives. Baseline, same run: the same command under a pty in this process, its
// lines timed as node-pty hands them over (the floor: pty + event loop, no agent).
//
// P5b: keystroke echo round trip on `pty` over a 500 ms RTT relay: the build is an echo loop;
// the client sends `k<n>\r` and waits for `E:k<n>`; first idle, then while a 32 MiB artifact
// download runs on `artifacts` of the same session.
import { performance } from 'node:perf_hooks';
import type { ClientChannel } from '../src/client/channel.js';
import { downloadArtifact, followLog } from '../src/client/transfer.js';
import { startBuild } from '../src/jobs/build.js';
import { startUdpRelay, type UdpRelay } from '../test/helpers/udp-relay.js';
import type { BenchContext, FigureOutput } from './context.js';
import { MiB, median, percentile, poll, row, wallMs, withTimeout } from './lib.js';
import { BenchChild, connectAgent } from './peers.js';

const LINES = 300;
const STALL_MS = 10_000;

/** A node one-liner printing LINES stamped lines, one every 10 ms. */
function stamper(): string {
  return [
    "const { performance: p } = require('node:perf_hooks');",
    'let i = 0;',
    'const t = setInterval(() => {',
    "  process.stdout.write('T:' + i + ':' + (p.timeOrigin + p.now()).toFixed(3) + '\\n');",
    `  if (++i >= ${LINES}) clearInterval(t);`,
    '}, 10);',
  ].join('\n');
}

/** Collects stamped lines from a byte stream; latency = arrival − stamp. */
class Stamps {
  #text = '';
  readonly latencies: number[] = [];
  readonly seen = new Set<number>();

  push(data: Buffer): void {
    const now = wallMs();
    this.#text += data.toString('latin1');
    let nl;
    while ((nl = this.#text.indexOf('\n')) >= 0) {
      const line = this.#text.slice(0, nl);
      this.#text = this.#text.slice(nl + 1);
      const m = /T:(\d+):(\d+\.\d+)/.exec(line);
      if (!m) continue;
      this.seen.add(Number(m[1]));
      this.latencies.push(now - Number(m[2]));
    }
  }
}

async function floor(): Promise<Stamps> {
  const stamps = new Stamps();
  const handle = startBuild({
    projectDir: process.cwd(),
    buildDir: process.cwd(),
    target: 'esp32',
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', TERM: 'xterm-256color', HOME: '/tmp' },
    cwd: process.cwd(),
    cols: 120,
    rows: 40,
    timeoutMs: 30_000,
    killGraceMs: 500,
    sink: (d) => stamps.push(d),
    command: { file: process.execPath, args: ['-e', stamper()] },
  });
  await withTimeout(handle.result, 35_000, 'the baseline pty');
  return stamps;
}

async function viaAgent(): Promise<Stamps> {
  const child = await BenchChild.start('agent');
  try {
    const jobId = 'job-log';
    // The build waits for one line on its terminal, so the client is following before it prints.
    await child.call('startPty', {
      jobId,
      command: {
        file: '/bin/sh',
        args: ['-c', 'read go; exec "$0" -e "$1"', process.execPath, stamper()],
      },
    });
    const conn = await connectAgent(child, { jobId, channels: ['control', 'logs'] });
    const stamps = new Stamps();
    const eof = followLog(conn.channel('logs'), 0, (d) => stamps.push(d));
    await child.call('ptyWrite', { jobId, data: 'go\n' });
    await withTimeout(eof, 30_000, 'the log eof');
    conn.close();
    return stamps;
  } finally {
    await child.stop();
  }
}

export async function p5(ctx: BenchContext): Promise<FigureOutput> {
  const base = await floor();
  const agent = await viaAgent();
  const lost = LINES - agent.seen.size;
  const s = (x: Stamps) => ({
    p50: percentile(x.latencies, 50),
    p99: percentile(x.latencies, 99),
    max: Math.max(...x.latencies),
    lines: x.latencies.length,
  });
  const a = s(agent);
  const b = s(base);
  ctx.progress(
    `agent p50 ${a.p50.toFixed(2)} p99 ${a.p99.toFixed(2)} ms; pty floor p50 ${b.p50.toFixed(2)} p99 ${b.p99.toFixed(2)} ms`,
  );
  if (lost !== 0) throw new Error(`${lost} stamped lines never arrived`);
  return {
    rows: [
      row(
        'P5',
        'log latency pty → client, loopback, p50',
        a.p50,
        'ms',
        { op: '<=', bound: 10 },
        `pty floor p50 ${b.p50.toFixed(2)} ms`,
      ),
      row(
        'P5',
        'log latency pty → client, loopback, p99',
        a.p99,
        'ms',
        { op: '<=', bound: 50 },
        `pty floor p99 ${b.p99.toFixed(2)} ms`,
      ),
    ],
    details: { lines: LINES, intervalMs: 10, agent: a, ptyFloor: b },
  };
}

// ---- P5b ---------------------------------------------------------------------------------------

/** The terminal's output as text, and a wait for a string in it. */
class Screen {
  text = '';
  #wake: (() => void) | undefined;

  constructor(ch: ClientChannel<'pty'>) {
    void (async () => {
      for (;;) {
        const item = await ch.next();
        if (item.kind === 'closed') return;
        if (item.kind === 'data') {
          this.text += item.data.toString('latin1');
          this.#wake?.();
        }
      }
    })();
  }

  async waitFor(s: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.text.includes(s)) {
      if (Date.now() > deadline)
        throw new Error(
          `no ${JSON.stringify(s)} on the terminal within ${timeoutMs} ms; it shows ${JSON.stringify(this.text.slice(-80))}`,
        );
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 50);
      });
    }
  }
}

export async function p5b(ctx: BenchContext): Promise<FigureOutput> {
  // Large enough to outlast the busy samples at ~1–1.5 MB/s (the download is cut short after).
  const art = ctx.artifact(64 * MiB);
  const child = await BenchChild.start('agent');
  let relay: UdpRelay | undefined;
  try {
    await child.call('init', { files: [{ name: art.name, path: art.path }] }, 60_000);
    const jobId = 'job-echo';
    await child.call('startPty', {
      jobId,
      command: {
        file: '/bin/sh',
        args: ['-c', 'stty -echo; echo READY; while IFS= read -r l; do echo "E:$l"; done'],
      },
    });
    relay = await startUdpRelay({ delayMs: 250, seed: 21 });
    const conn = await connectAgent(child, {
      jobId,
      channels: ['control', 'pty', 'artifacts'],
      relay,
    });
    const pty = conn.channel('pty');
    const screen = new Screen(pty);
    pty.sendJson({ type: 'attach', from: 0, cols: 120, rows: 40 });
    await screen.waitFor('READY', 15_000);
    let n = 0;
    const echo = async (timeoutMs = 20_000) => {
      const key = `k${n++}`;
      const sent = performance.now();
      await pty.sendBinary(Buffer.from(`${key}\r`));
      await screen.waitFor(`E:${key}\r`, timeoutMs);
      return performance.now() - sent;
    };
    const idle: number[] = [];
    for (let i = 0; i < 10; i++) idle.push(await echo());
    ctx.progress(`idle echo p50 ${median(idle).toFixed(0)} ms`);

    // The download, not awaited: it runs until the connection closes.
    const artifacts = conn.channel('artifacts');
    artifacts.sendJson({ type: 'list' });
    const manifest = await withTimeout(artifacts.expect(['manifest']), 20_000, 'the manifest');
    const entry = manifest.files.find((f) => f.name === art.name);
    if (!entry) throw new Error('no artifact');
    let got = 0;
    let finished = false;
    const download = downloadArtifact(artifacts, ctx.dir('p5b-'), entry, (b) => (got += b)).then(
      () => (finished = true),
      () => undefined,
    );
    await poll(() => (got >= 1 * MiB ? true : undefined), 30_000, 'the download under way');
    const startBytes = got;
    const startAt = performance.now();
    const busy: number[] = [];
    // An echo that does not come back within STALL_MS while the download runs is counted as
    // STALL_MS (a lower bound) and ends the sampling: later echoes would queue behind it.
    let stalled = 0;
    for (let i = 0; i < 12 && !finished; i++) {
      let ms: number;
      try {
        ms = await echo(STALL_MS);
      } catch {
        if (finished) break;
        stalled++;
        busy.push(STALL_MS);
        const tail = await child
          .call<{ tail: string }>('logTail', { jobId })
          .catch(() => ({ tail: '' }));
        ctx.progress(
          `echo k${n - 1} not back after ${STALL_MS} ms (${(got / MiB).toFixed(1)} MiB downloaded; the agent's log has it: ${tail.tail.includes(`E:k${n - 1}`)})`,
        );
        break;
      }
      // Only echoes that ran entirely during the download count.
      if (!finished) busy.push(ms);
    }
    const kbps = (got - startBytes) / 1e3 / ((performance.now() - startAt) / 1000);
    ctx.progress(
      `busy echo p50 ${median(busy).toFixed(0)} ms, download ${kbps.toFixed(0)} KB/s meanwhile`,
    );
    if (busy.length < 5 && stalled === 0)
      throw new Error(`the download ended after ${busy.length} busy samples`);
    conn.close();
    await withTimeout(download, 10_000, 'the download to stop');
    await child.call('stopPty', { jobId });
    const idleP50 = median(idle);
    const busyP50 = median(busy);
    return {
      rows: [
        row(
          'P5b',
          'echo RTT during a download ÷ idle echo RTT, p50, 500 ms RTT path',
          busyP50 / idleP50,
          '×',
          { op: '<=', bound: 1.5 },
          `idle p50 ${idleP50.toFixed(0)} ms, p90 ${percentile(idle, 90).toFixed(0)} ms` +
            (stalled > 0
              ? `; ${stalled} echo stalled > ${STALL_MS / 1000} s (counted as ${STALL_MS / 1000} s)`
              : ''),
        ),
        row(
          'P5b',
          'echo RTT during a download, p50 / p90',
          busyP50,
          'ms',
          undefined,
          `p90 ${percentile(busy, 90).toFixed(0)} ms over ${busy.length} echoes; download meanwhile ${kbps.toFixed(0)} KB/s`,
        ),
      ],
      details: {
        rttMs: 500,
        idle,
        busy,
        stalled,
        stallMs: STALL_MS,
        downloadKBps: kbps,
        relay: relay.stats(),
      },
    };
  } catch (err) {
    process.stderr.write(`agent child stderr: ${child.stderrTail}\n`);
    const tail = await child.call('logTail', { jobId: 'job-echo' }).catch((e: Error) => e.message);
    process.stderr.write(`the build's log: ${JSON.stringify(tail)}\n`);
    throw err;
  } finally {
    await child.stop();
    await relay?.close();
  }
}
