// One job's life on this machine: workspace → source intake → idf.py under a pty → artifacts →
// terminal state. It is also what a WebRTC session sees of a job (the SessionJob shape of
// src/webrtc/job-access.ts): state, upload, log readers, terminal input, the manifest, cancel.
import fs from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from '../config/index.js';
import { AegisError, toAegisError } from '../errors.js';
import type { Logger } from '../log/index.js';
import type { Toolchain } from '../toolchains/index.js';
import {
  collectArtifacts,
  readManifest,
  writeManifest,
  type ArtifactManifest,
} from './artifacts.js';
import { startBuild, type BuildHandle, type BuildResult } from './build.js';
import { buildEnvironment } from './build-env.js';
import { lastErrorLine } from './failure.js';
import { createSourceIntake, type DeclaredSource, type SourceIntake } from './intake.js';
import { isTerminal, type JobRecord, type JobState } from './job.js';
import { LogSpool, type LogReader } from './logspool.js';
import { bootId } from './proctree.js';
import type { JobRegistry } from './registry.js';
import {
  createWorkspace,
  markWorkspaceFinished,
  workspacePaths,
  type WorkspacePaths,
} from './workspace.js';

export interface JobControllerDeps {
  config: AgentConfig;
  log: Logger;
  registry: JobRegistry;
  /** The toolchains known now (a rescan may change them between claim and build). */
  toolchains: () => readonly Toolchain[];
}

export interface SourceUpload {
  write(chunk: Buffer): void;
  finish(): Promise<{ size: number; sha256: string }>;
  abort(reason: string): Promise<void>;
}

const MANIFEST_FILE = 'manifest.json';

export class JobController {
  readonly jobId: string;
  readonly target: string;
  readonly paths: WorkspacePaths;
  private readonly listeners = new Set<(state: JobState) => void>();
  private intake: SourceIntake | undefined;
  private accepted = false;
  private build: BuildHandle | undefined;
  private artifactManifest: ArtifactManifest | undefined;
  private sourceTimer: NodeJS.Timeout | undefined;
  private readonly settled: Promise<void>;
  private settle!: () => void;

  private constructor(
    private readonly deps: JobControllerDeps,
    record: Readonly<JobRecord>,
    readonly spool: LogSpool,
  ) {
    this.jobId = record.jobId;
    this.target = record.target;
    this.paths = workspacePaths(deps.config.workDir, record.jobId);
    this.settled = new Promise((r) => (this.settle = r));
    if (isTerminal(record.state)) this.settle();
  }

  /** A job just assigned: make its workspace and empty log, and start the source-wait clock. */
  static async start(deps: JobControllerDeps, record: Readonly<JobRecord>): Promise<JobController> {
    const paths = await createWorkspace(deps.config.workDir, record.jobId);
    const spool = await LogSpool.create(paths.log, {
      maxBytes: deps.config.logMaxBytes,
      log: deps.log,
    });
    const c = new JobController(deps, record, spool);
    c.sourceTimer = setTimeout(() => void c.expire(), deps.config.sourceWaitS * 1000).unref();
    return c;
  }

  /** A finished job from an earlier run whose workspace is still kept: serve its log and files. */
  static async restore(
    deps: JobControllerDeps,
    record: Readonly<JobRecord>,
  ): Promise<JobController | undefined> {
    const paths = workspacePaths(deps.config.workDir, record.jobId);
    try {
      const spool = await LogSpool.openExisting(paths.log);
      const c = new JobController(deps, record, spool);
      if (record.state === 'succeeded') {
        c.artifactManifest = await readManifest(path.join(paths.root, 'artifacts', MANIFEST_FILE));
      }
      return c;
    } catch {
      return undefined;
    }
  }

  private record(): Readonly<JobRecord> {
    const r = this.deps.registry.get(this.jobId);
    if (!r)
      throw new AegisError('AEGIS_ERR_JOB_STATE', `Job ${this.jobId} is no longer on this agent.`);
    return r;
  }

  /** Resolves once the job is terminal. */
  get done(): Promise<void> {
    return this.settled;
  }

