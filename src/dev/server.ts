// DevControlPlane: the development control plane (PROTOCOL §6) in one process, in memory, on
// loopback: HTTP and the agents' WebSocket on one port. For `aegis-agent dev-control`, the demo
// and tests; not a production control plane (no persistence, no multi-tenancy, no TLS).
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWTHeaderParameters } from 'jose';
import type { ControlMessage } from '../control/messages.js';
import { AegisError } from '../errors.js';
import { createLogger, type Logger } from '../log/index.js';
import { rejectUpgrade } from './agent-auth.js';
import { AGENT_WS_PATH, AgentRegistry } from './agents.js';
import { applyCors, validateOrigins } from './cors.js';
import { GrantKeys, type PublicJwks } from './grants.js';
import { HttpError, sendError } from './http.js';
import { JobBoard } from './jobs.js';
import { route, type RouteContext } from './routes.js';
import { SessionRelay } from './sessions.js';
import { createDevStore, type DevStore, type JobRecord } from './store.js';
import { TurnMinter, validateTurn } from './turn.js';
import type {
  AgentRecord,
  DevControlPlaneOptions,
  DevEventMap,
  DevEventName,
  DevEventPayloads,
  SessionRecord,
} from './types.js';

export const DEFAULTS = {
  host: '127.0.0.1',
  heartbeatIntervalMs: 15_000,
  claimWaitMs: 10_000,
  sessionWaitMs: 15_000,
  grantTtlS: 30,
} as const;

export class DevControlPlane extends EventEmitter<DevEventMap> {
  readonly store: DevStore;
  private readonly log: Logger;
  private readonly server: Server;
  private readonly agents: AgentRegistry;
  private readonly jobs: JobBoard;
  private readonly sessions: SessionRelay;
  private readonly routes: RouteContext;
  private readonly origins: ReadonlySet<string>;
  private address: AddressInfo | undefined;
  private closed: Promise<void> | undefined;

  private constructor(
    private readonly options: DevControlPlaneOptions,
    private readonly keys: GrantKeys,
  ) {
    super();
    this.origins = validateOrigins(options.allowedOrigins ?? []);
    validateTurn(options.turn);
    // Embedded (tests, the demo's helpers) it keeps quiet unless given a logger; the
    // dev-control command passes one that writes to stderr.
    this.log =
      options.logger ??
      createLogger({ name: 'dev-control', level: 'silent', secrets: secretsOf(options) });
    this.store = options.store ?? createDevStore();
    const offset = options.clockOffsetMs ?? 0;
    const now = (): number => Date.now() + offset;
    const emit = <K extends DevEventName>(event: K, payload: DevEventPayloads[K]): void => {
      (this as unknown as EventEmitter).emit(event, payload);
    };
    const iceServers = options.iceServers ?? [];
    const send = (agentId: string, frame: ControlMessage): boolean =>
      this.agents.send(agentId, frame);
    this.agents = new AgentRegistry({
      secret: options.agentAuthSecret,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
      iceServers,
      now,
      emit,
      log: this.log,
      hooks: {
        onMessage: (agentId, msg) => {
          switch (msg.type) {
            case 'job.claim':
              return this.jobs.onClaim(agentId, msg);
            case 'job.update':
              return this.jobs.onUpdate(agentId, msg);
            case 'session.answer':
            case 'session.candidate':
            case 'session.rejected':
            case 'session.closed':
              return this.sessions.onFrame(agentId, msg);
          }
        },
        onAvailable: (agentId, reconnected) => this.jobs.offerWaitingTo(agentId, reconnected),
        onGone: (agentId) => this.sessions.agentGone(agentId),
      },
    });
    const claimWaitMs = options.claimWaitMs ?? DEFAULTS.claimWaitMs;
    this.jobs = new JobBoard({
      store: this.store,
      claimWaitMs,
      agents: this.agents,
      send,
      now,
      emit,
      log: this.log,
    });
    const sessionWaitMs = options.sessionWaitMs ?? DEFAULTS.sessionWaitMs;
    this.sessions = new SessionRelay({ sessionWaitMs, send, now, emit, log: this.log });
    this.routes = {
      agents: this.agents,
      jobs: this.jobs,
      sessions: this.sessions,
      keys,
      mcpAuthSecret: options.mcpAuthSecret,
      iceServers,
      turn: options.turn === undefined ? undefined : new TurnMinter(options.turn),
      issuer: options.issuer,
      grantTtlS: options.grantTtlS ?? DEFAULTS.grantTtlS,
      now,
    };
    this.server = createServer((req, res) => this.onRequest(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
      if (new URL(req.url ?? '/', 'http://dev').pathname === AGENT_WS_PATH)
        this.agents.handleUpgrade(req, socket, head);
      else
        rejectUpgrade(
          socket,
          404,
          'AEGIS_ERR_PROTOCOL',
          `WebSocket connections go to ${AGENT_WS_PATH}.`,
        );
    });
    this.server.on('clientError', (err, socket) => {
      this.log.debug({ err }, 'bad HTTP request');
      if (!socket.writable) socket.destroy();
      else rejectUpgrade(socket, 400, 'AEGIS_ERR_PROTOCOL', 'The request is not valid HTTP.');
    });
  }

