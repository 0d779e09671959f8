import {
  ActionIcon,
  Alert,
  Badge,
  Button,
  Group,
  Modal,
  Paper,
  Select,
  Stack,
  Switch,
  Table,
  TagsInput,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconEdit, IconPlus, IconTrash } from '@tabler/icons-react';
import { useMemo, useState } from 'react';

import { client, unwrap } from '../../api/client';
import { qk, useContactAttributes, useContactSettings } from '../../api/queries';
import { atLeast, type AttrDefOut, type AttrType, type ContactSettingsOut } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { ATTR_TYPES, ATTR_TYPE_LABEL, countryOptions, isChoice, suggestKey } from '../../lib/contacts';
import { applyApiError, errorMessage } from '../../lib/forms';

export function ContactFieldsPage() {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const defs = useContactAttributes();
  const settings = useContactSettings();
  const [createOpen, setCreateOpen] = useState(false);
  const [editing, setEditing] = useState<AttrDefOut | null>(null);

  return (
    <>
      <PageHeader
        title="Contact fields"
        description="Custom fields every contact of this organization can have, and how phone numbers are read."
        actions={
          isAdmin && (
            <Button leftSection={<IconPlus size={16} />} onClick={() => setCreateOpen(true)}>
              New field
            </Button>
          )
        }
      />
      {!isAdmin && (
        <Alert color="gray" variant="light" mb="md">
          Only admins and owners can change contact fields.
        </Alert>
      )}
      <Paper withBorder radius="md" mb="xl">
        <QueryState
          query={defs}
          isEmpty={(d) => d.length === 0}
          empty={
            <EmptyState title="No custom fields yet">
              {isAdmin
                ? 'Add fields such as "Plan", "Birthday" or "Customer since" to record what matters to you.'
                : 'An admin can add custom fields.'}
            </EmptyState>
          }
        >
          {(list) => <FieldsTable list={list} isAdmin={isAdmin} onEdit={setEditing} />}
        </QueryState>
      </Paper>

      <Title order={4} mb="sm">
        Phone numbers
      </Title>
      <Paper withBorder radius="md" p="lg">
        <QueryState query={settings}>{(s) => <CountryForm settings={s} canEdit={isAdmin} />}</QueryState>
      </Paper>

      <CreateFieldModal opened={createOpen} onClose={() => setCreateOpen(false)} />
      <EditFieldModal def={editing} onClose={() => setEditing(null)} />
    </>
  );
}

