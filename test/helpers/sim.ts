// Helpers for tests that run the ESP-IDF stand-in (toolchains/esp-idf-sim*): real processes,
// a scrubbed environment, temp copies of projects, and a pty capture that waits on output.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type * as ptyTypes from 'node-pty';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SIM_V53 = path.join(REPO_ROOT, 'toolchains', 'esp-idf-sim');
export const SIM_V51 = path.join(REPO_ROOT, 'toolchains', 'esp-idf-sim-v5.1');
export const EXAMPLES = path.join(REPO_ROOT, 'examples');
export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'projects');

const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A minimal, secret-free environment like the one the agent gives builds. */
export function simEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: BASE_PATH, HOME: home, LANG: 'C.UTF-8', ...extra };
}

export async function makeTempDir(prefix = 'idf-sim-'): Promise<string> {
  return fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), prefix)));
}

/** Copy a project (example or fixture) into `dir`/<name> without any build output. */
export async function copyProject(
  src: string,
  dir: string,
  name = path.basename(src),
): Promise<string> {
  const dest = path.join(dir, name);
  await fs.cp(src, dest, {
    recursive: true,
    filter: (p) => {
      const base = path.basename(p);
      return base !== 'build' && base !== 'sdkconfig' && base !== 'sdkconfig.old';
    },
  });
  return dest;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved. */
  all: string;
}

/** `. <install>/export.sh && idf.py <args>` in bash, without a terminal. */
export async function runIdf(
  install: string,
  args: readonly string[],
  opts: { env: Record<string, string>; cwd?: string; timeoutMs?: number },
): Promise<RunResult> {
  const r = await execa(
    'bash',
    [
      '--noprofile',
      '--norc',
      '-c',
      '. "$0/export.sh" >/dev/null || exit 99; exec idf.py "$@"',
      install,
      ...args,
    ],
    {
      env: opts.env,
      extendEnv: false,
      cwd: opts.cwd ?? os.tmpdir(),
      reject: false,
      all: true,
      timeout: opts.timeoutMs ?? 50_000,
      stdin: 'ignore',
    },
  );
  return {
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout),
    stderr: String(r.stderr),
    all: String(r.all),
  };
}

/** Accumulates a pty's output; waits for a pattern or for exit, each with a timeout. */
export class PtyCapture {
  output = '';
  exit: { exitCode: number; signal?: number | undefined } | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(readonly proc: ptyTypes.IPty) {
    proc.onData((d) => {
      this.output += d;
      this.notify();
    });
    proc.onExit((e) => {
      this.exit = e;
      this.notify();
    });
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
        fn();
      };
      const waiter = () => {
        const v = check();
        if (v !== undefined) done(() => resolve(v));
        else if (this.exit !== undefined) {
          done(() =>
            reject(
              new Error(
                `process exited (${this.exit?.exitCode}) while waiting for ${what}; output tail: ${JSON.stringify(this.output.slice(-600))}`,
              ),
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        done(() =>
          reject(
            new Error(
              `timed out after ${timeoutMs} ms waiting for ${what}; output tail: ${JSON.stringify(this.output.slice(-600))}`,
            ),
          ),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
      waiter();
    });
  }

  /** Resolves with the match once `re` matches the output received since `from` (an offset). */
  waitFor(re: RegExp, timeoutMs = 20_000, from = 0): Promise<RegExpExecArray> {
    return this.waitUntil(
      () => re.exec(this.output.slice(from)) ?? undefined,
      timeoutMs,
      String(re),
    );
  }

  waitExit(timeoutMs = 20_000): Promise<{ exitCode: number; signal?: number | undefined }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for exit; output tail: ${JSON.stringify(this.output.slice(-600))}`,
          ),
        );
      }, timeoutMs);
      const waiter = () => {
        if (this.exit === undefined) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(this.exit);
      };
      this.waiters.add(waiter);
      waiter();
    });
  }
}
