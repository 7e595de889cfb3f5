// The WebRTC side of the agent (PROTOCOL §3–§4): the session manager the daemon drives with
// signaling frames, the interface a job offers to sessions, and the data-channel frames.
export {
  createSessionManager,
  type SessionConfig,
  type SessionManager,
  type SessionManagerOptions,
  type SessionMetrics,
} from './manager.js';
export type { JobDirectory, SessionJob, SourceUpload } from './job-access.js';
export * from './frames.js';
export { iceServerUrls, type IceUrls } from './ice.js';
export { checkChannel } from './router.js';
export {
  SendQueue,
  type Priority,
  type SendQueueOptions,
  type SendQueueStats,
} from './send-queue.js';
export { cleanupNodeDataChannel, initNodeDataChannel } from './ndc.js';
