// Per-session TURN credentials for the dev plane, in the TURN REST form coturn checks with
// `use-auth-secret`: username "<expiry unix seconds>:<user>", credential
// base64(HMAC-SHA1(shared secret, username)). Minted fresh for every grant and every session
// that brings no servers of its own; never put in `welcome` (PROTOCOL §1: per session, never
// cached by the agent). Pure apart from the clock it is given.
import { createHmac } from 'node:crypto';
import type { IceServer } from '../control/messages.js';
import { AegisError } from '../errors.js';

export interface DevTurnOptions {
  /** turn: URLs of one relay sharing `secret`, e.g. "turn:127.0.0.1:3478?transport=udp". */
  urls: string[];
  /** coturn's static-auth-secret. */
  secret: string;
  /** Credential lifetime in seconds. Default 3600: longer than a build (BUILD_TIMEOUT_S 1800). */
  ttlS?: number;
  /** The user part of every username; default the job id. */
  user?: string;
}

export const DEFAULT_TURN_TTL_S = 3600;

const TURN_URL = /^turns?:[^\s]+$/i;

/** Refuses an unusable `turn` option at start, naming what is wrong. */
export function validateTurn(turn: DevTurnOptions | undefined): void {
  if (turn === undefined) return;
  const problems: string[] = [];
  if (turn.urls.length === 0) problems.push('urls is empty');
  for (const url of turn.urls)
    if (!TURN_URL.test(url)) problems.push(`"${url.slice(0, 80)}" is not a turn: or turns: URL`);
  if (turn.secret === '') problems.push('secret is empty');
  const ttl = turn.ttlS ?? DEFAULT_TURN_TTL_S;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86_400)
    problems.push(`ttlS must be a whole number of seconds from 1 to 86400, not ${ttl}`);
  if (turn.user !== undefined && (turn.user === '' || /[:\s]/.test(turn.user)))
    problems.push('user must be non-empty, without ":" or spaces');
  if (problems.length > 0) {
    throw new AegisError(
      'AEGIS_ERR_CONFIG',
      `The dev control plane's TURN settings are unusable: ${problems.join('; ')}.`,
    );
  }
}

/**
 * Mints IceServers with credentials valid until now + ttl. Every username it hands out is
 * distinct, so no two sessions share credentials: when several are minted within one second,
 * each expiry is one second past the previous one (a burst of n mints ends n − 1 s late at most).
 */
export class TurnMinter {
  private lastExpiry = 0;

  constructor(private readonly turn: DevTurnOptions) {}

  mint(subject: string, nowMs: number): IceServer {
    const expiry = Math.max(
      Math.floor(nowMs / 1000) + (this.turn.ttlS ?? DEFAULT_TURN_TTL_S),
      this.lastExpiry + 1,
    );
    this.lastExpiry = expiry;
    const username = `${expiry}:${this.turn.user ?? subject}`;
    return {
      urls: [...this.turn.urls],
      username,
      credential: turnCredential(this.turn.secret, username),
    };
  }
}

/** base64(HMAC-SHA1(secret, username)): what coturn computes for use-auth-secret. */
export function turnCredential(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

/** The configured (static, credential-free) servers plus, when TURN is set, fresh credentials. */
export function sessionIceServers(
  iceServers: readonly IceServer[],
  turn: TurnMinter | undefined,
  subject: string,
  nowMs: number,
): IceServer[] {
  return turn === undefined ? [...iceServers] : [...iceServers, turn.mint(subject, nowMs)];
}
