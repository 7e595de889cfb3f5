// A real SessionJob for the webrtc tests: a real workspace and log spool on disk, a real source
// intake, real artifact files behind a real ArtifactManifest, and optionally a real build
// process under a pty (startBuild with a custom command). The test drives the state machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobState } from '../../src/control/messages.js';
import { AegisError } from '../../src/errors.js';
import { ArtifactManifest } from '../../src/jobs/artifacts.js';
import { startBuild, type BuildHandle } from '../../src/jobs/build.js';
import { createSourceIntake } from '../../src/jobs/intake.js';
import { hashFile } from '../../src/jobs/merge.js';
import type { LogReader } from '../../src/jobs/logspool-reader.js';
import { LogSpool } from '../../src/jobs/logspool.js';
import { createWorkspace, type WorkspacePaths } from '../../src/jobs/workspace.js';
import type { Logger } from '../../src/log/index.js';
import type { SessionJob, SourceUpload } from '../../src/webrtc/job-access.js';

export interface TestJobOptions {
  jobId?: string;
  target?: string;
  log: Logger;
  sourceMaxBytes?: number;
}

export class TestJob implements SessionJob {
  readonly jobId: string;
  readonly target: string;
  readonly paths: WorkspacePaths;
  readonly spool: LogSpool;
  readonly canceled: string[] = [];
  readonly #log: Logger;
  readonly #sourceMaxBytes: number;
  readonly #listeners = new Set<(s: JobState) => void>();
  #state: JobState = 'assigned';
  #exitCode: number | undefined;
  #error: { code: string; message: string } | undefined;
  #manifest: ArtifactManifest | undefined;
  #sourceBegun = false;
  #build: BuildHandle | undefined;

  private constructor(opts: TestJobOptions, paths: WorkspacePaths, spool: LogSpool) {
    this.jobId = opts.jobId ?? 'job-1';
    this.target = opts.target ?? 'esp32';
    this.paths = paths;
    this.spool = spool;
    this.#log = opts.log;
    this.#sourceMaxBytes = opts.sourceMaxBytes ?? 64 * 1024 * 1024;
  }

  static async create(opts: TestJobOptions): Promise<TestJob> {
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-webrtc-'));
    const paths = await createWorkspace(workDir, opts.jobId ?? 'job-1');
    const spool = await LogSpool.create(paths.log);
    return new TestJob(opts, paths, spool);
  }

  state(): JobState {
    return this.#state;
  }
  exitCode(): number | undefined {
    return this.#exitCode;
  }
  error(): { code: string; message: string } | undefined {
    return this.#error;
  }
  onState(listener: (state: JobState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  setState(
    state: JobState,
    extra: { exitCode?: number; error?: { code: string; message: string } } = {},
  ): void {
    this.#state = state;
    if (extra.exitCode !== undefined) this.#exitCode = extra.exitCode;
    if (extra.error !== undefined) this.#error = extra.error;
    for (const fn of [...this.#listeners]) fn(state);
  }

  beginSource(declared: { format: 'tar' | 'tar.gz'; size: number; sha256: string }): SourceUpload {
    if (this.#sourceBegun || this.#state !== 'assigned') {
      throw new AegisError(
        'AEGIS_ERR_JOB_STATE',
        `job ${this.jobId} takes no source in state ${this.#state}`,
      );
    }
    const intake = createSourceIntake({
      paths: this.paths,
      declared,
      limits: { maxBytes: this.#sourceMaxBytes, maxEntries: 1000 },
      log: this.#log,
    });
    this.#sourceBegun = true;
    this.setState('receiving');
    return {
      write: (chunk) => intake.write(chunk),
      finish: async () => {
        try {
          const result = await intake.finish();
          this.setState('building');
          return result;
        } catch (err) {
          this.setState('failed', { error: (err as AegisError).toWire() });
          throw err;
        }
      },
      abort: (reason) => intake.abort(reason),
    };
  }

  logReader(from: number): LogReader {
    return this.spool.reader(from);
  }
  logSize(): number {
    return this.spool.size;
  }
  ptyWrite(data: Buffer): boolean {
    if (!this.#build?.running) return false;
    this.#build.write(data);
    return true;
  }
  ptyResize(cols: number, rows: number): boolean {
    if (!this.#build?.running) return false;
    this.#build.resize(cols, rows);
    return true;
  }
  manifest(): ArtifactManifest | undefined {
    return this.#state === 'succeeded' ? this.#manifest : undefined;
  }
  cancel(reason: string): void {
    this.canceled.push(reason);
    this.#build?.cancel();
  }

  /** The build ended: closes the log and moves to a terminal state. */
  finish(state: JobState, exitCode?: number): void {
    this.spool.close();
    this.setState(state, exitCode === undefined ? {} : { exitCode });
  }

  /** Real files in the build dir and a real manifest over them (served once `succeeded`). */
  async setArtifacts(
    files: { name: string; data: Buffer; flash_offset?: number }[],
  ): Promise<void> {
    const entries = [];
    for (const f of files) {
      const file = path.join(this.paths.build, f.name);
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(file, f.data);
      const digest = await hashFile(file);
      entries.push({
        name: f.name,
        path: file,
        ...digest,
        ...(f.flash_offset === undefined ? {} : { flash_offset: f.flash_offset }),
      });
    }
    this.#manifest = new ArtifactManifest(
      this.target,
      { flash_mode: 'dio', flash_size: '4MB', flash_freq: '80m' },
      entries,
    );
  }

  /** Runs `command` under a real pty as this job's build; the job is `building` meanwhile. */
  startPty(command: { file: string; args: string[] }, size = { cols: 80, rows: 24 }): BuildHandle {
    this.setState('building');
    const build = startBuild({
      projectDir: this.paths.src,
      buildDir: this.paths.build,
      target: this.target,
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        TERM: 'xterm-256color',
        HOME: os.tmpdir(),
      },
      cwd: this.paths.root,
      cols: size.cols,
      rows: size.rows,
      timeoutMs: 60_000,
      killGraceMs: 500,
      sink: (data) => this.spool.append(data),
      command,
    });
    this.#build = build;
    void build.result.then((r) => {
      this.finish(r.outcome, r.exitCode);
    });
    return build;
  }
}
