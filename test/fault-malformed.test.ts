// Fault: 10 000 malformed frames on the control-plane WebSocket, then 10 000 malformed messages
// on the data channels, against the real daemon in a child process. Afterwards it is alive,
// still connected (it claims and builds a new job), and its resident memory grew by less than
// 20 MiB: RSS medians after a warm-up (a tenth of the flood) and after the flood, each sampled
// after a full GC forced through the inspector; the lazily-collected numbers are printed too.
//
// Every frame is accounted for, not just sent: the agent logs each invalid control frame at warn
// (AEGIS_ERR_PROTOCOL) and each frame of an unknown type at debug, and the test waits for both
// counts. A session is closed after 100 malformed messages (the manager's limit), so the data
// channel flood is 100 sessions of exactly 100 messages each, every one with a fresh grant for
// the same job; each must be closed for AEGIS_ERR_PROTOCOL with the agent's count at exactly 100.
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { requestGrant, type GrantResponse } from '../src/client/api.js';
import type { DevControlPlane } from '../src/dev/index.js';
import { connect, type Connection } from '../src/client/connection.js';
import { CHANNEL_LABELS, type ChannelLabel } from '../src/grants/index.js';
import { cleanupNodeDataChannel } from '../src/webrtc/ndc.js';
import { testEnv } from './helpers/agent-env.js';
import { EXAMPLES } from './helpers/agent.js';
import { spawnAgent, submitJob, type ChildAgent } from './helpers/child-agent.js';
import {
  alive,
  forceGc,
  INSPECTABLE,
  isConnectedLine,
  KiB,
  lineCounter,
  MiB,
  sampleRss,
  seededRandom,
  startPlane,
} from './helpers/fault.js';

const FRAMES = 10_000;
const MESSAGES = 10_000;
/** The session manager's limit: the 100th malformed message closes the session. */
const PER_SESSION = 100;
/** Sessions at once (MAX_SESSIONS_PER_JOB is 4). */
const LANES = 4;
const AGENT_ID = 'agent-flood';
const SEED = 0xf100d;
const RSS_LIMIT = 20 * MiB;

let plane: DevControlPlane;
let agent: ChildAgent;
const conns = new Set<Connection>();

beforeAll(async () => {
  plane = await startPlane();
  agent = spawnAgent(plane.url, testEnv({ AGENT_ID, ...INSPECTABLE }));
  await agent.waitLine(isConnectedLine);
});

afterAll(async () => {
  for (const c of conns) c.close();
  if (agent.proc.exitCode === null && agent.proc.signalCode === null) agent.proc.kill('SIGKILL');
  await agent.exited;
  await plane.close();
  cleanupNodeDataChannel();
});

type Rand = () => number;
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const long = (r: Rand, min: number, max: number) => 'x'.repeat(int(r, min, max));

/** What the agent does with a control-plane frame: drop it at warn, or ignore it at debug. */
type WsKind = 'invalid' | 'unknown';

