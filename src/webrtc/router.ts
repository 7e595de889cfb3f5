// The channel router (PROTOCOL §3): every data channel the client opens is held by its session,
// checked against the grant's channels and the labels already open, and either handed to the
// handler of its kind or closed at once with a `rejected` frame on `control`. It also turns raw
// messages into typed frames for the handlers: anything malformed is a protocol error.
import type { DataChannel } from 'node-datachannel';
import { CHANNEL_LABELS, isChannelLabel, type ChannelLabel } from '../grants/index.js';
import { createArtifactsHandler } from './channels/artifacts.js';
import type { ChannelContext, ChannelHandler, HandlerFactory } from './channels/context.js';
import { createControlHandler } from './channels/control.js';
import { createLogsHandler } from './channels/logs.js';
import { createPtyHandler } from './channels/pty.js';
import { createSourceHandler } from './channels/source.js';
import { parseFrame, type AnyAgentFrame } from './frames.js';
import { attempt, guard } from './safe.js';
import type { OpenChannel, Session } from './session.js';

export const HANDLERS: { readonly [L in ChannelLabel]: HandlerFactory<L> } = {
  control: createControlHandler,
  source: createSourceHandler,
  logs: createLogsHandler,
  pty: createPtyHandler,
  artifacts: createArtifactsHandler,
};

export type ChannelCheck =
  { ok: true; label: ChannelLabel } | { ok: false; shown: string; message: string };

/** May a channel labelled `label` open, given the grant's channels and the labels open now? Pure. */
export function checkChannel(
  label: string,
  granted: readonly ChannelLabel[],
  open: readonly ChannelLabel[],
): ChannelCheck {
  const shown = isChannelLabel(label) ? label : JSON.stringify(label.slice(0, 64));
  if (!isChannelLabel(label) || !granted.includes(label)) {
    const known = isChannelLabel(label) ? '' : ` (channels are ${CHANNEL_LABELS.join(', ')})`;
    return {
      ok: false,
      shown,
      message: `Channel ${shown} was rejected: not in this grant's channels (${granted.join(', ')})${known}`,
    };
  }
  if (open.includes(label)) {
    return {
      ok: false,
      shown,
      message: `Channel ${shown} was rejected: a ${label} channel is already open in this session`,
    };
  }
  return { ok: true, label };
}

/** Takes one incoming data channel of `session` (called from onDataChannel). */
export function routeChannel(session: Session, dc: DataChannel): void {
  const log = session.log;
  session.holdChannel(dc);
  const check = checkChannel(dc.getLabel(), session.grant.channels, session.openLabels());
  if (!check.ok) {
    log.warn(
      { code: 'AEGIS_ERR_CHANNEL_REJECTED', session_id: session.id, channel: check.shown },
      check.message,
    );
    dc.onClosed(guard(log, 'rejected dc.onClosed', () => session.releaseChannel(dc)));
    attempt(log, 'reject dc.close', () => dc.close());
    const frame: AnyAgentFrame = {
      type: 'rejected',
      channel: check.shown,
      code: 'AEGIS_ERR_CHANNEL_REJECTED',
      message: check.message,
    };
    session.notifyRejected(frame);
    return;
  }

  const label = check.label;
  const abort = new AbortController();
  const ctx = channelContext(session, dc, label, abort.signal);
  const handler = HANDLERS[label](ctx) as ChannelHandler;
  const entry: OpenChannel = { label, dc, ctx, handler, abort };
  session.claimLabel(entry);
  // The terminal keeps room for its keystroke echoes while downloads run (send-queue.ts).
  session.queue.attach(dc, { holdsReserve: label === 'pty' });

  let opened = false;
  const open = (): void => {
    if (opened || session.closed) return;
    opened = true;
    handler.open();
    if (label === 'control') session.flushRejected(ctx);
  };
  let ended = false;
  const closed = (): void => {
    if (ended) return;
    ended = true;
    abort.abort();
    session.queue.detach(dc);
    session.releaseLabel(entry);
    session.releaseChannel(dc);
    if (!session.closed) handler.closed();
  };

  dc.onBufferedAmountLow(guard(log, 'dc.onBufferedAmountLow', () => session.queue.wake()));
  dc.onMessage(guard(log, `dc.onMessage ${label}`, (msg) => dispatch(session, entry, msg)));
  dc.onClosed(guard(log, `dc.onClosed ${label}`, closed));
  dc.onError(
    guard(log, `dc.onError ${label}`, (err) =>
      log.warn({ session_id: session.id, channel: label, err }, 'data channel error'),
    ),
  );
  dc.onOpen(guard(log, `dc.onOpen ${label}`, open));
  // Channels announced by onDataChannel are usually open already; onOpen may or may not follow.
  if (dc.isOpen()) open();
}

function dispatch(session: Session, entry: OpenChannel, msg: string | Buffer | ArrayBuffer): void {
  if (session.closing || entry.abort.signal.aborted) return;
  const { ctx, handler } = entry;
  if (typeof msg === 'string') {
    const parsed = parseFrame(entry.label, msg);
    if (parsed.ok) handler.frame(parsed.frame);
    else ctx.protocolError(parsed.reason);
    return;
  }
  const data = Buffer.isBuffer(msg) ? msg : Buffer.from(msg);
  if (handler.binary === undefined) {
    ctx.protocolError(`binary messages are not allowed on ${entry.label}`);
    return;
  }
  const max = handler.maxBinaryIn ?? 0;
  if (data.length > max) {
    ctx.protocolError(
      `a ${data.length}-byte binary message exceeds ${max} bytes on ${entry.label}`,
    );
    return;
  }
  handler.binary(data);
}

function channelContext(
  session: Session,
  dc: DataChannel,
  label: ChannelLabel,
  signal: AbortSignal,
): ChannelContext {
  const log = session.log.child({ session_id: session.id, channel: label });
  const sendFrame: ChannelContext['sendFrame'] = (frame, priority = 'interactive') =>
    session.queue.send(dc, JSON.stringify(frame), priority);
  const post = (frame: AnyAgentFrame): void => {
    sendFrame(frame).catch((err: unknown) =>
      log.debug({ err, type: frame.type }, 'frame not sent'),
    );
  };
  const sendError: ChannelContext['sendError'] = (err) => {
    if (session.allowErrorFrame()) post({ type: 'error', code: err.code, message: err.message });
  };
  return {
    label,
    sessionId: session.id,
    job: session.job,
    grant: session.grant,
    limits: session.limits,
    log,
    signal,
    maxBinary() {
      let max = session.limits.chunkBytes;
      attempt(log, 'maxMessageSize', () => {
        max = Math.min(max, dc.maxMessageSize());
      });
      return max;
    },
    sendFrame,
    sendBinary: (data, priority) => session.queue.send(dc, data, priority),
    post,
    sendError,
    protocolError(reason) {
      if (session.countProtocolError(label, reason)) {
        sendError({
          code: 'AEGIS_ERR_PROTOCOL',
          message: `Malformed message on ${label}: ${reason}.`,
        });
      }
    },
  };
}
