import { Alert, Button, Group, Paper, Stack, Text, TextInput } from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';

import { client, unwrap } from '../../api/client';
import { qk, useOrganization } from '../../api/queries';
import { atLeast, type MeOut, type OrgOut } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { QueryState } from '../../components/QueryState';
import { applyApiError } from '../../lib/forms';
import { formatDate } from '../../lib/format';

export function OrganizationPage() {
  const org = useOrganization();
  return (
    <>
      <PageHeader title="Organization" description="Your workspace: its members, channels and data." />
      <QueryState query={org}>{(o) => <OrgForm org={o} />}</QueryState>
    </>
  );
}

function OrgForm({ org }: { org: OrgOut }) {
  const { role } = useCurrent();
  const canEdit = atLeast(role, 'admin');
  const queryClient = useQueryClient();
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm({
    mode: 'controlled',
    initialValues: { name: org.name },
    validate: { name: (v) => (v.trim() ? null : 'The organization needs a name') },
  });
  useEffect(() => {
    if (!form.isDirty()) form.setValues({ name: org.name });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [org.name]);

  const save = useMutation({
    mutationFn: (name: string) => unwrap(client.PATCH('/api/v1/organization', { body: { name } })),
    onSuccess: (o) => {
      queryClient.setQueryData(qk.organization, o);
      queryClient.setQueryData<MeOut>(qk.me, (me) => (me ? { ...me, organization: o } : me));
      form.resetDirty({ name: o.name });
      notifications.show({ color: 'teal', message: 'Organization renamed' });
    },
    onError: (e) => setFormError(applyApiError(form, e)),
  });

  return (
    <Paper withBorder p="lg" radius="md">
      <form
        noValidate
        onSubmit={form.onSubmit((v) => {
          setFormError(null);
          save.mutate(v.name.trim());
        })}
      >
        <Stack maw={460}>
          {!canEdit && (
            <Alert color="gray" variant="light">
              Only admins and owners can change the organization.
            </Alert>
          )}
          <FormError message={formError} />
          <TextInput label="Organization name" required disabled={!canEdit} {...form.getInputProps('name')} />
          <Text size="xs" c="dimmed">
            Created {formatDate(org.created_at)}
          </Text>
          {canEdit && (
            <Group>
              <Button type="submit" loading={save.isPending} disabled={!form.isDirty()}>
                Save
              </Button>
            </Group>
          )}
        </Stack>
      </form>
    </Paper>
  );
}
