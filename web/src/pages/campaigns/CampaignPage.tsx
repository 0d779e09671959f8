/**
 * One campaign (`/campaigns/:id`): live progress (from `campaign.progress` events, and the stats
 * refetched every few seconds while it runs), rate and time left, the reason it paused itself,
 * Pause / Resume / Cancel, a chart of sends over time, failure and skip reasons, the recipients
 * (filter by state, "Load more"), the CSV export and retargeting a slice into a new draft.
 */
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Center,
  Group,
  Menu,
  Paper,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  Title,
  Tooltip,
} from '@mantine/core';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import {
  IconAlertTriangle,
  IconArrowLeft,
  IconChevronDown,
  IconDownload,
  IconPencil,
  IconPlayerPause,
  IconPlayerPlay,
  IconTargetArrow,
  IconTrash,
  IconX,
} from '@tabler/icons-react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';

import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, ErrorState, LoadingState, QueryState } from '../../components/QueryState';
import {
  campaignKeys,
  cancelCampaign,
  deleteCampaign,
  exportCampaign,
  pauseCampaign,
  resumeCampaign,
  retargetCampaign,
  useCampaign,
  useCampaignStats,
  useRecipients,
} from '../../lib/campaigns/api';
import {
  RECIPIENT_LABEL,
  RECIPIENT_STATES,
  SLICES,
  SLICE_LABEL,
  canCancel,
  canDelete,
  canEdit,
  canPause,
  canResume,
  canRetarget,
  formatEta,
  formatRate,
  newerCounts,
  skipLabel,
} from '../../lib/campaigns/progress';
import type { CampaignOut, RecipientOut, RecipientState, Slice } from '../../lib/campaigns/types';
import { formatDateTime, formatRelative } from '../../lib/format';
import { errorMessage } from '../../lib/forms';
import { ChannelIcon } from '../inbox/ChannelIcon';
import { CampaignProgress, CampaignStatusBadge } from './CampaignBadges';
import { StatusChart } from './StatusChart';

export function CampaignPage() {
  const { id = '' } = useParams();
  const campaign = useCampaign(id);
  return (
    <>
      <Anchor component={Link} to="/campaigns" size="sm">
        <Group gap={4} mb="sm">
          <IconArrowLeft size={14} /> Campaigns
        </Group>
      </Anchor>
      <QueryState query={campaign}>{(c) => <CampaignDetail key={c.id} c={c} />}</QueryState>
    </>
  );
}

