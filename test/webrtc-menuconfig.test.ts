// menuconfig driven over the `pty` channel: a real `idf.py menuconfig` (the stand-in's) under a
// real pty as the job's terminal; keystrokes and a resize travel over WebRTC and sdkconfig changes.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/log/index.js';
import { REPO, tmpDir } from './helpers/agent-env.js';
import { createHarness, type Harness, type TestChannel } from './helpers/peer.js';
import { TestJob } from './helpers/session-job.js';

let h: Harness;
let job: TestJob;
const project = path.join(tmpDir('aegis-menuconfig-'), 'blink');

beforeAll(async () => {
  fs.cpSync(path.join(REPO, 'examples', 'blink'), project, { recursive: true });
  job = await TestJob.create({ jobId: 'job-1', log: createLogger({ level: 'silent' }) });
  h = await createHarness({ jobs: [job] });
  const exportSh = path.join(REPO, 'toolchains', 'esp-idf-sim', 'export.sh');
  job.startPty({
    file: '/bin/bash',
    args: ['-c', `. '${exportSh}' >/dev/null 2>&1; exec idf.py -C '${project}' menuconfig`],
  });
});

afterAll(async () => {
  h.closeOfferers();
  await h.manager.shutdown();
});

/** Waits until the terminal output after byte `from` contains `needle`. */
async function screen(
  ch: TestChannel,
  needle: RegExp,
  from: number,
  timeoutMs = 15_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = ch.bytes().subarray(from).toString('utf8');
    if (needle.test(text)) return ch.binaryBytes;
    if (Date.now() > deadline)
      throw new Error(`terminal never showed ${needle}: ${JSON.stringify(text.slice(-400))}`);
    await ch.binaryAtLeast(ch.binaryBytes + 1, deadline - Date.now());
  }
}

it('keystrokes over the pty channel reach menuconfig, a resize is redrawn, and sdkconfig changes', async () => {
  const { offerer } = await h.connect(['control', 'pty'], {
    channels: ['control', 'pty'],
    job: 'job-1',
  });
  const pty = offerer.channel('pty');
  pty.json({ type: 'attach', from: 0, cols: 100, rows: 30 });
  let at = await screen(pty, /\[100x30\][\s\S]*\(8\) Blink GPIO number/, 0, 30_000);
  pty.json({ type: 'resize', cols: 132, rows: 43 });
  at = await screen(pty, /\[132x43\]/, at);
  pty.binary(Buffer.from('\r'));
  at = await screen(pty, /\(8_\)/, at);
  pty.binary(Buffer.from('\x7f21'));
  at = await screen(pty, /\(21_\)/, at);
  pty.binary(Buffer.from('\r'));
  at = await screen(pty, /\(21\) Blink GPIO number/, at);
  pty.binary(Buffer.from('S'));
  await screen(pty, /Configuration saved to/, at);
  pty.binary(Buffer.from('q'));
  await pty.frameOf('eof', 0, 20_000);
  expect(fs.readFileSync(path.join(project, 'sdkconfig'), 'utf8')).toMatch(
    /^CONFIG_BLINK_GPIO=21$/m,
  );
});
