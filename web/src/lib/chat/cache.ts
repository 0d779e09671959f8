/**
 * Pure reducers that apply live chat events to the TanStack Query caches: the message pages of a
 * channel (an infinite query, oldest page first), a thread, and the sidebar's channel list.
 * Events carry the *neutral* view of a message (`reactions[].me` false, `read_by` empty); the
 * reducers recompute `me` for the current user and keep the `read_by` we already had.
 */
import type { InfiniteData } from '@tanstack/react-query';

import type { ChannelOut, MessageOut, MessagePage, ReactionOut, ThreadOut } from '../../api/chatTypes';

export type Pages = InfiniteData<MessagePage, unknown>;

/** Reactions as the current user sees them. */
export function withMe(reactions: ReactionOut[], meId: string): ReactionOut[] {
  return reactions.map((r) => ({ ...r, me: r.user_ids.includes(meId) }));
}

/** An incoming (neutral) message merged over what we had for it. */
export function mergeMessage(prev: MessageOut | undefined, next: MessageOut, meId: string): MessageOut {
  return {
    ...next,
    reactions: withMe(next.reactions, meId),
    read_by: next.read_by.length > 0 || !prev ? next.read_by : prev.read_by,
  };
}

function mapPages(data: Pages | undefined, fn: (m: MessageOut) => MessageOut): Pages | undefined {
  if (!data) return data;
  let changed = false;
  const pages = data.pages.map((p) => {
    let pageChanged = false;
    const items = p.items.map((m) => {
      const n = fn(m);
      if (n !== m) pageChanged = true;
      return n;
    });
    if (!pageChanged) return p;
    changed = true;
    return { ...p, items };
  });
  return changed ? { ...data, pages } : data;
}

export function hasMessage(data: Pages | undefined, id: string): boolean {
  return !!data?.pages.some((p) => p.items.some((m) => m.id === id));
}

/**
 * A new top-level message: appended to the newest page when that page is the live end of the
 * history (nothing newer left to load); replaced in place when we already have it (our own send).
 */
export function appendMessage(data: Pages | undefined, msg: MessageOut, meId: string): Pages | undefined {
  if (!data || data.pages.length === 0) return data;
  if (hasMessage(data, msg.id)) return patchMessage(data, msg, meId);
  const lastIdx = data.pages.length - 1;
  const last = data.pages[lastIdx]!;
  if (last.has_more_after) return data;
  const items = [...last.items, mergeMessage(undefined, msg, meId)];
  items.sort(byCreated);
  const pages = [...data.pages];
  pages[lastIdx] = { ...last, items };
  return { ...data, pages };
}

