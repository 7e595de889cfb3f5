// src/daemon/notify.ts against a real AF_UNIX datagram socket standing in for systemd's
// notification socket, and the real systemd-notify binary. Node cannot bind unix datagram
// sockets, so the listener is a few lines of python3; like systemd it enables SO_PASSCRED and
// closes the fd systemd-notify sends with BARRIER=1 (else systemd-notify would wait for it).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createNotifier,
  notifyArgv,
  statusText,
  STATUS_MAX_CHARS,
  watchdogInterval,
  type NotifyLog,
} from '../src/daemon/notify.js';

const LISTENER = String.raw`
import array, json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
name = sys.argv[1]
if name.startswith("@"):
    s.bind("\0" + name[1:])  # abstract namespace, as systemd-notify maps "@"
else:
    s.bind(name)
    os.chmod(name, 0o666)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"bound": True}), flush=True)
while True:
    data, anc, _flags, _addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4) + socket.CMSG_SPACE(12))
    fds, cred = 0, None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(payload[: len(payload) - len(payload) % a.itemsize])
            for fd in a:
                os.close(fd)
            fds += len(a)
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            cred = list(struct.unpack("iII", payload[:12]))
    print(json.dumps({"fields": data.decode().split("\n"), "fds": fds, "cred": cred}), flush=True)
`;

interface Datagram {
  fields: string[];
  fds: number;
  cred: [pid: number, uid: number, gid: number] | null;
}

const canDropPrivileges = process.getuid?.() === 0 && fs.existsSync('/usr/bin/setpriv');

const hasNotify = fs.existsSync('/usr/bin/systemd-notify') || fs.existsSync('/bin/systemd-notify');

class Listener {
  readonly datagrams: Datagram[] = [];
  private waiters: (() => void)[] = [];
  private constructor(
    readonly socketPath: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {}

  static async start(abstract = false): Promise<Listener> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-notify-'));
    fs.chmodSync(dir, 0o755); // an unprivileged sender must reach the socket too
    const socketPath = abstract
      ? `@aegis-notify-test-${path.basename(dir)}`
      : path.join(dir, 'notify');
    const child = spawn('python3', ['-c', LISTENER, socketPath]);
    const listener = new Listener(socketPath, child);
    const lines = readline.createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`listener exited (${code})`)));
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as { bound?: true } & Partial<Datagram>;
        if (msg.bound) return resolve();
        listener.datagrams.push(msg as Datagram);
        for (const w of listener.waiters.splice(0)) w();
      });
    });
    return listener;
  }

  /** Every datagram's fields, barriers (systemd-notify's sync round-trip) left out. */
  messages(): string[][] {
    return this.datagrams.map((d) => d.fields).filter((f) => !f.includes('BARRIER=1'));
  }

  async waitFor(pred: (msgs: string[][]) => boolean, timeoutMs = 5000): Promise<string[][]> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.messages())) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(this.messages())}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.messages();
  }

  stop(): void {
    this.child.kill('SIGKILL');
    if (!this.socketPath.startsWith('@')) {
      fs.rmSync(path.dirname(this.socketPath), { recursive: true, force: true });
    }
  }
}

function recordingLog(): NotifyLog & { warnings: object[] } {
  const warnings: object[] = [];
  return { warnings, warn: (obj) => void warnings.push(obj), debug: () => undefined };
}

