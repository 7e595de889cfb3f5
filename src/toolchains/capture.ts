// Capturing an install's environment: the real ESP-IDF export.sh takes seconds, so it runs once
// per install and the result is cached on disk, keyed by the install's path and its files' mtimes.
// export.sh runs in a scrubbed base environment, so nothing of the agent (its secret least of
// all) can end up in what is captured; only what export.sh set or changed is kept.
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

export const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const CAPTURE_TIMEOUT_MS = 180_000;
const LIST_TIMEOUT_MS = 60_000;

export interface CaptureOptions {
  cacheDir: string;
  idfToolsPath: string;
}

export interface CapturedInstall {
  path: string;
  stamp: string;
  /** Variables export.sh set or changed (PATH always included). */
  env: Record<string, string>;
  targets: string[];
  previewTargets: string[];
}

/** The environment export.sh starts from: fixed, minimal, secret-free. */
export function baseEnvironment(opts: CaptureOptions): Record<string, string> {
  return {
    PATH: BASE_PATH,
    HOME: path.join(opts.cacheDir, 'toolchains', 'home'),
    LANG: 'C.UTF-8',
    IDF_TOOLS_PATH: opts.idfToolsPath,
  };
}

/** Changes to these files (or the install dir itself) invalidate the cached capture. */
const STAMP_FILES = ['.', 'export.sh', 'tools/idf.py', 'tools/cmake/version.cmake'];

async function installStamp(installPath: string): Promise<string> {
  const mtimes = await Promise.all(
    STAMP_FILES.map((f) =>
      fs.stat(path.join(installPath, f)).then(
        (st) => Math.trunc(st.mtimeMs),
        () => 0,
      ),
    ),
  );
  return mtimes.join('-');
}

function cacheFile(opts: CaptureOptions, installPath: string): string {
  const key = crypto.createHash('sha256').update(installPath).digest('hex').slice(0, 16);
  return path.join(opts.cacheDir, 'toolchains', `${key}.json`);
}

function parseEnv0(out: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of out.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

function lines(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^[a-z0-9_]+$/.test(l));
}

async function runExport(installPath: string, base: Record<string, string>): Promise<Record<string, string>> {
  // HOME only has to exist for installs that write there; an unwritable cache dir is no reason to fail.
  await fs.mkdir(base['HOME'] as string, { recursive: true }).catch(() => undefined);
  const result = await execa(
    'bash',
    ['--noprofile', '--norc', '-c', '. "$0/export.sh" >&2 || exit $?; env -0', installPath],
    { env: base, extendEnv: false, cwd: installPath, timeout: CAPTURE_TIMEOUT_MS, reject: false },
  );
  if (result.exitCode !== 0 || result.timedOut) {
    const tail = String(result.stderr).trim().split('\n').slice(-3).join(' | ');
    throw new Error(
      result.timedOut
        ? `export.sh did not finish within ${CAPTURE_TIMEOUT_MS / 1000} s`
        : `export.sh failed with exit code ${result.exitCode}${tail ? `: ${tail}` : ''}`,
    );
  }
  const after = parseEnv0(String(result.stdout));
  const changed: Record<string, string> = {};
  for (const [k, v] of Object.entries(after)) {
    if (k === '_' || k === 'SHLVL' || k === 'PWD' || k === 'OLDPWD') continue;
    if (base[k] !== v || k === 'PATH') changed[k] = v;
  }
  if (!changed['IDF_PATH']) throw new Error('export.sh did not set IDF_PATH');
  return changed;
}

async function listTargets(env: Record<string, string>, preview: boolean): Promise<string[]> {
  const args = preview ? ['--preview', '--list-targets'] : ['--list-targets'];
  const result = await execa('idf.py', args, { env, extendEnv: false, timeout: LIST_TIMEOUT_MS, reject: false });
  if (result.exitCode !== 0 || result.timedOut) {
    throw new Error(`idf.py ${args.join(' ')} failed (exit ${String(result.exitCode)}): ${String(result.stderr).trim().slice(0, 200)}`);
  }
  return lines(String(result.stdout));
}

/** Best effort: a cache that cannot be written only costs the next start another export.sh. */
async function writeCache(file: string, captured: CapturedInstall): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(tmp, JSON.stringify(captured));
    await fs.rename(tmp, file);
  } catch {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** Capture (or load from cache) the environment and target lists of one install. */
export async function captureInstall(installPath: string, opts: CaptureOptions): Promise<CapturedInstall & { cached: boolean }> {
  const stamp = await installStamp(installPath);
  const file = cacheFile(opts, installPath);
  try {
    const cached = JSON.parse(await fs.readFile(file, 'utf8')) as CapturedInstall;
    if (cached.path === installPath && cached.stamp === stamp) return { ...cached, cached: true };
  } catch {
    // No cache yet, or an unreadable one: capture afresh.
  }
  const base = baseEnvironment(opts);
  const exported = await runExport(installPath, base);
  const env = { ...base, ...exported };
  const [targets, all] = await Promise.all([listTargets(env, false), listTargets(env, true)]);
  if (targets.length === 0) throw new Error('idf.py --list-targets printed no target');
  const captured: CapturedInstall = {
    path: installPath,
    stamp,
    env: exported,
    targets,
    previewTargets: all.filter((t) => !targets.includes(t)),
  };
  await writeCache(file, captured);
  return { ...captured, cached: false };
}
