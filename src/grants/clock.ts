// Sentences for grants refused on time: how far off the grant is, and how far this machine's
// clock is from the control plane's (PROTOCOL §2), so the operator can tell a stale grant from a
// clock that needs NTP. The skew is measured by the control link; grants only read it.

/** Below this a measured skew cannot explain a refusal (it is inside any sane tolerance). */
const SKEW_NEGLIGIBLE_MS = 1_000;

/** `skewMs` is server − local: positive means this machine's clock is behind. */
export function describeGrantSkew(skewMs: number | undefined): string {
  if (skewMs === undefined) return 'no clock skew against the control plane measured yet';
  const s = Math.round(Math.abs(skewMs) / 1000);
  if (Math.abs(skewMs) < SKEW_NEGLIGIBLE_MS) {
    return "this machine's clock agrees with the control plane's (within 1 s), so the grant's own times are off: ask the control plane for a new grant";
  }
  return `this machine's clock is ${s} s ${skewMs > 0 ? 'behind' : 'ahead of'} the control plane — fix NTP (timedatectl / chrony)`;
}

export function expiredMessage(expS: number, nowS: number, skewMs: number | undefined): string {
  const ago = Math.max(0, Math.round(nowS - expS));
  return `The grant expired ${ago} s ago; ${describeGrantSkew(skewMs)}.`;
}

export function notYetValidMessage(
  validFromS: number,
  nowS: number,
  skewMs: number | undefined,
): string {
  const ahead = Math.max(0, Math.round(validFromS - nowS));
  return `The grant is not valid for another ${ahead} s; ${describeGrantSkew(skewMs)}.`;
}
