// What the plane knows about one agent, built from its hello and kept current by its
// heartbeat, toolchains and status frames: pure updates, no sockets.
import type { AgentMessage, Msg } from '../control/messages.js';
import type { AgentRecord } from './types.js';

/** Frames that only change the agent's record. */
export type StateFrame = Msg<AgentMessage, 'heartbeat' | 'toolchains' | 'status'>;

export function recordFromHello(
  hello: Msg<AgentMessage, 'hello'>,
  origin: string,
  now: number,
): AgentRecord {
  return {
    agent_id: hello.agent_id,
    hostname: hello.hostname,
    version: hello.version,
    toolchains: hello.toolchains,
    capacity: { ...hello.capacity },
    running: hello.capacity.running,
    draining: hello.draining,
    connected: true,
    last_seen: now,
    connected_at: now,
    labels: hello.labels,
    jobs: hello.jobs,
    origin,
  };
}

/** Apply a state frame; returns the event it amounts to. */
export function applyStateFrame(
  record: AgentRecord,
  frame: StateFrame,
  now: number,
): 'agent.heartbeat' | 'agent.changed' {
  switch (frame.type) {
    case 'heartbeat': {
      const { type: _type, ...values } = frame;
      record.heartbeat = { ...values, at: now };
      record.running = frame.running;
      record.capacity.running = frame.running;
      return 'agent.heartbeat';
    }
    case 'toolchains':
      record.toolchains = frame.toolchains;
      return 'agent.changed';
    case 'status':
      record.draining = frame.draining;
      return 'agent.changed';
  }
}

/**
 * http://<Host of the upgrade request>, normalised like URL.origin: the origin the agent's
 * CONTROL_BASE_URL names, which the agent expects as a grant's `iss` by default.
 */
export function originOf(host: string | undefined): string {
  try {
    return new URL(`http://${host ?? '127.0.0.1'}`).origin;
  } catch {
    return 'http://127.0.0.1';
  }
}
