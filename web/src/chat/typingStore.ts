/** Who is typing where: room → user → last `typing` event time; read with `useTypers`. */
import { useEffect, useState, useSyncExternalStore } from 'react';

import { activeTypers } from '../lib/chat/typing';

const rooms = new Map<string, Map<string, number>>();
const listeners = new Set<() => void>();
let version = 0;

function emit() {
  version++;
  for (const l of listeners) l();
}

export function noteTyping(room: string, userId: string, now = Date.now()): void {
  let m = rooms.get(room);
  if (!m) rooms.set(room, (m = new Map()));
  m.set(userId, now);
  emit();
}

/** A message from the user ends their typing. */
export function clearTyping(room: string, userId: string): void {
  if (rooms.get(room)?.delete(userId)) emit();
}

/** User ids typing in `room` (not me), refreshed as entries expire. */
export function useTypers(room: string, meId: string): string[] {
  useSyncExternalStore(
    (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    () => version,
  );
  const [now, setNow] = useState(() => Date.now());
  const seen = rooms.get(room) ?? new Map<string, number>();
  const typers = activeTypers(seen, Date.now(), meId);
  useEffect(() => {
    if (typers.length === 0) return;
    const t = setTimeout(() => setNow(Date.now()), 1000);
    return () => clearTimeout(t);
  }, [typers.length, now, version]);
  return typers;
}
