// Fault: a generated corpus of forged and mangled grants, beyond the hand-written cases of
// grants.test.ts. A seeded generator starts from a random valid grant and applies one mutation —
// time claims shifted past the tolerance, wrong aud/iss/job/target, bad channels, missing or
// ill-typed claims, alg/typ/kid/crit header changes, signature bit flips, tampered payloads,
// truncations, garbage — and says which AEGIS_ERR_GRANT_* code the verifier must answer. Valid
// grants (some in unusual but legal shapes) are in the mix and must be accepted, and a replayed
// one must be refused the second time.
import { createLocalJWKSet } from 'jose';
import { beforeAll, expect, it } from 'vitest';
import { isAegisError, type ErrorCode } from '../src/errors.js';
import { CHANNEL_LABELS, createGrantVerifier, type GrantVerifier } from '../src/grants/index.js';
import { createLogger } from '../src/log/index.js';
import { seededRandom } from './helpers/fault.js';
import {
  AGENT_ID,
  CONTROL,
  createTestSigner,
  edSign,
  grantConfig,
  handcraft,
  hmacWith,
  type Claims,
  type TestSigner,
} from './helpers/grants.js';
import { createLogSink, type LogSink } from './helpers/log-sink.js';

const SEED = 0x6a7e;
const COUNT = 200;
const T = 1_900_000_000; // "now", in seconds, for the signer and the verifier alike
const TOLERANCE = 5;
const MAX_TTL = 300;
const JOBS: Record<string, { target: string }> = {
  'job-1': { target: 'esp32' },
  'job-2': { target: 'esp32c3' },
};

type Outcome = 'accepted' | ErrorCode;

interface Case {
  kind: string;
  token: string;
  expected: Outcome;
}

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function randomString(r: Rand, min: number, max: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.';
  return Array.from({ length: int(r, min, max) }, () => pick(r, [...alphabet])).join('');
}

let serial = 0;

/** A valid set of claims, drawn at random within every rule. */
function validClaims(r: Rand): Claims {
  const job = pick(r, Object.keys(JOBS));
  const iat = T - int(r, 0, 120) + (r() < 0.1 ? int(r, 0, TOLERANCE) : 0);
  const exp = int(r, Math.max(iat, T) + 1, iat + MAX_TTL);
  const labels = [...CHANNEL_LABELS].filter(() => r() < 0.6);
  const claims: Claims = {
    iss: CONTROL,
    aud: r() < 0.15 ? ['another-agent', AGENT_ID] : AGENT_ID,
    sub: `client-${randomString(r, 1, 12)}`,
    // Unique across the corpus: a repeat would be refused as a replay.
    jti: `${serial++}-${randomString(r, 0, 100)}`.slice(0, int(r, 8, 128)),
    iat,
    exp,
    job,
    target: JOBS[job]!.target,
    channels: labels.length > 0 ? labels : ['control'],
  };
  if (r() < 0.2) claims['nbf'] = T - int(r, -TOLERANCE, 60);
  if (r() < 0.1) claims['note'] = randomString(r, 1, 40); // unknown claims are ignored
  return claims;
}

const b64 = (v: unknown) =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const parts = (token: string) => token.split('.') as [string, string, string];

function flipBit(r: Rand, segment: string): string {
  const bytes = Buffer.from(segment, 'base64url');
  const i = int(r, 0, bytes.length - 1);
  bytes[i] = bytes[i]! ^ (1 << int(r, 0, 7));
  return bytes.toString('base64url');
}

const MALFORMED: ErrorCode = 'AEGIS_ERR_GRANT_MALFORMED';
const SIGNATURE: ErrorCode = 'AEGIS_ERR_GRANT_SIGNATURE';

type Gen = (r: Rand, s: TestSigner) => Omit<Case, 'kind'>[] | Promise<Omit<Case, 'kind'>[]>;

/** Sign `claims` as given (helper defaults are overridden, `undefined` removes a claim). */
const sign = (s: TestSigner, r: Rand, claims: Claims, header: Record<string, unknown> = {}) =>
  s.sign(claims, { key: r() < 0.5 ? s.ed : s.es, header });

