// Config: one schema (schema.ts), parsed once at boot (load.ts), frozen, passed down.
export { SETTINGS, type AgentConfig, type SettingKey } from './schema.js';
export {
  CREDENTIAL_NAME,
  formatConfigIssues,
  loadConfig,
  parseConfig,
  secretValues,
  type ConfigIssue,
  type ConfigResult,
  type LoadOptions,
} from './load.js';
export { controlUrlProblem, controlWsUrl } from './url.js';
export { parseEnvFile } from './envfile.js';
