import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAegisError } from '../src/errors.js';
import { createLogger } from '../src/log/index.js';
import {
  followLog,
  LogSpool,
  openLogSpool,
  truncationMarker,
  type LogReader,
} from '../src/jobs/logspool.js';
import { createLogSink } from './helpers/log-sink.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-logspool-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Deterministic bytes (xorshift32), so a failure is reproducible. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return {
    int: (lo: number, hi: number) => lo + (next() % (hi - lo + 1)),
    bytes: (n: number) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = next() & 0xff;
      return b;
    },
  };
}

/** Reads a reader to its end, remembering the largest chunk. */
async function drain(reader: LogReader, chunk = 16 * 1024) {
  const parts: Buffer[] = [];
  let max = 0;
  for (;;) {
    const b = await reader.read(chunk);
    if (b === null) break;
    max = Math.max(max, b.length);
    parts.push(b);
  }
  return { data: Buffer.concat(parts), max };
}

/** Rejects if `p` has not settled within `ms`: a bound on waiting, never a synchroniser. */
function within<T>(p: Promise<T>, ms = 5000): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms)),
  ]);
}

const PENDING = Symbol('pending');
/** Whether `p` is still pending after the event loop has run everything ready (I/O included). */
async function stillPending(p: Promise<unknown>): Promise<boolean> {
  const r = await Promise.race([p, new Promise((resolve) => setTimeout(resolve, 50, PENDING))]);
  return r === PENDING;
}

