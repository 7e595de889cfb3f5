// `aegis-agent doctor`: every check an operator would otherwise do by hand, in one run. The
// local checks run beside the network chain (health → hello → ICE), so the whole run is bounded
// by the network deadlines (~15 s). A check whose input failed earlier is skipped with why.
import { createLogger } from '../log/index.js';
import { cleanupNodeDataChannel, initNodeDataChannel } from '../webrtc/ndc.js';
import {
  badDependency,
  checkConfig,
  checkControlUrl,
  checkSecret,
  loadConfigState,
  rawControlUrl,
  UNIT_ENV_FILE,
} from './checks-config.js';
import {
  checkAgentAuth,
  checkClock,
  checkHealth,
  type AuthOutcome,
  type ClockSample,
} from './checks-control.js';
import { checkIce } from './checks-ice.js';
import { checkToolchains, checkWorkDir } from './checks-local.js';
import { makeReport, redactReport, skip, type CheckResult, type DoctorReport } from './report.js';

export {
  formatJson,
  formatText,
  type CheckResult,
  type CheckStatus,
  type DoctorReport,
} from './report.js';

export const DOCTOR_TIMEOUTS = {
  /** GET /health. */
  healthMs: 5_000,
  /** Connect + upgrade + hello → welcome. */
  welcomeMs: 5_000,
  /** Candidate gathering. */
  iceMs: 5_000,
  /** Toolchain discovery (runs beside the network checks). */
  toolchainsMs: 12_000,
};

export interface DoctorOptions {
  env: NodeJS.ProcessEnv;
  /** --config FILE; default $AEGIS_CONFIG_FILE. */
  configFile?: string | undefined;
  /** Send a hello (agent_auth, and with it ice). Default true. */
  hello?: boolean;
  /**
   * Release libdatachannel at the end (doctor is its own process; without it node never exits).
   * Tests that run doctor several times in one process pass false.
   */
  cleanupWebRtc?: boolean;
  timeouts?: Partial<typeof DOCTOR_TIMEOUTS>;
  /** The unit's EnvironmentFile (to notice it was not read); tests point it elsewhere. */
  unitEnvFile?: string;
}

/** The report, with every secret value (and TURN credential) scrubbed from its texts. */
export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const t = { ...DOCTOR_TIMEOUTS, ...opts.timeouts };
  const state = loadConfigState(opts.env, opts.configFile);
  const secrets = [...state.secrets];
  const head = [
    checkConfig(state, opts.unitEnvFile ?? UNIT_ENV_FILE),
    checkSecret(state),
    checkControlUrl(state),
  ];
  const [, secretCheck, urlCheck] = head as [CheckResult, CheckResult, CheckResult];
  const config = state.config;

  const skipOr = (
    name: string,
    envs: readonly string[],
    run: () => Promise<CheckResult[]>,
  ): Promise<CheckResult[]> => {
    const why = badDependency(state, envs);
    return why !== undefined ? Promise.resolve([skip(name, why)]) : run();
  };
  const local = Promise.all([
    skipOr('toolchains', ['TOOLCHAINS_DIR', 'CACHE_DIR', 'IDF_TOOLS_PATH'], async () =>
      config ? checkToolchains(config, t.toolchainsMs) : [],
    ),
    skipOr('work_dir', ['WORK_DIR', 'STATE_DIR', 'DISK_FLOOR_BYTES'], async () =>
      config ? [await checkWorkDir(config)] : [],
    ),
  ]);

  // The local checks (toolchain discovery spawns export.sh and idf.py) finish before
  // libdatachannel starts: with both at once, one doctor run in two segfaulted.
  const [toolchains, workDir] = await local;
  const network: CheckResult[] = [];
  let webRtcUsed = false;
  const base = rawControlUrl(state).value;
  if (urlCheck.status === 'error') {
    for (const n of ['control_health', 'agent_auth', 'clock', 'ice']) {
      network.push(skip(n, 'CONTROL_BASE_URL is not usable (control_url)'));
    }
  } else {
    const health = await checkHealth(base, t.healthMs);
    network.push(health.result);
    let auth: AuthOutcome;
    const authBlocked =
      health.result.status === 'error'
        ? 'control_health failed'
        : opts.hello === false
          ? 'not asked (--no-hello)'
          : secretCheck.status !== 'ok'
            ? 'no usable AGENT_AUTH_SECRET (secret)'
            : badDependency(state, ['AGENT_ID']);
    if (authBlocked !== undefined || config === undefined) {
      auth = { result: skip('agent_auth', authBlocked ?? 'no configuration') };
    } else {
      auth = await checkAgentAuth(base, config, t.welcomeMs);
    }
    network.push(auth.result);
    const sample: ClockSample | undefined = auth.clock ?? health.clock;
    network.push(
      checkClock(sample, 'no server_time from the control plane (control_health / agent_auth)'),
    );
    if (auth.iceServers === undefined) {
      network.push(skip('ice', "needs the welcome's ICE servers (agent_auth did not pass)"));
    } else {
      for (const s of auth.iceServers) {
        if (s.credential !== undefined) secrets.push(s.credential);
      }
      const log = createLogger({ level: 'silent' });
      initNodeDataChannel({ sctpSendBufferBytes: config?.sctpSendBufferBytes ?? 1 << 20, log });
      webRtcUsed = true;
      network.push(await checkIce(auth.iceServers, t.iceMs, log));
    }
  }
  if (webRtcUsed && opts.cleanupWebRtc !== false) cleanupNodeDataChannel();

  const [net0, net1, net2, ice] = network as [CheckResult, CheckResult, CheckResult, CheckResult];
  const checks = [...head, net0, net1, net2, ...toolchains, ...workDir, ice];
  return redactReport(makeReport(checks), secrets);
}
