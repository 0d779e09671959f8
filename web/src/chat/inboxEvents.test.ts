import { QueryClient, type InfiniteData } from '@tanstack/react-query';
import { describe, expect, it } from 'vitest';

import { inboxKeys, type ConversationFilters } from '../lib/inbox/api';
import { conversation, message } from '../lib/inbox/fixtures';
import type { ConversationOut, ConversationPage, MessagePage } from '../lib/inbox/types';
import { applyInboxEvent } from './inboxEvents';

const ME = 'u-me';
const OPEN: ConversationFilters = { assignee: 'all', status: 'open', channelId: null, q: '' };
const MINE: ConversationFilters = { ...OPEN, assignee: 'me' };

function setup() {
  const qc = new QueryClient();
  const list = (items: ConversationOut[]): InfiniteData<ConversationPage> => ({
    pages: [{ items, next_cursor: null }],
    pageParams: [undefined],
  });
  qc.setQueryData(
    inboxKeys.list(OPEN),
    list([conversation('c0', { last_activity_at: '2026-01-01T11:00:00Z' }), conversation('c1', { unread_count: 1 })]),
  );
  qc.setQueryData(inboxKeys.list(MINE), list([]));
  qc.setQueryData<InfiniteData<MessagePage>>(inboxKeys.messages('c1'), {
    pages: [{ items: [message('m1', { conversation_id: 'c1' })], has_more: false }],
    pageParams: [undefined],
  });
  const ids = (f: ConversationFilters) =>
    qc.getQueryData<InfiniteData<ConversationPage>>(inboxKeys.list(f))!.pages.flatMap((p) => p.items.map((c) => c.id));
  const thread = () =>
    qc.getQueryData<InfiniteData<MessagePage>>(inboxKeys.messages('c1'))!.pages.flatMap((p) => p.items);
  const inOpen = (id: string) =>
    qc.getQueryData<InfiniteData<ConversationPage>>(inboxKeys.list(OPEN))!.pages[0]!.items.find((c) => c.id === id);
  return { qc, ids, thread, inOpen };
}

describe('applyInboxEvent', () => {
  it('a received message appears in the thread, moves its conversation up and bumps unread', () => {
    const { qc, ids, thread, inOpen } = setup();
    const m = message('m2', { conversation_id: 'c1', text: 'Hello?', created_at: '2026-01-01T12:00:00Z' });
    const fx = applyInboxEvent(
      qc,
      'message.received',
      { message: m, conversation_id: 'c1' },
      { meId: ME, viewing: null },
    );
    expect(thread().map((x) => x.id)).toEqual(['m1', 'm2']);
    expect(ids(OPEN)).toEqual(['c1', 'c0']);
    expect(inOpen('c1')).toMatchObject({ unread_count: 2, last_message: { preview: 'Hello?' } });
    expect(fx).toEqual({ refetchCounts: true });
    // Not in "Mine" (unassigned), and it is known to be unassigned: no refetch of that list.
    expect(ids(MINE)).toEqual([]);
  });

  it('counts a received message once, also after the conversation event already showed it', () => {
    const { qc, ids, inOpen } = setup();
    const m = message('m3', { conversation_id: 'c2', text: 'Hi', created_at: '2026-01-01T13:00:00Z' });
    // The server's order: the conversation (preview = the new message, unread 0 in events), then the message.
    const created = conversation('c2', {
      last_activity_at: '2026-01-01T13:00:00Z',
      unread_count: 0,
      last_message: {
        id: 'm3',
        direction: 'inbound',
        kind: 'text',
        preview: 'Hi',
        status: 'received',
        at: m.created_at,
      },
    });
    applyInboxEvent(qc, 'conversation.created', { conversation: created }, { meId: ME, viewing: null });
    applyInboxEvent(qc, 'message.received', { message: m, conversation_id: 'c2' }, { meId: ME, viewing: null });
    expect(ids(OPEN)[0]).toBe('c2');
    expect(inOpen('c2')!.unread_count).toBe(1);
    // The same event again changes nothing.
    applyInboxEvent(qc, 'message.received', { message: m, conversation_id: 'c2' }, { meId: ME, viewing: null });
    expect(inOpen('c2')!.unread_count).toBe(1);
  });

  it('asks to mark read when the message is for the conversation on screen', () => {
    const { qc, inOpen } = setup();
    const m = message('m2', { conversation_id: 'c1', created_at: '2026-01-01T12:00:00Z' });
    const fx = applyInboxEvent(
      qc,
      'message.received',
      { message: m, conversation_id: 'c1' },
      { meId: ME, viewing: 'c1' },
    );
    expect(fx.markRead).toBe('c1');
    expect(inOpen('c1')!.unread_count).toBe(1);
  });

  it('status updates change the tick live', () => {
    const { qc, thread } = setup();
    const out = message('m9', {
      conversation_id: 'c1',
      direction: 'outbound',
      status: 'queued',
      created_at: '2026-01-01T12:00:00Z',
    });
    applyInboxEvent(qc, 'message.created', { message: out, conversation_id: 'c1' }, { meId: ME, viewing: 'c1' });
    applyInboxEvent(
      qc,
      'message.status.updated',
      { message: { ...out, status: 'delivered' }, conversation_id: 'c1' },
      { meId: ME, viewing: 'c1' },
    );
    applyInboxEvent(
      qc,
      'message.status.updated',
      { message: { ...out, status: 'read' }, conversation_id: 'c1' },
      { meId: ME, viewing: 'c1' },
    );
    applyInboxEvent(
      qc,
      'message.sent',
      { message: { ...out, status: 'sent' }, conversation_id: 'c1' },
      { meId: ME, viewing: 'c1' },
    );
    expect(thread().find((x) => x.id === 'm9')!.status).toBe('read');
  });

  it('asks to refetch the lists for a message of a conversation nobody has seen', () => {
    const { qc } = setup();
    const fx = applyInboxEvent(
      qc,
      'message.received',
      { message: message('x1', { conversation_id: 'new' }), conversation_id: 'new' },
      { meId: ME, viewing: null },
    );
    expect(fx.refetchLists).toBe(true);
  });

  it('conversation events insert, move between filtered lists and remove resolved ones, keeping unread', () => {
    const { qc, ids, inOpen } = setup();
    const created = conversation('c2', { last_activity_at: '2026-01-01T13:00:00Z' });
    expect(applyInboxEvent(qc, 'conversation.created', { conversation: created }, { meId: ME, viewing: null })).toEqual(
      {
        refetchCounts: true,
      },
    );
    expect(ids(OPEN)).toEqual(['c2', 'c0', 'c1']);

    const assigned = { ...conversation('c1'), assignee: { id: ME, name: 'Me', avatar_url: null } };
    applyInboxEvent(qc, 'conversation.assigned', { conversation: assigned }, { meId: ME, viewing: null });
    expect(ids(MINE)).toEqual(['c1']);
    expect(inOpen('c1')).toMatchObject({ unread_count: 1, assignee: { id: ME } });

    applyInboxEvent(
      qc,
      'conversation.resolved',
      { conversation: { ...assigned, status: 'resolved' } },
      { meId: ME, viewing: null },
    );
    expect(ids(OPEN)).toEqual(['c2', 'c0']);
    expect(ids(MINE)).toEqual([]);
  });

  it('ignores events without a payload', () => {
    const { qc } = setup();
    expect(applyInboxEvent(qc, 'conversation.updated', {}, { meId: ME, viewing: null })).toEqual({});
    expect(applyInboxEvent(qc, 'message.sent', {}, { meId: ME, viewing: null })).toEqual({});
  });
});
