/**
 * Records a voice message with MediaRecorder while an AnalyserNode samples the loudness ~20
 * times a second; on stop, the levels are downsampled into the waveform the API stores.
 */
import { ActionIcon, Group, Paper, Text, Tooltip } from '@mantine/core';
import { IconMicrophone, IconPlayerStopFilled, IconSend, IconTrash } from '@tabler/icons-react';
import { useEffect, useRef, useState } from 'react';

import { WAVEFORM_BARS, downsample, formatDuration, frameLevel } from '../../lib/chat/waveform';
import { Waveform } from './Attachments';

export interface Recording {
  blob: Blob;
  name: string;
  durationMs: number;
  waveform: number[];
}

function pickMime(): string | undefined {
  if (typeof MediaRecorder === 'undefined') return undefined;
  return ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/mp4'].find((t) =>
    MediaRecorder.isTypeSupported(t),
  );
}

export function voiceSupported(): boolean {
  return typeof MediaRecorder !== 'undefined' && !!navigator.mediaDevices?.getUserMedia;
}

/** The microphone button; while recording, a bar with the live waveform, duration, stop and cancel. */
export function VoiceRecorder({
  onDone,
  onError,
  disabled,
}: {
  onDone: (r: Recording) => void;
  onError: (msg: string) => void;
  disabled?: boolean;
}) {
  const [recording, setRecording] = useState(false);
  const [elapsed, setElapsed] = useState(0);
  const [live, setLive] = useState<number[]>([]);
  const stopRef = useRef<((send: boolean) => void) | null>(null);

  useEffect(() => () => stopRef.current?.(false), []);

  const start = async () => {
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      onError(
        e instanceof Error && e.name === 'NotAllowedError'
          ? 'Microphone access was refused'
          : 'No microphone available',
      );
      return;
    }
    const mime = pickMime();
    const recorder = new MediaRecorder(stream, mime ? { mimeType: mime } : undefined);
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    ctx.createMediaStreamSource(stream).connect(analyser);
    const frame = new Uint8Array(analyser.fftSize);
    const levels: number[] = [];
    const chunks: Blob[] = [];
    const startedAt = performance.now();
    let send = true;

    const sampler = setInterval(() => {
      analyser.getByteTimeDomainData(frame);
      levels.push(frameLevel(frame));
      setElapsed(performance.now() - startedAt);
      setLive(downsample(levels.slice(-40), 40));
    }, 50);

    recorder.ondataavailable = (e) => {
      if (e.data.size > 0) chunks.push(e.data);
    };
    recorder.onstop = () => {
      clearInterval(sampler);
      stream.getTracks().forEach((t) => t.stop());
      void ctx.close();
      setRecording(false);
      setLive([]);
      stopRef.current = null;
      const durationMs = performance.now() - startedAt;
      if (!send || chunks.length === 0) return;
      const type = recorder.mimeType || mime || 'audio/webm';
      const ext = type.includes('ogg') ? 'ogg' : type.includes('mp4') ? 'm4a' : 'webm';
      onDone({
        blob: new Blob(chunks, { type: type.split(';')[0] }),
        name: `voice-${new Date().toISOString().replace(/[:.]/g, '-')}.${ext}`,
        durationMs,
        waveform: downsample(levels, WAVEFORM_BARS),
      });
    };
    stopRef.current = (doSend) => {
      send = doSend;
      if (recorder.state !== 'inactive') recorder.stop();
    };
    recorder.start(250);
    setElapsed(0);
    setRecording(true);
  };

  if (!recording) {
    return (
      <Tooltip label={voiceSupported() ? 'Record a voice message' : 'Voice messages need a microphone'}>
        <ActionIcon
          variant="subtle"
          color="gray"
          aria-label="Record voice message"
          disabled={disabled || !voiceSupported()}
          onClick={() => void start()}
        >
          <IconMicrophone size={18} />
        </ActionIcon>
      </Tooltip>
    );
  }
  return (
    <Paper withBorder radius="xl" px="sm" py={2} data-testid="voice-recording">
      <Group gap="xs" wrap="nowrap">
        <Text size="xs" c="red" fw={600}>
          ● {formatDuration(elapsed)}
        </Text>
        <div style={{ width: 120 }}>
          <Waveform values={live.length ? live : [0]} progress={1} />
        </div>
        <ActionIcon
          variant="subtle"
          color="gray"
          aria-label="Cancel recording"
          onClick={() => stopRef.current?.(false)}
        >
          <IconTrash size={16} />
        </ActionIcon>
        <ActionIcon color="teal" aria-label="Stop and send voice message" onClick={() => stopRef.current?.(true)}>
          {elapsed > 0 ? <IconSend size={14} /> : <IconPlayerStopFilled size={14} />}
        </ActionIcon>
      </Group>
    </Paper>
  );
}
