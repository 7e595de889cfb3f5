// Inbound frames at the edge: a flood of malformed frames and an oversized one are dropped and
// logged with AEGIS_ERR_PROTOCOL, and a throwing daemon handler does not break the link.
import { DROP_WARNS_PER_MINUTE } from '../src/control/link-inbound.js';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_FRAME_BYTES } from '../src/control/messages.js';
import type { InboundMessage } from '../src/control/plane.js';
import { FakeControlPlane, makeLink, waitFor, type LinkHarness } from './helpers/ws-server.js';

const SECRET = 'frames-test-secret-abcdef';
const AGENT = 'agent-fr-1';

const servers: FakeControlPlane[] = [];
const links: LinkHarness[] = [];

async function setup(onMessage?: (msg: InboundMessage) => void) {
  const server = new FakeControlPlane(SECRET, AGENT);
  await server.listen();
  servers.push(server);
  const h = makeLink(server, {
    secret: SECRET,
    agentId: AGENT,
    random: () => 0.2,
    ...(onMessage ? { onMessage } : {}),
  });
  links.push(h);
  h.link.start();
  await waitFor(h.events, 'change', () => h.welcomes.length >= 1, 'connect');
  return { server, h };
}

const offer = (job: string) => ({
  type: 'job.offer' as const,
  job_id: job,
  target: 'esp32c3',
  action: 'build' as const,
});
const delivered = (h: LinkHarness, job: string) =>
  waitFor(
    h.events,
    'change',
    () => h.messages.find((m) => 'job_id' in m && m.job_id === job),
    `delivery of ${job}`,
  );

afterEach(async () => {
  for (const h of links.splice(0)) await h.link.stop();
  for (const s of servers.splice(0)) await s.close();
});

describe('control link: malformed frames', () => {
  it('drops 1000 malformed frames with AEGIS_ERR_PROTOCOL and still delivers a valid one', async () => {
    const { server, h } = await setup();
    const bad = [
      () => 'this is not json {',
      () => JSON.stringify({ job_id: 'no-type' }),
      () =>
        JSON.stringify({
          type: 'job.offer',
          job_id: '../../etc',
          target: 'esp32',
          action: 'build',
        }),
      () => JSON.stringify({ type: 'ack', seq: -3 }),
      () => JSON.stringify(['an', 'array']),
      () => JSON.stringify({ type: 'future.frame', x: 1 }), // unknown: debug, not a warn
      () => 'null',
      () => JSON.stringify({ type: 42 }),
    ];
    let invalid = 0;
    let unknown = 0;
    for (let i = 0; i < 1000; i++) {
      const kind = i % bad.length;
      server.sendRaw(bad[kind]!());
      if (kind === 5) unknown += 1;
      else invalid += 1;
    }
    server.sendRaw(Buffer.from([1, 2, 3]), true);
    invalid += 1;
    server.send(offer('after-flood'));
    await delivered(h, 'after-flood');

    // Every bad frame is logged; the first DROP_WARNS_PER_MINUTE at warn, the rest at debug.
    const protocol = h.sink.withCode('AEGIS_ERR_PROTOCOL');
    expect(protocol).toHaveLength(invalid);
    expect(protocol.every((l) => typeof l['reason'] === 'string')).toBe(true);
    expect(protocol.filter((l) => l.level === 40)).toHaveLength(DROP_WARNS_PER_MINUTE);
    expect(protocol.filter((l) => l.level === 20)).toHaveLength(invalid - DROP_WARNS_PER_MINUTE);
    expect(protocol.some((l) => l['type'] === 'job.offer')).toBe(true);
    expect(h.sink.lines.filter((l) => l.level === 20 && l['type'] === 'future.frame')).toHaveLength(
      unknown,
    );
    expect(h.messages.map((m) => m.type)).toEqual(['job.offer']);
    expect(h.link.connected).toBe(true);
    expect(server.connections).toBe(1);
  });

  it('refuses an oversized frame, logs AEGIS_ERR_PROTOCOL, reconnects and delivers again', async () => {
    const { server, h } = await setup();
    server.sendRaw(JSON.stringify({ type: 'job.offer', pad: 'x'.repeat(MAX_FRAME_BYTES) }));
    const line = await h.sink.waitForCode('AEGIS_ERR_PROTOCOL');
    expect(line.level).toBe(40);
    await waitFor(h.events, 'change', () => h.welcomes.length >= 2, 'the reconnect');
    expect(server.closes[0]?.code).toBe(1009);
    server.send(offer('after-big'));
    await delivered(h, 'after-big');
    expect(h.link.connected).toBe(true);
  });
});

describe('control link: daemon handler failures', () => {
  it('a throwing or rejecting onMessage is logged and the link goes on', async () => {
    let calls = 0;
    const { server, h } = await setup((msg) => {
      calls += 1;
      if ('job_id' in msg && msg.job_id === 'boom') throw new Error('handler bug');
    });
    server.send(offer('boom'));
    server.send({ type: 'drain' });
    server.send(offer('fine'));
    await delivered(h, 'fine');
    expect(calls).toBe(3);
    const internal = await h.sink.waitForCode('AEGIS_ERR_INTERNAL', 50);
    expect(internal['err']).toBeDefined();
    expect(h.link.connected).toBe(true);
    expect(server.connections).toBe(1);
  });

  it('an async handler that rejects is caught too', async () => {
    const { server, h } = await makeLinkWithAsyncHandler();
    server.send(offer('async-boom'));
    await h.sink.waitForCode('AEGIS_ERR_INTERNAL', 50);
    server.send(offer('after'));
    await delivered(h, 'after');
    expect(h.link.connected).toBe(true);
  });
});

async function makeLinkWithAsyncHandler() {
  const server = new FakeControlPlane(SECRET, AGENT);
  await server.listen();
  servers.push(server);
  const h = makeLink(server, {
    secret: SECRET,
    agentId: AGENT,
    // Typed as returning void, written as async: the link must still observe the rejection.
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- that misuse is what this test checks
    onMessage: async (msg: InboundMessage) => {
      await Promise.resolve();
      if ('job_id' in msg && msg.job_id === 'async-boom') throw new Error('async handler bug');
    },
  });
  links.push(h);
  h.link.start();
  await waitFor(h.events, 'change', () => h.welcomes.length >= 1, 'connect');
  return { server, h };
}
