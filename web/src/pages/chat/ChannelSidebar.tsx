/** The chat sidebar: channels and direct messages with unread/mention badges and presence dots. */
import { ActionIcon, Badge, Box, Group, NavLink, ScrollArea, Stack, Text, Tooltip } from '@mantine/core';
import { IconHash, IconLock, IconMessagePlus, IconPlus, IconSearch, IconWifiOff } from '@tabler/icons-react';
import { Link } from 'react-router';

import { usePresence, useChannels, type PresenceStatus } from '../../api/chat';
import type { ChannelOut } from '../../api/chatTypes';
import { useCurrent } from '../../auth/useCurrent';
import { useSocket } from '../../chat/SocketProvider';
import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { UserAvatar } from '../../components/UserAvatar';
import { channelTitle, dmPartner, splitSidebar } from '../../lib/chat/channels';
import { toPlainText } from '../../lib/chat/markdown';

const DOT: Record<PresenceStatus, string> = {
  online: 'var(--mantine-color-green-6)',
  away: 'var(--mantine-color-yellow-6)',
  offline: 'var(--mantine-color-gray-5)',
};

function Badges({ c }: { c: ChannelOut }) {
  if (c.unread_count === 0 && c.mention_count === 0) return null;
  return (
    <Group gap={4} wrap="nowrap">
      {c.mention_count > 0 && (
        <Badge
          size="sm"
          color="red"
          circle={c.mention_count < 10}
          data-testid="mention-badge"
          aria-label={`${c.mention_count} mentions`}
        >
          @{c.mention_count}
        </Badge>
      )}
      {c.unread_count > 0 && (
        <Badge
          size="sm"
          variant="filled"
          color="teal"
          data-testid="unread-badge"
          aria-label={`${c.unread_count} unread`}
        >
          {c.unread_count > 99 ? '99+' : c.unread_count}
        </Badge>
      )}
    </Group>
  );
}

function Item({
  c,
  active,
  meId,
  presence,
}: {
  c: ChannelOut;
  active: boolean;
  meId: string;
  presence: Record<string, PresenceStatus> | undefined;
}) {
  const title = channelTitle(c, meId);
  const partner = dmPartner(c, meId);
  const status = partner ? (presence?.[partner] ?? 'offline') : null;
  const preview = c.locked
    ? null
    : c.last_message && !c.last_message.deleted
      ? toPlainText(c.last_message.text) || '📎 Attachment'
      : null;
  const icon =
    c.kind === 'dm' || c.kind === 'group_dm' ? (
      <Box pos="relative">
        <UserAvatar name={title} url={c.members_preview.find((m) => m.user_id === partner)?.avatar_url} size={22} />
        {status && (
          <span
            className="chat-presence-dot"
            style={{ background: DOT[status] }}
            data-testid="presence-dot"
            data-status={status}
            aria-label={status}
          />
        )}
      </Box>
    ) : c.kind === 'private' ? (
      <IconLock size={16} />
    ) : (
      <IconHash size={16} />
    );
  return (
    <NavLink
      component={Link}
      to={`/chat/${c.id}`}
      active={active}
      label={
        <Text size="sm" fw={c.unread_count > 0 ? 700 : 400} truncate>
          {title}
        </Text>
      }
      description={
        c.locked ? (
          <Group gap={2} c="dimmed">
            <IconLock size={10} /> <Text size="xs">Locked</Text>
          </Group>
        ) : preview ? (
          <Text size="xs" c="dimmed" truncate data-testid="channel-preview">
            {preview}
          </Text>
        ) : undefined
      }
      leftSection={icon}
      rightSection={<Badges c={c} />}
      data-testid="channel-item"
      data-channel-id={c.id}
      aria-label={title}
      style={{ borderRadius: 'var(--mantine-radius-sm)' }}
    />
  );
}

export function ChannelSidebar({
  activeId,
  onBrowse,
  onNewChannel,
  onNewMessage,
}: {
  activeId: string | null;
  onBrowse: () => void;
  onNewChannel: () => void;
  onNewMessage: () => void;
}) {
  const { user } = useCurrent();
  const channels = useChannels();
  const presence = usePresence();
  const { status } = useSocket();

  const section = (label: string, list: ChannelOut[], empty: string, action: React.ReactNode) => (
    <Stack gap={2}>
      <Group justify="space-between" px={6}>
        <Text size="xs" fw={700} c="dimmed" tt="uppercase">
          {label}
        </Text>
        {action}
      </Group>
      {list.length === 0 ? (
        <Text size="xs" c="dimmed" px={6} py={4}>
          {empty}
        </Text>
      ) : (
        list.map((c) => <Item key={c.id} c={c} active={c.id === activeId} meId={user.id} presence={presence.data} />)
      )}
    </Stack>
  );

  return (
    <Stack
      gap={0}
      h="100%"
      w={280}
      style={{ borderRight: '1px solid var(--mantine-color-default-border)', flexShrink: 0 }}
      data-testid="chat-sidebar"
      component="nav"
      aria-label="Chat channels"
    >
      <Group justify="space-between" px="sm" py="xs" wrap="nowrap">
        <Group gap={6}>
          <Text fw={700}>Team chat</Text>
          {status !== 'connected' && (
            <Tooltip label={status === 'connecting' ? 'Connecting…' : 'Offline: reconnecting'}>
              <IconWifiOff size={14} color="var(--mantine-color-orange-6)" data-testid="socket-offline" />
            </Tooltip>
          )}
        </Group>
        <Group gap={2}>
          <Tooltip label="Browse channels">
            <ActionIcon variant="subtle" color="gray" aria-label="Browse channels" onClick={onBrowse}>
              <IconSearch size={16} />
            </ActionIcon>
          </Tooltip>
          <Tooltip label="New message">
            <ActionIcon variant="subtle" color="gray" aria-label="New message" onClick={onNewMessage}>
              <IconMessagePlus size={16} />
            </ActionIcon>
          </Tooltip>
        </Group>
      </Group>
      <ScrollArea style={{ flex: 1 }} px={6} data-socket-status={status}>
        {channels.isPending ? (
          <LoadingState label="Loading channels…" />
        ) : channels.isError ? (
          <ErrorState error={channels.error} onRetry={() => void channels.refetch()} title="Could not load channels" />
        ) : channels.data.length === 0 ? (
          <EmptyState title="No conversations yet">
            Create a channel, browse public ones, or message a teammate.
          </EmptyState>
        ) : null}
        {channels.isSuccess && (
          <Stack gap="md" pb="md">
            {(() => {
              const { channels: chans, direct } = splitSidebar(channels.data);
              return (
                <>
                  {section(
                    'Channels',
                    chans,
                    'No channels yet.',
                    <Tooltip label="New channel">
                      <ActionIcon
                        size="xs"
                        variant="subtle"
                        color="gray"
                        aria-label="New channel"
                        onClick={onNewChannel}
                      >
                        <IconPlus size={14} />
                      </ActionIcon>
                    </Tooltip>,
                  )}
                  {section(
                    'Direct messages',
                    direct,
                    'No direct messages yet.',
                    <Tooltip label="New message">
                      <ActionIcon
                        size="xs"
                        variant="subtle"
                        color="gray"
                        aria-label="New direct message"
                        onClick={onNewMessage}
                      >
                        <IconPlus size={14} />
                      </ActionIcon>
                    </Tooltip>,
                  )}
                </>
              );
            })()}
          </Stack>
        )}
      </ScrollArea>
    </Stack>
  );
}
