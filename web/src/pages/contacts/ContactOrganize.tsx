/** Detail drawer sections: tags and groups, the consent ledger, and merging (admin). */
import {
  Badge,
  Button,
  Group,
  Modal,
  Select,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Timeline,
  Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useDebouncedValue } from '@mantine/hooks';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { IconArrowMerge, IconCheck, IconX } from '@tabler/icons-react';
import { useState } from 'react';

import { client, unwrap } from '../../api/client';
import { qk, useConsent, useGroups, useTags } from '../../api/queries';
import type { BulkAction, ConsentChannel, ConsentIn, ConsentPurpose, ConsentStatus, ContactOut } from '../../api/types';
import { FormError } from '../../components/FormError';
import { QueryState } from '../../components/QueryState';
import { TagBadge } from '../../components/TagBadge';
import { applyApiError, errorMessage } from '../../lib/forms';
import { formatDateTime } from '../../lib/format';
import {
  CHANNEL_LABEL,
  CONSENT_CHANNELS,
  CONSENT_PURPOSES,
  PURPOSE_LABEL,
  SOURCE_LABEL,
  STATUS_LABEL,
  bulkBody,
  consentGrid,
} from '../../lib/organize';

export function TagsAndGroups({ contact }: { contact: ContactOut }) {
  const tags = useTags();
  const groups = useGroups();
  const queryClient = useQueryClient();
  const mine = { tags: contact.tags ?? [], groups: contact.groups ?? [] };

  const change = useMutation({
    mutationFn: (v: { action: BulkAction; target: string }) =>
      unwrap(client.POST('/api/v1/contacts/bulk', { body: bulkBody(v.action, [contact.id], v.target) })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      void queryClient.invalidateQueries({ queryKey: qk.groups });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not change', message: errorMessage(e) }),
  });

  const freeTags = (tags.data ?? []).filter((t) => !mine.tags.some((m) => m.id === t.id));
  const freeGroups = (groups.data ?? []).filter((g) => !mine.groups.some((m) => m.id === g.id));

  return (
    <Stack gap="xs" data-testid="contact-organize">
      <Title order={5}>Tags and groups</Title>
      <Group gap={6} data-testid="contact-tags">
        {mine.tags.length === 0 && (
          <Text size="sm" c="dimmed">
            No tags.
          </Text>
        )}
        {mine.tags.map((t) => (
          <TagBadge
            key={t.id}
            name={t.name}
            color={t.color}
            onRemove={() => change.mutate({ action: 'remove_tags', target: t.id })}
          />
        ))}
      </Group>
      <Group gap={6} data-testid="contact-groups">
        {mine.groups.length === 0 && (
          <Text size="sm" c="dimmed">
            In no groups.
          </Text>
        )}
        {mine.groups.map((g) => (
          <Badge
            key={g.id}
            variant="outline"
            color="gray"
            tt="none"
            rightSection={
              <IconX
                size={12}
                role="button"
                aria-label={`Remove from group ${g.name}`}
                style={{ cursor: 'pointer' }}
                onClick={() => change.mutate({ action: 'remove_from_groups', target: g.id })}
              />
            }
          >
            {g.name}
          </Badge>
        ))}
      </Group>
      <Group grow>
        <Select
          aria-label="Add a tag"
          placeholder="Add a tag…"
          data={freeTags.map((t) => ({ value: t.id, label: t.name }))}
          value={null}
          onChange={(v) => v && change.mutate({ action: 'add_tags', target: v })}
          searchable
          nothingFoundMessage="No more tags"
        />
        <Select
          aria-label="Add to a group"
          placeholder="Add to a group…"
          data={freeGroups.map((g) => ({ value: g.id, label: g.name }))}
          value={null}
          onChange={(v) => v && change.mutate({ action: 'add_to_groups', target: v })}
          searchable
          nothingFoundMessage="No more groups"
        />
      </Group>
    </Stack>
  );
}

export function ConsentSection({ contact }: { contact: ContactOut }) {
  const ledger = useConsent(contact.id);
  const queryClient = useQueryClient();
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: {
      channel: 'whatsapp' as ConsentChannel,
      purpose: 'marketing' as ConsentPurpose,
      status: 'opted_in' as ConsentStatus,
      note: '',
    },
  });

  const record = useMutation({
    mutationFn: (body: ConsentIn) =>
      unwrap(client.POST('/api/v1/contacts/{id}/consent', { params: { path: { id: contact.id } }, body })),
    onSuccess: (_, body) => {
      form.setFieldValue('note', '');
      void queryClient.invalidateQueries({ queryKey: qk.consent(contact.id) });
      notifications.show({
        color: 'teal',
        message: `${STATUS_LABEL[body.status]}: ${CHANNEL_LABEL[body.channel]} ${PURPOSE_LABEL[body.purpose].toLowerCase()}`,
      });
    },
    onError: (e) => setFormError(applyApiError(form, e)),
  });

  const submit = (status: ConsentStatus) =>
    form.onSubmit((v) => {
      setFormError(null);
      record.mutate({ channel: v.channel, purpose: v.purpose, status, note: v.note.trim() || null });
    });

  return (
    <Stack gap="xs" data-testid="consent">
      <Title order={5}>Consent</Title>
      <QueryState query={ledger}>
        {(l) => (
          <Stack gap="sm">
            <SimpleGrid cols={2} spacing={6} data-testid="consent-current">
              {consentGrid(l.current).map((cell) => (
                <Group key={`${cell.channel}-${cell.purpose}`} gap={6} wrap="nowrap">
                  <Text size="xs" w={130}>
                    {CHANNEL_LABEL[cell.channel]} · {PURPOSE_LABEL[cell.purpose]}
                  </Text>
                  <Badge
                    size="sm"
                    variant="light"
                    color={!cell.state ? 'gray' : cell.state.status === 'opted_in' ? 'teal' : 'red'}
                    data-testid={`consent-${cell.channel}-${cell.purpose}`}
                  >
                    {cell.state ? STATUS_LABEL[cell.state.status] : 'Unknown'}
                  </Badge>
                </Group>
              ))}
            </SimpleGrid>
            <form noValidate onSubmit={(e) => e.preventDefault()}>
              <Stack gap="xs">
                <FormError message={formError} />
                <Group grow align="flex-start">
                  <Select
                    label="Channel"
                    data={CONSENT_CHANNELS.map((c) => ({ value: c, label: CHANNEL_LABEL[c] }))}
                    allowDeselect={false}
                    {...form.getInputProps('channel')}
                  />
                  <Select
                    label="Purpose"
                    data={CONSENT_PURPOSES.map((p) => ({ value: p, label: PURPOSE_LABEL[p] }))}
                    allowDeselect={false}
                    {...form.getInputProps('purpose')}
                  />
                </Group>
                <TextInput
                  label="Consent note"
                  placeholder="Optional, e.g. asked at the counter"
                  {...form.getInputProps('note')}
                />
                <Group gap="xs">
                  <Button
                    size="xs"
                    variant="light"
                    color="teal"
                    leftSection={<IconCheck size={14} />}
                    loading={record.isPending && record.variables?.status === 'opted_in'}
                    onClick={() => submit('opted_in')()}
                  >
                    Record opt-in
                  </Button>
                  <Button
                    size="xs"
                    variant="light"
                    color="red"
                    leftSection={<IconX size={14} />}
                    loading={record.isPending && record.variables?.status === 'opted_out'}
                    onClick={() => submit('opted_out')()}
                  >
                    Record opt-out
                  </Button>
                </Group>
              </Stack>
            </form>
            {l.history.length === 0 ? (
              <Text size="sm" c="dimmed">
                No consent recorded yet.
              </Text>
            ) : (
              <Timeline bulletSize={14} lineWidth={2} data-testid="consent-history">
                {l.history.map((h) => (
                  <Timeline.Item
                    key={h.id}
                    color={h.status === 'opted_in' ? 'teal' : 'red'}
                    data-testid="consent-entry"
                    title={
                      <Text size="sm" fw={500}>
                        {STATUS_LABEL[h.status]} · {CHANNEL_LABEL[h.channel]} {PURPOSE_LABEL[h.purpose].toLowerCase()}
                      </Text>
                    }
                  >
                    <Text size="xs" c="dimmed">
                      {SOURCE_LABEL[h.source]} · {formatDateTime(h.at)}
                    </Text>
                    {h.note && <Text size="xs">{h.note}</Text>}
                  </Timeline.Item>
                ))}
              </Timeline>
            )}
          </Stack>
        )}
      </QueryState>
    </Stack>
  );
}

