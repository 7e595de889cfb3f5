import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAegisError } from '../src/errors.js';
import { JobController } from '../src/jobs/controller.js';
import { buildProcesses } from '../src/jobs/proctree.js';
import { JobRegistry } from '../src/jobs/registry.js';
import { createLogger } from '../src/log/index.js';
import { alive, REPO, simToolchains, testConfig } from './helpers/agent-env.js';
import { createLogSink } from './helpers/log-sink.js';
import { packProject } from './helpers/project-tar.js';

async function setup(
  extra: Record<string, string> = {},
  jobPatch: { timeoutS?: number; target?: string } = {},
) {
  const config = testConfig(extra);
  const sink = createLogSink();
  const log = createLogger({ destination: sink, level: 'debug' });
  const toolchains = await simToolchains(config);
  const { registry } = await JobRegistry.open(config.stateDir);
  const jobId = `job-${Math.random().toString(36).slice(2, 10)}`;
  const record = await registry.create({
    jobId,
    target: jobPatch.target ?? 'esp32c3',
    toolchainId: 'esp-idf-sim',
    ...(jobPatch.timeoutS ? { timeoutS: jobPatch.timeoutS } : {}),
  });
  const job = await JobController.start(
    { config, log, registry, toolchains: () => toolchains },
    record,
  );
  return { config, job, registry, sink };
}

async function upload(job: JobController, dir: string) {
  const packed = await packProject(dir);
  const up = job.beginSource({
    format: packed.format,
    size: packed.bytes.length,
    sha256: packed.sha256,
  });
  // Arbitrary chunk sizes, as a data channel delivers them.
  for (let i = 0; i < packed.bytes.length;) {
    const n = 1 + Math.floor(Math.random() * 16384);
    up.write(packed.bytes.subarray(i, i + n));
    i += n;
  }
  return up.finish();
}

async function logText(
  job: JobController,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<RegExpMatchArray> {
  const reader = job.logReader(0);
  let text = '';
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = text.match(pattern);
    if (m) {
      reader.cancel();
      return m;
    }
    if (Date.now() > deadline) throw new Error(`log never matched ${pattern}`);
    const chunk = await reader.read(65536);
    if (chunk === null) throw new Error(`log ended without ${pattern}: ${text.slice(-2000)}`);
    text += chunk.toString('utf8');
  }
}

