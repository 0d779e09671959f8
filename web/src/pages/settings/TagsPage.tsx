import {
  ActionIcon,
  Button,
  ColorInput,
  Group,
  Modal,
  Paper,
  Stack,
  Table,
  Text,
  TextInput,
  Tooltip,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconEdit, IconPlus, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';

import { client, unwrap } from '../../api/client';
import { qk, useTags } from '../../api/queries';
import type { TagOut } from '../../api/types';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { TagBadge } from '../../components/TagBadge';
import { applyApiError, errorMessage } from '../../lib/forms';
import { TAG_SWATCHES, isHexColor } from '../../lib/organize';

export function TagsPage() {
  const tags = useTags();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<TagOut | 'new' | null>(null);

  const remove = useMutation({
    mutationFn: (t: TagOut) => unwrap(client.DELETE('/api/v1/tags/{id}', { params: { path: { id: t.id } } })),
    onSuccess: (_, t) => {
      void queryClient.invalidateQueries({ queryKey: qk.tags });
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      notifications.show({ color: 'teal', message: `Tag ${t.name} deleted` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });

  const confirmDelete = (t: TagOut) =>
    modals.openConfirmModal({
      title: `Delete tag ${t.name}?`,
      children: <Text size="sm">The tag is removed from every contact. This can't be undone.</Text>,
      labels: { confirm: 'Delete tag', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(t),
    });

  const newButton = (
    <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing('new')}>
      New tag
    </Button>
  );

  return (
    <>
      <PageHeader
        title="Tags"
        description="Coloured labels for contacts, to filter and act on them."
        actions={newButton}
      />
      <Paper withBorder radius="md">
        <QueryState
          query={tags}
          isEmpty={(t) => t.length === 0}
          empty={<EmptyState title="No tags yet">Create a tag such as "VIP" or "Lead".</EmptyState>}
        >
          {(list) => (
            <Table verticalSpacing="sm" data-testid="tags-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Tag</Table.Th>
                  <Table.Th>Colour</Table.Th>
                  <Table.Th w={100} />
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.map((t) => (
                  <Table.Tr key={t.id} data-testid={`tag-${t.name}`}>
                    <Table.Td>
                      <TagBadge name={t.name} color={t.color} />
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" ff="monospace">
                        {t.color}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4} justify="flex-end" wrap="nowrap">
                        <Tooltip label="Edit">
                          <ActionIcon variant="subtle" aria-label={`Edit ${t.name}`} onClick={() => setEditing(t)}>
                            <IconEdit size={16} />
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label="Delete">
                          <ActionIcon
                            variant="subtle"
                            color="red"
                            aria-label={`Delete ${t.name}`}
                            onClick={() => confirmDelete(t)}
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
      <TagModal
        key={editing === 'new' ? 'new' : (editing?.id ?? 'none')}
        editing={editing}
        onClose={() => setEditing(null)}
      />
    </>
  );
}

function TagModal({ editing, onClose }: { editing: TagOut | 'new' | null; onClose: () => void }) {
  const queryClient = useQueryClient();
  const tag = editing && editing !== 'new' ? editing : null;
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { name: tag?.name ?? '', color: tag?.color ?? TAG_SWATCHES[5]! },
    validate: {
      name: (v) => (v.trim() ? null : 'Enter a name'),
      color: (v) => (isHexColor(v) ? null : 'Use a colour like #1971c2'),
    },
  });

  const save = useMutation({
    mutationFn: (v: { name: string; color: string }) => {
      const body = { name: v.name.trim(), color: v.color.trim() };
      return tag
        ? unwrap(client.PATCH('/api/v1/tags/{id}', { params: { path: { id: tag.id } }, body }))
        : unwrap(client.POST('/api/v1/tags', { body }));
    },
    onSuccess: (t) => {
      void queryClient.invalidateQueries({ queryKey: qk.tags });
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      notifications.show({ color: 'teal', message: tag ? `Tag ${t.name} saved` : `Tag ${t.name} created` });
      onClose();
    },
    onError: (e) => setFormError(applyApiError(form, e)),
  });

  return (
    <Modal opened={editing !== null} onClose={onClose} title={tag ? `Edit tag ${tag.name}` : 'New tag'}>
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
          <ColorInput
            label="Colour"
            format="hex"
            swatches={TAG_SWATCHES}
            swatchesPerRow={9}
            required
            {...form.getInputProps('color')}
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              {tag ? 'Save tag' : 'Create tag'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
