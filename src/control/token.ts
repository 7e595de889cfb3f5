// The agent's control-plane token (PROTOCOL §1): a short-lived HS256 JWT signed with
// AGENT_AUTH_SECRET, made fresh for every connect. The secret is only ever a signing key here;
// it is not returned, logged or put in an error message.
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { AegisError } from '../errors.js';

export const AGENT_TOKEN_TYP = 'aegis-agent+jwt';
export const AGENT_TOKEN_AUDIENCE = 'aegis-control';
/** exp − iat: long enough to survive a slow handshake, short enough that a leaked header is stale. */
export const AGENT_TOKEN_TTL_S = 60;

export interface AgentTokenInput {
  agentId: string;
  /** AGENT_AUTH_SECRET; undefined when the operator has not set one. */
  secret: string | undefined;
  /** Seconds since the epoch; a parameter so tests can pin it. */
  nowS?: number;
}

/** Sign a fresh token (new `jti`, new `iat`) for one connection attempt. */
export async function createAgentToken(input: AgentTokenInput): Promise<string> {
  if (input.secret === undefined || input.secret === '') {
    throw new AegisError(
      'AEGIS_ERR_CONFIG',
      'AGENT_AUTH_SECRET is not set: the agent cannot authenticate to the control plane; set it in /etc/aegis/secrets.env (or the agent-secrets credential)',
    );
  }
  const iat = input.nowS ?? Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: AGENT_TOKEN_TYP })
    .setSubject(input.agentId)
    .setAudience(AGENT_TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + AGENT_TOKEN_TTL_S)
    .setJti(randomUUID())
    .sign(new TextEncoder().encode(input.secret));
}
