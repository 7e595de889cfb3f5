// A test signer for grants: real Ed25519 and ES256 key pairs, the JWKS that publishes them, a
// loopback HTTP server serving that JWKS, and hand-built tokens for the attacks jose's signer
// refuses to produce (alg none, HS256 over the public key, unknown crit).
import { createHmac, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { exportJWK, SignJWT, type JSONWebKeySet, type JWK } from 'jose';
import { loadConfig, type AgentConfig } from '../../src/config/index.js';

export const AGENT_ID = 'agent-1';
export const CONTROL = 'http://127.0.0.1:7800';
export const ED_KID = 'ed-1';
export const ES_KID = 'es-1';

export interface TestKey {
  kid: string;
  alg: 'EdDSA' | 'ES256';
  privateKey: KeyObject;
  publicJwk: JWK;
}

export async function makeKey(alg: 'EdDSA' | 'ES256', kid: string): Promise<TestKey> {
  const pair =
    alg === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey: pair.privateKey, publicJwk };
}

export type Claims = Record<string, unknown>;

export interface TestSigner {
  ed: TestKey;
  es: TestKey;
  jwks: JSONWebKeySet;
  /** Seconds since the epoch the default claims are relative to. */
  nowS: number;
  /** A grant with valid defaults; `undefined` in `claims` removes that claim. */
  sign(
    claims?: Claims,
    options?: { key?: TestKey; header?: Record<string, unknown> },
  ): Promise<string>;
  claims(overrides?: Claims): Claims;
}

export async function createTestSigner(
  options: { issuer?: string; nowS?: number } = {},
): Promise<TestSigner> {
  const ed = await makeKey('EdDSA', ED_KID);
  const es = await makeKey('ES256', ES_KID);
  const nowS = options.nowS ?? Math.floor(Date.now() / 1000);
  const issuer = options.issuer ?? CONTROL;
  const claims = (overrides: Claims = {}): Claims => {
    const out: Claims = {
      iss: issuer,
      aud: AGENT_ID,
      sub: 'client-1',
      jti: randomUUID(),
      iat: nowS,
      exp: nowS + 60,
      job: 'job-1',
      target: 'esp32',
      channels: ['control', 'logs'],
      ...overrides,
    };
    for (const [k, v] of Object.entries(out)) if (v === undefined) delete out[k];
    return out;
  };
  return {
    ed,
    es,
    jwks: { keys: [ed.publicJwk, es.publicJwk] },
    nowS,
    claims,
    sign(overrides = {}, opts = {}) {
      const key = opts.key ?? ed;
      return new SignJWT(claims(overrides))
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'aegis-grant+jwt', ...opts.header })
        .sign(key.privateKey);
    },
  };
}

const b64url = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** header.payload.signature with a signature the caller computes over the signing input. */
export function handcraft(
  header: Record<string, unknown>,
  payload: Claims,
  signer: (input: Buffer) => Buffer | string,
): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const sig = signer(Buffer.from(input));
  return `${input}.${typeof sig === 'string' ? sig : sig.toString('base64url')}`;
}

/** An Ed25519 signature by node:crypto, for headers jose's signer will not emit (unknown crit). */
export function edSign(key: TestKey): (input: Buffer) => Buffer {
  return (input) => sign(null, input, key.privateKey);
}

/** The key-confusion attack: HS256 keyed with the bytes of the server's public key. */
export function hmacWith(secret: string | Buffer): (input: Buffer) => Buffer {
  return (input) => createHmac('sha256', secret).update(input).digest();
}

export interface JwksServer {
  /** Use as CONTROL_BASE_URL: the JWKS is at /.well-known/jwks.json below it. */
  baseUrl: string;
  hits: number;
  close(): Promise<void>;
}

/** The JWKS over a real HTTP server on a free loopback port. */
export async function serveJwks(jwks: JSONWebKeySet): Promise<JwksServer> {
  const state = { hits: 0 };
  const server = http.createServer((req, res) => {
    if (req.url === '/.well-known/jwks.json') {
      state.hits++;
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
      res.end(JSON.stringify(jwks));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    get hits() {
      return state.hits;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

export function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-grants-'));
}

/** A real config through the real loader. */
export function grantConfig(env: Record<string, string> = {}): AgentConfig {
  return loadConfig({
    env: {
      AGENT_ID,
      CONTROL_BASE_URL: CONTROL,
      STATE_DIR: tmpDir(),
      CACHE_DIR: tmpDir(),
      ...env,
    },
  });
}
