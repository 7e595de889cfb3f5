// A userland UDP "long path" for tests and benchmarks: tc/netem is not available here, so
// delay, jitter, loss and a bandwidth bottleneck are emulated by a relay on loopback in the
// test process (WEBRTC-NOTES, "Emulating distance and relays here").
//
// Design: one relay = two UDP sockets, one per side, like a NAT in the middle of a path.
//
//   client ──► front socket (`port`) ══ forward lane ══► back socket (`backPort`) ──► target
//   client ◄── front socket          ◄═ reverse lane ══  back socket              ◄── target
//
// The client is told the target lives at 127.0.0.1:`port` (the target's candidates rewritten)
// and the target is told the client lives at 127.0.0.1:`backPort` (the client's candidates
// rewritten), so each side's ICE agent sees exactly the candidate it was given, with no
// peer-reflexive surprises, and neither knows the other's real address: no bypass is possible.
// The client's address is learned from the packets arriving at `port` (the latest source);
// the target is either given (`target`, or `setTarget()` once the answer is known) or learned
// the same way from the packets arriving at `backPort`. Packets with nowhere to go yet are
// dropped and counted (`unroutable`): ICE retransmits its checks.
//
// Each lane models a router: random loss on arrival, then a FIFO bottleneck drained by a token
// bucket (`bandwidthBytesPerSec`, depth `burstBytes`) whose queue is bounded
// (`queueLimitBytes`: a full queue drops the packet, tail drop), then the propagation delay
// (`delayMs` ± `jitterMs`). Departure times are computed on arrival (the bucket is
// deterministic), so no drain timer runs per lane; every packet held by the relay waits in one
// min-heap ordered by delivery time, served by a single timer that delivers every packet due
// due in one batch. Everything held is bounded (`maxHeldBytes`), and
// close() clears the timer, the heap and both sockets.
//
// With two libjuice peers (node-datachannel), one relay per peer connection:
//   const relay = await startUdpRelay({ delayMs: 250 });
//   offer  → answerer: throughRelay(offerSdp, { host: relay.host, port: relay.backPort })
//   answer → relay.setTarget(hostCandidate(answerSdp));
//            offerer: throughRelay(answerSdp, { host: relay.host, port: relay.port })
// Trickled candidates must not reach the other side unrewritten (rewriteCandidateLine), or ICE
// may pick a direct pair. libjuice binds its socket to every interface, so the target is the
// answer's own IPv4 host candidate.
import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';

export interface Addr {
  host: string;
  port: number;
}

export interface UdpRelayOptions {
  /** Where packets arriving at `port` go. Without it: set later with setTarget(), or learned from the first packet arriving at `backPort`. */
  target?: Addr;
  /** One-way propagation delay, applied in each direction. */
  delayMs: number;
  /** Up to this much extra delay per packet, uniform (packets may then be reordered, as with netem). */
  jitterMs?: number;
  /** Probability (0..1) that a packet is lost, each direction. */
  lossRate?: number;
  /** Bottleneck rate in each direction; unlimited when absent. */
  bandwidthBytesPerSec?: number;
  /** Token bucket depth: the burst that leaves at line rate. Default 2 × 1500 B. */
  burstBytes?: number;
  /**
   * Bytes waiting at the bottleneck, each direction; past it packets are dropped (tail drop).
   * Default 2 MiB: deeper than libdatachannel's 1 MiB SCTP send buffer, so an SCTP flow never
   * overflows it. Measured with a 256 KiB queue at 4 MB/s and 100 ms RTT: slow start overshoots
   * into hundreds of drops at once, and usrsctp then recovered at ~0.3 MB/s for 30 s and more.
   */
  queueLimitBytes?: number;
  /** Hard cap over every byte the relay holds (queues + delay line); past it packets are dropped. Default 64 MiB. */
  maxHeldBytes?: number;
  /** Address both sockets bind to. Default 127.0.0.1. */
  host?: string;
  /** SO_RCVBUF / SO_SNDBUF of both sockets (bursts are dropped with the defaults). Default 4 MiB. */
  socketBufferBytes?: number;
  /** Seed of the loss and jitter generator, so a run can be replayed. Default: random. */
  seed?: number;
}

