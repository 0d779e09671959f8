import { Alert, Anchor, Button, Group, Paper, Progress, Select, SimpleGrid, Stack, Table, Text } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { IconDownload, IconUpload } from '@tabler/icons-react';
import { useState } from 'react';
import { Link } from 'react-router';

import { client, unwrap } from '../../api/client';
import { qk, useContactAttributes, useGroups } from '../../api/queries';
import { PageHeader } from '../../components/PageHeader';
import { fileNameFrom, saveBlob } from '../../lib/download';
import { errorMessage } from '../../lib/forms';
import { csvHeader, guessMapping, importTargets } from '../../lib/imports';

type Dedupe = 'phone' | 'email' | 'none';
type OnDuplicate = 'skip' | 'update';

export function ImportPage() {
  const attrs = useContactAttributes();
  const groups = useGroups();
  const defs = attrs.data ?? [];
  const [file, setFile] = useState<File | null>(null);
  const [header, setHeader] = useState<string[]>([]);
  const [mapping, setMapping] = useState<Record<string, string>>({});
  const [dedupe, setDedupe] = useState<Dedupe>('phone');
  const [onDuplicate, setOnDuplicate] = useState<OnDuplicate>('skip');
  const [groupId, setGroupId] = useState<string | null>(null);
  const [fileError, setFileError] = useState<string | null>(null);
  const [importId, setImportId] = useState<string | null>(null);

  const pick = async (f: File | null) => {
    setFile(f);
    setFileError(null);
    setHeader([]);
    if (!f) return;
    const text = await f.slice(0, 64 * 1024).text();
    const h = csvHeader(text);
    if (h.length === 0 || (h.length === 1 && !h[0])) {
      setFileError('The file has no header row');
      return;
    }
    setHeader(h);
    setMapping(guessMapping(h, defs));
  };

  const start = useMutation({
    mutationFn: () => {
      const form = new FormData();
      form.append('file', file!);
      form.append('mapping', JSON.stringify(mapping));
      form.append('dedupe', dedupe);
      form.append('on_duplicate', onDuplicate);
      if (groupId) form.append('group_id', groupId);
      return unwrap(
        client.POST('/api/v1/imports', {
          body: form as never,
          bodySerializer: (b: unknown) => b as FormData,
        }),
      );
    },
    onSuccess: (imp) => setImportId(imp.id),
    onError: (e) => notifications.show({ color: 'red', title: 'Import not started', message: errorMessage(e) }),
  });

  if (importId) return <ImportProgress id={importId} onAnother={() => setImportId(null)} />;

  return (
    <>
      <PageHeader
        title="Import contacts"
        description={
          <>
            Upload a CSV file with a header row, map its columns and import it.{' '}
            <Anchor component={Link} to="/contacts">
              Back to contacts
            </Anchor>
          </>
        }
      />
      <Stack>
        <Paper withBorder radius="md" p="md">
          <Text fw={500} mb="xs">
            1. Upload
          </Text>
          <input
            type="file"
            accept=".csv,text/csv"
            aria-label="CSV file"
            onChange={(e) => void pick(e.currentTarget.files?.[0] ?? null)}
          />
          {file && header.length > 0 && (
            <Text size="sm" c="dimmed" mt="xs">
              {file.name}: {header.length} column{header.length === 1 ? '' : 's'}
            </Text>
          )}
          {fileError && (
            <Text size="sm" c="red" mt="xs">
              {fileError}
            </Text>
          )}
        </Paper>
        {header.length > 0 && (
          <>
            <Paper withBorder radius="md" p="md">
              <Text fw={500} mb="xs">
                2. Map columns
              </Text>
              <Table data-testid="import-mapping">
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
                          data={importTargets(defs)}
                          value={mapping[h] ?? 'ignore'}
                          allowDeselect={false}
                          onChange={(v) => v && setMapping((m) => ({ ...m, [h]: v }))}
                          w={260}
                        />
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Paper>
            <Paper withBorder radius="md" p="md">
              <Text fw={500} mb="xs">
                3. Duplicates and group
              </Text>
              <SimpleGrid cols={{ base: 1, sm: 3 }}>
                <Select
                  label="Find duplicates by"
                  data={[
                    { value: 'phone', label: 'Phone' },
                    { value: 'email', label: 'E-mail' },
                    { value: 'none', label: "Don't check" },
                  ]}
                  value={dedupe}
                  allowDeselect={false}
                  onChange={(v) => v && setDedupe(v as Dedupe)}
                />
                <Select
                  label="On a duplicate"
                  data={[
                    { value: 'skip', label: 'Skip the row' },
                    { value: 'update', label: 'Update the contact' },
                  ]}
                  value={onDuplicate}
                  allowDeselect={false}
                  onChange={(v) => v && setOnDuplicate(v as OnDuplicate)}
                  disabled={dedupe === 'none'}
                />
                <Select
                  label="Add to group"
                  placeholder="No group"
                  data={(groups.data ?? []).map((g) => ({ value: g.id, label: g.name }))}
                  value={groupId}
                  onChange={setGroupId}
                  clearable
                />
              </SimpleGrid>
              <Group justify="flex-end" mt="md">
                <Button leftSection={<IconUpload size={16} />} onClick={() => start.mutate()} loading={start.isPending}>
                  Start import
                </Button>
              </Group>
            </Paper>
          </>
        )}
      </Stack>
    </>
  );
}

