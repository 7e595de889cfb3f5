// Through a real TURN relay: coturn on loopback relaying from 127.0.0.2, time-limited TURN REST
// credentials handed out per session by the dev control plane, the client forced to relay-only.
// A full build + download completes, and the client's selected candidate pair is relay on its
// side. Skipped (with the reason printed) where coturn is not installed; .ci/run installs it.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestGrant, type ControlApi } from '../src/client/api.js';
import { RemoteBuild } from '../src/client/build.js';
import { connect, type Connection } from '../src/client/connection.js';
import { devControlCommand } from '../src/cli/commands/dev-control.js';
import { makeContext } from '../src/cli/context.js';
import { downloadArtifact } from '../src/client/transfer.js';
import type { IceServer } from '../src/control/messages.js';
import { DevControlPlane } from '../src/dev/index.js';
import { createLogger } from '../src/log/index.js';
import { cleanupNodeDataChannel } from '../src/webrtc/ndc.js';
import { tmpDir } from './helpers/agent-env.js';
import { AGENT_SECRET, EXAMPLES, startAgent, type TestAgent } from './helpers/agent.js';
import { FakeAgent, postJson } from './helpers/dev.js';
import { findTurnserver, startCoturn, TURN_RELAY_IP, type Coturn } from './helpers/coturn.js';

const TURNSERVER = findTurnserver();
if (TURNSERVER === undefined) {
  console.warn(
    'fault-turn: SKIPPED: turnserver (coturn) is not installed here; `apt-get install coturn` runs it (.ci/run installs it)',
  );
}

let coturn: Coturn | undefined;
let plane: DevControlPlane | undefined;
let firewall: SignalingFirewall | undefined;
let agent: TestAgent | undefined;
/** Closed after use but referenced to the end (a collected closed PeerConnection can crash). */
const connections: Connection[] = [];
const builds: RemoteBuild[] = [];

beforeAll(async () => {
  if (TURNSERVER === undefined) return;
  const t0 = performance.now();
  coturn = await startCoturn({ binary: TURNSERVER });
  console.log(`fault-turn: coturn ready in ${Math.round(performance.now() - t0)} ms`);
  plane = await DevControlPlane.start({
    agentAuthSecret: AGENT_SECRET,
    logger: createLogger({ name: 'dev-control', level: 'warn' }),
    turn: { urls: [coturn.url], secret: coturn.secret, ttlS: 600 },
  });
  let ready!: () => void;
  const up = new Promise<void>((r) => (ready = r));
  agent = await startAgent(plane, { MAX_JOBS: '4' }, ready);
  await up;
  firewall = await startSignalingFirewall(plane.url);
});

afterAll(async () => {
  for (const b of builds) b.cut();
  for (const c of connections) c.close();
  await agent?.daemon.stop({ releaseNative: false });
  await firewall?.close();
  await plane?.close();
  await coturn?.stop();
  if (TURNSERVER !== undefined) cleanupNodeDataChannel();
});

/**
 * The client's road to the control plane, standing in for a firewall between client and agent:
 * the agent's answer keeps only its relay candidates, as if its own addresses were unreachable
 * from the client. Without it a relay-only client is not forced through the relay here:
 * iceTransportPolicy 'relay' only hides the client's own non-relay candidates, libjuice still
 * checks from its host socket towards the agent's host candidates, and on one machine that pair
 * wins (seen: local host fd00::2 ↔ remote host fd00::2). With only the agent's relay address
 * known, the client's host socket cannot get through coturn (the agent's allocation permits
 * 127.0.0.2, the relay, and nothing else), so every check runs relay ↔ relay.
 */
interface SignalingFirewall {
  url: string;
  /** Candidate lines removed from answers / kept (relay) in them. */
  stripped: number;
  kept: number;
  close(): Promise<void>;
}

