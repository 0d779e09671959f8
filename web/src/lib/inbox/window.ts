/**
 * The WhatsApp 24-hour customer service window above the composer. Outside it only templates may
 * be sent (the server answers 409 `window_closed`); Telegram and the sandbox have no window.
 */
import type { ConversationOut } from './types';

export interface WindowIndicator {
  open: boolean;
  text: string;
  /** Less than an hour left: worth a warning colour. */
  closingSoon: boolean;
}

/** "5 h", "42 min", "1 min". */
export function remaining(ms: number): string {
  const mins = Math.max(1, Math.floor(ms / 60_000));
  if (mins < 60) return `${mins} min`;
  return `${Math.floor(mins / 60)} h`;
}

export function windowIndicator(
  conv: Pick<ConversationOut, 'channel' | 'window'>,
  now = Date.now(),
): WindowIndicator | null {
  if (conv.channel.kind !== 'whatsapp') return null;
  const expires = conv.window.expires_at ? Date.parse(conv.window.expires_at) : null;
  // The server's flag, corrected by the clock: a window that expired while the page was open is closed.
  const open = conv.window.open && (expires === null || expires > now);
  if (!open) {
    return { open: false, text: 'The 24-hour window is closed — only templates can be sent', closingSoon: false };
  }
  if (expires === null) return { open: true, text: 'Window open', closingSoon: false };
  return {
    open: true,
    text: `Window open · closes in ${remaining(expires - now)}`,
    closingSoon: expires - now < 3_600_000,
  };
}
