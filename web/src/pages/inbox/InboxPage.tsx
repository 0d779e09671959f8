/**
 * The shared customer inbox at /inbox and /inbox/:conversationId: conversation list (filters in
 * the URL: `?assignee=me|unassigned|all&status=…&channel=<id>&q=…`), the open thread with its
 * composer, and the contact panel. Live updates come from `InboxSync` (app-wide) and the
 * `conversation:{id}` room joined by the thread.
 */
import { Box, Button, Group, Stack, Title } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconFlask, IconPlugConnected } from '@tabler/icons-react';
import { useQueryClient } from '@tanstack/react-query';
import { useEffect, useMemo, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';

import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { EmptyState } from '../../components/QueryState';
import { errorMessage } from '../../lib/forms';
import {
  createChannel,
  inboxKeys,
  useConversationCounts,
  useInboxChannels,
  type ConversationFilters,
} from '../../lib/inbox/api';
import type { AssigneeFilter, ChannelOut, StatusFilter } from '../../lib/inbox/types';
import { ConversationList } from './ConversationList';
import { ConversationView } from './ConversationView';
import { SimulateDrawer } from './SimulateDrawer';
import './inbox.css';

const ASSIGNEES: AssigneeFilter[] = ['me', 'unassigned', 'all'];
const STATUSES: StatusFilter[] = ['open', 'pending', 'snoozed', 'resolved', 'all'];

export function InboxPage() {
  const { conversationId = null } = useParams();
  const [params, setParams] = useSearchParams();
  const { role } = useCurrent();
  const qc = useQueryClient();
  const channels = useInboxChannels();
  const counts = useConversationCounts();
  const [simulating, setSimulating] = useState(false);
  const [creatingSandbox, setCreatingSandbox] = useState(false);

  const assignee = params.get('assignee') as AssigneeFilter;
  const status = params.get('status') as StatusFilter;
  const [qInput, setQInput] = useState(params.get('q') ?? '');
  const [q] = useDebouncedValue(qInput, 300);
  const filters: ConversationFilters = useMemo(
    () => ({
      assignee: ASSIGNEES.includes(assignee) ? assignee : 'all',
      status: STATUSES.includes(status) ? status : 'open',
      channelId: params.get('channel') || null,
      q: params.get('q') ?? '',
    }),
    [assignee, status, params],
  );

  const setFilters = (f: Partial<ConversationFilters>) =>
    setParams(
      (prev) => {
        const next = new URLSearchParams(prev);
        const put = (k: string, v: string | null | undefined, dflt: string) =>
          v === undefined ? undefined : !v || v === dflt ? next.delete(k) : next.set(k, v);
        put('assignee', f.assignee, 'all');
        put('status', f.status, 'open');
        put('channel', f.channelId === undefined ? undefined : (f.channelId ?? ''), '');
        put('q', f.q === undefined ? undefined : f.q.trim(), '');
        return next;
      },
      { replace: true },
    );

  useEffect(() => {
    if (q.trim() !== filters.q) setFilters({ q });
  }, [q]);

  const sandboxes = (channels.data ?? []).filter((c) => c.kind === 'sandbox' && c.enabled);
  const noChannels = channels.isSuccess && channels.data.length === 0;
  const nothingYet = noChannels || (counts.data?.all === 0 && channels.isSuccess);

  /** Opens the simulator, creating a Sandbox channel first when there is none (admins). */
  const trySandbox = async () => {
    if (sandboxes.length > 0) {
      setSimulating(true);
      return;
    }
    setCreatingSandbox(true);
    try {
      const ch = await createChannel({ kind: 'sandbox', name: 'Sandbox', config: { auto_read: true } });
      qc.setQueryData<ChannelOut[]>(inboxKeys.channels, (list) => [...(list ?? []), ch]);
      notifications.show({ color: 'teal', message: 'Sandbox channel created' });
      setSimulating(true);
    } catch (e) {
      notifications.show({ color: 'red', title: 'Could not create a Sandbox channel', message: errorMessage(e) });
    } finally {
      setCreatingSandbox(false);
    }
  };

  const isAdmin = atLeast(role, 'admin');
  const guide = (
    <Group gap="xs" justify="center">
      {isAdmin && (
        <Button
          component={Link}
          to="/settings/channels?connect=1"
          variant="light"
          leftSection={<IconPlugConnected size={16} />}
        >
          Connect a channel
        </Button>
      )}
      <Button
        variant="light"
        color="grape"
        leftSection={<IconFlask size={16} />}
        onClick={() => void trySandbox()}
        loading={creatingSandbox}
        disabled={!isAdmin && sandboxes.length === 0}
      >
        Try the Sandbox
      </Button>
    </Group>
  );

  const search = params.toString() ? `?${params.toString()}` : '';

  return (
    <Stack gap="xs" h="calc(100dvh - 56px - 2 * var(--mantine-spacing-lg))" data-testid="inbox-page">
      <Group justify="space-between" wrap="nowrap">
        <Title order={2}>Inbox</Title>
        {sandboxes.length > 0 && (
          <Button
            size="xs"
            variant="light"
            color="grape"
            leftSection={<IconFlask size={14} />}
            onClick={() => setSimulating(true)}
          >
            Simulate customer
          </Button>
        )}
      </Group>
      <Box
        style={{
          flex: 1,
          minHeight: 0,
          display: 'flex',
          border: '1px solid var(--mantine-color-default-border)',
          borderRadius: 'var(--mantine-radius-md)',
          overflow: 'hidden',
        }}
      >
        <ConversationList
          filters={filters}
          activeId={conversationId}
          search={search}
          onFilters={setFilters}
          qInput={qInput}
          onQInput={setQInput}
        />
        <Box style={{ flex: 1, display: 'flex', minWidth: 0 }}>
          {conversationId ? (
            <ConversationView
              key={conversationId}
              id={conversationId}
              onSimulate={sandboxes.length > 0 ? () => setSimulating(true) : undefined}
            />
          ) : (
            <Stack justify="center" style={{ flex: 1 }} p="md">
              {nothingYet ? (
                <EmptyState title="No conversations yet — connect a channel or try the Sandbox" action={guide}>
                  Messages from your WhatsApp and Telegram channels land here. The Sandbox lets you play the customer
                  without any provider account.
                </EmptyState>
              ) : (
                <EmptyState title="Pick a conversation">
                  Choose a conversation on the left to read and reply.
                </EmptyState>
              )}
            </Stack>
          )}
        </Box>
      </Box>
      <SimulateDrawer
        opened={simulating}
        onClose={() => setSimulating(false)}
        channels={sandboxes}
        conversationId={conversationId}
      />
    </Stack>
  );
}
