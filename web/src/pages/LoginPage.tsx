import { Anchor, Button, Group, PasswordInput, Stack, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useLocation, useNavigate } from 'react-router';

import { client, unwrap } from '../api/client';
import { signIn } from '../auth/session';
import { AuthCard } from '../components/AuthCard';
import { FormError } from '../components/FormError';
import { applyApiError } from '../lib/forms';

export function LoginPage() {
  const navigate = useNavigate();
  const location = useLocation();
  const queryClient = useQueryClient();
  const [formError, setFormError] = useState<string | null>(null);
  const from = (location.state as { from?: string } | null)?.from;

  const form = useForm({
    mode: 'controlled',
    initialValues: { email: '', password: '' },
    validate: {
      email: (v) => (/^\S+@\S+$/.test(v) ? null : 'Enter your email address'),
      password: (v) => (v ? null : 'Enter your password'),
    },
  });

  const login = useMutation({
    mutationFn: (values: typeof form.values) => unwrap(client.POST('/api/v1/auth/login', { body: values })),
    onSuccess: (auth) => {
      signIn(queryClient, auth);
      navigate(from && from.startsWith('/') && !from.startsWith('/login') ? from : '/inbox', { replace: true });
    },
    onError: (err) => setFormError(applyApiError(form, err)),
  });

  return (
    <AuthCard
      title="Log in"
      subtitle="Welcome back to your shared inbox."
      footer={
        <>
          No account yet?{' '}
          <Anchor component={Link} to="/register">
            Create one
          </Anchor>
        </>
      }
    >
      <form
        noValidate
        onSubmit={form.onSubmit((values) => {
          setFormError(null);
          login.mutate(values);
        })}
      >
        <Stack>
          <FormError message={formError} />
          <TextInput label="Email" type="email" autoComplete="email" required {...form.getInputProps('email')} />
          <PasswordInput
            label="Password"
            autoComplete="current-password"
            required
            {...form.getInputProps('password')}
          />
          <Group justify="flex-end">
            <Anchor component={Link} to="/forgot-password" size="sm">
              Forgot password?
            </Anchor>
          </Group>
          <Button type="submit" loading={login.isPending} fullWidth>
            Log in
          </Button>
        </Stack>
      </form>
    </AuthCard>
  );
}
