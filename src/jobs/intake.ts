// The receiving end of the `source` channel (PROTOCOL §4): streams the client's archive into
// upload/ while hashing and counting it, then verifies it and extracts it into src/ — all or
// nothing. Every byte is hostile until it has passed; a refusal leaves no file behind.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, readdirSync, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { AegisError, toAegisError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { extractArchive, scanArchive } from './intake-extract.js';
import {
  checkDeclared,
  formatProblem,
  tooLarge,
  type DeclaredSource,
  type SourceLimits,
} from './intake-validate.js';
import type { WorkspacePaths } from './workspace.js';

export type { DeclaredSource, SourceFormat, SourceLimits } from './intake-validate.js';

/**
 * Bytes accepted by write() but not yet on disk. The data channel has no receive backpressure,
 * so when the disk falls this far behind the upload fails instead of growing memory.
 */
export const DEFAULT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export interface SourceIntakeOptions {
  /** The job's workspace, made by createWorkspace (upload/ must exist). */
  paths: WorkspacePaths;
  /** The begin frame; re-validated here. */
  declared: DeclaredSource;
  limits: SourceLimits & { maxBufferedBytes?: number };
  log: Logger;
}

export interface SourceIntakeResult {
  /** Bytes received, equal to the declared size. */
  size: number;
  /** sha256 of the received bytes, lowercase hex, equal to the declared one. */
  sha256: string;
  /** Files and directories now in src/. */
  entries: number;
}

export interface SourceIntake {
  /**
   * Takes the next binary message as it arrives. The chunk is kept by reference until written:
   * do not reuse its memory. Throws the AegisError that ends the upload (over the declared size
   * or the limit, disk trouble, data after finish()) once; after that, chunks are dropped.
   */
  write(chunk: Buffer): void;
  /**
   * After the client's `end`: checks size and sha256, extracts into a staging directory and
   * renames it to src/. Rejects with an AegisError (SOURCE_CHECKSUM, SOURCE_UNSAFE,
   * SOURCE_TOO_LARGE, DISK_LOW, …) once the upload file and staging are removed.
   */
  finish(): Promise<SourceIntakeResult>;
  /**
   * Ends the upload without a source (channel closed, job canceled) and resolves once nothing of
   * it is left on disk. A no-op after acceptance: src/ then belongs to the job.
   */
  abort(reason?: string | AegisError): Promise<void>;
  /** Bytes taken so far. */
  readonly received: number;
  /** Why the upload failed, once it has. */
  readonly failure: AegisError | undefined;
}

type State = 'receiving' | 'finishing' | 'accepted' | 'failed';

const HEAD_BYTES = 4;

