import { describe, expect, it } from 'vitest';

import { activeMention, insertMention, mentionedUserIds } from '../chat/mentions';
import {
  buttonId,
  buttonsBody,
  buttonsErrors,
  noteMentionables,
  reactionToSend,
  textBody,
  withOwnReaction,
} from './compose';

const ME = '00000000-0000-4000-8000-000000000001';
const ADA = '00000000-0000-4000-8000-0000000000ad';

describe('private note mentions', () => {
  const members = [
    { user_id: ME, name: 'Me Myself', avatar_url: null },
    { user_id: ADA, name: 'Ada Lovelace', avatar_url: null },
  ];

  it('offers every member but me, and inserts the @[Name](user:<uuid>) token', () => {
    const candidates = noteMentionables(members, ME);
    expect(candidates.map((m) => m.name)).toEqual(['Ada Lovelace']);
    const text = 'can you take this @ad';
    const m = activeMention(text, text.length)!;
    const r = insertMention(text, m.start, text.length, candidates[0]!);
    expect(r.text).toBe(`can you take this @[Ada Lovelace](user:${ADA}) `);
    expect(mentionedUserIds(r.text)).toEqual([ADA]);
  });

  it('builds a note or a reply body', () => {
    expect(textBody('note', 'hi @[Ada](user:x)', 'm1')).toEqual({ type: 'note', text: 'hi @[Ada](user:x)' });
    expect(textBody('reply', 'Hello', 'm1')).toEqual({ type: 'text', text: 'Hello', reply_to_id: 'm1' });
    expect(textBody('reply', 'Hello', null)).toEqual({ type: 'text', text: 'Hello' });
  });
});

describe('buttons builder', () => {
  it('validates body, count, length and duplicates', () => {
    expect(buttonsErrors({ text: '', titles: [''] })).toEqual({
      text: 'Enter the message body',
      'titles.0': 'Add at least one button',
    });
    expect(buttonsErrors({ text: 'Pick', titles: ['Yes', 'Yes'] })).toEqual({
      'titles.1': 'Button titles must differ',
    });
    expect(buttonsErrors({ text: 'Pick', titles: ['x'.repeat(21)] })).toEqual({ 'titles.0': 'At most 20 characters' });
    expect(buttonsErrors({ text: 'Pick', titles: ['a', 'b', 'c', 'd'] })).toHaveProperty('titles');
  });

  it('makes ids from titles, unique within the message, skipping empty rows', () => {
    expect(buttonsBody({ text: ' Pick one ', titles: ['Yes, please!', '', 'yes please'] })).toEqual({
      type: 'buttons',
      text: 'Pick one',
      buttons: [
        { id: 'yes-please', title: 'Yes, please!' },
        { id: 'yes-please-2', title: 'yes please' },
      ],
    });
    expect(buttonId('👍', [])).toBe('button');
  });
});

describe('reactions', () => {
  it('toggles our own reaction and keeps the customer’s', () => {
    const reactions = [
      { emoji: '❤️', by: 'customer' as const, user_id: null },
      { emoji: '👍', by: 'agent' as const, user_id: ME },
    ];
    expect(reactionToSend({ reactions }, '👍', ME)).toBe('');
    expect(reactionToSend({ reactions }, '🎉', ME)).toBe('🎉');
    expect(withOwnReaction(reactions, '🎉', ME)).toEqual([reactions[0], { emoji: '🎉', by: 'agent', user_id: ME }]);
    expect(withOwnReaction(reactions, '', ME)).toEqual([reactions[0]]);
  });
});
