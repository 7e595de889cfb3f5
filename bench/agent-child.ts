// The far side of the WebRTC benchmarks, in a process of its own so its memory is its own
// (P3) and client and server do not share one event loop (fairness between subject and
// baseline). Started with fork(); driven over the IPC channel, one request at a time.
//
//   agent mode: the agent's real session layer — createSessionManager with real grants (a test
//               signer and a local JWKS), the real channel handlers and send queue, and real jobs
//               (TestJob: a real workspace, log spool and pty build) whose manifest names the
//               artifact files the parent wrote. What it lacks of the daemon is the control link
//               (signaling arrives over IPC instead of the WebSocket) and the build scheduler.
//   raw mode:   a bare node-datachannel answerer: on a `get` over its `bulk` channel it sends the
//               file in 16 KiB messages while bufferedAmount() ≤ the requested cap (the baseline).
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLocalJWKSet } from 'jose';
import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import type { AgentMessage } from '../src/control/messages.js';
import { createGrantVerifier } from '../src/grants/index.js';
import { ArtifactManifest } from '../src/jobs/artifacts.js';
import { hashFile } from '../src/jobs/merge.js';
import { createLogger } from '../src/log/index.js';
import type { SessionJob } from '../src/webrtc/job-access.js';
import { createSessionManager, type SessionManager } from '../src/webrtc/manager.js';
import { cleanupNodeDataChannel, initNodeDataChannel } from '../src/webrtc/ndc.js';
import { createTestSigner, grantConfig, type TestSigner } from '../test/helpers/grants.js';
import { TestJob } from '../test/helpers/session-job.js';

const mode = process.argv[2] === 'raw' ? 'raw' : 'agent';
const log = createLogger({ level: 'warn' });
/** The same SCTP send buffer in both modes (the agent's default, SCTP_SEND_BUFFER_BYTES). */
const SCTP_SEND_BUFFER = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;

type Req = { id: number; op: string; [k: string]: unknown };
type Handler = (req: Req) => unknown;

function gathered(pc: PeerConnection, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const t = setInterval(() => {
      const sdp = pc.localDescription()?.sdp;
      if (pc.gatheringState() === 'complete' && sdp) {
        clearInterval(t);
        resolve(sdp);
      } else if (Date.now() - started > timeoutMs) {
        clearInterval(t);
        reject(new Error('ICE gathering did not complete'));
      }
    }, 5);
  });
}

// ---- agent mode ------------------------------------------------------------------------------

interface AgentState {
  signer: TestSigner;
  manager: SessionManager;
  frames: AgentMessage[];
  jobs: Map<string, SessionJob>;
  ptyJobs: Map<string, TestJob>;
  manifest: ArtifactManifest | undefined;
  sampler: { timer: NodeJS.Timeout; max: number; samples: number } | undefined;
  /** Temp dirs this process made (workspaces, state), removed on close. */
  dirs: string[];
}

/** The temp work dir TestJob.create made for `job` (<workDir>/jobs/<id>). */
const workDirOf = (job: TestJob) => path.dirname(path.dirname(job.paths.root));

/** A job whose pty is `pty`'s and whose artifacts are the bench files (served while it builds). */
function withArtifacts(pty: TestJob, manifest: () => ArtifactManifest | undefined): SessionJob {
  return {
    jobId: pty.jobId,
    target: pty.target,
    state: () => pty.state(),
    exitCode: () => pty.exitCode(),
    error: () => pty.error(),
    onState: (l) => pty.onState(l),
    beginSource: (d) => pty.beginSource(d),
    logReader: (from) => pty.logReader(from),
    logSize: () => pty.logSize(),
    ptyWrite: (data) => pty.ptyWrite(data),
    ptyResize: (c, r) => pty.ptyResize(c, r),
    manifest,
    cancel: (reason) => pty.cancel(reason),
  };
}

