import { Alert, Anchor, Button, Group, PasswordInput, Stack, Text, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { IconAlertTriangle } from '@tabler/icons-react';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';

import { client, unwrap } from '../api/client';
import { isApiError } from '../api/problem';
import { qk } from '../api/queries';
import type { InvitationPreviewOut } from '../api/types';
import { signIn } from '../auth/session';
import { AuthCard } from '../components/AuthCard';
import { FormError } from '../components/FormError';
import { LoadingState } from '../components/QueryState';
import { RoleBadge } from '../components/RoleBadge';
import { applyApiError, errorMessage } from '../lib/forms';
import { formatDateTime } from '../lib/format';
import { MIN_PASSWORD, passwordRule } from '../lib/validation';

/** Why an invitation link cannot be used, in words for the person holding it. */
export function invitationProblem(err: unknown): { title: string; message: string } {
  const code = isApiError(err) ? err.code : '';
  switch (code) {
    case 'invitation_expired':
      return { title: 'This invitation has expired', message: 'Ask the person who invited you to send a new one.' };
    case 'invitation_used':
      return { title: 'This invitation was already used', message: 'If it was you, log in with that account.' };
    case 'invitation_revoked':
      return {
        title: 'This invitation was revoked',
        message: 'Ask an admin of the organization for a new invitation.',
      };
    default:
      if (isApiError(err) && err.status === 404) {
        return {
          title: 'This invitation link is not valid',
          message: 'Check that you copied the whole link, or ask for a new one.',
        };
      }
      if (isApiError(err) && err.status === 410) {
        return { title: 'This invitation can no longer be used', message: err.userMessage };
      }
      return { title: 'Could not open this invitation', message: errorMessage(err) };
  }
}

export function AcceptInvitePage() {
  const { token = '' } = useParams();
  const preview = useQuery({
    queryKey: qk.invitationPreview(token),
    queryFn: () => unwrap(client.GET('/api/v1/auth/invitations/{token}', { params: { path: { token } } })),
    retry: false,
  });

  const footer = (
    <Anchor component={Link} to="/login">
      Go to log in
    </Anchor>
  );

  if (preview.isPending) {
    return (
      <AuthCard title="Invitation" footer={footer}>
        <LoadingState label="Checking your invitation…" />
      </AuthCard>
    );
  }
  if (preview.isError) {
    const p = invitationProblem(preview.error);
    return (
      <AuthCard title="Invitation" footer={footer}>
        <Alert color="red" icon={<IconAlertTriangle size={18} />} title={p.title} data-testid="invite-error">
          {p.message}
        </Alert>
      </AuthCard>
    );
  }
  return <AcceptForm token={token} invitation={preview.data} footer={footer} />;
}

function AcceptForm({
  token,
  invitation,
  footer,
}: {
  token: string;
  invitation: InvitationPreviewOut;
  footer: React.ReactNode;
}) {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [formError, setFormError] = useState<string | null>(null);
  const existing = invitation.account_exists;
  const form = useForm({
    mode: 'controlled',
    initialValues: { name: '', password: '' },
    validate: {
      name: (v) => (existing || v.trim() ? null : 'Enter your name'),
      password: existing ? (v) => (v ? null : 'Enter your password') : passwordRule,
    },
  });
  const accept = useMutation({
    mutationFn: (values: { name: string; password: string }) =>
      unwrap(
        client.POST('/api/v1/auth/invitations/{token}/accept', {
          params: { path: { token } },
          body: { name: values.name.trim(), password: values.password },
        }),
      ),
    onSuccess: (auth) => {
      signIn(queryClient, auth);
      notifications.show({
        color: 'teal',
        title: `Welcome to ${auth.organization.name}`,
        message: 'You joined the organization.',
      });
      navigate('/inbox', { replace: true });
    },
    onError: (err) => {
      const known = ['invitation_expired', 'invitation_used', 'invitation_revoked'];
      if (isApiError(err) && known.includes(err.code)) {
        setFormError(invitationProblem(err).title);
      } else {
        setFormError(
          applyApiError(form, err, { codes: { invalid_credentials: 'password', unauthorized: 'password' } }),
        );
      }
    },
  });

  return (
    <AuthCard
      title={`Join ${invitation.organization.name}`}
      subtitle={
        <>
          You are invited as <RoleBadge role={invitation.role} />
        </>
      }
      footer={footer}
    >
      <div data-testid="invite-details">
        <Group gap="xs">
          <Text size="sm" c="dimmed">
            Organization:
          </Text>
          <Text size="sm" fw={600} data-testid="invite-org">
            {invitation.organization.name}
          </Text>
        </Group>
        <Group gap="xs">
          <Text size="sm" c="dimmed">
            Invited by:
          </Text>
          <Text size="sm" data-testid="invite-inviter">
            {invitation.invited_by_name}
          </Text>
        </Group>
        <Text size="xs" c="dimmed">
          Expires {formatDateTime(invitation.expires_at)}
        </Text>
      </div>
      {existing && (
        <Alert color="blue" variant="light">
          You already have a Wamage account for {invitation.email}. Enter its password to join this organization.
        </Alert>
      )}
      <form
        noValidate
        onSubmit={form.onSubmit((values) => {
          setFormError(null);
          accept.mutate(values);
        })}
      >
        <Stack>
          <FormError message={formError} />
          <TextInput label="Email" value={invitation.email} readOnly disabled />
          {!existing && <TextInput label="Your name" autoComplete="name" required {...form.getInputProps('name')} />}
          <PasswordInput
            label={existing ? 'Your password' : 'Choose a password'}
            description={existing ? undefined : `At least ${MIN_PASSWORD} characters`}
            autoComplete={existing ? 'current-password' : 'new-password'}
            required
            {...form.getInputProps('password')}
          />
          <Button type="submit" loading={accept.isPending} fullWidth>
            {existing ? 'Join organization' : 'Create account and join'}
          </Button>
        </Stack>
      </form>
    </AuthCard>
  );
}
