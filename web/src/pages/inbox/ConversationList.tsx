/** The conversation list: Mine / Unassigned / All with counts, status, channel and text filters, infinite scroll. */
import {
  Badge,
  Box,
  Group,
  ScrollArea,
  Select,
  Stack,
  Tabs,
  Text,
  TextInput,
  Tooltip,
  UnstyledButton,
} from '@mantine/core';
import { IconSearch } from '@tabler/icons-react';
import { Link, useLocation } from 'react-router';

import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { UserAvatar } from '../../components/UserAvatar';
import { LoadMoreSentinel } from '../../components/LoadMoreSentinel';
import { formatRelative } from '../../lib/format';
import { mentionsToPlain } from '../../lib/chat/mentions';
import {
  useConversationCounts,
  useConversations,
  useInboxChannels,
  type ConversationFilters,
} from '../../lib/inbox/api';
import type { AssigneeFilter, ConversationOut, StatusFilter } from '../../lib/inbox/types';
import { ChannelIcon } from './ChannelIcon';
import { StatusTick } from './StatusTick';

export const STATUS_OPTIONS: { value: StatusFilter; label: string }[] = [
  { value: 'open', label: 'Open' },
  { value: 'pending', label: 'Pending' },
  { value: 'snoozed', label: 'Snoozed' },
  { value: 'resolved', label: 'Resolved' },
  { value: 'all', label: 'All statuses' },
];

function Row({ c, active, search }: { c: ConversationOut; active: boolean; search: string }) {
  const lm = c.last_message;
  return (
    <UnstyledButton
      component={Link}
      to={`/inbox/${c.id}${search}`}
      data-testid="conversation-item"
      data-active={active}
      data-id={c.id}
      aria-current={active ? 'page' : undefined}
      px="sm"
      py={8}
      style={{
        display: 'block',
        borderBottom: '1px solid var(--mantine-color-default-border)',
        background: active ? 'var(--mantine-color-teal-light)' : undefined,
      }}
    >
      <Group gap="sm" wrap="nowrap" align="flex-start">
        <UserAvatar name={c.contact.name} url={c.contact.avatar_url} size={36} />
        <Box style={{ flex: 1, minWidth: 0 }}>
          <Group gap={6} wrap="nowrap" justify="space-between">
            <Group gap={4} wrap="nowrap" style={{ minWidth: 0 }}>
              <ChannelIcon kind={c.channel.kind} size={14} />
              <Text size="sm" fw={c.unread_count > 0 ? 700 : 600} truncate data-testid="conversation-name">
                {c.contact.name}
              </Text>
            </Group>
            <Text size="xs" c="dimmed" style={{ flexShrink: 0 }}>
              {formatRelative(c.last_activity_at)}
            </Text>
          </Group>
          <Group gap={4} wrap="nowrap" justify="space-between" mt={2}>
            <Group gap={4} wrap="nowrap" style={{ minWidth: 0 }}>
              {lm?.direction === 'outbound' && <StatusTick status={lm.status} size={13} />}
              <Text size="xs" c={c.unread_count > 0 ? undefined : 'dimmed'} truncate data-testid="conversation-preview">
                {lm ? mentionsToPlain(lm.preview) : 'No messages'}
              </Text>
            </Group>
            <Group gap={4} wrap="nowrap" style={{ flexShrink: 0 }}>
              {c.unread_count > 0 && (
                <Badge size="sm" color="teal" data-testid="unread-badge" aria-label={`${c.unread_count} unread`}>
                  {c.unread_count > 99 ? '99+' : c.unread_count}
                </Badge>
              )}
              {c.assignee && (
                <Tooltip label={`Assigned to ${c.assignee.name}`}>
                  <UserAvatar
                    name={c.assignee.name}
                    url={c.assignee.avatar_url}
                    size={18}
                    aria-label={`Assigned to ${c.assignee.name}`}
                    data-testid="assignee-avatar"
                  />
                </Tooltip>
              )}
            </Group>
          </Group>
        </Box>
      </Group>
    </UnstyledButton>
  );
}

