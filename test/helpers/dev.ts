// Test helpers for the dev control plane: fake agents over a real `ws` connection with real
// HS256 tokens, and a frame inbox tests wait on (no sleeps).
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { WebSocket, type ClientOptions } from 'ws';
import {
  parseControlMessage,
  PROTOCOL_VERSION,
  type AgentMessage,
  type ControlMessage,
  type Msg,
} from '../../src/control/messages.js';
import type { DevControlPlane } from '../../src/dev/index.js';

export const SECRET = 'test-agent-secret-0123456789';

export interface TokenOptions {
  secret?: string;
  typ?: string;
  aud?: string;
  ttlS?: number;
  iatOffsetS?: number;
}

export function agentToken(sub: string, o: TokenOptions = {}): Promise<string> {
  const iat = Math.floor(Date.now() / 1000) + (o.iatOffsetS ?? 0);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: o.typ ?? 'aegis-agent+jwt' })
    .setSubject(sub)
    .setAudience(o.aud ?? 'aegis-control')
    .setIssuedAt(iat)
    .setExpirationTime(iat + (o.ttlS ?? 60))
    .setJti(randomUUID())
    .sign(new TextEncoder().encode(o.secret ?? SECRET));
}

export function wsUrl(plane: DevControlPlane): string {
  return `${plane.url.replace(/^http/, 'ws')}/agent/v1/ws`;
}

type Hello = Msg<AgentMessage, 'hello'>;

export function helloFor(agentId: string, over: Partial<Omit<Hello, 'type'>> = {}): Hello {
  return {
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    agent_id: agentId,
    version: '0.1.0-test',
    hostname: `${agentId}.test`,
    toolchains: [
      { id: 'idf-5.3.1', idf_version: '5.3.1', targets: ['esp32', 'esp32c3', 'esp32s3'] },
    ],
    capacity: { max_jobs: 4, running: 0 },
    jobs: [],
    labels: {},
    draining: false,
    ...over,
  };
}

/** The result of an upgrade the server refused before switching protocols. */
export function refusedUpgrade(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', () => undefined);
  });
}

type Waiter = { match: (f: ControlMessage) => boolean; resolve: (f: ControlMessage) => void };

/** A fake agent: a real WebSocket client that records every frame the plane sends it. */
export class FakeAgent {
  readonly inbox: ControlMessage[] = [];
  readonly raw: string[] = [];
  private waiters: Waiter[] = [];
  closed: Promise<{ code: number; reason: string }>;

  private constructor(
    readonly id: string,
    readonly ws: WebSocket,
  ) {
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      this.raw.push(text);
      const parsed = parseControlMessage(text);
      if (parsed.kind !== 'ok') return;
      const frame = parsed.message;
      const i = this.waiters.findIndex((w) => w.match(frame));
      const waiter = this.waiters[i];
      if (waiter) {
        this.waiters.splice(i, 1);
        waiter.resolve(frame);
      } else {
        this.inbox.push(frame);
      }
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  /** Open the socket (token signed for `id` unless `token` is given); no hello yet. */
  static async open(
    plane: DevControlPlane,
    id: string,
    token?: string,
    options: ClientOptions = {},
  ): Promise<FakeAgent> {
    const ws = new WebSocket(wsUrl(plane), {
      ...options,
      headers: { authorization: `Bearer ${token ?? (await agentToken(id))}` },
    });
    const agent = new FakeAgent(id, ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return agent;
  }

  /** Open, send hello, and wait for welcome. */
  static async connect(
    plane: DevControlPlane,
    id: string,
    over: Partial<Omit<Hello, 'type'>> = {},
  ): Promise<FakeAgent> {
    const agent = await FakeAgent.open(plane, id);
    const welcome = agent.next('welcome');
    agent.send(helloFor(id, over));
    await welcome;
    return agent;
  }

  send(frame: AgentMessage | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next frame of `type` (already received and not yet taken, or still to come). */
  next<T extends ControlMessage['type']>(
    type: T,
    predicate: (f: Msg<ControlMessage, T>) => boolean = () => true,
    timeoutMs = 5_000,
  ): Promise<Msg<ControlMessage, T>> {
    const match = (f: ControlMessage): boolean =>
      f.type === type && predicate(f as Msg<ControlMessage, T>);
    const i = this.inbox.findIndex(match);
    const found = this.inbox[i];
    if (found) {
      this.inbox.splice(i, 1);
      return Promise.resolve(found as Msg<ControlMessage, T>);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f as Msg<ControlMessage, T>);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`agent ${this.id}: no ${type} frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Frames of `type` received and not taken by next(). */
  pending<T extends ControlMessage['type']>(type: T): Msg<ControlMessage, T>[] {
    return this.inbox.filter((f) => f.type === type) as Msg<ControlMessage, T>[];
  }

  /**
   * Everything the plane sent this agent before now has arrived: the plane sends a marker ack
   * and frames on one connection arrive in order.
   */
  async barrier(plane: DevControlPlane): Promise<void> {
    const seq = 1_000_000_000 + Math.floor(Math.random() * 1_000_000);
    const marker = this.next('ack', (a) => a.seq === seq);
    plane.sendToAgent(this.id, { type: 'ack', seq });
    await marker;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close();
    await this.closed;
  }
}

export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

export async function getJson<T = unknown>(url: string): Promise<{ status: number; json: T }> {
  const res = await fetch(url);
  return { status: res.status, json: (await res.json()) as T };
}
