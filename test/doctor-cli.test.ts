// `aegis-agent doctor` as a command: in-process through the command's run() (exit code, --json),
// and as a real process, which must end by itself after releasing libdatachannel.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { doctorCommand } from '../src/cli/commands/doctor.js';
import { makeContext } from '../src/cli/context.js';
import { DevControlPlane } from '../src/dev/index.js';
import { createLogger } from '../src/log/index.js';
import { REPO, testEnv } from './helpers/agent-env.js';

const SECRET = 'doctor-cli-secret-41c7d0e2b9';
let plane: DevControlPlane;

beforeAll(async () => {
  plane = await DevControlPlane.start({
    agentAuthSecret: SECRET,
    port: 0,
    logger: createLogger({ level: 'silent' }),
  });
});
afterAll(() => plane.close());

async function run(values: Record<string, boolean>, extra: Record<string, string>) {
  const out: string[] = [];
  const err: string[] = [];
  const env = testEnv({ AGENT_AUTH_SECRET: SECRET, ...extra });
  const ctx = makeContext(values, [], env, {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  const code = await doctorCommand.run(ctx);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('doctor command', () => {
  it('--json parses, exit 1 on an error, the secret never printed', async () => {
    const r = await run(
      { json: true, 'no-hello': true },
      { CONTROL_BASE_URL: 'http://127.0.0.1:7800/' },
    );
    expect(r.code).toBe(1);
    const json = JSON.parse(r.out) as { ok: boolean; checks: { name: string; status: string }[] };
    expect(json.ok).toBe(false);
    expect(json.checks.find((c) => c.name === 'control_url')?.status).toBe('error');
    expect(r.out + r.err).not.toContain(SECRET);
  });

  it('text, exit 0 when nothing is an error', async () => {
    const r = await run({ 'no-hello': true }, { CONTROL_BASE_URL: plane.url });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^ok {5}config {9}valid/m);
    expect(r.out).toMatch(/^skip {3}agent_auth/m);
    expect(r.out).not.toContain(SECRET);
  });

  const built = path.join(REPO, 'dist', 'cli', 'commands', 'doctor.js');
  it.skipIf(!fs.existsSync(built))('a real process: all checks, exits by itself', async () => {
    const script = `
      import { doctorCommand } from ${JSON.stringify(built)};
      import { makeContext } from ${JSON.stringify(path.join(REPO, 'dist', 'cli', 'context.js'))};
      const io = { out: (t) => process.stdout.write(t + '\\n'), err: (t) => process.stderr.write(t + '\\n') };
      process.exitCode = await doctorCommand.run(makeContext({ json: true }, [], process.env, io));`;
    const env = {
      ...process.env,
      ...testEnv({ AGENT_AUTH_SECRET: SECRET, CONTROL_BASE_URL: plane.url }),
    };
    const res = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      env,
      timeout: 30_000,
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    const json = JSON.parse(res.stdout) as {
      ok: boolean;
      checks: { name: string; status: string }[];
    };
    expect(res.code, res.stderr).toBe(0);
    expect(json.ok).toBe(true);
    expect(json.checks.find((c) => c.name === 'ice')?.status).toBe('warn');
    expect(res.stdout + res.stderr).not.toContain(SECRET);
  });
});
