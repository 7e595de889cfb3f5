// Reading a received, checksum-verified upload: a listing pass, then extraction into a staging
// directory; in both, every header is checked before tar acts on it and every byte is counted.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Parser, ReadEntry, UnpackSync } from 'tar';
import { AegisError, isAegisError } from '../errors.js';
import {
  entryPathProblem,
  entryTypeProblem,
  metaNameProblem,
  nestedCompressionProblem,
  quoteName,
  sanitizedMode,
  tooLarge,
  unsafe,
  type SourceFormat,
  type SourceLimits,
} from './intake-validate.js';

export interface ExtractOptions {
  /** The complete upload on disk. */
  file: string;
  format: SourceFormat;
  /**
   * Where entries land. scanArchive only resolves names against it; extractArchive needs it to
   * exist, empty, and its caller removes it whatever the outcome.
   */
  staging: string;
  limits: SourceLimits;
  /** Stops the pass between two chunks (the channel closed, the job was canceled). */
  signal?: AbortSignal;
}

export interface ExtractResult {
  /** Files and directories that passed (and, for extractArchive, were written). */
  entries: number;
  /** Sum of the entries' sizes. */
  entryBytes: number;
  /** Bytes of the tar stream (after gunzip), trailing padding included. */
  tarBytes: number;
}

const READ_CHUNK = 64 * 1024;
/** tar sniffs up to 4 bytes for a compression magic; we look at them first. */
const HEAD_BYTES = 4;

/**
 * The listing pass: reads the whole archive through every check without touching the disk, so
 * a hostile or oversized archive is refused before a single file exists.
 */
export async function scanArchive(opts: ExtractOptions): Promise<ExtractResult> {
  const checks = createEntryChecks(opts);
  const parser = new Parser({ ...PARSE_OPTIONS, filter: checks.filter });
  parser.on('entry', (entry: ReadEntry) => entry.resume());
  return pump(opts, parser, checks);
}

/**
 * The extraction pass, with the same checks again. tar's synchronous unpacker on purpose: when
 * a chunk's write returns, every file operation it caused is done, so after a refusal nothing
 * is still writing into the staging directory the caller deletes. The loop turns between chunks.
 */
export async function extractArchive(opts: ExtractOptions): Promise<ExtractResult> {
  const checks = createEntryChecks(opts);
  const unpack = new UnpackSync({
    ...PARSE_OPTIONS,
    cwd: opts.staging,
    preserveOwner: false,
    preservePaths: false,
    // Client clocks mean nothing here, and future mtimes make make-style tools misbehave.
    noMtime: true,
    dmode: 0o755,
    fmode: 0o644,
    filter: checks.filter,
  });
  return pump(opts, unpack, checks);
}

const PARSE_OPTIONS = {
  // Every warning (bad checksum, truncation, an entry tar could not write) fails the archive.
  strict: true,
  // Never let tar open a compressed layer of its own: it would not count those bytes.
  zstd: false,
  brotli: false,
} as const;

interface EntryChecks {
  filter: (path: string, entry: unknown) => boolean;
  /** Hooks the checks that live on parser events. */
  watch(parser: Parser): void;
  /** Throws the first refusal or tar error seen so far. */
  settle(): void;
  /** tar saw its end-of-archive blocks. */
  readonly tarEnded: boolean;
  /** tar finished cleanly. */
  readonly ended: boolean;
  readonly entries: number;
  readonly entryBytes: number;
}

function createEntryChecks({ limits, staging }: ExtractOptions): EntryChecks {
  let refusal: AegisError | undefined;
  let tarError: unknown;
  let entries = 0;
  let entryBytes = 0;
  let tarEnded = false;
  let ended = false;
  const refuse = (err: AegisError): false => {
    refusal ??= err;
    return false;
  };
  return {
    filter: (_path, entry) => {
      if (refusal) return false;
      if (!(entry instanceof ReadEntry))
        return refuse(unsafe('the archive reader saw a non-entry'));
      const problem =
        entryTypeProblem(entry.type, entry.path) ??
        entryPathProblem(entry.path, entry.type, staging);
      if (problem) return refuse(problem);
      entries += 1;
      if (entries > limits.maxEntries) {
        return refuse(tooLarge(`the archive has more than ${limits.maxEntries} entries`));
      }
      entryBytes += entry.size;
      if (entryBytes > limits.maxBytes) {
        return refuse(
          tooLarge(
            `the archive's files add up to more than ${limits.maxBytes} bytes (at ${quoteName(entry.path)})`,
          ),
        );
      }
      entry.mode = sanitizedMode(entry.type, entry.mode);
      return true;
    },
    watch(parser) {
      // Entries tar skips without asking the filter: unknown types, oversized extended headers.
      parser.on('ignoredEntry', (entry: ReadEntry) => {
        refuse(
          entry.meta
            ? unsafe(
                `the archive has an oversized ${entry.type} header before ${quoteName(entry.path)}`,
              )
            : (entryTypeProblem(entry.type, entry.path) ??
                unsafe(`the archive entry ${quoteName(entry.path)} cannot be extracted`)),
        );
      });
      parser.on('meta', (meta: string) => {
        const problem = metaNameProblem(meta);
        if (problem) refuse(problem);
      });
      parser.on('error', (err: unknown) => {
        tarError ??= err;
      });
      // After its end-of-archive blocks tar keeps everything written to it in one growing buffer.
      parser.on('eof', () => {
        tarEnded = true;
      });
      parser.on('end', () => {
        ended = true;
      });
    },
    settle() {
      if (refusal) throw refusal;
      if (tarError !== undefined) throw classify(tarError, staging);
    },
    get tarEnded() {
      return tarEnded;
    },
    get ended() {
      return ended;
    },
    get entries() {
      return entries;
    },
    get entryBytes() {
      return entryBytes;
    },
  };
}

