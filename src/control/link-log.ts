// What the control link tells the operator, and how it shields itself from the daemon's
// callbacks: one line per connect-failure streak, clock skew in words, the outbox found at
// start, and callbacks that may throw or reject without ever reaching the link's own code.
import { AegisError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { ConnectFailure, ConnectFailureKind } from './backoff.js';
import type { Outbox } from './outbox.js';
import { describeSkew, skewVerdict } from './skew.js';

/**
 * A failure streak runs from the first failed attempt to the next `welcome`. Its first failure
 * (and a later one only if the cause changes) is logged at warn — error for a refused token —
 * and the rest at debug, so an outage of hours is one line, not thousands.
 */
export class FailureStreak {
  private loggedKind: ConnectFailureKind | undefined;

  constructor(
    private readonly log: Logger,
    private readonly url: string,
  ) {}

  failed(f: ConnectFailure, attempt: number): void {
    const fields = { code: f.code, kind: f.kind, url: this.url, attempt };
    if (this.loggedKind === f.kind) {
      this.log.debug(fields, f.message);
      return;
    }
    this.loggedKind = f.kind;
    if (f.code === 'AEGIS_ERR_AUTH') this.log.error(fields, f.message);
    else this.log.warn(fields, f.message);
  }

  /** Connected: the next failure starts a new streak and is logged again. */
  reset(): void {
    this.loggedKind = undefined;
  }
}

/** Warn above 5 s, error above 30 s, both with AEGIS_ERR_CLOCK_SKEW and the consequence spelled out. */
export function logSkew(log: Logger, skewMs: number): void {
  const verdict = skewVerdict(skewMs);
  if (verdict === 'ok') return;
  const fields = { code: 'AEGIS_ERR_CLOCK_SKEW', skew_ms: skewMs };
  if (verdict === 'error') log.error(fields, describeSkew(skewMs));
  else log.warn(fields, describeSkew(skewMs));
}

/**
 * Run a daemon callback: a throw, or the rejection of a callback written as async, becomes an
 * AEGIS_ERR_INTERNAL error line; the link goes on either way.
 */
export function guarded(log: Logger, name: string, fn: () => unknown): void {
  const report = (err: unknown) =>
    log.error(
      { code: 'AEGIS_ERR_INTERNAL', err },
      `the daemon's ${name} callback failed; the control link goes on`,
    );
  try {
    const result = fn();
    if (result instanceof Promise) result.catch(report);
  } catch (err) {
    report(err);
  }
}

/**
 * Load the outbox at start; resolves with the reason it is unusable (then job reports are
 * refused, the link itself still runs), never rejects.
 */
export async function loadOutbox(outbox: Outbox, log: Logger): Promise<AegisError | undefined> {
  try {
    const r = await outbox.load();
    if (r.skippedLines > 0) {
      log.warn(
        { file: outbox.file, skipped: r.skippedLines },
        'skipped unreadable lines of the control outbox (a write cut short by a crash)',
      );
    }
    if (r.pending > 0) {
      log.info(
        { pending: r.pending, last_seq: r.lastSeq },
        'job updates wait to be re-sent to the control plane',
      );
    }
    return undefined;
  } catch (err) {
    const e = new AegisError(
      'AEGIS_ERR_CONFIG',
      `cannot open the control outbox ${outbox.file} (${(err as Error).message}): STATE_DIR must be a directory the agent can write; job reports cannot be queued`,
      { cause: err },
    );
    log.error({ code: e.code }, e.message);
    return e;
  }
}