async function agentHandlers(): Promise<Record<string, Handler>> {
  const signer = await createTestSigner();
  const config = grantConfig({
    ICE_TIMEOUT_S: '10',
    SCTP_SEND_BUFFER_BYTES: String(SCTP_SEND_BUFFER),
  });
  const jobs = new Map<string, SessionJob>();
  const verifier = await createGrantVerifier({
    config,
    log,
    lookupJob: (id) => {
      const job = jobs.get(id);
      return job && { target: job.target };
    },
    skewMs: () => undefined,
    keys: createLocalJWKSet(signer.jwks),
  });
  const frames: AgentMessage[] = [];
  const listeners = new Set<() => void>();
  const manager = createSessionManager({
    config,
    log,
    verifier,
    jobs: { lookup: (id) => jobs.get(id) },
    send: (frame) => {
      frames.push(frame);
      for (const fn of [...listeners]) fn();
      return true;
    },
    iceServers: () => [],
  });
  const st: AgentState = {
    signer,
    manager,
    frames,
    jobs,
    ptyJobs: new Map(),
    manifest: undefined,
    sampler: undefined,
    dirs: [config.stateDir, config.cacheDir],
  };
  const waitFrame = (pred: (f: AgentMessage) => boolean, timeoutMs: number) =>
    new Promise<AgentMessage>((resolve, reject) => {
      const check = () => {
        const f = st.frames.find(pred);
        if (!f) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(f);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error('the session manager sent no answer'));
      }, timeoutMs);
      listeners.add(check);
      check();
    });

  return {
    /** Artifacts: files the parent wrote; the manifest is built over them (hashing each). */
    async init(req) {
      const files = req['files'] as { name: string; path: string }[];
      const entries = [];
      for (const f of files)
        entries.push({ name: f.name, path: f.path, ...(await hashFile(f.path)) });
      st.manifest = new ArtifactManifest(
        'esp32',
        { flash_mode: 'dio', flash_size: '4MB', flash_freq: '80m' },
        entries,
      );
      const done = await TestJob.create({ jobId: 'job-dl', log });
      st.dirs.push(workDirOf(done));
      done.finish('succeeded', 0);
      jobs.set(
        'job-dl',
        withArtifacts(done, () => st.manifest),
      );
      return { files: st.manifest.files };
    },
    /** A job running `command` under a real pty (its artifacts: the bench files). */
    async startPty(req) {
      const jobId = req['jobId'] as string;
      const job = await TestJob.create({ jobId, log });
      st.dirs.push(workDirOf(job));
      job.startPty(req['command'] as { file: string; args: string[] }, { cols: 120, rows: 40 });
      st.ptyJobs.set(jobId, job);
      jobs.set(
        jobId,
        withArtifacts(job, () => st.manifest),
      );
      return { pid: process.pid };
    },
    ptyWrite(req) {
      const ok = st.ptyJobs
        .get(req['jobId'] as string)
        ?.ptyWrite(Buffer.from(req['data'] as string));
      return { ok: ok ?? false };
    },
    /** The tail of a pty job's log spool, as written (diagnostics). */
    logTail(req) {
      const job = st.ptyJobs.get(req['jobId'] as string);
      if (!job) return { size: 0, tail: '' };
      const text = fs.readFileSync(job.paths.log, 'latin1');
      return { size: text.length, tail: text.slice(-80), state: job.state() };
    },
    stopPty(req) {
      const job = st.ptyJobs.get(req['jobId'] as string);
      job?.cancel('bench done');
      return {};
    },
    async offer(req) {
      const sessionId = `s-${randomUUID().slice(0, 12)}`;
      const jobId = req['jobId'] as string;
      const grant = await signer.sign({
        job: jobId,
        target: 'esp32',
        channels: req['channels'] as string[],
      });
      await manager.onOffer({
        type: 'session.offer',
        session_id: sessionId,
        job_id: jobId,
        grant,
        sdp: req['sdp'] as string,
      });
      const reply = await waitFrame(
        (f) =>
          (f.type === 'session.answer' || f.type === 'session.rejected') &&
          f.session_id === sessionId,
        15_000,
      );
      if (reply.type !== 'session.answer') throw new Error(`rejected: ${JSON.stringify(reply)}`);
      return { sessionId, sdp: reply.sdp };
    },
    /** Samples the session's in-flight bytes (the sum of bufferedAmount()) every 5 ms. */
    sampleStart(req) {
      const session = manager.session(req['sessionId'] as string);
      if (!session) throw new Error('no such session');
      if (st.sampler) clearInterval(st.sampler.timer);
      const s = { timer: undefined as unknown as NodeJS.Timeout, max: 0, samples: 0 };
      s.timer = setInterval(() => {
        s.samples++;
        s.max = Math.max(s.max, session.queue.inFlight());
      }, 5);
      st.sampler = s;
      return {};
    },
    sampleStop(req) {
      const s = st.sampler;
      st.sampler = undefined;
      if (s) clearInterval(s.timer);
      const session = manager.session(req['sessionId'] as string);
      return {
        maxInFlight: s?.max ?? 0,
        samples: s?.samples ?? 0,
        queue: session?.queue.stats(),
        budget: session?.queue.budget,
        reserve: session?.queue.reserve,
      };
    },
    gc() {
      gc?.();
      return { rss: process.memoryUsage.rss() };
    },
    async close() {
      for (const job of st.ptyJobs.values()) job.cancel('bench done');
      await manager.shutdown({ releaseNative: false });
      // Let the canceled builds go before their workspaces do.
      await Promise.race([
        Promise.all(
          [...st.ptyJobs.values()].map(
            (j) =>
              new Promise<void>((r) => {
                if (j.state() !== 'building') return r();
                j.onState(() => r());
              }),
          ),
        ),
        new Promise((r) => setTimeout(r, 3000)),
      ]);
      for (const d of st.dirs) fs.rmSync(d, { recursive: true, force: true });
      return {};
    },
  };
}

