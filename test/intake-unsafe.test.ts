// Hostile archives: every one is refused whole, with the right code, and leaves nothing behind.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../src/errors.js';
import {
  dir,
  entry,
  feedArchive,
  file,
  gnuLongName,
  gz,
  gzipBomb,
  leftovers,
  paxHeader,
  tarOf,
  ustarHeader,
  type Fed,
} from './helpers/archives.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

let tmp: string;
let workDir: string;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aegis-intake-unsafe-'));
  workDir = path.join(tmp, 'work');
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function expectRefused(fed: Fed, code: ErrorCode, text?: string | RegExp): Promise<void> {
  expect(fed.result).toBeUndefined();
  expect(fed.error?.code).toBe(code);
  if (text !== undefined) expect(fed.error?.message).toMatch(text);
  expect(await leftovers(fed.paths)).toEqual([]);
}

describe('entries that are refused, both as tar and as tar.gz', () => {
  const cases: [string, Buffer, ErrorCode, string | RegExp][] = [
    [
      'a ../ slip',
      tarOf(file('ok.c', 'x'), file('../evil.c', 'evil')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"../evil.c" has a ".." path segment',
    ],
    [
      'a deeper ../ slip',
      tarOf(file('a/../../evil', 'evil')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"a/../../evil" has a ".." path segment',
    ],
    [
      'a Windows ..\\ slip',
      tarOf(file('..\\evil.c', 'evil')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      'has a ".." path segment',
    ],
    [
      'an absolute path',
      tarOf(file('/etc/passwd', 'root::0:0')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"/etc/passwd" has an absolute path',
    ],
    [
      'a drive-letter path',
      tarOf(file('C:\\evil.c', 'x')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      'has an absolute path',
    ],
    [
      'a ../ slip in a pax path',
      tarOf(paxHeader({ path: '../../pax-evil' }), file('benign.c', 'x')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"../../pax-evil" has a ".." path segment',
    ],
    [
      'a ../ slip in a GNU long name',
      tarOf(
        gnuLongName(
          `${'d/'.repeat(60)}../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../evil`,
        ),
        file('benign.c', 'x'),
      ),
      'AEGIS_ERR_SOURCE_UNSAFE',
      'has a ".." path segment',
    ],
    [
      'a NUL in a pax path',
      tarOf(paxHeader({ path: 'evil.c\u0000/../../x' }), file('benign.c', 'x')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      'the archive has a pax path with a NUL byte in it: "evil.c\\u0000/../../x"',
    ],
    [
      'a NUL in a GNU long name',
      tarOf(gnuLongName('evil.c\u0000.txt'), file('benign.c', 'x')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      'the archive has a long name with a NUL byte in it',
    ],
    [
      'a symlink',
      tarOf(dir('main/'), entry({ name: 'main/etc', type: '2', linkname: '/etc' })),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"main/etc" is a symbolic link; only regular files and directories are accepted',
    ],
    [
      'a relative symlink',
      tarOf(entry({ name: 'up', type: '2', linkname: '..' })),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"up" is a symbolic link',
    ],
    [
      'a hard link',
      tarOf(file('main.c', 'int main;'), entry({ name: 'hl', type: '1', linkname: 'main.c' })),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"hl" is a hard link',
    ],
    [
      'a hard link out',
      tarOf(entry({ name: 'passwd', type: '1', linkname: '/etc/passwd' })),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"passwd" is a hard link',
    ],
    [
      'a character device',
      tarOf(entry({ name: 'null', type: '3', devmajor: 1, devminor: 3 })),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"null" is a character device',
    ],
    [
      'a block device',
      tarOf(entry({ name: 'sda', type: '4', devmajor: 8, devminor: 0 })),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"sda" is a block device',
    ],
    [
      'a FIFO',
      tarOf(entry({ name: 'pipe', type: '6' })),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"pipe" is a FIFO',
    ],
    [
      'a sparse file',
      tarOf(entry({ name: 'sparse', type: 'S' }, 'x')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"sparse" is a sparse file',
    ],
    [
      'an unknown entry type',
      tarOf(entry({ name: 'odd', type: 'Q' }, 'x')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"odd"',
    ],
    [
      'a file that replaces the root',
      tarOf(file('.', 'x')),
      'AEGIS_ERR_SOURCE_UNSAFE',
      '"." would replace the extraction directory',
    ],
  ];

  for (const [label, archive, code, text] of cases) {
    it(`refuses ${label} (tar)`, async () => {
      await expectRefused(await feedArchive(workDir, archive, { format: 'tar' }), code, text);
    });
    it(`refuses ${label} (tar.gz)`, async () => {
      await expectRefused(
        await feedArchive(workDir, gz(archive), { format: 'tar.gz' }),
        code,
        text,
      );
    });
  }

  it('refuses a symlink followed by a file written through it, and nothing lands outside', async () => {
    const archive = tarOf(
      entry({ name: 'lnk', type: '2', linkname: '../../..' }),
      file('lnk/pwned.txt', 'pwned'),
    );
    const fed = await feedArchive(workDir, archive, { format: 'tar' });
    await expectRefused(fed, 'AEGIS_ERR_SOURCE_UNSAFE', '"lnk" is a symbolic link');
    for (const at of [tmp, workDir, path.join(workDir, 'jobs'), fed.paths.root]) {
      expect(existsSync(path.join(at, 'pwned.txt'))).toBe(false);
    }
  });

  it('lets tar ignore a path in a global pax header: the file keeps its own name, inside', async () => {
    const archive = tarOf(paxHeader({ path: '../../global-evil' }, 'g'), file('benign.c', 'x'));
    const fed = await feedArchive(workDir, archive, { format: 'tar' });
    expect(fed.result?.entries).toBe(1);
    expect(await readdir(fed.paths.src)).toEqual(['benign.c']);
    for (const at of [tmp, workDir, path.join(workDir, 'jobs'), fed.paths.root]) {
      expect(existsSync(path.join(at, 'global-evil'))).toBe(false);
    }
  });

  it('discards the good entries extracted before the bad one', async () => {
    const archive = tarOf(
      dir('main/'),
      ...Array.from({ length: 20 }, (_, i) => file(`main/f${i}.c`, 'x'.repeat(1000))),
      entry({ name: 'main/evil', type: '2', linkname: '/' }),
    );
    await expectRefused(
      await feedArchive(workDir, archive, { format: 'tar' }),
      'AEGIS_ERR_SOURCE_UNSAFE',
    );
  });
});

describe('limits inside the archive', () => {
  it('refuses more entries than SOURCE_MAX_ENTRIES', async () => {
    const archive = tarOf(...Array.from({ length: 11 }, (_, i) => file(`f${i}`, 'x')));
    const fed = await feedArchive(workDir, archive, { format: 'tar', limits: { maxEntries: 10 } });
    await expectRefused(fed, 'AEGIS_ERR_SOURCE_TOO_LARGE', 'the archive has more than 10 entries');
    const ok = await feedArchive(
      workDir,
      tarOf(...Array.from({ length: 10 }, (_, i) => file(`f${i}`, 'x'))),
      {
        format: 'tar',
        jobId: 'job-2',
        limits: { maxEntries: 10 },
      },
    );
    expect(ok.result?.entries).toBe(10);
  });

  it('refuses entries whose sizes add up past the cap, at the header', async () => {
    // Only the header of a 1 GiB file is sent: its size alone must be enough to refuse.
    const archive = Buffer.concat([
      ustarHeader({ name: 'huge.bin', size: GiB }),
      Buffer.alloc(4096),
    ]);
    const fed = await feedArchive(workDir, archive, {
      format: 'tar',
      limits: { maxBytes: 8 * MiB },
    });
    await expectRefused(
      fed,
      'AEGIS_ERR_SOURCE_TOO_LARGE',
      /files add up to more than 8388608 bytes/,
    );
  });

  it('stops a gzip bomb (1 GiB of zeros after a valid tar) at the cap, quickly', async () => {
    const bomb = gzipBomb(tarOf(file('main.c', 'int main(void) { return 0; }\n')), GiB);
    expect(bomb.length).toBeLessThan(2 * MiB);
    const fed = await feedArchive(workDir, bomb, {
      format: 'tar.gz',
      limits: { maxBytes: 16 * MiB },
    });
    await expectRefused(
      fed,
      'AEGIS_ERR_SOURCE_TOO_LARGE',
      'the archive decompresses to more than 16777216 bytes',
    );
    expect(fed.ms).toBeLessThan(5_000);
  });

  it('stops a gzip bomb hidden in one file body at its header', async () => {
    const bomb = gzipBomb(ustarHeader({ name: 'zeros.bin', size: GiB }), GiB);
    const fed = await feedArchive(workDir, bomb, {
      format: 'tar.gz',
      limits: { maxBytes: 16 * MiB },
    });
    await expectRefused(fed, 'AEGIS_ERR_SOURCE_TOO_LARGE', /files add up to more than/);
  });

  it('stops a gzip bomb of many files that each look small', async () => {
    const member = Buffer.concat([
      ustarHeader({ name: 'z', size: 4 * MiB }),
      Buffer.alloc(4 * MiB),
    ]);
    const fed = await feedArchive(
      workDir,
      gz(Buffer.concat(Array.from({ length: 8 }, () => member))),
      {
        format: 'tar.gz',
        limits: { maxBytes: 16 * MiB },
      },
    );
    await expectRefused(fed, 'AEGIS_ERR_SOURCE_TOO_LARGE');
  });

  it('stops a bomb of bare zeros at the default 256 MiB cap, with bounded memory', async () => {
    const bomb = gzipBomb(Buffer.alloc(0), GiB);
    const rssBefore = process.memoryUsage().rss;
    const fed = await feedArchive(workDir, bomb, {
      format: 'tar.gz',
      limits: { maxBytes: 256 * MiB },
    });
    const rssAfter = process.memoryUsage().rss;
    await expectRefused(
      fed,
      'AEGIS_ERR_SOURCE_TOO_LARGE',
      /decompresses to more than 268435456 bytes/,
    );
    console.info(
      `gzip bomb (${bomb.length} bytes -> 1 GiB, cap 256 MiB): refused in ${fed.ms.toFixed(0)} ms, ` +
        `rss ${(rssBefore / MiB).toFixed(0)} -> ${(rssAfter / MiB).toFixed(0)} MiB, ` +
        `max rss ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
    );
    expect(fed.ms).toBeLessThan(15_000);
    expect(rssAfter - rssBefore).toBeLessThan(64 * MiB);
  });

  it('refuses a gzip inside the gzip (tar would open it outside our count)', async () => {
    const archive = gz(gz(tarOf(file('a.c', 'x'))));
    await expectRefused(
      await feedArchive(workDir, archive, { format: 'tar.gz' }),
      'AEGIS_ERR_SOURCE_UNSAFE',
      'compressed twice',
    );
  });
});
