// The state of the dev control plane that would live in a real control plane's database: the
// job table and, per agent, which job.update seqs were applied. A test hands the same store to
// a second instance to simulate a restart that keeps the database (exactly-once across it).
import type { JobState, WireArtifact } from '../control/messages.js';
import type { GrantKeys } from './grants.js';

/** Where a job stands in the offer/claim phase (its build state is `state`). */
export type JobPhase =
  /** Offered; a /grant/request is waiting for the first claim. */
  | 'offered'
  /** The first claim won; `agent_id` owns it. */
  | 'assigned'
  /** Nobody claimed within claimWaitMs (or the instance that offered it stopped): late claims lose. */
  | 'unclaimed'
  /** Not created here: an agent reported updates for a job this store never offered. */
  | 'external';

export interface JobHistoryEntry {
  seq: number;
  state: JobState;
  at: number;
  received_at: number;
  log_bytes: number;
}

export interface JobRecord {
  job_id: string;
  target: string | null;
  idf?: string;
  channels: string[];
  timeout_s?: number;
  phase: JobPhase;
  agent_id?: string;
  created_at: number;
  assigned_at?: number;
  offered_to: string[];
  claimed_by: string[];
  /** The latest applied build state, once the agent reported one. */
  state?: JobState;
  /** Every applied state in order: a test asserts exactly-once with it. */
  states: JobState[];
  exit_code?: number;
  error?: { code: string; message: string };
  log_bytes: number;
  artifacts?: WireArtifact[];
  history: JobHistoryEntry[];
  /** job.update frames for this job whose (agent_id, seq) had been applied already. */
  duplicates: number;
}

/** Out-of-order seqs kept individually per agent; beyond it the oldest gap is closed. */
export const MAX_SEQ_GAPS = 4096;

/**
 * The set of applied seqs of one agent, kept small: seqs rise by one per frame, so everything
 * up to `floor` is one number and only seqs above a gap are kept individually. An agent whose
 * seqs began before this store existed (its earlier frames were acked elsewhere) leaves a gap
 * that never fills: past MAX_SEQ_GAPS the gap is closed, i.e. those old seqs count as applied.
 */
export class SeqSet {
  private floor = 0;
  private readonly above = new Set<number>();

  has(seq: number): boolean {
    return seq <= this.floor || this.above.has(seq);
  }

  add(seq: number): void {
    if (this.has(seq)) return;
    this.above.add(seq);
    if (this.above.size > MAX_SEQ_GAPS) this.floor = Math.min(...this.above) - 1;
    while (this.above.delete(this.floor + 1)) this.floor += 1;
  }

  get size(): number {
    return this.floor + this.above.size;
  }
}

export interface DevStore {
  /** The grant signing key: kept with the rest, as a real control plane keeps it in its database. */
  signingKey?: GrantKeys;
  jobs: Map<string, JobRecord>;
  applied: Map<string, SeqSet>;
  /** Duplicate job.update frames received, over all agents and jobs. */
  duplicates: number;
}

/** Jobs kept at most; the oldest are forgotten beyond it (a dev process must not grow forever). */
export const MAX_JOBS = 10_000;

export function createDevStore(): DevStore {
  return { jobs: new Map(), applied: new Map(), duplicates: 0 };
}

export function putJob(store: DevStore, job: JobRecord): void {
  store.jobs.set(job.job_id, job);
  while (store.jobs.size > MAX_JOBS) {
    const oldest = store.jobs.keys().next();
    if (oldest.done === true) break;
    store.jobs.delete(oldest.value);
  }
}

/** Mark the (agent, seq) pair applied; false when it already was (a duplicate). */
export function markApplied(store: DevStore, agentId: string, seq: number): boolean {
  let set = store.applied.get(agentId);
  if (!set) {
    set = new SeqSet();
    store.applied.set(agentId, set);
  }
  if (set.has(seq)) return false;
  set.add(seq);
  return true;
}
