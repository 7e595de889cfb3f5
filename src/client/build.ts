// The reference client's whole job: grant → connect → upload → live log → artifacts, and
// when the connection drops, a new grant for the same job and a resume from the offsets
// already reached (log bytes printed, file bytes on disk). Nothing is fetched twice.
import { EventEmitter } from 'node:events';
import type { JobState } from '../control/messages.js';
import { AegisError, isAegisError, toAegisError } from '../errors.js';
import type { ChannelLabel } from '../grants/index.js';
import type { AgentFrame } from '../webrtc/frames.js';
import { requestGrant, type ControlApi, type GrantResponse } from './api.js';
import type { ClientChannel } from './channel.js';
import { connect, type Connection } from './connection.js';
import { packProject, type PackedSource } from './pack.js';
import { downloadArtifact, followLog, uploadSource, type DownloadResult } from './transfer.js';

export interface RemoteBuildOptions {
  api: ControlApi;
  projectDir: string;
  target: string;
  idf?: string | undefined;
  outDir: string;
  /** Follow the build on the `pty` channel (interactive) instead of `logs`. */
  pty?: boolean;
  relayOnly?: boolean;
  /** Reconnects after a dropped connection before giving up. */
  maxReconnects?: number;
  /** The live log: every byte of the build's terminal output, exactly once. */
  writeLog: (data: Buffer) => void;
  ptySize?: { cols: number; rows: number };
}

export type Manifest = Extract<AgentFrame<'artifacts'>, { type: 'manifest' }>;

export interface RemoteBuildResult {
  jobId: string;
  agentId: string;
  state: JobState;
  exitCode: number | undefined;
  error: { code: string; message: string } | undefined;
  manifest: Manifest | undefined;
  files: DownloadResult[];
  logBytes: number;
  reconnects: number;
  timings: {
    grantMs: number;
    uploadMs: number;
    buildMs: number;
    downloadMs: number;
    totalMs: number;
  };
}

export interface RemoteBuildEvents {
  connected: [{ sessionId: string; attempt: number }];
  uploading: [{ sent: number; total: number }];
  uploaded: [{ bytes: number }];
  state: [JobState];
  log: [{ bytes: number; total: number }];
  downloading: [{ name: string; bytes: number; total: number }];
  downloaded: [DownloadResult];
  reconnecting: [{ attempt: number; reason: string }];
  warning: [string];
}

/** Failures a new connection can fix; anything else (a refusal with a code) ends the build. */
function isConnectionLoss(err: unknown): boolean {
  if (!isAegisError(err)) return true;
  return [
    'AEGIS_ERR_ICE_FAILED',
    'AEGIS_ERR_PROTOCOL',
    'AEGIS_ERR_CONTROL_UNREACHABLE',
    'AEGIS_ERR_NO_AGENT',
  ].includes(err.code);
}

export class RemoteBuild extends EventEmitter<RemoteBuildEvents> {
  private conn: Connection | undefined;
  private logOffset = 0;
  private uploaded = false;
  private state: JobState = 'assigned';
  private exitCode: number | undefined;
  private error: { code: string; message: string } | undefined;
  private manifest: Manifest | undefined;
  private readonly files = new Map<string, DownloadResult>();

  constructor(private readonly opts: RemoteBuildOptions) {
    super();
  }

  /** The live connection's selected ICE candidate pair (diagnostics, tests); null without one. */
  selectedCandidatePair(): ReturnType<Connection['pc']['getSelectedCandidatePair']> {
    return this.conn?.pc.getSelectedCandidatePair() ?? null;
  }

  /** Cut the current connection, as a network failure would (fault injection for tests). */
  cut(): void {
    this.conn?.pc.close();
  }

  async run(): Promise<RemoteBuildResult> {
    const t0 = Date.now();
    const source = await packProject(this.opts.projectDir);
    const channels: ChannelLabel[] = [
      'control',
      'source',
      this.opts.pty ? 'pty' : 'logs',
      'artifacts',
    ];
    let grant = await requestGrant(this.opts.api, {
      target: this.opts.target,
      ...(this.opts.idf ? { idf: this.opts.idf } : {}),
      channels,
    });
    const timings = {
      grantMs: Date.now() - t0,
      uploadMs: 0,
      buildMs: 0,
      downloadMs: 0,
      totalMs: 0,
    };
    const max = this.opts.maxReconnects ?? 5;
    let reconnects = 0;
    for (;;) {
      try {
        await this.attempt(grant, channels, source, timings, reconnects);
        break;
      } catch (err) {
        this.conn?.close();
        if (!isConnectionLoss(err) || reconnects >= max) throw toAegisError(err);
        reconnects++;
        this.emit('reconnecting', { attempt: reconnects, reason: (err as Error).message });
        await new Promise((r) => setTimeout(r, Math.min(500 * reconnects, 3000)));
        grant = await requestGrant(this.opts.api, { job_id: grant.job_id, channels });
      }
    }
    this.conn?.close();
    timings.totalMs = Date.now() - t0;
    return {
      jobId: grant.job_id,
      agentId: grant.agent_id,
      state: this.state,
      exitCode: this.exitCode,
      error: this.error,
      manifest: this.manifest,
      files: [...this.files.values()],
      logBytes: this.logOffset,
      reconnects,
      timings,
    };
  }