async function startSignalingFirewall(target: string): Promise<SignalingFirewall> {
  const fw = { stripped: 0, kept: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const headers: Record<string, string> = {};
        for (const h of ['content-type', 'authorization']) {
          const v = req.headers[h];
          if (typeof v === 'string') headers[h] = v;
        }
        const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
        const upstream = await fetch(`${target}${req.url ?? '/'}`, {
          method: req.method ?? 'GET',
          headers,
          ...(body ? { body } : {}),
        });
        let text = await upstream.text();
        if (req.url === '/session' && upstream.ok) {
          const answer = JSON.parse(text) as { sdp: string };
          answer.sdp = answer.sdp
            .split('\r\n')
            .filter((line) => {
              if (!line.startsWith('a=candidate:')) return true;
              const relay = / typ relay( |$)/.test(line);
              if (relay) fw.kept++;
              else fw.stripped++;
              return relay;
            })
            .join('\r\n');
          text = JSON.stringify(answer);
        }
        res.writeHead(upstream.status, { 'content-type': 'application/json' });
        res.end(text);
      })().catch((err: unknown) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: 'AEGIS_ERR_PROTOCOL', message: String(err) }));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get stripped() {
      return fw.stripped;
    },
    get kept() {
      return fw.kept;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const sha = (buf: Buffer) => crypto.createHash('sha256').update(buf).digest('hex');

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const allocated = (user: string) =>
  new RegExp(`user <${escape(user)}>: incoming packet ALLOCATE processed, success`);
const channelBound = (user: string) =>
  new RegExp(`user <${escape(user)}>: incoming packet CHANNEL_BIND processed, success`);

/** "user <1700000600:job-…>" of every allocation coturn granted, in order. */
function allocatedUsers(log: string): Set<string> {
  const users = new Set<string>();
  for (const m of log.matchAll(/user <([^>]*)>: incoming packet ALLOCATE processed, success/g))
    users.add(m[1] as string);
  return users;
}

describe.skipIf(TURNSERVER === undefined)('through a real TURN relay (coturn)', () => {
  it('relay-only client: full build + download through coturn, selected pair local=relay, fresh credentials per session', async () => {
    const turn = coturn!;
    const api: ControlApi = { baseUrl: firewall!.url };

    // TURN credentials are per session: the agent's welcome carried none.
    expect(agent!.daemon.link.iceServers.filter((s) => s.credential !== undefined)).toEqual([]);

    // Session 1: the reference client's whole job, relay candidates only, no second chance.
    const out = tmpDir('aegis-turn-out-');
    const log: Buffer[] = [];
    const build = new RemoteBuild({
      api,
      projectDir: path.join(EXAMPLES, 'blink'),
      target: 'esp32c3',
      outDir: out,
      relayOnly: true,
      maxReconnects: 0,
      writeLog: (d) => log.push(Buffer.from(d)),
    });
    builds.push(build);
    const t0 = performance.now();
    const result = await build.run();
    const buildMs = performance.now() - t0;
    expect(result.state).toBe('succeeded');
    expect(result.exitCode).toBe(0);
    expect(result.reconnects).toBe(0);
    const job = agent!.daemon.controllers.get(result.jobId)!;
    expect(Buffer.concat(log).equals(fs.readFileSync(job.paths.log))).toBe(true);
    const names = result.files.map((f) => f.name).sort();
    expect(names).toEqual([
      'blink.bin',
      'blink.elf',
      'bootloader/bootloader.bin',
      'build.log',
      'merged.bin',
      'partition_table/partition-table.bin',
    ]);
    for (const f of result.files) {
      const got = fs.readFileSync(path.join(out, f.name));
      const listed = result.manifest!.files.find((e) => e.name === f.name)!;
      expect(sha(got)).toBe(listed.sha256);
      expect(f.sha256).toBe(listed.sha256);
      if (f.name !== 'merged.bin' && f.name !== 'build.log')
        expect(sha(got)).toBe(sha(fs.readFileSync(path.join(job.paths.build, f.name))));
    }

    // Its answer reached the client with relay candidates only: the build went relay ↔ relay.
    expect(firewall!.kept).toBeGreaterThanOrEqual(1);
    // coturn allocated for session 1's credentials twice (client and agent: the client passed
    // its grant's servers in the offer) and bound channels to the peer relay on both.
    await turn.waitForLog(/ALLOCATE processed, success/, { count: 2 });
    const [user1, ...others] = allocatedUsers(turn.log());
    expect(others).toEqual([]);
    expect(user1).toMatch(new RegExp(`^\\d{10}:${result.jobId}$`));
    await turn.waitForLog(allocated(user1!), { count: 2 });
    await turn.waitForLog(channelBound(user1!), { count: 2 });

    // Session 2, same job, a new grant: new credentials, minted now.
    const grant2 = await requestGrant(api, {
      job_id: result.jobId,
      channels: ['control', 'artifacts'],
    });
    const turn2 = grant2.ice_servers.find((s) => s.username !== undefined)!;
    expect(turn2).toMatchObject({ urls: [turn.url] });
    expect(turn2.username).not.toBe(user1);
    const [expiry, user] = turn2.username!.split(':');
    expect(user).toBe(result.jobId);
    const nowS = Math.floor(Date.now() / 1000);
    expect(Number(expiry)).toBeGreaterThanOrEqual(nowS + 600 - 5);
    expect(Number(expiry)).toBeLessThanOrEqual(nowS + 600 + 5);
    expect(turn2.credential).toBe(
      crypto.createHmac('sha1', turn.secret).update(turn2.username!).digest('base64'),
    );

    const conn = await connect({
      api,
      grant: grant2.grant,
      iceServers: grant2.ice_servers,
      channels: ['control', 'artifacts'],
      relayOnly: true,
    });
    connections.push(conn);
    const pair = conn.pc.getSelectedCandidatePair();
    expect(pair).not.toBeNull();
    expect(pair!.local.type).toBe('relay');
    expect(pair!.local.address).toBe(TURN_RELAY_IP);
    expect(pair!.local.port).toBeGreaterThanOrEqual(turn.minPort);
    expect(pair!.local.port).toBeLessThanOrEqual(turn.maxPort);
    const hello = await conn.channel('control').expect(['hello']);
    expect(hello.state).toBe('succeeded');
    // The firmware again, through this relayed pair.
    const artifacts = conn.channel('artifacts');
    artifacts.sendJson({ type: 'list' });
    const manifest = await artifacts.expect(['manifest']);
    const merged = manifest.files.find((f) => f.name === 'merged.bin')!;
    const out2 = tmpDir('aegis-turn-out-');
    const tDl = performance.now();
    const again = await downloadArtifact(artifacts, out2, merged, () => undefined);
    const downloadMs = performance.now() - tDl;
    expect(again.sha256).toBe(merged.sha256);
    expect(sha(fs.readFileSync(path.join(out2, 'merged.bin')))).toBe(
      sha(fs.readFileSync(path.join(out, 'merged.bin'))),
    );
    conn.close();

    // coturn authenticated session 2 with its own username, on both sides, and the selected
    // pair's two ends are its relay addresses: the channels' bytes went through coturn.
    await turn.waitForLog(allocated(turn2.username!), { count: 2 });
    await turn.waitForLog(channelBound(turn2.username!), { count: 2 });
    const users = allocatedUsers(turn.log());
    expect([...users]).toEqual([user1, turn2.username]);
    expect(turn.log()).toContain(`Local relay addr: ${TURN_RELAY_IP}:${pair!.local.port}`);
    if (pair!.remote.type === 'relay')
      expect(turn.log()).toContain(
        `Local relay addr: ${pair!.remote.address}:${pair!.remote.port}`,
      );

    const remote = `${pair!.remote.type} ${pair!.remote.address}:${pair!.remote.port}`;
    console.log(
      `fault: TURN relay-only build: ok, selected pair local=relay (${pair!.local.address}:${pair!.local.port}) remote=${remote}; ` +
        `build+download ${Math.round(buildMs)} ms (upload ${result.timings.uploadMs}, build ${result.timings.buildMs}, download ${result.timings.downloadMs}), ` +
        `merged.bin (${merged.size} B) again in ${Math.round(downloadMs)} ms; TURN users ${[...users].join(', ')}; answers' candidates kept ${firewall!.kept}, stripped ${firewall!.stripped}`,
    );
  });
});

// The dev plane's side alone (no coturn needed): what it hands out, and to whom.
describe('dev control plane: TURN REST credentials per session', () => {
  const TURN_URL = 'turn:127.0.0.1:3478?transport=udp';
  const SECRET = 'turn-shared-secret';
  const STUN: IceServer = { urls: 'stun:stun.example.org:3478' };
  const logger = createLogger({ level: 'silent' });

  /** The TURN entry of `servers`, checked: REST username for `jobId`, HMAC credential, TTL. */
  function turnEntry(servers: IceServer[], jobId: string): IceServer & { username: string } {
    expect(servers[0]).toEqual(STUN);
    expect(servers).toHaveLength(2);
    const t = servers[1]!;
    expect(t.urls).toEqual([TURN_URL]);
    const [expiry, user] = (t.username ?? '').split(':');
    expect(user).toBe(jobId);
    const nowS = Math.floor(Date.now() / 1000);
    expect(Number(expiry)).toBeGreaterThanOrEqual(nowS + 120 - 2);
    expect(Number(expiry)).toBeLessThanOrEqual(nowS + 120 + 10);
    expect(t.credential).toBe(
      crypto.createHmac('sha1', SECRET).update(t.username!).digest('base64'),
    );
    return t as IceServer & { username: string };
  }

  it('grants and offers carry fresh, distinct credentials; welcome carries none', async () => {
    const plane = await DevControlPlane.start({
      agentAuthSecret: AGENT_SECRET,
      logger,
      claimWaitMs: 2_000,
      iceServers: [STUN],
      turn: { urls: [TURN_URL], secret: SECRET, ttlS: 120 },
    });
    const fake = await FakeAgent.connect(plane, 'a1');
    try {
      const welcome = fake.raw.map((r) => JSON.parse(r) as Record<string, unknown>)[0]!;
      expect(welcome).toMatchObject({ type: 'welcome', ice_servers: [STUN] });

      const res = postJson(`${plane.url}/grant/request`, {
        target: 'esp32c3',
        channels: ['control', 'logs'],
      });
      const offer = await fake.next('job.offer');
      fake.send({ type: 'job.claim', job_id: offer.job_id });
      await fake.next('job.assigned');
      const g1 = (await res).json as { grant: string; ice_servers: IceServer[] };
      // The resume variant, back to back (within the same second): new credentials too.
      const g2 = (
        await postJson(`${plane.url}/grant/request`, {
          job_id: offer.job_id,
          channels: ['control', 'logs'],
        })
      ).json as { grant: string; ice_servers: IceServer[] };
      const t1 = turnEntry(g1.ice_servers, offer.job_id);
      const t2 = turnEntry(g2.ice_servers, offer.job_id);
      expect(t2.username).not.toBe(t1.username);

      // A session whose client sends no ice_servers: the agent gets credentials minted for it.
      const s1 = postJson(`${plane.url}/session`, { grant: g2.grant, sdp: 'v=0\r\n' });
      const o1 = await fake.next('session.offer');
      const t3 = turnEntry(o1.ice_servers ?? [], offer.job_id);
      expect(new Set([t1.username, t2.username, t3.username]).size).toBe(3);
      fake.send({ type: 'session.answer', session_id: o1.session_id, sdp: 'v=0 answer' });
      expect((await s1).status).toBe(200);

      // A client that sends its grant's servers: the agent gets exactly those (one TURN user
      // for both ends of the session).
      const s2 = postJson(`${plane.url}/session`, {
        grant: g1.grant,
        sdp: 'v=0\r\n',
        ice_servers: g1.ice_servers,
      });
      const o2 = await fake.next('session.offer');
      expect(o2.ice_servers).toEqual(g1.ice_servers);
      fake.send({ type: 'session.answer', session_id: o2.session_id, sdp: 'v=0 answer' });
      expect((await s2).status).toBe(200);

      // The welcome of a later connection still carries no credentials.
      const other = await FakeAgent.connect(plane, 'a2');
      const welcome2 = JSON.parse(other.raw[0]!) as Record<string, unknown>;
      expect(welcome2['ice_servers']).toEqual([STUN]);
      await other.close();
    } finally {
      await fake.close();
      await plane.close();
    }
  });

  it('dev-control takes DEV_TURN_URLS and DEV_TURN_SECRET together, or refuses', async () => {
    expect(devControlCommand.usage).toContain('DEV_TURN_URLS');
    expect(devControlCommand.usage).toContain('DEV_TURN_SECRET');
    const io = { out: () => undefined, err: () => undefined };
    const base = { AGENT_AUTH_SECRET: AGENT_SECRET, LOG_LEVEL: 'silent' };
    for (const [env, named] of [
      [{ DEV_TURN_URLS: TURN_URL }, 'DEV_TURN_SECRET'],
      [{ DEV_TURN_SECRET: SECRET }, 'DEV_TURN_URLS'],
      [
        { DEV_TURN_URLS: 'stun:127.0.0.1:3478', DEV_TURN_SECRET: SECRET },
        'not a turn: or turns: URL',
      ],
    ] as const) {
      const err = await devControlCommand
        .run(makeContext({ port: '0' }, [], { ...base, ...env }, io))
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'AEGIS_ERR_CONFIG' });
      expect((err as Error).message).toContain(named);
    }
  });

  it('refuses unusable TURN settings at start', async () => {
    await expect(
      DevControlPlane.start({
        agentAuthSecret: AGENT_SECRET,
        logger,
        turn: { urls: ['stun:127.0.0.1:3478'], secret: '' },
      }),
    ).rejects.toMatchObject({
      code: 'AEGIS_ERR_CONFIG',
      message: expect.stringMatching(/not a turn: or turns: URL.*secret is empty/),
    });
  });
});
