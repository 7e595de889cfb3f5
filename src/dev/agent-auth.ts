// The agent's connect token (PROTOCOL §1): HS256 with the shared AGENT_AUTH_SECRET, checked
// before the WebSocket upgrade so a bad token never gets a socket.
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { jwtVerify } from 'jose';
import { Id } from '../control/messages.js';
import { AegisError } from '../errors.js';

export const AGENT_TOKEN_TYP = 'aegis-agent+jwt';
export const AGENT_TOKEN_AUDIENCE = 'aegis-control';
/** The longest lifetime (exp − iat) an agent token may claim. */
export const AGENT_TOKEN_MAX_TTL_S = 60;
/** Clock tolerance for iat/exp: agent and plane share no clock. */
export const AGENT_TOKEN_CLOCK_TOLERANCE_S = 5;

/** The agent id (`sub`) of a valid `Authorization: Bearer <token>`, else AEGIS_ERR_AUTH. */
export async function verifyAgentToken(
  authorization: string | undefined,
  secret: Uint8Array,
): Promise<string> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  const token = m?.[1];
  if (token === undefined) {
    throw new AegisError(
      'AEGIS_ERR_AUTH',
      'Send the agent token as Authorization: Bearer <token>.',
    );
  }
  let payload;
  try {
    ({ payload } = await jwtVerify(token, secret, {
      algorithms: ['HS256'],
      audience: AGENT_TOKEN_AUDIENCE,
      typ: AGENT_TOKEN_TYP,
      requiredClaims: ['sub', 'iat', 'exp', 'jti'],
      clockTolerance: AGENT_TOKEN_CLOCK_TOLERANCE_S,
    }));
  } catch (err) {
    throw new AegisError(
      'AEGIS_ERR_AUTH',
      `The agent token was refused (${(err as Error).message}); check that AGENT_AUTH_SECRET matches this control plane's and the clock is right.`,
      { cause: err },
    );
  }
  const { sub, iat, exp } = payload;
  if (iat === undefined || exp === undefined || exp - iat > AGENT_TOKEN_MAX_TTL_S) {
    throw new AegisError(
      'AEGIS_ERR_AUTH',
      `The agent token lives longer than ${AGENT_TOKEN_MAX_TTL_S} s (exp − iat); make a fresh short-lived token per connect.`,
    );
  }
  if (!Id.safeParse(sub).success) {
    throw new AegisError('AEGIS_ERR_AUTH', 'The agent token\'s "sub" is not a valid agent id.');
  }
  return sub as string;
}

/** Answer an upgrade request with a plain HTTP error and close the socket. */
export function rejectUpgrade(socket: Duplex, status: number, code: string, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ code, message });
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
  );
}
