/** The open channel: header with its tools, the history, the typing line and the composer. */
import {
  ActionIcon,
  Badge,
  Box,
  Button,
  Group,
  Paper,
  PasswordInput,
  Stack,
  Text,
  Title,
  Tooltip,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconLock, IconPin, IconSearch, IconSettings, IconUsers } from '@tabler/icons-react';
import { useQueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useRef, useState } from 'react';

import { chatKeys, joinChannel, markRead, unlockChannel, unlockTokenFor, useChannelMembers } from '../../api/chat';
import type { ChannelOut, MessageOut } from '../../api/chatTypes';
import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { useRooms } from '../../chat/SocketProvider';
import { useTypers } from '../../chat/typingStore';
import { setViewingChannel } from '../../chat/viewing';
import { onRead } from '../../lib/chat/cache';
import { DISAPPEARING_LABEL, channelTitle, isDirect } from '../../lib/chat/channels';
import { typingLine } from '../../lib/chat/typing';
import { errorMessage } from '../../lib/forms';
import { Composer } from './Composer';
import { MessageList } from './MessageList';
import type { MessageActions } from './MessageItem';

export type Panel = 'thread' | 'pins' | 'search' | 'settings' | null;

export function UnlockPrompt({ channel, onUnlocked }: { channel: ChannelOut; onUnlocked: () => void }) {
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await unlockChannel(channel.id, password);
      onUnlocked();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Stack align="center" py="xl" gap="sm" data-testid="unlock-prompt">
      <IconLock size={32} />
      <Text fw={600}>This chat is locked</Text>
      <Text size="sm" c="dimmed">
        Enter your password to open it.
      </Text>
      <Box
        component="form"
        w={300}
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <Stack gap="xs">
          <PasswordInput
            label="Your password"
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            error={error}
            autoFocus
          />
          <Button type="submit" loading={busy} disabled={!password}>
            Unlock
          </Button>
        </Stack>
      </Box>
    </Stack>
  );
}

function TypingLine({ channel, names }: { channel: ChannelOut; names: Map<string, string> }) {
  const { user } = useCurrent();
  const typers = useTypers(`chat:${channel.id}`, user.id);
  const line = typingLine(typers.map((id) => names.get(id) ?? 'Someone'));
  return (
    <Text size="xs" c="dimmed" h={18} px="sm" data-testid="typing-line" aria-live="polite">
      {line}
    </Text>
  );
}

interface Props extends MessageActions {
  channel: ChannelOut;
  around: string | null;
  panel: Panel;
  onPanel: (p: Panel) => void;
  onJumpToLatest: () => void;
  quote: MessageOut | null;
  onClearQuote: () => void;
}

