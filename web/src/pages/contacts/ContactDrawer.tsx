import {
  ActionIcon,
  Badge,
  Button,
  Drawer,
  FileButton,
  Group,
  Select,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Title,
  Tooltip,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconEdit, IconPhotoX, IconPlus, IconStarFilled, IconTrash, IconUpload } from '@tabler/icons-react';
import { useState, type ReactNode } from 'react';

import { client, unwrap } from '../../api/client';
import { isApiError } from '../../api/problem';
import { qk, useContact, useContactAttributes } from '../../api/queries';
import { atLeast, type ContactOut, type IdentityKind, type IdentityOut } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { QueryState } from '../../components/QueryState';
import { UserAvatar } from '../../components/UserAvatar';
import { AVATAR_TYPES, checkAvatar } from '../../lib/avatar';
import { IDENTITY_KINDS, IDENTITY_LABEL, formatAttr } from '../../lib/contacts';
import { applyApiError, errorMessage } from '../../lib/forms';
import { formatDateTime } from '../../lib/format';
import { ContactFormModal } from './ContactFormModal';
import { ConsentSection, MergeButton, TagsAndGroups } from './ContactOrganize';

export function ContactDrawer({ id, onClose }: { id: string | null; onClose: () => void }) {
  const contact = useContact(id);
  return (
    <Drawer opened={!!id} onClose={onClose} position="right" size="lg" title="Contact">
      {id && <QueryState query={contact}>{(c) => <ContactDetail contact={c} onDeleted={onClose} />}</QueryState>}
    </Drawer>
  );
}

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <Stack gap={2}>
      <Text size="xs" c="dimmed" fw={600} tt="uppercase">
        {label}
      </Text>
      <Text size="sm" component="div">
        {children || '—'}
      </Text>
    </Stack>
  );
}

