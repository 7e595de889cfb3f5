// The agent's one WebSocket to the control plane (PROTOCOL §1), as the daemon sees it: start,
// stop, durable reports, best-effort frames, connection state. This file owns the lifecycle
// and policy (reconnect with backoff, outbox flush on welcome); one socket's mechanics live in
// link-connection.ts. It never throws into the daemon: failures become log lines with a code,
// callbacks run guarded, and every promise it starts is handled.
import type { AgentConfig } from '../config/index.js';
import { controlWsUrl } from '../config/index.js';
import { toAegisError, type AegisError } from '../errors.js';
import type { Logger } from '../log/index.js';
import {
  attemptAfterClose,
  backoffDelay,
  describeConnectError,
  type ConnectTarget,
} from './backoff.js';
import {
  Connection,
  WELCOME_TIMEOUT_MS,
  type ClosedConnection,
  type ConnectionHooks,
} from './link-connection.js';
import { FailureStreak, guarded, loadOutbox, logSkew } from './link-log.js';
import { encode, PROTOCOL_VERSION, type IceServer } from './messages.js';
import { Outbox, type JobReport } from './outbox.js';
import type {
  ControlPlane,
  HeartbeatInfo,
  HelloInfo,
  InboundMessage,
  NonDurableAgentFrame,
  WelcomeFrame,
} from './plane.js';
import { createAgentToken } from './token.js';

/** Time a closing handshake may take in stop() before the socket is cut. */
export const STOP_GRACE_MS = 5_000;
/**
 * Bytes queued in the socket above which best-effort frames are dropped (send() → false) rather
 * than buffered without bound; durable job.update frames are on disk and re-sent on reconnect.
 */
export const SEND_BUFFER_LIMIT_BYTES = 4 * 1024 * 1024;

export interface ControlLinkOptions {
  config: Pick<AgentConfig, 'controlBaseUrl' | 'agentId' | 'agentAuthSecret' | 'stateDir'>;
  log: Logger;
  /** Called on every connect for `hello` (toolchains, capacity, jobs in hand, labels, draining). */
  hello: () => HelloInfo;
  /** Called every heartbeat interval for `heartbeat`. */
  heartbeat: () => HeartbeatInfo;
  /** Every inbound frame except welcome/ack; a throw (or rejection) is logged, never fatal. */
  onMessage: (msg: InboundMessage) => void;
  /** The link is up (after `welcome`, outbox flushed): readiness. */
  onConnected?: (welcome: WelcomeFrame) => void;
  /** The link went down after having been up (reason "stopped" on stop()). */
  onDisconnected?: (reason: string) => void;
  /** Uniform [0, 1) source for backoff jitter; Math.random by default. */
  random?: () => number;
  /** Override of WELCOME_TIMEOUT_MS. */
  welcomeTimeoutMs?: number;
  /** Outbox to use instead of STATE_DIR/control/outbox.jsonl. */
  outbox?: Outbox;
}

export class ControlLink implements ControlPlane {
  private readonly url: string;
  private readonly target: ConnectTarget;
  private readonly log: Logger;
  private readonly outbox: Outbox;
  private readonly random: () => number;
  private readonly streak: FailureStreak;
  private phase: 'idle' | 'running' | 'stopped' = 'idle';
  private conn: Connection | undefined;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private outboxReady: Promise<AegisError | undefined> | undefined;
  private stopping: Promise<void> | undefined;
  private skew: number | undefined;
  private ice: readonly IceServer[] = [];
  private heartbeatAt: number | undefined;
  private seenAt: number | undefined;

  constructor(private readonly opts: ControlLinkOptions) {
    this.url = controlWsUrl(opts.config.controlBaseUrl);
    const u = new URL(this.url);
    this.target = { host: u.hostname, port: u.port || (u.protocol === 'wss:' ? '443' : '80') };
    this.log = opts.log;
    this.outbox = opts.outbox ?? new Outbox(opts.config.stateDir);
    this.random = opts.random ?? Math.random;
    this.streak = new FailureStreak(this.log, this.url);
  }

  get connected(): boolean {
    return this.conn?.ready ?? false;
  }
  get skewMs(): number | undefined {
    return this.skew;
  }
  get iceServers(): readonly IceServer[] {
    return this.ice;
  }
  get lastHeartbeatAt(): number | undefined {
    return this.heartbeatAt;
  }
  get lastSeenAt(): number | undefined {
    return this.seenAt;
  }

  get unacknowledged(): number {
    return this.outbox.pending().length;
  }

