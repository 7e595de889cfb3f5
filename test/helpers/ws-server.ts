// Test harness for the control link: a fake control plane over real loopback HTTP + ws (it
// verifies the agent's real JWT and answers 401 before the upgrade, can inject raw frames, drop
// or silence connections and restart on the same port), a pino sink that parses each log line,
// and a config built by the real loader. Waits are on events with timeouts, never sleeps.
import { EventEmitter, once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  decodeProtectedHeader,
  jwtVerify,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose';
import { WebSocketServer, type WebSocket } from 'ws';
import { loadConfig, type AgentConfig } from '../../src/config/index.js';
import {
  encode,
  parseAgentMessage,
  type AgentMessage,
  type ControlMessage,
  type Msg,
} from '../../src/control/messages.js';
import { createLogger, type Logger } from '../../src/log/index.js';
import {
  ControlLink,
  Outbox,
  type HelloInfo,
  type InboundMessage,
  type WelcomeFrame,
} from '../../src/control/index.js';

/** Resolve with the first truthy value of `check()`, re-checked on every `event` of `emitter`. */
export function waitFor<T>(
  emitter: EventEmitter,
  event: string,
  check: () => T | undefined | false | null,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const first = check();
    if (first) return resolve(first);
    const onEvent = () => {
      const v = check();
      if (!v) return;
      cleanup();
      resolve(v);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
    };
    emitter.on(event, onEvent);
  });
}

// ── log capture ─────────────────────────────────────────────────────────────────────────

export type LogLine = Record<string, unknown> & { level: number; msg?: string; code?: string };

export class LogSink extends EventEmitter {
  readonly raw: string[] = [];
  readonly lines: LogLine[] = [];
  readonly logger: Logger;

  constructor(level = 'debug', secrets: readonly string[] = []) {
    super();
    const destination = {
      write: (s: string) => {
        for (const part of s.split('\n').filter((p) => p !== '')) {
          this.raw.push(part);
          this.lines.push(JSON.parse(part) as LogLine);
        }
        this.emit('line');
      },
    };
    this.logger = createLogger({ level, destination, secrets });
  }

  withCode(code: string, level?: number): LogLine[] {
    return this.lines.filter((l) => l.code === code && (level === undefined || l.level === level));
  }

  waitForCode(code: string, level?: number, timeoutMs = 10_000): Promise<LogLine> {
    return waitFor(
      this,
      'line',
      () => this.withCode(code, level)[0],
      `a log line with code ${code}`,
      timeoutMs,
    );
  }
}

// ── config ──────────────────────────────────────────────────────────────────────────────

export function tempDir(prefix = 'aegis-control-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function testConfig(opts: {
  port: number;
  secret: string;
  agentId: string;
  stateDir?: string;
}): AgentConfig {
  const root = tempDir();
  return loadConfig({
    env: {
      CONTROL_BASE_URL: `http://127.0.0.1:${opts.port}`,
      AGENT_AUTH_SECRET: opts.secret,
      AGENT_ID: opts.agentId,
      STATE_DIR: opts.stateDir ?? path.join(root, 'state'),
      CACHE_DIR: path.join(root, 'cache'),
      WORK_DIR: path.join(root, 'work'),
      TOOLCHAINS_DIR: path.join(root, 'toolchains'),
    },
  });
}

// ── the fake control plane ──────────────────────────────────────────────────────────────

export interface VerifiedToken {
  header: ProtectedHeaderParameters;
  payload: JWTPayload;
}

type JobUpdateFrame = Msg<AgentMessage, 'job.update'>;