  private async attempt(
    grant: GrantResponse,
    channels: ChannelLabel[],
    source: PackedSource,
    timings: RemoteBuildResult['timings'],
    attempt: number,
  ): Promise<void> {
    const conn = await connect({
      api: this.opts.api,
      grant: grant.grant,
      iceServers: grant.ice_servers,
      channels,
      ...(this.opts.relayOnly ? { relayOnly: true } : {}),
      onProtocolError: (reason) => this.emit('warning', `protocol: ${reason}`),
    });
    this.conn = conn;
    this.emit('connected', { sessionId: conn.sessionId, attempt });
    // A dropped connection surfaces as a closed channel; this turns it into one clear error.
    const lost = conn.ended.then((why) => {
      throw new AegisError('AEGIS_ERR_ICE_FAILED', `connection ${why}`);
    });
    lost.catch(() => undefined);
    const control = conn.channel('control');
    const hello = await Promise.race([control.expect(['hello']), lost]);
    this.setState(hello.state);
    void this.watchControl(control);

    if (!this.uploaded && (hello.state === 'assigned' || hello.state === 'receiving')) {
      const t = Date.now();
      await Promise.race([
        uploadSource(conn.channel('source'), source, (sent, total) =>
          this.emit('uploading', { sent, total }),
        ),
        lost,
      ]);
      this.uploaded = true;
      timings.uploadMs += Date.now() - t;
      this.emit('uploaded', { bytes: source.bytes.length });
    } else {
      this.uploaded = true;
    }

    const tBuild = Date.now();
    const eof = await Promise.race([this.follow(conn), lost]);
    timings.buildMs += Date.now() - tBuild;
    this.setState(eof.state);
    if (eof.exit_code !== undefined) this.exitCode = eof.exit_code;
    if (eof.state !== 'succeeded') return;

    const tDl = Date.now();
    const artifacts = conn.channel('artifacts');
    artifacts.sendJson({ type: 'list' });
    const manifest = await Promise.race([artifacts.expect(['manifest']), lost]);
    this.manifest = manifest;
    for (const entry of manifest.files) {
      if (this.files.has(entry.name)) continue;
      let got = 0;
      const done = await Promise.race([
        downloadArtifact(artifacts, this.opts.outDir, entry, (n) => {
          got += n;
          this.emit('downloading', { name: entry.name, bytes: got, total: entry.size });
        }),
        lost,
      ]);
      this.files.set(entry.name, done);
      this.emit('downloaded', done);
    }
    timings.downloadMs += Date.now() - tDl;
  }

  /** The log (or terminal) from where the last connection stopped, exactly once per byte. */
  private follow(conn: Connection) {
    const write = (data: Buffer) => {
      this.logOffset += data.length;
      this.opts.writeLog(data);
      this.emit('log', { bytes: data.length, total: this.logOffset });
    };
    if (this.opts.pty) {
      const pty = conn.channel('pty');
      const size = this.opts.ptySize ?? { cols: 120, rows: 40 };
      pty.sendJson({ type: 'attach', from: this.logOffset, cols: size.cols, rows: size.rows });
      return pty.expect(['eof'], write);
    }
    return followLog(conn.channel('logs'), this.logOffset, write);
  }

  /** Keystrokes for the build's terminal (only with --pty, only while it runs). */
  sendInput(data: Buffer): void {
    const conn = this.conn;
    if (!conn || !this.opts.pty) return;
    const pty = conn.channel('pty');
    for (let i = 0; i < data.length; i += 4096)
      void pty.sendBinary(data.subarray(i, i + 4096)).catch(() => undefined);
  }

  resize(cols: number, rows: number): void {
    if (this.conn && this.opts.pty)
      this.conn.channel('pty').sendJson({ type: 'resize', cols, rows });
  }

  /** Ask the agent to cancel the build. */
  cancel(): void {
    try {
      this.conn?.channel('control').sendJson({ type: 'cancel' });
    } catch {
      // No connection: nothing to cancel through.
    }
  }

  private setState(state: JobState): void {
    if (state === this.state) return;
    this.state = state;
    this.emit('state', state);
  }

  private async watchControl(control: ClientChannel<'control'>): Promise<void> {
    for (;;) {
      const item = await control.next();
      if (item.kind === 'closed') return;
      if (item.kind !== 'frame') continue;
      const f = item.frame;
      switch (f.type) {
        case 'state':
          if (f.exit_code !== undefined) this.exitCode = f.exit_code;
          if (f.error) this.error = f.error;
          this.setState(f.state);
          break;
        case 'rejected':
          this.emit('warning', `${f.code}: ${f.message}`);
          break;
        case 'error':
          this.emit('warning', `${f.code}: ${f.message}`);
          break;
        case 'hello':
        case 'manifest':
        case 'pong':
          break;
      }
    }
  }
}
