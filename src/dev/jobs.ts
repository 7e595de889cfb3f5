// Jobs on the dev plane: offer a job to every agent that fits, let the first claim win
// (job.assigned to it, job.taken to every other claimer, now or later), and apply job.update
// frames exactly once per (agent_id, seq) while acknowledging every one of them.
import { randomBytes } from 'node:crypto';
import type { Msg, AgentMessage, ControlMessage } from '../control/messages.js';
import type { Logger } from '../log/index.js';
import { HttpError } from './http.js';
import { canOffer, noClaimCause, seconds } from './match.js';
import { markApplied, putJob, type DevStore, type JobRecord } from './store.js';
import type { AgentRecord, Emit } from './types.js';

export interface JobSpec {
  target: string;
  idf?: string | undefined;
  channels: string[];
  timeout_s?: number | undefined;
}

export interface JobBoardOptions {
  store: DevStore;
  claimWaitMs: number;
  agents: { list(): AgentRecord[]; get(id: string): AgentRecord | undefined };
  send: (agentId: string, frame: ControlMessage) => boolean;
  now: () => number;
  emit: Emit;
  log: Logger;
}

interface Waiter {
  resolve: (job: JobRecord) => void;
  reject: (err: HttpError) => void;
  timer: NodeJS.Timeout;
}

export class JobBoard {
  /** Jobs this instance offered and whose /grant/request still waits for a claim. */
  private readonly waiting = new Map<string, Waiter>();

  constructor(private readonly o: JobBoardOptions) {
    // Offers of a previous instance sharing this store have no waiter any more: late claims lose.
    for (const job of o.store.jobs.values()) if (job.phase === 'offered') job.phase = 'unclaimed';
  }

  get(jobId: string): JobRecord | undefined {
    return this.o.store.jobs.get(jobId);
  }

  list(): JobRecord[] {
    return [...this.o.store.jobs.values()];
  }

  /** Create a job, offer it, and resolve with it once assigned (503 AEGIS_ERR_NO_AGENT if not). */
  request(spec: JobSpec): Promise<JobRecord> {
    const job: JobRecord = {
      job_id: `job-${randomBytes(10).toString('hex')}`,
      target: spec.target,
      ...(spec.idf !== undefined ? { idf: spec.idf } : {}),
      channels: spec.channels,
      ...(spec.timeout_s !== undefined ? { timeout_s: spec.timeout_s } : {}),
      phase: 'offered',
      ...this.freshProgress(),
    };
    putJob(this.o.store, job);
    this.o.emit('job.created', { job_id: job.job_id, target: spec.target });
    const done = new Promise<JobRecord>((resolve, reject) => {
      const timer = setTimeout(() => this.unclaimed(job), this.o.claimWaitMs);
      this.waiting.set(job.job_id, { resolve, reject, timer });
    });
    for (const agent of this.o.agents.list()) this.offer(job, agent);
    return done;
  }

  /** An agent registered or changed: offer it every waiting job it now fits. */
  offerWaitingTo(agentId: string, reconnected: boolean): void {
    const agent = this.o.agents.get(agentId);
    if (!agent) return;
    for (const jobId of this.waiting.keys()) {
      const job = this.o.store.jobs.get(jobId);
      if (!job) continue;
      // A new connection forgot earlier offers; offer again.
      if (reconnected) job.offered_to = job.offered_to.filter((id) => id !== agentId);
      this.offer(job, agent);
    }
  }

  private offer(job: JobRecord, agent: AgentRecord): void {
    if (job.phase !== 'offered' || job.target === null || job.offered_to.includes(agent.agent_id))
      return;
    if (!canOffer(agent, job.target, job.idf)) return;
    const sent = this.o.send(agent.agent_id, {
      type: 'job.offer',
      job_id: job.job_id,
      target: job.target,
      ...(job.idf !== undefined ? { idf: job.idf } : {}),
      action: 'build',
    });
    if (!sent) return;
    job.offered_to.push(agent.agent_id);
    this.o.emit('job.offered', { job_id: job.job_id, agent_id: agent.agent_id });
  }

