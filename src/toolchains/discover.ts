// Finding the ESP-IDF installs under TOOLCHAINS_DIR. An install is any subdirectory holding
// tools/idf.py and tools/cmake/version.cmake. Discovery never throws: a broken install is
// listed with its reason and skipped.
import fs from 'node:fs/promises';
import path from 'node:path';
import { baseEnvironment, captureInstall, type CaptureOptions } from './capture.js';
import type { BrokenInstall, Toolchain, ToolchainScan } from './types.js';
import { compareVersions, parseVersionCmake } from './version.js';

export interface DiscoverOptions extends CaptureOptions {
  roots: readonly string[];
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

async function candidates(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { withFileTypes: true });
  const dirs: string[] = [];
  for (const e of entries) {
    const full = path.join(root, e.name);
    if (e.isDirectory() || (e.isSymbolicLink() && (await fs.stat(full).then((s) => s.isDirectory(), () => false)))) {
      dirs.push(full);
    }
  }
  return dirs.sort();
}

async function inspect(dir: string, opts: CaptureOptions): Promise<Omit<Toolchain, 'id'> | { reason: string } | undefined> {
  const hasIdf = await exists(path.join(dir, 'tools', 'idf.py'));
  const versionFile = path.join(dir, 'tools', 'cmake', 'version.cmake');
  const hasVersion = await exists(versionFile);
  if (!hasIdf && !hasVersion) return undefined; // not an install at all
  if (!hasIdf) return { reason: 'tools/idf.py is missing' };
  if (!hasVersion) return { reason: 'tools/cmake/version.cmake is missing' };
  const idfVersion = parseVersionCmake(await fs.readFile(versionFile, 'utf8'));
  if (!idfVersion) return { reason: 'tools/cmake/version.cmake has no IDF_VERSION_MAJOR/MINOR/PATCH' };
  if (!(await exists(path.join(dir, 'export.sh')))) return { reason: 'export.sh is missing' };
  try {
    const cap = await captureInstall(dir, opts);
    return {
      idfVersion,
      path: dir,
      targets: cap.targets,
      previewTargets: cap.previewTargets,
      env: Object.freeze({ ...baseEnvironment(opts), ...cap.env }),
    };
  } catch (err) {
    return { reason: err instanceof Error ? err.message : String(err) };
  }
}

export async function discoverToolchains(opts: DiscoverOptions): Promise<ToolchainScan> {
  const toolchains: Toolchain[] = [];
  const broken: BrokenInstall[] = [];
  const ids = new Set<string>();
  const uniqueId = (dir: string) => {
    const base = path.basename(dir);
    let id = base;
    for (let n = 2; ids.has(id); n++) id = `${base}-${n}`;
    ids.add(id);
    return id;
  };
  for (const root of opts.roots) {
    let dirs: string[];
    try {
      dirs = await candidates(root);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      broken.push({ id: uniqueId(root), path: root, reason: `TOOLCHAINS_DIR entry cannot be read (${code})` });
      continue;
    }
    const results = await Promise.all(dirs.map((d) => inspect(d, opts)));
    results.forEach((r, i) => {
      const dir = dirs[i] as string;
      if (r === undefined) return;
      if ('reason' in r) broken.push({ id: uniqueId(dir), path: dir, reason: r.reason });
      else toolchains.push({ id: uniqueId(dir), ...r });
    });
  }
  toolchains.sort((a, b) => compareVersions(b.idfVersion, a.idfVersion) || a.id.localeCompare(b.id));
  return { toolchains, broken };
}
