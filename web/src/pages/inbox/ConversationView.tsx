/**
 * The open conversation: header (contact, channel, status, assignee, priority, labels, snooze,
 * resolve / reopen), the thread, who is typing, the composer, and the contact panel. Joins
 * `conversation:{id}` while open and marks the conversation read while it is on screen.
 */
import {
  ActionIcon,
  Badge,
  Box,
  Button,
  Group,
  Menu,
  Select,
  Stack,
  TagsInput,
  Text,
  Title,
  Tooltip,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import {
  IconCircleCheck,
  IconFlag,
  IconFlask,
  IconLayoutSidebarRight,
  IconRefresh,
  IconUserCheck,
  IconZzz,
} from '@tabler/icons-react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useCallback, useEffect, useMemo, useState } from 'react';

import { useContact, useMembers } from '../../api/queries';
import { useCurrent } from '../../auth/useCurrent';
import { applyConversation } from '../../chat/inboxEvents';
import { useMarkConversationRead } from '../../chat/InboxSync';
import { useRooms } from '../../chat/SocketProvider';
import { useTypers } from '../../chat/typingStore';
import { setViewingConversation } from '../../chat/viewing';
import { ErrorState, LoadingState } from '../../components/QueryState';
import { typingLine } from '../../lib/chat/typing';
import { errorMessage } from '../../lib/forms';
import { formatDateTime } from '../../lib/format';
import {
  assignConversation,
  inboxKeys,
  patchConversation,
  reopenConversation,
  resolveConversation,
  sendConversationMessage,
  useConversation,
} from '../../lib/inbox/api';
import { patchMessage, type MessagePages } from '../../lib/inbox/cache';
import { reactionToSend, withOwnReaction } from '../../lib/inbox/compose';
import { snoozePresets } from '../../lib/inbox/snooze';
import type { ConversationOut, ConversationStatus, MessageOut, Priority } from '../../lib/inbox/types';
import { ChannelIcon } from './ChannelIcon';
import { ContactPanel } from './ContactPanel';
import { InboxComposer } from './InboxComposer';
import { SnoozeModal } from './InboxModals';
import { MessageThread } from './MessageThread';

const STATUS_COLOR: Record<ConversationStatus, string> = {
  open: 'teal',
  pending: 'yellow',
  snoozed: 'violet',
  resolved: 'gray',
};
const PRIORITIES: Priority[] = ['none', 'low', 'medium', 'high', 'urgent'];
const PRIORITY_COLOR: Record<Priority, string> = {
  none: 'gray',
  low: 'blue',
  medium: 'yellow',
  high: 'orange',
  urgent: 'red',
};
const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

function TypingLine({ id, names, meId }: { id: string; names: Map<string, string>; meId: string }) {
  const typers = useTypers(`conversation:${id}`, meId);
  return (
    <Text size="xs" c="dimmed" h={18} px="sm" data-testid="typing-line" aria-live="polite">
      {typingLine(typers.map((u) => names.get(u) ?? 'Someone'))}
    </Text>
  );
}

export function ConversationView({ id, onSimulate }: { id: string; onSimulate?: () => void }) {
  const { user } = useCurrent();
  const qc = useQueryClient();
  const conv = useConversation(id);
  const members = useMembers();
  const markRead = useMarkConversationRead();
  const [replyTo, setReplyTo] = useState<MessageOut | null>(null);
  const [snoozeOpen, setSnoozeOpen] = useState(false);
  const [panel, setPanel] = useState(true);
  const contact = useContact(conv.data?.contact.id ?? null);

  useRooms([`conversation:${id}`]);

  // On screen: new inbound messages are read at once (InboxSync), and what is unread now too.
  useEffect(() => {
    setViewingConversation(id);
    return () => setViewingConversation(null);
  }, [id]);
  const unread = conv.data?.unread_count ?? 0;
  useEffect(() => {
    const readIfVisible = () => {
      if (document.visibilityState === 'visible') markRead(id);
    };
    if (conv.isSuccess) readIfVisible();
    document.addEventListener('visibilitychange', readIfVisible);
    window.addEventListener('focus', readIfVisible);
    return () => {
      document.removeEventListener('visibilitychange', readIfVisible);
      window.removeEventListener('focus', readIfVisible);
    };
  }, [id, conv.isSuccess, unread > 0]);

  const done = (c: ConversationOut) => {
    qc.setQueryData(inboxKeys.conversation(c.id), (prev: ConversationOut | undefined) => ({
      ...c,
      unread_count: prev?.unread_count ?? c.unread_count,
    }));
    applyConversation(qc, c, user.id);
    void qc.invalidateQueries({ queryKey: inboxKeys.counts });
  };
  const action = useMutation({
    mutationFn: (fn: () => Promise<ConversationOut>) => fn(),
    onSuccess: done,
    onError: (e) =>
      notifications.show({ color: 'red', title: 'Could not update the conversation', message: errorMessage(e) }),
  });

  const memberNames = useMemo(() => new Map((members.data ?? []).map((m) => [m.user_id, m.name])), [members.data]);

  const onReact = useCallback(
    async (m: MessageOut, picked: string) => {
      const emoji = reactionToSend(m, picked, user.id);
      const key = inboxKeys.messages(id);
      const before = m.reactions;
      qc.setQueryData<MessagePages>(key, (d) =>
        patchMessage(d, m.id, (x) => ({ ...x, reactions: withOwnReaction(x.reactions, emoji, user.id) })),
      );
      try {
        await sendConversationMessage(id, { type: 'reaction', reply_to_id: m.id, emoji }, crypto.randomUUID());
      } catch (e) {
        qc.setQueryData<MessagePages>(key, (d) => patchMessage(d, m.id, (x) => ({ ...x, reactions: before })));
        notifications.show({ color: 'red', title: 'Could not react', message: errorMessage(e) });
      }
    },
    [id, qc, user.id],
  );

  if (conv.isPending) return <LoadingState label="Opening…" />;
  if (conv.isError)
    return (
      <Box p="md" style={{ flex: 1 }}>
        <ErrorState error={conv.error} onRetry={() => void conv.refetch()} title="Could not open this conversation" />
      </Box>
    );
  const c = conv.data;
  const resolved = c.status === 'resolved';
  const emailIdentity = contact.data?.identities.find((i) => i.kind === 'email')?.value ?? null;

  return (
    <Box style={{ flex: 1, display: 'flex', minWidth: 0 }}>
      <Stack gap={0} style={{ flex: 1, minWidth: 0 }} data-testid="conversation-view">
        <Stack gap={6} px="md" py="xs" style={{ borderBottom: '1px solid var(--mantine-color-default-border)' }}>
          <Group justify="space-between" wrap="nowrap">
            <Group gap="xs" wrap="nowrap" style={{ minWidth: 0, flex: 1 }}>
              <Title
                order={4}
                style={{ minWidth: 40, whiteSpace: 'nowrap', overflow: 'hidden', textOverflow: 'ellipsis' }}
                data-testid="conversation-title"
              >
                {c.contact.name}
              </Title>
              <Group gap={4} wrap="nowrap" style={{ minWidth: 14, flexShrink: 10 }}>
                <ChannelIcon kind={c.channel.kind} size={14} />
                <Text size="xs" c="dimmed" truncate visibleFrom="xl">
                  {c.channel.name}
                </Text>
              </Group>
              <Badge
                color={STATUS_COLOR[c.status]}
                variant="light"
                style={{ flexShrink: 0, overflow: 'visible' }}
                data-testid="conversation-status"
              >
                {c.status === 'snoozed' && c.snoozed_until
                  ? `Snoozed until ${formatDateTime(c.snoozed_until)}`
                  : cap(c.status)}
              </Badge>
            </Group>
            <Group gap={6} wrap="nowrap" style={{ flexShrink: 0 }}>
              {onSimulate && (
                <Tooltip label="Simulate customer">
                  <ActionIcon variant="light" color="grape" aria-label="Simulate customer" onClick={onSimulate}>
                    <IconFlask size={16} />
                  </ActionIcon>
                </Tooltip>
              )}
              <Menu position="bottom-end" withinPortal>
                <Menu.Target>
                  <Button size="xs" variant="default" leftSection={<IconZzz size={14} />} disabled={resolved}>
                    Snooze
                  </Button>
                </Menu.Target>
                <Menu.Dropdown>
                  {snoozePresets().map((p) => (
                    <Menu.Item
                      key={p.label}
                      onClick={() =>
                        action.mutate(() =>
                          patchConversation(id, { status: 'snoozed', snoozed_until: p.until.toISOString() }),
                        )
                      }
                    >
                      {p.label}
                    </Menu.Item>
                  ))}
                  <Menu.Item onClick={() => setSnoozeOpen(true)}>Custom…</Menu.Item>
                </Menu.Dropdown>
              </Menu>
              {resolved ? (
                <Button
                  size="xs"
                  variant="light"
                  leftSection={<IconRefresh size={14} />}
                  onClick={() => action.mutate(() => reopenConversation(id))}
                  loading={action.isPending}
                >
                  Reopen
                </Button>
              ) : (
                <Button
                  size="xs"
                  color="teal"
                  leftSection={<IconCircleCheck size={14} />}
                  onClick={() => action.mutate(() => resolveConversation(id))}
                  loading={action.isPending}
                >
                  Resolve
                </Button>
              )}
              <Tooltip label={panel ? 'Hide contact' : 'Show contact'}>
                <ActionIcon
                  variant="subtle"
                  color="gray"
                  aria-label={panel ? 'Hide contact' : 'Show contact'}
                  aria-pressed={panel}
                  onClick={() => setPanel((p) => !p)}
                  visibleFrom="lg"
                >
                  <IconLayoutSidebarRight size={18} />
                </ActionIcon>
              </Tooltip>
            </Group>
          </Group>
          <Group gap={6} wrap="nowrap">
            <Select
              size="xs"
              w={190}
              aria-label="Assignee"
              placeholder="Unassigned"
              data={[
                { value: '', label: 'Unassigned' },
                ...(members.data ?? []).map((m) => ({ value: m.user_id, label: m.name })),
              ]}
              value={c.assignee?.id ?? ''}
              allowDeselect={false}
              searchable
              onChange={(v) => action.mutate(() => assignConversation(id, v || null))}
            />
            {c.assignee?.id !== user.id && (
              <Button
                size="xs"
                variant="light"
                leftSection={<IconUserCheck size={14} />}
                onClick={() => action.mutate(() => assignConversation(id, user.id))}
              >
                Assign to me
              </Button>
            )}
            <Menu position="bottom-start" withinPortal>
              <Menu.Target>
                <Button
                  size="xs"
                  variant="light"
                  color={PRIORITY_COLOR[c.priority]}
                  leftSection={<IconFlag size={14} />}
                  aria-label={`Priority: ${c.priority}`}
                >
                  {c.priority === 'none' ? 'Priority' : cap(c.priority)}
                </Button>
              </Menu.Target>
              <Menu.Dropdown>
                {PRIORITIES.map((p) => (
                  <Menu.Item
                    key={p}
                    leftSection={<IconFlag size={14} color={`var(--mantine-color-${PRIORITY_COLOR[p]}-6)`} />}
                    onClick={() => action.mutate(() => patchConversation(id, { priority: p }))}
                  >
                    {p === 'none' ? 'No priority' : cap(p)}
                  </Menu.Item>
                ))}
              </Menu.Dropdown>
            </Menu>
            <TagsInput
              size="xs"
              style={{ flex: 1 }}
              aria-label="Labels"
              placeholder={c.labels.length ? '' : 'Add labels'}
              value={c.labels}
              maxTags={20}
              onChange={(labels) =>
                action.mutate(() => patchConversation(id, { labels: labels.map((l) => l.trim()).filter(Boolean) }))
              }
            />
          </Group>
        </Stack>
        <MessageThread
          conversationId={id}
          meId={user.id}
          contactName={c.contact.name}
          onReply={setReplyTo}
          onReact={(m, e) => void onReact(m, e)}
        />
        <TypingLine id={id} names={memberNames} meId={user.id} />
        <InboxComposer
          conversation={c}
          me={{ id: user.id, name: user.name, avatar_url: user.avatar_url ?? null }}
          members={members.data ?? []}
          contactEmail={emailIdentity}
          replyTo={replyTo}
          onClearReply={() => setReplyTo(null)}
        />
      </Stack>
      {panel && <ContactPanel conversation={c} />}
      <SnoozeModal
        opened={snoozeOpen}
        onClose={() => setSnoozeOpen(false)}
        onSnooze={(d) =>
          action.mutate(() => patchConversation(id, { status: 'snoozed', snoozed_until: d.toISOString() }))
        }
      />
    </Box>
  );
}
