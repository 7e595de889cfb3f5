// Workspaces on real directories: their layout and modes, and the sweeper that ages them out.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sweepWorkspaces } from '../src/jobs/retention.js';
import {
  createWorkspace,
  markWorkspaceFinished,
  removeWorkspace,
  workspacePaths,
} from '../src/jobs/workspace.js';

let tmp: string;
let workDir: string;
const HOUR = 3600_000;
const now = Date.now();

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'aegis-retention-'));
  workDir = path.join(tmp, 'work');
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('workspace', () => {
  it('lays out WORK_DIR/jobs/<id> owner-only', async () => {
    const paths = await createWorkspace(workDir, 'job-1');
    expect(paths).toMatchObject({
      root: path.join(workDir, 'jobs', 'job-1'),
      src: path.join(workDir, 'jobs', 'job-1', 'src'),
      build: path.join(workDir, 'jobs', 'job-1', 'build'),
      log: path.join(workDir, 'jobs', 'job-1', 'build.log'),
      upload: path.join(workDir, 'jobs', 'job-1', 'upload'),
    });
    for (const dir of [path.join(workDir, 'jobs'), paths.root, paths.upload, paths.build]) {
      expect((await stat(dir)).mode & 0o777).toBe(0o700 & ~process.umask());
    }
    // Idempotent: a reconnect or a restarted agent finds the same workspace.
    await writeFile(path.join(paths.root, 'keep-me'), 'x');
    await createWorkspace(workDir, 'job-1');
    expect(existsSync(path.join(paths.root, 'keep-me'))).toBe(true);
    await removeWorkspace(workDir, 'job-1');
    expect(existsSync(paths.root)).toBe(false);
    await removeWorkspace(workDir, 'job-1');
  });

  it.each(['', '..', '.', '../etc', 'a/b', 'a\\b', '.hidden', '-rf', 'x'.repeat(129), 'nul\0'])(
    'refuses the job id %j before building a path',
    (id) => {
      expect(() => workspacePaths(workDir, id)).toThrow(
        expect.objectContaining({ code: 'AEGIS_ERR_PROTOCOL' }),
      );
    },
  );

  it('refuses a symlink planted where the workspace goes', async () => {
    const elsewhere = path.join(tmp, 'elsewhere');
    await mkdir(elsewhere);
    await mkdir(path.join(workDir, 'jobs'), { recursive: true });
    await symlink(elsewhere, path.join(workDir, 'jobs', 'job-1'));
    await expect(createWorkspace(workDir, 'job-1')).rejects.toMatchObject({
      code: 'AEGIS_ERR_INTERNAL',
    });
  });
});

describe('sweepWorkspaces', () => {
  const age = async (dir: string, ms: number) => {
    const t = new Date(now - ms);
    await utimes(dir, t, t);
  };

  it('deletes what ended more than RETENTION_S ago and keeps fresh and kept ones', async () => {
    const finished = async (id: string, agoMs: number) => {
      const paths = await createWorkspace(workDir, id);
      await writeFile(path.join(paths.src, '..', 'build.log'), 'log');
      await markWorkspaceFinished(paths, new Date(now - agoMs));
      return paths;
    };
    await finished('job-old', 2 * HOUR);
    await finished('job-fresh', 60_000);
    await finished('job-kept', 2 * HOUR);
    // A marker with unreadable text ages from its own mtime.
    const garbled = await finished('job-garbled', 0);
    await writeFile(garbled.finishedMarker, 'not a date');
    await age(garbled.finishedMarker, 2 * HOUR);
    // Without a marker (a crash left it) the directory's mtime counts.
    await age((await createWorkspace(workDir, 'job-crashed')).root, 2 * HOUR);
    await createWorkspace(workDir, 'job-running');
    // Names that are not job ids, and symlinks, are never touched.
    const stranger = path.join(workDir, 'jobs', 'not a job');
    await mkdir(stranger);
    await age(stranger, 10 * HOUR);
    const outside = path.join(tmp, 'outside');
    await mkdir(outside);
    await symlink(outside, path.join(workDir, 'jobs', 'job-link'));
    await age(outside, 10 * HOUR);

    const result = await sweepWorkspaces({
      workDir,
      retentionS: 1800,
      now,
      keep: (id) => id === 'job-kept',
    });

    expect(result.deleted.sort()).toEqual(['job-crashed', 'job-garbled', 'job-old']);
    expect(result.failed).toEqual([]);
    for (const id of ['job-old', 'job-garbled', 'job-crashed']) {
      expect(existsSync(workspacePaths(workDir, id).root)).toBe(false);
    }
    for (const id of ['job-fresh', 'job-kept', 'job-running', 'job-link']) {
      expect(existsSync(path.join(workDir, 'jobs', id))).toBe(true);
    }
    expect(existsSync(stranger)).toBe(true);
    expect(existsSync(outside)).toBe(true);
  });

  it('deletes at the limit, not before', async () => {
    const paths = await createWorkspace(workDir, 'job-1');
    await markWorkspaceFinished(paths, new Date(now - 1800_000));
    const keepAll = { workDir, retentionS: 1800, keep: () => false };
    expect((await sweepWorkspaces({ ...keepAll, now: now - 1 })).deleted).toEqual([]);
    expect((await sweepWorkspaces({ ...keepAll, now })).deleted).toEqual(['job-1']);
  });

  it('is a no-op without a jobs directory', async () => {
    expect(await sweepWorkspaces({ workDir, retentionS: 0, now, keep: () => false })).toEqual({
      deleted: [],
      failed: [],
    });
  });
});
