// The session's bounded send queue (PROTOCOL §3). One budget, SEND_QUEUE_BYTES, over the SUM
// of bufferedAmount() of all the session's channels: node-datachannel queues without limit
// behind sendMessage (node-datachannel#159), so this budget is the only bound. A sender that
// would exceed it waits: no message is dropped, and JavaScript holds at most one message per
// waiting sender (every producer awaits its send before reading more).
//
// Responsiveness: while a channel that needs it (the terminal, `pty`) is open, bulk senders
// (artifact downloads, log catch-up) may only fill the budget up to `budget − reserve`; waiting
// interactive senders (control, pty) are always served first. So a terminal echo always finds
// room while a download runs, and a download without a terminal gets the whole budget (the
// reserve cost a quarter of the loopback throughput when it was held for nothing). libdatachannel still has
// one FIFO per peer connection below this queue (WEBRTC-NOTES), which the reserve keeps short.
import { AegisError } from '../errors.js';

export type Priority = 'interactive' | 'bulk';

/** What the queue needs of a data channel (node-datachannel's DataChannel has it all). */
export interface QueueChannel {
  getLabel(): string;
  bufferedAmount(): number;
  maxMessageSize(): number;
  isOpen(): boolean;
  sendMessage(text: string): boolean;
  sendMessageBinary(data: Buffer | Uint8Array): boolean;
  setBufferedAmountLowThreshold(bytes: number): void;
}

export interface SendQueueOptions {
  /** SEND_QUEUE_BYTES. */
  budget: number;
  /** CHUNK_BYTES: the largest binary message. */
  chunkBytes: number;
  /** Held back from bulk senders; default min(32 KiB, budget / 4). */
  reserve?: number;
  /** The fallback wake-up while senders wait: onBufferedAmountLow only fires on a downward crossing (node-datachannel#204). */
  pollMs?: number;
  /** Most senders waiting on one channel; past it send() refuses (a client flooding requests). */
  maxWaitersPerChannel?: number;
  metrics?: {
    bytesSent(kind: string, n: number): void;
    queueWait(kind: string, ms: number): void;
  };
}

export interface SendQueueStats {
  /** Highest sum of bufferedAmount() seen right after a send. */
  maxInFlight: number;
  /** Sends that had to wait for room. */
  waits: number;
  sends: number;
  bytes: number;
}

