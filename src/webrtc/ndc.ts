// Process-wide node-datachannel state: the SCTP settings (they apply to peer connections made
// afterwards, so they are set before the first one), the native logger routed to pino, and
// the one cleanup() at shutdown, without which the process never exits.
import nodeDataChannel, { type LogLevel } from 'node-datachannel';
import type { Logger } from '../log/index.js';

export interface NdcOptions {
  /** SCTP_SEND_BUFFER_BYTES: the per-connection SCTP send buffer below the send queue. */
  sctpSendBufferBytes: number;
  log: Logger;
  /** libdatachannel's own verbosity; default Warning. */
  level?: LogLevel;
}

let initialised = false;
let cleanedUp = false;

/** Idempotent; the first call wins (the settings are process-wide). */
export function initNodeDataChannel(options: NdcOptions): void {
  if (initialised) return;
  initialised = true;
  const log = options.log.child({ component: 'libdatachannel' });
  // initLogger without a callback throws in 0.33.4; the callback runs on the JS thread via a
  // threadsafe function, and a throw inside it would abort the process (node-datachannel#187).
  nodeDataChannel.initLogger(options.level ?? 'Warning', (level, message) => {
    try {
      switch (level) {
        case 'Fatal':
        case 'Error':
          log.error(message);
          break;
        case 'Warning':
          log.warn(message);
          break;
        case 'Info':
          log.info(message);
          break;
        case 'Debug':
        case 'Verbose':
          log.debug(message);
          break;
      }
    } catch {
      // Logging must never kill the process.
    }
  });
  nodeDataChannel.setSctpSettings({ sendBufferSize: options.sctpSendBufferBytes });
}

/**
 * Releases libdatachannel's threads. Call once, after every channel and peer connection was
 * closed: it throws after 10 s when something is still open (libdatachannel#619).
 */
export function cleanupNodeDataChannel(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  nodeDataChannel.cleanup();
}
