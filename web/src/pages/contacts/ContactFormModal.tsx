import {
  ActionIcon,
  Button,
  Divider,
  Group,
  Modal,
  MultiSelect,
  NumberInput,
  Select,
  SimpleGrid,
  Stack,
  Switch,
  Text,
  TextInput,
  Textarea,
} from '@mantine/core';
import { useForm, type UseFormReturnType } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconPlus, IconTrash } from '@tabler/icons-react';
import { useMemo, useState } from 'react';

import { client, unwrap } from '../../api/client';
import { isApiError } from '../../api/problem';
import { qk, useContactAttributes } from '../../api/queries';
import type { AttrDefOut, ContactOut } from '../../api/types';
import { FormError } from '../../components/FormError';
import { QueryState } from '../../components/QueryState';
import {
  IDENTITY_KINDS,
  IDENTITY_LABEL,
  applyNestedApiError,
  contactToForm,
  formToContactIn,
  formToContactPatch,
  timeZones,
  toFormPath,
  type ContactFormValues,
} from '../../lib/contacts';

const KIND_OPTIONS = IDENTITY_KINDS.map((k) => ({ value: k, label: IDENTITY_LABEL[k] }));

/** Create (no `contact`) or edit a contact. */
export function ContactFormModal({
  opened,
  onClose,
  contact,
  onSaved,
}: {
  opened: boolean;
  onClose: () => void;
  contact?: ContactOut | null;
  onSaved?: (c: ContactOut) => void;
}) {
  const defs = useContactAttributes();
  return (
    <Modal opened={opened} onClose={onClose} title={contact ? `Edit ${contact.name}` : 'New contact'} size="lg">
      {opened && (
        <QueryState query={defs}>
          {(d) => (
            <ContactForm key={contact?.id ?? 'new'} defs={d} contact={contact} onClose={onClose} onSaved={onSaved} />
          )}
        </QueryState>
      )}
    </Modal>
  );
}

