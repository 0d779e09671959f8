/**
 * The message composer: Enter sends (Shift+Enter for a new line), @mention autocomplete inserting
 * `@[Name](user:id)` tokens, emoji, attachments uploaded first (their ids go with the message),
 * a view-once toggle, voice messages, quote-reply, and throttled `typing` events.
 */
import {
  ActionIcon,
  Box,
  CloseButton,
  Group,
  Image,
  Loader,
  Paper,
  Stack,
  Menu,
  Text,
  Textarea,
  UnstyledButton,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconEye, IconFile, IconPaperclip, IconSend } from '@tabler/icons-react';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useMemo, useRef, useState } from 'react';

import { chatKeys, sendMessage, uploadAttachment, type SendIn } from '../../api/chat';
import type { AttachmentOut, ChannelOut, MessageOut } from '../../api/chatTypes';
import { isApiError } from '../../api/problem';
import { useSocket } from '../../chat/SocketProvider';
import { UserAvatar } from '../../components/UserAvatar';
import { appendMessage, onMessageCreated, threadAppend, type Pages } from '../../lib/chat/cache';
import { isDirect } from '../../lib/chat/channels';
import { EVERYONE, activeMention, filterMentionables, insertMention, type Mentionable } from '../../lib/chat/mentions';
import { TYPING_EMIT_MS, createThrottle } from '../../lib/chat/typing';
import { toPlainText } from '../../lib/chat/markdown';
import { errorMessage } from '../../lib/forms';
import { EmojiButton } from './EmojiPicker';
import { VoiceRecorder, type Recording } from './VoiceRecorder';

const MAX_TEXT = 8000;
const MAX_FILES = 10;

interface Pending {
  key: string;
  file: File | Blob;
  name: string;
  preview: string | null;
  status: 'uploading' | 'done' | 'error';
  error?: string;
  attachment?: AttachmentOut;
  viewOnce: boolean;
}

export interface ComposerProps {
  channel: ChannelOut;
  meId: string;
  members: (Mentionable & { avatar_url?: string | null })[];
  threadId?: string;
  quote?: MessageOut | null;
  onClearQuote?: () => void;
  onSent?: (m: MessageOut) => void;
  placeholder: string;
}

/** Puts our own new message in the caches right away (the event that follows is deduplicated). */
export function useInsertOwnMessage() {
  const qc = useQueryClient();
  return (m: MessageOut, meId: string) => {
    if (m.thread_id) {
      // The parent's reply count is set by the `message.updated` event the server sends for it.
      qc.setQueryData(chatKeys.thread(m.thread_id), (t: Parameters<typeof threadAppend>[0]) =>
        threadAppend(t, m, meId),
      );
    } else {
      qc.setQueriesData<Pages>({ queryKey: chatKeys.messagesOf(m.channel_id) }, (d) => appendMessage(d, m, meId));
    }
    qc.setQueryData<ChannelOut[]>(chatKeys.channels, (list) =>
      list ? onMessageCreated(list, m, { meId, viewing: m.channel_id }) : list,
    );
  };
}