const one = (token: string, expected: Outcome) => [{ token, expected }];

const GENERATORS: Record<string, Gen> = {
  async valid(r, s) {
    const header =
      r() < 0.2 ? { typ: pick(r, ['application/aegis-grant+jwt', 'AEGIS-GRANT+JWT']) } : {};
    return one(await sign(s, r, validClaims(r), header), 'accepted');
  },
  async replayed(r, s) {
    const token = await sign(s, r, validClaims(r));
    return [
      { token, expected: 'accepted' },
      { token, expected: 'AEGIS_ERR_GRANT_REPLAYED' },
    ];
  },
  async expired(r, s) {
    const exp = T - TOLERANCE - int(r, 1, 3600);
    const claims = { ...validClaims(r), exp, iat: exp - int(r, 1, MAX_TTL), nbf: undefined };
    return one(await sign(s, r, claims), 'AEGIS_ERR_GRANT_EXPIRED');
  },
  async 'nbf ahead'(r, s) {
    const claims = {
      ...validClaims(r),
      iat: T,
      exp: T + MAX_TTL,
      nbf: T + TOLERANCE + int(r, 1, 250),
    };
    return one(await sign(s, r, claims), 'AEGIS_ERR_GRANT_NOT_YET_VALID');
  },
  async 'iat ahead'(r, s) {
    const iat = T + TOLERANCE + int(r, 1, 200);
    const claims = { ...validClaims(r), iat, exp: iat + int(r, 1, MAX_TTL), nbf: undefined };
    return one(await sign(s, r, claims), 'AEGIS_ERR_GRANT_NOT_YET_VALID');
  },
  async 'ttl over the ceiling'(r, s) {
    const iat = T - int(r, 0, 100);
    const claims = { ...validClaims(r), iat, exp: iat + MAX_TTL + int(r, 1, 100_000) };
    return one(await sign(s, r, claims), 'AEGIS_ERR_GRANT_TTL');
  },
  async audience(r, s) {
    const aud = pick(r, [
      'agent-2',
      `${AGENT_ID} `,
      AGENT_ID.toUpperCase(),
      '',
      ['agent-2', 'agent-3'],
      [],
    ]);
    return one(await sign(s, r, { ...validClaims(r), aud }), 'AEGIS_ERR_GRANT_AUDIENCE');
  },
  async issuer(r, s) {
    const iss = pick(r, [
      `${CONTROL}/`,
      CONTROL.replace('http:', 'https:'),
      CONTROL.replace('7800', '7801'),
      CONTROL.toUpperCase(),
      'https://evil.example',
      '',
    ]);
    return one(await sign(s, r, { ...validClaims(r), iss }), 'AEGIS_ERR_GRANT_ISSUER');
  },
  async 'job not here'(r, s) {
    const claims = { ...validClaims(r), job: `job-${int(r, 3, 99_999)}` };
    return one(await sign(s, r, claims), 'AEGIS_ERR_GRANT_JOB');
  },
  async 'target not the job’s'(r, s) {
    const claims = validClaims(r);
    claims['target'] = pick(r, [
      'esp32s3',
      'esp32p4',
      'esp32c6',
      'ESP32',
      `${String(claims['target'])} `,
    ]);
    return one(await sign(s, r, claims), 'AEGIS_ERR_GRANT_JOB');
  },
  async 'job or target ill-formed'(r, s) {
    const bad = pick(r, [
      { job: '../etc' },
      { job: '.hidden' },
      { job: 'a b' },
      { job: 'j'.repeat(129) },
      { job: 7 },
      { job: ['job-1'] },
      { target: '' },
      { target: 32 },
      { target: null },
    ]);
    return one(await sign(s, r, { ...validClaims(r), ...bad }), MALFORMED);
  },
  async channels(r, s) {
    const channels = pick(r, [
      [],
      ['shell'],
      ['control', 'control'],
      ['logs', 'Logs'],
      'control',
      [1],
      { 0: 'control' },
      [...CHANNEL_LABELS, 'x'],
    ]);
    return one(await sign(s, r, { ...validClaims(r), channels }), 'AEGIS_ERR_GRANT_CHANNELS');
  },
  async 'missing claim'(r, s) {
    const claim = pick(r, ['exp', 'iat', 'jti', 'sub', 'job', 'target', 'channels', 'iss', 'aud']);
    return one(await sign(s, r, { ...validClaims(r), [claim]: undefined }), MALFORMED);
  },
  async 'ill-typed claim'(r, s) {
    const bad = pick(r, [
      { jti: 42 },
      { jti: '' },
      { jti: 'x'.repeat(int(r, 129, 600)) },
      { sub: '' },
      { sub: 12 },
      { iat: String(T) },
      { exp: String(T + 60) },
      { nbf: 'now' },
    ]);
    return one(await sign(s, r, { ...validClaims(r), ...bad }), MALFORMED);
  },
  'alg not allowed'(r, s) {
    const claims = validClaims(r);
    const alg = pick(r, ['none', 'HS256', 'HS512', 'RS256', 'ES384', 'PS256']);
    const token = handcraft(
      { alg, kid: s.ed.kid, typ: 'aegis-grant+jwt' },
      claims,
      alg === 'none' ? () => '' : alg.startsWith('HS') ? hmacWith(s.ed.publicJwk.x!) : edSign(s.ed),
    );
    return one(token, MALFORMED);
  },
  async 'alg and key disagree'(r, s) {
    // A permitted alg naming the other key: no key of that type has this kid.
    const token =
      r() < 0.5
        ? handcraft(
            { alg: 'ES256', kid: s.ed.kid, typ: 'aegis-grant+jwt' },
            validClaims(r),
            edSign(s.ed),
          )
        : await s.sign(validClaims(r), { key: s.ed, header: { kid: s.es.kid } });
    return one(token, SIGNATURE);
  },
  async typ(r, s) {
    const typ = pick(r, ['JWT', 'at+jwt', 'aegis-grant', 'aegis-grant+jws', '', undefined]);
    return one(await sign(s, r, validClaims(r), { typ }), MALFORMED);
  },
  kid(r, s) {
    const [kid, expected] = pick<[unknown, Outcome]>(r, [
      [undefined, MALFORMED],
      ['', MALFORMED],
      [7, MALFORMED],
      ['rotated-away', SIGNATURE],
      [`${s.ed.kid}x`, SIGNATURE],
    ]);
    const token = handcraft(
      { alg: 'EdDSA', typ: 'aegis-grant+jwt', ...(kid === undefined ? {} : { kid }) },
      validClaims(r),
      edSign(s.ed),
    );
    return one(token, expected);
  },
  crit(r, s) {
    const extra = pick(r, [
      { crit: ['x-aegis'], 'x-aegis': 1 },
      { crit: ['exp'] },
      { crit: [] },
      { crit: 'x-aegis' },
    ]);
    const token = handcraft(
      { alg: 'EdDSA', kid: s.ed.kid, typ: 'aegis-grant+jwt', ...extra },
      validClaims(r),
      edSign(s.ed),
    );
    return one(token, MALFORMED);
  },
  async 'signature bit flip'(r, s) {
    const [h, p, sig] = parts(await sign(s, r, validClaims(r)));
    return one(`${h}.${p}.${flipBit(r, sig)}`, SIGNATURE);
  },
  async 'payload tampered'(r, s) {
    const claims = validClaims(r);
    const [h, p, sig] = parts(await sign(s, r, claims));
    const forged = [
      { ...claims, channels: [...CHANNEL_LABELS] },
      { ...claims, job: claims['job'] === 'job-1' ? 'job-2' : 'job-1' },
      { ...claims, exp: (claims['exp'] as number) + 1 },
      { ...claims, sub: 'admin' },
    ]
      .map(b64)
      .filter((x) => x !== p);
    return one(`${h}.${pick(r, forged)}.${sig}`, SIGNATURE);
  },
  async 'header tampered'(r, s) {
    const token = await s.sign(validClaims(r), { key: s.ed });
    const [, p, sig] = parts(token);
    const header = { alg: 'EdDSA', kid: s.ed.kid, typ: 'aegis-grant+jwt', x: int(r, 0, 9) };
    return one(`${b64(header)}.${p}.${sig}`, SIGNATURE);
  },
  'signed non-claims'(r, s) {
    const payload = pick(r, ['[]', '42', '"grant"', 'null', '{"exp":', 'x'.repeat(int(r, 1, 64))]);
    const input = `${b64({ alg: 'EdDSA', kid: s.ed.kid, typ: 'aegis-grant+jwt' })}.${b64(payload)}`;
    return one(`${input}.${edSign(s.ed)(Buffer.from(input)).toString('base64url')}`, MALFORMED);
  },
  async truncated(r, s) {
    const token = await sign(s, r, validClaims(r));
    const [h, p, sig] = parts(token);
    const where = int(r, 0, 2);
    if (where === 0) return one(token.slice(0, int(r, 0, h.length)), MALFORMED);
    if (where === 1)
      return one(token.slice(0, int(r, h.length + 1, h.length + 1 + p.length)), MALFORMED);
    // Inside the signature: a length base64url cannot have is malformed, any other a bad signature.
    const keep = int(r, 0, sig.length - 1);
    return one(`${h}.${p}.${sig.slice(0, keep)}`, keep % 4 === 1 ? MALFORMED : SIGNATURE);
  },
  async garbage(r, s) {
    const token = await sign(s, r, validClaims(r));
    const [h, p, sig] = parts(token);
    const [forged, expected] = pick<[string, Outcome]>(r, [
      ['', MALFORMED],
      [randomString(r, 1, 200), MALFORMED],
      [`${h}.${p}.${sig}.${sig}`, MALFORMED],
      [`${h}.${p}.${sig}.${p}.${sig}`, MALFORMED],
      [`${b64('{"alg":')}.${p}.${sig}`, MALFORMED],
      [`${b64('[]')}.${p}.${sig}`, MALFORMED],
      // A character outside base64url in the signature, a stray pad.
      [`${h}.${p}.+${sig.slice(1)}`, MALFORMED],
      [`${h}.${p}.${sig}=`, MALFORMED],
      // A well-formed JWS whose payload was replaced: the signature no longer covers it.
      [`${h}..${sig}`, SIGNATURE],
      [`${h}.${'A'.repeat(int(r, 1, 8000))}.${sig}`, SIGNATURE],
    ]);
    return one(forged, expected);
  },
};

