// The replay cache through the verifier: once per jti, across restarts (a new verifier on the
// same STATE_DIR), bounded without evicting live entries. Real files; the clock is injected.
import fs from 'node:fs';
import { createLocalJWKSet } from 'jose';
import { describe, expect, it } from 'vitest';
import type { AgentConfig } from '../src/config/index.js';
import { AegisError, type ErrorCode } from '../src/errors.js';
import { createGrantVerifier, replayFile, type GrantVerifier } from '../src/grants/index.js';
import { createLogger } from '../src/log/index.js';
import { createTestSigner, grantConfig, type TestSigner } from './helpers/grants.js';
import { createLogSink, type LogSink } from './helpers/log-sink.js';

const T = 1_900_000_000;

interface Agent {
  verifier: GrantVerifier;
  sink: LogSink;
  clock: { s: number };
}

/** One agent process: a verifier over `config.stateDir`, with its own clock. */
async function startAgent(config: AgentConfig, signer: TestSigner, atS = T): Promise<Agent> {
  const clock = { s: atS };
  const sink = createLogSink();
  const verifier = await createGrantVerifier({
    config,
    log: createLogger({ destination: sink }),
    lookupJob: () => ({ target: 'esp32' }),
    skewMs: () => 0,
    keys: createLocalJWKSet(signer.jwks),
    now: () => clock.s * 1000,
  });
  return { verifier, sink, clock };
}

async function codeOf(p: Promise<unknown>): Promise<ErrorCode | 'accepted'> {
  try {
    await p;
    return 'accepted';
  } catch (err) {
    expect(err).toBeInstanceOf(AegisError);
    return (err as AegisError).code;
  }
}

function readSnapshot(config: AgentConfig): { version: number; entries: [string, number][] } {
  return JSON.parse(fs.readFileSync(replayFile(config.stateDir), 'utf8')) as {
    version: number;
    entries: [string, number][];
  };
}

describe('grant replay cache', () => {
  it('accepts a jti once, also after a restart, and persists it as a snapshot', async () => {
    const signer = await createTestSigner({ nowS: T });
    const config = grantConfig();
    const a = await startAgent(config, signer);
    const token = await signer.sign({ jti: 'j-1' });
    await a.verifier.verify(token);
    expect(await codeOf(a.verifier.verify(token))).toBe('AEGIS_ERR_GRANT_REPLAYED');
    expect(a.sink.withCode('AEGIS_ERR_GRANT_REPLAYED')[0]).toMatchObject({ jti: 'j-1' });
    expect(readSnapshot(config)).toEqual({ version: 1, entries: [['j-1', T + 60]] });

    const b = await startAgent(config, signer, T + 10);
    expect(await codeOf(b.verifier.verify(token))).toBe('AEGIS_ERR_GRANT_REPLAYED');
  });

  it('lets two racing offers with one grant through exactly once', async () => {
    const signer = await createTestSigner({ nowS: T });
    const a = await startAgent(grantConfig(), signer);
    const token = await signer.sign();
    const codes = await Promise.all([1, 2, 3].map(() => codeOf(a.verifier.verify(token))));
    expect(codes.sort()).toEqual([
      'AEGIS_ERR_GRANT_REPLAYED',
      'AEGIS_ERR_GRANT_REPLAYED',
      'accepted',
    ]);
  });

  it('accepts a jti again once its exp (plus the tolerance) has passed', async () => {
    const signer = await createTestSigner({ nowS: T });
    const a = await startAgent(grantConfig(), signer);
    await a.verifier.verify(await signer.sign({ jti: 'again', exp: T + 60 }));
    a.clock.s = T + 64; // within the tolerance the old token itself is still acceptable
    expect(
      await codeOf(
        a.verifier.verify(await signer.sign({ jti: 'again', iat: T + 64, exp: T + 120 })),
      ),
    ).toBe('AEGIS_ERR_GRANT_REPLAYED');
    a.clock.s = T + 65;
    const again = await signer.sign({ jti: 'again', iat: T + 65, exp: T + 125 });
    expect(await codeOf(a.verifier.verify(again))).toBe('accepted');
  });

  it('purges expired entries when it loads', async () => {
    const signer = await createTestSigner({ nowS: T });
    const config = grantConfig();
    const a = await startAgent(config, signer);
    await a.verifier.verify(await signer.sign({ jti: 'short', exp: T + 10 }));
    await a.verifier.verify(await signer.sign({ jti: 'long', exp: T + 300 }));
    await startAgent(config, signer, T + 100);
    expect(readSnapshot(config).entries).toEqual([['long', T + 300]]);
  });

  it('when full of live ids refuses new grants and keeps every live entry', async () => {
    const signer = await createTestSigner({ nowS: T });
    const config = grantConfig({ REPLAY_CACHE_MAX: '16' });
    const a = await startAgent(config, signer);
    const tokens: string[] = [];
    for (let i = 0; i < 16; i++) {
      tokens.push(await signer.sign({ jti: `live-${i}`, exp: T + 60 + i }));
      await a.verifier.verify(tokens[i]!);
    }
    const err = await a.verifier.verify(await signer.sign({ jti: 'new' })).catch((e: unknown) => e);
    expect((err as AegisError).code).toBe('AEGIS_ERR_SESSION_LIMIT');
    expect((err as AegisError).message).toContain('replay cache is full (16 live grant ids)');
    for (const token of tokens) {
      expect(await codeOf(a.verifier.verify(token))).toBe('AEGIS_ERR_GRANT_REPLAYED');
    }
    expect(readSnapshot(config).entries).toHaveLength(16);
    // The first to expire frees one slot, and only one.
    a.clock.s = T + 65;
    expect(
      await codeOf(a.verifier.verify(await signer.sign({ jti: 'n1', iat: T + 65, exp: T + 125 }))),
    ).toBe('accepted');
    expect(
      await codeOf(a.verifier.verify(await signer.sign({ jti: 'n2', iat: T + 65, exp: T + 125 }))),
    ).toBe('AEGIS_ERR_SESSION_LIMIT');
  });

  it('after losing an unreadable cache, refuses grants issued before the restart', async () => {
    const signer = await createTestSigner({ nowS: T });
    const config = grantConfig();
    const file = replayFile(config.stateDir);
    fs.mkdirSync(`${config.stateDir}/grants`, { recursive: true });
    fs.writeFileSync(file, '{"version":1,"entries":[["torn"');
    const a = await startAgent(config, signer, T + 30);
    expect(a.sink.withCode('AEGIS_ERR_GRANT_REPLAYED')[0]?.['level']).toBe(50);
    expect(fs.readdirSync(`${config.stateDir}/grants`).some((f) => f.includes('.corrupt-'))).toBe(
      true,
    );
    const old = await signer.sign({ iat: T, exp: T + 60 });
    expect(await codeOf(a.verifier.verify(old))).toBe('AEGIS_ERR_GRANT_REPLAYED');
    const fresh = await signer.sign({ iat: T + 30, exp: T + 90 });
    expect(await codeOf(a.verifier.verify(fresh))).toBe('accepted');
  });
});
