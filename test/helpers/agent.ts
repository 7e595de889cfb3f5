// A real daemon in this test process, connected to a real (dev) control plane over loopback.
import path from 'node:path';
import { loadConfig, type AgentConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/index.js';
import type { JobState } from '../../src/jobs/job.js';
import type { JobRecord } from '../../src/jobs/job.js';
import { createLogger } from '../../src/log/index.js';
import type { DevControlPlane } from '../../src/dev/index.js';
import { createLogSink, type LogSink } from './log-sink.js';
import { testEnv } from './agent-env.js';
import { packProject } from './project-tar.js';

export const AGENT_SECRET = 'test-agent-secret-0123456789';

export interface TestAgent {
  daemon: Daemon;
  config: AgentConfig;
  sink: LogSink;
  /** Resolves with the job once it reaches `state`. */
  jobState(jobId: string, state: JobState, timeoutMs?: number): Promise<Readonly<JobRecord>>;
}

export async function startAgent(
  plane: { url: string },
  env: Record<string, string> = {},
  onReady?: () => void,
): Promise<TestAgent> {
  const config = loadConfig({
    env: testEnv({ CONTROL_BASE_URL: plane.url, AGENT_AUTH_SECRET: AGENT_SECRET, ...env }),
  });
  const sink = createLogSink();
  const log = createLogger({ destination: sink, level: 'debug', secrets: [AGENT_SECRET] });
  const daemon = await Daemon.start({ config, log, ...(onReady ? { onReady } : {}) });
  const jobState = (jobId: string, state: JobState, timeoutMs = 30_000) =>
    new Promise<Readonly<JobRecord>>((resolve, reject) => {
      const now = daemon.registry.get(jobId);
      if (now?.state === state) return resolve(now);
      const timer = setTimeout(() => {
        daemon.registry.off('change', on);
        reject(
          new Error(
            `job ${jobId} did not reach ${state} (is ${daemon.registry.get(jobId)?.state ?? 'unknown'})`,
          ),
        );
      }, timeoutMs);
      const on = ({ job }: { job: Readonly<JobRecord> }) => {
        if (job.jobId !== jobId || job.state !== state) return;
        clearTimeout(timer);
        daemon.registry.off('change', on);
        resolve(job);
      };
      daemon.registry.on('change', on);
    });
  return { daemon, config, sink, jobState };
}

/** Until the source channel exists in a test, feed a project straight into the job's intake. */
export async function feedSource(agent: TestAgent, jobId: string, dir: string): Promise<void> {
  const job = await agent.daemon.controllerFor(jobId);
  const packed = await packProject(dir);
  const up = job.beginSource({
    format: packed.format,
    size: packed.bytes.length,
    sha256: packed.sha256,
  });
  up.write(packed.bytes);
  await up.finish();
}

export async function requestGrant(
  plane: DevControlPlane,
  body: Record<string, unknown>,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${plane.url}/grant/request`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export const EXAMPLES = path.resolve(import.meta.dirname, '..', '..', 'examples');
