// `aegis-agent doctor [--json]`: one line per check, exit 1 on any error.
import { formatJson, formatText, runDoctor } from '../../doctor/index.js';
import type { CommandContext } from '../context.js';
import { EXIT } from '../exit.js';
import type { Command } from './command.js';

export const doctorCommand: Command = {
  name: 'doctor',
  summary:
    'Check config, secret, control plane, clock, toolchains, disk and ICE; exit 1 on any error.',
  usage: `Usage: aegis-agent doctor [--json] [--no-hello]

Runs every check an operator would otherwise do by hand and prints one line per check:
status (ok, warn, error, skip), name, what was found and, when not ok, the fix.

  config          the settings parse (every bad key named); later checks use defaults for bad keys
  secret          AGENT_AUTH_SECRET is set, and where from (systemd credential or environment)
  control_url     CONTROL_BASE_URL has a scheme, no trailing slash, is not an SSH alias
  control_health  GET CONTROL_BASE_URL/health within 5 s (DNS, refused, TLS, timeout named)
  agent_auth      the agent WebSocket with a fresh token: hello, welcome, closed at once
  clock           skew against the control plane (> 5 s warn, > 30 s error)
  toolchains      the ESP-IDF installs under TOOLCHAINS_DIR; broken ones as toolchain:<id>
  work_dir        WORK_DIR and STATE_DIR writable (created if missing), free disk vs DISK_FLOOR_BYTES
  ice             local candidates with the control plane's STUN/TURN servers (host/srflx/relay)

A check that depends on a failed one is skipped with the reason. The run takes at most ~15 s.

agent_auth registers this agent on the control plane for a moment: its hello says draining,
with no toolchains and no jobs, so nothing is offered, and the socket is closed (1000) as soon
as the welcome arrives. If the daemon with the same AGENT_ID is connected, the control plane
may replace its connection; the daemon reconnects by itself. --no-hello skips it (and ice).

From a shell, the unit's settings and credential are not applied. To check exactly what the
service sees, run doctor with the unit's user, directories, settings and credential:

  sudo systemd-run --pipe --wait --quiet -p User=aegis -p EnvironmentFile=/etc/aegis/agent.env \\
    -p LoadCredential=agent-secrets:/etc/aegis/secrets.env \\
    -p StateDirectory=aegis-agent -p CacheDirectory=aegis-agent \\
    /opt/aegis-agent/bin/aegis-agent doctor

  --json       One JSON object: {"checks":[{name, status, detail, fix?}], "ok": bool}
  --no-hello   Do not connect to the agent WebSocket (skips agent_auth and ice).

Secrets are never printed. Exit code 1 when any check is an error; warnings alone exit 0.`,
  options: { json: { type: 'boolean' }, 'no-hello': { type: 'boolean' } },
  async run(ctx: CommandContext): Promise<number> {
    const configFile = typeof ctx.values['config'] === 'string' ? ctx.values['config'] : undefined;
    const report = await runDoctor({
      env: ctx.env,
      configFile,
      hello: ctx.values['no-hello'] !== true,
    });
    ctx.out(ctx.values['json'] ? formatJson(report) : formatText(report));
    return report.ok ? EXIT.ok : EXIT.failure;
  },
};
