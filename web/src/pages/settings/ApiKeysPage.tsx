import {
  ActionIcon,
  Alert,
  Badge,
  Button,
  Code,
  Group,
  Modal,
  NumberInput,
  Paper,
  Select,
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
import { IconAlertTriangle, IconKey, IconPlus, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';

import { client, unwrap } from '../../api/client';
import { qk, useApiKeys } from '../../api/queries';
import { ROLE_LABEL, atLeast, type ApiKeyCreatedOut, type ApiKeyOut, type Role } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { CopyField } from '../../components/CopyField';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { RoleBadge } from '../../components/RoleBadge';
import { applyApiError, errorMessage } from '../../lib/forms';
import { formatDate, formatDateTime, formatRelative } from '../../lib/format';
import { grantableRoles } from '../../lib/roles';

export type KeyStatus = 'active' | 'revoked' | 'expired';

export function keyStatus(k: Pick<ApiKeyOut, 'revoked_at' | 'expires_at'>, now = Date.now()): KeyStatus {
  if (k.revoked_at) return 'revoked';
  if (k.expires_at && new Date(k.expires_at).getTime() <= now) return 'expired';
  return 'active';
}

const STATUS_COLOR: Record<KeyStatus, string> = { active: 'teal', revoked: 'red', expired: 'gray' };

export function ApiKeysPage() {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  // The API lists keys to admins and owners only; agents are told so instead of getting a 403.
  const keys = useApiKeys(isAdmin);
  const [createOpen, setCreateOpen] = useState(false);

  return (
    <>
      <PageHeader
        title="API keys"
        description={
          <>
            Keys let scripts and integrations call the API as your organization: send them as{' '}
            <Code>Authorization: Bearer wam_…</Code>. See the API docs at <Code>/api/docs</Code>.
          </>
        }
        actions={
          isAdmin && (
            <Button leftSection={<IconPlus size={16} />} onClick={() => setCreateOpen(true)}>
              Create API key
            </Button>
          )
        }
      />
      {!isAdmin ? (
        <Alert color="gray" variant="light" data-testid="api-keys-admin-only">
          Only admins and owners can see, create or revoke API keys.
        </Alert>
      ) : (
        <Paper withBorder radius="md">
          <QueryState
            query={keys}
            isEmpty={(k) => k.length === 0}
            empty={<EmptyState title="No API keys">Create a key to connect a script or another system.</EmptyState>}
          >
            {(list) => <KeysTable keys={list} canRevoke={isAdmin} />}
          </QueryState>
        </Paper>
      )}
      <CreateKeyModal opened={createOpen} onClose={() => setCreateOpen(false)} actorRole={role} />
    </>
  );
}

function KeysTable({ keys, canRevoke }: { keys: ApiKeyOut[]; canRevoke: boolean }) {
  const queryClient = useQueryClient();
  const revoke = useMutation({
    mutationFn: (k: ApiKeyOut) =>
      unwrap(client.DELETE('/api/v1/api-keys/{id}', { params: { path: { id: k.id } } })).then(() => k),
    onSuccess: (k) => {
      void queryClient.invalidateQueries({ queryKey: qk.apiKeys });
      notifications.show({ color: 'teal', message: `API key ${k.name} revoked` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Key not revoked', message: errorMessage(e) }),
  });
  const confirmRevoke = (k: ApiKeyOut) =>
    modals.openConfirmModal({
      title: `Revoke ${k.name}?`,
      children: <Text size="sm">Anything using this key stops working at once. This can't be undone.</Text>,
      labels: { confirm: 'Revoke key', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => revoke.mutate(k),
    });

  return (
    <Table.ScrollContainer minWidth={760}>
      <Table verticalSpacing="sm" data-testid="api-keys-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Name</Table.Th>
            <Table.Th>Key</Table.Th>
            <Table.Th>Role</Table.Th>
            <Table.Th>Last used</Table.Th>
            <Table.Th>Expires</Table.Th>
            <Table.Th>Status</Table.Th>
            <Table.Th w={60} />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {keys.map((k) => {
            const status = keyStatus(k);
            return (
              <Table.Tr key={k.id} data-testid={`api-key-row-${k.name}`}>
                <Table.Td>
                  <Text size="sm" fw={500}>
                    {k.name}
                  </Text>
                  <Text size="xs" c="dimmed">
                    by {k.created_by.name}, {formatDate(k.created_at)}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <Code>{k.prefix}…</Code>
                </Table.Td>
                <Table.Td>
                  <RoleBadge role={k.role} />
                </Table.Td>
                <Table.Td data-testid="api-key-last-used">
                  {k.last_used_at ? (
                    <Tooltip label={formatDateTime(k.last_used_at)} withArrow>
                      <Text size="sm">{formatRelative(k.last_used_at)}</Text>
                    </Tooltip>
                  ) : (
                    <Text size="sm" c="dimmed">
                      Never
                    </Text>
                  )}
                </Table.Td>
                <Table.Td>
                  <Text size="sm">{k.expires_at ? formatDate(k.expires_at) : 'Never'}</Text>
                </Table.Td>
                <Table.Td>
                  <Badge color={STATUS_COLOR[status]} variant="light" data-testid="api-key-status">
                    {status}
                  </Badge>
                </Table.Td>
                <Table.Td>
                  {canRevoke && status === 'active' && (
                    <Tooltip label="Revoke" withArrow>
                      <ActionIcon
                        variant="subtle"
                        color="red"
                        aria-label={`Revoke ${k.name}`}
                        onClick={() => confirmRevoke(k)}
                      >
                        <IconTrash size={16} />
                      </ActionIcon>
                    </Tooltip>
                  )}
                </Table.Td>
              </Table.Tr>
            );
          })}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}

function CreateKeyModal({ opened, onClose, actorRole }: { opened: boolean; onClose: () => void; actorRole: Role }) {
  const queryClient = useQueryClient();
  const [created, setCreated] = useState<ApiKeyCreatedOut | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const roles = grantableRoles(actorRole);
  const form = useForm<{ name: string; role: Role; expires_in_days: number | string }>({
    mode: 'controlled',
    initialValues: { name: '', role: 'agent', expires_in_days: '' },
    validate: {
      name: (v) => (v.trim() ? null : 'Name the key after what uses it'),
      expires_in_days: (v) =>
        v === '' || (Number.isInteger(Number(v)) && Number(v) >= 1) ? null : 'Whole days, at least 1',
    },
  });
  const create = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        client.POST('/api/v1/api-keys', {
          body: {
            name: v.name.trim(),
            role: v.role,
            ...(v.expires_in_days === '' ? {} : { expires_in_days: Number(v.expires_in_days) }),
          },
        }),
      ),
    onSuccess: (k) => {
      setCreated(k);
      void queryClient.invalidateQueries({ queryKey: qk.apiKeys });
      notifications.show({ color: 'teal', message: `API key ${k.name} created` });
    },
    onError: (e) => setFormError(applyApiError(form, e)),
  });
  const close = () => {
    onClose();
    setTimeout(() => {
      setCreated(null);
      setFormError(null);
      form.reset();
    }, 200);
  };

  return (
    <Modal
      opened={opened}
      onClose={close}
      title={created ? 'Copy your new API key' : 'Create API key'}
      size="lg"
      // Closing by accident would lose the secret for good.
      closeOnClickOutside={!created}
    >
      {created ? (
        <Stack>
          <Alert
            color="yellow"
            icon={<IconAlertTriangle size={18} />}
            title="This is the only time the key is shown"
            data-testid="api-key-once"
          >
            Copy it now and store it somewhere safe. Wamage keeps only a hash; if you lose it, revoke it and create a
            new one.
          </Alert>
          <CopyField label="API key" value={created.key} testId="api-key-secret" />
          <Text size="sm" c="dimmed">
            {created.name} · {ROLE_LABEL[created.role]} ·{' '}
            {created.expires_at ? `expires ${formatDate(created.expires_at)}` : 'never expires'}
          </Text>
          <Group justify="flex-end">
            <Button onClick={close}>I have copied it</Button>
          </Group>
        </Stack>
      ) : (
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
              label="Name"
              placeholder="e.g. CRM sync"
              required
              data-autofocus
              leftSection={<IconKey size={16} />}
              {...form.getInputProps('name')}
            />
            <Select
              label="Role"
              description="What the key may do, like a member with that role"
              data={roles.map((r) => ({ value: r, label: ROLE_LABEL[r] }))}
              allowDeselect={false}
              comboboxProps={{ withinPortal: true }}
              {...form.getInputProps('role')}
            />
            <NumberInput
              label="Expires after (days)"
              description="Leave empty for a key that does not expire"
              min={1}
              allowDecimal={false}
              {...form.getInputProps('expires_in_days')}
            />
            <Group justify="flex-end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" loading={create.isPending}>
                Create key
              </Button>
            </Group>
          </Stack>
        </form>
      )}
    </Modal>
  );
}
