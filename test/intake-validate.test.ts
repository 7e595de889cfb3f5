// The intake's pure decisions, one by one: names, types, modes, formats, declarations.
import { describe, expect, it } from 'vitest';
import {
  checkDeclared,
  entryPathProblem,
  entryTypeProblem,
  formatProblem,
  metaNameProblem,
  nestedCompressionProblem,
  quoteName,
  sanitizedMode,
} from '../src/jobs/intake-validate.js';

const root = '/work/jobs/j/.src-staging-x';

describe('entryPathProblem', () => {
  it.each([
    'main/main.c',
    './main/main.c',
    'a/./b',
    'a..b/c..',
    '...',
    'dir with spaces/ünïcødé.c',
    'a\\b.c',
  ])('accepts %j', (name) => {
    expect(entryPathProblem(name, 'File', root)).toBeUndefined();
  });

  it('accepts the root only as a directory', () => {
    expect(entryPathProblem('./', 'Directory', root)).toBeUndefined();
    expect(entryPathProblem('.', 'File', root)?.message).toBe(
      'the archive entry "." would replace the extraction directory',
    );
  });

  it.each([
    ['../evil.c', 'has a ".." path segment'],
    ['a/../../evil', 'has a ".." path segment'],
    ['a/b/..', 'has a ".." path segment'],
    ['..\\evil.c', 'has a ".." path segment'],
    ['a\\..\\..\\evil.c', 'has a ".." path segment'],
    ['/etc/passwd', 'has an absolute path'],
    ['\\\\server\\share', 'has an absolute path'],
    ['C:\\Windows', 'has an absolute path'],
    ['c:evil', 'has an absolute path'],
    ['evil\0.c', 'has a NUL byte in its name'],
    ['', 'empty name'],
  ])('refuses %j', (name, text) => {
    const err = entryPathProblem(name, 'File', root);
    expect(err?.code).toBe('AEGIS_ERR_SOURCE_UNSAFE');
    expect(err?.message).toContain(text);
  });
});

describe('entryTypeProblem', () => {
  it.each(['File', 'OldFile', 'ContiguousFile', 'Directory'])('accepts %s', (type) => {
    expect(entryTypeProblem(type, 'x')).toBeUndefined();
  });
  it.each([
    ['SymbolicLink', 'is a symbolic link'],
    ['Link', 'is a hard link'],
    ['CharacterDevice', 'is a character device'],
    ['BlockDevice', 'is a block device'],
    ['FIFO', 'is a FIFO'],
    ['GNUDumpDir', 'is a GNU dump directory'],
    ['Unsupported', 'is of unsupported type "Unsupported"'],
  ])('refuses %s', (type, text) => {
    expect(entryTypeProblem(type, 'x')?.message).toBe(
      `the archive entry "x" ${text}; only regular files and directories are accepted`,
    );
  });
});

describe('metaNameProblem', () => {
  it('accepts ordinary pax records, xattrs with NULs and NUL-terminated long names', () => {
    expect(metaNameProblem('30 path=some/long/path/file.c\n')).toBeUndefined();
    expect(metaNameProblem('40 SCHILY.xattr.security.selinux=a:b\0\n')).toBeUndefined();
    expect(metaNameProblem('a/very/long/name.c\0\0')).toBeUndefined();
  });
  it('refuses NULs inside names', () => {
    expect(metaNameProblem('20 path=evil\0.c\n')?.code).toBe('AEGIS_ERR_SOURCE_UNSAFE');
    expect(metaNameProblem('30 mtime=1\n20 linkpath=a\0b\n')?.message).toContain('pax linkpath');
    expect(metaNameProblem('evil\0.c\0')?.message).toContain('long name');
  });
});

describe('modes', () => {
  it('keeps the executable bit and nothing special', () => {
    expect(sanitizedMode('File', 0o4755)).toBe(0o755);
    expect(sanitizedMode('File', 0o2010)).toBe(0o755);
    expect(sanitizedMode('File', 0o600)).toBe(0o644);
    expect(sanitizedMode('File', undefined)).toBe(0o644);
    expect(sanitizedMode('Directory', 0o1777)).toBe(0o755);
    expect(sanitizedMode('Directory', 0o000)).toBe(0o755);
  });
});

describe('formats', () => {
  const gzip = Buffer.from([0x1f, 0x8b, 8, 0]);
  const zstd = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
  const tar = Buffer.from('main');
  it('matches the magic to the declared format', () => {
    expect(formatProblem('tar.gz', gzip)).toBeUndefined();
    expect(formatProblem('tar', tar)).toBeUndefined();
    expect(formatProblem('tar.gz', tar)?.code).toBe('AEGIS_ERR_SOURCE_UNSAFE');
    expect(formatProblem('tar', gzip)?.message).toContain('declare it as tar.gz');
    expect(formatProblem('tar', zstd)?.message).toContain('zstd');
    expect(nestedCompressionProblem(gzip)?.message).toContain('compressed twice');
    expect(nestedCompressionProblem(tar)).toBeUndefined();
  });
});

describe('checkDeclared', () => {
  const limits = { maxBytes: 1000, maxEntries: 10 };
  it('refuses a size over the cap with SOURCE_TOO_LARGE', () => {
    expect(() =>
      checkDeclared({ format: 'tar', size: 1001, sha256: 'a'.repeat(64) }, limits),
    ).toThrow(
      expect.objectContaining({
        code: 'AEGIS_ERR_SOURCE_TOO_LARGE',
        message: 'the archive is 1001 bytes, more than the 1000-byte limit (SOURCE_MAX_BYTES)',
      }),
    );
    expect(() =>
      checkDeclared({ format: 'tar', size: 1000, sha256: 'A'.repeat(64) }, limits),
    ).not.toThrow();
  });
});

it('quotes hostile names harmlessly', () => {
  expect(quoteName('a\nb\u001b[31m')).toBe('"a\\nb\\u001b[31m"');
  expect(quoteName('x'.repeat(500)).length).toBeLessThan(210);
});
