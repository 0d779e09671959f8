/** Channel settings panel: name and topic, disappearing messages, lock, members, leave, archive. */
import {
  ActionIcon,
  Badge,
  Box,
  Button,
  Divider,
  Group,
  Modal,
  MultiSelect,
  PasswordInput,
  ScrollArea,
  SegmentedControl,
  Stack,
  Text,
  TextInput,
  Tooltip,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { IconLock, IconLockOpen, IconTrash } from '@tabler/icons-react';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useNavigate } from 'react-router';

import {
  addMembers,
  chatKeys,
  forgetUnlock,
  leaveChannel,
  lockChannel,
  patchChannel,
  removeLock,
  removeMember,
  useChannelMembers,
  type ChannelPatch,
} from '../../api/chat';
import type { ChannelOut, Disappearing } from '../../api/chatTypes';
import { useMembers } from '../../api/queries';
import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { ErrorState, LoadingState } from '../../components/QueryState';
import { UserAvatar } from '../../components/UserAvatar';
import { upsertChannel } from '../../lib/chat/cache';
import { DISAPPEARING_LABEL, channelNameError, isDirect } from '../../lib/chat/channels';
import { applyApiError, errorMessage } from '../../lib/forms';
import { PanelFrame } from './Panels';

function useSaveChannel(channel: ChannelOut) {
  const qc = useQueryClient();
  return async (patch: ChannelPatch) => {
    const updated = await patchChannel(channel.id, patch);
    const merged = {
      ...updated,
      unread_count: channel.unread_count,
      mention_count: channel.mention_count,
      locked: channel.locked,
    };
    qc.setQueryData(chatKeys.channel(channel.id), merged);
    qc.setQueryData<ChannelOut[]>(chatKeys.channels, (list) => (list ? upsertChannel(list, merged) : list));
    return updated;
  };
}

function PasswordModal({
  title,
  action,
  opened,
  onClose,
  onSubmit,
}: {
  title: string;
  action: string;
  opened: boolean;
  onClose: () => void;
  onSubmit: (password: string) => Promise<void>;
}) {
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Modal opened={opened} onClose={onClose} title={title} centered>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          onSubmit(password)
            .then(() => {
              setPassword('');
              onClose();
            })
            .catch((err: unknown) => setError(errorMessage(err)))
            .finally(() => setBusy(false));
        }}
      >
        <Stack>
          <Text size="sm" c="dimmed">
            Locked chats ask for your password before showing messages, and show no previews.
          </Text>
          <PasswordInput
            label="Your password"
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
            error={error}
            data-autofocus
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy} disabled={!password}>
              {action}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

