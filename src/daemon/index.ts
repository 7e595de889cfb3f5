// The daemon: wires toolchains, the job registry, the control link and the job controllers, in
// start order, and owns the agent-wide state (draining, the toolchain list). Signals are the
// CLI's business; it calls drain(), stop() and rescan() here.
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import type { AgentConfig } from '../config/index.js';
import { createControlLink, type ControlPlane, type InboundMessage } from '../control/index.js';
import type { AgentMessage } from '../control/messages.js';
import type { Logger } from '../log/index.js';
import { JobController } from '../jobs/controller.js';
import { isTerminal } from '../jobs/job.js';
import { bootId, signalBuild } from '../jobs/proctree.js';
import { JobRegistry, type JobChange } from '../jobs/registry.js';
import { sweepWorkspaces } from '../jobs/retention.js';
import { createGrantVerifier } from '../grants/index.js';
import { createMetrics, type AgentMetrics } from '../metrics/registry.js';
import { startMetricsServer, type MetricsServer } from '../metrics/server.js';
import { discoverToolchains, toWire, type Toolchain } from '../toolchains/index.js';
import { AGENT_VERSION } from '../version.js';
import { createSessionManager, type SessionManager } from '../webrtc/manager.js';
import { initNodeDataChannel } from '../webrtc/ndc.js';
import { Claimer } from './claims.js';
import { createDiskGauge, type DiskGauge } from './disk.js';

const SWEEP_INTERVAL_MS = 60_000;
/** /healthz turns unhealthy when nothing was heard from the control plane for this long. */
export const HEALTH_MAX_SILENCE_MS = 60_000;

export interface DaemonOptions {
  config: AgentConfig;
  log: Logger;
  /** Called once the control plane has welcomed the agent for the first time (readiness). */
  onReady?: () => void;
  /** Every (re)connect and disconnect, for health reporting. */
  onConnection?: (connected: boolean) => void;
}

export class Daemon extends EventEmitter<{ job: [JobController] }> {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly registry: JobRegistry;
  readonly controllers = new Map<string, JobController>();
  readonly link: ControlPlane;
  private toolchainList: Toolchain[] = [];
  private drainingFlag = false;
  private readonly claimer: Claimer;
  private readonly disk: DiskGauge;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readyFired = false;
  readonly metrics: AgentMetrics;
  private metricsServer: MetricsServer | undefined;
  /** Set in start(), right after construction (the grant verifier loads its cache first). */
  sessions!: SessionManager;

  /** Inbound control messages are handled one after another, so a job exists before its sessions. */
  private inbound: Promise<void> = Promise.resolve();

  private constructor(opts: DaemonOptions, registry: JobRegistry) {
    super();
    this.config = opts.config;
    this.log = opts.log;
    this.registry = registry;
    this.disk = createDiskGauge(opts.config.workDir);
    this.link = createControlLink({
      config: opts.config,
      log: opts.log,
      hello: () => this.hello(),
      heartbeat: () => this.heartbeat(),
      onMessage: (msg) => {
        this.inbound = this.inbound.then(() =>
          this.onMessage(msg).catch((err: unknown) => {
            this.log.error(
              { code: 'AEGIS_ERR_INTERNAL', err, type: msg.type },
              'handling a control message failed',
            );
          }),
        );
      },
      onConnected: () => {
        opts.onConnection?.(true);
        if (!this.readyFired) {
          this.readyFired = true;
          opts.onReady?.();
        }
      },
      onDisconnected: () => opts.onConnection?.(false),
    });
    this.claimer = new Claimer({
      config: opts.config,
      log: opts.log,
      registry,
      disk: this.disk,
      toolchains: () => this.toolchainList,
      draining: () => this.drainingFlag,
      send: (frame) => this.send(frame),
    });
    this.metrics = createMetrics({
      jobsByState: () => {
        const counts: Partial<Record<string, number>> = {};
        for (const j of registry.list()) counts[j.state] = (counts[j.state] ?? 0) + 1;
        return counts;
      },
      openSessions: () => this.sessions?.count() ?? 0,
      connected: () => this.link.connected,
      lastHeartbeatAt: () => this.link.lastHeartbeatAt,
    });
    registry.on('change', (change) => {
      this.report(change);
      this.observe(change);
    });
  }

