/**
 * Voice message waveforms: while recording, the AnalyserNode's time-domain frames are reduced to
 * one loudness level each (RMS); at the end the levels are downsampled to at most 128 bars of
 * 0–100, which is what the API stores and the player draws.
 */

export const WAVEFORM_BARS = 64;
export const WAVEFORM_MAX_BARS = 128;

/** Loudness 0–1 of one frame from `AnalyserNode.getByteTimeDomainData` (128 = silence). */
export function frameLevel(frame: ArrayLike<number>): number {
  if (frame.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < frame.length; i++) {
    const v = (frame[i]! - 128) / 128;
    sum += v * v;
  }
  return Math.min(1, Math.sqrt(sum / frame.length));
}

/**
 * `levels` (any non-negative numbers) → exactly `bars` integers 0–100 (fewer when there are fewer
 * levels), each the peak of its bucket, scaled so the loudest bar is 100. Silence stays 0.
 */
export function downsample(levels: readonly number[], bars = WAVEFORM_BARS): number[] {
  const n = Math.max(1, Math.min(Math.floor(bars), WAVEFORM_MAX_BARS));
  const clean = levels.map((v) => (Number.isFinite(v) && v > 0 ? v : 0));
  if (clean.length === 0) return [];
  const count = Math.min(n, clean.length);
  const out: number[] = [];
  for (let b = 0; b < count; b++) {
    const from = Math.floor((b * clean.length) / count);
    const to = Math.max(from + 1, Math.floor(((b + 1) * clean.length) / count));
    let peak = 0;
    for (let i = from; i < to; i++) peak = Math.max(peak, clean[i]!);
    out.push(peak);
  }
  const max = Math.max(...out);
  if (max === 0) return out.map(() => 0);
  return out.map((v) => Math.round((v / max) * 100));
}

/** A stored waveform stretched or squeezed to `bars` for drawing (values clamped to 0–100). */
export function resample(waveform: readonly number[] | null | undefined, bars: number): number[] {
  if (!waveform || waveform.length === 0) return Array.from({ length: bars }, () => 0);
  return Array.from({ length: bars }, (_, i) => {
    const v = waveform[Math.floor((i * waveform.length) / bars)] ?? 0;
    return Math.max(0, Math.min(100, v));
  });
}

/** "0:07", "1:05", "12:00". */
export function formatDuration(ms: number | null | undefined): string {
  const total = Math.max(0, Math.round((ms ?? 0) / 1000));
  const m = Math.floor(total / 60);
  const s = total % 60;
  return `${m}:${s.toString().padStart(2, '0')}`;
}
