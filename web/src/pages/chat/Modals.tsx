/** Chat dialogs: browse channels, new channel, new message (DM / group DM), forward. */
import {
  Badge,
  Button,
  Group,
  Modal,
  MultiSelect,
  Paper,
  ScrollArea,
  Select,
  Stack,
  Switch,
  Text,
  TextInput,
  Textarea,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useDebouncedValue } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconSearch } from '@tabler/icons-react';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useNavigate } from 'react-router';

import {
  chatKeys,
  createChannel,
  forwardMessage,
  joinChannel,
  openDm,
  useBrowseChannels,
  useChannels,
} from '../../api/chat';
import type { ChannelOut, MessageOut } from '../../api/chatTypes';
import { useMembers } from '../../api/queries';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { upsertChannel } from '../../lib/chat/cache';
import { channelNameError, channelTitle, isDirect } from '../../lib/chat/channels';
import { toPlainText } from '../../lib/chat/markdown';
import { applyApiError, errorMessage } from '../../lib/forms';

function useAddChannel() {
  const qc = useQueryClient();
  return (c: ChannelOut) => {
    qc.setQueryData<ChannelOut[]>(chatKeys.channels, (list) => (list ? upsertChannel(list, c) : [c]));
    void qc.invalidateQueries({ queryKey: chatKeys.channels });
  };
}

