import {
  ActionIcon,
  Alert,
  Anchor,
  Badge,
  Button,
  Group,
  Loader,
  Modal,
  Paper,
  SegmentedControl,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Textarea,
  Tooltip,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { IconEdit, IconPlus, IconTrash } from '@tabler/icons-react';
import { useEffect, useMemo, useState } from 'react';
import { Link } from 'react-router';

import { client, unwrap } from '../../api/client';
import { isApiError } from '../../api/problem';
import { qk, useContactAttributes, useGroups, useSegments, useTags } from '../../api/queries';
import type { AttrDefOut, SegmentOut } from '../../api/types';
import { PageHeader } from '../../components/PageHeader';
import { EmptyState, QueryState } from '../../components/QueryState';
import { errorMessage } from '../../lib/forms';
import { CHANNEL_LABEL, CONSENT_CHANNELS, CONSENT_PURPOSES, PURPOSE_LABEL } from '../../lib/organize';
import {
  OP_LABEL,
  attrDef,
  errorRow,
  fromFilter,
  needsValue,
  newRow,
  opsFor,
  toFilter,
  type ConditionRow,
  type SegmentDraft,
} from '../../lib/segments';

export function SegmentsPage() {
  const segments = useSegments();
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState<SegmentOut | 'new' | null>(null);

  const remove = useMutation({
    mutationFn: (s: SegmentOut) => unwrap(client.DELETE('/api/v1/segments/{id}', { params: { path: { id: s.id } } })),
    onSuccess: (_, s) => {
      void queryClient.invalidateQueries({ queryKey: qk.segments });
      notifications.show({ color: 'teal', message: `Segment ${s.name} deleted` });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });

  const confirmDelete = (s: SegmentOut) =>
    modals.openConfirmModal({
      title: `Delete segment ${s.name}?`,
      children: <Text size="sm">The saved segment is deleted; its contacts stay. This can't be undone.</Text>,
      labels: { confirm: 'Delete segment', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(s),
    });

  const newButton = (
    <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing('new')}>
      New segment
    </Button>
  );

  return (
    <>
      <PageHeader
        title="Segments"
        description={
          <>
            Saved filters over your contacts, counted live.{' '}
            <Anchor component={Link} to="/contacts">
              Back to contacts
            </Anchor>
          </>
        }
        actions={newButton}
      />
      <Paper withBorder radius="md">
        <QueryState
          query={segments}
          isEmpty={(s) => s.length === 0}
          empty={<EmptyState title="No segments yet">Save a filter such as "VIP customers with a plan".</EmptyState>}
        >
          {(list) => (
            <Table verticalSpacing="sm" data-testid="segments-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Segment</Table.Th>
                  <Table.Th>Contacts</Table.Th>
                  <Table.Th w={100} />
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {list.map((s) => (
                  <Table.Tr key={s.id} data-testid={`segment-${s.name}`}>
                    <Table.Td>
                      <Anchor component={Link} to={`/contacts?segment=${s.id}`} fw={500} size="sm">
                        {s.name}
                      </Anchor>
                      {s.description && (
                        <Text size="xs" c="dimmed">
                          {s.description}
                        </Text>
                      )}
                    </Table.Td>
                    <Table.Td>
                      <SegmentCount id={s.id} />
                    </Table.Td>
                    <Table.Td>
                      <Group gap={4} justify="flex-end" wrap="nowrap">
                        <Tooltip label="Edit">
                          <ActionIcon variant="subtle" aria-label={`Edit ${s.name}`} onClick={() => setEditing(s)}>
                            <IconEdit size={16} />
                          </ActionIcon>
                        </Tooltip>
                        <Tooltip label="Delete">
                          <ActionIcon
                            variant="subtle"
                            color="red"
                            aria-label={`Delete ${s.name}`}
                            onClick={() => confirmDelete(s)}
                          >
                            <IconTrash size={16} />
                          </ActionIcon>
                        </Tooltip>
                      </Group>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          )}
        </QueryState>
      </Paper>
      {editing && (
        <SegmentModal
          key={editing === 'new' ? 'new' : editing.id}
          segment={editing === 'new' ? null : editing}
          onClose={() => setEditing(null)}
        />
      )}
    </>
  );
}

function SegmentCount({ id }: { id: string }) {
  const count = useQuery({
    queryKey: qk.segmentCount(id),
    queryFn: () => unwrap(client.GET('/api/v1/segments/{id}/count', { params: { path: { id } } })),
  });
  if (count.isPending) return <Loader size="xs" />;
  if (count.isError)
    return (
      <Text size="sm" c="red">
        —
      </Text>
    );
  return (
    <Badge variant="light" data-testid="segment-count">
      {count.data.count}
    </Badge>
  );
}

function SegmentModal({ segment, onClose }: { segment: SegmentOut | null; onClose: () => void }) {
  const queryClient = useQueryClient();
  const attrs = useContactAttributes();
  const defs = attrs.data ?? [];
  const [name, setName] = useState(segment?.name ?? '');
  const [description, setDescription] = useState(segment?.description ?? '');
  const [draft, setDraft] = useState<SegmentDraft>(() =>
    segment ? fromFilter(segment.filter) : { mode: 'all', rows: [newRow('tag')] },
  );
  const [nameError, setNameError] = useState<string | null>(null);
  const [rowErrors, setRowErrors] = useState<Record<number, string>>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [previewCount, setPreviewCount] = useState<number | null>(null);

  const showError = (e: unknown) => {
    const rows: Record<number, string> = {};
    const other: string[] = [];
    let nameErr: string | null = null;
    if (isApiError(e) && e.errors.length > 0) {
      for (const fe of e.errors) {
        const i = errorRow(fe.field);
        if (i !== null && i < draft.rows.length) rows[i] ??= fe.message;
        else if (fe.field === 'name') nameErr = fe.message;
        else other.push(`${fe.field}: ${fe.message}`);
      }
    } else other.push(errorMessage(e));
    setRowErrors(rows);
    setNameError(nameErr);
    setFormError(other.length ? other.join('; ') : null);
  };
  const clearErrors = () => {
    setRowErrors({});
    setNameError(null);
    setFormError(null);
  };

  const filter = () => toFilter(draft, defs) as Record<string, never>;

  // The live count: the draft's audience, counted a moment after each change. An incomplete
  // draft only says so (Preview shows what is wrong and where).
  const [settled] = useDebouncedValue(draft, 400);
  const liveFilter = useMemo(() => toFilter(settled, defs), [settled, defs]);
  const live = useQuery({
    queryKey: ['segments', 'live-count', JSON.stringify(liveFilter)],
    queryFn: () =>
      unwrap(
        client.POST('/api/v1/segments/preview', {
          body: { filter: liveFilter as Record<string, never> },
        }),
      ),
    enabled: attrs.isSuccess,
    retry: false,
    staleTime: 10_000,
  });
  // An explicit preview answers for the draft it was asked on.
  useEffect(() => setPreviewCount(null), [draft]);
  const counting = settled !== draft || live.isFetching;
  const shownCount = previewCount ?? (live.isSuccess && settled === draft ? live.data.count : null);

  const preview = useMutation({
    mutationFn: () => unwrap(client.POST('/api/v1/segments/preview', { body: { filter: filter() } })),
    onMutate: () => {
      clearErrors();
      setPreviewCount(null);
    },
    onSuccess: (r) => setPreviewCount(r.count),
    onError: showError,
  });

  const save = useMutation({
    mutationFn: () => {
      const body = { name: name.trim(), description: description.trim() || null, filter: filter() };
      return segment
        ? unwrap(client.PATCH('/api/v1/segments/{id}', { params: { path: { id: segment.id } }, body }))
        : unwrap(client.POST('/api/v1/segments', { body }));
    },
    onMutate: clearErrors,
    onSuccess: (s) => {
      void queryClient.invalidateQueries({ queryKey: qk.segments });
      void queryClient.invalidateQueries({ queryKey: qk.segmentCount(s.id) });
      notifications.show({ color: 'teal', message: `Segment ${s.name} saved` });
      onClose();
    },
    onError: showError,
  });

  const setRow = (i: number, row: ConditionRow) =>
    setDraft((d) => ({ ...d, rows: d.rows.map((r, j) => (j === i ? row : r)) }));

  return (
    <Modal opened onClose={onClose} title={segment ? `Edit segment ${segment.name}` : 'New segment'} size="xl">
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!name.trim()) {
            setNameError('Enter a name');
            return;
          }
          save.mutate();
        }}
      >
        <Stack>
          <TextInput
            label="Name"
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            error={nameError}
            data-autofocus
          />
          <Textarea
            label="Description"
            value={description}
            onChange={(e) => setDescription(e.currentTarget.value)}
            autosize
            minRows={1}
          />
          <Group gap="xs">
            <Text size="sm">Match</Text>
            <SegmentedControl
              size="xs"
              aria-label="Match"
              value={draft.mode}
              onChange={(v) => setDraft((d) => ({ ...d, mode: v as 'all' | 'any' }))}
              data={[
                { value: 'all', label: 'all conditions' },
                { value: 'any', label: 'any condition' },
              ]}
            />
          </Group>
          {draft.rows.map((row, i) => (
            <ConditionEditor
              key={i}
              index={i}
              row={row}
              defs={defs}
              error={rowErrors[i]}
              onChange={(r) => setRow(i, r)}
              onRemove={() => setDraft((d) => ({ ...d, rows: d.rows.filter((_, j) => j !== i) }))}
            />
          ))}
          <Group>
            <Button
              variant="light"
              size="xs"
              leftSection={<IconPlus size={14} />}
              onClick={() => setDraft((d) => ({ ...d, rows: [...d.rows, newRow('tag')] }))}
            >
              Add condition
            </Button>
          </Group>
          {formError && (
            <Alert color="red" title="Could not save">
              {formError}
            </Alert>
          )}
          <Group justify="space-between">
            <Group gap="xs">
              <Button variant="default" onClick={() => preview.mutate()} loading={preview.isPending}>
                Preview
              </Button>
              {shownCount !== null ? (
                <Text size="sm" data-testid="segment-preview">
                  {shownCount} contact{shownCount === 1 ? '' : 's'} match
                </Text>
              ) : counting ? (
                <Loader size="xs" aria-label="Counting" />
              ) : live.isError && isApiError(live.error) && live.error.status === 422 ? (
                <Text size="sm" c="dimmed" data-testid="segment-live-hint">
                  Complete the conditions to see how many contacts match
                </Text>
              ) : (
                live.isError && (
                  <Text size="sm" c="red" data-testid="segment-live-error">
                    Could not count: {errorMessage(live.error)}
                  </Text>
                )
              )}
            </Group>
            <Group gap="xs">
              <Button variant="default" onClick={onClose}>
                Cancel
              </Button>
              <Button type="submit" loading={save.isPending}>
                Save segment
              </Button>
            </Group>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function ConditionEditor({
  index,
  row,
  defs,
  error,
  onChange,
  onRemove,
}: {
  index: number;
  row: ConditionRow;
  defs: AttrDefOut[];
  error: string | undefined;
  onChange: (r: ConditionRow) => void;
  onRemove: () => void;
}) {
  const tags = useTags();
  const groups = useGroups();
  const n = index + 1;
  const fields = [
    { value: 'tag', label: 'Tag' },
    { value: 'group', label: 'Group' },
    { value: 'favorite', label: 'Favorite' },
    { value: 'blocked', label: 'Blocked' },
    { value: 'consent', label: 'Consent' },
    ...defs.map((d) => ({ value: `attr:${d.key}`, label: d.label })),
  ];
  const ops = opsFor(row.field, defs).map((o) => ({ value: o, label: OP_LABEL[o] ?? o }));
  const def = attrDef(row.field, defs);

  let valueInput = null;
  if (row.field === 'consent') {
    valueInput = (
      <>
        <Select
          aria-label={`Channel ${n}`}
          data={CONSENT_CHANNELS.map((c) => ({ value: c, label: CHANNEL_LABEL[c] }))}
          value={row.channel}
          allowDeselect={false}
          onChange={(v) => v && onChange({ ...row, channel: v })}
          w={130}
        />
        <Select
          aria-label={`Purpose ${n}`}
          data={CONSENT_PURPOSES.map((p) => ({ value: p, label: PURPOSE_LABEL[p] }))}
          value={row.purpose}
          allowDeselect={false}
          onChange={(v) => v && onChange({ ...row, purpose: v })}
          w={130}
        />
      </>
    );
  } else if (needsValue(row.field, row.op)) {
    const choices =
      row.field === 'tag'
        ? (tags.data ?? []).map((t) => ({ value: t.id, label: t.name }))
        : row.field === 'group'
          ? (groups.data ?? []).map((g) => ({ value: g.id, label: g.name }))
          : row.field === 'favorite' || row.field === 'blocked' || def?.type === 'boolean'
            ? [
                { value: 'true', label: 'yes' },
                { value: 'false', label: 'no' },
              ]
            : def && (def.type === 'single_choice' || def.type === 'multi_choice')
              ? def.options.map((o) => ({ value: o, label: o }))
              : null;
    valueInput = choices ? (
      <Select
        aria-label={`Value ${n}`}
        data={choices}
        value={row.value || null}
        onChange={(v) => onChange({ ...row, value: v ?? '' })}
        searchable
        w={200}
      />
    ) : (
      <TextInput
        aria-label={`Value ${n}`}
        type={def?.type === 'date' ? 'date' : def?.type === 'number' ? 'number' : 'text'}
        value={row.value}
        onChange={(e) => onChange({ ...row, value: e.currentTarget.value })}
        w={200}
      />
    );
  }

  return (
    <Paper withBorder p="xs" radius="sm" data-testid={`condition-${n}`}>
      <Group gap="xs" align="flex-start" wrap="wrap">
        <Select
          aria-label={`Field ${n}`}
          data={fields}
          value={row.field}
          allowDeselect={false}
          onChange={(v) => v && onChange(newRow(v, defs))}
          w={170}
        />
        <Select
          aria-label={`Operator ${n}`}
          data={ops}
          value={row.op}
          allowDeselect={false}
          onChange={(v) => v && onChange({ ...row, op: v })}
          w={160}
        />
        {valueInput}
        <ActionIcon variant="subtle" color="red" aria-label={`Remove condition ${n}`} onClick={onRemove} mt={6}>
          <IconTrash size={16} />
        </ActionIcon>
      </Group>
      {error && (
        <Text size="xs" c="red" mt={4} data-testid={`condition-error-${n}`}>
          {error}
        </Text>
      )}
    </Paper>
  );
}