export interface LaneStats {
  /** Packets and bytes that arrived at the relay in this direction. */
  packets: number;
  bytes: number;
  /** Packets and bytes handed to the far socket. */
  delivered: number;
  deliveredBytes: number;
  /** Dropped by the loss generator. */
  lost: number;
  /** Dropped because the bottleneck queue was full. */
  queueDrops: number;
  /** Dropped because the relay held maxHeldBytes already. */
  overflowDrops: number;
  /** Dropped because the far end's address was not known yet. */
  unroutable: number;
  /** Sends that failed (socket errors). */
  sendErrors: number;
  /** Most bytes seen waiting at the bottleneck at once. */
  maxQueuedBytes: number;
}

export interface RelayStats {
  /** Client (front) → target. */
  forward: LaneStats;
  /** Target → client (front). */
  reverse: LaneStats;
  /** Bytes held right now (queued or in the delay line), and the most ever held. */
  heldBytes: number;
  maxHeldBytes: number;
  /** The addresses learned or given so far. */
  client: Addr | undefined;
  target: Addr | undefined;
}

export interface UdpRelay {
  /** The front port: tell the client the target is at `host`:`port`. */
  readonly port: number;
  /** The back port: tell the target the client is at `host`:`backPort`. */
  readonly backPort: number;
  readonly host: string;
  /** Fixes where forward packets go (e.g. once the answer names the target's port). */
  setTarget(target: Addr): void;
  stats(): RelayStats;
  /** Resolves once `pred(stats())` holds, re-checked on every packet in or out; rejects after `timeoutMs`. */
  until(pred: (stats: RelayStats) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves once the relay holds no packet (immediately when it holds none). */
  drained(timeoutMs?: number): Promise<void>;
  /** Drops everything held, stops the timer, closes both sockets. Idempotent. */
  close(): Promise<void>;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** A small seeded generator (mulberry32): uniform in [0, 1). */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Packet {
  at: number;
  seq: number;
  data: Buffer;
  to: Addr;
  lane: Lane;
}

/** A binary min-heap of packets by (delivery time, arrival order). */
class PacketHeap {
  readonly #items: Packet[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): Packet | undefined {
    return this.#items[0];
  }

  clear(): void {
    this.#items.length = 0;
  }

  static #before(a: Packet, b: Packet): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  push(p: Packet): void {
    const items = this.#items;
    items.push(p);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const up = items[parent] as Packet;
      if (!PacketHeap.#before(p, up)) break;
      items[i] = up;
      i = parent;
    }
    items[i] = p;
  }

  pop(): Packet | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    const n = items.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && PacketHeap.#before(items[r] as Packet, items[l] as Packet) ? r : l;
      const c = items[child] as Packet;
      if (!PacketHeap.#before(c, last)) break;
      items[i] = c;
      i = child;
    }
    items[i] = last;
    return top;
  }
}

function emptyLane(): LaneStats {
  return {
    packets: 0,
    bytes: 0,
    delivered: 0,
    deliveredBytes: 0,
    lost: 0,
    queueDrops: 0,
    overflowDrops: 0,
    unroutable: 0,
    sendErrors: 0,
    maxQueuedBytes: 0,
  };
}

/** One direction: loss, the token-bucket bottleneck and its bounded FIFO. */
class Lane {
  readonly stats = emptyLane();
  readonly out: dgram.Socket;
  readonly #rate: number | undefined;
  readonly #burst: number;
  readonly #queueLimit: number;
  #tokens: number;
  #tokensAt = 0;
  #lastDepart = 0;
  /** Departure times and sizes of the packets still at the bottleneck (monotonic times). */
  #departs: number[] = [];
  #sizes: number[] = [];
  #head = 0;
  #queued = 0;

