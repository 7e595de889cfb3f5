// The dev control plane's agent link and plain HTTP: real server on port 0, real ws agents,
// real tokens.
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_FRAME_BYTES } from '../src/control/messages.js';
import { devControlCommand } from '../src/cli/commands/dev-control.js';
import { makeContext } from '../src/cli/context.js';
import {
  DevControlPlane,
  type AgentRecord,
  type DevControlPlaneOptions,
} from '../src/dev/index.js';
import { isAegisError } from '../src/errors.js';
import { createLogger } from '../src/log/index.js';
import {
  agentToken,
  FakeAgent,
  getJson,
  helloFor,
  refusedUpgrade,
  SECRET,
  wsUrl,
} from './helpers/dev.js';

const logger = createLogger({ level: 'silent' });
const planes: DevControlPlane[] = [];
const agents: FakeAgent[] = [];

async function start(o: Partial<DevControlPlaneOptions> = {}): Promise<DevControlPlane> {
  const plane = await DevControlPlane.start({ agentAuthSecret: SECRET, logger, ...o });
  planes.push(plane);
  return plane;
}

async function connect(
  plane: DevControlPlane,
  id: string,
  over: Parameters<typeof helloFor>[1] = {},
): Promise<FakeAgent> {
  const agent = await FakeAgent.connect(plane, id, over);
  agents.push(agent);
  return agent;
}

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

describe('agent authentication (before the upgrade)', () => {
  it('answers 401 AEGIS_ERR_AUTH to a missing, wrongly signed, wrong-typ, wrong-aud or long-lived token', async () => {
    const plane = await start();
    const url = wsUrl(plane);
    const cases: Record<string, string>[] = [
      {},
      { authorization: 'Bearer not-a-jwt' },
      { authorization: `Bearer ${await agentToken('a1', { secret: 'another-secret-value' })}` },
      { authorization: `Bearer ${await agentToken('a1', { typ: 'JWT' })}` },
      { authorization: `Bearer ${await agentToken('a1', { aud: 'someone-else' })}` },
      { authorization: `Bearer ${await agentToken('a1', { ttlS: 3600 })}` },
      { authorization: `Bearer ${await agentToken('a1', { iatOffsetS: -600 })}` },
    ];
    for (const headers of cases) {
      const refused = await refusedUpgrade(url, headers);
      expect(refused.status).toBe(401);
      expect(JSON.parse(refused.body)).toMatchObject({ code: 'AEGIS_ERR_AUTH' });
    }
    expect(plane.agentList()).toEqual([]);
  });

  it('answers 404 to an upgrade on another path', async () => {
    const plane = await start();
    const refused = await refusedUpgrade(`${plane.url.replace('http', 'ws')}/elsewhere`, {
      authorization: `Bearer ${await agentToken('a1')}`,
    });
    expect(refused.status).toBe(404);
  });
});

describe('hello and welcome', () => {
  it('welcomes with the offset server_time, the heartbeat interval and the ICE servers', async () => {
    const iceServers = [{ urls: 'stun:stun.example.org:3478' }];
    const plane = await start({ clockOffsetMs: 120_000, heartbeatIntervalMs: 2_000, iceServers });
    const agent = await FakeAgent.open(plane, 'a1');
    agents.push(agent);
    const connected = plane.waitFor('agent.connected', (id) => id === 'a1');
    const welcome = agent.next('welcome');
    agent.send(helloFor('a1'));
    const w = await welcome;
    await connected;
    expect(w.agent_id).toBe('a1');
    expect(w.heartbeat_interval_ms).toBe(2_000);
    expect(w.ice_servers).toEqual(iceServers);
    expect(w.server_time - Date.now()).toBeGreaterThan(110_000);
    expect(w.server_time - Date.now()).toBeLessThan(130_000);
    const health = await getJson<{ status: string; agents: number; server_time: number }>(
      `${plane.url}/health`,
    );
    expect(health.json).toMatchObject({ status: 'ok', agents: 1 });
    expect(health.json.server_time - Date.now()).toBeGreaterThan(110_000);
  });

  it('closes with 1008 when hello names another agent than the token', async () => {
    const plane = await start();
    const agent = await FakeAgent.open(plane, 'a1');
    agents.push(agent);
    agent.send(helloFor('someone-else'));
    expect((await agent.closed).code).toBe(1008);
  });

  it('closes with 1008 when the first frame is not hello', async () => {
    const plane = await start();
    const agent = await FakeAgent.open(plane, 'a1');
    agents.push(agent);
    agent.send({ type: 'heartbeat', running: 0, load1: 0, disk_free_bytes: 1, uptime_s: 1 });
    expect((await agent.closed).code).toBe(1008);
  });

  it('replaces the older connection of the same agent', async () => {
    const plane = await start();
    const first = await connect(plane, 'a1');
    const second = await connect(plane, 'a1');
    await first.closed;
    expect(plane.agent('a1')?.connected).toBe(true);
    await second.barrier(plane);
    const gone = plane.waitFor('agent.disconnected', (id) => id === 'a1');
    await second.close();
    await gone;
    expect(plane.agent('a1')?.connected).toBe(false);
  });
});

