// Doctor checks of the settings themselves: `config` (every bad key, as parseConfig names them),
// `secret` (present, and where it came from — never its value) and `control_url` (each of the
// operators' URL mistakes in its own words). When the config is invalid, the other checks run
// with the bad keys at their defaults and skip whatever depends on a bad key.
import fs from 'node:fs';
import path from 'node:path';
import {
  CREDENTIAL_NAME,
  SETTINGS,
  controlUrlProblem,
  controlWsUrl,
  formatConfigIssues,
  parseConfig,
  parseEnvFile,
  type AgentConfig,
  type ConfigIssue,
  type SettingKey,
} from '../config/index.js';
import { error, ok, warn, type CheckResult } from './report.js';

/** Where the unit's EnvironmentFile= lives (systemd/aegis-agent.service). */
export const UNIT_ENV_FILE = '/etc/aegis/agent.env';
export const SECRETS_FILE = '/etc/aegis/secrets.env';

const KEYS = Object.keys(SETTINGS) as SettingKey[];
const SECRET_ENVS = KEYS.filter((k) => 'secret' in SETTINGS[k]).map((k) => SETTINGS[k].env);
const KNOWN_ENVS = new Set(KEYS.map((k) => SETTINGS[k].env));

export interface ConfigState {
  /** What the other checks run with: the config, or one with the bad keys at their defaults. */
  config: AgentConfig | undefined;
  /** Environment names whose value is invalid or unknown (their checks are skipped). */
  bad: ReadonlySet<string>;
  issues: readonly ConfigIssue[];
  /** The settings file that was read (--config or $AEGIS_CONFIG_FILE), if any. */
  file: string | undefined;
  /** Raw values from that file (empty when unreadable). */
  fileValues: Readonly<Record<string, string>>;
  env: NodeJS.ProcessEnv;
  /** Where AGENT_AUTH_SECRET came from, as load.ts picks it. */
  secretOrigin: 'credential' | 'environment' | undefined;
  /** Every secret value seen (valid or not), for scrubbing the output. */
  secrets: string[];
}

function readValues(file: string): Record<string, string> | undefined {
  try {
    return parseEnvFile(fs.readFileSync(file, 'utf8')).values;
  } catch {
    return undefined;
  }
}

/** Parse the config; on failure, parse again with the bad keys dropped (so defaults apply). */
export function loadConfigState(env: NodeJS.ProcessEnv, file: string | undefined): ConfigState {
  const configFile = file ?? env['AEGIS_CONFIG_FILE'];
  const fileRead = configFile !== undefined ? readValues(configFile) : {};
  const fileValues = fileRead ?? {};
  const credFile = env['CREDENTIALS_DIRECTORY']
    ? path.join(env['CREDENTIALS_DIRECTORY'], CREDENTIAL_NAME)
    : undefined;
  const credRead = credFile !== undefined && fs.existsSync(credFile) ? readValues(credFile) : {};
  const credValues = credRead ?? {};
  const secretOrigin: ConfigState['secretOrigin'] =
    credValues['AGENT_AUTH_SECRET'] !== undefined
      ? 'credential'
      : env['AGENT_AUTH_SECRET'] !== undefined
        ? 'environment'
        : undefined;
  const secrets = SECRET_ENVS.flatMap((k) =>
    [credValues[k], env[k], fileValues[k]].filter((v): v is string => v !== undefined),
  );
  const base = { file: configFile, fileValues, env, secretOrigin, secrets };

  const first = parseConfig({ env, file: configFile });
  if (first.ok) return { ...base, config: first.config, bad: new Set(), issues: [] };

  const bad = new Set(first.issues.map((i) => i.key));
  // A file that could not be read hides every setting it would have given.
  if (configFile !== undefined && fileRead === undefined) {
    for (const k of KNOWN_ENVS) if (env[k] === undefined) bad.add(k);
  }
  if (credFile !== undefined && credRead === undefined) for (const k of SECRET_ENVS) bad.add(k);
  const fallback: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(fileValues)) {
    if (KNOWN_ENVS.has(k) && !SECRET_ENVS.includes(k)) fallback[k] = v;
  }
  Object.assign(fallback, env);
  delete fallback['AEGIS_CONFIG_FILE'];
  if (credRead === undefined) delete fallback['CREDENTIALS_DIRECTORY'];
  for (const k of bad) delete fallback[k];
  const second = parseConfig({ env: fallback });
  return {
    ...base,
    config: second.ok ? second.config : undefined,
    bad,
    issues: first.issues,
  };
}

