/**
 * Keeps the inbox caches live for the whole signed-in app (the client is in its `org:{org}` room
 * automatically): applies `conversation.*` / `message.*` events to the conversation
 * lists and open threads, refreshes the filter counts, marks the conversation on screen read,
 * and reloads the inbox over REST after a reconnect (events missed while offline are gone).
 */
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';

import { useCurrent } from '../auth/useCurrent';
import { inboxKeys, markConversationRead } from '../lib/inbox/api';
import { clearUnread, type ConversationPages } from '../lib/inbox/cache';
import type { ConversationOut } from '../lib/inbox/types';
import { INBOX_EVENTS, applyInboxEvent } from './inboxEvents';
import { useSocket, useSocketEvent } from './SocketProvider';
import { viewingConversation } from './viewing';

/** Marks a conversation read now: the request (at most one per 800 ms) and the badge in every list. */
export function useMarkConversationRead() {
  const qc = useQueryClient();
  const timers = useRef(new Map<string, ReturnType<typeof setTimeout>>());
  useEffect(() => {
    const map = timers.current;
    return () => map.forEach((t) => clearTimeout(t));
  }, []);
  return (id: string) => {
    qc.setQueriesData<ConversationPages>({ queryKey: inboxKeys.lists }, (d) => clearUnread(d, id));
    qc.setQueryData<ConversationOut>(inboxKeys.conversation(id), (c) => (c ? { ...c, unread_count: 0 } : c));
    if (timers.current.has(id)) return;
    timers.current.set(
      id,
      setTimeout(() => {
        timers.current.delete(id);
        void markConversationRead(id).catch(() => undefined);
      }, 800),
    );
  };
}

export function InboxSync() {
  const { user } = useCurrent();
  const qc = useQueryClient();
  const { onReconnect } = useSocket();
  const markRead = useMarkConversationRead();
  const countsTimer = useRef<ReturnType<typeof setTimeout>>(undefined);

  useEffect(() => () => clearTimeout(countsTimer.current), []);
  useEffect(() => onReconnect(() => void qc.invalidateQueries({ queryKey: inboxKeys.all })), [onReconnect, qc]);

  useSocketEvent(INBOX_EVENTS, (data, name) => {
    const fx = applyInboxEvent(qc, name, data, { meId: user.id, viewing: viewingConversation() });
    if (fx.markRead) markRead(fx.markRead);
    if (fx.refetchLists) void qc.invalidateQueries({ queryKey: inboxKeys.lists });
    if (fx.refetchConversation) void qc.invalidateQueries({ queryKey: inboxKeys.conversation(fx.refetchConversation) });
    if (fx.refetchCounts) {
      // A burst of events → one request.
      clearTimeout(countsTimer.current);
      countsTimer.current = setTimeout(() => void qc.invalidateQueries({ queryKey: inboxKeys.counts }), 400);
    }
  });

  return null;
}