/** One malformed control-plane frame (under 1 MiB), and how the agent must classify it. */
function wsFrame(r: Rand, i: number): { text: string; kind: WsKind } {
  const near1MiB = MiB - 4 * KiB;
  const choices: (() => { text: string; kind: WsKind })[] = [
    () => ({ text: `{not json ${i}`, kind: 'invalid' }),
    () => ({ text: '', kind: 'invalid' }),
    () => ({
      text: String.fromCharCode(...Array.from({ length: 64 }, () => int(r, 0, 0xffff))),
      kind: 'invalid',
    }),
    () => ({
      text: pick(r, ['[]', 'null', '42', '"job.offer"', 'true', `[${i}]`]),
      kind: 'invalid',
    }),
    () => ({
      text: pick(r, ['{}', '{"type":7}', '{"type":null}', '{"type":["ack"]}', '{"no":"type"}']),
      kind: 'invalid',
    }),
    () => ({
      text: JSON.stringify({ type: `x-unknown-${i}`, payload: long(r, 0, 2000) }),
      kind: 'unknown',
    }),
    () => ({ text: JSON.stringify({ type: long(r, 65, 5000) }), kind: 'unknown' }),
    // Known types with wrong field types.
    () => ({
      text: pick(r, [
        '{"type":"ack","seq":"1"}',
        '{"type":"ack","seq":-1}',
        '{"type":"ack","seq":1.5}',
        '{"type":"drain","extra":{"type":"x"}}'.replace('drain', 'job.taken'),
      ]),
      kind: 'invalid',
    }),
    () => ({
      text: JSON.stringify({ type: 'job.offer', job_id: 5, target: 'esp32c3', action: 'build' }),
      kind: 'invalid',
    }),
    () => ({
      text: JSON.stringify({ type: 'job.assigned', job_id: `job-${i}`, timeout_s: -1 }),
      kind: 'invalid',
    }),
    // Schema failures with long strings.
    () => ({
      text: JSON.stringify({
        type: 'job.cancel',
        job_id: `job-${i}`,
        reason: long(r, 1025, 60_000),
      }),
      kind: 'invalid',
    }),
    () => ({
      text: JSON.stringify({
        type: 'session.offer',
        session_id: `s-${i}`,
        job_id: `job-${i}`,
        grant: long(r, 8193, 30_000),
        sdp: 'v=0',
      }),
      kind: 'invalid',
    }),
    () => ({
      text: JSON.stringify({
        type: 'session.candidate',
        session_id: `s-${i}`,
        candidate: long(r, 2049, 20_000),
        mid: '0',
      }),
      kind: 'invalid',
    }),
    // Invalid ids: paths, separators, unicode, too long.
    () => ({
      text: JSON.stringify({
        type: pick(r, ['job.offer', 'job.taken', 'session.close']),
        job_id: pick(r, [
          '../../etc/passwd',
          '/abs',
          '.hidden',
          'a b',
          'job\u2024\u2024',
          'j'.repeat(129),
          '',
        ]),
        session_id: pick(r, ['../s', 's/1', '']),
        target: 'esp32c3',
        action: 'build',
      }),
      kind: 'invalid',
    }),
    () => ({
      text: JSON.stringify({
        type: 'job.offer',
        job_id: `job-${i}`,
        target: 'ESP32;rm -rf',
        action: 'build',
      }),
      kind: 'invalid',
    }),
    () => ({
      text: JSON.stringify({
        type: 'welcome',
        agent_id: AGENT_ID,
        server_time: -1,
        heartbeat_interval_ms: 1,
        ice_servers: [],
      }),
      kind: 'invalid',
    }),
    // Deep nesting inside a known type.
    () => ({
      text: `{"type":"job.offer","job_id":${'['.repeat(5000)}${']'.repeat(5000)}}`,
      kind: 'invalid',
    }),
    () => ({ text: '{"__proto__":{"type":"ack","seq":1}}', kind: 'invalid' }),
  ];
  // Every 500th: oversized but allowed, just under the 1 MiB frame limit.
  if (i % 500 === 250) {
    return r() < 0.5
      ? { text: `${'{'.repeat(near1MiB)}`, kind: 'invalid' }
      : {
          text: JSON.stringify({
            type: 'session.offer',
            session_id: `s-${i}`,
            job_id: `job-${i}`,
            grant: 'g',
            sdp: long(r, near1MiB - 200, near1MiB - 200),
          }),
          kind: 'invalid',
        };
  }
  return pick(r, choices)();
}

/** Binary payloads are views of one buffer: 10 000 messages need not make garbage here. */
const BYTES = Buffer.alloc(64 * KiB, 0xa5);
const bytes = (n: number) => BYTES.subarray(0, n);

/** One malformed data-channel message for `label`: text or binary, never a valid frame. */
function dcMessage(r: Rand, label: string, i: number): string | Buffer {
  const common: (() => string | Buffer)[] = [
    () => `not json ${i}`,
    () => pick(r, ['[]', 'null', '7', '"x"', '{}', '{"type":3}']),
    () => JSON.stringify({ type: `unknown-${i}` }),
    // Text frames over the 16 KiB client limit.
    () => JSON.stringify({ type: 'x', pad: long(r, 16 * KiB + 1, 48 * KiB) }),
  ];
  const byLabel: Record<string, (() => string | Buffer)[]> = {
    control: [() => bytes(int(r, 1, 64 * KiB)), () => JSON.stringify({ type: 'pong' })],
    source: [
      // Data before any begin.
      () => bytes(int(r, 1, 64 * KiB)),
      () => JSON.stringify({ type: 'begin', format: 'zip', size: 10, sha256: 'a'.repeat(64) }),
      () => JSON.stringify({ type: 'begin', format: 'tar', size: -1, sha256: 'a'.repeat(64) }),
      () => JSON.stringify({ type: 'begin', format: 'tar', size: 10, sha256: 'not-hex' }),
      () => JSON.stringify({ type: 'end' }),
    ],
    logs: [
      () => bytes(int(r, 1, 64 * KiB)),
      () => JSON.stringify({ type: 'follow', from: pick(r, [-1, 1.5, '0', null]) }),
      () => JSON.stringify({ type: 'follow' }),
    ],
    pty: [
      // Over the 4 KiB input limit.
      () => bytes(int(r, 4 * KiB + 1, 64 * KiB)),
      () => JSON.stringify({ type: 'attach', from: 0, cols: 'wide', rows: 1e9 }),
      () => JSON.stringify({ type: 'resize', cols: 0, rows: -3 }),
    ],
    artifacts: [
      () => bytes(int(r, 1, 64 * KiB)),
      () => JSON.stringify({ type: 'get', name: '', from: 0 }),
      () => JSON.stringify({ type: 'get', name: 'blink.bin', from: -5 }),
      () => JSON.stringify({ type: 'get', name: 'n'.repeat(513), from: 0 }),
    ],
  };
  return pick(r, [...common, ...byLabel[label]!])();
}

