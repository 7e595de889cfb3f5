import { decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { isAegisError } from '../src/errors.js';
import { AGENT_TOKEN_TTL_S, createAgentToken } from '../src/control/token.js';

const secret = 'token-test-secret-0123456789';
const key = new TextEncoder().encode(secret);

describe('agent token', () => {
  it('is an HS256 aegis-agent+jwt for aegis-control, valid 60 s', async () => {
    const token = await createAgentToken({ agentId: 'agent-7', secret });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'aegis-agent+jwt' });
    const { payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      audience: 'aegis-control',
      typ: 'aegis-agent+jwt',
      subject: 'agent-7',
    });
    expect(payload.exp! - payload.iat!).toBe(AGENT_TOKEN_TTL_S);
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    // The secret is a key, not a claim.
    expect(token).not.toContain(secret);
    expect(Buffer.from(token.split('.')[1]!, 'base64url').toString()).not.toContain(secret);
  });

  it('does not verify with another secret', async () => {
    const token = await createAgentToken({ agentId: 'agent-7', secret });
    await expect(jwtVerify(token, new TextEncoder().encode('some-other-secret'))).rejects.toThrow();
  });

  it('is fresh every time: a new jti and the current iat', async () => {
    const a = await createAgentToken({ agentId: 'a', secret, nowS: 1_700_000_000 });
    const b = await createAgentToken({ agentId: 'a', secret, nowS: 1_700_000_000 });
    const ja = (await jwtVerify(a, key, { currentDate: new Date(1_700_000_010_000) })).payload;
    const jb = (await jwtVerify(b, key, { currentDate: new Date(1_700_000_010_000) })).payload;
    expect(ja.jti).not.toBe(jb.jti);
    expect(ja.iat).toBe(1_700_000_000);
  });

  it('refuses to sign without a secret, with AEGIS_ERR_CONFIG', async () => {
    const err: unknown = await createAgentToken({ agentId: 'a', secret: undefined }).catch(
      (e: unknown) => e,
    );
    expect(isAegisError(err, 'AEGIS_ERR_CONFIG')).toBe(true);
  });
});
