import {
  ActionIcon,
  Badge,
  Button,
  Checkbox,
  Chip,
  Group,
  Loader,
  Menu,
  Paper,
  Select,
  Table,
  Text,
  TextInput,
} from '@mantine/core';
import { modals } from '@mantine/modals';
import { useDebouncedValue } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import {
  IconChevronDown,
  IconDownload,
  IconPlus,
  IconSearch,
  IconStar,
  IconStarFilled,
  IconTrash,
  IconX,
} from '@tabler/icons-react';
import { useState } from 'react';
import { Link, useLocation, useNavigate, useParams, useSearchParams } from 'react-router';

import { client, unwrap } from '../../api/client';
import { LoadMoreSentinel } from '../../components/LoadMoreSentinel';
import {
  qk,
  useContacts,
  useGroups,
  useSegments,
  useTags,
  type ContactFilters,
  type ContactSort,
} from '../../api/queries';
import { atLeast, type BulkAction, type ContactOut } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { PageHeader } from '../../components/PageHeader';
import { TagBadge } from '../../components/TagBadge';
import { UserAvatar } from '../../components/UserAvatar';
import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { mainIdentity } from '../../lib/contacts';
import { fileNameFrom, saveBlob } from '../../lib/download';
import { errorMessage } from '../../lib/forms';
import { bulkBody, bulkMessage, pageSelection, selectedOnPage, toggleOne, togglePage } from '../../lib/organize';
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
  const [params, setParams] = useSearchParams();
  const tag = params.get('tag');
  const group = params.get('group');
  const segment = params.get('segment');
  const segments = useSegments();
  const tags = useTags();
  const groups = useGroups();
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [q, setQ] = useState('');
  const [debouncedQ] = useDebouncedValue(q, 250);
  const [sort, setSort] = useState<ContactSort>('name');
  const [favorite, setFavorite] = useState(false);
  const [blocked, setBlocked] = useState(false);
  const [createOpen, setCreateOpen] = useState(false);

  const filters: ContactFilters = { q: debouncedQ, sort, favorite, blocked, tag, group, segment };
  const contacts = useContacts(filters);
  const filtered = !!debouncedQ.trim() || favorite || blocked || !!tag || !!group || !!segment;

  const setFilter = (key: 'tag' | 'group' | 'segment', value: string | null) =>
    setParams(
      (p) => {
        const next = new URLSearchParams(p);
        if (value) next.set(key, value);
        else next.delete(key);
        return next;
      },
      { replace: true },
    );

  const open = (cid: string) => navigate(`/contacts/${cid}${search}`);
  const close = () => navigate(`/contacts${search}`);

  const newButton = (
    <Button leftSection={<IconPlus size={16} />} onClick={() => setCreateOpen(true)}>
      New contact
    </Button>
  );

  const exportCsv = useMutation({
    mutationFn: async () => {
      const r = await client.GET('/api/v1/contacts/export.csv', {
        params: {
          query: {
            ...(debouncedQ.trim() ? { q: debouncedQ.trim() } : {}),
            ...(favorite ? { favorite: true } : {}),
            ...(blocked ? { blocked: true } : {}),
            ...(tag ? { tag } : {}),
            ...(group ? { group } : {}),
            ...(segment ? { segment } : {}),
          },
        },
        parseAs: 'blob',
      });
      const blob = await unwrap(Promise.resolve(r));
      const today = new Date().toISOString().slice(0, 10);
      saveBlob(blob, fileNameFrom(r.response.headers.get('Content-Disposition'), `contacts-${today}.csv`));
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Export failed', message: errorMessage(e) }),
  });

  const actions = (
    <Group gap="xs">
      <Button component={Link} to="/contacts/segments" variant="default">
        Segments
      </Button>
      <Button component={Link} to="/contacts/import" variant="default">
        Import
      </Button>
      <Button
        variant="default"
        leftSection={<IconDownload size={16} />}
        onClick={() => exportCsv.mutate()}
        loading={exportCsv.isPending}
      >
        Export
      </Button>
      {newButton}
    </Group>
  );

  const items = contacts.data?.pages.flatMap((p) => p.items) ?? [];
  const visibleIds = items.map((c) => c.id);
  const chosen = selectedOnPage(selected, visibleIds);

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
        <ContactTable
          items={items}
          onOpen={open}
          selected={selected}
          onToggle={(cid) => setSelected((s) => toggleOne(s, cid))}
          onTogglePage={() => setSelected((s) => togglePage(s, visibleIds))}
        />
        {contacts.isFetchNextPageError && (
          <Text c="red" size="sm" ta="center" py="xs">
            {errorMessage(contacts.error)}
          </Text>
        )}
        <LoadMoreSentinel
          hasMore={contacts.hasNextPage}
          loading={contacts.isFetchingNextPage}
          onLoadMore={() => void contacts.fetchNextPage()}
        />
      </>
    );

  return (
    <>
      <PageHeader title="Contacts" description="The people and businesses you talk to." actions={actions} />
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
        <Select
          label="Tag"
          placeholder="Any tag"
          data={(tags.data ?? []).map((t) => ({ value: t.id, label: t.name }))}
          value={tag}
          onChange={(v) => setFilter('tag', v)}
          clearable
          searchable
          w={170}
        />
        <Select
          label="Group"
          placeholder="Any group"
          data={(groups.data ?? []).map((g) => ({ value: g.id, label: g.name }))}
          value={group}
          onChange={(v) => setFilter('group', v)}
          clearable
          searchable
          w={170}
        />
        <Select
          label="Segment"
          placeholder="Any segment"
          data={(segments.data ?? []).map((sg) => ({ value: sg.id, label: sg.name }))}
          value={segment}
          onChange={(v) => setFilter('segment', v)}
          clearable
          searchable
          w={170}
        />
        <Chip checked={blocked} onChange={setBlocked} variant="light" color="red">
          Blocked
        </Chip>
      </Group>
      {chosen.length > 0 && <BulkBar ids={chosen} onDone={() => setSelected(new Set())} />}
      <Paper withBorder radius="md">
        {body}
      </Paper>
      <ContactFormModal opened={createOpen} onClose={() => setCreateOpen(false)} onSaved={(c) => open(c.id)} />
      <ContactDrawer id={id ?? null} onClose={close} />
    </>
  );
}

