/**
 * Applies one inbox event from the gateway to the TanStack Query caches. Pure apart from the
 * QueryClient it is given, so tests drive it with a real client and plain payloads.
 *
 * Payloads (data of `{ id, type, time, data }`):
 *   wamage.conversation.created|updated|assigned|resolved   { conversation }
 *   wamage.message.received|created|sent|status.updated      { message, conversation_id }
 */
import type { QueryClient } from '@tanstack/react-query';

import { inboxKeys, type ConversationFilters } from '../lib/inbox/api';
import {
  findConversation,
  matchesFilter,
  onMessage,
  upsertConversation,
  upsertMessage,
  type ConversationPages,
  type MessageEventContext,
  type MessagePages,
} from '../lib/inbox/cache';
import type { ConversationOut, MessageOut } from '../lib/inbox/types';

export const INBOX_EVENTS = [
  'wamage.conversation.created',
  'wamage.conversation.updated',
  'wamage.conversation.assigned',
  'wamage.conversation.resolved',
  'wamage.message.received',
  'wamage.message.created',
  'wamage.message.sent',
  'wamage.message.status.updated',
];

export interface InboxEffects {
  /** A new inbound message in the conversation on screen: mark it read. */
  markRead?: string;
  /** A message for a conversation some list does not show yet: refetch the lists. */
  refetchLists?: boolean;
  /** Counts per filter may have changed. */
  refetchCounts?: boolean;
  /** The conversation's own state (e.g. its WhatsApp window) changed: reload it. */
  refetchConversation?: string;
}

/** The conversation as any cache has it (its own query first, then the lists). */
function knownConversation(qc: QueryClient, id: string): ConversationOut | undefined {
  const own = qc.getQueryData<ConversationOut>(inboxKeys.conversation(id));
  if (own) return own;
  for (const [, d] of qc.getQueriesData<ConversationPages>({ queryKey: inboxKeys.lists })) {
    const c = findConversation(d, id);
    if (c) return c;
  }
  return undefined;
}

/** Every cached conversation list with the filter it was fetched with. */
function eachList(
  qc: QueryClient,
  fn: (d: ConversationPages | undefined, f: ConversationFilters) => ConversationPages | undefined,
) {
  for (const q of qc.getQueryCache().findAll({ queryKey: inboxKeys.lists })) {
    const f = q.queryKey[2] as ConversationFilters | undefined;
    if (!f) continue;
    qc.setQueryData<ConversationPages>(q.queryKey, (d) => fn(d, f));
  }
}

/** A conversation (from an event or a mutation's answer) into every list and its own cache. */
export function applyConversation(qc: QueryClient, c: ConversationOut, meId: string): void {
  eachList(qc, (d, f) => upsertConversation(d, c, f, meId));
  qc.setQueryData<ConversationOut>(inboxKeys.conversation(c.id), (prev) =>
    prev ? { ...c, unread_count: prev.unread_count } : prev,
  );
}

export function applyInboxEvent(
  qc: QueryClient,
  name: string,
  data: Record<string, unknown>,
  ctx: MessageEventContext,
): InboxEffects {
  const effects: InboxEffects = {};
  if (name.startsWith('wamage.conversation.')) {
    const c = data.conversation as ConversationOut | undefined;
    if (!c) return effects;
    applyConversation(qc, c, ctx.meId);
    effects.refetchCounts = true;
    return effects;
  }
  if (name.startsWith('wamage.message.')) {
    const msg = data.message as MessageOut | undefined;
    if (!msg) return effects;
    const change = name === 'wamage.message.received' || name === 'wamage.message.created' ? 'new' : 'status';
    qc.setQueryData<MessagePages>(inboxKeys.messages(msg.conversation_id), (d) => upsertMessage(d, msg, ctx.meId));
    const known = knownConversation(qc, msg.conversation_id);
    eachList(qc, (d, f) => {
      const r = onMessage(d, msg, f, ctx, change);
      // Missing from a list it belongs in (or a conversation we have never seen): reload the lists.
      if (r.missing && (!known || matchesFilter(known, f, ctx.meId) !== false)) effects.refetchLists = true;
      return r.data;
    });
    if (change === 'new' && msg.direction === 'inbound') {
      if (ctx.viewing === msg.conversation_id) effects.markRead = msg.conversation_id;
      // A customer message may open (or reopen) a conversation, and reopens a closed WhatsApp window.
      effects.refetchCounts = true;
      if (known && !known.window.open) effects.refetchConversation = msg.conversation_id;
    }
  }
  return effects;
}

/** Our own message as the server answered it: into the thread and the lists' previews. */
export function applyOwnMessage(qc: QueryClient, msg: MessageOut, meId: string): void {
  qc.setQueryData<MessagePages>(inboxKeys.messages(msg.conversation_id), (d) => upsertMessage(d, msg, meId));
  eachList(qc, (d, f) => onMessage(d, msg, f, { meId, viewing: msg.conversation_id }, 'new').data);
}