export function createSourceIntake(opts: SourceIntakeOptions): SourceIntake {
  const { paths, declared, limits, log } = opts;
  // Refused before a file is opened: nothing to clean up.
  checkDeclared(declared, limits);
  assertNoSource(paths.src);
  const maxBuffered = limits.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const started = Date.now();
  const tag = randomBytes(8).toString('hex');
  const uploadFile = path.join(paths.upload, `source-${tag}.part`);
  const staging = path.join(paths.root, `.src-staging-${tag}`);
  const hash = createHash('sha256');
  const extraction = new AbortController();
  // 'wx': never write into a file someone else put there.
  const out = createWriteStream(uploadFile, { flags: 'wx', mode: 0o600 });

  let state: State = 'receiving';
  let received = 0;
  let head = Buffer.alloc(0);
  let failure: AegisError | undefined;
  let failureThrown = false;
  let outError: unknown;
  let cleanup: Promise<void> = Promise.resolve();
  let finishing: Promise<SourceIntakeResult> | undefined;

  out.on('error', (err) => {
    outError ??= err;
    if (state === 'receiving') fail(diskError(err));
  });

  const report = (err: AegisError): void => {
    const fields = { job_id: paths.jobId, code: err.code, received, declared_size: declared.size };
    if (err.code === 'AEGIS_ERR_CANCELED')
      log.info(fields, `source upload aborted: ${err.message}`);
    else log.warn(fields, `source refused: ${err.message}`);
  };

  /** Ends a receiving upload: stops writing and removes the partial file. */
  const fail = (err: AegisError): AegisError => {
    if (state !== 'receiving') return failure ?? err;
    state = 'failed';
    failure = err;
    report(err);
    cleanup = (async () => {
      out.destroy();
      await closed(out);
      await fs.rm(uploadFile, { force: true });
    })().catch((e: unknown) => {
      log.error({ job_id: paths.jobId, err: e }, 'could not remove the partial upload');
    });
    return err;
  };

  const throwOnce = (err: AegisError): void => {
    if (failureThrown) return;
    failureThrown = true;
    throw err;
  };

  const write = (chunk: Buffer): void => {
    if (state === 'failed') {
      return throwOnce(failure ?? new AegisError('AEGIS_ERR_INTERNAL', 'the upload failed'));
    }
    if (state !== 'receiving') {
      throw new AegisError('AEGIS_ERR_PROTOCOL', 'source data arrived after the end of the upload');
    }
    const total = received + chunk.length;
    if (total > limits.maxBytes) {
      return throwOnce(
        fail(tooLarge(`the upload passed the ${limits.maxBytes}-byte limit (SOURCE_MAX_BYTES)`)),
      );
    }
    if (total > declared.size) {
      return throwOnce(
        fail(tooLarge(`the upload sent more than the ${declared.size} bytes it declared`)),
      );
    }
    if (out.writableLength + chunk.length > maxBuffered) {
      return throwOnce(
        fail(
          new AegisError(
            'AEGIS_ERR_INTERNAL',
            `the upload arrived faster than the disk took it (${maxBuffered} bytes waiting)`,
          ),
        ),
      );
    }
    received = total;
    hash.update(chunk);
    if (head.length < HEAD_BYTES) {
      head = Buffer.concat([head, chunk.subarray(0, HEAD_BYTES - head.length)]);
    }
    out.write(chunk);
  };

  const verifyAndExtract = async (): Promise<SourceIntakeResult> => {
    try {
      out.end();
      await closed(out);
      if (outError !== undefined) throw diskError(outError);
      if (received !== declared.size) {
        throw new AegisError(
          'AEGIS_ERR_SOURCE_CHECKSUM',
          `received ${received} bytes but the upload declared ${declared.size}`,
        );
      }
      const sha256 = hash.digest('hex');
      if (sha256 !== declared.sha256.toLowerCase()) {
        throw new AegisError(
          'AEGIS_ERR_SOURCE_CHECKSUM',
          `the archive's sha256 is ${sha256} but the upload declared ${declared.sha256.toLowerCase()}`,
        );
      }
      const badFormat = formatProblem(declared.format, head);
      if (badFormat) throw badFormat;
      const read = {
        file: uploadFile,
        format: declared.format,
        staging,
        limits,
        signal: extraction.signal,
      };
      // Two passes: a refused archive never creates a file; the second pass checks again.
      await scanArchive(read);
      extraction.signal.throwIfAborted();
      await fs.mkdir(staging, { mode: 0o700 });
      const result = await extractArchive(read);
      await installSource(staging, paths.src);
      await fs.rm(uploadFile, { force: true });
      state = 'accepted';
      log.info(
        {
          job_id: paths.jobId,
          size: received,
          entries: result.entries,
          tar_bytes: result.tarBytes,
          ms: Date.now() - started,
        },
        'source accepted',
      );
      return { size: received, sha256, entries: result.entries };
    } catch (err) {
      const e = toAegisError(err);
      state = 'failed';
      failure = e;
      failureThrown = true;
      await Promise.all([
        fs.rm(staging, { recursive: true, force: true, maxRetries: 2 }),
        fs.rm(uploadFile, { force: true }),
      ]);
      report(e);
      throw e;
    }
  };

  return {
    write,
    async finish() {
      if (state === 'failed') {
        await cleanup;
        failureThrown = true;
        throw failure ?? new AegisError('AEGIS_ERR_INTERNAL', 'the upload failed');
      }
      if (state !== 'receiving') {
        throw new AegisError('AEGIS_ERR_PROTOCOL', 'the upload was already ended');
      }
      state = 'finishing';
      finishing = verifyAndExtract();
      return finishing;
    },
    async abort(reason = 'the upload was aborted') {
      const err =
        typeof reason === 'string' ? new AegisError('AEGIS_ERR_CANCELED', reason) : reason;
      switch (state) {
        case 'receiving':
          failureThrown = true;
          fail(err);
          await cleanup;
          return;
        case 'finishing':
          extraction.abort(err);
          await finishing?.catch(() => undefined);
          return;
        case 'failed':
          await cleanup;
          return;
        case 'accepted':
          return;
      }
    },
    get received() {
      return received;
    },
    get failure() {
      return failure;
    },
  };
}

/** One upload per job: an earlier accepted source stays as it is. */
function assertNoSource(src: string): void {
  let names: string[];
  try {
    names = readdirSync(src);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw toAegisError(err);
  }
  if (names.length > 0) {
    throw new AegisError(
      'AEGIS_ERR_JOB_STATE',
      'this job already has its source (one upload per job)',
    );
  }
}

/** The only moment src/ changes: an empty placeholder may go, a filled one never. */
async function installSource(staging: string, src: string): Promise<void> {
  try {
    await fs.rmdir(src);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      throw new AegisError(
        'AEGIS_ERR_JOB_STATE',
        'this job already has its source (one upload per job)',
      );
    }
    if (code !== 'ENOENT') throw toAegisError(err);
  }
  await fs.rename(staging, src);
}

function diskError(err: unknown): AegisError {
  const code = (err as NodeJS.ErrnoException).code;
  const message = err instanceof Error ? err.message : String(err);
  return code === 'ENOSPC' || code === 'EDQUOT'
    ? new AegisError('AEGIS_ERR_DISK_LOW', `no disk space left for the upload: ${message}`, {
        cause: err,
      })
    : new AegisError('AEGIS_ERR_INTERNAL', `writing the upload failed: ${message}`, { cause: err });
}

/** Resolves once the file descriptor is closed (whether the stream ended, failed or was destroyed). */
function closed(stream: WriteStream): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}
