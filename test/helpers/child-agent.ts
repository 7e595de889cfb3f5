// The daemon as operators run it: `node dist/cli.js run` in a child process, its JSON log
// lines parsed as they arrive, and a way to upload a project to one of its jobs.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { requestGrant } from '../../src/client/api.js';
import { connect } from '../../src/client/connection.js';
import { packProject } from '../../src/client/pack.js';
import { uploadSource } from '../../src/client/transfer.js';
import { REPO, testEnv } from './agent-env.js';
import { AGENT_SECRET } from './agent.js';

export interface ChildAgent {
  proc: ChildProcess;
  env: Record<string, string>;
  lines: Record<string, unknown>[];
  waitLine(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnAgent(planeUrl: string, env: Record<string, string> = testEnv()): ChildAgent {
  const fullEnv = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    CONTROL_BASE_URL: planeUrl,
    AGENT_AUTH_SECRET: AGENT_SECRET,
    LOG_LEVEL: 'debug',
    ...env,
  };
  const proc = spawn(process.execPath, [path.join(REPO, 'dist', 'cli.js'), 'run'], {
    env: fullEnv,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: {
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }[] = [];
  let buf = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { msg: text };
      }
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.pred(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    proc,
    env: fullEnv,
    lines,
    exited,
    waitLine(pred, timeoutMs = 20_000) {
      const found = lines.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `agent never logged a matching line; last: ${JSON.stringify(lines.slice(-5))}`,
              ),
            ),
          timeoutMs,
        );
        waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
  };
}

/** Request a job for `target`, upload `projectDir` to it, and disconnect; returns the job id. */
export async function submitJob(
  planeUrl: string,
  projectDir: string,
  target = 'esp32c3',
): Promise<string> {
  const api = { baseUrl: planeUrl };
  const grant = await requestGrant(api, { target, channels: ['control', 'source'] });
  const conn = await connect({
    api,
    grant: grant.grant,
    iceServers: grant.ice_servers,
    channels: ['control', 'source'],
  });
  try {
    await uploadSource(conn.channel('source'), await packProject(projectDir), () => undefined);
  } finally {
    conn.close();
  }
  return grant.job_id;
}

/** Follow a job's log over the `logs` channel (a fresh grant) until `re` matches; returns the match. */
export async function waitForLog(
  planeUrl: string,
  jobId: string,
  re: RegExp,
  timeoutMs = 20_000,
): Promise<RegExpMatchArray> {
  const api = { baseUrl: planeUrl };
  const grant = await requestGrant(api, { job_id: jobId, channels: ['control', 'logs'] });
  const conn = await connect({
    api,
    grant: grant.grant,
    iceServers: grant.ice_servers,
    channels: ['control', 'logs'],
  });
  const logs = conn.channel('logs');
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    logs.sendJson({ type: 'follow', from: 0 });
    let text = '';
    for (;;) {
      const item = await logs.next();
      if (item.kind === 'closed')
        throw new Error(`log of ${jobId} ended (or timed out) without ${re}: ${text.slice(-500)}`);
      if (item.kind !== 'data') continue;
      text += item.data.toString('utf8');
      const m = text.match(re);
      if (m) return m;
    }
  } finally {
    clearTimeout(timer);
    conn.close();
  }
}
