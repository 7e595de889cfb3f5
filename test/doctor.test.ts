// doctor against real loopback servers: the dev control plane on port 0, a closed port, a name
// that does not resolve, the stand-in toolchains. One failure per case, named by its own check.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DevControlPlane } from '../src/dev/index.js';
import { runDoctor, type DoctorReport, formatJson, formatText } from '../src/doctor/index.js';
import { createLogger } from '../src/log/index.js';
import { testEnv, tmpDir } from './helpers/agent-env.js';

const SECRET = 'doctor-test-secret-7f3a9c2e51';
const planes: DevControlPlane[] = [];

async function plane(
  extra: Partial<Parameters<typeof DevControlPlane.start>[0]> = {},
): Promise<DevControlPlane> {
  const p = await DevControlPlane.start({
    agentAuthSecret: SECRET,
    port: 0,
    logger: createLogger({ level: 'silent' }),
    ...extra,
  });
  planes.push(p);
  return p;
}

// No cleanupNodeDataChannel() here: peer connections closed earlier may still be collected
// after it, which kills the worker; the doctor-cli test covers cleanup in a real process.
afterAll(async () => {
  await Promise.all(planes.map((p) => p.close()));
});

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function doctor(extra: Record<string, string>): Promise<DoctorReport> {
  const env = testEnv({ AGENT_AUTH_SECRET: SECRET, ...extra });
  const report = await runDoctor({ env, cleanupWebRtc: false, unitEnvFile: '/nonexistent' });
  // Whatever the case, the secret never appears, in either format.
  for (const text of [formatText(report), formatJson(report)]) expect(text).not.toContain(SECRET);
  return report;
}

function check(report: DoctorReport, name: string) {
  const c = report.checks.find((x) => x.name === name);
  if (!c) throw new Error(`no check ${name} in ${formatText(report)}`);
  return c;
}

