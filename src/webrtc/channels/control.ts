// The `control` channel (PROTOCOL §4): hello on open, a `state` frame on every job state
// change, the manifest once the job succeeded, pong for ping, and cancel.
import { AGENT_VERSION } from '../../version.js';
import type { AnyAgentFrame } from '../frames.js';
import type { ChannelContext, ChannelHandler } from './context.js';

export function stateFrame(ctx: ChannelContext): AnyAgentFrame {
  const exitCode = ctx.job.exitCode();
  const error = ctx.job.error();
  return {
    type: 'state',
    state: ctx.job.state(),
    ...(exitCode === undefined ? {} : { exit_code: exitCode }),
    ...(error === undefined ? {} : { error }),
  };
}

function manifestFrame(ctx: ChannelContext): AnyAgentFrame | undefined {
  const manifest = ctx.job.manifest();
  return manifest === undefined ? undefined : { type: 'manifest', ...manifest.toBody() };
}

export function createControlHandler(ctx: ChannelContext): ChannelHandler<'control'> {
  let unsubscribe: (() => void) | undefined;
  return {
    open() {
      ctx.post({
        type: 'hello',
        job_id: ctx.job.jobId,
        state: ctx.job.state(),
        channels: [...ctx.grant.channels],
        agent_version: AGENT_VERSION,
        limits: {
          send_queue_bytes: ctx.limits.sendQueueBytes,
          chunk_bytes: ctx.limits.chunkBytes,
          source_max_bytes: ctx.limits.sourceMaxBytes,
        },
      });
      // A client reconnecting after the build gets the manifest without asking.
      const initial = manifestFrame(ctx);
      if (initial) ctx.post(initial);
      unsubscribe = ctx.job.onState((state) => {
        ctx.post(stateFrame(ctx));
        if (state === 'succeeded') {
          const manifest = manifestFrame(ctx);
          if (manifest) ctx.post(manifest);
        }
      });
    },
    frame(frame) {
      switch (frame.type) {
        case 'ping':
          ctx.post({ type: 'pong' });
          return;
        case 'cancel':
          ctx.log.info({ job_id: ctx.job.jobId }, 'client canceled the job');
          ctx.job.cancel('client');
          return;
      }
    },
    closed() {
      unsubscribe?.();
      unsubscribe = undefined;
    },
  };
}
