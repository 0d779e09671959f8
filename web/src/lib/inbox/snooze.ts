/** Snooze presets of the conversation header, computed in the browser's time zone. */

export interface SnoozeOption {
  label: string;
  until: Date;
}

/** In 1 hour, tomorrow at 9:00, next Monday at 9:00. */
export function snoozePresets(now: Date = new Date()): SnoozeOption[] {
  const hour = new Date(now.getTime() + 3_600_000);
  const tomorrow = new Date(now);
  tomorrow.setDate(now.getDate() + 1);
  tomorrow.setHours(9, 0, 0, 0);
  const monday = new Date(now);
  // getDay(): 0 Sunday … 6 Saturday; next Monday is 1–7 days ahead.
  monday.setDate(now.getDate() + ((8 - now.getDay()) % 7 || 7));
  monday.setHours(9, 0, 0, 0);
  return [
    { label: 'For 1 hour', until: hour },
    { label: 'Until tomorrow 9:00', until: tomorrow },
    { label: 'Until next week', until: monday },
  ];
}

/** A `datetime-local` input value ("2026-03-01T09:00") → Date, or null when empty/invalid/past. */
export function parseLocalDateTime(v: string, now: Date = new Date()): Date | null {
  if (!v) return null;
  const d = new Date(v);
  if (Number.isNaN(d.getTime()) || d.getTime() <= now.getTime()) return null;
  return d;
}
