// The `artifacts` channel (PROTOCOL §4): `list` → the manifest; `get` → `file`, the bytes from
// `from` in chunks ≤ maxBinary(), then `end`. Names are looked up in the manifest only, never
// joined into a path. Files are read CHUNK_BYTES at a time, each read waiting for room in the
// send queue, so a download holds one chunk in memory whatever the file size. Requests on one
// channel are served one after another, at most MAX_PENDING waiting.
import fs from 'node:fs';
import { AegisError } from '../../errors.js';
import type { ChannelContext, ChannelHandler } from './context.js';
import { wireError } from './context.js';

const MAX_PENDING = 16;

const notYet = () =>
  new AegisError('AEGIS_ERR_ARTIFACT_NOT_FOUND', 'no artifacts yet: the job is building');

export function createArtifactsHandler(ctx: ChannelContext): ChannelHandler<'artifacts'> {
  let chain: Promise<void> = Promise.resolve();
  let pending = 0;

  const enqueue = (work: () => Promise<void>): void => {
    if (pending >= MAX_PENDING) {
      ctx.protocolError(`more than ${MAX_PENDING} artifact requests wait on this channel`);
      return;
    }
    pending++;
    chain = chain.then(async () => {
      try {
        if (!ctx.signal.aborted) await work();
      } catch (err) {
        if (!ctx.signal.aborted) ctx.sendError(wireError(err));
      } finally {
        pending--;
      }
    });
  };

  const get = async (name: string, from: number): Promise<void> => {
    const manifest = ctx.job.manifest();
    if (manifest === undefined) throw notYet();
    const record = manifest.file(name);
    const file = manifest.resolve(name);
    if (from > record.size) {
      throw new AegisError(
        'AEGIS_ERR_PROTOCOL',
        `from ${from} lies beyond the end of ${name} (${record.size} bytes)`,
      );
    }
    const handle = await fs.promises.open(file, 'r');
    let sent = 0;
    try {
      await ctx.sendFrame(
        { type: 'file', name, size: record.size, sha256: record.sha256, from },
        'bulk',
      );
      const chunkBytes = ctx.maxBinary();
      // One buffer for the whole download: sendMessageBinary copies the bytes into
      // libdatachannel's own message, and each send is awaited before the next read. A fresh
      // 16 KiB buffer per chunk (outside Node's pool) left RSS to V8's next collection:
      // +40 MiB while serving 64 MiB.
      const buf = Buffer.allocUnsafe(Math.min(chunkBytes, Math.max(1, record.size - from)));
      let offset = from;
      while (offset < record.size) {
        if (ctx.signal.aborted) return;
        const want = Math.min(buf.length, record.size - offset);
        const { bytesRead } = await handle.read(buf, 0, want, offset);
        if (bytesRead === 0) {
          throw new AegisError(
            'AEGIS_ERR_INTERNAL',
            `artifact ${name} is shorter than its manifest's ${record.size} bytes`,
          );
        }
        await ctx.sendBinary(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead), 'bulk');
        offset += bytesRead;
        sent += bytesRead;
      }
    } finally {
      await handle.close();
    }
    await ctx.sendFrame({ type: 'end', name, bytes: sent }, 'bulk');
  };

  return {
    open() {},
    frame(frame) {
      switch (frame.type) {
        case 'list':
          enqueue(async () => {
            const manifest = ctx.job.manifest();
            if (manifest === undefined) throw notYet();
            await ctx.sendFrame({ type: 'manifest', ...manifest.toBody() }, 'bulk');
          });
          return;
        case 'get':
          enqueue(() => get(frame.name, frame.from));
          return;
      }
    },
    closed() {
      // ctx.signal stops a running download at its next chunk.
    },
  };
}
