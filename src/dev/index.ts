// The development control plane (PROTOCOL §6): in memory, loopback, for dev-control, the demo
// and tests. Never a production control plane.
export { DevControlPlane, DEFAULTS } from './server.js';
export {
  createDevStore,
  SeqSet,
  type DevStore,
  type JobRecord,
  type JobPhase,
  type JobHistoryEntry,
} from './store.js';
export { idfMatches, canOffer } from './match.js';
export { validateOrigins } from './cors.js';
export { GRANT_TYP, type PublicJwks } from './grants.js';
export { AGENT_TOKEN_AUDIENCE, AGENT_TOKEN_TYP } from './agent-auth.js';
export { AGENT_WS_PATH } from './agents.js';
export type {
  AgentRecord,
  AppliedUpdate,
  DevControlPlaneOptions,
  DevEventName,
  DevEventPayloads,
  SessionRecord,
} from './types.js';
