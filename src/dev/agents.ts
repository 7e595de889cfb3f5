// The agents' side of the dev plane (PROTOCOL §1): token check before the upgrade, hello →
// welcome, one live connection per agent id, liveness pings, and every frame parsed at the
// edge. Job and session frames are handed on; this file keeps only what an agent *is*.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import {
  encode,
  MAX_FRAME_BYTES,
  parseAgentMessage,
  type AgentMessage,
  type ControlMessage,
  type IceServer,
  type Msg,
} from '../control/messages.js';
import type { Logger } from '../log/index.js';
import { rejectUpgrade, verifyAgentToken } from './agent-auth.js';
import { applyStateFrame, originOf, recordFromHello } from './agent-record.js';
import type { AgentRecord, Emit } from './types.js';

export const AGENT_WS_PATH = '/agent/v1/ws';
/** A connection that sends no hello within this is closed (1008). */
export const HELLO_TIMEOUT_MS = 10_000;

/** Frames the registry hands to jobs and sessions. */
export type RoutedMessage = Msg<
  AgentMessage,
  | 'job.claim'
  | 'job.update'
  | 'session.answer'
  | 'session.candidate'
  | 'session.rejected'
  | 'session.closed'
>;

export interface AgentHooks {
  onMessage(agentId: string, message: RoutedMessage): void;
  /** Registered (reconnected: true), or something that decides offers changed (toolchains, draining, running). */
  onAvailable(agentId: string, reconnected: boolean): void;
  /** Its live connection closed. */
  onGone(agentId: string): void;
}

export interface AgentRegistryOptions {
  secret: string;
  heartbeatIntervalMs: number;
  iceServers: IceServer[];
  /** This plane's (possibly offset) clock, ms. */
  now: () => number;
  emit: Emit;
  log: Logger;
  hooks: AgentHooks;
}

interface Connection {
  ws: WebSocket;
  /** The token's sub: hello must name the same agent. */
  tokenSub: string;
  origin: string;
  agentId?: string;
  lastSeen: number;
  helloTimer: NodeJS.Timeout;
}

export class AgentRegistry {
  private readonly records = new Map<string, AgentRecord>();
  private readonly live = new Map<string, Connection>();
  private readonly all = new Set<Connection>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  private readonly secret: Uint8Array;
  private readonly pinger: NodeJS.Timeout;
  private closing = false;

  constructor(private readonly o: AgentRegistryOptions) {
    this.secret = new TextEncoder().encode(o.secret);
    this.pinger = setInterval(() => this.checkLiveness(), o.heartbeatIntervalMs);
    this.pinger.unref();
  }

  get(agentId: string): AgentRecord | undefined {
    return this.records.get(agentId);
  }

  list(): AgentRecord[] {
    return [...this.records.values()];
  }

  connectedCount(): number {
    return this.live.size;
  }

  /** Send a frame (or raw text, for tests) to the agent's live connection; false if none. */
  send(agentId: string, frame: ControlMessage | string): boolean {
    const conn = this.live.get(agentId);
    if (!conn || conn.ws.readyState !== conn.ws.OPEN) return false;
    conn.ws.send(typeof frame === 'string' ? frame : encode(frame));
    return true;
  }

