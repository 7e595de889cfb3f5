// Jobs on the dev control plane: offers go only to fitting agents, the first claim wins, grants
// verify against the published JWKS, and job.update is applied exactly once per (agent, seq).
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createDevStore,
  DevControlPlane,
  type DevControlPlaneOptions,
  type JobRecord,
} from '../src/dev/index.js';
import { createLogger } from '../src/log/index.js';
import { FakeAgent, getJson, postJson, SECRET, type helloFor } from './helpers/dev.js';

const logger = createLogger({ level: 'silent' });
const planes: DevControlPlane[] = [];
const agents: FakeAgent[] = [];

async function start(o: Partial<DevControlPlaneOptions> = {}): Promise<DevControlPlane> {
  const plane = await DevControlPlane.start({
    agentAuthSecret: SECRET,
    logger,
    claimWaitMs: 2_000,
    ...o,
  });
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

/** An agent that claims every offer it gets. */
function autoClaim(agent: FakeAgent): void {
  agent.ws.on('message', (data: Buffer) => {
    const f = JSON.parse(data.toString()) as { type: string; job_id?: string };
    if (f.type === 'job.offer' && f.job_id) agent.send({ type: 'job.claim', job_id: f.job_id });
  });
}

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

describe('POST /grant/request', () => {
  it('offers only to agents with a matching target and idf, and the claim returns a verifiable grant', async () => {
    const plane = await start({ iceServers: [{ urls: 'stun:stun.example.org' }] });
    const c3 = await connect(plane, 'c3-53', {
      toolchains: [{ id: 'idf-5.3.1', idf_version: '5.3.1', targets: ['esp32', 'esp32c3'] }],
    });
    const old = await connect(plane, 'c3-52', {
      toolchains: [{ id: 'idf-5.2.2', idf_version: '5.2.2', targets: ['esp32', 'esp32c3'] }],
    });
    const s3 = await connect(plane, 's3-53', {
      toolchains: [{ id: 'idf-5.3.1', idf_version: '5.3.1', targets: ['esp32s3'] }],
    });
    const draining = await connect(plane, 'drain', { draining: true });
    const full = await connect(plane, 'full', { capacity: { max_jobs: 1, running: 1 } });

    const response = postJson(`${plane.url}/grant/request`, {
      target: 'esp32c3',
      idf: '5.3',
      channels: ['control', 'logs'],
      timeout_s: 600,
    });
    const offer = await c3.next('job.offer');
    expect(offer).toMatchObject({ target: 'esp32c3', idf: '5.3', action: 'build' });
    c3.send({ type: 'job.claim', job_id: offer.job_id });
    const assigned = await c3.next('job.assigned');
    expect(assigned).toEqual({ type: 'job.assigned', job_id: offer.job_id, timeout_s: 600 });

    const { status, json } = await response;
    expect(status).toBe(200);
    expect(json).toMatchObject({
      job_id: offer.job_id,
      agent_id: 'c3-53',
      ice_servers: [{ urls: 'stun:stun.example.org' }],
    });
    for (const other of [old, s3, draining, full]) {
      await other.barrier(plane);
      expect(other.pending('job.offer')).toEqual([]);
    }
    expect(plane.job(offer.job_id)?.offered_to).toEqual(['c3-53']);

    const grant = json['grant'] as string;
    expect(decodeProtectedHeader(grant)).toEqual({
      alg: 'EdDSA',
      kid: plane.kid,
      typ: 'aegis-grant+jwt',
    });
    const jwks = (await getJson<JSONWebKeySet>(`${plane.url}/.well-known/jwks.json`)).json;
    const { payload } = await jwtVerify(grant, createLocalJWKSet(jwks), {
      algorithms: ['EdDSA'],
      typ: 'aegis-grant+jwt',
      audience: 'c3-53',
      issuer: plane.url,
    });
    expect(payload).toMatchObject({
      sub: 'dev-client',
      job: offer.job_id,
      target: 'esp32c3',
      channels: ['control', 'logs'],
    });
    expect(payload.exp! - payload.iat!).toBe(30);
    expect(typeof payload.jti).toBe('string');
    expect(payload.jti!.length).toBeLessThanOrEqual(128);
    expect(json['expires_at']).toBe(payload.exp! * 1000);

    const jobs = (await getJson<JobRecord[]>(`${plane.url}/jobs`)).json;
    expect(jobs).toEqual([
      expect.objectContaining({
        job_id: offer.job_id,
        phase: 'assigned',
        agent_id: 'c3-53',
        target: 'esp32c3',
      }),
    ]);
  });

  it('matches idf specs: "5" any 5.x, "5.3.1" exact, absent any', async () => {
    const plane = await start();
    const a = await connect(plane, 'a', {
      toolchains: [{ id: 't', idf_version: '5.1.4', targets: ['esp32'] }],
    });
    const b = await connect(plane, 'b', {
      toolchains: [{ id: 't', idf_version: '5.3.1', targets: ['esp32'] }],
    });
    const cases: [string | undefined, string[]][] = [
      ['5', ['a', 'b']],
      ['5.3.1', ['b']],
      ['5.1', ['a']],
      [undefined, ['a', 'b']],
    ];
    for (const [idf, expected] of cases) {
      const offered = new Set<string>();
      const listener = (e: { agent_id: string }) => offered.add(e.agent_id);
      plane.on('job.offered', listener);
      const body = { target: 'esp32', channels: ['control'], ...(idf ? { idf } : {}) };
      const res = postJson(`${plane.url}/grant/request`, body);
      const winner = expected[0] === 'a' ? a : b;
      const offer = await winner.next('job.offer');
      winner.send({ type: 'job.claim', job_id: offer.job_id });
      expect((await res).status).toBe(200);
      plane.off('job.offered', listener);
      expect([...offered].sort()).toEqual(expected);
      for (const agent of [a, b]) {
        await agent.barrier(plane);
        agent.inbox.splice(0);
      }
    }
  });

  it('offers to an agent that connects while the request waits', async () => {
    const plane = await start();
    const created = plane.waitFor('job.created');
    const response = postJson(`${plane.url}/grant/request`, {
      target: 'esp32',
      channels: ['control'],
    });
    await created;
    const late = await connect(plane, 'late');
    const offer = await late.next('job.offer');
    late.send({ type: 'job.claim', job_id: offer.job_id });
    expect((await response).json).toMatchObject({ agent_id: 'late' });
  });

  it('the first of two claims wins: exactly one job.assigned, the other job.taken (50 times)', async () => {
    const plane = await start({ claimWaitMs: 1_000 });
    const one = await connect(plane, 'one');
    const two = await connect(plane, 'two');
    autoClaim(one);
    autoClaim(two);
    for (let i = 0; i < 50; i++) {
      const { status, json } = await postJson(`${plane.url}/grant/request`, {
        target: 'esp32',
        channels: ['control'],
      });
      expect(status).toBe(200);
      const jobId = json['job_id'] as string;
      const winner = json['agent_id'] === 'one' ? one : two;
      const loser = winner === one ? two : one;
      await winner.next('job.assigned', (f) => f.job_id === jobId);
      await loser.next('job.taken', (f) => f.job_id === jobId);
      await winner.barrier(plane);
      await loser.barrier(plane);
      expect(winner.pending('job.taken').filter((f) => f.job_id === jobId)).toEqual([]);
      expect(loser.pending('job.assigned').filter((f) => f.job_id === jobId)).toEqual([]);
      expect(plane.job(jobId)?.claimed_by.sort()).toEqual(['one', 'two']);
    }
  });

  it('answers 503 AEGIS_ERR_NO_AGENT within claimWaitMs, naming the cause, and a late claim is taken', async () => {
    const plane = await start({ claimWaitMs: 300 });
    const t0 = Date.now();
    let res = await postJson(`${plane.url}/grant/request`, {
      target: 'esp32c3',
      channels: ['control'],
    });
    expect(res.status).toBe(503);
    expect(res.json['code']).toBe('AEGIS_ERR_NO_AGENT');
    expect(res.json['message']).toMatch(
      /^No build machine claimed the esp32c3 job within 0.3 s: no agent is connected/,
    );
    expect(Date.now() - t0).toBeLessThan(2_000);

    const s3 = await connect(plane, 's3', {
      toolchains: [{ id: 't', idf_version: '5.3.1', targets: ['esp32s3'] }],
    });
    res = await postJson(`${plane.url}/grant/request`, {
      target: 'esp32c3',
      channels: ['control'],
    });
    expect(res.json['message']).toMatch(
      /none of the 1 connected agents has a toolchain for esp32c3/,
    );

    const busy = await connect(plane, 'busy', { capacity: { max_jobs: 1, running: 1 } });
    res = await postJson(`${plane.url}/grant/request`, {
      target: 'esp32c3',
      channels: ['control'],
    });
    expect(res.json['message']).toMatch(/busy or draining: busy \(busy, 1\/1 running\)/);

    const silent = await connect(plane, 'silent');
    res = await postJson(`${plane.url}/grant/request`, {
      target: 'esp32c3',
      channels: ['control'],
    });
    expect(res.status).toBe(503);
    expect(res.json['message']).toMatch(/offered to silent but none claimed it/);
    const offer = await silent.next('job.offer');
    silent.send({ type: 'job.claim', job_id: offer.job_id });
    await silent.next('job.taken', (f) => f.job_id === offer.job_id);
    expect(plane.job(offer.job_id)?.phase).toBe('unclaimed');
    await Promise.all([s3.barrier(plane), busy.barrier(plane)]);
  });

  it('requires the MCP bearer when MCP_AUTH_SECRET is set', async () => {
    const plane = await start({ mcpAuthSecret: 'mcp-secret-value', claimWaitMs: 100 });
    const body = { target: 'esp32', channels: ['control'] };
    for (const headers of [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: 'Basic bWNwOng=' },
    ]) {
      const res = await postJson(`${plane.url}/grant/request`, body, headers);
      expect(res.status).toBe(401);
      expect(res.json['code']).toBe('AEGIS_ERR_AUTH');
    }
    const res = await postJson(`${plane.url}/grant/request`, body, {
      authorization: 'Bearer mcp-secret-value',
    });
    expect(res.status).toBe(503);
    const session = await postJson(`${plane.url}/session`, { grant: 'x', sdp: 'y' });
    expect(session.status).toBe(401);
  });

  it('rejects invalid bodies with 400 AEGIS_ERR_PROTOCOL and the reason', async () => {
    const plane = await start();
    for (const body of [
      { channels: ['control'] },
      { target: 'ESP 32', channels: ['control'] },
      { target: 'esp32', channels: [] },
      { target: 'esp32', idf: 'latest', channels: ['x'] },
    ]) {
      const res = await postJson(`${plane.url}/grant/request`, body);
      expect(res.status).toBe(400);
      expect(res.json['code']).toBe('AEGIS_ERR_PROTOCOL');
    }
  });

  it('issues a new grant (new jti) for an assigned job: the resume path', async () => {
    const plane = await start({ issuer: 'https://control.example', grantTtlS: 120 });
    const agent = await connect(plane, 'a1');
    autoClaim(agent);
    const first = await postJson(`${plane.url}/grant/request`, {
      target: 'esp32',
      channels: ['control', 'logs'],
    });
    const again = await postJson(`${plane.url}/grant/request`, {
      job_id: first.json['job_id'],
      channels: ['logs'],
      client: 'espctl-7',
    });
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ job_id: first.json['job_id'], agent_id: 'a1' });
    const jwks = createLocalJWKSet(plane.publicJwks());
    const a = (
      await jwtVerify(first.json['grant'] as string, jwks, { issuer: 'https://control.example' })
    ).payload;
    const b = (
      await jwtVerify(again.json['grant'] as string, jwks, { issuer: 'https://control.example' })
    ).payload;
    expect(b.jti).not.toBe(a.jti);
    expect(b).toMatchObject({
      job: a['job'],
      target: 'esp32',
      channels: ['logs'],
      sub: 'espctl-7',
      aud: 'a1',
    });
    expect(b.exp! - b.iat!).toBe(120);
    const unknown = await postJson(`${plane.url}/grant/request`, {
      job_id: 'job-nope',
      channels: ['logs'],
    });
    expect(unknown.status).toBe(404);
    expect(unknown.json['code']).toBe('AEGIS_ERR_GRANT_JOB');
  });
});

