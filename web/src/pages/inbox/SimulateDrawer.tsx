/**
 * "Simulate customer": plays a customer on a Sandbox channel. Sends an inbound message as if it
 * came from a provider webhook (`POST /channels/{id}/simulate`), and "Customer reads all" marks
 * our outbound messages of the open conversation read. No overlay and no focus trap, so the
 * inbox stays usable beside it.
 */
import { Alert, Button, Drawer, Group, Select, Stack, Text, TextInput, Textarea } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { IconChecks, IconSend } from '@tabler/icons-react';
import { useEffect, useState } from 'react';
import { Link } from 'react-router';

import { errorMessage } from '../../lib/forms';
import { isApiError } from '../../api/problem';
import { simulateInbound, simulateRead } from '../../lib/inbox/api';
import type { ChannelOut } from '../../lib/inbox/types';

const HANDLE_RE = /^[A-Za-z0-9_.+-]{1,64}$/;

export function SimulateDrawer({
  opened,
  onClose,
  channels,
  channelId,
  conversationId,
}: {
  opened: boolean;
  onClose: () => void;
  /** The org's Sandbox channels. */
  channels: ChannelOut[];
  /** Preselected channel (the settings page of a Sandbox channel). */
  channelId?: string;
  /** The conversation open in the inbox, for "Customer reads all". */
  conversationId?: string | null;
}) {
  const [channel, setChannel] = useState<string | null>(channelId ?? channels[0]?.id ?? null);
  const [handle, setHandle] = useState('ada');
  const [name, setName] = useState('Ada Lovelace');
  const [text, setText] = useState('Hello! I have a question about my order.');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState<'send' | 'read' | null>(null);

  useEffect(() => {
    if (!channel || !channels.some((c) => c.id === channel)) setChannel(channelId ?? channels[0]?.id ?? null);
  }, [channels, channelId]);

  const send = async () => {
    const e: Record<string, string> = {};
    if (!channel) e.channel = 'Pick a Sandbox channel';
    if (!HANDLE_RE.test(handle.trim())) e.handle = '1–64 letters, digits, _ . + -';
    if (!text.trim()) e.text = 'Write the customer’s message';
    setErrors(e);
    if (Object.keys(e).length > 0 || !channel) return;
    setBusy('send');
    try {
      await simulateInbound(channel, {
        from: { handle: handle.trim(), name: name.trim() || handle.trim() },
        text: text.trim(),
      });
      notifications.show({ color: 'teal', message: `${name.trim() || handle.trim()} sent a message` });
      setText('');
    } catch (err) {
      if (isApiError(err) && err.errors.length > 0) {
        const fe = err.fieldErrors();
        setErrors({ handle: fe['from.handle'] ?? '', text: fe.text ?? '' });
      }
      notifications.show({ color: 'red', title: 'Not sent', message: errorMessage(err) });
    } finally {
      setBusy(null);
    }
  };

  const readAll = async () => {
    if (!channel || !conversationId) return;
    setBusy('read');
    try {
      await simulateRead(channel, conversationId);
      notifications.show({ color: 'teal', message: 'The customer read every message' });
    } catch (err) {
      notifications.show({ color: 'red', title: 'Could not mark read', message: errorMessage(err) });
    } finally {
      setBusy(null);
    }
  };

  return (
    <Drawer
      opened={opened}
      onClose={onClose}
      position="right"
      size="sm"
      title="Simulate customer"
      withOverlay={false}
      trapFocus={false}
      lockScroll={false}
      closeOnClickOutside={false}
      shadow="xl"
      closeButtonProps={{ 'aria-label': 'Close the simulator' }}
      data-testid="simulate-drawer"
    >
      {channels.length === 0 ? (
        <Alert color="grape" title="No Sandbox channel">
          <Text size="sm">
            Add a Sandbox channel in{' '}
            <Text component={Link} to="/settings/channels?connect=1" c="teal" inherit>
              Settings → Channels
            </Text>{' '}
            to play a customer.
          </Text>
        </Alert>
      ) : (
        <form
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            void send();
          }}
        >
          <Stack>
            <Text size="sm" c="dimmed">
              Messages sent here arrive in the inbox like a real customer’s, through the Sandbox channel.
            </Text>
            <Select
              label="Sandbox channel"
              data={channels.map((c) => ({ value: c.id, label: c.name }))}
              value={channel}
              onChange={setChannel}
              allowDeselect={false}
              error={errors.channel || undefined}
            />
            <Group grow>
              <TextInput
                label="Customer handle"
                value={handle}
                onChange={(e) => setHandle(e.currentTarget.value)}
                error={errors.handle || undefined}
              />
              <TextInput label="Customer name" value={name} onChange={(e) => setName(e.currentTarget.value)} />
            </Group>
            <Textarea
              label="Message"
              autosize
              minRows={2}
              value={text}
              onChange={(e) => setText(e.currentTarget.value)}
              error={errors.text || undefined}
            />
            <Group justify="space-between">
              <Button
                variant="default"
                leftSection={<IconChecks size={16} />}
                onClick={() => void readAll()}
                loading={busy === 'read'}
                disabled={!conversationId}
              >
                Customer reads all
              </Button>
              <Button type="submit" color="grape" leftSection={<IconSend size={16} />} loading={busy === 'send'}>
                Send as customer
              </Button>
            </Group>
          </Stack>
        </form>
      )}
    </Drawer>
  );
}
