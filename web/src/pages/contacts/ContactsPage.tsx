import {
  ActionIcon,
  Badge,
  Button,
  Center,
  Chip,
  Group,
  Loader,
  Paper,
  Select,
  Table,
  Text,
  TextInput,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconPlus, IconSearch, IconStar, IconStarFilled } from '@tabler/icons-react';
import { useState } from 'react';
import { useLocation, useNavigate, useParams } from 'react-router';

import { client, unwrap } from '../../api/client';
import { qk, useContacts, type ContactFilters, type ContactSort } from '../../api/queries';
import type { ContactOut } from '../../api/types';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { mainIdentity } from '../../lib/contacts';
import { errorMessage } from '../../lib/forms';
import { ContactDrawer } from './ContactDrawer';
import { ContactFormModal } from './ContactFormModal';

const SORTS: { value: ContactSort; label: string }[] = [
  { value: 'name', label: 'Name' },
  { value: '-created_at', label: 'Newest' },
  { value: '-updated_at', label: 'Recently updated' },
];

export function ContactsPage() {
  const { id } = useParams();
  const navigate = useNavigate();
  const { search } = useLocation();
  const [q, setQ] = useState('');
  const [debouncedQ] = useDebouncedValue(q, 250);
  const [sort, setSort] = useState<ContactSort>('name');
  const [favorite, setFavorite] = useState(false);
  const [blocked, setBlocked] = useState(false);
  const [createOpen, setCreateOpen] = useState(false);

  const filters: ContactFilters = { q: debouncedQ, sort, favorite, blocked };
  const contacts = useContacts(filters);
  const filtered = !!debouncedQ.trim() || favorite || blocked;

  const open = (cid: string) => navigate(`/contacts/${cid}${search}`);
  const close = () => navigate(`/contacts${search}`);

  const newButton = (
    <Button leftSection={<IconPlus size={16} />} onClick={() => setCreateOpen(true)}>
      New contact
    </Button>
  );

  const items = contacts.data?.pages.flatMap((p) => p.items) ?? [];

  let body;
  if (contacts.isPending) body = <LoadingState label="Loading contacts…" />;
  else if (contacts.isError && items.length === 0)
    body = <ErrorState error={contacts.error} onRetry={() => void contacts.refetch()} />;
  else if (items.length === 0)
    body = filtered ? (
      <EmptyState title="No contacts match">Try another search or clear the filters.</EmptyState>
    ) : (
      <EmptyState title="No contacts yet" action={newButton}>
        Add the people you talk to, with their phones, e-mails and channel ids.
      </EmptyState>
    );
  else
    body = (
      <>
        <ContactTable items={items} onOpen={open} />
        {contacts.isFetchNextPageError && (
          <Text c="red" size="sm" ta="center" py="xs">
            {errorMessage(contacts.error)}
          </Text>
        )}
        {contacts.hasNextPage && (
          <Center py="sm">
            <Button variant="light" onClick={() => void contacts.fetchNextPage()} loading={contacts.isFetchingNextPage}>
              Load more
            </Button>
          </Center>
        )}
      </>
    );

  return (
    <>
      <PageHeader title="Contacts" description="The people and businesses you talk to." actions={newButton} />
      <Group mb="md" align="flex-end" wrap="wrap">
        <TextInput
          placeholder="Search by name, company, phone, e-mail…"
          aria-label="Search contacts"
          leftSection={<IconSearch size={16} />}
          rightSection={contacts.isFetching && !contacts.isPending ? <Loader size="xs" /> : null}
          value={q}
          onChange={(e) => setQ(e.currentTarget.value)}
          style={{ flex: 1, minWidth: 240 }}
        />
        <Select
          label="Sort"
          data={SORTS}
          value={sort}
          allowDeselect={false}
          onChange={(v) => v && setSort(v as ContactSort)}
          w={180}
        />
        <Chip checked={favorite} onChange={setFavorite} variant="light">
          Favorites
        </Chip>
        <Chip checked={blocked} onChange={setBlocked} variant="light" color="red">
          Blocked
        </Chip>
      </Group>
      <Paper withBorder radius="md">
        {body}
      </Paper>
      <ContactFormModal opened={createOpen} onClose={() => setCreateOpen(false)} onSaved={(c) => open(c.id)} />
      <ContactDrawer id={id ?? null} onClose={close} />
    </>
  );
}

function ContactTable({ items, onOpen }: { items: ContactOut[]; onOpen: (id: string) => void }) {
  const queryClient = useQueryClient();
  const star = useMutation({
    mutationFn: (c: ContactOut) =>
      unwrap(
        client.PATCH('/api/v1/contacts/{id}', { params: { path: { id: c.id } }, body: { favorite: !c.favorite } }),
      ),
    onSuccess: (c) => {
      queryClient.setQueryData(qk.contact(c.id), c);
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not change', message: errorMessage(e) }),
  });

  return (
    <Table.ScrollContainer minWidth={720}>
      <Table verticalSpacing="sm" highlightOnHover data-testid="contacts-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th w={40} />
            <Table.Th>Name</Table.Th>
            <Table.Th>Company</Table.Th>
            <Table.Th>Phone</Table.Th>
            <Table.Th>E-mail</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {items.map((c) => {
            const phone = mainIdentity(c.identities, ['phone', 'whatsapp_phone']);
            const email = mainIdentity(c.identities, ['email']);
            return (
              <Table.Tr key={c.id} data-testid="contact-row" style={{ cursor: 'pointer' }} onClick={() => onOpen(c.id)}>
                <Table.Td>
                  <ActionIcon
                    variant="subtle"
                    color={c.favorite ? 'yellow' : 'gray'}
                    aria-label={c.favorite ? `Unstar ${c.name}` : `Star ${c.name}`}
                    aria-pressed={c.favorite}
                    onClick={(e) => {
                      e.stopPropagation();
                      star.mutate(c);
                    }}
                  >
                    {c.favorite ? <IconStarFilled size={16} /> : <IconStar size={16} />}
                  </ActionIcon>
                </Table.Td>
                <Table.Td>
                  <Group gap="xs" wrap="nowrap">
                    <Text size="sm" fw={500}>
                      {c.name}
                    </Text>
                    {c.blocked && (
                      <Badge size="xs" color="red" variant="light">
                        Blocked
                      </Badge>
                    )}
                  </Group>
                </Table.Td>
                <Table.Td>
                  <Text size="sm">{c.company ?? ''}</Text>
                </Table.Td>
                <Table.Td>
                  <Text size="sm" ff="monospace">
                    {phone?.value ?? ''}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Text size="sm">{email?.value ?? ''}</Text>
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
