// Which offers this agent claims: one pure decision (canClaim), so every rule is tested without
// a network. The daemon gathers the state; this file only decides.
import { findToolchain, isValidIdfSpec, type Toolchain } from '../toolchains/index.js';

export interface Offer {
  jobId: string;
  target: string;
  idf?: string | undefined;
}

export interface ClaimState {
  draining: boolean;
  /** Jobs holding a slot (not terminal) plus claims sent and not yet answered. */
  busy: number;
  maxJobs: number;
  toolchains: readonly Toolchain[];
  preview: boolean;
  diskFreeBytes: number;
  diskFloorBytes: number;
  /** Job ids this agent already holds or has claimed. */
  known: ReadonlySet<string>;
}

export type ClaimReason =
  'draining' | 'capacity' | 'no_toolchain' | 'disk_low' | 'duplicate' | 'bad_offer';

export type ClaimDecision =
  { claim: true; toolchain: Toolchain } | { claim: false; reason: ClaimReason; detail: string };

export function canClaim(offer: Offer, state: ClaimState): ClaimDecision {
  if (state.known.has(offer.jobId)) {
    return {
      claim: false,
      reason: 'duplicate',
      detail: `job ${offer.jobId} is already held or claimed`,
    };
  }
  if (state.draining) return { claim: false, reason: 'draining', detail: 'the agent is draining' };
  if (state.busy >= state.maxJobs) {
    return {
      claim: false,
      reason: 'capacity',
      detail: `${state.busy} of MAX_JOBS=${state.maxJobs} slots in use`,
    };
  }
  if (offer.idf !== undefined && !isValidIdfSpec(offer.idf)) {
    return {
      claim: false,
      reason: 'bad_offer',
      detail: `"${offer.idf}" is not an ESP-IDF version spec`,
    };
  }
  const toolchain = findToolchain(state.toolchains, offer.target, offer.idf, state.preview);
  if (!toolchain) {
    return {
      claim: false,
      reason: 'no_toolchain',
      detail: `no toolchain for ${offer.target}${offer.idf ? ` with ESP-IDF ${offer.idf}` : ''}`,
    };
  }
  if (state.diskFreeBytes < state.diskFloorBytes) {
    return {
      claim: false,
      reason: 'disk_low',
      detail: `${state.diskFreeBytes} bytes free in the work dir, below DISK_FLOOR_BYTES=${state.diskFloorBytes}`,
    };
  }
  return { claim: true, toolchain };
}
