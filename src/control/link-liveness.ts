// Liveness of one established control connection (PROTOCOL §1): a heartbeat every interval, and
// a deadline of two intervals after the last sign of life (any frame or pong). Touching is a
// field write, not a timer reset, because a busy control plane may send thousands of frames.
import { performance } from 'node:perf_hooks';

export interface LivenessHooks {
  /** Send the heartbeat frame and a WebSocket ping. */
  beat(): void;
  /** Nothing arrived for `silentMs` (≥ 2 intervals): the caller terminates the socket. */
  dead(silentMs: number): void;
}

/** Intervals of silence after which the connection is considered dead. */
export const LIVENESS_INTERVALS = 2;

export class Liveness {
  private lastSeen = performance.now();
  private beatTimer: NodeJS.Timeout | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly hooks: LivenessHooks,
  ) {}

  start(): void {
    this.lastSeen = performance.now();
    // The socket keeps the process alive while it is open; these timers must not on their own.
    this.beatTimer = setInterval(() => this.hooks.beat(), this.intervalMs).unref();
    this.arm(LIVENESS_INTERVALS * this.intervalMs);
  }

  /** Any frame or pong arrived. */
  touch(): void {
    this.lastSeen = performance.now();
  }

  stop(): void {
    clearInterval(this.beatTimer);
    clearTimeout(this.deadlineTimer);
    this.beatTimer = undefined;
    this.deadlineTimer = undefined;
  }

  private arm(ms: number): void {
    this.deadlineTimer = setTimeout(() => this.check(), Math.max(1, ms)).unref();
  }

  private check(): void {
    const limit = LIVENESS_INTERVALS * this.intervalMs;
    const silent = performance.now() - this.lastSeen;
    if (silent >= limit) {
      this.stop();
      this.hooks.dead(Math.round(silent));
      return;
    }
    this.arm(limit - silent);
  }
}