export function ChannelSettings({ channel, onClose }: { channel: ChannelOut; onClose: () => void }) {
  const { user, role } = useCurrent();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const save = useSaveChannel(channel);
  const direct = isDirect(channel);
  const canAdmin = channel.my_role === 'admin' || atLeast(role, 'admin');
  const members = useChannelMembers(channel.id);
  const orgMembers = useMembers();
  const [adding, setAdding] = useState<string[]>([]);
  const [lockModal, setLockModal] = useState<'lock' | 'unlock' | null>(null);
  const [formError, setFormError] = useState<string | null>(null);

  const form = useForm({
    initialValues: { name: channel.name ?? '', topic: channel.topic ?? '' },
    validate: { name: (v) => (direct ? null : channelNameError(v)) },
  });

  const refreshAll = () =>
    Promise.all([
      qc.invalidateQueries({ queryKey: chatKeys.channels }),
      qc.invalidateQueries({ queryKey: chatKeys.channel(channel.id) }),
      qc.invalidateQueries({ queryKey: chatKeys.members(channel.id) }),
    ]);

  const setDisappearing = async (v: Disappearing) => {
    try {
      await save({ disappearing: v });
      notifications.show({
        message: v === 'off' ? 'Disappearing messages off' : `New messages disappear after ${DISAPPEARING_LABEL[v]}`,
      });
    } catch (e) {
      notifications.show({ color: 'red', message: errorMessage(e) });
    }
  };

  const archive = (on: boolean) =>
    modals.openConfirmModal({
      title: on ? 'Archive channel' : 'Unarchive channel',
      children: (
        <Text size="sm">
          {on
            ? 'Nobody can post in an archived channel; it leaves everyone’s sidebar.'
            : 'The channel comes back to its members’ sidebars.'}
        </Text>
      ),
      labels: { confirm: on ? 'Archive' : 'Unarchive', cancel: 'Cancel' },
      confirmProps: { color: on ? 'red' : undefined },
      onConfirm: async () => {
        try {
          await save({ archived: on });
          notifications.show({ message: on ? 'Channel archived' : 'Channel unarchived' });
          await refreshAll();
          if (on) navigate('/chat');
        } catch (e) {
          notifications.show({ color: 'red', message: errorMessage(e) });
        }
      },
    });

  const leave = () =>
    modals.openConfirmModal({
      title: 'Leave channel',
      children: <Text size="sm">You can join public channels again from “Browse channels”.</Text>,
      labels: { confirm: 'Leave', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: async () => {
        try {
          await leaveChannel(channel.id);
          await refreshAll();
          navigate('/chat');
        } catch (e) {
          notifications.show({ color: 'red', message: errorMessage(e) });
        }
      },
    });

  const inChannel = new Set((members.data ?? []).map((m) => m.user_id));
  const addable = (orgMembers.data ?? [])
    .filter((m) => !inChannel.has(m.user_id))
    .map((m) => ({ value: m.user_id, label: m.name }));

  return (
    <PanelFrame title="Channel settings" onClose={onClose} testId="settings-panel">
      <ScrollArea style={{ flex: 1 }}>
        <Stack p="sm" gap="md">
          {!direct && (
            <form
              onSubmit={form.onSubmit(async (v) => {
                setFormError(null);
                try {
                  await save({ name: v.name.trim(), topic: v.topic.trim() });
                  notifications.show({ message: 'Channel saved' });
                } catch (e) {
                  setFormError(applyApiError(form, e));
                }
              })}
            >
              <Stack gap="xs">
                <TextInput label="Channel name" disabled={!canAdmin} {...form.getInputProps('name')} />
                <TextInput
                  label="Topic"
                  disabled={!canAdmin}
                  placeholder="What is this channel about?"
                  {...form.getInputProps('topic')}
                />
                <FormError message={formError} />
                {canAdmin && (
                  <Group justify="flex-end">
                    <Button type="submit" size="xs" disabled={!form.isDirty()}>
                      Save channel
                    </Button>
                  </Group>
                )}
              </Stack>
            </form>
          )}

          <Stack gap={4}>
            <Text size="sm" fw={600}>
              Disappearing messages
            </Text>
            <SegmentedControl
              size="xs"
              value={channel.disappearing}
              disabled={!(direct || canAdmin)}
              onChange={(v) => void setDisappearing(v as Disappearing)}
              data={(Object.keys(DISAPPEARING_LABEL) as Disappearing[]).map((k) => ({
                value: k,
                label: DISAPPEARING_LABEL[k],
              }))}
              aria-label="Disappearing messages"
            />
            <Text size="xs" c="dimmed">
              Applies to messages sent from now on.
            </Text>
          </Stack>

          <Stack gap={4}>
            <Text size="sm" fw={600}>
              Chat lock
            </Text>
            <Group gap="xs">
              {channel.locked ? (
                <>
                  <Badge color="yellow" leftSection={<IconLock size={10} />}>
                    Locked for you
                  </Badge>
                  <Button
                    size="xs"
                    variant="default"
                    leftSection={<IconLockOpen size={14} />}
                    onClick={() => setLockModal('unlock')}
                  >
                    Remove lock
                  </Button>
                </>
              ) : (
                <Button
                  size="xs"
                  variant="default"
                  leftSection={<IconLock size={14} />}
                  onClick={() => setLockModal('lock')}
                >
                  Lock this chat
                </Button>
              )}
            </Group>
          </Stack>

          <Divider />
          <Stack gap={6}>
            <Text size="sm" fw={600}>
              Members ({channel.member_count})
            </Text>
            {members.isPending ? (
              <LoadingState label="Loading members…" />
            ) : members.isError ? (
              <ErrorState error={members.error} onRetry={() => void members.refetch()} />
            ) : (
              <Stack gap={4} data-testid="channel-members">
                {members.data.map((m) => (
                  <Group key={m.user_id} justify="space-between" wrap="nowrap" data-testid="channel-member">
                    <Group gap="xs" wrap="nowrap">
                      <UserAvatar name={m.name} url={m.avatar_url} size={24} />
                      <Text size="sm">
                        {m.name}
                        {m.user_id === user.id ? ' (you)' : ''}
                      </Text>
                      {m.role === 'admin' && (
                        <Badge size="xs" variant="light">
                          admin
                        </Badge>
                      )}
                    </Group>
                    {canAdmin && !direct && m.user_id !== user.id && (
                      <Tooltip label="Remove from channel">
                        <ActionIcon
                          variant="subtle"
                          color="red"
                          size="sm"
                          aria-label={`Remove ${m.name} from channel`}
                          onClick={async () => {
                            try {
                              await removeMember(channel.id, m.user_id);
                              await refreshAll();
                              notifications.show({ message: `${m.name} removed` });
                            } catch (e) {
                              notifications.show({ color: 'red', message: errorMessage(e) });
                            }
                          }}
                        >
                          <IconTrash size={14} />
                        </ActionIcon>
                      </Tooltip>
                    )}
                  </Group>
                ))}
              </Stack>
            )}
            {canAdmin && !direct && (
              <Group align="flex-end" gap="xs" wrap="nowrap">
                <MultiSelect
                  style={{ flex: 1 }}
                  size="xs"
                  label="Add members"
                  placeholder={addable.length ? 'Pick people' : 'Everyone is here'}
                  data={addable}
                  value={adding}
                  onChange={setAdding}
                  searchable
                  disabled={addable.length === 0}
                />
                <Button
                  size="xs"
                  disabled={adding.length === 0}
                  onClick={async () => {
                    try {
                      await addMembers(channel.id, adding);
                      setAdding([]);
                      await refreshAll();
                      notifications.show({ message: 'Members added' });
                    } catch (e) {
                      notifications.show({ color: 'red', message: errorMessage(e) });
                    }
                  }}
                >
                  Add
                </Button>
              </Group>
            )}
          </Stack>

          <Divider />
          <Box>
            <Group gap="xs">
              {!direct && channel.joined && (
                <Button size="xs" variant="default" color="red" onClick={leave}>
                  Leave channel
                </Button>
              )}
              {!direct && canAdmin && (
                <Button size="xs" variant="light" color="red" onClick={() => archive(!channel.archived)}>
                  {channel.archived ? 'Unarchive channel' : 'Archive channel'}
                </Button>
              )}
            </Group>
          </Box>
        </Stack>
      </ScrollArea>
      <PasswordModal
        opened={lockModal !== null}
        title={lockModal === 'lock' ? 'Lock this chat' : 'Remove the lock'}
        action={lockModal === 'lock' ? 'Lock' : 'Remove lock'}
        onClose={() => setLockModal(null)}
        onSubmit={async (password) => {
          if (lockModal === 'lock') {
            await lockChannel(channel.id, password);
            forgetUnlock(channel.id);
            notifications.show({ message: 'Chat locked' });
          } else {
            await removeLock(channel.id, password);
            notifications.show({ message: 'Lock removed' });
          }
          await refreshAll();
        }}
      />
    </PanelFrame>
  );
}