describe('agent state', () => {
  it('lists agents with toolchains, capacity, heartbeat, toolchains and status changes', async () => {
    const plane = await start();
    const agent = await connect(plane, 'a1', {
      labels: { rack: 'r1' },
      capacity: { max_jobs: 2, running: 0 },
    });
    let list = (await getJson<AgentRecord[]>(`${plane.url}/agents`)).json;
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      agent_id: 'a1',
      hostname: 'a1.test',
      version: '0.1.0-test',
      toolchains: [
        { id: 'idf-5.3.1', idf_version: '5.3.1', targets: ['esp32', 'esp32c3', 'esp32s3'] },
      ],
      capacity: { max_jobs: 2 },
      running: 0,
      draining: false,
      connected: true,
      labels: { rack: 'r1' },
    });
    const beat = plane.waitFor('agent.heartbeat');
    agent.send({ type: 'heartbeat', running: 2, load1: 0.5, disk_free_bytes: 10, uptime_s: 3 });
    await beat;
    let changed = plane.waitFor('agent.changed');
    agent.send({
      type: 'toolchains',
      toolchains: [{ id: 'idf-5.2.2', idf_version: '5.2.2', targets: ['esp32'] }],
    });
    await changed;
    changed = plane.waitFor('agent.changed');
    agent.send({ type: 'status', draining: true });
    await changed;
    list = (await getJson<AgentRecord[]>(`${plane.url}/agents`)).json;
    expect(list[0]).toMatchObject({
      running: 2,
      draining: true,
      toolchains: [{ idf_version: '5.2.2' }],
    });
  });

  it('drops malformed frames, ignores unknown types, and keeps the connection', async () => {
    const plane = await start();
    const agent = await connect(plane, 'a1');
    const invalid: unknown[] = [];
    plane.on('frame.invalid', (e) => invalid.push(e));
    const unknown = plane.waitFor('frame.unknown', (e) => e.type === 'future.thing');
    agent.send('{not json');
    agent.send('[1,2]');
    agent.send(JSON.stringify({ type: 'job.update', seq: -1 }));
    agent.send(JSON.stringify({ type: 'future.thing', x: 1 }));
    agent.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await unknown;
    const last = plane.waitFor('frame.invalid', (e) => e.type === 'heartbeat');
    agent.send(JSON.stringify({ type: 'heartbeat' }));
    await last;
    expect(invalid).toHaveLength(5);
    expect(invalid[2]).toMatchObject({ agent_id: 'a1', type: 'job.update' });
    await agent.barrier(plane);
    expect(plane.agent('a1')?.connected).toBe(true);
  });

  it('closes an agent frame above MAX_FRAME_BYTES (1009) and the plane stays up', async () => {
    const plane = await start();
    const agent = await connect(plane, 'a1');
    agent.send('x'.repeat(MAX_FRAME_BYTES + 1));
    expect((await agent.closed).code).toBe(1009);
    expect((await getJson(`${plane.url}/health`)).status).toBe(200);
  });

  it('sendToAgent delivers typed frames and raw text', async () => {
    const plane = await start();
    const agent = await connect(plane, 'a1');
    expect(plane.sendToAgent('a1', { type: 'drain' })).toBe(true);
    expect(plane.sendToAgent('a1', '{"type":"job.cancel"')).toBe(true);
    expect(plane.sendToAgent('nobody', { type: 'drain' })).toBe(false);
    await agent.next('drain');
    await agent.barrier(plane);
    expect(agent.raw).toContain('{"type":"job.cancel"');
  });
});

