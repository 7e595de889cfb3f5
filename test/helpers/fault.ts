// Shared bits of the fault suite (test/fault-*.test.ts): a child process's resident memory from
// /proc, counting a child agent's log lines without rescanning them, dev control planes that
// restart on one port with one "database", and the seeded generator the corpora are drawn from.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { DevControlPlane, type DevStore } from '../../src/dev/index.js';
import { createLogger } from '../../src/log/index.js';
import { AGENT_SECRET } from './agent.js';
import type { ChildAgent } from './child-agent.js';

export { seededRandom } from './archives.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** VmRSS of a live process, in bytes (Linux /proc; the kernel reports kB). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * `count` RSS samples of `pid`, `intervalMs` apart, and their median. The interval spaces the
 * measurements out (GC and allocator trimming are lazy); it synchronises nothing.
 */
export async function sampleRss(
  pid: number,
  count = 5,
  intervalMs = 200,
): Promise<{ median: number; samples: number[] }> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, intervalMs));
    samples.push(rssBytes(pid));
  }
  return { median: median(samples), samples };
}

export { alive } from './agent-env.js';

/**
 * A running count of a child agent's log lines matching `pred`, updated as lines arrive (each
 * line is looked at once), with a wait for the count to reach a number.
 */
export function lineCounter(
  child: ChildAgent,
  pred: (line: Record<string, unknown>) => boolean,
): { readonly count: number; reach(n: number, timeoutMs?: number): Promise<number> } {
  let seen = 0;
  let count = 0;
  const listeners = new Set<() => void>();
  const scan = () => {
    for (; seen < child.lines.length; seen++) if (pred(child.lines[seen]!)) count++;
    for (const fn of [...listeners]) fn();
  };
  scan();
  // spawnAgent's own 'data' listener was added first, so the lines of a chunk are parsed by now.
  child.proc.stderr?.on('data', scan);
  return {
    get count() {
      return count;
    },
    reach(n, timeoutMs = 30_000) {
      if (count >= n) return Promise.resolve(count);
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        const check = () => {
          if (count < n) return;
          done();
          resolve(count);
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(`only ${count} of ${n} matching agent log lines within ${timeoutMs} ms`),
          );
        }, timeoutMs);
        listeners.add(check);
      });
    },
  };
}

/** The line the agent logs each time its control link is welcomed (a connect or a reconnect). */
export const isConnectedLine = (l: Record<string, unknown>): boolean =>
  typeof l['msg'] === 'string' && l['msg'].startsWith('connected to control plane');

export type PlaneOptions = Partial<Parameters<typeof DevControlPlane.start>[0]>;

/** A dev control plane for the fault tests: quiet, agent secret of the helpers, port 0 by default. */
export function startPlane(opts: PlaneOptions = {}): Promise<DevControlPlane> {
  return DevControlPlane.start({
    agentAuthSecret: AGENT_SECRET,
    logger: createLogger({ level: 'silent' }),
    ...opts,
  });
}

/** Starts the plane again on `prev`'s port with the same store (its jobs, seqs and signing key). */
export async function restartPlane(
  prev: DevControlPlane,
  store: DevStore,
  opts: PlaneOptions = {},
): Promise<DevControlPlane> {
  const next = await startPlane({ ...opts, store, port: prev.port });
  if (next.kid !== prev.kid) throw new Error('the restarted plane did not keep its grant key');
  return next;
}

/**
 * Environment for a child agent whose garbage can be collected on demand: the V8 inspector on a
 * free loopback port (see forceGc). Nothing else about the agent changes.
 */
export const INSPECTABLE: Record<string, string> = { NODE_OPTIONS: '--inspect=127.0.0.1:0' };

/**
 * A full garbage collection in a child agent started with INSPECTABLE, through the inspector
 * protocol (HeapProfiler.collectGarbage). V8 collects lazily: without this, RSS after a burst of
 * garbage measures V8's heap sizing, not what the agent retains.
 */
export async function forceGc(child: ChildAgent, timeoutMs = 10_000): Promise<void> {
  const line = await child.waitLine(
    (l) => typeof l['msg'] === 'string' && l['msg'].startsWith('Debugger listening on ws://'),
  );
  const url = /ws:\/\/\S+/.exec(String(line['msg']))![0];
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('inspector: no answer')), timeoutMs);
      ws.on('open', () =>
        ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })),
      );
      ws.on('message', (data: Buffer) => {
        const msg = JSON.parse(data.toString()) as { id?: number; error?: unknown };
        if (msg.id !== 1) return;
        clearTimeout(timer);
        if (msg.error) reject(new Error(`inspector: ${JSON.stringify(msg.error)}`));
        else resolve();
      });
      ws.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } finally {
    ws.close();
  }
}
