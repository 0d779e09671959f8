/**
 * Sent / delivered / read / failed over time, from the stats' per-minute buckets: a hand-drawn SVG
 * line chart (no chart library), cumulative by default or per minute. The numbers are also in a
 * visually hidden table for screen readers.
 */
import { Group, SegmentedControl, Stack, Text, VisuallyHidden } from '@mantine/core';
import { useElementSize } from '@mantine/hooks';
import { useState } from 'react';

import { SERIES_KEYS, cumulative, fillGaps, geometry, type SeriesKey } from '../../lib/campaigns/chart';
import type { SeriesPoint } from '../../lib/campaigns/types';

const COLOR: Record<SeriesKey, string> = {
  sent: 'var(--mantine-color-blue-6)',
  delivered: 'var(--mantine-color-teal-6)',
  read: 'var(--mantine-color-grape-6)',
  failed: 'var(--mantine-color-red-6)',
};
const LABEL: Record<SeriesKey, string> = { sent: 'Sent', delivered: 'Delivered', read: 'Read', failed: 'Failed' };

const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const HEIGHT = 220;

export function StatusChart({ series }: { series: readonly SeriesPoint[] }) {
  const [mode, setMode] = useState<'total' | 'minute'>('total');
  const { ref, width } = useElementSize();
  const filled = fillGaps(series);
  const data = mode === 'total' ? cumulative(filled) : filled;
  const w = Math.max(280, Math.round(width) || 600);
  const g = geometry(data, { width: w, height: HEIGHT, left: 44, right: 12, top: 10, bottom: 26 });

  return (
    <Stack gap="xs">
      <Group justify="space-between" wrap="wrap">
        <Group gap="md">
          {SERIES_KEYS.map((k) => (
            <Group key={k} gap={4}>
              <span style={{ width: 12, height: 3, background: COLOR[k], display: 'inline-block', borderRadius: 2 }} />
              <Text size="xs">{LABEL[k]}</Text>
            </Group>
          ))}
        </Group>
        <SegmentedControl
          size="xs"
          aria-label="Chart values"
          value={mode}
          onChange={(v) => setMode(v as 'total' | 'minute')}
          data={[
            { value: 'total', label: 'Running total' },
            { value: 'minute', label: 'Per minute' },
          ]}
        />
      </Group>
      <div ref={ref} style={{ width: '100%' }}>
        {data.length === 0 ? (
          <Text size="sm" c="dimmed" py="lg" ta="center">
            Nothing sent yet.
          </Text>
        ) : (
          <svg
            width={w}
            height={HEIGHT}
            viewBox={`0 0 ${w} ${HEIGHT}`}
            role="img"
            aria-label={`Messages over time (${mode === 'total' ? 'running total' : 'per minute'})`}
            data-testid="status-chart"
            style={{ display: 'block', maxWidth: '100%' }}
          >
            {g.yTicks.map((t) => (
              <g key={t.value}>
                <line
                  x1={44}
                  x2={w - 12}
                  y1={t.y}
                  y2={t.y}
                  stroke="var(--mantine-color-default-border)"
                  strokeWidth={1}
                />
                <text x={38} y={t.y + 4} textAnchor="end" fontSize={10} fill="var(--mantine-color-dimmed)">
                  {t.value}
                </text>
              </g>
            ))}
            {g.xTicks.map((t, i) => (
              <text
                key={`${t.at}-${i}`}
                x={t.x}
                y={HEIGHT - 8}
                textAnchor="middle"
                fontSize={10}
                fill="var(--mantine-color-dimmed)"
              >
                {time.format(new Date(t.at))}
              </text>
            ))}
            {g.lines.map((l) =>
              l.points.length === 1 ? (
                <circle key={l.key} cx={l.points[0]![0]} cy={l.points[0]![1]} r={3} fill={COLOR[l.key]} />
              ) : (
                <path
                  key={l.key}
                  d={l.path}
                  fill="none"
                  stroke={COLOR[l.key]}
                  strokeWidth={2}
                  strokeLinejoin="round"
                  data-series={l.key}
                />
              ),
            )}
          </svg>
        )}
      </div>
      <VisuallyHidden>
        <table>
          <caption>Messages per minute</caption>
          <thead>
            <tr>
              <th>Minute</th>
              {SERIES_KEYS.map((k) => (
                <th key={k}>{LABEL[k]}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {filled.map((p) => (
              <tr key={p.at}>
                <td>{time.format(new Date(p.at))}</td>
                {SERIES_KEYS.map((k) => (
                  <td key={k}>{p[k]}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </VisuallyHidden>
    </Stack>
  );
}
