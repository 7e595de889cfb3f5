// The link against a real ws server on loopback: hello → welcome, heartbeats, clock skew, a
// refused token, nothing listening, a fresh token per connect, and no secret in any log line.
import { afterEach, describe, expect, it } from 'vitest';
import {
  FakeControlPlane,
  makeLink,
  TEST_HELLO,
  waitFor,
  type LinkHarness,
} from './helpers/ws-server.js';

const SECRET = 'link-test-secret-9f8e7d6c5b4a';
const AGENT = 'agent-link-1';

const servers: FakeControlPlane[] = [];
const links: LinkHarness[] = [];
const allRawLogLines: string[] = [];

async function setup(
  opts: { agentSecret?: string; random?: () => number; welcomeTimeoutMs?: number } = {},
) {
  const server = new FakeControlPlane(SECRET, AGENT);
  await server.listen();
  servers.push(server);
  const h = makeLink(server, {
    secret: opts.agentSecret ?? SECRET,
    agentId: AGENT,
    ...(opts.random ? { random: opts.random } : {}),
    ...(opts.welcomeTimeoutMs ? { welcomeTimeoutMs: opts.welcomeTimeoutMs } : {}),
  });
  links.push(h);
  return { server, h };
}

const connected = (h: LinkHarness, n = 1) =>
  waitFor(h.events, 'change', () => h.welcomes.length >= n, `connect #${n}`);

afterEach(async () => {
  for (const h of links.splice(0)) {
    await h.link.stop();
    allRawLogLines.push(...h.sink.raw);
  }
  for (const s of servers.splice(0)) await s.close();
});

describe('control link: handshake', () => {
  it('sends hello with a verified token, takes the welcome, and logs one connect line', async () => {
    const { server, h } = await setup();
    h.link.start();
    await connected(h);

    expect(h.link.connected).toBe(true);
    const [hello] = server.framesOf('hello');
    expect(hello).toEqual({ ...TEST_HELLO, type: 'hello', protocol: 1, agent_id: AGENT });
    expect(server.frames[0]?.type).toBe('hello');
    expect(server.tokens).toHaveLength(1);
    const tok = server.tokens[0]!;
    expect(tok.header).toEqual({ alg: 'HS256', typ: 'aegis-agent+jwt' });
    expect(tok.payload).toMatchObject({ sub: AGENT, aud: 'aegis-control' });
    expect(tok.payload.exp! - tok.payload.iat!).toBe(60);
    expect(h.link.iceServers).toEqual([{ urls: 'stun:stun.example.org:3478' }]);
    expect(Math.abs(h.link.skewMs!)).toBeLessThan(1_000);
    const info = h.sink.lines.filter(
      (l) => l.level === 30 && l['url'] !== undefined && l['agent_id'] === AGENT,
    );
    expect(info).toHaveLength(1);
    expect(h.sink.lines.filter((l) => l.level >= 40)).toEqual([]);
    expect(server.badFrames).toEqual([]);
  });

  it('sends a heartbeat frame and a ping every heartbeat_interval_ms', async () => {
    const { server, h } = await setup();
    server.heartbeatIntervalMs = 200;
    h.link.start();
    await connected(h);
    const t0 = Date.now();
    await server.until(
      () => server.framesOf('heartbeat').length >= 3 && server.pings >= 3,
      '3 heartbeats',
    );
    const elapsed = Date.now() - t0;
    // Three beats at 200 ms take at least ~600 ms, and not much longer.
    expect(elapsed).toBeGreaterThanOrEqual(550);
    expect(elapsed).toBeLessThan(2_000);
    expect(server.framesOf('heartbeat')[0]).toEqual({
      type: 'heartbeat',
      running: 0,
      load1: 0.5,
      disk_free_bytes: 1e9,
      uptime_s: 10,
    });
    expect(h.link.lastHeartbeatAt).toBeGreaterThanOrEqual(t0);
    expect(h.link.lastSeenAt).toBeGreaterThanOrEqual(t0);
    expect(h.link.connected).toBe(true);
  });
});

