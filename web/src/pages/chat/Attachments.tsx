/**
 * Attachments inside a message. The files are behind the API's bearer auth, so they are fetched
 * as blobs and shown through object URLs (an <img src> cannot send the header). View-once media
 * are never fetched until the recipient asks: opening is what spends the single view.
 */
import { ActionIcon, Anchor, Badge, Box, Button, Group, Image, Loader, Modal, Paper, Stack, Text } from '@mantine/core';
import { IconDownload, IconEye, IconFile, IconPlayerPauseFilled, IconPlayerPlayFilled } from '@tabler/icons-react';
import { useQuery } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';

import { fetchAttachmentBlob } from '../../api/chat';
import type { AttachmentOut } from '../../api/chatTypes';
import { errorMessage } from '../../lib/forms';
import { formatDuration, resample } from '../../lib/chat/waveform';

function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** An object URL for an authenticated file, revoked when unused. Cached per URL. */
function useBlobUrl(url: string | null | undefined, channelId: string, enabled = true) {
  const q = useQuery({
    queryKey: ['chat', 'blob', url],
    queryFn: async () => URL.createObjectURL(await fetchAttachmentBlob(url!, channelId)),
    enabled: !!url && enabled,
    staleTime: Infinity,
    gcTime: 5 * 60_000,
    retry: false,
  });
  return q;
}

function ImageAttachment({ a, channelId }: { a: AttachmentOut; channelId: string }) {
  const [open, setOpen] = useState(false);
  const thumb = useBlobUrl(a.thumbnail_url ?? a.url, channelId, !a.view_once);
  const full = useBlobUrl(a.url, channelId, open);
  const w = a.width && a.height ? Math.min(240, a.width) : 240;
  return (
    <>
      <Box
        component="button"
        onClick={() => setOpen(true)}
        aria-label={`Open image ${a.name}`}
        style={{ border: 0, padding: 0, background: 'none', cursor: 'zoom-in' }}
        data-testid="attachment-image"
      >
        {thumb.isPending ? (
          <Paper withBorder w={w} h={120} style={{ display: 'grid', placeItems: 'center' }}>
            <Loader size="xs" />
          </Paper>
        ) : thumb.isError ? (
          <Paper withBorder p="xs">
            <Text size="xs" c="dimmed">
              Image unavailable: {errorMessage(thumb.error)}
            </Text>
          </Paper>
        ) : (
          <Image src={thumb.data} alt={a.name} maw={240} mah={240} radius="sm" fit="contain" w="auto" />
        )}
      </Box>
      <Modal opened={open} onClose={() => setOpen(false)} title={a.name} size="auto" centered>
        {full.isPending ? (
          <Loader />
        ) : full.isError ? (
          <Text c="red">{errorMessage(full.error)}</Text>
        ) : (
          <Image src={full.data} alt={a.name} mah="80vh" fit="contain" />
        )}
      </Modal>
    </>
  );
}

function ViewOnce({ a, channelId }: { a: AttachmentOut; channelId: string }) {
  const [open, setOpen] = useState(false);
  const [spent, setSpent] = useState(a.viewed);
  const full = useBlobUrl(a.url, channelId, open);
  if (spent && !open) {
    return (
      <Badge variant="light" color="gray" leftSection={<IconEye size={12} />} data-testid="view-once-opened">
        View-once {a.kind === 'image' ? 'photo' : 'file'} opened
      </Badge>
    );
  }
  return (
    <>
      <Button
        size="xs"
        variant="light"
        leftSection={<IconEye size={14} />}
        onClick={() => setOpen(true)}
        data-testid="view-once"
      >
        View once: open {a.kind === 'image' ? 'photo' : a.name}
      </Button>
      <Modal
        opened={open}
        onClose={() => {
          setOpen(false);
          setSpent(true);
        }}
        title={`${a.name} (view once)`}
        size="auto"
        centered
      >
        {full.isPending ? (
          <Loader />
        ) : full.isError ? (
          <Text c="red">{errorMessage(full.error)}</Text>
        ) : a.kind === 'image' ? (
          <Image src={full.data} alt={a.name} mah="80vh" fit="contain" />
        ) : a.kind === 'voice' || a.kind === 'audio' ? (
          <audio src={full.data} controls autoPlay />
        ) : (
          <Anchor href={full.data} download={a.name}>
            Save {a.name}
          </Anchor>
        )}
      </Modal>
    </>
  );
}

