// One connection attempt of the control link and, once welcomed, one connection: the ws socket
// and its options, hello → welcome within a deadline, clock skew at welcome, liveness, and a
// single `closed` report saying how it ended. Reconnect policy and logging stay in link.ts.
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { Logger } from '../log/index.js';
import {
  describeConnectError,
  describeHttpRefusal,
  type ConnectFailure,
  type ConnectTarget,
} from './backoff.js';
import { DropLog, routeFrame } from './link-inbound.js';
import { Liveness } from './link-liveness.js';
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from './messages.js';
import type { InboundMessage, WelcomeFrame } from './plane.js';
import { measureSkew } from './skew.js';

/** Time for TCP + TLS + HTTP upgrade (ws' handshakeTimeout). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Time from `hello` to `welcome` before the attempt counts as failed. */
export const WELCOME_TIMEOUT_MS = 10_000;

export interface ConnectionHooks {
  /** The encoded hello frame; may throw (the attempt then fails). */
  hello(): string;
  /** The encoded heartbeat frame, or undefined to send the ping alone. */
  heartbeat(): string | undefined;
  welcome(w: WelcomeFrame, skewMs: number): void;
  ack(seq: number): void;
  deliver(msg: InboundMessage): void;
  /** A frame or pong arrived. */
  seen(): void;
  /** Called exactly once, when the socket has closed. */
  closed(c: ClosedConnection): void;
}

export interface ClosedConnection {
  code: number;
  /** How long it was up after welcome; undefined when it never got there. */
  upMs: number | undefined;
  /** Why the attempt failed (only when it never got a welcome). */
  failure: ConnectFailure;
  /** Why an established connection ended, in words. */
  reason: string;
}

export interface ConnectionOptions {
  url: string;
  target: ConnectTarget;
  authorization: string;
  welcomeTimeoutMs: number;
  log: Logger;
  hooks: ConnectionHooks;
}

export class Connection {
  private readonly ws: WebSocket;
  private readonly hooks: ConnectionHooks;
  private failure: ConnectFailure | undefined;
  private helloSentAt: number | undefined;
  private upSince: number | undefined;
  private welcomeTimer: NodeJS.Timeout | undefined;
  private liveness: Liveness | undefined;
  private dropReason: string | undefined;

  constructor(private readonly opts: ConnectionOptions) {
    this.hooks = opts.hooks;
    this.ws = new WebSocket(opts.url, {
      headers: { authorization: opts.authorization },
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      perMessageDeflate: false,
      followRedirects: false,
    });
    const ws = this.ws;
    ws.on('unexpected-response', (_req, res) => {
      this.failure ??= describeHttpRefusal(res.statusCode ?? 0, opts.target);
      res.resume();
      ws.terminate(); // ws then emits error + close
    });
    ws.on('open', () => this.onOpen());
    const drops = new DropLog(opts.log);
    ws.on('message', (data, isBinary) => {
      this.alive();
      routeFrame(data, isBinary, {
        log: opts.log,
        drops,
        welcome: (w) => this.onWelcome(w),
        ack: (seq) => this.hooks.ack(seq),
        deliver: (msg) => this.hooks.deliver(msg),
      });
    });
    ws.on('pong', () => this.alive());
    ws.on('ping', () => this.alive());
    ws.on('error', (err) => this.onError(err));
    ws.on('close', (code, reason) => {
      drops.flush();
      this.onClose(code, reason.toString('utf8'));
    });
  }

  /** Welcomed and the socket still open: frames may be sent. */
  get ready(): boolean {
    return this.upSince !== undefined && this.ws.readyState === WebSocket.OPEN;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(data: string): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(data);
    return true;
  }

