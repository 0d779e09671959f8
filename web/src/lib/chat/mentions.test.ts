import { describe, expect, it } from 'vitest';

import {
  EVERYONE,
  activeMention,
  filterMentionables,
  insertMention,
  mentionToken,
  mentionedUserIds,
  mentionsEveryone,
  mentionsToPlain,
} from './mentions';

const ANA = { user_id: '0190a7e4-1111-7000-8000-000000000001', name: 'Ana Silva' };
const BO = { user_id: '0190a7e4-2222-7000-8000-000000000002', name: 'Bo [ops]' };

describe('mention tokens', () => {
  it('builds a token and reads the ids back, once each', () => {
    const text = `hi ${mentionToken(ANA)} and ${mentionToken(BO)} and ${mentionToken(ANA)}`;
    expect(mentionToken(ANA)).toBe(`@[Ana Silva](user:${ANA.user_id})`);
    expect(mentionedUserIds(text)).toEqual([ANA.user_id, BO.user_id]);
  });

  it('drops brackets from a display name so the token still parses', () => {
    expect(mentionToken(BO)).toBe(`@[Bo ops](user:${BO.user_id})`);
  });

  it('ignores malformed tokens', () => {
    expect(mentionedUserIds('@[Ana](user:not-a-uuid) @[Ana] (user:x) @Ana')).toEqual([]);
  });

  it('renders tokens as plain @names', () => {
    expect(mentionsToPlain(`ping ${mentionToken(ANA)}!`)).toBe('ping @Ana Silva!');
  });

  it('knows @channel and @here as whole words only', () => {
    expect(mentionsEveryone('hey @channel')).toBe(true);
    expect(mentionsEveryone('@here now')).toBe(true);
    expect(mentionsEveryone('mail me at me@channel.com')).toBe(false);
    expect(mentionsEveryone('@channels')).toBe(false);
  });
});

describe('autocomplete', () => {
  it('finds the @query under the caret', () => {
    expect(activeMention('hello @an', 9)).toEqual({ start: 6, query: 'an' });
    expect(activeMention('@', 1)).toEqual({ start: 0, query: '' });
    expect(activeMention('mail a@b', 8)).toBeNull();
    expect(activeMention('hello @an there', 15)).toBeNull();
  });

  it('replaces the query with the token and moves the caret after it', () => {
    const r = insertMention('hello @an', 6, 9, ANA);
    expect(r.text).toBe(`hello @[Ana Silva](user:${ANA.user_id}) `);
    expect(r.caret).toBe(r.text.length);
    const mid = insertMention('x @a y', 2, 4, ANA);
    expect(mid.text).toBe(`x @[Ana Silva](user:${ANA.user_id}) y`);
  });

  it('inserts @channel and @here as bare words', () => {
    const r = insertMention('ping @cha', 5, 9, EVERYONE[0]!);
    expect(r.text).toBe('ping @channel ');
    expect(mentionsEveryone(r.text)).toBe(true);
    expect(filterMentionables([...EVERYONE], 'he').map((m) => m.user_id)).toEqual(['@here']);
  });

  it('ranks word-prefix matches before substring matches', () => {
    const people = [
      { user_id: '1', name: 'Diana Prince' },
      { user_id: '2', name: 'Ana Silva' },
      { user_id: '3', name: 'Bruno' },
    ];
    expect(filterMentionables(people, 'an').map((p) => p.name)).toEqual(['Ana Silva', 'Diana Prince']);
    expect(filterMentionables(people, '', 2)).toHaveLength(2);
  });
});
