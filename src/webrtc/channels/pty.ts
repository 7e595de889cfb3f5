// The `pty` channel (PROTOCOL §4): `attach` streams the terminal output (the log) from an
// offset at interactive priority and sizes the terminal; binary messages are keystrokes
// (≤ 4 KiB each, only while the build runs); `resize` resizes. The router only lets a client
// reach this handler when its grant lists `pty`.
import { PTY_INPUT_MAX_BYTES } from '../frames.js';
import type { ChannelContext, ChannelHandler } from './context.js';
import { streamLog } from './stream-log.js';

const NOT_RUNNING = {
  code: 'AEGIS_ERR_JOB_STATE',
  message: 'No build process runs, so there is no terminal to write to or resize.',
};

export function createPtyHandler(ctx: ChannelContext): ChannelHandler<'pty'> {
  let attached = false;
  return {
    maxBinaryIn: PTY_INPUT_MAX_BYTES,
    open() {},
    frame(frame) {
      switch (frame.type) {
        case 'attach':
          if (attached) {
            ctx.protocolError('this channel is already attached');
            return;
          }
          attached = true;
          // Sizing a finished build's terminal is moot: attach still replays its output.
          ctx.job.ptyResize(frame.cols, frame.rows);
          void streamLog(ctx, frame.from, 'interactive');
          return;
        case 'resize':
          if (!ctx.job.ptyResize(frame.cols, frame.rows)) ctx.sendError(NOT_RUNNING);
          return;
      }
    },
    binary(data) {
      if (!ctx.job.ptyWrite(data)) ctx.sendError(NOT_RUNNING);
    },
    closed() {},
  };
}
