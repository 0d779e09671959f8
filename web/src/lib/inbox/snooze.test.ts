import { describe, expect, it } from 'vitest';

import { parseLocalDateTime, snoozePresets } from './snooze';

describe('snoozePresets', () => {
  it('is in an hour, tomorrow at 9:00 and next Monday at 9:00 (local time)', () => {
    const now = new Date(2026, 0, 7, 15, 30); // a Wednesday
    const [hour, tomorrow, week] = snoozePresets(now);
    expect(hour!.until.getTime() - now.getTime()).toBe(3_600_000);
    expect(tomorrow!.until).toEqual(new Date(2026, 0, 8, 9, 0));
    expect(week!.until).toEqual(new Date(2026, 0, 12, 9, 0));
  });

  it('on a Monday, next week is the Monday after', () => {
    const [, , week] = snoozePresets(new Date(2026, 0, 12, 8, 0));
    expect(week!.until).toEqual(new Date(2026, 0, 19, 9, 0));
  });

  it('a custom time must be in the future', () => {
    const now = new Date(2026, 0, 7, 15, 30);
    expect(parseLocalDateTime('2026-01-08T09:00', now)).toEqual(new Date(2026, 0, 8, 9, 0));
    expect(parseLocalDateTime('2026-01-07T15:00', now)).toBeNull();
    expect(parseLocalDateTime('', now)).toBeNull();
  });
});