  /** The `upgrade` event of the HTTP server, for AGENT_WS_PATH. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err) => this.o.log.debug({ err }, 'agent upgrade socket error'));
    if (this.closing) {
      rejectUpgrade(socket, 503, 'AEGIS_ERR_NO_AGENT', 'The control plane is shutting down.');
      return;
    }
    verifyAgentToken(req.headers.authorization, this.secret).then(
      (sub) => {
        if (socket.destroyed || this.closing) return;
        this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, sub, req));
      },
      (err: Error & { code?: string }) => {
        this.o.log.warn({ code: err.code, reason: err.message }, 'agent connection refused');
        rejectUpgrade(socket, 401, 'AEGIS_ERR_AUTH', err.message);
      },
    );
  }

  private accept(ws: WebSocket, tokenSub: string, req: IncomingMessage): void {
    const conn: Connection = {
      ws,
      tokenSub,
      origin: originOf(req.headers.host),
      lastSeen: Date.now(),
      helloTimer: setTimeout(() => ws.close(1008, 'no hello within 10 s'), HELLO_TIMEOUT_MS),
    };
    this.all.add(conn);
    ws.on('message', (data, isBinary) => this.onData(conn, data, isBinary));
    ws.on('pong', () => (conn.lastSeen = Date.now()));
    ws.on('error', (err) => this.o.log.debug({ err, agent: conn.agentId }, 'agent socket error'));
    ws.on('close', (code, reason) => this.onClose(conn, code, reason.toString()));
  }

  private onData(conn: Connection, data: RawData, isBinary: boolean): void {
    conn.lastSeen = Date.now();
    const agentId = conn.agentId;
    const parsed = isBinary
      ? ({
          kind: 'invalid',
          type: undefined,
          reason: 'binary frame (frames are JSON text)',
        } as const)
      : parseAgentMessage(toBuffer(data));
    if (parsed.kind === 'unknown') {
      this.o.log.debug({ agent: agentId, type: parsed.type }, 'unknown frame type ignored');
      this.o.emit('frame.unknown', { agent_id: agentId, type: parsed.type });
      return;
    }
    if (parsed.kind === 'invalid') {
      this.o.log.warn(
        { agent: agentId, type: parsed.type, reason: parsed.reason },
        'invalid frame dropped',
      );
      this.o.emit('frame.invalid', { agent_id: agentId, type: parsed.type, reason: parsed.reason });
      if (agentId === undefined) conn.ws.close(1008, 'the first frame must be a valid hello');
      return;
    }
    const msg = parsed.message;
    if (agentId === undefined) {
      if (msg.type !== 'hello') conn.ws.close(1008, 'the first frame must be hello');
      else this.register(conn, msg);
      return;
    }
    const record = this.records.get(agentId);
    if (!record || this.live.get(agentId) !== conn) return;
    record.last_seen = this.o.now();
    switch (msg.type) {
      case 'hello':
        this.o.log.warn({ agent: agentId }, 'second hello on one connection dropped');
        return;
      case 'heartbeat':
      case 'toolchains':
      case 'status':
        this.o.emit(applyStateFrame(record, msg, record.last_seen), agentId);
        this.o.hooks.onAvailable(agentId, false);
        return;
      case 'job.claim':
      case 'job.update':
      case 'session.answer':
      case 'session.candidate':
      case 'session.rejected':
      case 'session.closed':
        this.o.hooks.onMessage(agentId, msg);
        return;
    }
  }

  private register(conn: Connection, hello: Msg<AgentMessage, 'hello'>): void {
    if (hello.agent_id !== conn.tokenSub) {
      this.o.log.warn(
        { agent: hello.agent_id, sub: conn.tokenSub },
        'hello agent_id differs from the token',
      );
      conn.ws.close(1008, 'hello agent_id does not match the token sub');
      return;
    }
    clearTimeout(conn.helloTimer);
    const id = hello.agent_id;
    const previous = this.live.get(id);
    if (previous && previous !== conn) {
      this.o.log.info({ agent: id }, 'agent reconnected; closing its previous connection');
      previous.ws.close(1000, 'replaced by a newer connection of this agent');
    }
    const now = this.o.now();
    this.records.set(id, recordFromHello(hello, conn.origin, now));
    conn.agentId = id;
    this.live.set(id, conn);
    conn.ws.send(
      encode({
        type: 'welcome',
        agent_id: id,
        server_time: now,
        heartbeat_interval_ms: this.o.heartbeatIntervalMs,
        ice_servers: this.o.iceServers,
      }),
    );
    this.o.log.info(
      { agent: id, hostname: hello.hostname, toolchains: hello.toolchains.length },
      'agent connected',
    );
    this.o.emit('agent.connected', id);
    this.o.hooks.onAvailable(id, true);
  }

  private onClose(conn: Connection, code: number, reason: string): void {
    clearTimeout(conn.helloTimer);
    this.all.delete(conn);
    const id = conn.agentId;
    if (id === undefined || this.live.get(id) !== conn) return;
    this.live.delete(id);
    const record = this.records.get(id);
    if (record) {
      record.connected = false;
      record.last_seen = this.o.now();
    }
    this.o.log.info({ agent: id, code, reason }, 'agent disconnected');
    this.o.emit('agent.disconnected', id);
    this.o.hooks.onGone(id);
  }

  /** PROTOCOL §1 liveness: ping every interval; nothing heard for twice that → terminate. */
  private checkLiveness(): void {
    const now = Date.now();
    for (const conn of this.all) {
      if (now - conn.lastSeen > 2 * this.o.heartbeatIntervalMs) {
        this.o.log.warn(
          { agent: conn.agentId },
          'agent silent for two heartbeat intervals; terminating',
        );
        conn.ws.terminate();
      } else if (conn.ws.readyState === conn.ws.OPEN) {
        conn.ws.ping();
      }
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.pinger);
    for (const conn of this.all) conn.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
