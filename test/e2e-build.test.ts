// Issue 5 end to end: dev control plane + daemon + reference client, all real, on loopback.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { relayCandidate } from '../src/client/api.js';
import { RemoteBuild } from '../src/client/build.js';
import { splitCandidates } from '../src/client/sdp.js';
import { DevControlPlane } from '../src/dev/index.js';
import { cleanupNodeDataChannel } from '../src/webrtc/ndc.js';
import { tmpDir } from './helpers/agent-env.js';
import { AGENT_SECRET, EXAMPLES, startAgent, type TestAgent } from './helpers/agent.js';
import { TestOfferer } from './helpers/peer.js';

let plane: DevControlPlane;
let agent: TestAgent;
const builds: RemoteBuild[] = [];

beforeAll(async () => {
  plane = await DevControlPlane.start({ agentAuthSecret: AGENT_SECRET });
  let ready!: () => void;
  const up = new Promise<void>((r) => (ready = r));
  agent = await startAgent(plane, { MAX_JOBS: '8' }, ready);
  await up;
});

afterEach(() => {
  for (const b of builds.splice(0)) b.cut();
});

afterAll(async () => {
  await agent.daemon.stop({ releaseNative: false });
  await plane.close();
  cleanupNodeDataChannel();
});

const sha = (buf: Buffer) => crypto.createHash('sha256').update(buf).digest('hex');

function remoteBuild(
  out: string,
  log: Buffer[],
  extra: Partial<ConstructorParameters<typeof RemoteBuild>[0]> = {},
) {
  const b = new RemoteBuild({
    api: { baseUrl: plane.url },
    projectDir: path.join(EXAMPLES, 'blink'),
    target: 'esp32c3',
    outDir: out,
    writeLog: (d) => log.push(Buffer.from(d)),
    ...extra,
  });
  builds.push(b);
  return b;
}

describe('end to end', () => {
  it('blink for esp32c3: live log, every artifact byte-identical to the build dir, merged.bin too', async () => {
    const out = tmpDir('aegis-out-');
    const log: Buffer[] = [];
    const result = await remoteBuild(out, log).run();
    expect(result.state).toBe('succeeded');
    expect(result.exitCode).toBe(0);
    const job = agent.daemon.controllers.get(result.jobId)!;
    // The live log is exactly build.log.
    expect(Buffer.concat(log).equals(fs.readFileSync(job.paths.log))).toBe(true);
    const names = result.files.map((f) => f.name).sort();
    expect(names).toEqual([
      'blink.bin',
      'blink.elf',
      'bootloader/bootloader.bin',
      'build.log',
      'merged.bin',
      'partition_table/partition-table.bin',
    ]);
    for (const name of [
      'blink.bin',
      'blink.elf',
      'bootloader/bootloader.bin',
      'partition_table/partition-table.bin',
    ]) {
      expect(
        fs
          .readFileSync(path.join(out, name))
          .equals(fs.readFileSync(path.join(job.paths.build, name))),
      ).toBe(true);
    }
    const merged = fs.readFileSync(path.join(out, 'merged.bin'));
    expect(sha(merged)).toBe(result.manifest!.files.find((f) => f.name === 'merged.bin')!.sha256);
    const app = fs.readFileSync(path.join(out, 'blink.bin'));
    expect(merged.subarray(0x10000, 0x10000 + app.length).equals(app)).toBe(true);
    // The control plane heard the outcome with the artifact list.
    const reported =
      plane.job(result.jobId)?.state === 'succeeded'
        ? plane.job(result.jobId)!
        : (await plane.waitFor(
            'job.update',
            (u) => u.job_id === result.jobId && u.state === 'succeeded',
          ),
          plane.job(result.jobId)!);
    expect(reported.states).toEqual(['assigned', 'receiving', 'building', 'succeeded']);
    expect(reported.artifacts?.map((a) => a.name)).toContain('merged.bin');
  });

  it('a channel the grant does not list is closed, and control names the allowed ones', async () => {
    const grant = (await (
      await fetch(`${plane.url}/grant/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ target: 'esp32c3', channels: ['control', 'logs', 'artifacts'] }),
      })
    ).json()) as { grant: string };
    const client = new TestOfferer(['control', 'logs', 'pty']);
    try {
      // As the reference client does: the offer without candidates, trickled after the answer.
      const offer = splitCandidates(await client.offer());
      const res = await fetch(`${plane.url}/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ grant: grant.grant, sdp: offer.sdp }),
      });
      expect(res.status).toBe(200);
      const answer = (await res.json()) as { sdp: string; session_id: string };
      client.applyAnswer(answer.sdp);
      for (const c of offer.candidates) {
        await relayCandidate({ baseUrl: plane.url }, answer.session_id, c.candidate, c.mid);
      }
      const rejected = await client
        .channel('control')
        .frame((f) => f['type'] === 'rejected', 15_000);
      expect(rejected).toMatchObject({ channel: 'pty', code: 'AEGIS_ERR_CHANNEL_REJECTED' });
      expect(String(rejected['message'])).toContain('control, logs, artifacts');
      await client.channel('pty').closed();
    } finally {
      client.close();
    }
  });

  it('cut mid-log and mid-download: a new grant resumes both; no log byte missing or doubled, sha256 right', async () => {
    const out = tmpDir('aegis-out-');
    const log: Buffer[] = [];
    const b = remoteBuild(out, log);
    let cutLog = false;
    let cutDownload = false;
    b.on('log', ({ total }) => {
      if (!cutLog && total > 2000) {
        cutLog = true;
        b.cut();
      }
    });
    b.on('downloading', ({ name, bytes, total }) => {
      if (!cutDownload && name === 'blink.bin' && bytes > total / 3) {
        cutDownload = true;
        b.cut();
      }
    });
    const result = await b.run();
    expect(cutLog && cutDownload).toBe(true);
    expect(result.reconnects).toBeGreaterThanOrEqual(2);
    expect(result.state).toBe('succeeded');
    const job = agent.daemon.controllers.get(result.jobId)!;
    expect(Buffer.concat(log).equals(fs.readFileSync(job.paths.log))).toBe(true);
    const app = result.files.find((f) => f.name === 'blink.bin')!;
    expect(app.resumedFrom).toBeGreaterThan(0);
    expect(sha(fs.readFileSync(path.join(out, 'blink.bin')))).toBe(app.sha256);
    expect(
      fs
        .readFileSync(path.join(out, 'blink.bin'))
        .equals(fs.readFileSync(path.join(job.paths.build, 'blink.bin'))),
    ).toBe(true);
  });

  it('a failing build ends with its compiler error and no artifacts', async () => {
    const log: Buffer[] = [];
    const r = await remoteBuild(tmpDir('aegis-out-'), log, {
      projectDir: path.resolve(EXAMPLES, '..', 'test', 'fixtures', 'projects', 'c_error'),
    }).run();
    expect(r.state).toBe('failed');
    expect(r.exitCode).toBe(2);
    expect(r.files).toEqual([]);
    expect(Buffer.concat(log).toString()).toMatch(/error:/);
  });
});
