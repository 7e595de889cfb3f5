// `aegis-agent run`: the daemon in the foreground (systemd runs it as Type=notify).
// Signals: SIGTERM drains (a second SIGTERM, or SIGINT, cancels what still runs); SIGINT first
// cancels at once; SIGHUP rescans the toolchains. Readiness and the watchdog go to systemd.
import { AegisError } from '../../errors.js';
import { createLogger } from '../../log/index.js';
import { secretValues } from '../../config/index.js';
import { Daemon } from '../../daemon/index.js';
import { createNotifier } from '../../daemon/notify.js';
import { cleanupNodeDataChannel } from '../../webrtc/ndc.js';
import { EXIT } from '../exit.js';
import type { Command } from './command.js';

/** How long the final job reports may wait for the control plane's ack before exit (they stay on disk). */
const REPORT_GRACE_MS = 5000;
/** While draining, systemd's stop timeout is pushed out by this much, again and again. */
const EXTEND_USEC = 60_000_000;

export const runCommand: Command = {
  name: 'run',
  summary: 'Run the build-agent daemon in the foreground (what the systemd unit starts).',
  usage: `Usage: aegis-agent run [--config FILE]

Connects to CONTROL_BASE_URL with AGENT_AUTH_SECRET, registers the toolchains found under
TOOLCHAINS_DIR, claims the build jobs it can run (MAX_JOBS at once), runs them in WORK_DIR and
serves their sessions over WebRTC. Logs are JSON lines on stderr (journald priorities under
systemd). Under systemd (Type=notify) it reports READY=1 once the control plane has welcomed
it, and keeps the watchdog fed from its event loop.

Signals:
  SIGTERM   drain: claim nothing more, tell the control plane, let running builds finish (up
            to DRAIN_TIMEOUT_S, extending systemd's stop timeout meanwhile), cancel the rest,
            report, exit 0
  SIGTERM again, or SIGINT
            cancel every running build now, report, exit 0
  SIGHUP    rescan TOOLCHAINS_DIR; tell the control plane when the list changed

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
    const notifier = createNotifier({ env: ctx.env, log });
    const daemon = await Daemon.start({
      config,
      log,
      onReady: () =>
        void notifier.ready(`connected to ${config.controlBaseUrl} as ${config.agentId}`),
      onConnection: (up) =>
        void notifier.status(
          up ? 'connected to the control plane' : 'control plane unreachable; reconnecting',
        ),
    });
    const stopWatchdog = notifier.startWatchdog();
    process.on('SIGHUP', () => {
      log.info({ signal: 'SIGHUP' }, 'rescanning toolchains');
      void daemon.rescan().catch((err: unknown) => log.error({ err }, 'toolchain rescan failed'));
    });

    const cancelNow = new AbortController();
    const first = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    const again = (signal: NodeJS.Signals) => {
      log.warn({ signal }, 'canceling every running build now');
      cancelNow.abort();
    };
    process.on('SIGTERM', again);
    process.on('SIGINT', again);
    if (first === 'SIGTERM') {
      void notifier.stopping('draining: finishing the running builds');
      const stopExtending = notifier.keepExtending(EXTEND_USEC);
      const r = await daemon.drain(config.drainTimeoutS * 1000, cancelNow.signal);
      stopExtending();
      log.info(r, 'drain complete');
    } else {
      void notifier.stopping('canceling the running builds');
      log.warn({ signal: first }, 'canceling every running build now');
      await daemon.cancelAll('the agent was interrupted (SIGINT)');
    }
    const acked = await daemon.reportsDelivered(REPORT_GRACE_MS);
    if (!acked) {
      log.warn(
        { unacknowledged: daemon.link.unacknowledged },
        'the control plane has not acknowledged every job report; they stay on disk and are sent on the next start',
      );
    }
    stopWatchdog();
    await daemon.stop();
    cleanupNodeDataChannel();
    log.info('stopped');
    return EXIT.ok;
  },
};
