// The HTTP API of the dev plane (PROTOCOL §6 plus the extensions in docs/protocol.md): one
// function per endpoint, bodies validated with zod at the edge, errors as {"code","message"}.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors as joseErrors } from 'jose';
import { z } from 'zod';
import { IceServer, Id, IdfSpec, Target } from '../control/messages.js';
import type { AgentRegistry } from './agents.js';
import type { GrantKeys } from './grants.js';
import { HttpError, parseBody, readJson, requireBearer, sendJson } from './http.js';
import type { JobBoard } from './jobs.js';
import type { SessionRelay } from './sessions.js';
import type { JobRecord } from './store.js';
import { sessionIceServers, type TurnMinter } from './turn.js';

export interface RouteContext {
  agents: AgentRegistry;
  jobs: JobBoard;
  sessions: SessionRelay;
  keys: GrantKeys;
  mcpAuthSecret: string | undefined;
  iceServers: IceServer[];
  /** When set, grants and sessions get fresh TURN credentials (src/dev/turn.ts). */
  turn: TurnMinter | undefined;
  issuer: string | undefined;
  grantTtlS: number;
  /** This plane's (possibly offset) clock, ms. */
  now: () => number;
}

const Channels = z.array(z.string().min(1).max(64)).min(1).max(16);

/** New job: {target, idf?, channels, timeout_s?}. Extension: {job_id, channels} = a new grant for it. */
const GrantRequestBody = z.object({
  target: Target.optional(),
  idf: IdfSpec.optional(),
  channels: Channels,
  timeout_s: z.number().int().positive().max(86_400).optional(),
  job_id: Id.optional(),
  /** Extension: the grant's `sub` (default "dev-client"). */
  client: Id.optional(),
});

/** {grant, sdp, ice_servers?}. Extension for tests: agent_id / job_id override the grant's aud / job. */
const SessionBody = z.object({
  grant: z.string().min(1).max(8192),
  sdp: z
    .string()
    .min(1)
    .max(256 * 1024),
  ice_servers: z.array(IceServer).max(8).optional(),
  agent_id: Id.optional(),
  job_id: Id.optional(),
});

type Handler = (
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  param: string,
) => Promise<void> | void;

const ROUTES: { method: 'GET' | 'POST'; pattern: RegExp; handler: Handler }[] = [
  { method: 'GET', pattern: /^\/health$/, handler: health },
  {
    method: 'GET',
    pattern: /^\/\.well-known\/jwks\.json$/,
    handler: (c, _q, res) => sendJson(res, 200, c.keys.publicJwks()),
  },
  {
    method: 'GET',
    pattern: /^\/agents$/,
    handler: (c, _q, res) => sendJson(res, 200, c.agents.list()),
  },
  {
    method: 'GET',
    pattern: /^\/jobs$/,
    handler: (c, _q, res) => sendJson(res, 200, c.jobs.list()),
  },
  { method: 'GET', pattern: /^\/jobs\/([^/]+)$/, handler: getJob },
  {
    method: 'GET',
    pattern: /^\/sessions$/,
    handler: (c, _q, res) => sendJson(res, 200, c.sessions.list()),
  },
  { method: 'POST', pattern: /^\/grant\/request$/, handler: grantRequest },
  { method: 'POST', pattern: /^\/session$/, handler: openSession },
  { method: 'POST', pattern: /^\/session\/([^/]+)\/close$/, handler: closeSession },
  { method: 'POST', pattern: /^\/session\/([^/]+)\/candidate$/, handler: sessionCandidate },
];

const CandidateBody = z.object({
  candidate: z.string().min(1).max(2048),
  mid: z.string().max(64),
});

/** Trickle ICE from the client: relayed to the agent as session.candidate. */
async function sessionCandidate(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  sessionId: string,
): Promise<void> {
  requireBearer(req, ctx.mcpAuthSecret);
  const body = parseBody(CandidateBody, await readJson(req));
  ctx.sessions.candidate(sessionId, body.candidate, body.mid);
  sendJson(res, 200, { session_id: sessionId, status: 'relayed' });
}

export async function route(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://dev').pathname;
  const matching = ROUTES.filter((r) => r.pattern.test(path));
  if (matching.length === 0)
    throw new HttpError(404, 'AEGIS_ERR_PROTOCOL', `No endpoint ${path} on the dev control plane.`);
  const found = matching.find((r) => r.method === req.method);
  if (!found) {
    res.setHeader('allow', [...new Set(matching.map((r) => r.method))].join(', '));
    throw new HttpError(
      405,
      'AEGIS_ERR_PROTOCOL',
      `${path} does not accept ${req.method ?? 'this method'}.`,
    );
  }
  await found.handler(ctx, req, res, decodeParam(found.pattern.exec(path)?.[1] ?? ''));
}

function decodeParam(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new HttpError(
      400,
      'AEGIS_ERR_PROTOCOL',
      `The path segment "${raw.slice(0, 64)}" is not valid percent-encoding.`,
    );
  }
}

