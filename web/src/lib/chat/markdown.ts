/**
 * A small markdown subset for chat messages, parsed into a tree that React renders as elements —
 * never as an HTML string — so message text cannot inject markup. Supported: ```code blocks```,
 * `inline code`, **bold**, *italic* / _italic_, ~~strike~~, [label](https://…), bare
 * http(s) links, `> quote` lines, line breaks, and mentions (`@[Name](user:id)`, `@channel`,
 * `@here`). Links are kept only for http, https and mailto; anything else stays text.
 */
import { MENTION_RE } from './mentions';

export type MdNode =
  | { type: 'text'; text: string }
  | { type: 'br' }
  | { type: 'code'; text: string }
  | { type: 'codeblock'; text: string }
  | { type: 'quote'; children: MdNode[] }
  | { type: 'strong' | 'em' | 'del'; children: MdNode[] }
  | { type: 'link'; href: string; children: MdNode[] }
  | { type: 'mention'; userId: string; name: string }
  | { type: 'mention_all'; word: 'channel' | 'here' };

const SAFE_SCHEME = /^(https?:\/\/|mailto:)/i;

/** The href when it is a link we are willing to render, else null. */
export function safeHref(raw: string): string | null {
  const href = raw.trim();
  if (!SAFE_SCHEME.test(href)) return null;
  // No whitespace or quotes inside; the URL parser must accept it.
  if (/[\s"'<>`]/.test(href)) return null;
  try {
    const url = new URL(href);
    return ['http:', 'https:', 'mailto:'].includes(url.protocol) ? href : null;
  } catch {
    return null;
  }
}

/** Parses a whole message: code blocks and quote lines first, then inline markup per line. */
export function parseMarkdown(src: string): MdNode[] {
  const out: MdNode[] = [];
  const parts = src.split(/```/);
  // Even indexes are prose, odd ones fenced code (an unclosed fence stays prose).
  const fenced = parts.length % 2 === 1 ? parts.length : parts.length - 1;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (i % 2 === 1 && i < fenced) {
      out.push({ type: 'codeblock', text: part.replace(/^[a-z0-9+-]*\n/i, '').replace(/\n$/, '') });
      continue;
    }
    const prose = i % 2 === 1 ? `\`\`\`${part}` : part;
    pushProse(out, prose);
  }
  return trimBreaks(out);
}

function pushProse(out: MdNode[], prose: string) {
  const lines = prose.split('\n');
  let quote: string[] = [];
  const flushQuote = () => {
    if (quote.length === 0) return;
    const children: MdNode[] = [];
    quote.forEach((l, i) => {
      if (i > 0) children.push({ type: 'br' });
      children.push(...parseInline(l));
    });
    out.push({ type: 'quote', children });
    quote = [];
  };
  lines.forEach((line, i) => {
    const q = /^>\s?(.*)$/.exec(line);
    if (q) {
      quote.push(q[1]!);
      return;
    }
    flushQuote();
    if (i > 0 && out.length > 0 && out[out.length - 1]!.type !== 'quote') out.push({ type: 'br' });
    out.push(...parseInline(line));
  });
  flushQuote();
}

function trimBreaks(nodes: MdNode[]): MdNode[] {
  let a = 0;
  let b = nodes.length;
  while (a < b && nodes[a]!.type === 'br') a++;
  while (b > a && nodes[b - 1]!.type === 'br') b--;
  return nodes.slice(a, b);
}

interface Rule {
  re: RegExp;
  make: (m: RegExpExecArray) => MdNode | null;
}

const RULES: Rule[] = [
  { re: /`([^`\n]+)`/y, make: (m) => ({ type: 'code', text: m[1]! }) },
  {
    re: new RegExp(MENTION_RE.source, 'y'),
    make: (m) => ({ type: 'mention', name: m[1]!, userId: m[2]!.toLowerCase() }),
  },
  {
    re: /\[([^\]\n]{1,200})\]\(([^)\s]{1,2000})\)/y,
    make: (m) => {
      const href = safeHref(m[2]!);
      return href ? { type: 'link', href, children: parseInline(m[1]!) } : null;
    },
  },
  {
    re: /https?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]]/y,
    make: (m) => {
      const href = safeHref(m[0]);
      return href ? { type: 'link', href, children: [{ type: 'text', text: m[0] }] } : null;
    },
  },
  { re: /\*\*(?=\S)([^\n]*?\S)\*\*/y, make: (m) => ({ type: 'strong', children: parseInline(m[1]!) }) },
  { re: /~~(?=\S)([^\n]*?\S)~~/y, make: (m) => ({ type: 'del', children: parseInline(m[1]!) }) },
  { re: /\*(?=[^\s*])([^\n*]*?[^\s*])\*/y, make: (m) => ({ type: 'em', children: parseInline(m[1]!) }) },
  {
    re: /_(?=[^\s_])([^\n_]*?[^\s_])_(?![A-Za-z0-9])/y,
    make: (m) => ({ type: 'em', children: parseInline(m[1]!) }),
  },
  {
    re: /@(channel|here)\b/y,
    make: (m) => ({ type: 'mention_all', word: m[1] as 'channel' | 'here' }),
  },
];

/** Inline markup of one line. */
export function parseInline(line: string): MdNode[] {
  const out: MdNode[] = [];
  let text = '';
  let i = 0;
  const flush = () => {
    if (text) out.push({ type: 'text', text });
    text = '';
  };
  outer: while (i < line.length) {
    const ch = line[i]!;
    // Only try rules where one could start; `_`/`@` must not be inside a word.
    if ('`@[h*~_'.includes(ch)) {
      const prev = i > 0 ? line[i - 1]! : ' ';
      const wordy = /[A-Za-z0-9]/.test(prev);
      for (const rule of RULES) {
        if ((ch === '_' || ch === '@') && wordy) break;
        if (ch === 'h' && wordy) break;
        rule.re.lastIndex = i;
        const m = rule.re.exec(line);
        if (!m) continue;
        const node = rule.make(m);
        if (!node) continue;
        flush();
        out.push(node);
        i += m[0].length;
        continue outer;
      }
    }
    text += ch;
    i++;
  }
  flush();
  return out;
}

/** Plain text of a message for previews: markup and tokens stripped, whitespace collapsed. */
export function toPlainText(src: string): string {
  const walk = (nodes: MdNode[]): string =>
    nodes
      .map((n) => {
        switch (n.type) {
          case 'text':
          case 'code':
          case 'codeblock':
            return n.text;
          case 'br':
            return ' ';
          case 'mention':
            return `@${n.name}`;
          case 'mention_all':
            return `@${n.word}`;
          case 'quote':
            return ` ${walk(n.children)} `;
          default:
            return walk(n.children);
        }
      })
      .join('');
  return walk(parseMarkdown(src)).replace(/\s+/g, ' ').trim();
}
