// Doctor's `ice` check: gather local candidates with node-datachannel using the welcome's ICE
// servers, and say which kinds appear (host / srflx / relay) against what the servers promise.
// The verdict is a pure function; the gathering is the only native part.
import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import type { IceServer } from '../control/messages.js';
import type { Logger } from '../log/index.js';
import { iceServerUrls } from '../webrtc/ice.js';
import { attempt, guard } from '../webrtc/safe.js';
import { error, ok, warn, type CheckResult } from './report.js';

export type CandidateType = 'host' | 'srflx' | 'prflx' | 'relay';

/** The `typ` of an SDP candidate line ("candidate:1 1 UDP 2122 192.0.2.1 5000 typ host"). */
export function candidateType(candidate: string): CandidateType | undefined {
  const m = /\btyp\s+(host|srflx|prflx|relay)\b/.exec(candidate);
  return m?.[1] as CandidateType | undefined;
}

/** How long to wait for a closed peer connection to say so before cleanup() goes ahead. */
const CLOSE_WAIT_MS = 2000;

/** Gather for up to `timeoutMs`; the peer connection is closed before this resolves. */
export async function gatherCandidateTypes(
  iceUrls: string[],
  timeoutMs: number,
  log: Logger,
): Promise<Set<CandidateType>> {
  const types = new Set<CandidateType>();
  const pc: PeerConnection = new nodeDataChannel.PeerConnection('aegis-doctor', {
    iceServers: iceUrls,
  });
  let dc: DataChannel | undefined;
  // cleanup() must not run while libdatachannel's threads are still closing this connection
  // (a native abort was seen when it did): the caller awaits `closed` first.
  const closed = new Promise<void>((resolve) => {
    pc.onStateChange(
      guard(log, 'pc.onStateChange', (state: string) => {
        if (state === 'closed') resolve();
      }),
    );
  });
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      pc.onLocalCandidate(
        guard(log, 'pc.onLocalCandidate', (candidate: string) => {
          const t = candidateType(candidate);
          if (t !== undefined) types.add(t);
        }),
      );
      pc.onGatheringStateChange(
        guard(log, 'pc.onGatheringStateChange', (state: string) => {
          if (state === 'complete') done();
        }),
      );
      // A data channel makes libdatachannel create the offer, which starts gathering.
      if (!attempt(log, 'pc.createDataChannel', () => (dc = pc.createDataChannel('doctor'))))
        done();
    });
  } finally {
    if (dc !== undefined) attempt(log, 'dc.close', () => dc?.close());
    attempt(log, 'pc.close', () => pc.close());
    await Promise.race([closed, new Promise((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]);
  }
  return types;
}

/** "turn:relay.example.com:3478" from a node-datachannel URL, without its credentials. */
export function shownUrl(url: string): string {
  return url.replace(/^(turn):[^@]*@/, '$1:');
}

export interface IceFindings {
  servers: readonly IceServer[];
  /** node-datachannel URLs made from them (credentials inside TURN ones). */
  urls: readonly string[];
  skipped: readonly string[];
  types: ReadonlySet<CandidateType>;
  timeoutMs: number;
}

/** What the candidates mean for clients reaching this agent. Pure. */
export function iceVerdict(f: IceFindings): CheckResult {
  const name = 'ice';
  const found = [...f.types].sort().join(', ') || 'none';
  const stun = f.urls.filter((u) => u.startsWith('stun:'));
  const turn = f.urls.filter((u) => u.startsWith('turn:')).map(shownUrl);
  const s = f.timeoutMs / 1000;
  const skippedNote = f.skipped.length > 0 ? `; not usable here: ${f.skipped.join(', ')}` : '';
  if (!f.types.has('host')) {
    return error(
      name,
      `no host candidate gathered (found: ${found}): no usable network interface?`,
      'check that this machine has a non-loopback address (ip addr)',
    );
  }
  if (f.servers.length === 0) {
    return warn(
      name,
      `candidates: ${found}; no STUN/TURN servers from the control plane: clients behind NAT cannot reach this agent`,
      'configure ice_servers (a STUN server and a TURN relay) on the control plane',
    );
  }
  if (f.urls.length === 0) {
    return warn(
      name,
      `candidates: ${found}; none of the control plane's ICE servers is usable here${skippedNote}`,
      'offer stun: and turn: (UDP) servers: libjuice speaks TURN over UDP only',
    );
  }
  if (turn.length > 0 && !f.types.has('relay')) {
    return error(
      name,
      `TURN relay unreachable or credentials refused: no relay candidate from ${turn.join(', ')} within ${s} s (found: ${found})`,
      'allow outbound UDP to the TURN port, and check the control plane hands out TURN credentials the relay accepts (shared secret, clock)',
    );
  }
  if (stun.length > 0 && !f.types.has('srflx')) {
    return warn(
      name,
      `no server-reflexive candidate from ${stun.join(', ')} within ${s} s (found: ${found}): outbound UDP blocked?`,
      'allow outbound UDP to the STUN port (usually 3478)',
    );
  }
  return ok(name, `candidates: ${found} via ${[...stun, ...turn].join(', ')}${skippedNote}`);
}

export async function checkIce(
  servers: readonly IceServer[],
  timeoutMs: number,
  log: Logger,
): Promise<CheckResult> {
  const { urls, skipped } = iceServerUrls(servers);
  const types = await gatherCandidateTypes(urls, timeoutMs, log);
  return iceVerdict({ servers, urls, skipped, types, timeoutMs });
}
