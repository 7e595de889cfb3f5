// The data-channel labels a grant may name (PROTOCOL §4), and the one check of a grant's
// `channels` claim. Pure: the session router reuses it for the labels a client opens.

export const CHANNEL_LABELS = ['control', 'source', 'logs', 'pty', 'artifacts'] as const;

export type ChannelLabel = (typeof CHANNEL_LABELS)[number];

export type ChannelCheck = { ok: true; channels: ChannelLabel[] } | { ok: false; reason: string };

export function isChannelLabel(value: unknown): value is ChannelLabel {
  return typeof value === 'string' && (CHANNEL_LABELS as readonly string[]).includes(value);
}

/** A grant's `channels`: a non-empty array of distinct labels from CHANNEL_LABELS. */
export function checkChannels(list: unknown): ChannelCheck {
  if (!Array.isArray(list)) return { ok: false, reason: 'the channels claim is not an array' };
  if (list.length === 0) return { ok: false, reason: 'the channels claim is empty' };
  const seen = new Set<ChannelLabel>();
  for (const item of list as unknown[]) {
    if (!isChannelLabel(item)) {
      // JSON.stringify keeps a hostile label on one line and visibly quoted.
      const shown = JSON.stringify(item)?.slice(0, 40) ?? String(item);
      return {
        ok: false,
        reason: `channel ${shown} is not one of ${CHANNEL_LABELS.join(', ')}`,
      };
    }
    if (seen.has(item)) return { ok: false, reason: `channel ${item} is listed twice` };
    seen.add(item);
  }
  return { ok: true, channels: [...seen] };
}
