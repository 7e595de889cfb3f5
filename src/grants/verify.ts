// The grant verifier (PROTOCOL §2): signature and standard claims by jose, then the grant's own
// rules, then the replay cache — the jti is recorded only once every other check passed, and
// the grant is accepted only once that record is on disk. Every refusal is an AegisError,
// logged at warn with its code and the verified ids (never the token).
import path from 'node:path';
import { jwtVerify, type JWTVerifyGetKey, type JWTVerifyResult } from 'jose';
import type { AgentConfig } from '../config/index.js';
import { AegisError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { ChannelLabel } from './channels.js';
import {
  checkIssuedAt,
  checkJob,
  checkTtl,
  parseClaims,
  REQUIRED_CLAIMS,
  type GrantClaims,
  type LookupJob,
} from './claims.js';
import { fromJoseError } from './jose-errors.js';
import { createGrantKeys, wrapGrantKeys } from './keys.js';
import { ReplayCache } from './replay.js';

export const GRANT_TYP = 'aegis-grant+jwt';
/** Asymmetric only: an HMAC grant could be forged by anyone holding the public key. */
export const GRANT_ALGORITHMS = ['EdDSA', 'ES256'] as const;

export type GrantConfig = Pick<
  AgentConfig,
  | 'agentId'
  | 'controlBaseUrl'
  | 'grantIssuer'
  | 'grantJwksFile'
  | 'grantMaxTtlS'
  | 'grantClockToleranceS'
  | 'replayCacheMax'
  | 'stateDir'
>;

export interface GrantVerifierOptions {
  config: GrantConfig;
  log: Logger;
  /** Synchronous on purpose: the job check and the jti reservation must not interleave. */
  lookupJob: LookupJob;
  /** server − local clock, ms, as the control link last measured it; undefined before that. */
  skewMs: () => number | undefined;
  /** A key function instead of the configured JWKS (tests inject a local set). */
  keys?: JWTVerifyGetKey;
  /** ms since the epoch; injected by tests to move through exp without sleeping. */
  now?: () => number;
}

export interface VerifiedGrant {
  jti: string;
  sub: string;
  job: string;
  target: string;
  channels: ChannelLabel[];
  iat: number;
  exp: number;
  kid: string;
}

export interface GrantVerifier {
  /** Resolves with the grant's claims, or rejects with an AegisError carrying a GRANT code. */
  verify(token: string): Promise<VerifiedGrant>;
  readonly issuer: string;
  /** Which key set grants are checked against, for the startup log line. */
  readonly keySource: string;
}

export function replayFile(stateDir: string): string {
  return path.join(stateDir, 'grants', 'replay.json');
}

export function defaultIssuer(config: Pick<AgentConfig, 'grantIssuer' | 'controlBaseUrl'>): string {
  return config.grantIssuer ?? new URL(config.controlBaseUrl).origin;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export async function createGrantVerifier(options: GrantVerifierOptions): Promise<GrantVerifier> {
  const { config, log, lookupJob, skewMs } = options;
  const now = options.now ?? Date.now;
  const issuer = defaultIssuer(config);
  const audience = config.agentId;
  const tolerance = config.grantClockToleranceS;
  const keys = options.keys ? wrapGrantKeys(options.keys) : await createGrantKeys(config);

  const startS = Math.floor(now() / 1000);
  const loaded = await ReplayCache.load(
    { file: replayFile(config.stateDir), max: config.replayCacheMax, toleranceS: tolerance },
    startS,
  );
  const replay = loaded.cache;
  // Without the old cache nobody can tell which earlier grants were used; those issued before
  // now are refused, and after GRANT_MAX_TTL_S every one of them has expired anyway.
  const lostBeforeS = loaded.lost === undefined ? undefined : startS;
  if (loaded.lost !== undefined) {
    log.error(
      { code: 'AEGIS_ERR_GRANT_REPLAYED', file: replay.file },
      `grant replay cache lost: ${loaded.lost}; grants issued before now are refused for the next ${config.grantMaxTtlS} s`,
    );
  }

  async function check(token: string, ids: LogIds): Promise<VerifiedGrant> {
    // jose decodes base64url leniently (padding, whitespace, a trailing newline): a grant is
    // the JWS compact serialisation and nothing else, so one token has one spelling.
    if (!COMPACT_JWS.test(token)) {
      throw new AegisError(
        'AEGIS_ERR_GRANT_MALFORMED',
        'The grant is not a JWS compact serialisation (three base64url parts, no padding or whitespace).',
      );
    }
    const nowMs = now();
    const nowS = Math.floor(nowMs / 1000);
    let result: JWTVerifyResult;
    try {
      result = await jwtVerify(token, keys.getKey, {
        algorithms: [...GRANT_ALGORITHMS],
        issuer,
        audience,
        typ: GRANT_TYP,
        requiredClaims: [...REQUIRED_CLAIMS],
        clockTolerance: tolerance,
        currentDate: new Date(nowMs),
      });
    } catch (err) {
      // jose sets `payload` on claim errors only, i.e. after the signature checked out.
      if (err instanceof Error && 'payload' in err) collectIds(err.payload, ids);
      throw fromJoseError(err, { nowS, skewMs: skewMs(), issuer, audience });
    }
    collectIds(result.payload, ids);
    const claims: GrantClaims = parseClaims(result.payload);
    checkIssuedAt(claims, nowS, tolerance, skewMs());
    checkTtl(claims, config.grantMaxTtlS);
    checkJob(claims, lookupJob);
    if (lostBeforeS !== undefined && claims.iat < lostBeforeS) {
      throw new AegisError(
        'AEGIS_ERR_GRANT_REPLAYED',
        'The grant predates a restart that lost the replay cache, so it may have been used already; ask the control plane for a new grant.',
      );
    }
    switch (replay.reserve(claims.jti, claims.exp, nowS)) {
      case 'ok':
        break;
      case 'replayed':
        throw new AegisError(
          'AEGIS_ERR_GRANT_REPLAYED',
          `The grant ${claims.jti} was used already; a grant opens one session — ask the control plane for a new grant to reconnect.`,
        );
      case 'full':
        throw new AegisError(
          'AEGIS_ERR_SESSION_LIMIT',
          `The replay cache is full (${replay.max} live grant ids): too many sessions within the grant TTL; retry once older grants expire, or raise REPLAY_CACHE_MAX.`,
        );
    }
    try {
      await replay.persist();
    } catch (err) {
      // The jti stays reserved in memory: refusing it now must not make it usable later.
      throw new AegisError(
        'AEGIS_ERR_INTERNAL',
        `Cannot record the grant in ${replay.file} (${(err as NodeJS.ErrnoException).code ?? String(err)}), so a replay after a restart could not be refused; check STATE_DIR's disk space and permissions.`,
        { cause: err },
      );
    }
    const kid = result.protectedHeader.kid ?? '';
    return { ...claims, kid };
  }

  return {
    issuer,
    keySource: keys.source,
    async verify(token: string): Promise<VerifiedGrant> {
      const ids: LogIds = {};
      try {
        const grant = await check(token, ids);
        log.info(
          {
            jti: grant.jti,
            sub: grant.sub,
            job: grant.job,
            channels: grant.channels,
            kid: grant.kid,
          },
          'grant accepted',
        );
        return grant;
      } catch (err) {
        // check() throws AegisErrors only; this keeps a stray throw an AegisError too.
        const refusal = fromJoseError(err, {
          nowS: Math.floor(now() / 1000),
          skewMs: skewMs(),
          issuer,
          audience,
        });
        log.warn({ code: refusal.code, ...ids }, `grant refused: ${refusal.message}`);
        throw refusal;
      }
    },
  };
}

type LogIds = { jti?: string; sub?: string; job?: string };

/** jti/sub/job for the refusal log line, copied from a payload whose signature checked out. */
function collectIds(payload: unknown, into: LogIds): void {
  if (typeof payload !== 'object' || payload === null) return;
  for (const key of ['jti', 'sub', 'job'] as const) {
    const value = (payload as Record<string, unknown>)[key];
    if (typeof value === 'string') into[key] = value.slice(0, 128);
  }
}