describe('control link: clock skew', () => {
  it('logs AEGIS_ERR_CLOCK_SKEW at error when the server is 40 s ahead', async () => {
    const { server, h } = await setup();
    server.serverTimeOffsetMs = 40_000;
    h.link.start();
    await connected(h);
    const line = await h.sink.waitForCode('AEGIS_ERR_CLOCK_SKEW');
    expect(line.level).toBe(50);
    expect(Math.abs(h.link.skewMs! - 40_000)).toBeLessThan(1_000);
    expect(line['skew_ms']).toBe(h.link.skewMs);
  });

  it('logs AEGIS_ERR_CLOCK_SKEW at warn when the server is 8 s behind', async () => {
    const { server, h } = await setup();
    server.serverTimeOffsetMs = -8_000;
    h.link.start();
    await connected(h);
    const line = await h.sink.waitForCode('AEGIS_ERR_CLOCK_SKEW');
    expect(line.level).toBe(40);
    expect(Math.abs(h.link.skewMs! + 8_000)).toBeLessThan(1_000);
  });
});

describe('control link: connect failures', () => {
  it('a wrong secret: 401, AEGIS_ERR_AUTH once per streak, a handful of attempts in 5 s', async () => {
    const { server, h } = await setup({
      agentSecret: 'not-the-control-planes-secret',
      random: () => 0.5,
    });
    h.link.start();
    await server.until(() => server.rejected >= 2, 'two refused upgrades');
    // An observation window, not a synchronisation: count attempts over 5 s.
    const windowEnd = Date.now() + 5_000;
    await new Promise((r) => setTimeout(r, windowEnd - Date.now()));
    expect(server.connections).toBe(0);
    expect(server.upgrades).toBe(server.rejected);
    expect(server.upgrades).toBeLessThanOrEqual(6);
    expect(h.sink.withCode('AEGIS_ERR_AUTH', 50)).toHaveLength(1);
    expect(h.sink.withCode('AEGIS_ERR_AUTH').length).toBe(server.rejected);
    expect(h.link.connected).toBe(false);
  });

  it('nothing listening: AEGIS_ERR_CONTROL_UNREACHABLE (refused) at warn once, then debug', async () => {
    const { server, h } = await setup({ random: () => 0 });
    await server.close(); // the port is now free: connect gets ECONNREFUSED
    h.link.start();
    await waitFor(
      h.sink,
      'line',
      () => h.sink.withCode('AEGIS_ERR_CONTROL_UNREACHABLE').length >= 3,
      'three refused attempts',
    );
    const lines = h.sink.withCode('AEGIS_ERR_CONTROL_UNREACHABLE');
    expect(lines[0]).toMatchObject({ level: 40, kind: 'refused' });
    expect(lines.slice(1).every((l) => l.level === 20)).toBe(true);
  });

  it('no welcome in time: the attempt fails (timeout), is retried, and succeeds once welcomed', async () => {
    const { server, h } = await setup({ random: () => 0, welcomeTimeoutMs: 300 });
    server.autoWelcome = false;
    h.link.start();
    const line = await h.sink.waitForCode('AEGIS_ERR_CONTROL_UNREACHABLE');
    expect(line).toMatchObject({ level: 40, kind: 'timeout' });
    expect(h.link.connected).toBe(false);
    server.autoWelcome = true;
    await connected(h);
    expect(server.connections).toBeGreaterThanOrEqual(2);
    expect(h.link.connected).toBe(true);
  });

  it('makes a fresh token (new jti) for every connect', async () => {
    const { server, h } = await setup({ random: () => 0 });
    h.link.start();
    for (let n = 1; n <= 3; n++) {
      await connected(h, n);
      if (n < 3) server.drop();
    }
    const jtis = server.tokens.map((t) => t.payload.jti);
    expect(jtis).toHaveLength(3);
    expect(new Set(jtis).size).toBe(3);
    expect(h.disconnects).toHaveLength(2);
    // Each reconnect logged one connect line, and the drops no warn lines.
    expect(h.sink.lines.filter((l) => l.level >= 40)).toEqual([]);
  });
});

describe('control link: secrets', () => {
  it('never writes AGENT_AUTH_SECRET (or a token) into a log line', () => {
    expect(allRawLogLines.length).toBeGreaterThan(10);
    for (const line of allRawLogLines) {
      expect(line).not.toContain(SECRET);
      expect(line).not.toContain('not-the-control-planes-secret');
      expect(line).not.toMatch(/Bearer|eyJ[A-Za-z0-9_-]{10,}/);
    }
  });
});
