// Reconnect policy of the control link (PROTOCOL §1), as pure functions: how long to wait before
// the next attempt, when the attempt counter starts over, and what a failed connect means in
// words an operator can act on. No timers, sockets or clocks here, so every decision is testable.
import type { ErrorCode } from '../errors.js';

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30_000;
/** A connection that stayed up this long was healthy: the next outage starts from attempt 0. */
export const BACKOFF_RESET_AFTER_MS = 60_000;

/** Upper bound of the wait before attempt `attempt` (0-based): min(cap, base·2^attempt). */
export function backoffCeiling(attempt: number): number {
  // 2^attempt overflows to Infinity long after it passed the cap; clamp the exponent to stay finite.
  const exp = Math.min(Math.max(0, Math.floor(attempt)), 32);
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** exp);
}

/**
 * Full-jitter exponential backoff: a uniform wait in [0, ceiling). Jitter spreads a fleet of
 * agents that lost the control plane at the same moment, so they do not return as one wave.
 */
export function backoffDelay(attempt: number, random: () => number): number {
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.floor(r * backoffCeiling(attempt));
}

/** The attempt counter to use after a connection closed that had been up for `upMs` (undefined: never up). */
export function attemptAfterClose(attempt: number, upMs: number | undefined): number {
  return upMs !== undefined && upMs >= BACKOFF_RESET_AFTER_MS ? 0 : attempt;
}

/** The control plane refused the token itself (HTTP 401 before the upgrade). */
export function isAuthFailure(statusCode: number): boolean {
  return statusCode === 401;
}

export type ConnectFailureKind =
  'auth' | 'dns' | 'refused' | 'unreachable' | 'timeout' | 'tls' | 'http' | 'closed' | 'other';

/** One failed connection attempt, classified once so the link logs it once per streak. */
export interface ConnectFailure {
  code: Extract<ErrorCode, 'AEGIS_ERR_AUTH' | 'AEGIS_ERR_CONTROL_UNREACHABLE'>;
  kind: ConnectFailureKind;
  /** One sentence naming the cause and the next step. */
  message: string;
}

/** Where the link was connecting, for the sentences below. */
export interface ConnectTarget {
  host: string;
  port: string;
}

/** The control plane answered the upgrade with a non-101 HTTP status. */
export function describeHttpRefusal(statusCode: number, target: ConnectTarget): ConnectFailure {
  if (isAuthFailure(statusCode)) {
    return {
      code: 'AEGIS_ERR_AUTH',
      kind: 'auth',
      message:
        "the control plane refused this agent's token (HTTP 401): AGENT_AUTH_SECRET differs from the control plane's (or this machine's clock is more than a minute off)",
    };
  }
  return {
    code: 'AEGIS_ERR_CONTROL_UNREACHABLE',
    kind: 'http',
    message: `${target.host}:${target.port} answered HTTP ${statusCode} instead of a WebSocket upgrade: is CONTROL_BASE_URL the control plane, and is a proxy in between passing WebSockets through?`,
  };
}

// OpenSSL / Node TLS error codes all carry one of these words.
const TLS_CODE = /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/;

/** A socket-level error while connecting (from ws' `error` event before `welcome`). */
export function describeConnectError(err: unknown, target: ConnectTarget): ConnectFailure {
  const where = `${target.host}:${target.port}`;
  const code = errorCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  const unreachable = (kind: ConnectFailureKind, message: string): ConnectFailure => ({
    code: 'AEGIS_ERR_CONTROL_UNREACHABLE',
    kind,
    message,
  });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME') {
    return unreachable(
      'dns',
      `cannot resolve host ${target.host} (${code}): check CONTROL_BASE_URL and this machine's DNS`,
    );
  }
  if (code === 'ECONNREFUSED') {
    return unreachable(
      'refused',
      `nothing listens on ${where}: is the control plane up, or a firewall in the way?`,
    );
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return unreachable(
      'unreachable',
      `no route to ${where} (${code}): check the network between this machine and the control plane`,
    );
  }
  if (code === 'ETIMEDOUT' || /timed out/i.test(detail)) {
    return unreachable(
      'timeout',
      `connecting to ${where} timed out: the host is up but slow, or a firewall drops the packets`,
    );
  }
  if (code !== undefined && TLS_CODE.test(code)) {
    return unreachable(
      'tls',
      `the TLS certificate of ${where} was not accepted (${code}): install the control plane's CA or fix its certificate`,
    );
  }
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return unreachable(
      'closed',
      `${where} dropped the connection during the handshake (${code}): a proxy or load balancer may be cutting WebSockets`,
    );
  }
  return unreachable('other', `cannot connect to ${where}: ${detail}`);
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
