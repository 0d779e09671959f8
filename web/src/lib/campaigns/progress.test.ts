import { describe, expect, it } from 'vitest';

import { statsInterval } from './api';
import { counts } from './fixtures';
import {
  canCancel,
  canPause,
  canResume,
  doneCount,
  formatEta,
  formatRate,
  newerCounts,
  progressLabel,
  progressPercent,
} from './progress';

describe('campaign progress', () => {
  it('counts sent, failed and skipped as done (delivered and read are part of sent)', () => {
    const c = counts({ total: 500, sent: 300, delivered: 280, read: 100, failed: 5, skipped: 20, pending: 175 });
    expect(doneCount(c)).toBe(325);
    expect(progressPercent(c)).toBe(65);
    expect(progressLabel(c)).toBe('325 / 500');
    expect(progressPercent(counts({ total: 3, sent: 1 }))).toBe(33.3);
    expect(progressPercent(counts({ total: 0 }))).toBe(0);
    // Never past 100 %, whatever the counters say.
    expect(progressPercent(counts({ total: 10, sent: 10, failed: 2 }))).toBe(100);
    expect(progressLabel(counts({ total: 1200, sent: 1500 }))).toBe('1,200 / 1,200');
  });

  it('formats the rate and the time left', () => {
    expect(formatRate(0)).toBe('—');
    expect(formatRate(null)).toBe('—');
    expect(formatRate(12.46)).toBe('12.5 msg/s');
    expect(formatRate(80)).toBe('80 msg/s');
    expect(formatRate(250.4)).toBe('250 msg/s');
    expect(formatEta(null)).toBe('—');
    expect(formatEta(42)).toBe('less than a minute');
    expect(formatEta(240)).toBe('4 min');
    expect(formatEta(3900)).toBe('1 h 05 min');
    expect(formatEta(2 * 86400 + 3 * 3600)).toBe('2 d 3 h');
  });

  it('keeps the newer of two snapshots (a stats response older than the last event loses)', () => {
    const older = counts({ total: 500, sent: 100, pending: 400 });
    const newer = counts({ total: 500, sent: 120, delivered: 90, pending: 380 });
    expect(newerCounts(undefined, older)).toBe(older);
    expect(newerCounts(older, newer)).toBe(newer);
    expect(newerCounts(newer, older)).toBe(newer);
  });

  it('offers pause while running, resume while paused, cancel until finished', () => {
    expect(canPause({ status: 'running' })).toBe(true);
    expect(canPause({ status: 'paused' })).toBe(false);
    expect(canResume({ status: 'paused' })).toBe(true);
    expect(canCancel({ status: 'scheduled' })).toBe(true);
    expect(canCancel({ status: 'completed' })).toBe(false);
  });
});

describe('stats refresh', () => {
  it('polls while sending or paused, for a while after finishing (late receipts), else not', () => {
    const now = Date.parse('2026-01-01T10:00:00Z');
    expect(statsInterval({ status: 'running', completed_at: null }, now)).toBe(3000);
    expect(statsInterval({ status: 'paused', completed_at: null }, now)).toBe(3000);
    expect(statsInterval({ status: 'completed', completed_at: '2026-01-01T09:58:00Z' }, now)).toBe(5000);
    expect(statsInterval({ status: 'completed', completed_at: '2026-01-01T09:00:00Z' }, now)).toBe(false);
    expect(statsInterval({ status: 'draft', completed_at: null }, now)).toBe(false);
  });
});
