// Control: the agent's WebSocket link to the control plane — token, hello/welcome, heartbeat and
// liveness, reconnect with backoff, and the durable outbox for job reports. The daemon uses the
// ControlPlane interface; the rest is exported for doctor, tests and the dev control plane.
export type {
  ControlPlane,
  HeartbeatInfo,
  HelloInfo,
  InboundMessage,
  NonDurableAgentFrame,
  WelcomeFrame,
} from './plane.js';
export {
  ControlLink,
  createControlLink,
  SEND_BUFFER_LIMIT_BYTES,
  STOP_GRACE_MS,
  type ControlLinkOptions,
} from './link.js';
export { HANDSHAKE_TIMEOUT_MS, WELCOME_TIMEOUT_MS } from './link-connection.js';
export {
  Outbox,
  OUTBOX_COMPACT_BYTES,
  OUTBOX_FILE,
  type JobReport,
  type JobUpdateFrame,
  type OutboxLoadResult,
} from './outbox.js';
export {
  attemptAfterClose,
  backoffCeiling,
  backoffDelay,
  BACKOFF_BASE_MS,
  BACKOFF_CAP_MS,
  BACKOFF_RESET_AFTER_MS,
  describeConnectError,
  describeHttpRefusal,
  isAuthFailure,
  type ConnectFailure,
  type ConnectFailureKind,
  type ConnectTarget,
} from './backoff.js';
export {
  describeSkew,
  measureSkew,
  SKEW_ERROR_MS,
  SKEW_WARN_MS,
  skewVerdict,
  type SkewVerdict,
} from './skew.js';
export {
  AGENT_TOKEN_AUDIENCE,
  AGENT_TOKEN_TTL_S,
  AGENT_TOKEN_TYP,
  createAgentToken,
  type AgentTokenInput,
} from './token.js';
