// The client's three transfers: upload the source, follow the log from an offset, download an
// artifact from an offset. Each is resumable by the caller: offsets are the state.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AegisError } from '../errors.js';
import type { ClientChannel } from './channel.js';
import type { PackedSource } from './pack.js';

const UPLOAD_CHUNK = 16 * 1024;

export async function uploadSource(
  ch: ClientChannel<'source'>,
  src: PackedSource,
  onProgress: (sent: number, total: number) => void,
): Promise<void> {
  ch.sendJson({ type: 'begin', format: src.format, size: src.bytes.length, sha256: src.sha256 });
  for (let off = 0; off < src.bytes.length; off += UPLOAD_CHUNK) {
    await ch.sendBinary(src.bytes.subarray(off, off + UPLOAD_CHUNK));
    onProgress(Math.min(off + UPLOAD_CHUNK, src.bytes.length), src.bytes.length);
  }
  ch.sendJson({ type: 'end' });
  const accepted = await ch.expect(['accepted']);
  if (accepted.sha256 !== src.sha256) {
    throw new AegisError(
      'AEGIS_ERR_SOURCE_CHECKSUM',
      `the agent accepted sha256 ${accepted.sha256}, not ours (${src.sha256})`,
    );
  }
}

/** Streams the log from `from` into `write` until eof; returns the eof frame. */
export async function followLog(
  ch: ClientChannel<'logs'>,
  from: number,
  write: (data: Buffer) => void,
) {
  ch.sendJson({ type: 'follow', from });
  return ch.expect(['eof'], write);
}

/** Artifact names become paths under the output dir only when they cannot leave it. */
export function safeJoin(outDir: string, name: string): string {
  const parts = name.split('/');
  if (
    name.startsWith('/') ||
    name.includes('\\') ||
    name.includes('\0') ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new AegisError(
      'AEGIS_ERR_PROTOCOL',
      `the agent sent an unsafe artifact name: ${JSON.stringify(name)}`,
    );
  }
  return path.join(outDir, ...parts);
}

export interface DownloadResult {
  name: string;
  file: string;
  size: number;
  sha256: string;
  resumedFrom: number;
}

/**
 * Download `name` into outDir, resuming from the bytes already on disk; the sha256 is checked
 * over the whole file (earlier attempts' bytes included).
 */
export async function downloadArtifact(
  ch: ClientChannel<'artifacts'>,
  outDir: string,
  entry: { name: string; size: number; sha256: string },
  onProgress: (bytes: number) => void,
): Promise<DownloadResult> {
  const file = safeJoin(outDir, entry.name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  let have = fs.existsSync(file) ? fs.statSync(file).size : 0;
  if (have > entry.size) {
    fs.truncateSync(file, 0);
    have = 0;
  }
  const fd = fs.openSync(file, have > 0 ? 'r+' : 'w');
  try {
    ch.sendJson({ type: 'get', name: entry.name, from: have });
    const head = await ch.expect(['file']);
    if (head.size !== entry.size || head.sha256 !== entry.sha256 || head.from !== have) {
      throw new AegisError(
        'AEGIS_ERR_PROTOCOL',
        `the agent's header for ${entry.name} does not match its manifest`,
      );
    }
    let pos = have;
    const end = await ch.expect(['end'], (data) => {
      if (pos + data.length > entry.size)
        throw new AegisError('AEGIS_ERR_PROTOCOL', `${entry.name}: more bytes than its size`);
      fs.writeSync(fd, data, 0, data.length, pos);
      pos += data.length;
      onProgress(data.length);
    });
    if (pos !== entry.size || end.bytes !== entry.size - have) {
      throw new AegisError(
        'AEGIS_ERR_PROTOCOL',
        `${entry.name}: got ${pos} of ${entry.size} bytes`,
      );
    }
  } finally {
    fs.closeSync(fd);
  }
  const sha256 = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  if (sha256 !== entry.sha256) {
    fs.rmSync(file, { force: true });
    throw new AegisError(
      'AEGIS_ERR_SOURCE_CHECKSUM',
      `${entry.name}: sha256 ${sha256} does not match the manifest's ${entry.sha256}; removed, retry`,
    );
  }
  return { name: entry.name, file, size: entry.size, sha256, resumedFrom: have };
}
