// The agent ↔ control-plane wire contract (PROTOCOL §1) as zod schemas: the one edge where
// untrusted JSON becomes typed values. Both the agent's link and the dev control plane parse
// with these; nothing past them sees unvalidated JSON.
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;
/** Largest text frame either side accepts (PROTOCOL §1). */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** Ids end up in paths (WORK_DIR/jobs/<job_id>) and logs: a strict alphabet, checked at the edge. */
export const Id = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
    'expected 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)',
  );
export const Target = z
  .string()
  .regex(/^[a-z0-9_]{1,32}$/, 'expected a chip target such as esp32c3');
export const IdfSpec = z
  .string()
  .regex(/^v?\d+(\.\d+){0,2}$/, 'expected an ESP-IDF version spec: 5, 5.3 or 5.3.1');

export const JOB_STATES = [
  'assigned',
  'receiving',
  'building',
  'succeeded',
  'failed',
  'canceled',
  'timed_out',
  'lost',
  'expired',
] as const;
export const JobState = z.enum(JOB_STATES);
export type JobState = z.infer<typeof JobState>;
export const TERMINAL_STATES: ReadonlySet<JobState> = new Set([
  'succeeded',
  'failed',
  'canceled',
  'timed_out',
  'lost',
  'expired',
]);

export const WireToolchain = z.object({
  id: z.string().min(1).max(128),
  idf_version: z.string().regex(/^\d+\.\d+\.\d+$/),
  targets: z.array(Target).max(64),
});

export const WireArtifact = z.object({
  name: z.string().min(1).max(512),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  flash_offset: z.number().int().nonnegative().optional(),
});
export type WireArtifact = z.infer<typeof WireArtifact>;

export const WireError = z.object({
  code: z.string().regex(/^AEGIS_ERR_[A-Z_]+$/),
  message: z.string().max(4096),
});

export const IceServer = z.object({
  urls: z.union([z.string().min(1).max(1024), z.array(z.string().min(1).max(1024)).min(1).max(8)]),
  username: z.string().max(512).optional(),
  credential: z.string().max(512).optional(),
});
export type IceServer = z.infer<typeof IceServer>;

const Sdp = z
  .string()
  .min(1)
  .max(256 * 1024);
const Candidate = z.string().max(2048);

// ── Agent → control plane ────────────────────────────────────────────────────────────────

export const Hello = z.object({
  type: z.literal('hello'),
  protocol: z.literal(PROTOCOL_VERSION),
  agent_id: Id,
  version: z.string().max(64),
  hostname: z.string().max(255),
  toolchains: z.array(WireToolchain).max(256),
  capacity: z.object({
    max_jobs: z.number().int().positive(),
    running: z.number().int().nonnegative(),
  }),
  jobs: z.array(z.object({ job_id: Id, state: JobState })).max(4096),
  labels: z.record(z.string(), z.string()),
  draining: z.boolean(),
});

export const Heartbeat = z.object({
  type: z.literal('heartbeat'),
  running: z.number().int().nonnegative(),
  load1: z.number().nonnegative(),
  disk_free_bytes: z.number().nonnegative(),
  uptime_s: z.number().nonnegative(),
});

export const JobClaim = z.object({ type: z.literal('job.claim'), job_id: Id });

export const JobUpdate = z.object({
  type: z.literal('job.update'),
  seq: z.number().int().positive(),
  job_id: Id,
  state: JobState,
  exit_code: z.number().int().optional(),
  error: WireError.optional(),
  log_bytes: z.number().int().nonnegative(),
  artifacts: z.array(WireArtifact).max(1024).optional(),
  at: z.number().int().nonnegative(),
});

export const ToolchainsChanged = z.object({
  type: z.literal('toolchains'),
  toolchains: z.array(WireToolchain).max(256),
});

/** Extension (docs/protocol.md §1): the agent's draining flag changed after `hello`. */
export const AgentStatus = z.object({ type: z.literal('status'), draining: z.boolean() });

export const SessionAnswer = z.object({
  type: z.literal('session.answer'),
  session_id: Id,
  sdp: Sdp,
});
export const SessionCandidateOut = z.object({
  type: z.literal('session.candidate'),
  session_id: Id,
  candidate: Candidate,
  mid: z.string().max(64),
});
export const SessionRejected = z.object({
  type: z.literal('session.rejected'),
  session_id: Id,
  code: z.string(),
  message: z.string().max(4096),
});
export const SessionClosed = z.object({
  type: z.literal('session.closed'),
  session_id: Id,
  reason: z.string().max(256),
});

