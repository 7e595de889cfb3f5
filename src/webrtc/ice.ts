// IceServer (the RTCIceServer shape of PROTOCOL §1) → node-datachannel's URL strings. Pure.
// libjuice speaks TURN over UDP only and takes at most two TURN servers (WEBRTC-NOTES), so
// turns: and transport=tcp entries are dropped, and TURN beyond the second is too.
import type { IceServer } from '../control/messages.js';

export const MAX_TURN_SERVERS = 2;

export interface IceUrls {
  urls: string[];
  /** Entries left out, with why (for a debug log line; never includes credentials). */
  skipped: string[];
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/;

export function iceServerUrls(servers: readonly IceServer[]): IceUrls {
  const urls: string[] = [];
  const skipped: string[] = [];
  let turns = 0;
  for (const server of servers) {
    const list = typeof server.urls === 'string' ? [server.urls] : server.urls;
    for (const raw of list) {
      const m = /^(stun|stuns|turn|turns):([^?]*)(?:\?(.*))?$/i.exec(raw.trim());
      const scheme = m?.[1]?.toLowerCase();
      const hostPort = m?.[2] ?? '';
      const query = new URLSearchParams(m?.[3] ?? '');
      const shown = `${scheme ?? '?'}:${hostPort.slice(0, 80)}`;
      const hp = HOST_PORT.exec(hostPort);
      if (scheme === undefined || hp === null) {
        skipped.push(`${shown}: not a stun: or turn: URL`);
        continue;
      }
      const port = hp[2] ?? '3478';
      const host = hp[1] as string;
      if (scheme === 'stun') {
        urls.push(`stun:${host}:${port}`);
        continue;
      }
      const transport = query.get('transport')?.toLowerCase();
      if (scheme !== 'turn' || (transport !== undefined && transport !== 'udp')) {
        skipped.push(`${shown}: only TURN over UDP is supported`);
        continue;
      }
      if (turns >= MAX_TURN_SERVERS) {
        skipped.push(`${shown}: more than ${MAX_TURN_SERVERS} TURN servers`);
        continue;
      }
      // The TURN REST username is "<expiry>:<user>": both parts are percent-encoded so the
      // ':' and any '@' stay inside the credentials.
      const user = encodeURIComponent(server.username ?? '');
      const pass = encodeURIComponent(server.credential ?? '');
      urls.push(`turn:${user}:${pass}@${host}:${port}`);
      turns++;
    }
  }
  return { urls, skipped };
}
