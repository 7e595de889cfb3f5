// The signaling relay (PROTOCOL §6): a client's offer + grant go to the grant's agent as
// session.offer; the agent's answer or rejection comes back as the HTTP reply.
import { randomBytes } from 'node:crypto';
import type { AgentMessage, ControlMessage, IceServer, Msg } from '../control/messages.js';
import type { Logger } from '../log/index.js';
import { HttpError } from './http.js';
import { seconds } from './match.js';
import type { Emit, SessionRecord } from './types.js';

/** Session records kept at most; the oldest are forgotten beyond it. */
export const MAX_SESSIONS = 10_000;

export interface SessionRelayOptions {
  sessionWaitMs: number;
  send: (agentId: string, frame: ControlMessage) => boolean;
  now: () => number;
  emit: Emit;
  log: Logger;
}

export interface SessionRequest {
  agentId: string;
  jobId: string;
  grant: string;
  sdp: string;
  iceServers: IceServer[];
}

interface Pending {
  resolve: (sdp: string) => void;
  reject: (err: HttpError) => void;
  timer: NodeJS.Timeout;
}

type SessionFrame = Msg<
  AgentMessage,
  'session.answer' | 'session.candidate' | 'session.rejected' | 'session.closed'
>;

export class SessionRelay {
  private readonly records = new Map<string, SessionRecord>();
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly o: SessionRelayOptions) {}

  get(sessionId: string): SessionRecord | undefined {
    return this.records.get(sessionId);
  }

  list(): SessionRecord[] {
    return [...this.records.values()];
  }

  /** Send session.offer and wait for the agent's answer (its SDP) or rejection (403). */
  async open(req: SessionRequest): Promise<{ session_id: string; sdp: string }> {
    const sessionId = `s-${randomBytes(10).toString('hex')}`;
    const record: SessionRecord = {
      session_id: sessionId,
      agent_id: req.agentId,
      job_id: req.jobId,
      status: 'offered',
      created_at: this.o.now(),
      candidates: 0,
    };
    const answered = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(sessionId);
        record.status = 'timed_out';
        reject(
          new HttpError(
            504,
            'AEGIS_ERR_NO_AGENT',
            `Agent ${req.agentId} did not answer session ${sessionId} within ${seconds(this.o.sessionWaitMs)}.`,
          ),
        );
      }, this.o.sessionWaitMs);
      this.pending.set(sessionId, { resolve, reject, timer });
    });
    this.remember(record);
    const sent = this.o.send(req.agentId, {
      type: 'session.offer',
      session_id: sessionId,
      job_id: req.jobId,
      grant: req.grant,
      sdp: req.sdp,
      ice_servers: req.iceServers,
    });
    if (!sent)
      this.fail(
        sessionId,
        new HttpError(503, 'AEGIS_ERR_NO_AGENT', `Agent ${req.agentId} is not connected.`),
      );
    else
      this.o.emit('session.offered', {
        session_id: sessionId,
        agent_id: req.agentId,
        job_id: req.jobId,
      });
    return { session_id: sessionId, sdp: await answered };
  }

  /** Relay a client's trickled candidate to the session's agent (session.candidate). */
  candidate(sessionId: string, candidate: string, mid: string): void {
    const record = this.records.get(sessionId);
    if (!record)
      throw new HttpError(
        404,
        'AEGIS_ERR_PROTOCOL',
        `No session ${sessionId} on this control plane.`,
      );
    const frame = { type: 'session.candidate' as const, session_id: sessionId, candidate, mid };
    if (!this.o.send(record.agent_id, frame)) {
      throw new HttpError(503, 'AEGIS_ERR_NO_AGENT', `Agent ${record.agent_id} is not connected.`);
    }
  }

  /** Ask the agent to end a session (session.close). */
  close(sessionId: string): void {
    const record = this.records.get(sessionId);
    if (!record)
      throw new HttpError(
        404,
        'AEGIS_ERR_PROTOCOL',
        `No session ${sessionId} on this control plane.`,
      );
    if (!this.o.send(record.agent_id, { type: 'session.close', session_id: sessionId })) {
      throw new HttpError(503, 'AEGIS_ERR_NO_AGENT', `Agent ${record.agent_id} is not connected.`);
    }
  }

  onFrame(agentId: string, frame: SessionFrame): void {
    const record = this.records.get(frame.session_id);
    if (record && record.agent_id !== agentId) {
      this.o.log.warn(
        { agent: agentId, session: frame.session_id },
        'session frame from another agent dropped',
      );
      return;
    }
    const pending = this.pending.get(frame.session_id);
    switch (frame.type) {
      case 'session.answer':
        this.o.emit('session.answered', {
          session_id: frame.session_id,
          agent_id: agentId,
          sdp: frame.sdp,
        });
        if (!pending) return;
        this.settle(frame.session_id, pending);
        if (record) record.status = 'answered';
        pending.resolve(frame.sdp);
        return;
      case 'session.rejected':
        this.o.log.info(
          { agent: agentId, session: frame.session_id, code: frame.code },
          'session rejected',
        );
        if (record) {
          record.status = 'rejected';
          record.rejection = { code: frame.code, message: frame.message };
        }
        this.o.emit('session.rejected', {
          session_id: frame.session_id,
          agent_id: agentId,
          code: frame.code,
          message: frame.message,
        });
        if (!pending) return;
        this.settle(frame.session_id, pending);
        pending.reject(new HttpError(403, frame.code, frame.message));
        return;
      case 'session.candidate':
        if (record) record.candidates += 1;
        this.o.emit('session.candidate', {
          session_id: frame.session_id,
          agent_id: agentId,
          candidate: frame.candidate,
          mid: frame.mid,
        });
        return;
      case 'session.closed':
        if (record) {
          record.status = 'closed';
          record.closed_reason = frame.reason;
        }
        this.o.emit('session.closed', {
          session_id: frame.session_id,
          agent_id: agentId,
          reason: frame.reason,
        });
        return;
    }
  }

  /** The agent's connection closed: its unanswered sessions fail now, not at the timeout. */
  agentGone(agentId: string): void {
    for (const sessionId of [...this.pending.keys()]) {
      if (this.records.get(sessionId)?.agent_id !== agentId) continue;
      this.fail(
        sessionId,
        new HttpError(
          503,
          'AEGIS_ERR_NO_AGENT',
          `Agent ${agentId} disconnected before answering the session.`,
        ),
      );
    }
  }

  stop(): void {
    for (const sessionId of [...this.pending.keys()]) {
      this.fail(
        sessionId,
        new HttpError(
          503,
          'AEGIS_ERR_NO_AGENT',
          'The control plane stopped before the agent answered.',
        ),
      );
    }
  }

  private fail(sessionId: string, err: HttpError): void {
    const pending = this.pending.get(sessionId);
    if (!pending) return;
    this.settle(sessionId, pending);
    const record = this.records.get(sessionId);
    if (record) record.status = 'failed';
    pending.reject(err);
  }

  private settle(sessionId: string, pending: Pending): void {
    clearTimeout(pending.timer);
    this.pending.delete(sessionId);
  }

  private remember(record: SessionRecord): void {
    this.records.set(record.session_id, record);
    while (this.records.size > MAX_SESSIONS) {
      const oldest = this.records.keys().next();
      if (oldest.done === true) break;
      this.records.delete(oldest.value);
    }
  }
}
