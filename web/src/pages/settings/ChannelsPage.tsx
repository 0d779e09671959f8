/**
 * Settings → Channels: the org's WhatsApp / Telegram / Sandbox channels with health, circuit
 * breaker and an enabled switch, and the "Connect channel" wizard (kind → guided fields →
 * webhook URL and verify token to paste into the provider). `?connect=1` opens the wizard.
 */
import {
  Anchor,
  Badge,
  Button,
  Card,
  Group,
  Modal,
  NumberInput,
  Paper,
  PasswordInput,
  SegmentedControl,
  SimpleGrid,
  Stack,
  Stepper,
  Switch,
  Table,
  Text,
  TextInput,
  Tooltip,
  UnstyledButton,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { IconPlugConnected } from '@tabler/icons-react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';

import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { CopyField } from '../../components/CopyField';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { applyApiError, errorMessage } from '../../lib/forms';
import { formatRelative } from '../../lib/format';
import { createChannel, inboxKeys, updateChannel, useInboxChannels } from '../../lib/inbox/api';
import {
  CHANNEL_ERROR_FIELDS,
  KIND_LABEL,
  channelCreateBody,
  emptyChannelForm,
  validateChannelForm,
  type ChannelFormValues,
} from '../../lib/inbox/channels';
import type { ChannelKind, ChannelOut } from '../../lib/inbox/types';
import { ChannelIcon } from '../inbox/ChannelIcon';

export function HealthBadge({ c }: { c: ChannelOut }) {
  const { state, reason, checked_at } = c.health;
  const color = state === 'healthy' ? 'teal' : state === 'unhealthy' ? 'red' : 'gray';
  const label = state === 'healthy' ? 'Healthy' : state === 'unhealthy' ? 'Unhealthy' : 'Unknown';
  const tip = [reason, checked_at ? `Checked ${formatRelative(checked_at)}` : 'Not checked yet']
    .filter(Boolean)
    .join(' · ');
  return (
    <Tooltip label={tip} multiline maw={300}>
      <Badge color={color} variant="light" data-testid="health-badge" data-state={state}>
        {label}
      </Badge>
    </Tooltip>
  );
}

export function CircuitBadge({ c }: { c: ChannelOut }) {
  if (c.circuit.state === 'closed') return null;
  const open = c.circuit.state === 'open';
  return (
    <Tooltip
      label={`${c.circuit.failures} failures in a row${c.circuit.retry_at ? ` · retry ${formatRelative(c.circuit.retry_at)}` : ''}`}
    >
      <Badge color={open ? 'red' : 'orange'} variant="outline" data-testid="circuit-badge">
        {open ? 'Sending paused' : 'Testing recovery'}
      </Badge>
    </Tooltip>
  );
}

export function ChannelsPage() {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const channels = useInboxChannels();
  const qc = useQueryClient();
  const [params, setParams] = useSearchParams();
  const connecting = params.get('connect') === '1';
  const setConnecting = (on: boolean) =>
    setParams((p) => {
      const n = new URLSearchParams(p);
      if (on) n.set('connect', '1');
      else n.delete('connect');
      return n;
    });

  const setEnabled = (id: string, enabled: boolean) =>
    qc.setQueryData<ChannelOut[]>(inboxKeys.channels, (list) =>
      list?.map((x) => (x.id === id ? { ...x, enabled } : x)),
    );
  const toggle = useMutation({
    mutationFn: ({ c, enabled }: { c: ChannelOut; enabled: boolean }) => updateChannel(c.id, { enabled }),
    // The switch moves at once (a list refetch still in flight must not move it back); a
    // refusal puts it back.
    onMutate: async ({ c, enabled }) => {
      await qc.cancelQueries({ queryKey: inboxKeys.channels });
      setEnabled(c.id, enabled);
    },
    onSuccess: (c) => {
      qc.setQueryData<ChannelOut[]>(inboxKeys.channels, (list) => list?.map((x) => (x.id === c.id ? c : x)));
      notifications.show({ color: 'teal', message: `${c.name} ${c.enabled ? 'enabled' : 'disabled'}` });
    },
    onError: (e, { c }) => {
      setEnabled(c.id, c.enabled);
      notifications.show({ color: 'red', title: 'Not changed', message: errorMessage(e) });
    },
  });

  const connectButton = isAdmin && (
    <Button leftSection={<IconPlugConnected size={16} />} onClick={() => setConnecting(true)}>
      Connect channel
    </Button>
  );

  return (
    <>
      <PageHeader
        title="Channels"
        description="The WhatsApp numbers and Telegram bots your team answers from, and the Sandbox to try things out."
        actions={connectButton}
      />
      <Paper withBorder radius="md">
        <QueryState
          query={channels}
          isEmpty={(l) => l.length === 0}
          empty={
            <EmptyState title="No channels yet" action={connectButton || undefined}>
              Connect a WhatsApp number or a Telegram bot, or add a Sandbox channel to play the customer yourself.
            </EmptyState>
          }
        >
          {(list) => (
            <Table verticalSpacing="sm" highlightOnHover data-testid="channels-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Channel</Table.Th>
                  <Table.Th>Health</Table.Th>
                  <Table.Th>Rate</Table.Th>
                  <Table.Th w={110}>Enabled</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.map((c) => (
                  <Table.Tr key={c.id} data-testid="channel-row" data-kind={c.kind}>
                    <Table.Td>
                      <Group gap="sm" wrap="nowrap">
                        <ChannelIcon kind={c.kind} size={20} />
                        <div>
                          <Anchor component={Link} to={`/settings/channels/${c.id}`} fw={500}>
                            {c.name}
                          </Anchor>
                          <Text size="xs" c="dimmed">
                            {KIND_LABEL[c.kind]}
                            {c.config.display_phone_number ? ` · ${c.config.display_phone_number}` : ''}
                            {c.config.bot_username ? ` · @${c.config.bot_username}` : ''}
                          </Text>
                        </div>
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4}>
                        <HealthBadge c={c} />
                        <CircuitBadge c={c} />
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm">{c.messages_per_second}/s</Text>
                    </Table.Td>
                    <Table.Td>
                      <Switch
                        checked={c.enabled}
                        disabled={!isAdmin || toggle.isPending}
                        aria-label={`${c.name} enabled`}
                        onChange={(e) => toggle.mutate({ c, enabled: e.currentTarget.checked })}
                      />
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
        </QueryState>
      </Paper>
      {isAdmin && <ConnectWizard opened={connecting} onClose={() => setConnecting(false)} />}
    </>
  );
}

const KINDS: { kind: ChannelKind; blurb: string }[] = [
  { kind: 'whatsapp', blurb: 'A number on the WhatsApp Business Platform (Cloud API), from Meta’s developer console.' },
  { kind: 'telegram', blurb: 'A Telegram bot created with @BotFather.' },
  { kind: 'sandbox', blurb: 'A pretend channel: you play the customer. No provider account needed.' },
];

/** The per-kind fields of the channel forms (wizard and edit page). */
export function ChannelFields({
  kind,
  form,
  secrets,
}: {
  kind: ChannelKind;
  form: ReturnType<typeof useForm<ChannelFormValues>>;
  /** Editing: which secrets are set (their inputs may stay empty to keep them). */
  secrets?: Record<string, boolean>;
}) {
  const secretProps = (field: 'access_token' | 'app_secret' | 'bot_token') => ({
    ...form.getInputProps(field),
    required: !secrets,
    placeholder: secrets?.[field] ? 'Set — type to replace' : undefined,
    autoComplete: 'new-password',
  });
  return (
    <Stack gap="sm">
      <TextInput label="Name" required description="Shown to your team in the inbox." {...form.getInputProps('name')} />
      {kind === 'whatsapp' && (
        <>
          <TextInput
            label="Phone number ID"
            required
            description="WhatsApp Manager → API setup → Phone number ID (digits, not the phone number)."
            {...form.getInputProps('phone_number_id')}
          />
          <TextInput
            label="WhatsApp Business Account ID"
            description="Optional; needed later for templates."
            {...form.getInputProps('waba_id')}
          />
          <PasswordInput
            label="Access token"
            description="A permanent System User token with whatsapp_business_messaging."
            {...secretProps('access_token')}
          />
          <PasswordInput
            label="App secret"
            description="App settings → Basic → App secret; checks that webhooks really come from Meta."
            {...secretProps('app_secret')}
          />
          <TextInput
            label="API version"
            description="Graph API version, e.g. v21.0."
            {...form.getInputProps('api_version')}
          />
        </>
      )}
      {kind === 'telegram' && (
        <>
          <PasswordInput
            label="Bot token"
            description="From @BotFather, like 123456789:AAF…"
            {...secretProps('bot_token')}
          />
          <Stack gap={4}>
            <Text size="sm" fw={500}>
              Receive updates by
            </Text>
            <SegmentedControl
              data={[
                { value: 'polling', label: 'Polling' },
                { value: 'webhook', label: 'Webhook' },
              ]}
              aria-label="Receive updates by"
              {...form.getInputProps('mode')}
            />
            <Text size="xs" c="dimmed">
              Polling works anywhere; a webhook needs this server reachable over HTTPS from the internet.
            </Text>
          </Stack>
        </>
      )}
      {kind === 'sandbox' && (
        <Switch
          label="Customer reads at once"
          description="Replies become delivered at once and read about 2 seconds later."
          {...form.getInputProps('auto_read', { type: 'checkbox' })}
        />
      )}
      <NumberInput
        label="Messages per second"
        description="Sending pace for this channel (1–1000)."
        min={1}
        max={1000}
        allowDecimal={false}
        {...form.getInputProps('messages_per_second')}
      />
    </Stack>
  );
}

function ConnectWizard({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [step, setStep] = useState(0);
  const [kind, setKind] = useState<ChannelKind>('whatsapp');
  const [created, setCreated] = useState<ChannelOut | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const form = useForm<ChannelFormValues>({
    mode: 'controlled',
    initialValues: emptyChannelForm('whatsapp'),
    validate: (v) => validateChannelForm(kind, v, true),
  });

  const reset = () => {
    setStep(0);
    setCreated(null);
    setFormError(null);
    form.reset();
  };
  const close = () => {
    onClose();
    reset();
  };
  const choose = (k: ChannelKind) => {
    setKind(k);
    form.setValues(emptyChannelForm(k));
    form.clearErrors();
    setStep(1);
  };

  const create = useMutation({
    mutationFn: (v: ChannelFormValues) => createChannel(channelCreateBody(kind, v)),
    onSuccess: (c) => {
      qc.setQueryData<ChannelOut[]>(inboxKeys.channels, (list) => [...(list ?? []), c]);
      setCreated(c);
      setStep(2);
    },
    onError: (e) => setFormError(applyApiError(form, e, { fields: CHANNEL_ERROR_FIELDS })),
  });

  return (
    <Modal opened={opened} onClose={close} title="Connect channel" size="lg">
      <Stepper
        active={step}
        size="sm"
        allowNextStepsSelect={false}
        onStepClick={(s) => s < 2 && !created && setStep(s)}
      >
        <Stepper.Step label="Kind">
          <SimpleGrid cols={{ base: 1, sm: 3 }} mt="md">
            {KINDS.map((k) => (
              <UnstyledButton key={k.kind} onClick={() => choose(k.kind)} aria-label={KIND_LABEL[k.kind]}>
                <Card withBorder h="100%" data-testid={`choose-${k.kind}`}>
                  <Stack gap={6}>
                    <ChannelIcon kind={k.kind} size={28} />
                    <Text fw={600}>{KIND_LABEL[k.kind]}</Text>
                    <Text size="xs" c="dimmed">
                      {k.blurb}
                    </Text>
                  </Stack>
                </Card>
              </UnstyledButton>
            ))}
          </SimpleGrid>
        </Stepper.Step>
        <Stepper.Step label="Details">
          <form
            noValidate
            onSubmit={form.onSubmit((v) => {
              setFormError(null);
              create.mutate(v);
            })}
          >
            <Stack mt="md">
              <FormError message={formError} />
              <ChannelFields kind={kind} form={form} />
              <Group justify="space-between">
                <Button variant="default" onClick={() => setStep(0)}>
                  Back
                </Button>
                <Button type="submit" loading={create.isPending}>
                  Connect {KIND_LABEL[kind]}
                </Button>
              </Group>
            </Stack>
          </form>
        </Stepper.Step>
        <Stepper.Step label="Done">
          {created && (
            <Stack mt="md" data-testid="connect-result">
              <Text>
                <b>{created.name}</b> is connected.
              </Text>
              {created.webhook_url && (
                <>
                  <Text size="sm" c="dimmed">
                    {created.kind === 'whatsapp'
                      ? 'In the Meta developer console → WhatsApp → Configuration, set the callback URL and verify token below, then subscribe to the "messages" field.'
                      : 'Telegram is told about this webhook URL when the channel is set to webhook mode.'}
                  </Text>
                  <CopyField label="Webhook URL" value={created.webhook_url} testId="webhook-url" />
                </>
              )}
              {created.verify_token && (
                <CopyField label="Verify token" value={created.verify_token} testId="verify-token" />
              )}
              <Group justify="flex-end">
                <Button variant="default" onClick={() => navigate(`/settings/channels/${created.id}`)}>
                  Channel settings
                </Button>
                <Button component={Link} to="/inbox" onClick={close}>
                  Go to the inbox
                </Button>
              </Group>
            </Stack>
          )}
        </Stepper.Step>
      </Stepper>
    </Modal>
  );
}
