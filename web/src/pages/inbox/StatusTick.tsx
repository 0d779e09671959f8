import { Box, Tooltip } from '@mantine/core';
import { IconAlertCircleFilled, IconCheck, IconChecks, IconClock } from '@tabler/icons-react';

import { tickFor } from '../../lib/inbox/status';
import type { MessageError, MessageStatus } from '../../lib/inbox/types';

/** Delivery of an outbound message: clock, ✓, ✓✓, blue ✓✓, or a red ! with the provider's error. */
export function StatusTick({
  status,
  error,
  size = 14,
}: {
  status: MessageStatus;
  error?: MessageError | null;
  size?: number;
}) {
  const view = tickFor(status, error);
  if (!view) return null;
  const Icon =
    view.tick === 'clock'
      ? IconClock
      : view.tick === 'sent'
        ? IconCheck
        : view.tick === 'failed'
          ? IconAlertCircleFilled
          : IconChecks;
  return (
    <Tooltip label={view.label} multiline maw={320} withArrow>
      <Box
        component="span"
        c={view.color === 'dimmed' ? 'dimmed' : view.color}
        data-testid="status-tick"
        data-status={view.tick}
        aria-label={view.label}
        role="img"
        style={{ display: 'inline-flex', verticalAlign: 'middle' }}
      >
        <Icon size={size} />
      </Box>
    </Tooltip>
  );
}