  /** Healthy while the control-plane link is up and has been heard from recently. */
  health(): { healthy: boolean; detail: Record<string, unknown> } {
    const seen = this.link.lastSeenAt;
    const silenceMs = seen === undefined ? undefined : Date.now() - seen;
    const healthy =
      this.link.connected && silenceMs !== undefined && silenceMs < HEALTH_MAX_SILENCE_MS;
    return {
      healthy,
      detail: {
        control_plane_connected: this.link.connected,
        last_heard_ms: silenceMs ?? null,
        last_heartbeat_at: this.link.lastHeartbeatAt ?? null,
        draining: this.drainingFlag,
        running: this.registry.active().length,
      },
    };
  }

  /** Port of /metrics and /healthz, when METRICS_ADDR is set. */
  get metricsPort(): number | undefined {
    return this.metricsServer?.port;
  }

  private observe({ job, previous }: JobChange): void {
    if (previous === 'building' && isTerminal(job.state) && job.startedAt !== undefined) {
      this.metrics.buildDuration.observe(
        { outcome: job.state },
        ((job.finishedAt ?? Date.now()) - job.startedAt) / 1000,
      );
    }
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const { config, log } = opts;
    await fs.mkdir(config.workDir, { recursive: true, mode: 0o700 });
    await fs.mkdir(config.stateDir, { recursive: true, mode: 0o700 });
    const { registry, interrupted, problems } = await JobRegistry.open(config.stateDir);
    for (const p of problems)
      log.warn({ file: p.file, reason: p.reason }, 'unreadable job record skipped');
    const daemon = new Daemon(opts, registry);
    initNodeDataChannel({ sctpSendBufferBytes: config.sctpSendBufferBytes, log });
    const verifier = await createGrantVerifier({
      config,
      log,
      lookupJob: (jobId) => {
        const c = daemon.controllers.get(jobId);
        return c ? { target: c.target } : undefined;
      },
      skewMs: () => daemon.link.skewMs,
    });
    const m = daemon.metrics;
    daemon.sessions = createSessionManager({
      config,
      log,
      verifier,
      jobs: { lookup: (jobId) => daemon.controllers.get(jobId) },
      send: (frame) => daemon.send(frame),
      iceServers: () => [...daemon.link.iceServers],
      metrics: {
        bytesSent: (kind, n) => m.bytesSent.inc({ channel: kind }, n),
        queueWait: (kind, ms) => {
          m.sendQueueWaits.inc({ channel: kind });
          m.sendQueueWaitSeconds.observe({ channel: kind }, ms / 1000);
        },
        sessionOpened: () => m.sessionsOpened.inc(),
        sessionClosed: () => undefined,
        grantRejected: (code) => m.grantRejections.inc({ code }),
      },
    });
    await daemon.rescan();
    await daemon.recover(interrupted);
    await daemon.disk.free().catch(() => 0);
    if (config.metricsAddr) {
      daemon.metricsServer = await startMetricsServer(config.metricsAddr, daemon.metrics, () =>
        daemon.health(),
      );
      log.info(
        { addr: config.metricsAddr, port: daemon.metricsServer.port },
        'metrics and health on /metrics, /healthz',
      );
    }
    daemon.link.start();
    daemon.sweepTimer = setInterval(() => void daemon.sweep(), SWEEP_INTERVAL_MS).unref();
    log.info(
      {
        agent_id: config.agentId,
        control: config.controlBaseUrl,
        max_jobs: config.maxJobs,
        version: AGENT_VERSION,
      },
      'aegis-agent started',
    );
    return daemon;
  }

  get draining(): boolean {
    return this.drainingFlag;
  }

  get toolchains(): readonly Toolchain[] {
    return this.toolchainList;
  }

  /** Discover toolchains again; tell the control plane when the list changed. */
  async rescan(): Promise<boolean> {
    const { config, log } = this;
    const scan = await discoverToolchains({
      roots: config.toolchainsDir,
      cacheDir: config.cacheDir,
      idfToolsPath: config.idfToolsPath,
    });
    for (const b of scan.broken)
      log.warn(
        { code: 'AEGIS_ERR_NO_TOOLCHAIN', toolchain: b.id, path: b.path, reason: b.reason },
        'toolchain skipped',
      );
    const before = JSON.stringify(
      this.toolchainList.map((t) => toWire(t, config.toolchainsPreview)),
    );
    this.toolchainList = scan.toolchains;
    const wire = scan.toolchains.map((t) => toWire(t, config.toolchainsPreview));
    for (const t of wire)
      log.info(
        { toolchain: t.id, idf_version: t.idf_version, targets: t.targets },
        'toolchain available',
      );
    if (scan.toolchains.length === 0) {
      log.warn(
        { code: 'AEGIS_ERR_NO_TOOLCHAIN', toolchains_dir: config.toolchainsDir },
        'no usable ESP-IDF toolchain: this agent will claim no job until one is provisioned (scripts/provision-toolchain.sh)',
      );
    }
    const changed = before !== JSON.stringify(wire);
    if (changed && before !== '[]') this.send({ type: 'toolchains', toolchains: wire });
    return changed;
  }

