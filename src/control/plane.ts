// The seam between the daemon and the control-plane link: the daemon depends on this interface
// only, so it can be driven by the real link over loopback in tests, or by anything else that
// keeps the same promises (durable job reports, best-effort everything else).
import type { AgentMessage, ControlMessage, IceServer, Msg } from './messages.js';
import type { JobReport } from './outbox.js';

/** What the daemon supplies for `hello` on every connect; the link adds type, protocol and agent_id. */
export type HelloInfo = Omit<Msg<AgentMessage, 'hello'>, 'type' | 'protocol' | 'agent_id'>;
/** What the daemon supplies for each `heartbeat`. */
export type HeartbeatInfo = Omit<Msg<AgentMessage, 'heartbeat'>, 'type'>;
/** Frames that may be lost with a connection: the control plane re-offers, the client retries. */
export type NonDurableAgentFrame = Msg<
  AgentMessage,
  | 'job.claim'
  | 'toolchains'
  | 'status'
  | 'session.answer'
  | 'session.candidate'
  | 'session.rejected'
  | 'session.closed'
>;
export type WelcomeFrame = Msg<ControlMessage, 'welcome'>;
/** Frames handed to the daemon: everything but `welcome` and `ack`, which the link consumes. */
export type InboundMessage = Exclude<ControlMessage, Msg<ControlMessage, 'welcome' | 'ack'>>;

export interface ControlPlane {
  /** Begin connecting (after loading the outbox), and keep reconnecting with backoff until stop(). */
  start(): void;
  /** No more reconnects; close the socket with 1000 and the outbox; resolves once both are closed. */
  stop(): Promise<void>;
  /** True between `welcome` and the socket's close. */
  readonly connected: boolean;
  /** server − local clock in ms, measured at the last `welcome`; undefined before the first. */
  readonly skewMs: number | undefined;
  /** ICE servers from the last `welcome` (fallback when a `session.offer` carries none). */
  readonly iceServers: readonly IceServer[];
  /** Epoch ms of the last heartbeat sent; undefined before the first. */
  readonly lastHeartbeatAt: number | undefined;
  /** Epoch ms of the last frame or pong received from the control plane. */
  readonly lastSeenAt: number | undefined;
  /**
   * Durable: gives the update the next seq, persists it, then sends it when connected; it is
   * re-sent after every reconnect until acked. Resolves once on disk; rejects (AegisError) only
   * when it could not be persisted or does not fit the protocol.
   */
  report(update: JobReport): Promise<void>;
  /** Best effort: sends now, or returns false (frame dropped) when not connected or backed up. */
  send(frame: NonDurableAgentFrame): boolean;
  /** Reported updates the control plane has not acked yet (they are on disk either way). */
  readonly unacknowledged: number;
  /** Resolves true once every reported update is acked, false after `timeoutMs` (shutdown). */
  allAcknowledged(timeoutMs: number): Promise<boolean>;
}