function health(ctx: RouteContext, _req: IncomingMessage, res: ServerResponse): void {
  sendJson(res, 200, { status: 'ok', agents: ctx.agents.connectedCount(), server_time: ctx.now() });
}

function getJob(
  ctx: RouteContext,
  _req: IncomingMessage,
  res: ServerResponse,
  jobId: string,
): void {
  const job = ctx.jobs.get(jobId);
  if (!job)
    throw new HttpError(404, 'AEGIS_ERR_GRANT_JOB', `No job ${jobId} on this control plane.`);
  sendJson(res, 200, job);
}

async function grantRequest(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  requireBearer(req, ctx.mcpAuthSecret);
  const body = parseBody(GrantRequestBody, await readJson(req));
  let job: JobRecord;
  if (body.job_id !== undefined) {
    if (body.target !== undefined) {
      throw new HttpError(
        400,
        'AEGIS_ERR_PROTOCOL',
        'Give either target (a new job) or job_id (a new grant for an existing job), not both.',
      );
    }
    const found = ctx.jobs.get(body.job_id);
    if (found?.phase !== 'assigned') {
      throw new HttpError(
        404,
        'AEGIS_ERR_GRANT_JOB',
        `Job ${body.job_id} is not assigned to any agent on this control plane; request a new job with a target.`,
      );
    }
    job = found;
  } else if (body.target !== undefined) {
    job = await ctx.jobs.request({
      target: body.target,
      idf: body.idf,
      channels: body.channels,
      timeout_s: body.timeout_s,
    });
  } else {
    throw new HttpError(
      400,
      'AEGIS_ERR_PROTOCOL',
      'Invalid request body: target: required (or job_id to resume a job).',
    );
  }
  sendJson(res, 200, await grantFor(ctx, job, body.channels, body.client ?? 'dev-client'));
}

async function grantFor(ctx: RouteContext, job: JobRecord, channels: string[], client: string) {
  const agent = job.agent_id === undefined ? undefined : ctx.agents.get(job.agent_id);
  if (!agent || job.target === null) {
    throw new HttpError(
      503,
      'AEGIS_ERR_NO_AGENT',
      `The agent of job ${job.job_id} has not connected to this control plane.`,
    );
  }
  const { grant, exp } = await ctx.keys.issue({
    iss: ctx.issuer ?? agent.origin,
    aud: agent.agent_id,
    sub: client,
    job: job.job_id,
    target: job.target,
    channels,
    ttlS: ctx.grantTtlS,
    now: Math.floor(ctx.now() / 1000),
  });
  return {
    job_id: job.job_id,
    agent_id: agent.agent_id,
    grant,
    ice_servers: sessionIceServers(ctx.iceServers, ctx.turn, job.job_id, ctx.now()),
    expires_at: exp * 1000,
  };
}

async function openSession(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  requireBearer(req, ctx.mcpAuthSecret);
  const body = parseBody(SessionBody, await readJson(req));
  let claims: Record<string, unknown>;
  try {
    claims = await ctx.keys.claimsOf(body.grant);
  } catch (err) {
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
      throw new HttpError(
        403,
        'AEGIS_ERR_GRANT_SIGNATURE',
        'The grant was not signed by this control plane.',
      );
    }
    throw new HttpError(
      400,
      'AEGIS_ERR_GRANT_MALFORMED',
      `The grant is not a JWT this control plane signed: ${(err as Error).message}.`,
    );
  }
  const aud =
    Array.isArray(claims['aud']) && claims['aud'].length === 1
      ? (claims['aud'] as unknown[])[0]
      : claims['aud'];
  const agentId = body.agent_id ?? (Id.safeParse(aud).success ? (aud as string) : undefined);
  const jobId =
    body.job_id ?? (Id.safeParse(claims['job']).success ? (claims['job'] as string) : undefined);
  if (agentId === undefined || jobId === undefined) {
    throw new HttpError(
      400,
      'AEGIS_ERR_GRANT_MALFORMED',
      'The grant names no agent ("aud") or no job ("job").',
    );
  }
  if (ctx.agents.get(agentId)?.connected !== true) {
    throw new HttpError(
      503,
      'AEGIS_ERR_NO_AGENT',
      `Agent ${agentId} named by the grant is not connected to this control plane.`,
    );
  }
  const answer = await ctx.sessions.open({
    agentId,
    jobId,
    grant: body.grant,
    sdp: body.sdp,
    // The client's own servers (its grant's, minted for it), else fresh ones for this session.
    iceServers: body.ice_servers ?? sessionIceServers(ctx.iceServers, ctx.turn, jobId, ctx.now()),
  });
  sendJson(res, 200, answer);
}

function closeSession(
  ctx: RouteContext,
  req: IncomingMessage,
  res: ServerResponse,
  sessionId: string,
): void {
  requireBearer(req, ctx.mcpAuthSecret);
  ctx.sessions.close(sessionId);
  sendJson(res, 200, { session_id: sessionId, status: 'closing' });
}
