/** Dialogs of the inbox: interactive buttons builder, template message, custom snooze time. */
import {
  ActionIcon,
  Alert,
  Badge,
  Button,
  Group,
  Loader,
  Modal,
  Select,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Textarea,
} from '@mantine/core';
import { IconPlus, IconTrash } from '@tabler/icons-react';
import { useQuery } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { Link } from 'react-router';

import { errorMessage } from '../../lib/forms';
import { MAX_BUTTONS, MAX_BUTTON_TITLE, buttonsBody, buttonsErrors } from '../../lib/inbox/compose';
import { parseLocalDateTime } from '../../lib/inbox/snooze';
import {
  initialValues,
  matchesTemplateSearch,
  templateLabel,
  templateSendBody,
  templateValueErrors,
  type TemplateValues,
} from '../../lib/inbox/templateSend';
import type { ConversationOut, SendIn } from '../../lib/inbox/types';
import { previewTemplate, useTemplates } from '../../lib/templates/api';
import { CATEGORY_LABEL, describeVariable, previewOfForm, templateToForm } from '../../lib/templates/builder';
import { PhonePreview } from '../templates/PhonePreview';

export function ButtonsModal({
  opened,
  onClose,
  onSend,
}: {
  opened: boolean;
  onClose: () => void;
  onSend: (body: SendIn) => Promise<boolean>;
}) {
  const [text, setText] = useState('');
  const [titles, setTitles] = useState<string[]>(['']);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    const draft = { text, titles };
    const e = buttonsErrors(draft);
    setErrors(e);
    if (Object.keys(e).length > 0) return;
    setBusy(true);
    const ok = await onSend(buttonsBody(draft));
    setBusy(false);
    if (ok) {
      setText('');
      setTitles(['']);
      onClose();
    }
  };
  return (
    <Modal opened={opened} onClose={onClose} title="Message with buttons">
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <Stack>
          <Textarea
            label="Message"
            required
            autosize
            minRows={2}
            value={text}
            error={errors.text}
            onChange={(e) => setText(e.currentTarget.value)}
            data-autofocus
          />
          <Stack gap={6}>
            <Text size="sm" fw={500}>
              Buttons (up to {MAX_BUTTONS}, {MAX_BUTTON_TITLE} characters each)
            </Text>
            {titles.map((t, i) => (
              <Group key={i} gap={4} wrap="nowrap" align="flex-start">
                <TextInput
                  style={{ flex: 1 }}
                  aria-label={`Button ${i + 1}`}
                  placeholder={`Button ${i + 1}`}
                  value={t}
                  maxLength={MAX_BUTTON_TITLE + 10}
                  error={errors[`titles.${i}`]}
                  onChange={(e) => {
                    const v = e.currentTarget.value;
                    setTitles((ts) => ts.map((x, j) => (j === i ? v : x)));
                  }}
                />
                <ActionIcon
                  variant="subtle"
                  color="red"
                  mt={4}
                  aria-label={`Remove button ${i + 1}`}
                  disabled={titles.length === 1}
                  onClick={() => setTitles((ts) => ts.filter((_, j) => j !== i))}
                >
                  <IconTrash size={14} />
                </ActionIcon>
              </Group>
            ))}
            <Button
              variant="subtle"
              size="xs"
              leftSection={<IconPlus size={14} />}
              disabled={titles.length >= MAX_BUTTONS}
              onClick={() => setTitles((ts) => [...ts, ''])}
              w="fit-content"
            >
              Add button
            </Button>
          </Stack>
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy}>
              Send
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/**
 * "Send a template": pick one of the channel's approved templates (searchable by name and
 * language), see it rendered for the conversation's contact, adjust its variables (prefilled from
 * the server's preview; the ones the contact has no value for must be typed) and send it. The
 * content loads only while the dialog is open.
 */
