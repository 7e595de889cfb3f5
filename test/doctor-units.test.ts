// doctor's pure decisions: ICE verdicts, disk verdicts, toolchain rows, fixes per failure
// kind, output format and secret scrubbing — without sockets.
import { describe, expect, it } from 'vitest';
import {
  candidateType,
  iceVerdict,
  shownUrl,
  type CandidateType,
} from '../src/doctor/checks-ice.js';
import { connectFix, doctorHello } from '../src/doctor/checks-control.js';
import { diskVerdict, formatBytes, toolchainRows } from '../src/doctor/checks-local.js';
import {
  formatJson,
  formatText,
  makeReport,
  redactReport,
  error,
  ok,
  skip,
} from '../src/doctor/report.js';
import { parseAgentMessage } from '../src/control/messages.js';
import { testConfig } from './helpers/agent-env.js';

const types = (...t: CandidateType[]) => new Set(t);
const base = { skipped: [], timeoutMs: 5000 };

describe('ice verdict', () => {
  it('reads the candidate type', () => {
    expect(candidateType('a=candidate:1 1 UDP 2122260223 192.0.2.2 50000 typ host')).toBe('host');
    expect(
      candidateType(
        'candidate:2 1 UDP 1686052607 203.0.113.9 4000 typ srflx raddr 0.0.0.0 rport 0',
      ),
    ).toBe('srflx');
    expect(candidateType('candidate:3 1 UDP 16777215 198.51.100.1 5000 typ relay')).toBe('relay');
    expect(candidateType('garbage')).toBeUndefined();
  });

  it('no servers: warn; no host: error', () => {
    expect(iceVerdict({ ...base, servers: [], urls: [], types: types('host') }).status).toBe(
      'warn',
    );
    expect(iceVerdict({ ...base, servers: [], urls: [], types: types() }).status).toBe('error');
  });

  it('STUN without srflx warns; TURN without relay is an error', () => {
    const stun = { urls: 'stun:stun.example.com:3478' };
    const turn = { urls: 'turn:relay.example.com', username: 'u', credential: 'p' };
    expect(
      iceVerdict({
        ...base,
        servers: [stun],
        urls: ['stun:stun.example.com:3478'],
        types: types('host'),
      }).status,
    ).toBe('warn');
    const r = iceVerdict({
      ...base,
      servers: [stun, turn],
      urls: ['stun:stun.example.com:3478', 'turn:u:p@relay.example.com:3478'],
      types: types('host', 'srflx'),
    });
    expect(r.status).toBe('error');
    expect(r.detail).toContain('turn:relay.example.com:3478');
    expect(r.detail).not.toContain('u:p@');
    expect(
      iceVerdict({
        ...base,
        servers: [stun, turn],
        urls: ['stun:stun.example.com:3478', 'turn:u:p@relay.example.com:3478'],
        types: types('host', 'srflx', 'relay'),
      }).status,
    ).toBe('ok');
  });

  it('servers none of which node-datachannel can use: warn', () => {
    const r = iceVerdict({
      ...base,
      servers: [{ urls: 'turns:relay.example.com:443' }],
      urls: [],
      skipped: ['turns:relay.example.com:443: only TURN over UDP is supported'],
      types: types('host'),
    });
    expect(r.status).toBe('warn');
    expect(r.detail).toContain('UDP');
  });

  it('never shows TURN credentials', () => {
    expect(shownUrl('turn:1700000000%3Aagent:s3cr3t@relay:3478')).toBe('turn:relay:3478');
    expect(shownUrl('stun:stun:3478')).toBe('stun:stun:3478');
  });
});

describe('disk and toolchains', () => {
  it('disk floor', () => {
    expect(diskVerdict(1, 2)).toBe('below');
    expect(diskVerdict(3, 2)).toBe('low');
    expect(diskVerdict(4, 2)).toBe('ok');
    expect(diskVerdict(0, 0)).toBe('ok');
    expect(formatBytes(2 * 1024 ** 3)).toBe('2.0 GiB');
  });

  it('rows: an error when nothing is usable, a warning per broken install', () => {
    const rows = toolchainRows(
      {
        toolchains: [],
        broken: [{ id: 'v5.2', path: '/opt/tc/v5.2', reason: 'export.sh is missing' }],
      },
      ['/opt/tc'],
    );
    expect(rows.map((r) => [r.name, r.status])).toEqual([
      ['toolchains', 'error'],
      ['toolchain:v5.2', 'warn'],
    ]);
    expect(rows[1]?.detail).toContain('export.sh is missing');
  });
});

describe('control', () => {
  const fail = (kind: Parameters<typeof connectFix>[0]['kind']) =>
    connectFix(
      { code: 'AEGIS_ERR_CONTROL_UNREACHABLE', kind, message: '' },
      'https://cp.example.com:8443',
    );

  it('one fix per failure kind', () => {
    expect(fail('dns')).toContain('https://<ip>:8443');
    expect(fail('refused')).toContain('8443');
    expect(fail('timeout')).toContain('firewall');
    expect(fail('tls')).toContain('CA');
    expect(fail('auth')).toContain('AGENT_AUTH_SECRET');
  });

  it("doctor's hello is valid, draining, with no toolchains or jobs", () => {
    const parsed = parseAgentMessage(doctorHello(testConfig()));
    expect(parsed.kind).toBe('ok');
    if (parsed.kind !== 'ok' || parsed.message.type !== 'hello') throw new Error('not a hello');
    expect(parsed.message).toMatchObject({
      draining: true,
      toolchains: [],
      jobs: [],
      agent_id: 'agent-test',
    });
  });
});

describe('report', () => {
  const report = makeReport([
    ok('config', 'valid (34 settings)'),
    error('control_health', 'DNS: cannot resolve host x', 'use the IP form'),
    skip('agent_auth', 'control_health failed'),
  ]);

  it('aligned text, fix after the detail', () => {
    expect(formatText(report).split('\n')).toEqual([
      'ok     config         valid (34 settings)',
      'error  control_health DNS: cannot resolve host x — fix: use the IP form',
      'skip   agent_auth     control_health failed',
    ]);
    expect(report.ok).toBe(false);
  });

  it('json shape', () => {
    const json = JSON.parse(formatJson(report)) as {
      checks: Record<string, unknown>[];
      ok: boolean;
    };
    expect(json.ok).toBe(false);
    expect(json.checks[0]).toEqual({ name: 'config', status: 'ok', detail: 'valid (34 settings)' });
    expect(json.checks[1]?.['fix']).toBe('use the IP form');
  });

  it('scrubs secret values, quotes included', () => {
    const secret = 'pa"ss\\word-123';
    const r = redactReport(makeReport([error('x', `got ${secret}`, `not ${secret}`)]), [secret]);
    expect(formatJson(r)).not.toContain(JSON.stringify(secret).slice(1, -1));
    expect(formatText(r)).not.toContain(secret);
  });
});
