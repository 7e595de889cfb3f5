// The one config schema: every setting's environment name, type, default, validation and the
// sentence the README table and `--help` print. AgentConfig's type is derived from it.
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { controlUrlProblem } from './url.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `expected a whole number`)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off']))
  .transform((v) => ['1', 'true', 'yes', 'on'].includes(v));

const absPath = z
  .string()
  .trim()
  .min(1, 'expected a directory path')
  .transform((p) => path.resolve(p));

const pathList = z
  .string()
  .trim()
  .min(1, 'expected one or more directories separated by ":"')
  .transform((s) =>
    s
      .split(':')
      .filter((p) => p !== '')
      .map((p) => path.resolve(p)),
  );

const controlUrl = z
  .string()
  .trim()
  .superRefine((value, ctx) => {
    const problem = controlUrlProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const hostPort = z
  .string()
  .trim()
  .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 127.0.0.1:9464');

const labels = z
  .string()
  .trim()
  .transform((s, ctx) => {
    const out: Record<string, string> = {};
    for (const part of s.split(',').filter((p) => p.trim() !== '')) {
      const m = /^\s*([A-Za-z0-9_.-]+)=(.*)$/.exec(part);
      if (!m) {
        ctx.addIssue({
          code: 'custom',
          message: `expected key=value pairs separated by ",", got "${part}"`,
        });
        return z.NEVER;
      }
      out[m[1] as string] = (m[2] as string).trim();
    }
    return out;
  });

const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

interface Setting<S extends z.ZodType> {
  env: string;
  schema: S;
  /** Default as the operator would write it; a function when it derives from systemd's dirs. */
  default: string | ((env: NodeJS.ProcessEnv) => string) | undefined;
  doc: string;
  secret?: true;
}

function setting<S extends z.ZodType>(
  env: string,
  schema: S,
  def: Setting<S>['default'],
  doc: string,
  secret?: true,
): Setting<S> {
  return secret ? { env, schema, default: def, doc, secret } : { env, schema, default: def, doc };
}

const stateDir = (env: NodeJS.ProcessEnv) =>
  env['STATE_DIRECTORY']?.split(':')[0] ?? '/var/lib/aegis-agent';
const cacheDir = (env: NodeJS.ProcessEnv) =>
  env['CACHE_DIRECTORY']?.split(':')[0] ?? '/var/cache/aegis-agent';

export const SETTINGS = {
  controlBaseUrl: setting(
    'CONTROL_BASE_URL',
    controlUrl,
    'http://127.0.0.1:7800',
    'Control plane base URL: scheme, host, optional port; no trailing slash.',
  ),
  agentId: setting(
    'AGENT_ID',
    z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, 'expected 1-64 of A-Z a-z 0-9 . _ -'),
    () =>
      os
        .hostname()
        .replace(/[^A-Za-z0-9._-]/g, '-')
        .slice(0, 64),
    "This agent's id (the `aud` of its grants). Default: the host name.",
  ),
  agentLabels: setting(
    'AGENT_LABELS',
    labels,
    '',
    'Labels sent in `hello`, as key=value,key=value.',
  ),
  toolchainsDir: setting(
    'TOOLCHAINS_DIR',
    pathList,
    '/opt/aegis/toolchains',
    'Directories (":"-separated) whose subdirectories are ESP-IDF installs.',
  ),
  toolchainsPreview: setting(
    'TOOLCHAINS_PREVIEW',
    bool,
    'false',
    'Also offer the preview targets of each install (`idf.py --preview --list-targets`).',
  ),
  idfToolsPath: setting(
    'IDF_TOOLS_PATH',
    absPath,
    '/opt/aegis/espressif',
    'Where provisioned ESP-IDF tools live (shared, outside /home); passed to export.sh.',
  ),
  stateDir: setting(
    'STATE_DIR',
    absPath,
    stateDir,
    'Job records, the control-link outbox, the grant replay cache. Default: $STATE_DIRECTORY or /var/lib/aegis-agent.',
  ),
  cacheDir: setting(
    'CACHE_DIR',
    absPath,
    cacheDir,
    'Captured toolchain environments. Default: $CACHE_DIRECTORY or /var/cache/aegis-agent.',
  ),
  workDir: setting(
    'WORK_DIR',
    absPath,
    (env) => path.join(cacheDir(env), 'work'),
    'Per-job workspaces (WORK_DIR/jobs/<job_id>). Default: <CACHE_DIR>/work.',
  ),
  logLevel: setting(
    'LOG_LEVEL',
    logLevel,
    'info',
    'trace, debug, info, warn, error, fatal or silent.',
  ),
  maxJobs: setting(
    'MAX_JOBS',
    int(1, 256),
    '2',
    'Builds run at once; offers beyond it are not claimed.',
  ),
  diskFloorBytes: setting(
    'DISK_FLOOR_BYTES',
    int(0),
    String(2 * GiB),
    'Free bytes the work dir must keep; below it no job is claimed.',
  ),
  sourceMaxBytes: setting(
    'SOURCE_MAX_BYTES',
    int(1),
    String(256 * MiB),
    'Largest source archive, declared and streamed (and its decompressed size).',
  ),
  sourceMaxEntries: setting(
    'SOURCE_MAX_ENTRIES',
    int(1),
    '50000',
    'Most entries in a source archive.',
  ),
  sourceWaitS: setting(
    'SOURCE_WAIT_S',
    int(1),
    '300',
    'Seconds an assigned job waits for its source before `expired`.',
  ),
  buildTimeoutS: setting(
    'BUILD_TIMEOUT_S',
    int(1),
    '1800',
    'Build time limit when the job sets none.',
  ),
  killGraceS: setting(
    'KILL_GRACE_S',
    int(0),
    '10',
    "Seconds between SIGTERM and SIGKILL of a build's process group.",
  ),
  logMaxBytes: setting(
    'LOG_MAX_BYTES',
    int(4 * KiB),
    String(64 * MiB),
    'Build log cap; past it the log ends with a marker line and the build goes on.',
  ),
  retentionS: setting(
    'RETENTION_S',
    int(0),
    '1800',
    "Seconds a finished job's workspace and artifacts are kept.",
  ),
  ptyCols: setting('PTY_COLS', int(20, 1000), '120', 'Build terminal width.'),
  ptyRows: setting('PTY_ROWS', int(5, 1000), '40', 'Build terminal height.'),
  grantJwksFile: setting(
    'GRANT_JWKS_FILE',
    absPath.optional(),
    undefined,
    'Pinned JWKS file for grant keys; unset = fetch CONTROL_BASE_URL/.well-known/jwks.json.',
  ),
  grantIssuer: setting(
    'GRANT_ISSUER',
    z.string().trim().min(1).optional(),
    undefined,
    'Expected `iss` of grants. Default: the origin of CONTROL_BASE_URL.',
  ),
  grantMaxTtlS: setting('GRANT_MAX_TTL_S', int(1), '300', "Ceiling on a grant's exp - iat."),
  grantClockToleranceS: setting(
    'GRANT_CLOCK_TOLERANCE_S',
    int(0, 300),
    '5',
    'Clock tolerance for exp / iat / nbf.',
  ),
  replayCacheMax: setting(
    'REPLAY_CACHE_MAX',
    int(16),
    '10000',
    'Grant ids remembered until their exp; when full, new grants are refused.',
  ),
  maxSessionsPerJob: setting(
    'MAX_SESSIONS_PER_JOB',
    int(1),
    '4',
    'WebRTC sessions open at once for one job.',
  ),
  maxSessions: setting('MAX_SESSIONS', int(1), '32', 'WebRTC sessions open at once on this agent.'),
  iceTimeoutS: setting('ICE_TIMEOUT_S', int(1), '15', 'Seconds ICE has to reach `connected`.'),
  sendQueueBytes: setting(
    'SEND_QUEUE_BYTES',
    int(16 * KiB),
    String(128 * KiB),
    'Per-session send budget over the sum of bufferedAmount().',
  ),
  chunkBytes: setting(
    'CHUNK_BYTES',
    int(1 * KiB, 256 * KiB),
    String(16 * KiB),
    'Largest binary message sent.',
  ),
  sctpSendBufferBytes: setting(
    'SCTP_SEND_BUFFER_BYTES',
    int(64 * KiB),
    String(1 * MiB),
    'SCTP send buffer below the send queue (process-wide).',
  ),
  drainTimeoutS: setting(
    'DRAIN_TIMEOUT_S',
    int(0),
    '1800',
    'On SIGTERM, seconds running builds may take to finish before they are canceled.',
  ),
  metricsAddr: setting(
    'METRICS_ADDR',
    z.union([z.enum(['', 'off']).transform(() => undefined), hostPort]),
    '127.0.0.1:9464',
    'HOST:PORT of /metrics and /healthz (loopback); empty = off.',
  ),
  agentAuthSecret: setting(
    'AGENT_AUTH_SECRET',
    z.string().min(8, 'expected at least 8 characters').optional(),
    undefined,
    'Shared secret the agent signs its control-plane token with. From $CREDENTIALS_DIRECTORY/agent-secrets when systemd provides it.',
    true,
  ),
  mcpAuthSecret: setting(
    'MCP_AUTH_SECRET',
    z.string().min(1).optional(),
    undefined,
    'Bearer secret for POST /grant/request (dev control plane and reference client).',
    true,
  ),
} as const;

export type SettingKey = keyof typeof SETTINGS;

export type AgentConfig = {
  readonly [K in SettingKey]: z.output<(typeof SETTINGS)[K]['schema']>;
};
