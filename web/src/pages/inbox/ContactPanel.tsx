/** The contact beside the thread: from the contacts API (name, photo, identities, tags) with a link to the contact. */
import { Anchor, Box, Group, Stack, Text, Title } from '@mantine/core';
import { IconExternalLink } from '@tabler/icons-react';
import { Link } from 'react-router';

import { useContact } from '../../api/queries';
import { ErrorState, LoadingState } from '../../components/QueryState';
import { TagBadge } from '../../components/TagBadge';
import { UserAvatar } from '../../components/UserAvatar';
import type { ConversationOut } from '../../lib/inbox/types';
import { ChannelIcon } from './ChannelIcon';

const IDENTITY_LABEL: Record<string, string> = {
  phone: 'Phone',
  email: 'E-mail',
  whatsapp_phone: 'WhatsApp',
  whatsapp_user: 'WhatsApp',
  telegram: 'Telegram',
  sandbox: 'Sandbox',
};

export function ContactPanel({ conversation }: { conversation: ConversationOut }) {
  const contact = useContact(conversation.contact.id);
  return (
    <Box
      w={300}
      p="md"
      visibleFrom="lg"
      style={{ borderLeft: '1px solid var(--mantine-color-default-border)', overflowY: 'auto', flexShrink: 0 }}
      data-testid="contact-panel"
      component="aside"
      aria-label="Contact"
    >
      <Stack gap="sm">
        <Group gap="sm" wrap="nowrap">
          <UserAvatar
            name={contact.data?.name ?? conversation.contact.name}
            url={contact.data?.avatar_url ?? conversation.contact.avatar_url}
            size={48}
          />
          <Box style={{ minWidth: 0 }}>
            <Title order={4} lineClamp={2}>
              {contact.data?.name ?? conversation.contact.name}
            </Title>
            <Group gap={4}>
              <ChannelIcon kind={conversation.channel.kind} size={14} />
              <Text size="xs" c="dimmed" truncate>
                {conversation.contact.handle}
              </Text>
            </Group>
          </Box>
        </Group>
        {contact.isPending ? (
          <LoadingState label="Loading contact…" />
        ) : contact.isError ? (
          <ErrorState error={contact.error} title="Could not load the contact" />
        ) : (
          <>
            {contact.data.company && <Text size="sm">{contact.data.company}</Text>}
            <Stack gap={4} data-testid="contact-identities">
              {contact.data.identities.map((i) => (
                <Group key={i.id} gap={6} wrap="nowrap">
                  <Text size="xs" c="dimmed" w={70}>
                    {IDENTITY_LABEL[i.kind] ?? i.kind}
                  </Text>
                  <Text size="sm" truncate>
                    {i.value}
                  </Text>
                </Group>
              ))}
            </Stack>
            {(contact.data.tags ?? []).length > 0 && (
              <Group gap={4}>
                {(contact.data.tags ?? []).map((t) => (
                  <TagBadge key={t.id} name={t.name} color={t.color} />
                ))}
              </Group>
            )}
            {contact.data.notes && (
              <Text size="sm" c="dimmed" style={{ whiteSpace: 'pre-wrap' }}>
                {contact.data.notes}
              </Text>
            )}
          </>
        )}
        <Anchor component={Link} to={`/contacts/${conversation.contact.id}`} size="sm">
          <Group gap={4}>
            Open contact <IconExternalLink size={14} />
          </Group>
        </Anchor>
      </Stack>
    </Box>
  );
}
