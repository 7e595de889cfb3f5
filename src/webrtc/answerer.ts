// The agent's side of one peer connection: created with the session's ICE servers, callbacks
// registered before the offer is applied (node-datachannel fires them from its own threads and
// a state may pass before a late registration), then the offer applied and the complete answer
// — every local candidate included — read once gathering is complete.
import nodeDataChannel, { type DataChannel, type PeerConnection } from 'node-datachannel';
import { AegisError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { attempt, guard } from './safe.js';

export interface AnswererOptions {
  name: string;
  /** node-datachannel URL strings (ice.ts). */
  iceUrls: string[];
  offerSdp: string;
  log: Logger;
  /** Longest wait for gathering; then the answer goes with what was gathered, the rest trickles. */
  gatherTimeoutMs: number;
  onDataChannel: (dc: DataChannel) => void;
  onStateChange: (state: string) => void;
  onIceStateChange: (state: string) => void;
  onLocalCandidate: (candidate: string, mid: string) => void;
}

export interface Answerer {
  pc: PeerConnection;
  /** The local SDP once gathering completed (or timed out). */
  answer: Promise<string>;
}

/** Throws AEGIS_ERR_PROTOCOL when the offer cannot be applied (the peer connection is closed). */
export function createAnswerer(opts: AnswererOptions): Answerer {
  const { log } = opts;
  const pc = new nodeDataChannel.PeerConnection(opts.name, { iceServers: opts.iceUrls });
  let gathered: (() => void) | undefined;
  pc.onDataChannel(guard(log, 'pc.onDataChannel', opts.onDataChannel));
  pc.onStateChange(guard(log, 'pc.onStateChange', opts.onStateChange));
  pc.onIceStateChange(guard(log, 'pc.onIceStateChange', opts.onIceStateChange));
  pc.onLocalCandidate(guard(log, 'pc.onLocalCandidate', opts.onLocalCandidate));
  pc.onGatheringStateChange(
    guard(log, 'pc.onGatheringStateChange', (state) => {
      if (state === 'complete') gathered?.();
    }),
  );
  try {
    pc.setRemoteDescription(opts.offerSdp, 'offer');
  } catch (err) {
    attempt(log, 'pc.close', () => pc.close());
    throw new AegisError(
      'AEGIS_ERR_PROTOCOL',
      `The offer's SDP could not be applied (${err instanceof Error ? err.message : String(err)}); send a data-channel offer from a WebRTC stack.`,
      { cause: err },
    );
  }
  const answer = new Promise<string>((resolve, reject) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      gathered = undefined;
      let sdp: string | undefined;
      attempt(log, 'pc.localDescription', () => {
        sdp = pc.localDescription()?.sdp;
      });
      if (sdp === undefined) {
        reject(
          new AegisError('AEGIS_ERR_INTERNAL', 'no local description after applying the offer'),
        );
      } else {
        resolve(sdp);
      }
    };
    const timer = setTimeout(finish, opts.gatherTimeoutMs);
    gathered = finish;
    // Gathering may have completed before the callback above could run.
    let state = '';
    attempt(log, 'pc.gatheringState', () => {
      state = pc.gatheringState();
    });
    if (state === 'complete') finish();
  });
  return { pc, answer };
}