export function ConversationList({
  filters,
  activeId,
  search,
  onFilters,
  qInput,
  onQInput,
  emptyAction,
}: {
  filters: ConversationFilters;
  activeId: string | null;
  /** The page's `?…` (the filters), kept on the conversation links. */
  search: string;
  onFilters: (f: Partial<ConversationFilters>) => void;
  qInput: string;
  onQInput: (q: string) => void;
  emptyAction?: React.ReactNode;
}) {
  const list = useConversations(filters);
  const counts = useConversationCounts();
  const channels = useInboxChannels();
  const { pathname } = useLocation();
  const items = list.data?.pages.flatMap((p) => p.items) ?? [];
  // The badges are named after the counts' fields: `count-mine`, `count-unassigned`, `count-all`.
  const tab = (value: AssigneeFilter, label: string, n: number | undefined) => (
    <Tabs.Tab
      value={value}
      rightSection={
        n !== undefined ? (
          <Text span size="xs" c="dimmed" fw={600} data-testid={`count-${value === 'me' ? 'mine' : value}`}>
            {n}
          </Text>
        ) : undefined
      }
    >
      {label}
    </Tabs.Tab>
  );

  let body;
  if (list.isPending) body = <LoadingState label="Loading conversations…" />;
  else if (list.isError && items.length === 0)
    body = <ErrorState error={list.error} onRetry={() => void list.refetch()} title="Could not load conversations" />;
  else if (items.length === 0)
    body = (
      <EmptyState title="No conversations here" action={emptyAction}>
        {filters.q ? 'Nothing matches this search.' : 'Try another filter.'}
      </EmptyState>
    );
  else
    body = (
      <>
        {items.map((c) => (
          <Row key={c.id} c={c} active={c.id === activeId} search={search} />
        ))}
        <LoadMoreSentinel
          hasMore={!!list.hasNextPage}
          loading={list.isFetchingNextPage}
          onLoadMore={() => void list.fetchNextPage()}
        />
      </>
    );

  return (
    <Stack
      gap={0}
      w={340}
      miw={280}
      style={{ borderRight: '1px solid var(--mantine-color-default-border)', flexShrink: 0 }}
      data-testid="conversation-list"
      aria-label="Conversations"
      component="section"
      data-path={pathname}
    >
      <Stack gap={6} p="xs" style={{ borderBottom: '1px solid var(--mantine-color-default-border)' }}>
        <Tabs value={filters.assignee} onChange={(v) => v && onFilters({ assignee: v as AssigneeFilter })}>
          <Tabs.List grow aria-label="Assignee">
            {tab('me', 'Mine', counts.data?.mine)}
            {tab('unassigned', 'Unassigned', counts.data?.unassigned)}
            {tab('all', 'All', counts.data?.all)}
          </Tabs.List>
        </Tabs>
        <Group gap={6} grow wrap="nowrap">
          <Select
            size="xs"
            aria-label="Status"
            data={STATUS_OPTIONS}
            value={filters.status}
            allowDeselect={false}
            onChange={(v) => v && onFilters({ status: v as StatusFilter })}
          />
          <Select
            size="xs"
            aria-label="Channel"
            data={[
              { value: '', label: 'All channels' },
              ...(channels.data ?? []).map((ch) => ({ value: ch.id, label: ch.name })),
            ]}
            value={filters.channelId ?? ''}
            allowDeselect={false}
            onChange={(v) => onFilters({ channelId: v || null })}
          />
        </Group>
        <TextInput
          size="xs"
          aria-label="Search conversations"
          placeholder="Search messages and contacts"
          leftSection={<IconSearch size={14} />}
          value={qInput}
          onChange={(e) => onQInput(e.currentTarget.value)}
        />
      </Stack>
      <ScrollArea style={{ flex: 1 }} type="auto">
        {body}
      </ScrollArea>
    </Stack>
  );
}
