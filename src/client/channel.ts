// One data channel as the client uses it: agent frames parsed with the protocol schemas and
// queued in order with binary chunks; sends that respect the channel's buffered amount.
import type { DataChannel } from 'node-datachannel';
import { AegisError } from '../errors.js';
import type { ChannelLabel } from '../grants/index.js';
import { parseAgentFrame, type AgentFrame } from '../webrtc/frames.js';

export type Incoming<L extends ChannelLabel> =
  { kind: 'frame'; frame: AgentFrame<L> } | { kind: 'data'; data: Buffer } | { kind: 'closed' };

/** The client's own send budget per channel (the agent bounds what it sends; we bound what we send). */
const SEND_HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;

export class ClientChannel<L extends ChannelLabel> {
  private readonly queue: Incoming<L>[] = [];
  private wake: (() => void) | undefined;
  private closedFlag = false;
  private opened = false;
  private openWaiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  /** Binary and frame handlers that bypass the queue (streaming consumers). */
  onData: ((data: Buffer) => void) | undefined;

  constructor(
    readonly label: L,
    readonly dc: DataChannel,
    private readonly onProtocolError: (reason: string) => void,
  ) {
    dc.setBufferedAmountLowThreshold(LOW_WATER);
    // Every callback body is guarded: an exception inside one aborts the process (node-datachannel#187).
    dc.onOpen(() => this.guard(() => this.markOpen()));
    dc.onClosed(() => this.guard(() => this.push({ kind: 'closed' })));
    dc.onBufferedAmountLow(() => this.guard(() => this.flushDrain()));
    dc.onMessage((msg) =>
      this.guard(() => {
        if (typeof msg === 'string') {
          const parsed = parseAgentFrame(label, msg);
          if (parsed.ok) this.push({ kind: 'frame', frame: parsed.frame });
          else this.onProtocolError(`${label}: ${parsed.reason}`);
        } else {
          const data = Buffer.isBuffer(msg) ? msg : Buffer.from(msg);
          if (this.onData) this.onData(data);
          else this.push({ kind: 'data', data });
        }
      }),
    );
    if (dc.isOpen()) this.markOpen();
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.onProtocolError(`${this.label}: ${(err as Error).message}`);
    }
  }

  private markOpen(): void {
    this.opened = true;
    for (const w of this.openWaiters.splice(0)) w();
  }

  private flushDrain(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }

  private push(item: Incoming<L>): void {
    if (item.kind === 'closed') {
      if (this.closedFlag) return;
      this.closedFlag = true;
      this.flushDrain();
      for (const w of this.openWaiters.splice(0)) w();
    }
    this.queue.push(item);
    this.wake?.();
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  waitOpen(timeoutMs: number): Promise<void> {
    if (this.opened) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new AegisError(
              'AEGIS_ERR_ICE_FAILED',
              `channel ${this.label} did not open within ${timeoutMs} ms`,
            ),
          ),
        timeoutMs,
      );
      this.openWaiters.push(() => {
        clearTimeout(timer);
        if (this.opened) resolve();
        else
          reject(
            new AegisError(
              'AEGIS_ERR_CHANNEL_REJECTED',
              `channel ${this.label} closed before it opened`,
            ),
          );
      });
    });
  }

  /** The next frame, data chunk or close, in arrival order. */
  async next(): Promise<Incoming<L>> {
    for (;;) {
      const item = this.queue.shift();
      if (item) {
        if (item.kind === 'closed') this.queue.unshift(item); // stays closed for later readers
        return item;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }

  /** The next frame of one of `types`; data chunks in between go to `onChunk`. */
  async expect<T extends AgentFrame<L>['type']>(
    types: readonly T[],
    onChunk?: (data: Buffer) => void,
  ): Promise<Extract<AgentFrame<L>, { type: T }>> {
    for (;;) {
      const item = await this.next();
      if (item.kind === 'closed')
        throw new AegisError('AEGIS_ERR_PROTOCOL', `channel ${this.label} closed`);
      if (item.kind === 'data') {
        onChunk?.(item.data);
        continue;
      }
      const f = item.frame as { type: string; code?: string; message?: string };
      if ((types as readonly string[]).includes(f.type))
        return item.frame as Extract<AgentFrame<L>, { type: T }>;
      if (f.type === 'error') throw new AegisError(asCode(f.code), f.message ?? 'error');
    }
  }

  sendJson(frame: Record<string, unknown>): void {
    if (this.closedFlag)
      throw new AegisError('AEGIS_ERR_PROTOCOL', `channel ${this.label} is closed`);
    this.dc.sendMessage(JSON.stringify(frame));
  }

  /** Send bytes, waiting while the channel has more than 1 MiB queued. */
  async sendBinary(data: Buffer): Promise<void> {
    while (!this.closedFlag && this.dc.bufferedAmount() > SEND_HIGH_WATER) {
      await new Promise<void>((resolve) => {
        this.drainWaiters.push(resolve);
        // The low-threshold event fires only on a downward crossing (node-datachannel#204).
        setTimeout(resolve, 50).unref();
      });
    }
    if (this.closedFlag)
      throw new AegisError('AEGIS_ERR_PROTOCOL', `channel ${this.label} closed during a send`);
    this.dc.sendMessageBinary(data);
  }
}

function asCode(code: string | undefined) {
  return (code?.startsWith('AEGIS_ERR_') ? code : 'AEGIS_ERR_PROTOCOL') as ConstructorParameters<
    typeof AegisError
  >[0];
}
