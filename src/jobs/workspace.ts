// A job's workspace on disk: WORK_DIR/jobs/<job_id>/ with src/ (the accepted project), build/
// (idf.py -B), build.log, upload/ (the source while it arrives) and the finished_at marker.
import fs from 'node:fs/promises';
import path from 'node:path';
import { AegisError } from '../errors.js';

/** The job id shape of PROTOCOL; checked again here so no unchecked id is ever joined into a path. */
const JOB_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface WorkspacePaths {
  jobId: string;
  /** WORK_DIR/jobs/<job_id> */
  root: string;
  /** The accepted project tree; appears (by rename) only once an upload passed every check. */
  src: string;
  /** idf.py -B */
  build: string;
  /** The build's pty output. */
  log: string;
  /** The raw upload while it arrives, and the extraction staging's parent is `root`. */
  upload: string;
  /** Written when the job reaches a terminal state; the retention sweeper ages from it. */
  finishedMarker: string;
}

export function isJobId(jobId: string): boolean {
  return JOB_ID.test(jobId);
}

export function assertJobId(jobId: string): void {
  if (!isJobId(jobId)) {
    throw new AegisError(
      'AEGIS_ERR_PROTOCOL',
      `job id ${JSON.stringify(jobId.slice(0, 140))} is not 1-128 of A-Z a-z 0-9 . _ - starting with a letter or digit`,
    );
  }
}

/** WORK_DIR/jobs, the parent of every workspace. */
export function jobsDir(workDir: string): string {
  return path.join(path.resolve(workDir), 'jobs');
}

export function workspacePaths(workDir: string, jobId: string): WorkspacePaths {
  assertJobId(jobId);
  const root = path.join(jobsDir(workDir), jobId);
  return {
    jobId,
    root,
    src: path.join(root, 'src'),
    build: path.join(root, 'build'),
    log: path.join(root, 'build.log'),
    upload: path.join(root, 'upload'),
    finishedMarker: path.join(root, 'finished_at'),
  };
}

/**
 * Creates the workspace (owner-only, 0700: sources are the client's, not other local users').
 * Idempotent, so a reconnecting client or a restarted agent finds the same directory.
 */
export async function createWorkspace(workDir: string, jobId: string): Promise<WorkspacePaths> {
  const paths = workspacePaths(workDir, jobId);
  await fs.mkdir(jobsDir(workDir), { recursive: true, mode: 0o700 });
  await fs.mkdir(paths.root, { recursive: true, mode: 0o700 });
  // A symlink planted at the job's path would send every later write elsewhere.
  const st = await fs.lstat(paths.root);
  if (!st.isDirectory()) {
    throw new AegisError('AEGIS_ERR_INTERNAL', `workspace ${paths.root} is not a directory`);
  }
  await fs.mkdir(paths.upload, { recursive: true, mode: 0o700 });
  await fs.mkdir(paths.build, { recursive: true, mode: 0o700 });
  return paths;
}

/** Records when the job ended, for the retention sweeper; the caller writes it on a terminal state. */
export async function markWorkspaceFinished(
  paths: WorkspacePaths,
  finishedAt: Date,
): Promise<void> {
  await fs.writeFile(paths.finishedMarker, `${finishedAt.toISOString()}\n`, { mode: 0o600 });
}

/** Removes the whole workspace; a missing one is not an error. */
export async function removeWorkspace(workDir: string, jobId: string): Promise<void> {
  const paths = workspacePaths(workDir, jobId);
  await fs.rm(paths.root, { recursive: true, force: true, maxRetries: 2 });
}
