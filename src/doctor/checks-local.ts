// Doctor checks of this machine: `toolchains` (what discovery finds under TOOLCHAINS_DIR, each
// broken install with its reason) and `work_dir` (WORK_DIR and STATE_DIR writable, free disk
// against DISK_FLOOR_BYTES).
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { AgentConfig } from '../config/index.js';
import { discoverToolchains, type ToolchainScan } from '../toolchains/index.js';
import { error, ok, warn, type CheckResult } from './report.js';

const PROVISION = 'scripts/provision-toolchain.sh <version> <targets> (e.g. 5.3.1 esp32,esp32c3)';

/** The scan as rows: `toolchains` first, then one warn row per broken install. Pure. */
export function toolchainRows(scan: ToolchainScan, roots: readonly string[]): CheckResult[] {
  const where = roots.join(':');
  const broken = scan.broken.map((b) =>
    warn(
      `toolchain:${b.id}`,
      `${b.path}: ${b.reason}`,
      `repair or remove it; ${PROVISION} installs a working one`,
    ),
  );
  if (scan.toolchains.length === 0) {
    const also = scan.broken.length > 0 ? ` (${scan.broken.length} broken, below)` : '';
    return [
      error(
        'toolchains',
        `no usable ESP-IDF toolchain under ${where}${also}: no job can be claimed`,
        `provision one with ${PROVISION}`,
      ),
      ...broken,
    ];
  }
  const list = scan.toolchains
    .map((tc) => `v${tc.idfVersion} (${tc.targets.join(' ')})`)
    .join('; ');
  return [ok('toolchains', `${scan.toolchains.length} usable: ${list}`), ...broken];
}

export async function checkToolchains(
  config: AgentConfig,
  deadlineMs: number,
): Promise<CheckResult[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), deadlineMs);
  });
  const scan = await Promise.race([
    discoverToolchains({
      roots: config.toolchainsDir,
      cacheDir: config.cacheDir,
      idfToolsPath: config.idfToolsPath,
    }),
    late,
  ]).finally(() => clearTimeout(timer));
  if (scan === undefined) {
    return [
      warn(
        'toolchains',
        `discovery under ${config.toolchainsDir.join(':')} still runs after ${deadlineMs / 1000} s (the first export.sh capture of an install is slow, later ones are cached)`,
        'run "aegis-agent toolchains" to see it finish',
      ),
    ];
  }
  return toolchainRows(scan, config.toolchainsDir);
}

/** "2.0 GiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export type DiskVerdict = 'ok' | 'low' | 'below';

/** Below the floor no job is claimed; within 2× of it the machine is close. */
export function diskVerdict(freeBytes: number, floorBytes: number): DiskVerdict {
  if (freeBytes < floorBytes) return 'below';
  if (freeBytes < 2 * floorBytes) return 'low';
  return 'ok';
}

/** `dir`, or its closest ancestor that exists. */
async function nearestExisting(dir: string): Promise<string> {
  for (let d = dir; ; d = path.dirname(d)) {
    if (
      await fs.stat(d).then(
        () => true,
        () => false,
      )
    )
      return d;
    if (path.dirname(d) === d) return d;
  }
}

interface DirProbe {
  problem?: string;
  /** Set when the directory does not exist yet (the agent or systemd creates it). */
  missingUnder?: string;
}

/**
 * An existing directory gets a probe file written and removed; a missing one is not created
 * (doctor run as root would leave root-owned directories): its closest ancestor must be writable.
 */
async function probeDir(label: string, dir: string): Promise<DirProbe> {
  const at = await nearestExisting(dir);
  if (at !== dir) {
    try {
      await fs.access(at, fsConstants.W_OK | fsConstants.X_OK);
      return { missingUnder: at };
    } catch (err) {
      return {
        problem: `${label} ${dir} does not exist and ${at} is not writable (${codeOf(err)})`,
      };
    }
  }
  if (!(await fs.stat(dir)).isDirectory()) return { problem: `${label} ${dir} is not a directory` };
  const probe = path.join(dir, `.aegis-doctor-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await fs.writeFile(probe, 'probe\n', { flag: 'wx' });
    await fs.rm(probe, { force: true });
  } catch (err) {
    return { problem: `${label} ${dir} is not writable (${codeOf(err)})` };
  }
  return {};
}

function codeOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

export async function checkWorkDir(config: AgentConfig): Promise<CheckResult> {
  const name = 'work_dir';
  const asRoot = process.getuid?.() === 0 ? ' (checked as root: the service user may differ)' : '';
  const dirs = [
    { label: 'WORK_DIR', dir: config.workDir },
    { label: 'STATE_DIR', dir: config.stateDir },
  ];
  const probes = await Promise.all(dirs.map((d) => probeDir(d.label, d.dir)));
  const problems = probes.flatMap((p) => (p.problem !== undefined ? [p.problem] : []));
  if (problems.length > 0) {
    return error(
      name,
      `${problems.join('; ')}${asRoot}`,
      'give the service user (aegis) these directories — under systemd, StateDirectory= and CacheDirectory= create them — or point WORK_DIR / STATE_DIR elsewhere',
    );
  }
  const missing = dirs.flatMap((d, i) => {
    const under = probes[i]?.missingUnder;
    return under !== undefined ? [`${d.label} not created yet, ${under} writable`] : [];
  });
  const made = missing.length > 0 ? ` (${missing.join('; ')})` : '';
  let free: number;
  try {
    const st = await fs.statfs(await nearestExisting(config.workDir));
    free = st.bavail * st.bsize;
  } catch (err) {
    return error(
      name,
      `free disk of ${config.workDir} cannot be read (${codeOf(err)})`,
      'check the mount of WORK_DIR',
    );
  }
  const floor = config.diskFloorBytes;
  const space = `${formatBytes(free)} free in ${config.workDir}, DISK_FLOOR_BYTES ${formatBytes(floor)}`;
  const fix =
    'free space on that file system (finished workspaces go after RETENTION_S), or lower DISK_FLOOR_BYTES';
  switch (diskVerdict(free, floor)) {
    case 'below':
      return error(name, `${space}: below the floor, jobs are not claimed below the floor`, fix);
    case 'low':
      return warn(name, `${space}: within 2× of the floor, claims stop when it is crossed`, fix);
    case 'ok':
      return ok(name, `WORK_DIR and STATE_DIR writable${made}; ${space}${asRoot}`);
  }
}
