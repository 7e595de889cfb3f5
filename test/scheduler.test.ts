import { describe, expect, it } from 'vitest';
import { tc } from './helpers/toolchain.js';
import { canClaim, type ClaimState } from '../src/jobs/scheduler.js';

const base: ClaimState = {
  draining: false,
  busy: 0,
  maxJobs: 2,
  toolchains: [
    tc('v531', '5.3.1', ['esp32', 'esp32c3', 'esp32p4'], ['esp32c5']),
    tc('v514', '5.1.4', ['esp32', 'esp32c3']),
  ],
  preview: false,
  diskFreeBytes: 10e9,
  diskFloorBytes: 2e9,
  known: new Set(),
};

describe('canClaim', () => {
  it('claims a matching offer with the newest fitting toolchain', () => {
    const d = canClaim({ jobId: 'j1', target: 'esp32c3' }, base);
    expect(d.claim && d.toolchain.id).toBe('v531');
    const d51 = canClaim({ jobId: 'j1', target: 'esp32c3', idf: '5.1' }, base);
    expect(d51.claim && d51.toolchain.id).toBe('v514');
  });

  it.each<[string, Partial<ClaimState>, { target: string; idf?: string }, string]>([
    ['wrong target', {}, { target: 'esp32s3' }, 'no_toolchain'],
    ['wrong idf spec', {}, { target: 'esp32c3', idf: '5.2' }, 'no_toolchain'],
    ['target missing in that idf', {}, { target: 'esp32p4', idf: '5.1' }, 'no_toolchain'],
    ['preview target not offered', {}, { target: 'esp32c5' }, 'no_toolchain'],
    ['invalid idf spec', {}, { target: 'esp32c3', idf: 'latest' }, 'bad_offer'],
    ['at capacity', { busy: 2 }, { target: 'esp32c3' }, 'capacity'],
    ['draining', { draining: true }, { target: 'esp32c3' }, 'draining'],
    ['disk low', { diskFreeBytes: 1e9 }, { target: 'esp32c3' }, 'disk_low'],
    ['already known', { known: new Set(['j1']) }, { target: 'esp32c3' }, 'duplicate'],
  ])('does not claim: %s', (_name, patch, offer, reason) => {
    const d = canClaim({ jobId: 'j1', ...offer }, { ...base, ...patch });
    expect(d.claim).toBe(false);
    if (!d.claim) expect(d.reason).toBe(reason);
  });

  it('offers preview targets when allowed', () => {
    expect(canClaim({ jobId: 'j1', target: 'esp32c5' }, { ...base, preview: true }).claim).toBe(
      true,
    );
  });
});
