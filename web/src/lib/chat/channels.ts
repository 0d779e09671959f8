/** How channels are named and grouped in the sidebar. */
import type { ChannelOut } from '../../api/chatTypes';

export function isDirect(c: Pick<ChannelOut, 'kind'>): boolean {
  return c.kind === 'dm' || c.kind === 'group_dm';
}

/** Channels by name; DMs and group DMs by the other members' names. */
export function channelTitle(
  c: Pick<ChannelOut, 'kind' | 'name' | 'members_preview' | 'member_count'>,
  meId: string,
): string {
  if (!isDirect(c)) return c.name ?? 'Unnamed channel';
  const others = c.members_preview.filter((m) => m.user_id !== meId).map((m) => m.name);
  if (others.length === 0) return 'Just you';
  const shown = others.join(', ');
  const hidden = c.member_count - 1 - others.length;
  return hidden > 0 ? `${shown} +${hidden}` : shown;
}

/** The other person of a one-to-one DM (for its presence dot). */
export function dmPartner(c: Pick<ChannelOut, 'kind' | 'members_preview'>, meId: string): string | null {
  if (c.kind !== 'dm') return null;
  return c.members_preview.find((m) => m.user_id !== meId)?.user_id ?? null;
}

export function splitSidebar(channels: ChannelOut[]): { channels: ChannelOut[]; direct: ChannelOut[] } {
  const visible = channels.filter((c) => !c.archived);
  return { channels: visible.filter((c) => !isDirect(c)), direct: visible.filter(isDirect) };
}

/** A client-side check mirroring the server's rule, for an early message in the form. */
export function channelNameError(name: string): string | null {
  const n = name.trim();
  if (n.length === 0) return 'Enter a name';
  if (n.length > 80) return 'At most 80 characters';
  if (!/^[\p{L}\p{N}\-_ ]+$/u.test(n)) return 'Letters, digits, spaces, - and _ only';
  return null;
}

export const DISAPPEARING_LABEL = { off: 'Off', '24h': '24 hours', '7d': '7 days', '90d': '90 days' } as const;