  state(): JobState {
    return this.deps.registry.get(this.jobId)?.state ?? 'lost';
  }

  exitCode(): number | undefined {
    return this.deps.registry.get(this.jobId)?.exitCode;
  }

  error(): { code: string; message: string } | undefined {
    return this.deps.registry.get(this.jobId)?.error;
  }

  onState(listener: (state: JobState) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  logReader(from: number): LogReader {
    return this.spool.reader(from);
  }

  logSize(): number {
    return this.spool.size;
  }

  ptyWrite(data: Buffer): boolean {
    if (!this.build?.running) return false;
    this.build.write(data);
    return true;
  }

  ptyResize(cols: number, rows: number): boolean {
    if (!this.build?.running) return false;
    this.build.resize(cols, rows);
    return true;
  }

  manifest(): ArtifactManifest | undefined {
    return this.artifactManifest;
  }

  /** The one accepted upload of this job; an aborted upload may be started again. */
  beginSource(declared: DeclaredSource): SourceUpload {
    const state = this.state();
    if (this.accepted || (state !== 'assigned' && state !== 'receiving')) {
      throw new AegisError(
        'AEGIS_ERR_JOB_STATE',
        `Job ${this.jobId} already has its source (state ${state}); one upload per job.`,
      );
    }
    if (this.intake && !this.intake.failure) {
      throw new AegisError(
        'AEGIS_ERR_JOB_STATE',
        `An upload for job ${this.jobId} is already in progress.`,
      );
    }
    const intake = createSourceIntake({
      paths: this.paths,
      declared,
      limits: {
        maxBytes: this.deps.config.sourceMaxBytes,
        maxEntries: this.deps.config.sourceMaxEntries,
      },
      log: this.deps.log,
    });
    this.intake = intake;
    if (state === 'assigned') void this.move('receiving');
    return {
      write: (chunk) => intake.write(chunk),
      finish: async () => {
        try {
          const result = await intake.finish();
          this.accepted = true;
          clearTimeout(this.sourceTimer);
          void this.runBuild();
          return { size: result.size, sha256: result.sha256 };
        } catch (err) {
          const e = toAegisError(err, 'AEGIS_ERR_SOURCE_UNSAFE');
          await this.finishWith('failed', { error: e.toWire() });
          throw e;
        }
      },
      abort: async (reason) => {
        await intake.abort(reason);
        if (this.intake === intake) this.intake = undefined;
      },
    };
  }

  cancel(reason: string): void {
    if (this.build) {
      this.build.cancel();
      this.cancelReason = reason;
      return;
    }
    const state = this.state();
    if (isTerminal(state)) return;
    clearTimeout(this.sourceTimer);
    void (async () => {
      await this.intake?.abort(reason);
      await this.finishWith('canceled', {
        error: { code: 'AEGIS_ERR_CANCELED', message: `Canceled: ${reason}.` },
      });
    })();
  }

  private cancelReason: string | undefined;

  private async expire(): Promise<void> {
    const state = this.state();
    if (this.accepted || (state !== 'assigned' && state !== 'receiving')) return;
    await this.intake?.abort('source wait expired');
    const waitS = this.deps.config.sourceWaitS;
    await this.finishWith('expired', {
      error: {
        code: 'AEGIS_ERR_SOURCE_EXPIRED',
        message: `No source arrived within SOURCE_WAIT_S=${waitS} s.`,
      },
    });
  }

  private async runBuild(): Promise<void> {
    const { config, log } = this.deps;
    const record = this.record();
    const toolchain = this.deps.toolchains().find((t) => t.id === record.toolchainId);
    if (!toolchain) {
      await this.finishWith('failed', {
        error: {
          code: 'AEGIS_ERR_NO_TOOLCHAIN',
          message: `Toolchain ${record.toolchainId} is no longer installed on this machine.`,
        },
      });
      return;
    }
    const tmpDir = path.join(this.paths.root, 'tmp');
    await fs.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const timeoutS = record.timeoutS ?? config.buildTimeoutS;
    let result: BuildResult;
    try {
      this.build = startBuild({
        projectDir: this.paths.src,
        buildDir: this.paths.build,
        target: record.target,
        env: buildEnvironment({ toolchain, home: this.paths.root, tmpDir }),
        cwd: this.paths.root,
        cols: config.ptyCols,
        rows: config.ptyRows,
        timeoutMs: timeoutS * 1000,
        killGraceMs: config.killGraceS * 1000,
        sink: (data) => this.spool.append(data),
      });
      await this.move('building', {
        startedAt: Date.now(),
        buildPgid: this.build.pid,
        buildBootId: bootId(),
      });
      log.info(
        { job_id: this.jobId, pid: this.build.pid, toolchain: toolchain.id },
        'build started',
      );
      result = await this.build.result;
    } catch (err) {
      const e = toAegisError(err);
      await this.finishWith('failed', { error: e.toWire() });
      return;
    }
    log.info(
      {
        job_id: this.jobId,
        outcome: result.outcome,
        exit_code: result.exitCode,
        duration_ms: result.durationMs,
      },
      'build ended',
    );
    await this.conclude(result, timeoutS);
  }

  private async conclude(result: BuildResult, timeoutS: number): Promise<void> {
    const exit = result.exitCode !== undefined ? { exitCode: result.exitCode } : {};
    switch (result.outcome) {
      case 'succeeded':
        try {
          const artifactsDir = path.join(this.paths.root, 'artifacts');
          const manifest = await collectArtifacts({
            buildDir: this.paths.build,
            artifactsDir,
            logFile: this.paths.log,
          });
          await writeManifest(manifest, path.join(artifactsDir, MANIFEST_FILE));
          this.artifactManifest = manifest;
          await this.finishWith('succeeded', { ...exit, artifacts: manifest.toWire() });
        } catch (err) {
          await this.finishWith('failed', {
            ...exit,
            error: toAegisError(err, 'AEGIS_ERR_BUILD_FAILED').toWire(),
          });
        }
        return;
      case 'failed': {
        const line = await lastErrorLine(this.paths.log);
        const how =
          result.exitCode !== undefined
            ? `exited with code ${result.exitCode}`
            : `was killed by signal ${result.signal ?? '?'}`;
        await this.finishWith('failed', {
          ...exit,
          error: {
            code: 'AEGIS_ERR_BUILD_FAILED',
            message: `idf.py ${how}${line ? `: ${line}` : '; see build.log'}`,
          },
        });
        return;
      }
      case 'timed_out':
        await this.finishWith('timed_out', {
          ...exit,
          error: {
            code: 'AEGIS_ERR_BUILD_TIMEOUT',
            message: `The build ran past its ${timeoutS} s limit and was stopped.`,
          },
        });
        return;
      case 'canceled':
        await this.finishWith('canceled', {
          ...exit,
          error: {
            code: 'AEGIS_ERR_CANCELED',
            message: `Canceled: ${this.cancelReason ?? 'requested'}.`,
          },
        });
        return;
    }
  }

  private async move(to: JobState, patch: Partial<JobRecord> = {}): Promise<void> {
    try {
      await this.deps.registry.transition(this.jobId, to, patch);
    } catch (err) {
      this.deps.log.error(
        { job_id: this.jobId, err, code: 'AEGIS_ERR_INTERNAL' },
        `job state change to ${to} failed`,
      );
      return;
    }
    for (const l of this.listeners) {
      try {
        l(to);
      } catch (err) {
        this.deps.log.error({ job_id: this.jobId, err }, 'job state listener threw');
      }
    }
  }

  /** Enter a terminal state: persist it, close the log (readers see its end), mark the workspace. */
  private async finishWith(state: JobState, patch: Partial<JobRecord>): Promise<void> {
    if (isTerminal(this.state())) return;
    clearTimeout(this.sourceTimer);
    await this.move(state, { ...patch, logBytes: this.spool.size });
    this.spool.close();
    await markWorkspaceFinished(this.paths, new Date()).catch(() => undefined);
    this.settle();
  }
}
