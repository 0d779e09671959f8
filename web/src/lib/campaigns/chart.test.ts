import { describe, expect, it } from 'vitest';

import { cumulative, fillGaps, geometry, niceTicks } from './chart';

const p = (at: string, sent: number, failed = 0) => ({ at, sent, delivered: sent, read: 0, failed });

describe('the statuses-over-time chart', () => {
  it('fills empty minutes with zeros, in time order', () => {
    const filled = fillGaps([p('2026-01-01T10:03:00Z', 5), p('2026-01-01T10:00:00Z', 10)]);
    expect(filled.map((x) => [x.at.slice(11, 16), x.sent])).toEqual([
      ['10:00', 10],
      ['10:01', 0],
      ['10:02', 0],
      ['10:03', 5],
    ]);
  });

  it('sums the buckets into running totals', () => {
    expect(cumulative([p('a', 10, 1), p('b', 0), p('c', 5, 2)]).map((x) => [x.sent, x.failed])).toEqual([
      [10, 1],
      [10, 1],
      [15, 3],
    ]);
  });

  it('picks round y ticks covering the maximum', () => {
    expect(niceTicks(480)).toEqual([0, 200, 400, 600]);
    expect(niceTicks(7)).toEqual([0, 2, 4, 6, 8]);
    expect(niceTicks(0)).toEqual([0, 1]);
  });

  it('scales the lines into the box (y grows downwards)', () => {
    const g = geometry([p('2026-01-01T10:00:00Z', 0), p('2026-01-01T10:01:00Z', 10)], {
      width: 120,
      height: 70,
      left: 10,
      right: 10,
      top: 10,
      bottom: 10,
    });
    expect(g.yMax).toBe(10);
    const sent = g.lines.find((l) => l.key === 'sent')!;
    expect(sent.points).toEqual([
      [10, 60],
      [110, 10],
    ]);
    expect(sent.path).toBe('M10,60 L110,10');
    expect(g.xTicks.map((t) => t.x)).toEqual([10, 110]);
  });
});
