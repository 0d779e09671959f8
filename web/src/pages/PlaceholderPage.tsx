import { Alert, Text } from '@mantine/core';
import { IconTools } from '@tabler/icons-react';

import { PageHeader } from '../components/PageHeader';

/** A section of the app that does not exist yet. It says so, and shows no invented data. */
export function PlaceholderPage({ title, purpose }: { title: string; purpose: string }) {
  return (
    <>
      <PageHeader title={title} />
      <Alert color="gray" icon={<IconTools size={18} />} title="Not built yet" data-testid="not-built">
        <Text size="sm">{purpose}</Text>
      </Alert>
    </>
  );
}

export const PLACEHOLDERS = [
  {
    path: 'workflows',
    title: 'Workflows',
    purpose: 'Automations that react to messages and events: routing, auto-replies, webhooks.',
  },
] as const;