function byCreated(a: MessageOut, b: MessageOut): number {
  return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** An edited/deleted/pinned message replaced where it appears. */
export function patchMessage(data: Pages | undefined, msg: MessageOut, meId: string): Pages | undefined {
  return mapPages(data, (m) => (m.id === msg.id ? mergeMessage(m, msg, meId) : m));
}

/** A message removed for real (expired). */
export function removeMessage(data: Pages | undefined, id: string): Pages | undefined {
  if (!data || !hasMessage(data, id)) return data;
  return { ...data, pages: data.pages.map((p) => ({ ...p, items: p.items.filter((m) => m.id !== id) })) };
}

export function setReactions(
  data: Pages | undefined,
  messageId: string,
  reactions: ReactionOut[],
  meId: string,
): Pages | undefined {
  return mapPages(data, (m) => (m.id === messageId ? { ...m, reactions: withMe(reactions, meId) } : m));
}

/** `userId` has read up to `messageId`: they are in `read_by` of every message up to it but theirs. */
export function applyReadReceipt(data: Pages | undefined, userId: string, messageId: string): Pages | undefined {
  return mapPages(data, (m) =>
    m.id <= messageId && m.author.id !== userId && !m.read_by.includes(userId) && !m.deleted
      ? { ...m, read_by: [...m.read_by, userId] }
      : m,
  );
}

// ---- threads --------------------------------------------------------------------------------

export function threadAppend(thread: ThreadOut | undefined, reply: MessageOut, meId: string): ThreadOut | undefined {
  if (!thread || reply.thread_id !== thread.parent.id) return thread;
  if (thread.items.some((m) => m.id === reply.id)) return threadPatch(thread, reply, meId);
  if (thread.has_more_after) return thread;
  return {
    ...thread,
    parent: { ...thread.parent, reply_count: thread.parent.reply_count + 1, last_reply_at: reply.created_at },
    items: [...thread.items, mergeMessage(undefined, reply, meId)].sort(byCreated),
  };
}

export function threadPatch(thread: ThreadOut | undefined, msg: MessageOut, meId: string): ThreadOut | undefined {
  if (!thread) return thread;
  if (thread.parent.id === msg.id) return { ...thread, parent: mergeMessage(thread.parent, msg, meId) };
  if (!thread.items.some((m) => m.id === msg.id)) return thread;
  return { ...thread, items: thread.items.map((m) => (m.id === msg.id ? mergeMessage(m, msg, meId) : m)) };
}

export function threadReactions(
  thread: ThreadOut | undefined,
  messageId: string,
  reactions: ReactionOut[],
  meId: string,
): ThreadOut | undefined {
  if (!thread) return thread;
  const fix = (m: MessageOut) => (m.id === messageId ? { ...m, reactions: withMe(reactions, meId) } : m);
  return { ...thread, parent: fix(thread.parent), items: thread.items.map(fix) };
}

// ---- channel list (sidebar) ------------------------------------------------------------------

export interface UnreadContext {
  meId: string;
  /** The channel on screen, when the user can see it (tab visible). Its messages are read at once. */
  viewing: string | null;
}

/** Whether a message counts as mentioning the current user. */
export function mentionsMe(msg: MessageOut, meId: string): boolean {
  return msg.mentions_channel || msg.mentions.some((id) => id.toLowerCase() === meId.toLowerCase());
}

/**
 * A message was posted: the channel moves to the top with the new preview, and, when it is
 * someone else's message in a channel the user is not looking at, its unread count (and mention
 * count when it mentions them) goes up. Like the server, unread counts top-level messages only;
 * a thread reply counts only as a mention.
 * Returns the same array when the channel is not in the list (the caller refetches).
 */
export function onMessageCreated(channels: ChannelOut[], msg: MessageOut, ctx: UnreadContext): ChannelOut[] {
  const idx = channels.findIndex((c) => c.id === msg.channel_id);
  if (idx < 0) return channels;
  const ch = channels[idx]!;
  const mine = msg.author.id === ctx.meId;
  const reply = !!msg.thread_id;
  const counts = !mine && ctx.viewing !== ch.id;
  const mentioned = mentionsMe(msg, ctx.meId);
  const next: ChannelOut = {
    ...ch,
    last_message: reply ? ch.last_message : msg,
    last_activity_at: msg.created_at > ch.last_activity_at ? msg.created_at : ch.last_activity_at,
    unread_count: ch.unread_count + (counts && !reply ? 1 : 0),
    mention_count: ch.mention_count + (counts && mentioned ? 1 : 0),
    ...(mine && !reply ? { unread_count: 0, mention_count: 0, last_read_id: msg.id } : {}),
  };
  return [next, ...channels.slice(0, idx), ...channels.slice(idx + 1)];
}

/** Patches the preview when the last message was edited or deleted. */
export function onMessageUpdated(channels: ChannelOut[], msg: MessageOut): ChannelOut[] {
  return channels.map((c) =>
    c.id === msg.channel_id && c.last_message?.id === msg.id ? { ...c, last_message: msg } : c,
  );
}

/** The user read a channel (here or on another device): its badges clear. */
export function onRead(channels: ChannelOut[], channelId: string, messageId: string): ChannelOut[] {
  return channels.map((c) =>
    c.id === channelId && (c.unread_count > 0 || c.mention_count > 0 || (c.last_read_id ?? '') < messageId)
      ? { ...c, unread_count: 0, mention_count: 0, last_read_id: messageId }
      : c,
  );
}

/** A channel created or changed: replaced in place, or added on top; archived ones are dropped. */
export function upsertChannel(channels: ChannelOut[], channel: ChannelOut): ChannelOut[] {
  const idx = channels.findIndex((c) => c.id === channel.id);
  if (channel.archived) return idx < 0 ? channels : channels.filter((c) => c.id !== channel.id);
  if (idx < 0) return [channel, ...channels];
  const prev = channels[idx]!;
  // The event's view is neutral: keep the caller's own counters, role and lock.
  const merged: ChannelOut = {
    ...channel,
    unread_count: prev.unread_count,
    mention_count: prev.mention_count,
    last_read_id: prev.last_read_id,
    my_role: prev.my_role,
    joined: prev.joined,
    locked: prev.locked,
    last_message: channel.last_message ?? prev.last_message,
  };
  return channels.map((c, i) => (i === idx ? merged : c));
}

export function removeChannel(channels: ChannelOut[], channelId: string): ChannelOut[] {
  return channels.some((c) => c.id === channelId) ? channels.filter((c) => c.id !== channelId) : channels;
}

/** Badge totals for the main navigation. */
export function totals(channels: ChannelOut[]): { unread: number; mentions: number } {
  return channels.reduce(
    (acc, c) => ({ unread: acc.unread + c.unread_count, mentions: acc.mentions + c.mention_count }),
    { unread: 0, mentions: 0 },
  );
}
