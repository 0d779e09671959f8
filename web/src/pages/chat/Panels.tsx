/** The right-hand panels of the chat: a thread, the pinned messages, message search. */
import {
  ActionIcon,
  Anchor,
  Box,
  CloseButton,
  Group,
  Paper,
  ScrollArea,
  SegmentedControl,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { IconArrowRight, IconSearch } from '@tabler/icons-react';
import { useEffect, useRef, type ReactNode } from 'react';

import { useChannelMembers, usePins, useSearchMessages, useThread, useChannels } from '../../api/chat';
import type { ChannelOut, MessageOut } from '../../api/chatTypes';
import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { UserAvatar } from '../../components/UserAvatar';
import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { channelTitle } from '../../lib/chat/channels';
import { toPlainText } from '../../lib/chat/markdown';
import { formatDateTime } from '../../lib/format';
import { Composer } from './Composer';
import { MessageItem, type MessageActions } from './MessageItem';
import { useState } from 'react';

export function PanelFrame({
  title,
  onClose,
  children,
  testId,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  testId: string;
}) {
  return (
    <Stack
      gap={0}
      h="100%"
      w={380}
      style={{ borderLeft: '1px solid var(--mantine-color-default-border)', flexShrink: 0, minHeight: 0 }}
      data-testid={testId}
      role="complementary"
      aria-label={title}
    >
      <Group
        justify="space-between"
        px="md"
        py="xs"
        style={{ borderBottom: '1px solid var(--mantine-color-default-border)' }}
      >
        <Title order={5}>{title}</Title>
        <CloseButton aria-label={`Close ${title.toLowerCase()}`} onClick={onClose} />
      </Group>
      {children}
    </Stack>
  );
}

export function ThreadPanel({
  channel,
  parentId,
  onClose,
  onForward,
}: {
  channel: ChannelOut;
  parentId: string;
  onClose: () => void;
  onForward: (m: MessageOut) => void;
}) {
  const { user, role } = useCurrent();
  const thread = useThread(parentId, channel.id);
  const members = useChannelMembers(channel.id, channel.joined || channel.kind === 'public');
  const bottom = useRef<HTMLDivElement>(null);
  const count = thread.data?.items.length ?? 0;
  useEffect(() => {
    bottom.current?.scrollIntoView({ block: 'end' });
  }, [count]);
  const canModerate = channel.my_role === 'admin' || atLeast(role, 'admin');
  const mentionables = (members.data ?? channel.members_preview).map((m) => ({
    user_id: m.user_id,
    name: m.name,
    avatar_url: m.avatar_url,
  }));
  return (
    <PanelFrame title="Thread" onClose={onClose} testId="thread-panel">
      {thread.isPending ? (
        <LoadingState label="Loading thread…" />
      ) : thread.isError ? (
        <Box p="sm">
          <ErrorState error={thread.error} onRetry={() => void thread.refetch()} title="Could not load the thread" />
        </Box>
      ) : (
        <>
          <ScrollArea style={{ flex: 1 }} type="auto">
            <Stack gap={0} py="xs">
              <MessageItem
                m={thread.data.parent}
                channel={channel}
                meId={user.id}
                canModerate={canModerate}
                inThread
                onForward={onForward}
              />
              <Group px="md" py={4} gap="xs">
                <Text size="xs" c="dimmed" data-testid="thread-reply-count">
                  {thread.data.parent.reply_count} {thread.data.parent.reply_count === 1 ? 'reply' : 'replies'}
                </Text>
                <Box style={{ flex: 1, borderTop: '1px solid var(--mantine-color-default-border)' }} />
              </Group>
              {thread.data.items.length === 0 ? (
                <Text size="sm" c="dimmed" ta="center" py="md" data-testid="empty-state">
                  No replies yet. Start the thread below.
                </Text>
              ) : (
                thread.data.items.map((m) => (
                  <MessageItem
                    key={m.id}
                    m={m}
                    channel={channel}
                    meId={user.id}
                    canModerate={canModerate}
                    inThread
                    onForward={onForward}
                  />
                ))
              )}
              <div ref={bottom} />
            </Stack>
          </ScrollArea>
          {channel.joined && !channel.archived && !thread.data.parent.deleted && (
            <Box p="sm">
              <Composer
                channel={channel}
                meId={user.id}
                members={mentionables}
                threadId={parentId}
                placeholder="Reply…"
              />
            </Box>
          )}
        </>
      )}
    </PanelFrame>
  );
}

function MessageHit({
  m,
  channelName,
  onJump,
}: {
  m: MessageOut;
  channelName?: string;
  onJump: (m: MessageOut) => void;
}) {
  return (
    <Paper withBorder p="xs" data-testid="message-hit">
      <Group gap="xs" wrap="nowrap" align="flex-start">
        <UserAvatar name={m.author.name} url={m.author.avatar_url} size={24} />
        <Stack gap={2} style={{ flex: 1, minWidth: 0 }}>
          <Group gap={6} wrap="nowrap">
            <Text size="xs" fw={600}>
              {m.author.name}
            </Text>
            {channelName && (
              <Text size="xs" c="dimmed" truncate>
                in {channelName}
              </Text>
            )}
            <Text size="xs" c="dimmed">
              {formatDateTime(m.created_at)}
            </Text>
          </Group>
          <Text size="sm" lineClamp={3}>
            {m.deleted
              ? 'message deleted'
              : toPlainText(m.text) ||
                (m.attachments.length ? `📎 ${m.attachments.map((a) => a.name).join(', ')}` : '')}
          </Text>
        </Stack>
        <ActionIcon variant="subtle" aria-label="Jump to message" onClick={() => onJump(m)}>
          <IconArrowRight size={16} />
        </ActionIcon>
      </Group>
    </Paper>
  );
}

export function PinsPanel({
  channel,
  onClose,
  onJump,
}: {
  channel: ChannelOut;
  onClose: () => void;
  onJump: (m: MessageOut) => void;
}) {
  const pins = usePins(channel.id);
  return (
    <PanelFrame title="Pinned messages" onClose={onClose} testId="pins-panel">
      <ScrollArea style={{ flex: 1 }} p="sm">
        {pins.isPending ? (
          <LoadingState label="Loading pins…" />
        ) : pins.isError ? (
          <ErrorState error={pins.error} onRetry={() => void pins.refetch()} title="Could not load pins" />
        ) : pins.data.length === 0 ? (
          <EmptyState title="No pinned messages">Pin important messages from their menu to find them here.</EmptyState>
        ) : (
          <Stack gap="xs">
            {pins.data.map((m) => (
              <MessageHit key={m.id} m={m} onJump={onJump} />
            ))}
          </Stack>
        )}
      </ScrollArea>
    </PanelFrame>
  );
}

export function SearchPanel({
  channel,
  onClose,
  onJump,
}: {
  channel: ChannelOut;
  onClose: () => void;
  onJump: (m: MessageOut) => void;
}) {
  const { user } = useCurrent();
  const [q, setQ] = useState('');
  const [scope, setScope] = useState<'channel' | 'all'>('channel');
  const [debounced] = useDebouncedValue(q, 250);
  const results = useSearchMessages(debounced, scope === 'channel' ? channel.id : null);
  const channels = useChannels();
  const nameOf = (id: string) => {
    const c = channels.data?.find((x) => x.id === id);
    return c ? channelTitle(c, user.id) : undefined;
  };
  return (
    <PanelFrame title="Search" onClose={onClose} testId="search-panel">
      <Stack gap="xs" p="sm">
        <TextInput
          leftSection={<IconSearch size={16} />}
          placeholder="Search messages"
          aria-label="Search messages"
          value={q}
          onChange={(e) => setQ(e.currentTarget.value)}
          autoFocus
        />
        <SegmentedControl
          size="xs"
          value={scope}
          onChange={(v) => setScope(v as 'channel' | 'all')}
          data={[
            { value: 'channel', label: 'This conversation' },
            { value: 'all', label: 'All channels' },
          ]}
        />
      </Stack>
      <ScrollArea style={{ flex: 1 }} px="sm">
        {!debounced.trim() ? (
          <EmptyState title="Search messages">Words from messages you can see; jump to any result.</EmptyState>
        ) : results.isPending ? (
          <LoadingState label="Searching…" />
        ) : results.isError ? (
          <ErrorState error={results.error} onRetry={() => void results.refetch()} title="Search failed" />
        ) : results.data.length === 0 ? (
          <EmptyState title="No messages match">
            Try other words{scope === 'channel' ? ' or search all channels' : ''}.
          </EmptyState>
        ) : (
          <Stack gap="xs" pb="sm">
            <Text size="xs" c="dimmed">
              {results.data.length} result{results.data.length === 1 ? '' : 's'}
            </Text>
            {results.data.map((m) => (
              <MessageHit
                key={m.id}
                m={m}
                channelName={scope === 'all' ? nameOf(m.channel_id) : undefined}
                onJump={onJump}
              />
            ))}
          </Stack>
        )}
      </ScrollArea>
      <Anchor size="xs" px="sm" pb="xs" c="dimmed" component="span">
        Locked chats are searched only while unlocked.
      </Anchor>
    </PanelFrame>
  );
}

export type { MessageActions };