  constructor(out: dgram.Socket, rate: number | undefined, burst: number, queueLimit: number) {
    this.out = out;
    this.#rate = rate;
    this.#burst = burst;
    this.#queueLimit = queueLimit;
    this.#tokens = burst;
  }

  /** The time `size` bytes arriving at `now` leave the bottleneck, or undefined when the queue is full. */
  depart(now: number, size: number): number | undefined {
    const rate = this.#rate;
    if (rate === undefined) return now;
    // Packets that have left by now no longer occupy the queue.
    while (this.#head < this.#departs.length && (this.#departs[this.#head] as number) <= now) {
      this.#queued -= this.#sizes[this.#head] as number;
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#departs.length) {
      this.#departs = this.#departs.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
    if (this.#queued + size > this.#queueLimit) return undefined;
    // FIFO: this packet starts once the previous one left; the bucket refills meanwhile.
    const t = Math.max(now, this.#lastDepart);
    this.#tokens = Math.min(this.#burst, this.#tokens + ((t - this.#tokensAt) * rate) / 1000);
    this.#tokensAt = t;
    let at = t;
    if (this.#tokens >= size) {
      this.#tokens -= size;
    } else {
      at = t + ((size - this.#tokens) * 1000) / rate;
      this.#tokens = 0;
      this.#tokensAt = at;
    }
    this.#lastDepart = at;
    if (at > now) {
      this.#departs.push(at);
      this.#sizes.push(size);
      this.#queued += size;
      if (this.#queued > this.stats.maxQueuedBytes) this.stats.maxQueuedBytes = this.#queued;
    }
    return at;
  }
}

function bind(socket: dgram.Socket, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, host, () => {
      socket.off('error', reject);
      resolve(socket.address().port);
    });
  });
}

export async function startUdpRelay(options: UdpRelayOptions): Promise<UdpRelay> {
  const host = options.host ?? '127.0.0.1';
  const bufferBytes = options.socketBufferBytes ?? 4 * MiB;
  const delayMs = options.delayMs;
  const jitterMs = options.jitterMs ?? 0;
  const lossRate = options.lossRate ?? 0;
  const maxHeld = options.maxHeldBytes ?? 64 * MiB;
  const burst = Math.max(options.burstBytes ?? 3000, 1500);
  const queueLimit = options.queueLimitBytes ?? 2 * MiB;
  if (!(delayMs >= 0) || !(jitterMs >= 0)) throw new Error('delayMs and jitterMs must be ≥ 0');
  if (!(lossRate >= 0 && lossRate <= 1)) throw new Error('lossRate must lie in [0, 1]');
  if (options.bandwidthBytesPerSec !== undefined && !(options.bandwidthBytesPerSec > 0))
    throw new Error('bandwidthBytesPerSec must be > 0');
  const random = generator(options.seed ?? Math.floor(Math.random() * 2 ** 32));

  const socket = () =>
    dgram.createSocket({
      type: 'udp4',
      recvBufferSize: bufferBytes,
      sendBufferSize: bufferBytes,
    });
  const front = socket();
  const back = socket();
  let port: number;
  let backPort: number;
  try {
    port = await bind(front, host);
    backPort = await bind(back, host);
  } catch (err) {
    front.close();
    back.close();
    throw err;
  }

  const forward = new Lane(back, options.bandwidthBytesPerSec, burst, queueLimit);
  const reverse = new Lane(front, options.bandwidthBytesPerSec, burst, queueLimit);
  const heap = new PacketHeap();
  let target: Addr | undefined = options.target && { ...options.target };
  let targetFixed = target !== undefined;
  let client: Addr | undefined;
  let held = 0;
  let maxHeldSeen = 0;
  let seq = 0;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Infinity;
  let closed = false;
  const listeners = new Set<() => void>();
  const notify = () => {
    for (const fn of [...listeners]) fn();
  };

  const deliverDue = () => {
    timer = undefined;
    timerAt = Infinity;
    if (closed) return;
    // Everything due now leaves in one batch (a fraction of a millisecond of slack: libuv's
    // clock counts whole milliseconds, so a timer may fire a little before its due time).
    const horizon = performance.now() + 0.2;
    for (;;) {
      const p = heap.peek();
      if (p === undefined || p.at > horizon) break;
      heap.pop();
      held -= p.data.length;
      const stats = p.lane.stats;
      stats.delivered++;
      stats.deliveredBytes += p.data.length;
      p.lane.out.send(p.data, p.to.port, p.to.host, (err) => {
        if (err) stats.sendErrors++;
      });
    }
    arm();
    notify();
  };

  const arm = () => {
    const next = heap.peek();
    if (next === undefined || closed) return;
    if (timer !== undefined && timerAt <= next.at) return;
    if (timer !== undefined) clearTimeout(timer);
    timerAt = next.at;
    timer = setTimeout(deliverDue, Math.max(0, Math.ceil(next.at - performance.now())));
  };

  const accept = (lane: Lane, data: Buffer, to: Addr | undefined) => {
    admit(lane, data, to);
    if (listeners.size > 0) notify();
  };

  const admit = (lane: Lane, data: Buffer, to: Addr | undefined) => {
    const stats = lane.stats;
    stats.packets++;
    stats.bytes += data.length;
    if (to === undefined) {
      stats.unroutable++;
      return;
    }
    if (lossRate > 0 && random() < lossRate) {
      stats.lost++;
      return;
    }
    if (held + data.length > maxHeld) {
      stats.overflowDrops++;
      return;
    }
    const now = performance.now();
    const departs = lane.depart(now, data.length);
    if (departs === undefined) {
      stats.queueDrops++;
      return;
    }
    const at = departs + delayMs + (jitterMs > 0 ? random() * jitterMs : 0);
    held += data.length;
    if (held > maxHeldSeen) maxHeldSeen = held;
    heap.push({ at, seq: seq++, data, to, lane });
    arm();
  };

  front.on('message', (data, rinfo) => {
    if (closed) return;
    if (client === undefined || client.port !== rinfo.port || client.host !== rinfo.address)
      client = { host: rinfo.address, port: rinfo.port };
    accept(forward, data, target);
  });
  back.on('message', (data, rinfo) => {
    if (closed) return;
    if (!targetFixed && (target?.port !== rinfo.port || target.host !== rinfo.address))
      target = { host: rinfo.address, port: rinfo.port };
    accept(reverse, data, client);
  });
  // Errors reach the socket when a send had no callback, or from the OS (ICMP unreachable):
  // counted, never thrown at the test process.
  front.on('error', () => {
    reverse.stats.sendErrors++;
  });
  back.on('error', () => {
    forward.stats.sendErrors++;
  });

  const api: UdpRelay = {
    port,
    backPort,
    host,
    setTarget(addr) {
      target = { ...addr };
      targetFixed = true;
    },
    stats: () => ({
      forward: { ...forward.stats },
      reverse: { ...reverse.stats },
      heldBytes: held,
      maxHeldBytes: maxHeldSeen,
      client: client && { ...client },
      target: target && { ...target },
    }),
    until(pred, timeoutMs = 10_000) {
      if (pred(api.stats())) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (!closed && !pred(api.stats())) return;
          clearTimeout(t);
          listeners.delete(check);
          if (closed) reject(new Error('the relay closed'));
          else resolve();
        };
        const t = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(
              `relay condition not met after ${timeoutMs} ms: ${JSON.stringify(api.stats())}`,
            ),
          );
        }, timeoutMs);
        listeners.add(check);
      });
    },
    drained(timeoutMs = 10_000) {
      return api.until((st) => st.heldBytes === 0, timeoutMs);
    },
    async close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      heap.clear();
      held = 0;
      notify();
      listeners.clear();
      await Promise.all(
        [front, back].map(
          (s) =>
            new Promise<void>((resolve) => {
              try {
                s.close(() => resolve());
              } catch {
                resolve();
              }
            }),
        ),
      );
    },
  };
  return api;
}