/** The first bad setting among `envs`, as a skip reason; undefined when all are usable. */
export function badDependency(state: ConfigState, envs: readonly string[]): string | undefined {
  if (state.config === undefined) return 'the configuration could not be read at all';
  const hit = envs.find((e) => state.bad.has(e));
  return hit !== undefined ? `${hit} is invalid (see config)` : undefined;
}

export function checkConfig(state: ConfigState, unitEnvFile = UNIT_ENV_FILE): CheckResult {
  const n = KEYS.length;
  if (state.issues.length > 0) {
    return error(
      'config',
      formatConfigIssues(state.issues),
      `correct ${state.file ?? 'the environment'} ("aegis-agent help --env" lists every setting); the checks below used defaults for the bad keys`,
    );
  }
  const from = state.file !== undefined ? `, file ${state.file}` : '';
  // Run from a shell, the unit's EnvironmentFile= is not applied: doctor would check defaults.
  if (state.file === undefined && fs.existsSync(unitEnvFile)) {
    return warn(
      'config',
      `valid (${n} settings), but ${unitEnvFile} exists and was not read: these are not the service's settings`,
      `run "aegis-agent doctor --config ${unitEnvFile}", or through systemd-run as "aegis-agent help doctor" shows`,
    );
  }
  return ok('config', `valid (${n} settings${from})`);
}

export function checkSecret(state: ConfigState): CheckResult {
  const fix = `put AGENT_AUTH_SECRET=… in ${SECRETS_FILE} (root, 0600); the unit hands it to the agent as the credential ${CREDENTIAL_NAME}`;
  const where =
    state.secretOrigin === 'credential'
      ? `the systemd credential ${CREDENTIAL_NAME}`
      : 'the environment';
  const issue = state.issues.find((i) => i.key === 'AGENT_AUTH_SECRET');
  if (issue !== undefined) {
    return error('secret', `AGENT_AUTH_SECRET from ${where} is not usable: ${issue.message}`, fix);
  }
  if (state.bad.has('AGENT_AUTH_SECRET')) {
    return error('secret', `the credential ${CREDENTIAL_NAME} could not be read`, fix);
  }
  if (state.secretOrigin === undefined || state.config?.agentAuthSecret === undefined) {
    return error(
      'secret',
      'AGENT_AUTH_SECRET is not set: the agent cannot authenticate to the control plane',
      fix,
    );
  }
  return ok('secret', `AGENT_AUTH_SECRET set (from ${where})`);
}

/** The URL as the operator wrote it (env over file over default), trimmed as the schema does. */
export function rawControlUrl(state: ConfigState): { value: string; isDefault: boolean } {
  const given = state.env['CONTROL_BASE_URL'] ?? state.fileValues['CONTROL_BASE_URL'];
  const def = SETTINGS.controlBaseUrl.default as string;
  return { value: (given ?? def).trim(), isDefault: given === undefined };
}

export function checkControlUrl(state: ConfigState): CheckResult {
  const { value, isDefault } = rawControlUrl(state);
  const problem = controlUrlProblem(value);
  if (problem !== undefined) {
    return error(
      'control_url',
      problem,
      `set CONTROL_BASE_URL to the control plane's base URL — http:// or https://, a routable host, no trailing slash — in ${state.file ?? UNIT_ENV_FILE}`,
    );
  }
  const note = isDefault ? ' (the default: CONTROL_BASE_URL is not set)' : '';
  return ok('control_url', `${value}${note}; agents connect to ${controlWsUrl(value)}`);
}
