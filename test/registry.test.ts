import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAegisError } from '../src/errors.js';
import { JobRegistry, type JobChange } from '../src/jobs/registry.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-registry-'));

describe('job registry', () => {
  it('persists every change before announcing it, and reloads it', async () => {
    const dir = tmp();
    const { registry } = await JobRegistry.open(dir);
    const seen: JobChange[] = [];
    registry.on('change', (c) => {
      // The record on disk already says what the event says.
      const onDisk = JSON.parse(
        fs.readFileSync(path.join(dir, 'jobs', `${c.job.jobId}.json`), 'utf8'),
      ) as { state: string };
      expect(onDisk.state).toBe(c.job.state);
      seen.push(c);
    });
    await registry.create({ jobId: 'job-1', target: 'esp32c3', toolchainId: 'v531' });
    await registry.transition('job-1', 'receiving');
    await registry.transition('job-1', 'building', { buildPgid: 4242 });
    expect(seen.map((c) => [c.previous, c.job.state])).toEqual([
      [undefined, 'assigned'],
      ['assigned', 'receiving'],
      ['receiving', 'building'],
    ]);
    expect(registry.active()).toHaveLength(1);

    const reopened = await JobRegistry.open(dir);
    expect(reopened.interrupted.map((j) => [j.jobId, j.state, j.buildPgid])).toEqual([
      ['job-1', 'building', 4242],
    ]);
    await reopened.registry.transition('job-1', 'lost');
    expect(reopened.registry.get('job-1')?.buildPgid).toBeUndefined();
    expect((await JobRegistry.open(dir)).interrupted).toHaveLength(0);
  });

  it('refuses moves the state machine forbids', async () => {
    const { registry } = await JobRegistry.open(tmp());
    await registry.create({ jobId: 'job-2', target: 'esp32', toolchainId: 'v531' });
    await expect(registry.transition('job-2', 'succeeded')).rejects.toSatisfy((e) =>
      isAegisError(e, 'AEGIS_ERR_JOB_STATE'),
    );
    await registry.transition('job-2', 'canceled');
    await expect(registry.transition('job-2', 'building')).rejects.toSatisfy((e) =>
      isAegisError(e, 'AEGIS_ERR_JOB_STATE'),
    );
    await expect(
      registry.create({ jobId: 'job-2', target: 'esp32', toolchainId: 'x' }),
    ).rejects.toSatisfy((e) => isAegisError(e, 'AEGIS_ERR_JOB_STATE'));
  });

  it('skips unreadable records and reports them', async () => {
    const dir = tmp();
    fs.mkdirSync(path.join(dir, 'jobs'));
    fs.writeFileSync(path.join(dir, 'jobs', 'broken.json'), '{"jobId":');
    const { registry, problems } = await JobRegistry.open(dir);
    expect(registry.list()).toHaveLength(0);
    expect(problems).toHaveLength(1);
  });
});
