import { QueryClient, type InfiniteData } from '@tanstack/react-query';
import { describe, expect, it } from 'vitest';

import { chatKeys } from '../api/chat';
import type { ChannelOut, MessageOut, MessagePage, ThreadOut } from '../api/chatTypes';
import { applyChatEvent } from './events';

const ME = 'u-me';
const ANA = 'u-ana';

function msg(id: string, over: Partial<MessageOut> = {}): MessageOut {
  return {
    id,
    channel_id: 'c1',
    author: { id: ANA, name: 'Ana', avatar_url: null },
    text: `text ${id}`,
    mentions: [],
    mentions_channel: false,
    thread_id: null,
    reply_count: 0,
    last_reply_at: null,
    quote: null,
    forwarded_from: null,
    attachments: [],
    reactions: [],
    pinned: false,
    edited_at: null,
    deleted: false,
    created_at: `2026-01-01T00:00:${id.slice(-2)}Z`,
    expires_at: null,
    read_by: [],
    ...over,
  };
}

function channel(id: string, over: Partial<ChannelOut> = {}): ChannelOut {
  return {
    id,
    kind: 'public',
    name: id,
    topic: null,
    archived: false,
    disappearing: 'off',
    member_count: 2,
    members_preview: [],
    my_role: 'member',
    joined: true,
    unread_count: 0,
    mention_count: 0,
    last_read_id: null,
    last_message: null,
    last_activity_at: '2026-01-01T00:00:00Z',
    locked: false,
    created_at: '2026-01-01T00:00:00Z',
    ...over,
  };
}

function setup() {
  const qc = new QueryClient();
  const page: MessagePage = {
    items: [msg('m-01'), msg('m-02', { author: { id: ME, name: 'Me' } })],
    has_more_before: false,
    has_more_after: false,
  };
  qc.setQueryData<InfiniteData<MessagePage>>(chatKeys.messages('c1', null), { pages: [page], pageParams: [{}] });
  qc.setQueryData<ChannelOut[]>(chatKeys.channels, [channel('c0'), channel('c1', { kind: 'dm' })]);
  const items = () =>
    qc.getQueryData<InfiniteData<MessagePage>>(chatKeys.messages('c1', null))!.pages.flatMap((p) => p.items);
  const list = () => qc.getQueryData<ChannelOut[]>(chatKeys.channels)!;
  return { qc, items, list };
}

