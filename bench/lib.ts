// Shared pieces of the benchmarks: statistics, bounded waits, the result rows and the table,
// RSS of another process from /proc, temp dirs and random artifact files.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const REPO = path.resolve(import.meta.dirname, '..', '..');

/** A wall clock with sub-millisecond resolution, comparable across processes of one machine. */
export const wallMs = (): number => performance.timeOrigin + performance.now();

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile (p in 0..100) of a non-empty sample. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** `p`, or a rejection naming `what` after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Polls `check` every `everyMs` until it returns a value; rejects after `timeoutMs`. */
export async function poll<T>(
  check: () => T | undefined,
  timeoutMs: number,
  what: string,
  everyMs = 5,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function tmpDir(prefix = 'aegis-bench-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A file of `bytes` random bytes, written in 1 MiB blocks; returns its sha256. */
export function randomFile(file: string, bytes: number): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let off = 0; off < bytes; off += MiB) {
      const block = randomBytes(Math.min(MiB, bytes - off));
      hash.update(block);
      fs.writeSync(fd, block);
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** sha256 of `file`, or of its first `limit` bytes. */
export function sha256File(file: string, limit = Infinity): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(4 * MiB);
  let left = limit;
  try {
    while (left > 0) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), null);
      left -= n;
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** VmRSS of `pid` in bytes (Linux /proc). */
export function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples a process's RSS every `everyMs` until stop(); returns the maximum and the count. */
export function sampleRss(pid: number, everyMs = 20): { stop(): { max: number; samples: number } } {
  let max = 0;
  let samples = 0;
  const take = () => {
    try {
      max = Math.max(max, rssOf(pid));
      samples++;
    } catch {
      // The process is gone: nothing more to sample.
    }
  };
  take();
  const t = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(t);
      take();
      return { max, samples };
    },
  };
}

// ---- results ---------------------------------------------------------------------------------

export type Verdict = 'pass' | 'miss' | 'info' | 'error';

/** One row of the table: a measured value against its goal (or an informational figure). */
export interface Row {
  figure: string;
  what: string;
  value: number;
  unit: string;
  /** `>=` / `<=` and the bound; absent for informational rows. */
  goal?: { op: '>=' | '<='; bound: number };
  /** What the value was compared against, in words with numbers. */
  baseline?: string;
  verdict: Verdict;
}

export function row(
  figure: string,
  what: string,
  value: number,
  unit: string,
  goal?: { op: '>=' | '<='; bound: number },
  baseline?: string,
): Row {
  let verdict: Verdict = 'info';
  if (goal) {
    if (!Number.isFinite(value)) verdict = 'miss';
    else verdict = (goal.op === '>=' ? value >= goal.bound : value <= goal.bound) ? 'pass' : 'miss';
  }
  return {
    figure,
    what,
    value,
    unit,
    ...(goal ? { goal } : {}),
    ...(baseline !== undefined ? { baseline } : {}),
    verdict,
  };
}

export interface FigureResult {
  id: string;
  title: string;
  ok: boolean;
  ms: number;
  rows: Row[];
  /** Every raw measurement, for results.json. */
  details: Record<string, unknown>;
  error?: string;
}

export const fmt = (v: number, unit: string): string => {
  if (!Number.isFinite(v)) return String(v);
  const digits = Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : unit === '×' ? 3 : 2;
  return `${v.toFixed(digits)}${unit === '×' ? '×' : unit ? ` ${unit}` : ''}`;
};

/** The table as Markdown (printed and pasted into docs). */
export function table(results: readonly FigureResult[]): string {
  const lines = [
    '| figure | measure | value | goal | baseline (same run) | result |',
    '|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    if (!r.ok) {
      lines.push(`| ${r.id} | ${r.title} | — | — | — | error: ${r.error ?? '?'} |`);
      continue;
    }
    for (const x of r.rows) {
      const goal = x.goal ? `${x.goal.op === '>=' ? '≥' : '≤'} ${fmt(x.goal.bound, x.unit)}` : '—';
      lines.push(
        `| ${x.figure} | ${x.what} | ${fmt(x.value, x.unit)} | ${goal} | ${x.baseline ?? '—'} | ${x.verdict} |`,
      );
    }
  }
  return lines.join('\n');
}
