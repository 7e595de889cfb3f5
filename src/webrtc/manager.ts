// The session manager: signaling in (session.offer / .candidate / .close from the control
// link), grant check first, limits, one Session per accepted offer, and session.answer /
// .rejected / .closed / .candidate out through `send`. A refused offer never gets a peer
// connection. An established session outlives its grant's exp.
import type { DataChannel } from 'node-datachannel';
import type { AgentConfig } from '../config/index.js';
import type { AgentMessage, IceServer, Msg, ControlMessage } from '../control/messages.js';
import { AegisError, toAegisError } from '../errors.js';
import type { GrantVerifier, VerifiedGrant } from '../grants/index.js';
import type { Logger } from '../log/index.js';
import { createAnswerer } from './answerer.js';
import { iceServerUrls } from './ice.js';
import type { JobDirectory, SessionJob } from './job-access.js';
import { cleanupNodeDataChannel, initNodeDataChannel } from './ndc.js';
import { routeChannel } from './router.js';
import { attempt } from './safe.js';
import { SendQueue } from './send-queue.js';
import { Session } from './session.js';

export type SessionConfig = Pick<
  AgentConfig,
  | 'sendQueueBytes'
  | 'chunkBytes'
  | 'sctpSendBufferBytes'
  | 'maxSessions'
  | 'maxSessionsPerJob'
  | 'iceTimeoutS'
  | 'sourceMaxBytes'
>;

export interface SessionMetrics {
  bytesSent(kind: string, n: number): void;
  queueWait(kind: string, ms: number): void;
  sessionOpened(): void;
  sessionClosed(): void;
  grantRejected(code: string): void;
}

export interface SessionManagerOptions {
  config: SessionConfig;
  log: Logger;
  verifier: Pick<GrantVerifier, 'verify'>;
  jobs: JobDirectory;
  /** Hands a frame to the control link; false when it could not be queued (logged, not retried). */
  send: (frame: AgentMessage) => boolean;
  /** The welcome's ICE servers, for offers that bring none. */
  iceServers: () => IceServer[];
  metrics?: SessionMetrics;
  /** Malformed messages one session may send before it is closed (default 100). */
  maxProtocolErrors?: number;
}

export interface SessionManager {
  onOffer(msg: Msg<ControlMessage, 'session.offer'>): Promise<void>;
  onCandidate(msg: Msg<ControlMessage, 'session.candidate'>): void;
  onClose(msg: Msg<ControlMessage, 'session.close'>): void;
  count(): number;
  countForJob(jobId: string): number;
  closeAll(reason: string): void;
  /**
   * Closes every session, then releases node-datachannel (cleanup(), once per process) unless
   * `releaseNative` is false: tests that run several agents in one process release it once, last.
   */
  shutdown(options?: { releaseNative?: boolean }): Promise<void>;
  /** A live session (tests, diagnostics). */
  session(id: string): Session | undefined;
  /** Peer connections created since start (a refused offer must not add one). */
  peerConnectionsCreated(): number;
}

/** Remote candidates kept per session while its offer is checked; more are dropped. */
const MAX_EARLY_CANDIDATES = 64;

interface Pending {
  candidates: { candidate: string; mid: string }[];
  closed: boolean;
}