  /** Close with 1000; resolves on the socket's close, cutting it after `graceMs`. */
  async close(graceMs: number): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => this.ws.once('close', () => resolve()));
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(1000, 'agent stopping');
    const guard = setTimeout(() => this.ws.terminate(), graceMs).unref();
    await closed;
    clearTimeout(guard);
  }

  private onOpen(): void {
    let hello: string;
    try {
      hello = this.hooks.hello();
    } catch (err) {
      this.opts.log.error(
        { code: 'AEGIS_ERR_INTERNAL', err },
        'building the hello frame failed; dropping this connection',
      );
      this.failure = {
        code: 'AEGIS_ERR_CONTROL_UNREACHABLE',
        kind: 'other',
        message: 'the agent could not build its hello frame',
      };
      this.ws.terminate();
      return;
    }
    this.helloSentAt = Date.now();
    this.ws.send(hello);
    const ms = this.opts.welcomeTimeoutMs;
    this.welcomeTimer = setTimeout(() => {
      const { host, port } = this.opts.target;
      this.failure ??= {
        code: 'AEGIS_ERR_CONTROL_UNREACHABLE',
        kind: 'timeout',
        message: `${host}:${port} accepted the WebSocket but sent no welcome within ${ms} ms: is CONTROL_BASE_URL the control plane, speaking protocol ${PROTOCOL_VERSION}?`,
      };
      this.ws.terminate();
    }, ms).unref();
  }

  private onWelcome(w: WelcomeFrame): void {
    if (this.upSince !== undefined) {
      this.opts.log.debug('second welcome on one connection ignored');
      return;
    }
    clearTimeout(this.welcomeTimer);
    const now = Date.now();
    this.upSince = performance.now();
    this.liveness = new Liveness(w.heartbeat_interval_ms, {
      beat: () => this.beat(),
      dead: (ms) => this.onSilent(ms),
    });
    this.hooks.welcome(w, measureSkew(this.helloSentAt ?? now, now, w.server_time));
    // Heartbeats start after the link flushed the outbox in welcome().
    this.liveness.start();
  }

  private beat(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    const frame = this.hooks.heartbeat();
    if (frame !== undefined) this.ws.send(frame);
    this.ws.ping();
  }

  private onSilent(silentMs: number): void {
    this.dropReason = `no frame or pong for ${silentMs} ms`;
    this.opts.log.warn(
      { code: 'AEGIS_ERR_CONTROL_UNREACHABLE', silent_ms: silentMs },
      `the control plane sent nothing for ${silentMs} ms (two heartbeat intervals): dropping the connection and reconnecting`,
    );
    this.ws.terminate();
  }

  private alive(): void {
    this.liveness?.touch();
    this.hooks.seen();
  }

  private onError(err: Error): void {
    if (this.upSince === undefined) {
      this.failure ??= describeConnectError(err, this.opts.target);
      return;
    }
    // ws refuses a bad frame (too big, bad UTF-8, bad opcode) with a WS_ERR_* code and closes 1009/1007/1002.
    const wsCode = (err as { code?: unknown }).code;
    if (typeof wsCode === 'string' && wsCode.startsWith('WS_ERR_')) {
      this.opts.log.warn(
        { code: 'AEGIS_ERR_PROTOCOL', ws_code: wsCode, reason: err.message },
        `the control plane sent a frame the agent refuses (${err.message}); reconnecting`,
      );
    } else {
      this.opts.log.debug({ err }, 'control socket error');
    }
    this.dropReason ??= err.message;
  }

  private onClose(code: number, reason: string): void {
    clearTimeout(this.welcomeTimer);
    this.liveness?.stop();
    const { host, port } = this.opts.target;
    const closedWith = `closed with code ${code}${reason ? ` (${reason})` : ''}`;
    this.hooks.closed({
      code,
      upMs: this.upSince === undefined ? undefined : performance.now() - this.upSince,
      failure: this.failure ?? {
        code: 'AEGIS_ERR_CONTROL_UNREACHABLE',
        kind: 'closed',
        message: `${host}:${port} ${closedWith} before welcome`,
      },
      reason: this.dropReason ?? closedWith,
    });
  }
}