export function TemplateModal({
  opened,
  onClose,
  onSend,
  conversation,
}: {
  opened: boolean;
  onClose: () => void;
  onSend: (body: SendIn) => Promise<boolean>;
  conversation: Pick<ConversationOut, 'channel' | 'contact'>;
}) {
  return (
    <Modal opened={opened} onClose={onClose} title="Send a template" size="xl">
      <TemplatePicker onClose={onClose} onSend={onSend} conversation={conversation} />
    </Modal>
  );
}

function TemplatePicker({
  onClose,
  onSend,
  conversation,
}: {
  onClose: () => void;
  onSend: (body: SendIn) => Promise<boolean>;
  conversation: Pick<ConversationOut, 'channel' | 'contact'>;
}) {
  const channel = conversation.channel;
  const contactId = conversation.contact.id;
  const templates = useTemplates({ channelId: channel.id, status: 'approved', q: '' });
  const list = useMemo(
    () =>
      [...(templates.data ?? [])]
        // The list is cached with the templates page's; a status change may not have refetched yet.
        .filter((t) => t.status === 'approved')
        .sort((a, b) => a.name.localeCompare(b.name) || a.language.localeCompare(b.language)),
    [templates.data],
  );
  const byId = useMemo(() => new Map(list.map((t) => [t.id, t])), [list]);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const t = selectedId ? (byId.get(selectedId) ?? null) : null;
  const preview = useQuery({
    queryKey: ['templates', 'preview', t?.id ?? '', contactId, 'inbox'],
    queryFn: () => previewTemplate(t!.id, { contact_id: contactId }),
    enabled: !!t,
    staleTime: 60_000,
  });
  // Edits of the picked template; until the first one, the values follow the preview.
  const [edited, setEdited] = useState<{ id: string; values: TemplateValues } | null>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);

  const values: TemplateValues = !t
    ? {}
    : edited?.id === t.id
      ? edited.values
      : initialValues(t, preview.isSuccess ? preview.data : null);
  const missing = t ? (preview.data?.missing ?? (preview.isError ? t.variables : [])) : [];
  const model = useMemo(
    () => (t ? previewOfForm(templateToForm(t), (k) => values[k]?.trim() || undefined) : null),
    [t, values],
  );

  const pick = (id: string | null) => {
    setSelectedId(id);
    setEdited(null);
    setErrors({});
  };
  const edit = (key: string, value: string) => {
    if (!t) return;
    setEdited({ id: t.id, values: { ...values, [key]: value } });
    setErrors(({ [key]: _, ...rest }) => rest);
  };
  const submit = async () => {
    if (!t) {
      setErrors({ template: 'Pick a template' });
      return;
    }
    const e = templateValueErrors(t, values);
    setErrors(e);
    if (Object.keys(e).length > 0) return;
    setBusy(true);
    const ok = await onSend(templateSendBody(t, values));
    setBusy(false);
    if (ok) onClose();
  };

  if (templates.isPending) {
    return (
      <Group justify="center" p="lg">
        <Loader size="sm" />
      </Group>
    );
  }
  if (templates.isError) {
    return (
      <Alert color="red" variant="light" title="Templates could not be loaded">
        {errorMessage(templates.error)}
      </Alert>
    );
  }
  if (list.length === 0) {
    return (
      <Stack data-testid="templates-empty" align="flex-start">
        <Text size="sm">
          {channel.name} has no approved templates yet. Templates are messages prepared in advance
          {channel.kind === 'whatsapp'
            ? ': WhatsApp reviews each one, and only approved ones can be sent — also when the 24-hour window is closed.'
            : ' with variables filled in for each contact.'}
        </Text>
        <Group justify="space-between" w="100%">
          <Button component={Link} to="/templates/new" leftSection={<IconPlus size={14} />} onClick={onClose}>
            Create a template
          </Button>
          <Button variant="default" onClick={onClose}>
            Close
          </Button>
        </Group>
      </Stack>
    );
  }

  return (
    <form
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <Stack>
        <Select
          label="Template"
          placeholder="Search by name or language…"
          searchable
          data-autofocus
          data={list.map((x) => ({ value: x.id, label: templateLabel(x) }))}
          value={selectedId}
          onChange={pick}
          error={errors.template}
          nothingFoundMessage="No template matches"
          maxDropdownHeight={280}
          filter={({ options, search }) =>
            options.filter((o) => {
              const x = 'value' in o ? byId.get(o.value) : undefined;
              return !!x && matchesTemplateSearch(x, search);
            })
          }
          renderOption={({ option }) => {
            const x = byId.get(option.value);
            return (
              <Group gap="xs" wrap="nowrap" justify="space-between" w="100%">
                <Text size="sm" truncate>
                  {x?.name}{' '}
                  <Text span size="xs" c="dimmed">
                    {x?.language}
                  </Text>
                </Text>
                {x && (
                  <Badge size="xs" variant="outline" color="gray">
                    {CATEGORY_LABEL[x.category]}
                  </Badge>
                )}
              </Group>
            );
          }}
          description={
            t
              ? t.kind === 'local'
                ? 'Sent as a text message with the variables filled in.'
                : 'An approved WhatsApp template: it can be sent even when the 24-hour window is closed.'
              : undefined
          }
          rightSection={
            t ? (
              <Badge size="xs" variant="outline" color="gray" data-testid="template-category">
                {CATEGORY_LABEL[t.category]}
              </Badge>
            ) : undefined
          }
          rightSectionWidth={t ? 110 : undefined}
          rightSectionPointerEvents="none"
        />
        {t && model && (
          <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="lg" data-testid="template-send" data-template={t.name}>
            <Stack gap="xs">
              {preview.isPending && (
                <Group gap="xs">
                  <Loader size="xs" />
                  <Text size="sm" c="dimmed">
                    Filling in {conversation.contact.name}’s details…
                  </Text>
                </Group>
              )}
              {preview.isError && (
                <Alert color="orange" variant="light" title="The values could not be filled in">
                  {errorMessage(preview.error)} Type them below.
                </Alert>
              )}
              {!preview.isPending && t.variables.length === 0 && (
                <Text size="sm" c="dimmed">
                  This template has no variables.
                </Text>
              )}
              {!preview.isPending &&
                t.variables.map((key) => {
                  const isMissing = missing.includes(key);
                  return (
                    <TextInput
                      key={key}
                      label={describeVariable(key, t.components.buttons)}
                      required
                      value={values[key] ?? ''}
                      maxLength={1024}
                      data-variable={key}
                      data-missing={isMissing || undefined}
                      description={
                        isMissing ? `${conversation.contact.name} has no value for this: type one` : undefined
                      }
                      error={errors[key]}
                      onChange={(e) => edit(key, e.currentTarget.value)}
                    />
                  );
                })}
            </Stack>
            <PhonePreview
              model={model}
              title={`As ${conversation.contact.name} sees it`}
              channelName={channel.name}
              testId="template-send-preview"
            />
          </SimpleGrid>
        )}
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Cancel
          </Button>
          <Button type="submit" loading={busy} disabled={!t || preview.isPending}>
            Send template
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

export function SnoozeModal({
  opened,
  onClose,
  onSnooze,
}: {
  opened: boolean;
  onClose: () => void;
  onSnooze: (until: Date) => void;
}) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <Modal opened={opened} onClose={onClose} title="Snooze until">
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          const d = parseLocalDateTime(value);
          if (!d) {
            setError('Pick a date and time in the future');
            return;
          }
          onSnooze(d);
          onClose();
        }}
      >
        <Stack>
          <TextInput
            type="datetime-local"
            label="Date and time"
            value={value}
            error={error}
            onChange={(e) => setValue(e.currentTarget.value)}
            data-autofocus
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit">Snooze</Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