export function createSessionManager(options: SessionManagerOptions): SessionManager {
  const { config, verifier, jobs, metrics } = options;
  const log = options.log.child({ component: 'webrtc' });
  initNodeDataChannel({ sctpSendBufferBytes: config.sctpSendBufferBytes, log });
  const sessions = new Map<string, Session>();
  const pending = new Map<string, Pending>();
  const addCandidate = new Map<string, (candidate: string, mid: string) => void>();
  let created = 0;
  let stopping = false;

  const send = (frame: AgentMessage): void => {
    if (!options.send(frame))
      log.warn({ type: frame.type }, 'signaling frame not sent: control link down');
  };
  const reject = (sessionId: string, err: AegisError): void => {
    log.warn({ session_id: sessionId, code: err.code }, `session refused: ${err.message}`);
    send({ type: 'session.rejected', session_id: sessionId, code: err.code, message: err.message });
  };
  const countForJob = (jobId: string): number => {
    let n = 0;
    for (const s of sessions.values()) if (s.job.jobId === jobId) n++;
    return n;
  };

  function checkOffer(msg: Msg<ControlMessage, 'session.offer'>, grant: VerifiedGrant): SessionJob {
    if (grant.job !== msg.job_id) {
      throw new AegisError(
        'AEGIS_ERR_GRANT_JOB',
        `The grant is for job ${grant.job}, but the offer asks for job ${msg.job_id}; use the grant issued for this job.`,
      );
    }
    const job = jobs.lookup(grant.job);
    if (job === undefined || job.target !== grant.target) {
      throw new AegisError(
        'AEGIS_ERR_GRANT_JOB',
        `Job ${grant.job} (${grant.target}) is not held by this agent; ask for a grant for a job this agent runs.`,
      );
    }
    if (stopping) {
      throw new AegisError(
        'AEGIS_ERR_SESSION_LIMIT',
        'The agent is shutting down; retry on another agent.',
      );
    }
    if (sessions.size >= config.maxSessions) {
      throw new AegisError(
        'AEGIS_ERR_SESSION_LIMIT',
        `This agent has ${sessions.size} sessions open, its limit (MAX_SESSIONS); close one or retry later.`,
      );
    }
    if (countForJob(job.jobId) >= config.maxSessionsPerJob) {
      throw new AegisError(
        'AEGIS_ERR_SESSION_LIMIT',
        `Job ${job.jobId} has ${config.maxSessionsPerJob} sessions open, its limit (MAX_SESSIONS_PER_JOB); close one first.`,
      );
    }
    return job;
  }

  function open(
    msg: Msg<ControlMessage, 'session.offer'>,
    grant: VerifiedGrant,
    job: SessionJob,
    early: Pending['candidates'],
  ): void {
    const id = msg.session_id;
    const slog = log.child({ session_id: id, job_id: job.jobId });
    const queue = new SendQueue({
      budget: config.sendQueueBytes,
      chunkBytes: config.chunkBytes,
      ...(metrics ? { metrics } : {}),
    });
    let answered = false;
    let answerSdp = '';
    let connected = false;
    let setupError: AegisError | undefined;
    const session = new Session({
      id,
      job,
      grant,
      limits: {
        sendQueueBytes: config.sendQueueBytes,
        chunkBytes: config.chunkBytes,
        sourceMaxBytes: config.sourceMaxBytes,
      },
      log: slog,
      queue,
      maxProtocolErrors: options.maxProtocolErrors ?? 100,
      onClosed: (_s, reason) => {
        sessions.delete(id);
        addCandidate.delete(id);
        metrics?.sessionClosed();
        if (answered)
          send({ type: 'session.closed', session_id: id, reason: reason.slice(0, 256) });
        else
          reject(
            id,
            setupError ??
              new AegisError(
                'AEGIS_ERR_INTERNAL',
                `The session ended before its answer: ${reason}.`,
              ),
          );
      },
    });
    sessions.set(id, session);
    metrics?.sessionOpened();

    const { urls, skipped } = iceServerUrls(msg.ice_servers ?? options.iceServers());
    if (skipped.length > 0) slog.debug({ skipped }, 'ICE servers left out');
    const iceTimeoutMs = config.iceTimeoutS * 1000;
    let answerer: ReturnType<typeof createAnswerer>;
    try {
      created++;
      answerer = createAnswerer({
        name: `aegis-${id}`,
        iceUrls: urls,
        offerSdp: msg.sdp,
        log: slog,
        gatherTimeoutMs: Math.min(5000, Math.max(500, iceTimeoutMs / 2)),
        onDataChannel: (dc: DataChannel) => {
          if (session.closed) {
            attempt(slog, 'late dc.close', () => dc.close());
            return;
          }
          routeChannel(session, dc);
        },
        onStateChange: (state) => {
          slog.debug({ state }, 'peer connection state');
          // "connected" here means ICE, DTLS and SCTP are up. ICE alone is not enough: the
          // client's ICE agent answers connectivity checks before it has applied our answer,
          // so a client that never applies it would look connected forever.
          if (state === 'connected') connected = true;
          if (state === 'closed') session.close(connected ? 'peer_closed' : 'ice_failed');
          if (state === 'failed') session.close(connected ? 'peer_failed' : 'ice_failed');
        },
        onIceStateChange: (state) => {
          if (state === 'failed') session.close(connected ? 'peer_failed' : 'ice_failed');
        },
        onLocalCandidate: (candidate, mid) => {
          // Candidates already in the answer are not repeated; late ones trickle.
          if (!answered || session.closed || answerSdp.includes(candidate)) return;
          send({
            type: 'session.candidate',
            session_id: id,
            candidate: candidate.replace(/^a=/, ''),
            mid,
          });
        },
      });
    } catch (err) {
      setupError = toAegisError(err);
      session.close('setup_failed');
      return;
    }
    const { pc, answer } = answerer;
    session.addPeer(pc);
    session.timer(iceTimeoutMs, () => {
      if (!connected) session.close('ice_failed');
    });
    const addRemote = (candidate: string, mid: string): void => {
      // A malformed candidate must not end the session: the others may still connect.
      if (!attempt(slog, 'pc.addRemoteCandidate', () => pc.addRemoteCandidate(candidate, mid))) {
        slog.debug('remote candidate refused');
      }
    };
    for (const c of early) addRemote(c.candidate, c.mid);
    addCandidate.set(id, addRemote);
    answer.then(
      (sdp) => {
        if (session.closed) return;
        answered = true;
        answerSdp = sdp;
        send({ type: 'session.answer', session_id: id, sdp });
        slog.info({ channels: grant.channels, sub: grant.sub }, 'session answered');
      },
      (err: unknown) => {
        setupError = toAegisError(err);
        session.close('setup_failed');
      },
    );
  }

  return {
    async onOffer(msg) {
      const id = msg.session_id;
      if (sessions.has(id) || pending.has(id)) {
        reject(
          id,
          new AegisError(
            'AEGIS_ERR_PROTOCOL',
            `Session ${id} exists already; use a new session id.`,
          ),
        );
        return;
      }
      const entry: Pending = { candidates: [], closed: false };
      pending.set(id, entry);
      let grant: VerifiedGrant;
      try {
        grant = await verifier.verify(msg.grant);
      } catch (err) {
        pending.delete(id);
        const refusal = toAegisError(err);
        metrics?.grantRejected(refusal.code);
        reject(id, refusal);
        return;
      }
      pending.delete(id);
      if (entry.closed) {
        reject(
          id,
          new AegisError('AEGIS_ERR_CANCELED', 'The session was closed before it was set up.'),
        );
        return;
      }
      let job: SessionJob;
      try {
        job = checkOffer(msg, grant);
      } catch (err) {
        reject(id, toAegisError(err));
        return;
      }
      open(msg, grant, job, entry.candidates);
    },
    onCandidate(msg) {
      const add = addCandidate.get(msg.session_id);
      if (add) return add(msg.candidate, msg.mid);
      const entry = pending.get(msg.session_id);
      // Trickled before the offer was checked: addRemoteCandidate would throw without the
      // remote description, so it waits for it.
      if (entry && entry.candidates.length < MAX_EARLY_CANDIDATES) {
        entry.candidates.push({ candidate: msg.candidate, mid: msg.mid });
      } else {
        log.debug({ session_id: msg.session_id }, 'candidate for no session dropped');
      }
    },
    onClose(msg) {
      const entry = pending.get(msg.session_id);
      if (entry) entry.closed = true;
      sessions.get(msg.session_id)?.close('closed');
    },
    count: () => sessions.size,
    countForJob,
    closeAll(reason) {
      for (const s of [...sessions.values()]) s.close(reason);
    },
    async shutdown(shutdownOptions) {
      stopping = true;
      for (const s of [...sessions.values()]) s.close('shutdown');
      // Let the closes reach libdatachannel's threads before its teardown.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (shutdownOptions?.releaseNative === false) return;
      try {
        cleanupNodeDataChannel();
      } catch (err) {
        log.error({ err }, 'node-datachannel cleanup failed');
      }
    },
    session: (id) => sessions.get(id),
    peerConnectionsCreated: () => created,
  };
}
