// The durable outbox for `job.update` (PROTOCOL §1): every job state change gets the next `seq`
// and is on disk (fdatasync) before it may reach the socket, and stays there until the control
// plane acks that seq. Nothing here may lose an update: a crash of the agent or of the control
// plane only means some updates are sent again, which the control plane de-duplicates by seq.
//
// File: STATE_DIR/control/outbox.jsonl, an append-only journal of JSON lines:
//   {"last":N}          highest seq ever issued (written by compaction, so seq never goes back)
//   {"u":{…update…}}    a job.update frame, seq included
//   {"ack":N}           the control plane stored seq N
// Compaction rewrites it (tmp + fsync + rename + fsync of the directory) as {"last":N} plus the
// still-pending updates, when everything is acked or the journal outgrows OUTBOX_COMPACT_BYTES.
// Limit: pending updates are not capped, because dropping one would break the contract; they are
// bounded by jobs × states (a job makes at most a handful of updates) for as long as the link is down.
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AegisError } from '../errors.js';
import { JobUpdate, type AgentMessage, type Msg } from './messages.js';

export type JobUpdateFrame = Msg<AgentMessage, 'job.update'>;
/** What a caller reports: the outbox adds `type` and `seq`. */
export type JobReport = Omit<JobUpdateFrame, 'type' | 'seq'>;

export const OUTBOX_FILE = path.join('control', 'outbox.jsonl');
/** Journal size past which it is compacted even while updates are pending. */
export const OUTBOX_COMPACT_BYTES = 256 * 1024;

export interface OutboxLoadResult {
  pending: number;
  lastSeq: number;
  /** Lines that could not be read: a torn last line after a crash, or damage. */
  skippedLines: number;
}

export class Outbox {
  readonly file: string;
  private readonly queue = new Map<number, JobUpdateFrame>();
  private last = 0;
  private bytes = 0;
  private handle: FileHandle | undefined;
  /** Serialises every file operation so journal order is seq order. */
  private chain: Promise<unknown> = Promise.resolve();
  /** A write failed part-way: the journal may end in a fragment, so rewrite it before appending. */
  private mustRewrite = false;
  private loaded = false;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, OUTBOX_FILE);
  }

  /** Highest seq issued so far (0 before the first update). */
  get lastSeq(): number {
    return this.last;
  }

  /** Read the journal at start. A line that does not parse (a torn write) is skipped. */
  load(): Promise<OutboxLoadResult> {
    return this.serial(async () => {
      await fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
      let text = '';
      try {
        text = await fs.readFile(this.file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      let skipped = 0;
      const lines = text.split('\n').filter((l) => l !== '');
      for (const line of lines) if (!this.replay(line)) skipped += 1;
      // A torn tail would glue itself to the next appended line: start from a clean file instead.
      this.mustRewrite = skipped > 0 || (text !== '' && !text.endsWith('\n'));
      this.bytes = Buffer.byteLength(text);
      this.loaded = true;
      return { pending: this.queue.size, lastSeq: this.last, skippedLines: skipped };
    });
  }

  /** Give `report` the next seq and persist it; resolves with the frame once it is on disk. */
  append(report: JobReport): Promise<JobUpdateFrame> {
    return this.serial(async () => {
      this.assertLoaded();
      const parsed = JobUpdate.safeParse({ ...report, type: 'job.update', seq: this.last + 1 });
      if (!parsed.success) {
        const why = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
        throw new AegisError(
          'AEGIS_ERR_INTERNAL',
          `job.update for ${report.job_id} does not fit the protocol (${why}); it was not queued`,
        );
      }
      const frame = parsed.data;
      await this.write(`${JSON.stringify({ u: frame })}\n`, true);
      this.last = frame.seq;
      this.queue.set(frame.seq, frame);
      return frame;
    });
  }

  /**
   * The control plane stored `seq`. The ack line is not fsync'd: losing it in a crash only
   * re-sends an update the control plane already has, and it de-duplicates by seq.
   */
  ack(seq: number): Promise<void> {
    return this.serial(async () => {
      this.assertLoaded();
      if (!this.queue.delete(seq)) return; // unknown or already acked: nothing to record
      await this.write(`${JSON.stringify({ ack: seq })}\n`, false);
      if (this.queue.size === 0 || this.bytes > OUTBOX_COMPACT_BYTES) await this.compact();
    });
  }

  /** Updates not yet acked, in seq order: what to (re-)send after every connect. */
  pending(): JobUpdateFrame[] {
    return [...this.queue.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Finish queued file work and close the journal. */
  close(): Promise<void> {
    return this.serial(async () => {
      await this.handle?.close();
      this.handle = undefined;
    });
  }

  private replay(line: string): boolean {
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      return false;
    }
    if (typeof rec !== 'object' || rec === null) return false;
    const r = rec as { u?: unknown; ack?: unknown; last?: unknown };
    if (r.u !== undefined) {
      const u = JobUpdate.safeParse(r.u);
      if (!u.success) return false;
      this.queue.set(u.data.seq, u.data);
      this.last = Math.max(this.last, u.data.seq);
      return true;
    }
    if (typeof r.ack === 'number') {
      this.queue.delete(r.ack);
      this.last = Math.max(this.last, r.ack);
      return true;
    }
    if (typeof r.last === 'number') {
      this.last = Math.max(this.last, r.last);
      return true;
    }
    return false;
  }

  private async write(line: string, durable: boolean): Promise<void> {
    if (this.mustRewrite) await this.compact();
    try {
      this.handle ??= await this.openJournal();
      await this.handle.appendFile(line, 'utf8');
      if (durable) await this.handle.datasync();
    } catch (err) {
      this.mustRewrite = true;
      throw new AegisError(
        'AEGIS_ERR_INTERNAL',
        `cannot write the control outbox ${this.file}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.bytes += Buffer.byteLength(line);
  }

  /** Rewrite the journal as {"last"} + pending updates, atomically. */
  private async compact(): Promise<void> {
    const body =
      [
        JSON.stringify({ last: this.last }),
        ...this.pending().map((u) => JSON.stringify({ u })),
      ].join('\n') + '\n';
    const tmp = `${this.file}.tmp`;
    await this.handle?.close();
    this.handle = undefined;
    const fh = await fs.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(body, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, this.file);
    await syncDir(path.dirname(this.file));
    this.bytes = Buffer.byteLength(body);
    this.mustRewrite = false;
  }

  private async openJournal(): Promise<FileHandle> {
    let created = false;
    try {
      await fs.access(this.file);
    } catch {
      created = true;
    }
    const fh = await fs.open(this.file, 'a', 0o600);
    // A new file's directory entry must be durable too, or a crash can lose the whole journal.
    if (created) await syncDir(path.dirname(this.file));
    return fh;
  }

  private assertLoaded(): void {
    if (!this.loaded)
      throw new AegisError('AEGIS_ERR_INTERNAL', 'the control outbox was used before load()');
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => undefined);
    return next;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
