// `npm run bench [-- P1 P5 …]`: runs the figures (all, or the ones named) one after another in
// this process, prints the table and writes bench/results.json. A figure that fails prints its
// error and the run goes on. Every figure is bounded by a timeout.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupNodeDataChannel } from '../src/webrtc/ndc.js';
import { BenchContext, type FigureOutput } from './context.js';
import { REPO, table, withTimeout, type FigureResult } from './lib.js';
import { p1, p2 } from './p1-p2-download.js';
import { p3 } from './p3-memory.js';
import { p4 } from './p4-build.js';
import { p5, p5b } from './p5-latency.js';
import { p6 } from './p6-start.js';
import { p7 } from './p7-output.js';
import { closeAllPeers } from './peers.js';

interface Figure {
  id: string;
  title: string;
  run: (ctx: BenchContext) => Promise<FigureOutput>;
  timeoutMs: number;
}

const FIGURES: Figure[] = [
  { id: 'P1', title: 'download, direct loopback', run: p1, timeoutMs: 120_000 },
  { id: 'P2', title: 'download over a 500 ms RTT path', run: p2, timeoutMs: 150_000 },
  { id: 'P3', title: 'agent memory behind a slow relay', run: p3, timeoutMs: 150_000 },
  { id: 'P4', title: 'build overhead', run: p4, timeoutMs: 120_000 },
  { id: 'P5', title: 'log latency', run: p5, timeoutMs: 60_000 },
  { id: 'P5b', title: 'keystroke echo during a download, 500 ms RTT', run: p5b, timeoutMs: 90_000 },
  { id: 'P6', title: 'build start overhead', run: p6, timeoutMs: 90_000 },
  { id: 'P7', title: 'high-output build', run: p7, timeoutMs: 120_000 },
];

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    loadavg: os.loadavg(),
  };
}

/** One figure in this process (a child of the orchestrator): its output goes back over IPC. */
async function runOne(id: string): Promise<number> {
  const f = FIGURES.find((x) => x.id === id);
  if (!f) throw new Error(`unknown figure ${id}`);
  const ctx = new BenchContext();
  ctx.figure = f.id;
  try {
    const out = await withTimeout(f.run(ctx), f.timeoutMs, f.id);
    process.send?.({ ok: true, out });
    return 0;
  } catch (err) {
    process.stderr.write(`  ${f.id} FAILED: ${(err as Error).stack ?? String(err)}\n`);
    process.send?.({ ok: false, error: (err as Error).message.split('\n')[0] ?? String(err) });
    return 1;
  } finally {
    ctx.cleanup();
  }
}

/**
 * Each figure runs in a fresh child process: node-datachannel's native state and any figure
 * that fails half-way stay in there, and every figure starts from the same clean process.
 */
function runChild(f: Figure): Promise<FigureOutput> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--figure', f.id], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let settled = false;
    const done = (err: Error | undefined, out?: FigureOutput) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(out as FigureOutput);
    };
    // The figure bounds its own waits; this is the backstop (its setup and teardown included).
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done(new Error(`${f.id}: no result within ${f.timeoutMs + 30_000} ms`));
    }, f.timeoutMs + 30_000);
    child.on('message', (m: { ok: boolean; out?: FigureOutput; error?: string }) => {
      if (m.ok) done(undefined, m.out);
      else done(new Error(m.error ?? 'failed'));
    });
    child.on('exit', (code, signal) => {
      done(new Error(`${f.id}: the figure's process exited (${code ?? signal}) without a result`));
    });
  });
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args[0] === '--figure') return runOne(args[1] ?? '');
  const wanted = args.map((a) => a.toUpperCase());
  const unknown = wanted.filter((w) => !FIGURES.some((f) => f.id.toUpperCase() === w));
  if (unknown.length > 0) {
    console.error(
      `unknown figure(s): ${unknown.join(', ')}; known: ${FIGURES.map((f) => f.id).join(' ')}`,
    );
    return 2;
  }
  const selected =
    wanted.length > 0 ? FIGURES.filter((f) => wanted.includes(f.id.toUpperCase())) : FIGURES;
  const results: FigureResult[] = [];
  const t0 = Date.now();
  for (const f of selected) {
    process.stderr.write(`${f.id} — ${f.title}\n`);
    const started = Date.now();
    try {
      const out = await runChild(f);
      results.push({ id: f.id, title: f.title, ok: true, ms: Date.now() - started, ...out });
    } catch (err) {
      const message = (err as Error).message;
      process.stderr.write(`  ${f.id} FAILED: ${message}\n`);
      results.push({
        id: f.id,
        title: f.title,
        ok: false,
        ms: Date.now() - started,
        rows: [],
        details: {},
        error: message.replace(/\|/g, '/'),
      });
    }
  }
  const totalMs = Date.now() - t0;
  const text = table(results);
  const m = machine();
  console.log(`\n${text}\n`);
  console.log(`total ${(totalMs / 1000).toFixed(1)} s on ${m.cores} × ${m.cpu}`);
  const json = {
    generatedAt: new Date().toISOString(),
    command: `npm run bench${wanted.length > 0 ? ` -- ${args.join(' ')}` : ''}`,
    machine: m,
    totalMs,
    figures: results,
    table: text,
  };
  const out = path.join(REPO, 'bench', 'results.json');
  fs.writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), out) || out}`);
  return results.every((r) => r.ok) ? 0 : 1;
}

/**
 * Every peer connection closed, a moment for libdatachannel to finish closing them, then its
 * one cleanup() and an explicit exit: a figure cut short by its timeout may leave native
 * callbacks pending, and the process must end anyway.
 */
async function finish(code: number): Promise<void> {
  if (process.argv[2] !== '--figure') {
    process.exitCode = code;
    return;
  }
  closeAllPeers();
  await new Promise((r) => setTimeout(r, 1000));
  try {
    cleanupNodeDataChannel();
  } catch (err) {
    console.error('node-datachannel cleanup failed:', (err as Error).message);
  }
  process.exit(code);
}

main().then(
  (code) => finish(code),
  (err: unknown) => {
    console.error(err);
    return finish(1);
  },
);
