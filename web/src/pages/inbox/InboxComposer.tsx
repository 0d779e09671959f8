/**
 * The inbox composer: Reply / Private note (yellow; @mentions of members), Enter sends
 * (Shift+Enter for a new line), `/shortcut` canned responses with variables filled in, emoji,
 * one attachment per message, interactive buttons, templates, a reply-to quote, throttled
 * `typing` events, and the WhatsApp 24-hour window (closed: only templates and notes).
 * Text and notes show at once with status "queued" (an optimistic copy replaced by the server's);
 * every send carries an `Idempotency-Key`.
 */
import {
  ActionIcon,
  Alert,
  Box,
  Button,
  CloseButton,
  Group,
  Loader,
  Paper,
  SegmentedControl,
  Stack,
  Text,
  Textarea,
  Tooltip,
  UnstyledButton,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import {
  IconAlertTriangle,
  IconClock,
  IconFile,
  IconPaperclip,
  IconSend,
  IconSquareCheck,
  IconTemplate,
} from '@tabler/icons-react';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useMemo, useRef, useState } from 'react';

import { isApiError } from '../../api/problem';
import { applyOwnMessage } from '../../chat/inboxEvents';
import { useSocket } from '../../chat/SocketProvider';
import { UserAvatar } from '../../components/UserAvatar';
import { activeMention, filterMentionables, insertMention } from '../../lib/chat/mentions';
import { TYPING_EMIT_MS, createThrottle } from '../../lib/chat/typing';
import { errorMessage } from '../../lib/forms';
import {
  inboxKeys,
  sendConversationMessage,
  uploadConversationAttachment,
  useCannedResponses,
} from '../../lib/inbox/api';
import { TEMP_PREFIX, removeMessage, settleOptimistic, upsertMessage, type MessagePages } from '../../lib/inbox/cache';
import { activeShortcut, renderCanned, replaceRange } from '../../lib/inbox/canned';
import { noteMentionables, textBody, type ComposeMode } from '../../lib/inbox/compose';
import { windowIndicator } from '../../lib/inbox/window';
import type { AttachmentOut, CannedOut, ConversationOut, MessageOut, SendIn } from '../../lib/inbox/types';
import { EmojiButton } from '../chat/EmojiPicker';
import { ButtonsModal, TemplateModal } from './InboxModals';

const MAX_TEXT = 4096;

interface Member {
  user_id: string;
  name: string;
  avatar_url?: string | null;
}

interface Props {
  conversation: ConversationOut;
  me: { id: string; name: string; avatar_url: string | null };
  members: Member[];
  contactEmail: string | null;
  replyTo: MessageOut | null;
  onClearReply: () => void;
}

/** "Field: message; …" for a refused send. */
function sendError(e: unknown): { title: string; message: string } {
  if (isApiError(e) && e.code === 'window_closed') {
    return {
      title: 'The 24-hour window is closed',
      message: 'Only templates can be sent until the customer writes again.',
    };
  }
  if (isApiError(e) && e.errors.length > 0) {
    return { title: 'Message not sent', message: e.errors.map((x) => `${x.field}: ${x.message}`).join('; ') };
  }
  return { title: 'Message not sent', message: errorMessage(e) };
}

/** The current time, ticking every minute (for the window countdown). */
function useMinuteClock(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 60_000);
    return () => clearInterval(t);
  }, []);
  return now;
}

