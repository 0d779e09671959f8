/** Dialogs of the inbox: interactive buttons builder, template message, custom snooze time. */
import { ActionIcon, Button, Group, Modal, Stack, Text, TextInput, Textarea } from '@mantine/core';
import { IconPlus, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';

import { MAX_BUTTONS, MAX_BUTTON_TITLE, buttonsBody, buttonsErrors, templateBody } from '../../lib/inbox/compose';
import { parseLocalDateTime } from '../../lib/inbox/snooze';
import type { SendIn } from '../../lib/inbox/types';

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

export function TemplateModal({
  opened,
  onClose,
  onSend,
}: {
  opened: boolean;
  onClose: () => void;
  onSend: (body: SendIn) => Promise<boolean>;
}) {
  const [name, setName] = useState('');
  const [language, setLanguage] = useState('en_US');
  const [params, setParams] = useState<string[]>([]);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    const e: Record<string, string> = {};
    if (!/^[a-z0-9_]{1,512}$/.test(name.trim())) e.name = 'The template name as approved: lower-case, digits and _';
    if (!/^[a-z]{2,3}(_[A-Z]{2})?$/.test(language.trim())) e.language = 'A language code like en or en_US';
    setErrors(e);
    if (Object.keys(e).length > 0) return;
    setBusy(true);
    const ok = await onSend(templateBody(name, language, params));
    setBusy(false);
    if (ok) {
      setName('');
      setParams([]);
      onClose();
    }
  };
  return (
    <Modal opened={opened} onClose={onClose} title="Send a template">
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <Stack>
          <Text size="sm" c="dimmed">
            Templates are approved by WhatsApp and can be sent outside the 24-hour window.
          </Text>
          <TextInput
            label="Template name"
            required
            placeholder="order_update"
            value={name}
            error={errors.name}
            onChange={(e) => setName(e.currentTarget.value)}
            data-autofocus
          />
          <TextInput
            label="Language"
            required
            value={language}
            error={errors.language}
            onChange={(e) => setLanguage(e.currentTarget.value)}
          />
          <Stack gap={6}>
            <Text size="sm" fw={500}>
              Body parameters
            </Text>
            {params.length === 0 && (
              <Text size="xs" c="dimmed">
                None. Add one per {'{{1}}'}, {'{{2}}'}… of the template body.
              </Text>
            )}
            {params.map((p, i) => (
              <Group key={i} gap={4} wrap="nowrap">
                <TextInput
                  style={{ flex: 1 }}
                  aria-label={`Parameter ${i + 1}`}
                  placeholder={`{{${i + 1}}}`}
                  value={p}
                  onChange={(e) => {
                    const v = e.currentTarget.value;
                    setParams((ps) => ps.map((x, j) => (j === i ? v : x)));
                  }}
                />
                <ActionIcon
                  variant="subtle"
                  color="red"
                  aria-label={`Remove parameter ${i + 1}`}
                  onClick={() => setParams((ps) => ps.filter((_, j) => j !== i))}
                >
                  <IconTrash size={14} />
                </ActionIcon>
              </Group>
            ))}
            <Button
              variant="subtle"
              size="xs"
              leftSection={<IconPlus size={14} />}
              onClick={() => setParams((ps) => [...ps, ''])}
              w="fit-content"
            >
              Add parameter
            </Button>
          </Stack>
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={busy}>
              Send template
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
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