export const AgentMessage = z.discriminatedUnion('type', [
  Hello,
  Heartbeat,
  JobClaim,
  JobUpdate,
  ToolchainsChanged,
  AgentStatus,
  SessionAnswer,
  SessionCandidateOut,
  SessionRejected,
  SessionClosed,
]);
export type AgentMessage = z.infer<typeof AgentMessage>;

// ── Control plane → agent ────────────────────────────────────────────────────────────────

export const Welcome = z.object({
  type: z.literal('welcome'),
  agent_id: Id,
  server_time: z.number().int().nonnegative(),
  heartbeat_interval_ms: z.number().int().min(100).max(600_000),
  ice_servers: z.array(IceServer).max(8),
});
export const JobOffer = z.object({
  type: z.literal('job.offer'),
  job_id: Id,
  target: Target,
  idf: IdfSpec.optional(),
  action: z.literal('build'),
});
export const JobAssigned = z.object({
  type: z.literal('job.assigned'),
  job_id: Id,
  timeout_s: z.number().int().positive().max(86_400).optional(),
});
export const JobTaken = z.object({ type: z.literal('job.taken'), job_id: Id });
export const JobCancel = z.object({
  type: z.literal('job.cancel'),
  job_id: Id,
  reason: z.string().max(1024),
});
export const SessionOffer = z.object({
  type: z.literal('session.offer'),
  session_id: Id,
  job_id: Id,
  grant: z.string().min(1).max(8192),
  sdp: Sdp,
  ice_servers: z.array(IceServer).max(8).optional(),
});
export const SessionCandidateIn = z.object({
  type: z.literal('session.candidate'),
  session_id: Id,
  candidate: Candidate,
  mid: z.string().max(64),
});
export const SessionClose = z.object({ type: z.literal('session.close'), session_id: Id });
export const Ack = z.object({ type: z.literal('ack'), seq: z.number().int().positive() });
export const Drain = z.object({ type: z.literal('drain') });

export const ControlMessage = z.discriminatedUnion('type', [
  Welcome,
  JobOffer,
  JobAssigned,
  JobTaken,
  JobCancel,
  SessionOffer,
  SessionCandidateIn,
  SessionClose,
  Ack,
  Drain,
]);
export type ControlMessage = z.infer<typeof ControlMessage>;

export type Msg<U extends { type: string }, T extends U['type']> = Extract<U, { type: T }>;

// ── Parsing at the edge ──────────────────────────────────────────────────────────────────

export type ParseResult<M> =
  | { kind: 'ok'; message: M }
  /** A well-formed frame of a type this side does not know: ignored (PROTOCOL §1). */
  | { kind: 'unknown'; type: string }
  /** Not JSON, not an object, oversized, or failing its schema: dropped and logged. */
  | { kind: 'invalid'; type: string | undefined; reason: string };

function makeParser<M>(schema: z.ZodType<M>, known: ReadonlySet<string>) {
  return (data: string | Buffer): ParseResult<M> => {
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    if (size > MAX_FRAME_BYTES)
      return {
        kind: 'invalid',
        type: undefined,
        reason: `frame of ${size} bytes exceeds ${MAX_FRAME_BYTES}`,
      };
    let json: unknown;
    try {
      json = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'));
    } catch (err) {
      return { kind: 'invalid', type: undefined, reason: `not JSON: ${(err as Error).message}` };
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      return { kind: 'invalid', type: undefined, reason: 'not a JSON object' };
    }
    const type = (json as { type?: unknown }).type;
    if (typeof type !== 'string')
      return { kind: 'invalid', type: undefined, reason: 'no string "type"' };
    if (!known.has(type)) return { kind: 'unknown', type: type.slice(0, 64) };
    const result = schema.safeParse(json);
    if (!result.success) {
      const reason = result.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.') || '(frame)'}: ${i.message}`)
        .join('; ');
      return { kind: 'invalid', type, reason };
    }
    return { kind: 'ok', message: result.data };
  };
}

const typesOf = (u: { options: readonly { shape: { type: { value: string } } }[] }) =>
  new Set(u.options.map((o) => o.shape.type.value));

/** Parse a frame the agent received from the control plane. */
export const parseControlMessage = makeParser<ControlMessage>(
  ControlMessage,
  typesOf(ControlMessage),
);
/** Parse a frame the control plane received from an agent. */
export const parseAgentMessage = makeParser<AgentMessage>(AgentMessage, typesOf(AgentMessage));

/** Serialise an outgoing frame (typed, so only valid shapes can be built). */
export function encode(message: AgentMessage | ControlMessage): string {
  return JSON.stringify(message);
}
