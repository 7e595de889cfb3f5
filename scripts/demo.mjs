#!/usr/bin/env node
// `npm run demo`: the main job end to end on one machine, with nothing to configure. Starts the
// development control plane and an agent on loopback (stand-in ESP-IDF toolchains, a fresh
// random secret, temporary state), runs the reference client on examples/blink for esp32c3 —
// live log, firmware into ./out, every sha256 verified, the flash command — then drains the
// agent, stops the control plane, and leaves no process and no temporary directory behind.
// Exit code: the client's.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(repo, 'dist', 'cli.js');
const out = path.resolve(process.env.DEMO_OUT ?? path.join(repo, 'out'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-demo-'));
const secret = crypto.randomBytes(24).toString('base64url');
const children = new Set();
const say = (text) => process.stderr.write(`\x1b[1mdemo:\x1b[0m ${text}\n`);

function start(name, args, env) {
  const child = spawn(process.execPath, [cli, ...args], {
    cwd: repo,
    env: { PATH: process.env.PATH, HOME: tmp, LANG: 'C.UTF-8', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  exited.then(() => children.delete(child));
  const logFile = fs.createWriteStream(path.join(tmp, `${name}.log`));
  child.stdout.pipe(logFile);
  child.stderr.pipe(logFile);
  return { child, exited, logFile: path.join(tmp, `${name}.log`) };
}

/** Resolves with the first match of `re` in the process's output, or rejects after `ms`. */
function waitFor(proc, re, ms, what) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () => reject(new Error(`${what} did not happen within ${ms / 1000} s; see ${proc.logFile}`)),
      ms,
    );
    const onData = (chunk) => {
      seen += chunk.toString();
      const m = seen.match(re);
      if (m) {
        clearTimeout(timer);
        proc.child.stdout.off('data', onData);
        proc.child.stderr.off('data', onData);
        resolve(m);
      }
    };
    proc.child.stdout.on('data', onData);
    proc.child.stderr.on('data', onData);
    proc.exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`${what}: the process exited (code ${code}); see ${proc.logFile}`));
    });
  });
}

async function stop(proc, signal = 'SIGTERM', graceMs = 15000) {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return proc.exited;
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  const result = await proc.exited;
  clearTimeout(timer);
  return result;
}

function killAll() {
  for (const child of children) child.kill('SIGKILL');
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

let code = 1;
try {
  const t0 = Date.now();
  say(`state in ${tmp}; firmware goes to ${out}`);
  const plane = start('dev-control', ['dev-control', '--port', '0'], { AGENT_AUTH_SECRET: secret });
  const [, url] = await waitFor(
    plane,
    /listening on (http:\/\/127\.0\.0\.1:\d+)/,
    15000,
    'the dev control plane starting',
  );
  say(`dev control plane on ${url}`);

  const agent = start('agent', ['run'], {
    CONTROL_BASE_URL: url,
    AGENT_AUTH_SECRET: secret,
    AGENT_ID: 'demo-agent',
    TOOLCHAINS_DIR: path.join(repo, 'toolchains'),
    STATE_DIR: path.join(tmp, 'state'),
    CACHE_DIR: path.join(tmp, 'cache'),
    WORK_DIR: path.join(tmp, 'work'),
    METRICS_ADDR: '127.0.0.1:0',
    DISK_FLOOR_BYTES: '0',
  });
  await waitFor(agent, /connected to control plane/, 60000, 'the agent registering');
  say(`agent registered after ${Date.now() - t0} ms; building examples/blink for esp32c3`);

  fs.rmSync(out, { recursive: true, force: true });
  const client = spawn(
    process.execPath,
    [
      cli,
      'build',
      path.join(repo, 'examples', 'blink'),
      '--target',
      'esp32c3',
      '--control',
      url,
      '--out',
      out,
    ],
    {
      cwd: repo,
      env: { PATH: process.env.PATH, HOME: tmp, LANG: 'C.UTF-8' },
      stdio: 'inherit',
    },
  );
  children.add(client);
  code = await new Promise((resolve) => client.on('exit', (c) => resolve(c ?? 1)));
  children.delete(client);

  if (code === 0) {
    const files = fs
      .readdirSync(out, { recursive: true })
      .filter((f) => fs.statSync(path.join(out, f)).isFile());
    say(`${files.length} files in ${out}: ${files.sort().join(', ')}`);
  }
  const drained = await stop(agent);
  const planeExit = await stop(plane);
  say(
    `agent drained (exit ${drained.code}), control plane stopped (exit ${planeExit.code}); total ${Date.now() - t0} ms`,
  );
  if (drained.code !== 0) code = code || 1;
} catch (err) {
  say(`failed: ${err.message}`);
  code = 1;
} finally {
  killAll();
  if (code === 0) fs.rmSync(tmp, { recursive: true, force: true });
  else say(`logs kept in ${tmp}`);
}
process.exitCode = code;