export function ChannelView({
  channel,
  around,
  panel,
  onPanel,
  onJumpToLatest,
  quote,
  onClearQuote,
  ...actions
}: Props) {
  const { user, role } = useCurrent();
  const qc = useQueryClient();
  const [unlocked, setUnlocked] = useState(() => !channel.locked || !!unlockTokenFor(channel.id));
  const [joining, setJoining] = useState(false);
  const members = useChannelMembers(channel.id, channel.joined || channel.kind === 'public');
  const lastMarked = useRef<string | null>(channel.last_read_id ?? null);

  useEffect(() => {
    setUnlocked(!channel.locked || !!unlockTokenFor(channel.id));
    lastMarked.current = channel.last_read_id ?? null;
    // Only when switching channels or the lock changes.
  }, [channel.id, channel.locked]);

  // The open channel's room too (a public channel previewed before joining is not in the sidebar).
  useRooms([`chat:${channel.id}`]);

  useEffect(() => {
    setViewingChannel(channel.id);
    return () => setViewingChannel(null);
  }, [channel.id]);

  const onSeenLatest = useCallback(
    (m: MessageOut) => {
      if (!channel.joined) return;
      if (lastMarked.current && lastMarked.current >= m.id) return;
      lastMarked.current = m.id;
      qc.setQueryData<ChannelOut[]>(chatKeys.channels, (list) => (list ? onRead(list, channel.id, m.id) : list));
      void markRead(channel.id, m.id).catch(() => undefined);
    },
    [channel.id, channel.joined, qc],
  );

  const onLocked = useCallback(() => setUnlocked(false), []);

  const names = new Map<string, string>((members.data ?? channel.members_preview).map((m) => [m.user_id, m.name]));
  const mentionables = (members.data ?? channel.members_preview).map((m) => ({
    user_id: m.user_id,
    name: m.name,
    avatar_url: m.avatar_url,
  }));
  const canModerate = channel.my_role === 'admin' || atLeast(role, 'admin');
  const title = channelTitle(channel, user.id);
  const direct = isDirect(channel);

  const join = async () => {
    setJoining(true);
    try {
      await joinChannel(channel.id);
      await Promise.all([
        qc.invalidateQueries({ queryKey: chatKeys.channels }),
        qc.invalidateQueries({ queryKey: chatKeys.channel(channel.id) }),
      ]);
      notifications.show({ message: `Joined #${channel.name ?? ''}` });
    } catch (e) {
      notifications.show({ color: 'red', message: `Could not join: ${errorMessage(e)}` });
    } finally {
      setJoining(false);
    }
  };

  const tool = (p: Exclude<Panel, null | 'thread'>, label: string, icon: React.ReactNode) => (
    <Tooltip label={label}>
      <ActionIcon
        variant={panel === p ? 'light' : 'subtle'}
        color="gray"
        aria-label={label}
        aria-pressed={panel === p}
        onClick={() => onPanel(panel === p ? null : p)}
      >
        {icon}
      </ActionIcon>
    </Tooltip>
  );

  return (
    <Stack gap={0} h="100%" style={{ minWidth: 0, flex: 1 }} data-testid="channel-view">
      <Group
        justify="space-between"
        px="md"
        py="xs"
        wrap="nowrap"
        style={{ borderBottom: '1px solid var(--mantine-color-default-border)' }}
      >
        <Stack gap={0} style={{ minWidth: 0 }}>
          <Group gap={6} wrap="nowrap">
            <Title
              order={4}
              data-testid="channel-title"
              style={{ whiteSpace: 'nowrap', overflow: 'hidden', textOverflow: 'ellipsis' }}
            >
              {direct ? title : `# ${title}`}
            </Title>
            {channel.kind === 'private' && <IconLock size={14} aria-label="Private channel" />}
            {channel.archived && <Badge color="gray">Archived</Badge>}
            {channel.locked && (
              <Badge color="yellow" variant="light" leftSection={<IconLock size={10} />}>
                Locked
              </Badge>
            )}
            {channel.disappearing !== 'off' && (
              <Tooltip label="New messages disappear after this long">
                <Badge variant="light" data-testid="disappearing-badge">
                  ⏳ {DISAPPEARING_LABEL[channel.disappearing]}
                </Badge>
              </Tooltip>
            )}
          </Group>
          {channel.topic && (
            <Text size="xs" c="dimmed" truncate data-testid="channel-topic">
              {channel.topic}
            </Text>
          )}
        </Stack>
        <Group gap={4} wrap="nowrap">
          <Tooltip label={`${channel.member_count} member${channel.member_count === 1 ? '' : 's'}`}>
            <Group gap={2} c="dimmed">
              <IconUsers size={14} />
              <Text size="xs">{channel.member_count}</Text>
            </Group>
          </Tooltip>
          {tool('search', 'Search messages', <IconSearch size={18} />)}
          {tool('pins', 'Pinned messages', <IconPin size={18} />)}
          {tool('settings', 'Channel settings', <IconSettings size={18} />)}
        </Group>
      </Group>

      {!unlocked ? (
        <UnlockPrompt
          channel={channel}
          onUnlocked={() => {
            setUnlocked(true);
            void qc.resetQueries({ queryKey: chatKeys.messagesOf(channel.id) });
          }}
        />
      ) : (
        <>
          <MessageList
            key={`${channel.id}:${around ?? ''}`}
            channel={channel}
            meId={user.id}
            canModerate={canModerate}
            around={around}
            onJumpToLatest={onJumpToLatest}
            onLocked={onLocked}
            onSeenLatest={onSeenLatest}
            {...actions}
          />
          <TypingLine channel={channel} names={names} />
          <Box px="md" pb="md">
            {channel.archived ? (
              <Paper withBorder p="sm" ta="center">
                <Text size="sm" c="dimmed">
                  This channel is archived: it can be read but not written to.
                </Text>
              </Paper>
            ) : !channel.joined ? (
              <Paper withBorder p="sm">
                <Group justify="center" gap="sm">
                  <Text size="sm">You are not a member of #{channel.name}.</Text>
                  <Button size="xs" onClick={() => void join()} loading={joining}>
                    Join channel
                  </Button>
                </Group>
              </Paper>
            ) : (
              <Composer
                channel={channel}
                meId={user.id}
                members={mentionables}
                quote={quote}
                onClearQuote={onClearQuote}
                placeholder={direct ? `Message ${title}` : `Message #${title}`}
              />
            )}
          </Box>
        </>
      )}
    </Stack>
  );
}