interface Waiter {
  channel: QueueChannel;
  data: string | Buffer;
  size: number;
  priority: Priority;
  since: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class SendQueue {
  readonly budget: number;
  readonly reserve: number;
  readonly chunkBytes: number;
  readonly #pollMs: number;
  readonly #maxWaiters: number;
  readonly #metrics: SendQueueOptions['metrics'];
  readonly #channels = new Set<QueueChannel>();
  /** Open channels for whose sake bulk senders leave the reserve free. */
  readonly #reserveHolders = new Set<QueueChannel>();
  readonly #interactive: Waiter[] = [];
  readonly #bulk: Waiter[] = [];
  #timer: NodeJS.Timeout | undefined;
  #closed: Error | undefined;
  readonly #stats: SendQueueStats = { maxInFlight: 0, waits: 0, sends: 0, bytes: 0 };

  constructor(options: SendQueueOptions) {
    this.budget = options.budget;
    this.chunkBytes = options.chunkBytes;
    this.reserve = options.reserve ?? Math.min(32 * 1024, Math.floor(options.budget / 4));
    this.#pollMs = options.pollMs ?? 5;
    this.#maxWaiters = options.maxWaitersPerChannel ?? 64;
    this.#metrics = options.metrics;
  }

  /**
   * Counts `channel` in the budget. The caller routes the channel's onBufferedAmountLow to
   * wake() (one callback per event in node-datachannel, and the router owns them).
   */
  attach(channel: QueueChannel, options: { holdsReserve?: boolean } = {}): void {
    this.#channels.add(channel);
    if (options.holdsReserve) this.#reserveHolders.add(channel);
    // Half the budget: the crossing that fires it is one where a waiting sender may fit again.
    channel.setBufferedAmountLowThreshold(Math.floor(this.budget / 2));
  }

  /** Stops counting `channel`; its waiting senders fail with `reason`. */
  detach(channel: QueueChannel, reason = 'the channel closed'): void {
    this.#channels.delete(channel);
    this.#reserveHolders.delete(channel);
    const err = new AegisError('AEGIS_ERR_CANCELED', reason);
    for (const list of [this.#interactive, this.#bulk]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const w = list[i] as Waiter;
        if (w.channel === channel) {
          list.splice(i, 1);
          w.reject(err);
        }
      }
    }
    this.wake();
  }

  /** Ends the queue: every waiting and later send fails. */
  close(reason = 'the session closed'): void {
    if (this.#closed) return;
    this.#closed = new AegisError('AEGIS_ERR_CANCELED', reason);
    for (const w of [...this.#interactive.splice(0), ...this.#bulk.splice(0)])
      w.reject(this.#closed);
    this.#channels.clear();
    this.#reserveHolders.clear();
    this.#stopTimer();
  }

  /** The sum of bufferedAmount() over the session's channels, now. */
  inFlight(): number {
    let sum = 0;
    for (const ch of this.#channels) {
      try {
        sum += ch.bufferedAmount();
      } catch {
        // A channel closing under us holds nothing any more.
      }
    }
    return sum;
  }

  stats(): Readonly<SendQueueStats> {
    return { ...this.#stats };
  }

  /** Waiting senders (tests, metrics). */
  waiting(): number {
    return this.#interactive.length + this.#bulk.length;
  }

  /**
   * Resolves once `data` was handed to the channel. Binary data must be ≤ CHUNK_BYTES and ≤
   * the channel's maxMessageSize(); callers chunk. Rejects when the channel or session closes.
   */
  send(channel: QueueChannel, data: string | Buffer, priority: Priority): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closed);
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    if (typeof data !== 'string' && size > Math.min(this.chunkBytes, channel.maxMessageSize())) {
      return Promise.reject(
        new AegisError(
          'AEGIS_ERR_INTERNAL',
          `a ${size}-byte binary message exceeds CHUNK_BYTES or the channel's max message size`,
        ),
      );
    }
    const queue = priority === 'interactive' ? this.#interactive : this.#bulk;
    // Bulk senders also yield to waiting interactive ones; FIFO within a priority keeps each
    // channel's messages in order.
    const ahead =
      priority === 'interactive' ? queue.length : queue.length + this.#interactive.length;
    if (ahead === 0 && this.#fits(size, priority)) {
      try {
        this.#transmit(channel, data, size, priority, 0);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
    let mine = 0;
    for (const w of queue) if (w.channel === channel) mine++;
    if (mine >= this.#maxWaiters) {
      return Promise.reject(
        new AegisError(
          'AEGIS_ERR_PROTOCOL',
          `more than ${this.#maxWaiters} frames wait to be sent on channel ${channel.getLabel()}; send fewer requests at once`,
        ),
      );
    }
    this.#stats.waits++;
    return new Promise<void>((resolve, reject) => {
      queue.push({ channel, data, size, priority, since: Date.now(), resolve, reject });
      this.#startTimer();
    });
  }

  /** Re-checks the room: from onBufferedAmountLow, the fallback timer, and channel changes. */
  wake(): void {
    for (const [list, priority] of [
      [this.#interactive, 'interactive'],
      [this.#bulk, 'bulk'],
    ] as const) {
      for (;;) {
        const w = list[0];
        if (w === undefined || !this.#fits(w.size, priority)) break;
        list.shift();
        try {
          this.#transmit(w.channel, w.data, w.size, priority, Date.now() - w.since);
          w.resolve();
        } catch (err) {
          w.reject(err instanceof Error ? err : new Error(String(err)));
        }
      }
      // Interactive senders still waiting keep bulk ones waiting too.
      if (list === this.#interactive && list.length > 0) break;
    }
    if (this.waiting() === 0) this.#stopTimer();
  }

  #limit(priority: Priority): number {
    if (priority === 'interactive' || this.#reserveHolders.size === 0) return this.budget;
    return this.budget - this.reserve;
  }

  #fits(size: number, priority: Priority): boolean {
    const inFlight = this.inFlight();
    // A frame larger than the whole share still goes once nothing is in flight, or it would
    // wait forever; binary messages are ≤ CHUNK_BYTES, far below it.
    return inFlight === 0 || inFlight + size <= this.#limit(priority);
  }

  #transmit(
    channel: QueueChannel,
    data: string | Buffer,
    size: number,
    priority: Priority,
    waitedMs: number,
  ): void {
    if (!channel.isOpen()) throw new AegisError('AEGIS_ERR_CANCELED', 'the channel closed');
    // false = queued in libdatachannel rather than sent at once: not an error (WEBRTC-NOTES).
    if (typeof data === 'string') channel.sendMessage(data);
    else channel.sendMessageBinary(data);
    const inFlight = this.inFlight();
    if (inFlight > this.#stats.maxInFlight) this.#stats.maxInFlight = inFlight;
    this.#stats.sends++;
    this.#stats.bytes += size;
    const kind = channel.getLabel();
    this.#metrics?.bytesSent(kind, size);
    if (waitedMs > 0 || priority === 'bulk') this.#metrics?.queueWait(kind, waitedMs);
  }

  #startTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.wake(), this.#pollMs);
  }

  #stopTimer(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
