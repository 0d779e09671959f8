import { describe, expect, it } from 'vitest';

import type { ChannelOut, MessageOut, MessagePage, ThreadOut } from '../../api/chatTypes';
import {
  appendMessage,
  applyReadReceipt,
  onMessageCreated,
  onMessageUpdated,
  onRead,
  patchMessage,
  removeMessage,
  setReactions,
  threadAppend,
  totals,
  upsertChannel,
  type Pages,
} from './cache';

const ME = 'u-me';
const ANA = 'u-ana';
let seq = 0;

function msg(over: Partial<MessageOut> = {}): MessageOut {
  seq++;
  return {
    id: `m-${seq.toString().padStart(4, '0')}`,
    channel_id: 'c1',
    author: { id: ANA, name: 'Ana', avatar_url: null },
    text: `hello ${seq}`,
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
    created_at: `2026-01-01T00:00:${seq.toString().padStart(2, '0')}Z`,
    expires_at: null,
    read_by: [],
    ...over,
  };
}

function pages(...ps: Partial<MessagePage>[]): Pages {
  return {
    pages: ps.map((p) => ({ items: [], has_more_before: false, has_more_after: false, ...p })),
    pageParams: ps.map(() => ({})),
  };
}

function channel(over: Partial<ChannelOut> = {}): ChannelOut {
  return {
    id: 'c1',
    kind: 'public',
    name: 'general',
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

describe('message pages', () => {
  it('appends a new message to the live end only', () => {
    const a = msg();
    const b = msg();
    const live = appendMessage(pages({ items: [a] }), b, ME)!;
    expect(live.pages[0]!.items.map((m) => m.id)).toEqual([a.id, b.id]);
    // Jumped into the past (newer pages not loaded): the new message waits for the next page.
    const past = pages({ items: [a], has_more_after: true });
    expect(appendMessage(past, b, ME)).toBe(past);
  });

  it('does not duplicate a message we already have (our own send, then its event)', () => {
    const a = msg();
    const once = appendMessage(pages({ items: [a] }), a, ME)!;
    expect(once.pages[0]!.items).toHaveLength(1);
  });

  it('patches edits in place and keeps read receipts the neutral event lacks', () => {
    const a = msg({ read_by: [ANA] });
    const edited = { ...a, text: 'edited', edited_at: '2026-01-02T00:00:00Z', read_by: [] };
    const out = patchMessage(pages({ items: [msg(), a] }), edited, ME)!;
    expect(out.pages[0]!.items[1]).toMatchObject({ text: 'edited', read_by: [ANA] });
  });

  it('leaves the data untouched when the message is not loaded', () => {
    const data = pages({ items: [msg()] });
    expect(patchMessage(data, msg(), ME)).toBe(data);
    expect(removeMessage(data, 'nope')).toBe(data);
  });

  it('recomputes "me" on reactions from the user ids', () => {
    const a = msg();
    const out = setReactions(
      pages({ items: [a] }),
      a.id,
      [{ emoji: '👍', count: 2, me: false, user_ids: [ANA, ME] }],
      ME,
    )!;
    expect(out.pages[0]!.items[0]!.reactions[0]).toMatchObject({ emoji: '👍', count: 2, me: true });
  });

  it('adds a read receipt up to the read message, not to the reader own messages', () => {
    const a = msg({ author: { id: ME, name: 'Me' } });
    const b = msg({ author: { id: ME, name: 'Me' } });
    const c = msg({ author: { id: ME, name: 'Me' } });
    const own = msg({ author: { id: ANA, name: 'Ana' } });
    const out = applyReadReceipt(pages({ items: [a, own, b, c] }), ANA, b.id)!;
    expect(out.pages[0]!.items.map((m) => m.read_by)).toEqual([[ANA], [], [ANA], []]);
  });

  it('appends replies to an open thread and counts them on its parent', () => {
    const parent = msg();
    const thread: ThreadOut = { parent, items: [], has_more_after: false };
    const reply = msg({ thread_id: parent.id });
    const out = threadAppend(thread, reply, ME)!;
    expect(out.items.map((m) => m.id)).toEqual([reply.id]);
    expect(out.parent.reply_count).toBe(1);
    expect(threadAppend(out, reply, ME)!.items).toHaveLength(1);
    expect(threadAppend(thread, msg({ thread_id: 'other' }), ME)).toBe(thread);
  });
});

describe('unread badges', () => {
  const ctx = { meId: ME, viewing: null };

  it('bumps unread for someone else message in another channel and moves it to the top', () => {
    const list = [channel({ id: 'c0' }), channel({ id: 'c1' })];
    const m = msg({ channel_id: 'c1' });
    const out = onMessageCreated(list, m, ctx);
    expect(out.map((c) => c.id)).toEqual(['c1', 'c0']);
    expect(out[0]).toMatchObject({
      unread_count: 1,
      mention_count: 0,
      last_message: m,
      last_activity_at: m.created_at,
    });
  });

  it('counts a mention of me or @channel', () => {
    const list = [channel()];
    const once = onMessageCreated(list, msg({ mentions: [ME] }), ctx);
    const twice = onMessageCreated(once, msg({ mentions_channel: true }), ctx);
    expect(twice[0]).toMatchObject({ unread_count: 2, mention_count: 2 });
  });

  it('does not bump the channel on screen or my own messages; my message clears the badge', () => {
    const list = [channel({ unread_count: 3 })];
    expect(onMessageCreated(list, msg(), { meId: ME, viewing: 'c1' })[0]!.unread_count).toBe(3);
    expect(onMessageCreated(list, msg({ author: { id: ME, name: 'Me' } }), ctx)[0]!.unread_count).toBe(0);
  });

  it('counts thread replies only as mentions, and keeps the top-level preview', () => {
    const last = msg();
    const list = [channel({ last_message: last })];
    const plain = onMessageCreated(list, msg({ thread_id: last.id }), ctx);
    expect(plain[0]).toMatchObject({ unread_count: 0, last_message: last });
    const mention = onMessageCreated(list, msg({ thread_id: last.id, mentions: [ME] }), ctx);
    expect(mention[0]).toMatchObject({ unread_count: 0, mention_count: 1 });
  });

  it('ignores messages for channels not in the list', () => {
    const list = [channel()];
    expect(onMessageCreated(list, msg({ channel_id: 'elsewhere' }), ctx)).toBe(list);
  });

  it('clears badges when read, and sums totals', () => {
    const list = [channel({ unread_count: 2, mention_count: 1 }), channel({ id: 'c2', unread_count: 5 })];
    expect(totals(list)).toEqual({ unread: 7, mentions: 1 });
    const out = onRead(list, 'c1', 'm-9999');
    expect(out[0]).toMatchObject({ unread_count: 0, mention_count: 0, last_read_id: 'm-9999' });
    expect(totals(out)).toEqual({ unread: 5, mentions: 0 });
  });

  it('patches the preview on edit, upserts and drops archived channels keeping my counters', () => {
    const last = msg();
    const list = [channel({ unread_count: 4, last_message: last })];
    expect(onMessageUpdated(list, { ...last, deleted: true, text: '' })[0]!.last_message!.deleted).toBe(true);
    const renamed = upsertChannel(list, channel({ name: 'renamed', unread_count: 0, my_role: null }));
    expect(renamed[0]).toMatchObject({ name: 'renamed', unread_count: 4, my_role: 'member' });
    expect(upsertChannel(list, channel({ archived: true }))).toEqual([]);
    expect(upsertChannel(list, channel({ id: 'new' })).map((c) => c.id)).toEqual(['new', 'c1']);
  });
});
