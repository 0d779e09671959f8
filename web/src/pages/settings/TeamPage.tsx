import {
  ActionIcon,
  Anchor,
  Button,
  Group,
  Paper,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Textarea,
  Title,
  Tooltip,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconArrowLeft, IconTrash, IconUserMinus } from '@tabler/icons-react';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';

import { client, unwrap } from '../../api/client';
import { qk, useMembers, useTeam } from '../../api/queries';
import { atLeast, type TeamDetailOut } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { UserAvatar } from '../../components/UserAvatar';
import { applyApiError, errorMessage } from '../../lib/forms';

export function TeamPage() {
  const { teamId = '' } = useParams();
  const team = useTeam(teamId);
  return (
    <>
      <Anchor component={Link} to="/settings/teams" size="sm">
        <Group gap={4}>
          <IconArrowLeft size={14} /> All teams
        </Group>
      </Anchor>
      <QueryState query={team}>{(t) => <TeamDetail team={t} />}</QueryState>
    </>
  );
}

function TeamDetail({ team }: { team: TeamDetailOut }) {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const refresh = () => {
    void queryClient.invalidateQueries({ queryKey: qk.team(team.id) });
    void queryClient.invalidateQueries({ queryKey: qk.teams, exact: true });
  };

  const del = useMutation({
    mutationFn: () => unwrap(client.DELETE('/api/v1/teams/{id}', { params: { path: { id: team.id } } })),
    onSuccess: () => {
      queryClient.removeQueries({ queryKey: qk.team(team.id) });
      void queryClient.invalidateQueries({ queryKey: qk.teams });
      notifications.show({ color: 'teal', message: `Team ${team.name} deleted` });
      navigate('/settings/teams', { replace: true });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Team not deleted', message: errorMessage(e) }),
  });

  const removeMember = useMutation({
    mutationFn: (userId: string) =>
      unwrap(
        client.DELETE('/api/v1/teams/{id}/members/{user_id}', { params: { path: { id: team.id, user_id: userId } } }),
      ),
    onSuccess: () => {
      refresh();
      notifications.show({ color: 'teal', message: 'Removed from the team' });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Not removed', message: errorMessage(e) }),
  });

  return (
    <Stack mt="sm" gap="lg">
      <PageHeader
        title={team.name}
        description={team.description ?? undefined}
        actions={
          isAdmin && (
            <Button
              variant="light"
              color="red"
              leftSection={<IconTrash size={16} />}
              onClick={() =>
                modals.openConfirmModal({
                  title: `Delete team ${team.name}?`,
                  children: <Text size="sm">Members stay in the organization; only the team goes away.</Text>,
                  labels: { confirm: 'Delete team', cancel: 'Cancel' },
                  confirmProps: { color: 'red' },
                  onConfirm: () => del.mutate(),
                })
              }
            >
              Delete team
            </Button>
          )
        }
      />

      <div>
        <Group justify="space-between" mb="sm">
          <Title order={4}>Members ({team.members.length})</Title>
        </Group>
        {isAdmin && <AddMember team={team} onAdded={refresh} />}
        <Paper withBorder radius="md" mt="sm">
          {team.members.length === 0 ? (
            <EmptyState title="Nobody in this team yet">
              {isAdmin ? 'Add members with the picker above.' : 'An admin can add members.'}
            </EmptyState>
          ) : (
            <Table verticalSpacing="sm" data-testid="team-members-table">
              <Table.Tbody>
                {team.members.map((m) => (
                  <Table.Tr key={m.user_id} data-testid={`team-member-${m.email}`}>
                    <Table.Td>
                      <Group gap="sm" wrap="nowrap">
                        <UserAvatar name={m.name} url={m.avatar_url} size={30} />
                        <div>
                          <Text size="sm" fw={500}>
                            {m.name}
                          </Text>
                          <Text size="xs" c="dimmed">
                            {m.email}
                          </Text>
                        </div>
                      </Group>
                    </Table.Td>
                    <Table.Td w={60}>
                      {isAdmin && (
                        <Tooltip label="Remove from team" withArrow>
                          <ActionIcon
                            variant="subtle"
                            color="red"
                            aria-label={`Remove ${m.name} from team`}
                            loading={removeMember.isPending && removeMember.variables === m.user_id}
                            onClick={() => removeMember.mutate(m.user_id)}
                          >
                            <IconUserMinus size={16} />
                          </ActionIcon>
                        </Tooltip>
                      )}
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
        </Paper>
      </div>

      {isAdmin && <EditTeam team={team} onSaved={refresh} />}
    </Stack>
  );
}

function AddMember({ team, onAdded }: { team: TeamDetailOut; onAdded: () => void }) {
  const members = useMembers();
  const [userId, setUserId] = useState<string | null>(null);
  const inTeam = new Set(team.members.map((m) => m.user_id));
  const candidates = (members.data ?? []).filter((m) => !inTeam.has(m.user_id));
  const add = useMutation({
    mutationFn: (uid: string) =>
      unwrap(client.PUT('/api/v1/teams/{id}/members/{user_id}', { params: { path: { id: team.id, user_id: uid } } })),
    onSuccess: () => {
      setUserId(null);
      onAdded();
      notifications.show({ color: 'teal', message: 'Added to the team' });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Not added', message: errorMessage(e) }),
  });
  return (
    <Group align="flex-end" gap="sm">
      <Select
        label="Add a member"
        placeholder={
          members.isPending
            ? 'Loading members…'
            : candidates.length
              ? 'Pick a member'
              : 'Everyone is already in this team'
        }
        data={candidates.map((m) => ({ value: m.user_id, label: `${m.name} (${m.email})` }))}
        value={userId}
        onChange={setUserId}
        searchable
        disabled={candidates.length === 0}
        error={members.isError ? errorMessage(members.error) : undefined}
        w={340}
        comboboxProps={{ withinPortal: true }}
      />
      <Button onClick={() => userId && add.mutate(userId)} disabled={!userId} loading={add.isPending}>
        Add
      </Button>
    </Group>
  );
}

function EditTeam({ team, onSaved }: { team: TeamDetailOut; onSaved: () => void }) {
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { name: team.name, description: team.description ?? '' },
    validate: { name: (v) => (v.trim() ? null : 'Name the team') },
  });
  const save = useMutation({
    mutationFn: (v: { name: string; description: string }) =>
      unwrap(
        client.PATCH('/api/v1/teams/{id}', {
          params: { path: { id: team.id } },
          body: { name: v.name.trim(), description: v.description.trim() || null },
        }),
      ),
    onSuccess: (t) => {
      form.resetDirty({ name: t.name, description: t.description ?? '' });
      onSaved();
      notifications.show({ color: 'teal', message: 'Team saved' });
    },
    onError: (e) => setFormError(applyApiError(form, e, { codes: { team_name_taken: 'name', name_taken: 'name' } })),
  });
  return (
    <Paper withBorder p="lg" radius="md">
      <Title order={4} mb="sm">
        Details
      </Title>
      <form
        noValidate
        onSubmit={form.onSubmit((v) => {
          setFormError(null);
          save.mutate(v);
        })}
      >
        <Stack maw={460}>
          <FormError message={formError} />
          <TextInput label="Team name" required {...form.getInputProps('name')} />
          <Textarea label="Description" autosize minRows={2} {...form.getInputProps('description')} />
          <Group>
            <Button type="submit" loading={save.isPending} disabled={!form.isDirty()}>
              Save team
            </Button>
          </Group>
        </Stack>
      </form>
    </Paper>
  );
}
