import { ActionIcon, Badge, Button, Group, Paper, Table, Text, Tooltip } from '@mantine/core';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconLogout2 } from '@tabler/icons-react';

import { client, unwrap } from '../../api/client';
import { qk, useSessions } from '../../api/queries';
import type { SessionOut } from '../../api/types';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { errorMessage } from '../../lib/forms';
import { describeUserAgent, formatDateTime, formatRelative } from '../../lib/format';

export function SessionsPage() {
  const sessions = useSessions();
  const queryClient = useQueryClient();
  const others = (sessions.data ?? []).filter((s) => !s.current).length;

  const revokeOthers = useMutation({
    mutationFn: () => unwrap(client.DELETE('/api/v1/sessions')),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: qk.sessions });
      notifications.show({ color: 'teal', message: 'Signed out of all other devices' });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Sessions not revoked', message: errorMessage(e) }),
  });

  return (
    <>
      <PageHeader
        title="Sessions"
        description="Devices signed in to your account. Revoke any you don't recognise."
        actions={
          <Button
            variant="light"
            color="red"
            disabled={others === 0}
            loading={revokeOthers.isPending}
            onClick={() =>
              modals.openConfirmModal({
                title: 'Sign out of all other devices?',
                children: <Text size="sm">Every session except this one ends now.</Text>,
                labels: { confirm: 'Revoke all others', cancel: 'Cancel' },
                confirmProps: { color: 'red' },
                onConfirm: () => revokeOthers.mutate(),
              })
            }
          >
            Revoke all others
          </Button>
        }
      />
      <Paper withBorder radius="md">
        <QueryState
          query={sessions}
          isEmpty={(s) => s.length === 0}
          empty={<EmptyState title="No sessions">No device is signed in.</EmptyState>}
        >
          {(list) => <SessionsTable sessions={list} />}
        </QueryState>
      </Paper>
    </>
  );
}

function SessionsTable({ sessions }: { sessions: SessionOut[] }) {
  const queryClient = useQueryClient();
  const revoke = useMutation({
    mutationFn: (id: string) => unwrap(client.DELETE('/api/v1/sessions/{id}', { params: { path: { id } } })),
    onSuccess: () => {
      void queryClient.invalidateQueries({ queryKey: qk.sessions });
      notifications.show({ color: 'teal', message: 'Session revoked' });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Session not revoked', message: errorMessage(e) }),
  });
  // This device first, then most recently active.
  const sorted = [...sessions].sort(
    (a, b) => Number(b.current) - Number(a.current) || b.last_seen_at.localeCompare(a.last_seen_at),
  );
  return (
    <Table.ScrollContainer minWidth={640}>
      <Table verticalSpacing="sm" data-testid="sessions-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Device</Table.Th>
            <Table.Th>IP address</Table.Th>
            <Table.Th>Last seen</Table.Th>
            <Table.Th>Signed in</Table.Th>
            <Table.Th w={60} />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {sorted.map((s) => (
            <Table.Tr key={s.id} data-testid={s.current ? 'session-current' : 'session-row'}>
              <Table.Td>
                <Group gap={6}>
                  <Tooltip label={s.user_agent ?? 'No user agent'} withArrow multiline w={360}>
                    <Text size="sm" fw={500}>
                      {describeUserAgent(s.user_agent)}
                    </Text>
                  </Tooltip>
                  {s.current && (
                    <Badge size="sm" color="teal" variant="light">
                      This device
                    </Badge>
                  )}
                </Group>
              </Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {s.ip ?? '—'}
                </Text>
              </Table.Td>
              <Table.Td>
                <Tooltip label={formatDateTime(s.last_seen_at)} withArrow>
                  <Text size="sm">{formatRelative(s.last_seen_at)}</Text>
                </Tooltip>
              </Table.Td>
              <Table.Td>
                <Text size="sm">{formatDateTime(s.created_at)}</Text>
              </Table.Td>
              <Table.Td>
                {!s.current && (
                  <Tooltip label="Revoke" withArrow>
                    <ActionIcon
                      variant="subtle"
                      color="red"
                      aria-label={`Revoke session ${describeUserAgent(s.user_agent)}`}
                      loading={revoke.isPending && revoke.variables === s.id}
                      onClick={() => revoke.mutate(s.id)}
                    >
                      <IconLogout2 size={16} />
                    </ActionIcon>
                  </Tooltip>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
