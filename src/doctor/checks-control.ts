// Doctor checks against the control plane: `control_health` (GET /health, every way it can fail
// named on its own), `agent_auth` (a real token, hello → welcome, closed at once) and `clock`
// (skew from the welcome, else from /health). Sentences come from control/backoff and
// control/skew, the same ones the daemon logs.
import os from 'node:os';
import type { AgentConfig } from '../config/index.js';
import {
  describeConnectError,
  type ConnectFailure,
  type ConnectTarget,
} from '../control/backoff.js';
import { encode, PROTOCOL_VERSION, type IceServer } from '../control/messages.js';
import { describeSkew, measureSkew, skewVerdict } from '../control/skew.js';
import { createAgentToken } from '../control/token.js';
import { controlWsUrl } from '../config/index.js';
import { AGENT_VERSION } from '../version.js';
import { HttpGetTimeout, httpGet } from './http-get.js';
import { probeHello } from './probe-ws.js';
import { error, ok, skip, warn, type CheckResult } from './report.js';

export function targetOf(base: string): ConnectTarget {
  const url = new URL(base);
  return {
    host: url.hostname,
    port: url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80',
  };
}

const KIND_LABEL: Record<ConnectFailure['kind'], string> = {
  auth: 'auth',
  dns: 'DNS',
  refused: 'refused',
  unreachable: 'no route',
  timeout: 'timeout',
  tls: 'TLS',
  http: 'HTTP',
  closed: 'reset',
  other: 'connect',
};

/** The next step for a connect failure, by kind (one decision, tested without sockets). */
export function connectFix(f: ConnectFailure, base: string): string {
  const { host, port } = targetOf(base);
  const url = new URL(base);
  switch (f.kind) {
    case 'dns':
      return `check DNS (dig ${host}), or use the IP form ${url.protocol}//<ip>${url.port ? `:${url.port}` : ''} in CONTROL_BASE_URL`;
    case 'refused':
      return `start the control plane, or open port ${port} in the firewall between this machine and ${host}`;
    case 'unreachable':
      return `check routes, VPN and the firewall between this machine and ${host}`;
    case 'timeout':
      return `a firewall dropping packets looks like this: allow outbound TCP ${port} to ${host} (test: nc -vz ${host} ${port})`;
    case 'tls':
      return "install the control plane's CA (NODE_EXTRA_CA_CERTS=/path/ca.pem for node) or fix its certificate";
    case 'closed':
      return `a proxy or load balancer in between may cut the connection: try curl -v ${base}/health`;
    case 'auth':
      return 'copy the AGENT_AUTH_SECRET the control plane uses into /etc/aegis/secrets.env, then restart aegis-agent';
    case 'http':
    case 'other':
      return `point CONTROL_BASE_URL at the control plane itself: curl -v ${base}/health must answer 200 with JSON`;
  }
}

function failed(name: string, f: ConnectFailure, base: string): CheckResult {
  return error(name, `${KIND_LABEL[f.kind]}: ${f.message}`, connectFix(f, base));
}

/** A server clock reading and the local instants around it. */
export interface ClockSample {
  skewMs: number;
  from: 'welcome' | '/health';
}

export interface HealthOutcome {
  result: CheckResult;
  clock?: ClockSample;
}

