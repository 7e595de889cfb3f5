// `aegis-agent run`: the daemon in the foreground (systemd runs it as Type=notify).
// Signals: SIGTERM and SIGINT stop it; SIGHUP rescans the toolchains.
import { AegisError } from '../../errors.js';
import { createLogger } from '../../log/index.js';
import { secretValues } from '../../config/index.js';
import { Daemon } from '../../daemon/index.js';
import { EXIT } from '../exit.js';
import type { Command } from './command.js';

export const runCommand: Command = {
  name: 'run',
  summary: 'Run the build-agent daemon in the foreground (what the systemd unit starts).',
  usage: `Usage: aegis-agent run [--config FILE]

Connects to CONTROL_BASE_URL with AGENT_AUTH_SECRET, registers the toolchains found under
TOOLCHAINS_DIR, claims the build jobs it can run (MAX_JOBS at once) and runs them in WORK_DIR.
Logs are JSON lines on stderr (journald priorities under systemd).

Signals:
  SIGTERM, SIGINT   stop: close the control link and exit
  SIGHUP            rescan TOOLCHAINS_DIR and tell the control plane when the list changed

Settings: "aegis-agent help --env". Exit code 78 on an invalid configuration.`,
  options: {},
  async run(ctx) {
    const config = ctx.config();
    if (!config.agentAuthSecret) {
      throw new AegisError(
        'AEGIS_ERR_CONFIG',
        'AGENT_AUTH_SECRET is not set: put it in /etc/aegis/secrets.env (systemd credential agent-secrets) or the environment.',
      );
    }
    const log = createLogger({
      level: config.logLevel,
      secrets: secretValues(config),
      env: ctx.env,
    });
    const daemon = await Daemon.start({ config, log });
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        log.info({ signal }, 'stopping');
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        resolve();
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      process.on('SIGHUP', () => {
        log.info({ signal: 'SIGHUP' }, 'rescanning toolchains');
        void daemon.rescan().catch((err: unknown) => log.error({ err }, 'toolchain rescan failed'));
      });
    });
    await daemon.stop();
    log.info('stopped');
    return EXIT.ok;
  },
};