/** The corpus: every kind in turn (valid ones four times as often), each drawn from the seed. */
async function corpus(s: TestSigner, seed: number, count: number): Promise<Case[]> {
  const r = seededRandom(seed);
  const kinds = [...Object.keys(GENERATORS), 'valid', 'valid', 'valid'];
  const cases: Case[] = [];
  for (let i = 0; cases.length < count; i++) {
    const kind = kinds[i % kinds.length]!;
    for (const c of await GENERATORS[kind]!(r, s)) cases.push({ kind, ...c });
  }
  return cases.slice(0, count);
}

let signer: TestSigner;
let verifier: GrantVerifier;
let sink: LogSink;

beforeAll(async () => {
  signer = await createTestSigner({ nowS: T });
  sink = createLogSink();
  verifier = await createGrantVerifier({
    config: grantConfig({
      GRANT_MAX_TTL_S: String(MAX_TTL),
      GRANT_CLOCK_TOLERANCE_S: String(TOLERANCE),
    }),
    log: createLogger({ destination: sink, level: 'info' }),
    lookupJob: (id) => (Object.hasOwn(JOBS, id) ? JOBS[id] : undefined),
    skewMs: () => undefined,
    keys: createLocalJWKSet(signer.jwks),
    now: () => T * 1000,
  });
});

