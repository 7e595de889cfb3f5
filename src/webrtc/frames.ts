// The data-channel JSON frames of PROTOCOL §4, both ways, as zod schemas: the edge where a
// client's text messages become typed values (parseFrame), and the shapes the agent sends
// (the reference client parses those with parseAgentFrame).
import { z } from 'zod';
import { JobState, WireError } from '../control/messages.js';
import type { ChannelLabel } from '../grants/index.js';

/** Largest text frame a client may send: every client frame is a few dozen bytes. */
export const MAX_CLIENT_FRAME_BYTES = 16 * 1024;
/** Largest binary message of pty input (PROTOCOL §4 `pty`). */
export const PTY_INPUT_MAX_BYTES = 4096;

const Offset = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const Cols = z.number().int().min(1).max(1000);
const Rows = z.number().int().min(1).max(1000);
const Sha256 = z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected 64 hex digits');

// ── Client → agent ───────────────────────────────────────────────────────────────────────

export const CancelFrame = z.strictObject({ type: z.literal('cancel') });
export const PingFrame = z.strictObject({ type: z.literal('ping') });
export const BeginFrame = z.strictObject({
  type: z.literal('begin'),
  format: z.enum(['tar', 'tar.gz']),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  sha256: Sha256,
});
export const EndUploadFrame = z.strictObject({ type: z.literal('end') });
export const FollowFrame = z.strictObject({ type: z.literal('follow'), from: Offset });
export const AttachFrame = z.strictObject({
  type: z.literal('attach'),
  from: Offset,
  cols: Cols,
  rows: Rows,
});
export const ResizeFrame = z.strictObject({ type: z.literal('resize'), cols: Cols, rows: Rows });
export const ListFrame = z.strictObject({ type: z.literal('list') });
export const GetFrame = z.strictObject({
  type: z.literal('get'),
  name: z.string().min(1).max(512),
  from: Offset,
});

export const ClientFrames = {
  control: z.discriminatedUnion('type', [CancelFrame, PingFrame]),
  source: z.discriminatedUnion('type', [BeginFrame, EndUploadFrame]),
  logs: z.discriminatedUnion('type', [FollowFrame]),
  pty: z.discriminatedUnion('type', [AttachFrame, ResizeFrame]),
  artifacts: z.discriminatedUnion('type', [ListFrame, GetFrame]),
} as const satisfies Record<ChannelLabel, z.ZodType>;

export type ClientFrame<L extends ChannelLabel> = z.infer<(typeof ClientFrames)[L]>;

// ── Agent → client ───────────────────────────────────────────────────────────────────────

const ArtifactFile = z.object({
  name: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string(),
  flash_offset: z.number().int().nonnegative().optional(),
});

export const HelloFrame = z.object({
  type: z.literal('hello'),
  job_id: z.string(),
  state: JobState,
  channels: z.array(z.string()),
  agent_version: z.string(),
  limits: z.object({
    send_queue_bytes: z.number().int(),
    chunk_bytes: z.number().int(),
    source_max_bytes: z.number().int(),
  }),
});
export const StateFrame = z.object({
  type: z.literal('state'),
  state: JobState,
  exit_code: z.number().int().optional(),
  error: WireError.optional(),
});
export const ManifestFrame = z.object({
  type: z.literal('manifest'),
  chip: z.string(),
  flash_settings: z.object({
    flash_mode: z.string(),
    flash_size: z.string(),
    flash_freq: z.string(),
  }),
  files: z.array(ArtifactFile),
});
export const RejectedFrame = z.object({
  type: z.literal('rejected'),
  channel: z.string(),
  code: z.string(),
  message: z.string(),
});
export const PongFrame = z.object({ type: z.literal('pong') });
export const ErrorFrame = z.object({
  type: z.literal('error'),
  code: z.string(),
  message: z.string(),
});
export const AcceptedFrame = z.object({
  type: z.literal('accepted'),
  size: z.number().int().nonnegative(),
  sha256: z.string(),
});
export const EofFrame = z.object({
  type: z.literal('eof'),
  size: z.number().int().nonnegative(),
  state: JobState,
  exit_code: z.number().int().optional(),
});
export const FileFrame = z.object({
  type: z.literal('file'),
  name: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string(),
  from: z.number().int().nonnegative(),
});
export const EndFileFrame = z.object({
  type: z.literal('end'),
  name: z.string(),
  bytes: z.number().int().nonnegative(),
});

export const AgentFrames = {
  control: z.discriminatedUnion('type', [
    HelloFrame,
    StateFrame,
    ManifestFrame,
    RejectedFrame,
    PongFrame,
    ErrorFrame,
  ]),
  source: z.discriminatedUnion('type', [AcceptedFrame, ErrorFrame]),
  logs: z.discriminatedUnion('type', [EofFrame, ErrorFrame]),
  pty: z.discriminatedUnion('type', [EofFrame, ErrorFrame]),
  artifacts: z.discriminatedUnion('type', [ManifestFrame, FileFrame, EndFileFrame, ErrorFrame]),
} as const satisfies Record<ChannelLabel, z.ZodType>;

export type AgentFrame<L extends ChannelLabel> = z.infer<(typeof AgentFrames)[L]>;
/** Any frame the agent sends, on any channel. */
export type AnyAgentFrame = AgentFrame<ChannelLabel>;

// ── Parsing ──────────────────────────────────────────────────────────────────────────────

export type FrameResult<F> = { ok: true; frame: F } | { ok: false; reason: string };

function parseWith<F>(schema: z.ZodType<F>, text: string, maxBytes: number): FrameResult<F> {
  // text.length ≤ bytes ≤ 3 × length: cheap bounds before counting exactly.
  if (text.length > maxBytes || Buffer.byteLength(text) > maxBytes) {
    return { ok: false, reason: `text frame larger than ${maxBytes} bytes` };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'text frame is not JSON' };
  }
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join('.') ?? '';
    return {
      ok: false,
      reason: `invalid frame: ${where === '' ? '(frame)' : where}: ${issue?.message ?? 'invalid'}`,
    };
  }
  return { ok: true, frame: result.data };
}

/** A client's text message on channel `label`; unknown types and bad shapes are not ok. */
export function parseFrame<L extends ChannelLabel>(
  label: L,
  text: string,
): FrameResult<ClientFrame<L>> {
  return parseWith(
    ClientFrames[label] as unknown as z.ZodType<ClientFrame<L>>,
    text,
    MAX_CLIENT_FRAME_BYTES,
  );
}

/** An agent's text message on channel `label` (reference client, tests). */
export function parseAgentFrame<L extends ChannelLabel>(
  label: L,
  text: string,
): FrameResult<AgentFrame<L>> {
  return parseWith(
    AgentFrames[label] as unknown as z.ZodType<AgentFrame<L>>,
    text,
    4 * 1024 * 1024,
  );
}
