import { describe, expect, it } from 'vitest';
import {
  attemptAfterClose,
  BACKOFF_BASE_MS,
  BACKOFF_CAP_MS,
  BACKOFF_RESET_AFTER_MS,
  backoffCeiling,
  backoffDelay,
  describeConnectError,
  describeHttpRefusal,
  isAuthFailure,
} from '../src/control/backoff.js';

const target = { host: 'control.example.com', port: '443' };
const withCode = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('backoffDelay', () => {
  it('stays within 0 ≤ d ≤ min(cap, base·2^n) for any random value', () => {
    for (let n = 0; n < 40; n++) {
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** n);
      expect(backoffCeiling(n)).toBe(ceiling);
      for (const r of [0, 1e-9, 0.25, 0.5, 0.999999, Math.random()]) {
        const d = backoffDelay(n, () => r);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  it('doubles from the base and stops at the cap', () => {
    const top = () => 1;
    expect(backoffDelay(0, top)).toBe(500);
    expect(backoffDelay(1, top)).toBe(1000);
    expect(backoffDelay(5, top)).toBe(16_000);
    expect(backoffDelay(6, top)).toBe(BACKOFF_CAP_MS);
    expect(backoffDelay(1000, top)).toBe(BACKOFF_CAP_MS);
    expect(Number.isFinite(backoffDelay(Number.MAX_SAFE_INTEGER, top))).toBe(true);
  });

  it('is full jitter: the random source scales the whole range', () => {
    expect(backoffDelay(3, () => 0)).toBe(0);
    expect(backoffDelay(3, () => 0.5)).toBe(2000);
    // A misbehaving source cannot push the delay out of bounds.
    expect(backoffDelay(3, () => 7)).toBe(4000);
    expect(backoffDelay(3, () => -1)).toBe(0);
  });
});

describe('attemptAfterClose', () => {
  it('resets only after a connection stayed up 60 s', () => {
    expect(attemptAfterClose(7, undefined)).toBe(7);
    expect(attemptAfterClose(7, 1_000)).toBe(7);
    expect(attemptAfterClose(7, BACKOFF_RESET_AFTER_MS - 1)).toBe(7);
    expect(attemptAfterClose(7, BACKOFF_RESET_AFTER_MS)).toBe(0);
    expect(attemptAfterClose(7, 3_600_000)).toBe(0);
  });
});

describe('connect failures', () => {
  it('treats HTTP 401 as an auth failure and other statuses as unreachable', () => {
    expect(isAuthFailure(401)).toBe(true);
    expect(isAuthFailure(403)).toBe(false);
    expect(describeHttpRefusal(401, target)).toMatchObject({
      code: 'AEGIS_ERR_AUTH',
      kind: 'auth',
    });
    expect(describeHttpRefusal(502, target)).toMatchObject({
      code: 'AEGIS_ERR_CONTROL_UNREACHABLE',
      kind: 'http',
    });
  });

  it.each([
    ['ENOTFOUND', 'dns'],
    ['EAI_AGAIN', 'dns'],
    ['ECONNREFUSED', 'refused'],
    ['EHOSTUNREACH', 'unreachable'],
    ['ETIMEDOUT', 'timeout'],
    ['CERT_HAS_EXPIRED', 'tls'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'tls'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls'],
    ['ECONNRESET', 'closed'],
    ['EWHATEVER', 'other'],
  ])('names %s as %s', (code, kind) => {
    const f = describeConnectError(withCode(code), target);
    expect(f).toMatchObject({ code: 'AEGIS_ERR_CONTROL_UNREACHABLE', kind });
    expect(f.message.length).toBeGreaterThan(10);
  });

  it("recognises ws' handshake timeout, which has no code", () => {
    expect(describeConnectError(new Error('Opening handshake has timed out'), target).kind).toBe(
      'timeout',
    );
    expect(describeConnectError('a string', target).kind).toBe('other');
  });
});