  onClaim(agentId: string, claim: Msg<AgentMessage, 'job.claim'>): void {
    const job = this.o.store.jobs.get(claim.job_id);
    const waiter = this.waiting.get(claim.job_id);
    const offered = job?.offered_to.includes(agentId) ?? false;
    if (job && !job.claimed_by.includes(agentId)) job.claimed_by.push(agentId);
    if (job?.phase === 'assigned' && job.agent_id === agentId) return; // a repeated winning claim
    const won = job !== undefined && waiter !== undefined && job.phase === 'offered' && offered;
    this.o.emit('job.claimed', { job_id: claim.job_id, agent_id: agentId, won });
    if (!won) {
      this.o.log.debug({ agent: agentId, job: claim.job_id }, 'claim lost');
      this.o.send(agentId, { type: 'job.taken', job_id: claim.job_id });
      return;
    }
    clearTimeout(waiter.timer);
    this.waiting.delete(job.job_id);
    job.phase = 'assigned';
    job.agent_id = agentId;
    job.assigned_at = this.o.now();
    this.o.send(agentId, {
      type: 'job.assigned',
      job_id: job.job_id,
      ...(job.timeout_s !== undefined ? { timeout_s: job.timeout_s } : {}),
    });
    this.o.log.info({ agent: agentId, job: job.job_id, target: job.target }, 'job assigned');
    this.o.emit('job.assigned', { job_id: job.job_id, agent_id: agentId });
    waiter.resolve(job);
  }

  private unclaimed(job: JobRecord): void {
    const waiter = this.waiting.get(job.job_id);
    if (!waiter) return;
    this.waiting.delete(job.job_id);
    job.phase = 'unclaimed';
    const cause = noClaimCause(this.o.agents.list(), job.target ?? '', job.idf, job.offered_to);
    const message = `No build machine claimed the ${job.target} job within ${seconds(this.o.claimWaitMs)}: ${cause}`;
    this.o.log.warn({ job: job.job_id, offered_to: job.offered_to }, message);
    this.o.emit('job.unclaimed', { job_id: job.job_id, message });
    waiter.reject(new HttpError(503, 'AEGIS_ERR_NO_AGENT', message));
  }

  /** Apply a job.update once per (agent, seq); acknowledge it always (the agent's outbox waits on it). */
  onUpdate(agentId: string, update: Msg<AgentMessage, 'job.update'>): void {
    const { type: _type, ...fields } = update;
    if (!markApplied(this.o.store, agentId, update.seq)) {
      this.o.store.duplicates += 1;
      const job = this.o.store.jobs.get(update.job_id);
      if (job) job.duplicates += 1;
      this.o.log.debug({ agent: agentId, seq: update.seq }, 'duplicate job.update acknowledged');
      this.o.send(agentId, { type: 'ack', seq: update.seq });
      this.o.emit('job.update.duplicate', {
        agent_id: agentId,
        job_id: update.job_id,
        seq: update.seq,
      });
      return;
    }
    const job = this.o.store.jobs.get(update.job_id) ?? this.external(update.job_id, agentId);
    if (job.agent_id !== agentId) {
      this.o.log.warn(
        { agent: agentId, job: job.job_id, owner: job.agent_id },
        'update for a job assigned elsewhere',
      );
    }
    job.state = update.state;
    job.states.push(update.state);
    job.log_bytes = update.log_bytes;
    if (update.exit_code !== undefined) job.exit_code = update.exit_code;
    if (update.error !== undefined) job.error = update.error;
    if (update.artifacts !== undefined) job.artifacts = update.artifacts;
    job.history.push({
      seq: update.seq,
      state: update.state,
      at: update.at,
      received_at: this.o.now(),
      log_bytes: update.log_bytes,
    });
    this.o.send(agentId, { type: 'ack', seq: update.seq });
    this.o.log.info(
      { agent: agentId, job: job.job_id, seq: update.seq, state: update.state },
      'job update',
    );
    this.o.emit('job.update', { ...fields, agent_id: agentId });
  }

  /** A job this store never offered (a test injected job.assigned, or the store was fresh). */
  private external(jobId: string, agentId: string): JobRecord {
    const job: JobRecord = {
      job_id: jobId,
      target: null,
      channels: [],
      phase: 'external',
      agent_id: agentId,
      ...this.freshProgress(),
    };
    putJob(this.o.store, job);
    return job;
  }

  /** The fields every new job record starts with: nothing offered, claimed or reported yet. */
  private freshProgress() {
    return {
      created_at: this.o.now(),
      offered_to: [] as string[],
      claimed_by: [] as string[],
      states: [] as JobRecord['states'],
      log_bytes: 0,
      history: [] as JobRecord['history'],
      duplicates: 0,
    };
  }

  /** Fail every waiting request (the plane is stopping). */
  close(): void {
    for (const [jobId, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      const job = this.o.store.jobs.get(jobId);
      if (job) job.phase = 'unclaimed';
      waiter.reject(
        new HttpError(
          503,
          'AEGIS_ERR_NO_AGENT',
          'The control plane stopped before any agent claimed the job.',
        ),
      );
    }
    this.waiting.clear();
  }
}
