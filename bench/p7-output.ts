// P7: a build printing 200 MiB through its pty into the job's log spool (startBuild's sink →
// LogSpool.append, as the job controller wires it; the cap raised above 200 MiB so nothing is
// cut) against `cat` of the same file into a file. The pty runs `stty -opost` first so the
// terminal passes bytes unchanged (no \n → \r\n), which makes "no byte lost" checkable: the spool
// must hold exactly the source's bytes (size and sha256). Alternated, ROUNDS each.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startBuild } from '../src/jobs/build.js';
import { LogSpool } from '../src/jobs/logspool.js';
import type { BenchContext, FigureOutput } from './context.js';
import { median, MiB, row, sha256File, withTimeout } from './lib.js';

const BYTES = 200 * MiB;
const ROUNDS = 2;

/** Compiler-warning-like lines, each numbered, up to exactly `bytes`. */
function writeSource(file: string, bytes: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    let written = 0;
    let n = 0;
    while (written < bytes) {
      const lines: string[] = [];
      let len = 0;
      while (len < MiB) {
        const l = `main/blink.c:${n}:5: warning: unused variable 'sim_extra_${n}' [-Wunused-variable]\n`;
        lines.push(l);
        len += l.length;
        n++;
      }
      const block = Buffer.from(lines.join(''), 'latin1').subarray(0, bytes - written);
      fs.writeSync(fd, block);
      written += block.length;
    }
  } finally {
    fs.closeSync(fd);
  }
}

async function cat(src: string, dst: string): Promise<number> {
  const started = performance.now();
  const out = fs.openSync(dst, 'w');
  try {
    const child = spawn('cat', [src], { stdio: ['ignore', out, 'inherit'] });
    const code = await withTimeout(
      new Promise<number | null>((r) => child.on('exit', (c) => r(c))),
      60_000,
      'cat',
    );
    if (code !== 0) throw new Error(`cat exited ${code}`);
  } finally {
    fs.closeSync(out);
  }
  return performance.now() - started;
}

async function throughPty(src: string, spoolFile: string) {
  const spool = await LogSpool.create(spoolFile, { maxBytes: BYTES + 64 * MiB });
  let lastAt = 0;
  const started = performance.now();
  const h = startBuild({
    projectDir: path.dirname(src),
    buildDir: path.dirname(src),
    target: 'esp32',
    env: {
      PATH: '/usr/bin:/bin',
      TERM: 'xterm-256color',
      HOME: path.dirname(src),
      LANG: 'C.UTF-8',
    },
    cwd: path.dirname(src),
    cols: 120,
    rows: 40,
    timeoutMs: 90_000,
    killGraceMs: 1000,
    sink: (d) => {
      spool.append(d);
      lastAt = performance.now();
    },
    command: { file: '/bin/sh', args: ['-c', 'stty -opost && exec cat "$0"', src] },
  });
  const r = await withTimeout(h.result, 100_000, 'the 200 MiB build');
  spool.close();
  if (r.outcome !== 'succeeded') throw new Error(`the pty build ${r.outcome}`);
  return { ms: lastAt - started, size: spool.size, dropped: spool.droppedBytes };
}

export async function p7(ctx: BenchContext): Promise<FigureOutput> {
  const dir = ctx.dir('p7-');
  const src = path.join(dir, 'output.txt');
  writeSource(src, BYTES);
  const srcSha = sha256File(src);
  const catMs: number[] = [];
  const ptyMs: number[] = [];
  let lost = 0;
  let checks = 0;
  const builds: { size: number; dropped: number; identical: boolean; prefixIntact: boolean }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const dst = path.join(dir, 'cat.out');
    const spoolFile = path.join(dir, 'build.log');
    const runCat = async () => {
      catMs.push(await cat(src, dst));
      fs.rmSync(dst);
    };
    const runPty = async () => {
      const r = await throughPty(src, spoolFile);
      ptyMs.push(r.ms);
      const same = r.size === BYTES && r.dropped === 0 && sha256File(spoolFile) === srcSha;
      // When bytes are missing: is what arrived exactly the start of the source (a lost tail)?
      const prefixIntact = same || sha256File(spoolFile) === sha256File(src, r.size);
      builds.push({ size: r.size, dropped: r.dropped, identical: same, prefixIntact });
      lost += same ? 0 : Math.max(1, Math.abs(BYTES - r.size) + r.dropped);
      checks++;
      fs.rmSync(spoolFile);
    };
    if (i % 2 === 0) {
      await runCat();
      await runPty();
    } else {
      await runPty();
      await runCat();
    }
    ctx.progress(
      `round ${i + 1}: pty → spool ${ptyMs.at(-1)?.toFixed(0)} ms, cat ${catMs.at(-1)?.toFixed(0)} ms`,
    );
  }
  fs.rmSync(src);
  const mbps = (ms: number) => BYTES / 1e6 / (ms / 1000);
  const spoolMBps = mbps(median(ptyMs));
  const catMBps = mbps(median(catMs));
  return {
    rows: [
      row(
        'P7',
        '200 MiB through the pty into the log spool: throughput ÷ cat into a file',
        spoolMBps / catMBps,
        '×',
        undefined,
        `spool ${spoolMBps.toFixed(0)} MB/s; cat ${catMBps.toFixed(0)} MB/s`,
      ),
      row(
        'P7',
        'bytes lost (size + sha256 of build.log vs. the source)',
        lost,
        'B',
        { op: '<=', bound: 0 },
        `${checks} builds checked; ${builds.filter((b) => !b.identical).length} short` +
          (builds.every((b) => b.prefixIntact) ? ' (only the tail missing)' : ''),
      ),
    ],
    details: { bytes: BYTES, ptyMs, catMs, spoolMBps, catMBps, lost, builds },
  };
}
