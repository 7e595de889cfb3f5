// Sources → one validated, frozen AgentConfig. Precedence: environment over the optional
// config file over defaults; secrets from systemd's credential (LoadCredential=agent-secrets)
// when $CREDENTIALS_DIRECTORY provides it, else from the environment.
import fs from 'node:fs';
import path from 'node:path';
import { AegisError } from '../errors.js';
import { parseEnvFile } from './envfile.js';
import { SETTINGS, type AgentConfig, type SettingKey } from './schema.js';

export const CREDENTIAL_NAME = 'agent-secrets';

export interface ConfigIssue {
  /** The environment name of the setting (or the file) at fault. */
  key: string;
  message: string;
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** KEY=VALUE file; default: $AEGIS_CONFIG_FILE when set. */
  file?: string | undefined;
}

export type ConfigResult =
  | { ok: true; config: AgentConfig; secretSource: 'credentials' | 'environment' }
  | { ok: false; issues: ConfigIssue[] };

const KEYS = Object.keys(SETTINGS) as SettingKey[];
const SECRET_ENVS = new Set(
  KEYS.filter((k) => 'secret' in SETTINGS[k]).map((k) => SETTINGS[k].env),
);
const KNOWN_ENVS = new Set(KEYS.map((k) => SETTINGS[k].env));

function readKeyValueFile(
  file: string,
  what: string,
  issues: ConfigIssue[],
): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? String(err);
    issues.push({ key: what, message: `cannot read ${file} (${reason})` });
    return {};
  }
  const parsed = parseEnvFile(text);
  for (const bad of parsed.issues) {
    issues.push({ key: what, message: `${file}:${bad.line}: ${bad.text}` });
  }
  return parsed.values;
}

/** Validate every setting; collects every problem instead of stopping at the first. */
export function parseConfig(options: LoadOptions = {}): ConfigResult {
  const env = options.env ?? process.env;
  const issues: ConfigIssue[] = [];
  const file = options.file ?? env['AEGIS_CONFIG_FILE'];
  const fromFile = file ? readKeyValueFile(file, 'AEGIS_CONFIG_FILE', issues) : {};
  for (const key of Object.keys(fromFile)) {
    if (!KNOWN_ENVS.has(key)) issues.push({ key, message: `unknown setting in ${file}` });
    if (SECRET_ENVS.has(key)) {
      issues.push({ key, message: `secrets do not belong in ${file}: use /etc/aegis/secrets.env` });
    }
  }

  let secrets: Record<string, string> = {};
  let secretSource: 'credentials' | 'environment' = 'environment';
  const credDir = env['CREDENTIALS_DIRECTORY'];
  if (credDir && fs.existsSync(path.join(credDir, CREDENTIAL_NAME))) {
    secrets = readKeyValueFile(
      path.join(credDir, CREDENTIAL_NAME),
      'CREDENTIALS_DIRECTORY',
      issues,
    );
    secretSource = 'credentials';
  }

  const out: Record<string, unknown> = {};
  for (const key of KEYS) {
    const s = SETTINGS[key];
    const isSecret = SECRET_ENVS.has(s.env);
    const raw = isSecret ? (secrets[s.env] ?? env[s.env]) : (env[s.env] ?? fromFile[s.env]);
    const value = raw ?? (typeof s.default === 'function' ? s.default(env) : s.default);
    const result = s.schema.safeParse(value);
    if (result.success) {
      out[key] = result.data;
    } else {
      const why = result.error.issues.map((i) => i.message).join('; ');
      const got = isSecret || value === undefined ? '' : ` (got "${value}")`;
      issues.push({ key: s.env, message: `${why}${got}` });
    }
  }
  if (issues.length > 0) return { ok: false, issues };
  return { ok: true, config: deepFreeze(out) as AgentConfig, secretSource };
}

/** The config, or AEGIS_ERR_CONFIG naming every bad key and what it expects. */
export function loadConfig(options: LoadOptions = {}): AgentConfig {
  const result = parseConfig(options);
  if (result.ok) return result.config;
  throw new AegisError('AEGIS_ERR_CONFIG', formatConfigIssues(result.issues));
}

export function formatConfigIssues(issues: readonly ConfigIssue[]): string {
  const n = issues.length;
  return `Invalid configuration (${n} problem${n === 1 ? '' : 's'}): ${issues
    .map((i) => `${i.key}: ${i.message}`)
    .join('; ')}`;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The secret values of a config, for the log redactor. */
export function secretValues(config: AgentConfig): string[] {
  return KEYS.filter((k) => SECRET_ENVS.has(SETTINGS[k].env))
    .map((k) => config[k])
    .filter((v): v is string => typeof v === 'string' && v.length > 0);
}
