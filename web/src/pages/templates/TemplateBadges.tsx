import { Badge, Tooltip } from '@mantine/core';

import type { TemplateOut, TemplateQuality, TemplateStatus } from '../../lib/templates/types';

export const TEMPLATE_STATUS_LABEL: Record<TemplateStatus, string> = {
  draft: 'Draft',
  pending: 'In review',
  approved: 'Approved',
  rejected: 'Rejected',
  paused: 'Paused',
  disabled: 'Disabled',
};

const COLOR: Record<TemplateStatus, string> = {
  draft: 'gray',
  pending: 'yellow',
  approved: 'teal',
  rejected: 'red',
  paused: 'orange',
  disabled: 'dark',
};

const HINT: Partial<Record<TemplateStatus, string>> = {
  draft: 'Not submitted to WhatsApp yet',
  pending: 'WhatsApp is reviewing it (usually minutes, at most 24 hours)',
  paused: 'WhatsApp paused it after poor feedback from recipients',
  disabled: 'WhatsApp disabled it; it can no longer be sent',
};

/** The review status, with Meta's reason on a rejected one in a tooltip. */
export function TemplateStatusBadge({ t }: { t: Pick<TemplateOut, 'status' | 'rejected_reason' | 'kind'> }) {
  const label = t.kind === 'local' && t.status === 'approved' ? 'Ready' : TEMPLATE_STATUS_LABEL[t.status];
  const tip = t.status === 'rejected' ? `Rejected: ${t.rejected_reason || 'no reason given'}` : HINT[t.status];
  const badge = (
    <Badge
      component="span"
      color={COLOR[t.status]}
      variant="light"
      data-testid="template-status"
      data-status={t.status}
    >
      {label}
    </Badge>
  );
  return tip ? (
    <Tooltip label={tip} multiline maw={320} withArrow>
      {badge}
    </Tooltip>
  ) : (
    badge
  );
}

const QUALITY_COLOR: Record<TemplateQuality, string> = { GREEN: 'teal', YELLOW: 'yellow', RED: 'red', UNKNOWN: 'gray' };

export function QualityBadge({ quality }: { quality: TemplateQuality | null }) {
  if (!quality || quality === 'UNKNOWN') return null;
  return (
    <Tooltip label="Quality rating from WhatsApp, based on recipients' feedback">
      <Badge component="span" color={QUALITY_COLOR[quality]} variant="dot" size="sm">
        {quality.toLowerCase()} quality
      </Badge>
    </Tooltip>
  );
}
