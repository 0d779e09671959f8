/** The typing line under the message list, and the throttle for our own `typing` emits. */

/** How long someone counts as typing after their last `typing` event (the gateway relays ≤ 1 / 2 s). */
export const TYPING_TTL_MS = 5_000;
/** Our own emits: at most one per interval (the gateway throttles too, this saves the frames). */
export const TYPING_EMIT_MS = 2_000;

/** "Ana is typing…", "Ana and Bo are typing…", "Ana, Bo and Cy are typing…", "Several people are typing…". */
export function typingLine(names: string[]): string {
  const n = names.length;
  if (n === 0) return '';
  if (n === 1) return `${names[0]} is typing…`;
  if (n === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (n === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  return 'Several people are typing…';
}

/** A leading-edge throttle: `tryFire(now)` is true at most once per `intervalMs`. */
export function createThrottle(intervalMs: number) {
  let last = -Infinity;
  return {
    tryFire(now: number): boolean {
      if (now - last < intervalMs) return false;
      last = now;
      return true;
    },
    reset() {
      last = -Infinity;
    },
  };
}

/** Who is typing now, from the last-seen times; expired entries and ourselves left out. */
export function activeTypers(seen: ReadonlyMap<string, number>, now: number, meId: string): string[] {
  const out: string[] = [];
  for (const [userId, at] of seen) if (userId !== meId && now - at < TYPING_TTL_MS) out.push(userId);
  return out;
}
