/**
 * "Preview for contact": pick a contact (searched like the contact list) and see the template
 * rendered for them by the server with the given mapping, plus the variables they have no value
 * and no fallback for (they would be skipped as "missing variables").
 */
import { Alert, Loader, Select, Stack, Text } from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';

import { client, unwrap } from '../../api/client';
import { qk } from '../../api/queries';
import { errorMessage } from '../../lib/forms';
import { previewTemplate } from '../../lib/templates/api';
import { describeVariable, previewFromServer } from '../../lib/templates/builder';
import { cleanMapping } from '../../lib/templates/mapping';
import type { Mapping, TemplateButton } from '../../lib/templates/types';
import { PhonePreview } from './PhonePreview';

export function ContactPreview({
  templateId,
  mapping,
  variables,
  buttons,
  channelName,
}: {
  templateId: string;
  mapping: Mapping;
  variables: readonly string[];
  buttons?: readonly TemplateButton[];
  channelName?: string;
}) {
  const [search, setSearch] = useState('');
  const [debounced] = useDebouncedValue(search, 250);
  const [contactId, setContactId] = useState<string | null>(null);
  const [debouncedMapping] = useDebouncedValue(mapping, 400);
  const sent = cleanMapping(debouncedMapping, variables);

  const candidates = useQuery({
    queryKey: [...qk.contacts, 'preview-candidates', debounced],
    queryFn: async () =>
      (
        await unwrap(
          client.GET('/api/v1/contacts', {
            params: { query: { ...(debounced.trim() ? { q: debounced.trim() } : {}), sort: 'name', limit: 20 } },
          }),
        )
      ).items,
    placeholderData: (prev) => prev,
  });

  const preview = useQuery({
    queryKey: ['templates', 'preview', templateId, contactId, sent],
    queryFn: () => previewTemplate(templateId, { contact_id: contactId!, mapping: sent }),
    enabled: !!contactId,
    placeholderData: (prev) => prev,
    staleTime: 0,
  });

  return (
    <Stack gap="xs" data-testid="contact-preview">
      <Select
        label="Preview for contact"
        placeholder="Search by name, phone, e-mail…"
        searchable
        clearable
        searchValue={search}
        onSearchChange={setSearch}
        filter={({ options }) => options}
        data={(candidates.data ?? []).map((c) => ({ value: c.id, label: c.name }))}
        value={contactId}
        onChange={setContactId}
        nothingFoundMessage={candidates.isFetching ? 'Searching…' : 'No contacts'}
        rightSection={preview.isFetching ? <Loader size="xs" /> : undefined}
      />
      {preview.isError && (
        <Alert color="red" variant="light">
          {errorMessage(preview.error)}
        </Alert>
      )}
      {preview.data && contactId && (
        <>
          {preview.data.missing.length > 0 ? (
            <Alert color="orange" variant="light" title="Missing variables" data-testid="preview-missing">
              This contact has no value and there is no fallback for{' '}
              {preview.data.missing.map((k) => describeVariable(k, buttons)).join(', ')}: they would be skipped.
            </Alert>
          ) : (
            <Text size="xs" c="teal" data-testid="preview-complete">
              Every variable has a value for this contact.
            </Text>
          )}
          <PhonePreview
            model={previewFromServer(preview.data)}
            title="As this contact sees it"
            channelName={channelName}
            testId="contact-preview-phone"
          />
        </>
      )}
    </Stack>
  );
}
