import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  controlUrlProblem,
  controlWsUrl,
  loadConfig,
  parseConfig,
  parseEnvFile,
} from '../src/config/index.js';
import { isAegisError } from '../src/errors.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-config-'));

describe('config', () => {
  it('applies defaults and freezes the result', () => {
    const config = loadConfig({
      env: { STATE_DIRECTORY: '/var/lib/x', CACHE_DIRECTORY: '/var/cache/x' },
    });
    expect(config.sendQueueBytes).toBe(131072);
    expect(config.chunkBytes).toBe(16384);
    expect(config.stateDir).toBe('/var/lib/x');
    expect(config.workDir).toBe('/var/cache/x/work');
    expect(config.toolchainsDir).toEqual(['/opt/aegis/toolchains']);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.toolchainsDir)).toBe(true);
  });

  it('names every bad key and what it expects', () => {
    const result = parseConfig({
      env: {
        MAX_JOBS: 'lots',
        CONTROL_BASE_URL: 'build-server/',
        LOG_LEVEL: 'loud',
        AGENT_LABELS: 'oops',
      },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map((i) => i.key).sort()).toEqual([
      'AGENT_LABELS',
      'CONTROL_BASE_URL',
      'LOG_LEVEL',
      'MAX_JOBS',
    ]);
    try {
      loadConfig({ env: { MAX_JOBS: '0', SEND_QUEUE_BYTES: 'x' } });
      expect.unreachable();
    } catch (err) {
      expect(isAegisError(err, 'AEGIS_ERR_CONFIG')).toBe(true);
      expect((err as Error).message).toContain('MAX_JOBS');
      expect((err as Error).message).toContain('SEND_QUEUE_BYTES');
    }
  });

  it('lets the environment win over the file, and flags unknown or secret keys in the file', () => {
    const dir = tmp();
    const file = path.join(dir, 'agent.env');
    fs.writeFileSync(file, '# comment\nMAX_JOBS=3\nLOG_LEVEL="debug"\nRETENTION_S=60\n');
    const config = loadConfig({ env: { MAX_JOBS: '5' }, file });
    expect(config.maxJobs).toBe(5);
    expect(config.logLevel).toBe('debug');
    expect(config.retentionS).toBe(60);

    fs.writeFileSync(file, 'MAX_JBOS=3\nAGENT_AUTH_SECRET=abcdefghij\n');
    const bad = parseConfig({ env: {}, file });
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.issues.map((i) => i.key).sort()).toEqual(['AGENT_AUTH_SECRET', 'MAX_JBOS']);
  });

  it('reads secrets from the systemd credential when present, else from the environment', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'agent-secrets'), 'AGENT_AUTH_SECRET=from-credential-123\n');
    const viaCred = parseConfig({
      env: { CREDENTIALS_DIRECTORY: dir, AGENT_AUTH_SECRET: 'from-env-123456' },
    });
    expect(viaCred.ok && viaCred.config.agentAuthSecret).toBe('from-credential-123');
    expect(viaCred.ok && viaCred.secretSource).toBe('credentials');
    const viaEnv = parseConfig({ env: { AGENT_AUTH_SECRET: 'from-env-123456' } });
    expect(viaEnv.ok && viaEnv.config.agentAuthSecret).toBe('from-env-123456');
  });

  it('never echoes a secret value in its error', () => {
    const result = parseConfig({ env: { AGENT_AUTH_SECRET: 'short' } });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(JSON.stringify(result.issues)).not.toContain('short"');
  });

  it('parses KEY=VALUE files like systemd EnvironmentFile', () => {
    const { values, issues } = parseEnvFile(
      'A=1\nexport B = two\nC="q \\"x\\""\nD=\'s\'\nnot a line\n',
    );
    expect(values).toEqual({ A: '1', B: 'two', C: 'q "x"', D: 's' });
    expect(issues).toEqual([{ line: 5, text: 'expected KEY=VALUE' }]);
  });
});

describe('CONTROL_BASE_URL', () => {
  it.each([
    ['aegis.example.com', 'no scheme'],
    ['http://aegis.example.com/', 'trailing slash'],
    ['git@build-host', 'SSH alias'],
    ['build-host:repo', 'SSH alias'],
    ['ws://x.example.com', 'ws://'],
    ['http://user:pw@x.example.com', 'credentials'],
    ['', 'expected a URL'],
  ])('refuses %j (%s)', (value, why) => {
    expect(controlUrlProblem(value)).toContain(why);
  });

  it('accepts plain URLs and derives the WebSocket URL', () => {
    expect(controlUrlProblem('https://aegis.example.com')).toBeUndefined();
    expect(controlUrlProblem('http://127.0.0.1:7800')).toBeUndefined();
    expect(controlWsUrl('https://aegis.example.com')).toBe('wss://aegis.example.com/agent/v1/ws');
    expect(controlWsUrl('http://127.0.0.1:7800/prefix')).toBe(
      'ws://127.0.0.1:7800/prefix/agent/v1/ws',
    );
  });
});

describe('README settings table', () => {
  it('lists every setting with its true default', async () => {
    const { SETTINGS } = await import('../src/config/index.js');
    const readme = fs.readFileSync(path.join(import.meta.dirname, '..', 'README.md'), 'utf8');
    for (const s of Object.values(SETTINGS)) {
      const def =
        typeof s.default === 'function'
          ? '(derived)'
          : s.default === undefined
            ? '(unset)'
            : s.default === ''
              ? '(empty)'
              : s.default;
      expect(readme, s.env).toContain(`| \`${s.env}\` | \`${def}\` |`);
    }
  });
});