describe('doctor', () => {
  it('healthy: every check ok, ice warns without STUN/TURN, report ok', async () => {
    const p = await plane();
    const started = Date.now();
    const report = await doctor({ CONTROL_BASE_URL: p.url });
    const text = formatText(report);
    expect(
      report.checks.map((c) => [c.name, c.status]),
      text,
    ).toEqual([
      ['config', 'ok'],
      ['secret', 'ok'],
      ['control_url', 'ok'],
      ['control_health', 'ok'],
      ['agent_auth', 'ok'],
      ['clock', 'ok'],
      ['toolchains', 'ok'],
      ['work_dir', 'ok'],
      ['ice', 'warn'],
    ]);
    expect(report.ok).toBe(true);
    expect(check(report, 'secret').detail).toContain('environment');
    expect(check(report, 'toolchains').detail).toContain('5.3.1');
    expect(check(report, 'ice').detail).toContain('host');
    // The probe closed at once: the plane has no agent connected once doctor returns.
    await expect.poll(() => p.agentList().filter((a) => a.connected).length).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    // Aligned: the detail starts at the same column on every line.
    const columns = text.split('\n').map((l) => /^\S+\s+\S+\s+/.exec(l)?.[0].length);
    expect(new Set(columns).size).toBe(1);
  });

  it('the secret from the systemd credential is named as such', async () => {
    const p = await plane();
    const creds = tmpDir('aegis-creds-');
    fs.writeFileSync(path.join(creds, 'agent-secrets'), `AGENT_AUTH_SECRET=${SECRET}\n`);
    const env = testEnv({ CONTROL_BASE_URL: p.url, CREDENTIALS_DIRECTORY: creds });
    const report = await runDoctor({ env, cleanupWebRtc: false, hello: false });
    expect(check(report, 'secret').status).toBe('ok');
    expect(check(report, 'secret').detail).toContain('credential');
    expect(check(report, 'agent_auth').status).toBe('skip');
    expect(formatJson(report)).not.toContain(SECRET);
  });

  it('no secret: secret error, agent_auth skipped, clock from /health', async () => {
    const p = await plane();
    const env = testEnv({ CONTROL_BASE_URL: p.url });
    const report = await runDoctor({ env, cleanupWebRtc: false });
    expect(check(report, 'secret')).toMatchObject({ status: 'error' });
    expect(check(report, 'secret').fix).toContain('/etc/aegis/secrets.env');
    expect(check(report, 'agent_auth').status).toBe('skip');
    expect(check(report, 'clock').status).toBe('ok');
    expect(check(report, 'clock').detail).toContain('/health');
    expect(report.ok).toBe(false);
  });

  it('CONTROL_BASE_URL without a scheme', async () => {
    const report = await doctor({ CONTROL_BASE_URL: '127.0.0.1:7800' });
    expect(check(report, 'control_url').status).toBe('error');
    expect(check(report, 'control_url').detail).toContain('no scheme');
    expect(check(report, 'control_health').status).toBe('skip');
    expect(check(report, 'config').detail).toContain('CONTROL_BASE_URL');
    expect(report.ok).toBe(false);
  });

  it('CONTROL_BASE_URL with a trailing slash', async () => {
    const report = await doctor({ CONTROL_BASE_URL: 'http://127.0.0.1:7800/' });
    expect(check(report, 'control_url').status).toBe('error');
    expect(check(report, 'control_url').detail).toContain('trailing slash');
    expect(report.ok).toBe(false);
  });

  it('an SSH alias instead of a host', async () => {
    const report = await doctor({ CONTROL_BASE_URL: 'ops@buildbox' });
    expect(check(report, 'control_url').status).toBe('error');
    expect(check(report, 'control_url').detail).toContain('SSH alias');
  });

  it('nothing listens on the port: refused', async () => {
    const port = await closedPort();
    const report = await doctor({ CONTROL_BASE_URL: `http://127.0.0.1:${port}` });
    const c = check(report, 'control_health');
    expect(c.status).toBe('error');
    expect(c.detail).toMatch(/^refused: nothing listens on 127\.0\.0\.1:\d+/);
    expect(check(report, 'agent_auth').status).toBe('skip');
    expect(check(report, 'agent_auth').detail).toContain('control_health');
    expect(check(report, 'ice').status).toBe('skip');
    expect(report.ok).toBe(false);
  });

  it('a host that does not resolve: DNS', async () => {
    const report = await doctor({ CONTROL_BASE_URL: 'http://does-not-exist.invalid' });
    const c = check(report, 'control_health');
    expect(c.status).toBe('error');
    expect(c.detail).toMatch(/^DNS: cannot resolve host does-not-exist\.invalid/);
    expect(c.fix).toContain('IP form');
    expect(report.ok).toBe(false);
  });

  it('a silent server: timeout', async () => {
    // Accepts TCP and never answers: what a proxy stuck upstream looks like.
    const sockets: net.Socket[] = [];
    const srv = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as net.AddressInfo;
    try {
      const env = testEnv({
        AGENT_AUTH_SECRET: SECRET,
        CONTROL_BASE_URL: `http://127.0.0.1:${port}`,
      });
      const report = await runDoctor({ env, cleanupWebRtc: false, timeouts: { healthMs: 300 } });
      expect(check(report, 'control_health').status).toBe('error');
      expect(check(report, 'control_health').detail).toMatch(/^timeout: /);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('a web server that is not the control plane: HTTP status, then not JSON', async () => {
    const http = await import('node:http');
    let body = { status: 404, text: 'not here' };
    const srv = http.createServer((_req, res) => {
      res.writeHead(body.status, { 'content-type': 'text/html' });
      res.end(body.text);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as net.AddressInfo;
    try {
      const url = `http://127.0.0.1:${port}`;
      let report = await doctor({ CONTROL_BASE_URL: url });
      expect(check(report, 'control_health').detail).toMatch(/^HTTP 404/);
      body = { status: 200, text: '<html>captive portal</html>' };
      report = await doctor({ CONTROL_BASE_URL: url });
      expect(check(report, 'control_health').status).toBe('error');
      expect(check(report, 'control_health').detail).toMatch(/^not JSON/);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('a control plane with another secret: 401', async () => {
    const p = await plane({ agentAuthSecret: 'the-control-planes-other-secret' });
    const report = await doctor({ CONTROL_BASE_URL: p.url });
    expect(check(report, 'control_health').status).toBe('ok');
    const c = check(report, 'agent_auth');
    expect(c.status).toBe('error');
    expect(c.detail).toContain('401');
    expect(c.detail).toContain('AGENT_AUTH_SECRET');
    // The clock still gets measured, from /health.
    expect(check(report, 'clock').status).toBe('ok');
    expect(check(report, 'ice').status).toBe('skip');
    expect(report.ok).toBe(false);
  });

  it('a control plane 40 s off: clock error', async () => {
    const p = await plane({ clockOffsetMs: 40_000 });
    const report = await doctor({ CONTROL_BASE_URL: p.url });
    expect(check(report, 'agent_auth').status).toBe('ok');
    const c = check(report, 'clock');
    expect(c.status).toBe('error');
    expect(c.detail).toContain('welcome');
    expect(c.detail).toContain('NTP');
    expect(c.fix).toContain('timedatectl');
    expect(report.ok).toBe(false);
  });

  it('a control plane 10 s off: clock warning only, still ok', async () => {
    const p = await plane({ clockOffsetMs: -10_000 });
    const report = await doctor({ CONTROL_BASE_URL: p.url });
    expect(check(report, 'clock').status).toBe('warn');
    expect(report.ok).toBe(true);
  });

  it('an empty toolchains dir: toolchains error', async () => {
    const report = await doctor({
      TOOLCHAINS_DIR: tmpDir('aegis-empty-tc-'),
      CONTROL_BASE_URL: 'http://127.0.0.1:1',
    });
    const c = check(report, 'toolchains');
    expect(c.status).toBe('error');
    expect(c.detail).toContain('no usable ESP-IDF toolchain');
    expect(c.fix).toContain('provision-toolchain.sh');
  });

  it('a broken install is a warning of its own beside the usable ones', async () => {
    const root = tmpDir('aegis-tc-');
    for (const name of fs.readdirSync(path.resolve('toolchains'))) {
      if (fs.statSync(path.resolve('toolchains', name)).isDirectory()) {
        fs.symlinkSync(path.resolve('toolchains', name), path.join(root, name));
      }
    }
    fs.mkdirSync(path.join(root, 'esp-idf-broken', 'tools'), { recursive: true });
    fs.writeFileSync(path.join(root, 'esp-idf-broken', 'tools', 'idf.py'), '');
    const report = await doctor({ TOOLCHAINS_DIR: root, CONTROL_BASE_URL: 'http://127.0.0.1:1' });
    expect(check(report, 'toolchains').status).toBe('ok');
    const broken = check(report, 'toolchain:esp-idf-broken');
    expect(broken.status).toBe('warn');
    expect(broken.detail).toContain('version.cmake');
  });

  it('the disk floor: below it error, within 2× warn', async () => {
    const huge = String(Number.MAX_SAFE_INTEGER);
    let report = await doctor({ DISK_FLOOR_BYTES: huge, CONTROL_BASE_URL: 'http://127.0.0.1:1' });
    expect(check(report, 'work_dir').status).toBe('error');
    expect(check(report, 'work_dir').detail).toContain('not claimed below the floor');
    const st = fs.statfsSync(tmpDir());
    const free = st.bavail * st.bsize;
    report = await doctor({
      DISK_FLOOR_BYTES: String(Math.floor(free * 0.75)),
      CONTROL_BASE_URL: 'http://127.0.0.1:1',
    });
    expect(check(report, 'work_dir').status).toBe('warn');
  });

  it('a work dir that cannot be written', async () => {
    if (process.getuid?.() === 0) return; // root writes anywhere
    const ro = tmpDir('aegis-ro-');
    fs.chmodSync(ro, 0o500);
    const report = await doctor({
      WORK_DIR: path.join(ro, 'work'),
      CONTROL_BASE_URL: 'http://127.0.0.1:1',
    });
    expect(check(report, 'work_dir').status).toBe('error');
    expect(check(report, 'work_dir').detail).toContain('EACCES');
  });

  it('a work dir that is a file', async () => {
    const file = path.join(tmpDir(), 'not-a-dir');
    fs.writeFileSync(file, '');
    const report = await doctor({ WORK_DIR: file, CONTROL_BASE_URL: 'http://127.0.0.1:1' });
    expect(check(report, 'work_dir').status).toBe('error');
    expect(check(report, 'work_dir').detail).toContain('not a directory');
  });

  it('missing dirs are not created, only checked', async () => {
    const root = tmpDir();
    const report = await doctor({
      WORK_DIR: path.join(root, 'a', 'work'),
      STATE_DIR: path.join(root, 'b', 'state'),
      CONTROL_BASE_URL: 'http://127.0.0.1:1',
    });
    expect(check(report, 'work_dir').status).toBe('ok');
    expect(check(report, 'work_dir').detail).toContain('not created yet');
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('TURN offered but unreachable: ice error, credentials never shown', async () => {
    const turnCredential = 'turn-credential-9d8e7f';
    const port = await closedPort();
    const p = await plane({
      iceServers: [
        {
          urls: `turn:127.0.0.1:${port}`,
          username: '1700000000:agent',
          credential: turnCredential,
        },
      ],
    });
    const report = await doctor({ CONTROL_BASE_URL: p.url });
    const c = check(report, 'ice');
    expect(c.status).toBe('error');
    expect(c.detail).toContain('TURN relay unreachable');
    expect(formatJson(report)).not.toContain(turnCredential);
    expect(formatText(report)).not.toContain(turnCredential);
    expect(report.ok).toBe(false);
  });

  it('a bad setting elsewhere: config names it, the rest still runs with defaults', async () => {
    const p = await plane();
    const report = await doctor({ CONTROL_BASE_URL: p.url, PTY_COLS: 'wide', MAX_JOBS: '0' });
    const c = check(report, 'config');
    expect(c.status).toBe('error');
    expect(c.detail).toContain('PTY_COLS');
    expect(c.detail).toContain('MAX_JOBS');
    expect(check(report, 'agent_auth').status).toBe('ok');
    expect(check(report, 'toolchains').status).toBe('ok');
  });

  it('a bad TOOLCHAINS_DIR or AGENT_ID skips what depends on it', async () => {
    const p = await plane();
    const report = await doctor({
      CONTROL_BASE_URL: p.url,
      TOOLCHAINS_DIR: '',
      AGENT_ID: 'no spaces allowed',
    });
    expect(check(report, 'toolchains')).toMatchObject({ status: 'skip' });
    expect(check(report, 'toolchains').detail).toContain('TOOLCHAINS_DIR');
    expect(check(report, 'agent_auth')).toMatchObject({ status: 'skip' });
    expect(check(report, 'agent_auth').detail).toContain('AGENT_ID');
  });
});
