// The client's HTTP side of the control plane (PROTOCOL §6): grants and the signaling relay.
// Errors come back as AegisErrors carrying the control plane's own code.
import { AegisError, ERROR_CODES, type ErrorCode } from '../errors.js';
import type { IceServer } from '../control/messages.js';

export interface GrantResponse {
  job_id: string;
  agent_id: string;
  grant: string;
  ice_servers: IceServer[];
  expires_at: number;
}

export interface ControlApi {
  baseUrl: string;
  mcpSecret?: string | undefined;
  /** Per-request timeout (the grant request waits for a claim: up to 10 s on the plane's side). */
  timeoutMs?: number;
}

function isCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code);
}

async function post<T>(api: ControlApi, path: string, body: unknown): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (api.mcpSecret) headers['authorization'] = `Bearer ${api.mcpSecret}`;
  let res: Response;
  try {
    res = await fetch(`${api.baseUrl}${path}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(api.timeoutMs ?? 30_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new AegisError(
      'AEGIS_ERR_CONTROL_UNREACHABLE',
      `Cannot reach the control plane at ${api.baseUrl} (${cause}): check the URL (scheme, host, port) and that it is running.`,
      { cause: err },
    );
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const o = (json ?? {}) as { code?: unknown; message?: unknown };
    const code: ErrorCode = isCode(o.code)
      ? o.code
      : res.status === 401
        ? 'AEGIS_ERR_AUTH'
        : 'AEGIS_ERR_PROTOCOL';
    const hint = res.status === 401 && !api.mcpSecret ? ' Set MCP_AUTH_SECRET.' : '';
    throw new AegisError(
      code,
      `${path}: HTTP ${res.status}: ${typeof o.message === 'string' ? o.message : text.slice(0, 200)}${hint}`,
    );
  }
  return json as T;
}

export function requestGrant(
  api: ControlApi,
  body:
    | { target: string; idf?: string | undefined; channels: string[]; client?: string }
    | { job_id: string; channels: string[] },
): Promise<GrantResponse> {
  return post<GrantResponse>(api, '/grant/request', body);
}

export function relayOffer(
  api: ControlApi,
  grant: string,
  sdp: string,
  iceServers?: IceServer[],
): Promise<{ session_id: string; sdp: string }> {
  return post(api, '/session', { grant, sdp, ...(iceServers ? { ice_servers: iceServers } : {}) });
}

/** Trickle one local ICE candidate to the agent through the control plane. */
export async function relayCandidate(
  api: ControlApi,
  sessionId: string,
  candidate: string,
  mid: string,
): Promise<void> {
  await post(api, `/session/${encodeURIComponent(sessionId)}/candidate`, { candidate, mid });
}
