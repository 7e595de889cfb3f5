// The workspace sweeper: deletes the workspaces of jobs that ended more than RETENTION_S ago
// (PROTOCOL §5). The caller runs it on an interval and says which jobs are still its own.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/index.js';
import { isJobId, jobsDir, removeWorkspace, workspacePaths } from './workspace.js';

export interface SweepOptions {
  workDir: string;
  retentionS: number;
  /** Milliseconds since the epoch, as Date.now(). */
  now: number;
  /** True for jobs whose workspace must stay whatever its age (queued, running, being downloaded). */
  keep: (jobId: string) => boolean;
  log?: Logger;
}

export interface SweepResult {
  /** Job ids whose workspace was removed. */
  deleted: string[];
  /** Job ids whose workspace could not be removed (logged); tried again on the next sweep. */
  failed: string[];
}

/**
 * When the job ended: the finished_at marker's time when present (its mtime when its text is
 * unreadable), otherwise the workspace directory's mtime — workspaces left by a crashed agent
 * have no marker and still age out.
 */
export async function finishedAt(workDir: string, jobId: string): Promise<number> {
  const paths = workspacePaths(workDir, jobId);
  try {
    const text = await fs.readFile(paths.finishedMarker, 'utf8');
    const t = Date.parse(text.trim());
    if (Number.isFinite(t)) return t;
    return (await fs.stat(paths.finishedMarker)).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return (await fs.lstat(paths.root)).mtimeMs;
}

export async function sweepWorkspaces(opts: SweepOptions): Promise<SweepResult> {
  const result: SweepResult = { deleted: [], failed: [] };
  let names: string[];
  try {
    names = await fs.readdir(jobsDir(opts.workDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return result;
    throw err;
  }
  const cutoff = opts.now - opts.retentionS * 1000;
  for (const name of names) {
    // Names that are not job ids were not made by us: never join them into a path to delete.
    if (!isJobId(name) || opts.keep(name)) continue;
    try {
      const st = await fs.lstat(path.join(jobsDir(opts.workDir), name));
      if (!st.isDirectory()) continue;
      if ((await finishedAt(opts.workDir, name)) > cutoff) continue;
      // keep() again: the job may have been claimed while we looked at the disk.
      if (opts.keep(name)) continue;
      await removeWorkspace(opts.workDir, name);
      result.deleted.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      result.failed.push(name);
      opts.log?.warn({ job_id: name, err }, 'could not remove an expired workspace');
    }
  }
  if (result.deleted.length > 0) {
    opts.log?.info({ deleted: result.deleted.length }, 'expired workspaces removed');
  }
  return result;
}