  /** Stop claiming; tell the control plane. Running builds go on. */
  setDraining(on: boolean): void {
    if (this.drainingFlag === on) return;
    this.drainingFlag = on;
    this.log.info(
      { draining: on },
      on ? 'draining: no new jobs will be claimed' : 'draining ended',
    );
    this.send({ type: 'status', draining: on });
  }

  /** The job's controller, now or once its assignment has been handled. */
  controllerFor(jobId: string, timeoutMs = 10_000): Promise<JobController> {
    const now = this.controllers.get(jobId);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('job', on);
        reject(new Error(`no job ${jobId} on this agent within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (c: JobController) => {
        if (c.jobId !== jobId) return;
        clearTimeout(timer);
        this.off('job', on);
        resolve(c);
      };
      this.on('job', on);
    });
  }

  /** Jobs holding a build slot. */
  activeJobs(): JobController[] {
    return [...this.controllers.values()].filter((c) => !isTerminal(c.state()));
  }

  /**
   * Drain: stop claiming, tell the control plane, and let the jobs in hand finish — until
   * `timeoutMs` passes or `abort` fires (a second SIGTERM, or SIGINT); then cancel the rest.
   */
  async drain(
    timeoutMs: number,
    abort: AbortSignal,
  ): Promise<{ finished: number; canceled: number }> {
    this.setDraining(true);
    const active = this.activeJobs();
    this.log.info(
      { running: active.length, timeout_s: timeoutMs / 1000 },
      'draining: waiting for the jobs in hand',
    );
    let timer: NodeJS.Timeout | undefined;
    const stop = new Promise<'stop'>((resolve) => {
      timer = setTimeout(() => resolve('stop'), timeoutMs);
      if (abort.aborted) resolve('stop');
      abort.addEventListener('abort', () => resolve('stop'), { once: true });
    });
    await Promise.race([Promise.all(active.map((c) => c.done)), stop]);
    clearTimeout(timer);
    const left = this.activeJobs();
    if (left.length > 0) {
      const why = abort.aborted
        ? 'canceled by the operator during a drain'
        : `drain timeout (DRAIN_TIMEOUT_S=${timeoutMs / 1000}) reached`;
      this.log.warn({ jobs: left.map((c) => c.jobId) }, `canceling ${left.length} job(s): ${why}`);
      await this.cancelAll(why);
    }
    return { finished: active.length - left.length, canceled: left.length };
  }

  /** Cancel every running job and wait until each is terminal (and reported to the outbox). */
  async cancelAll(reason: string): Promise<void> {
    const active = this.activeJobs();
    for (const c of active) c.cancel(reason);
    await Promise.all(active.map((c) => c.done));
  }

  /** Stop serving; `releaseNative: false` keeps node-datachannel usable in this process (tests). */
  async stop(options: { releaseNative?: boolean } = {}): Promise<void> {
    clearInterval(this.sweepTimer);
    this.claimer.clear();
    await this.sessions.shutdown(options);
    await this.metricsServer?.close();
    await this.link.stop();
  }

  private send(frame: AgentMessage): boolean {
    if (frame.type === 'hello' || frame.type === 'heartbeat' || frame.type === 'job.update')
      return false;
    return this.link.send(frame);
  }

  private hello() {
    const jobs = this.registry.list().slice(-4096);
    return {
      version: AGENT_VERSION,
      hostname: os.hostname(),
      toolchains: this.toolchainList.map((t) => toWire(t, this.config.toolchainsPreview)),
      capacity: { max_jobs: this.config.maxJobs, running: this.registry.active().length },
      jobs: jobs.map((j) => ({ job_id: j.jobId, state: j.state })),
      labels: { ...this.config.agentLabels },
      draining: this.drainingFlag,
    };
  }

  private heartbeat() {
    void this.disk.free().catch(() => undefined);
    return {
      running: this.registry.active().length,
      load1: os.loadavg()[0] ?? 0,
      disk_free_bytes: this.disk.last,
      uptime_s: Math.round(process.uptime()),
    };
  }

  private report({ job }: JobChange): void {
    const update = {
      job_id: job.jobId,
      state: job.state,
      log_bytes: job.logBytes,
      at: job.updatedAt,
      ...(job.exitCode !== undefined ? { exit_code: job.exitCode } : {}),
      ...(job.error ? { error: job.error } : {}),
      ...(job.artifacts ? { artifacts: job.artifacts } : {}),
    };
    const p = this.link.report(update).catch((err: unknown) => {
      this.log.error(
        { code: 'AEGIS_ERR_INTERNAL', job_id: job.jobId, err },
        'job report could not be persisted',
      );
    });
    this.reporting.add(p);
    void p.finally(() => this.reporting.delete(p));
  }

  /** Job reports handed to the link and not yet on disk. */
  private readonly reporting = new Set<Promise<void>>();

  /**
   * Every job report is on disk, and acked by the control plane — or `timeoutMs` passed
   * (false; they are re-sent on the next start).
   */
  async reportsDelivered(timeoutMs: number): Promise<boolean> {
    while (this.reporting.size > 0) await Promise.all([...this.reporting]);
    return this.link.allAcknowledged(timeoutMs);
  }

  /** Jobs that were running when the agent died: stop what is left of them, report them lost. */
  private async recover(
    interrupted: readonly {
      jobId: string;
      state: string;
      buildPgid?: number;
      buildBootId?: string;
    }[],
  ): Promise<void> {
    const boot = bootId();
    for (const job of interrupted) {
      let killed = 0;
      if (job.buildPgid !== undefined && job.buildBootId === boot)
        killed = signalBuild(job.buildPgid, 'SIGKILL');
      await this.registry.transition(job.jobId, 'lost', {
        error: {
          code: 'AEGIS_ERR_JOB_LOST',
          message: `The agent restarted while this job was ${job.state}; its build was stopped.`,
        },
      });
      this.log.warn(
        { code: 'AEGIS_ERR_JOB_LOST', job_id: job.jobId, was: job.state, killed },
        'job lost in an agent restart',
      );
    }
    for (const record of this.registry.list()) {
      const c = await JobController.restore(this.deps(), record);
      if (c) this.controllers.set(record.jobId, c);
    }
  }

  private deps() {
    return {
      config: this.config,
      log: this.log,
      registry: this.registry,
      toolchains: () => this.toolchainList,
    };
  }

  private async onMessage(msg: InboundMessage): Promise<void> {
    switch (msg.type) {
      case 'job.offer':
        return this.claimer.onOffer(msg);
      case 'job.assigned': {
        const record = await this.claimer.onAssigned(msg);
        if (!record) return;
        const controller = await JobController.start(this.deps(), record);
        this.controllers.set(record.jobId, controller);
        this.emit('job', controller);
        return;
      }
      case 'job.taken':
        return this.claimer.onTaken(msg);
      case 'job.cancel': {
        const c = this.controllers.get(msg.job_id);
        if (c) c.cancel(msg.reason || 'canceled by the control plane');
        else this.log.debug({ job_id: msg.job_id }, 'job.cancel for an unknown job');
        return;
      }
      case 'drain':
        this.setDraining(true);
        return;
      case 'session.offer':
        // Not awaited: ICE gathering must not hold up the control messages behind it.
        void this.sessions.onOffer(msg);
        return;
      case 'session.candidate':
        this.sessions.onCandidate(msg);
        return;
      case 'session.close':
        this.sessions.onClose(msg);
        return;
    }
  }

  private async sweep(): Promise<void> {
    const keep = (jobId: string) => {
      const c = this.controllers.get(jobId);
      return (c !== undefined && !isTerminal(c.state())) || this.sessions.countForJob(jobId) > 0;
    };
    try {
      const { deleted } = await sweepWorkspaces({
        workDir: this.config.workDir,
        retentionS: this.config.retentionS,
        now: Date.now(),
        keep,
        log: this.log,
      });
      // Records outlive their workspace only until the same retention has passed.
      const cutoff = Date.now() - this.config.retentionS * 1000;
      const stale = this.registry
        .list()
        .filter((j) => isTerminal(j.state) && (j.finishedAt ?? j.updatedAt) < cutoff);
      for (const jobId of new Set([...deleted, ...stale.map((j) => j.jobId)])) {
        this.controllers.delete(jobId);
        await this.registry.forget(jobId);
      }
    } catch (err) {
      this.log.warn({ err }, 'workspace sweep failed');
    }
  }
}
