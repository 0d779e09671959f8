import { describe, expect, it } from 'vitest';

import { activeShortcut, renderCanned, replaceRange, shortcutError } from './canned';

describe('renderCanned', () => {
  const ctx = {
    contact: { name: 'Ada King Lovelace', phone: '+4915112345678', email: null },
    agent: { name: 'Grace Hopper' },
    conversation: { id: 'conv-1' },
  };

  it('fills in every known variable, with or without spaces inside the braces', () => {
    const r = renderCanned(
      'Hi {{contact.first_name}} ({{ contact.name }}), {{agent.first_name}} here. We will call {{contact.phone}} about {{conversation.id}}. — {{agent.name}}',
      ctx,
    );
    expect(r.text).toBe(
      'Hi Ada (Ada King Lovelace), Grace here. We will call +4915112345678 about conv-1. — Grace Hopper',
    );
    expect(r.missing).toEqual([]);
  });

  it('leaves unknown variables as written and reports known ones without a value', () => {
    const r = renderCanned('Mail {{contact.email}} or {{order.id}} or {{ contact.email }} {{weird', ctx);
    expect(r.text).toBe('Mail  or {{order.id}} or  {{weird');
    expect(r.missing).toEqual(['contact.email']);
  });

  it('treats a blank name as missing', () => {
    expect(renderCanned('Hi {{contact.first_name}}!', { contact: { name: '  ' } })).toEqual({
      text: 'Hi !',
      missing: ['contact.first_name'],
    });
  });
});

describe('activeShortcut', () => {
  it('finds a /shortcut at the start or after whitespace, up to the caret', () => {
    expect(activeShortcut('/ref', 4)).toEqual({ start: 0, query: 'ref' });
    expect(activeShortcut('Hello /', 7)).toEqual({ start: 6, query: '' });
    expect(activeShortcut('Hello /re fund', 9)).toEqual({ start: 6, query: 're' });
  });

  it('ignores slashes inside words and URLs, and characters a shortcut cannot have', () => {
    expect(activeShortcut('and/or', 6)).toBeNull();
    expect(activeShortcut('https://x.io/a', 14)).toBeNull();
    expect(activeShortcut('/Refund', 7)).toBeNull();
    expect(activeShortcut('/ref ', 5)).toBeNull();
  });

  it('replaceRange puts the rendered body in place of the /query', () => {
    const text = 'Hi /ref thanks';
    const a = activeShortcut(text, 7)!;
    expect(replaceRange(text, a.start, 7, 'Your refund is on its way.')).toEqual({
      text: 'Hi Your refund is on its way. thanks',
      caret: 29,
    });
  });
});

describe('shortcutError', () => {
  it('accepts [a-z0-9_-]{1,32} only', () => {
    expect(shortcutError('refund_2-b')).toBeNull();
    expect(shortcutError('a'.repeat(32))).toBeNull();
    expect(shortcutError('')).toMatch(/enter/i);
    expect(shortcutError('a'.repeat(33))).toMatch(/32/);
    expect(shortcutError('Refund')).toMatch(/lower-case/);
    expect(shortcutError('re fund')).toMatch(/lower-case/);
  });
});
