// The `source` channel (PROTOCOL §4): begin → binary chunks → end, answered with `accepted` or
// an `error`. The intake bounds itself (declared size, SOURCE_MAX_BYTES, bytes waiting for the
// disk); this handler holds no chunk: each goes straight into upload.write.
import type { SourceUpload } from '../job-access.js';
import type { ChannelContext, ChannelHandler } from './context.js';
import { wireError } from './context.js';

/** Largest binary message taken: libdatachannel's own maximum (max-message-size 262144). */
const SOURCE_CHUNK_MAX_BYTES = 256 * 1024;

type State =
  | { kind: 'idle' }
  | { kind: 'receiving'; upload: SourceUpload }
  | { kind: 'finishing' }
  /** The upload failed mid-stream: chunks still in flight are dropped until `end`. */
  | { kind: 'failed' }
  | { kind: 'done' };

export function createSourceHandler(ctx: ChannelContext): ChannelHandler<'source'> {
  let state: State = { kind: 'idle' };

  const fail = (upload: SourceUpload, err: unknown, reason: string): void => {
    state = { kind: 'failed' };
    ctx.sendError(wireError(err));
    upload.abort(reason).catch((e: unknown) => ctx.log.warn({ err: e }, 'upload abort failed'));
  };

  return {
    maxBinaryIn: SOURCE_CHUNK_MAX_BYTES,
    open() {},
    frame(frame) {
      switch (frame.type) {
        case 'begin': {
          if (state.kind !== 'idle') {
            ctx.protocolError(`begin while an upload is ${state.kind}`);
            return;
          }
          try {
            const upload = ctx.job.beginSource({
              format: frame.format,
              size: frame.size,
              sha256: frame.sha256.toLowerCase(),
            });
            state = { kind: 'receiving', upload };
          } catch (err) {
            // Still idle: the client may begin again with a corrected declaration.
            ctx.sendError(wireError(err));
          }
          return;
        }
        case 'end': {
          if (state.kind === 'failed') {
            state = { kind: 'done' };
            return;
          }
          if (state.kind !== 'receiving') {
            ctx.protocolError(`end while the upload is ${state.kind}`);
            return;
          }
          const { upload } = state;
          state = { kind: 'finishing' };
          upload.finish().then(
            (result) => {
              state = { kind: 'done' };
              ctx.post({ type: 'accepted', size: result.size, sha256: result.sha256 });
            },
            (err: unknown) => {
              state = { kind: 'done' };
              ctx.sendError(wireError(err));
            },
          );
          return;
        }
      }
    },
    binary(chunk) {
      switch (state.kind) {
        case 'receiving':
          try {
            state.upload.write(chunk);
          } catch (err) {
            fail(state.upload, err, 'the upload was refused mid-stream');
          }
          return;
        case 'failed':
          return;
        case 'idle':
          ctx.protocolError('binary data before begin');
          return;
        case 'finishing':
        case 'done':
          ctx.protocolError('binary data after end');
          return;
      }
    },
    closed() {
      if (state.kind === 'receiving') {
        const { upload } = state;
        state = { kind: 'done' };
        upload
          .abort('the source channel closed mid-upload')
          .catch((e: unknown) => ctx.log.warn({ err: e }, 'upload abort failed'));
      }
      // A finishing upload completes: every byte arrived, the build may start.
    },
  };
}
