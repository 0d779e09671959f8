/**
 * Where each variable's value comes from: a fixed text, a contact field or a custom attribute
 * (from Settings → Contact fields), with a fallback for contacts that have no value.
 */
import { Group, Paper, Select, SimpleGrid, Stack, Text, TextInput } from '@mantine/core';

import { useContactAttributes } from '../../api/queries';
import { describeVariable } from '../../lib/templates/builder';
import { sourceOptions } from '../../lib/templates/mapping';
import type { ButtonType, Mapping, VariableSource } from '../../lib/templates/types';

export function MappingEditor({
  variables,
  value,
  onChange,
  errors = {},
  buttons,
  examples,
  disabled,
}: {
  variables: readonly string[];
  value: Mapping;
  onChange: (m: Mapping) => void;
  errors?: Record<string, string>;
  buttons?: readonly { type: ButtonType }[];
  /** The template's example per key, shown as a hint. */
  examples?: (key: string) => string;
  disabled?: boolean;
}) {
  const attrs = useContactAttributes();
  const options = sourceOptions(attrs.data ?? []);
  if (variables.length === 0) {
    return (
      <Text size="sm" c="dimmed" data-testid="mapping-empty">
        This template has no variables.
      </Text>
    );
  }
  const set = (key: string, patch: Partial<Mapping[string]>) => {
    const cur = value[key] ?? { source: 'fixed' as VariableSource, value: '' };
    onChange({ ...value, [key]: { ...cur, ...patch } });
  };
  return (
    <Stack gap="xs" data-testid="mapping-editor">
      {variables.map((key) => {
        const label = describeVariable(key, buttons);
        const entry = value[key] ?? { source: 'fixed' as VariableSource, value: '' };
        const example = examples?.(key);
        const data = options.some((o) => o.value === entry.source)
          ? options
          : [...options, { value: entry.source, label: entry.source }];
        return (
          <Paper key={key} withBorder radius="sm" p="xs" data-testid="mapping-row" data-key={key}>
            <Group justify="space-between" mb={4} gap="xs">
              <Text size="sm" fw={600} ff="monospace">
                {label}
              </Text>
              {example && (
                <Text size="xs" c="dimmed" truncate maw={220}>
                  Example: {example}
                </Text>
              )}
            </Group>
            <SimpleGrid cols={{ base: 1, xs: 2 }} spacing="xs">
              <Select
                aria-label={`Source for ${label}`}
                data={data}
                value={entry.source}
                allowDeselect={false}
                searchable
                disabled={disabled}
                onChange={(v) => v && set(key, { source: v as VariableSource })}
              />
              {entry.source === 'fixed' ? (
                <TextInput
                  aria-label={`Value for ${label}`}
                  placeholder="Text to use"
                  value={entry.value ?? ''}
                  disabled={disabled}
                  onChange={(e) => set(key, { value: e.currentTarget.value })}
                  error={errors[key]}
                />
              ) : (
                <TextInput
                  aria-label={`Fallback for ${label}`}
                  placeholder="Fallback when the contact has none"
                  value={entry.fallback ?? ''}
                  disabled={disabled}
                  onChange={(e) => set(key, { fallback: e.currentTarget.value })}
                  error={errors[key]}
                />
              )}
            </SimpleGrid>
          </Paper>
        );
      })}
    </Stack>
  );
}