/** Emits 'change' on every observable event: upgrade, connection, frame, close, ping. */
export class FakeControlPlane extends EventEmitter {
  port = 0;
  upgrades = 0;
  rejected = 0;
  connections = 0;
  pings = 0;
  readonly tokens: VerifiedToken[] = [];
  readonly frames: AgentMessage[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  /** Updates applied once each, de-duplicated by seq like the real control plane. */
  readonly applied: JobUpdateFrame[] = [];
  /** How many times each seq arrived. */
  readonly received = new Map<number, number>();
  /** Frames from the agent that failed the agent schema (must stay empty). */
  readonly badFrames: string[] = [];
  current: WebSocket | undefined;

  // behaviour, changeable between steps
  autoWelcome = true;
  autoAck = true;
  answerPings = true;
  heartbeatIntervalMs = 30_000;
  serverTimeOffsetMs = 0;

  private server: http.Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly sockets = new Set<WebSocket>();
  private readonly rawSockets = new Set<Socket>();

  constructor(
    private readonly secret: string,
    private readonly agentId: string,
  ) {
    super();
  }

  async listen(port = this.port): Promise<void> {
    this.wss = new WebSocketServer({ noServer: true, autoPong: false });
    const server = http.createServer((_req, res) => res.writeHead(404).end());
    server.on('connection', (s) => {
      this.rawSockets.add(s);
      s.on('close', () => this.rawSockets.delete(s));
    });
    server.on('upgrade', (req, socket, head) => {
      this.upgrades += 1;
      socket.on('error', () => undefined);
      this.emit('change');
      void this.authorize(req).then((ok) => {
        if (!ok) {
          this.rejected += 1;
          socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
          this.emit('change');
          return;
        }
        this.wss?.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
      });
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stop listening and cut every connection (the control plane "goes away"). */
  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    for (const s of this.rawSockets) s.destroy();
    this.wss?.close();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  send(msg: ControlMessage): void {
    this.current?.send(encode(msg));
  }

  sendRaw(data: string | Buffer, binary = false): void {
    this.current?.send(data, { binary });
  }

  /** Cut the current connection without a closing handshake. */
  drop(): void {
    this.current?.terminate();
  }

  framesOf<T extends AgentMessage['type']>(type: T): Msg<AgentMessage, T>[] {
    return this.frames.filter((f): f is Msg<AgentMessage, T> => f.type === type);
  }

  until<T>(
    check: () => T | undefined | false | null,
    what: string,
    timeoutMs = 10_000,
  ): Promise<T> {
    return waitFor(this, 'change', check, what, timeoutMs);
  }

  private async authorize(req: http.IncomingMessage): Promise<boolean> {
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m?.[1]) return false;
    try {
      const { payload } = await jwtVerify(m[1], new TextEncoder().encode(this.secret), {
        algorithms: ['HS256'],
        audience: 'aegis-control',
        typ: 'aegis-agent+jwt',
        subject: this.agentId,
      });
      this.tokens.push({ header: decodeProtectedHeader(m[1]), payload });
      return true;
    } catch {
      return false;
    }
  }

  private onConnection(ws: WebSocket): void {
    this.connections += 1;
    this.sockets.add(ws);
    this.current = ws;
    ws.on('ping', (data) => {
      this.pings += 1;
      if (this.answerPings) ws.pong(data);
      this.emit('change');
    });
    ws.on('message', (data: Buffer) => {
      const r = parseAgentMessage(data);
      if (r.kind !== 'ok') {
        this.badFrames.push(JSON.stringify(r));
        this.emit('change');
        return;
      }
      const msg = r.message;
      this.frames.push(msg);
      if (msg.type === 'hello' && this.autoWelcome) {
        this.send({
          type: 'welcome',
          agent_id: msg.agent_id,
          server_time: Date.now() + this.serverTimeOffsetMs,
          heartbeat_interval_ms: this.heartbeatIntervalMs,
          ice_servers: [{ urls: 'stun:stun.example.org:3478' }],
        });
      }
      if (msg.type === 'job.update') {
        this.received.set(msg.seq, (this.received.get(msg.seq) ?? 0) + 1);
        if (!this.applied.some((u) => u.seq === msg.seq)) this.applied.push(msg);
        if (this.autoAck) this.send({ type: 'ack', seq: msg.seq });
      }
      this.emit('change');
    });
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => {
      this.sockets.delete(ws);
      if (this.current === ws) this.current = undefined;
      this.closes.push({ code, reason: reason.toString() });
      this.emit('change');
    });
    this.emit('change');
  }
}

// ── a link wired to the fake control plane ─────────────────────────────────────────────

export interface LinkHarness {
  link: ControlLink;
  sink: LogSink;
  config: AgentConfig;
  outbox: Outbox;
  /** Emits 'change' on every callback below. */
  events: EventEmitter;
  messages: InboundMessage[];
  welcomes: WelcomeFrame[];
  disconnects: string[];
}

export const TEST_HELLO: HelloInfo = {
  version: '0.1.0-test',
  hostname: 'test-host',
  toolchains: [{ id: 'idf-5.3.1', idf_version: '5.3.1', targets: ['esp32', 'esp32c3'] }],
  capacity: { max_jobs: 2, running: 0 },
  jobs: [],
  labels: { site: 'lab' },
  draining: false,
};

/** The real outbox, announcing each recorded ack so tests can wait for it. */
class ObservedOutbox extends Outbox {
  constructor(
    dir: string,
    private readonly events: EventEmitter,
  ) {
    super(dir);
  }

  override async ack(seq: number): Promise<void> {
    await super.ack(seq);
    this.events.emit('change');
  }
}

export function makeLink(
  server: FakeControlPlane,
  opts: {
    secret: string;
    agentId: string;
    stateDir?: string;
    random?: () => number;
    onMessage?: (msg: InboundMessage) => void;
    port?: number;
    welcomeTimeoutMs?: number;
  },
): LinkHarness {
  const config = testConfig({
    port: opts.port ?? server.port,
    secret: opts.secret,
    agentId: opts.agentId,
    ...(opts.stateDir ? { stateDir: opts.stateDir } : {}),
  });
  // No value-scrubbing secrets here: the tests must see it if the link ever logged the secret.
  const sink = new LogSink('debug');
  const events = new EventEmitter();
  const messages: InboundMessage[] = [];
  const welcomes: WelcomeFrame[] = [];
  const disconnects: string[] = [];
  const outbox = new ObservedOutbox(config.stateDir, events);
  const link = new ControlLink({
    config,
    log: sink.logger,
    outbox,
    hello: () => TEST_HELLO,
    heartbeat: () => ({ running: 0, load1: 0.5, disk_free_bytes: 1e9, uptime_s: 10 }),
    onMessage: (msg) => {
      messages.push(msg);
      events.emit('change');
      // Pass the handler's return value through, so an async handler's promise reaches the link.
      return opts.onMessage?.(msg);
    },
    onConnected: (w) => {
      welcomes.push(w);
      events.emit('change');
    },
    onDisconnected: (reason) => {
      disconnects.push(reason);
      events.emit('change');
    },
    ...(opts.random ? { random: opts.random } : {}),
    ...(opts.welcomeTimeoutMs ? { welcomeTimeoutMs: opts.welcomeTimeoutMs } : {}),
  });
  return { link, sink, config, outbox, events, messages, welcomes, disconnects };
}
