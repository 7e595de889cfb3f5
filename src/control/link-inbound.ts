// Inbound frames of the control link, at the edge: raw WebSocket data → parsed, typed message →
// the one handler for its kind. Bad frames are dropped with a warn line (PROTOCOL §1), unknown
// types with a debug line; nothing here throws.
import type WebSocket from 'ws';
import type { Logger } from '../log/index.js';
import { parseControlMessage } from './messages.js';
import type { InboundMessage, WelcomeFrame } from './plane.js';

/** Bad frames logged at warn per minute and connection; the rest go to debug, counted in one line. */
export const DROP_WARNS_PER_MINUTE = 10;
const MINUTE_MS = 60_000;

/**
 * A control plane gone wrong can send thousands of bad frames: the journal gets the first
 * DROP_WARNS_PER_MINUTE each minute at warn, then one line saying how many more there were.
 */
export class DropLog {
  private windowStart = -Infinity;
  private warned = 0;
  private demoted = 0;

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  dropped(fields: Record<string, unknown>, msg: string): void {
    const t = this.now();
    if (t - this.windowStart >= MINUTE_MS) {
      this.flush();
      this.windowStart = t;
      this.warned = 0;
    }
    if (this.warned < DROP_WARNS_PER_MINUTE) {
      this.warned++;
      this.log.warn(fields, msg);
    } else {
      this.demoted++;
      this.log.debug(fields, msg);
    }
  }

  /** The count of demoted lines, once (at the next window, or when the connection ends). */
  flush(): void {
    if (this.demoted === 0) return;
    this.log.warn(
      { code: 'AEGIS_ERR_PROTOCOL', dropped: this.demoted },
      `${this.demoted} more invalid frames from the control plane were dropped (logged at debug)`,
    );
    this.demoted = 0;
  }
}

export interface InboundHandlers {
  log: Logger;
  drops: DropLog;
  welcome: (w: WelcomeFrame) => void;
  ack: (seq: number) => void;
  deliver: (msg: InboundMessage) => void;
}

export function routeFrame(data: WebSocket.RawData, isBinary: boolean, h: InboundHandlers): void {
  if (isBinary) {
    h.drops.dropped(
      { code: 'AEGIS_ERR_PROTOCOL', type: undefined, reason: 'binary frame' },
      'dropped a binary frame from the control plane: the protocol is JSON text frames',
    );
    return;
  }
  const parsed = parseControlMessage(toBuffer(data));
  switch (parsed.kind) {
    case 'invalid':
      h.drops.dropped(
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
