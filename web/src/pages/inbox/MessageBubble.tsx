/** One message of a conversation: bubble by direction, content by kind, reply quote, reactions, ticks, actions. */
import {
  ActionIcon,
  Anchor,
  Box,
  Button,
  Group,
  Image,
  Loader,
  Paper,
  Popover,
  Stack,
  Text,
  Tooltip,
} from '@mantine/core';
import { IconArrowBackUp, IconFile, IconLock, IconMapPin, IconMoodPlus } from '@tabler/icons-react';
import { memo, useEffect, useState } from 'react';

import { QUICK_REACTIONS } from '../../lib/chat/emoji';
import { fetchMediaBlob } from '../../lib/inbox/api';
import { isTemp } from '../../lib/inbox/cache';
import { failureText } from '../../lib/inbox/status';
import type { MediaOut, MessageOut } from '../../lib/inbox/types';
import { MessageText } from '../chat/MessageText';
import { StatusTick } from './StatusTick';

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** Media bytes under /api need the bearer token: fetched as a blob; other URLs are used as they are. */
function useMediaSrc(url: string | null): { src: string | null; error: boolean } {
  const needsAuth = !!url && new URL(url, window.location.origin).pathname.startsWith('/api/');
  const [src, setSrc] = useState<string | null>(needsAuth ? null : url);
  const [error, setError] = useState(false);
  useEffect(() => {
    if (!url || !needsAuth) {
      setSrc(url);
      return;
    }
    let revoked = false;
    let objectUrl: string | null = null;
    fetchMediaBlob(url).then(
      (blob) => {
        if (revoked) return;
        objectUrl = URL.createObjectURL(blob);
        setSrc(objectUrl);
      },
      () => setError(true),
    );
    return () => {
      revoked = true;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [url, needsAuth]);
  return { src, error };
}

function MediaView({ media }: { media: MediaOut }) {
  const ready = media.state === 'ready' && !!media.url;
  const { src, error } = useMediaSrc(ready ? (media.url ?? null) : null);
  if (media.state === 'pending') {
    return (
      <Group gap={6} data-testid="media-pending">
        <Loader size="xs" />
        <Text size="xs" c="dimmed">
          Fetching {media.kind}…
        </Text>
      </Group>
    );
  }
  if (media.state === 'failed' || error) {
    return (
      <Text size="xs" c="red" data-testid="media-failed">
        {media.kind} unavailable{media.error ? `: ${media.error}` : ''}
      </Text>
    );
  }
  if (!src) return <Loader size="xs" />;
  const name = media.filename ?? media.kind;
  switch (media.kind) {
    case 'image':
      return <Image src={src} alt={name} maw={280} mah={320} radius="sm" fit="contain" data-testid="media-image" />;
    case 'sticker':
      return <Image src={src} alt="Sticker" w={120} h={120} fit="contain" data-testid="media-sticker" />;
    case 'video':
      return <video src={src} controls style={{ maxWidth: 320, maxHeight: 320 }} aria-label={name} />;
    case 'audio':
    case 'voice':
      return <audio src={src} controls aria-label={media.kind === 'voice' ? 'Voice message' : name} />;
    default:
      return (
        <Anchor href={src} download={name} size="sm" data-testid="media-document">
          <Group gap={4} wrap="nowrap">
            <IconFile size={16} />
            {name}
            {media.size ? ` (${Math.ceil(media.size / 1024)} KB)` : ''}
          </Group>
        </Anchor>
      );
  }
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');

function Body({ m, meId }: { m: MessageOut; meId: string }) {
  const c = obj(m.content);
  const text = m.text ? <MessageText text={m.text} meId={meId} /> : null;
  switch (m.kind) {
    case 'image':
    case 'video':
    case 'audio':
    case 'voice':
    case 'document':
    case 'sticker':
      return (
        <Stack gap={4}>
          {m.media ? <MediaView media={m.media} /> : <Text size="xs">{m.kind}</Text>}
          {text}
        </Stack>
      );
    case 'location': {
      const lat = Number(c.latitude);
      const lon = Number(c.longitude);
      return (
        <Stack gap={2} data-testid="location">
          <Group gap={4}>
            <IconMapPin size={16} />
            <Text size="sm" fw={500}>
              {str(c.name) || 'Location'}
            </Text>
          </Group>
          {str(c.address) && <Text size="xs">{str(c.address)}</Text>}
          <Anchor
            size="xs"
            href={`https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`}
            target="_blank"
            rel="noopener noreferrer"
          >
            {lat.toFixed(5)}, {lon.toFixed(5)}
          </Anchor>
        </Stack>
      );
    }
    case 'contacts':
      return (
        <Stack gap={2} data-testid="shared-contacts">
          {arr(c.contacts).map((raw, i) => {
            const p = obj(raw);
            const name = str(obj(p.name).formatted_name) || str(p.name) || 'Contact';
            const phones = arr(p.phones).map((x) => str(obj(x).phone) || str(x));
            return (
              <Text size="sm" key={i}>
                👤 {name}
                {phones.length > 0 ? ` · ${phones.join(', ')}` : ''}
              </Text>
            );
          })}
          {text}
        </Stack>
      );
    case 'interactive_reply':
    case 'button_reply':
      return (
        <Text size="sm" data-testid="interactive-reply">
          ↩︎ {str(c.title) || m.text}
        </Text>
      );
    case 'template':
      return (
        <Stack gap={2}>
          <Text size="xs" c="dimmed" data-testid="template-name">
            Template {str(c.name)}
            {str(c.language) ? ` (${str(c.language)})` : ''}
          </Text>
          {text}
        </Stack>
      );
    case 'unsupported':
      return (
        <Stack gap={2} data-testid="unsupported">
          <Text size="sm" fs="italic">
            Unsupported message
          </Text>
          {arr(c.errors).map((e, i) => {
            const err = obj(e);
            return (
              <Text size="xs" c="dimmed" key={i}>
                {str(err.title) || str(err.message) || JSON.stringify(e)}
                {str(err.code) ? ` (${str(err.code)})` : ''}
              </Text>
            );
          })}
        </Stack>
      );
    default:
      return (
        text ?? (
          <Text size="sm" c="dimmed">
            {m.kind}
          </Text>
        )
      );
  }
}

/** Buttons and list rows shown under an interactive message, as the customer sees them. */
function Interactive({ m }: { m: MessageOut }) {
  const c = obj(m.content);
  if (m.kind === 'buttons') {
    return (
      <Group gap={4} mt={4} data-testid="message-buttons">
        {arr(c.buttons).map((b, i) => (
          <Button
            key={i}
            size="compact-xs"
            variant="default"
            radius="xl"
            tabIndex={-1}
            style={{ pointerEvents: 'none' }}
          >
            {str(obj(b).title)}
          </Button>
        ))}
      </Group>
    );
  }
  if (m.kind === 'list') {
    return (
      <Stack gap={2} mt={4} data-testid="message-list-rows">
        <Text size="xs" fw={600}>
          ☰ {str(c.button) || 'Options'}
        </Text>
        {arr(c.sections).map((s, i) => (
          <Box key={i}>
            {str(obj(s).title) && (
              <Text size="xs" c="dimmed">
                {str(obj(s).title)}
              </Text>
            )}
            {arr(obj(s).rows).map((r, j) => (
              <Text size="xs" key={j}>
                • {str(obj(r).title)}
                {str(obj(r).description) ? ` — ${str(obj(r).description)}` : ''}
              </Text>
            ))}
          </Box>
        ))}
      </Stack>
    );
  }
  return null;
}

function Reactions({ m, meId, contactName }: { m: MessageOut; meId: string; contactName: string }) {
  if (m.reactions.length === 0) return null;
  return (
    <Group gap={4} mt={2} data-testid="reactions">
      {m.reactions.map((r, i) => {
        const who = r.by === 'customer' ? contactName : r.user_id === meId ? 'You' : 'An agent';
        return (
          <Tooltip key={i} label={who}>
            <Text
              component="span"
              size="sm"
              px={6}
              style={{ border: '1px solid var(--mantine-color-default-border)', borderRadius: 12 }}
              data-testid="reaction"
              data-by={r.by}
              aria-label={`${r.emoji} from ${who}`}
            >
              {r.emoji}
            </Text>
          </Tooltip>
        );
      })}
    </Group>
  );
}

interface Props {
  m: MessageOut;
  meId: string;
  contactName: string;
  onReply?: (m: MessageOut) => void;
  onReact?: (m: MessageOut, emoji: string) => void;
}

export const MessageBubble = memo(function MessageBubble({ m, meId, contactName, onReply, onReact }: Props) {
  const [reactOpen, setReactOpen] = useState(false);
  if (m.kind === 'system') {
    return (
      <Group justify="center" py={4} data-testid="system-message">
        <Text size="xs" c="dimmed" ta="center" maw={480}>
          {m.text}
        </Text>
      </Group>
    );
  }
  const note = m.private || m.kind === 'note';
  const side = m.direction === 'inbound' ? 'left' : 'right';
  const who =
    m.direction === 'inbound' ? contactName : m.author ? (m.author.id === meId ? 'You' : m.author.name) : 'Automation';
  const canAct = !note && !isTemp(m.id);
  return (
    <Box
      className="inbox-message"
      data-side={side}
      data-testid="message"
      data-id={m.id}
      data-kind={m.kind}
      data-direction={m.direction}
      data-note={note}
      data-status={m.status}
    >
      <Stack gap={2} align={side === 'left' ? 'flex-start' : 'flex-end'}>
        <Paper className="inbox-bubble" data-direction={m.direction} data-note={note}>
          <Group gap={6} justify="space-between" wrap="nowrap" mb={2}>
            <Text size="xs" fw={600} c={note ? 'yellow.9' : 'dimmed'}>
              {note ? (
                <Group gap={4} component="span" wrap="nowrap">
                  <IconLock size={12} /> Private note · {who}
                </Group>
              ) : (
                who
              )}
            </Text>
          </Group>
          {m.reply_to && (
            <Box
              pl={6}
              mb={4}
              style={{ borderLeft: '3px solid var(--mantine-color-teal-5)' }}
              data-testid="reply-quote"
            >
              <Text size="xs" fw={600}>
                {m.reply_to.direction === 'inbound' ? contactName : 'You'}
              </Text>
              <Text size="xs" c="dimmed" lineClamp={2}>
                {m.reply_to.preview}
              </Text>
            </Box>
          )}
          <Body m={m} meId={meId} />
          <Group gap={4} justify="flex-end" mt={2} wrap="nowrap">
            <Text size="xs" c="dimmed">
              {time.format(new Date(m.created_at))}
            </Text>
            {m.direction === 'outbound' && !note && <StatusTick status={m.status} error={m.error} />}
          </Group>
        </Paper>
        <Interactive m={m} />
        {m.status === 'failed' && (
          <Text size="xs" c="red" maw={480} data-testid="message-error">
            {failureText(m.error)}
          </Text>
        )}
        <Reactions m={m} meId={meId} contactName={contactName} />
      </Stack>
      {canAct && (onReply || onReact) && (
        <Group gap={2} className="inbox-message-actions" data-open={reactOpen}>
          <Paper withBorder shadow="xs" p={2}>
            <Group gap={2} wrap="nowrap">
              {onReact && (
                <Popover opened={reactOpen} onChange={setReactOpen} withinPortal position="top">
                  <Popover.Target>
                    <Tooltip label="React">
                      <ActionIcon
                        size="sm"
                        variant="subtle"
                        color="gray"
                        aria-label="React"
                        onClick={() => setReactOpen((o) => !o)}
                      >
                        <IconMoodPlus size={14} />
                      </ActionIcon>
                    </Tooltip>
                  </Popover.Target>
                  <Popover.Dropdown p={4}>
                    <Group gap={2} data-testid="quick-reactions">
                      {QUICK_REACTIONS.map((e) => (
                        <ActionIcon
                          key={e}
                          variant="subtle"
                          aria-label={`React ${e}`}
                          onClick={() => {
                            setReactOpen(false);
                            onReact(m, e);
                          }}
                        >
                          {e}
                        </ActionIcon>
                      ))}
                    </Group>
                  </Popover.Dropdown>
                </Popover>
              )}
              {onReply && (
                <Tooltip label="Reply">
                  <ActionIcon size="sm" variant="subtle" color="gray" aria-label="Reply" onClick={() => onReply(m)}>
                    <IconArrowBackUp size={14} />
                  </ActionIcon>
                </Tooltip>
              )}
            </Group>
          </Paper>
        </Group>
      )}
    </Box>
  );
});