/** Send `frames` to the agent; resolves once it has logged every one of them. */
async function flood(
  frames: { text: string; kind: WsKind }[],
  counted: Record<WsKind, ReturnType<typeof lineCounter>>,
  expected: Record<WsKind, number>,
): Promise<void> {
  for (const f of frames) {
    expect(plane.sendToAgent(AGENT_ID, f.text)).toBe(true);
    expected[f.kind]++;
  }
  await counted.invalid.reach(expected.invalid, 60_000);
  await counted.unknown.reach(expected.unknown, 60_000);
}

/** A session through the reference client (candidates trickled after the answer, see sdp.ts). */
async function openSession(grant: GrantResponse): Promise<Connection> {
  const conn = await connect({
    api: { baseUrl: plane.url },
    grant: grant.grant,
    iceServers: grant.ice_servers,
    channels: CHANNEL_LABELS,
  });
  conns.add(conn);
  return conn;
}

/** Sends one raw message, text or binary, on `label`. */
function sendRaw(conn: Connection, label: ChannelLabel, msg: string | Buffer): void {
  const dc = conn.channel(label).dc;
  if (typeof msg === 'string') dc.sendMessage(msg);
  else dc.sendMessageBinary(msg);
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

it(`${FRAMES} malformed control-plane frames and ${MESSAGES} malformed data-channel messages: alive, connected, RSS growth < 20 MiB`, async () => {
  const t0 = Date.now();
  const pid = agent.proc.pid!;
  const api = { baseUrl: plane.url };
  const all = [...CHANNEL_LABELS];
  const counted = {
    invalid: lineCounter(
      agent,
      (l) =>
        l['code'] === 'AEGIS_ERR_PROTOCOL' && String(l['msg']).startsWith('dropped an invalid'),
    ),
    unknown: lineCounter(agent, (l) => String(l['msg']).startsWith('ignored a frame of a type')),
  };
  const connects = lineCounter(agent, isConnectedLine);
  // The session's warn lines at its 1st, 50th and 100th malformed message.
  const sessionLines = lineCounter(
    agent,
    (l) =>
      l['code'] === 'AEGIS_ERR_PROTOCOL' &&
      typeof l['session_id'] === 'string' &&
      typeof l['count'] === 'number',
  );
  const expected = { invalid: 0, unknown: 0 };

  /** `count` frames drawn from `seed`; a frame over 1 MiB at each index of `oversizeAt`. */
  const wsFlood = async (count: number, seed: number, oversizeAt: ReadonlySet<number>) => {
    const r = seededRandom(seed);
    let sent = 0;
    let segment: { text: string; kind: WsKind }[] = [];
    for (let i = 0; i < count; i++) {
      if (!oversizeAt.has(i)) {
        segment.push(wsFrame(r, i));
        continue;
      }
      await flood(segment, counted, expected);
      sent += segment.length;
      segment = [];
      // ws closes the link on it; the agent reconnects.
      const n = connects.count;
      const back = plane.waitFor('agent.connected', (id) => id === AGENT_ID, 20_000);
      expect(plane.sendToAgent(AGENT_ID, JSON.stringify({ type: 'x', pad: 'x'.repeat(MiB) }))).toBe(
        true,
      );
      sent++;
      await back;
      await connects.reach(n + 1);
    }
    await flood(segment, counted, expected);
    return sent + segment.length;
  };

  // The job every session is for.
  const job = await requestGrant(api, { target: 'esp32c3', channels: all });
  const closed: { id: string; reason: string }[] = [];

  /** `sessions` sessions of exactly PER_SESSION malformed messages, LANES at a time. */
  const dcFlood = async (sessions: number, seed: number) => {
    let sent = 0;
    let next = 0;
    const lane = async () => {
      while (next < sessions) {
        const s = next++;
        // Drawn per session, when it is sent: the messages are never all held at once.
        const r = seededRandom(seed + s);
        const grant = await requestGrant(api, { job_id: job.job_id, channels: all });
        const conn = await openSession(grant);
        const id = conn.sessionId;
        const done = plane.waitFor('session.closed', (c) => c.session_id === id, 20_000);
        for (let m = 0; m < PER_SESSION; m++) {
          const label = all[m % all.length]!;
          const msg = dcMessage(r, label, s * PER_SESSION + m);
          sendRaw(conn, label, msg);
          sent++;
        }
        const c = await done;
        closed.push({ id, reason: c.reason });
        conn.close();
        conns.delete(conn);
      }
    };
    await Promise.all(Array.from({ length: LANES }, lane));
    await sessionLines.reach(closed.length * 3);
    return sent;
  };

  // Warm-up, a tenth of the flood: every code path, the WebRTC stack and the allocator's arenas
  // have seen this traffic before the baseline, as in a daemon that has been running a while.
  // A leak grows with volume: the flood is ten times this.
  const first = await openSession(await requestGrant(api, { job_id: job.job_id, channels: all }));
  await first.channel('control').expect(['hello']);
  const firstClosed = plane.waitFor('session.closed', (c) => c.session_id === first.sessionId);
  first.close();
  conns.delete(first);
  await firstClosed;
  await dcFlood(LANES * 2, SEED + 1_000_000);
  await wsFlood(FRAMES / 10, SEED - 1, new Set());
  // RSS is sampled twice each time: as V8 left it (it collects lazily, so this includes
  // garbage), and after a forced full collection (what the agent retains). The bound is on the
  // second; the first is printed.
  const lazyBefore = await sampleRss(pid);
  await forceGc(agent);
  const before = await sampleRss(pid);
  const warmMs = Date.now() - t0;

  // ── 10 000 frames on the WebSocket: three over 1 MiB, the rest malformed under it.
  const t1 = Date.now();
  const warmFrames = { ...expected };
  const connectsBefore = connects.count;
  const sent = await wsFlood(FRAMES, SEED, new Set([2500, 5000, 7500]));
  const wsMs = Date.now() - t1;

  // ── 10 000 messages on the data channels: 100 sessions × 100, each with its own grant.
  const t2 = Date.now();
  const warmSessions = closed.length;
  const dcSent = await dcFlood(MESSAGES / PER_SESSION, SEED + 1);
  const flooded = closed.slice(warmSessions);
  const dcMs = Date.now() - t2;
  const counts = new Map<string, number>();
  for (const l of agent.lines) {
    if (l['code'] !== 'AEGIS_ERR_PROTOCOL' || typeof l['count'] !== 'number') continue;
    const id = l['session_id'] as string;
    counts.set(id, Math.max(counts.get(id) ?? 0, l['count']));
  }

  // ── Settled: every frame accounted for, every flooded session closed.
  const lazyAfter = await sampleRss(pid);
  await forceGc(agent);
  const after = await sampleRss(pid);
  const growth = after.median - before.median;

  // Still itself: connected, claims and builds a new job.
  const t3 = Date.now();
  const built = await submitJob(plane.url, path.join(EXAMPLES, 'blink'));
  if (!plane.job(built)?.states.includes('succeeded'))
    await plane.waitFor('job.update', (u) => u.job_id === built && u.state === 'succeeded', 30_000);

  console.log(
    `fault: ${sent} frames on the control-plane WebSocket (${expected.invalid - warmFrames.invalid} dropped and logged (the first 10 a minute at warn), ` +
      `${expected.unknown - warmFrames.unknown} unknown types ignored, 3 over 1 MiB: link closed and back ${connects.count - connectsBefore}×) in ${wsMs} ms; ` +
      `${dcSent} malformed data-channel messages over ${flooded.length} sessions (each closed for AEGIS_ERR_PROTOCOL at exactly ${PER_SESSION}) in ${dcMs} ms; ` +
      `agent alive and connected, new job built in ${Date.now() - t3} ms (warm-up ${warmMs} ms: ${FRAMES / 10} frames, ${warmSessions + 1} sessions). ` +
      `RSS (median of 5, after a full GC) ${mib(before.median)} → ${mib(after.median)}: growth ${mib(growth)} (limit ${mib(RSS_LIMIT)}); ` +
      `as V8 left it (lazy GC) ${mib(lazyBefore.median)} → ${mib(lazyAfter.median)}: growth ${mib(lazyAfter.median - lazyBefore.median)}`,
  );
  expect(sent).toBe(FRAMES);
  expect(connects.count - connectsBefore).toBe(3);
  expect(dcSent).toBe(MESSAGES);
  expect(flooded).toHaveLength(MESSAGES / PER_SESSION);
  expect(closed.every((c) => c.reason === 'AEGIS_ERR_PROTOCOL')).toBe(true);
  for (const c of closed) expect(counts.get(c.id), c.id).toBe(PER_SESSION);
  expect(alive(pid)).toBe(true);
  expect(plane.agent(AGENT_ID)?.connected).toBe(true);
  expect(plane.job(built)?.states).toEqual(['assigned', 'receiving', 'building', 'succeeded']);
  expect(
    agent.lines
      .filter((l) => (l['level'] as number) >= 50)
      .map((l) => ({ msg: l['msg'], code: l['code'], err: l['err'] })),
  ).toEqual([]);
  expect(growth).toBeLessThan(RSS_LIMIT);
}, 170_000);
