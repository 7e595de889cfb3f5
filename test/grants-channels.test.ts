// checkChannels: the one pure decision on a grant's channel list (PROTOCOL §4 labels).
import { describe, expect, it } from 'vitest';
import { CHANNEL_LABELS, checkChannels } from '../src/grants/index.js';

describe('checkChannels', () => {
  it('accepts distinct known labels, in the order given', () => {
    expect(checkChannels(['pty', 'control'])).toEqual({ ok: true, channels: ['pty', 'control'] });
    expect(checkChannels([...CHANNEL_LABELS])).toEqual({ ok: true, channels: [...CHANNEL_LABELS] });
  });

  it('refuses empty, unknown, duplicate and non-string entries, and non-arrays', () => {
    for (const list of [
      [],
      ['control', 'shell'],
      ['logs', 'logs'],
      [null],
      'control',
      undefined,
      { 0: 'logs' },
    ]) {
      const result = checkChannels(list);
      expect(result.ok, JSON.stringify(list)).toBe(false);
    }
  });

  it('keeps a hostile label short and quoted in the reason', () => {
    const result = checkChannels(['control', `evil\n${'x'.repeat(500)}`]);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason).not.toContain('\n');
      expect(result.reason.length).toBeLessThan(120);
    }
  });
});