// ---- SDP candidate rewriting -------------------------------------------------------------

export interface Candidate {
  /** The whole line, as found (with its `a=` prefix when it had one). */
  line: string;
  foundation: string;
  component: number;
  transport: string;
  priority: number;
  host: string;
  port: number;
  type: string;
}

const CANDIDATE = /^(a=)?candidate:(\S+) (\d+) (\S+) (\d+) (\S+) (\d+) typ (\S+)(.*)$/i;

/** Parses one candidate line (`a=candidate:…` or `candidate:…`); undefined when it is not one. */
export function parseCandidate(line: string): Candidate | undefined {
  const m = CANDIDATE.exec(line.trim());
  if (!m) return undefined;
  return {
    line: line.trim(),
    foundation: m[2] as string,
    component: Number(m[3]),
    transport: m[4] as string,
    priority: Number(m[5]),
    host: m[6] as string,
    port: Number(m[7]),
    type: (m[8] as string).toLowerCase(),
  };
}

/** Every candidate of `sdp`, in order. */
export function parseCandidates(sdp: string): Candidate[] {
  return sdp.split(/\r?\n/).flatMap((l) => {
    const c = parseCandidate(l);
    return c ? [c] : [];
  });
}

/** The first UDP IPv4 host candidate of `sdp`: where that peer's ICE agent listens. */
export function hostCandidate(sdp: string): Addr {
  const c = parseCandidates(sdp).find(
    (x) =>
      x.type === 'host' && x.transport.toUpperCase() === 'UDP' && /^\d+(\.\d+){3}$/.test(x.host),
  );
  if (!c) throw new Error('the SDP has no UDP IPv4 host candidate');
  return { host: c.host, port: c.port };
}