describe('applyChatEvent', () => {
  it('appends a new message live and bumps the unread badge of a channel not on screen', () => {
    const { qc, items, list } = setup();
    const fx = applyChatEvent(
      qc,
      'chat.message.created',
      { channel_id: 'c1', message: msg('m-03', { mentions: [ME] }) },
      { meId: ME, viewing: 'c0' },
    );
    expect(items().map((m) => m.id)).toEqual(['m-01', 'm-02', 'm-03']);
    expect(list()[0]).toMatchObject({ id: 'c1', unread_count: 1, mention_count: 1 });
    expect(fx.markRead).toBeUndefined();
  });

  it('asks to mark read instead when the channel is on screen', () => {
    const { qc, list } = setup();
    const fx = applyChatEvent(
      qc,
      'chat.message.created',
      { channel_id: 'c1', message: msg('m-03') },
      { meId: ME, viewing: 'c1' },
    );
    expect(fx.markRead).toEqual({ channelId: 'c1', messageId: 'm-03' });
    expect(list().find((c) => c.id === 'c1')!.unread_count).toBe(0);
  });

  it('asks for the channel list when a message arrives for an unknown channel', () => {
    const { qc } = setup();
    const fx = applyChatEvent(
      qc,
      'chat.message.created',
      { channel_id: 'c9', message: msg('m-03', { channel_id: 'c9' }) },
      { meId: ME, viewing: null },
    );
    expect(fx.refetchChannels).toBe(true);
  });

  it('puts thread replies in the open thread, not in the history', () => {
    const { qc, items } = setup();
    qc.setQueryData<ThreadOut>(chatKeys.thread('m-01'), { parent: msg('m-01'), items: [], has_more_after: false });
    applyChatEvent(
      qc,
      'chat.message.created',
      { channel_id: 'c1', message: msg('m-04', { thread_id: 'm-01' }) },
      { meId: ME, viewing: 'c1' },
    );
    expect(items()).toHaveLength(2);
    expect(qc.getQueryData<ThreadOut>(chatKeys.thread('m-01'))!.items.map((m) => m.id)).toEqual(['m-04']);
    // The parent's count comes with its update event.
    applyChatEvent(
      qc,
      'chat.message.updated',
      { channel_id: 'c1', message: msg('m-01', { reply_count: 1 }) },
      { meId: ME, viewing: 'c1' },
    );
    expect(items()[0]!.reply_count).toBe(1);
    expect(qc.getQueryData<ThreadOut>(chatKeys.thread('m-01'))!.parent.reply_count).toBe(1);
  });

  it('patches edits and deletions, and keeps pins in step', () => {
    const { qc, items } = setup();
    qc.setQueryData<MessageOut[]>(chatKeys.pins('c1'), []);
    applyChatEvent(
      qc,
      'chat.message.updated',
      { channel_id: 'c1', message: msg('m-01', { text: 'new', edited_at: '2026-01-02T00:00:00Z', pinned: true }) },
      { meId: ME, viewing: null },
    );
    expect(items()[0]).toMatchObject({ text: 'new', pinned: true });
    expect(qc.getQueryData<MessageOut[]>(chatKeys.pins('c1'))!.map((m) => m.id)).toEqual(['m-01']);
    applyChatEvent(
      qc,
      'chat.message.deleted',
      { channel_id: 'c1', message: msg('m-01', { deleted: true, text: '', pinned: true }) },
      { meId: ME, viewing: null },
    );
    expect(items()[0]).toMatchObject({ deleted: true, text: '' });
    expect(qc.getQueryData<MessageOut[]>(chatKeys.pins('c1'))).toEqual([]);
  });

  it('removes an expired disappearing message instead of leaving a tombstone', () => {
    const { qc, items } = setup();
    const gone = msg('m-01', { deleted: true, text: '', expires_at: '2026-01-01T00:01:00Z' });
    applyChatEvent(qc, 'chat.message.deleted', { channel_id: 'c1', message: gone }, { meId: ME, viewing: null });
    expect(items().map((m) => m.id)).toEqual(['m-02']);
  });

  it('applies reactions with "me" computed for this user', () => {
    const { qc, items } = setup();
    applyChatEvent(
      qc,
      'chat.reaction.added',
      {
        channel_id: 'c1',
        message_id: 'm-01',
        emoji: '🎉',
        user_id: ME,
        reactions: [{ emoji: '🎉', count: 1, me: false, user_ids: [ME] }],
      },
      { meId: ME, viewing: null },
    );
    expect(items()[0]!.reactions).toEqual([{ emoji: '🎉', count: 1, me: true, user_ids: [ME] }]);
  });

  it('shows read receipts from others and clears my badges when I read elsewhere', () => {
    const { qc, items, list } = setup();
    applyChatEvent(
      qc,
      'chat.read',
      { channel_id: 'c1', user_id: ANA, message_id: 'm-02' },
      { meId: ME, viewing: null },
    );
    expect(items()[1]!.read_by).toEqual([ANA]);
    qc.setQueryData<ChannelOut[]>(chatKeys.channels, (l) => l!.map((c) => ({ ...c, unread_count: 3 })));
    applyChatEvent(qc, 'chat.read', { channel_id: 'c1', user_id: ME, message_id: 'm-02' }, { meId: ME, viewing: null });
    expect(list().find((c) => c.id === 'c1')!.unread_count).toBe(0);
    expect(list().find((c) => c.id === 'c0')!.unread_count).toBe(3);
  });

  it('drops a channel I was removed from or that was archived', () => {
    const { qc, list } = setup();
    applyChatEvent(qc, 'chat.member.removed', { channel_id: 'c0', user_id: ME }, { meId: ME, viewing: null });
    expect(list().map((c) => c.id)).toEqual(['c1']);
    applyChatEvent(
      qc,
      'chat.channel.archived',
      { channel: channel('c1', { archived: true }) },
      { meId: ME, viewing: null },
    );
    expect(list()).toEqual([]);
    expect(
      applyChatEvent(qc, 'chat.member.added', { channel_id: 'c5', user_id: ME }, { meId: ME, viewing: null })
        .refetchChannels,
    ).toBe(true);
  });
});