export function MergeButton({ contact }: { contact: ContactOut }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <Button variant="light" color="grape" leftSection={<IconArrowMerge size={16} />} onClick={() => setOpen(true)}>
        Merge
      </Button>
      {open && <MergeModal contact={contact} onClose={() => setOpen(false)} />}
    </>
  );
}

function MergeModal({ contact, onClose }: { contact: ContactOut; onClose: () => void }) {
  const queryClient = useQueryClient();
  const [search, setSearch] = useState('');
  const [debounced] = useDebouncedValue(search, 250);
  const [otherId, setOtherId] = useState<string | null>(null);
  const candidates = useQuery({
    queryKey: [...qk.contacts, 'merge-candidates', debounced],
    queryFn: async () =>
      (
        await unwrap(
          client.GET('/api/v1/contacts', {
            params: { query: { ...(debounced.trim() ? { q: debounced.trim() } : {}), sort: 'name', limit: 20 } },
          }),
        )
      ).items,
    placeholderData: (prev) => prev,
  });
  const options = (candidates.data ?? []).filter((c) => c.id !== contact.id);
  const [otherName, setOtherName] = useState('');

  const merge = useMutation({
    mutationFn: (other: string) =>
      unwrap(
        client.POST('/api/v1/contacts/{id}/merge', { params: { path: { id: contact.id } }, body: { other_id: other } }),
      ),
    onSuccess: (survivor, other) => {
      queryClient.removeQueries({ queryKey: qk.contact(other) });
      queryClient.setQueryData(qk.contact(survivor.id), survivor);
      void queryClient.invalidateQueries({ queryKey: qk.contacts });
      void queryClient.invalidateQueries({ queryKey: qk.groups });
      notifications.show({ color: 'teal', message: `Merged ${otherName} into ${survivor.name}` });
      onClose();
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not merge', message: errorMessage(e) }),
  });

  const confirm = () => {
    if (!otherId) return;
    modals.openConfirmModal({
      title: `Merge ${otherName} into ${contact.name}?`,
      children: (
        <Text size="sm">
          {otherName}'s identities, tags, groups and consent history move to {contact.name}, and {otherName} is deleted.
          This can't be undone.
        </Text>
      ),
      labels: { confirm: 'Merge contacts', cancel: 'Cancel' },
      confirmProps: { color: 'grape' },
      onConfirm: () => merge.mutate(otherId),
    });
  };

  return (
    <Modal opened onClose={onClose} title={`Merge into ${contact.name}`}>
      <Stack>
        <Text size="sm" c="dimmed">
          Pick the duplicate. {contact.name} survives; the other contact's data moves here.
        </Text>
        <Select
          label="Contact to merge"
          placeholder="Search by name, phone, e-mail…"
          searchable
          searchValue={search}
          onSearchChange={setSearch}
          filter={({ options: o }) => o}
          data={options.map((c) => ({ value: c.id, label: c.name }))}
          value={otherId}
          onChange={(v, o) => {
            setOtherId(v);
            setOtherName(o?.label ?? '');
          }}
          nothingFoundMessage={candidates.isFetching ? 'Searching…' : 'No other contacts'}
        />
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button color="grape" disabled={!otherId} loading={merge.isPending} onClick={confirm}>
            Merge
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
