// Builders of tar archives byte by byte, hostile ones included (the tar package refuses to make
// most of them): raw 512-byte ustar headers with their checksum, pax records, gzip bombs.
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { isAegisError, type AegisError } from '../../src/errors.js';
import {
  createSourceIntake,
  type DeclaredSource,
  type SourceFormat,
  type SourceIntake,
  type SourceIntakeResult,
  type SourceLimits,
} from '../../src/jobs/intake.js';
import { createWorkspace, type WorkspacePaths } from '../../src/jobs/workspace.js';
import { createLogger, type Logger } from '../../src/log/index.js';
import { createLogSink } from './log-sink.js';

const BLOCK = 512;

export interface HeaderSpec {
  name: string;
  /** ustar typeflag: '0' file, '1' hard link, '2' symlink, '3' char dev, '4' block dev, '5' dir, '6' FIFO, 'x' pax, 'L' GNU long name… */
  type?: string;
  size?: number;
  mode?: number;
  linkname?: string;
  prefix?: string;
  devmajor?: number;
  devminor?: number;
  /** Store a wrong checksum, as a corrupt archive would. */
  badChecksum?: boolean;
}

function putString(block: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`"${value}" does not fit ${length} bytes`);
  bytes.copy(block, offset);
}

function putOctal(block: Buffer, offset: number, length: number, value: number): void {
  putString(block, offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
}

/** One 512-byte ustar header with a correct (or deliberately wrong) checksum. */
export function ustarHeader(spec: HeaderSpec): Buffer {
  const block = Buffer.alloc(BLOCK);
  putString(block, 0, 100, spec.name);
  putOctal(block, 100, 8, spec.mode ?? 0o644);
  putOctal(block, 108, 8, 1000);
  putOctal(block, 116, 8, 1000);
  putOctal(block, 124, 12, spec.size ?? 0);
  putOctal(block, 136, 12, 1_700_000_000);
  block.fill(0x20, 148, 156);
  block.write(spec.type ?? '0', 156, 'latin1');
  putString(block, 157, 100, spec.linkname ?? '');
  block.write('ustar\u000000', 257, 'latin1');
  putString(block, 265, 32, 'aegis');
  putString(block, 297, 32, 'aegis');
  putOctal(block, 329, 8, spec.devmajor ?? 0);
  putOctal(block, 337, 8, spec.devminor ?? 0);
  putString(block, 345, 155, spec.prefix ?? '');
  let sum = 0;
  for (const b of block) sum += b;
  if (spec.badChecksum) sum += 1;
  putString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

const pad = (body: Buffer): Buffer =>
  Buffer.concat([body, Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK)]);

/** A header and its body, padded to whole blocks; `size` defaults to the body's length. */
export function entry(spec: HeaderSpec, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const data = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([ustarHeader({ size: data.length, ...spec }), pad(data)]);
}

export const file = (name: string, body: Buffer | string, mode = 0o644): Buffer =>
  entry({ name, mode }, body);

export const dir = (name: string): Buffer => entry({ name, type: '5', mode: 0o755 });

/** A pax extended header: 'x' applies to the next entry, 'g' (global) to all that follow. */
export function paxHeader(records: Record<string, string>, type: 'x' | 'g' = 'x'): Buffer {
  let body = '';
  for (const [key, value] of Object.entries(records)) {
    // Each record is "<len> key=value\n", where <len> counts itself.
    const rest = ` ${key}=${value}\n`;
    let len = Buffer.byteLength(rest) + 1;
    while (String(len).length + Buffer.byteLength(rest) !== len) len += 1;
    body += `${len}${rest}`;
  }
  return entry({ name: `PaxHeader/${type}`, type }, body);
}

/** A GNU long-name ('L') entry: its body is the next entry's path. */
export const gnuLongName = (name: string): Buffer =>
  entry({ name: '././@LongLink', type: 'L' }, `${name}\0`);

/** Entries followed by the two zero blocks that end an archive. */
export const tarOf = (...entries: Buffer[]): Buffer =>
  Buffer.concat([...entries, Buffer.alloc(2 * BLOCK)]);

export const gz = (data: Buffer): Buffer => gzipSync(data, { level: 9 });

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * A gzip stream that inflates to `prefix` followed by `zeros` zero bytes, built without ever
 * holding the inflated data: gzip members concatenate, so one compressed 16 MiB of zeros is
 * repeated. 1 GiB of zeros comes out at about 1 MiB.
 */
export function gzipBomb(prefix: Buffer, zeros: number): Buffer {
  const unit = 16 * 1024 * 1024;
  const unitGz = gzipSync(Buffer.alloc(unit), { level: 9 });
  const members: Buffer[] = [gzipSync(prefix, { level: 9 })];
  let left = zeros;
  while (left >= unit) {
    members.push(unitGz);
    left -= unit;
  }
  if (left > 0) members.push(gzipSync(Buffer.alloc(left), { level: 9 }));
  return Buffer.concat(members);
}

/** A deterministic generator (mulberry32), so a failing chunking can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits `data` into chunks of 1 byte to `max` bytes, sizes drawn from `random`. */
export function randomChunks(data: Buffer, random: () => number, max = 64 * 1024): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length;) {
    // A quarter of the chunks are tiny (1-16 bytes) so headers and gzip magic get split.
    const size =
      random() < 0.25 ? 1 + Math.floor(random() * 16) : 1 + Math.floor(random() ** 2 * max);
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** What a test needs after feeding an archive through a real intake in a real workspace. */
export interface Fed {
  paths: WorkspacePaths;
  result?: SourceIntakeResult;
  /** The AegisError from createSourceIntake, write() or finish(). */
  error?: AegisError;
  /** Where it came from. */
  failedAt?: 'create' | 'write' | 'finish';
  ms: number;
}

export interface FeedOptions {
  format: SourceFormat;
  declared?: Partial<DeclaredSource>;
  limits?: Partial<SourceLimits>;
  /** Default: the archive in one chunk. */
  chunks?: Buffer[];
  jobId?: string;
  log?: Logger;
  /** Deliver at most this many bytes a second, as a real channel would; default: at once. */
  bytesPerSecond?: number;
}

/**
 * Feeds `archive` like the source channel does: create, write every chunk, finish; a write()
 * that throws ends the upload the way a closing channel would, with abort().
 */
export async function feedArchive(
  workDir: string,
  archive: Buffer,
  opts: FeedOptions,
): Promise<Fed> {
  const paths = await createWorkspace(workDir, opts.jobId ?? 'job-1');
  const started = performance.now();
  const done = (rest: Omit<Fed, 'paths' | 'ms'>): Fed => ({
    paths,
    ms: performance.now() - started,
    ...rest,
  });
  let intake: SourceIntake;
  try {
    intake = createSourceIntake({
      paths,
      declared: {
        format: opts.format,
        size: archive.length,
        sha256: sha256(archive),
        ...opts.declared,
      },
      limits: { maxBytes: 64 * 1024 * 1024, maxEntries: 50_000, ...opts.limits },
      log: opts.log ?? createLogger({ destination: createLogSink(), level: 'silent' }),
    });
  } catch (err) {
    if (!isAegisError(err)) throw err;
    return done({ error: err, failedAt: 'create' });
  }
  let sent = 0;
  for (const chunk of opts.chunks ?? [archive]) {
    if (opts.bytesPerSecond !== undefined) {
      const due = started + (sent / opts.bytesPerSecond) * 1000 - performance.now();
      // Each message is its own callback on a real channel: the loop turns between them.
      await new Promise((resolve) => (due > 0 ? setTimeout(resolve, due) : setImmediate(resolve)));
    }
    sent += chunk.length;
    try {
      intake.write(chunk);
    } catch (err) {
      if (!isAegisError(err)) throw err;
      await intake.abort(err);
      return done({ error: err, failedAt: 'write' });
    }
  }
  try {
    return done({ result: await intake.finish() });
  } catch (err) {
    if (!isAegisError(err)) throw err;
    return done({ error: err, failedAt: 'finish' });
  }
}

/** Everything a refused upload might have left: files in src/, staging dirs, upload files. */
export async function leftovers(paths: WorkspacePaths): Promise<string[]> {
  const list = async (dir: string): Promise<string[]> => {
    try {
      return await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  };
  const src = (await list(paths.src)).map((n) => `src/${n}`);
  const staging = (await list(paths.root)).filter((n) => n.startsWith('.src-staging'));
  const upload = (await list(paths.upload)).map((n) => `upload/${n}`);
  return [...src, ...staging, ...upload];
}
