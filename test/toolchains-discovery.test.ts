import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { discoverToolchains } from '../src/toolchains/index.js';

const repo = path.resolve(import.meta.dirname, '..');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'aegis-tc-'));

function rootWithBroken(): string {
  const root = tmp();
  for (const name of ['esp-idf-sim', 'esp-idf-sim-v5.1']) {
    fs.symlinkSync(path.join(repo, 'toolchains', name), path.join(root, name));
  }
  // An install whose idf.py is missing, one whose export.sh fails, and a plain directory.
  fs.mkdirSync(path.join(root, 'half-installed', 'tools', 'cmake'), { recursive: true });
  fs.writeFileSync(
    path.join(root, 'half-installed', 'tools', 'cmake', 'version.cmake'),
    'set(IDF_VERSION_MAJOR 5)\n',
  );
  const bad = path.join(root, 'bad-export');
  fs.mkdirSync(path.join(bad, 'tools', 'cmake'), { recursive: true });
  fs.writeFileSync(path.join(bad, 'tools', 'idf.py'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  fs.writeFileSync(
    path.join(bad, 'tools', 'cmake', 'version.cmake'),
    'set(IDF_VERSION_MAJOR 5)\nset(IDF_VERSION_MINOR 2)\nset(IDF_VERSION_PATCH 0)\n',
  );
  fs.writeFileSync(path.join(bad, 'export.sh'), 'echo "python env missing" >&2\nreturn 1\n');
  fs.mkdirSync(path.join(root, 'not-an-install'));
  return root;
}

describe('toolchain discovery', () => {
  it('finds both stand-in installs with versions and targets, and lists broken ones with a reason', async () => {
    const root = rootWithBroken();
    const cacheDir = tmp();
    const scan = await discoverToolchains({
      roots: [root, path.join(root, 'missing')],
      cacheDir,
      idfToolsPath: tmp(),
    });
    expect(scan.toolchains.map((t) => [t.id, t.idfVersion])).toEqual([
      ['esp-idf-sim', '5.3.1'],
      ['esp-idf-sim-v5.1', '5.1.4'],
    ]);
    const v53 = scan.toolchains[0]!;
    expect(v53.targets).toEqual([
      'esp32',
      'esp32s2',
      'esp32c3',
      'esp32s3',
      'esp32c2',
      'esp32c6',
      'esp32h2',
      'esp32p4',
    ]);
    expect(v53.previewTargets).toEqual(['linux', 'esp32c5', 'esp32c61']);
    expect(scan.toolchains[1]!.targets).not.toContain('esp32p4');
    expect(v53.env['IDF_PATH']).toBe(path.join(root, 'esp-idf-sim'));
    expect(v53.env['PATH']).toContain(path.join(root, 'esp-idf-sim', 'tools'));
    const broken = Object.fromEntries(scan.broken.map((b) => [b.id, b.reason]));
    expect(Object.keys(broken).sort()).toEqual(['bad-export', 'half-installed', 'missing']);
    expect(broken['half-installed']).toContain('tools/idf.py is missing');
    expect(broken['bad-export']).toContain('export.sh failed');
    expect(broken['missing']).toContain('ENOENT');
  });

  it('captures the environment once and reuses the cache until the install changes', async () => {
    const root = rootWithBroken();
    const cacheDir = tmp();
    const opts = { roots: [root], cacheDir, idfToolsPath: tmp() };
    await discoverToolchains(opts);
    const files = fs
      .readdirSync(path.join(cacheDir, 'toolchains'))
      .filter((f) => f.endsWith('.json'));
    expect(files).toHaveLength(2);
    // Poison the cached copy: if the second scan reads the cache, it sees the poison.
    const file = path.join(cacheDir, 'toolchains', files[0]!);
    const cached = JSON.parse(fs.readFileSync(file, 'utf8')) as { env: Record<string, string> };
    cached.env['IDF_SIM_CACHE_MARK'] = 'from-cache';
    fs.writeFileSync(file, JSON.stringify(cached));
    const again = await discoverToolchains(opts);
    expect(again.toolchains.some((t) => t.env['IDF_SIM_CACHE_MARK'] === 'from-cache')).toBe(true);
  });

  it('never captures the agent environment into a toolchain', async () => {
    process.env['AEGIS_TEST_SECRET'] = 'do-not-capture';
    const scan = await discoverToolchains({
      roots: [path.join(repo, 'toolchains')],
      cacheDir: tmp(),
      idfToolsPath: tmp(),
    });
    for (const tc of scan.toolchains)
      expect(JSON.stringify(tc.env)).not.toContain('do-not-capture');
  });

  it('aegis-agent toolchains --json lists both installs; exit 1 when none is usable', async () => {
    const cli = path.join(repo, 'dist', 'cli.js');
    const env = {
      TOOLCHAINS_DIR: path.join(repo, 'toolchains'),
      CACHE_DIR: tmp(),
      PATH: process.env['PATH'] ?? '',
    };
    const ok = await execa('node', [cli, 'toolchains', '--json'], {
      env,
      extendEnv: false,
      reject: false,
    });
    expect(ok.exitCode).toBe(0);
    const rows = (
      JSON.parse(ok.stdout) as {
        toolchains: { id: string; idf_version: string; status: string; targets: string[] }[];
      }
    ).toolchains;
    expect(rows.map((r) => [r.id, r.idf_version, r.status])).toEqual([
      ['esp-idf-sim', '5.3.1', 'ok'],
      ['esp-idf-sim-v5.1', '5.1.4', 'ok'],
    ]);
    const none = await execa('node', [cli, 'toolchains'], {
      env: { ...env, TOOLCHAINS_DIR: tmp() },
      extendEnv: false,
      reject: false,
    });
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toContain('No ESP-IDF install found');
  });
});
