// The grant's claims after jose checked signature, iss, aud, typ and exp (PROTOCOL §2): their
// shapes, the TTL ceiling, iat not in the future, and the binding to a job of this agent. Pure:
// every function here decides from its arguments alone.
import { z } from 'zod';
import { AegisError } from '../errors.js';
import { checkChannels, type ChannelLabel } from './channels.js';
import { notYetValidMessage } from './clock.js';

export const JTI_MAX_CHARS = 128;
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Claims whose absence jose reports (it only checks exp and friends when they are present). */
export const REQUIRED_CLAIMS = ['exp', 'iat', 'jti', 'sub', 'job', 'target', 'channels'] as const;

const numericDate = z.number().finite();

const claimsSchema = z.object({
  jti: z.string().min(1).max(JTI_MAX_CHARS),
  sub: z.string().min(1),
  job: z.string().regex(JOB_ID_PATTERN),
  target: z.string().min(1),
  iat: numericDate,
  exp: numericDate,
  nbf: numericDate.optional(),
  // Checked on its own so a bad list gets AEGIS_ERR_GRANT_CHANNELS, not _MALFORMED.
  channels: z.unknown(),
});

export interface GrantClaims {
  jti: string;
  sub: string;
  job: string;
  target: string;
  channels: ChannelLabel[];
  iat: number;
  exp: number;
}

/** What a claim must look like, for the refusal sentence. */
const EXPECTED: Record<string, string> = {
  jti: `a string of 1-${JTI_MAX_CHARS} characters`,
  sub: 'a non-empty string',
  job: 'a job id (letters, digits, ".", "_", "-"; at most 128)',
  target: 'a non-empty string',
  iat: 'a number of seconds since the epoch',
  exp: 'a number of seconds since the epoch',
  nbf: 'a number of seconds since the epoch',
};

export function parseClaims(payload: unknown): GrantClaims {
  const parsed = claimsSchema.safeParse(payload);
  if (!parsed.success) {
    const claim = String(parsed.error.issues[0]?.path[0] ?? 'payload');
    throw new AegisError(
      'AEGIS_ERR_GRANT_MALFORMED',
      `The grant's ${claim} claim must be ${EXPECTED[claim] ?? 'present'}; the control plane issued a grant this agent cannot use.`,
    );
  }
  const channels = checkChannels(parsed.data.channels);
  if (!channels.ok) {
    throw new AegisError(
      'AEGIS_ERR_GRANT_CHANNELS',
      `The grant's channels are unusable: ${channels.reason}; ask for a grant with distinct labels from control, source, logs, pty, artifacts.`,
    );
  }
  const { jti, sub, job, target, iat, exp } = parsed.data;
  return { jti, sub, job, target, iat, exp, channels: channels.channels };
}

/**
 * jose checks iat against the clock only with maxTokenAge, which would also turn an over-long
 * TTL into "expired"; the future-iat check lives here instead, with the same tolerance as nbf.
 */
export function checkIssuedAt(
  claims: GrantClaims,
  nowS: number,
  toleranceS: number,
  skewMs: number | undefined,
): void {
  if (claims.iat > nowS + toleranceS) {
    throw new AegisError(
      'AEGIS_ERR_GRANT_NOT_YET_VALID',
      notYetValidMessage(claims.iat, nowS, skewMs),
    );
  }
}

export function checkTtl(claims: GrantClaims, maxTtlS: number): void {
  const ttl = claims.exp - claims.iat;
  if (ttl > maxTtlS) {
    throw new AegisError(
      'AEGIS_ERR_GRANT_TTL',
      `The grant is valid for ${ttl} s (exp − iat), above this agent's ceiling of ${maxTtlS} s (GRANT_MAX_TTL_S); the control plane must issue shorter grants.`,
    );
  }
}

/** The job as this agent knows it; undefined when the job is not assigned to this agent. */
export type LookupJob = (jobId: string) => { target: string } | undefined;

export function checkJob(claims: GrantClaims, lookupJob: LookupJob): void {
  const job = lookupJob(claims.job);
  if (job === undefined) {
    throw new AegisError(
      'AEGIS_ERR_GRANT_JOB',
      `The grant is for job ${claims.job}, which is not assigned to this agent; ask for a grant for a job this agent runs.`,
    );
  }
  if (job.target !== claims.target) {
    throw new AegisError(
      'AEGIS_ERR_GRANT_JOB',
      `The grant names target ${claims.target}, but job ${claims.job} builds for ${job.target}; ask for a grant that matches the job.`,
    );
  }
}
