// One client session: the grant it was opened with, its job, its peer connection(s), every data
// channel the client opened (kept referenced for the session's life: an unreferenced
// DataChannel is garbage-collected and its destructor closes it), the one send queue they
// share, and the protocol-error accounting. Closing a session closes all of it, once.
//
// A session holds a list of peer connections so a second one (bulk transfer, signalled over
// `control`) can join later; today every session has exactly one.
import type { DataChannel, PeerConnection } from 'node-datachannel';
import type { ChannelLabel, VerifiedGrant } from '../grants/index.js';
import type { Logger } from '../log/index.js';
import type { ChannelContext, ChannelHandler, SessionLimits } from './channels/context.js';
import type { AnyAgentFrame } from './frames.js';
import type { SessionJob } from './job-access.js';
import { attempt } from './safe.js';
import type { SendQueue } from './send-queue.js';

/** `rejected` frames kept until `control` opens; beyond it the oldest are logged only. */
const MAX_PENDING_REJECTED = 16;
/** Time the last error frame gets to leave before a session closed for bad input is torn down. */
const PROTOCOL_CLOSE_GRACE_MS = 250;
/** Error frames a session may send: a burst of this many, refilled at this many a second. */
const ERROR_FRAME_BURST = 10;
const ERROR_FRAMES_PER_S = 10;

export interface OpenChannel {
  readonly label: ChannelLabel;
  readonly dc: DataChannel;
  readonly ctx: ChannelContext;
  readonly handler: ChannelHandler;
  readonly abort: AbortController;
}

export interface SessionOptions {
  id: string;
  job: SessionJob;
  grant: VerifiedGrant;
  limits: SessionLimits;
  log: Logger;
  queue: SendQueue;
  /** Malformed messages tolerated in one session before it is closed with AEGIS_ERR_PROTOCOL. */
  maxProtocolErrors: number;
  /** Called once when the session closed (the manager sends session.closed). */
  onClosed: (session: Session, reason: string) => void;
}

export class Session {
  readonly id: string;
  readonly job: SessionJob;
  readonly grant: VerifiedGrant;
  readonly limits: SessionLimits;
  readonly log: Logger;
  readonly queue: SendQueue;
  readonly openedAt = Date.now();
  readonly #maxProtocolErrors: number;
  readonly #onClosed: SessionOptions['onClosed'];
  readonly #peers: PeerConnection[] = [];
  readonly #channels = new Set<DataChannel>();
  readonly #open = new Map<ChannelLabel, OpenChannel>();
  readonly #pendingRejected: AnyAgentFrame[] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  #protocolErrors = 0;
  #droppedErrorFrames = 0;
  #errorTokens = ERROR_FRAME_BURST;
  #tokensAt = Date.now();
  #closeReason: string | undefined;
  #closing = false;

  constructor(options: SessionOptions) {
    this.id = options.id;
    this.job = options.job;
    this.grant = options.grant;
    this.limits = options.limits;
    this.log = options.log;
    this.queue = options.queue;
    this.#maxProtocolErrors = options.maxProtocolErrors;
    this.#onClosed = options.onClosed;
  }

  get closed(): boolean {
    return this.#closeReason !== undefined;
  }

  /** Closed, or about to close: incoming messages are ignored. */
  get closing(): boolean {
    return this.#closing || this.#closeReason !== undefined;
  }

  get closeReason(): string | undefined {
    return this.#closeReason;
  }

  get protocolErrors(): number {
    return this.#protocolErrors;
  }

  get droppedErrorFrames(): number {
    return this.#droppedErrorFrames;
  }

  addPeer(pc: PeerConnection): void {
    this.#peers.push(pc);
  }

  /** Keeps `dc` referenced until the session closes. */
  holdChannel(dc: DataChannel): void {
    this.#channels.add(dc);
  }

  /** `dc` closed: nothing needs to keep it alive any more. */
  releaseChannel(dc: DataChannel): void {
    this.#channels.delete(dc);
  }

