// The client side of the WebRTC benchmarks: the bench child (agent or raw) behind an IPC RPC,
// and the offerer in this process — the reference client's own ClientChannel / downloadArtifact
// for the agent, a bare node-datachannel channel for the raw baseline — optionally through a
// UDP delay relay (its candidates rewritten so every packet crosses it).
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import { ClientChannel } from '../src/client/channel.js';
import type { ChannelLabel } from '../src/grants/index.js';
import { hostCandidate, throughRelay, type UdpRelay } from '../test/helpers/udp-relay.js';
import { poll, withTimeout } from './lib.js';

const CHILD = path.join(import.meta.dirname, 'agent-child.js');

export class BenchChild {
  readonly proc: ChildProcess;
  readonly mode: 'agent' | 'raw';
  #next = 1;
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  #stderr = '';
  readonly ready: Promise<unknown>;
  #exited = false;

  private constructor(mode: 'agent' | 'raw') {
    this.mode = mode;
    this.proc = fork(CHILD, [mode], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.proc.stderr?.setEncoding('utf8');
    this.proc.stderr?.on('data', (d: string) => {
      this.#stderr = (this.#stderr + d).slice(-4000);
    });
    this.ready = new Promise((resolve, reject) => this.#pending.set(0, { resolve, reject }));
    this.proc.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`bench child (${this.mode}): ${m.error ?? '?'}`));
    });
    this.proc.on('exit', (code, signal) => {
      this.#exited = true;
      for (const p of this.#pending.values())
        p.reject(new Error(`bench child exited (${code ?? signal}): ${this.#stderr.slice(-1500)}`));
      this.#pending.clear();
    });
  }

  static async start(mode: 'agent' | 'raw'): Promise<BenchChild> {
    const c = new BenchChild(mode);
    await withTimeout(c.ready, 20_000, `the ${mode} bench child starting`);
    return c;
  }

  /** The end of what it wrote on stderr (warnings and errors of the agent's logger). */
  get stderrTail(): string {
    return this.#stderr;
  }

  get pid(): number {
    return this.proc.pid as number;
  }

  call<T = Record<string, unknown>>(
    op: string,
    args: Record<string, unknown> = {},
    timeoutMs = 30_000,
  ): Promise<T> {
    if (this.#exited) return Promise.reject(new Error(`bench child (${this.mode}) has exited`));
    const id = this.#next++;
    const p = new Promise<T>((resolve, reject) =>
      this.#pending.set(id, { resolve: (v) => resolve(v as T), reject }),
    );
    this.proc.send({ id, op, ...args });
    return withTimeout(p, timeoutMs, `bench child ${op}`);
  }

  /** Asks it to close everything and exit; kills it (by its pid) if it does not in time. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    try {
      await this.call('close', {}, 15_000);
    } catch {
      // Killed below.
    }
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

function gathered(pc: PeerConnection, timeoutMs = 10_000): Promise<string> {
  return poll(
    () => (pc.gatheringState() === 'complete' ? pc.localDescription()?.sdp : undefined),
    timeoutMs,
    'ICE gathering',
  );
}

/** Every peer connection and channel this process made: closed at the end, referenced until then. */
const everything: { pc: PeerConnection; dcs: DataChannel[] }[] = [];

export function closeAllPeers(): void {
  for (const { pc, dcs } of everything.splice(0)) {
    for (const dc of dcs) {
      try {
        dc.close();
      } catch {
        // already closed
      }
    }
    try {
      pc.close();
    } catch {
      // already closed
    }
  }
}

export interface Link {
  pc: PeerConnection;
  sessionId: string;
  close(): void;
}

async function negotiate(
  child: BenchChild,
  pc: PeerConnection,
  opts: { jobId: string; channels: readonly string[]; relay?: UdpRelay },
): Promise<string> {
  const offer = await gathered(pc);
  const relay = opts.relay;
  const sdp = relay ? throughRelay(offer, { host: relay.host, port: relay.backPort }) : offer;
  const answer = await child.call<{ sessionId: string; sdp: string }>('offer', {
    sdp,
    jobId: opts.jobId,
    channels: opts.channels,
  });
  if (relay) {
    relay.setTarget(hostCandidate(answer.sdp));
    pc.setRemoteDescription(
      throughRelay(answer.sdp, { host: relay.host, port: relay.port }),
      'answer',
    );
  } else {
    pc.setRemoteDescription(answer.sdp, 'answer');
  }
  return answer.sessionId;
}

function closer(pc: PeerConnection, dcs: DataChannel[]): () => void {
  return () => {
    for (const dc of dcs) {
      try {
        dc.close();
      } catch {
        // already closed
      }
    }
    try {
      pc.close();
    } catch {
      // already closed
    }
  };
}

/**
 * Once in a while libdatachannel refuses the answer ("Got a remote candidate without ICE
 * transport") on a fresh offerer; a second offerer, with a new session, goes through.
 */
async function twice<T>(what: string, attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt();
  } catch (err) {
    process.stderr.write(`  (${what}: ${(err as Error).message.split('\n')[0]}; retrying once)\n`);
    return attempt();
  }
}

