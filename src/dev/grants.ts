// The dev plane's grant key: one Ed25519 pair made at start, published as a JWKS, used to sign
// grants (PROTOCOL §2) and, for tests, arbitrary claims with the same trusted key.
import { randomBytes } from 'node:crypto';
import {
  calculateJwkThumbprint,
  compactVerify,
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTHeaderParameters,
} from 'jose';

export const GRANT_TYP = 'aegis-grant+jwt';

export interface PublicJwks {
  keys: (JWK & { kid: string; alg: 'EdDSA'; use: 'sig' })[];
}

/** The claims of a grant this plane issues. */
export interface GrantClaims {
  iss: string;
  aud: string;
  sub: string;
  job: string;
  target: string;
  channels: string[];
  ttlS: number;
  /** Unix seconds "now" on this plane's (possibly offset) clock. */
  now: number;
}

export class GrantKeys {
  private constructor(
    readonly kid: string,
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    private readonly jwk: JWK,
  ) {}

  static async create(): Promise<GrantKeys> {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const jwk = await exportJWK(publicKey);
    const kid = (await calculateJwkThumbprint(jwk)).slice(0, 16);
    return new GrantKeys(kid, privateKey, publicKey, jwk);
  }

  publicJwks(): PublicJwks {
    return { keys: [{ ...this.jwk, kid: this.kid, alg: 'EdDSA', use: 'sig' }] };
  }

  /** A grant for one job on one agent, with a fresh jti. */
  async issue(c: GrantClaims): Promise<{ grant: string; jti: string; exp: number }> {
    const jti = `g-${randomBytes(16).toString('hex')}`;
    const exp = c.now + c.ttlS;
    const grant = await this.sign({
      iss: c.iss,
      aud: c.aud,
      sub: c.sub,
      jti,
      iat: c.now,
      exp,
      job: c.job,
      target: c.target,
      channels: c.channels,
    });
    return { grant, jti, exp };
  }

  /**
   * Sign any claims with the trusted key (tests: expired, wrong audience, replayed jti…). The
   * header defaults to {alg: EdDSA, kid, typ: aegis-grant+jwt}; `header` overrides its fields.
   */
  sign(
    claims: Record<string, unknown>,
    header: Partial<JWTHeaderParameters> = {},
  ): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: this.kid, typ: GRANT_TYP, ...header })
      .sign(this.privateKey);
  }

  /**
   * The claims of a token signed with this key, checking the signature only: /session relays
   * expired or otherwise wrong grants on purpose, because judging them is the agent's job.
   */
  async claimsOf(token: string): Promise<Record<string, unknown>> {
    const { payload } = await compactVerify(token, this.publicKey, { algorithms: ['EdDSA'] });
    const claims = JSON.parse(new TextDecoder().decode(payload)) as unknown;
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
      throw new TypeError('the grant payload is not a JSON object');
    }
    return claims as Record<string, unknown>;
  }
}