describe('notify: pure decisions', () => {
  it('builds plain VAR=VALUE argv, never --pid', () => {
    expect(
      notifyArgv([
        ['READY', '1'],
        ['STATUS', 'connected\nto control'],
      ]),
    ).toEqual(['READY=1', 'STATUS=connected to control']);
  });

  it('keeps STATUS= to one bounded printable line', () => {
    expect(statusText('a\r\nb\tc\u0007d')).toBe('a b cd');
    expect(statusText('x'.repeat(1000))).toHaveLength(STATUS_MAX_CHARS);
  });

  it('pings at half of WATCHDOG_USEC, only for its own PID', () => {
    expect(watchdogInterval({ WATCHDOG_USEC: '30000000' }, 42)).toBe(15_000);
    expect(watchdogInterval({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(15_000);
    expect(watchdogInterval({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '43' }, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: '0' }, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: 'soon' }, 42)).toBeUndefined();
    expect(watchdogInterval({}, 42)).toBeUndefined();
  });

  it('is a no-op without NOTIFY_SOCKET (no process is started)', async () => {
    const log = recordingLog();
    // A command that cannot run: had it been spawned, a warning would be recorded.
    const n = createNotifier({ env: { WATCHDOG_USEC: '1000' }, log, command: '/nonexistent' });
    expect(n.enabled).toBe(false);
    expect(n.watchdogIntervalMs).toBeUndefined();
    expect(await n.ready('up')).toBe(false);
    expect(await n.watchdog()).toBe(false);
    n.startWatchdog()();
    n.keepExtending(1_000_000)();
    expect(log.warnings).toEqual([]);
  });
});

describe.skipIf(!hasNotify)('notify: real systemd-notify to a real datagram socket', () => {
  let listener: Listener;
  afterEach(() => listener.stop());

  it('delivers READY=1, STATUS=, WATCHDOG=1, EXTEND_TIMEOUT_USEC=, STOPPING=1 in order', async () => {
    listener = await Listener.start();
    const log = recordingLog();
    const n = createNotifier({ env: { NOTIFY_SOCKET: listener.socketPath }, log });
    expect(n.enabled).toBe(true);
    expect(await n.ready('toolchains: 2')).toBe(true);
    expect(await n.status('connected to control plane')).toBe(true);
    expect(await n.watchdog()).toBe(true);
    expect(await n.extendTimeout(90_000_000, 'draining: 1 build')).toBe(true);
    expect(await n.stopping()).toBe(true);
    const msgs = await listener.waitFor((m) => m.length >= 5);
    expect(msgs).toEqual([
      ['READY=1', 'STATUS=toolchains: 2'],
      ['STATUS=connected to control plane'],
      ['WATCHDOG=1'],
      ['EXTEND_TIMEOUT_USEC=90000000', 'STATUS=draining: 1 build'],
      ['STOPPING=1'],
    ]);
    // systemd-notify synchronised every message with a BARRIER=1 carrying a pipe fd.
    expect(
      listener.datagrams.filter((d) => d.fields.includes('BARRIER=1') && d.fds === 1),
    ).toHaveLength(5);
    expect(log.warnings).toEqual([]);
  });

  it('keeps message order when calls are not awaited one by one', async () => {
    listener = await Listener.start();
    const n = createNotifier({ env: { NOTIFY_SOCKET: listener.socketPath }, log: recordingLog() });
    const sent = await Promise.all([n.status('one'), n.status('two'), n.status('three')]);
    expect(sent).toEqual([true, true, true]);
    expect(await listener.waitFor((m) => m.length >= 3)).toEqual([
      ['STATUS=one'],
      ['STATUS=two'],
      ['STATUS=three'],
    ]);
  });

  it('pings WATCHDOG=1 every WATCHDOG_USEC/2 from the event loop, and stops when asked', async () => {
    listener = await Listener.start();
    const n = createNotifier({
      env: {
        NOTIFY_SOCKET: listener.socketPath,
        WATCHDOG_USEC: '400000',
        WATCHDOG_PID: String(process.pid),
      },
      log: recordingLog(),
    });
    expect(n.watchdogIntervalMs).toBe(200);
    const stop = n.startWatchdog();
    await listener.waitFor((m) => m.filter((f) => f[0] === 'WATCHDOG=1').length >= 3, 5000);
    stop();
    await new Promise((r) => setTimeout(r, 300)); // let a run already started land
    const count = listener.messages().length;
    await new Promise((r) => setTimeout(r, 600));
    expect(listener.messages().length).toBe(count);
  });

  it('sends no watchdog pings when WATCHDOG_PID names another process', async () => {
    listener = await Listener.start();
    const n = createNotifier({
      env: { NOTIFY_SOCKET: listener.socketPath, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' },
      log: recordingLog(),
    });
    expect(n.watchdogIntervalMs).toBeUndefined();
    const stop = n.startWatchdog();
    await new Promise((r) => setTimeout(r, 500));
    stop();
    expect(listener.messages()).toEqual([]);
  });

  it('keeps extending the stop timeout until told to stop', async () => {
    listener = await Listener.start();
    const n = createNotifier({ env: { NOTIFY_SOCKET: listener.socketPath }, log: recordingLog() });
    const stop = n.keepExtending(600_000); // every 200 ms
    const msgs = await listener.waitFor((m) => m.length >= 3);
    stop();
    expect(msgs.slice(0, 3)).toEqual([
      ['EXTEND_TIMEOUT_USEC=600000'],
      ['EXTEND_TIMEOUT_USEC=600000'],
      ['EXTEND_TIMEOUT_USEC=600000'],
    ]);
  });

  // Why the unit needs NotifyAccess=all: the datagram's SCM_CREDENTIALS carry the PID systemd
  // attributes it to. An unprivileged systemd-notify (the agent runs as user aegis with no
  // capabilities) can only send its own PID, not its parent's (the main PID).
  it.skipIf(!canDropPrivileges)(
    "an unprivileged systemd-notify sends its own PID, not the agent's",
    async () => {
      listener = await Listener.start();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-notify-wrap-'));
      const wrapper = path.join(dir, 'notify-as-nobody');
      fs.writeFileSync(
        wrapper,
        '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups systemd-notify "$@"\n',
        { mode: 0o755 },
      );
      try {
        const n = createNotifier({
          env: { NOTIFY_SOCKET: listener.socketPath },
          log: recordingLog(),
          command: wrapper,
        });
        expect(await n.ready()).toBe(true);
        await listener.waitFor((m) => m.length >= 1);
        const ready = listener.datagrams.find((d) => d.fields.includes('READY=1'));
        expect(ready?.cred?.[1]).toBe(65534);
        expect(ready?.cred?.[0]).not.toBe(process.pid);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('reaches an abstract socket name (@…), as systemd may hand out', async () => {
    listener = await Listener.start(true);
    const n = createNotifier({ env: { NOTIFY_SOCKET: listener.socketPath }, log: recordingLog() });
    expect(await n.ready()).toBe(true);
    expect(await listener.waitFor((m) => m.length >= 1)).toEqual([['READY=1']]);
  });

  it('reports (never throws) when the socket is gone', async () => {
    listener = await Listener.start();
    const log = recordingLog();
    const n = createNotifier({ env: { NOTIFY_SOCKET: `${listener.socketPath}.missing` }, log });
    expect(await n.ready()).toBe(false);
    expect(log.warnings).toHaveLength(1);
  });
});
