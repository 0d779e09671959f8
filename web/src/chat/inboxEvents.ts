/**
 * Applies one inbox event from the gateway to the TanStack Query caches. Pure apart from the
 * QueryClient it is given, so tests drive it with a real client and plain payloads.
 *
 * Event names are the CloudEvents type without its `wamage.` prefix, like the chat events
 * (`wamage.message.received` arrives as `message.received`). Payloads (data of `{ id, type, time, data }`):
 *   conversation.created|updated|assigned|resolved               { conversation }
 *   message.received|created|sent|status.updated|updated         { message, conversation_id }
 * (`message.updated`: a reaction or an edit changed the message.)
 */
import type { QueryClient } from '@tanstack/react-query';

import { inboxKeys, type ConversationFilters } from '../lib/inbox/api';
import {
  bumpUnread,
  countsAsUnread,
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

export type InboxEventName =
  | 'conversation.created'
  | 'conversation.updated'
  | 'conversation.assigned'
  | 'conversation.resolved'
  | 'message.received'
  | 'message.created'
  | 'message.sent'
  | 'message.status.updated'
  | 'message.updated';

export const INBOX_EVENTS: InboxEventName[] = [
  'conversation.created',
  'conversation.updated',
  'conversation.assigned',
  'conversation.resolved',
  'message.received',
  'message.created',
  'message.sent',
  'message.status.updated',
  'message.updated',
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

/**
 * Customer messages already counted as unread, per client. The server publishes
 * `conversation.created|updated` (whose preview already is the new message) before
 * `message.received`, so "the preview changed" cannot tell a new message from a repeat.
 */
const counted = new WeakMap<QueryClient, Set<string>>();
const COUNTED_MAX = 1000;

function firstCount(qc: QueryClient, messageId: string): boolean {
  let seen = counted.get(qc);
  if (!seen) counted.set(qc, (seen = new Set()));
  if (seen.has(messageId)) return false;
  seen.add(messageId);
  if (seen.size > COUNTED_MAX) seen.delete(seen.values().next().value!);
  return true;
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
  if (name.startsWith('conversation.')) {
    const c = data.conversation as ConversationOut | undefined;
    if (!c) return effects;
    applyConversation(qc, c, ctx.meId);
    effects.refetchCounts = true;
    return effects;
  }
  if (name.startsWith('message.')) {
    const msg = data.message as MessageOut | undefined;
    if (!msg) return effects;
    const change = name === 'message.received' || name === 'message.created' ? 'new' : 'status';
    qc.setQueryData<MessagePages>(inboxKeys.messages(msg.conversation_id), (d) => upsertMessage(d, msg, ctx.meId));
    const known = knownConversation(qc, msg.conversation_id);
    const bump = change === 'new' && countsAsUnread(msg, ctx) && firstCount(qc, msg.id);
    eachList(qc, (d, f) => {
      const r = onMessage(d, msg, f, ctx, change, { countUnread: false });
      // Missing from a list it belongs in (or a conversation we have never seen): reload the lists.
      if (r.missing && (!known || matchesFilter(known, f, ctx.meId) !== false)) effects.refetchLists = true;
      return bump ? bumpUnread(r.data, msg.conversation_id) : r.data;
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