  /** A timer that dies with the session. */
  timer(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  clearTimers(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  openChannel(label: ChannelLabel): OpenChannel | undefined {
    return this.#open.get(label);
  }

  openLabels(): ChannelLabel[] {
    return [...this.#open.keys()];
  }

  /** Registers an accepted channel under its label; false when the label is taken. */
  claimLabel(entry: OpenChannel): boolean {
    if (this.#open.has(entry.label)) return false;
    this.#open.set(entry.label, entry);
    return true;
  }

  /** The channel closed: its label may be opened again. */
  releaseLabel(entry: OpenChannel): void {
    if (this.#open.get(entry.label) === entry) this.#open.delete(entry.label);
  }

  /** A `rejected` frame for `control`: sent now when it is open, else once it opens. */
  notifyRejected(frame: AnyAgentFrame): void {
    const control = this.#open.get('control');
    if (control && control.dc.isOpen()) {
      control.ctx.post(frame);
      return;
    }
    if (this.#pendingRejected.length >= MAX_PENDING_REJECTED) this.#pendingRejected.shift();
    this.#pendingRejected.push(frame);
  }

  /** `control` opened (after its hello): the rejections it missed. */
  flushRejected(control: ChannelContext): void {
    for (const frame of this.#pendingRejected.splice(0)) control.post(frame);
  }

  /** Token bucket for error frames, so a flood of bad input cannot turn into a flood of answers. */
  allowErrorFrame(): boolean {
    const now = Date.now();
    this.#errorTokens = Math.min(
      ERROR_FRAME_BURST,
      this.#errorTokens + ((now - this.#tokensAt) / 1000) * ERROR_FRAMES_PER_S,
    );
    this.#tokensAt = now;
    if (this.#errorTokens < 1) {
      this.#droppedErrorFrames++;
      return false;
    }
    this.#errorTokens -= 1;
    return true;
  }

  /** Counts one malformed message; past the limit the session closes with AEGIS_ERR_PROTOCOL. */
  countProtocolError(label: string, reason: string): boolean {
    this.#protocolErrors++;
    if (this.#protocolErrors === 1 || this.#protocolErrors % 50 === 0) {
      this.log.warn(
        { code: 'AEGIS_ERR_PROTOCOL', channel: label, count: this.#protocolErrors },
        `malformed message: ${reason}`,
      );
    }
    if (this.#protocolErrors >= this.#maxProtocolErrors) {
      this.#closeForProtocol();
      return false;
    }
    return true;
  }

  /**
   * Stops reading, tells the client why on `control`, and closes a moment later: closing the
   * channels at once would discard that frame (and the error frames still queued) unsent.
   */
  #closeForProtocol(): void {
    if (this.closing) return;
    this.#closing = true;
    const control = this.#open.get('control');
    if (control?.dc.isOpen()) {
      // Straight to the channel: the send queue may be full and closes with the session.
      attempt(this.log, 'protocol close frame', () =>
        control.dc.sendMessage(
          JSON.stringify({
            type: 'error',
            code: 'AEGIS_ERR_PROTOCOL',
            message: `The session sent ${this.#protocolErrors} malformed messages and is closed; fix the client.`,
          }),
        ),
      );
    }
    this.timer(PROTOCOL_CLOSE_GRACE_MS, () => this.close('AEGIS_ERR_PROTOCOL'));
  }

  /** Closes every channel and peer connection of the session; idempotent. */
  close(reason: string): void {
    if (this.#closeReason !== undefined) return;
    this.#closeReason = reason;
    this.clearTimers();
    for (const entry of this.#open.values()) {
      entry.abort.abort();
      try {
        entry.handler.closed();
      } catch (err) {
        this.log.error({ err, channel: entry.label }, 'channel handler failed to close');
      }
    }
    this.#open.clear();
    this.queue.close(`the session closed: ${reason}`);
    for (const dc of this.#channels) attempt(this.log, 'dc.close', () => dc.close());
    for (const pc of this.#peers) attempt(this.log, 'pc.close', () => pc.close());
    this.#channels.clear();
    this.#peers.length = 0;
    this.#pendingRejected.length = 0;
    this.log.info(
      { session_id: this.id, job_id: this.job.jobId, reason, ms: Date.now() - this.openedAt },
      'session closed',
    );
    this.#onClosed(this, reason);
  }
}
