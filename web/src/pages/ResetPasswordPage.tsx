import { Alert, Anchor, Button, PasswordInput, Stack } from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';

import { client, unwrap } from '../api/client';
import { isApiError } from '../api/problem';
import { AuthCard } from '../components/AuthCard';
import { FormError } from '../components/FormError';
import { applyApiError } from '../lib/forms';
import { MIN_PASSWORD, confirmRule, passwordRule } from '../lib/validation';

export function ResetPasswordPage() {
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const navigate = useNavigate();
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { password: '', confirm: '' },
    validate: { password: passwordRule, confirm: confirmRule('password') },
  });
  const reset = useMutation({
    mutationFn: (password: string) => unwrap(client.POST('/api/v1/auth/password/reset', { body: { token, password } })),
    onSuccess: () => {
      notifications.show({ color: 'teal', title: 'Password changed', message: 'Log in with your new password.' });
      navigate('/login', { replace: true });
    },
    onError: (err) => {
      // The token is not an input here: say what to do about it instead of "token: …".
      if (isApiError(err) && err.code === 'invalid_reset_token')
        setFormError(`${err.title}. Ask for a new link below.`);
      else setFormError(applyApiError(form, err));
    },
  });

  const footer = (
    <Anchor component={Link} to="/login">
      Back to log in
    </Anchor>
  );

  if (!token) {
    return (
      <AuthCard title="Choose a new password" footer={footer}>
        <Alert color="red" title="This link is incomplete" data-testid="reset-missing-token">
          The reset link has no token. Open the link from the email again, or{' '}
          <Anchor component={Link} to="/forgot-password">
            ask for a new one
          </Anchor>
          .
        </Alert>
      </AuthCard>
    );
  }

  return (
    <AuthCard title="Choose a new password" footer={footer}>
      <form
        noValidate
        onSubmit={form.onSubmit((values) => {
          setFormError(null);
          reset.mutate(values.password);
        })}
      >
        <Stack>
          <FormError message={formError} />
          <PasswordInput
            label="New password"
            description={`At least ${MIN_PASSWORD} characters`}
            autoComplete="new-password"
            required
            {...form.getInputProps('password')}
          />
          <PasswordInput
            label="Repeat new password"
            autoComplete="new-password"
            required
            {...form.getInputProps('confirm')}
          />
          <Button type="submit" loading={reset.isPending} fullWidth>
            Set new password
          </Button>
          <Anchor component={Link} to="/forgot-password" size="sm" ta="center">
            Ask for a new reset link
          </Anchor>
        </Stack>
      </form>
    </AuthCard>
  );
}
