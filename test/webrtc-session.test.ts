// A real session end to end on loopback: real node-datachannel peers on both sides, real grants,
// a real log spool, real artifact files, a real source intake fed a tar made by `tar`.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { create as tarCreate } from 'tar';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHarness, type Harness, type Json, type TestChannel } from './helpers/peer.js';
import { TestJob } from './helpers/session-job.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let h: Harness;
let built: TestJob;
const logBytes = randomBytes(200_000);
const app = randomBytes(300_001);
const boot = randomBytes(20_000);

beforeAll(async () => {
  const { createLogger } = await import('../src/log/index.js');
  const quiet = createLogger({ level: 'silent' });
  built = await TestJob.create({ jobId: 'job-1', log: quiet });
  const src = await TestJob.create({ jobId: 'job-src', log: quiet });
  const bad = await TestJob.create({ jobId: 'job-bad', log: quiet });
  h = await createHarness({ jobs: [built, src, bad], env: { MAX_SESSIONS_PER_JOB: '16' } });
  built.setState('building');
  built.spool.append(logBytes);
  await built.setArtifacts([
    { name: 'bootloader/bootloader.bin', data: boot, flash_offset: 0x1000 },
    { name: 'app.bin', data: app, flash_offset: 0x10000 },
  ]);
});

afterEach(() => h.closeOfferers());

afterAll(async () => {
  h.closeOfferers();
  await h.manager.shutdown();
});

/** The binary bytes between the nth `file` frame and the nth `end` frame of a channel. */
async function download(ch: TestChannel, name: string, from: number, nth: number) {
  ch.json({ type: 'get', name, from });
  const end = await ch.frameOf('end', nth, 20_000);
  let seen = -1;
  const parts: Buffer[] = [];
  let file: Json | undefined;
  for (const e of ch.events) {
    if (e.kind === 'text' && e.frame['type'] === 'file') {
      seen++;
      if (seen === nth) file = e.frame;
      continue;
    }
    if (e.kind === 'text' && e.frame['type'] === 'end' && seen === nth) break;
    if (e.kind === 'binary' && seen === nth) parts.push(e.data);
  }
  return { file, end, bytes: Buffer.concat(parts) };
}

