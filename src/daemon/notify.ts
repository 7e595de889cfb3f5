// sd_notify for the agent without a native addon: each message is one run of the
// `systemd-notify` binary. Readiness, status text, the watchdog keep-alive and stop-timeout
// extensions. A no-op when $NOTIFY_SOCKET is unset (not started by systemd as Type=notify).
//
// systemd-notify runs as a child with its own PID, so the unit needs NotifyAccess=all (main and
// exec would drop it: docs/operations.md). It is never given --no-block: by default it waits
// on a BARRIER=1 round-trip, so it is still alive when systemd looks up which unit sent the
// message; an exited sender cannot be attributed and its message would be dropped.
import { execFile } from 'node:child_process';

/** What systemd-notify is looked up in (never the agent's own PATH). */
export const NOTIFY_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Longest a single systemd-notify run may take (its barrier waits up to 5 s on its own). */
export const NOTIFY_TIMEOUT_MS = 10_000;
/** Messages waiting for their turn; past it STATUS= and WATCHDOG=1 are dropped (best-effort). */
export const NOTIFY_QUEUE_MAX = 8;
/** STATUS= text is one line of at most this many characters. */
export const STATUS_MAX_CHARS = 200;

export interface NotifyLog {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface NotifierOptions {
  /** Reads NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID. */
  env: Readonly<Record<string, string | undefined>>;
  log: NotifyLog;
  /** The binary; default `systemd-notify`, looked up in NOTIFY_PATH. */
  command?: string;
  /** This process's PID, for WATCHDOG_PID (default process.pid). */
  pid?: number;
}

export interface Notifier {
  /** False when $NOTIFY_SOCKET is unset: every method resolves false at once. */
  readonly enabled: boolean;
  /** The watchdog ping interval, or undefined when systemd asked for no watchdog (for us). */
  readonly watchdogIntervalMs: number | undefined;
  ready(status?: string): Promise<boolean>;
  status(text: string): Promise<boolean>;
  watchdog(): Promise<boolean>;
  /** Push the current start/stop deadline to `usec` microseconds from now. */
  extendTimeout(usec: number, status?: string): Promise<boolean>;
  stopping(status?: string): Promise<boolean>;
  /** Ping WATCHDOG=1 every WATCHDOG_USEC/2 from the event loop; returns the stop function. */
  startWatchdog(): () => void;
  /**
   * While the agent drains: EXTEND_TIMEOUT_USEC=`usec` now and every usec/3, so the stop
   * deadline keeps moving only as long as the event loop keeps running. Returns the stop function.
   */
  keepExtending(usec: number): () => void;
}

type Field = readonly [name: string, value: string];

/** One line, printable, bounded: systemd takes the message apart at newlines. */
export function statusText(text: string): string {
  const line = [...text.replace(/[\r\n\t]+/g, ' ')]
    .filter((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) !== 0x7f)
    .join('');
  return line.length > STATUS_MAX_CHARS ? `${line.slice(0, STATUS_MAX_CHARS - 1)}…` : line;
}

/** The argv after `systemd-notify`: plain VAR=VALUE assignments; never --pid (it sets MAINPID=). */
export function notifyArgv(fields: readonly Field[]): string[] {
  return fields.map(([name, value]) => `${name}=${name === 'STATUS' ? statusText(value) : value}`);
}

/**
 * The watchdog interval systemd asks of this process: half of WATCHDOG_USEC, or undefined when
 * there is no watchdog or it is meant for another PID (WATCHDOG_PID, as sd_watchdog_enabled).
 */
export function watchdogInterval(
  env: Readonly<Record<string, string | undefined>>,
  pid: number,
): number | undefined {
  const usec = env['WATCHDOG_USEC'];
  if (!usec || !/^\d+$/.test(usec) || Number(usec) === 0) return undefined;
  const forPid = env['WATCHDOG_PID'];
  if (forPid !== undefined && forPid !== '' && Number(forPid) !== pid) return undefined;
  return Math.max(1, Math.floor(Number(usec) / 2 / 1000));
}

export function createNotifier(opts: NotifierOptions): Notifier {
  const socket = opts.env['NOTIFY_SOCKET'];
  const enabled = socket !== undefined && socket !== '';
  const command = opts.command ?? 'systemd-notify';
  const interval = enabled ? watchdogInterval(opts.env, opts.pid ?? process.pid) : undefined;
  // Runs are chained so that systemd sees the messages in the order they were sent.
  let tail: Promise<unknown> = Promise.resolve();
  let queued = 0;

  const run = (argv: string[]): Promise<boolean> =>
    new Promise((resolve) => {
      execFile(
        command,
        argv,
        {
          // Only what systemd-notify needs: no secret, nothing else of the agent's environment.
          env: { NOTIFY_SOCKET: socket, PATH: NOTIFY_PATH },
          timeout: NOTIFY_TIMEOUT_MS,
          windowsHide: true,
        },
        (err, _stdout, stderr) => {
          if (err) {
            opts.log.warn(
              { argv, err: err.message, stderr: String(stderr).trim() },
              'systemd-notify failed',
            );
            resolve(false);
          } else {
            resolve(true);
          }
        },
      );
    });

  const send = (fields: readonly Field[], mustSend: boolean): Promise<boolean> => {
    if (!enabled) return Promise.resolve(false);
    if (!mustSend && queued >= NOTIFY_QUEUE_MAX) {
      opts.log.debug({ fields: fields.map(([n]) => n) }, 'notify queue full: message dropped');
      return Promise.resolve(false);
    }
    queued++;
    const argv = notifyArgv(fields);
    const result = tail.then(() => run(argv));
    tail = result.finally(() => {
      queued--;
    });
    return result;
  };

  const withStatus = (fields: Field[], status: string | undefined): Field[] =>
    status === undefined ? fields : [...fields, ['STATUS', status]];

  let pingPending = false;
  const watchdog = (): Promise<boolean> => {
    // One ping in flight is enough; a second one queued behind it tells systemd nothing new.
    if (pingPending) return Promise.resolve(false);
    pingPending = true;
    return send([['WATCHDOG', '1']], false).finally(() => {
      pingPending = false;
    });
  };

  return {
    enabled,
    watchdogIntervalMs: interval,
    ready: (status) => send(withStatus([['READY', '1']], status), true),
    status: (text) => send([['STATUS', text]], false),
    watchdog,
    extendTimeout: (usec, status) =>
      send(
        withStatus([['EXTEND_TIMEOUT_USEC', String(Math.max(0, Math.floor(usec)))]], status),
        true,
      ),
    stopping: (status) => send(withStatus([['STOPPING', '1']], status), true),
    startWatchdog() {
      if (interval === undefined) return () => undefined;
      // A timer on the event loop, on purpose: if the loop is blocked, the pings stop and
      // systemd restarts the agent after WatchdogSec.
      const timer = setInterval(() => void watchdog(), interval);
      timer.unref();
      void watchdog();
      return () => clearInterval(timer);
    },
    keepExtending(usec) {
      if (!enabled) return () => undefined;
      const every = Math.max(1, Math.floor(usec / 3 / 1000));
      let pending = false;
      const extend = () => {
        if (pending) return; // a slow systemd-notify must not pile runs up behind it
        pending = true;
        void send([['EXTEND_TIMEOUT_USEC', String(Math.floor(usec))]], true).finally(() => {
          pending = false;
        });
      };
      const timer = setInterval(extend, every);
      timer.unref();
      extend();
      return () => clearInterval(timer);
    },
  };
}