export function InboxComposer({ conversation, me, members, contactEmail, replyTo, onClearReply }: Props) {
  const qc = useQueryClient();
  const { emit } = useSocket();
  const [mode, setMode] = useState<ComposeMode>('reply');
  const [text, setText] = useState('');
  const [caret, setCaret] = useState(0);
  const [active, setActive] = useState(0);
  const [upload, setUpload] = useState<{
    name: string;
    status: 'uploading' | 'done' | 'error';
    attachment?: AttachmentOut;
    error?: string;
  } | null>(null);
  const [sending, setSending] = useState(false);
  const [modal, setModal] = useState<'buttons' | 'template' | null>(null);
  const area = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const throttle = useMemo(() => createThrottle(TYPING_EMIT_MS), []);
  const now = useMinuteClock();
  const id = conversation.id;
  const win = windowIndicator(conversation, now);
  const windowClosed = win !== null && !win.open;
  const note = mode === 'note';
  const locked = windowClosed && !note;

  // `/shortcut` in either mode, `@mention` in notes.
  const shortcut = activeShortcut(text, caret);
  const canned = useCannedResponses(shortcut?.query ?? '', !!shortcut);
  const cannedHits = shortcut ? (canned.data ?? []).slice(0, 8) : [];
  const mention = note && !shortcut ? activeMention(text, caret) : null;
  const mentionHits = useMemo(
    () => (mention ? filterMentionables(noteMentionables(members, me.id), mention.query, 6) : []),
    [mention?.query, mention?.start, members, me.id],
  );
  const suggestions: ({ kind: 'canned'; c: CannedOut } | { kind: 'member'; m: Member })[] = shortcut
    ? cannedHits.map((c) => ({ kind: 'canned' as const, c }))
    : mentionHits.map((m) => ({ kind: 'member' as const, m }));
  const showSuggestions = suggestions.length > 0;
  useEffect(() => setActive(0), [shortcut?.query, mention?.query]);

  const setTextAndCaret = (r: { text: string; caret: number }) => {
    setText(r.text);
    setCaret(r.caret);
    requestAnimationFrame(() => {
      area.current?.focus();
      area.current?.setSelectionRange(r.caret, r.caret);
    });
  };

  const pick = (s: (typeof suggestions)[number]) => {
    if (s.kind === 'member' && mention) {
      setTextAndCaret(insertMention(text, mention.start, caret, s.m));
      return;
    }
    if (s.kind === 'canned' && shortcut) {
      const r = renderCanned(s.c.body, {
        contact: { name: conversation.contact.name, phone: conversation.contact.phone, email: contactEmail },
        agent: { name: me.name },
        conversation: { id },
      });
      setTextAndCaret(replaceRange(text, shortcut.start, caret, r.text));
      if (r.missing.length > 0) {
        notifications.show({
          color: 'yellow',
          title: 'Some variables have no value',
          message: `Left empty: ${r.missing.join(', ')}`,
        });
      }
    }
  };

  const insertAtCaret = (s: string) => {
    const el = area.current;
    const at = el ? el.selectionStart : text.length;
    setTextAndCaret({ text: text.slice(0, at) + s + text.slice(at), caret: at + s.length });
  };

  /** Sends `body`; text and notes appear at once. Resolves to whether the server took it. */
  const send = async (body: SendIn): Promise<boolean> => {
    const key = crypto.randomUUID();
    const optimistic = body.type === 'text' || body.type === 'note';
    const temp: MessageOut | null = optimistic
      ? {
          id: `${TEMP_PREFIX}${key}`,
          conversation_id: id,
          direction: 'outbound',
          kind: body.type,
          text: body.text,
          content: null,
          media: null,
          // Only a reply that quotes shows the quote (not a note, nor a template's text).
          reply_to:
            replyTo && body.type === 'text' && body.reply_to_id === replyTo.id
              ? { id: replyTo.id, direction: replyTo.direction, preview: replyTo.text ?? replyTo.kind }
              : null,
          reactions: [],
          status: body.type === 'note' ? 'note' : 'queued',
          error: null,
          author: me,
          private: body.type === 'note',
          created_at: new Date().toISOString(),
          sent_at: null,
          delivered_at: null,
          read_at: null,
          edited: false,
        }
      : null;
    const cacheKey = inboxKeys.messages(id);
    if (temp) qc.setQueryData<MessagePages>(cacheKey, (d) => upsertMessage(d, temp));
    setSending(true);
    try {
      const real = await sendConversationMessage(id, body, key);
      if (temp) qc.setQueryData<MessagePages>(cacheKey, (d) => settleOptimistic(d, temp.id, real));
      applyOwnMessage(qc, real, me.id);
      return true;
    } catch (e) {
      if (temp) qc.setQueryData<MessagePages>(cacheKey, (d) => removeMessage(d, temp.id));
      if (isApiError(e) && e.code === 'window_closed')
        void qc.invalidateQueries({ queryKey: inboxKeys.conversation(id) });
      notifications.show({ color: 'red', ...sendError(e) });
      return false;
    } finally {
      setSending(false);
    }
  };

  const submit = async () => {
    if (sending) return;
    const trimmed = text.trim();
    if (upload?.status === 'uploading') {
      notifications.show({ message: 'Wait for the upload to finish' });
      return;
    }
    const attachment = upload?.status === 'done' ? upload.attachment : undefined;
    if (!trimmed && !attachment) return;
    if (locked) return;
    if (trimmed.length > MAX_TEXT) {
      notifications.show({ color: 'red', message: `Messages are limited to ${MAX_TEXT} characters` });
      return;
    }
    const body: SendIn =
      attachment && !note
        ? {
            type: 'media',
            attachment_id: attachment.id,
            ...(trimmed ? { caption: trimmed } : {}),
            ...(replyTo ? { reply_to_id: replyTo.id } : {}),
          }
        : textBody(mode, trimmed, replyTo?.id);
    // Cleared at once (the message shows optimistically); put back if the send is refused.
    setText('');
    setCaret(0);
    throttle.reset();
    const ok = await send(body);
    if (ok) {
      if (body.type === 'media') setUpload(null);
      onClearReply();
    } else {
      setText((t) => t || trimmed);
    }
  };

  const pickFile = async (file: File | undefined) => {
    if (!file) return;
    setUpload({ name: file.name, status: 'uploading' });
    try {
      const attachment = await uploadConversationAttachment(id, file);
      setUpload({ name: file.name, status: 'done', attachment });
    } catch (e) {
      const detail = isApiError(e) && e.errors.length > 0 ? e.errors.map((x) => x.message).join('; ') : errorMessage(e);
      setUpload({ name: file.name, status: 'error', error: detail });
    }
  };

  return (
    <Stack gap={4} p="xs" className="inbox-composer" data-mode={mode} data-testid="inbox-composer">
      {win && (
        <Group gap={6} data-testid="window-indicator" data-open={win.open}>
          {win.open ? (
            <Text size="xs" c={win.closingSoon ? 'orange' : 'dimmed'}>
              <IconClock size={12} style={{ verticalAlign: 'middle' }} /> {win.text}
            </Text>
          ) : (
            <Alert color="orange" variant="light" p={6} w="100%" icon={<IconAlertTriangle size={16} />} role="status">
              <Text size="xs">{win.text}</Text>
            </Alert>
          )}
        </Group>
      )}
      {replyTo && (
        <Paper withBorder px="xs" py={4} data-testid="reply-bar">
          <Group justify="space-between" wrap="nowrap">
            <Box style={{ minWidth: 0 }}>
              <Text size="xs" fw={600}>
                Replying to {replyTo.direction === 'inbound' ? conversation.contact.name : 'your message'}
              </Text>
              <Text size="xs" c="dimmed" truncate>
                {replyTo.text || replyTo.kind}
              </Text>
            </Box>
            <CloseButton size="sm" aria-label="Cancel reply" onClick={onClearReply} />
          </Group>
        </Paper>
      )}
      {upload && (
        <Paper withBorder p={4} w="fit-content" data-testid="pending-attachment" data-status={upload.status}>
          <Group gap={6} wrap="nowrap">
            <IconFile size={18} />
            <Stack gap={0} maw={220}>
              <Text size="xs" truncate>
                {upload.name}
              </Text>
              <Text size="xs" c={upload.status === 'error' ? 'red' : 'dimmed'} truncate title={upload.error}>
                {upload.status === 'uploading'
                  ? 'Uploading…'
                  : upload.status === 'error'
                    ? upload.error
                    : 'Ready to send'}
              </Text>
            </Stack>
            {upload.status === 'uploading' ? (
              <Loader size="xs" />
            ) : (
              <CloseButton size="xs" aria-label={`Remove ${upload.name}`} onClick={() => setUpload(null)} />
            )}
          </Group>
        </Paper>
      )}
      <Box pos="relative">
        {showSuggestions && (
          <Paper
            withBorder
            shadow="md"
            pos="absolute"
            bottom="100%"
            left={0}
            mb={4}
            w={360}
            p={4}
            style={{ zIndex: 10 }}
            role="listbox"
            aria-label={shortcut ? 'Canned responses' : 'Mention suggestions'}
          >
            {suggestions.map((s, i) => (
              <UnstyledButton
                key={s.kind === 'canned' ? s.c.id : s.m.user_id}
                role="option"
                aria-selected={i === active}
                onMouseDown={(e) => {
                  e.preventDefault();
                  pick(s);
                }}
                w="100%"
                p={4}
                style={{ borderRadius: 4, background: i === active ? 'var(--mantine-color-default-hover)' : undefined }}
              >
                {s.kind === 'canned' ? (
                  <Box>
                    <Text size="sm">
                      <Text span ff="monospace" fw={600}>
                        /{s.c.shortcut}
                      </Text>{' '}
                      {s.c.title}
                    </Text>
                    <Text size="xs" c="dimmed" truncate>
                      {s.c.body}
                    </Text>
                  </Box>
                ) : (
                  <Group gap="xs" wrap="nowrap">
                    <UserAvatar name={s.m.name} url={s.m.avatar_url} size={20} />
                    <Text size="sm">{s.m.name}</Text>
                  </Group>
                )}
              </UnstyledButton>
            ))}
          </Paper>
        )}
        <Group justify="space-between" mb={4} wrap="nowrap">
          <SegmentedControl
            size="xs"
            value={mode}
            onChange={(v) => setMode(v as ComposeMode)}
            data={[
              { value: 'reply', label: 'Reply' },
              { value: 'note', label: 'Private note' },
            ]}
            aria-label="Message type"
            color={note ? 'yellow' : 'teal'}
          />
          <Group gap={4} wrap="nowrap">
            <Tooltip label={windowClosed ? 'The window is closed: send a template' : 'Send a template'}>
              <Button
                size="compact-xs"
                variant={windowClosed ? 'filled' : 'subtle'}
                color={windowClosed ? 'orange' : 'gray'}
                leftSection={<IconTemplate size={14} />}
                onClick={() => setModal('template')}
                disabled={note}
                data-highlight={windowClosed}
              >
                Templates
              </Button>
            </Tooltip>
            <Tooltip label="Message with buttons">
              <ActionIcon
                variant="subtle"
                color="gray"
                aria-label="Message with buttons"
                onClick={() => setModal('buttons')}
                disabled={note || locked}
              >
                <IconSquareCheck size={18} />
              </ActionIcon>
            </Tooltip>
          </Group>
        </Group>
        <Group gap={4} align="flex-end" wrap="nowrap">
          <Textarea
            ref={area}
            style={{ flex: 1 }}
            autosize
            minRows={2}
            maxRows={10}
            disabled={locked}
            placeholder={
              locked
                ? 'The 24-hour window is closed — only templates can be sent'
                : note
                  ? 'Private note: only your team sees it. @ to mention, / for canned responses'
                  : 'Reply… (/ for canned responses, Shift+Enter for a new line)'
            }
            aria-label={note ? 'Private note' : 'Reply'}
            value={text}
            maxLength={MAX_TEXT + 100}
            onChange={(e) => {
              setText(e.currentTarget.value);
              setCaret(e.currentTarget.selectionStart);
              if (e.currentTarget.value && throttle.tryFire(Date.now())) emit('typing', { room: `conversation:${id}` });
            }}
            onSelect={(e) => setCaret(e.currentTarget.selectionStart)}
            onKeyDown={(e) => {
              if (showSuggestions) {
                if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
                  e.preventDefault();
                  setActive((a) => (a + (e.key === 'ArrowDown' ? 1 : suggestions.length - 1)) % suggestions.length);
                  return;
                }
                if (e.key === 'Enter' || e.key === 'Tab') {
                  e.preventDefault();
                  pick(suggestions[active]!);
                  return;
                }
              }
              if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
                e.preventDefault();
                void submit();
              }
              if (e.key === 'Escape' && replyTo) onClearReply();
            }}
          />
          <input
            ref={fileInput}
            type="file"
            hidden
            data-testid="inbox-file-input"
            onChange={(e) => {
              void pickFile(e.currentTarget.files?.[0]);
              e.currentTarget.value = '';
            }}
          />
          <Tooltip label="Attach a file">
            <ActionIcon
              variant="subtle"
              color="gray"
              aria-label="Attach a file"
              onClick={() => fileInput.current?.click()}
              disabled={note || locked}
            >
              <IconPaperclip size={18} />
            </ActionIcon>
          </Tooltip>
          <EmojiButton onPick={insertAtCaret} />
          <ActionIcon
            aria-label={note ? 'Add note' : 'Send'}
            onClick={() => void submit()}
            loading={sending}
            size="lg"
            color={note ? 'yellow' : 'teal'}
            disabled={locked}
          >
            <IconSend size={16} />
          </ActionIcon>
        </Group>
      </Box>
      <ButtonsModal opened={modal === 'buttons'} onClose={() => setModal(null)} onSend={send} />
      <TemplateModal
        opened={modal === 'template'}
        onClose={() => setModal(null)}
        onSend={send}
        conversation={conversation}
      />
    </Stack>
  );
}
