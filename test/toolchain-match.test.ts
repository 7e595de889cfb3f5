import { describe, expect, it } from 'vitest';
import { tc } from './helpers/toolchain.js';
import { isAegisError } from '../src/errors.js';
import { findToolchain, matchToolchain, versionMatches } from '../src/toolchains/index.js';

const installed = [
  tc('v51', '5.1.4', ['esp32', 'esp32c3'], ['linux']),
  tc('v531', '5.3.1', ['esp32', 'esp32c3', 'esp32p4'], ['esp32c5']),
  tc('v532', '5.3.2', ['esp32', 'esp32c3'], []),
];

describe('toolchain matching', () => {
  it('reads idf specs: major, minor (any patch), exact', () => {
    expect(versionMatches('5.3.1', undefined)).toBe(true);
    expect(versionMatches('5.3.1', '5')).toBe(true);
    expect(versionMatches('5.3.1', '5.3')).toBe(true);
    expect(versionMatches('5.3.1', 'v5.3.1')).toBe(true);
    expect(versionMatches('5.3.1', '5.3.2')).toBe(false);
    expect(versionMatches('5.3.1', '5.1')).toBe(false);
    expect(versionMatches('5.13.0', '5.1')).toBe(false);
    expect(versionMatches('5.3.1', 'latest')).toBe(false);
  });

  it('picks the newest install that fits', () => {
    expect(findToolchain(installed, 'esp32c3', undefined, false)?.id).toBe('v532');
    expect(findToolchain(installed, 'esp32c3', '5.3', false)?.id).toBe('v532');
    expect(findToolchain(installed, 'esp32c3', '5.3.1', false)?.id).toBe('v531');
    expect(findToolchain(installed, 'esp32c3', '5.1', false)?.id).toBe('v51');
    expect(findToolchain(installed, 'esp32p4', undefined, false)?.id).toBe('v531');
    expect(findToolchain(installed, 'esp32p4', '5.1', false)).toBeUndefined();
  });

  it('offers preview targets only when allowed', () => {
    expect(findToolchain(installed, 'esp32c5', undefined, false)).toBeUndefined();
    expect(findToolchain(installed, 'esp32c5', undefined, true)?.id).toBe('v531');
  });

  it('explains a miss with AEGIS_ERR_NO_TOOLCHAIN', () => {
    for (const [target, idf] of [
      ['esp32s3', undefined],
      ['esp32c5', undefined],
      ['esp32c3', '6.0'],
      ['esp32c3', 'banana'],
    ] as const) {
      try {
        matchToolchain(installed, target, idf, false);
        expect.unreachable();
      } catch (err) {
        expect(isAegisError(err, 'AEGIS_ERR_NO_TOOLCHAIN')).toBe(true);
      }
    }
    expect(() => matchToolchain([], 'esp32', undefined, false)).toThrow(
      /no toolchain is installed/,
    );
  });
});
