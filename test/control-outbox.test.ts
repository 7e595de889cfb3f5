import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  OUTBOX_COMPACT_BYTES,
  OUTBOX_FILE,
  Outbox,
  type JobReport,
} from '../src/control/outbox.js';
import { isAegisError } from '../src/errors.js';
import { tempDir } from './helpers/ws-server.js';

const report = (job: string, state: JobReport['state'] = 'building'): JobReport => ({
  job_id: job,
  state,
  log_bytes: 0,
  at: 1_700_000_000_000,
});

async function openOutbox(dir: string): Promise<Outbox> {
  const o = new Outbox(dir);
  await o.load();
  return o;
}

const journal = (dir: string) => fs.readFileSync(path.join(dir, OUTBOX_FILE), 'utf8');

describe('durable outbox', () => {
  it('append → pending → ack', async () => {
    const dir = tempDir();
    const o = await openOutbox(dir);
    const a = await o.append(report('j1', 'assigned'));
    const b = await o.append(report('j1', 'building'));
    expect(a).toMatchObject({ type: 'job.update', seq: 1, job_id: 'j1', state: 'assigned' });
    expect(b.seq).toBe(2);
    // On disk before append resolved.
    expect(journal(dir)).toContain('"seq":2');
    expect(o.pending().map((u) => u.seq)).toEqual([1, 2]);
    await o.ack(1);
    expect(o.pending().map((u) => u.seq)).toEqual([2]);
    await o.ack(1); // a duplicate ack is a no-op
    await o.ack(99); // so is an unknown one
    expect(o.pending().map((u) => u.seq)).toEqual([2]);
    await o.close();
  });

  it('keeps seq and pending updates across a new instance on the same dir', async () => {
    const dir = tempDir();
    const o1 = await openOutbox(dir);
    for (let i = 0; i < 5; i++) await o1.append(report(`j${i}`));
    await o1.ack(2);
    await o1.ack(4);
    await o1.close();

    const o2 = new Outbox(dir);
    expect(await o2.load()).toEqual({ pending: 3, lastSeq: 5, skippedLines: 0 });
    expect(o2.pending().map((u) => u.seq)).toEqual([1, 3, 5]);
    expect((await o2.append(report('next'))).seq).toBe(6);
    await o2.close();
  });

  it('gives concurrent appends consecutive seqs in journal order', async () => {
    const dir = tempDir();
    const o = await openOutbox(dir);
    const frames = await Promise.all(
      Array.from({ length: 20 }, (_, i) => o.append(report(`c${i}`))),
    );
    expect(frames.map((f) => f.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const seqs = journal(dir)
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { u: { seq: number } }).u.seq);
    expect(seqs).toEqual(frames.map((f) => f.seq));
    await o.close();
  });

  it('ignores a torn last line and appends cleanly after it', async () => {
    const dir = tempDir();
    const o1 = await openOutbox(dir);
    await o1.append(report('j1'));
    await o1.append(report('j2'));
    await o1.close();
    // A crash in the middle of the third write.
    fs.appendFileSync(
      path.join(dir, OUTBOX_FILE),
      '{"u":{"type":"job.update","seq":3,"job_id":"j3","st',
    );

    const o2 = new Outbox(dir);
    expect(await o2.load()).toEqual({ pending: 2, lastSeq: 2, skippedLines: 1 });
    expect((await o2.append(report('j3'))).seq).toBe(3);
    await o2.close();

    const o3 = new Outbox(dir);
    expect(await o3.load()).toEqual({ pending: 3, lastSeq: 3, skippedLines: 0 });
    await o3.close();
  });

  it('compacts once everything is acked, keeping the seq', async () => {
    const dir = tempDir();
    const o1 = await openOutbox(dir);
    for (let i = 0; i < 3; i++) await o1.append(report(`j${i}`));
    for (let s = 1; s <= 3; s++) await o1.ack(s);
    expect(journal(dir)).toBe('{"last":3}\n');
    await o1.close();

    const o2 = await openOutbox(dir);
    expect(o2.pending()).toEqual([]);
    expect((await o2.append(report('j9'))).seq).toBe(4);
    await o2.close();
  });

  it('compacts a grown journal while updates are still pending', async () => {
    const dir = tempDir();
    const o = await openOutbox(dir);
    const big = {
      ...report('big'),
      error: { code: 'AEGIS_ERR_BUILD_FAILED', message: 'x'.repeat(4000) },
    };
    let seq = 0;
    // Keep one early update pending while many later ones come and go: only size can compact.
    await o.append(report('keep'));
    const size = () => fs.statSync(path.join(dir, OUTBOX_FILE)).size;
    let peak = 0;
    for (let i = 0; i < 500 && size() >= peak; i++) {
      peak = size();
      seq = (await o.append(big)).seq;
      await o.ack(seq);
    }
    expect(peak).toBeGreaterThan(OUTBOX_COMPACT_BYTES - 8_192);
    expect(size()).toBeLessThan(1024);
    await o.close();
    const o2 = await openOutbox(dir);
    expect(o2.pending().map((u) => u.job_id)).toEqual(['keep']);
    expect(o2.lastSeq).toBe(seq);
    await o2.close();
  });

  it('refuses an update that does not fit the protocol without using a seq', async () => {
    const dir = tempDir();
    const o = await openOutbox(dir);
    const err: unknown = await o.append(report('../etc/passwd')).catch((e: unknown) => e);
    expect(isAegisError(err, 'AEGIS_ERR_INTERNAL')).toBe(true);
    expect((await o.append(report('ok'))).seq).toBe(1);
    await o.close();
  });

  it('cannot be used before load()', async () => {
    const o = new Outbox(tempDir());
    await expect(o.append(report('j'))).rejects.toMatchObject({ code: 'AEGIS_ERR_INTERNAL' });
  });
});
