// The job model: one record per job this agent holds, and the state machine of PROTOCOL §5.
import type { JobState, WireArtifact } from '../control/messages.js';

export type { JobState } from '../control/messages.js';
export { JOB_STATES, TERMINAL_STATES } from '../control/messages.js';

export interface JobRecord {
  jobId: string;
  target: string;
  /** The idf spec of the offer ("5.3"), if any. */
  idf?: string;
  toolchainId: string;
  /** From job.assigned; else BUILD_TIMEOUT_S applies. */
  timeoutS?: number;
  state: JobState;
  createdAt: number;
  updatedAt: number;
  startedAt?: number;
  finishedAt?: number;
  exitCode?: number;
  error?: { code: string; message: string };
  logBytes: number;
  artifacts?: WireArtifact[];
  /** Session id of the running build, for crash recovery (its processes are killed if alive). */
  buildPgid?: number;
  /** The boot the build ran in: a recorded session id means nothing after a reboot. */
  buildBootId?: string;
}

const NEXT: Record<JobState, readonly JobState[]> = {
  assigned: ['receiving', 'canceled', 'expired', 'lost'],
  receiving: ['building', 'failed', 'canceled', 'expired', 'lost'],
  building: ['succeeded', 'failed', 'canceled', 'timed_out', 'lost'],
  succeeded: [],
  failed: [],
  canceled: [],
  timed_out: [],
  lost: [],
  expired: [],
};

/** May a job move from `from` to `to`? Terminal states are final. */
export function canTransition(from: JobState, to: JobState): boolean {
  return NEXT[from].includes(to);
}

export function isTerminal(state: JobState): boolean {
  return NEXT[state].length === 0;
}

/** A job still holds a build slot until it is terminal. */
export function holdsSlot(state: JobState): boolean {
  return !isTerminal(state);
}
