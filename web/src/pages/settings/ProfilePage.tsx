import { Button, FileButton, Group, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { IconTrash, IconUpload } from '@tabler/icons-react';
import { useEffect, useState } from 'react';

import { client, unwrap } from '../../api/client';
import { qk } from '../../api/queries';
import type { MeOut, UserOut } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { UserAvatar } from '../../components/UserAvatar';
import { AVATAR_TYPES, checkAvatar } from '../../lib/avatar';
import { applyApiError, errorMessage } from '../../lib/forms';
import { MIN_PASSWORD, confirmRule, passwordRule } from '../../lib/validation';

function useSetUser() {
  const queryClient = useQueryClient();
  return (user: UserOut) => {
    queryClient.setQueryData<MeOut>(qk.me, (me) => (me ? { ...me, user } : me));
    void queryClient.invalidateQueries({ queryKey: qk.members });
  };
}

export function ProfilePage() {
  return (
    <>
      <PageHeader title="Profile" description="How your teammates see you." />
      <Stack gap="lg">
        <AvatarSection />
        <DetailsSection />
        <PasswordSection />
      </Stack>
    </>
  );
}

function AvatarSection() {
  const { user } = useCurrent();
  const setUser = useSetUser();
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (!file) {
      setPreview(null);
      return;
    }
    const url = URL.createObjectURL(file);
    setPreview(url);
    return () => URL.revokeObjectURL(url);
  }, [file]);

  const upload = useMutation({
    mutationFn: (f: File) => {
      const form = new FormData();
      form.append('file', f);
      // openapi-fetch passes FormData through untouched (the browser sets the multipart boundary);
      // the generated type of a binary part is `string`, hence the cast.
      return unwrap(client.PUT('/api/v1/me/avatar', { body: form as never }));
    },
    onSuccess: (u) => {
      setUser(u);
      setFile(null);
      notifications.show({ color: 'teal', message: 'Avatar updated' });
    },
    onError: (e) => setError(errorMessage(e)),
  });

  const remove = useMutation({
    mutationFn: () => unwrap(client.DELETE('/api/v1/me/avatar')),
    onSuccess: (u) => {
      setUser(u);
      notifications.show({ color: 'teal', message: 'Avatar removed' });
    },
    onError: (e) => setError(errorMessage(e)),
  });

  const pick = (f: File | null) => {
    setError(null);
    if (!f) return;
    const problem = checkAvatar(f);
    if (problem) {
      setError(problem);
      setFile(null);
      return;
    }
    setFile(f);
  };

  return (
    <Paper withBorder p="lg" radius="md">
      <Title order={4} mb="sm">
        Avatar
      </Title>
      <Group align="center" gap="lg">
        <UserAvatar name={user.name} url={preview ?? user.avatar_url} size={84} data-testid="avatar-preview" />
        <Stack gap="xs">
          <Group gap="xs">
            <FileButton onChange={pick} accept={AVATAR_TYPES.join(',')}>
              {(props) => (
                <Button variant="default" leftSection={<IconUpload size={16} />} {...props}>
                  Choose image
                </Button>
              )}
            </FileButton>
            {file && (
              <Button onClick={() => upload.mutate(file)} loading={upload.isPending}>
                Upload
              </Button>
            )}
            {file && (
              <Button variant="subtle" color="gray" onClick={() => setFile(null)}>
                Cancel
              </Button>
            )}
            {!file && user.avatar_url && (
              <Button
                variant="subtle"
                color="red"
                leftSection={<IconTrash size={16} />}
                onClick={() => remove.mutate()}
                loading={remove.isPending}
              >
                Remove
              </Button>
            )}
          </Group>
          <Text size="xs" c={error ? 'red' : 'dimmed'} data-testid="avatar-hint">
            {error ??
              (file ? `Preview of ${file.name}: press Upload to save it.` : 'PNG, JPEG, WebP or GIF, up to 2 MB.')}
          </Text>
        </Stack>
      </Group>
    </Paper>
  );
}

function DetailsSection() {
  const { user } = useCurrent();
  const setUser = useSetUser();
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { name: user.name, status_text: user.status_text ?? '' },
    validate: { name: (v) => (v.trim() ? null : 'Enter your name') },
  });
  const save = useMutation({
    mutationFn: (v: { name: string; status_text: string }) =>
      unwrap(
        client.PATCH('/api/v1/me', {
          body: { name: v.name.trim(), status_text: v.status_text.trim() ? v.status_text.trim() : null },
        }),
      ),
    onSuccess: (u) => {
      setUser(u);
      form.resetDirty({ name: u.name, status_text: u.status_text ?? '' });
      notifications.show({ color: 'teal', message: 'Profile saved' });
    },
    onError: (e) => setFormError(applyApiError(form, e)),
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
          <TextInput label="Email" value={user.email} readOnly disabled />
          <TextInput label="Display name" required {...form.getInputProps('name')} />
          <TextInput
            label="Status"
            placeholder="e.g. On holiday until Monday"
            description="Shown next to your name to your teammates"
            {...form.getInputProps('status_text')}
          />
          <Group>
            <Button type="submit" loading={save.isPending} disabled={!form.isDirty()}>
              Save profile
            </Button>
          </Group>
        </Stack>
      </form>
    </Paper>
  );
}

function PasswordSection() {
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { current_password: '', new_password: '', confirm: '' },
    validate: {
      current_password: (v) => (v ? null : 'Enter your current password'),
      new_password: passwordRule,
      confirm: confirmRule('new_password'),
    },
  });
  const change = useMutation({
    mutationFn: (v: { current_password: string; new_password: string }) =>
      unwrap(
        client.POST('/api/v1/me/password', {
          body: { current_password: v.current_password, new_password: v.new_password },
        }),
      ),
    onSuccess: () => {
      form.reset();
      notifications.show({ color: 'teal', message: 'Password changed' });
    },
    onError: (e) =>
      setFormError(
        applyApiError(form, e, {
          codes: { invalid_credentials: 'current_password', wrong_password: 'current_password' },
        }),
      ),
  });

  return (
    <Paper withBorder p="lg" radius="md">
      <Title order={4} mb="sm">
        Change password
      </Title>
      <form
        noValidate
        onSubmit={form.onSubmit((v) => {
          setFormError(null);
          change.mutate(v);
        })}
      >
        <Stack maw={460}>
          <FormError message={formError} />
          <PasswordInput
            label="Current password"
            autoComplete="current-password"
            required
            {...form.getInputProps('current_password')}
          />
          <PasswordInput
            label="New password"
            description={`At least ${MIN_PASSWORD} characters`}
            autoComplete="new-password"
            required
            {...form.getInputProps('new_password')}
          />
          <PasswordInput
            label="Repeat new password"
            autoComplete="new-password"
            required
            {...form.getInputProps('confirm')}
          />
          <Group>
            <Button type="submit" loading={change.isPending}>
              Change password
            </Button>
          </Group>
        </Stack>
      </form>
    </Paper>
  );
}
