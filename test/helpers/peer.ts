// A raw node-datachannel offerer for the webrtc tests (the client side: it creates every data
// channel and the offer), a signaling recorder standing in for the control link, and a harness
// that wires a real session manager to real grants (test signer + local JWKS).
import { createHash, randomUUID } from 'node:crypto';
import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import { createLocalJWKSet } from 'jose';
import type { AgentConfig } from '../../src/config/index.js';
import type { AgentMessage } from '../../src/control/messages.js';
import { createGrantVerifier } from '../../src/grants/index.js';
import { createLogger, type Logger } from '../../src/log/index.js';
import { splitCandidates } from '../../src/client/sdp.js';
import type { SessionJob } from '../../src/webrtc/job-access.js';
import { createSessionManager, type SessionManager } from '../../src/webrtc/manager.js';
import { createTestSigner, grantConfig, type Claims, type TestSigner } from './grants.js';
import { createLogSink, type LogSink } from './log-sink.js';

export type Json = Record<string, unknown>;

export type Event = { kind: 'text'; frame: Json } | { kind: 'binary'; data: Buffer };

/** Polls `pred` on every event; rejects after `timeoutMs`. */
function waiter<T>(
  check: () => T | undefined,
  subscribe: (fn: () => void) => () => void,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const now = check();
  if (now !== undefined) return Promise.resolve(now);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const unsubscribe = subscribe(() => {
      const value = check();
      if (value === undefined) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}

export class TestChannel {
  readonly label: string;
  readonly dc: DataChannel;
  readonly events: Event[] = [];
  /** Binary bytes received, in order (kept unless `keepBinary` is false). */
  readonly chunks: Buffer[] = [];
  binaryBytes = 0;
  readonly hash = createHash('sha256');
  keepBinary = true;
  isOpen = false;
  isClosed = false;
  readonly #listeners = new Set<() => void>();

  constructor(dc: DataChannel) {
    this.dc = dc;
    this.label = dc.getLabel();
    const emit = () => {
      for (const fn of [...this.#listeners]) fn();
    };
    // Test callbacks must not throw either: an exception here aborts the process (node-datachannel#187).
    dc.onOpen(() => {
      this.isOpen = true;
      emit();
    });
    dc.onClosed(() => {
      this.isClosed = true;
      emit();
    });
    dc.onMessage((msg) => {
      try {
        if (typeof msg === 'string') {
          this.events.push({ kind: 'text', frame: JSON.parse(msg) as Json });
        } else {
          const data = Buffer.isBuffer(msg) ? msg : Buffer.from(msg);
          this.binaryBytes += data.length;
          this.hash.update(data);
          if (this.keepBinary) this.chunks.push(data);
          this.events.push({ kind: 'binary', data: this.keepBinary ? data : Buffer.alloc(0) });
        }
      } catch (err) {
        console.error('test channel message failed', err);
      }
      emit();
    });
  }

  #on(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  frames(): Json[] {
    return this.events.flatMap((e) => (e.kind === 'text' ? [e.frame] : []));
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  opened(timeoutMs = 10_000): Promise<true> {
    return waiter(
      () => this.isOpen || undefined,
      (fn) => this.#on(fn),
      timeoutMs,
      `${this.label} open`,
    );
  }

  closed(timeoutMs = 10_000): Promise<true> {
    return waiter(
      () => this.isClosed || undefined,
      (fn) => this.#on(fn),
      timeoutMs,
      `${this.label} closed`,
    );
  }

  /** The first frame (received before or after the call) matching `pred`. */
  frame(pred: (f: Json) => boolean, timeoutMs = 10_000): Promise<Json> {
    return waiter(
      () => this.frames().find(pred),
      (fn) => this.#on(fn),
      timeoutMs,
      `a frame on ${this.label}`,
    );
  }

  /** Waits for a frame of `type` (the n-th one, counting from 0). */
  frameOf(type: string, nth = 0, timeoutMs = 10_000): Promise<Json> {
    return waiter(
      () => this.frames().filter((f) => f['type'] === type)[nth],
      (fn) => this.#on(fn),
      timeoutMs,
      `frame ${type} #${nth} on ${this.label}`,
    );
  }

  /** Waits until `count()` frames match. */
  countOf(pred: (f: Json) => boolean, count: number, timeoutMs = 10_000): Promise<number> {
    return waiter(
      () => {
        const n = this.frames().filter(pred).length;
        return n >= count ? n : undefined;
      },
      (fn) => this.#on(fn),
      timeoutMs,
      `${count} frames on ${this.label}`,
    );
  }

  binaryAtLeast(n: number, timeoutMs = 10_000): Promise<number> {
    return waiter(
      () => (this.binaryBytes >= n ? this.binaryBytes : undefined),
      (fn) => this.#on(fn),
      timeoutMs,
      `${n} binary bytes on ${this.label}`,
    );
  }

  json(frame: Json): void {
    this.dc.sendMessage(JSON.stringify(frame));
  }

  text(text: string): void {
    this.dc.sendMessage(text);
  }

  binary(data: Buffer): void {
    this.dc.sendMessageBinary(data);
  }
}

export class TestOfferer {
  readonly pc: PeerConnection;
  readonly channels: TestChannel[] = [];
  state = 'new';

  constructor(labels: readonly string[]) {
    this.pc = new nodeDataChannel.PeerConnection(`client-${randomUUID().slice(0, 8)}`, {
      iceServers: [],
    });
    this.pc.onStateChange((s) => {
      this.state = s;
    });
    for (const label of labels) this.add(label);
  }

  add(label: string): TestChannel {
    const ch = new TestChannel(this.pc.createDataChannel(label));
    this.channels.push(ch);
    return ch;
  }

  channel(label: string, nth = 0): TestChannel {
    const ch = this.channels.filter((c) => c.label === label)[nth];
    if (!ch) throw new Error(`no ${label} channel #${nth}`);
    return ch;
  }

  /** The offer with every local candidate (gathering is polled: its callback may fire early). */
  offer(timeoutMs = 10_000): Promise<string> {
    return waiter(
      () => {
        if (this.pc.gatheringState() !== 'complete') return undefined;
        return this.pc.localDescription()?.sdp;
      },
      (fn) => {
        const t = setInterval(fn, 5);
        return () => clearInterval(t);
      },
      timeoutMs,
      'the offer',
    );
  }

  applyAnswer(sdp: string): void {
    this.pc.setRemoteDescription(sdp, 'answer');
  }

  close(): void {
    for (const ch of this.channels) {
      try {
        ch.dc.close();
      } catch {
        // already closed
      }
    }
    this.pc.close();
  }
}

/** The control link as the manager sees it: records every frame. */
export class Signal {
  readonly frames: AgentMessage[] = [];
  readonly #listeners = new Set<() => void>();
  up = true;

  readonly send = (frame: AgentMessage): boolean => {
    this.frames.push(frame);
    for (const fn of [...this.#listeners]) fn();
    return this.up;
  };

  wait(pred: (f: AgentMessage) => boolean, timeoutMs = 10_000): Promise<AgentMessage> {
    return waiter(
      () => this.frames.find(pred),
      (fn) => {
        this.#listeners.add(fn);
        return () => this.#listeners.delete(fn);
      },
      timeoutMs,
      'a signaling frame',
    );
  }

  forSession(id: string): AgentMessage[] {
    return this.frames.filter((f) => 'session_id' in f && f.session_id === id);
  }
}

export interface HarnessOptions {
  env?: Record<string, string>;
  jobs: readonly SessionJob[];
  maxProtocolErrors?: number;
}

export type Opened =
  | { kind: 'answer'; id: string; offerer: TestOfferer; sdp: string }
  | { kind: 'rejected'; id: string; code: string; message: string };

export interface Harness {
  signer: TestSigner;
  sink: LogSink;
  log: Logger;
  config: AgentConfig;
  manager: SessionManager;
  signal: Signal;
  offerers: TestOfferer[];
  jobs: Map<string, SessionJob>;
  grant(claims?: Claims): Promise<string>;
  /** Offer → manager → answer applied (or the rejection). */
  open(opts: {
    labels: readonly string[];
    grant?: string;
    claims?: Claims;
    jobId?: string;
    applyAnswer?: boolean;
  }): Promise<Opened>;
  /** Opens and expects an answer; waits until every channel is open. */
  connect(
    labels: readonly string[],
    claims?: Claims,
  ): Promise<{ id: string; offerer: TestOfferer }>;
  closeOfferers(): void;
}

export async function createHarness(opts: HarnessOptions): Promise<Harness> {
  const signer = await createTestSigner();
  const sink = createLogSink();
  const log = createLogger({ destination: sink, level: 'debug' });
  const config = grantConfig({ ICE_TIMEOUT_S: '5', ...opts.env });
  const jobs = new Map(opts.jobs.map((j) => [j.jobId, j]));
  const verifier = await createGrantVerifier({
    config,
    log,
    lookupJob: (id) => {
      const job = jobs.get(id);
      return job && { target: job.target };
    },
    skewMs: () => undefined,
    keys: createLocalJWKSet(signer.jwks),
  });
  const signal = new Signal();
  const manager = createSessionManager({
    config,
    log,
    verifier,
    jobs: { lookup: (id) => jobs.get(id) },
    send: signal.send,
    iceServers: () => [],
    ...(opts.maxProtocolErrors === undefined ? {} : { maxProtocolErrors: opts.maxProtocolErrors }),
  });
  const offerers: TestOfferer[] = [];
  const h: Harness = {
    signer,
    sink,
    log,
    config,
    manager,
    signal,
    offerers,
    jobs,
    grant: (claims = {}) => signer.sign(claims),
    async open({ labels, grant, claims, jobId, applyAnswer = true }) {
      const id = `s-${randomUUID().slice(0, 12)}`;
      const token = grant ?? (await signer.sign(claims));
      const offerer = new TestOfferer(labels);
      offerers.push(offerer);
      // As the reference client does (src/client/sdp.ts): the offer without candidates, and
      // the candidates trickled once the answer is applied, or the agent's ICE checks can
      // connect us before we hold its fingerprint and DTLS fails.
      const offer = splitCandidates(await offerer.offer());
      await manager.onOffer({
        type: 'session.offer',
        session_id: id,
        job_id: jobId ?? (typeof claims?.['job'] === 'string' ? claims['job'] : 'job-1'),
        grant: token,
        sdp: offer.sdp,
      });
      const reply = await signal.wait(
        (f) =>
          (f.type === 'session.answer' || f.type === 'session.rejected') && f.session_id === id,
      );
      if (reply.type === 'session.answer') {
        if (applyAnswer) {
          offerer.applyAnswer(reply.sdp);
          for (const c of offer.candidates) {
            manager.onCandidate({
              type: 'session.candidate',
              session_id: id,
              candidate: c.candidate,
              mid: c.mid,
            });
          }
        }
        return { kind: 'answer', id, offerer, sdp: reply.sdp };
      }
      offerer.close();
      if (reply.type !== 'session.rejected') throw new Error('unexpected reply');
      return { kind: 'rejected', id, code: reply.code, message: reply.message };
    },
    async connect(labels, claims) {
      const opened = await h.open({ labels, ...(claims ? { claims } : {}) });
      if (opened.kind !== 'answer') throw new Error(`rejected: ${opened.code} ${opened.message}`);
      await Promise.all(opened.offerer.channels.map((c) => c.opened()));
      return { id: opened.id, offerer: opened.offerer };
    },
    closeOfferers() {
      for (const o of offerers.splice(0)) o.close();
    },
  };
  return h;
}
