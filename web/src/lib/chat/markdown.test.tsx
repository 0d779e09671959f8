import { render } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import { MessageText } from '../../pages/chat/MessageText';
import { parseInline, parseMarkdown, safeHref, toPlainText } from './markdown';

const ID = '0190a7e4-1111-7000-8000-000000000001';

describe('parseMarkdown', () => {
  it('parses bold, italic, strike, code and links', () => {
    expect(parseInline('a **b** *c* _d_ ~~e~~ `f`')).toEqual([
      { type: 'text', text: 'a ' },
      { type: 'strong', children: [{ type: 'text', text: 'b' }] },
      { type: 'text', text: ' ' },
      { type: 'em', children: [{ type: 'text', text: 'c' }] },
      { type: 'text', text: ' ' },
      { type: 'em', children: [{ type: 'text', text: 'd' }] },
      { type: 'text', text: ' ' },
      { type: 'del', children: [{ type: 'text', text: 'e' }] },
      { type: 'text', text: ' ' },
      { type: 'code', text: 'f' },
    ]);
    expect(parseInline('see [docs](https://example.com/a?b=1)')).toEqual([
      { type: 'text', text: 'see ' },
      { type: 'link', href: 'https://example.com/a?b=1', children: [{ type: 'text', text: 'docs' }] },
    ]);
  });

  it('autolinks bare URLs without the trailing punctuation', () => {
    expect(parseInline('go to https://example.com/x.')).toEqual([
      { type: 'text', text: 'go to ' },
      { type: 'link', href: 'https://example.com/x', children: [{ type: 'text', text: 'https://example.com/x' }] },
      { type: 'text', text: '.' },
    ]);
  });

  it('leaves snake_case and lone markers alone', () => {
    expect(parseInline('snake_case_name 2 * 3 * 4')).toEqual([{ type: 'text', text: 'snake_case_name 2 * 3 * 4' }]);
  });

  it('does not parse markup inside code', () => {
    expect(parseInline('`**not bold**`')).toEqual([{ type: 'code', text: '**not bold**' }]);
    expect(parseMarkdown('```\n**x** <b>\n```')).toEqual([{ type: 'codeblock', text: '**x** <b>' }]);
  });

  it('parses mention tokens and @channel', () => {
    expect(parseInline(`hi @[Ana Silva](user:${ID}) @channel`)).toEqual([
      { type: 'text', text: 'hi ' },
      { type: 'mention', userId: ID, name: 'Ana Silva' },
      { type: 'text', text: ' ' },
      { type: 'mention_all', word: 'channel' },
    ]);
  });

  it('keeps line breaks and quote lines', () => {
    expect(parseMarkdown('> quoted\nreply\nmore')).toEqual([
      { type: 'quote', children: [{ type: 'text', text: 'quoted' }] },
      { type: 'text', text: 'reply' },
      { type: 'br' },
      { type: 'text', text: 'more' },
    ]);
  });

  it('previews as plain text', () => {
    expect(toPlainText(`**Hey** @[Ana](user:${ID})\n\`x\``)).toBe('Hey @Ana x');
    expect(toPlainText('Thanks\n> quoted\nafter')).toBe('Thanks quoted after');
  });
});

describe('safety', () => {
  it('only accepts http, https and mailto links', () => {
    expect(safeHref('https://a.example')).toBe('https://a.example');
    expect(safeHref('mailto:a@b.c')).toBe('mailto:a@b.c');
    expect(safeHref('javascript:alert(1)')).toBeNull();
    expect(safeHref('JaVaScRiPt:alert(1)')).toBeNull();
    expect(safeHref('data:text/html,<script>')).toBeNull();
    expect(safeHref('https://a.example/"onmouseover="x')).toBeNull();
  });

  it('renders HTML in a message as text, never as elements', () => {
    const evil =
      '<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) **<b>x</b>** [ok](https://ok.example)';
    const { container } = render(<MessageText text={evil} />);
    expect(container.querySelector('script, img, b')).toBeNull();
    expect(container.textContent).toContain('<script>alert(1)</script>');
    expect(container.textContent).toContain('[click](javascript:alert(3))');
    const links = [...container.querySelectorAll('a')];
    expect(links.map((a) => a.getAttribute('href'))).toEqual(['https://ok.example']);
    expect(links[0]!.getAttribute('rel')).toContain('noopener');
    expect(container.innerHTML).not.toMatch(/javascript:alert\(3\)"/);
    expect(container.querySelector('strong')?.textContent).toBe('<b>x</b>');
  });

  it('renders mentions as highlighted names', () => {
    const { getByTestId } = render(<MessageText text={`hi @[Ana Silva](user:${ID})`} meId={ID} />);
    expect(getByTestId('mention')).toHaveTextContent('@Ana Silva');
    expect(getByTestId('mention')).toHaveAttribute('data-me', 'true');
  });
});
