/**
 * The campaign audience: groups, tags and segments to include and to exclude, a CSV upload that
 * becomes a new group (through the contacts import), and the consent breakdown — who would
 * receive it and why the others would not.
 */
import {
  Alert,
  Anchor,
  Button,
  Group,
  Modal,
  MultiSelect,
  Paper,
  Progress,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
} from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { IconUpload } from '@tabler/icons-react';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';

import { client, unwrap } from '../../api/client';
import { qk, useContactAttributes, useGroups, useSegments, useTags } from '../../api/queries';
import { SLICE_LABEL } from '../../lib/campaigns/progress';
import type { Audience, Breakdown } from '../../lib/campaigns/types';
import { errorMessage } from '../../lib/forms';
import { csvHeader, guessMapping, importTargets } from '../../lib/imports';
import { KIND_LABEL } from '../../lib/inbox/channels';
import type { ChannelKind } from '../../lib/inbox/types';

type ListKey = 'groups' | 'tags' | 'segments';

export function AudiencePicker({
  audience,
  onChange,
  error,
  campaignName,
}: {
  audience: Audience;
  onChange: (a: Audience) => void;
  error?: string | undefined;
  campaignName: string;
}) {
  const groups = useGroups();
  const tags = useTags();
  const segments = useSegments();
  const [uploading, upload] = useDisclosure(false);
  const options: Record<ListKey, { value: string; label: string }[]> = {
    groups: (groups.data ?? []).map((g) => ({ value: g.id, label: g.name })),
    tags: (tags.data ?? []).map((t) => ({ value: t.id, label: t.name })),
    segments: (segments.data ?? []).map((s) => ({ value: s.id, label: s.name })),
  };
  const set = (k: keyof Audience, ids: string[]) => onChange({ ...audience, [k]: ids });
  const picker = (k: ListKey, exclude: boolean) => {
    const key = (exclude ? `exclude_${k}` : k) as keyof Audience;
    const label = `${exclude ? 'Exclude ' : ''}${k}`;
    const nice = label.charAt(0).toUpperCase() + label.slice(1);
    return (
      <MultiSelect
        key={key}
        label={nice}
        placeholder={options[k].length ? 'Pick…' : `No ${k} yet`}
        data={options[k]}
        value={(audience[key] as string[] | undefined) ?? []}
        onChange={(ids) => set(key, ids)}
        searchable
        clearable
        hidePickedOptions
      />
    );
  };
  return (
    <Stack gap="sm">
      {audience.from_campaign && (
        <Alert color="grape" variant="light" title="Retargeting" data-testid="from-campaign">
          Recipients of{' '}
          <Anchor component={Link} to={`/campaigns/${audience.from_campaign.campaign_id}`}>
            the earlier campaign
          </Anchor>{' '}
          who are in the slice “{SLICE_LABEL[audience.from_campaign.slice]}”. Add groups, tags or segments to send to
          more people, or exclusions to leave some out.
        </Alert>
      )}
      <Paper withBorder radius="md" p="md">
        <Group justify="space-between" mb="xs">
          <Text fw={600}>Send to</Text>
          <Button size="xs" variant="light" leftSection={<IconUpload size={14} />} onClick={upload.open}>
            Upload CSV
          </Button>
        </Group>
        <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
          {picker('groups', false)}
          {picker('tags', false)}
          {picker('segments', false)}
        </SimpleGrid>
        {error && (
          <Text size="sm" c="red" mt="xs" role="alert" data-testid="audience-error">
            {error}
          </Text>
        )}
      </Paper>
      <Paper withBorder radius="md" p="md">
        <Text fw={600} mb="xs">
          Leave out
        </Text>
        <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
          {picker('groups', true)}
          {picker('tags', true)}
          {picker('segments', true)}
        </SimpleGrid>
      </Paper>
      {uploading && (
        <CsvUploadModal
          defaultName={`${campaignName.trim() || 'Campaign'} upload ${new Date().toISOString().slice(0, 10)}`}
          onClose={upload.close}
          onDone={(groupId) => {
            onChange({ ...audience, groups: [...new Set([...audience.groups, groupId])] });
            upload.close();
          }}
        />
      )}
    </Stack>
  );
}

