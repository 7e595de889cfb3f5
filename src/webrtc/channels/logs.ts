// The `logs` channel (PROTOCOL §4): nothing before `follow`; then the log from `from`, as bulk
// traffic, then `eof`. One follow per channel: a second one is a protocol error (open a new
// channel — or a new session — to restart from another offset).
import type { ChannelContext, ChannelHandler } from './context.js';
import { streamLog } from './stream-log.js';

export function createLogsHandler(ctx: ChannelContext): ChannelHandler<'logs'> {
  let following = false;
  return {
    open() {},
    frame(frame) {
      switch (frame.type) {
        case 'follow':
          if (following) {
            ctx.protocolError('this channel already follows the log');
            return;
          }
          following = true;
          void streamLog(ctx, frame.from, 'bulk');
          return;
      }
    },
    closed() {
      // ctx.signal aborts the reader.
    },
  };
}