const STATUS_LABEL = { queued: 'Queued', running: 'Running', completed: 'Completed', failed: 'Failed' } as const;

function ImportProgress({ id, onAnother }: { id: string; onAnother: () => void }) {
  const queryClient = useQueryClient();
  const imp = useQuery({
    queryKey: ['imports', id],
    queryFn: () => unwrap(client.GET('/api/v1/imports/{id}', { params: { path: { id } } })),
    refetchInterval: (q) => {
      const s = q.state.data?.status;
      if (s === 'completed' || s === 'failed') {
        void queryClient.invalidateQueries({ queryKey: qk.contacts });
        return false;
      }
      return 1000;
    },
  });

  const report = useMutation({
    mutationFn: async () => {
      const r = await client.GET('/api/v1/imports/{id}/errors.csv', {
        params: { path: { id } },
        parseAs: 'blob',
      });
      const blob = await unwrap(Promise.resolve(r));
      saveBlob(blob, fileNameFrom(r.response.headers.get('Content-Disposition'), `import-${id}-errors.csv`));
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Download failed', message: errorMessage(e) }),
  });

  const d = imp.data;
  const done = d?.status === 'completed' || d?.status === 'failed';
  const total = d?.total_rows ?? null;
  const pct = d && total ? Math.round((d.rows_done / total) * 100) : done ? 100 : 0;

  return (
    <>
      <PageHeader title="Import contacts" description={d ? d.file_name : 'Starting…'} />
      <Paper withBorder radius="md" p="md">
        <Stack>
          {imp.isError && <Alert color="red">{errorMessage(imp.error)}</Alert>}
          <Text fw={500} data-testid="import-status">
            {d ? STATUS_LABEL[d.status] : 'Queued'}
          </Text>
          <Progress
            value={pct}
            animated={!done}
            striped={!done}
            aria-label="Import progress"
            color={d?.status === 'failed' ? 'red' : undefined}
          />
          <Text size="sm" c="dimmed">
            {d ? `${d.rows_done}${total !== null ? ` / ${total}` : ''} rows` : ''}
          </Text>
          {d && (
            <SimpleGrid cols={4} data-testid="import-counts">
              <Text size="sm" data-testid="import-created">
                Created: {d.created}
              </Text>
              <Text size="sm" data-testid="import-updated">
                Updated: {d.updated}
              </Text>
              <Text size="sm" data-testid="import-skipped">
                Skipped: {d.skipped}
              </Text>
              <Text size="sm" data-testid="import-failed">
                Failed: {d.failed}
              </Text>
            </SimpleGrid>
          )}
          {d?.error && <Alert color="red">{d.error}</Alert>}
          {done && (
            <Group>
              {d.failed > 0 && (
                <Button
                  variant="light"
                  leftSection={<IconDownload size={16} />}
                  onClick={() => report.mutate()}
                  loading={report.isPending}
                >
                  Download error report
                </Button>
              )}
              <Button component={Link} to="/contacts" variant="default">
                Go to contacts
              </Button>
              <Button variant="subtle" onClick={onAnother}>
                Import another file
              </Button>
            </Group>
          )}
        </Stack>
      </Paper>
    </>
  );
}
