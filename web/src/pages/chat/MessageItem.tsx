/** One message: author, text, quote/forward, attachments, reactions, thread link, actions. */
import {
  ActionIcon,
  Anchor,
  Badge,
  Box,
  Button,
  Group,
  Menu,
  Paper,
  Popover,
  Stack,
  Text,
  Textarea,
  Tooltip,
} from '@mantine/core';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import {
  IconArrowForwardUp,
  IconCheck,
  IconChecks,
  IconDots,
  IconEdit,
  IconMessageCircle,
  IconMoodPlus,
  IconPin,
  IconPinnedOff,
  IconQuote,
  IconTrash,
} from '@tabler/icons-react';
import { useQueryClient } from '@tanstack/react-query';
import { memo, useState } from 'react';

import { chatKeys, deleteMessage, editMessage, setPinned, setReaction } from '../../api/chat';
import type { ChannelOut, MessageOut } from '../../api/chatTypes';
import { UserAvatar } from '../../components/UserAvatar';
import { patchMessage, threadPatch, type Pages } from '../../lib/chat/cache';
import { QUICK_REACTIONS } from '../../lib/chat/emoji';
import { toPlainText } from '../../lib/chat/markdown';
import { errorMessage } from '../../lib/forms';
import { formatDateTime } from '../../lib/format';
import { AttachmentView } from './Attachments';
import { EmojiGrid } from './EmojiPicker';
import { MessageText } from './MessageText';

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export interface MessageActions {
  onReplyInThread?: (m: MessageOut) => void;
  onQuote?: (m: MessageOut) => void;
  onForward?: (m: MessageOut) => void;
}

/** Puts a changed message in every cache that shows it (pages, threads). */
export function useApplyMessage() {
  const qc = useQueryClient();
  return (m: MessageOut, meId: string) => {
    qc.setQueriesData<Pages>({ queryKey: chatKeys.messagesOf(m.channel_id) }, (d) => patchMessage(d, m, meId));
    qc.setQueriesData({ queryKey: ['chat', 'thread'] }, (t: Parameters<typeof threadPatch>[0]) =>
      threadPatch(t, m, meId),
    );
  };
}

function ReactionBar({ m, meId }: { m: MessageOut; meId: string }) {
  const apply = useApplyMessage();
  const [open, setOpen] = useState(false);
  const toggle = async (emoji: string, on: boolean) => {
    try {
      const r = await setReaction(m.id, emoji, on);
      apply({ ...m, reactions: r.reactions }, meId);
    } catch (e) {
      notifications.show({ color: 'red', message: `Could not react: ${errorMessage(e)}` });
    }
  };
  if (m.reactions.length === 0) return null;
  return (
    <Group gap={4} mt={4} data-testid="reactions">
      {m.reactions.map((r) => (
        <Tooltip key={r.emoji} label={`${r.count} reaction${r.count === 1 ? '' : 's'}`}>
          <Button
            size="compact-xs"
            radius="xl"
            variant={r.me ? 'light' : 'default'}
            aria-pressed={r.me}
            aria-label={`${r.emoji} ${r.count}`}
            data-testid="reaction"
            onClick={() => void toggle(r.emoji, !r.me)}
          >
            {r.emoji} {r.count}
          </Button>
        </Tooltip>
      ))}
      <Popover opened={open} onChange={setOpen} withinPortal>
        <Popover.Target>
          <ActionIcon
            size="sm"
            variant="subtle"
            color="gray"
            aria-label="Add another reaction"
            onClick={() => setOpen((o) => !o)}
          >
            <IconMoodPlus size={14} />
          </ActionIcon>
        </Popover.Target>
        <Popover.Dropdown>
          <EmojiGrid
            onPick={(e) => {
              setOpen(false);
              void toggle(e, !m.reactions.some((r) => r.emoji === e && r.me));
            }}
          />
        </Popover.Dropdown>
      </Popover>
    </Group>
  );
}

