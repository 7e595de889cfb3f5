// What every command gets: its parsed argv, output streams, and a config loader that turns
// AEGIS_ERR_CONFIG into a readable report.
import { loadConfig, type AgentConfig } from '../config/index.js';

export interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

export interface CommandContext extends Output {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  env: NodeJS.ProcessEnv;
  /** Load and validate the config (throws AegisError AEGIS_ERR_CONFIG). */
  config: () => AgentConfig;
}

export function makeContext(
  values: CommandContext['values'],
  positionals: string[],
  env: NodeJS.ProcessEnv,
  output: Output,
): CommandContext {
  let cached: AgentConfig | undefined;
  const file = typeof values['config'] === 'string' ? values['config'] : undefined;
  return {
    ...output,
    values,
    positionals,
    env,
    config: () => (cached ??= loadConfig({ env, file })),
  };
}
