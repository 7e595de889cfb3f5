// The pty channel against a real terminal: a real process under node-pty (startBuild with a
// custom command), attach, keystrokes, resize, eof when it ends, input refused afterwards.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger } from '../src/log/index.js';
import { createHarness, type Harness, type TestChannel } from './helpers/peer.js';
import { TestJob } from './helpers/session-job.js';

let h: Harness;
let job: TestJob;

beforeAll(async () => {
  job = await TestJob.create({ jobId: 'job-1', log: createLogger({ level: 'silent' }) });
  h = await createHarness({ jobs: [job] });
  job.startPty({
    file: '/bin/sh',
    args: ['-c', 'stty size; while read l; do echo "GOT:$l"; stty size; done; echo BYE'],
  });
});

afterAll(async () => {
  h.closeOfferers();
  await h.manager.shutdown();
});

const text = (ch: TestChannel) => ch.bytes().toString('utf8');

async function output(ch: TestChannel, needle: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!text(ch).includes(needle)) {
    if (Date.now() > deadline)
      throw new Error(`no ${JSON.stringify(needle)} in ${JSON.stringify(text(ch))}`);
    await ch.binaryAtLeast(ch.binaryBytes + 1, deadline - Date.now());
  }
}

it('attaches, echoes input, resizes, and ends with eof', async () => {
  const { offerer } = await h.connect(['control', 'pty'], { channels: ['control', 'pty'] });
  const pty = offerer.channel('pty');
  pty.json({ type: 'attach', from: 0, cols: 90, rows: 20 });
  await output(pty, '24 80');
  pty.binary(Buffer.from('hello\n'));
  await output(pty, 'GOT:hello');
  await output(pty, '20 90');
  pty.json({ type: 'resize', cols: 132, rows: 43 });
  pty.binary(Buffer.from('again\n'));
  await output(pty, 'GOT:again');
  await output(pty, '43 132');
  // Oversized input is a protocol error, not a keystroke.
  pty.binary(Buffer.alloc(5000, 0x61));
  expect(await pty.frameOf('error')).toMatchObject({ code: 'AEGIS_ERR_PROTOCOL' });
  pty.binary(Buffer.from([0x04])); // Ctrl-D: read fails, the loop ends
  const eof = await pty.frameOf('eof', 0, 20_000);
  expect(eof).toMatchObject({ type: 'eof', state: 'succeeded', exit_code: 0, size: job.logSize() });
  expect(text(pty)).toContain('BYE');
  pty.binary(Buffer.from('late\n'));
  expect(await pty.frameOf('error', 1)).toMatchObject({ code: 'AEGIS_ERR_JOB_STATE' });
  pty.json({ type: 'resize', cols: 80, rows: 24 });
  expect(await pty.frameOf('error', 2)).toMatchObject({ code: 'AEGIS_ERR_JOB_STATE' });
  expect(
    (
      await offerer
        .channel('control')
        .frame((f) => f['type'] === 'state' && f['state'] === 'succeeded')
    )['exit_code'],
  ).toBe(0);
});
