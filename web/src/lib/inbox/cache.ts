/**
 * Pure reducers that apply live inbox events (and our own sends) to the TanStack Query caches:
 * a conversation's message pages (an infinite query, oldest page first) and the conversation
 * lists (one infinite query per filter, newest activity first).
 *
 * Events are not per caller: a conversation in an event has `unread_count` 0, so the count we
 * already had is kept and bumped here for inbound messages. Message events can arrive twice (org
 * room and conversation room) and out of order, so every reducer is idempotent and a delivery
 * status never goes back (`laterStatus`).
 */
import type { InfiniteData } from '@tanstack/react-query';

import { laterStatus } from './status';
import type { ConversationFilters } from './api';
import type { ConversationOut, ConversationPage, MessageOut, MessagePage } from './types';

export type MessagePages = InfiniteData<MessagePage, unknown>;
export type ConversationPages = InfiniteData<ConversationPage, unknown>;

/** Ids of messages shown before the server answered (our own sends). */
export const TEMP_PREFIX = 'tmp-';
export const isTemp = (id: string) => id.startsWith(TEMP_PREFIX);

const byCreated = (a: MessageOut, b: MessageOut) => Date.parse(a.created_at) - Date.parse(b.created_at);

export function allMessages(data: MessagePages | undefined): MessageOut[] {
  return data?.pages.flatMap((p) => p.items) ?? [];
}

/** A newer copy of a message over the one we had: the status only moves forward. */
export function mergeMessage(prev: MessageOut, next: MessageOut): MessageOut {
  const status = laterStatus(prev.status, next.status);
  if (status === next.status) return next;
  return {
    ...next,
    status,
    error: prev.error,
    delivered_at: next.delivered_at ?? prev.delivered_at,
    read_at: next.read_at ?? prev.read_at,
  };
}

function mapItems(data: MessagePages, fn: (items: MessageOut[]) => MessageOut[]): MessagePages {
  let changed = false;
  const pages = data.pages.map((p) => {
    const items = fn(p.items);
    if (items === p.items) return p;
    changed = true;
    return { ...p, items };
  });
  return changed ? { ...data, pages } : data;
}

/**
 * A new or changed message: replaced where we have it; else appended to the newest page (the
 * live end); our optimistic copy of the same outbound text is replaced by the real one.
 */
export function upsertMessage(
  data: MessagePages | undefined,
  msg: MessageOut,
  meId?: string,
): MessagePages | undefined {
  if (!data || data.pages.length === 0) return data;
  const have = data.pages.some((p) => p.items.some((m) => m.id === msg.id));
  if (have) {
    return mapItems(data, (items) => {
      const i = items.findIndex((m) => m.id === msg.id);
      if (i < 0) return items;
      const merged = mergeMessage(items[i]!, msg);
      if (merged === items[i]) return items;
      const next = [...items];
      next[i] = merged;
      return next;
    });
  }
  let base = data;
  if (meId && msg.author?.id === meId) {
    const temp = allMessages(data).find(
      (m) => isTemp(m.id) && m.kind === msg.kind && m.text === msg.text && m.private === msg.private,
    );
    if (temp) base = removeMessage(data, temp.id)!;
  }
  const lastIdx = base.pages.length - 1;
  const last = base.pages[lastIdx]!;
  const items = [...last.items, msg].sort(byCreated);
  const pages = [...base.pages];
  pages[lastIdx] = { ...last, items };
  return { ...base, pages };
}

export function removeMessage(data: MessagePages | undefined, id: string): MessagePages | undefined {
  if (!data) return data;
  return mapItems(data, (items) => (items.some((m) => m.id === id) ? items.filter((m) => m.id !== id) : items));
}

/** Our send answered: the optimistic copy goes, the real message stays (once). */
export function settleOptimistic(
  data: MessagePages | undefined,
  tempId: string,
  real: MessageOut,
): MessagePages | undefined {
  return upsertMessage(removeMessage(data, tempId), real);
}