type AgentLink<L extends ChannelLabel> = Link & {
  channel<K extends L>(label: K): ClientChannel<K>;
  problems: string[];
};

/** A session with the agent child, its channels wrapped in the reference client's ClientChannel. */
export function connectAgent<L extends ChannelLabel>(
  child: BenchChild,
  opts: { jobId: string; channels: readonly L[]; relay?: UdpRelay; openTimeoutMs?: number },
): Promise<AgentLink<L>> {
  return twice('connecting to the agent', () => connectAgentOnce(child, opts));
}

async function connectAgentOnce<L extends ChannelLabel>(
  child: BenchChild,
  opts: { jobId: string; channels: readonly L[]; relay?: UdpRelay; openTimeoutMs?: number },
): Promise<AgentLink<L>> {
  const pc = new nodeDataChannel.PeerConnection('bench-client', { iceServers: [] });
  const problems: string[] = [];
  const channels = new Map<L, ClientChannel<L>>();
  const dcs: DataChannel[] = [];
  for (const label of opts.channels) {
    const dc = pc.createDataChannel(label);
    dcs.push(dc);
    channels.set(label, new ClientChannel(label, dc, (why) => problems.push(why)));
  }
  everything.push({ pc, dcs });
  let sessionId: string;
  try {
    sessionId = await negotiate(child, pc, opts);
  } catch (err) {
    closer(pc, dcs)();
    throw err;
  }
  await Promise.all([...channels.values()].map((c) => c.waitOpen(opts.openTimeoutMs ?? 20_000)));
  return {
    pc,
    sessionId,
    problems,
    channel: <K extends L>(label: K) => channels.get(label) as unknown as ClientChannel<K>,
    close: closer(pc, dcs),
  };
}

type RawLink = Link & {
  fetch(file: string, size: number, cap: number, timeoutMs: number): Promise<number>;
};

/** A bare `bulk` channel to the raw child. */
export function connectRaw(
  child: BenchChild,
  opts: { relay?: UdpRelay; openTimeoutMs?: number },
): Promise<RawLink> {
  return twice('connecting to the raw peer', () => connectRawOnce(child, opts));
}

async function connectRawOnce(
  child: BenchChild,
  opts: { relay?: UdpRelay; openTimeoutMs?: number },
): Promise<RawLink> {
  const pc = new nodeDataChannel.PeerConnection('bench-raw-client', { iceServers: [] });
  const dc = pc.createDataChannel('bulk');
  everything.push({ pc, dcs: [dc] });
  let received = 0;
  let want = Infinity;
  let lastByteAt = 0;
  let onEnd: (() => void) | undefined;
  let open = false;
  dc.onOpen(() => {
    open = true;
  });
  dc.onMessage((msg) => {
    try {
      if (typeof msg === 'string') onEnd?.();
      else {
        received += msg.byteLength;
        if (received >= want && lastByteAt === 0) lastByteAt = performance.now();
      }
    } catch {
      // never throw inside a node-datachannel callback
    }
  });
  let sessionId: string;
  try {
    sessionId = await negotiate(child, pc, { jobId: 'raw', channels: ['bulk'], ...opts });
  } catch (err) {
    closer(pc, [dc])();
    throw err;
  }
  await poll(() => open || undefined, opts.openTimeoutMs ?? 20_000, 'the raw channel open');
  return {
    pc,
    sessionId,
    close: closer(pc, [dc]),
    /** Requests `file` and resolves with the ms from request to the last byte. */
    fetch(file, size, cap, timeoutMs) {
      received = 0;
      want = size;
      lastByteAt = 0;
      const started = performance.now();
      const done = new Promise<number>((resolve, reject) => {
        onEnd = () => {
          onEnd = undefined;
          if (received === size) resolve(lastByteAt - started);
          else reject(new Error(`raw transfer ended with ${received} of ${size} bytes`));
        };
      });
      dc.sendMessage(JSON.stringify({ type: 'get', path: file, cap }));
      return withTimeout(done, timeoutMs, 'the raw transfer');
    },
  };
}
