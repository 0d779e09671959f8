/**
 * Templates: every template of the organization grouped by name (one row per language), with its
 * review status (Meta's reason on a rejected one), a channel filter in the URL (`?channel=`),
 * "Sync from WhatsApp" (imports templates that already exist on the WhatsApp account) and
 * "New template".
 */
import { Anchor, Badge, Button, Group, Menu, Paper, Select, Stack, Table, Text, TextInput } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconChevronDown, IconPlus, IconRefresh, IconSearch } from '@tabler/icons-react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';

import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { errorMessage } from '../../lib/forms';
import { formatRelative } from '../../lib/format';
import { useInboxChannels } from '../../lib/inbox/api';
import { syncTemplates, templateKeys, useTemplates } from '../../lib/templates/api';
import { CATEGORY_LABEL } from '../../lib/templates/builder';
import type { SyncOut, TemplateOut, TemplateStatus } from '../../lib/templates/types';
import { ChannelIcon } from '../inbox/ChannelIcon';
import { QualityBadge, TEMPLATE_STATUS_LABEL, TemplateStatusBadge } from './TemplateBadges';

/** Templates by channel and name, in the order the server gave them (newest first). */
export function groupTemplates(list: readonly TemplateOut[]): { key: string; name: string; items: TemplateOut[] }[] {
  const groups = new Map<string, { key: string; name: string; items: TemplateOut[] }>();
  for (const t of list) {
    const key = `${t.channel.id}/${t.name}`;
    const g = groups.get(key) ?? { key, name: t.name, items: [] };
    g.items.push(t);
    groups.set(key, g);
  }
  for (const g of groups.values()) g.items.sort((a, b) => a.language.localeCompare(b.language));
  return [...groups.values()];
}