export function Waveform({
  values,
  progress,
  onSeek,
}: {
  values: number[];
  progress: number;
  onSeek?: (f: number) => void;
}) {
  return (
    <div
      className="chat-waveform"
      data-testid="waveform"
      onClick={(e) => {
        const r = e.currentTarget.getBoundingClientRect();
        onSeek?.((e.clientX - r.left) / r.width);
      }}
    >
      {values.map((v, i) => (
        <span
          key={i}
          style={{
            height: `${Math.max(8, v)}%`,
            background: i / values.length < progress ? 'var(--mantine-color-teal-6)' : 'var(--mantine-color-gray-5)',
          }}
        />
      ))}
    </div>
  );
}

export function VoicePlayer({ a, channelId }: { a: AttachmentOut; channelId: string }) {
  const [want, setWant] = useState(false);
  const src = useBlobUrl(a.url, channelId, want);
  const audio = useRef<HTMLAudioElement | null>(null);
  const [playing, setPlaying] = useState(false);
  const [pos, setPos] = useState(0);
  const duration = a.duration_ms ?? 0;

  useEffect(() => {
    if (want && src.data && audio.current && !playing) void audio.current.play().catch(() => undefined);
    // Only when the source becomes available.
  }, [src.data]);

  const toggle = () => {
    if (!src.data) {
      setWant(true);
      return;
    }
    const el = audio.current;
    if (!el) return;
    if (el.paused) void el.play().catch(() => undefined);
    else el.pause();
  };
  const progress = duration > 0 ? Math.min(1, pos / duration) : 0;
  return (
    <Paper withBorder radius="xl" px="sm" py={4} maw={320} data-testid="voice-message">
      <Group gap="xs" wrap="nowrap">
        <ActionIcon
          radius="xl"
          onClick={toggle}
          aria-label={playing ? 'Pause voice message' : 'Play voice message'}
          loading={want && src.isPending}
        >
          {playing ? <IconPlayerPauseFilled size={14} /> : <IconPlayerPlayFilled size={14} />}
        </ActionIcon>
        <Box style={{ flex: 1 }}>
          <Waveform
            values={resample(a.waveform, 40)}
            progress={progress}
            onSeek={(f) => {
              if (audio.current && duration) audio.current.currentTime = (f * duration) / 1000;
            }}
          />
        </Box>
        <Text size="xs" c="dimmed" data-testid="voice-duration">
          {formatDuration(playing || pos > 0 ? pos : duration)}
        </Text>
      </Group>
      {src.isError && (
        <Text size="xs" c="red">
          {errorMessage(src.error)}
        </Text>
      )}
      {src.data && (
        <audio
          ref={audio}
          src={src.data}
          preload="auto"
          onPlay={() => setPlaying(true)}
          onPause={() => setPlaying(false)}
          onEnded={() => {
            setPlaying(false);
            setPos(0);
          }}
          onTimeUpdate={(e) => setPos(e.currentTarget.currentTime * 1000)}
        />
      )}
    </Paper>
  );
}

function FileAttachment({ a, channelId }: { a: AttachmentOut; channelId: string }) {
  const [want, setWant] = useState(false);
  const src = useBlobUrl(a.url, channelId, want);
  useEffect(() => {
    if (want && src.data) {
      const link = document.createElement('a');
      link.href = src.data;
      link.download = a.name;
      link.click();
      setWant(false);
    }
  }, [want, src.data, a.name]);
  return (
    <Paper withBorder p="xs" maw={320} data-testid="attachment-file">
      <Group gap="xs" wrap="nowrap">
        <IconFile size={20} />
        <Stack gap={0} style={{ flex: 1, minWidth: 0 }}>
          <Text size="sm" truncate>
            {a.name}
          </Text>
          <Text size="xs" c="dimmed">
            {formatSize(a.size)}
          </Text>
        </Stack>
        <ActionIcon
          variant="subtle"
          aria-label={`Download ${a.name}`}
          onClick={() => setWant(true)}
          loading={want && src.isPending}
        >
          <IconDownload size={16} />
        </ActionIcon>
      </Group>
    </Paper>
  );
}

export function AttachmentView({ a, channelId }: { a: AttachmentOut; channelId: string }) {
  if (a.view_once) return <ViewOnce a={a} channelId={channelId} />;
  if (a.kind === 'image') return <ImageAttachment a={a} channelId={channelId} />;
  if (a.kind === 'voice' || (a.kind === 'audio' && a.waveform)) return <VoicePlayer a={a} channelId={channelId} />;
  if (a.kind === 'audio') return <VoicePlayer a={a} channelId={channelId} />;
  return <FileAttachment a={a} channelId={channelId} />;
}