export async function checkHealth(base: string, timeoutMs: number): Promise<HealthOutcome> {
  const name = 'control_health';
  const target = targetOf(base);
  let res;
  try {
    res = await httpGet(`${base}/health`, timeoutMs);
  } catch (err) {
    if (err instanceof HttpGetTimeout) {
      const f: ConnectFailure = {
        code: 'AEGIS_ERR_CONTROL_UNREACHABLE',
        kind: 'timeout',
        message: `no answer from ${target.host}:${target.port} within ${timeoutMs / 1000} s: a firewall dropping packets?`,
      };
      return { result: failed(name, f, base) };
    }
    return { result: failed(name, describeConnectError(err, target), base) };
  }
  const fix = `point CONTROL_BASE_URL at the control plane itself: curl -v ${base}/health must answer 200 with JSON`;
  if (res.status !== 200) {
    return {
      result: error(name, `HTTP ${res.status}: GET ${base}/health did not answer 200`, fix),
    };
  }
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    const type = res.contentType || 'no content-type';
    return {
      result: error(
        name,
        `not JSON: GET ${base}/health answered 200 with ${type}: something other than the control plane answers here`,
        fix,
      ),
    };
  }
  const h = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  const ms = res.doneAt - res.sentAt;
  const clock =
    typeof h['server_time'] === 'number'
      ? {
          skewMs: measureSkew(res.sentAt, res.doneAt, h['server_time']),
          from: '/health' as const,
        }
      : undefined;
  const n = h['agents'];
  const agents =
    typeof n === 'number' ? `${n} agent${n === 1 ? '' : 's'} connected` : 'no agents count';
  const withClock = clock !== undefined ? { clock } : {};
  if (h['status'] !== 'ok') {
    return {
      ...withClock,
      result: warn(
        name,
        `answered 200 in ${ms} ms but status is ${JSON.stringify(h['status'] ?? null)} (${agents})`,
        "check the control plane's own log (journalctl -u aegis-control)",
      ),
    };
  }
  return { ...withClock, result: ok(name, `HTTP 200 in ${ms} ms, ${agents}`) };
}

export interface AuthOutcome {
  result: CheckResult;
  clock?: ClockSample;
  iceServers?: IceServer[];
}

/** The hello of a probe: draining and without toolchains or jobs, so nothing is offered to it. */
export function doctorHello(config: AgentConfig): string {
  return encode({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    agent_id: config.agentId,
    version: AGENT_VERSION,
    hostname: os.hostname().slice(0, 255),
    toolchains: [],
    capacity: { max_jobs: config.maxJobs, running: 0 },
    jobs: [],
    labels: { ...config.agentLabels },
    draining: true,
  });
}

export async function checkAgentAuth(
  base: string,
  config: AgentConfig,
  timeoutMs: number,
): Promise<AuthOutcome> {
  const name = 'agent_auth';
  const token = await createAgentToken({ agentId: config.agentId, secret: config.agentAuthSecret });
  const probe = await probeHello({
    url: controlWsUrl(base),
    target: targetOf(base),
    authorization: `Bearer ${token}`,
    hello: doctorHello(config),
    timeoutMs,
  });
  if (!probe.ok) {
    if (probe.failure.kind === 'auth') {
      return {
        result: error(
          name,
          "HTTP 401: the control plane refused this agent's token: AGENT_AUTH_SECRET differs from the control plane's (or this clock is over a minute off)",
          connectFix(probe.failure, base),
        ),
      };
    }
    return { result: failed(name, probe.failure, base) };
  }
  const n = probe.welcome.ice_servers.length;
  return {
    clock: { skewMs: probe.skewMs, from: 'welcome' },
    iceServers: probe.welcome.ice_servers,
    result: ok(
      name,
      `welcome for ${probe.welcome.agent_id} in ${probe.ms} ms (${n} ICE server${n === 1 ? '' : 's'}); closed at once`,
    ),
  };
}

export function checkClock(sample: ClockSample | undefined, why: string): CheckResult {
  const name = 'clock';
  if (sample === undefined) return skip(name, why);
  const s = (sample.skewMs / 1000).toFixed(1);
  const fix =
    'sync this clock: timedatectl set-ntp true (or chronyc makestep), and check the control plane host too';
  switch (skewVerdict(sample.skewMs)) {
    case 'error':
      return error(name, `skew ${s} s (from ${sample.from}): ${describeSkew(sample.skewMs)}`, fix);
    case 'warn':
      return warn(name, `skew ${s} s (from ${sample.from}): ${describeSkew(sample.skewMs)}`, fix);
    case 'ok':
      return ok(name, `in step with the control plane: skew ${s} s (from ${sample.from})`);
  }
}
