// What a channel handler gets from its session: the job, the send queue bound to its channel,
// error reporting, and an abort signal for the channel's life. One handler per channel kind.
import type { VerifiedGrant } from '../../grants/index.js';
import type { ChannelLabel } from '../../grants/index.js';
import type { Logger } from '../../log/index.js';
import type { AnyAgentFrame, ClientFrame } from '../frames.js';
import type { SessionJob } from '../job-access.js';
import type { Priority } from '../send-queue.js';

export interface SessionLimits {
  sendQueueBytes: number;
  chunkBytes: number;
  sourceMaxBytes: number;
}

export interface ChannelContext {
  readonly label: ChannelLabel;
  readonly sessionId: string;
  readonly job: SessionJob;
  readonly grant: VerifiedGrant;
  readonly limits: SessionLimits;
  readonly log: Logger;
  /** Aborted when the channel or its session closes. */
  readonly signal: AbortSignal;
  /** Largest binary message for this channel: min(CHUNK_BYTES, maxMessageSize()). */
  maxBinary(): number;
  /** A JSON frame through the session's send queue; rejects once the channel closed. */
  sendFrame(frame: AnyAgentFrame, priority?: Priority): Promise<void>;
  /** A binary message (≤ maxBinary()) through the send queue. */
  sendBinary(data: Buffer, priority: Priority): Promise<void>;
  /** Fire and forget: a frame whose loss on a closing channel does not matter. */
  post(frame: AnyAgentFrame): void;
  /** An `error` frame (rate-limited per session; past the rate they are dropped and counted). */
  sendError(err: { code: string; message: string }): void;
  /** Malformed input: an AEGIS_ERR_PROTOCOL error frame, counted toward the session's limit. */
  protocolError(reason: string): void;
}

export interface ChannelHandler<L extends ChannelLabel = ChannelLabel> {
  /** The channel is open (called once). */
  open(): void;
  frame(frame: ClientFrame<L>): void;
  /** Binary input; absent = binary messages are a protocol error on this channel. */
  binary?: (data: Buffer) => void;
  /** Largest binary message accepted (bytes); larger ones are a protocol error. */
  readonly maxBinaryIn?: number;
  /** The channel closed (called once): cancel readers, abort uploads. */
  closed(): void;
}

export type HandlerFactory<L extends ChannelLabel> = (ctx: ChannelContext) => ChannelHandler<L>;

/** Message of an unknown thrown value, for an error frame. */
export function wireError(err: unknown): { code: string; message: string } {
  if (
    typeof err === 'object' &&
    err !== null &&
    'code' in err &&
    typeof err.code === 'string' &&
    err.code.startsWith('AEGIS_ERR_') &&
    err instanceof Error
  ) {
    return { code: err.code, message: err.message };
  }
  return {
    code: 'AEGIS_ERR_INTERNAL',
    message: `the agent failed: ${err instanceof Error ? err.message : String(err)}`,
  };
}