// ---- raw mode --------------------------------------------------------------------------------

function rawHandlers(): Record<string, Handler> {
  nodeDataChannel.setSctpSettings({ sendBufferSize: SCTP_SEND_BUFFER });
  const keep: unknown[] = [];
  const peers: PeerConnection[] = [];
  let sampler: { timer: NodeJS.Timeout; max: number; samples: number } | undefined;
  let current: DataChannel | undefined;

  const serve = (dc: DataChannel, file: string, cap: number) => {
    const CHUNK = 16 * 1024;
    const fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    let sent = 0;
    let done = false;
    const buf = Buffer.allocUnsafe(CHUNK);
    const finish = () => {
      done = true;
      clearInterval(pump);
      fs.closeSync(fd);
    };
    const fill = () => {
      try {
        while (!done && sent < size && dc.isOpen() && dc.bufferedAmount() <= cap) {
          const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, size - sent), sent);
          dc.sendMessageBinary(buf.subarray(0, n));
          sent += n;
        }
        if (done) return;
        if (sent >= size) {
          dc.sendMessage(JSON.stringify({ type: 'end', bytes: sent }));
          finish();
        } else if (!dc.isOpen()) finish();
      } catch (err) {
        log.error({ err }, 'raw sender failed');
        if (!done) finish();
      }
    };
    dc.setBufferedAmountLowThreshold(Math.floor(cap / 2));
    dc.onBufferedAmountLow(fill);
    // onBufferedAmountLow only fires on a downward crossing: a fallback wake-up.
    const pump = setInterval(fill, 5);
    fill();
  };

  return {
    init() {
      return {};
    },
    async offer(req) {
      const pc = new nodeDataChannel.PeerConnection(`raw-${peers.length}`, { iceServers: [] });
      peers.push(pc);
      pc.onDataChannel((dc) => {
        keep.push(dc);
        current = dc;
        dc.onMessage((msg) => {
          try {
            if (typeof msg !== 'string') return;
            const f = JSON.parse(msg) as { type: string; path: string; cap: number };
            if (f.type === 'get') serve(dc, f.path, f.cap);
          } catch (err) {
            log.error({ err }, 'raw request failed');
          }
        });
      });
      pc.setRemoteDescription(req['sdp'] as string, 'offer');
      return { sessionId: `raw-${peers.length}`, sdp: await gathered(pc) };
    },
    sampleStart() {
      const s = { timer: undefined as unknown as NodeJS.Timeout, max: 0, samples: 0 };
      s.timer = setInterval(() => {
        s.samples++;
        try {
          s.max = Math.max(s.max, current?.bufferedAmount() ?? 0);
        } catch {
          // closed
        }
      }, 5);
      sampler = s;
      return {};
    },
    sampleStop() {
      const s = sampler;
      sampler = undefined;
      if (s) clearInterval(s.timer);
      return { maxInFlight: s?.max ?? 0, samples: s?.samples ?? 0 };
    },
    gc() {
      gc?.();
      return { rss: process.memoryUsage.rss() };
    },
    close() {
      for (const dc of keep as DataChannel[]) {
        try {
          dc.close();
        } catch {
          // already closed
        }
      }
      for (const pc of peers) pc.close();
      return {};
    },
  };
}

// ---- the IPC loop ----------------------------------------------------------------------------

async function main(): Promise<void> {
  if (mode === 'agent') initNodeDataChannel({ sctpSendBufferBytes: SCTP_SEND_BUFFER, log });
  const handlers = mode === 'agent' ? await agentHandlers() : rawHandlers();
  let chain = Promise.resolve();
  process.on('message', (msg: Req) => {
    chain = chain.then(async () => {
      try {
        const handler = handlers[msg.op];
        if (!handler) throw new Error(`unknown op ${msg.op}`);
        const result = await handler(msg);
        process.send?.({ id: msg.id, ok: true, result });
        if (msg.op === 'close') {
          cleanupNodeDataChannel();
          process.disconnect();
        }
      } catch (err) {
        process.send?.({ id: msg.id, ok: false, error: (err as Error).stack ?? String(err) });
      }
    });
  });
  process.on('disconnect', () => {
    // The parent is gone (or we are done): leave no temp workspace behind and exit.
    setTimeout(() => process.exit(0), 200).unref();
  });
  process.send?.({ id: 0, ok: true, result: { ready: true, pid: process.pid, tmp: os.tmpdir() } });
}

main().catch((err: unknown) => {
  console.error('bench child failed', err);
  process.exit(1);
});
