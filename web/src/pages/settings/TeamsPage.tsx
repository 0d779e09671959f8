import { Anchor, Button, Group, Modal, Paper, Stack, Table, Text, TextInput, Textarea } from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconPlus } from '@tabler/icons-react';
import { useState } from 'react';
import { Link, useNavigate } from 'react-router';

import { client, unwrap } from '../../api/client';
import { qk, useTeams } from '../../api/queries';
import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { applyApiError } from '../../lib/forms';
import { formatDate } from '../../lib/format';

export function TeamsPage() {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const teams = useTeams();
  const [createOpen, setCreateOpen] = useState(false);

  const createButton = isAdmin && (
    <Button leftSection={<IconPlus size={16} />} onClick={() => setCreateOpen(true)}>
      New team
    </Button>
  );

  return (
    <>
      <PageHeader
        title="Teams"
        description="Group members to route conversations to the right people."
        actions={createButton}
      />
      <Paper withBorder radius="md">
        <QueryState
          query={teams}
          isEmpty={(t) => t.length === 0}
          empty={
            <EmptyState title="No teams yet">
              {isAdmin
                ? 'Create a team such as "Sales" or "Support" and add members to it.'
                : 'An admin can create teams.'}
            </EmptyState>
          }
        >
          {(list) => (
            <Table.ScrollContainer minWidth={560}>
              <Table verticalSpacing="sm" highlightOnHover data-testid="teams-table">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Team</Table.Th>
                    <Table.Th>Members</Table.Th>
                    <Table.Th>Created</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {list.map((t) => (
                    <Table.Tr key={t.id}>
                      <Table.Td>
                        <Anchor component={Link} to={`/settings/teams/${t.id}`} fw={500} size="sm">
                          {t.name}
                        </Anchor>
                        {t.description && (
                          <Text size="xs" c="dimmed" lineClamp={1}>
                            {t.description}
                          </Text>
                        )}
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm">{t.member_count}</Text>
                      </Table.Td>
                      <Table.Td>
                        <Text size="sm">{formatDate(t.created_at)}</Text>
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
        </QueryState>
      </Paper>
      <CreateTeamModal opened={createOpen} onClose={() => setCreateOpen(false)} />
    </>
  );
}

function CreateTeamModal({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { name: '', description: '' },
    validate: { name: (v) => (v.trim() ? null : 'Name the team') },
  });
  const create = useMutation({
    mutationFn: (v: { name: string; description: string }) =>
      unwrap(
        client.POST('/api/v1/teams', {
          body: { name: v.name.trim(), ...(v.description.trim() ? { description: v.description.trim() } : {}) },
        }),
      ),
    onSuccess: (team) => {
      void queryClient.invalidateQueries({ queryKey: qk.teams });
      notifications.show({ color: 'teal', message: `Team ${team.name} created` });
      close();
      navigate(`/settings/teams/${team.id}`);
    },
    onError: (e) => setFormError(applyApiError(form, e, { codes: { team_name_taken: 'name', name_taken: 'name' } })),
  });
  const close = () => {
    onClose();
    form.reset();
    setFormError(null);
  };
  return (
    <Modal opened={opened} onClose={close} title="New team">
      <form
        noValidate
        onSubmit={form.onSubmit((v) => {
          setFormError(null);
          create.mutate(v);
        })}
      >
        <Stack>
          <FormError message={formError} />
          <TextInput label="Name" required data-autofocus {...form.getInputProps('name')} />
          <Textarea label="Description" autosize minRows={2} {...form.getInputProps('description')} />
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button type="submit" loading={create.isPending}>
              Create team
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
