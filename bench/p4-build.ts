// P4: the stand-in build of examples/blink through the agent — a real dev control plane and a
// real Daemon in this process, the reference client (RemoteBuild: grant, upload, live log,
// download) — timed from the claim (the job record's createdAt, written on job.assigned) to
// artifacts ready (finishedAt of `succeeded`, after the manifest and merged.bin were made);
// against the same `idf.py set-target esp32c3 && idf.py build` (the agent's own command, the
// same captured toolchain environment) run directly under a pty with startBuild. Rounds
// alternate the order; the figure is the median of the per-round ratios.
import fs from 'node:fs';
import path from 'node:path';
import { RemoteBuild } from '../src/client/build.js';
import { DevControlPlane } from '../src/dev/index.js';
import { startBuild } from '../src/jobs/build.js';
import { buildEnvironment } from '../src/jobs/build-env.js';
import { createLogger } from '../src/log/index.js';
import type { Toolchain } from '../src/toolchains/index.js';
import { AGENT_SECRET, startAgent, type TestAgent } from '../test/helpers/agent.js';
import type { BenchContext, FigureOutput } from './context.js';
import { median, REPO, row, withTimeout } from './lib.js';

const BLINK = path.join(REPO, 'examples', 'blink');
const TARGET = 'esp32c3';
const ROUNDS = 3;

interface Round {
  order: string;
  agentMs: number;
  agentBuildMs: number;
  directMs: number;
  ratio: number;
}

async function viaAgent(
  ctx: BenchContext,
  plane: DevControlPlane,
  agent: TestAgent,
): Promise<{ ms: number; buildMs: number; toolchainId: string }> {
  const build = new RemoteBuild({
    api: { baseUrl: plane.url },
    projectDir: BLINK,
    target: TARGET,
    outDir: ctx.dir('p4-out-'),
    writeLog: () => undefined,
    maxReconnects: 0,
  });
  const result = await withTimeout(build.run(), 60_000, 'the build through the agent');
  if (result.state !== 'succeeded') throw new Error(`the agent's build ended ${result.state}`);
  const record = agent.daemon.registry.get(result.jobId);
  if (!record?.finishedAt || record.startedAt === undefined)
    throw new Error('the job record has no timestamps');
  return {
    ms: record.finishedAt - record.createdAt,
    buildMs: record.finishedAt - record.startedAt,
    toolchainId: record.toolchainId,
  };
}

async function direct(ctx: BenchContext, toolchain: Toolchain): Promise<number> {
  const root = ctx.dir('p4-direct-');
  const src = path.join(root, 'src');
  await fs.promises.cp(BLINK, src, {
    recursive: true,
    filter: (p) => !['build', 'sdkconfig', 'sdkconfig.old'].includes(path.basename(p)),
  });
  const tmp = path.join(root, 'tmp');
  fs.mkdirSync(tmp);
  let bytes = 0;
  const started = Date.now();
  const handle = startBuild({
    projectDir: src,
    buildDir: path.join(root, 'build'),
    target: TARGET,
    env: buildEnvironment({ toolchain, home: root, tmpDir: tmp }),
    cwd: root,
    cols: 120,
    rows: 40,
    timeoutMs: 60_000,
    killGraceMs: 2000,
    sink: (d) => (bytes += d.length),
  });
  const r = await withTimeout(handle.result, 70_000, 'the direct build');
  const ms = Date.now() - started;
  if (r.outcome !== 'succeeded' || bytes === 0) throw new Error(`the direct build ${r.outcome}`);
  return ms;
}

export async function p4(ctx: BenchContext): Promise<FigureOutput> {
  const plane = await DevControlPlane.start({
    agentAuthSecret: AGENT_SECRET,
    port: 0,
    logger: createLogger({ level: 'warn' }),
  });
  let agent: TestAgent | undefined;
  try {
    let ready!: () => void;
    const registered = new Promise<void>((r) => (ready = r));
    // testEnv() finds the toolchains relative to its own file, which is not in the repo once
    // compiled to dist-bench/: name them.
    agent = await startAgent(
      plane,
      { MAX_JOBS: '1', TOOLCHAINS_DIR: path.join(REPO, 'toolchains') },
      () => ready(),
    );
    await withTimeout(registered, 30_000, 'the agent registering');
    const rounds: Round[] = [];
    let toolchain: Toolchain | undefined;
    for (let i = 0; i < ROUNDS; i++) {
      // The first round goes through the agent first: it names the toolchain the agent chose.
      const agentFirst = i % 2 === 0;
      let a: Awaited<ReturnType<typeof viaAgent>>;
      let d: number;
      const pick = (id: string) => {
        toolchain ??= agent?.daemon.toolchains.find((t) => t.id === id);
        if (!toolchain) throw new Error(`toolchain ${id} not found`);
        return toolchain;
      };
      if (agentFirst) {
        a = await viaAgent(ctx, plane, agent);
        d = await direct(ctx, pick(a.toolchainId));
      } else {
        d = await direct(ctx, toolchain as Toolchain);
        a = await viaAgent(ctx, plane, agent);
      }
      rounds.push({
        order: agentFirst ? 'agent,direct' : 'direct,agent',
        agentMs: a.ms,
        agentBuildMs: a.buildMs,
        directMs: d,
        ratio: a.ms / d,
      });
      ctx.progress(`round ${i + 1}: agent ${a.ms} ms (build ${a.buildMs} ms), direct ${d} ms`);
    }
    const ratio = median(rounds.map((r) => r.ratio));
    return {
      rows: [
        row(
          'P4',
          'blink build through the agent (claim → artifacts ready) ÷ direct idf.py under a pty',
          ratio,
          '×',
          { op: '<=', bound: 1.05 },
          `direct ${median(rounds.map((r) => r.directMs)).toFixed(0)} ms; agent ${median(rounds.map((r) => r.agentMs)).toFixed(0)} ms`,
        ),
      ],
      details: { rounds, toolchain: toolchain?.id },
    };
  } finally {
    await agent?.daemon.stop({ releaseNative: false });
    await plane.close();
    // testEnv() put the agent's state, cache and work dirs under one temp root.
    const root = agent && path.dirname(agent.config.stateDir);
    if (root && path.basename(root).startsWith('aegis-agent-'))
      fs.rmSync(root, { recursive: true, force: true });
  }
}