describe('a valid grant', () => {
  it('answers with candidates, opens the channels and says hello', async () => {
    const opened = await h.open({
      labels: ['control', 'logs'],
      claims: { channels: ['control', 'logs', 'artifacts'] },
    });
    expect(opened.kind).toBe('answer');
    if (opened.kind !== 'answer') return;
    expect(opened.sdp).toMatch(/a=candidate:/);
    const control = opened.offerer.channel('control');
    const hello = await control.frameOf('hello');
    expect(hello).toMatchObject({
      type: 'hello',
      job_id: 'job-1',
      state: 'building',
      channels: ['control', 'logs', 'artifacts'],
      limits: { send_queue_bytes: 131072, chunk_bytes: 16384, source_max_bytes: 256 * 1024 * 1024 },
    });
    expect(typeof hello['agent_version']).toBe('string');
    control.json({ type: 'ping' });
    await control.frameOf('pong');
    expect(h.manager.count()).toBeGreaterThanOrEqual(1);
  });

  it('streams the log from 0 and from the middle, exactly, then eof once the build ended', async () => {
    const a = await h.connect(['logs'], { channels: ['logs'] });
    const b = await h.connect(['logs'], { channels: ['logs'] });
    const from0 = a.offerer.channel('logs');
    const mid = b.offerer.channel('logs');
    from0.json({ type: 'follow', from: 0 });
    mid.json({ type: 'follow', from: 123_457 });
    await from0.binaryAtLeast(logBytes.length);
    // Live: bytes written after the follow arrive too.
    const more = randomBytes(5000);
    built.spool.append(more);
    const all = Buffer.concat([logBytes, more]);
    await from0.binaryAtLeast(all.length);
    await mid.binaryAtLeast(all.length - 123_457);
    expect(from0.frames()).toEqual([]);
    built.finish('succeeded', 0);
    const eof = await from0.frameOf('eof');
    expect(eof).toEqual({ type: 'eof', size: all.length, state: 'succeeded', exit_code: 0 });
    await mid.frameOf('eof');
    expect(from0.bytes().equals(all)).toBe(true);
    expect(mid.bytes().equals(all.subarray(123_457))).toBe(true);
    expect(from0.events.at(-1)).toMatchObject({ kind: 'text' });
    expect(from0.chunks.every((c) => c.length <= 16384)).toBe(true);
    // A second follow on the same channel is a protocol error.
    from0.json({ type: 'follow', from: 0 });
    expect(await from0.frameOf('error')).toMatchObject({ code: 'AEGIS_ERR_PROTOCOL' });
  });

  it('lists artifacts and serves them from 0 and from an offset', async () => {
    const { offerer } = await h.connect(['control', 'artifacts'], {
      channels: ['control', 'artifacts'],
    });
    const control = offerer.channel('control');
    // The job succeeded in the previous test: control sends the manifest without being asked.
    expect(await control.frameOf('manifest')).toMatchObject({ chip: 'esp32' });
    const ch = offerer.channel('artifacts');
    ch.json({ type: 'list' });
    const manifest = await ch.frameOf('manifest');
    expect(manifest).toEqual({
      type: 'manifest',
      chip: 'esp32',
      flash_settings: { flash_mode: 'dio', flash_size: '4MB', flash_freq: '80m' },
      files: [
        {
          name: 'bootloader/bootloader.bin',
          size: boot.length,
          sha256: sha(boot),
          flash_offset: 0x1000,
        },
        { name: 'app.bin', size: app.length, sha256: sha(app), flash_offset: 0x10000 },
      ],
    });
    const whole = await download(ch, 'app.bin', 0, 0);
    expect(whole.file).toEqual({
      type: 'file',
      name: 'app.bin',
      size: app.length,
      sha256: sha(app),
      from: 0,
    });
    expect(whole.end).toEqual({ type: 'end', name: 'app.bin', bytes: app.length });
    expect(sha(whole.bytes)).toBe(sha(app));
    const rest = await download(ch, 'app.bin', 100_000, 1);
    expect(rest.end).toEqual({ type: 'end', name: 'app.bin', bytes: app.length - 100_000 });
    expect(sha(Buffer.concat([app.subarray(0, 100_000), rest.bytes]))).toBe(sha(app));
    const nested = await download(ch, 'bootloader/bootloader.bin', 0, 2);
    expect(nested.bytes.equals(boot)).toBe(true);

    for (const name of ['nope.bin', '../build.log', '/etc/passwd']) {
      ch.json({ type: 'get', name, from: 0 });
    }
    await ch.countOf((f) => f['type'] === 'error', 3);
    expect(
      ch
        .frames()
        .filter((f) => f['type'] === 'error')
        .map((f) => f['code']),
    ).toEqual([
      'AEGIS_ERR_ARTIFACT_NOT_FOUND',
      'AEGIS_ERR_ARTIFACT_NOT_FOUND',
      'AEGIS_ERR_ARTIFACT_NOT_FOUND',
    ]);
  });

  it('answers list with "no artifacts yet" while the job builds', async () => {
    const { offerer } = await h.connect(['artifacts'], { job: 'job-bad', channels: ['artifacts'] });
    const ch = offerer.channel('artifacts');
    ch.json({ type: 'list' });
    expect(await ch.frameOf('error')).toEqual({
      type: 'error',
      code: 'AEGIS_ERR_ARTIFACT_NOT_FOUND',
      message: 'no artifacts yet: the job is building',
    });
  });

  it('accepts a real tar upload, and refuses one whose checksum does not match', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-proj-'));
    fs.writeFileSync(path.join(dir, 'CMakeLists.txt'), 'cmake_minimum_required(VERSION 3.16)\n');
    fs.mkdirSync(path.join(dir, 'main'));
    fs.writeFileSync(path.join(dir, 'main', 'main.c'), randomBytes(70_000).toString('base64'));
    const tarFile = path.join(dir, '..', `${path.basename(dir)}.tar`);
    await tarCreate({ cwd: dir, file: tarFile, portable: true }, ['CMakeLists.txt', 'main']);
    const archive = fs.readFileSync(tarFile);

    const { offerer } = await h.connect(['control', 'source'], {
      job: 'job-src',
      channels: ['control', 'source'],
    });
    const source = offerer.channel('source');
    source.binary(Buffer.from('too early'));
    expect(await source.frameOf('error')).toMatchObject({ code: 'AEGIS_ERR_PROTOCOL' });
    source.json({ type: 'begin', format: 'tar', size: archive.length, sha256: sha(archive) });
    for (let at = 0; at < archive.length; at += 16384)
      source.binary(archive.subarray(at, at + 16384));
    source.json({ type: 'end' });
    expect(await source.frameOf('accepted')).toEqual({
      type: 'accepted',
      size: archive.length,
      sha256: sha(archive),
    });
    const job = h.jobs.get('job-src') as TestJob;
    expect(fs.readFileSync(path.join(job.paths.src, 'main', 'main.c'), 'utf8')).toBe(
      fs.readFileSync(path.join(dir, 'main', 'main.c'), 'utf8'),
    );
    await offerer
      .channel('control')
      .frame((f) => f['type'] === 'state' && f['state'] === 'building');
    // One upload per job.
    source.json({ type: 'begin', format: 'tar', size: archive.length, sha256: sha(archive) });
    expect(await source.frameOf('error', 1)).toMatchObject({ code: 'AEGIS_ERR_PROTOCOL' });

    const bad = await h.connect(['source'], { job: 'job-bad', channels: ['source'] });
    const ch = bad.offerer.channel('source');
    ch.json({
      type: 'begin',
      format: 'tar',
      size: archive.length,
      sha256: sha(Buffer.from('other')),
    });
    for (let at = 0; at < archive.length; at += 16384) ch.binary(archive.subarray(at, at + 16384));
    ch.json({ type: 'end' });
    expect(await ch.frameOf('error')).toMatchObject({
      type: 'error',
      code: 'AEGIS_ERR_SOURCE_CHECKSUM',
    });
    expect(fs.readdirSync((h.jobs.get('job-bad') as TestJob).paths.upload)).toEqual([]);
  });
});