const yieldIo = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('log spool', () => {
  it('gives every reader exactly the bytes of build.log from its offset', async () => {
    const file = path.join(dir, 'build.log');
    const spool = await openLogSpool(file, { maxBytes: 1 << 30 });
    const r = rng(42);
    const fromStart = drain(spool.reader(0));
    // Beyond the end: waits for bytes that do not exist yet.
    const beyondFrom = 300_000;
    const beyond = drain(spool.reader(beyondFrom), 7000);
    const late: Promise<{ data: Buffer; max: number }>[] = [];
    const lateFrom: number[] = [];
    for (let i = 0; i < 160; i++) {
      const n = r.int(0, 9) === 0 ? r.int(1, 16) : r.int(1, 100 * 1024);
      const chunk = r.bytes(n);
      if (i % 7 === 0) chunk[0] = 0; // \0 and invalid UTF-8 come naturally; make \0 certain
      spool.append(chunk);
      if (i === 40 || i === 100) {
        // One that starts late at 0, one from the middle of what exists.
        lateFrom.push(0, Math.floor(spool.size / 2));
        late.push(drain(spool.reader(0), 1000), drain(spool.reader(Math.floor(spool.size / 2))));
      }
      if (i % 3 === 0) await yieldIo();
    }
    spool.append('tail \u00e9\r\n');
    spool.close();
    const all = fs.readFileSync(file);
    expect(all.length).toBe(spool.size);
    expect(spool.droppedBytes).toBe(0);
    expect((await within(fromStart)).data.equals(all)).toBe(true);
    expect((await within(beyond)).data.equals(all.subarray(beyondFrom))).toBe(true);
    const lates = await within(Promise.all(late));
    lates.forEach((res, i) => {
      expect(res.data.equals(all.subarray(lateFrom[i]))).toBe(true);
    });
  });

  it('ends a reader only after close and after the last byte', async () => {
    const spool = await openLogSpool(path.join(dir, 'build.log'));
    spool.append('abc');
    const reader = spool.reader(0);
    expect((await reader.read(100))?.toString()).toBe('abc');
    const pending = reader.read(100);
    expect(await stillPending(pending)).toBe(true);
    spool.append(Buffer.from([0xff, 0x00, 0xfe]));
    expect(await within(pending)).toEqual(Buffer.from([0xff, 0x00, 0xfe]));
    const atEnd = reader.read(100);
    expect(await stillPending(atEnd)).toBe(true);
    spool.close();
    expect(await within(atEnd)).toBeNull();
    expect(await reader.read(100)).toBeNull();
    expect(spool.closed).toBe(true);
    // A reader starting past the end of a closed log gets end-of-log at once.
    expect(await spool.reader(10).read(10)).toBeNull();
  });

  it('waits for a byte beyond the current size, then gets it', async () => {
    const spool = await openLogSpool(path.join(dir, 'build.log'));
    spool.append('0123');
    const reader = spool.reader(6);
    const pending = reader.read(100);
    spool.append('45');
    expect(await stillPending(pending)).toBe(true);
    spool.append('6789');
    expect((await within(pending))?.toString()).toBe('6789');
    expect(reader.offset).toBe(10);
    reader.cancel(); // a reader left before its end gives back its file this way
    spool.close();
  });

  it('cuts the log at maxBytes with one marker line and counts what it drops', async () => {
    const file = path.join(dir, 'build.log');
    const cap = 10_000;
    const spool = await openLogSpool(file, { maxBytes: cap });
    const follower = drain(spool.reader(0), 999);
    const r = rng(7);
    const input: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      input.push(r.bytes(3000));
      spool.append(input[i]!);
    }
    spool.append('more');
    expect(spool.truncated).toBe(true);
    spool.close();
    const marker = truncationMarker(cap);
    expect(marker.toString()).toContain('log truncated at 10000 bytes; the build goes on');
    const all = fs.readFileSync(file);
    expect(all.length).toBe(cap + marker.length);
    expect(spool.size).toBe(all.length);
    expect(all.subarray(0, cap).equals(Buffer.concat(input).subarray(0, cap))).toBe(true);
    expect(all.subarray(cap).equals(marker)).toBe(true);
    expect(spool.droppedBytes).toBe(15_000 - cap + 4);
    expect((await within(follower)).data.equals(all)).toBe(true);
  });

  it('writes no marker when the output fills the cap exactly', async () => {
    const file = path.join(dir, 'build.log');
    const spool = await openLogSpool(file, { maxBytes: 8 });
    spool.append('12345678');
    spool.close();
    expect(fs.readFileSync(file).toString()).toBe('12345678');
    expect(spool.droppedBytes).toBe(0);
  });

  it.runIf(fs.existsSync('/dev/full'))(
    'never throws into the pty callback when the disk is full',
    async () => {
      const sink = createLogSink();
      const spool = await openLogSpool('/dev/full', { log: createLogger({ destination: sink }) });
      expect(() => spool.append('first')).not.toThrow();
      spool.append('second');
      expect(spool.size).toBe(0);
      expect(spool.droppedBytes).toBe(11);
      expect(sink.lines.filter((l) => l['level'] === 50)).toHaveLength(1); // logged once
      const reader = spool.reader(0);
      spool.close();
      expect(await within(reader.read(10))).toBeNull();
    },
  );

  it('cancel() resolves a pending read with null', async () => {
    const spool = await openLogSpool(path.join(dir, 'build.log'));
    const reader = spool.reader(0);
    const pending = reader.read(10);
    reader.cancel();
    expect(await within(pending)).toBeNull();
    spool.append('x');
    expect(await reader.read(10)).toBeNull();
    expect(reader.canceled).toBe(true);
    spool.close();
  });

  it('refuses a second read at once on one reader, and bad offsets', async () => {
    const spool = await openLogSpool(path.join(dir, 'build.log'));
    const reader = spool.reader(0);
    const first = reader.read(10);
    await expect(reader.read(10)).rejects.toSatisfy((e) => isAegisError(e, 'AEGIS_ERR_INTERNAL'));
    expect(() => spool.reader(-1)).toThrow();
    spool.close();
    expect(await within(first)).toBeNull();
  });

  it('serves a closed log with openExisting and drops appends to it', async () => {
    const file = path.join(dir, 'build.log');
    const spool = await openLogSpool(file);
    spool.append('line 1\r\nline 2\r\n');
    spool.close();
    spool.append('late');
    expect(spool.droppedBytes).toBe(4);
    const again = await LogSpool.openExisting(file);
    expect(again.closed).toBe(true);
    expect(again.size).toBe(16);
    expect((await within(drain(again.reader(8)))).data.toString()).toBe('line 2\r\n');
    again.append('x');
    expect(fs.readFileSync(file).length).toBe(16);
  });

  it('followLog pumps into send until the end, or until aborted', async () => {
    const spool = await openLogSpool(path.join(dir, 'build.log'));
    const got: Buffer[] = [];
    const done = followLog({
      reader: spool.reader(2),
      chunkBytes: 4,
      send: async (chunk) => {
        got.push(chunk);
        await yieldIo(); // a send queue that takes its time
      },
    });
    spool.append('..0123456789');
    spool.append('abc');
    spool.close();
    expect(await within(done)).toEqual({ end: 'eof', sentBytes: 13 });
    expect(Buffer.concat(got).toString()).toBe('0123456789abc');
    expect(Math.max(...got.map((b) => b.length))).toBeLessThanOrEqual(4);

    const open = await openLogSpool(path.join(dir, 'other.log'));
    const ac = new AbortController();
    const following = followLog({
      reader: open.reader(0),
      chunkBytes: 4,
      send: () => Promise.resolve(),
      signal: ac.signal,
    });
    ac.abort();
    expect(await within(following)).toEqual({ end: 'canceled', sentBytes: 0 });

    const failing = followLog({
      reader: open.reader(0),
      chunkBytes: 4,
      send: () => Promise.reject(new Error('channel closed')),
    });
    open.append('data');
    await expect(within(failing)).rejects.toThrow('channel closed');
    open.close();
  });

  it('keeps reader memory at one read whatever the log size; measures throughput', async () => {
    const file = path.join(dir, 'build.log');
    const spool = await openLogSpool(file);
    const block = rng(3).bytes(4096);
    const total = 50 * 1024 * 1024;
    const t0 = process.hrtime.bigint();
    for (let written = 0; written < total; written += block.length) spool.append(block);
    const appendMs = Number(process.hrtime.bigint() - t0) / 1e6;
    spool.close();
    expect(spool.size).toBe(total);

    const pattern = Buffer.concat([block, block, block, block, block, block]);
    const t1 = process.hrtime.bigint();
    const reader = spool.reader(0);
    let max = 0;
    let bytes = 0;
    let ok = true;
    for (;;) {
      const b = await reader.read(16 * 1024);
      if (b === null) break;
      max = Math.max(max, b.length);
      // Verify content without keeping it: every 4 KiB block is the same.
      const start = bytes % block.length;
      ok &&= b.equals(pattern.subarray(start, start + b.length));
      bytes += b.length;
    }
    const readMs = Number(process.hrtime.bigint() - t1) / 1e6;
    expect(ok).toBe(true);
    expect(bytes).toBe(total);
    expect(max).toBeLessThanOrEqual(16 * 1024);
    // The pty's usual shape: many short strings.
    const small = await openLogSpool(path.join(dir, 'small.log'));
    const line = 'I (1234) blink: Turning the LED ON, \u001b[0;32mok\u001b[0m\r\n';
    const t2 = process.hrtime.bigint();
    for (let i = 0; i < 100_000; i++) small.append(line);
    const smallMs = Number(process.hrtime.bigint() - t2) / 1e6;
    small.close();
    expect(small.size).toBe(100_000 * Buffer.byteLength(line));
    const mb = total / 1e6;
    console.info(
      `logspool: 4 KiB appends ${(mb / (appendMs / 1000)).toFixed(0)} MB/s (${((appendMs * 1000) / (total / 4096)).toFixed(1)} µs each); ` +
        `16 KiB reads ${(mb / (readMs / 1000)).toFixed(0)} MB/s; ` +
        `${Buffer.byteLength(line)} B string appends ${((smallMs * 1000) / 100_000).toFixed(1)} µs each`,
    );
  });
});
