import { Anchor, Button, PasswordInput, Stack, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate } from 'react-router';

import { client, unwrap } from '../api/client';
import type { Body } from '../api/types';
import type { paths } from '../api/schema';
import { signIn } from '../auth/session';
import { AuthCard } from '../components/AuthCard';
import { FormError } from '../components/FormError';
import { applyApiError } from '../lib/forms';
import { MIN_PASSWORD, passwordRule } from '../lib/validation';

type RegisterIn = Body<paths['/api/v1/auth/register']['post']>;

export function RegisterPage() {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [formError, setFormError] = useState<string | null>(null);

  const form = useForm<RegisterIn>({
    mode: 'controlled',
    initialValues: { email: '', password: '', name: '', organization: '' },
    validate: {
      name: (v) => (v.trim() ? null : 'Enter your name'),
      organization: (v) => (v.trim() ? null : 'Name your organization'),
      email: (v) => (/^\S+@\S+\.\S+$/.test(v) ? null : 'Enter a valid email address'),
      password: passwordRule,
    },
  });

  const register = useMutation({
    mutationFn: (values: RegisterIn) => unwrap(client.POST('/api/v1/auth/register', { body: values })),
    onSuccess: (auth) => {
      signIn(queryClient, auth);
      navigate('/inbox', { replace: true });
    },
    onError: (err) => setFormError(applyApiError(form, err, { codes: { email_taken: 'email' } })),
  });

  return (
    <AuthCard
      title="Create your workspace"
      subtitle="One inbox for WhatsApp and Telegram, for your whole team."
      footer={
        <>
          Already have an account?{' '}
          <Anchor component={Link} to="/login">
            Log in
          </Anchor>
        </>
      }
    >
      <form
        noValidate
        onSubmit={form.onSubmit((values) => {
          setFormError(null);
          register.mutate({
            ...values,
            name: values.name.trim(),
            organization: values.organization.trim(),
            email: values.email.trim(),
          });
        })}
      >
        <Stack>
          <FormError message={formError} />
          <TextInput label="Your name" autoComplete="name" required {...form.getInputProps('name')} />
          <TextInput
            label="Organization"
            autoComplete="organization"
            required
            {...form.getInputProps('organization')}
          />
          <TextInput label="Email" type="email" autoComplete="email" required {...form.getInputProps('email')} />
          <PasswordInput
            label="Password"
            description={`At least ${MIN_PASSWORD} characters`}
            autoComplete="new-password"
            required
            {...form.getInputProps('password')}
          />
          <Button type="submit" loading={register.isPending} fullWidth>
            Create account
          </Button>
        </Stack>
      </form>
    </AuthCard>
  );
}
