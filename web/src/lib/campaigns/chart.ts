/**
 * The statuses-over-time chart's geometry, free of React: per-minute buckets with the empty
 * minutes filled in, optionally summed up (cumulative), scaled into an SVG box with "nice" y ticks.
 */
import type { SeriesPoint } from './types';

export const SERIES_KEYS = ['sent', 'delivered', 'read', 'failed'] as const;
export type SeriesKey = (typeof SERIES_KEYS)[number];

const MINUTE = 60_000;
/** More buckets than this are not filled in (a very long campaign is drawn from its own points). */
const MAX_FILLED = 24 * 60;

/** Sorted by time, with a zero bucket for every minute between the first and the last. */
export function fillGaps(series: readonly SeriesPoint[]): SeriesPoint[] {
  const sorted = [...series].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  if (sorted.length < 2) return sorted;
  const first = Date.parse(sorted[0]!.at);
  const last = Date.parse(sorted[sorted.length - 1]!.at);
  if (!Number.isFinite(first) || !Number.isFinite(last) || (last - first) / MINUTE > MAX_FILLED) return sorted;
  const byMinute = new Map(sorted.map((p) => [Math.floor(Date.parse(p.at) / MINUTE), p]));
  const out: SeriesPoint[] = [];
  for (let t = first; t <= last; t += MINUTE) {
    out.push(
      byMinute.get(Math.floor(t / MINUTE)) ?? {
        at: new Date(t).toISOString(),
        sent: 0,
        delivered: 0,
        read: 0,
        failed: 0,
      },
    );
  }
  return out;
}

/** Running totals of each count. */
export function cumulative(series: readonly SeriesPoint[]): SeriesPoint[] {
  const sum = { sent: 0, delivered: 0, read: 0, failed: 0 };
  return series.map((p) => {
    for (const k of SERIES_KEYS) sum[k] += p[k];
    return { at: p.at, ...sum };
  });
}

/** 1, 2, 5 × 10ⁿ steps so that about `count` ticks cover 0…max. */
export function niceTicks(max: number, count = 4): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const top = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  return ticks;
}

export interface ChartBox {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export interface ChartGeometry {
  lines: { key: SeriesKey; points: [number, number][]; path: string }[];
  yTicks: { value: number; y: number }[];
  xTicks: { at: string; x: number }[];
  yMax: number;
}

export function geometry(
  series: readonly SeriesPoint[],
  box: ChartBox,
  keys: readonly SeriesKey[] = SERIES_KEYS,
): ChartGeometry {
  const plotW = box.width - box.left - box.right;
  const plotH = box.height - box.top - box.bottom;
  const max = Math.max(0, ...series.flatMap((p) => keys.map((k) => p[k])));
  const yTicks = niceTicks(max);
  const yMax = yTicks[yTicks.length - 1]!;
  const x = (i: number) => box.left + (series.length <= 1 ? plotW / 2 : (i / (series.length - 1)) * plotW);
  const y = (v: number) => box.top + plotH - (v / yMax) * plotH;
  const round = (n: number) => Math.round(n * 10) / 10;
  const lines = keys.map((key) => {
    const points = series.map((p, i) => [round(x(i)), round(y(p[key]))] as [number, number]);
    const path = points.map(([px, py], i) => `${i === 0 ? 'M' : 'L'}${px},${py}`).join(' ');
    return { key, points, path };
  });
  const xCount = Math.min(series.length, 5);
  const xTicks =
    xCount <= 1
      ? series.map((p, i) => ({ at: p.at, x: round(x(i)) }))
      : Array.from({ length: xCount }, (_, j) => {
          const i = Math.round((j / (xCount - 1)) * (series.length - 1));
          return { at: series[i]!.at, x: round(x(i)) };
        });
  return { lines, yTicks: yTicks.map((v) => ({ value: v, y: round(y(v)) })), xTicks, yMax };
}
