// `aegis-agent build <dir> --target T`: the reference client. Uploads the project, prints the
// live log on stdout, downloads and verifies the firmware, prints the flash command.
import path from 'node:path';
import { RemoteBuild } from '../../client/build.js';
import { esptoolCommand } from '../../client/esptool.js';
import { createProgress, humanBytes } from '../../client/progress.js';
import { controlUrlProblem } from '../../config/index.js';
import { AegisError } from '../../errors.js';
import { cleanupNodeDataChannel } from '../../webrtc/ndc.js';
import { EXIT } from '../exit.js';
import type { Command } from './command.js';

export const buildCommand: Command = {
  name: 'build',
  summary: 'Reference client: build a project on an agent, stream its log, download the firmware.',
  usage: `Usage: aegis-agent build <project-dir> --target T [--idf V] [--control URL] [--out DIR] [--pty]

Requests a grant from the control plane, connects to the agent that claimed the job over
WebRTC, uploads a tar.gz of the project (without build/), prints the live build log on stdout,
downloads every artifact into --out with its sha256 verified, and prints the esptool command
to flash it. If the connection drops, it gets a new grant for the same job and resumes the
log and the downloads from where they stopped.

  --target T       chip target, e.g. esp32c3 (required)
  --idf V          ESP-IDF version: 5, 5.3 (any 5.3.x) or 5.3.1; default the newest installed
  --control URL    control plane base URL (default $CONTROL_BASE_URL or http://127.0.0.1:7800)
  --out DIR        where the firmware goes (default ./out)
  --pty            follow the build on its terminal; your keystrokes reach it while it runs

Environment: MCP_AUTH_SECRET (bearer for /grant/request when the control plane wants one).
Exit code: 0 when the build succeeded and every file verified, 1 otherwise, 2 bad usage.`,
  options: {
    target: { type: 'string' },
    idf: { type: 'string' },
    control: { type: 'string' },
    out: { type: 'string' },
    pty: { type: 'boolean' },
  },
  positionals: true,
  async run(ctx) {
    const dir = ctx.positionals[0];
    const target = ctx.values['target'];
    if (!dir || typeof target !== 'string' || ctx.positionals.length > 1) {
      ctx.err(`aegis-agent build: give one project directory and --target\n\n${this.usage}`);
      return EXIT.usage;
    }
    const control =
      (ctx.values['control'] as string | undefined) ??
      ctx.env['CONTROL_BASE_URL'] ??
      'http://127.0.0.1:7800';
    const urlProblem = controlUrlProblem(control);
    if (urlProblem) throw new AegisError('AEGIS_ERR_CONFIG', `--control: ${urlProblem}`);
    const outDir = path.resolve((ctx.values['out'] as string | undefined) ?? 'out');
    const pty = ctx.values['pty'] === true;
    const progress = createProgress();
    const build = new RemoteBuild({
      api: { baseUrl: control, mcpSecret: ctx.env['MCP_AUTH_SECRET'] },
      projectDir: dir,
      target,
      idf: ctx.values['idf'] as string | undefined,
      outDir,
      pty,
      writeLog: (data) => process.stdout.write(data),
      ...(process.stdout.isTTY
        ? { ptySize: { cols: process.stdout.columns, rows: process.stdout.rows } }
        : {}),
    });
    build.on('connected', ({ sessionId, attempt }) =>
      progress.done(`aegis: ${attempt === 0 ? 'connected' : 'reconnected'} (session ${sessionId})`),
    );
    build.on('uploading', ({ sent, total }) => progress.update('upload', sent, total));
    build.on('uploaded', ({ bytes }) =>
      progress.done(`aegis: source uploaded (${humanBytes(bytes)})`),
    );
    build.on('downloading', ({ name, bytes, total }) => progress.update(name, bytes, total));
    build.on('downloaded', (f) =>
      progress.done(
        `aegis: ${f.name} ${humanBytes(f.size)} sha256 ok${f.resumedFrom ? ` (resumed at ${f.resumedFrom})` : ''}`,
      ),
    );
    build.on('reconnecting', ({ attempt, reason }) =>
      progress.done(`aegis: connection lost (${reason}); reconnecting, attempt ${attempt}`),
    );
    build.on('warning', (w) => progress.done(`aegis: ${w}`));
    const stdin = process.stdin;
    if (pty && stdin.isTTY) {
      stdin.setRawMode(true);
      stdin.on('data', (d: Buffer) => build.sendInput(d));
      process.stdout.on('resize', () => build.resize(process.stdout.columns, process.stdout.rows));
    }
    try {
      const r = await build.run();
      const t = r.timings;
      progress.done(
        `aegis: job ${r.jobId} on ${r.agentId}: ${r.state}${r.exitCode !== undefined ? ` (exit ${r.exitCode})` : ''}` +
          ` — grant ${t.grantMs} ms, upload ${t.uploadMs} ms, build ${t.buildMs} ms, download ${t.downloadMs} ms, total ${t.totalMs} ms`,
      );
      if (r.state !== 'succeeded' || !r.manifest) {
        if (r.error) progress.done(`aegis: ${r.error.code}: ${r.error.message}`);
        return EXIT.failure;
      }
      progress.done(
        `aegis: ${r.files.length} files in ${outDir}, every sha256 verified. Flash with:\n  cd ${outDir} && ${esptoolCommand(r.manifest)}`,
      );
      return EXIT.ok;
    } finally {
      if (pty && stdin.isTTY) {
        stdin.setRawMode(false);
        stdin.pause();
      }
      cleanupNodeDataChannel();
    }
  },
};
