import {
  ActionIcon,
  Badge,
  Button,
  Group,
  Modal,
  Paper,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  Tooltip,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconMailPlus, IconTrash, IconX } from '@tabler/icons-react';
import { useState } from 'react';

import { client, unwrap } from '../../api/client';
import { qk, useInvitations, useMembers } from '../../api/queries';
import { ROLE_LABEL, atLeast, type InvitationOut, type MemberOut, type Role } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { CopyField } from '../../components/CopyField';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { RoleBadge } from '../../components/RoleBadge';
import { UserAvatar } from '../../components/UserAvatar';
import { applyApiError, errorMessage } from '../../lib/forms';
import { formatDate, formatRelative } from '../../lib/format';
import { canChangeRole, canRemoveMember, countOwners, grantableRoles, type Actor } from '../../lib/roles';

export function MembersPage() {
  const { user, role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const members = useMembers();
  const [inviteOpen, setInviteOpen] = useState(false);

  return (
    <>
      <PageHeader
        title="Members & roles"
        description="Owners manage everything, admins manage members and settings, agents work the inbox."
        actions={
          isAdmin && (
            <Button leftSection={<IconMailPlus size={16} />} onClick={() => setInviteOpen(true)}>
              Invite member
            </Button>
          )
        }
      />
      <Stack gap="xl">
        <Paper withBorder radius="md">
          <QueryState
            query={members}
            isEmpty={(m) => m.length === 0}
            empty={<EmptyState title="No members">This organization has no members yet.</EmptyState>}
          >
            {(list) => <MembersTable members={list} actor={{ userId: user.id, role }} />}
          </QueryState>
        </Paper>
        {isAdmin && <InvitationsSection />}
      </Stack>
      <InviteModal opened={inviteOpen} onClose={() => setInviteOpen(false)} actorRole={role} />
    </>
  );
}

function MembersTable({ members, actor }: { members: MemberOut[]; actor: Actor }) {
  const queryClient = useQueryClient();
  const owners = countOwners(members);

  const changeRole = useMutation({
    mutationFn: ({ userId, role }: { userId: string; role: Role }) =>
      unwrap(client.PATCH('/api/v1/members/{user_id}', { params: { path: { user_id: userId } }, body: { role } })),
    onSuccess: (m) => {
      queryClient.setQueryData<MemberOut[]>(qk.members, (list) => list?.map((x) => (x.user_id === m.user_id ? m : x)));
      if (m.user_id === actor.userId) void queryClient.invalidateQueries({ queryKey: qk.me });
      notifications.show({ color: 'teal', message: `${m.name} is now ${ROLE_LABEL[m.role].toLowerCase()}` });
    },
    onError: (e) => {
      notifications.show({ color: 'red', title: 'Role not changed', message: errorMessage(e) });
      void queryClient.invalidateQueries({ queryKey: qk.members });
    },
  });

  const remove = useMutation({
    mutationFn: (m: MemberOut) =>
      unwrap(client.DELETE('/api/v1/members/{user_id}', { params: { path: { user_id: m.user_id } } })).then(() => m),
    onSuccess: (m) => {
      queryClient.setQueryData<MemberOut[]>(qk.members, (list) => list?.filter((x) => x.user_id !== m.user_id));
      void queryClient.invalidateQueries({ queryKey: qk.teams });
      notifications.show({ color: 'teal', message: `${m.name} was removed from the organization` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Member not removed', message: errorMessage(e) }),
  });

  const confirmRemove = (m: MemberOut) =>
    modals.openConfirmModal({
      title: `Remove ${m.name}?`,
      children: (
        <Text size="sm">
          {m.name} ({m.email}) loses access to this organization at once. Their past messages stay.
        </Text>
      ),
      labels: { confirm: 'Remove member', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(m),
    });

  return (
    <Table.ScrollContainer minWidth={620}>
      <Table verticalSpacing="sm" highlightOnHover data-testid="members-table">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Member</Table.Th>
            <Table.Th w={170}>Role</Table.Th>
            <Table.Th>Joined</Table.Th>
            <Table.Th w={60} />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {members.map((m) => {
            const change = canChangeRole(actor, m, owners);
            const removal = canRemoveMember(actor, m, owners);
            const options = grantableRoles(actor.role);
            // A member's current role is always listed so the select can show it.
            const data = (['owner', 'admin', 'agent'] as Role[])
              .filter((r) => options.includes(r) || r === m.role)
              .map((r) => ({ value: r, label: ROLE_LABEL[r], disabled: !options.includes(r) }));
            return (
              <Table.Tr key={m.user_id} data-testid={`member-row-${m.email}`}>
                <Table.Td>
                  <Group gap="sm" wrap="nowrap">
                    <UserAvatar name={m.name} url={m.avatar_url} size={32} />
                    <div>
                      <Text size="sm" fw={500}>
                        {m.name}
                        {m.user_id === actor.userId && (
                          <Badge ml={6} size="xs" variant="outline" color="gray">
                            You
                          </Badge>
                        )}
                      </Text>
                      <Text size="xs" c="dimmed">
                        {m.email}
                      </Text>
                    </div>
                  </Group>
                </Table.Td>
                <Table.Td>
                  {atLeast(actor.role, 'admin') ? (
                    <Tooltip label={change.reason} disabled={change.allowed} withArrow>
                      <div>
                        <Select
                          aria-label={`Role of ${m.name}`}
                          data={data}
                          value={m.role}
                          allowDeselect={false}
                          disabled={!change.allowed || changeRole.isPending}
                          onChange={(v) =>
                            v && v !== m.role && changeRole.mutate({ userId: m.user_id, role: v as Role })
                          }
                          size="xs"
                          w={140}
                          comboboxProps={{ withinPortal: true }}
                        />
                      </div>
                    </Tooltip>
                  ) : (
                    <RoleBadge role={m.role} />
                  )}
                </Table.Td>
                <Table.Td>
                  <Text size="sm">{formatDate(m.joined_at)}</Text>
                </Table.Td>
                <Table.Td>
                  {atLeast(actor.role, 'admin') && (
                    <Tooltip label={removal.allowed ? `Remove ${m.name}` : removal.reason} withArrow>
                      <ActionIcon
                        variant="subtle"
                        color="red"
                        aria-label={`Remove ${m.name}`}
                        disabled={!removal.allowed}
                        onClick={() => confirmRemove(m)}
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

function InvitationsSection() {
  const invitations = useInvitations();
  const queryClient = useQueryClient();
  const revoke = useMutation({
    mutationFn: (inv: InvitationOut) =>
      unwrap(client.DELETE('/api/v1/invitations/{id}', { params: { path: { id: inv.id } } })).then(() => inv),
    onSuccess: (inv) => {
      void queryClient.invalidateQueries({ queryKey: qk.invitations });
      notifications.show({ color: 'teal', message: `Invitation for ${inv.email} revoked` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Invitation not revoked', message: errorMessage(e) }),
  });

  const confirmRevoke = (inv: InvitationOut) =>
    modals.openConfirmModal({
      title: 'Revoke invitation?',
      children: <Text size="sm">The link sent to {inv.email} will stop working.</Text>,
      labels: { confirm: 'Revoke', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => revoke.mutate(inv),
    });

  return (
    <div>
      <Title order={4} mb="sm">
        Pending invitations
      </Title>
      <Paper withBorder radius="md">
        <QueryState
          query={invitations}
          isEmpty={(list) => list.every((i) => i.status !== 'pending')}
          empty={<EmptyState title="No pending invitations">Invite a teammate to give them access.</EmptyState>}
        >
          {(list) => (
            <Table.ScrollContainer minWidth={620}>
              <Table verticalSpacing="sm" data-testid="invitations-table">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Email</Table.Th>
                    <Table.Th>Role</Table.Th>
                    <Table.Th>Invited by</Table.Th>
                    <Table.Th>Expires</Table.Th>
                    <Table.Th w={60} />
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {list
                    .filter((i) => i.status === 'pending')
                    .map((inv) => (
                      <Table.Tr key={inv.id} data-testid={`invitation-row-${inv.email}`}>
                        <Table.Td>
                          <Text size="sm">{inv.email}</Text>
                        </Table.Td>
                        <Table.Td>
                          <RoleBadge role={inv.role} />
                        </Table.Td>
                        <Table.Td>
                          <Text size="sm">{inv.invited_by.name}</Text>
                        </Table.Td>
                        <Table.Td>
                          <Tooltip label={formatDate(inv.expires_at)} withArrow>
                            <Text size="sm">{formatRelative(inv.expires_at)}</Text>
                          </Tooltip>
                        </Table.Td>
                        <Table.Td>
                          <Tooltip label="Revoke" withArrow>
                            <ActionIcon
                              variant="subtle"
                              color="red"
                              aria-label={`Revoke invitation for ${inv.email}`}
                              onClick={() => confirmRevoke(inv)}
                            >
                              <IconX size={16} />
                            </ActionIcon>
                          </Tooltip>
                        </Table.Td>
                      </Table.Tr>
                    ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
        </QueryState>
      </Paper>
    </div>
  );
}

const EXPIRY = [
  { value: '24', label: '1 day' },
  { value: '72', label: '3 days' },
  { value: '168', label: '7 days' },
  { value: '336', label: '14 days' },
  { value: '720', label: '30 days' },
];

export function InviteModal({ opened, onClose, actorRole }: { opened: boolean; onClose: () => void; actorRole: Role }) {
  const queryClient = useQueryClient();
  const [created, setCreated] = useState<InvitationOut | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const roles = grantableRoles(actorRole);
  const form = useForm({
    mode: 'controlled',
    initialValues: { email: '', role: 'agent' as Role, expires_in_hours: '168' },
    validate: {
      email: (v) => (/^\S+@\S+\.\S+$/.test(v.trim()) ? null : 'Enter a valid email address'),
    },
  });
  const invite = useMutation({
    mutationFn: (v: typeof form.values) =>
      unwrap(
        client.POST('/api/v1/invitations', {
          body: { email: v.email.trim(), role: v.role, expires_in_hours: Number(v.expires_in_hours) },
        }),
      ),
    onSuccess: (inv) => {
      setCreated(inv);
      void queryClient.invalidateQueries({ queryKey: qk.invitations });
      notifications.show({ color: 'teal', message: `Invitation created for ${inv.email}` });
    },
    onError: (e) =>
      setFormError(applyApiError(form, e, { codes: { already_member: 'email', invitation_exists: 'email' } })),
  });

  const close = () => {
    onClose();
    // Let the closing transition finish before the content switches back to the form.
    setTimeout(() => {
      setCreated(null);
      setFormError(null);
      form.reset();
    }, 200);
  };

  return (
    <Modal opened={opened} onClose={close} title={created ? 'Invitation ready' : 'Invite a member'} size="lg">
      {created ? (
        <Stack>
          <Text size="sm">
            Send this link to <b>{created.email}</b>. It lets them join as {ROLE_LABEL[created.role].toLowerCase()} and
            expires {formatRelative(created.expires_at)}.
          </Text>
          {created.invite_url ? (
            <CopyField label="Invite link" value={created.invite_url} testId="invite-link" />
          ) : (
            <Text c="red" size="sm">
              The server did not return a link for this invitation.
            </Text>
          )}
          <Group justify="flex-end">
            <Button onClick={close}>Done</Button>
          </Group>
        </Stack>
      ) : (
        <form
          noValidate
          onSubmit={form.onSubmit((v) => {
            setFormError(null);
            invite.mutate(v);
          })}
        >
          <Stack>
            <FormError message={formError} />
            <TextInput label="Email" type="email" required data-autofocus {...form.getInputProps('email')} />
            <Select
              label="Role"
              data={roles.map((r) => ({ value: r, label: ROLE_LABEL[r] }))}
              allowDeselect={false}
              comboboxProps={{ withinPortal: true }}
              {...form.getInputProps('role')}
            />
            <Select
              label="Link expires in"
              data={EXPIRY}
              allowDeselect={false}
              comboboxProps={{ withinPortal: true }}
              {...form.getInputProps('expires_in_hours')}
            />
            <Group justify="flex-end">
              <Button variant="default" onClick={close}>
                Cancel
              </Button>
              <Button type="submit" loading={invite.isPending}>
                Create invitation
              </Button>
            </Group>
          </Stack>
        </form>
      )}
    </Modal>
  );
}