function Receipts({ m, channel, meId }: { m: MessageOut; channel: ChannelOut; meId: string }) {
  if (m.author.id !== meId || (channel.kind !== 'dm' && channel.kind !== 'group_dm') || m.deleted) return null;
  const readers = m.read_by.filter((id) => id !== meId);
  const all = readers.length >= Math.max(1, channel.member_count - 1);
  const names = readers.map((id) => channel.members_preview.find((p) => p.user_id === id)?.name ?? 'someone');
  return (
    <Tooltip label={readers.length ? `Read by ${names.join(', ')}` : 'Sent'}>
      <Box
        component="span"
        c={readers.length ? 'teal' : 'dimmed'}
        data-testid="receipt"
        data-read={readers.length > 0}
        aria-label={readers.length ? 'Read' : 'Sent'}
        style={{ display: 'inline-flex' }}
      >
        {readers.length ? <IconChecks size={14} color={all ? undefined : 'gray'} /> : <IconCheck size={14} />}
      </Box>
    </Tooltip>
  );
}

interface Props extends MessageActions {
  m: MessageOut;
  channel: ChannelOut;
  meId: string;
  canModerate: boolean;
  highlight?: boolean;
  /** In the thread panel: no "reply in thread" and no reply count. */
  inThread?: boolean;
  /** Same author within a few minutes: no avatar and name. */
  compact?: boolean;
}

