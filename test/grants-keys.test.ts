// Where grant keys come from: the control plane's JWKS over a real loopback HTTP server, a
// pinned JWKS file, and what happens when either is unusable.
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { exportJWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { AegisError, isAegisError } from '../src/errors.js';
import { createGrantVerifier, type GrantVerifier } from '../src/grants/index.js';
import { createLogger } from '../src/log/index.js';
import {
  createTestSigner,
  grantConfig,
  makeKey,
  serveJwks,
  tmpDir,
  type JwksServer,
} from './helpers/grants.js';
import { createLogSink } from './helpers/log-sink.js';

const servers: JwksServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** A verifier on the real clock using the configured key source (no injected keys). */
function verifierFor(env: Record<string, string>): Promise<GrantVerifier> {
  return createGrantVerifier({
    config: grantConfig(env),
    log: createLogger({ destination: createLogSink() }),
    lookupJob: () => ({ target: 'esp32' }),
    skewMs: () => undefined,
  });
}

async function refusal(p: Promise<unknown>): Promise<AegisError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AegisError);
  return err as AegisError;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('grant keys from the control plane', () => {
  it('fetches the JWKS over HTTP once and verifies EdDSA and ES256 grants with it', async () => {
    const signer = await createTestSigner();
    const server = await serveJwks(signer.jwks);
    servers.push(server);
    const verifier = await verifierFor({ CONTROL_BASE_URL: server.baseUrl });
    expect(verifier.keySource).toContain(`${server.baseUrl}/.well-known/jwks.json`);
    // The default issuer is CONTROL_BASE_URL's origin.
    const iss = server.baseUrl;
    await verifier.verify(await signer.sign({ iss }, { key: signer.ed }));
    await verifier.verify(await signer.sign({ iss }, { key: signer.es }));
    expect(server.hits).toBe(1);
  });

  it('refuses an unknown kid after asking the server', async () => {
    const signer = await createTestSigner();
    const server = await serveJwks(signer.jwks);
    servers.push(server);
    const verifier = await verifierFor({ CONTROL_BASE_URL: server.baseUrl });
    const stranger = await makeKey('EdDSA', 'not-published');
    const token = await signer.sign({ iss: server.baseUrl }, { key: stranger });
    const err = await refusal(verifier.verify(token));
    expect(err.code).toBe('AEGIS_ERR_GRANT_SIGNATURE');
    expect(err.message).toMatch(/no key with kid "not-published"/i);
    expect(server.hits).toBe(1);
  });

  it('says so when the control plane cannot be reached for keys', async () => {
    const base = `http://127.0.0.1:${await closedPort()}`;
    const signer = await createTestSigner({ issuer: base });
    const verifier = await verifierFor({ CONTROL_BASE_URL: base });
    const err = await refusal(verifier.verify(await signer.sign()));
    expect(err.code).toBe('AEGIS_ERR_GRANT_SIGNATURE');
    expect(err.message).toContain('Cannot fetch');
  });

  it('refuses, naming the reason, when the JWKS endpoint answers with an error', async () => {
    const server = http.createServer((_req, res) => res.writeHead(503).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const signer = await createTestSigner({ issuer: base });
      const verifier = await verifierFor({ CONTROL_BASE_URL: base });
      const err = await refusal(verifier.verify(await signer.sign()));
      expect(err.code).toBe('AEGIS_ERR_GRANT_SIGNATURE');
      expect(err.message).toContain('200');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('a pinned JWKS file', () => {
  it('verifies grants without fetching anything', async () => {
    const signer = await createTestSigner();
    const file = path.join(tmpDir(), 'jwks.json');
    fs.writeFileSync(file, JSON.stringify(signer.jwks));
    // Nothing listens at CONTROL_BASE_URL: a fetch would fail.
    const iss = `http://127.0.0.1:${await closedPort()}`;
    const verifier = await verifierFor({ CONTROL_BASE_URL: iss, GRANT_JWKS_FILE: file });
    expect(verifier.keySource).toContain(file);
    await verifier.verify(await signer.sign({ iss }, { key: signer.ed }));
    await verifier.verify(await signer.sign({ iss }, { key: signer.es }));
    const impostor = await makeKey('ES256', signer.es.kid);
    const err = await refusal(verifier.verify(await signer.sign({ iss }, { key: impostor })));
    expect(err.code).toBe('AEGIS_ERR_GRANT_SIGNATURE');
  });

  it('stops the start with AEGIS_ERR_CONFIG when the file is unusable', async () => {
    const signer = await createTestSigner();
    const { d: _d, ...noKid } = { ...signer.ed.publicJwk, kid: undefined };
    const bad = [
      'not json',
      '{"keys":[]}',
      '[]',
      JSON.stringify({ keys: [{ ...signer.ed.publicJwk, x: 'AAAA' }] }),
      JSON.stringify({ keys: [noKid] }),
      JSON.stringify({ keys: [{ kty: 'RSA', kid: 'r', n: 'AQAB', e: 'AQAB' }] }),
    ];
    for (const text of bad) {
      const file = path.join(tmpDir(), 'jwks.json');
      fs.writeFileSync(file, text);
      const err: unknown = await verifierFor({ GRANT_JWKS_FILE: file }).catch((e: unknown) => e);
      expect(isAegisError(err, 'AEGIS_ERR_CONFIG'), text).toBe(true);
    }
    const missing = await verifierFor({ GRANT_JWKS_FILE: path.join(tmpDir(), 'nope.json') }).catch(
      (e: unknown) => e,
    );
    expect(isAegisError(missing, 'AEGIS_ERR_CONFIG')).toBe(true);
  });

  it('refuses a file holding a private key', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const file = path.join(tmpDir(), 'jwks.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: 'k' }] }),
    );
    const err: unknown = await verifierFor({ GRANT_JWKS_FILE: file }).catch((e: unknown) => e);
    expect(isAegisError(err, 'AEGIS_ERR_CONFIG')).toBe(true);
  });
});
