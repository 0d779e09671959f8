import { describe, expect, it } from 'vitest';

import { conversation } from './fixtures';
import { remaining, windowIndicator } from './window';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const wa = (open: boolean, expires_at: string | null) =>
  conversation('c', { channel: { id: 'w', kind: 'whatsapp', name: 'WA' }, window: { open, expires_at } });

describe('windowIndicator', () => {
  it('counts down the open window in hours, then minutes', () => {
    expect(windowIndicator(wa(true, '2026-01-01T17:30:00Z'), NOW)).toEqual({
      open: true,
      text: 'Window open · closes in 5 h',
      closingSoon: false,
    });
    expect(windowIndicator(wa(true, '2026-01-01T12:42:30Z'), NOW)).toEqual({
      open: true,
      text: 'Window open · closes in 42 min',
      closingSoon: true,
    });
  });

  it('says only templates can be sent once closed, also when it expired while on screen', () => {
    const closed = {
      open: false,
      text: 'The 24-hour window is closed — only templates can be sent',
      closingSoon: false,
    };
    expect(windowIndicator(wa(false, null), NOW)).toEqual(closed);
    expect(windowIndicator(wa(true, '2026-01-01T11:59:59Z'), NOW)).toEqual(closed);
  });

  it('shows nothing for channels without a window', () => {
    expect(windowIndicator(conversation('c'), NOW)).toBeNull();
    expect(windowIndicator(conversation('c', { channel: { id: 't', kind: 'telegram', name: 'TG' } }), NOW)).toBeNull();
  });

  it('remaining never says 0', () => {
    expect(remaining(10_000)).toBe('1 min');
    expect(remaining(3_600_000)).toBe('1 h');
  });
});
