// Reconnects against a real ws server: the control plane restarting mid-flight (durable outbox
// re-sent in seq order until acked, applied once each), a silent server, and stop().
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../src/control/outbox.js';
import { FakeControlPlane, makeLink, waitFor, type LinkHarness } from './helpers/ws-server.js';

const SECRET = 'reconnect-test-secret-1234';
const AGENT = 'agent-re-1';

const servers: FakeControlPlane[] = [];
const links: LinkHarness[] = [];

async function setup(random = () => 0.5) {
  const server = new FakeControlPlane(SECRET, AGENT);
  await server.listen();
  servers.push(server);
  const h = makeLink(server, { secret: SECRET, agentId: AGENT, random });
  links.push(h);
  return { server, h };
}

const connected = (h: LinkHarness, n = 1) =>
  waitFor(h.events, 'change', () => h.welcomes.length >= n, `connect #${n}`);

const update = (job: string, state: 'assigned' | 'building' | 'succeeded') => ({
  job_id: job,
  state,
  log_bytes: 0,
  at: Date.now(),
});

afterEach(async () => {
  for (const h of links.splice(0)) await h.link.stop();
  for (const s of servers.splice(0)) await s.close();
});

describe('control link: reconnect', () => {
  it('re-sends unacked and offline updates in seq order after the control plane restarts; each applied once', async () => {
    const { server, h } = await setup();
    server.autoAck = false; // the first control plane stores nothing
    h.link.start();
    await connected(h);

    await h.link.report(update('job-a', 'assigned'));
    await server.until(() => server.received.get(1) === 1, 'seq 1 on the wire');

    await server.close();
    await waitFor(h.events, 'change', () => h.disconnects.length >= 1, 'the disconnect');
    expect(h.link.connected).toBe(false);
    // Reported while down: resolved once on disk, sent later.
    await h.link.report(update('job-a', 'building'));
    await h.link.report(update('job-a', 'succeeded'));
    expect(h.outbox.pending().map((u) => u.seq)).toEqual([1, 2, 3]);

    server.autoAck = true;
    await server.listen(); // same port
    await connected(h, 2);
    await server.until(
      () => [1, 2, 3].every((s) => server.received.has(s)) && server.applied.length === 3,
      'seqs 1-3',
    );
    await waitFor(h.events, 'change', () => h.outbox.pending().length === 0, 'all acked');

    const afterReconnect = server
      .framesOf('job.update')
      .slice(1)
      .map((u) => u.seq);
    expect(afterReconnect).toEqual([1, 2, 3]);
    expect(server.received.get(1)).toBe(2); // sent before the restart and again after
    expect(server.applied.map((u) => [u.seq, u.state])).toEqual([
      [1, 'assigned'],
      [2, 'building'],
      [3, 'succeeded'],
    ]);
    expect(server.badFrames).toEqual([]);

    // The acks are on disk: a restarted agent has nothing to re-send and continues at seq 4.
    await h.link.stop();
    const again = new Outbox(h.config.stateDir);
    expect(await again.load()).toMatchObject({ pending: 0, lastSeq: 3 });
    await again.close();
  });

  it('keeps re-sending an update on every reconnect until it is acked', async () => {
    const { server, h } = await setup(() => 0.1);
    server.autoAck = false;
    h.link.start();
    await connected(h);
    await h.link.report(update('job-b', 'assigned'));
    for (let n = 1; n <= 3; n++) {
      await server.until(() => server.received.get(1) === n, `seq 1 sent ${n} time(s)`);
      server.drop();
      await connected(h, n + 1);
    }
    server.autoAck = true;
    await server.until(
      () => (server.received.get(1) ?? 0) >= 4,
      'seq 1 sent after the last reconnect',
    );
    await waitFor(h.events, 'change', () => h.outbox.pending().length === 0, 'the ack');
    await h.link.stop();
    const again = new Outbox(h.config.stateDir);
    expect(await again.load()).toMatchObject({ pending: 0, lastSeq: 1 });
    await again.close();
    expect(server.applied).toHaveLength(1);
  });

  it('terminates a silent connection within ~2 heartbeat intervals and reconnects', async () => {
    const { server, h } = await setup();
    server.heartbeatIntervalMs = 200;
    server.answerPings = false; // after welcome the server says nothing at all
    h.link.start();
    await connected(h);
    const t0 = Date.now();
    const line = await h.sink.waitForCode('AEGIS_ERR_CONTROL_UNREACHABLE', 40);
    const detectedAfter = Date.now() - t0;
    expect(detectedAfter).toBeGreaterThanOrEqual(350);
    expect(detectedAfter).toBeLessThan(1_200);
    expect(line['silent_ms']).toBeGreaterThanOrEqual(400);
    await waitFor(h.events, 'change', () => h.disconnects.length >= 1, 'the disconnect');
    expect(h.disconnects[0]).toMatch(/no frame or pong/);
    server.answerPings = true;
    await connected(h, 2);
    expect(h.link.connected).toBe(true);
  });

  it('a pong-answering server is not dropped', async () => {
    const { server, h } = await setup();
    server.heartbeatIntervalMs = 100;
    h.link.start();
    await connected(h);
    await server.until(() => server.pings >= 8, '8 pings');
    expect(h.disconnects).toEqual([]);
    expect(server.connections).toBe(1);
  });
});

describe('control link: stop()', () => {
  it('closes with 1000, never reconnects, and leaves no handle open', async () => {
    const resources = () =>
      process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'TCPSocketWrap');
    const { server, h } = await setup();
    const before = resources().length;
    server.heartbeatIntervalMs = 100;
    h.link.start();
    await connected(h);
    await server.until(() => server.pings >= 1, 'a heartbeat');

    await h.link.stop();
    expect(h.link.connected).toBe(false);
    expect(h.disconnects).toEqual(['stopped']);
    await server.until(() => server.closes[0], 'the close at the server');
    expect(server.closes[0]?.code).toBe(1000);
    await h.link.stop(); // idempotent

    // Observation window: no reconnect attempt after stop (the backoff would be ≤ 250 ms).
    const upgrades = server.upgrades;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(server.upgrades).toBe(upgrades);
    expect(resources().length).toBeLessThanOrEqual(before);

    // A link stopped while it waits to reconnect does not come back either.
    const h2 = makeLink(server, { secret: SECRET, agentId: AGENT, random: () => 0.99 });
    links.push(h2);
    await server.close();
    h2.link.start();
    await h2.sink.waitForCode('AEGIS_ERR_CONTROL_UNREACHABLE');
    await h2.link.stop();
    await server.listen();
    const seen = server.upgrades;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(server.upgrades).toBe(seen);
    expect(resources().length).toBeLessThanOrEqual(before);
  });
});
