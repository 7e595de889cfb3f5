// jose's failures, by their stable `code`, as AegisErrors (PROTOCOL §7) with a sentence a person
// can act on. One decision: which grant code a jose error is.
//
// An algorithm outside {EdDSA, ES256} (alg none, HS256 …) is AEGIS_ERR_GRANT_MALFORMED: the
// header breaks the grant contract before any key is consulted, like an unknown `crit` or a
// wrong `typ`. AEGIS_ERR_GRANT_SIGNATURE is kept for "a contract-shaped grant whose signature
// does not check out against a trusted key".
import { errors } from 'jose';
import { AegisError } from '../errors.js';
import { expiredMessage, notYetValidMessage } from './clock.js';

export interface MapContext {
  nowS: number;
  skewMs: number | undefined;
  issuer: string;
  audience: string;
}

function claimNumber(payload: Record<string, unknown>, claim: string): number | undefined {
  const value = payload[claim];
  return typeof value === 'number' ? value : undefined;
}

export function fromJoseError(err: unknown, ctx: MapContext): AegisError {
  if (err instanceof AegisError) return err;
  if (!(err instanceof errors.JOSEError)) {
    return new AegisError(
      'AEGIS_ERR_INTERNAL',
      `Grant verification failed unexpectedly (${err instanceof Error ? err.message : String(err)}); the session is refused.`,
      { cause: err },
    );
  }
  const malformed = (what: string) =>
    new AegisError(
      'AEGIS_ERR_GRANT_MALFORMED',
      `The grant is malformed: ${what}; the client must send the grant exactly as the control plane issued it.`,
      { cause: err },
    );
  switch (err.code) {
    case 'ERR_JWT_EXPIRED': {
      const exp = claimNumber((err as errors.JWTExpired).payload, 'exp') ?? ctx.nowS;
      return new AegisError('AEGIS_ERR_GRANT_EXPIRED', expiredMessage(exp, ctx.nowS, ctx.skewMs), {
        cause: err,
      });
    }
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED': {
      const failed = err as errors.JWTClaimValidationFailed;
      if (failed.reason === 'missing') return malformed(`it has no ${failed.claim} claim`);
      if (failed.reason !== 'check_failed') return malformed(failed.message);
      switch (failed.claim) {
        case 'nbf':
        case 'iat': {
          const from = claimNumber(failed.payload, failed.claim) ?? ctx.nowS;
          return new AegisError(
            'AEGIS_ERR_GRANT_NOT_YET_VALID',
            notYetValidMessage(from, ctx.nowS, ctx.skewMs),
            { cause: err },
          );
        }
        case 'aud':
          return new AegisError(
            'AEGIS_ERR_GRANT_AUDIENCE',
            `The grant is not for this agent (its aud is not "${ctx.audience}"); ask the control plane for a grant for agent ${ctx.audience}.`,
            { cause: err },
          );
        case 'iss':
          return new AegisError(
            'AEGIS_ERR_GRANT_ISSUER',
            `The grant was not issued by "${ctx.issuer}"; use a grant from this agent's control plane, or set GRANT_ISSUER to the issuer it really uses.`,
            { cause: err },
          );
        case 'typ':
          return malformed('its typ header is not aegis-grant+jwt');
        default:
          return malformed(failed.message);
      }
    }
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return malformed('it is not signed with EdDSA or ES256, the only algorithms grants may use');
    case 'ERR_JOSE_NOT_SUPPORTED':
    case 'ERR_JWE_INVALID':
    case 'ERR_JWE_DECRYPTION_FAILED':
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return malformed(err.message);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return new AegisError(
        'AEGIS_ERR_GRANT_SIGNATURE',
        "The grant's signature does not verify against the control plane's key; the grant was altered or signed by someone else.",
        { cause: err },
      );
    case 'ERR_JWKS_NO_MATCHING_KEY':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
    case 'ERR_JWKS_INVALID':
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWK_INVALID':
    case 'ERR_JOSE_GENERIC':
      // keys.ts normally words these first; this covers a key function that does not.
      return new AegisError(
        'AEGIS_ERR_GRANT_SIGNATURE',
        `No usable key verifies the grant (${err.message}); check the control plane's JWKS.`,
        { cause: err },
      );
    default:
      return malformed(err.message);
  }
}
