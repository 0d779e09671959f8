/**
 * Applies one chat event from the gateway to the TanStack Query caches. Pure apart from the
 * QueryClient it is given, so tests drive it with a real client and plain payloads.
 *
 * Payloads (data of `{ id, type, time, data }`):
 *   chat.message.created|updated|deleted   { channel_id, message }
 *   chat.reaction.added|removed            { channel_id, message_id, emoji, user_id, reactions }
 *   chat.read                              { channel_id, user_id, message_id }
 *   chat.channel.created|updated|archived  { channel }
 *   chat.member.added|removed              { channel_id, user_id }
 */
import type { QueryClient } from '@tanstack/react-query';

import { chatKeys } from '../api/chat';
import type { ChannelOut, MessageOut, ReactionOut, ThreadOut } from '../api/chatTypes';
import {
  appendMessage,
  applyReadReceipt,
  onMessageCreated,
  onMessageUpdated,
  onRead,
  patchMessage,
  removeChannel,
  removeMessage,
  setReactions,
  threadAppend,
  threadPatch,
  threadReactions,
  upsertChannel,
  type Pages,
} from '../lib/chat/cache';

export interface EventContext {
  meId: string;
  /** The channel on screen when the tab is visible, else null. */
  viewing: string | null;
}

export type ChatEventName =
  | 'chat.message.created'
  | 'chat.message.updated'
  | 'chat.message.deleted'
  | 'chat.reaction.added'
  | 'chat.reaction.removed'
  | 'chat.read'
  | 'chat.channel.created'
  | 'chat.channel.updated'
  | 'chat.channel.archived'
  | 'chat.member.added'
  | 'chat.member.removed';

export const CHAT_EVENTS: ChatEventName[] = [
  'chat.message.created',
  'chat.message.updated',
  'chat.message.deleted',
  'chat.reaction.added',
  'chat.reaction.removed',
  'chat.read',
  'chat.channel.created',
  'chat.channel.updated',
  'chat.channel.archived',
  'chat.member.added',
  'chat.member.removed',
];

type Data = Record<string, unknown>;

/** What the caller should do after the caches were updated. */
export interface Effects {
  /** A message arrived in the channel on screen: mark it read. */
  markRead?: { channelId: string; messageId: string };
  /** The channel list may be missing channels: refetch it. */
  refetchChannels?: boolean;
}

function eachMessages(qc: QueryClient, channelId: string, fn: (d: Pages | undefined) => Pages | undefined) {
  qc.setQueriesData<Pages>({ queryKey: chatKeys.messagesOf(channelId) }, fn);
}

function eachThread(qc: QueryClient, fn: (t: ThreadOut | undefined) => ThreadOut | undefined) {
  qc.setQueriesData<ThreadOut>({ queryKey: ['chat', 'thread'] }, fn);
}

function updateChannels(qc: QueryClient, fn: (list: ChannelOut[]) => ChannelOut[]) {
  qc.setQueryData<ChannelOut[]>(chatKeys.channels, (list) => (list ? fn(list) : list));
}

function patchPins(qc: QueryClient, msg: MessageOut) {
  qc.setQueryData<MessageOut[]>(chatKeys.pins(msg.channel_id), (pins) => {
    if (!pins) return pins;
    const has = pins.some((p) => p.id === msg.id);
    if (msg.pinned && !msg.deleted) return has ? pins.map((p) => (p.id === msg.id ? msg : p)) : [msg, ...pins];
    return has ? pins.filter((p) => p.id !== msg.id) : pins;
  });
}

