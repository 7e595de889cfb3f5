import { describe, expect, it } from 'vitest';
import {
  describeSkew,
  measureSkew,
  SKEW_ERROR_MS,
  SKEW_WARN_MS,
  skewVerdict,
} from '../src/control/skew.js';

describe('clock skew', () => {
  it('measures server − local against the midpoint of hello and welcome', () => {
    expect(measureSkew(1_000, 1_200, 1_100)).toBe(0);
    expect(measureSkew(1_000, 1_200, 41_100)).toBe(40_000);
    expect(measureSkew(1_000, 1_200, 1_100 - 8_000)).toBe(-8_000);
  });

  it('warns above 5 s and errs above 30 s, either direction', () => {
    expect(skewVerdict(0)).toBe('ok');
    expect(skewVerdict(SKEW_WARN_MS)).toBe('ok');
    expect(skewVerdict(SKEW_WARN_MS + 1)).toBe('warn');
    expect(skewVerdict(-8_000)).toBe('warn');
    expect(skewVerdict(SKEW_ERROR_MS + 1)).toBe('error');
    expect(skewVerdict(-40_000)).toBe('error');
  });

  it('says which way the clock is off', () => {
    expect(describeSkew(40_000)).toContain('40 s behind');
    expect(describeSkew(-40_000)).toContain('40 s ahead');
  });
});
