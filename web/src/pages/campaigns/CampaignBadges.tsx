import { Badge, Group, Progress, Stack, Text, Tooltip } from '@mantine/core';

import { progressLabel, progressPercent, STATUS_COLOR, STATUS_LABEL } from '../../lib/campaigns/progress';
import type { CampaignOut, Counts } from '../../lib/campaigns/types';

export function CampaignStatusBadge({
  c,
  size = 'md',
}: {
  c: Pick<CampaignOut, 'status' | 'pause_reason'>;
  size?: 'sm' | 'md' | 'lg';
}) {
  const badge = (
    <Badge
      component="span"
      color={STATUS_COLOR[c.status]}
      variant="light"
      size={size}
      data-testid="campaign-status"
      data-status={c.status}
    >
      {STATUS_LABEL[c.status]}
    </Badge>
  );
  return c.pause_reason ? (
    <Tooltip label={c.pause_reason} multiline maw={320} withArrow>
      {badge}
    </Tooltip>
  ) : (
    badge
  );
}

/** Done (sent + failed + skipped) of total as a bar: sent in teal, failed in red, skipped in gray. */
export function CampaignProgress({
  counts,
  label = 'Progress',
  animated,
}: {
  counts: Counts;
  label?: string;
  animated?: boolean;
}) {
  const pct = progressPercent(counts);
  const part = (n: number) => (counts.total > 0 ? (n / counts.total) * 100 : 0);
  return (
    <Stack gap={4} w="100%">
      <Progress.Root
        size="lg"
        role="progressbar"
        aria-label={label}
        aria-valuenow={pct}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuetext={progressLabel(counts)}
        data-testid="campaign-progress"
        data-value={pct}
      >
        <Progress.Section withAria={false} value={part(counts.sent)} color="teal" animated={animated}>
          <Progress.Label>{counts.sent > 0 && part(counts.sent) > 8 ? counts.sent : ''}</Progress.Label>
        </Progress.Section>
        <Progress.Section withAria={false} value={part(counts.failed)} color="red" />
        <Progress.Section withAria={false} value={part(counts.skipped)} color="gray" />
      </Progress.Root>
      <Group justify="space-between" gap="xs">
        <Text size="xs" c="dimmed" data-testid="campaign-progress-label">
          {progressLabel(counts)}
        </Text>
        <Text size="xs" c="dimmed">
          {pct}%
        </Text>
      </Group>
    </Stack>
  );
}
