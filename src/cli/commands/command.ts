// The shape of one CLI command.
import type { ParseArgsConfig } from 'node:util';
import type { CommandContext } from '../context.js';

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Allow positional arguments. */
  positionals?: boolean;
  run(ctx: CommandContext): Promise<number>;
}
