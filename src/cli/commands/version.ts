// `aegis-agent version`.
import { AGENT_VERSION } from '../../version.js';
import { EXIT } from '../exit.js';
import type { Command } from './command.js';

export const versionCommand: Command = {
  name: 'version',
  summary: 'Print the agent version.',
  usage: 'Usage: aegis-agent version\n\nPrints "aegis-agent <version> (node <version>)".',
  options: {},
  run(ctx) {
    ctx.out(`aegis-agent ${AGENT_VERSION} (node ${process.version})`);
    return Promise.resolve(EXIT.ok);
  },
};
