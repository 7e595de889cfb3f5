// Grant verification end to end: real keys, real JWTs, jose unmocked; the clock is injected.
import { createPublicKey } from 'node:crypto';
import { createLocalJWKSet } from 'jose';
import { describe, expect, it } from 'vitest';
import { AegisError, type ErrorCode } from '../src/errors.js';
import { createGrantVerifier, type GrantVerifier } from '../src/grants/index.js';
import { createLogger } from '../src/log/index.js';
import {
  createTestSigner,
  ED_KID,
  edSign,
  grantConfig,
  handcraft,
  hmacWith,
  makeKey,
  type TestSigner,
} from './helpers/grants.js';
import { createLogSink, type LogSink } from './helpers/log-sink.js';

const T = 1_900_000_000; // a fixed "now" in seconds; every check reads the injected clock

interface Setup {
  signer: TestSigner;
  verifier: GrantVerifier;
  sink: LogSink;
}

async function setup(
  options: { skewMs?: number; jobs?: Record<string, { target: string }> } = {},
): Promise<Setup> {
  const signer = await createTestSigner({ nowS: T });
  const sink = createLogSink();
  const jobs = options.jobs ?? { 'job-1': { target: 'esp32' } };
  const verifier = await createGrantVerifier({
    config: grantConfig(),
    log: createLogger({ destination: sink, level: 'debug' }),
    lookupJob: (id) => (Object.hasOwn(jobs, id) ? jobs[id] : undefined),
    skewMs: () => options.skewMs,
    keys: createLocalJWKSet(signer.jwks),
    now: () => T * 1000,
  });
  return { signer, verifier, sink };
}

async function refused(s: Setup, token: string, code: ErrorCode): Promise<AegisError> {
  const err: unknown = await s.verifier.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AegisError);
  expect((err as AegisError).code).toBe(code);
  // Logged once at warn with the code, never with the token.
  const line = s.sink.lines.at(-1)!;
  expect(line['level']).toBe(40);
  expect(line['code']).toBe(code);
  const signature = token.split('.')[2] ?? '';
  if (signature.length >= 16) expect(s.sink.raw.join('\n')).not.toContain(signature);
  return err as AegisError;
}

