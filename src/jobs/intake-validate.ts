// The source intake's decisions, as pure functions: what a begin frame may declare, what the
// first bytes must look like, which archive entries are refused and why, and the modes kept.
import path from 'node:path';
import { AegisError } from '../errors.js';

export type SourceFormat = 'tar' | 'tar.gz';

/** What the client's `begin` frame declared (PROTOCOL §4 `source`). */
export interface DeclaredSource {
  format: SourceFormat;
  /** Bytes of the archive as sent (compressed size for tar.gz). */
  size: number;
  /** sha256 of those bytes, hex. */
  sha256: string;
}

export interface SourceLimits {
  /** SOURCE_MAX_BYTES: the upload, the entries' sizes and the decompressed stream, each. */
  maxBytes: number;
  /** SOURCE_MAX_ENTRIES: files and directories in the archive. */
  maxEntries: number;
}

/** Entry types that may be extracted; every other type refuses the whole archive. */
const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory']);

const TYPE_WORDS: Record<string, string> = {
  SymbolicLink: 'a symbolic link',
  Link: 'a hard link',
  CharacterDevice: 'a character device',
  BlockDevice: 'a block device',
  FIFO: 'a FIFO',
  GNUDumpDir: 'a GNU dump directory',
  SparseFile: 'a sparse file',
};

const GZIP_MAGIC = [0x1f, 0x8b] as const;
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd] as const;

const startsWith = (head: Uint8Array, magic: readonly number[]): boolean =>
  head.length >= magic.length && magic.every((b, i) => head[i] === b);

/** An entry's name, quoted and shortened so a hostile name cannot forge log lines or flood them. */
export function quoteName(name: string): string {
  const shown = name.length > 200 ? `${name.slice(0, 200)}…` : name;
  return JSON.stringify(shown);
}

export const unsafe = (message: string, cause?: unknown): AegisError =>
  new AegisError('AEGIS_ERR_SOURCE_UNSAFE', message, cause === undefined ? {} : { cause });

export const tooLarge = (message: string): AegisError =>
  new AegisError('AEGIS_ERR_SOURCE_TOO_LARGE', message);

/** The begin frame's declarations are checked again here: the intake must not trust its caller. */
export function checkDeclared(declared: DeclaredSource, limits: SourceLimits): void {
  if (declared.format !== 'tar' && declared.format !== 'tar.gz') {
    throw new AegisError(
      'AEGIS_ERR_PROTOCOL',
      `unknown source format ${quoteName(declared.format)}`,
    );
  }
  if (!Number.isSafeInteger(declared.size) || declared.size < 0) {
    throw new AegisError(
      'AEGIS_ERR_PROTOCOL',
      `declared size ${String(declared.size)} is not a byte count`,
    );
  }
  if (!/^[0-9a-fA-F]{64}$/.test(declared.sha256)) {
    throw new AegisError('AEGIS_ERR_PROTOCOL', 'declared sha256 is not 64 hex digits');
  }
  if (declared.size > limits.maxBytes) {
    throw tooLarge(
      `the archive is ${declared.size} bytes, more than the ${limits.maxBytes}-byte limit (SOURCE_MAX_BYTES)`,
    );
  }
}

/**
 * The first bytes of the upload against the declared format. A gzip member sent as `tar`
 * must not reach the tar parser: it would decompress it itself, outside our byte cap.
 */
export function formatProblem(format: SourceFormat, head: Uint8Array): AegisError | undefined {
  const gzip = startsWith(head, GZIP_MAGIC);
  if (format === 'tar.gz' && !gzip) {
    return unsafe('the archive was declared tar.gz but is not gzip data (no 1f 8b magic)');
  }
  if (format === 'tar' && gzip) {
    return unsafe('the archive was declared tar but is gzip-compressed; declare it as tar.gz');
  }
  if (format === 'tar' && startsWith(head, ZSTD_MAGIC)) {
    return unsafe('the archive is zstd-compressed; only tar and tar.gz are accepted');
  }
  return undefined;
}

/** The start of the (decompressed) tar stream: a compressed layer inside would escape the caps. */
export function nestedCompressionProblem(head: Uint8Array): AegisError | undefined {
  if (startsWith(head, GZIP_MAGIC) || startsWith(head, ZSTD_MAGIC)) {
    return unsafe('the archive is compressed twice; send one tar, gzipped at most once');
  }
  return undefined;
}

/** Why an entry of this type is refused, or undefined for a regular file or directory. */
export function entryTypeProblem(type: string, name: string): AegisError | undefined {
  if (ALLOWED_TYPES.has(type)) return undefined;
  const what = TYPE_WORDS[type] ?? `of unsupported type ${quoteName(type)}`;
  return unsafe(
    `the archive entry ${quoteName(name)} is ${what}; only regular files and directories are accepted`,
  );
}

/**
 * Why an entry's name is refused, or undefined when it lands strictly inside `root`. Both
 * separators count, so a Windows-made `..\evil` is caught on Linux too.
 */
export function entryPathProblem(name: string, type: string, root: string): AegisError | undefined {
  const q = quoteName(name);
  if (name.includes('\0')) return unsafe(`the archive entry ${q} has a NUL byte in its name`);
  if (name === '') return unsafe('the archive has an entry with an empty name');
  if (/^[/\\]/.test(name) || /^[A-Za-z]:/.test(name)) {
    return unsafe(`the archive entry ${q} has an absolute path`);
  }
  if (name.split(/[/\\]+/).includes('..')) {
    return unsafe(`the archive entry ${q} has a ".." path segment`);
  }
  const target = path.resolve(root, name);
  if (target === root) {
    // `./` as the first directory is how `tar -C dir .` starts; anything else there is not.
    return type === 'Directory'
      ? undefined
      : unsafe(`the archive entry ${q} would replace the extraction directory`);
  }
  if (!target.startsWith(root + path.sep)) {
    return unsafe(`the archive entry ${q} would land outside the extraction directory`);
  }
  return undefined;
}

/**
 * tar cuts names at the first NUL of an extended header (pax path, GNU long name) without a
 * word; another tar may not, so such an archive means two different things. Refused. Other
 * pax values (xattrs) may hold NULs legitimately.
 */
export function metaNameProblem(meta: string): AegisError | undefined {
  if (/^\d+ [^=\s]+=/.test(meta)) {
    for (const m of meta.matchAll(/(?:^|\n)\d+ (path|linkpath)=([^\n]*)/g)) {
      const [, key = 'path', value = ''] = m;
      if (value.includes('\0')) {
        return unsafe(`the archive has a pax ${key} with a NUL byte in it: ${quoteName(value)}`);
      }
    }
    return undefined;
  }
  const name = meta.replace(/\0+$/, '');
  if (name.includes('\0')) {
    return unsafe(`the archive has a long name with a NUL byte in it: ${quoteName(name)}`);
  }
  return undefined;
}

/** Modes on disk: 0755 for directories and executables, 0644 for other files; no setuid, sticky… */
export function sanitizedMode(type: string, mode: number | undefined): number {
  if (type === 'Directory') return 0o755;
  return (mode ?? 0) & 0o111 ? 0o755 : 0o644;
}
