/**
 * Settings → Channels → one channel: rename, pace, kind settings, secrets replaced only when
 * typed (set ones show "Set"), webhook URL and verify token, "Test connection", delete, and for
 * a Sandbox channel the customer simulator.
 */
import { Alert, Anchor, Badge, Button, Code, Group, Paper, Stack, Switch, Text, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { IconArrowLeft, IconFlask, IconPlugConnected, IconTrash } from '@tabler/icons-react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';

import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { CopyField } from '../../components/CopyField';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { QueryState } from '../../components/QueryState';
import { applyApiError, errorMessage } from '../../lib/forms';
import {
  deleteChannel,
  inboxKeys,
  testChannel,
  updateChannel,
  useInboxChannel,
  useInboxChannels,
} from '../../lib/inbox/api';
import {
  CHANNEL_ERROR_FIELDS,
  KIND_LABEL,
  channelPatchBody,
  channelToForm,
  validateChannelForm,
  type ChannelFormValues,
} from '../../lib/inbox/channels';
import type { ChannelOut, ChannelTestOut } from '../../lib/inbox/types';
import { ChannelIcon } from '../inbox/ChannelIcon';
import { SimulateDrawer } from '../inbox/SimulateDrawer';
import { ChannelFields, CircuitBadge, HealthBadge } from './ChannelsPage';

export function ChannelPage() {
  const { id = '' } = useParams();
  const channel = useInboxChannel(id);
  return (
    <>
      <Anchor component={Link} to="/settings/channels" size="sm">
        <Group gap={4} mb="sm">
          <IconArrowLeft size={14} /> Channels
        </Group>
      </Anchor>
      <QueryState query={channel}>{(c) => <ChannelDetail key={c.id} channel={c} />}</QueryState>
    </>
  );
}

function ChannelDetail({ channel }: { channel: ChannelOut }) {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [formError, setFormError] = useState<string | null>(null);
  const [test, setTest] = useState<ChannelTestOut | null>(null);
  const [simulating, setSimulating] = useState(false);
  const sandboxes = (useInboxChannels().data ?? []).filter((c) => c.kind === 'sandbox');
  const form = useForm<ChannelFormValues>({
    mode: 'controlled',
    initialValues: channelToForm(channel),
    validate: (v) => validateChannelForm(channel.kind, v, false),
  });

  const saved = (c: ChannelOut) => {
    qc.setQueryData(inboxKeys.channel(c.id), c);
    qc.setQueryData<ChannelOut[]>(inboxKeys.channels, (list) => list?.map((x) => (x.id === c.id ? c : x)));
  };

  const save = useMutation({
    mutationFn: (v: ChannelFormValues) => updateChannel(channel.id, channelPatchBody(channel, v)),
    onSuccess: (c) => {
      saved(c);
      form.setValues(channelToForm(c));
      form.resetDirty(channelToForm(c));
      notifications.show({ color: 'teal', message: `${c.name} saved` });
    },
    onError: (e) => setFormError(applyApiError(form, e, { fields: CHANNEL_ERROR_FIELDS })),
  });

  const enable = useMutation({
    mutationFn: (enabled: boolean) => updateChannel(channel.id, { enabled }),
    onSuccess: saved,
    onError: (e) => notifications.show({ color: 'red', title: 'Not changed', message: errorMessage(e) }),
  });

  const runTest = useMutation({
    mutationFn: () => testChannel(channel.id),
    onSuccess: (r) => {
      setTest(r);
      // The test updated the health (and maybe the display number / bot name).
      void qc.invalidateQueries({ queryKey: inboxKeys.channel(channel.id) });
      void qc.invalidateQueries({ queryKey: inboxKeys.channels, exact: true });
    },
    onError: (e) => setTest({ ok: false, error: errorMessage(e) }),
  });

  const remove = useMutation({
    mutationFn: () => deleteChannel(channel.id),
    onSuccess: () => {
      qc.setQueryData<ChannelOut[]>(inboxKeys.channels, (list) => list?.filter((x) => x.id !== channel.id));
      notifications.show({ color: 'teal', message: `${channel.name} deleted` });
      navigate('/settings/channels', { replace: true });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });

  const confirmDelete = () =>
    modals.openConfirmModal({
      title: `Delete ${channel.name}?`,
      children: (
        <Text size="sm">
          No more messages are sent or received through it. Its conversations stay in the inbox, read-only.
        </Text>
      ),
      labels: { confirm: 'Delete channel', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(),
    });

  return (
    <>
      <PageHeader
        title={channel.name}
        description={
          <Group gap={6} component="span">
            <ChannelIcon kind={channel.kind} size={14} /> {KIND_LABEL[channel.kind]}
            {channel.config.display_phone_number ? ` · ${channel.config.display_phone_number}` : ''}
            {channel.config.bot_username ? ` · @${channel.config.bot_username}` : ''}
          </Group>
        }
        actions={
          <Group gap="xs">
            {channel.kind === 'sandbox' && (
              <Button
                variant="light"
                color="grape"
                leftSection={<IconFlask size={16} />}
                onClick={() => setSimulating(true)}
              >
                Simulate customer
              </Button>
            )}
            <Button
              variant="default"
              leftSection={<IconPlugConnected size={16} />}
              loading={runTest.isPending}
              onClick={() => runTest.mutate()}
            >
              Test connection
            </Button>
          </Group>
        }
      />
      <Stack gap="lg">
        <Group gap="xs">
          <HealthBadge c={channel} />
          <CircuitBadge c={channel} />
          {!channel.enabled && <Badge color="gray">Disabled</Badge>}
          {channel.health.reason && (
            <Text size="sm" c="red">
              {channel.health.reason}
            </Text>
          )}
        </Group>
        {test && (
          <Alert
            color={test.ok ? 'teal' : 'red'}
            title={test.ok ? 'Connection works' : 'Connection failed'}
            withCloseButton
            onClose={() => setTest(null)}
            data-testid="test-result"
          >
            {test.ok ? (
              test.detail &&
              Object.keys(test.detail).length > 0 && <Code block>{JSON.stringify(test.detail, null, 2)}</Code>
            ) : (
              <Text size="sm">{test.error}</Text>
            )}
          </Alert>
        )}
        {(channel.webhook_url || channel.verify_token) && (
          <Paper withBorder radius="md" p="md">
            <Stack gap="sm">
              <Title order={4}>Webhook</Title>
              {channel.webhook_url && (
                <CopyField label="Webhook URL" value={channel.webhook_url} testId="webhook-url" />
              )}
              {channel.verify_token && (
                <CopyField label="Verify token" value={channel.verify_token} testId="verify-token" />
              )}
            </Stack>
          </Paper>
        )}
        <Paper withBorder radius="md" p="md">
          <form
            noValidate
            onSubmit={form.onSubmit((v) => {
              setFormError(null);
              save.mutate(v);
            })}
          >
            <Stack>
              <Group justify="space-between">
                <Title order={4}>Settings</Title>
                <Switch
                  label="Enabled"
                  checked={channel.enabled}
                  disabled={!isAdmin || enable.isPending}
                  onChange={(e) => enable.mutate(e.currentTarget.checked)}
                />
              </Group>
              <FormError message={formError} />
              <fieldset disabled={!isAdmin} style={{ border: 0, padding: 0, margin: 0 }}>
                <ChannelFields kind={channel.kind} form={form} secrets={channel.secrets} />
              </fieldset>
              {isAdmin && (
                <Group justify="space-between">
                  <Button variant="subtle" color="red" leftSection={<IconTrash size={16} />} onClick={confirmDelete}>
                    Delete channel
                  </Button>
                  <Button type="submit" loading={save.isPending}>
                    Save changes
                  </Button>
                </Group>
              )}
            </Stack>
          </form>
        </Paper>
      </Stack>
      <SimulateDrawer
        opened={simulating}
        onClose={() => setSimulating(false)}
        channels={sandboxes.length ? sandboxes : channel.kind === 'sandbox' ? [channel] : []}
        channelId={channel.id}
      />
    </>
  );
}
