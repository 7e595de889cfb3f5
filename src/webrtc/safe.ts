// Every node-datachannel callback goes through guard(): an exception thrown inside one aborts
// the whole process (`terminate called after throwing an instance of 'Napi::Error'`, exit 134),
// and process.on('uncaughtException') never sees it (node-datachannel#187). A promise a
// callback starts is caught too, so a rejected handler cannot become an unhandled rejection.
import type { Logger } from '../log/index.js';

/** Wraps `fn` so that nothing it throws or rejects with leaves it; failures are logged at error. */
export function guard<A extends unknown[]>(
  log: Logger,
  where: string,
  fn: (...args: A) => unknown,
): (...args: A) => void {
  return (...args: A): void => {
    try {
      const result = fn(...args);
      if (result instanceof Promise) {
        result.catch((err: unknown) => report(log, where, err));
      }
    } catch (err) {
      report(log, where, err);
    }
  };
}

/** Runs `fn` now, swallowing and logging anything it throws (native calls on a closing peer). */
export function attempt(log: Logger, where: string, fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    log.debug({ err, where }, 'node-datachannel call failed');
    return false;
  }
}

function report(log: Logger, where: string, err: unknown): void {
  try {
    log.error({ err, where }, 'webrtc callback failed');
  } catch {
    // A logger that throws must not take the process down either.
  }
}