/** Streams the upload (through a counted gunzip) into `parser`, checking after every chunk. */
async function pump(
  opts: ExtractOptions,
  parser: Parser,
  checks: EntryChecks,
): Promise<ExtractResult> {
  const { limits, staging } = opts;
  checks.watch(parser);
  const raw = createReadStream(opts.file, { highWaterMark: READ_CHUNK });
  const source: Readable =
    opts.format === 'tar.gz'
      ? pipeline(raw, createGunzip(), () => {
          // Errors reach us through the iteration below; this only keeps pipeline quiet.
        })
      : raw;
  let tarBytes = 0;
  let head: Buffer | undefined = Buffer.alloc(0);

  const feed = (chunk: Buffer, last: boolean): void => {
    if (head !== undefined) {
      head = Buffer.concat([head, chunk]);
      if (head.length < HEAD_BYTES && !last) return;
      const nested = nestedCompressionProblem(head);
      if (nested) throw nested;
      chunk = head;
      head = undefined;
    }
    parser.write(chunk);
    checks.settle();
  };

  try {
    for await (const data of source) {
      const chunk = data as Buffer;
      opts.signal?.throwIfAborted();
      tarBytes += chunk.length;
      // Counted even past tar's end marker: the cap is on what gunzip produces, not what tar reads.
      if (tarBytes > limits.maxBytes) {
        throw tooLarge(`the archive decompresses to more than ${limits.maxBytes} bytes`);
      }
      if (!checks.tarEnded) feed(chunk, false);
    }
    if (head !== undefined && head.length > 0) feed(Buffer.alloc(0), true);
    parser.end();
    checks.settle();
    if (!checks.ended) throw unsafe('the archive is not a valid tar(.gz): it ended unexpectedly');
    // tar drops a partial header at the end without a word, and every entry after it would be
    // missing from src/: an archive must end with tar's end-of-archive blocks (every tar writer
    // emits them), or it was cut short.
    if (!checks.tarEnded) {
      throw unsafe("the archive is truncated: it ends before tar's end-of-archive blocks");
    }
    return { entries: checks.entries, entryBytes: checks.entryBytes, tarBytes };
  } catch (err) {
    throw classify(err, staging);
  } finally {
    source.destroy();
    raw.destroy();
  }
}

/** Errors that are this machine's problem, not the archive's, even when tar reports them. */
const LOCAL_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS', 'EMFILE', 'ENFILE', 'EIO', 'ENOMEM']);

/**
 * tar and zlib failures are the archive's fault; a full disk or a failing fs is ours. Paths of
 * this machine are cut from the sentence: it goes back to the client.
 */
function classify(err: unknown, staging: string): AegisError {
  if (isAegisError(err)) return err;
  const e = err as NodeJS.ErrnoException & { tarCode?: string };
  const message = (err instanceof Error ? err.message : String(err)).replaceAll(`${staging}/`, '');
  if (err instanceof Error && err.name === 'AbortError') {
    return new AegisError('AEGIS_ERR_CANCELED', 'the source upload was aborted', { cause: err });
  }
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') {
    return new AegisError(
      'AEGIS_ERR_DISK_LOW',
      `no disk space left to extract the archive: ${message}`,
      {
        cause: err,
      },
    );
  }
  if (e.syscall !== undefined) {
    if (e.tarCode === undefined || LOCAL_ERRNOS.has(e.code ?? '')) {
      return new AegisError('AEGIS_ERR_INTERNAL', `extracting the archive failed: ${message}`, {
        cause: err,
      });
    }
    return unsafe(`the archive cannot be extracted: ${message}`, err);
  }
  return unsafe(`the archive is not a valid tar(.gz): ${message}`, err);
}
