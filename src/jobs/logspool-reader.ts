// Readers of a log spool: each follows build.log from its own offset with tail -f semantics,
// woken by the writer's appends (in-process, no disk polling). Reads go to the file, so a
// reader holds at most one read's bytes whatever the log size; a slow reader costs nothing.
import fs from 'node:fs';
import { AegisError } from '../errors.js';

/** What a reader needs of its spool (LogSpool implements it). */
export interface SpoolSource {
  readonly file: string;
  readonly size: number;
  readonly closed: boolean;
  onChange(fn: () => void): () => void;
}

export class LogReader {
  readonly #source: SpoolSource;
  #offset: number;
  #handle: fs.promises.FileHandle | undefined;
  #reading = false;
  #canceled = false;
  /** Set while a read waits for bytes: ends that wait (cancel) and drops the subscription. */
  #stopWaiting: (() => void) | undefined;

  constructor(source: SpoolSource, from: number) {
    if (!Number.isSafeInteger(from) || from < 0) {
      throw new AegisError('AEGIS_ERR_PROTOCOL', `Log offset ${from} is not a byte offset ≥ 0.`);
    }
    this.#source = source;
    this.#offset = from;
  }

  /** The next byte this reader returns. */
  get offset(): number {
    return this.#offset;
  }

  get canceled(): boolean {
    return this.#canceled;
  }

  /**
   * Resolves with 1..maxBytes bytes as soon as any exist past the offset; null once the spool is
   * closed and everything was read, or after cancel(). One read at a time per reader.
   */
  async read(maxBytes: number): Promise<Buffer | null> {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new AegisError('AEGIS_ERR_INTERNAL', `Log read size ${maxBytes} is not ≥ 1.`);
    }
    if (this.#reading) {
      throw new AegisError('AEGIS_ERR_INTERNAL', 'A log reader was read twice at once.');
    }
    this.#reading = true;
    try {
      for (;;) {
        if (this.#canceled) return null;
        const size = this.#source.size;
        if (this.#offset < size)
          return await this.#readFile(Math.min(maxBytes, size - this.#offset));
        if (this.#source.closed) return null;
        await this.#waitForChange();
      }
    } finally {
      this.#reading = false;
      // Release the file as soon as this reader can return nothing more.
      if (this.#canceled || (this.#source.closed && this.#offset >= this.#source.size)) {
        await this.#release();
      }
    }
  }

  /** Ends the reader: a pending read resolves with null, later reads too. */
  cancel(): void {
    if (this.#canceled) return;
    this.#canceled = true;
    this.#stopWaiting?.();
    // An in-flight read releases the file itself when it finishes.
    if (!this.#reading) void this.#release();
  }

  async #readFile(length: number): Promise<Buffer | null> {
    this.#handle ??= await fs.promises.open(this.#source.file, 'r');
    if (this.#canceled) return null;
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await this.#handle.read(buf, 0, length, this.#offset);
    if (bytesRead === 0) {
      throw new AegisError(
        'AEGIS_ERR_INTERNAL',
        `Build log ${this.#source.file} is shorter than the ${this.#source.size} bytes written to it.`,
      );
    }
    this.#offset += bytesRead;
    return bytesRead === length ? buf : buf.subarray(0, bytesRead);
  }

  #waitForChange(): Promise<void> {
    return new Promise<void>((resolve) => {
      const unsubscribe = this.#source.onChange(() => {
        this.#stopWaiting = undefined;
        resolve();
      });
      this.#stopWaiting = () => {
        this.#stopWaiting = undefined;
        unsubscribe();
        resolve();
      };
    });
  }

  async #release(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    // Closing a read-only handle can only fail if it is already closed: nothing to report.
    await handle?.close().catch(() => undefined);
  }
}

export interface FollowLogOptions {
  reader: LogReader;
  /** Hands one chunk to the channel; resolves when the bounded send queue took it. */
  send: (chunk: Buffer) => Promise<void>;
  /** Largest chunk read and sent (CHUNK_BYTES). */
  chunkBytes: number;
  /** Aborting (channel closed, session ended) cancels the reader. */
  signal?: AbortSignal;
}

export interface FollowResult {
  /** eof: the build ended and every byte from the start offset was sent. */
  end: 'eof' | 'canceled';
  sentBytes: number;
}

/**
 * Pumps `reader` into `send` until the log ends or the reader is canceled. Backpressure is
 * `send`'s: while it waits, nothing is read, and the spool keeps the bytes on disk.
 */
export async function followLog(opts: FollowLogOptions): Promise<FollowResult> {
  const { reader, send, chunkBytes, signal } = opts;
  const onAbort = () => reader.cancel();
  if (signal?.aborted) reader.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let sentBytes = 0;
  try {
    for (;;) {
      const chunk = await reader.read(chunkBytes);
      if (chunk === null) return { end: reader.canceled ? 'canceled' : 'eof', sentBytes };
      await send(chunk);
      sentBytes += chunk.length;
    }
  } catch (err) {
    reader.cancel();
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