function BulkBar({ ids, onDone }: { ids: string[]; onDone: () => void }) {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const tags = useTags();
  const groups = useGroups();
  const queryClient = useQueryClient();

  const run = useMutation({
    mutationFn: (v: { action: BulkAction; target?: string; targetName?: string }) =>
      unwrap(client.POST('/api/v1/contacts/bulk', { body: bulkBody(v.action, ids, v.target) })),
    onSuccess: (out, v) => {
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      void queryClient.invalidateQueries({ queryKey: qk.groups });
      notifications.show({ color: 'teal', message: bulkMessage(v.action, out.affected, v.targetName) });
      onDone();
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Bulk action failed', message: errorMessage(e) }),
  });

  const confirmDelete = () =>
    modals.openConfirmModal({
      title: `Delete ${ids.length} contact${ids.length === 1 ? '' : 's'}?`,
      children: <Text size="sm">The selected contacts and their identities are deleted. This can't be undone.</Text>,
      labels: { confirm: 'Delete contacts', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => run.mutate({ action: 'delete' }),
    });

  const menu = (label: string, action: BulkAction, options: { id: string; name: string }[], empty: string) => (
    <Menu position="bottom-start" withinPortal>
      <Menu.Target>
        <Button
          size="xs"
          variant="light"
          rightSection={<IconChevronDown size={14} />}
          loading={run.isPending && run.variables?.action === action}
        >
          {label}
        </Button>
      </Menu.Target>
      <Menu.Dropdown>
        {options.length === 0 && <Menu.Label>{empty}</Menu.Label>}
        {options.map((o) => (
          <Menu.Item key={o.id} onClick={() => run.mutate({ action, target: o.id, targetName: o.name })}>
            {o.name}
          </Menu.Item>
        ))}
      </Menu.Dropdown>
    </Menu>
  );

  const tagList = tags.data ?? [];
  const groupList = groups.data ?? [];
  return (
    <Paper withBorder radius="md" p="xs" mb="sm" data-testid="bulk-bar">
      <Group gap="xs" wrap="wrap">
        <Text size="sm" fw={500} data-testid="bulk-count">
          {ids.length} selected
        </Text>
        {menu('Add tag', 'add_tags', tagList, 'No tags yet')}
        {menu('Remove tag', 'remove_tags', tagList, 'No tags yet')}
        {menu('Add to group', 'add_to_groups', groupList, 'No groups yet')}
        {menu('Remove from group', 'remove_from_groups', groupList, 'No groups yet')}
        {isAdmin && (
          <Button size="xs" variant="light" color="red" leftSection={<IconTrash size={14} />} onClick={confirmDelete}>
            Delete
          </Button>
        )}
        <Button size="xs" variant="subtle" color="gray" leftSection={<IconX size={14} />} onClick={onDone}>
          Clear selection
        </Button>
      </Group>
    </Paper>
  );
}

function ContactTable({
  items,
  onOpen,
  selected,
  onToggle,
  onTogglePage,
}: {
  items: ContactOut[];
  onOpen: (id: string) => void;
  selected: ReadonlySet<string>;
  onToggle: (id: string) => void;
  onTogglePage: () => void;
}) {
  const pageState = pageSelection(
    selected,
    items.map((c) => c.id),
  );
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
    <Table.ScrollContainer minWidth={900}>
      <Table verticalSpacing="sm" highlightOnHover data-testid="contacts-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th w={40}>
              <Checkbox
                aria-label="Select all on page"
                checked={pageState === 'all'}
                indeterminate={pageState === 'some'}
                onChange={onTogglePage}
              />
            </Table.Th>
            <Table.Th w={40} />
            <Table.Th>Name</Table.Th>
            <Table.Th>Company</Table.Th>
            <Table.Th>Phone</Table.Th>
            <Table.Th>E-mail</Table.Th>
            <Table.Th>Tags and groups</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {items.map((c) => {
            const phone = mainIdentity(c.identities, ['phone', 'whatsapp_phone']);
            const email = mainIdentity(c.identities, ['email']);
            return (
              <Table.Tr
                key={c.id}
                data-testid="contact-row"
                style={{ cursor: 'pointer' }}
                onClick={() => onOpen(c.id)}
                bg={selected.has(c.id) ? 'var(--mantine-primary-color-light)' : undefined}
              >
                <Table.Td onClick={(e) => e.stopPropagation()}>
                  <Checkbox
                    aria-label={`Select ${c.name}`}
                    checked={selected.has(c.id)}
                    onChange={() => onToggle(c.id)}
                  />
                </Table.Td>
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
                    <UserAvatar name={c.name} url={c.avatar_url} size="sm" data-testid="contact-row-avatar" />
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
                <Table.Td>
                  <Group gap={4}>
                    {(c.tags ?? []).map((t) => (
                      <TagBadge key={t.id} name={t.name} color={t.color} size="xs" />
                    ))}
                    {(c.groups ?? []).map((g) => (
                      <Badge key={g.id} size="xs" variant="outline" color="gray" data-testid="group-chip" tt="none">
                        {g.name}
                      </Badge>
                    ))}
                  </Group>
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