describe('grant verification', () => {
  it('accepts an EdDSA grant and returns its claims', async () => {
    const s = await setup();
    const grant = await s.verifier.verify(await s.signer.sign({ jti: 'g-1' }));
    expect(grant).toEqual({
      jti: 'g-1',
      sub: 'client-1',
      job: 'job-1',
      target: 'esp32',
      channels: ['control', 'logs'],
      iat: T,
      exp: T + 60,
      kid: ED_KID,
    });
    expect(s.verifier.issuer).toBe('http://127.0.0.1:7800');
  });

  it('accepts an ES256 grant', async () => {
    const s = await setup();
    const grant = await s.verifier.verify(await s.signer.sign({}, { key: s.signer.es }));
    expect(grant.kid).toBe('es-1');
  });

  it('refuses a signature by another key under a trusted kid', async () => {
    const s = await setup();
    const impostor = await makeKey('EdDSA', ED_KID);
    await refused(s, await s.signer.sign({}, { key: impostor }), 'AEGIS_ERR_GRANT_SIGNATURE');
  });

  it('refuses an unknown kid, naming it', async () => {
    const s = await setup();
    const stranger = await makeKey('EdDSA', 'rotated-away');
    const err = await refused(
      s,
      await s.signer.sign({}, { key: stranger }),
      'AEGIS_ERR_GRANT_SIGNATURE',
    );
    expect(err.message).toMatch(/no key with kid "rotated-away"/i);
  });

  it('refuses alg none', async () => {
    const s = await setup();
    const token = handcraft(
      { alg: 'none', kid: ED_KID, typ: 'aegis-grant+jwt' },
      s.signer.claims(),
      () => '',
    );
    await refused(s, token, 'AEGIS_ERR_GRANT_MALFORMED');
  });

  it('refuses HS256 keyed with the public key (x, and the PEM)', async () => {
    const s = await setup();
    const header = { alg: 'HS256', kid: ED_KID, typ: 'aegis-grant+jwt' };
    const x = s.signer.ed.publicJwk.x!;
    await refused(
      s,
      handcraft(header, s.signer.claims(), hmacWith(x)),
      'AEGIS_ERR_GRANT_MALFORMED',
    );
    const pem = createPublicKey(s.signer.ed.privateKey).export({ type: 'spki', format: 'pem' });
    await refused(
      s,
      handcraft(header, s.signer.claims(), hmacWith(pem)),
      'AEGIS_ERR_GRANT_MALFORMED',
    );
  });

  it('refuses an expired grant and states the measured skew', async () => {
    const s = await setup({ skewMs: 38_000 });
    const err = await refused(
      s,
      await s.signer.sign({ iat: T - 72, exp: T - 12 }),
      'AEGIS_ERR_GRANT_EXPIRED',
    );
    expect(err.message).toContain('expired 12 s ago');
    expect(err.message).toContain("this machine's clock is 38 s behind the control plane");
  });

  it('says when no skew was measured yet', async () => {
    const s = await setup();
    const err = await refused(
      s,
      await s.signer.sign({ iat: T - 100, exp: T - 40 }),
      'AEGIS_ERR_GRANT_EXPIRED',
    );
    expect(err.message).toContain('no clock skew');
  });

  it('refuses a grant issued, or valid only, in the future beyond the tolerance', async () => {
    const s = await setup({ skewMs: -20_000 });
    const early = await refused(
      s,
      await s.signer.sign({ iat: T + 20, exp: T + 80 }),
      'AEGIS_ERR_GRANT_NOT_YET_VALID',
    );
    expect(early.message).toContain('20 s ahead of the control plane');
    await refused(
      s,
      await s.signer.sign({ nbf: T + 30, exp: T + 60 }),
      'AEGIS_ERR_GRANT_NOT_YET_VALID',
    );
  });

  it('accepts grants off by less than GRANT_CLOCK_TOLERANCE_S', async () => {
    const s = await setup();
    await s.verifier.verify(await s.signer.sign({ iat: T + 5, nbf: T + 5, exp: T + 60 }));
    await s.verifier.verify(await s.signer.sign({ iat: T - 60, exp: T - 4 }));
  });

  it('refuses a wrong audience and a wrong issuer', async () => {
    const s = await setup();
    await refused(s, await s.signer.sign({ aud: 'agent-2' }), 'AEGIS_ERR_GRANT_AUDIENCE');
    await refused(
      s,
      await s.signer.sign({ iss: 'https://evil.example' }),
      'AEGIS_ERR_GRANT_ISSUER',
    );
  });

  it('refuses a job not assigned here, and a target that is not the job’s', async () => {
    const s = await setup({ jobs: { 'job-1': { target: 'esp32c3' } } });
    await refused(s, await s.signer.sign({ job: 'job-9' }), 'AEGIS_ERR_GRANT_JOB');
    const err = await refused(s, await s.signer.sign(), 'AEGIS_ERR_GRANT_JOB');
    expect(err.message).toContain('esp32');
    expect(err.message).toContain('esp32c3');
  });

  it('records nothing for a refused grant', async () => {
    const jobs: Record<string, { target: string }> = {};
    const s = await setup({ jobs });
    const token = await s.signer.sign({ jti: 'once' });
    await refused(s, token, 'AEGIS_ERR_GRANT_JOB');
    // The refusal's log line carries the verified ids.
    expect(s.sink.lines.at(-1)).toMatchObject({ jti: 'once', sub: 'client-1', job: 'job-1' });
    // Once the job is assigned, the very same grant is still good: its jti was not burned.
    jobs['job-1'] = { target: 'esp32' };
    expect((await s.verifier.verify(token)).jti).toBe('once');
  });

  it('refuses a TTL above GRANT_MAX_TTL_S', async () => {
    const s = await setup();
    await refused(s, await s.signer.sign({ exp: T + 301 }), 'AEGIS_ERR_GRANT_TTL');
    await s.verifier.verify(await s.signer.sign({ exp: T + 300 }));
  });

  it('refuses empty, unknown, duplicate and non-array channels', async () => {
    const s = await setup();
    for (const channels of [[], ['control', 'shell'], ['logs', 'logs'], 'control', [1]]) {
      await refused(s, await s.signer.sign({ channels }), 'AEGIS_ERR_GRANT_CHANNELS');
    }
  });

  it('refuses missing or ill-typed claims as malformed', async () => {
    const s = await setup();
    for (const claims of [
      { exp: undefined },
      { jti: undefined },
      { iat: undefined },
      { sub: undefined },
      { job: undefined },
      { target: undefined },
      { channels: undefined },
      { jti: 'x'.repeat(129) },
      { jti: 42 },
      { job: '../etc' },
      { target: 7 },
    ]) {
      await refused(s, await s.signer.sign(claims), 'AEGIS_ERR_GRANT_MALFORMED');
    }
    await s.verifier.verify(await s.signer.sign({ jti: 'x'.repeat(128) }));
  });

  it('refuses an unknown crit header, a wrong or missing typ, a missing kid', async () => {
    const s = await setup();
    const crit = handcraft(
      { alg: 'EdDSA', kid: ED_KID, typ: 'aegis-grant+jwt', crit: ['x-aegis'], 'x-aegis': 1 },
      s.signer.claims(),
      edSign(s.signer.ed),
    );
    await refused(s, crit, 'AEGIS_ERR_GRANT_MALFORMED');
    await refused(
      s,
      await s.signer.sign({}, { header: { typ: 'JWT' } }),
      'AEGIS_ERR_GRANT_MALFORMED',
    );
    await refused(
      s,
      await s.signer.sign({}, { header: { typ: undefined } }),
      'AEGIS_ERR_GRANT_MALFORMED',
    );
    await refused(
      s,
      await s.signer.sign({}, { header: { kid: undefined } }),
      'AEGIS_ERR_GRANT_MALFORMED',
    );
  });

  it('refuses garbage', async () => {
    const s = await setup();
    for (const token of ['', 'garbage', 'a.b.c', 'a.b', '....', `${'x'.repeat(50)}.e30.`]) {
      await refused(s, token, 'AEGIS_ERR_GRANT_MALFORMED');
    }
  });
});
