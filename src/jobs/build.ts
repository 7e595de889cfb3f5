// Running `idf.py set-target` + `idf.py build` under a real pseudo-terminal (the only importer
// of node-pty). Every output byte goes to the sink (the log spool) first; the build never waits
// on a reader. Timeout and cancel stop the whole build: SIGTERM to every process of its session,
// KILL_GRACE_S, then SIGKILL; leftovers of a build that exited on its own are reaped the same way.
import fs from 'node:fs';
import * as pty from 'node-pty';
import { buildProcesses, signalBuild } from './proctree.js';

export type BuildOutcome = 'succeeded' | 'failed' | 'canceled' | 'timed_out';

export interface BuildResult {
  outcome: BuildOutcome;
  /** The exit code of idf.py (undefined when killed by a signal). */
  exitCode: number | undefined;
  signal: number | undefined;
  durationMs: number;
  /** Processes of the build still alive after the final SIGKILL (0 unless something is stuck in D state). */
  survivors: number;
}

export interface BuildOptions {
  /** idf.py's project dir and build dir. */
  projectDir: string;
  buildDir: string;
  target: string;
  env: Record<string, string>;
  cwd: string;
  cols: number;
  rows: number;
  timeoutMs: number;
  killGraceMs: number;
  /** Receives every byte of pty output, in order, before anything else sees it. */
  sink: (data: Buffer) => void;
  /** The command to run; default: set-target then build. Tests and benches may override it. */
  command?: { file: string; args: string[] };
}

export interface BuildHandle {
  /** The session leader's pid (= its session id and process group). */
  readonly pid: number;
  readonly result: Promise<BuildResult>;
  cancel(): void;
  /** Input bytes to the build's terminal; ignored once it has exited. */
  write(data: Buffer | string): void;
  resize(cols: number, rows: number): void;
  readonly running: boolean;
}

/** The default build: set-target, then build, in one terminal session. */
export function idfCommand(
  projectDir: string,
  buildDir: string,
  target: string,
): { file: string; args: string[] } {
  return {
    file: '/bin/sh',
    args: [
      '-c',
      'idf.py -C "$1" -B "$2" set-target "$3" && exec idf.py -C "$1" -B "$2" build',
      'aegis-build',
      projectDir,
      buildDir,
      target,
    ],
  };
}

const REAP_POLL_MS = 50;
/** How often the leader's exit is looked for while its terminal is held open. */
const EXIT_WATCH_MS = 10;
/** Output silence after the leader's exit that means everything it wrote was read. */
const OUTPUT_QUIET_MS = 20;

/** The process has exited (gone, or a zombie waiting for node-pty to reap it). */
function processGone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export function startBuild(opts: BuildOptions): BuildHandle {
  const started = Date.now();
  const cmd = opts.command ?? idfCommand(opts.projectDir, opts.buildDir, opts.target);
  const term = pty.spawn(cmd.file, cmd.args, {
    name: opts.env['TERM'] ?? 'xterm-256color',
    cols: opts.cols,
    rows: opts.rows,
    cwd: opts.cwd,
    env: opts.env,
    // Bytes, not strings: the log is exactly the pty output, invalid UTF-8 included.
    encoding: null,
  });
  const sid = term.pid;
  // Hold the terminal's slave side open ourselves until the build has ended. When the last
  // slave descriptor closes, a read on the master can fail with EIO while output is still
  // queued, and node-pty then drops that tail (node-pty #72, #85): a build printing 200 MiB lost
  // 4-7 KB from its end in 3 runs of 3. With our descriptor there is no hangup while the leader
  // writes; once it has exited and its output has gone quiet (everything it wrote was read),
  // we let go, node-pty sees the hangup and reports the exit. O_NOCTTY: the agent must never
  // adopt the build's terminal as its own controlling terminal.
  let slaveFd: number | undefined;
  try {
    const ptsName = (term as unknown as { ptsName?: string }).ptsName;
    if (ptsName) slaveFd = fs.openSync(ptsName, fs.constants.O_RDWR | fs.constants.O_NOCTTY);
  } catch {
    slaveFd = undefined;
  }
  let lastDataAt = Date.now();
  const releaseSlave = () => {
    clearInterval(exitWatch);
    if (slaveFd === undefined) return;
    fs.closeSync(slaveFd);
    slaveFd = undefined;
  };
  const exitWatch = setInterval(() => {
    if (!processGone(sid) || Date.now() - lastDataAt < OUTPUT_QUIET_MS) return;
    releaseSlave();
  }, EXIT_WATCH_MS);
  let running = true;
  let stopping: 'canceled' | 'timed_out' | undefined;

  term.onData((data: string | Buffer) => {
    lastDataAt = Date.now();
    opts.sink(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  });

  const exited = new Promise<{ exitCode: number; signal: number | undefined }>((resolve) => {
    term.onExit(({ exitCode, signal }) => {
      running = false;
      resolve({ exitCode, signal: signal || undefined });
    });
  });

  let stopAsked!: () => void;
  const stopRequested = new Promise<'stop'>((r) => (stopAsked = () => r('stop')));
  const stop = (why: 'canceled' | 'timed_out') => {
    if (!running || stopping) return;
    stopping = why;
    signalBuild(sid, 'SIGTERM');
    stopAsked();
  };
  const timeout = setTimeout(() => stop('timed_out'), opts.timeoutMs);

  const result = (async (): Promise<BuildResult> => {
    let leader = await Promise.race([exited, stopRequested]);
    if (leader === 'stop') {
      const grace = delay(opts.killGraceMs).then(() => 'grace' as const);
      const afterTerm = await Promise.race([exited, grace]);
      if (afterTerm === 'grace') signalBuild(sid, 'SIGKILL');
      leader = afterTerm === 'grace' ? await exited : afterTerm;
    }
    clearTimeout(timeout);
    // Whatever the build left running (background grandchildren, a stuck compiler) goes too.
    releaseSlave();
    const survivors = await reap(sid, opts.killGraceMs);
    try {
      term.kill('SIGKILL');
    } catch {
      // Already gone.
    }
    const outcome: BuildOutcome =
      stopping ?? (leader.exitCode === 0 && leader.signal === undefined ? 'succeeded' : 'failed');
    return {
      outcome,
      exitCode: leader.signal === undefined ? leader.exitCode : undefined,
      signal: leader.signal,
      durationMs: Date.now() - started,
      survivors,
    };
  })();

  return {
    pid: sid,
    result,
    get running() {
      return running;
    },
    cancel: () => stop('canceled'),
    write(data) {
      if (running) term.write(data);
    },
    resize(cols, rows) {
      if (running) term.resize(cols, rows);
    },
  };
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** SIGTERM what is left of the session, SIGKILL after the grace period; returns survivors. */
async function reap(sid: number, graceMs: number): Promise<number> {
  if (buildProcesses(sid).length === 0) return 0;
  signalBuild(sid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && buildProcesses(sid).length > 0) {
    await delay(REAP_POLL_MS);
  }
  if (buildProcesses(sid).length > 0) signalBuild(sid, 'SIGKILL');
  const killDeadline = Date.now() + 2000;
  while (Date.now() < killDeadline && buildProcesses(sid).length > 0) {
    await delay(REAP_POLL_MS);
  }
  return buildProcesses(sid).length;
}
