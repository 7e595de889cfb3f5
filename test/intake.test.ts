// The source intake end to end on real files: a real project packed by the tar package, fed in
// random chunks, comes out byte-identical; sizes, checksums and formats are held to the letter.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tar from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../src/errors.js';
import { createSourceIntake } from '../src/jobs/intake.js';
import { createWorkspace } from '../src/jobs/workspace.js';
import { createLogger } from '../src/log/index.js';
import {
  dir,
  entry,
  feedArchive,
  file,
  gz,
  leftovers,
  randomChunks,
  seededRandom,
  sha256,
  tarOf,
  type Fed,
} from './helpers/archives.js';
import { createLogSink } from './helpers/log-sink.js';

let tmp: string;
let workDir: string;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aegis-intake-'));
  workDir = path.join(tmp, 'work');
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A small ESP-IDF-shaped project with what real trees have: executables, binaries, long paths. */
async function makeProject(root: string): Promise<void> {
  const files: [string, string | Buffer, number][] = [
    ['CMakeLists.txt', 'cmake_minimum_required(VERSION 3.16)\nproject(blink)\n', 0o644],
    ['sdkconfig.defaults', 'CONFIG_BLINK_GPIO=8\n', 0o644],
    ['main/CMakeLists.txt', 'idf_component_register(SRCS "blink.c")\n', 0o644],
    ['main/blink.c', '#include <stdio.h>\nvoid app_main(void) { puts("blink"); }\n', 0o644],
    ['scripts/flash.sh', '#!/bin/sh\necho flashing\n', 0o755],
    ['assets/blob.bin', randomBytes(300 * 1024), 0o644],
    ['assets/empty.txt', '', 0o644],
    ['components/drv/include/drv.h', '#pragma once\n', 0o644],
    [`deep/${'nested-directory-name/'.repeat(8)}leaf.c`, 'int leaf;\n', 0o644],
    ['docs/ünïcødé name.md', '# hi\n', 0o644],
  ];
  for (const [rel, body, mode] of files) {
    const at = path.join(root, rel);
    await mkdir(path.dirname(at), { recursive: true });
    await writeFile(at, body);
    await chmod(at, mode);
  }
  await mkdir(path.join(root, 'components/empty'), { recursive: true });
}

async function packed(cwd: string, gzip: boolean, names: string[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of tar.c({ cwd, gzip, portable: true }, names)) parts.push(chunk);
  return Buffer.concat(parts);
}

interface Node {
  type: 'file' | 'dir';
  exec: boolean;
  sha?: string;
}

async function snapshot(root: string, rel = ''): Promise<Record<string, Node>> {
  const out: Record<string, Node> = {};
  for (const name of await readdir(path.join(root, rel))) {
    const r = path.join(rel, name);
    const st = await stat(path.join(root, r));
    if (st.isDirectory()) {
      out[r] = { type: 'dir', exec: true };
      Object.assign(out, await snapshot(root, r));
    } else {
      out[r] = {
        type: 'file',
        exec: (st.mode & 0o100) !== 0,
        sha: sha256(await readFile(path.join(root, r))),
      };
    }
  }
  return out;
}

async function expectRefused(fed: Fed, code: ErrorCode, text?: string | RegExp): Promise<void> {
  expect(fed.result).toBeUndefined();
  expect(fed.error?.code).toBe(code);
  if (text !== undefined) expect(fed.error?.message).toMatch(text);
  expect(await leftovers(fed.paths)).toEqual([]);
}