function ContactForm({
  defs,
  contact,
  onClose,
  onSaved,
}: {
  defs: AttrDefOut[];
  contact?: ContactOut | null;
  onClose: () => void;
  onSaved?: (c: ContactOut) => void;
}) {
  const queryClient = useQueryClient();
  const zones = useMemo(() => timeZones(), []);
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm<ContactFormValues>({
    mode: 'controlled',
    initialValues: contactToForm(defs, contact),
    validate: {
      name: (v) => (v.trim() ? null : 'Give the contact a name'),
    },
  });

  const save = useMutation({
    mutationFn: (v: ContactFormValues) =>
      contact
        ? unwrap(
            client.PATCH('/api/v1/contacts/{id}', {
              params: { path: { id: contact.id } },
              body: formToContactPatch(defs, v, contact),
            }),
          )
        : unwrap(client.POST('/api/v1/contacts', { body: formToContactIn(defs, v) })),
    onSuccess: (c) => {
      queryClient.setQueryData(qk.contact(c.id), c);
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      notifications.show({ color: 'teal', message: contact ? `${c.name} saved` : `${c.name} added` });
      onSaved?.(c);
      onClose();
    },
    onError: (e) => {
      if (isApiError(e) && e.code === 'identity_taken') {
        // Name the problem in words on the row; the field message carries the other contact's id.
        const paths = e.errors.map((fe) => toFormPath(fe.field)).filter((p) => p.startsWith('identities.'));
        if (paths.length > 0) {
          for (const p of paths) form.setFieldError(p, e.title);
          setFormError(null);
          return;
        }
      }
      setFormError(applyNestedApiError(form, e));
    },
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
        <TextInput label="Name" required data-autofocus {...form.getInputProps('name')} />
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <TextInput label="Company" {...form.getInputProps('company')} />
          <TextInput label="Language" placeholder="en, pt-BR" {...form.getInputProps('language')} />
        </SimpleGrid>
        <Select
          label="Time zone"
          placeholder="Search time zones"
          data={zones}
          searchable
          clearable
          limit={50}
          nothingFoundMessage="No such time zone"
          {...form.getInputProps('time_zone')}
          value={form.values.time_zone || null}
          onChange={(v) => form.setFieldValue('time_zone', v ?? '')}
        />
        <Group>
          <Switch label="Favorite" {...form.getInputProps('favorite', { type: 'checkbox' })} />
          <Switch label="Blocked" color="red" {...form.getInputProps('blocked', { type: 'checkbox' })} />
        </Group>
        <Textarea label="Notes" autosize minRows={2} maxRows={6} {...form.getInputProps('notes')} />

        {!contact && <IdentityRows form={form} />}

        {defs.length > 0 && (
          <>
            <Divider label="Custom fields" labelPosition="left" />
            <SimpleGrid cols={{ base: 1, sm: 2 }}>
              {defs.map((d) => (
                <AttributeInput key={d.key} def={d} form={form} />
              ))}
            </SimpleGrid>
          </>
        )}

        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" loading={save.isPending}>
            {contact ? 'Save contact' : 'Create contact'}
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function IdentityRows({ form }: { form: UseFormReturnType<ContactFormValues> }) {
  const rows = form.values.identities;
  return (
    <Stack gap="xs">
      <Divider label="Phones, e-mails and channels" labelPosition="left" />
      {rows.length === 0 && (
        <Text size="sm" c="dimmed">
          No identities: add a phone, an e-mail or a channel id.
        </Text>
      )}
      {rows.map((_, i) => (
        <Group key={i} align="flex-start" wrap="nowrap" data-testid={`identity-row-${i}`}>
          <Select
            aria-label={`Identity ${i + 1} kind`}
            data={KIND_OPTIONS}
            allowDeselect={false}
            w={180}
            {...form.getInputProps(`identities.${i}.kind`)}
          />
          <TextInput
            aria-label={`Identity ${i + 1} value`}
            placeholder={rows[i]!.kind === 'email' ? 'ana@example.com' : '+44 20 7946 0958'}
            style={{ flex: 1 }}
            {...form.getInputProps(`identities.${i}.value`)}
          />
          <ActionIcon
            variant="subtle"
            color="gray"
            size="lg"
            aria-label={`Remove identity ${i + 1}`}
            onClick={() => form.removeListItem('identities', i)}
          >
            <IconTrash size={16} />
          </ActionIcon>
        </Group>
      ))}
      <Group>
        <Button
          variant="light"
          size="xs"
          leftSection={<IconPlus size={14} />}
          onClick={() => form.insertListItem('identities', { kind: 'email', value: '' })}
        >
          Add identity
        </Button>
      </Group>
    </Stack>
  );
}

function AttributeInput({ def, form }: { def: AttrDefOut; form: UseFormReturnType<ContactFormValues> }) {
  const path = `attributes.${def.key}`;
  const common = { label: def.label, required: def.required, 'data-testid': `attr-${def.key}` };
  switch (def.type) {
    case 'number':
      return <NumberInput {...common} {...form.getInputProps(path)} />;
    case 'date':
      return <TextInput type="date" placeholder="YYYY-MM-DD" {...common} {...form.getInputProps(path)} />;
    case 'boolean':
      return (
        <Switch
          mt="lg"
          label={def.label}
          data-testid={`attr-${def.key}`}
          {...form.getInputProps(path, { type: 'checkbox' })}
        />
      );
    case 'single_choice': {
      const props = form.getInputProps(path);
      return (
        <Select
          {...common}
          data={def.options}
          clearable
          {...props}
          value={(props.value as string) || null}
          onChange={(v) => form.setFieldValue(path, v ?? '')}
        />
      );
    }
    case 'multi_choice':
      return <MultiSelect {...common} data={def.options} clearable {...form.getInputProps(path)} />;
    default:
      return <TextInput {...common} {...form.getInputProps(path)} />;
  }
}