export const MessageItem = memo(function MessageItem({
  m,
  channel,
  meId,
  canModerate,
  highlight,
  inThread,
  compact,
  onReplyInThread,
  onQuote,
  onForward,
}: Props) {
  const apply = useApplyMessage();
  const qc = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(m.text);
  const [saving, setSaving] = useState(false);
  const [menuOpen, setMenuOpen] = useState(false);
  const [pickerOpen, setPickerOpen] = useState(false);
  const mine = m.author.id === meId;
  const canWrite = channel.joined && !channel.archived;

  const react = async (emoji: string) => {
    try {
      const on = !m.reactions.some((r) => r.emoji === emoji && r.me);
      const r = await setReaction(m.id, emoji, on);
      apply({ ...m, reactions: r.reactions }, meId);
    } catch (e) {
      notifications.show({ color: 'red', message: `Could not react: ${errorMessage(e)}` });
    }
  };

  const saveEdit = async () => {
    const text = draft.trim();
    if (!text || text === m.text) {
      setEditing(false);
      return;
    }
    setSaving(true);
    try {
      apply(await editMessage(m.id, text), meId);
      setEditing(false);
    } catch (e) {
      notifications.show({ color: 'red', message: `Could not edit: ${errorMessage(e)}` });
    } finally {
      setSaving(false);
    }
  };

  const remove = () =>
    modals.openConfirmModal({
      title: 'Delete message',
      children: <Text size="sm">Everyone will see “message deleted” in its place.</Text>,
      labels: { confirm: 'Delete', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: async () => {
        try {
          await deleteMessage(m.id);
          apply({ ...m, deleted: true, text: '', attachments: [], reactions: [] }, meId);
        } catch (e) {
          notifications.show({ color: 'red', message: `Could not delete: ${errorMessage(e)}` });
        }
      },
    });

  const pin = async (on: boolean) => {
    try {
      await setPinned(m.id, on);
      apply({ ...m, pinned: on }, meId);
      void qc.invalidateQueries({ queryKey: chatKeys.pins(m.channel_id) });
      notifications.show({ message: on ? 'Message pinned' : 'Message unpinned' });
    } catch (e) {
      notifications.show({ color: 'red', message: `Could not ${on ? 'pin' : 'unpin'}: ${errorMessage(e)}` });
    }
  };

  return (
    <div
      className="chat-message"
      data-testid="message"
      data-message-id={m.id}
      data-highlight={highlight ? 'true' : undefined}
      data-deleted={m.deleted || undefined}
    >
      <Group align="flex-start" gap="sm" wrap="nowrap">
        <Box w={36} style={{ flexShrink: 0 }}>
          {!compact && <UserAvatar name={m.author.name} url={m.author.avatar_url} size={36} />}
        </Box>
        <Stack gap={2} style={{ flex: 1, minWidth: 0 }}>
          {!compact && (
            <Group gap={6} wrap="nowrap">
              <Text fw={600} size="sm" data-testid="message-author">
                {m.author.name}
              </Text>
              <Tooltip label={formatDateTime(m.created_at)}>
                <Text size="xs" c="dimmed">
                  {time.format(new Date(m.created_at))}
                </Text>
              </Tooltip>
              {m.pinned && (
                <Badge size="xs" variant="light" leftSection={<IconPin size={10} />} data-testid="pinned-badge">
                  Pinned
                </Badge>
              )}
              {m.expires_at && (
                <Tooltip label={`Disappears ${formatDateTime(m.expires_at)}`}>
                  <Text size="xs" c="dimmed">
                    ⏳
                  </Text>
                </Tooltip>
              )}
            </Group>
          )}
          {compact && m.pinned && (
            <Badge size="xs" variant="light" leftSection={<IconPin size={10} />} data-testid="pinned-badge">
              Pinned
            </Badge>
          )}
          {m.forwarded_from && !m.deleted && (
            <Text size="xs" c="dimmed" fs="italic" data-testid="forwarded">
              <IconArrowForwardUp size={12} style={{ verticalAlign: 'middle' }} /> Forwarded from{' '}
              {m.forwarded_from.author_name}
            </Text>
          )}
          {m.quote && !m.deleted && (
            <Paper
              withBorder
              px="xs"
              py={2}
              style={{ borderLeft: '3px solid var(--mantine-color-teal-5)' }}
              data-testid="quote"
            >
              <Text size="xs" fw={600}>
                {m.quote.author_name}
              </Text>
              <Text size="xs" c="dimmed" lineClamp={2}>
                {m.quote.deleted ? 'message deleted' : toPlainText(m.quote.text)}
              </Text>
            </Paper>
          )}
          {m.deleted ? (
            <Text size="sm" c="dimmed" fs="italic" data-testid="message-deleted">
              message deleted
            </Text>
          ) : editing ? (
            <Stack gap={4}>
              <Textarea
                autosize
                minRows={1}
                maxRows={8}
                value={draft}
                aria-label="Edit message"
                onChange={(e) => setDraft(e.currentTarget.value)}
                onKeyDown={(e) => {
                  if (e.key === 'Enter' && !e.shiftKey) {
                    e.preventDefault();
                    void saveEdit();
                  }
                  if (e.key === 'Escape') setEditing(false);
                }}
                autoFocus
              />
              <Group gap="xs">
                <Button size="compact-xs" onClick={() => void saveEdit()} loading={saving}>
                  Save
                </Button>
                <Button size="compact-xs" variant="default" onClick={() => setEditing(false)}>
                  Cancel
                </Button>
              </Group>
            </Stack>
          ) : (
            <Group gap={6} align="flex-end" wrap="nowrap">
              {m.text && (
                <Text size="sm" component="div" style={{ minWidth: 0 }}>
                  <MessageText text={m.text} meId={meId} />
                </Text>
              )}
              {m.edited_at && (
                <Text size="xs" c="dimmed" data-testid="edited">
                  (edited)
                </Text>
              )}
              <Receipts m={m} channel={channel} meId={meId} />
            </Group>
          )}
          {!m.deleted && m.attachments.length > 0 && (
            <Group gap="xs" mt={2} align="flex-start">
              {m.attachments.map((a) => (
                <AttachmentView key={a.id} a={a} channelId={m.channel_id} />
              ))}
            </Group>
          )}
          {!m.deleted && <ReactionBar m={m} meId={meId} />}
          {!inThread && m.reply_count > 0 && (
            <Anchor
              component="button"
              size="xs"
              onClick={() => onReplyInThread?.(m)}
              data-testid="reply-count"
              ta="left"
            >
              {m.reply_count} {m.reply_count === 1 ? 'reply' : 'replies'}
            </Anchor>
          )}
        </Stack>
      </Group>

      {!m.deleted && !editing && (
        <Paper
          className="chat-message-actions"
          data-open={menuOpen || pickerOpen ? 'true' : undefined}
          withBorder
          shadow="xs"
          p={2}
        >
          <Group gap={0} wrap="nowrap">
            {canWrite &&
              QUICK_REACTIONS.slice(0, 3).map((e) => (
                <ActionIcon
                  key={e}
                  variant="subtle"
                  color="gray"
                  size="sm"
                  aria-label={`React ${e}`}
                  onClick={() => void react(e)}
                >
                  {e}
                </ActionIcon>
              ))}
            {canWrite && (
              <Popover opened={pickerOpen} onChange={setPickerOpen} withinPortal position="bottom-end">
                <Popover.Target>
                  <ActionIcon
                    variant="subtle"
                    color="gray"
                    size="sm"
                    aria-label="Add reaction"
                    onClick={() => setPickerOpen((o) => !o)}
                  >
                    <IconMoodPlus size={14} />
                  </ActionIcon>
                </Popover.Target>
                <Popover.Dropdown>
                  <Group gap={4} mb={6}>
                    {QUICK_REACTIONS.map((e) => (
                      <ActionIcon
                        key={e}
                        variant="subtle"
                        aria-label={`Quick reaction ${e}`}
                        onClick={() => {
                          setPickerOpen(false);
                          void react(e);
                        }}
                      >
                        {e}
                      </ActionIcon>
                    ))}
                  </Group>
                  <EmojiGrid
                    onPick={(e) => {
                      setPickerOpen(false);
                      void react(e);
                    }}
                  />
                </Popover.Dropdown>
              </Popover>
            )}
            {!inThread && canWrite && (
              <Tooltip label="Reply in thread">
                <ActionIcon
                  variant="subtle"
                  color="gray"
                  size="sm"
                  aria-label="Reply in thread"
                  onClick={() => onReplyInThread?.(m)}
                >
                  <IconMessageCircle size={14} />
                </ActionIcon>
              </Tooltip>
            )}
            <Menu opened={menuOpen} onChange={setMenuOpen} withinPortal position="bottom-end">
              <Menu.Target>
                <ActionIcon variant="subtle" color="gray" size="sm" aria-label="More actions">
                  <IconDots size={14} />
                </ActionIcon>
              </Menu.Target>
              <Menu.Dropdown>
                {canWrite && onQuote && (
                  <Menu.Item leftSection={<IconQuote size={14} />} onClick={() => onQuote(m)}>
                    Quote reply
                  </Menu.Item>
                )}
                {onForward && (
                  <Menu.Item leftSection={<IconArrowForwardUp size={14} />} onClick={() => onForward(m)}>
                    Forward
                  </Menu.Item>
                )}
                {canWrite && !m.thread_id && (
                  <Menu.Item
                    leftSection={m.pinned ? <IconPinnedOff size={14} /> : <IconPin size={14} />}
                    onClick={() => void pin(!m.pinned)}
                  >
                    {m.pinned ? 'Unpin' : 'Pin'}
                  </Menu.Item>
                )}
                {mine && (
                  <Menu.Item
                    leftSection={<IconEdit size={14} />}
                    onClick={() => {
                      setDraft(m.text);
                      setEditing(true);
                    }}
                  >
                    Edit
                  </Menu.Item>
                )}
                {(mine || canModerate) && (
                  <Menu.Item color="red" leftSection={<IconTrash size={14} />} onClick={remove}>
                    Delete
                  </Menu.Item>
                )}
              </Menu.Dropdown>
            </Menu>
          </Group>
        </Paper>
      )}
    </div>
  );
});
