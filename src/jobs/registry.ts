// The jobs this agent holds: the one place a job's state changes. Every change is persisted
// before it is announced, so what the control plane hears about has survived a crash.
import { EventEmitter } from 'node:events';
import { AegisError } from '../errors.js';
import { canTransition, holdsSlot, isTerminal, type JobRecord, type JobState } from './job.js';
import { JobStore } from './store.js';

export interface JobChange {
  job: Readonly<JobRecord>;
  previous: JobState | undefined;
}

type Patch = Partial<Omit<JobRecord, 'jobId' | 'state' | 'createdAt'>>;

export class JobRegistry extends EventEmitter<{ change: [JobChange] }> {
  private readonly jobs = new Map<string, JobRecord>();
  /** Per-job write chain: records of one job reach the disk in the order they changed. */
  private readonly writes = new Map<string, Promise<void>>();

  private constructor(
    private readonly store: JobStore,
    private readonly now: () => number,
  ) {
    super();
  }

  /** Load the records of earlier runs. Non-terminal ones are returned for recovery. */
  static async open(
    stateDir: string,
    now: () => number = Date.now,
  ): Promise<{
    registry: JobRegistry;
    interrupted: JobRecord[];
    problems: { file: string; reason: string }[];
  }> {
    const registry = new JobRegistry(new JobStore(stateDir), now);
    const { records, problems } = await registry.store.loadAll();
    for (const r of records) registry.jobs.set(r.jobId, r);
    return { registry, interrupted: records.filter((r) => !isTerminal(r.state)), problems };
  }

  get(jobId: string): Readonly<JobRecord> | undefined {
    return this.jobs.get(jobId);
  }

  list(): Readonly<JobRecord>[] {
    return [...this.jobs.values()];
  }

  /** Jobs holding a build slot (assigned, receiving, building). */
  active(): Readonly<JobRecord>[] {
    return this.list().filter((j) => holdsSlot(j.state));
  }

  async create(
    fields: Omit<JobRecord, 'state' | 'createdAt' | 'updatedAt' | 'logBytes'>,
  ): Promise<Readonly<JobRecord>> {
    if (this.jobs.has(fields.jobId)) {
      throw new AegisError(
        'AEGIS_ERR_JOB_STATE',
        `Job ${fields.jobId} already exists on this agent.`,
      );
    }
    const at = this.now();
    const record: JobRecord = {
      ...fields,
      state: 'assigned',
      createdAt: at,
      updatedAt: at,
      logBytes: 0,
    };
    this.jobs.set(record.jobId, record);
    await this.persist(record);
    this.emit('change', { job: record, previous: undefined });
    return record;
  }

  /** Move a job to `to`; refuses moves the state machine does not allow (AEGIS_ERR_JOB_STATE). */
  async transition(jobId: string, to: JobState, patch: Patch = {}): Promise<Readonly<JobRecord>> {
    const current = this.require(jobId);
    if (!canTransition(current.state, to)) {
      throw new AegisError(
        'AEGIS_ERR_JOB_STATE',
        `Job ${jobId} cannot go from ${current.state} to ${to}.`,
      );
    }
    const at = this.now();
    const next: JobRecord = { ...current, ...patch, state: to, updatedAt: at };
    if (isTerminal(to)) {
      next.finishedAt = at;
      delete next.buildPgid;
      delete next.buildBootId;
    }
    this.jobs.set(jobId, next);
    await this.persist(next);
    this.emit('change', { job: next, previous: current.state });
    return next;
  }

  /** Change fields other than the state (e.g. the build's process group). Not announced. */
  async patch(jobId: string, patch: Patch): Promise<Readonly<JobRecord>> {
    const next: JobRecord = { ...this.require(jobId), ...patch, updatedAt: this.now() };
    this.jobs.set(jobId, next);
    await this.persist(next);
    return next;
  }

  async forget(jobId: string): Promise<void> {
    this.jobs.delete(jobId);
    await this.chain(jobId, () => this.store.remove(jobId));
  }

  private require(jobId: string): JobRecord {
    const job = this.jobs.get(jobId);
    if (!job) throw new AegisError('AEGIS_ERR_JOB_STATE', `No job ${jobId} on this agent.`);
    return job;
  }

  private persist(record: JobRecord): Promise<void> {
    const snapshot = { ...record };
    return this.chain(record.jobId, () => this.store.save(snapshot));
  }

  private chain(jobId: string, write: () => Promise<void>): Promise<void> {
    const next = (this.writes.get(jobId) ?? Promise.resolve()).then(write);
    const settled = next.catch(() => undefined);
    this.writes.set(jobId, settled);
    void settled.then(() => {
      if (this.writes.get(jobId) === settled) this.writes.delete(jobId);
    });
    return next;
  }
}
