// A real coturn (`turnserver`) on loopback for the TURN tests: a generated config in a temp
// dir, a free UDP port, relay sockets on 127.0.0.2 (a loopback alias Linux answers without any
// set-up) so that a relay candidate never shares an address with the peers' host candidates,
// TURN REST authentication (use-auth-secret), and its log kept in memory. Ready means it
// answered a STUN Binding request; stop() waits for the process to exit.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const TURN_LISTEN_IP = '127.0.0.1';
export const TURN_RELAY_IP = '127.0.0.2';

/** The turnserver binary on PATH (or in /usr/bin), or undefined when coturn is not installed. */
export function findTurnserver(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const file = path.join(dir, 'turnserver');
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface Coturn {
  /** UDP port it listens on, on TURN_LISTEN_IP. */
  readonly port: number;
  /** "turn:127.0.0.1:<port>?transport=udp" */
  readonly url: string;
  readonly secret: string;
  readonly realm: string;
  readonly relayIp: string;
  readonly minPort: number;
  readonly maxPort: number;
  /** The generated turnserver.conf (for the report). */
  readonly config: string;
  /** Everything it logged so far. */
  log(): string;
  /** Resolves with the lines (past and future) matching `re` once there are `count` (default 1). */
  waitForLog(re: RegExp, options?: { count?: number; timeoutMs?: number }): Promise<string[]>;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
}

export interface CoturnOptions {
  binary?: string;
  secret?: string;
  realm?: string;
  /** How long to wait for it to answer STUN; default 10 s per attempt. */
  readyTimeoutMs?: number;
}

const RELAY_PORTS = 100;

export async function startCoturn(options: CoturnOptions = {}): Promise<Coturn> {
  const binary = options.binary ?? findTurnserver();
  if (binary === undefined) throw new Error('turnserver (coturn) is not installed');
  let lastError: Error | undefined;
  // The port is free when chosen and taken by coturn a moment later: another process may win
  // it in between, so a start that never gets ready is retried on a new port.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(binary, options);
    } catch (err) {
      lastError = err as Error;
    }
  }
  throw lastError ?? new Error('coturn did not start');
}

async function startOnce(binary: string, options: CoturnOptions): Promise<Coturn> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-coturn-'));
  const port = await freeUdpPort();
  // Below the kernel's ephemeral range (32768+), where libjuice's host sockets live.
  const minPort = 20_000 + crypto.randomInt(0, 120) * RELAY_PORTS;
  const maxPort = minPort + RELAY_PORTS - 1;
  const secret = options.secret ?? crypto.randomBytes(18).toString('base64url');
  const realm = options.realm ?? 'aegis.test';
  const config = [
    `listening-ip=${TURN_LISTEN_IP}`,
    `listening-port=${port}`,
    `relay-ip=${TURN_RELAY_IP}`,
    `min-port=${minPort}`,
    `max-port=${maxPort}`,
    'use-auth-secret',
    `static-auth-secret=${secret}`,
    `realm=${realm}`,
    'no-tls',
    'no-dtls',
    'no-tcp',
    'no-tcp-relay',
    'no-rfc5780',
    'no-cli',
    'allow-loopback-peers',
    'verbose',
    'log-file=stdout',
    'simple-log',
    `pidfile=${path.join(dir, 'turnserver.pid')}`,
    `userdb=${path.join(dir, 'turndb')}`,
    '',
  ].join('\n');
  const confFile = path.join(dir, 'turnserver.conf');
  fs.writeFileSync(confFile, config, { mode: 0o600 });

  const child = spawn(binary, ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const watchers = new Set<(line: string) => void>();
  let partial = '';
  const onData = (chunk: Buffer): void => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const w of watchers) w(line);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  child.once('error', () => undefined);

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await killAndWait(child, exited);
      fs.rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    await stunReady(port, child, exited, options.readyTimeoutMs ?? 10_000);
  } catch (err) {
    const tail = lines.slice(-20).join('\n');
    await stop();
    throw new Error(`${(err as Error).message}; coturn log tail:\n${tail}`, { cause: err });
  }

  return {
    port,
    url: `turn:${TURN_LISTEN_IP}:${port}?transport=udp`,
    secret,
    realm,
    relayIp: TURN_RELAY_IP,
    minPort,
    maxPort,
    config: config.replace(secret, '<secret>'),
    log: () => lines.join('\n'),
    waitForLog: (re, { count = 1, timeoutMs = 10_000 } = {}) =>
      new Promise((resolve, reject) => {
        const matched = lines.filter((l) => re.test(l));
        if (matched.length >= count) return resolve(matched);
        const timer = setTimeout(() => {
          watchers.delete(watcher);
          reject(
            new Error(
              `coturn logged ${matched.length} of ${count} lines matching ${re} within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        const watcher = (line: string): void => {
          if (!re.test(line)) return;
          matched.push(line);
          if (matched.length < count) return;
          clearTimeout(timer);
          watchers.delete(watcher);
          resolve(matched);
        };
        watchers.add(watcher);
      }),
    stop,
  };
}

/** A UDP port on 127.0.0.1 that was free a moment ago. */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, TURN_LISTEN_IP, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Resolves when coturn answers a STUN Binding request (RFC 8489: type 0x0001, magic cookie
 * 0x2112A442) on its port; the request is retransmitted every 100 ms, as STUN over UDP is.
 */
function stunReady(
  port: number,
  child: ChildProcess,
  exited: Promise<void>,
  timeoutMs: number,
): Promise<void> {
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0);
  request.writeUInt16BE(0, 2);
  request.writeUInt32BE(0x2112a442, 4);
  const txid = crypto.randomBytes(12);
  txid.copy(request, 8);
  const socket = dgram.createSocket('udp4');
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      clearInterval(retransmit);
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve();
    };
    const send = (): void => socket.send(request, port, TURN_LISTEN_IP, () => undefined);
    const retransmit = setInterval(send, 100);
    const timer = setTimeout(
      () => finish(new Error(`coturn did not answer STUN on ${port} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('message', (msg) => {
      if (msg.length >= 20 && msg.readUInt16BE(0) === 0x0101 && msg.subarray(8, 20).equals(txid))
        finish();
    });
    socket.on('error', (err) => finish(err));
    void exited.then(() =>
      finish(new Error(`coturn exited (code ${child.exitCode}, signal ${child.signalCode})`)),
    );
    socket.bind(0, TURN_LISTEN_IP, send);
  });
}

async function killAndWait(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const gone = await Promise.race([
    exited.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 5_000))),
  ]);
  clearTimeout(timer);
  if (!gone) {
    child.kill('SIGKILL');
    await exited;
  }
}
