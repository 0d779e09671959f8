/**
 * The channel history, virtualised (@tanstack/react-virtual): only the rows on screen are in the
 * DOM. Scrolling near the top loads the previous page and keeps the view where it was; near the
 * bottom (after a jump into the past) loads the next one. New messages keep the list pinned to
 * the bottom when the reader was there. `around` jumps to a message and highlights it.
 */
import { Button, Center, Group, Loader, Text } from '@mantine/core';
import { IconArrowDown } from '@tabler/icons-react';
import { useVirtualizer } from '@tanstack/react-virtual';
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'react';

import { useMessages } from '../../api/chat';
import type { ChannelOut, MessageOut } from '../../api/chatTypes';
import { isApiError } from '../../api/problem';
import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { MessageItem, type MessageActions } from './MessageItem';

const GROUP_MS = 5 * 60_000;

function dayLabel(iso: string): string {
  const d = new Date(iso);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return d.toLocaleDateString(undefined, { weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' });
}

interface Props extends MessageActions {
  channel: ChannelOut;
  meId: string;
  canModerate: boolean;
  around: string | null;
  onJumpToLatest: () => void;
  onLocked: () => void;
  /** Called with the newest message on screen when the reader is at the live end. */
  onSeenLatest: (m: MessageOut) => void;
}

export function MessageList({
  channel,
  meId,
  canModerate,
  around,
  onJumpToLatest,
  onLocked,
  onSeenLatest,
  ...actions
}: Props) {
  const q = useMessages(channel.id, around);
  const items = useMemo(() => q.data?.pages.flatMap((p) => p.items) ?? [], [q.data]);
  const scrollRef = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const [showLatest, setShowLatest] = useState(false);
  const [highlight, setHighlight] = useState<string | null>(around);
  const first = useRef<{ id: string | undefined; count: number; total: number }>({ id: undefined, count: 0, total: 0 });
  const initialScrollDone = useRef(false);

  const virtualizer = useVirtualizer({
    count: items.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => 64,
    overscan: 10,
    getItemKey: (i) => items[i]?.id ?? i,
  });

  const lockedError = isApiError(q.error) && q.error.code === 'chat_locked';
  useEffect(() => {
    if (lockedError) onLocked();
  }, [lockedError, onLocked]);

  useEffect(() => setHighlight(around), [around]);

  // First render of a history: to the bottom, or to the message we jumped to.
  useLayoutEffect(() => {
    if (initialScrollDone.current || items.length === 0) return;
    initialScrollDone.current = true;
    const idx = around ? items.findIndex((m) => m.id === around) : -1;
    if (idx >= 0) {
      virtualizer.scrollToIndex(idx, { align: 'center' });
      atBottom.current = false;
    } else {
      virtualizer.scrollToIndex(items.length - 1, { align: 'end' });
      // Sizes are measured after the first paint; go to the end again once they are.
      requestAnimationFrame(() => virtualizer.scrollToIndex(items.length - 1, { align: 'end' }));
    }
  }, [items, around, virtualizer]);

  useEffect(() => {
    initialScrollDone.current = false;
    first.current = { id: undefined, count: 0, total: 0 };
  }, [channel.id, around]);

  // Older messages were prepended: keep the same messages under the reader's eyes.
  useLayoutEffect(() => {
    const prev = first.current;
    const el = scrollRef.current;
    const total = virtualizer.getTotalSize();
    if (el && prev.id && items.length > prev.count && items[0]?.id !== prev.id) {
      const added = items.findIndex((m) => m.id === prev.id);
      if (added > 0) el.scrollTop += total - prev.total;
    }
    first.current = { id: items[0]?.id, count: items.length, total };
  }, [items, virtualizer]);

  // A new message at the live end (not a page of newer history loaded after a jump): follow it
  // when the reader was at the bottom, or when it is the reader's own, just sent.
  const lastId = items[items.length - 1]?.id;
  const prevEnd = useRef<{ id: string | undefined; live: boolean }>({ id: undefined, live: false });
  useEffect(() => {
    const prev = prevEnd.current;
    prevEnd.current = { id: lastId, live: !q.hasNextPage };
    if (!lastId || !initialScrollDone.current || !prev.id || prev.id === lastId) return;
    const last = items[items.length - 1]!;
    const appendedOne = items[items.length - 2]?.id === prev.id;
    if (!prev.live || !appendedOne) return;
    const ownFresh = last.author.id === meId && Date.now() - Date.parse(last.created_at) < 60_000;
    if (atBottom.current || ownFresh) {
      virtualizer.scrollToIndex(items.length - 1, { align: 'end' });
      requestAnimationFrame(() => virtualizer.scrollToIndex(items.length - 1, { align: 'end' }));
    }
  }, [lastId]);

  const liveEnd = !q.hasNextPage;
  useEffect(() => {
    const last = items[items.length - 1];
    if (last && liveEnd && atBottom.current && document.visibilityState !== 'hidden') onSeenLatest(last);
  }, [lastId, liveEnd, items, onSeenLatest]);

  // Back to a hidden tab: what arrived meanwhile is read now (if the reader is at the end).
  useEffect(() => {
    const onVisible = () => {
      const last = items[items.length - 1];
      if (document.visibilityState === 'visible' && last && liveEnd && atBottom.current) onSeenLatest(last);
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => document.removeEventListener('visibilitychange', onVisible);
  }, [items, liveEnd, onSeenLatest]);

  const onScroll = useCallback(() => {
    const el = scrollRef.current;
    if (!el) return;
    const fromBottom = el.scrollHeight - el.scrollTop - el.clientHeight;
    // "At the bottom" means at the live end; the bottom of a window into the past does not count.
    atBottom.current = fromBottom < 80 && !q.hasNextPage;
    setShowLatest(fromBottom > 600 || q.hasNextPage);
    if (el.scrollTop < 300 && q.hasPreviousPage && !q.isFetchingPreviousPage) void q.fetchPreviousPage();
    if (fromBottom < 300 && q.hasNextPage && !q.isFetchingNextPage) void q.fetchNextPage();
    if (atBottom.current && !q.hasNextPage) {
      const last = items[items.length - 1];
      if (last) onSeenLatest(last);
    }
  }, [q, items, onSeenLatest]);

  if (q.isPending) return <LoadingState label="Loading messages…" />;
  if (q.isError) {
    if (lockedError) return null;
    return <ErrorState error={q.error} onRetry={() => void q.refetch()} title="Could not load messages" />;
  }
  if (items.length === 0) {
    return (
      <EmptyState title="No messages yet">
        {channel.kind === 'dm' || channel.kind === 'group_dm' ? 'Say hello.' : 'Be the first to write in this channel.'}
      </EmptyState>
    );
  }

  const vItems = virtualizer.getVirtualItems();
  return (
    <div style={{ position: 'relative', flex: 1, minHeight: 0 }}>
      <div
        ref={scrollRef}
        onScroll={onScroll}
        style={{ height: '100%', overflowY: 'auto', contain: 'strict' }}
        data-testid="message-list"
      >
        {q.isFetchingPreviousPage && (
          <Center py={4}>
            <Loader size="xs" />
          </Center>
        )}
        {!q.hasPreviousPage && (
          <Text size="xs" c="dimmed" ta="center" py="sm" data-testid="history-start">
            This is the beginning of the conversation.
          </Text>
        )}
        <div style={{ height: virtualizer.getTotalSize(), position: 'relative', width: '100%' }}>
          {vItems.map((v) => {
            const m = items[v.index]!;
            const prev = items[v.index - 1];
            const newDay = !prev || new Date(prev.created_at).toDateString() !== new Date(m.created_at).toDateString();
            const compact =
              !!prev &&
              !newDay &&
              !prev.deleted &&
              prev.author.id === m.author.id &&
              !m.forwarded_from &&
              !m.quote &&
              Date.parse(m.created_at) - Date.parse(prev.created_at) < GROUP_MS;
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
                <MessageItem
                  m={m}
                  channel={channel}
                  meId={meId}
                  canModerate={canModerate}
                  highlight={highlight === m.id}
                  compact={compact}
                  {...actions}
                />
              </div>
            );
          })}
        </div>
        {q.isFetchingNextPage && (
          <Center py={4}>
            <Loader size="xs" />
          </Center>
        )}
      </div>
      {showLatest && (
        <Button
          size="xs"
          radius="xl"
          leftSection={<IconArrowDown size={14} />}
          pos="absolute"
          bottom={12}
          right={16}
          onClick={() => {
            setHighlight(null);
            if (q.hasNextPage || around) onJumpToLatest();
            else virtualizer.scrollToIndex(items.length - 1, { align: 'end' });
          }}
        >
          Jump to latest
        </Button>
      )}
    </div>
  );
}