/** What a candidate becomes: a new address, or null to drop it. */
export type CandidateMapping = (c: Candidate) => Addr | null;

/** One candidate line rewritten by `mapping` (for trickled candidates); null when dropped. */
export function rewriteCandidateLine(line: string, mapping: CandidateMapping): string | null {
  const c = parseCandidate(line);
  if (!c) return line;
  const to = mapping(c);
  if (to === null) return null;
  const m = CANDIDATE.exec(c.line) as RegExpExecArray;
  return `${m[1] ?? ''}candidate:${c.foundation} ${c.component} ${c.transport} ${c.priority} ${to.host} ${to.port} typ ${m[8] as string}${m[9] as string}`;
}

/**
 * Rewrites every candidate of `sdp` through `mapping` (null drops it). The default candidate
 * (the `m=` port and `c=` address of the section) follows the first candidate left, so
 * nothing in the SDP still names an address the other side must not reach.
 */
export function rewriteCandidates(sdp: string, mapping: CandidateMapping): string {
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const lines = sdp.split(/\r?\n/);
  const out: string[] = [];
  let first: Addr | undefined;
  for (const line of lines) {
    const c = parseCandidate(line);
    if (!c) {
      out.push(line);
      continue;
    }
    const rewritten = rewriteCandidateLine(line, mapping);
    if (rewritten === null) continue;
    if (first === undefined) first = parseCandidate(rewritten);
    out.push(rewritten);
  }
  if (first === undefined) return out.join(eol);
  const def = first;
  const family = def.host.includes(':') ? 'IP6' : 'IP4';
  return out
    .map((line) => {
      if (/^m=application \d+ /.test(line))
        return line.replace(/^m=application \d+ /, `m=application ${def.port} `);
      if (/^c=IN IP[46] /.test(line)) return `c=IN ${family} ${def.host}`;
      return line;
    })
    .join(eol);
}

/**
 * `sdp` as seen through a relay: its first UDP IPv4 host candidate becomes `via`, every other
 * candidate is dropped (an IPv6 or second interface candidate would let ICE go around it).
 */
export function throughRelay(sdp: string, via: Addr): string {
  const keep = hostCandidate(sdp);
  let used = false;
  return rewriteCandidates(sdp, (c) => {
    if (used || c.host !== keep.host || c.port !== keep.port || c.type !== 'host') return null;
    used = true;
    return via;
  });
}