describe('the channel router', () => {
  it('closes channels outside the grant and second channels of a label, and says so on control', async () => {
    const opened = await h.open({
      labels: ['control', 'logs', 'pty', 'logs'],
      claims: { channels: ['control', 'logs', 'artifacts'] },
    });
    if (opened.kind !== 'answer') throw new Error(opened.code);
    const control = opened.offerer.channel('control');
    await control.frameOf('hello');
    const rejected = await control.countOf((f) => f['type'] === 'rejected', 2);
    expect(rejected).toBe(2);
    const frames = control.frames().filter((f) => f['type'] === 'rejected');
    expect(frames).toContainEqual({
      type: 'rejected',
      channel: 'pty',
      code: 'AEGIS_ERR_CHANNEL_REJECTED',
      message: "Channel pty was rejected: not in this grant's channels (control, logs, artifacts)",
    });
    expect(frames).toContainEqual(
      expect.objectContaining({ channel: 'logs', code: 'AEGIS_ERR_CHANNEL_REJECTED' }),
    );
    await opened.offerer.channel('pty').closed();
    // Which of the two logs channels the agent saw first is up to SCTP: one is closed, one works.
    const logs = [opened.offerer.channel('logs', 0), opened.offerer.channel('logs', 1)];
    await Promise.race(logs.map((c) => c.closed()));
    const open = logs.filter((c) => !c.isClosed);
    expect(open).toHaveLength(1);
    open[0]!.json({ type: 'follow', from: 0 });
    await open[0]!.binaryAtLeast(1000);
    expect(h.sink.withCode('AEGIS_ERR_CHANNEL_REJECTED').length).toBeGreaterThanOrEqual(2);
  });

  it('delivers a rejection when control opens after the rejected channel', async () => {
    const opened = await h.open({ labels: ['pty'], claims: { channels: ['control', 'logs'] } });
    if (opened.kind !== 'answer') throw new Error(opened.code);
    await opened.offerer.channel('pty').closed();
    const control = opened.offerer.add('control');
    await control.frameOf('hello');
    expect(await control.frameOf('rejected')).toMatchObject({ channel: 'pty' });
  });
});

describe('refused offers', () => {
  it('sends session.rejected with the code and creates no peer connection', async () => {
    const now = Math.floor(Date.now() / 1000);
    const before = h.manager.peerConnectionsCreated();
    const cases: [string, Promise<string>, string?][] = [
      ['AEGIS_ERR_GRANT_EXPIRED', h.grant({ iat: now - 200, exp: now - 100 })],
      ['AEGIS_ERR_GRANT_AUDIENCE', h.grant({ aud: 'someone-else' })],
      ['AEGIS_ERR_GRANT_JOB', h.grant({ job: 'job-1' }), 'job-src'],
      ['AEGIS_ERR_GRANT_JOB', h.grant({ job: 'job-unknown' }), 'job-unknown'],
      ['AEGIS_ERR_GRANT_SIGNATURE', h.grant().then((t) => t.slice(0, -4) + 'AAAA')],
      ['AEGIS_ERR_GRANT_MALFORMED', Promise.resolve('not-a-jwt')],
    ];
    for (const [code, token, jobId] of cases) {
      const r = await h.open({ labels: ['control'], grant: await token, jobId: jobId ?? 'job-1' });
      expect(r.kind, code).toBe('rejected');
      if (r.kind === 'rejected') expect(r.code).toBe(code);
    }
    expect(h.manager.peerConnectionsCreated()).toBe(before);

    const token = await h.grant();
    expect((await h.open({ labels: ['control'], grant: token })).kind).toBe('answer');
    const afterFirst = h.manager.peerConnectionsCreated();
    expect(afterFirst).toBe(before + 1);
    const replay = await h.open({ labels: ['control'], grant: token });
    expect(replay).toMatchObject({ kind: 'rejected', code: 'AEGIS_ERR_GRANT_REPLAYED' });
    expect(h.manager.peerConnectionsCreated()).toBe(afterFirst);
  });
});

describe('session lifecycle', () => {
  it('closes the session and reports session.closed when the client goes away', async () => {
    const { id, offerer } = await h.connect(['control'], { channels: ['control'] });
    expect(h.manager.session(id)).toBeDefined();
    offerer.close();
    const closed = await h.signal.wait((f) => f.type === 'session.closed' && f.session_id === id);
    expect(closed).toMatchObject({ reason: 'peer_closed' });
    expect(h.manager.session(id)).toBeUndefined();
  });

  it('closes on session.close from the control plane', async () => {
    const { id, offerer } = await h.connect(['control'], { channels: ['control'] });
    h.manager.onClose({ type: 'session.close', session_id: id });
    await h.signal.wait((f) => f.type === 'session.closed' && f.session_id === id);
    await offerer.channel('control').closed();
  });
});