  /** Validate the options, make the grant key, and listen. Refuses bad ALLOWED_ORIGINS. */
  static async start(options: DevControlPlaneOptions): Promise<DevControlPlane> {
    if (options.agentAuthSecret.length === 0) {
      throw new AegisError(
        'AEGIS_ERR_CONFIG',
        'The dev control plane needs AGENT_AUTH_SECRET, the secret agents sign their tokens with.',
      );
    }
    // A shared store carries the signing key, so a restarted plane keeps its kid and the agents'
    // cached JWKS stays valid (they refetch an unknown kid at most every 30 s).
    const keys = options.store?.signingKey ?? (await GrantKeys.create());
    if (options.store) options.store.signingKey = keys;
    const plane = new DevControlPlane(options, keys);
    const host = options.host ?? DEFAULTS.host;
    const port = options.port ?? 0;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        void plane.close();
        reject(
          new AegisError(
            'AEGIS_ERR_CONFIG',
            `The dev control plane cannot listen on ${host}:${port}: ${err.code ?? err.message}.`,
            { cause: err },
          ),
        );
      };
      plane.server.once('error', onError);
      plane.server.listen(port, host, () => {
        plane.server.off('error', onError);
        resolve();
      });
    });
    plane.address = plane.server.address() as AddressInfo;
    plane.log.info({ url: plane.url }, 'dev control plane listening');
    return plane;
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  /** http://<host>:<port>, with a wildcard bind shown as 127.0.0.1. */
  get url(): string {
    const host = this.address?.address ?? DEFAULTS.host;
    const shown =
      host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return `http://${shown}:${this.port}`;
  }

  /** Send a frame, or raw text (malformed, oversized) to an agent's live connection; false if none. */
  sendToAgent(agentId: string, frame: ControlMessage | string): boolean {
    return this.agents.send(agentId, frame);
  }

  /** Sign arbitrary claims with the trusted grant key (header defaults: EdDSA, kid, aegis-grant+jwt). */
  signGrant(
    claims: Record<string, unknown>,
    header?: Partial<JWTHeaderParameters>,
  ): Promise<string> {
    return this.keys.sign(claims, header);
  }

  publicJwks(): PublicJwks {
    return this.keys.publicJwks();
  }

  get kid(): string {
    return this.keys.kid;
  }

  agent(agentId: string): AgentRecord | undefined {
    return this.agents.get(agentId);
  }

  agentList(): AgentRecord[] {
    return this.agents.list();
  }

  job(jobId: string): JobRecord | undefined {
    return this.jobs.get(jobId);
  }

  session(sessionId: string): SessionRecord | undefined {
    return this.sessions.get(sessionId);
  }

  /** Resolve with the next `event` payload that satisfies `predicate`; reject after timeoutMs. */
  waitFor<K extends DevEventName>(
    event: K,
    predicate: (payload: DevEventPayloads[K]) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<DevEventPayloads[K]> {
    // An untyped view of this emitter: the typed overloads do not accept a generic K.
    const emitter = this as unknown as EventEmitter;
    return new Promise((resolve, reject) => {
      const listener = (payload: DevEventPayloads[K]): void => {
        if (!predicate(payload)) return;
        clearTimeout(timer);
        emitter.off(event, listener);
        resolve(payload);
      };
      const timer = setTimeout(() => {
        emitter.off(event, listener);
        reject(new Error(`dev control plane: no matching "${event}" event within ${timeoutMs} ms`));
      }, timeoutMs);
      emitter.on(event, listener);
    });
  }

  /** Stop: fail waiting requests, drop every agent connection, close the port. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.jobs.close();
      this.sessions.stop();
      await this.agents.close();
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
      this.log.info('dev control plane stopped');
    })();
    return this.closed;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    if (applyCors(req, res, this.origins)) return;
    route(this.routes, req, res).catch((err: unknown) => {
      const httpErr =
        err instanceof HttpError
          ? err
          : new HttpError(
              500,
              'AEGIS_ERR_INTERNAL',
              `The dev control plane failed: ${(err as Error).message}.`,
            );
      if (httpErr.status >= 500 && !(err instanceof HttpError))
        this.log.error({ err }, 'request failed');
      else
        this.log.debug(
          { status: httpErr.status, code: httpErr.code, path: req.url },
          'request refused',
        );
      if (httpErr.status === 413) res.setHeader('connection', 'close');
      sendError(res, httpErr);
    });
  }
}

function secretsOf(o: DevControlPlaneOptions): string[] {
  return [
    o.agentAuthSecret,
    ...(o.mcpAuthSecret !== undefined ? [o.mcpAuthSecret] : []),
    ...(o.turn !== undefined ? [o.turn.secret] : []),
  ];
}