  /** Resolves true once every reported update is acked, false after `timeoutMs`. */
  async allAcknowledged(timeoutMs: number): Promise<boolean> {
    await this.ready();
    if (this.unacknowledged === 0) return true;
    return new Promise<boolean>((resolve) => {
      const waiter = (): void => {
        if (this.unacknowledged > 0) return;
        clearTimeout(timer);
        this.ackWaiters.delete(waiter);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.ackWaiters.delete(waiter);
        resolve(false);
      }, timeoutMs);
      this.ackWaiters.add(waiter);
    });
  }

  private readonly ackWaiters = new Set<() => void>();

  private wakeAckWaiters(): void {
    for (const w of [...this.ackWaiters]) w();
  }

  start(): void {
    if (this.phase !== 'idle') return;
    this.phase = 'running';
    // Pending updates must be known before the first welcome flushes them.
    void this.ready().then(() => this.connect());
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  async report(update: JobReport): Promise<void> {
    const problem = await this.ready();
    if (problem) throw problem;
    const frame = await this.outbox.append(update);
    // Not connected: it waits on disk for the flush after the next welcome.
    if (this.conn?.ready) this.conn.send(encode(frame));
  }

  send(frame: NonDurableAgentFrame): boolean {
    const c = this.conn;
    if (!c?.ready) return false;
    if (c.bufferedAmount > SEND_BUFFER_LIMIT_BYTES) {
      this.log.debug(
        { type: frame.type, buffered: c.bufferedAmount },
        'control socket backed up: best-effort frame dropped',
      );
      return false;
    }
    return c.send(encode(frame));
  }

  /** Loads the outbox once; resolves with the reason it is unusable, never rejects. */
  private ready(): Promise<AegisError | undefined> {
    this.outboxReady ??= loadOutbox(this.outbox, this.log);
    return this.outboxReady;
  }

  private async connect(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this.phase !== 'running') return;
    let token: string;
    try {
      token = await createAgentToken({
        agentId: this.opts.config.agentId,
        secret: this.opts.config.agentAuthSecret,
      });
    } catch (err) {
      // Only a missing secret gets here: no attempt can succeed with this config, so stay down.
      const e = toAegisError(err);
      this.log.error({ code: e.code }, e.message);
      return;
    }
    if (this.phase !== 'running') return;
    const ref: { conn?: Connection } = {};
    try {
      // ws opens asynchronously, so no hook can run before `ref` and `this.conn` are set.
      ref.conn = this.conn = new Connection({
        url: this.url,
        target: this.target,
        authorization: `Bearer ${token}`,
        welcomeTimeoutMs: this.opts.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS,
        log: this.log,
        hooks: this.hooksFor(ref),
      });
    } catch (err) {
      this.streak.failed(describeConnectError(err, this.target), this.attempt);
      this.scheduleReconnect(undefined);
    }
  }

  /** Hooks that change link state only while `ref.conn` is still the link's connection. */
  private hooksFor(ref: { conn?: Connection }): ConnectionHooks {
    const live = () => ref.conn !== undefined && ref.conn === this.conn;
    return {
      hello: () =>
        encode({
          ...this.opts.hello(),
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          agent_id: this.opts.config.agentId,
        }),
      heartbeat: () => {
        this.heartbeatAt = Date.now();
        try {
          return encode({ ...this.opts.heartbeat(), type: 'heartbeat' });
        } catch (err) {
          this.log.error(
            { code: 'AEGIS_ERR_INTERNAL', err },
            'building the heartbeat frame failed; sending the ping alone',
          );
          return undefined;
        }
      },
      welcome: (w: WelcomeFrame, skewMs: number) => {
        if (live()) this.onWelcome(w, skewMs);
      },
      ack: (seq: number) => {
        this.outbox
          .ack(seq)
          .then(() => this.wakeAckWaiters())
          .catch((err: unknown) =>
            this.log.error(
              { code: 'AEGIS_ERR_INTERNAL', seq, err },
              'cannot record an ack in the control outbox; the update will be sent again',
            ),
          );
      },
      deliver: (msg: InboundMessage) =>
        guarded(this.log, `onMessage(${msg.type})`, () => this.opts.onMessage(msg)),
      seen: () => {
        this.seenAt = Date.now();
      },
      closed: (c: ClosedConnection) => {
        if (live()) this.onClosed(c);
      },
    };
  }

  private onWelcome(w: WelcomeFrame, skewMs: number): void {
    const id = this.opts.config.agentId;
    if (w.agent_id !== id) {
      this.log.warn(
        {
          code: 'AEGIS_ERR_PROTOCOL',
          type: 'welcome',
          reason: `agent_id ${w.agent_id} is not ${id}`,
        },
        'the control plane welcomed this agent under another id',
      );
    }
    this.skew = skewMs;
    logSkew(this.log, skewMs);
    this.ice = w.ice_servers;
    this.streak.reset();
    this.log.info(
      { url: this.url, agent_id: id, skew_ms: skewMs },
      `connected to control plane ${this.url} as agent ${id}`,
    );
    // Unacked updates first, in seq order, before anything the daemon sends on connect.
    for (const u of this.outbox.pending()) this.conn?.send(encode(u));
    guarded(this.log, 'onConnected', () => this.opts.onConnected?.(w));
  }

  private onClosed(c: ClosedConnection): void {
    this.conn = undefined;
    if (c.upMs !== undefined) {
      const why = this.phase === 'stopped' ? 'stopped' : c.reason;
      if (this.phase === 'running') {
        this.log.info(
          { close_code: c.code, up_ms: Math.round(c.upMs) },
          `disconnected from the control plane (${why}); reconnecting`,
        );
      }
      guarded(this.log, 'onDisconnected', () => this.opts.onDisconnected?.(why));
    } else if (this.phase === 'running') {
      this.streak.failed(c.failure, this.attempt);
    }
    this.scheduleReconnect(c.upMs);
  }

  private scheduleReconnect(upMs: number | undefined): void {
    if (this.phase !== 'running') return;
    this.attempt = attemptAfterClose(this.attempt, upMs);
    const delay = backoffDelay(this.attempt, this.random);
    this.attempt += 1;
    this.log.debug(
      { delay_ms: delay, attempt: this.attempt },
      'control link reconnects after backoff',
    );
    // Not unref'd: while the link runs, waiting to reconnect is work worth keeping the process for.
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  private async shutdown(): Promise<void> {
    this.phase = 'stopped';
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    await this.conn?.close(STOP_GRACE_MS);
    await this.outbox
      .close()
      .catch((err: unknown) => this.log.warn({ err }, 'closing the control outbox failed'));
  }
}

/** The control link as the daemon sees it. */
export function createControlLink(opts: ControlLinkOptions): ControlPlane {
  return new ControlLink(opts);
}