describe('job.update', () => {
  const update = (seq: number, jobId: string, state: 'building' | 'succeeded' | 'receiving') =>
    ({
      type: 'job.update',
      seq,
      job_id: jobId,
      state,
      log_bytes: seq * 10,
      at: Date.now(),
      ...(state === 'succeeded' ? { exit_code: 0 } : {}),
    }) as const;

  it('acknowledges every frame and applies each (agent, seq) once', async () => {
    const plane = await start();
    const agent = await connect(plane, 'a1');
    autoClaim(agent);
    const { json } = await postJson(`${plane.url}/grant/request`, {
      target: 'esp32',
      channels: ['control'],
    });
    const jobId = json['job_id'] as string;
    for (const [seq, state] of [
      [1, 'receiving'],
      [2, 'building'],
      [2, 'building'],
      [1, 'receiving'],
      [3, 'succeeded'],
    ] as const) {
      agent.send(update(seq, jobId, state));
      expect((await agent.next('ack')).seq).toBe(seq);
    }
    const job = (await getJson<JobRecord>(`${plane.url}/jobs/${jobId}`)).json;
    expect(job.states).toEqual(['receiving', 'building', 'succeeded']);
    expect(job).toMatchObject({ state: 'succeeded', exit_code: 0, log_bytes: 30, duplicates: 2 });
    expect(job.history.map((h) => h.seq)).toEqual([1, 2, 3]);
    expect(plane.store.duplicates).toBe(2);
  });

  it('applies each seq once across a restart that keeps the store', async () => {
    const store = createDevStore();
    const first = await start({ store });
    const agent1 = await connect(first, 'a1');
    autoClaim(agent1);
    const { json } = await postJson(`${first.url}/grant/request`, {
      target: 'esp32',
      channels: ['control'],
    });
    const jobId = json['job_id'] as string;
    agent1.send(update(1, jobId, 'receiving'));
    await agent1.next('ack');
    agent1.send(update(2, jobId, 'building'));
    await agent1.next('ack');
    await agent1.close();
    await first.close();

    const second = await start({ store });
    const agent2 = await connect(second, 'a1');
    // The agent re-sends its unacknowledged outbox (here, pretend seq 2's ack was lost) then goes on.
    const dup = second.waitFor('job.update.duplicate', (d) => d.seq === 2);
    agent2.send(update(2, jobId, 'building'));
    expect((await agent2.next('ack')).seq).toBe(2);
    await dup;
    const applied = second.waitFor('job.update', (u) => u.seq === 3);
    agent2.send(update(3, jobId, 'succeeded'));
    expect((await agent2.next('ack')).seq).toBe(3);
    expect(await applied).toMatchObject({ agent_id: 'a1', job_id: jobId, state: 'succeeded' });
    const job = (await getJson<JobRecord>(`${second.url}/jobs/${jobId}`)).json;
    expect(job.states).toEqual(['receiving', 'building', 'succeeded']);
    expect(job.duplicates).toBe(1);
  });

  it('records updates for a job it never offered', async () => {
    const plane = await start();
    const agent = await connect(plane, 'a1');
    agent.send(update(7, 'job-external', 'building'));
    await agent.next('ack');
    expect(plane.job('job-external')).toMatchObject({
      phase: 'external',
      agent_id: 'a1',
      states: ['building'],
    });
  });
});
