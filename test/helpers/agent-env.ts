// A real AgentConfig over temp dirs, and the stand-in toolchains discovered for real.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type AgentConfig } from '../../src/config/index.js';
import { discoverToolchains, type Toolchain } from '../../src/toolchains/index.js';

export const REPO = path.resolve(import.meta.dirname, '..', '..');

export const tmpDir = (prefix = 'aegis-') => fs.mkdtempSync(path.join(os.tmpdir(), prefix));

export function testEnv(extra: Record<string, string> = {}): Record<string, string> {
  const root = tmpDir('aegis-agent-');
  return {
    AGENT_ID: 'agent-test',
    STATE_DIR: path.join(root, 'state'),
    CACHE_DIR: path.join(root, 'cache'),
    WORK_DIR: path.join(root, 'work'),
    TOOLCHAINS_DIR: path.join(REPO, 'toolchains'),
    IDF_TOOLS_PATH: path.join(root, 'espressif'),
    DISK_FLOOR_BYTES: '0',
    KILL_GRACE_S: '2',
    METRICS_ADDR: 'off',
    ...extra,
  };
}

export function testConfig(extra: Record<string, string> = {}): AgentConfig {
  return loadConfig({ env: testEnv(extra) });
}

let cached: Promise<Toolchain[]> | undefined;

export function simToolchains(config: AgentConfig): Promise<Toolchain[]> {
  cached ??= discoverToolchains({
    roots: config.toolchainsDir,
    cacheDir: config.cacheDir,
    idfToolsPath: config.idfToolsPath,
  }).then((s) => s.toolchains);
  return cached;
}

/** True while `pid` runs (a zombie counts as gone: it has exited and only awaits its parent). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !st.slice(st.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}