describe('accepted archives', () => {
  for (const format of ['tar', 'tar.gz'] as const) {
    for (const seed of [1, 2, 3]) {
      it(`extracts a real project byte-identically (${format}, random chunks, seed ${seed})`, async () => {
        const project = path.join(tmp, 'project');
        await makeProject(project);
        const archive = await packed(project, format === 'tar.gz', ['.']);
        const chunks = randomChunks(archive, seededRandom(seed));
        expect(chunks.some((c) => c.length <= 16)).toBe(true);
        expect(chunks.some((c) => c.length > 16 * 1024)).toBe(true);
        const fed = await feedArchive(workDir, archive, { format, chunks, jobId: `job-${seed}` });
        expect(fed.error).toBeUndefined();
        expect(fed.result).toEqual({
          size: archive.length,
          sha256: sha256(archive),
          entries: expect.any(Number),
        });
        expect(await snapshot(fed.paths.src)).toEqual(await snapshot(project));
        expect(await leftovers({ ...fed.paths, src: path.join(tmp, 'none') })).toEqual([]);
      });
    }
  }

  it('takes a 24 MiB archive arriving at 50 MB/s within the write-queue bound', async () => {
    const project = path.join(tmp, 'project');
    await mkdir(project);
    await writeFile(path.join(project, 'blob.bin'), randomBytes(24 * 1024 * 1024));
    const archive = await packed(project, false, ['blob.bin']);
    const chunks = randomChunks(archive, seededRandom(9));
    const fed = await feedArchive(workDir, archive, {
      format: 'tar',
      chunks,
      bytesPerSecond: 50e6,
    });
    expect(fed.error).toBeUndefined();
    expect(await snapshot(fed.paths.src)).toEqual(await snapshot(project));
  });

  it('extracts an archive of top-level names (no ./ prefix)', async () => {
    const project = path.join(tmp, 'project');
    await makeProject(project);
    const archive = await packed(project, true, await readdir(project));
    const fed = await feedArchive(workDir, archive, { format: 'tar.gz' });
    expect(await snapshot(fed.paths.src)).toEqual(await snapshot(project));
  });

  it('keeps the executable bit and drops setuid, setgid, sticky and odd modes', async () => {
    const archive = tarOf(
      entry({ name: 'bin/', type: '5', mode: 0o7777 }),
      file('bin/suid', '#!/bin/sh\n', 0o4755),
      file('bin/sgid-group-exec', '#!/bin/sh\n', 0o2010),
      file('secret', 'x', 0o600),
      file('world', 'x', 0o666),
    );
    const fed = await feedArchive(workDir, archive, { format: 'tar' });
    expect(fed.error).toBeUndefined();
    const mode = async (rel: string) => (await stat(path.join(fed.paths.src, rel))).mode & 0o7777;
    const umask = process.umask();
    expect(await mode('bin')).toBe(0o755 & ~umask);
    expect(await mode('bin/suid')).toBe(0o755 & ~umask);
    expect(await mode('bin/sgid-group-exec')).toBe(0o755 & ~umask);
    expect(await mode('secret')).toBe(0o644 & ~umask);
    expect(await mode('world')).toBe(0o644 & ~umask);
  });

  it('logs the acceptance and cleans upload/', async () => {
    const sink = createLogSink();
    const archive = tarOf(dir('main/'), file('main/a.c', 'int a;'));
    const fed = await feedArchive(workDir, archive, {
      format: 'tar',
      log: createLogger({ destination: sink }),
    });
    expect(fed.result?.entries).toBe(2);
    expect(await readdir(fed.paths.upload)).toEqual([]);
    expect(sink.lines.find((l) => l['msg'] === 'source accepted')).toMatchObject({
      job_id: 'job-1',
      entries: 2,
    });
  });
});