export function patchMessage(
  data: MessagePages | undefined,
  id: string,
  fn: (m: MessageOut) => MessageOut,
): MessagePages | undefined {
  if (!data) return data;
  return mapItems(data, (items) => {
    const i = items.findIndex((m) => m.id === id);
    if (i < 0) return items;
    const next = [...items];
    next[i] = fn(items[i]!);
    return next;
  });
}

// ---- conversation lists -----------------------------------------------------------------------

/**
 * Whether a conversation belongs in a list. `null` when it cannot be told here (a search: only
 * the server knows what matches `q`).
 */
export function matchesFilter(c: ConversationOut, f: ConversationFilters, meId: string): boolean | null {
  if (f.status !== 'all' && c.status !== f.status) return false;
  if (f.assignee === 'me' && c.assignee?.id !== meId) return false;
  if (f.assignee === 'unassigned' && c.assignee) return false;
  if (f.channelId && c.channel.id !== f.channelId) return false;
  return f.q.trim() ? null : true;
}

export function findConversation(data: ConversationPages | undefined, id: string): ConversationOut | undefined {
  for (const p of data?.pages ?? []) {
    const c = p.items.find((x) => x.id === id);
    if (c) return c;
  }
  return undefined;
}

function without(data: ConversationPages, id: string): ConversationPages {
  if (!findConversation(data, id)) return data;
  return {
    ...data,
    pages: data.pages.map((p) =>
      p.items.some((c) => c.id === id) ? { ...p, items: p.items.filter((c) => c.id !== id) } : p,
    ),
  };
}

/** Puts `c` where its `last_activity_at` belongs; not at all when that is past the pages loaded so far. */
function insertSorted(data: ConversationPages, c: ConversationOut): ConversationPages {
  const at = Date.parse(c.last_activity_at);
  const pages = [...data.pages];
  for (let pi = 0; pi < pages.length; pi++) {
    const p = pages[pi]!;
    const i = p.items.findIndex((x) => Date.parse(x.last_activity_at) < at);
    if (i >= 0) {
      pages[pi] = { ...p, items: [...p.items.slice(0, i), c, ...p.items.slice(i)] };
      return { ...data, pages };
    }
  }
  const lastIdx = pages.length - 1;
  const last = pages[lastIdx];
  if (!last || last.next_cursor) return data;
  pages[lastIdx] = { ...last, items: [...last.items, c] };
  return { ...data, pages };
}

/**
 * A conversation from an event (or a mutation's answer) into one list: replaced, moved, added or
 * removed according to the list's filter. The caller's `unread_count` is kept.
 */
export function upsertConversation(
  data: ConversationPages | undefined,
  c: ConversationOut,
  f: ConversationFilters,
  meId: string,
  opts: { keepUnread?: boolean } = { keepUnread: true },
): ConversationPages | undefined {
  if (!data) return data;
  const prev = findConversation(data, c.id);
  const next = prev && opts.keepUnread !== false ? { ...c, unread_count: prev.unread_count } : c;
  const match = matchesFilter(next, f, meId);
  if (match === false) return without(data, c.id);
  if (match === null) {
    // A search: refresh what is shown, add nothing.
    if (!prev) return data;
    return {
      ...data,
      pages: data.pages.map((p) => ({ ...p, items: p.items.map((x) => (x.id === c.id ? next : x)) })),
    };
  }
  return insertSorted(without(data, c.id), next);
}

export interface MessageEventContext {
  meId: string;
  /** The conversation on screen when the tab is visible, else null. */
  viewing: string | null;
}

/**
 * A message event into one list: for a `new` message (received, or created by an agent) the
 * conversation's preview and activity time, moved to its new place, and its unread count bumped
 * for an inbound message not on screen; for a `status` change, the preview's tick.
 * `missing` says the conversation is not in this list (the caller may refetch it).
 * `countUnread: false` leaves the unread count to the caller (see `bumpUnread`).
 */
