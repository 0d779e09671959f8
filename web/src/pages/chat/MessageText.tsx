/**
 * Message text rendered from the markdown tree as React elements (see lib/chat/markdown): text is
 * always a text node, links only http(s)/mailto. Plain elements with Mantine CSS variables, so it
 * renders the same inside or outside a MantineProvider.
 */
import { Fragment, type CSSProperties, type ReactNode } from 'react';

import { parseMarkdown, type MdNode } from '../../lib/chat/markdown';

const code: CSSProperties = {
  fontFamily: 'var(--mantine-font-family-monospace, monospace)',
  fontSize: '0.85em',
  background: 'var(--mantine-color-default-hover, #f1f3f5)',
  borderRadius: 4,
  padding: '0 4px',
};
const block: CSSProperties = { ...code, display: 'block', whiteSpace: 'pre-wrap', padding: 8, margin: '4px 0' };
const quote: CSSProperties = {
  borderLeft: '3px solid var(--mantine-color-gray-4, #ced4da)',
  paddingLeft: 8,
  margin: '2px 0',
  color: 'var(--mantine-color-dimmed, #868e96)',
};
const mention = (me: boolean): CSSProperties => ({
  background: me ? 'var(--mantine-color-yellow-light, #fff3bf)' : 'var(--mantine-color-teal-light, #e6fcf5)',
  color: me ? 'var(--mantine-color-yellow-light-color, #e67700)' : 'var(--mantine-color-teal-light-color, #099268)',
  borderRadius: 4,
  padding: '0 2px',
  fontWeight: 500,
});

function renderNodes(nodes: MdNode[], meId: string | undefined): ReactNode[] {
  return nodes.map((n, i) => {
    switch (n.type) {
      case 'text':
        return <Fragment key={i}>{n.text}</Fragment>;
      case 'br':
        return <br key={i} />;
      case 'code':
        return (
          <code key={i} style={code}>
            {n.text}
          </code>
        );
      case 'codeblock':
        return (
          <code key={i} style={block}>
            {n.text}
          </code>
        );
      case 'quote':
        return (
          <span key={i} style={{ ...quote, display: 'block' }}>
            {renderNodes(n.children, meId)}
          </span>
        );
      case 'strong':
        return <strong key={i}>{renderNodes(n.children, meId)}</strong>;
      case 'em':
        return <em key={i}>{renderNodes(n.children, meId)}</em>;
      case 'del':
        return <del key={i}>{renderNodes(n.children, meId)}</del>;
      case 'link':
        return (
          <a key={i} href={n.href} target="_blank" rel="noopener noreferrer nofollow">
            {renderNodes(n.children, meId)}
          </a>
        );
      case 'mention': {
        const me = !!meId && n.userId === meId.toLowerCase();
        return (
          <span key={i} style={mention(me)} data-testid="mention" data-user-id={n.userId} data-me={me}>
            @{n.name}
          </span>
        );
      }
      case 'mention_all':
        return (
          <span key={i} style={mention(true)} data-testid="mention" data-me>
            @{n.word}
          </span>
        );
    }
  });
}

export function MessageText({ text, meId }: { text: string; meId?: string }) {
  return (
    <span style={{ whiteSpace: 'pre-wrap', overflowWrap: 'anywhere' }} data-testid="message-text">
      {renderNodes(parseMarkdown(text), meId)}
    </span>
  );
}
