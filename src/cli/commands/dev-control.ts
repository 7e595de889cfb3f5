// `aegis-agent dev-control`: the in-memory development control plane (src/dev) on loopback,
// until SIGINT/SIGTERM. For development, the demo and tests; never a production control plane.
import { DevControlPlane } from '../../dev/index.js';
import { AegisError } from '../../errors.js';
import { createLogger } from '../../log/index.js';
import type { CommandContext } from '../context.js';
import { EXIT } from '../exit.js';
import type { Command } from './command.js';

export const DEV_CONTROL_DEFAULT_PORT = 7800;

export const devControlCommand: Command = {
  name: 'dev-control',
  summary:
    'Run the development control plane (in memory, loopback; for development and tests only).',
  usage: `Usage: aegis-agent dev-control [--port N] [--host H]

A development control plane, for development and tests only: NOT a production control plane.
It keeps everything in memory (jobs, agents and sessions are gone when it stops), has no TLS and
no users, and listens on loopback (127.0.0.1) by default. Agents connect to it with
CONTROL_BASE_URL=http://127.0.0.1:7800 and the same AGENT_AUTH_SECRET.

  --port N   Port to listen on (default ${DEV_CONTROL_DEFAULT_PORT}; 0 picks a free one).
  --host H   Address to bind (default 127.0.0.1). Anything but loopback exposes it to the network.

Endpoints (HTTP and WebSocket on one port):
  WS   /agent/v1/ws            agents (Authorization: Bearer <HS256 token signed with AGENT_AUTH_SECRET>)
  GET  /health                 {"status":"ok","agents":n,"server_time"}
  GET  /.well-known/jwks.json  the Ed25519 key grants are signed with (made fresh at every start)
  GET  /agents                 connected and past agents: toolchains, capacity, running, last_seen
  GET  /jobs, /jobs/<id>       jobs, their applied states and duplicate-update counts
  GET  /sessions               relayed sessions and their outcome
  POST /grant/request          {"target","idf"?,"channels":[...],"timeout_s"?} -> offer, first claim wins
                               -> {"job_id","agent_id","grant","ice_servers","expires_at"}, or 503
                               AEGIS_ERR_NO_AGENT; {"job_id","channels"} -> a new grant for that job
  POST /session                {"grant","sdp","ice_servers"?} -> {"session_id","sdp"} (the agent's
                               answer), 403 with the agent's rejection, or 504
  POST /session/<id>/close     sends session.close to the agent

Environment:
  AGENT_AUTH_SECRET            required: the secret agents sign their connect tokens with
  MCP_AUTH_SECRET              optional: when set, /grant/request and /session need
                               Authorization: Bearer <MCP_AUTH_SECRET>
  ALLOWED_ORIGINS              optional: comma-separated exact browser origins for CORS,
                               e.g. https://esphome.cloud (scheme, no path, no trailing slash)
  DEV_HEARTBEAT_INTERVAL_MS    optional: heartbeat interval sent to agents (default 15000)
  DEV_TURN_URLS                optional, with DEV_TURN_SECRET: comma-separated turn: URLs of one
                               TURN relay, e.g. turn:127.0.0.1:3478?transport=udp; every grant
                               (and every /session without ice_servers) then gets fresh TURN REST
                               credentials for it, valid for an hour
  DEV_TURN_SECRET              the relay's shared secret (coturn use-auth-secret, static-auth-secret)
  LOG_LEVEL                    optional: log level (default info)

Runs until SIGINT or SIGTERM, then closes every connection and exits 0.`,
  options: { port: { type: 'string' }, host: { type: 'string' } },
  async run(ctx: CommandContext): Promise<number> {
    const env = ctx.env;
    const agentAuthSecret = env['AGENT_AUTH_SECRET'] ?? '';
    if (agentAuthSecret === '') {
      throw new AegisError(
        'AEGIS_ERR_CONFIG',
        'AGENT_AUTH_SECRET is not set: export the same secret the agents use, e.g. AGENT_AUTH_SECRET=dev-secret aegis-agent dev-control.',
      );
    }
    const mcpAuthSecret = nonEmpty(env['MCP_AUTH_SECRET']);
    const port = integer('--port', ctx.values['port'], DEV_CONTROL_DEFAULT_PORT, 0, 65_535);
    const heartbeatIntervalMs = integer(
      'DEV_HEARTBEAT_INTERVAL_MS',
      env['DEV_HEARTBEAT_INTERVAL_MS'],
      15_000,
      100,
      600_000,
    );
    const host = typeof ctx.values['host'] === 'string' ? ctx.values['host'] : '127.0.0.1';
    const allowedOrigins = (env['ALLOWED_ORIGINS'] ?? '')
      .split(',')
      .map((o) => o.trim())
      .filter((o) => o !== '');
    const turn = turnFromEnv(env);
    const logger = createLogger({
      name: 'dev-control',
      level: nonEmpty(env['LOG_LEVEL']) ?? 'info',
      secrets: [
        agentAuthSecret,
        ...(mcpAuthSecret !== undefined ? [mcpAuthSecret] : []),
        ...(turn !== undefined ? [turn.secret] : []),
      ],
      env,
    });
    if (!isLoopback(host)) {
      logger.warn(
        { host },
        'dev-control is bound to a non-loopback address: anyone who can reach it can request grants',
      );
    }
    const plane = await DevControlPlane.start({
      agentAuthSecret,
      ...(mcpAuthSecret !== undefined ? { mcpAuthSecret } : {}),
      allowedOrigins,
      host,
      port,
      heartbeatIntervalMs,
      ...(turn !== undefined ? { turn } : {}),
      logger,
    });
    ctx.out(
      `aegis dev control plane listening on ${plane.url} (development and tests only — not a production control plane)`,
    );
    const signal = await untilSignal();
    logger.info({ signal }, 'stopping');
    await plane.close();
    return EXIT.ok;
  },
};

/** DEV_TURN_URLS + DEV_TURN_SECRET → the plane's `turn` option; both or neither. */
function turnFromEnv(env: NodeJS.ProcessEnv): { urls: string[]; secret: string } | undefined {
  const urls = (env['DEV_TURN_URLS'] ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  const secret = nonEmpty(env['DEV_TURN_SECRET']);
  if (urls.length === 0 && secret === undefined) return undefined;
  if (urls.length === 0 || secret === undefined) {
    throw new AegisError(
      'AEGIS_ERR_CONFIG',
      `${urls.length === 0 ? 'DEV_TURN_URLS' : 'DEV_TURN_SECRET'} is not set: a TURN relay needs both DEV_TURN_URLS and DEV_TURN_SECRET (or neither).`,
    );
  }
  return { urls, secret };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

function integer(
  name: string,
  raw: string | boolean | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined || raw === '') return fallback;
  const n = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new AegisError(
      'AEGIS_ERR_CONFIG',
      `${name} must be a whole number from ${min} to ${max}, not "${String(raw)}".`,
    );
  }
  return n;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
