// merged.bin: every flash file at its offset, gaps filled with 0xFF (erased flash), starting at
// 0x0 so one write at 0x0 flashes the whole image. Written in one streaming pass that also hashes
// each input, so no file is held in memory whole and none is read twice.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { AegisError } from '../errors.js';
import { hex } from './flasher-args.js';

/** The largest merged.bin written: beyond any ESP32 flash, so a larger one is a broken build. */
export const MERGED_MAX_BYTES = 256 * 1024 * 1024;

/** Bytes per read and per 0xFF fill write. */
const CHUNK = 64 * 1024;

export interface MergeInput {
  name: string;
  /** Real path, already checked to lie inside the build dir. */
  path: string;
  offset: number;
  /** From stat; the bytes read must match it. */
  size: number;
}

export interface Digest {
  size: number;
  sha256: string;
}

/** Throws AEGIS_ERR_BUILD_FAILED naming the first two files that overlap (inputs sorted by offset). */
export function checkLayout(files: readonly MergeInput[], maxBytes = MERGED_MAX_BYTES): void {
  for (let i = 1; i < files.length; i++) {
    const prev = files[i - 1] as MergeInput;
    const cur = files[i] as MergeInput;
    if (prev.offset + prev.size > cur.offset) {
      throw new AegisError(
        'AEGIS_ERR_BUILD_FAILED',
        `Flash files overlap: ${prev.name} (${hex(prev.offset)}, ${prev.size} bytes) runs into ${cur.name} at ${hex(cur.offset)}.`,
      );
    }
  }
  const last = files[files.length - 1];
  if (last && last.offset + last.size > maxBytes) {
    throw new AegisError(
      'AEGIS_ERR_BUILD_FAILED',
      `Flash image would end at ${hex(last.offset + last.size)}, beyond the ${maxBytes} bytes any ESP32 flash holds.`,
    );
  }
}

/** sha256 and size of one file, read in chunks. */
export async function hashFile(file: string): Promise<Digest> {
  const hash = createHash('sha256');
  let size = 0;
  const handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return { size, sha256: hash.digest('hex') };
}

/**
 * Writes merged.bin to `out` (via a temporary name, so a half-written image is never served)
 * and returns its digest and each input's, by name. `files` must be sorted and checkLayout'ed.
 */
export async function writeMerged(
  files: readonly MergeInput[],
  out: string,
): Promise<{ merged: Digest; inputs: Map<string, Digest> }> {
  checkLayout(files);
  const partial = `${out}.partial`;
  const handle = await fs.promises.open(partial, 'w', 0o644);
  const mergedHash = createHash('sha256');
  const inputs = new Map<string, Digest>();
  let position = 0;
  const emit = async (bytes: Buffer) => {
    mergedHash.update(bytes);
    await handle.write(bytes, 0, bytes.length, position);
    position += bytes.length;
  };
  try {
    const fill = Buffer.alloc(CHUNK, 0xff);
    const buf = Buffer.allocUnsafe(CHUNK);
    for (const f of files) {
      while (position < f.offset)
        await emit(fill.subarray(0, Math.min(CHUNK, f.offset - position)));
      inputs.set(f.name, await copyInto(f, buf, emit));
    }
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.promises.rm(partial, { force: true });
    throw err;
  }
  await handle.close();
  await fs.promises.rename(partial, out);
  return { merged: { size: position, sha256: mergedHash.digest('hex') }, inputs };
}

async function copyInto(
  f: MergeInput,
  buf: Buffer,
  emit: (bytes: Buffer) => Promise<void>,
): Promise<Digest> {
  const hash: Hash = createHash('sha256');
  let size = 0;
  const src = await fs.promises.open(f.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    for (;;) {
      const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, f.size - size + 1), null);
      if (bytesRead === 0) break;
      const bytes = buf.subarray(0, bytesRead);
      size += bytesRead;
      if (size > f.size) break;
      hash.update(bytes);
      await emit(bytes);
    }
  } finally {
    await src.close();
  }
  if (size !== f.size) {
    throw new AegisError(
      'AEGIS_ERR_BUILD_FAILED',
      `Flash file ${f.name} changed while merged.bin was written (${size} bytes, expected ${f.size}).`,
    );
  }
  return { size, sha256: hash.digest('hex') };
}
