import {
  ActionIcon,
  Anchor,
  Button,
  Group,
  Modal,
  Paper,
  Stack,
  Table,
  Text,
  TextInput,
  Textarea,
  Tooltip,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconEdit, IconPlus, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';
import { Link } from 'react-router';

import { client, unwrap } from '../../api/client';
import { qk, useGroups } from '../../api/queries';
import type { GroupOut } from '../../api/types';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { applyApiError, errorMessage } from '../../lib/forms';

export function GroupsPage() {
  const groups = useGroups();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<GroupOut | 'new' | null>(null);

  const remove = useMutation({
    mutationFn: (g: GroupOut) => unwrap(client.DELETE('/api/v1/groups/{id}', { params: { path: { id: g.id } } })),
    onSuccess: (_, g) => {
      void queryClient.invalidateQueries({ queryKey: qk.groups });
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      notifications.show({ color: 'teal', message: `Group ${g.name} deleted` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });

  const confirmDelete = (g: GroupOut) =>
    modals.openConfirmModal({
      title: `Delete group ${g.name}?`,
      children: <Text size="sm">The group is deleted; its contacts stay. This can't be undone.</Text>,
      labels: { confirm: 'Delete group', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(g),
    });

  const newButton = (
    <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing('new')}>
      New group
    </Button>
  );

  return (
    <>
      <PageHeader title="Groups" description="Static lists of contacts to send to and work with." actions={newButton} />
      <Paper withBorder radius="md">
        <QueryState
          query={groups}
          isEmpty={(g) => g.length === 0}
          empty={
            <EmptyState title="No groups yet">Create a group such as "Newsletter" or "Trade fair 2026".</EmptyState>
          }
        >
          {(list) => (
            <Table verticalSpacing="sm" data-testid="groups-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Group</Table.Th>
                  <Table.Th>Contacts</Table.Th>
                  <Table.Th w={100} />
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.map((g) => (
                  <Table.Tr key={g.id} data-testid={`group-${g.name}`}>
                    <Table.Td>
                      <Text size="sm" fw={500}>
                        {g.name}
                      </Text>
                      {g.description && (
                        <Text size="xs" c="dimmed" lineClamp={2}>
                          {g.description}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <Anchor
                        component={Link}
                        to={`/contacts?group=${g.id}`}
                        size="sm"
                        aria-label={`Contacts in ${g.name}`}
                      >
                        {g.member_count} {g.member_count === 1 ? 'contact' : 'contacts'}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4} justify="flex-end" wrap="nowrap">
                        <Tooltip label="Edit">
                          <ActionIcon variant="subtle" aria-label={`Edit ${g.name}`} onClick={() => setEditing(g)}>
                            <IconEdit size={16} />
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label="Delete">
                          <ActionIcon
                            variant="subtle"
                            color="red"
                            aria-label={`Delete ${g.name}`}
                            onClick={() => confirmDelete(g)}
                          >
                            <IconTrash size={16} />
                          </ActionIcon>
                        </Tooltip>
                      </Group>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
        </QueryState>
      </Paper>
      <GroupModal
        key={editing === 'new' ? 'new' : (editing?.id ?? 'none')}
        editing={editing}
        onClose={() => setEditing(null)}
      />
    </>
  );
}

function GroupModal({ editing, onClose }: { editing: GroupOut | 'new' | null; onClose: () => void }) {
  const queryClient = useQueryClient();
  const group = editing && editing !== 'new' ? editing : null;
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { name: group?.name ?? '', description: group?.description ?? '' },
    validate: { name: (v) => (v.trim() ? null : 'Enter a name') },
  });

  const save = useMutation({
    mutationFn: (v: { name: string; description: string }) => {
      const body = { name: v.name.trim(), description: v.description.trim() || null };
      return group
        ? unwrap(client.PATCH('/api/v1/groups/{id}', { params: { path: { id: group.id } }, body }))
        : unwrap(client.POST('/api/v1/groups', { body }));
    },
    onSuccess: (g) => {
      void queryClient.invalidateQueries({ queryKey: qk.groups });
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      notifications.show({ color: 'teal', message: group ? `Group ${g.name} saved` : `Group ${g.name} created` });
      onClose();
    },
    onError: (e) => setFormError(applyApiError(form, e)),
  });

  return (
    <Modal opened={editing !== null} onClose={onClose} title={group ? `Edit group ${group.name}` : 'New group'}>
      <form
        noValidate
        onSubmit={form.onSubmit((v) => {
          setFormError(null);
          save.mutate(v);
        })}
      >
        <Stack>
          <FormError message={formError} />
          <TextInput label="Name" required data-autofocus {...form.getInputProps('name')} />
          <Textarea label="Description" autosize minRows={2} {...form.getInputProps('description')} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              {group ? 'Save group' : 'Create group'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
