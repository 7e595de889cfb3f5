// Where grant signing keys come from: the control plane's JWKS over HTTP (cached, refetched on
// an unknown kid after a cooldown), or a pinned JWKS file read once at start. Key-lookup
// failures leave here as AegisErrors that say which set was asked and why it could not answer.
import fs from 'node:fs';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';
import type { AgentConfig } from '../config/index.js';
import { AegisError } from '../errors.js';

/** A rotated-in key is picked up at most this long after a grant first names its kid. */
export const JWKS_COOLDOWN_MS = 30_000;
/** Keys are refetched at least this often, so a revoked key stops verifying within it. */
export const JWKS_CACHE_MAX_AGE_MS = 10 * 60_000;
/** A session offer waits at most this long for the control plane's JWKS. */
export const JWKS_TIMEOUT_MS = 5_000;

export interface GrantKeys {
  getKey: JWTVerifyGetKey;
  /** Names the set in refusals, e.g. "the control plane's JWKS (http://…/.well-known/jwks.json)". */
  source: string;
}

export function jwksUrl(controlBaseUrl: string): URL {
  return new URL(`${controlBaseUrl}/.well-known/jwks.json`);
}

/** The pinned set, or the control plane's; rejects with AEGIS_ERR_CONFIG for a bad pinned file. */
export async function createGrantKeys(
  config: Pick<AgentConfig, 'grantJwksFile' | 'controlBaseUrl'>,
): Promise<GrantKeys> {
  if (config.grantJwksFile !== undefined) {
    const file = config.grantJwksFile;
    const source = `the pinned JWKS file ${file}`;
    return { getKey: withReasons(await loadJwksFile(file), source, false), source };
  }
  const url = jwksUrl(config.controlBaseUrl);
  const source = `the control plane's JWKS (${url.href})`;
  const remote = createRemoteJWKSet(url, {
    cooldownDuration: JWKS_COOLDOWN_MS,
    cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
    timeoutDuration: JWKS_TIMEOUT_MS,
  });
  return { getKey: withReasons(remote, source, true), source };
}

/** A caller-supplied key function (tests), with the same refusal sentences. */
export function wrapGrantKeys(getKey: JWTVerifyGetKey, source = 'the injected key set'): GrantKeys {
  return { getKey: withReasons(getKey, source, false), source };
}

/** The grant algorithm a public JWK can serve, if any (PROTOCOL §2: EdDSA or ES256). */
function grantAlgOf(jwk: Record<string, unknown>): 'EdDSA' | 'ES256' | undefined {
  if (jwk['kty'] === 'OKP' && jwk['crv'] === 'Ed25519') return 'EdDSA';
  if (jwk['kty'] === 'EC' && jwk['crv'] === 'P-256') return 'ES256';
  return undefined;
}

// Read once at start: a pinned file that cannot verify anything should stop the agent there,
// not surface later as every session being refused.
async function loadJwksFile(file: string): Promise<JWTVerifyGetKey> {
  const bad = (why: string, cause?: unknown): AegisError =>
    new AegisError(
      'AEGIS_ERR_CONFIG',
      `GRANT_JWKS_FILE ${file} ${why}; fix the file or unset GRANT_JWKS_FILE to fetch keys from the control plane`,
      cause === undefined ? undefined : { cause },
    );
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw bad(`cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw bad('is not valid JSON', err);
  }
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw bad('is not a JWKS with at least one key ({"keys":[…]})');
  }
  let usable = 0;
  for (const [i, key] of keys.entries()) {
    if (typeof key !== 'object' || key === null || Array.isArray(key)) {
      throw bad(`has a key #${i} that is not a JSON object`);
    }
    const jwk = key as Record<string, unknown>;
    // Private material in a file of verification keys means the wrong file was pinned.
    if ('d' in jwk) throw bad(`has a private key (#${i}); pin the public keys only`);
    if (typeof jwk['kid'] !== 'string' || jwk['kid'] === '') {
      throw bad(`has a key #${i} without a kid; grants name their key by kid`);
    }
    const alg = grantAlgOf(jwk);
    if (alg === undefined) continue;
    try {
      await importJWK(jwk as JWK, alg);
    } catch (err) {
      throw bad(
        `has a key "${jwk['kid']}" that cannot be imported (${(err as Error).message})`,
        err,
      );
    }
    usable++;
  }
  if (usable === 0) throw bad('has no Ed25519 or P-256 key, so no grant could verify');
  try {
    return createLocalJWKSet(json as JSONWebKeySet);
  } catch (err) {
    throw bad(`is not a valid JWKS (${(err as Error).message})`, err);
  }
}

/** Fetch-level failures: the set could not be obtained at all. */
function isUnreachable(err: unknown): boolean {
  if (err instanceof errors.JWKSTimeout) return true;
  // createRemoteJWKSet lets fetch's own TypeError ("fetch failed") through and reports a non-200
  // or non-JSON answer as a plain JOSEError.
  if (err instanceof TypeError) return true;
  return err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC';
}

function withReasons(getKey: JWTVerifyGetKey, source: string, remote: boolean): JWTVerifyGetKey {
  return async (header, token) => {
    const kid = header.kid;
    // Without a kid, a set with two keys of one type is ambiguous; the protocol requires it.
    if (typeof kid !== 'string' || kid === '') {
      throw new AegisError(
        'AEGIS_ERR_GRANT_MALFORMED',
        'The grant has no kid header, so its signing key cannot be chosen; the control plane must set kid on every grant.',
      );
    }
    try {
      return await getKey(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey) {
        throw new AegisError(
          'AEGIS_ERR_GRANT_SIGNATURE',
          `No key with kid "${kid}" for ${header.alg} in ${source}; the grant was signed by a key this agent does not trust${remote ? '' : ' (update the pinned file after a key rotation)'}.`,
          { cause: err },
        );
      }
      if (err instanceof errors.JWKSMultipleMatchingKeys) {
        throw new AegisError(
          'AEGIS_ERR_GRANT_SIGNATURE',
          `Several keys in ${source} share kid "${kid}"; the control plane must give each key its own kid.`,
          { cause: err },
        );
      }
      if (remote && isUnreachable(err)) {
        const reason =
          err instanceof Error
            ? err.cause instanceof Error
              ? `${err.message}: ${err.cause.message}`
              : err.message
            : String(err);
        throw new AegisError(
          'AEGIS_ERR_GRANT_SIGNATURE',
          `Cannot fetch ${source} to check the grant's signature (${reason}); check that this agent reaches the control plane.`,
          { cause: err },
        );
      }
      throw new AegisError(
        'AEGIS_ERR_GRANT_SIGNATURE',
        `The key with kid "${kid}" in ${source} cannot verify ${header.alg} grants (${err instanceof Error ? err.message : String(err)}).`,
        { cause: err },
      );
    }
  };
}
