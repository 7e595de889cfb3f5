// The one error type of the agent: a stable AEGIS_ERR_* code (PROTOCOL §7) callers switch on,
// a message one person can act on, and the underlying cause.

export const ERROR_CODES = [
  'AEGIS_ERR_CONFIG',
  'AEGIS_ERR_AUTH',
  'AEGIS_ERR_PROTOCOL',
  'AEGIS_ERR_NO_AGENT',
  'AEGIS_ERR_GRANT_MALFORMED',
  'AEGIS_ERR_GRANT_SIGNATURE',
  'AEGIS_ERR_GRANT_EXPIRED',
  'AEGIS_ERR_GRANT_NOT_YET_VALID',
  'AEGIS_ERR_GRANT_AUDIENCE',
  'AEGIS_ERR_GRANT_ISSUER',
  'AEGIS_ERR_GRANT_JOB',
  'AEGIS_ERR_GRANT_REPLAYED',
  'AEGIS_ERR_GRANT_TTL',
  'AEGIS_ERR_GRANT_CHANNELS',
  'AEGIS_ERR_CHANNEL_REJECTED',
  'AEGIS_ERR_SESSION_LIMIT',
  'AEGIS_ERR_SOURCE_TOO_LARGE',
  'AEGIS_ERR_SOURCE_CHECKSUM',
  'AEGIS_ERR_SOURCE_UNSAFE',
  'AEGIS_ERR_BUILD_FAILED',
  'AEGIS_ERR_BUILD_TIMEOUT',
  'AEGIS_ERR_CANCELED',
  'AEGIS_ERR_ARTIFACT_NOT_FOUND',
  'AEGIS_ERR_NO_TOOLCHAIN',
  'AEGIS_ERR_DISK_LOW',
  // Extensions beyond PROTOCOL §7, documented in docs/protocol.md §7.
  'AEGIS_ERR_CONTROL_UNREACHABLE',
  'AEGIS_ERR_CLOCK_SKEW',
  'AEGIS_ERR_SOURCE_EXPIRED',
  'AEGIS_ERR_JOB_LOST',
  'AEGIS_ERR_JOB_STATE',
  'AEGIS_ERR_ICE_FAILED',
  'AEGIS_ERR_INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class AegisError extends Error {
  override readonly name = 'AegisError';
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** The `{code, message}` shape used on the wire (`job.update.error`, `session.rejected`, frames). */
  toWire(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isAegisError(err: unknown, code?: ErrorCode): err is AegisError {
  return err instanceof AegisError && (code === undefined || err.code === code);
}

/** Any thrown value as an AegisError; foreign errors become AEGIS_ERR_INTERNAL with their cause. */
export function toAegisError(err: unknown, fallback: ErrorCode = 'AEGIS_ERR_INTERNAL'): AegisError {
  if (err instanceof AegisError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new AegisError(fallback, message, { cause: err });
}