export function onMessage(
  data: ConversationPages | undefined,
  msg: MessageOut,
  f: ConversationFilters,
  ctx: MessageEventContext,
  change: 'new' | 'status',
  opts: { countUnread?: boolean } = {},
): { data: ConversationPages | undefined; missing: boolean } {
  if (!data) return { data, missing: false };
  const prev = findConversation(data, msg.conversation_id);
  if (!prev) return { data, missing: change === 'new' };
  // The same event twice (org room and conversation room) counts once.
  const isNew = change === 'new' && prev.last_message?.id !== msg.id;
  if (!isNew) {
    // A status change of the message the preview shows.
    if (prev.last_message?.id !== msg.id || prev.last_message.status === msg.status) return { data, missing: false };
    const status = laterStatus(prev.last_message.status, msg.status);
    if (status === prev.last_message.status) return { data, missing: false };
    const next = { ...prev, last_message: { ...prev.last_message, status } };
    return {
      data: {
        ...data,
        pages: data.pages.map((p) => ({ ...p, items: p.items.map((x) => (x.id === prev.id ? next : x)) })),
      },
      missing: false,
    };
  }
  // Private notes and reactions do not replace the customer-facing preview.
  const previewable = !msg.private && msg.kind !== 'reaction';
  const next: ConversationOut = {
    ...prev,
    last_activity_at: msg.created_at,
    unread_count: opts.countUnread !== false && countsAsUnread(msg, ctx) ? prev.unread_count + 1 : prev.unread_count,
    last_message: previewable
      ? {
          id: msg.id,
          direction: msg.direction,
          kind: msg.kind,
          preview: previewText(msg),
          status: msg.status,
          at: msg.created_at,
        }
      : prev.last_message,
  };
  return { data: upsertConversation(data, next, f, ctx.meId, { keepUnread: false }), missing: false };
}

/** A customer message the caller is not looking at. */
export function countsAsUnread(msg: MessageOut, ctx: MessageEventContext): boolean {
  return msg.direction === 'inbound' && !msg.private && ctx.viewing !== msg.conversation_id;
}

/** One more unread message in a conversation of the list (nothing when it is not there). */
export function bumpUnread(data: ConversationPages | undefined, id: string): ConversationPages | undefined {
  if (!data || !findConversation(data, id)) return data;
  return {
    ...data,
    pages: data.pages.map((p) => ({
      ...p,
      items: p.items.map((x) => (x.id === id ? { ...x, unread_count: x.unread_count + 1 } : x)),
    })),
  };
}

/** The caller read a conversation: its unread badge goes. */
export function clearUnread(data: ConversationPages | undefined, id: string): ConversationPages | undefined {
  const prev = findConversation(data, id);
  if (!data || !prev || prev.unread_count === 0) return data;
  return {
    ...data,
    pages: data.pages.map((p) => ({
      ...p,
      items: p.items.map((x) => (x.id === id ? { ...x, unread_count: 0 } : x)),
    })),
  };
}

const KIND_PREVIEW: Partial<Record<MessageOut['kind'], string>> = {
  image: '📷 Photo',
  video: '🎬 Video',
  audio: '🎵 Audio',
  voice: '🎤 Voice message',
  document: '📄 Document',
  sticker: 'Sticker',
  location: '📍 Location',
  contacts: '👤 Contact',
  template: 'Template',
  unsupported: 'Unsupported message',
};

/** A one-line preview of a message, the way the server's `last_message.preview` reads. */
export function previewText(m: Pick<MessageOut, 'kind' | 'text' | 'media'>): string {
  const text = m.text?.replace(/\s+/g, ' ').trim();
  if (text) return text.length > 120 ? `${text.slice(0, 119)}…` : text;
  return KIND_PREVIEW[m.kind] ?? (m.media?.filename || m.kind);
}
