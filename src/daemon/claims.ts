// Offers → claims → jobs. Gathers the state canClaim needs, sends the claim, and turns a won
// claim (job.assigned) into a Job; a lost one (job.taken) leaves no trace.
import type { Logger } from 'pino';
import type { AgentConfig } from '../config/index.js';
import type { AgentMessage, ControlMessage, Msg } from '../control/messages.js';
import type { JobRegistry } from '../jobs/registry.js';
import { canClaim } from '../jobs/scheduler.js';
import type { Toolchain } from '../toolchains/index.js';
import type { DiskGauge } from './disk.js';

/** A claim the control plane has not answered within this long is forgotten. */
export const CLAIM_TTL_MS = 30_000;

interface Pending {
  offer: Msg<ControlMessage, 'job.offer'>;
  toolchain: Toolchain;
  timer: NodeJS.Timeout;
}

export interface ClaimerDeps {
  config: AgentConfig;
  log: Logger;
  registry: JobRegistry;
  disk: DiskGauge;
  toolchains: () => readonly Toolchain[];
  draining: () => boolean;
  send: (frame: AgentMessage) => boolean;
}

export class Claimer {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly deps: ClaimerDeps) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  async onOffer(offer: Msg<ControlMessage, 'job.offer'>): Promise<void> {
    const { config, registry, log } = this.deps;
    let diskFreeBytes: number;
    try {
      diskFreeBytes = await this.deps.disk.free();
    } catch (err) {
      log.warn(
        { code: 'AEGIS_ERR_DISK_LOW', err },
        `cannot read free disk of ${config.workDir}; not claiming`,
      );
      return;
    }
    const decision = canClaim(
      { jobId: offer.job_id, target: offer.target, idf: offer.idf },
      {
        draining: this.deps.draining(),
        busy: registry.active().length + this.pending.size,
        maxJobs: config.maxJobs,
        toolchains: this.deps.toolchains(),
        preview: config.toolchainsPreview,
        diskFreeBytes,
        diskFloorBytes: config.diskFloorBytes,
        known: new Set([...this.pending.keys(), ...registry.list().map((j) => j.jobId)]),
      },
    );
    if (!decision.claim) {
      const level = decision.reason === 'disk_low' ? 'warn' : 'debug';
      log[level](
        {
          job_id: offer.job_id,
          target: offer.target,
          idf: offer.idf,
          reason: decision.reason,
          ...(decision.reason === 'disk_low' ? { code: 'AEGIS_ERR_DISK_LOW' } : {}),
        },
        `not claiming job: ${decision.detail}`,
      );
      return;
    }
    if (!this.deps.send({ type: 'job.claim', job_id: offer.job_id })) return;
    const timer = setTimeout(() => this.pending.delete(offer.job_id), CLAIM_TTL_MS).unref();
    this.pending.set(offer.job_id, { offer, toolchain: decision.toolchain, timer });
    log.info(
      { job_id: offer.job_id, target: offer.target, toolchain: decision.toolchain.id },
      'claimed job',
    );
  }

  /** The claim won: the job becomes this agent's (state `assigned`). Returns it, or undefined. */
  async onAssigned(msg: Msg<ControlMessage, 'job.assigned'>) {
    const p = this.pending.get(msg.job_id);
    if (!p) {
      this.deps.log.warn(
        { code: 'AEGIS_ERR_PROTOCOL', job_id: msg.job_id },
        'job.assigned for a job this agent did not claim; ignored',
      );
      return undefined;
    }
    clearTimeout(p.timer);
    this.pending.delete(msg.job_id);
    const job = await this.deps.registry.create({
      jobId: msg.job_id,
      target: p.offer.target,
      ...(p.offer.idf !== undefined ? { idf: p.offer.idf } : {}),
      toolchainId: p.toolchain.id,
      ...(msg.timeout_s !== undefined ? { timeoutS: msg.timeout_s } : {}),
    });
    this.deps.log.info(
      { job_id: job.jobId, target: job.target, toolchain: job.toolchainId },
      'job assigned',
    );
    return job;
  }

  onTaken(msg: Msg<ControlMessage, 'job.taken'>): void {
    const p = this.pending.get(msg.job_id);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(msg.job_id);
    this.deps.log.debug({ job_id: msg.job_id }, 'claim lost to another agent');
  }

  clear(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }
}
