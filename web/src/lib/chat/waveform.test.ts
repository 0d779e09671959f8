import { describe, expect, it } from 'vitest';

import { downsample, formatDuration, frameLevel, resample } from './waveform';
import { activeTypers, createThrottle, typingLine } from './typing';
import { channelNameError, channelTitle, dmPartner } from './channels';

describe('waveform', () => {
  it('measures a silent and a loud frame', () => {
    expect(frameLevel(new Uint8Array(64).fill(128))).toBe(0);
    expect(frameLevel(Uint8Array.from({ length: 64 }, (_, i) => (i % 2 ? 255 : 1)))).toBeGreaterThan(0.95);
  });

  it('downsamples to the requested number of bars, peaks scaled to 100', () => {
    const levels = Array.from({ length: 1000 }, (_, i) => (i < 500 ? 0.1 : 0.4));
    const bars = downsample(levels, 64);
    expect(bars).toHaveLength(64);
    expect(Math.max(...bars)).toBe(100);
    expect(bars[0]).toBe(25);
    expect(bars.every((b) => Number.isInteger(b) && b >= 0 && b <= 100)).toBe(true);
  });

  it('keeps peaks that fall between buckets', () => {
    const levels = new Array(640).fill(0.01);
    levels[333] = 0.9;
    const bars = downsample(levels, 64);
    expect(bars[33]).toBe(100);
    expect(bars.filter((b) => b === 100)).toHaveLength(1);
  });

  it('never exceeds the API maximum and handles short, empty, silent and bad input', () => {
    expect(downsample(new Array(5000).fill(0.5), 500)).toHaveLength(128);
    expect(downsample([0.2, 0.4], 64)).toEqual([50, 100]);
    expect(downsample([], 64)).toEqual([]);
    expect(downsample([0, 0, 0], 64)).toEqual([0, 0, 0]);
    expect(downsample([NaN, -1, 1], 3)).toEqual([0, 0, 100]);
  });

  it('resamples a stored waveform for drawing and formats durations', () => {
    expect(resample([0, 100], 4)).toEqual([0, 0, 100, 100]);
    expect(resample(null, 3)).toEqual([0, 0, 0]);
    expect(resample([150, -3], 2)).toEqual([100, 0]);
    expect(formatDuration(7_400)).toBe('0:07');
    expect(formatDuration(65_000)).toBe('1:05');
    expect(formatDuration(null)).toBe('0:00');
  });
});

describe('typing', () => {
  it('words the typing line', () => {
    expect(typingLine([])).toBe('');
    expect(typingLine(['Ana'])).toBe('Ana is typing…');
    expect(typingLine(['Ana', 'Bo'])).toBe('Ana and Bo are typing…');
    expect(typingLine(['Ana', 'Bo', 'Cy', 'Di'])).toBe('Several people are typing…');
  });

  it('throttles emits and expires typers', () => {
    const t = createThrottle(2000);
    expect([t.tryFire(0), t.tryFire(500), t.tryFire(2000), t.tryFire(3999)]).toEqual([true, false, true, false]);
    const seen = new Map([
      ['ana', 1000],
      ['bo', 9000],
      ['me', 9000],
    ]);
    expect(activeTypers(seen, 10_000, 'me')).toEqual(['bo']);
  });
});

describe('channel names', () => {
  const dm = {
    kind: 'dm' as const,
    name: null,
    member_count: 2,
    members_preview: [
      { user_id: 'me', name: 'Me' },
      { user_id: 'ana', name: 'Ana' },
    ],
  };
  it('names DMs after the other members', () => {
    expect(channelTitle(dm, 'me')).toBe('Ana');
    expect(dmPartner(dm, 'me')).toBe('ana');
    expect(channelTitle({ ...dm, kind: 'group_dm', member_count: 8 }, 'me')).toBe('Ana +6');
    expect(channelTitle({ ...dm, kind: 'public', name: 'general' }, 'me')).toBe('general');
  });
  it('validates channel names like the server', () => {
    expect(channelNameError('release-2026 ops_team')).toBeNull();
    expect(channelNameError('équipe')).toBeNull();
    expect(channelNameError('')).toBe('Enter a name');
    expect(channelNameError('a/b')).not.toBeNull();
    expect(channelNameError('x'.repeat(81))).not.toBeNull();
  });
});
