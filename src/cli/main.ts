// argv → command. Parses options strictly, turns errors into exit codes; the only place besides
// src/cli.ts that decides how the process ends.
import { parseArgs } from 'node:util';
import { isAegisError } from '../errors.js';
import { makeContext, type Output } from './context.js';
import { EXIT } from './exit.js';
import { settingsTable, usage } from './help.js';
import type { Command } from './commands/command.js';
import { buildCommand } from './commands/build.js';
import { devControlCommand } from './commands/dev-control.js';
import { doctorCommand } from './commands/doctor.js';
import { runCommand } from './commands/run.js';
import { toolchainsCommand } from './commands/toolchains.js';
import { versionCommand } from './commands/version.js';

export const COMMANDS: readonly Command[] = [
  runCommand,
  buildCommand,
  toolchainsCommand,
  doctorCommand,
  devControlCommand,
  versionCommand,
];

const GLOBAL_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  config: { type: 'string' },
} as const;

const stdio: Output = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: Output = stdio,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    const topic = rest.find((a) => !a.startsWith('-'));
    const cmd = COMMANDS.find((c) => c.name === topic);
    const text = usage(COMMANDS);
    io.out(cmd ? cmd.usage : rest.includes('--env') ? `${text}\n\n${settingsTable()}` : text);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '--version' || name === '-V')
    return versionCommand.run(makeContext({}, [], env, io));
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    io.err(`aegis-agent: unknown command "${name}"\n\n${usage(COMMANDS)}`);
    return EXIT.usage;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { ...GLOBAL_OPTIONS, ...cmd.options },
      allowPositionals: cmd.positionals ?? false,
      strict: true,
    });
  } catch (err) {
    io.err(`aegis-agent ${cmd.name}: ${(err as Error).message}\n\n${cmd.usage}`);
    return EXIT.usage;
  }
  if (parsed.values['help']) {
    io.out(cmd.usage);
    return EXIT.ok;
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  try {
    return await cmd.run(makeContext(values, parsed.positionals, env, io));
  } catch (err) {
    if (isAegisError(err)) {
      io.err(`aegis-agent ${cmd.name}: ${err.code}: ${err.message}`);
      return err.code === 'AEGIS_ERR_CONFIG' ? EXIT.config : EXIT.failure;
    }
    io.err(
      `aegis-agent ${cmd.name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    return EXIT.failure;
  }
}
