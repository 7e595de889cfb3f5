// P6: what starting a build costs with the toolchain environment captured once (at discovery,
// cached on disk) against sourcing export.sh for every build. Three ways to run the same first
// command of a build (`idf.py --version`), alternated, median of ROUNDS each:
//   direct — spawned plainly with the captured environment already in place (a developer's
//            shell after `. export.sh`): the floor;
//   agent  — the agent's path: buildEnvironment() over the captured env + startBuild (pty,
//            /bin/sh -c, process-group bookkeeping, reaping);
//   export — the same startBuild, but `. export.sh` first in a scrubbed base environment.
// Added per build = path − direct.
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { startBuild } from '../src/jobs/build.js';
import { buildEnvironment } from '../src/jobs/build-env.js';
import { baseEnvironment, discoverToolchains } from '../src/toolchains/index.js';
import type { BenchContext, FigureOutput } from './context.js';
import { median, REPO, row, withTimeout } from './lib.js';

const ROUNDS = 7;

async function underPty(
  command: { file: string; args: string[] },
  env: Record<string, string>,
  cwd: string,
): Promise<number> {
  let out = '';
  const started = performance.now();
  const h = startBuild({
    projectDir: cwd,
    buildDir: cwd,
    target: 'esp32',
    env,
    cwd,
    cols: 120,
    rows: 40,
    timeoutMs: 20_000,
    killGraceMs: 1000,
    sink: (d) => (out += d.toString()),
    command,
  });
  const r = await withTimeout(h.result, 25_000, 'idf.py --version under a pty');
  const ms = performance.now() - started;
  if (r.outcome !== 'succeeded' || !/ESP-IDF v\d/.test(out))
    throw new Error(`idf.py --version ${r.outcome}: ${out.slice(-300)}`);
  return ms;
}

export async function p6(ctx: BenchContext): Promise<FigureOutput> {
  const cacheDir = ctx.dir('p6-cache-');
  const idfToolsPath = ctx.dir('p6-tools-');
  const t0 = performance.now();
  const scan = await discoverToolchains({
    roots: [path.join(REPO, 'toolchains')],
    cacheDir,
    idfToolsPath,
  });
  const discoverMs = performance.now() - t0;
  const toolchain = scan.toolchains.find((t) => t.idfVersion === '5.3.1');
  if (!toolchain) throw new Error('the 5.3.1 stand-in toolchain was not discovered');
  const home = ctx.dir('p6-home-');
  const tmp = path.join(home, 'tmp');
  fs.mkdirSync(tmp);
  const captured = buildEnvironment({ toolchain, home, tmpDir: tmp });
  const base = {
    ...baseEnvironment({ cacheDir, idfToolsPath }),
    HOME: home,
    TMPDIR: tmp,
    TERM: 'xterm-256color',
  };

  const direct = async () => {
    const started = performance.now();
    const r = await execa('idf.py', ['--version'], {
      env: captured,
      extendEnv: false,
      cwd: home,
      reject: false,
      timeout: 20_000,
      stdin: 'ignore',
    });
    const ms = performance.now() - started;
    if (r.exitCode !== 0) throw new Error(`idf.py --version failed: ${String(r.stderr)}`);
    return ms;
  };
  const agent = () =>
    underPty({ file: '/bin/sh', args: ['-c', 'exec idf.py --version'] }, captured, home);
  const exportEach = () =>
    underPty(
      {
        file: '/bin/bash',
        args: [
          '--noprofile',
          '--norc',
          '-c',
          '. "$0/export.sh" >/dev/null 2>&1 || exit 99; exec idf.py --version',
          toolchain.path,
        ],
      },
      base,
      home,
    );

  const samples = { direct: [] as number[], agent: [] as number[], export: [] as number[] };
  // One warm-up of each (page cache, python's bytecode), then alternating orders.
  await direct();
  await agent();
  await exportEach();
  for (let i = 0; i < ROUNDS; i++) {
    const order =
      i % 3 === 0
        ? ['direct', 'agent', 'export']
        : i % 3 === 1
          ? ['agent', 'export', 'direct']
          : ['export', 'direct', 'agent'];
    for (const k of order) {
      if (k === 'direct') samples.direct.push(await direct());
      else if (k === 'agent') samples.agent.push(await agent());
      else samples.export.push(await exportEach());
    }
  }
  const d = median(samples.direct);
  const a = median(samples.agent);
  const e = median(samples.export);
  ctx.progress(
    `direct ${d.toFixed(1)} ms, agent ${a.toFixed(1)} ms, export.sh each time ${e.toFixed(1)} ms`,
  );
  return {
    rows: [
      row(
        'P6',
        'build start overhead added per build (captured env + pty), idf.py --version',
        a - d,
        'ms',
        { op: '<=', bound: 50 },
        `sourcing export.sh per build adds ${(e - d).toFixed(0)} ms (direct ${d.toFixed(0)} ms)`,
      ),
    ],
    details: {
      rounds: ROUNDS,
      samples,
      medianMs: { direct: d, agent: a, exportEachBuild: e },
      discoverAndCaptureOnceMs: discoverMs,
      toolchain: toolchain.id,
    },
  };
}
