// A job's build log on disk (build.log): every pty byte is appended here, synchronously, before
// any reader or network peer sees it. The file is the only copy; readers follow it from any
// byte offset (logspool-reader.ts). Nothing here may lose a byte below the cap, and nothing
// here ever waits on a reader.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/index.js';
import { LogReader, type SpoolSource } from './logspool-reader.js';

export {
  followLog,
  LogReader,
  type FollowLogOptions,
  type FollowResult,
} from './logspool-reader.js';

/** LOG_MAX_BYTES default (config/schema.ts): the cap on build.log's bytes, marker excluded. */
export const DEFAULT_LOG_MAX_BYTES = 64 * 1024 * 1024;

/** The one line that ends a log cut at `maxBytes`; CRLF because it is shown on a terminal. */
export function truncationMarker(maxBytes: number): Buffer {
  return Buffer.from(
    `\r\n[aegis-agent] log truncated at ${maxBytes} bytes; the build goes on (further output dropped)\r\n`,
  );
}

export interface LogSpoolOptions {
  /** Bytes of build output kept; past it one marker line, then bytes are dropped but counted. */
  maxBytes?: number;
  /** Where write failures go; append itself never throws into the pty callback. */
  log?: Logger;
}

export class LogSpool implements SpoolSource {
  readonly file: string;
  readonly maxBytes: number;
  readonly #log: Logger | undefined;
  #fd: number | undefined;
  #size: number;
  #dropped = 0;
  #truncated = false;
  #writeFailed = false;
  /** One-shot wake-ups of readers waiting for bytes past the end; cleared on every change. */
  readonly #waiters = new Set<() => void>();

  private constructor(file: string, fd: number | undefined, size: number, opts: LogSpoolOptions) {
    this.file = file;
    this.#fd = fd;
    this.#size = size;
    this.maxBytes = opts.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.#log = opts.log;
  }

  /** Creates (or truncates) `file` for a build about to start. */
  static async create(file: string, opts: LogSpoolOptions = {}): Promise<LogSpool> {
    await fs.promises.mkdir(path.dirname(file), { recursive: true });
    const { O_WRONLY, O_CREAT, O_TRUNC, O_APPEND } = fs.constants;
    const fd = fs.openSync(file, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o640);
    return new LogSpool(file, fd, 0, opts);
  }

  /** The log of a finished job (e.g. after an agent restart): closed and read-only. */
  static async openExisting(file: string, opts: LogSpoolOptions = {}): Promise<LogSpool> {
    const stat = await fs.promises.stat(file);
    return new LogSpool(file, undefined, stat.size, opts);
  }

  /** Bytes in build.log, marker included. */
  get size(): number {
    return this.#size;
  }

  /** Bytes of build output not written: past the cap, after close, or after a write error. */
  get droppedBytes(): number {
    return this.#dropped;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  get closed(): boolean {
    return this.#fd === undefined;
  }

  /**
   * Writes `data` to the file (one write syscall, on an O_APPEND fd), then wakes waiting readers.
   * Called from the pty's data callback: never throws, never waits.
   */
  append(data: Buffer | string): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (bytes.length === 0) return;
    if (this.#fd === undefined || this.#truncated || this.#writeFailed) {
      this.#dropped += bytes.length;
      return;
    }
    const room = this.maxBytes - this.#size;
    if (bytes.length <= room) {
      this.#write(bytes, true);
    } else {
      if (room > 0) this.#write(bytes.subarray(0, room), true);
      this.#dropped += bytes.length - room;
      this.#truncated = true;
      if (!this.#writeFailed) {
        this.#write(truncationMarker(this.maxBytes), false);
        this.#log?.warn(
          { file: this.file, max_bytes: this.maxBytes },
          'Build log reached LOG_MAX_BYTES; further output is dropped while the build goes on.',
        );
      }
    }
    this.#wake();
  }

  /** The build ended: readers get end-of-log once they have read the last byte. Idempotent. */
  close(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    try {
      fs.closeSync(fd);
    } catch (err) {
      this.#log?.error({ err, file: this.file }, 'Could not close the build log.');
    }
    this.#wake();
  }

  /**
   * A reader of build.log from byte `from` (which may lie beyond the current end). It holds a file
   * handle from its first read until it returns null: cancel() one that is left before that.
   */
  reader(from = 0): LogReader {
    return new LogReader(this, from);
  }

  /** Calls `fn` once, on the next append or close; returns the way to take it back. */
  onChange(fn: () => void): () => void {
    this.#waiters.add(fn);
    return () => this.#waiters.delete(fn);
  }

  #wake(): void {
    if (this.#waiters.size === 0) return;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const fn of waiters) fn();
  }

  /** Writes all of `buf`; on an error the log stays a clean prefix of the output: nothing more is written. */
  #write(buf: Buffer, isOutput: boolean): void {
    let done = 0;
    try {
      while (done < buf.length) {
        done += fs.writeSync(this.#fd as number, buf, done, buf.length - done);
      }
    } catch (err) {
      this.#writeFailed = true;
      if (isOutput) this.#dropped += buf.length - done;
      this.#log?.error(
        { err, file: this.file },
        'Could not write the build log (disk full?); further output is dropped while the build goes on.',
      );
    }
    this.#size += done;
  }
}

/** Creates (or truncates) a job's build.log; see LogSpool. */
export function openLogSpool(file: string, opts: LogSpoolOptions = {}): Promise<LogSpool> {
  return LogSpool.create(file, opts);
}