describe('sizes and checksums', () => {
  const small = tarOf(file('a.c', 'int a;'));

  it('refuses a declared size over the cap before writing a byte', async () => {
    const fed = await feedArchive(workDir, small, {
      format: 'tar',
      declared: { size: 300 * 1024 * 1024 },
      limits: { maxBytes: 256 * 1024 * 1024 },
    });
    expect(fed.failedAt).toBe('create');
    await expectRefused(
      fed,
      'AEGIS_ERR_SOURCE_TOO_LARGE',
      'the archive is 314572800 bytes, more than the 268435456-byte limit (SOURCE_MAX_BYTES)',
    );
  });

  it('refuses more bytes than declared at once', async () => {
    const fed = await feedArchive(workDir, small, {
      format: 'tar',
      declared: { size: 100 },
      chunks: [small.subarray(0, 64), small.subarray(64)],
    });
    expect(fed.failedAt).toBe('write');
    await expectRefused(
      fed,
      'AEGIS_ERR_SOURCE_TOO_LARGE',
      'the upload sent more than the 100 bytes it declared',
    );
  });

  it('refuses more bytes than the cap at once', async () => {
    const big = Buffer.alloc(2048);
    const fed = await feedArchive(workDir, big, {
      format: 'tar',
      limits: { maxBytes: 1024 },
      declared: { size: 1024 },
      chunks: [big.subarray(0, 1000), big.subarray(1000)],
    });
    expect(fed.failedAt).toBe('write');
    await expectRefused(
      fed,
      'AEGIS_ERR_SOURCE_TOO_LARGE',
      'the upload passed the 1024-byte limit (SOURCE_MAX_BYTES)',
    );
  });

  it('refuses fewer bytes than declared', async () => {
    const fed = await feedArchive(workDir, small, {
      format: 'tar',
      declared: { size: small.length + 10 },
    });
    await expectRefused(
      fed,
      'AEGIS_ERR_SOURCE_CHECKSUM',
      `received ${small.length} bytes but the upload declared ${small.length + 10}`,
    );
  });

  it('refuses a sha256 mismatch, naming both hashes', async () => {
    const wrong = 'ab'.repeat(32);
    const fed = await feedArchive(workDir, small, { format: 'tar', declared: { sha256: wrong } });
    await expectRefused(
      fed,
      'AEGIS_ERR_SOURCE_CHECKSUM',
      `the archive's sha256 is ${sha256(small)} but the upload declared ${wrong}`,
    );
  });

  it('fails rather than queue without bound when the disk falls behind', async () => {
    const data = Buffer.alloc(256 * 1024);
    const paths = await createWorkspace(workDir, 'job-1');
    const intake = createSourceIntake({
      paths,
      declared: { format: 'tar', size: data.length, sha256: sha256(data) },
      limits: { maxBytes: 1024 * 1024, maxEntries: 10, maxBufferedBytes: 64 * 1024 },
      log: createLogger({ level: 'silent', destination: createLogSink() }),
    });
    // Written synchronously, before the file is even open: everything is still queued.
    expect(() => {
      for (let at = 0; at < data.length; at += 16 * 1024)
        intake.write(data.subarray(at, at + 16 * 1024));
    }).toThrow(/faster than the disk/);
    await intake.abort();
    expect(await leftovers(paths)).toEqual([]);
  });
});

describe('formats and damaged archives', () => {
  const project = tarOf(dir('main/'), file('main/main.c', 'x'.repeat(5000)));

  it('refuses tar.gz declared but plain tar sent', async () => {
    await expectRefused(
      await feedArchive(workDir, project, { format: 'tar.gz' }),
      'AEGIS_ERR_SOURCE_UNSAFE',
      'the archive was declared tar.gz but is not gzip data (no 1f 8b magic)',
    );
  });

  it('refuses tar declared but gzip sent', async () => {
    await expectRefused(
      await feedArchive(workDir, gz(project), { format: 'tar' }),
      'AEGIS_ERR_SOURCE_UNSAFE',
      'declared tar but is gzip-compressed; declare it as tar.gz',
    );
  });

  const damaged: [string, Buffer, 'tar' | 'tar.gz'][] = [
    ['a tar cut in a file body', project.subarray(0, 2048), 'tar'],
    ['a tar cut in a header', project.subarray(0, 1024 + 100), 'tar'],
    ['a tar.gz cut short', gz(project).subarray(0, 60), 'tar.gz'],
    [
      'a tar.gz with a flipped byte',
      (() => {
        const b = Buffer.from(gz(project));
        b[30] = b[30]! ^ 0xff;
        return b;
      })(),
      'tar.gz',
    ],
    ['random bytes', randomBytes(4096), 'tar'],
    ['an empty upload', Buffer.alloc(0), 'tar'],
    ['two zero blocks only', Buffer.alloc(1024), 'tar'],
    ['a header with a bad checksum', tarOf(entry({ name: 'a.c', badChecksum: true }, 'x')), 'tar'],
  ];
  for (const [label, archive, format] of damaged) {
    it(`refuses ${label}`, async () => {
      await expectRefused(
        await feedArchive(workDir, archive, { format }),
        'AEGIS_ERR_SOURCE_UNSAFE',
        /^the archive is not a valid tar\(\.gz\): /,
      );
    });
  }
});