it(`a generated corpus of ${COUNT} forged and valid grants: each gets exactly the expected outcome`, async () => {
  const t0 = Date.now();
  const cases = await corpus(signer, SEED, COUNT);
  const wrong: string[] = [];
  const byKind = new Map<string, { ok: number; n: number }>();
  let refused = 0;
  let accepted = 0;
  for (const [i, c] of cases.entries()) {
    const before = sink.lines.length;
    let got: Outcome;
    try {
      await verifier.verify(c.token);
      got = 'accepted';
    } catch (err) {
      got = isAegisError(err) ? err.code : 'AEGIS_ERR_INTERNAL';
    }
    // Every answer is one log line: accepted at info, a refusal at warn with its code.
    const lines = sink.lines.slice(before);
    const logged =
      lines.length === 1 &&
      (got === 'accepted'
        ? lines[0]!['level'] === 30
        : lines[0]!['code'] === got && lines[0]!['level'] === 40);
    const ok = got === c.expected && logged;
    if (ok && got === 'accepted') accepted++;
    else if (ok) refused++;
    const k = byKind.get(c.kind) ?? { ok: 0, n: 0 };
    byKind.set(c.kind, { ok: k.ok + (ok ? 1 : 0), n: k.n + 1 });
    if (!ok)
      wrong.push(
        `#${i} ${c.kind}: expected ${c.expected}, got ${got}${logged ? '' : ' (not logged once)'}: ${c.token.slice(0, 80)}`,
      );
  }
  const forged = cases.filter((c) => c.expected !== 'accepted').length;
  // The signature of a refused grant never reaches the log.
  const leaked = cases.filter((c) => {
    const sig = c.token.split('.')[2] ?? '';
    return c.expected !== 'accepted' && sig.length >= 16 && sink.raw.some((l) => l.includes(sig));
  }).length;
  console.log(
    `corpus: ${COUNT} grants (seed ${SEED}), ${forged} forged: ${refused}/${forged} refused with the expected AEGIS_ERR_GRANT_* code; ` +
      `${COUNT - forged} valid: ${accepted}/${COUNT - forged} accepted; ${leaked} signatures in the log; ${Date.now() - t0} ms\n  ` +
      [...byKind].map(([k, v]) => `${k} ${v.ok}/${v.n}`).join(', '),
  );
  expect(wrong).toEqual([]);
  expect(refused).toBe(forged);
  expect(accepted).toBe(COUNT - forged);
  expect(leaked).toBe(0);
  expect(forged).toBeGreaterThanOrEqual(150);
  expect(COUNT - forged).toBeGreaterThanOrEqual(20);
});