export function TemplatesPage() {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const [params, setParams] = useSearchParams();
  const channelId = params.get('channel');
  const status = (params.get('status') as TemplateStatus | null) ?? null;
  const [q, setQ] = useState(params.get('q') ?? '');
  const [debouncedQ] = useDebouncedValue(q, 250);
  const channels = useInboxChannels();
  const templates = useTemplates({ channelId, status, q: debouncedQ });
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [lastSync, setLastSync] = useState<(SyncOut & { channel: string }) | null>(null);
  const whatsapp = (channels.data ?? []).filter((c) => c.kind === 'whatsapp');
  const chosenWhatsapp = whatsapp.find((c) => c.id === channelId);

  const setParam = (k: string, v: string | null) =>
    setParams(
      (p) => {
        const n = new URLSearchParams(p);
        if (v) n.set(k, v);
        else n.delete(k);
        return n;
      },
      { replace: true },
    );

  const sync = useMutation({
    mutationFn: (c: { id: string; name: string }) => syncTemplates(c.id).then((r) => ({ ...r, channel: c.name })),
    onSuccess: (r) => {
      setLastSync(r);
      void qc.invalidateQueries({ queryKey: templateKeys.all });
      notifications.show({
        color: 'teal',
        title: `Synced ${r.channel}`,
        message: `${r.imported} imported, ${r.updated} updated (${r.total} on WhatsApp)`,
      });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Sync failed', message: errorMessage(e) }),
  });

  const syncButton =
    isAdmin && whatsapp.length > 0 ? (
      chosenWhatsapp || whatsapp.length === 1 ? (
        <Button
          variant="default"
          leftSection={<IconRefresh size={16} />}
          loading={sync.isPending}
          onClick={() => sync.mutate(chosenWhatsapp ?? whatsapp[0]!)}
        >
          Sync from WhatsApp
        </Button>
      ) : (
        <Menu position="bottom-end" withinPortal>
          <Menu.Target>
            <Button
              variant="default"
              leftSection={<IconRefresh size={16} />}
              rightSection={<IconChevronDown size={14} />}
              loading={sync.isPending}
            >
              Sync from WhatsApp
            </Button>
          </Menu.Target>
          <Menu.Dropdown>
            {whatsapp.map((c) => (
              <Menu.Item key={c.id} onClick={() => sync.mutate(c)}>
                {c.name}
              </Menu.Item>
            ))}
          </Menu.Dropdown>
        </Menu>
      )
    ) : null;

  const newButton = isAdmin && (
    <Button
      leftSection={<IconPlus size={16} />}
      component={Link}
      to={channelId ? `/templates/new?channel=${channelId}` : '/templates/new'}
    >
      New template
    </Button>
  );

  return (
    <>
      <PageHeader
        title="Templates"
        description="Message templates for campaigns and for writing first (WhatsApp needs Meta's approval)."
        actions={
          <Group gap="xs">
            {syncButton}
            {newButton}
          </Group>
        }
      />
      {lastSync && (
        <Text size="sm" c="dimmed" mb="sm" data-testid="sync-result">
          {lastSync.channel}: {lastSync.imported} imported, {lastSync.updated} updated, {lastSync.total} on WhatsApp.
        </Text>
      )}
      <Group mb="sm" gap="sm" wrap="wrap">
        <Select
          aria-label="Channel"
          placeholder="All channels"
          data={(channels.data ?? []).map((c) => ({ value: c.id, label: c.name }))}
          value={channelId}
          onChange={(v) => setParam('channel', v)}
          clearable
          w={220}
        />
        <Select
          aria-label="Status"
          placeholder="Any status"
          data={(Object.keys(TEMPLATE_STATUS_LABEL) as TemplateStatus[]).map((s) => ({
            value: s,
            label: TEMPLATE_STATUS_LABEL[s],
          }))}
          value={status}
          onChange={(v) => setParam('status', v)}
          clearable
          w={170}
        />
        <TextInput
          aria-label="Search templates"
          placeholder="Search by name"
          leftSection={<IconSearch size={14} />}
          value={q}
          onChange={(e) => setQ(e.currentTarget.value)}
          w={220}
        />
      </Group>
      <Paper withBorder radius="md">
        <QueryState
          query={templates}
          isEmpty={(l) => l.length === 0}
          empty={
            channelId || status || debouncedQ ? (
              <EmptyState title="No templates match">Try another channel, status or search.</EmptyState>
            ) : (
              <EmptyState title="No templates yet" action={newButton || undefined}>
                Build a template with variables for your campaigns. WhatsApp templates are reviewed by Meta before they
                can be sent; Telegram and Sandbox ones are ready at once.
                {whatsapp.length > 0 && ' Already have templates on WhatsApp? Sync them.'}
              </EmptyState>
            )
          }
        >
          {(list) => (
            <Table.ScrollContainer minWidth={640}>
              <Table verticalSpacing="xs" highlightOnHover data-testid="templates-table">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Template</Table.Th>
                    <Table.Th>Language</Table.Th>
                    <Table.Th>Status</Table.Th>
                    <Table.Th>Updated</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {groupTemplates(list).flatMap((g) =>
                    g.items.map((t, i) => (
                      <Table.Tr
                        key={t.id}
                        data-testid="template-row"
                        data-name={t.name}
                        data-language={t.language}
                        style={{ cursor: 'pointer' }}
                        onClick={() => navigate(`/templates/${t.id}`)}
                      >
                        {i === 0 && (
                          <Table.Td rowSpan={g.items.length} style={{ verticalAlign: 'top' }}>
                            <Stack gap={2}>
                              <Anchor
                                component={Link}
                                to={`/templates/${t.id}`}
                                fw={600}
                                ff="monospace"
                                onClick={(e) => e.stopPropagation()}
                              >
                                {g.name}
                              </Anchor>
                              <Group gap={6}>
                                <ChannelIcon kind={t.channel.kind} size={14} />
                                <Text size="xs" c="dimmed">
                                  {t.channel.name}
                                </Text>
                                <Badge size="xs" variant="outline" color="gray">
                                  {CATEGORY_LABEL[t.category]}
                                </Badge>
                              </Group>
                            </Stack>
                          </Table.Td>
                        )}
                        <Table.Td>
                          <Anchor
                            component={Link}
                            to={`/templates/${t.id}`}
                            size="sm"
                            aria-label={`${t.name} (${t.language})`}
                            onClick={(e) => e.stopPropagation()}
                          >
                            {t.language}
                          </Anchor>
                        </Table.Td>
                        <Table.Td>
                          <Group gap={6}>
                            <TemplateStatusBadge t={t} />
                            <QualityBadge quality={t.quality} />
                          </Group>
                        </Table.Td>
                        <Table.Td>
                          <Text size="sm" c="dimmed">
                            {formatRelative(t.updated_at)}
                          </Text>
                        </Table.Td>
                      </Table.Tr>
                    )),
                  )}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
        </QueryState>
      </Paper>
    </>
  );
}