describe('the upload lifecycle', () => {
  const archive = tarOf(file('a.c', 'int a;'));
  const silent = () => createLogger({ level: 'silent', destination: createLogSink() });
  const start = async () => {
    const paths = await createWorkspace(workDir, 'job-1');
    const intake = createSourceIntake({
      paths,
      declared: { format: 'tar', size: archive.length, sha256: sha256(archive) },
      limits: { maxBytes: 1024 * 1024, maxEntries: 10 },
      log: silent(),
    });
    return { paths, intake };
  };

  it('abort() mid-upload removes the partial file; finish() then rejects with the reason', async () => {
    const { paths, intake } = await start();
    intake.write(archive.subarray(0, 700));
    await intake.abort('the source channel closed');
    expect(await leftovers(paths)).toEqual([]);
    await expect(intake.finish()).rejects.toMatchObject({
      code: 'AEGIS_ERR_CANCELED',
      message: 'the source channel closed',
    });
    expect(() => intake.write(archive.subarray(700))).not.toThrow();
  });

  it('abort() during finish() stops the extraction and leaves nothing', async () => {
    const { paths, intake } = await start();
    intake.write(archive);
    const done = intake.finish();
    await intake.abort('the job was canceled');
    await expect(done).rejects.toMatchObject({ code: 'AEGIS_ERR_CANCELED' });
    expect(await leftovers(paths)).toEqual([]);
  });

  it('refuses data after finish() and a second finish()', async () => {
    const { intake } = await start();
    intake.write(archive);
    const done = intake.finish();
    expect(() => intake.write(Buffer.from('x'))).toThrow(
      expect.objectContaining({ code: 'AEGIS_ERR_PROTOCOL' }),
    );
    await expect(intake.finish()).rejects.toMatchObject({ code: 'AEGIS_ERR_PROTOCOL' });
    await expect(done).resolves.toMatchObject({ entries: 1 });
  });

  it('allows one upload per job', async () => {
    const { paths, intake } = await start();
    intake.write(archive);
    await intake.finish();
    expect(() =>
      createSourceIntake({
        paths,
        declared: { format: 'tar', size: archive.length, sha256: sha256(archive) },
        limits: { maxBytes: 1024 * 1024, maxEntries: 10 },
        log: silent(),
      }),
    ).toThrow(expect.objectContaining({ code: 'AEGIS_ERR_JOB_STATE' }));
  });

  it('re-validates the begin frame', async () => {
    const paths = await createWorkspace(workDir, 'job-1');
    for (const declared of [
      { format: 'zip' as 'tar', size: 10, sha256: 'a'.repeat(64) },
      { format: 'tar' as const, size: -1, sha256: 'a'.repeat(64) },
      { format: 'tar' as const, size: 1.5, sha256: 'a'.repeat(64) },
      { format: 'tar' as const, size: 10, sha256: 'xyz' },
    ]) {
      expect(() =>
        createSourceIntake({
          paths,
          declared,
          limits: { maxBytes: 100, maxEntries: 10 },
          log: silent(),
        }),
      ).toThrow(expect.objectContaining({ code: 'AEGIS_ERR_PROTOCOL' }));
    }
    expect(await readdir(paths.upload)).toEqual([]);
  });
});
