// Inbound frames of the control link, at the edge: raw WebSocket data → parsed, typed message →
// the one handler for its kind. Bad frames are dropped with a warn line (PROTOCOL §1), unknown
// types with a debug line; nothing here throws.
import type WebSocket from 'ws';
import type { Logger } from '../log/index.js';
import { parseControlMessage } from './messages.js';
import type { InboundMessage, WelcomeFrame } from './plane.js';

export interface InboundHandlers {
  log: Logger;
  welcome: (w: WelcomeFrame) => void;
  ack: (seq: number) => void;
  deliver: (msg: InboundMessage) => void;
}

export function routeFrame(data: WebSocket.RawData, isBinary: boolean, h: InboundHandlers): void {
  if (isBinary) {
    h.log.warn(
      { code: 'AEGIS_ERR_PROTOCOL', type: undefined, reason: 'binary frame' },
      'dropped a binary frame from the control plane: the protocol is JSON text frames',
    );
    return;
  }
  const parsed = parseControlMessage(toBuffer(data));
  switch (parsed.kind) {
    case 'invalid':
      h.log.warn(
        { code: 'AEGIS_ERR_PROTOCOL', type: parsed.type, reason: parsed.reason },
        `dropped an invalid ${parsed.type ?? 'untyped'} frame from the control plane`,
      );
      return;
    case 'unknown':
      h.log.debug({ type: parsed.type }, 'ignored a frame of a type this agent does not know');
      return;
    case 'ok':
      break;
  }
  const msg = parsed.message;
  if (msg.type === 'welcome') h.welcome(msg);
  else if (msg.type === 'ack') h.ack(msg.seq);
  else h.deliver(msg);
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
