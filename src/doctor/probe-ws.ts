// One agent WebSocket for doctor (PROTOCOL §1): connect with a token, send `hello`, wait for
// `welcome`, close with 1000 at once. Failures are named by the link's own describers, so doctor
// and the daemon's log use the same sentences. Doctor is a diagnostic edge, like src/control.
import WebSocket from 'ws';
import {
  describeConnectError,
  describeHttpRefusal,
  type ConnectFailure,
  type ConnectTarget,
} from '../control/backoff.js';
import { MAX_FRAME_BYTES, parseControlMessage } from '../control/messages.js';
import type { WelcomeFrame } from '../control/plane.js';
import { measureSkew } from '../control/skew.js';

export type HelloProbeResult =
  | { ok: true; welcome: WelcomeFrame; skewMs: number; ms: number }
  | { ok: false; failure: ConnectFailure };

export interface HelloProbeOptions {
  url: string;
  target: ConnectTarget;
  authorization: string;
  /** The encoded hello frame. */
  hello: string;
  /** Deadline over connect + upgrade + hello → welcome. */
  timeoutMs: number;
}

/** How long a clean close may take before the socket is cut (ws itself would wait 30 s). */
const CLOSE_GRACE_MS = 1000;

/** Resolves once the socket is closed, so no handle outlives the probe. */
export function probeHello(opts: HelloProbeOptions): Promise<HelloProbeResult> {
  const { host, port } = opts.target;
  const where = `${host}:${port}`;
  const unreachable = (kind: ConnectFailure['kind'], message: string): HelloProbeResult => ({
    ok: false,
    failure: { code: 'AEGIS_ERR_CONTROL_UNREACHABLE', kind, message },
  });
  const started = Date.now();
  const ws = new WebSocket(opts.url, {
    headers: { authorization: opts.authorization },
    maxPayload: MAX_FRAME_BYTES,
    handshakeTimeout: opts.timeoutMs,
    perMessageDeflate: false,
    followRedirects: false,
  });
  return new Promise((resolve) => {
    let result: HelloProbeResult | undefined;
    let helloSentAt = started;
    const finish = (r: HelloProbeResult): void => {
      if (result !== undefined) return;
      result = r;
      clearTimeout(deadline);
      if (ws.readyState === WebSocket.OPEN) {
        ws.close(1000, 'aegis-agent doctor: done');
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      } else if (ws.readyState !== WebSocket.CLOSED) {
        ws.terminate();
      }
    };
    const deadline = setTimeout(() => {
      finish(
        unreachable(
          'timeout',
          ws.readyState === WebSocket.OPEN
            ? `${where} accepted the WebSocket but sent no welcome within ${opts.timeoutMs / 1000} s`
            : `no WebSocket upgrade from ${where} within ${opts.timeoutMs / 1000} s`,
        ),
      );
    }, opts.timeoutMs);
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      finish({ ok: false, failure: describeHttpRefusal(res.statusCode ?? 0, opts.target) });
    });
    ws.on('open', () => {
      helloSentAt = Date.now();
      ws.send(opts.hello);
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const parsed = parseControlMessage(toBuffer(data));
      if (parsed.kind === 'invalid') {
        finish(
          unreachable('other', `${where} sent an invalid frame before welcome: ${parsed.reason}`),
        );
        return;
      }
      if (parsed.kind !== 'ok' || parsed.message.type !== 'welcome') return;
      const now = Date.now();
      finish({
        ok: true,
        welcome: parsed.message,
        skewMs: measureSkew(helloSentAt, now, parsed.message.server_time),
        ms: now - started,
      });
    });
    ws.on('error', (err) => finish({ ok: false, failure: describeConnectError(err, opts.target) }));
    ws.on('close', (code, reason) => {
      const why = reason.toString('utf8');
      finish(
        unreachable(
          'closed',
          `${where} closed the connection before welcome (code ${code}${why ? `: ${why}` : ''})`,
        ),
      );
      resolve(result as HelloProbeResult);
    });
  });
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
