/**
 * A conversation's messages, oldest → newest, virtualised like the team chat history: only the
 * rows on screen are in the DOM. Scrolling near the top loads the previous page and keeps the
 * view where it was; new messages keep the list pinned to the bottom when the reader was there.
 */
import { Button, Center, Group, Text } from '@mantine/core';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef } from 'react';

import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { useConversationMessages } from '../../lib/inbox/api';
import { allMessages } from '../../lib/inbox/cache';
import type { MessageOut } from '../../lib/inbox/types';
import { MessageBubble } from './MessageBubble';

function dayLabel(iso: string): string {
  const d = new Date(iso);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return d.toLocaleDateString(undefined, { weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' });
}

interface Props {
  conversationId: string;
  meId: string;
  contactName: string;
  onReply: (m: MessageOut) => void;
  onReact: (m: MessageOut, emoji: string) => void;
}

export function MessageThread({ conversationId, meId, contactName, onReply, onReact }: Props) {
  const q = useConversationMessages(conversationId);
  // Reactions show on the message they react to, not as messages of their own.
  const items = useMemo(() => allMessages(q.data).filter((m) => m.kind !== 'reaction'), [q.data]);
  const scrollRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const first = useRef<{ id: string | undefined; total: number }>({ id: undefined, total: 0 });
  const initialScrollDone = useRef(false);

  const virtualizer = useVirtualizer({
    count: items.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => 72,
    overscan: 10,
    getItemKey: (i) => items[i]?.id ?? i,
  });

  const toEnd = useCallback(() => {
    if (items.length === 0) return;
    virtualizer.scrollToIndex(items.length - 1, { align: 'end' });
    // Sizes are measured after the first paint; go to the end again once they are.
    requestAnimationFrame(() => virtualizer.scrollToIndex(items.length - 1, { align: 'end' }));
  }, [items.length, virtualizer]);

  useLayoutEffect(() => {
    if (initialScrollDone.current || items.length === 0) return;
    initialScrollDone.current = true;
    toEnd();
  }, [items, toEnd]);

  // Older messages were prepended: keep the same messages under the reader's eyes.
  useLayoutEffect(() => {
    const prev = first.current;
    const el = scrollRef.current;
    const total = virtualizer.getTotalSize();
    if (el && prev.id && items[0]?.id !== prev.id && items.findIndex((m) => m.id === prev.id) > 0) {
      el.scrollTop += total - prev.total;
    }
    first.current = { id: items[0]?.id, total };
  }, [items, virtualizer]);

  // A new message at the end: follow it when the reader was at the bottom, or when it is ours.
  const last = items[items.length - 1];
  const lastId = last?.id;
  useEffect(() => {
    if (!last || !initialScrollDone.current) return;
    const ours = last.direction === 'outbound' && (!last.author || last.author.id === meId);
    if (atBottom.current || ours) toEnd();
  }, [lastId]);

  const onScroll = useCallback(() => {
    const el = scrollRef.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    if (el.scrollTop < 300 && q.hasPreviousPage && !q.isFetchingPreviousPage) void q.fetchPreviousPage();
  }, [q]);

  if (q.isPending) return <LoadingState label="Loading messages…" />;
  if (q.isError) return <ErrorState error={q.error} onRetry={() => void q.refetch()} title="Could not load messages" />;
  if (items.length === 0) return <EmptyState title="No messages yet" />;

  return (
    <div style={{ position: 'relative', flex: 1, minHeight: 0 }}>
      <div
        ref={scrollRef}
        onScroll={onScroll}
        style={{ height: '100%', overflowY: 'auto', contain: 'strict' }}
        data-testid="thread"
        aria-label="Messages"
        role="log"
      >
        {q.hasPreviousPage ? (
          <Center py={6}>
            <Button
              size="compact-xs"
              variant="subtle"
              onClick={() => void q.fetchPreviousPage()}
              loading={q.isFetchingPreviousPage}
            >
              Load older messages
            </Button>
          </Center>
        ) : (
          <Text size="xs" c="dimmed" ta="center" py="sm" data-testid="history-start">
            This is the beginning of the conversation.
          </Text>
        )}
        <div style={{ height: virtualizer.getTotalSize(), position: 'relative', width: '100%' }}>
          {virtualizer.getVirtualItems().map((v) => {
            const m = items[v.index]!;
            const prev = items[v.index - 1];
            const newDay = !prev || new Date(prev.created_at).toDateString() !== new Date(m.created_at).toDateString();
            return (
              <div
                key={v.key}
                data-index={v.index}
                ref={virtualizer.measureElement}
                style={{ position: 'absolute', top: 0, left: 0, width: '100%', transform: `translateY(${v.start}px)` }}
              >
                {newDay && (
                  <Group justify="center" py={6}>
                    <Text size="xs" c="dimmed" fw={600}>
                      {dayLabel(m.created_at)}
                    </Text>
                  </Group>
                )}
                <MessageBubble m={m} meId={meId} contactName={contactName} onReply={onReply} onReact={onReact} />
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