/** Uploads a CSV into a new group (contacts import with `group_id`), then hands the group back. */
function CsvUploadModal({
  defaultName,
  onClose,
  onDone,
}: {
  defaultName: string;
  onClose: () => void;
  onDone: (groupId: string) => void;
}) {
  const qc = useQueryClient();
  const attrs = useContactAttributes();
  const [name, setName] = useState(defaultName);
  const [file, setFile] = useState<File | null>(null);
  const [header, setHeader] = useState<string[]>([]);
  const [mapping, setMapping] = useState<Record<string, string>>({});
  const [fileError, setFileError] = useState<string | null>(null);
  const [job, setJob] = useState<{ importId: string; groupId: string } | null>(null);

  const pick = async (f: File | null) => {
    setFile(f);
    setFileError(null);
    setHeader([]);
    if (!f) return;
    const h = csvHeader(await f.slice(0, 64 * 1024).text());
    if (h.length === 0 || (h.length === 1 && !h[0])) {
      setFileError('The file has no header row');
      return;
    }
    setHeader(h);
    setMapping(guessMapping(h, attrs.data ?? []));
  };

  const start = useMutation({
    mutationFn: async () => {
      const group = await unwrap(client.POST('/api/v1/groups', { body: { name: name.trim() } }));
      void qc.invalidateQueries({ queryKey: qk.groups });
      const form = new FormData();
      form.append('file', file!);
      form.append('mapping', JSON.stringify(mapping));
      form.append('dedupe', 'phone');
      form.append('on_duplicate', 'update');
      form.append('group_id', group.id);
      const imp = await unwrap(
        client.POST('/api/v1/imports', { body: form as never, bodySerializer: (b: unknown) => b as FormData }),
      );
      return { importId: imp.id, groupId: group.id };
    },
    onSuccess: setJob,
  });

  const imp = useQuery({
    queryKey: ['imports', job?.importId ?? ''],
    queryFn: () => unwrap(client.GET('/api/v1/imports/{id}', { params: { path: { id: job!.importId } } })),
    enabled: !!job,
    refetchInterval: (q) => {
      const s = q.state.data?.status;
      return s === 'completed' || s === 'failed' ? false : 1000;
    },
  });
  const d = imp.data;
  const done = d?.status === 'completed' || d?.status === 'failed';
  const pct = d?.total_rows ? Math.round((d.rows_done / d.total_rows) * 100) : done ? 100 : 0;

  const finish = () => {
    void qc.invalidateQueries({ queryKey: qk.contacts });
    void qc.invalidateQueries({ queryKey: qk.groups });
    onDone(job!.groupId);
  };

  return (
    <Modal opened onClose={onClose} title="Upload contacts for this campaign" size="lg">
      <Stack>
        {!job ? (
          <>
            <Text size="sm" c="dimmed">
              The rows are imported as contacts (matched by phone, updating existing ones) into a new group, which is
              then added to the audience. Record consent separately if your file does not carry it.{' '}
              <Anchor component={Link} to="/contacts/import">
                Full import page
              </Anchor>
            </Text>
            <TextInput label="New group name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
            <input
              type="file"
              accept=".csv,text/csv"
              aria-label="CSV file"
              onChange={(e) => void pick(e.currentTarget.files?.[0] ?? null)}
            />
            {fileError && (
              <Text size="sm" c="red">
                {fileError}
              </Text>
            )}
            {header.length > 0 && (
              <Table data-testid="upload-mapping">
                <Table.Tbody>
                  {header.map((h) => (
                    <Table.Tr key={h}>
                      <Table.Td>
                        <Text size="sm" ff="monospace">
                          {h}
                        </Text>
                      </Table.Td>
                      <Table.Td>
                        <Select
                          aria-label={`Map column ${h}`}
                          data={importTargets(attrs.data ?? [])}
                          value={mapping[h] ?? 'ignore'}
                          allowDeselect={false}
                          onChange={(v) => v && setMapping((m) => ({ ...m, [h]: v }))}
                        />
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            )}
            {start.isError && (
              <Alert color="red" variant="light">
                {errorMessage(start.error)}
              </Alert>
            )}
            <Group justify="flex-end">
              <Button variant="default" onClick={onClose}>
                Cancel
              </Button>
              <Button
                leftSection={<IconUpload size={16} />}
                disabled={!file || header.length === 0 || !name.trim()}
                loading={start.isPending}
                onClick={() => start.mutate()}
              >
                Upload and add
              </Button>
            </Group>
          </>
        ) : (
          <>
            <Progress
              value={pct}
              animated={!done}
              aria-label="Upload progress"
              color={d?.status === 'failed' ? 'red' : undefined}
            />
            <Text size="sm" data-testid="upload-status">
              {d
                ? `${d.status === 'completed' ? 'Done' : d.status === 'failed' ? 'Failed' : 'Importing'}: ${d.created} created, ${d.updated} updated, ${d.failed} failed`
                : 'Starting…'}
            </Text>
            {d?.error && <Alert color="red">{d.error}</Alert>}
            <Group justify="flex-end">
              <Button disabled={!done || d?.status === 'failed'} onClick={finish}>
                Add the group to the audience
              </Button>
            </Group>
          </>
        )}
      </Stack>
    </Modal>
  );
}

const ROWS: { key: keyof Breakdown; label: (kind: ChannelKind) => string; color: string; hint: string }[] = [
  { key: 'eligible', label: () => 'Will receive it', color: 'teal', hint: 'Reachable, consented where needed' },
  { key: 'opted_out', label: () => 'Opted out', color: 'red', hint: 'Asked not to be messaged' },
  {
    key: 'no_consent',
    label: () => 'No marketing consent',
    color: 'orange',
    hint: 'Marketing templates need an opt-in',
  },
  { key: 'blocked', label: () => 'Blocked', color: 'dark', hint: 'Blocked contacts are never messaged' },
  {
    key: 'no_identity',
    label: (kind) => `No ${KIND_LABEL[kind]} address`,
    color: 'gray',
    hint: 'Nothing to send to on this channel',
  },
  {
    key: 'missing_variables',
    label: () => 'Missing variables',
    color: 'yellow',
    hint: 'A variable has no value and no fallback',
  },
];

/** Who the audience reaches and why the others are left out. */
export function BreakdownPanel({
  breakdown,
  kind,
  loading,
  error,
}: {
  breakdown: Breakdown | undefined;
  kind: ChannelKind;
  loading?: boolean;
  error?: unknown;
}) {
  return (
    <Paper withBorder radius="md" p="md" data-testid="audience-breakdown" aria-busy={loading || undefined}>
      <Group justify="space-between" mb="xs">
        <Text fw={600}>Audience</Text>
        {breakdown && (
          <Text size="sm" c="dimmed" data-testid="breakdown-total">
            {breakdown.total} contact{breakdown.total === 1 ? '' : 's'}
          </Text>
        )}
      </Group>
      {error ? (
        <Alert color="red" variant="light">
          {errorMessage(error)}
        </Alert>
      ) : !breakdown ? (
        <Text size="sm" c="dimmed">
          {loading ? 'Counting…' : 'Pick groups, tags or segments to see who would receive it.'}
        </Text>
      ) : (
        <Table verticalSpacing={4}>
          <Table.Tbody>
            {ROWS.map((r) => (
              <Table.Tr key={r.key} data-testid={`breakdown-${r.key}`}>
                <Table.Td>
                  <Text size="sm" fw={r.key === 'eligible' ? 600 : undefined} title={r.hint}>
                    {r.label(kind)}
                  </Text>
                </Table.Td>
                <Table.Td w={140}>
                  <Progress
                    value={breakdown.total ? (breakdown[r.key] / breakdown.total) * 100 : 0}
                    color={r.color}
                    size="sm"
                    aria-hidden
                  />
                </Table.Td>
                <Table.Td ta="right" w={70}>
                  <Text size="sm" fw={r.key === 'eligible' ? 700 : undefined} data-testid={`breakdown-${r.key}-count`}>
                    {breakdown[r.key]}
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </Paper>
  );
}
