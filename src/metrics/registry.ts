// The agent's Prometheus metrics (prom-client): one registry per daemon, every metric named
// once here. Values that are state (jobs by state, connection, heartbeat age) are read at
// scrape time from getters, so they cannot drift from the truth.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { JOB_STATES, type JobState } from '../control/messages.js';

export interface MetricsSources {
  jobsByState: () => Partial<Record<JobState, number>>;
  openSessions: () => number;
  connected: () => boolean;
  /** Epoch ms of the last heartbeat sent, or undefined. */
  lastHeartbeatAt: () => number | undefined;
}

export interface AgentMetrics {
  registry: Registry;
  buildDuration: Histogram<'outcome'>;
  bytesSent: Counter<'channel'>;
  sendQueueWaits: Counter<'channel'>;
  sendQueueWaitSeconds: Histogram<'channel'>;
  grantRejections: Counter<'code'>;
  sessionsOpened: Counter;
}

export function createMetrics(sources: MetricsSources): AgentMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'aegis_agent_process_' });
  new Gauge({
    name: 'aegis_agent_jobs',
    help: 'Jobs held by this agent, by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = sources.jobsByState();
      for (const state of JOB_STATES) this.set({ state }, counts[state] ?? 0);
    },
  });
  new Gauge({
    name: 'aegis_agent_sessions_open',
    help: 'WebRTC sessions open now.',
    registers: [registry],
    collect() {
      this.set(sources.openSessions());
    },
  });
  new Gauge({
    name: 'aegis_agent_control_plane_connected',
    help: '1 while the control-plane link is up (welcomed), else 0.',
    registers: [registry],
    collect() {
      this.set(sources.connected() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'aegis_agent_last_heartbeat_age_seconds',
    help: 'Seconds since the last heartbeat was sent to the control plane (-1 before the first).',
    registers: [registry],
    collect() {
      const at = sources.lastHeartbeatAt();
      this.set(at === undefined ? -1 : (Date.now() - at) / 1000);
    },
  });
  return {
    registry,
    buildDuration: new Histogram({
      name: 'aegis_agent_build_duration_seconds',
      help: 'Wall time of builds (idf.py set-target + build), by outcome.',
      labelNames: ['outcome'],
      buckets: [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers: [registry],
    }),
    bytesSent: new Counter({
      name: 'aegis_agent_bytes_sent_total',
      help: 'Bytes sent to clients over data channels, by channel kind.',
      labelNames: ['channel'],
      registers: [registry],
    }),
    sendQueueWaits: new Counter({
      name: 'aegis_agent_send_queue_waits_total',
      help: 'Times a sender waited for room in its session send budget, by channel kind.',
      labelNames: ['channel'],
      registers: [registry],
    }),
    sendQueueWaitSeconds: new Histogram({
      name: 'aegis_agent_send_queue_wait_seconds',
      help: 'How long senders waited for room in the send budget, by channel kind.',
      labelNames: ['channel'],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10],
      registers: [registry],
    }),
    grantRejections: new Counter({
      name: 'aegis_agent_grant_rejections_total',
      help: 'Session offers refused, by error code.',
      labelNames: ['code'],
      registers: [registry],
    }),
    sessionsOpened: new Counter({
      name: 'aegis_agent_sessions_opened_total',
      help: 'WebRTC sessions accepted since start.',
      registers: [registry],
    }),
  };
}