export function applyChatEvent(qc: QueryClient, name: string, data: Data, ctx: EventContext): Effects {
  const effects: Effects = {};
  switch (name) {
    case 'chat.message.created': {
      const msg = data.message as MessageOut;
      const known = qc.getQueryData<ChannelOut[]>(chatKeys.channels)?.some((c) => c.id === msg.channel_id);
      if (msg.thread_id) {
        // The parent's new reply count comes in the `message.updated` event that follows.
        eachThread(qc, (t) => threadAppend(t, msg, ctx.meId));
      } else {
        eachMessages(qc, msg.channel_id, (d) => appendMessage(d, msg, ctx.meId));
      }
      updateChannels(qc, (list) => onMessageCreated(list, msg, ctx));
      if (known === false) effects.refetchChannels = true;
      if (ctx.viewing === msg.channel_id && msg.author.id !== ctx.meId && !msg.thread_id) {
        effects.markRead = { channelId: msg.channel_id, messageId: msg.id };
      }
      break;
    }
    case 'chat.message.updated':
    case 'chat.message.deleted': {
      const msg = data.message as MessageOut | undefined;
      if (!msg) break;
      // A disappearing message that expired is gone for real (no tombstone after a reload either).
      if (name === 'chat.message.deleted' && msg.expires_at && Date.parse(msg.expires_at) <= Date.now()) {
        eachMessages(qc, msg.channel_id, (d) => removeMessage(d, msg.id));
        eachThread(qc, (t) =>
          t && t.items.some((m) => m.id === msg.id) ? { ...t, items: t.items.filter((m) => m.id !== msg.id) } : t,
        );
        updateChannels(qc, (list) => onMessageUpdated(list, msg));
        patchPins(qc, msg);
        break;
      }
      eachMessages(qc, msg.channel_id, (d) => patchMessage(d, msg, ctx.meId));
      eachThread(qc, (t) => threadPatch(t, msg, ctx.meId));
      updateChannels(qc, (list) => onMessageUpdated(list, msg));
      patchPins(qc, msg);
      break;
    }
    case 'chat.reaction.added':
    case 'chat.reaction.removed': {
      const channelId = data.channel_id as string;
      const messageId = data.message_id as string;
      const reactions = data.reactions as ReactionOut[];
      eachMessages(qc, channelId, (d) => setReactions(d, messageId, reactions, ctx.meId));
      eachThread(qc, (t) => threadReactions(t, messageId, reactions, ctx.meId));
      break;
    }
    case 'chat.read': {
      const channelId = data.channel_id as string;
      const userId = data.user_id as string;
      const messageId = data.message_id as string;
      if (userId === ctx.meId) {
        updateChannels(qc, (list) => onRead(list, channelId, messageId));
      } else {
        eachMessages(qc, channelId, (d) => applyReadReceipt(d, userId, messageId));
      }
      break;
    }
    case 'chat.channel.created':
    case 'chat.channel.updated':
    case 'chat.channel.archived': {
      const channel = data.channel as ChannelOut;
      const list = qc.getQueryData<ChannelOut[]>(chatKeys.channels);
      const mine = list?.some((c) => c.id === channel.id);
      if (mine) updateChannels(qc, (l) => upsertChannel(l, channel));
      else if (name === 'chat.channel.created') effects.refetchChannels = true;
      qc.setQueryData<ChannelOut>(chatKeys.channel(channel.id), (prev) =>
        prev
          ? {
              ...channel,
              unread_count: prev.unread_count,
              mention_count: prev.mention_count,
              my_role: prev.my_role,
              joined: prev.joined,
              locked: prev.locked,
            }
          : prev,
      );
      void qc.invalidateQueries({ queryKey: ['chat', 'browse'] });
      break;
    }
    case 'chat.member.added':
    case 'chat.member.removed': {
      const channelId = data.channel_id as string;
      const userId = data.user_id as string;
      void qc.invalidateQueries({ queryKey: chatKeys.members(channelId) });
      if (userId === ctx.meId) {
        if (name === 'chat.member.removed') updateChannels(qc, (l) => removeChannel(l, channelId));
        else effects.refetchChannels = true;
        void qc.invalidateQueries({ queryKey: chatKeys.channel(channelId) });
      }
      break;
    }
  }
  return effects;
}