describe('job controller', () => {
  it('builds examples/blink: assigned → receiving → building → succeeded, artifacts byte-identical', async () => {
    const { job, registry } = await setup();
    const states: string[] = [];
    registry.on('change', (c) => states.push(c.job.state));
    await upload(job, path.join(REPO, 'examples', 'blink'));
    await job.done;
    expect(states).toEqual(['receiving', 'building', 'succeeded']);
    const rec = registry.get(job.jobId)!;
    expect(rec.exitCode).toBe(0);
    expect(rec.logBytes).toBe(fs.statSync(job.paths.log).size);
    const m = job.manifest()!;
    expect(m.toWire().map((a) => a.name)).toEqual(
      expect.arrayContaining([
        'bootloader/bootloader.bin',
        'partition_table/partition-table.bin',
        'blink.bin',
        'merged.bin',
        'build.log',
      ]),
    );
    for (const name of [
      'bootloader/bootloader.bin',
      'partition_table/partition-table.bin',
      'blink.bin',
    ]) {
      expect(
        fs.readFileSync(m.resolve(name)).equals(fs.readFileSync(path.join(job.paths.build, name))),
      ).toBe(true);
    }
    const merged = fs.readFileSync(m.resolve('merged.bin'));
    const app = fs.readFileSync(path.join(job.paths.build, 'blink.bin'));
    expect(merged.subarray(0x10000, 0x10000 + app.length).equals(app)).toBe(true);
    expect(merged[0x10000 - 1]).toBe(0xff);
    expect(rec.artifacts?.find((a) => a.name === 'blink.bin')?.flash_offset).toBe(0x10000);
  });

  it('never lets an agent secret or a non-allow-listed variable reach the build', async () => {
    process.env['AGENT_AUTH_SECRET'] = 'agent-secret-must-not-leak';
    process.env['AEGIS_UNLISTED_VAR'] = 'unlisted-value';
    const { job, registry } = await setup({ AGENT_AUTH_SECRET: 'agent-secret-must-not-leak' });
    await upload(job, path.join(REPO, 'test', 'fixtures', 'projects', 'env_dump'));
    await job.done;
    const log = fs.readFileSync(job.paths.log, 'utf8');
    expect(log).toContain('=== PROC ENVIRON ===');
    expect(log).toContain('=== ENV END ===');
    expect(log).not.toContain('agent-secret-must-not-leak');
    expect(log).not.toContain('unlisted-value');
    const names = new Set(
      log
        .split('=== PROC ENVIRON ===')[1]!
        .split('=== ENV END ===')[0]!
        .split(/\r?\n/)
        .map((l) => l.split('=')[0]!.trim())
        .filter((n) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(n)),
    );
    for (const n of names)
      expect(n).toMatch(
        /^(PATH|HOME|TMPDIR|LANG|TERM|IDF_\w+|ESP_\w+|OPENOCD_SCRIPTS|PWD|SHLVL|_|OLDPWD|NINJA_STATUS|MAKEFLAGS|MFLAGS|MAKELEVEL|COLUMNS|LINES)$/,
      );
    expect(registry.get(job.jobId)?.state).toBe('succeeded');
  });

  it('cancel kills the build and its grandchildren; the job is canceled', async () => {
    const { job, registry } = await setup();
    await upload(job, path.join(REPO, 'test', 'fixtures', 'projects', 'grandchildren'));
    const m = await logText(job, /GRANDCHILD_PIDS (\d+) (\d+)/);
    const pids = [Number(m[1]), Number(m[2])];
    const sid = registry.get(job.jobId)!.buildPgid!;
    expect(pids.every(alive)).toBe(true);
    job.cancel('test');
    await job.done;
    expect(registry.get(job.jobId)).toMatchObject({
      state: 'canceled',
      error: { code: 'AEGIS_ERR_CANCELED' },
    });
    expect(pids.filter(alive)).toEqual([]);
    expect(buildProcesses(sid)).toEqual([]);
  });

  it('a timeout stops the build the same way', async () => {
    const { job, registry } = await setup({}, { timeoutS: 3 });
    await upload(job, path.join(REPO, 'test', 'fixtures', 'projects', 'grandchildren'));
    const m = await logText(job, /GRANDCHILD_PIDS (\d+) (\d+)/);
    await job.done;
    expect(registry.get(job.jobId)).toMatchObject({
      state: 'timed_out',
      error: { code: 'AEGIS_ERR_BUILD_TIMEOUT' },
    });
    expect([Number(m[1]), Number(m[2])].filter(alive)).toEqual([]);
  });

  it("a compiler error fails the job with gcc's own line", async () => {
    const { job, registry } = await setup();
    await upload(job, path.join(REPO, 'test', 'fixtures', 'projects', 'c_error'));
    await job.done;
    const rec = registry.get(job.jobId)!;
    expect(rec.state).toBe('failed');
    expect(rec.exitCode).toBe(2);
    expect(rec.error?.code).toBe('AEGIS_ERR_BUILD_FAILED');
    expect(rec.error?.message).toMatch(/\.c:\d+:\d+: error:/);
  });

  it('no source within SOURCE_WAIT_S → expired', async () => {
    const { job, registry } = await setup({ SOURCE_WAIT_S: '1' });
    await job.done;
    expect(registry.get(job.jobId)).toMatchObject({
      state: 'expired',
      error: { code: 'AEGIS_ERR_SOURCE_EXPIRED' },
    });
  });

  it('a refused archive fails the job with the intake code; a second upload is refused', async () => {
    const { job, registry } = await setup();
    const packed = await packProject(path.join(REPO, 'examples', 'blink'));
    const up = job.beginSource({
      format: packed.format,
      size: packed.bytes.length,
      sha256: '0'.repeat(64),
    });
    up.write(packed.bytes);
    await expect(up.finish()).rejects.toSatisfy((e) =>
      isAegisError(e, 'AEGIS_ERR_SOURCE_CHECKSUM'),
    );
    await job.done;
    expect(registry.get(job.jobId)).toMatchObject({
      state: 'failed',
      error: { code: 'AEGIS_ERR_SOURCE_CHECKSUM' },
    });
    expect(fs.existsSync(job.paths.src)).toBe(false);
    expect(() => job.beginSource({ format: 'tar', size: 10, sha256: '0'.repeat(64) })).toThrow(
      /one upload per job/,
    );
  });
});
