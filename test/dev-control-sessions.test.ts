// The signaling relay of the dev control plane: /session goes to the grant's agent as
// session.offer, and the agent's answer or rejection comes back (fake agents over real ws).
import { afterEach, describe, expect, it } from 'vitest';
import {
  DevControlPlane,
  type DevControlPlaneOptions,
  type SessionRecord,
} from '../src/dev/index.js';
import { createLogger } from '../src/log/index.js';
import { FakeAgent, getJson, postJson, SECRET } from './helpers/dev.js';

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

afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.close()));
  await Promise.all(planes.splice(0).map((p) => p.close()));
});

/** A connected agent with an assigned job and a grant for it. */
async function withJob(
  plane: DevControlPlane,
  id = 'a1',
): Promise<{ agent: FakeAgent; jobId: string; grant: string }> {
  const agent = await FakeAgent.connect(plane, id);
  agents.push(agent);
  const res = postJson(`${plane.url}/grant/request`, {
    target: 'esp32c3',
    channels: ['control', 'logs'],
  });
  const offer = await agent.next('job.offer');
  agent.send({ type: 'job.claim', job_id: offer.job_id });
  await agent.next('job.assigned');
  const { json } = await res;
  return { agent, jobId: offer.job_id, grant: json['grant'] as string };
}

const OFFER_SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n';

describe('POST /session', () => {
  it("relays the offer with the configured ICE servers and returns the agent's answer", async () => {
    const iceServers = [{ urls: ['turn:turn.example.org:3478'], username: 'u', credential: 'c' }];
    const plane = await start({ iceServers });
    const { agent, jobId, grant } = await withJob(plane);
    const res = postJson(`${plane.url}/session`, { grant, sdp: OFFER_SDP });
    const offer = await agent.next('session.offer');
    expect(offer).toMatchObject({ job_id: jobId, grant, sdp: OFFER_SDP, ice_servers: iceServers });
    agent.send({ type: 'session.answer', session_id: offer.session_id, sdp: 'v=0 answer' });
    const { status, json } = await res;
    expect(status).toBe(200);
    expect(json).toEqual({ session_id: offer.session_id, sdp: 'v=0 answer' });

    const closed = plane.waitFor('session.closed', (e) => e.session_id === offer.session_id);
    agent.send({ type: 'session.closed', session_id: offer.session_id, reason: 'peer_closed' });
    expect(await closed).toMatchObject({ agent_id: 'a1', reason: 'peer_closed' });
    const sessions = (await getJson<SessionRecord[]>(`${plane.url}/sessions`)).json;
    expect(sessions).toEqual([
      expect.objectContaining({
        session_id: offer.session_id,
        status: 'closed',
        closed_reason: 'peer_closed',
      }),
    ]);
  });

  it("passes the request's own ice_servers", async () => {
    const plane = await start({ iceServers: [{ urls: 'stun:configured.example' }] });
    const { agent, grant } = await withJob(plane);
    const res = postJson(`${plane.url}/session`, {
      grant,
      sdp: OFFER_SDP,
      ice_servers: [{ urls: 'stun:mine.example' }],
    });
    const offer = await agent.next('session.offer');
    expect(offer.ice_servers).toEqual([{ urls: 'stun:mine.example' }]);
    agent.send({ type: 'session.answer', session_id: offer.session_id, sdp: 'answer' });
    expect((await res).status).toBe(200);
  });

  it("returns the agent's rejection as 403 with its code and message", async () => {
    const plane = await start();
    const { agent, grant } = await withJob(plane);
    const rejected = plane.waitFor('session.rejected');
    const res = postJson(`${plane.url}/session`, { grant, sdp: OFFER_SDP });
    const offer = await agent.next('session.offer');
    const message =
      'The grant expired 12 s ago; this machine measured its clock 0 s off the control plane.';
    agent.send({
      type: 'session.rejected',
      session_id: offer.session_id,
      code: 'AEGIS_ERR_GRANT_EXPIRED',
      message,
    });
    expect(await res).toEqual({ status: 403, json: { code: 'AEGIS_ERR_GRANT_EXPIRED', message } });
    expect(await rejected).toMatchObject({
      session_id: offer.session_id,
      code: 'AEGIS_ERR_GRANT_EXPIRED',
    });
  });

  it('relays test grants signed with signGrant (expired ones too) and honours agent_id / job_id overrides', async () => {
    const plane = await start();
    const { agent, jobId } = await withJob(plane);
    const now = Math.floor(Date.now() / 1000);
    const expired = await plane.signGrant({
      iss: plane.url,
      aud: 'someone-else',
      sub: 't',
      jti: 'j1',
      iat: now - 100,
      exp: now - 70,
      job: jobId,
      target: 'esp32c3',
      channels: ['control'],
    });
    const res = postJson(`${plane.url}/session`, {
      grant: expired,
      sdp: OFFER_SDP,
      agent_id: 'a1',
    });
    const offer = await agent.next('session.offer');
    expect(offer.grant).toBe(expired);
    agent.send({
      type: 'session.rejected',
      session_id: offer.session_id,
      code: 'AEGIS_ERR_GRANT_EXPIRED',
      message: 'expired',
    });
    expect((await res).status).toBe(403);
  });

  it('refuses grants it did not sign, unknown agents, and times out with 504', async () => {
    const plane = await start({ sessionWaitMs: 200 });
    const other = await DevControlPlane.start({ agentAuthSecret: SECRET, logger });
    planes.push(other);
    const { agent, jobId, grant } = await withJob(plane);

    const foreign = await other.signGrant({ aud: 'a1', job: jobId });
    let res = await postJson(`${plane.url}/session`, { grant: foreign, sdp: OFFER_SDP });
    expect(res).toMatchObject({ status: 403, json: { code: 'AEGIS_ERR_GRANT_SIGNATURE' } });

    res = await postJson(`${plane.url}/session`, { grant: 'not.a.jwt', sdp: OFFER_SDP });
    expect(res).toMatchObject({ status: 400, json: { code: 'AEGIS_ERR_GRANT_MALFORMED' } });

    const ghost = await plane.signGrant({ aud: 'ghost', job: jobId });
    res = await postJson(`${plane.url}/session`, { grant: ghost, sdp: OFFER_SDP });
    expect(res).toMatchObject({ status: 503, json: { code: 'AEGIS_ERR_NO_AGENT' } });

    res = await postJson(`${plane.url}/session`, { grant, sdp: OFFER_SDP });
    expect(res.status).toBe(504);
    await agent.next('session.offer');
  });

  it('fails a waiting session at once when its agent disconnects, and close sends session.close', async () => {
    const plane = await start();
    const { agent, grant } = await withJob(plane);
    const first = postJson(`${plane.url}/session`, { grant, sdp: OFFER_SDP });
    const offer = await agent.next('session.offer');
    agent.send({ type: 'session.answer', session_id: offer.session_id, sdp: 'answer' });
    await first;
    const close = await postJson(`${plane.url}/session/${offer.session_id}/close`, {});
    expect(close.status).toBe(200);
    await agent.next('session.close', (f) => f.session_id === offer.session_id);

    const pending = postJson(`${plane.url}/session`, { grant, sdp: OFFER_SDP });
    await agent.next('session.offer');
    await agent.close();
    expect(await pending).toMatchObject({ status: 503, json: { code: 'AEGIS_ERR_NO_AGENT' } });
  });
});
