import { Alert, Anchor, Button, Stack, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useMutation } from '@tanstack/react-query';
import { IconMailCheck } from '@tabler/icons-react';
import { useState } from 'react';
import { Link } from 'react-router';

import { client, unwrap } from '../api/client';
import { AuthCard } from '../components/AuthCard';
import { FormError } from '../components/FormError';
import { applyApiError } from '../lib/forms';

export function ForgotPasswordPage() {
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { email: '' },
    validate: { email: (v) => (/^\S+@\S+$/.test(v) ? null : 'Enter your email address') },
  });
  const forgot = useMutation({
    mutationFn: (values: { email: string }) => unwrap(client.POST('/api/v1/auth/password/forgot', { body: values })),
    onError: (err) => setFormError(applyApiError(form, err)),
  });

  return (
    <AuthCard
      title="Reset your password"
      subtitle="We'll email you a link to choose a new one."
      footer={
        <Anchor component={Link} to="/login">
          Back to log in
        </Anchor>
      }
    >
      {forgot.isSuccess ? (
        <Alert color="teal" icon={<IconMailCheck size={18} />} title="Check your email" data-testid="forgot-sent">
          If an account exists for {forgot.variables.email}, a reset link is on its way. The link works once and expires
          soon.
        </Alert>
      ) : (
        <form
          noValidate
          onSubmit={form.onSubmit((values) => {
            setFormError(null);
            forgot.mutate({ email: values.email.trim() });
          })}
        >
          <Stack>
            <FormError message={formError} />
            <TextInput label="Email" type="email" autoComplete="email" required {...form.getInputProps('email')} />
            <Button type="submit" loading={forgot.isPending} fullWidth>
              Send reset link
            </Button>
          </Stack>
        </form>
      )}
    </AuthCard>
  );
}