function FieldsTable({
  list,
  isAdmin,
  onEdit,
}: {
  list: AttrDefOut[];
  isAdmin: boolean;
  onEdit: (d: AttrDefOut) => void;
}) {
  const queryClient = useQueryClient();
  const remove = useMutation({
    mutationFn: (d: AttrDefOut) =>
      unwrap(client.DELETE('/api/v1/contact-attributes/{key}', { params: { path: { key: d.key } } })),
    onSuccess: (_, d) => {
      void queryClient.invalidateQueries({ queryKey: qk.contactAttributes });
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      notifications.show({ color: 'teal', message: `Field ${d.label} deleted` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });
  const confirmDelete = (d: AttrDefOut) =>
    modals.openConfirmModal({
      title: `Delete the field ${d.label}?`,
      children: <Text size="sm">Every contact's value for {d.label} is deleted too. This can't be undone.</Text>,
      labels: { confirm: 'Delete field', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(d),
    });

  return (
    <Table.ScrollContainer minWidth={640}>
      <Table verticalSpacing="sm" data-testid="contact-fields-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Label</Table.Th>
            <Table.Th>Key</Table.Th>
            <Table.Th>Type</Table.Th>
            <Table.Th>Options</Table.Th>
            {isAdmin && <Table.Th w={90} />}
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {list.map((d) => (
            <Table.Tr key={d.key} data-testid={`contact-field-${d.key}`}>
              <Table.Td>
                <Group gap="xs">
                  <Text size="sm" fw={500}>
                    {d.label}
                  </Text>
                  {d.required && (
                    <Badge size="xs" variant="light">
                      Required
                    </Badge>
                  )}
                </Group>
              </Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {d.key}
                </Text>
              </Table.Td>
              <Table.Td>
                <Text size="sm">{ATTR_TYPE_LABEL[d.type]}</Text>
              </Table.Td>
              <Table.Td>
                <Text size="sm" c={d.options.length ? undefined : 'dimmed'}>
                  {d.options.length ? d.options.join(', ') : '—'}
                </Text>
              </Table.Td>
              {isAdmin && (
                <Table.Td>
                  <Group gap={4} wrap="nowrap">
                    <ActionIcon variant="subtle" aria-label={`Edit ${d.label}`} onClick={() => onEdit(d)}>
                      <IconEdit size={16} />
                    </ActionIcon>
                    <ActionIcon
                      variant="subtle"
                      color="red"
                      aria-label={`Delete ${d.label}`}
                      onClick={() => confirmDelete(d)}
                    >
                      <IconTrash size={16} />
                    </ActionIcon>
                  </Group>
                </Table.Td>
              )}
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

interface FieldValues {
  label: string;
  key: string;
  type: AttrType;
  options: string[];
  required: boolean;
}

function CreateFieldModal({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const queryClient = useQueryClient();
  const [formError, setFormError] = useState<string | null>(null);
  const [keyTouched, setKeyTouched] = useState(false);
  const form = useForm<FieldValues>({
    mode: 'controlled',
    initialValues: { label: '', key: '', type: 'text', options: [], required: false },
    validate: {
      label: (v) => (v.trim() ? null : 'Give the field a label'),
      key: (v) => (/^[a-z][a-z0-9_]{0,39}$/.test(v) ? null : 'Lower-case letters, digits and _; start with a letter'),
      options: (v, values) => (isChoice(values.type) && v.length === 0 ? 'Add at least one option' : null),
    },
  });
  const close = () => {
    onClose();
    form.reset();
    setKeyTouched(false);
    setFormError(null);
  };
  const create = useMutation({
    mutationFn: (v: FieldValues) =>
      unwrap(
        client.POST('/api/v1/contact-attributes', {
          body: {
            key: v.key,
            label: v.label.trim(),
            type: v.type,
            options: isChoice(v.type) ? v.options : [],
            required: v.required,
          },
        }),
      ),
    onSuccess: (d) => {
      void queryClient.invalidateQueries({ queryKey: qk.contactAttributes });
      notifications.show({ color: 'teal', message: `Field ${d.label} created` });
      close();
    },
    onError: (e) => setFormError(applyApiError(form, e, { codes: { attribute_key_taken: 'key' } })),
  });

  return (
    <Modal opened={opened} onClose={close} title="New contact field">
      <form
        noValidate
        onSubmit={form.onSubmit((v) => {
          setFormError(null);
          create.mutate(v);
        })}
      >
        <Stack>
          <FormError message={formError} />
          <TextInput
            label="Label"
            required
            data-autofocus
            {...form.getInputProps('label')}
            onChange={(e) => {
              const label = e.currentTarget.value;
              form.setFieldValue('label', label);
              if (!keyTouched) form.setFieldValue('key', suggestKey(label));
            }}
          />
          <TextInput
            label="Key"
            description="Used in the API and imports; it cannot change later."
            required
            {...form.getInputProps('key')}
            onChange={(e) => {
              setKeyTouched(true);
              form.setFieldValue('key', e.currentTarget.value);
            }}
          />
          <Select
            label="Type"
            data={ATTR_TYPES.map((t) => ({ value: t, label: ATTR_TYPE_LABEL[t] }))}
            allowDeselect={false}
            {...form.getInputProps('type')}
          />
          {isChoice(form.values.type) && (
            <TagsInput
              label="Options"
              description="Type an option and press Enter."
              required
              {...form.getInputProps('options')}
            />
          )}
          <Switch label="Required" {...form.getInputProps('required', { type: 'checkbox' })} />
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button type="submit" loading={create.isPending}>
              Create field
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function EditFieldModal({ def, onClose }: { def: AttrDefOut | null; onClose: () => void }) {
  return (
    <Modal opened={!!def} onClose={onClose} title={def ? `Edit ${def.label}` : ''}>
      {def && <EditFieldForm key={def.key} def={def} onClose={onClose} />}
    </Modal>
  );
}

function EditFieldForm({ def, onClose }: { def: AttrDefOut; onClose: () => void }) {
  const queryClient = useQueryClient();
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { label: def.label, options: def.options, required: def.required },
    validate: {
      label: (v) => (v.trim() ? null : 'Give the field a label'),
      options: (v) => (isChoice(def.type) && v.length === 0 ? 'Add at least one option' : null),
    },
  });
  const save = useMutation({
    mutationFn: (v: { label: string; options: string[]; required: boolean }) =>
      unwrap(
        client.PATCH('/api/v1/contact-attributes/{key}', {
          params: { path: { key: def.key } },
          body: { label: v.label.trim(), required: v.required, ...(isChoice(def.type) ? { options: v.options } : {}) },
        }),
      ),
    onSuccess: (d) => {
      void queryClient.invalidateQueries({ queryKey: qk.contactAttributes });
      notifications.show({ color: 'teal', message: `Field ${d.label} saved` });
      onClose();
    },
    onError: (e) => setFormError(applyApiError(form, e)),
  });
  return (
    <form
      noValidate
      onSubmit={form.onSubmit((v) => {
        setFormError(null);
        save.mutate(v);
      })}
    >
      <Stack>
        <FormError message={formError} />
        <Text size="sm" c="dimmed">
          Key <code>{def.key}</code> · {ATTR_TYPE_LABEL[def.type]} (the key and type cannot change)
        </Text>
        <TextInput label="Label" required data-autofocus {...form.getInputProps('label')} />
        {isChoice(def.type) && (
          <TagsInput
            label="Options"
            description="Type an option and press Enter."
            required
            {...form.getInputProps('options')}
          />
        )}
        <Switch label="Required" {...form.getInputProps('required', { type: 'checkbox' })} />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" loading={save.isPending}>
            Save field
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function CountryForm({ settings, canEdit }: { settings: ContactSettingsOut; canEdit: boolean }) {
  const queryClient = useQueryClient();
  const countries = useMemo(() => {
    const list = countryOptions('en');
    if (settings.default_country && !list.some((c) => c.value === settings.default_country)) {
      list.unshift({ value: settings.default_country, label: settings.default_country });
    }
    return list;
  }, [settings.default_country]);
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({ mode: 'controlled', initialValues: { default_country: settings.default_country } });
  const save = useMutation({
    mutationFn: (default_country: string) =>
      unwrap(client.PUT('/api/v1/contact-settings', { body: { default_country } })),
    onSuccess: (s) => {
      queryClient.setQueryData(qk.contactSettings, s);
      form.resetDirty({ default_country: s.default_country });
      notifications.show({ color: 'teal', message: 'Default country saved' });
    },
    onError: (e) => setFormError(applyApiError(form, e)),
  });
  return (
    <form
      noValidate
      onSubmit={form.onSubmit((v) => {
        setFormError(null);
        save.mutate(v.default_country);
      })}
    >
      <Stack maw={460}>
        <FormError message={formError} />
        <Select
          label="Default phone country"
          description="Phone numbers written without + are read as numbers of this country."
          data={countries}
          searchable
          allowDeselect={false}
          disabled={!canEdit}
          nothingFoundMessage="No such country"
          {...form.getInputProps('default_country')}
        />
        {canEdit && (
          <Group>
            <Button type="submit" loading={save.isPending} disabled={!form.isDirty()}>
              Save country
            </Button>
          </Group>
        )}
      </Stack>
    </form>
  );
}
