// Clock skew against the control plane, measured from `welcome.server_time` (PROTOCOL §1).
// Grants are checked against this machine's clock (PROTOCOL §2), so a skewed clock turns into
// refused sessions; the link measures it on every connect and says so in words.

/** Above this the operator is warned: grants near the edges of their validity start to fail. */
export const SKEW_WARN_MS = 5_000;
/** Above this grants fail: logged as an error with AEGIS_ERR_CLOCK_SKEW. */
export const SKEW_ERROR_MS = 30_000;

/**
 * server − local, in ms. The server stamped `serverTime` somewhere between our `hello` and its
 * `welcome`; the midpoint of the two local instants is the best single guess for that moment,
 * with an error of at most half the round trip.
 */
export function measureSkew(helloSentAt: number, welcomeAt: number, serverTime: number): number {
  return Math.round(serverTime - (helloSentAt + welcomeAt) / 2);
}

export type SkewVerdict = 'ok' | 'warn' | 'error';

export function skewVerdict(skewMs: number): SkewVerdict {
  const abs = Math.abs(skewMs);
  if (abs > SKEW_ERROR_MS) return 'error';
  if (abs > SKEW_WARN_MS) return 'warn';
  return 'ok';
}

/** The skew and what it breaks, as one sentence an operator can act on. */
export function describeSkew(skewMs: number): string {
  const s = Math.round(Math.abs(skewMs) / 1000);
  // A positive skew means the server's clock is ahead, i.e. this machine is behind.
  const behind = skewMs > 0;
  const consequence = behind
    ? 'grants will look issued in the future (not yet valid) and be refused'
    : "grants will look expired before clients can use them, and this agent's tokens may be refused";
  const verdict = skewVerdict(skewMs);
  const impact =
    verdict === 'error'
      ? consequence
      : 'grants may be refused near the edges of their validity (GRANT_CLOCK_TOLERANCE_S)';
  return `this machine's clock is ${s} s ${behind ? 'behind' : 'ahead of'} the control plane: ${impact}; fix NTP (timedatectl / chrony)`;
}