function CampaignDetail({ c }: { c: CampaignOut }) {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const qc = useQueryClient();
  const navigate = useNavigate();
  const running = c.status === 'running';
  const stats = useCampaignStats(c);
  const counts = stats.data ? newerCounts(c.counts, stats.data.counts) : c.counts;
  const fromStats = stats.data && counts === stats.data.counts;
  const rate = fromStats ? stats.data!.rate_per_second : c.rate_per_second;
  const eta = fromStats ? stats.data!.eta_seconds : c.eta_seconds;

  const stored = (next: CampaignOut) => {
    qc.setQueryData(campaignKeys.one(next.id), next);
    void qc.invalidateQueries({ queryKey: campaignKeys.lists });
    void qc.invalidateQueries({ queryKey: campaignKeys.stats(next.id) });
  };
  const pause = useCampaignAction('paused', pauseCampaign, c.id, stored);
  const resume = useCampaignAction('resumed', resumeCampaign, c.id, stored);
  const cancel = useCampaignAction('cancelled', cancelCampaign, c.id, stored);
  const busy = pause.isPending || resume.isPending || cancel.isPending;

  const exportCsv = useMutation({
    mutationFn: () => exportCampaign(c),
    onError: (e) => notifications.show({ color: 'red', title: 'Download failed', message: errorMessage(e) }),
  });

  const retarget = useMutation({
    mutationFn: (slice: Slice) => retargetCampaign(c.id, slice, `${c.name} – ${SLICE_LABEL[slice].toLowerCase()}`),
    onSuccess: (draft) => {
      qc.setQueryData(campaignKeys.one(draft.id), draft);
      void qc.invalidateQueries({ queryKey: campaignKeys.lists });
      notifications.show({ color: 'teal', message: `Draft ${draft.name} created` });
      navigate(`/campaigns/${draft.id}/edit`);
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not retarget', message: errorMessage(e) }),
  });

  const remove = useMutation({
    mutationFn: () => deleteCampaign(c.id),
    onSuccess: () => {
      qc.removeQueries({ queryKey: campaignKeys.one(c.id) });
      void qc.invalidateQueries({ queryKey: campaignKeys.lists });
      notifications.show({ color: 'teal', message: `${c.name} deleted` });
      navigate('/campaigns', { replace: true });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });

  const confirmCancel = () =>
    modals.openConfirmModal({
      title: `Cancel ${c.name}?`,
      children: (
        <Text size="sm">
          No more messages go out; those not sent yet are skipped as “cancelled”. Messages already sent stay sent. This
          can't be undone.
        </Text>
      ),
      labels: { confirm: 'Cancel campaign', cancel: 'Keep it' },
      confirmProps: { color: 'red' },
      onConfirm: () => cancel.mutate(),
    });
  const confirmDelete = () =>
    modals.openConfirmModal({
      title: `Delete ${c.name}?`,
      children: (
        <Text size="sm">The campaign and its report are deleted. Messages already sent stay in the inbox.</Text>
      ),
      labels: { confirm: 'Delete campaign', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(),
    });

  return (
    <>
      <PageHeader
        title={c.name}
        description={
          <Group gap={8} component="span" wrap="wrap">
            <CampaignStatusBadge c={c} />
            <ChannelIcon kind={c.channel.kind} size={14} />
            <span>{c.channel.name}</span>
            {c.template && (
              <span>
                ·{' '}
                <Anchor component={Link} to={`/templates/${c.template.id}`} size="sm">
                  {c.template.name} ({c.template.language})
                </Anchor>
              </span>
            )}
            {c.launched_at && <span>· started {formatRelative(c.launched_at)}</span>}
          </Group>
        }
        actions={
          <Group gap="xs" wrap="wrap" justify="flex-end">
            {isAdmin && canPause(c) && (
              <Button
                variant="light"
                color="orange"
                leftSection={<IconPlayerPause size={16} />}
                onClick={() => pause.mutate()}
                loading={pause.isPending}
                disabled={busy}
              >
                Pause
              </Button>
            )}
            {isAdmin && canResume(c) && (
              <Button
                leftSection={<IconPlayerPlay size={16} />}
                onClick={() => resume.mutate()}
                loading={resume.isPending}
                disabled={busy}
              >
                Resume
              </Button>
            )}
            {isAdmin && canCancel(c) && (
              <Button
                variant="light"
                color="red"
                leftSection={<IconX size={16} />}
                onClick={confirmCancel}
                loading={cancel.isPending}
                disabled={busy}
              >
                Cancel campaign
              </Button>
            )}
            {isAdmin && c.status === 'draft' && (
              <Button leftSection={<IconPencil size={16} />} component={Link} to={`/campaigns/${c.id}/edit`}>
                Continue editing
              </Button>
            )}
            {c.status !== 'draft' && (
              <Button
                variant="default"
                leftSection={<IconDownload size={16} />}
                onClick={() => exportCsv.mutate()}
                loading={exportCsv.isPending}
              >
                Export CSV
              </Button>
            )}
            {isAdmin && canRetarget(c) && (
              <Menu position="bottom-end" withinPortal>
                <Menu.Target>
                  <Button
                    variant="default"
                    leftSection={<IconTargetArrow size={16} />}
                    rightSection={<IconChevronDown size={14} />}
                    loading={retarget.isPending}
                  >
                    Retarget
                  </Button>
                </Menu.Target>
                <Menu.Dropdown>
                  <Menu.Label>New draft to the recipients who…</Menu.Label>
                  {SLICES.map((s) => (
                    <Menu.Item key={s} onClick={() => retarget.mutate(s)}>
                      {SLICE_LABEL[s]}
                    </Menu.Item>
                  ))}
                </Menu.Dropdown>
              </Menu>
            )}
            {isAdmin && canDelete(c) && !canEdit(c) && (
              <Tooltip label="Delete campaign">
                <Button
                  variant="subtle"
                  color="red"
                  onClick={confirmDelete}
                  loading={remove.isPending}
                  aria-label="Delete campaign"
                >
                  <IconTrash size={16} />
                </Button>
              </Tooltip>
            )}
            {isAdmin && c.status === 'draft' && (
              <Button
                variant="subtle"
                color="red"
                leftSection={<IconTrash size={16} />}
                onClick={confirmDelete}
                loading={remove.isPending}
              >
                Delete
              </Button>
            )}
          </Group>
        }
      />

      <Stack>
        {c.pause_reason && (c.status === 'paused' || c.status === 'failed') && (
          <Alert
            color={c.status === 'failed' ? 'red' : 'orange'}
            icon={<IconAlertTriangle size={20} />}
            title={c.status === 'failed' ? 'The campaign failed' : 'Paused automatically'}
            data-testid="pause-reason"
            role="alert"
          >
            {c.pause_reason}
            {c.status === 'paused' && ' — fix the cause, then resume.'}
          </Alert>
        )}
        {c.status === 'scheduled' && c.scheduled_at && (
          <Alert color="indigo" variant="light" title="Scheduled" data-testid="scheduled-at">
            Starts {formatDateTime(c.scheduled_at)}
            {c.time_zone ? ` (${c.time_zone})` : ''}.
          </Alert>
        )}
        {c.status === 'draft' && (
          <Alert color="gray" variant="light" title="Draft">
            Not launched yet.{' '}
            {c.audience.from_campaign &&
              `It retargets the recipients who are “${SLICE_LABEL[c.audience.from_campaign.slice].toLowerCase()}”.`}
          </Alert>
        )}

        <Paper withBorder radius="md" p="md">
          <Stack gap="sm">
            <CampaignProgress counts={counts} label="Campaign progress" animated={running} />
            <SimpleGrid cols={{ base: 2, xs: 4, md: 8 }} spacing="xs" data-testid="campaign-counts">
              <Stat label="Total" value={counts.total} testId="count-total" />
              <Stat label="Sent" value={counts.sent} testId="count-sent" color="blue" />
              <Stat label="Delivered" value={counts.delivered} testId="count-delivered" color="teal" />
              <Stat label="Read" value={counts.read} testId="count-read" color="grape" />
              <Stat label="Replied" value={counts.replied} testId="count-replied" />
              <Stat label="Failed" value={counts.failed} testId="count-failed" color="red" />
              <Stat label="Skipped" value={counts.skipped} testId="count-skipped" color="gray" />
              <Stat label="Pending" value={counts.pending + counts.sending} testId="count-pending" />
            </SimpleGrid>
            {(running || c.status === 'paused') && (
              <Group gap="lg">
                <Text size="sm" data-testid="campaign-rate">
                  Rate: <b>{formatRate(rate)}</b>
                </Text>
                <Text size="sm" data-testid="campaign-eta">
                  Time left: <b>{running ? formatEta(eta) : 'paused'}</b>
                </Text>
              </Group>
            )}
            {c.completed_at && (
              <Text size="sm" c="dimmed">
                Finished {formatDateTime(c.completed_at)}
              </Text>
            )}
          </Stack>
        </Paper>

        {c.status !== 'draft' && (
          <>
            <Paper withBorder radius="md" p="md">
              <Title order={4} mb="sm">
                Over time
              </Title>
              {stats.isPending ? (
                <LoadingState />
              ) : stats.isError ? (
                <ErrorState error={stats.error} onRetry={() => void stats.refetch()} />
              ) : (
                <StatusChart series={stats.data.series} />
              )}
            </Paper>

            <SimpleGrid cols={{ base: 1, md: 2 }}>
              <Paper withBorder radius="md" p="md">
                <Title order={4} mb="sm">
                  Why messages failed
                </Title>
                {stats.data && stats.data.failed_by_code.length > 0 ? (
                  <Table data-testid="failed-by-code">
                    <Table.Thead>
                      <Table.Tr>
                        <Table.Th>Code</Table.Th>
                        <Table.Th>Reason</Table.Th>
                        <Table.Th ta="right">Count</Table.Th>
                      </Table.Tr>
                    </Table.Thead>
                    <Table.Tbody>
                      {stats.data.failed_by_code.map((f) => (
                        <Table.Tr key={String(f.code)}>
                          <Table.Td ff="monospace">{f.code}</Table.Td>
                          <Table.Td>{f.title}</Table.Td>
                          <Table.Td ta="right">{f.count}</Table.Td>
                        </Table.Tr>
                      ))}
                    </Table.Tbody>
                  </Table>
                ) : (
                  <Text size="sm" c="dimmed">
                    No failures.
                  </Text>
                )}
              </Paper>
              <Paper withBorder radius="md" p="md">
                <Title order={4} mb="sm">
                  Why contacts were skipped
                </Title>
                {stats.data && stats.data.skipped_by_reason.length > 0 ? (
                  <Table data-testid="skipped-by-reason">
                    <Table.Thead>
                      <Table.Tr>
                        <Table.Th>Reason</Table.Th>
                        <Table.Th ta="right">Count</Table.Th>
                      </Table.Tr>
                    </Table.Thead>
                    <Table.Tbody>
                      {stats.data.skipped_by_reason.map((r) => (
                        <Table.Tr key={r.reason} data-testid={`skipped-${r.reason}`}>
                          <Table.Td>{skipLabel(r.reason)}</Table.Td>
                          <Table.Td ta="right">{r.count}</Table.Td>
                        </Table.Tr>
                      ))}
                    </Table.Tbody>
                  </Table>
                ) : (
                  <Text size="sm" c="dimmed">
                    Nobody was skipped.
                  </Text>
                )}
              </Paper>
            </SimpleGrid>

            <Recipients id={c.id} />
          </>
        )}
      </Stack>
    </>
  );
}

/** Pause, resume or cancel: the answer goes into the caches, a refusal into a notification. */
function useCampaignAction(
  label: string,
  fn: (id: string) => Promise<CampaignOut>,
  id: string,
  stored: (c: CampaignOut) => void,
) {
  return useMutation({
    mutationFn: () => fn(id),
    onSuccess: (next) => {
      stored(next);
      notifications.show({ color: 'teal', message: `${next.name}: ${label}` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Not changed', message: errorMessage(e) }),
  });
}

function Stat({ label, value, testId, color }: { label: string; value: number; testId: string; color?: string }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text fw={700} size="lg" c={color} data-testid={testId}>
        {new Intl.NumberFormat('en-US').format(value)}
      </Text>
    </div>
  );
}

const STATE_COLOR: Record<RecipientState, string> = {
  pending: 'gray',
  sending: 'blue',
  sent: 'blue',
  delivered: 'teal',
  read: 'grape',
  failed: 'red',
  skipped: 'gray',
};

function lastTime(r: RecipientOut): string | null {
  return r.replied_at ?? r.failed_at ?? r.read_at ?? r.delivered_at ?? r.sent_at;
}

function Recipients({ id }: { id: string }) {
  const [state, setState] = useState<RecipientState | null>(null);
  const recipients = useRecipients(id, state);
  const rows = recipients.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Paper withBorder radius="md" p="md">
      <Group justify="space-between" mb="sm">
        <Title order={4}>Recipients</Title>
        <Select
          aria-label="Recipient state"
          placeholder="Any state"
          data={RECIPIENT_STATES.map((s) => ({ value: s, label: RECIPIENT_LABEL[s] }))}
          value={state}
          onChange={(v) => setState(v as RecipientState | null)}
          clearable
          w={180}
        />
      </Group>
      {recipients.isPending ? (
        <LoadingState />
      ) : recipients.isError ? (
        <ErrorState error={recipients.error} onRetry={() => void recipients.refetch()} />
      ) : rows.length === 0 ? (
        <EmptyState title={state ? `No ${RECIPIENT_LABEL[state].toLowerCase()} recipients` : 'No recipients yet'} />
      ) : (
        <>
          <Table.ScrollContainer minWidth={640}>
            <Table verticalSpacing="xs" data-testid="recipients-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Contact</Table.Th>
                  <Table.Th>Address</Table.Th>
                  <Table.Th>State</Table.Th>
                  <Table.Th>Detail</Table.Th>
                  <Table.Th>When</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {rows.map((r) => (
                  <Table.Tr key={r.contact_id} data-testid="recipient-row" data-state={r.state}>
                    <Table.Td>
                      <Anchor component={Link} to={`/contacts/${r.contact_id}`} size="sm">
                        {r.contact_name}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" ff="monospace">
                        {r.address}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4}>
                        <Badge size="sm" variant="light" color={STATE_COLOR[r.state]}>
                          {RECIPIENT_LABEL[r.state]}
                        </Badge>
                        {r.replied && (
                          <Badge size="sm" variant="outline" color="teal">
                            Replied
                          </Badge>
                        )}
                      </Group>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" c="dimmed">
                        {r.error_title
                          ? `${r.error_title}${r.error_code !== null ? ` (${r.error_code})` : ''}`
                          : r.skip_reason
                            ? skipLabel(r.skip_reason)
                            : ''}
                      </Text>
                    </Table.Td>
                    <Table.Td>
                      <Text size="sm" c="dimmed">
                        {formatRelative(lastTime(r))}
                      </Text>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
          {recipients.hasNextPage && (
            <Center mt="sm">
              <Button
                variant="light"
                onClick={() => void recipients.fetchNextPage()}
                loading={recipients.isFetchingNextPage}
              >
                Load more
              </Button>
            </Center>
          )}
        </>
      )}
    </Paper>
  );
}
