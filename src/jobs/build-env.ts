// The build's environment is an allow-list, never a copy of the agent's: the toolchain's own
// variables (PATH, IDF_*, ESP_*, OPENOCD_SCRIPTS from its captured export.sh environment, which
// was itself captured from a scrubbed base), a HOME and TMPDIR inside the workspace, LANG, TERM,
// and what the job sets. Nothing else of the agent's environment — its secret least of all.
import type { Toolchain } from '../toolchains/index.js';

const FROM_TOOLCHAIN = /^(PATH|IDF_[A-Z0-9_]*|ESP_[A-Z0-9_]*|OPENOCD_SCRIPTS)$/;
const JOB_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
/** Variables a job may not override: they decide which toolchain and files the build uses. */
const RESERVED =
  /^(PATH|HOME|TMPDIR|LANG|TERM|IDF_PATH|IDF_TOOLS_PATH|IDF_PYTHON_ENV_PATH|LD_[A-Z_]*|BASH_ENV|ENV)$/;

export interface BuildEnvOptions {
  toolchain: Pick<Toolchain, 'env'>;
  home: string;
  tmpDir: string;
  jobEnv?: Readonly<Record<string, string>>;
}

export function buildEnvironment(opts: BuildEnvOptions): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.toolchain.env)) {
    if (FROM_TOOLCHAIN.test(k)) env[k] = v;
  }
  for (const [k, v] of Object.entries(opts.jobEnv ?? {})) {
    if (JOB_NAME.test(k) && !RESERVED.test(k)) env[k] = v;
  }
  env['HOME'] = opts.home;
  env['TMPDIR'] = opts.tmpDir;
  env['LANG'] = 'C.UTF-8';
  env['TERM'] = 'xterm-256color';
  return env;
}
