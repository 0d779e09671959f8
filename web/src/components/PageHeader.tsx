import { Group, Stack, Text, Title } from '@mantine/core';
import type { ReactNode } from 'react';

/**
 * A page's title, description and actions. The actions sit to the right and move below the
 * title when they do not fit next to it (narrow screens, pages with many actions).
 */
export function PageHeader({
  title,
  description,
  actions,
}: {
  title: string;
  description?: ReactNode;
  actions?: ReactNode;
}) {
  return (
    <Group justify="space-between" align="flex-start" mb="md" wrap="wrap" gap="sm">
      <Stack gap={4} style={{ flex: '1 1 0', minWidth: 'min(100%, 280px)' }}>
        <Title order={2}>{title}</Title>
        {description && (
          <Text c="dimmed" size="sm">
            {description}
          </Text>
        )}
      </Stack>
      {actions && <div style={{ flexShrink: 0, maxWidth: '100%' }}>{actions}</div>}
    </Group>
  );
}
