// Streams a job's log from an offset into a channel (shared by `logs` and `pty`): the spool's
// bytes as binary messages through the send queue, then `eof` once the build ended and every
// byte was sent. The send queue's backpressure stops the reads; the spool keeps the rest.
import type { JobState } from '../../control/messages.js';
import { TERMINAL_STATES } from '../../control/messages.js';
import { followLog } from '../../jobs/logspool-reader.js';
import type { SessionJob } from '../job-access.js';
import type { Priority } from '../send-queue.js';
import type { ChannelContext } from './context.js';
import { wireError } from './context.js';

/** Resolves true once the job is terminal, false if `signal` aborts first. */
export function whenTerminal(job: SessionJob, signal: AbortSignal): Promise<boolean> {
  const done = (s: JobState) => TERMINAL_STATES.has(s);
  if (done(job.state())) return Promise.resolve(true);
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const finish = (value: boolean) => {
      unsubscribe();
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onAbort = () => finish(false);
    const unsubscribe = job.onState((s) => {
      if (done(s)) finish(true);
    });
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export async function streamLog(
  ctx: ChannelContext,
  from: number,
  priority: Priority,
): Promise<void> {
  try {
    const reader = ctx.job.logReader(from);
    const result = await followLog({
      reader,
      send: (chunk) => ctx.sendBinary(chunk, priority),
      chunkBytes: ctx.maxBinary(),
      signal: ctx.signal,
    });
    if (result.end !== 'eof') return;
    // The spool closes when the build process ends; the state follows once artifacts are in.
    if (!(await whenTerminal(ctx.job, ctx.signal))) return;
    const exitCode = ctx.job.exitCode();
    await ctx.sendFrame(
      {
        type: 'eof',
        size: ctx.job.logSize(),
        state: ctx.job.state(),
        ...(exitCode === undefined ? {} : { exit_code: exitCode }),
      },
      priority,
    );
  } catch (err) {
    if (ctx.signal.aborted) return;
    ctx.sendError(wireError(err));
  }
}