export function Composer({
  channel,
  meId,
  members,
  threadId,
  quote,
  onClearQuote,
  onSent,
  placeholder,
}: ComposerProps) {
  const [text, setText] = useState('');
  const [caret, setCaret] = useState(0);
  const [files, setFiles] = useState<Pending[]>([]);
  const [viewOnce, setViewOnce] = useState(false);
  const [sending, setSending] = useState(false);
  const [active, setActive] = useState(0);
  const area = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const insertOwn = useInsertOwnMessage();
  const { emit } = useSocket();
  const throttle = useMemo(() => createThrottle(TYPING_EMIT_MS), []);
  const room = `chat:${channel.id}`;

  useEffect(() => () => files.forEach((f) => f.preview && URL.revokeObjectURL(f.preview)), []);

  const mention = activeMention(text, caret);
  const candidates = useMemo(
    () =>
      mention
        ? filterMentionables(
            [
              ...members.filter((m) => m.user_id !== meId),
              ...(isDirect(channel) ? [] : EVERYONE.map((e) => ({ ...e, avatar_url: null }))),
            ],
            mention.query,
            6,
          )
        : [],
    [mention?.query, mention?.start, members, meId],
  );
  const showMentions = !!mention && candidates.length > 0;
  useEffect(() => setActive(0), [mention?.query]);

  const pickMention = (m: Mentionable) => {
    if (!mention) return;
    const r = insertMention(text, mention.start, caret, m);
    setText(r.text);
    setCaret(r.caret);
    requestAnimationFrame(() => {
      area.current?.focus();
      area.current?.setSelectionRange(r.caret, r.caret);
    });
  };

  const insertAtCaret = (s: string) => {
    const el = area.current;
    const at = el ? el.selectionStart : text.length;
    const next = text.slice(0, at) + s + text.slice(at);
    setText(next);
    requestAnimationFrame(() => {
      el?.focus();
      el?.setSelectionRange(at + s.length, at + s.length);
    });
  };

  const upload = (file: File | Blob, name: string, once: boolean) => {
    const key = `${Date.now()}-${Math.random()}`;
    const preview = file.type.startsWith('image/') ? URL.createObjectURL(file) : null;
    setFiles((fs) => [...fs, { key, file, name, preview, status: 'uploading', viewOnce: once }]);
    const done = uploadAttachment({ file, name, viewOnce: once }).then(
      (attachment) => {
        setFiles((fs) => fs.map((f) => (f.key === key ? { ...f, status: 'done', attachment } : f)));
        return attachment;
      },
      (e: unknown) => {
        // Upload refusals name the problem in a field error (`file: …`): show that, not the title.
        const detail =
          isApiError(e) && e.errors.length > 0 ? e.errors.map((x) => x.message).join('; ') : errorMessage(e);
        setFiles((fs) => fs.map((f) => (f.key === key ? { ...f, status: 'error', error: detail } : f)));
        throw e;
      },
    );
    return done;
  };

  const addFiles = (list: FileList | null) => {
    if (!list) return;
    const room = MAX_FILES - files.length;
    [...list].slice(0, room).forEach((f) => void upload(f, f.name, viewOnce).catch(() => undefined));
    setViewOnce(false);
    if (list.length > room)
      notifications.show({ color: 'yellow', message: `At most ${MAX_FILES} attachments per message` });
  };

  const send = async (body: SendIn) => {
    setSending(true);
    try {
      const m = await sendMessage(channel.id, body);
      insertOwn(m, meId);
      onSent?.(m);
      return m;
    } finally {
      setSending(false);
    }
  };

  const submit = async () => {
    if (sending) return;
    const trimmed = text.trim();
    if (files.some((f) => f.status === 'uploading')) {
      notifications.show({ message: 'Wait for the uploads to finish' });
      return;
    }
    const ids = files.filter((f) => f.status === 'done').map((f) => f.attachment!.id);
    if (!trimmed && ids.length === 0) return;
    if (trimmed.length > MAX_TEXT) {
      notifications.show({ color: 'red', message: `Messages are limited to ${MAX_TEXT} characters` });
      return;
    }
    try {
      await send({
        text: trimmed,
        ...(threadId ? { thread_id: threadId } : {}),
        ...(quote ? { quote_id: quote.id } : {}),
        ...(ids.length ? { attachment_ids: ids } : {}),
      });
      setText('');
      setCaret(0);
      files.forEach((f) => f.preview && URL.revokeObjectURL(f.preview));
      setFiles([]);
      onClearQuote?.();
      throttle.reset();
    } catch (e) {
      notifications.show({ color: 'red', title: 'Message not sent', message: errorMessage(e) });
    }
  };

  const sendVoice = async (r: Recording) => {
    try {
      const a = await uploadAttachment({ file: r.blob, name: r.name, durationMs: r.durationMs, waveform: r.waveform });
      await send({ text: '', attachment_ids: [a.id], ...(threadId ? { thread_id: threadId } : {}) });
    } catch (e) {
      notifications.show({ color: 'red', title: 'Voice message not sent', message: errorMessage(e) });
    }
  };

  return (
    <Stack gap={4} data-testid={threadId ? 'thread-composer' : 'composer'}>
      {quote && (
        <Paper withBorder px="xs" py={4} data-testid="quote-preview">
          <Group justify="space-between" wrap="nowrap">
            <Box style={{ minWidth: 0 }}>
              <Text size="xs" fw={600}>
                Replying to {quote.author.name}
              </Text>
              <Text size="xs" c="dimmed" truncate>
                {toPlainText(quote.text) || 'attachment'}
              </Text>
            </Box>
            <CloseButton size="sm" aria-label="Cancel quote" onClick={onClearQuote} />
          </Group>
        </Paper>
      )}
      {files.length > 0 && (
        <Group gap="xs" data-testid="pending-attachments">
          {files.map((f) => (
            <Paper key={f.key} withBorder p={4} pos="relative" data-testid="pending-attachment" data-status={f.status}>
              <Group gap={6} wrap="nowrap">
                {f.preview ? (
                  <Image src={f.preview} alt={f.name} w={40} h={40} radius="sm" fit="cover" />
                ) : (
                  <IconFile size={20} />
                )}
                <Stack gap={0} maw={140}>
                  <Text size="xs" truncate>
                    {f.viewOnce ? '👁 ' : ''}
                    {f.name}
                  </Text>
                  <Text size="xs" c={f.status === 'error' ? 'red' : 'dimmed'} truncate title={f.error}>
                    {f.status === 'uploading' ? 'Uploading…' : f.status === 'error' ? f.error : 'Ready'}
                  </Text>
                </Stack>
                {f.status === 'uploading' ? (
                  <Loader size="xs" />
                ) : (
                  <CloseButton
                    size="xs"
                    aria-label={`Remove ${f.name}`}
                    onClick={() => {
                      if (f.preview) URL.revokeObjectURL(f.preview);
                      setFiles((fs) => fs.filter((x) => x.key !== f.key));
                    }}
                  />
                )}
              </Group>
            </Paper>
          ))}
        </Group>
      )}
      <Box pos="relative">
        {showMentions && (
          <Paper
            withBorder
            shadow="md"
            pos="absolute"
            bottom="100%"
            left={0}
            mb={4}
            w={280}
            p={4}
            style={{ zIndex: 10 }}
            role="listbox"
            aria-label="Mention suggestions"
          >
            {candidates.map((m, i) => (
              <UnstyledButton
                key={m.user_id}
                role="option"
                aria-selected={i === active}
                onMouseDown={(e) => {
                  e.preventDefault();
                  pickMention(m);
                }}
                w="100%"
                p={4}
                style={{ borderRadius: 4, background: i === active ? 'var(--mantine-color-default-hover)' : undefined }}
              >
                {m.user_id.startsWith('@') ? (
                  <Text size="sm">
                    {m.user_id}{' '}
                    <Text span size="xs" c="dimmed">
                      {m.user_id === '@here' ? 'notify who is online' : 'notify everyone in the channel'}
                    </Text>
                  </Text>
                ) : (
                  <Group gap="xs" wrap="nowrap">
                    <UserAvatar name={m.name} url={m.avatar_url} size={20} />
                    <Text size="sm">{m.name}</Text>
                  </Group>
                )}
              </UnstyledButton>
            ))}
          </Paper>
        )}
        <Group gap={4} align="flex-end" wrap="nowrap">
          <Textarea
            ref={area}
            style={{ flex: 1 }}
            autosize
            minRows={1}
            maxRows={8}
            placeholder={placeholder}
            aria-label={threadId ? 'Reply in thread' : 'Message'}
            value={text}
            maxLength={MAX_TEXT + 100}
            onChange={(e) => {
              setText(e.currentTarget.value);
              setCaret(e.currentTarget.selectionStart);
              if (e.currentTarget.value && throttle.tryFire(Date.now())) emit('typing', { room });
            }}
            onSelect={(e) => setCaret(e.currentTarget.selectionStart)}
            onPaste={(e) => {
              if (e.clipboardData.files.length > 0) {
                e.preventDefault();
                addFiles(e.clipboardData.files);
              }
            }}
            onKeyDown={(e) => {
              if (showMentions) {
                if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
                  e.preventDefault();
                  setActive((a) => (a + (e.key === 'ArrowDown' ? 1 : candidates.length - 1)) % candidates.length);
                  return;
                }
                if (e.key === 'Enter' || e.key === 'Tab') {
                  e.preventDefault();
                  pickMention(candidates[active]!);
                  return;
                }
              }
              if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
                e.preventDefault();
                void submit();
              }
              if (e.key === 'Escape' && quote) onClearQuote?.();
            }}
          />
          <input
            ref={fileInput}
            type="file"
            multiple
            hidden
            data-testid="file-input"
            onChange={(e) => {
              addFiles(e.currentTarget.files);
              e.currentTarget.value = '';
            }}
          />
          <Menu position="top-end" withinPortal>
            <Menu.Target>
              <ActionIcon variant="subtle" color="gray" aria-label="Attach files">
                <IconPaperclip size={18} />
              </ActionIcon>
            </Menu.Target>
            <Menu.Dropdown>
              <Menu.Item
                leftSection={<IconPaperclip size={14} />}
                onClick={() => {
                  setViewOnce(false);
                  fileInput.current?.click();
                }}
              >
                Upload files
              </Menu.Item>
              <Menu.Item
                leftSection={<IconEye size={14} />}
                onClick={() => {
                  setViewOnce(true);
                  fileInput.current?.click();
                }}
              >
                Upload view-once media
              </Menu.Item>
            </Menu.Dropdown>
          </Menu>
          <EmojiButton onPick={insertAtCaret} />
          <VoiceRecorder
            onDone={(r) => void sendVoice(r)}
            onError={(msg) => notifications.show({ color: 'red', message: msg })}
            disabled={sending}
          />
          <ActionIcon aria-label="Send" onClick={() => void submit()} loading={sending} size="lg">
            <IconSend size={16} />
          </ActionIcon>
        </Group>
      </Box>
    </Stack>
  );
}