describe('HTTP', () => {
  it('answers CORS preflights for a listed origin only', async () => {
    const plane = await start({
      allowedOrigins: ['https://esphome.cloud', 'http://localhost:5173'],
    });
    const preflight = (origin: string) =>
      fetch(`${plane.url}/grant/request`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
    const ok = await preflight('https://esphome.cloud');
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://esphome.cloud');
    expect(ok.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(ok.headers.get('vary')).toBe('Origin');
    const other = await preflight('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const get = await fetch(`${plane.url}/health`, {
      headers: { origin: 'http://localhost:5173' },
    });
    expect(get.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
  });

  it('refuses to start with a malformed ALLOWED_ORIGINS entry, naming it', async () => {
    for (const bad of [
      'esphome.cloud/',
      'https://esphome.cloud/',
      'https://esphome.cloud/app',
      '*',
      'ftp://x.example',
    ]) {
      const err = await DevControlPlane.start({
        agentAuthSecret: SECRET,
        logger,
        allowedOrigins: [bad],
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isAegisError(err, 'AEGIS_ERR_CONFIG')).toBe(true);
      expect((err as Error).message).toContain(`"${bad}"`);
    }
  });

  it('answers unknown paths, wrong methods, bad JSON and oversized bodies with JSON errors', async () => {
    const plane = await start();
    const notFound = await fetch(`${plane.url}/nope`);
    expect(notFound.status).toBe(404);
    expect(await notFound.json()).toMatchObject({ code: 'AEGIS_ERR_PROTOCOL' });
    expect((await fetch(`${plane.url}/grant/request`)).status).toBe(405);
    const bad = await fetch(`${plane.url}/grant/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(bad.status).toBe(400);
    const big = await fetch(`${plane.url}/grant/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ target: 'esp32', channels: ['x'], pad: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(big.status).toBe(413);
    const jwks = await getJson<{ keys: { kid: string; alg: string; use: string; crv: string }[] }>(
      `${plane.url}/.well-known/jwks.json`,
    );
    expect(jwks.json.keys).toEqual([
      expect.objectContaining({ kid: plane.kid, alg: 'EdDSA', use: 'sig', crv: 'Ed25519' }),
    ]);
    expect((await getJson(`${plane.url}/health`)).status).toBe(200);
  });
});

describe('aegis-agent dev-control', () => {
  const io = { out: () => undefined, err: () => undefined };

  it('says in its usage that it is for development and tests only', () => {
    expect(devControlCommand.name).toBe('dev-control');
    expect(devControlCommand.usage).toMatch(/development and tests only/i);
    expect(devControlCommand.usage).toMatch(/not a production control plane/i);
    for (const word of [
      'AGENT_AUTH_SECRET',
      'MCP_AUTH_SECRET',
      'ALLOWED_ORIGINS',
      '/grant/request',
      '/session',
      '/health',
      'in memory',
      'loopback',
    ]) {
      expect(devControlCommand.usage).toContain(word);
    }
  });

  it('refuses to run without AGENT_AUTH_SECRET or with a bad ALLOWED_ORIGINS (AEGIS_ERR_CONFIG)', async () => {
    const noSecret = await devControlCommand
      .run(makeContext({}, [], {}, io))
      .catch((e: unknown) => e);
    expect(isAegisError(noSecret, 'AEGIS_ERR_CONFIG')).toBe(true);
    const env = {
      AGENT_AUTH_SECRET: SECRET,
      ALLOWED_ORIGINS: 'https://ok.example,esphome.cloud/',
      LOG_LEVEL: 'silent',
    };
    const badOrigin = await devControlCommand
      .run(makeContext({ port: '0' }, [], env, io))
      .catch((e: unknown) => e);
    expect(isAegisError(badOrigin, 'AEGIS_ERR_CONFIG')).toBe(true);
    expect((badOrigin as Error).message).toContain('esphome.cloud/');
    const badPort = await devControlCommand
      .run(makeContext({ port: 'eighty' }, [], env, io))
      .catch((e: unknown) => e);
    expect(isAegisError(badPort, 'AEGIS_ERR_CONFIG')).toBe(true);
  });
});
