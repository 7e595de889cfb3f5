import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startBuild, type BuildOptions } from '../src/jobs/build.js';
import { LogSpool } from '../src/jobs/logspool.js';
import { buildEnvironment } from '../src/jobs/build-env.js';
import { buildProcesses } from '../src/jobs/proctree.js';
import { alive } from './helpers/agent-env.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-build-'));

function run(script: string, patch: Partial<BuildOptions> = {}) {
  const dir = tmp();
  const chunks: Buffer[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const text = () => Buffer.concat(chunks).toString('utf8');
  const handle = startBuild({
    projectDir: dir,
    buildDir: path.join(dir, 'build'),
    target: 'esp32c3',
    env: { PATH: '/usr/bin:/bin', HOME: dir, TERM: 'xterm-256color' },
    cwd: dir,
    cols: 120,
    rows: 40,
    timeoutMs: 60_000,
    killGraceMs: 2000,
    sink: (d) => {
      chunks.push(d);
      for (const w of [...waiters]) {
        const m = text().match(w.re);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    },
    command: { file: '/bin/sh', args: ['-c', script] },
    ...patch,
  });
  const waitFor = (re: RegExp, ms = 10_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const m = text().match(re);
      if (m) return resolve(m);
      const t = setTimeout(() => reject(new Error(`output never matched ${re}: ${text()}`)), ms);
      waiters.push({ re, resolve: (x) => (clearTimeout(t), resolve(x)) });
    });
  return { handle, waitFor, text };
}

// Background jobs with job control get process groups of their own, as ninja gives its commands.
const GRANDCHILDREN = 'set -m; sleep 300 & a=$!; sleep 300 & b=$!; echo "PIDS $a $b"; wait';

describe('build runner', () => {
  it('runs under a real pty and reports the exit code', async () => {
    const ok = run('tty; printf "\\033[32mgreen\\033[0m\\n"; exit 0');
    const r = await ok.handle.result;
    expect(r.outcome).toBe('succeeded');
    expect(ok.text()).toMatch(/\/dev\/pts\/\d+/);
    expect(ok.text()).toContain('\x1b[32mgreen');
    const bad = await run('exit 2').handle.result;
    expect(bad).toMatchObject({ outcome: 'failed', exitCode: 2 });
  });

  it('cancel kills every process of the build, including grandchildren in other process groups', async () => {
    const b = run(GRANDCHILDREN);
    const m = await b.waitFor(/PIDS (\d+) (\d+)/);
    const pids = [Number(m[1]), Number(m[2])];
    expect(pids.every(alive)).toBe(true);
    expect(buildProcesses(b.handle.pid).length).toBeGreaterThanOrEqual(3);
    b.handle.cancel();
    const r = await b.handle.result;
    expect(r.outcome).toBe('canceled');
    expect(r.survivors).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(buildProcesses(b.handle.pid)).toEqual([]);
  });

  it('a timeout escalates to SIGKILL when SIGTERM is ignored', async () => {
    const b = run(
      'trap "" TERM; set -m; sh -c \'trap "" TERM; sleep 300\' & echo "PID $!"; while :; do sleep 1; done',
      {
        timeoutMs: 300,
        killGraceMs: 300,
      },
    );
    const m = await b.waitFor(/PID (\d+)/);
    const r = await b.handle.result;
    expect(r.outcome).toBe('timed_out');
    expect(alive(Number(m[1]))).toBe(false);
    expect(buildProcesses(b.handle.pid)).toEqual([]);
  });

  it('reaps what a successful build left behind', async () => {
    const b = run('set -m; sleep 300 & echo "PID $!"; exit 0');
    const m = await b.waitFor(/PID (\d+)/);
    const r = await b.handle.result;
    expect(r.outcome).toBe('succeeded');
    expect(alive(Number(m[1]))).toBe(false);
  });

  it('passes input and resize to the terminal', async () => {
    const b = run('stty size; read line; echo "GOT:$line"; stty size');
    await b.waitFor(/40 120/);
    b.handle.resize(100, 30);
    b.handle.write('hello\r');
    await b.waitFor(/GOT:hello[\s\S]*30 100/);
    expect((await b.handle.result).outcome).toBe('succeeded');
  });
});

describe('build environment', () => {
  it('is an allow-list: toolchain PATH and IDF_*, workspace HOME, nothing of the agent', () => {
    const env = buildEnvironment({
      toolchain: {
        env: {
          PATH: '/idf/tools:/usr/bin',
          IDF_PATH: '/idf',
          ESP_IDF_VERSION: '5.3',
          AGENT_AUTH_SECRET: 'x',
          HOSTNAME: 'h',
        },
      },
      home: '/w/job',
      tmpDir: '/w/job/tmp',
      jobEnv: { MY_FLAG: '1', PATH: '/evil', LD_PRELOAD: '/evil.so', lower: 'no' },
    });
    expect(env).toEqual({
      PATH: '/idf/tools:/usr/bin',
      IDF_PATH: '/idf',
      ESP_IDF_VERSION: '5.3',
      MY_FLAG: '1',
      HOME: '/w/job',
      TMPDIR: '/w/job/tmp',
      LANG: 'C.UTF-8',
      TERM: 'xterm-256color',
    });
  });
});

describe('build output at exit', () => {
  it('keeps every byte a build prints right before it exits (node-pty #72/#85)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-tail-'));
    const src = path.join(dir, 'out.txt');
    // 96 MiB of text lines; the terminal passes it unchanged after `stty -opost`.
    const line = Buffer.from(`${'x'.repeat(99)}\n`);
    const fd = fs.openSync(src, 'w');
    for (let i = 0; i < (96 * 1024 * 1024) / line.length; i++) fs.writeSync(fd, line);
    fs.closeSync(fd);
    const size = fs.statSync(src).size;
    for (let round = 0; round < 2; round++) {
      const spool = await LogSpool.create(path.join(dir, `build-${round}.log`), {
        maxBytes: size * 2,
      });
      const handle = startBuild({
        projectDir: dir,
        buildDir: dir,
        target: 'esp32c3',
        env: { PATH: '/usr/bin:/bin', TERM: 'xterm-256color', HOME: dir },
        cwd: dir,
        cols: 120,
        rows: 40,
        timeoutMs: 60_000,
        killGraceMs: 1000,
        sink: (d) => spool.append(d),
        command: { file: '/bin/sh', args: ['-c', 'stty -opost && exec cat "$0"', src] },
      });
      expect((await handle.result).outcome).toBe('succeeded');
      spool.close();
      expect(spool.size, `round ${round}`).toBe(size);
    }
  });
});
