// `--help` texts, generated from the command registry and the config schema, so they cannot lie.
import { SETTINGS, type SettingKey } from '../config/index.js';
import type { Command } from './commands/command.js';

export function usage(commands: readonly Command[]): string {
  const list = commands.map((c) => `  ${c.name.padEnd(14)} ${c.summary}`).join('\n');
  return `Usage: aegis-agent <command> [options]

Commands:
${list}
  ${'help'.padEnd(14)} This text; "help <command>" for one command, "help --env" for every setting.

Global options:
  -h, --help     Help for a command.
  --config FILE  KEY=VALUE settings file (also $AEGIS_CONFIG_FILE); the environment wins.

Exit codes: 0 ok, 1 the command found a problem, 2 bad usage, 78 invalid configuration.`;
}

export function settingsTable(): string {
  const rows = (Object.keys(SETTINGS) as SettingKey[]).map((k) => {
    const s = SETTINGS[k];
    const def = typeof s.default === 'function' ? '(derived)' : (s.default ?? '(unset)');
    return `  ${s.env.padEnd(24)} ${String(def).padEnd(22)} ${s.doc}`;
  });
  return `Settings (environment variables; the environment wins over the --config file):\n${rows.join('\n')}`;
}
