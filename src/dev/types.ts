// The public shapes of the dev control plane: its options, the agent records it keeps, and the
// events it emits so tests can wait on what happened instead of sleeping.
import type { Logger } from '../log/index.js';
import type { IceServer, JobState, Msg, AgentMessage } from '../control/messages.js';
import type { DevStore } from './store.js';
import type { DevTurnOptions } from './turn.js';

export interface DevControlPlaneOptions {
  /** The shared secret agents sign their HS256 connect tokens with (AGENT_AUTH_SECRET). */
  agentAuthSecret: string;
  /** When set, POST /grant/request and /session require `Authorization: Bearer <it>`. */
  mcpAuthSecret?: string;
  /** Exact browser origins allowed by CORS ("https://esphome.cloud"); checked at start. */
  allowedOrigins?: string[];
  /** Default 127.0.0.1: this is a loopback development server. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Sent in `welcome`; also the ping interval (no frame/pong for twice it → terminate). Default 15000. */
  heartbeatIntervalMs?: number;
  /** How long /grant/request waits for the first claim. Default 10000. */
  claimWaitMs?: number;
  /** How long /session waits for the agent's answer or rejection. Default 15000. */
  sessionWaitMs?: number;
  /** Grant lifetime (exp − iat). Default 30. */
  grantTtlS?: number;
  /** Added to this plane's clock (welcome/health server_time, grant iat/exp) to simulate skew. */
  clockOffsetMs?: number;
  /** Returned in welcome and grant responses. Default []. */
  iceServers?: IceServer[];
  /**
   * A TURN relay (coturn `use-auth-secret`): every grant response, and every session offer that
   * brings no `ice_servers`, gets freshly minted time-limited credentials for it. Never in welcome.
   */
  turn?: DevTurnOptions;
  /** Grant `iss`; default the origin the chosen agent used to reach this plane (its Host header). */
  issuer?: string;
  /** Share one store between instances to simulate a restart that keeps the database. */
  store?: DevStore;
  logger?: Logger;
}

/** What the plane knows about an agent; kept after it disconnects (connected: false). */
export interface AgentRecord {
  agent_id: string;
  hostname: string;
  version: string;
  toolchains: Msg<AgentMessage, 'hello'>['toolchains'];
  capacity: { max_jobs: number; running: number };
  running: number;
  draining: boolean;
  connected: boolean;
  last_seen: number;
  connected_at: number;
  labels: Record<string, string>;
  /** The jobs the agent listed in its latest hello. */
  jobs: { job_id: string; state: JobState }[];
  heartbeat?: Omit<Msg<AgentMessage, 'heartbeat'>, 'type'> & { at: number };
  /** http://<Host header of the agent's upgrade request>: the default grant issuer for it. */
  origin: string;
}

export type AppliedUpdate = Omit<Msg<AgentMessage, 'job.update'>, 'type'> & { agent_id: string };

export interface SessionRecord {
  session_id: string;
  agent_id: string;
  job_id: string;
  status: 'offered' | 'answered' | 'rejected' | 'timed_out' | 'failed' | 'closed';
  created_at: number;
  rejection?: { code: string; message: string };
  closed_reason?: string;
  /** Trickled candidates the agent sent (counted, not relayed: answers carry full SDP). */
  candidates: number;
}

/** Event name → its one argument. */
export interface DevEventPayloads {
  'agent.connected': string;
  'agent.disconnected': string;
  'agent.heartbeat': string;
  'agent.changed': string;
  'job.created': { job_id: string; target: string };
  'job.offered': { job_id: string; agent_id: string };
  'job.claimed': { job_id: string; agent_id: string; won: boolean };
  'job.assigned': { job_id: string; agent_id: string };
  'job.unclaimed': { job_id: string; message: string };
  'job.update': AppliedUpdate;
  'job.update.duplicate': { agent_id: string; job_id: string; seq: number };
  'session.offered': { session_id: string; agent_id: string; job_id: string };
  'session.answered': { session_id: string; agent_id: string; sdp: string };
  'session.candidate': { session_id: string; agent_id: string; candidate: string; mid: string };
  'session.rejected': { session_id: string; agent_id: string; code: string; message: string };
  'session.closed': { session_id: string; agent_id: string; reason: string };
  'frame.invalid': { agent_id: string | undefined; type: string | undefined; reason: string };
  'frame.unknown': { agent_id: string | undefined; type: string };
}

export type DevEventName = keyof DevEventPayloads;
export type DevEventMap = { [K in DevEventName]: [DevEventPayloads[K]] };
export type Emit = <K extends DevEventName>(event: K, payload: DevEventPayloads[K]) => void;