export function BrowseChannelsModal({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const [q, setQ] = useState('');
  const [debounced] = useDebouncedValue(q, 200);
  const browse = useBrowseChannels(debounced.trim(), opened);
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [busy, setBusy] = useState<string | null>(null);

  const open = (c: ChannelOut) => {
    onClose();
    navigate(`/chat/${c.id}`);
  };
  const join = async (c: ChannelOut) => {
    setBusy(c.id);
    try {
      await joinChannel(c.id);
      await qc.invalidateQueries({ queryKey: chatKeys.channels });
      await qc.invalidateQueries({ queryKey: chatKeys.channel(c.id) });
      void qc.invalidateQueries({ queryKey: ['chat', 'browse'] });
      notifications.show({ message: `Joined #${c.name ?? ''}` });
      open(c);
    } catch (e) {
      notifications.show({ color: 'red', message: `Could not join: ${errorMessage(e)}` });
    } finally {
      setBusy(null);
    }
  };

  return (
    <Modal opened={opened} onClose={onClose} title="Browse channels" size="lg">
      <Stack data-testid="browse-channels">
        <TextInput
          leftSection={<IconSearch size={16} />}
          placeholder="Find a channel"
          aria-label="Find a channel"
          value={q}
          onChange={(e) => setQ(e.currentTarget.value)}
          data-autofocus
        />
        <ScrollArea.Autosize mah={400}>
          {browse.isPending ? (
            <LoadingState label="Loading channels…" />
          ) : browse.isError ? (
            <ErrorState error={browse.error} onRetry={() => void browse.refetch()} />
          ) : browse.data.length === 0 ? (
            <EmptyState title={debounced ? 'No channels match' : 'No public channels yet'}>
              {debounced ? 'Try another name.' : 'Create the first one with “New channel”.'}
            </EmptyState>
          ) : (
            <Stack gap="xs">
              {browse.data.map((c) => (
                <Paper key={c.id} withBorder p="xs" data-testid="browse-row">
                  <Group justify="space-between" wrap="nowrap">
                    <Stack gap={0} style={{ minWidth: 0 }}>
                      <Group gap={6}>
                        <Text fw={600}># {c.name}</Text>
                        {c.joined && (
                          <Badge size="xs" variant="light">
                            Joined
                          </Badge>
                        )}
                      </Group>
                      <Text size="xs" c="dimmed" truncate>
                        {c.topic || 'No topic'} · {c.member_count} member{c.member_count === 1 ? '' : 's'}
                      </Text>
                    </Stack>
                    {c.joined ? (
                      <Button size="xs" variant="default" onClick={() => open(c)}>
                        Open
                      </Button>
                    ) : (
                      <Group gap={4} wrap="nowrap">
                        <Button size="xs" variant="default" onClick={() => open(c)}>
                          Preview
                        </Button>
                        <Button
                          size="xs"
                          onClick={() => void join(c)}
                          loading={busy === c.id}
                          aria-label={`Join ${c.name}`}
                        >
                          Join
                        </Button>
                      </Group>
                    )}
                  </Group>
                </Paper>
              ))}
            </Stack>
          )}
        </ScrollArea.Autosize>
      </Stack>
    </Modal>
  );
}

export function NewChannelModal({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const { user } = useCurrent();
  const members = useMembers();
  const navigate = useNavigate();
  const add = useAddChannel();
  const [error, setError] = useState<string | null>(null);
  const form = useForm({
    initialValues: { name: '', topic: '', private: false, member_ids: [] as string[] },
    validate: { name: channelNameError },
  });
  const close = () => {
    form.reset();
    setError(null);
    onClose();
  };
  return (
    <Modal opened={opened} onClose={close} title="New channel">
      <form
        onSubmit={form.onSubmit(async (v) => {
          setError(null);
          try {
            const c = await createChannel({
              kind: v.private ? 'private' : 'public',
              name: v.name.trim(),
              ...(v.topic.trim() ? { topic: v.topic.trim() } : {}),
              ...(v.member_ids.length ? { member_ids: v.member_ids } : {}),
            });
            add(c);
            notifications.show({ message: `Channel #${c.name ?? v.name} created` });
            close();
            navigate(`/chat/${c.id}`);
          } catch (e) {
            setError(applyApiError(form, e));
          }
        })}
      >
        <Stack>
          <TextInput
            label="Name"
            placeholder="e.g. release-planning"
            required
            data-autofocus
            {...form.getInputProps('name')}
          />
          <TextInput label="Topic" placeholder="Optional" {...form.getInputProps('topic')} />
          <MultiSelect
            label="Members"
            placeholder="Add people (optional)"
            searchable
            data={(members.data ?? [])
              .filter((m) => m.user_id !== user.id)
              .map((m) => ({ value: m.user_id, label: m.name }))}
            {...form.getInputProps('member_ids')}
          />
          <Switch
            label="Private: only invited members can see it"
            {...form.getInputProps('private', { type: 'checkbox' })}
          />
          <FormError message={error} />
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button type="submit" loading={form.submitting}>
              Create channel
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

export function NewMessageModal({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const { user } = useCurrent();
  const members = useMembers();
  const navigate = useNavigate();
  const add = useAddChannel();
  const [picked, setPicked] = useState<string[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const others = (members.data ?? []).filter((m) => m.user_id !== user.id);
  const close = () => {
    setPicked([]);
    setError(null);
    onClose();
  };
  return (
    <Modal opened={opened} onClose={close} title="New message">
      <Stack>
        {members.isError ? (
          <ErrorState error={members.error} onRetry={() => void members.refetch()} />
        ) : !members.isPending && others.length === 0 ? (
          <EmptyState title="Nobody else here yet">
            Invite teammates under Settings → Members to message them.
          </EmptyState>
        ) : (
          <MultiSelect
            label="To"
            placeholder={picked.length ? '' : 'Pick one person, or up to 8 for a group'}
            data={others.map((m) => ({ value: m.user_id, label: `${m.name} (${m.email})` }))}
            value={picked}
            onChange={setPicked}
            maxValues={8}
            searchable
            data-autofocus
            disabled={members.isPending}
          />
        )}
        <FormError message={error} />
        <Group justify="flex-end">
          <Button variant="default" onClick={close}>
            Cancel
          </Button>
          <Button
            disabled={picked.length === 0}
            loading={busy}
            onClick={async () => {
              setBusy(true);
              setError(null);
              try {
                const c = await openDm(picked);
                add(c);
                close();
                navigate(`/chat/${c.id}`);
              } catch (e) {
                setError(errorMessage(e));
              } finally {
                setBusy(false);
              }
            }}
          >
            {picked.length > 1 ? 'Start group message' : 'Start conversation'}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

export function ForwardModal({ message, onClose }: { message: MessageOut | null; onClose: () => void }) {
  const { user } = useCurrent();
  const channels = useChannels();
  const [target, setTarget] = useState<string | null>(null);
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const close = () => {
    setTarget(null);
    setText('');
    setError(null);
    onClose();
  };
  const options = (channels.data ?? [])
    .filter((c) => c.joined && !c.archived)
    .map((c) => ({ value: c.id, label: isDirect(c) ? channelTitle(c, user.id) : `# ${channelTitle(c, user.id)}` }));
  return (
    <Modal opened={message !== null} onClose={close} title="Forward message">
      {message && (
        <Stack>
          <Paper withBorder p="xs">
            <Text size="xs" fw={600}>
              {message.author.name}
            </Text>
            <Text size="sm" lineClamp={3}>
              {toPlainText(message.text) || `📎 ${message.attachments.map((a) => a.name).join(', ')}`}
            </Text>
          </Paper>
          <Select
            label="Forward to"
            placeholder="Pick a channel or conversation"
            data={options}
            value={target}
            onChange={setTarget}
            searchable
          />
          <Textarea
            label="Add a note"
            placeholder="Optional"
            value={text}
            onChange={(e) => setText(e.currentTarget.value)}
            autosize
            minRows={1}
          />
          <FormError message={error} />
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Cancel
            </Button>
            <Button
              disabled={!target}
              loading={busy}
              onClick={async () => {
                setBusy(true);
                setError(null);
                try {
                  await forwardMessage(message.id, target!, text.trim() || undefined);
                  notifications.show({ message: 'Message forwarded' });
                  close();
                } catch (e) {
                  setError(errorMessage(e));
                } finally {
                  setBusy(false);
                }
              }}
            >
              Forward
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}
