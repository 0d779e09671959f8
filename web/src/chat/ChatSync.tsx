/**
 * Keeps the chat caches live for the whole signed-in app: joins `chat:{id}` for every channel in
 * the sidebar, applies `chat.*` events to the caches, tracks presence and typing, marks the
 * channel on screen read, and reloads everything over REST after a reconnect (the bus is
 * at-most-once; events missed while offline are gone).
 */
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef } from 'react';

import { chatKeys, markRead, useChannels, type PresenceStatus } from '../api/chat';
import type { ChannelOut } from '../api/chatTypes';
import { useCurrent } from '../auth/useCurrent';
import { onRead } from '../lib/chat/cache';
import { CHAT_EVENTS, applyChatEvent } from './events';
import { clearTyping, noteTyping } from './typingStore';
import { useRooms, useSocket, useSocketEvent } from './SocketProvider';
import { viewingChannel } from './viewing';

/** Marks read at most every 800 ms per channel (a burst of messages → one request). */
function useReadMarker() {
  const pending = useRef(new Map<string, { messageId: string; timer: ReturnType<typeof setTimeout> }>());
  useEffect(() => {
    const map = pending.current;
    return () => map.forEach((p) => clearTimeout(p.timer));
  }, []);
  return (channelId: string, messageId: string) => {
    const p = pending.current.get(channelId);
    if (p) {
      if (messageId > p.messageId) p.messageId = messageId;
      return;
    }
    const entry = {
      messageId,
      timer: setTimeout(() => {
        pending.current.delete(channelId);
        void markRead(channelId, entry.messageId).catch(() => undefined);
      }, 800),
    };
    pending.current.set(channelId, entry);
  };
}

export function ChatSync() {
  const { user } = useCurrent();
  const qc = useQueryClient();
  const channels = useChannels();
  const { onReconnect } = useSocket();
  const scheduleRead = useReadMarker();

  useRooms((channels.data ?? []).map((c) => `chat:${c.id}`));

  useEffect(
    () =>
      onReconnect(() => {
        void qc.invalidateQueries({ queryKey: chatKeys.all });
        void qc.invalidateQueries({ queryKey: chatKeys.presence });
      }),
    [onReconnect, qc],
  );

  useSocketEvent(CHAT_EVENTS, (data, name) => {
    const effects = applyChatEvent(qc, name, data, { meId: user.id, viewing: viewingChannel() });
    if (name === 'chat.message.created') {
      const msg = data.message as { channel_id: string; author: { id: string } };
      clearTyping(`chat:${msg.channel_id}`, msg.author.id);
    }
    if (effects.refetchChannels) void qc.invalidateQueries({ queryKey: chatKeys.channels });
    const read = effects.markRead;
    if (read) {
      scheduleRead(read.channelId, read.messageId);
      qc.setQueryData<ChannelOut[]>(chatKeys.channels, (list) =>
        list ? onRead(list, read.channelId, read.messageId) : list,
      );
    }
  });

  useSocketEvent<{ user_id: string; status: PresenceStatus }>('presence.changed', (data) => {
    qc.setQueryData<Record<string, PresenceStatus>>(chatKeys.presence, (prev) =>
      prev ? { ...prev, [data.user_id]: data.status } : prev,
    );
  });

  useSocketEvent<{ room: string; user_id: string }>('typing', (data) => {
    if (data?.room && data.user_id && data.user_id !== user.id) noteTyping(data.room, data.user_id);
  });

  return null;
}
