// What the session layer may see and do of a job: the one interface between webrtc and the
// jobs. The daemon's job controller implements it; webrtc never starts builds or touches a
// workspace itself.
import type { JobState } from '../control/messages.js';
import type { ArtifactManifest } from '../jobs/artifacts.js';
import type { LogReader } from '../jobs/logspool-reader.js';

export interface SessionJob {
  readonly jobId: string;
  readonly target: string;
  state(): JobState;
  exitCode(): number | undefined;
  error(): { code: string; message: string } | undefined;
  /** Subscribe to state changes; returns unsubscribe. Listeners must not throw. */
  onState(listener: (state: JobState) => void): () => void;
  /**
   * Start the one upload of this job (AegisError AEGIS_ERR_JOB_STATE if one happened or the
   * state forbids; SOURCE_* from the intake). The job moves to `receiving`, and to `building`
   * once finish() resolved.
   */
  beginSource(declared: { format: 'tar' | 'tar.gz'; size: number; sha256: string }): SourceUpload;
  /**
   * A reader of the job's log spool from a byte offset. Its read() returns null once the build
   * ended and everything was read; a job that never built has an ended, empty log.
   */
  logReader(from: number): LogReader;
  logSize(): number;
  /** Input to the build's terminal; false when no build process runs. */
  ptyWrite(data: Buffer): boolean;
  ptyResize(cols: number, rows: number): boolean;
  /** The manifest once the job succeeded, else undefined. */
  manifest(): ArtifactManifest | undefined;
  cancel(reason: string): void;
}

export interface SourceUpload {
  /** Throws the AegisError that ends the upload (too large, disk too slow); see SourceIntake. */
  write(chunk: Buffer): void;
  finish(): Promise<{ size: number; sha256: string }>;
  abort(reason: string): Promise<void>;
}

export interface JobDirectory {
  lookup(jobId: string): SessionJob | undefined;
}
