import { describe, expect, it } from 'vitest';

import type { ConversationFilters } from './api';
import {
  allMessages,
  clearUnread,
  matchesFilter,
  onMessage,
  previewText,
  settleOptimistic,
  upsertConversation,
  upsertMessage,
  type ConversationPages,
  type MessagePages,
} from './cache';
import { conversation, message } from './fixtures';

const ME = 'u-me';
const ALL_OPEN: ConversationFilters = { assignee: 'all', status: 'open', channelId: null, q: '' };

function pages(...items: ReturnType<typeof message>[][]): MessagePages {
  return { pages: items.map((i, n) => ({ items: i, has_more: n === 0 })), pageParams: items.map(() => undefined) };
}
function list(items: ReturnType<typeof conversation>[], next_cursor: string | null = null): ConversationPages {
  return { pages: [{ items, next_cursor }], pageParams: [undefined] };
}
const ids = (d: ConversationPages | undefined) => d!.pages.flatMap((p) => p.items.map((c) => c.id));

describe('message pages', () => {
  it('appends a new message to the newest page, in time order, once', () => {
    const d = pages(
      [message('m1', { created_at: '2026-01-01T10:00:00Z' })],
      [message('m2', { created_at: '2026-01-01T10:01:00Z' })],
    );
    const m3 = message('m3', { created_at: '2026-01-01T10:02:00Z' });
    const once = upsertMessage(d, m3);
    expect(allMessages(once).map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
    expect(allMessages(upsertMessage(once, m3)).map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
  });

  it('moves a status forward and never back (delivered → read, then a late "sent")', () => {
    const out = message('m1', { direction: 'outbound', status: 'delivered' });
    let d = upsertMessage(pages([out]), { ...out, status: 'read', read_at: '2026-01-01T10:05:00Z' });
    expect(allMessages(d)[0]!.status).toBe('read');
    d = upsertMessage(d, { ...out, status: 'sent' });
    expect(allMessages(d)[0]).toMatchObject({ status: 'read', read_at: '2026-01-01T10:05:00Z' });
  });

  it('replaces our optimistic copy when the server copy arrives first as an event, and again when the POST answers', () => {
    const temp = message('tmp-k1', {
      direction: 'outbound',
      text: 'Hi Ada',
      status: 'queued',
      author: { id: ME, name: 'Me', avatar_url: null },
    });
    const real = { ...temp, id: 'm9', created_at: '2026-01-01T10:03:00Z' };
    let d = upsertMessage(pages([message('m1')]), temp);
    d = upsertMessage(d, real, ME); // the `message.created` event
    expect(allMessages(d).map((m) => m.id)).toEqual(['m1', 'm9']);
    d = settleOptimistic(d, temp.id, { ...real, status: 'sent' }); // then the POST's answer
    expect(allMessages(d).map((m) => [m.id, m.status])).toEqual([
      ['m1', 'received'],
      ['m9', 'sent'],
    ]);
  });

  it('leaves an absent cache alone', () => {
    expect(upsertMessage(undefined, message('m1'))).toBeUndefined();
  });
});

describe('conversation lists', () => {
  it('tells whether a conversation belongs in a filtered list', () => {
    const mine = conversation('a', { assignee: { id: ME, name: 'Me', avatar_url: null } });
    expect(matchesFilter(mine, { ...ALL_OPEN, assignee: 'me' }, ME)).toBe(true);
    expect(matchesFilter(mine, { ...ALL_OPEN, assignee: 'unassigned' }, ME)).toBe(false);
    expect(matchesFilter(conversation('b', { status: 'resolved' }), ALL_OPEN, ME)).toBe(false);
    expect(matchesFilter(conversation('b', { status: 'resolved' }), { ...ALL_OPEN, status: 'all' }, ME)).toBe(true);
    expect(matchesFilter(mine, { ...ALL_OPEN, channelId: 'other' }, ME)).toBe(false);
    expect(matchesFilter(mine, { ...ALL_OPEN, q: 'refund' }, ME)).toBeNull();
  });

  it('inserts a new conversation by activity and keeps the unread count it had', () => {
    const d = list([
      conversation('a', { last_activity_at: '2026-01-01T12:00:00Z', unread_count: 2 }),
      conversation('b', { last_activity_at: '2026-01-01T08:00:00Z' }),
    ]);
    const added = upsertConversation(d, conversation('n', { last_activity_at: '2026-01-01T10:00:00Z' }), ALL_OPEN, ME);
    expect(ids(added)).toEqual(['a', 'n', 'b']);
    const updated = upsertConversation(
      added,
      conversation('a', { unread_count: 0, priority: 'high', last_activity_at: '2026-01-01T12:00:00Z' }),
      ALL_OPEN,
      ME,
    );
    expect(updated!.pages[0]!.items[0]).toMatchObject({ id: 'a', priority: 'high', unread_count: 2 });
  });

  it('removes a resolved conversation from the Open list, and does not add beyond the loaded pages', () => {
    const d = list([conversation('a'), conversation('b')], 'cursor-2');
    expect(ids(upsertConversation(d, conversation('a', { status: 'resolved' }), ALL_OPEN, ME))).toEqual(['b']);
    const old = conversation('old', { last_activity_at: '2020-01-01T00:00:00Z' });
    expect(ids(upsertConversation(d, old, ALL_OPEN, ME))).toEqual(['a', 'b']);
  });

  it('in a search, refreshes what is shown but adds nothing', () => {
    const f = { ...ALL_OPEN, q: 'refund' };
    const d = list([conversation('a')]);
    expect(ids(upsertConversation(d, conversation('z'), f, ME))).toEqual(['a']);
    expect(upsertConversation(d, conversation('a', { priority: 'low' }), f, ME)!.pages[0]!.items[0]!.priority).toBe(
      'low',
    );
  });

  it('a new inbound message moves the conversation to the top, updates the preview and bumps unread once', () => {
    const d = list([
      conversation('c0', { last_activity_at: '2026-01-01T11:00:00Z' }),
      conversation('c1', { last_activity_at: '2026-01-01T09:00:00Z', unread_count: 1 }),
    ]);
    const m = message('m5', { conversation_id: 'c1', text: 'Where is my order?', created_at: '2026-01-01T11:30:00Z' });
    const once = onMessage(d, m, ALL_OPEN, { meId: ME, viewing: null }, 'new');
    expect(once.missing).toBe(false);
    expect(ids(once.data)).toEqual(['c1', 'c0']);
    expect(once.data!.pages[0]!.items[0]).toMatchObject({
      unread_count: 2,
      last_activity_at: '2026-01-01T11:30:00Z',
      last_message: { id: 'm5', preview: 'Where is my order?', direction: 'inbound' },
    });
    // The same event from the conversation room: no second bump.
    const twice = onMessage(once.data, m, ALL_OPEN, { meId: ME, viewing: null }, 'new');
    expect(twice.data!.pages[0]!.items[0]!.unread_count).toBe(2);
  });

  it('does not bump unread for the conversation on screen, nor for notes, which keep the preview', () => {
    const d = list([conversation('c1', { unread_count: 0, last_message: null })]);
    const viewing = onMessage(
      d,
      message('m1', { conversation_id: 'c1' }),
      ALL_OPEN,
      { meId: ME, viewing: 'c1' },
      'new',
    );
    expect(viewing.data!.pages[0]!.items[0]!.unread_count).toBe(0);
    const note = message('n1', {
      conversation_id: 'c1',
      kind: 'note',
      private: true,
      direction: 'outbound',
      status: 'note',
    });
    const afterNote = onMessage(viewing.data, note, ALL_OPEN, { meId: ME, viewing: null }, 'new');
    expect(afterNote.data!.pages[0]!.items[0]!.last_message!.id).toBe('m1');
  });

  it('a status change updates the preview tick of the last message only', () => {
    const last = {
      id: 'm1',
      direction: 'outbound' as const,
      kind: 'text' as const,
      preview: 'Hi',
      status: 'sent' as const,
      at: '2026-01-01T10:00:00Z',
    };
    const d = list([conversation('c1', { last_message: last })]);
    const r = onMessage(
      d,
      message('m1', { conversation_id: 'c1', direction: 'outbound', status: 'read' }),
      ALL_OPEN,
      { meId: ME, viewing: null },
      'status',
    );
    expect(r.data!.pages[0]!.items[0]!.last_message!.status).toBe('read');
    const other = onMessage(
      d,
      message('m0', { conversation_id: 'c1', status: 'read' }),
      ALL_OPEN,
      { meId: ME, viewing: null },
      'status',
    );
    expect(other.data).toBe(d);
  });

  it('reports a new message for a conversation the list does not have', () => {
    const r = onMessage(
      list([]),
      message('m1', { conversation_id: 'nope' }),
      ALL_OPEN,
      { meId: ME, viewing: null },
      'new',
    );
    expect(r.missing).toBe(true);
  });

  it('clearUnread drops the badge', () => {
    const d = list([conversation('c1', { unread_count: 4 })]);
    expect(clearUnread(d, 'c1')!.pages[0]!.items[0]!.unread_count).toBe(0);
    expect(clearUnread(d, 'other')).toBe(d);
  });

  it('previews media by kind when there is no caption', () => {
    expect(previewText({ kind: 'image', text: null, media: null })).toBe('📷 Photo');
    expect(previewText({ kind: 'text', text: ' a\n b ', media: null })).toBe('a b');
  });
});
