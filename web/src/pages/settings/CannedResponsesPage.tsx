/** Settings → Canned responses: reusable replies typed as `/shortcut` in the inbox composer. */
import {
  ActionIcon,
  Button,
  Code,
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
import { useDebouncedValue } from '@mantine/hooks';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconEdit, IconPlus, IconSearch, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';

import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { applyApiError, errorMessage } from '../../lib/forms';
import { createCanned, deleteCanned, inboxKeys, updateCanned, useCannedResponses } from '../../lib/inbox/api';
import { VARIABLES, shortcutError } from '../../lib/inbox/canned';
import type { CannedOut } from '../../lib/inbox/types';

export function CannedResponsesPage() {
  const [q, setQ] = useState('');
  const [debounced] = useDebouncedValue(q, 250);
  const list = useCannedResponses(debounced);
  const qc = useQueryClient();
  const [editing, setEditing] = useState<CannedOut | 'new' | null>(null);

  const remove = useMutation({
    mutationFn: (c: CannedOut) => deleteCanned(c.id),
    onSuccess: (_, c) => {
      void qc.invalidateQueries({ queryKey: inboxKeys.canned });
      notifications.show({ color: 'teal', message: `/${c.shortcut} deleted` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });

  const confirmDelete = (c: CannedOut) =>
    modals.openConfirmModal({
      title: `Delete /${c.shortcut}?`,
      children: <Text size="sm">The canned response “{c.title}” is removed for the whole team.</Text>,
      labels: { confirm: 'Delete', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(c),
    });

  const newButton = (
    <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing('new')}>
      New canned response
    </Button>
  );

  return (
    <>
      <PageHeader
        title="Canned responses"
        description="Saved replies for the inbox: type / and the shortcut in the composer."
        actions={newButton}
      />
      <TextInput
        mb="sm"
        maw={320}
        aria-label="Search canned responses"
        placeholder="Search"
        leftSection={<IconSearch size={14} />}
        value={q}
        onChange={(e) => setQ(e.currentTarget.value)}
      />
      <Paper withBorder radius="md">
        <QueryState
          query={list}
          isEmpty={(l) => l.length === 0}
          empty={
            debounced ? (
              <EmptyState title="Nothing matches">Try another search.</EmptyState>
            ) : (
              <EmptyState title="No canned responses yet" action={newButton}>
                Save answers you give often, like refund steps or opening hours.
              </EmptyState>
            )
          }
        >
          {(items) => (
            <Table verticalSpacing="sm" data-testid="canned-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th w={160}>Shortcut</Table.Th>
                  <Table.Th>Title and text</Table.Th>
                  <Table.Th w={100} />
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {items.map((c) => (
                  <Table.Tr key={c.id} data-testid={`canned-${c.shortcut}`}>
                    <Table.Td>
                      <Code>/{c.shortcut}</Code>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" fw={500}>
                        {c.title}
                      </Text>
                      <Text size="xs" c="dimmed" lineClamp={2}>
                        {c.body}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4} justify="flex-end" wrap="nowrap">
                        <Tooltip label="Edit">
                          <ActionIcon variant="subtle" aria-label={`Edit /${c.shortcut}`} onClick={() => setEditing(c)}>
                            <IconEdit size={16} />
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label="Delete">
                          <ActionIcon
                            variant="subtle"
                            color="red"
                            aria-label={`Delete /${c.shortcut}`}
                            onClick={() => confirmDelete(c)}
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
      <CannedModal
        key={editing === 'new' ? 'new' : (editing?.id ?? 'none')}
        editing={editing}
        onClose={() => setEditing(null)}
      />
    </>
  );
}

function CannedModal({ editing, onClose }: { editing: CannedOut | 'new' | null; onClose: () => void }) {
  const qc = useQueryClient();
  const canned = editing && editing !== 'new' ? editing : null;
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { shortcut: canned?.shortcut ?? '', title: canned?.title ?? '', body: canned?.body ?? '' },
    validate: {
      shortcut: (v) => shortcutError(v.trim()),
      title: (v) => (v.trim() ? null : 'Enter a title'),
      body: (v) => (v.trim() ? null : 'Enter the text'),
    },
  });

  const save = useMutation({
    mutationFn: (v: { shortcut: string; title: string; body: string }) => {
      const body = { shortcut: v.shortcut.trim(), title: v.title.trim(), body: v.body };
      return canned ? updateCanned(canned.id, body) : createCanned(body);
    },
    onSuccess: (c) => {
      void qc.invalidateQueries({ queryKey: inboxKeys.canned });
      notifications.show({ color: 'teal', message: canned ? `/${c.shortcut} saved` : `/${c.shortcut} created` });
      onClose();
    },
    onError: (e) =>
      setFormError(applyApiError(form, e, { codes: { conflict: 'shortcut', shortcut_taken: 'shortcut' } })),
  });

  return (
    <Modal
      opened={editing !== null}
      onClose={onClose}
      title={canned ? `Edit /${canned.shortcut}` : 'New canned response'}
      size="lg"
    >
      <form
        noValidate
        onSubmit={form.onSubmit((v) => {
          setFormError(null);
          save.mutate(v);
        })}
      >
        <Stack>
          <FormError message={formError} />
          <TextInput
            label="Shortcut"
            required
            leftSection={<Text size="sm">/</Text>}
            description="Lower-case letters, digits, - and _ (up to 32)."
            data-autofocus
            {...form.getInputProps('shortcut')}
          />
          <TextInput label="Title" required {...form.getInputProps('title')} />
          <Textarea label="Text" required autosize minRows={4} {...form.getInputProps('body')} />
          <Text size="xs" c="dimmed">
            Variables, filled in when inserted: {VARIABLES.map((v) => `{{${v}}}`).join(', ')}
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              {canned ? 'Save' : 'Create'}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
