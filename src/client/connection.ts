// One WebRTC connection of the reference client: the offerer creates every channel, gathers
// all candidates, sends the offer through the control plane and applies the agent's answer.
import nodeDataChannel, { type PeerConnection } from 'node-datachannel';
import type { IceServer } from '../control/messages.js';
import { AegisError } from '../errors.js';
import type { ChannelLabel } from '../grants/index.js';
import { iceServerUrls } from '../webrtc/ice.js';
import { relayCandidate, relayOffer, type ControlApi } from './api.js';
import { ClientChannel } from './channel.js';
import { splitCandidates } from './sdp.js';

export interface ConnectOptions {
  api: ControlApi;
  grant: string;
  iceServers: IceServer[];
  channels: readonly ChannelLabel[];
  /** Offer only relay candidates (testing TURN). */
  relayOnly?: boolean;
  timeoutMs?: number;
  onProtocolError?: (reason: string) => void;
}

export interface Connection {
  readonly sessionId: string;
  readonly pc: PeerConnection;
  channel<L extends ChannelLabel>(label: L): ClientChannel<L>;
  /** Resolves when the peer connection ends (closed, failed or disconnected). */
  readonly ended: Promise<string>;
  close(): void;
}

const GATHER_POLL_MS = 10;

export async function connect(opts: ConnectOptions): Promise<Connection> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const pc = new nodeDataChannel.PeerConnection(`aegis-client-${process.pid}`, {
    iceServers: iceServerUrls(opts.iceServers).urls,
    ...(opts.relayOnly ? { iceTransportPolicy: 'relay' as const } : {}),
  });
  let endedResolve!: (why: string) => void;
  const ended = new Promise<string>((r) => (endedResolve = r));
  const history: string[] = [];
  pc.onStateChange((state) => {
    history.push(`pc:${state}`);
    if (state === 'closed' || state === 'failed' || state === 'disconnected') endedResolve(state);
  });
  pc.onIceStateChange((state) => history.push(`ice:${state}`));
  const channels = new Map<ChannelLabel, ClientChannel<ChannelLabel>>();
  const protocolError = opts.onProtocolError ?? (() => undefined);
  try {
    for (const label of opts.channels) {
      channels.set(label, new ClientChannel(label, pc.createDataChannel(label), protocolError));
    }
    const offer = splitCandidates(await gathered(pc, timeoutMs));
    const answer = await relayOffer(opts.api, opts.grant, offer.sdp, opts.iceServers);
    try {
      // iceTransportPolicy 'relay' hides only our own non-relay candidates: checks from our
      // host socket to the agent's direct addresses would still connect. Relay-only means
      // the agent's direct candidates are not used either.
      pc.setRemoteDescription(
        opts.relayOnly ? relayCandidatesOnly(answer.sdp) : answer.sdp,
        'answer',
      );
    } catch (err) {
      throw new AegisError(
        'AEGIS_ERR_ICE_FAILED',
        `applying the agent's answer failed (${(err as Error).message}); states: ${history.join(' ')}`,
        { cause: err },
      );
    }
    // Only now may the agent start its checks towards us (see sdp.ts).
    await Promise.all(
      offer.candidates.map((c) => relayCandidate(opts.api, answer.session_id, c.candidate, c.mid)),
    );
    await Promise.race([
      Promise.all([...channels.values()].map((c) => c.waitOpen(timeoutMs))),
      ended.then((why) => {
        throw new AegisError(
          'AEGIS_ERR_ICE_FAILED',
          `the connection ${why} before its channels opened: no candidate pair worked (firewall? TURN relay reachable?)`,
        );
      }),
    ]);
    if (opts.relayOnly) {
      const pair = pc.getSelectedCandidatePair();
      if (pair?.local.type !== 'relay') {
        throw new AegisError(
          'AEGIS_ERR_ICE_FAILED',
          `relay-only was asked for, but the selected candidate pair is local=${pair?.local.type ?? 'none'}`,
        );
      }
    }
    return {
      sessionId: answer.session_id,
      pc,
      channel: <L extends ChannelLabel>(label: L) => {
        const c = channels.get(label);
        if (!c) throw new AegisError('AEGIS_ERR_INTERNAL', `channel ${label} was not requested`);
        return c as unknown as ClientChannel<L>;
      },
      ended,
      close: () => closeAll(pc, channels),
    };
  } catch (err) {
    closeAll(pc, channels);
    throw err;
  }
}

/** The SDP without its non-relay candidates. */
export function relayCandidatesOnly(sdp: string): string {
  return sdp
    .split(/\r?\n/)
    .filter((line) => !line.startsWith('a=candidate:') || /\btyp relay\b/.test(line))
    .join('\r\n');
}

/** The complete offer, once gathering is done (polled: its callback can fire before we listen). */
async function gathered(pc: PeerConnection, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sdp = pc.gatheringState() === 'complete' ? pc.localDescription()?.sdp : undefined;
    if (sdp) return sdp;
    if (Date.now() > deadline)
      throw new AegisError('AEGIS_ERR_ICE_FAILED', 'ICE gathering did not complete');
    await new Promise((r) => setTimeout(r, GATHER_POLL_MS));
  }
}

function closeAll(
  pc: PeerConnection,
  channels: Map<ChannelLabel, ClientChannel<ChannelLabel>>,
): void {
  for (const c of channels.values()) {
    try {
      c.dc.close();
    } catch {
      // already closed
    }
  }
  try {
    pc.close();
  } catch {
    // already closed
  }
}