// A valid grant whose signature segment is not canonical base64url — whitespace inside or after
// it, or "==" padding: jose decodes base64url forgivingly and would accept it, so the verifier
// insists on the JWS compact serialisation first.
it('a grant with a non-canonical signature encoding is refused as malformed', async () => {
  const r = seededRandom(SEED + 1);
  const variants: [string, (token: string) => string][] = [
    ['trailing newline', (t) => `${t}\n`],
    ['trailing space', (t) => `${t} `],
    ['space inside the signature', (t) => `${t.slice(0, -10)} ${t.slice(-10)}`],
    ['tab inside the signature', (t) => `${t.slice(0, -20)}\t${t.slice(-20)}`],
    ['"==" padding', (t) => `${t}==`],
  ];
  const outcomes: string[] = [];
  for (const [name, mangle] of variants) {
    for (const key of [signer.ed, signer.es]) {
      const token = mangle(await signer.sign(validClaims(r), { key }));
      outcomes.push(
        await verifier.verify(token).then(
          () => `${name} (${key.alg}): accepted`,
          (err: unknown) => `${name} (${key.alg}): ${isAegisError(err) ? err.code : String(err)}`,
        ),
      );
    }
  }
  const accepted = outcomes.filter((o) => o.endsWith('accepted')).length;
  console.log(
    `corpus: ${outcomes.length} grants with a non-canonical signature encoding: ${accepted}/${outcomes.length} accepted`,
  );
  expect(outcomes.filter((o) => !o.endsWith(MALFORMED))).toEqual([]);
});