function ContactDetail({ contact, onDeleted }: { contact: ContactOut; onDeleted: () => void }) {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const defs = useContactAttributes();
  const queryClient = useQueryClient();
  const [editOpen, setEditOpen] = useState(false);

  const remove = useMutation({
    mutationFn: () => unwrap(client.DELETE('/api/v1/contacts/{id}', { params: { path: { id: contact.id } } })),
    onSuccess: () => {
      queryClient.removeQueries({ queryKey: qk.contact(contact.id) });
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      notifications.show({ color: 'teal', message: `${contact.name} deleted` });
      onDeleted();
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });

  const confirmDelete = () =>
    modals.openConfirmModal({
      title: `Delete ${contact.name}?`,
      children: <Text size="sm">The contact and its identities are deleted. This can't be undone.</Text>,
      labels: { confirm: 'Delete contact', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(),
    });

  const attrs = contact.attributes as Record<string, unknown>;

  return (
    <Stack data-testid="contact-detail">
      <Group justify="space-between" align="flex-start" wrap="nowrap">
        <Group gap="md" align="flex-start" wrap="nowrap">
          <UserAvatar name={contact.name} url={contact.avatar_url} size={64} data-testid="contact-avatar" />
          <Stack gap={4}>
            <Group gap="xs">
              <Title order={3} data-testid="contact-name">
                {contact.name}
              </Title>
              {contact.favorite && (
                <IconStarFilled size={18} color="var(--mantine-color-yellow-5)" aria-label="Favorite" />
              )}
              {contact.blocked && (
                <Badge color="red" variant="light">
                  Blocked
                </Badge>
              )}
            </Group>
            {contact.company && (
              <Text c="dimmed" size="sm">
                {contact.company}
              </Text>
            )}
            <PhotoActions key={contact.id} contact={contact} />
          </Stack>
        </Group>
        <Group gap="xs" wrap="nowrap">
          <Button variant="light" leftSection={<IconEdit size={16} />} onClick={() => setEditOpen(true)}>
            Edit
          </Button>
          {isAdmin && <MergeButton contact={contact} />}
          {isAdmin && (
            <Button
              variant="light"
              color="red"
              leftSection={<IconTrash size={16} />}
              onClick={confirmDelete}
              loading={remove.isPending}
            >
              Delete
            </Button>
          )}
        </Group>
      </Group>

      <SimpleGrid cols={2}>
        <Field label="Language">{contact.language}</Field>
        <Field label="Time zone">{contact.time_zone}</Field>
        <Field label="Created">{formatDateTime(contact.created_at)}</Field>
        <Field label="Updated">{formatDateTime(contact.updated_at)}</Field>
      </SimpleGrid>
      <Field label="Notes">{contact.notes && <span style={{ whiteSpace: 'pre-wrap' }}>{contact.notes}</span>}</Field>

      <TagsAndGroups contact={contact} />

      <Identities contact={contact} />

      <Stack gap="xs">
        <Title order={5}>Custom fields</Title>
        <QueryState query={defs}>
          {(d) =>
            d.length === 0 ? (
              <Text size="sm" c="dimmed">
                No custom fields are defined for this organization.
              </Text>
            ) : (
              <SimpleGrid cols={2} data-testid="contact-attributes">
                {d.map((def) => (
                  <Field key={def.key} label={def.label}>
                    {formatAttr(def.type, attrs[def.key])}
                  </Field>
                ))}
              </SimpleGrid>
            )
          }
        </QueryState>
      </Stack>

      <ConsentSection key={contact.id} contact={contact} />

      <ContactFormModal opened={editOpen} onClose={() => setEditOpen(false)} contact={contact} />
    </Stack>
  );
}

/** Upload a photo (checked here first, judged by its bytes on the server) or remove it. */
function PhotoActions({ contact }: { contact: ContactOut }) {
  const queryClient = useQueryClient();
  const [error, setError] = useState<string | null>(null);
  const path = { params: { path: { id: contact.id } } };

  const changed = (c: ContactOut, message: string) => {
    setError(null);
    queryClient.setQueryData(qk.contact(c.id), c);
    // The list rows show the photo too.
    void queryClient.invalidateQueries({ queryKey: qk.contacts });
    notifications.show({ color: 'teal', message });
  };
  const failed = (title: string) => (e: unknown) => {
    setError(errorMessage(e));
    notifications.show({ color: 'red', title, message: errorMessage(e) });
  };

  const upload = useMutation({
    mutationFn: (f: File) => {
      const form = new FormData();
      form.append('file', f);
      // openapi-fetch passes FormData through untouched (the browser sets the multipart boundary);
      // the generated type of a binary part is `string`, hence the cast.
      return unwrap(client.PUT('/api/v1/contacts/{id}/avatar', { ...path, body: form as never }));
    },
    onSuccess: (c) => changed(c, 'Photo updated'),
    onError: failed('Could not upload the photo'),
  });
  const remove = useMutation({
    mutationFn: () => unwrap(client.DELETE('/api/v1/contacts/{id}/avatar', path)),
    onSuccess: () => changed({ ...contact, avatar_url: null }, 'Photo removed'),
    onError: failed('Could not remove the photo'),
  });

  const pick = (f: File | null) => {
    if (!f) return;
    const problem = checkAvatar(f);
    if (problem) {
      setError(problem);
      return;
    }
    upload.mutate(f);
  };
  const busy = upload.isPending || remove.isPending;

  return (
    <Stack gap={2}>
      <Group gap={4}>
        <FileButton onChange={pick} accept={AVATAR_TYPES.join(',')} disabled={busy}>
          {(props) => (
            <Button
              {...props}
              size="compact-xs"
              variant="subtle"
              leftSection={<IconUpload size={14} />}
              loading={upload.isPending}
            >
              Upload photo
            </Button>
          )}
        </FileButton>
        {contact.avatar_url && (
          <Button
            size="compact-xs"
            variant="subtle"
            color="red"
            leftSection={<IconPhotoX size={14} />}
            onClick={() => remove.mutate()}
            loading={remove.isPending}
            disabled={upload.isPending}
          >
            Remove photo
          </Button>
        )}
      </Group>
      {error && (
        <Text size="xs" c="red" data-testid="photo-error">
          {error}
        </Text>
      )}
    </Stack>
  );
}

function Identities({ contact }: { contact: ContactOut }) {
  const queryClient = useQueryClient();
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { kind: 'phone' as IdentityKind, value: '' },
    validate: { value: (v) => (v.trim() ? null : 'Enter a value') },
  });

  const refresh = (c?: ContactOut) => {
    if (c) queryClient.setQueryData(qk.contact(c.id), c);
    void queryClient.invalidateQueries({ queryKey: qk.contacts });
  };

  const add = useMutation({
    mutationFn: (v: { kind: IdentityKind; value: string }) =>
      unwrap(
        client.POST('/api/v1/contacts/{id}/identities', {
          params: { path: { id: contact.id } },
          body: { kind: v.kind, value: v.value.trim() },
        }),
      ),
    onSuccess: () => {
      form.reset();
      refresh();
      notifications.show({ color: 'teal', message: 'Identity added' });
    },
    onError: (e) => {
      if (isApiError(e) && e.code === 'identity_taken') {
        form.setFieldError('value', e.title);
        return;
      }
      setFormError(applyApiError(form, e));
    },
  });

  const remove = useMutation({
    mutationFn: (i: IdentityOut) =>
      unwrap(
        client.DELETE('/api/v1/contacts/{id}/identities/{identity_id}', {
          params: { path: { id: contact.id, identity_id: i.id } },
        }),
      ),
    onSuccess: () => {
      refresh();
      notifications.show({ color: 'teal', message: 'Identity removed' });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not remove', message: errorMessage(e) }),
  });

  return (
    <Stack gap="xs">
      <Title order={5}>Phones, e-mails and channels</Title>
      {contact.identities.length === 0 && (
        <Text size="sm" c="dimmed">
          None yet.
        </Text>
      )}
      {contact.identities.map((i) => (
        <Group key={i.id} justify="space-between" wrap="nowrap" data-testid="identity">
          <Group gap="xs" wrap="nowrap">
            <Badge variant="light" color="gray" w={140}>
              {IDENTITY_LABEL[i.kind]}
            </Badge>
            <Text size="sm" ff="monospace">
              {i.value}
            </Text>
          </Group>
          <Tooltip label="Remove">
            <ActionIcon
              variant="subtle"
              color="red"
              aria-label={`Remove ${i.value}`}
              onClick={() => remove.mutate(i)}
              loading={remove.isPending && remove.variables?.id === i.id}
            >
              <IconTrash size={16} />
            </ActionIcon>
          </Tooltip>
        </Group>
      ))}
      <form
        noValidate
        onSubmit={form.onSubmit((v) => {
          setFormError(null);
          add.mutate(v);
        })}
      >
        <Stack gap="xs">
          <FormError message={formError} />
          <Group align="flex-start" wrap="nowrap">
            <Select
              aria-label="New identity kind"
              data={IDENTITY_KINDS.map((k) => ({ value: k, label: IDENTITY_LABEL[k] }))}
              allowDeselect={false}
              w={180}
              {...form.getInputProps('kind')}
            />
            <TextInput
              aria-label="New identity value"
              placeholder="Phone, e-mail or id"
              style={{ flex: 1 }}
              {...form.getInputProps('value')}
            />
            <Button type="submit" variant="light" leftSection={<IconPlus size={14} />} loading={add.isPending}>
              Add
            </Button>
          </Group>
        </Stack>
      </form>
    </Stack>
  );
}
