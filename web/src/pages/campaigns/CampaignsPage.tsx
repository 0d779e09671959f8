/**
 * Campaigns: newest first with status, progress (done of total) and when they ran; a status
 * filter in the URL (`?status=`). Running rows move with `campaign.progress` events.
 */
import { Anchor, Button, Group, Paper, SegmentedControl, Table, Text } from '@mantine/core';
import { IconPlus } from '@tabler/icons-react';
import { Link, useNavigate, useSearchParams } from 'react-router';

import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { useCampaigns } from '../../lib/campaigns/api';
import { STATUS_LABEL } from '../../lib/campaigns/progress';
import type { CampaignOut, CampaignStatus } from '../../lib/campaigns/types';
import { formatDateTime, formatRelative } from '../../lib/format';
import { ChannelIcon } from '../inbox/ChannelIcon';
import { CampaignProgress, CampaignStatusBadge } from './CampaignBadges';

const FILTERS: (CampaignStatus | 'all')[] = ['all', 'draft', 'scheduled', 'running', 'paused', 'completed'];

function when(c: CampaignOut): string {
  if (c.status === 'scheduled' && c.scheduled_at) return `Starts ${formatDateTime(c.scheduled_at)}`;
  if (c.completed_at) return `Finished ${formatRelative(c.completed_at)}`;
  if (c.launched_at) return `Started ${formatRelative(c.launched_at)}`;
  return `Created ${formatRelative(c.created_at)}`;
}

export function CampaignsPage() {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const [params, setParams] = useSearchParams();
  const status = (params.get('status') as CampaignStatus | null) ?? null;
  const campaigns = useCampaigns(status);
  const navigate = useNavigate();

  const newButton = isAdmin && (
    <Button leftSection={<IconPlus size={16} />} component={Link} to="/campaigns/new">
      New campaign
    </Button>
  );

  return (
    <>
      <PageHeader
        title="Campaigns"
        description="Send an approved template to groups, tags or segments — paced, consent-checked and reported."
        actions={newButton}
      />
      <SegmentedControl
        mb="sm"
        aria-label="Status"
        data={FILTERS.map((f) => ({ value: f, label: f === 'all' ? 'All' : STATUS_LABEL[f] }))}
        value={status ?? 'all'}
        onChange={(v) =>
          setParams(
            (p) => {
              const n = new URLSearchParams(p);
              if (v === 'all') n.delete('status');
              else n.set('status', v);
              return n;
            },
            { replace: true },
          )
        }
        style={{ maxWidth: '100%', overflowX: 'auto' }}
      />
      <Paper withBorder radius="md">
        <QueryState
          query={campaigns}
          isEmpty={(l) => l.length === 0}
          empty={
            status ? (
              <EmptyState title={`No ${STATUS_LABEL[status].toLowerCase()} campaigns`} />
            ) : (
              <EmptyState title="No campaigns yet" action={newButton || undefined}>
                A campaign sends an approved template to the contacts in groups, tags or segments, skipping those who
                opted out.
              </EmptyState>
            )
          }
        >
          {(list) => (
            <Table.ScrollContainer minWidth={720}>
              <Table verticalSpacing="sm" highlightOnHover data-testid="campaigns-table">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Campaign</Table.Th>
                    <Table.Th>Status</Table.Th>
                    <Table.Th w={260}>Progress</Table.Th>
                    <Table.Th>When</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {list.map((c) => {
                    const to = c.status === 'draft' ? `/campaigns/${c.id}/edit` : `/campaigns/${c.id}`;
                    return (
                      <Table.Tr
                        key={c.id}
                        data-testid="campaign-row"
                        data-name={c.name}
                        style={{ cursor: 'pointer' }}
                        onClick={() => navigate(to)}
                      >
                        <Table.Td>
                          <Anchor component={Link} to={to} fw={600} onClick={(e) => e.stopPropagation()}>
                            {c.name}
                          </Anchor>
                          <Group gap={6}>
                            <ChannelIcon kind={c.channel.kind} size={14} />
                            <Text size="xs" c="dimmed">
                              {c.channel.name}
                              {c.template ? ` · ${c.template.name} (${c.template.language})` : ''}
                            </Text>
                          </Group>
                        </Table.Td>
                        <Table.Td>
                          <CampaignStatusBadge c={c} />
                        </Table.Td>
                        <Table.Td>
                          {c.status === 'draft' ? (
                            <Text size="xs" c="dimmed">
                              Not launched
                            </Text>
                          ) : (
                            <CampaignProgress
                              counts={c.counts}
                              label={`${c.name} progress`}
                              animated={c.status === 'running'}
                            />
                          )}
                        </Table.Td>
                        <Table.Td>
                          <Text size="sm" c="dimmed">
                            {when(c)}
                          </Text>
                        </Table.Td>
                      </Table.Tr>
                    );
                  })}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
        </QueryState>
      </Paper>
    </>
  );
}
