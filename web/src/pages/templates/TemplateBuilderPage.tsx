/**
 * The template builder (`/templates/new`, `/templates/:id`; `/templates/new?from=<id>` starts a
 * copy, e.g. for another language). The form on the left, a live phone-style preview on the
 * right. Every change is checked by the server (POST /templates/validate, debounced) and its
 * field errors land next to the inputs the user has touched (all of them after a save attempt).
 *
 * WhatsApp templates are saved as drafts and submitted to Meta; their content is locked while in
 * review and once approved (the variable mapping stays editable). Telegram and Sandbox templates
 * ("local") are ready at once. The status follows `template.updated` events (and a poll while
 * in review).
 */
import {
  ActionIcon,
  Alert,
  Anchor,
  Autocomplete,
  Badge,
  Box,
  Button,
  Grid,
  Group,
  Loader,
  Menu,
  Paper,
  SegmentedControl,
  Select,
  SimpleGrid,
  Stack,
  Text,
  TextInput,
  Textarea,
  Title,
} from '@mantine/core';
import { useForm } from '@mantine/form';
import { useDebouncedValue } from '@mantine/hooks';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import {
  IconArrowLeft,
  IconBraces,
  IconCheck,
  IconCopy,
  IconPlus,
  IconSend,
  IconTrash,
  IconAlertTriangle,
} from '@tabler/icons-react';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useRef, useState } from 'react';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router';

import { atLeast } from '../../api/types';
import { isApiError, networkError } from '../../api/problem';
import { useCurrent } from '../../auth/useCurrent';
import { FormError } from '../../components/FormError';
import { PageHeader } from '../../components/PageHeader';
import { LoadingState, QueryState } from '../../components/QueryState';
import { errorMessage } from '../../lib/forms';
import { formatRelative } from '../../lib/format';
import { useInboxChannels } from '../../lib/inbox/api';
import type { ChannelOut } from '../../lib/inbox/types';
import {
  createTemplate,
  deleteTemplate,
  submitTemplate,
  templateKeys,
  updateTemplate,
  useTemplate,
  validateTemplate,
} from '../../lib/templates/api';
import {
  BUTTON_LABEL,
  CATEGORY_LABEL,
  HEADER_LABEL,
  LIMITS,
  MAX_BUTTONS,
  contentEditable,
  emptyButton,
  emptyTemplateForm,
  exampleFor,
  insertVariable,
  placeholders,
  previewOfForm,
  resizeExamples,
  splitErrors,
  templateBody,
  templatePatch,
  templateToForm,
  variablesOf,
  type TemplateFormValues,
} from '../../lib/templates/builder';
import { cleanMapping, completeMapping } from '../../lib/templates/mapping';
import type { ButtonType, Mapping, TemplateCategory, TemplateOut } from '../../lib/templates/types';
import { ContactPreview } from './ContactPreview';
import { MappingEditor } from './MappingEditor';
import { PhonePreview } from './PhonePreview';
import { TemplateStatusBadge } from './TemplateBadges';

const LANGUAGES = [
  'en_US',
  'en_GB',
  'en',
  'de',
  'fr',
  'es',
  'es_MX',
  'es_ES',
  'pt_BR',
  'pt_PT',
  'it',
  'nl',
  'pl',
  'tr',
  'ru',
  'uk',
  'ar',
  'he',
  'hi',
  'id',
  'ms',
  'th',
  'vi',
  'zh_CN',
  'zh_TW',
  'ja',
  'ko',
  'sv',
  'da',
  'nb',
  'fi',
  'cs',
  'ro',
  'el',
  'hu',
];

export function TemplateBuilderPage() {
  const { id } = useParams();
  const [params] = useSearchParams();
  const template = useTemplate(id ?? null);
  const from = useTemplate(id ? null : params.get('from'));
  const back = (
    <Anchor component={Link} to="/templates" size="sm">
      <Group gap={4} mb="sm">
        <IconArrowLeft size={14} /> Templates
      </Group>
    </Anchor>
  );
  if (id) {
    return (
      <>
        {back}
        <QueryState query={template}>{(t) => <Builder key={t.id} template={t} />}</QueryState>
      </>
    );
  }
  if (params.get('from') && from.isPending) return <LoadingState />;
  const copy = from.data ? { ...templateToForm(from.data), language: '' } : null;
  return (
    <>
      {back}
      <Builder
        template={null}
        initial={copy ?? emptyTemplateForm(params.get('channel') ?? '')}
        initialMapping={from.data?.mapping}
      />
    </>
  );
}

function Section({ title, children, aside }: { title: string; children: React.ReactNode; aside?: React.ReactNode }) {
  return (
    <Paper withBorder radius="md" p="md" component="section">
      <Group justify="space-between" mb="sm">
        <Title order={4}>{title}</Title>
        {aside}
      </Group>
      {children}
    </Paper>
  );
}

function Builder({
  template,
  initial,
  initialMapping,
}: {
  template: TemplateOut | null;
  initial?: TemplateFormValues;
  initialMapping?: Mapping | undefined;
}) {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const qc = useQueryClient();
  const navigate = useNavigate();
  const channels = useInboxChannels();
  const bodyRef = useRef<HTMLTextAreaElement>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [attempted, setAttempted] = useState(false);
  const [mapping, setMapping] = useState<Mapping>(() => ({ ...(template?.mapping ?? initialMapping ?? {}) }));
  const [mappingErrs, setMappingErrs] = useState<Record<string, string>>({});
  const [mappingDirty, setMappingDirty] = useState(false);
  const form = useForm<TemplateFormValues>({
    mode: 'controlled',
    initialValues: template ? templateToForm(template) : (initial ?? emptyTemplateForm()),
  });
  const v = form.getValues();
  const channel: ChannelOut | undefined = (channels.data ?? []).find((c) => c.id === v.channel_id);
  const kind = template?.kind ?? (channel ? (channel.kind === 'whatsapp' ? 'whatsapp' : 'local') : 'whatsapp');
  const editable = isAdmin && contentEditable(template);
  const localVariables = variablesOf(v);

  // ---- live validation ----------------------------------------------------------------------
  const [debounced] = useDebouncedValue(v, 500);
  const validation = useQuery({
    queryKey: ['templates', 'validate', templateBody(debounced)],
    queryFn: () => validateTemplate(templateBody(debounced)),
    enabled: editable && !!debounced.channel_id,
    placeholderData: keepPreviousData,
    staleTime: 60_000,
    retry: false,
  });
  const serverVars = validation.data && !validation.isPlaceholderData ? validation.data.variables : null;
  const variables = serverVars && sameSet(serverVars, localVariables) ? serverVars : localVariables;
  const live = splitErrors(validation.data?.errors ?? [], v, variables);
  const fullMapping = completeMapping(variables, mapping);
  /** A field's error: from the last save, else the live check once the field was touched. */
  const err = (path: string) =>
    (form.errors[path] as string | undefined) ??
    (attempted || form.isTouched(path) || form.isDirty(path) ? live.fields[path] : undefined);
  const liveOther = attempted || form.isDirty() ? live.other : [];

  // ---- writes -------------------------------------------------------------------------------
  const stored = (t: TemplateOut) => {
    qc.setQueryData(templateKeys.one(t.id), t);
    void qc.invalidateQueries({ queryKey: templateKeys.lists });
  };
  const showError = (e: unknown) => {
    const problem = isApiError(e) ? e : networkError(e);
    const split = splitErrors(problem.errors, form.getValues(), variables);
    form.setErrors(split.fields);
    setMappingErrs(split.mapping);
    const rest = split.other.length ? ` (${split.other.join('; ')})` : '';
    const placed = Object.keys(split.fields).length + Object.keys(split.mapping).length > 0;
    setFormError(placed && !rest ? null : `${problem.userMessage}${rest}`);
  };

  const saveNow = async (): Promise<TemplateOut> => {
    const values = form.getValues();
    const m = cleanMapping(fullMapping, variablesOf(values));
    if (!template) return createTemplate(templateBody(values, m));
    return updateTemplate(template.id, templatePatch(values, m, contentEditable(template)));
  };

  const save = useMutation({
    mutationFn: saveNow,
    onMutate: () => {
      setAttempted(true);
      setFormError(null);
      form.clearErrors();
      setMappingErrs({});
    },
    onSuccess: (t) => {
      stored(t);
      form.resetDirty();
      setMappingDirty(false);
      notifications.show({
        color: 'teal',
        message:
          t.kind === 'local' ? `${t.name} saved` : `${t.name} saved as ${t.status === 'draft' ? 'a draft' : t.status}`,
      });
      if (!template) navigate(`/templates/${t.id}`, { replace: true });
    },
    onError: showError,
  });

  const submit = useMutation({
    mutationFn: async () => {
      let t = template;
      if (!t || form.isDirty() || mappingDirty) {
        t = await saveNow();
        stored(t);
        form.resetDirty();
        setMappingDirty(false);
      }
      return submitTemplate(t.id);
    },
    onMutate: () => {
      setAttempted(true);
      setFormError(null);
      form.clearErrors();
    },
    onSuccess: (t) => {
      stored(t);
      notifications.show({ color: 'teal', title: 'Submitted for review', message: `WhatsApp is reviewing ${t.name}` });
      if (!template) navigate(`/templates/${t.id}`, { replace: true });
    },
    onError: showError,
  });

  const remove = useMutation({
    mutationFn: () => deleteTemplate(template!.id),
    onSuccess: () => {
      qc.removeQueries({ queryKey: templateKeys.one(template!.id) });
      void qc.invalidateQueries({ queryKey: templateKeys.lists });
      notifications.show({ color: 'teal', message: `${template!.name} (${template!.language}) deleted` });
      navigate('/templates', { replace: true });
    },
    onError: (e) => notifications.show({ color: 'red', title: 'Could not delete', message: errorMessage(e) }),
  });

  const confirmDelete = () =>
    modals.openConfirmModal({
      title: `Delete ${template!.name} (${template!.language})?`,
      children: (
        <Text size="sm">
          {template!.kind === 'whatsapp' && template!.status !== 'draft'
            ? 'It is also deleted from your WhatsApp account. Campaigns already sent keep their reports.'
            : 'Campaigns already sent keep their reports.'}
        </Text>
      ),
      labels: { confirm: 'Delete template', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () => remove.mutate(),
    });

  // ---- form helpers -------------------------------------------------------------------------
  const addVariable = () => {
    const el = bodyRef.current;
    const cur = form.getValues().body_text;
    const { text, cursor } = insertVariable(cur, el?.selectionStart ?? cur.length, el?.selectionEnd ?? cur.length);
    form.setFieldValue('body_text', text);
    requestAnimationFrame(() => {
      el?.focus();
      el?.setSelectionRange(cursor, cursor);
    });
  };
  const bodyVars = placeholders(v.body_text);
  const setExample = (i: number, value: string) => {
    const next = resizeExamples(form.getValues().body_examples, Math.max(bodyVars.length, i + 1));
    next[i] = value;
    form.setFieldValue('body_examples', next);
  };
  const addButton = (type: ButtonType) => form.insertListItem('buttons', emptyButton(type));
  const count = (t: ButtonType) => v.buttons.filter((b) => b.type === t).length;
  const buttonAllowed = (t: ButtonType) =>
    v.buttons.length < MAX_BUTTONS &&
    (t === 'quick_reply' || kind === 'whatsapp') &&
    !(t === 'copy_code' && count('copy_code') >= 1) &&
    !(t === 'phone' && count('phone') >= 1) &&
    !(t === 'url' && count('url') >= 2);
  const headerFormats =
    kind === 'whatsapp' ? (['none', 'text', 'image', 'video', 'document'] as const) : (['none', 'text'] as const);

  const busy = save.isPending || submit.isPending || remove.isPending;
  const canSubmit =
    isAdmin && kind === 'whatsapp' && (!template || template.status === 'draft' || template.status === 'rejected');
  const title = template ? template.name : 'New template';

  return (
    <>
      <PageHeader
        title={title}
        description={
          template ? (
            <Group gap={8} component="span">
              <TemplateStatusBadge t={template} />
              <span>
                {template.language} · {template.channel.name} · {CATEGORY_LABEL[template.category]}
              </span>
              {template.submitted_at && <span>· submitted {formatRelative(template.submitted_at)}</span>}
            </Group>
          ) : (
            'Write the message once, with variables filled in per contact.'
          )
        }
        actions={
          isAdmin && (
            <Group gap="xs">
              {template && (
                <Button
                  variant="subtle"
                  leftSection={<IconCopy size={16} />}
                  component={Link}
                  to={`/templates/new?from=${template.id}`}
                >
                  Add language
                </Button>
              )}
              {template && (
                <Button
                  variant="light"
                  color="red"
                  leftSection={<IconTrash size={16} />}
                  onClick={confirmDelete}
                  disabled={busy}
                >
                  Delete
                </Button>
              )}
              <Button
                variant={canSubmit ? 'default' : 'filled'}
                leftSection={<IconCheck size={16} />}
                onClick={() => save.mutate()}
                loading={save.isPending}
                disabled={busy && !save.isPending}
              >
                {kind === 'local' ? 'Save' : template && !editable ? 'Save mapping' : 'Save draft'}
              </Button>
              {canSubmit && (
                <Button
                  leftSection={<IconSend size={16} />}
                  onClick={() => submit.mutate()}
                  loading={submit.isPending}
                  disabled={busy && !submit.isPending}
                >
                  Submit for review
                </Button>
              )}
            </Group>
          )
        }
      />
      <Stack gap="sm" mb="md">
        {template?.status === 'rejected' && (
          <Alert
            color="red"
            icon={<IconAlertTriangle size={18} />}
            title="Rejected by WhatsApp"
            data-testid="rejected-reason"
          >
            {template.rejected_reason || 'No reason given.'} Change it and submit again.
          </Alert>
        )}
        {template?.status === 'pending' && (
          <Alert color="yellow" icon={<Loader size={16} />} title="In review" data-testid="in-review">
            WhatsApp is reviewing this template — usually a few minutes, at most 24 hours. This page updates by itself.
          </Alert>
        )}
        {template && !contentEditable(template) && template.status !== 'pending' && (
          <Alert color="gray" variant="light">
            {template.status === 'approved' ? 'Approved' : 'This'} template's content can't change any more; the default
            variable values can. To change the text, add a new template (or language).
          </Alert>
        )}
        <FormError message={formError} />
      </Stack>
      <Grid gutter="lg">
        <Grid.Col span={{ base: 12, md: 7 }}>
          <Stack>
            <Section title="Basics">
              <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="sm">
                <Select
                  label="Channel"
                  required
                  placeholder="Pick a channel"
                  data={(channels.data ?? []).map((c) => ({ value: c.id, label: c.name }))}
                  value={v.channel_id || null}
                  onChange={(id) => form.setFieldValue('channel_id', id ?? '')}
                  error={err('channel_id')}
                  disabled={!!template || !isAdmin}
                  allowDeselect={false}
                  description={
                    channel
                      ? kind === 'whatsapp'
                        ? 'WhatsApp: reviewed by Meta'
                        : 'Ready at once, no review'
                      : undefined
                  }
                />
                <TextInput
                  label="Name"
                  required
                  description="Lowercase letters, digits and underscores"
                  {...form.getInputProps('name')}
                  onChange={(e) =>
                    form.setFieldValue('name', e.currentTarget.value.toLowerCase().replace(/[\s-]+/g, '_'))
                  }
                  error={err('name')}
                  disabled={!editable || !!template}
                  maxLength={LIMITS.name}
                />
                <Autocomplete
                  label="Language"
                  required
                  description="A WhatsApp language code, like en_US or de"
                  data={LANGUAGES}
                  {...form.getInputProps('language')}
                  error={err('language')}
                  disabled={!editable || !!template}
                />
                <Select
                  label="Category"
                  required
                  data={(Object.keys(CATEGORY_LABEL) as TemplateCategory[]).map((c) => ({
                    value: c,
                    label: CATEGORY_LABEL[c],
                  }))}
                  allowDeselect={false}
                  {...form.getInputProps('category')}
                  error={err('category')}
                  disabled={!editable}
                  description={
                    v.category === 'MARKETING' ? 'Only sent to contacts who opted in to marketing' : undefined
                  }
                />
              </SimpleGrid>
              {channel?.kind === 'whatsapp' && !channel.config.waba_id && (
                <Alert color="orange" variant="light" mt="sm" title="No WhatsApp Business Account ID">
                  Templates live in the business account.{' '}
                  <Anchor component={Link} to={`/settings/channels/${channel.id}`}>
                    Add its ID to the channel
                  </Anchor>{' '}
                  before submitting.
                </Alert>
              )}
            </Section>

            <Section title="Header">
              <Stack gap="sm">
                <SegmentedControl
                  aria-label="Header type"
                  data={headerFormats.map((f) => ({ value: f, label: HEADER_LABEL[f] }))}
                  value={v.header_format}
                  onChange={(f) => form.setFieldValue('header_format', f as TemplateFormValues['header_format'])}
                  disabled={!editable}
                  fullWidth
                />
                {v.header_format === 'text' && (
                  <>
                    <TextInput
                      label="Header text"
                      description={`Up to ${LIMITS.header} characters; may contain one variable {{1}}`}
                      {...form.getInputProps('header_text')}
                      error={err('header_text')}
                      disabled={!editable}
                    />
                    {placeholders(v.header_text).length > 0 && (
                      <TextInput
                        label="Header example"
                        description="A sample value for {{1}}, shown to the reviewer"
                        {...form.getInputProps('header_example')}
                        error={err('header_example')}
                        disabled={!editable}
                      />
                    )}
                  </>
                )}
                {v.header_format !== 'none' && v.header_format !== 'text' && (
                  <TextInput
                    label="Sample media URL"
                    description={`A public link to a sample ${v.header_format}; each send can use its own.`}
                    placeholder="https://…"
                    {...form.getInputProps('header_example')}
                    error={err('header_example') ?? err('header_text')}
                    disabled={!editable}
                  />
                )}
              </Stack>
            </Section>

            <Section
              title="Body"
              aside={
                editable && (
                  <Button size="xs" variant="light" leftSection={<IconBraces size={14} />} onClick={addVariable}>
                    Add variable
                  </Button>
                )
              }
            >
              <Stack gap="sm">
                <Textarea
                  ref={bodyRef}
                  label="Body"
                  required
                  autosize
                  minRows={4}
                  maxRows={14}
                  description={`${v.body_text.length} / ${LIMITS.body} · *bold* _italic_ ~strike~ · variables {{1}}, {{2}}…`}
                  {...form.getInputProps('body_text')}
                  error={err('body_text')}
                  disabled={!editable}
                />
                {bodyVars.length > 0 && (
                  <Stack gap={6} data-testid="body-examples">
                    <Text size="sm" fw={500}>
                      Examples
                    </Text>
                    <Text size="xs" c="dimmed">
                      Sample values shown in the preview and to the WhatsApp reviewer (not sent to contacts).
                    </Text>
                    {err('body_examples') && (
                      <Text size="xs" c="red">
                        {err('body_examples')}
                      </Text>
                    )}
                    <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="xs">
                      {bodyVars.map((p, i) => (
                        <TextInput
                          key={p}
                          label={`Example for {{${p}}}`}
                          value={v.body_examples[i] ?? ''}
                          onChange={(e) => setExample(i, e.currentTarget.value)}
                          onBlur={() => form.setTouched({ [`body_examples.${i}`]: true })}
                          error={err(`body_examples.${i}`)}
                          disabled={!editable}
                        />
                      ))}
                    </SimpleGrid>
                  </Stack>
                )}
              </Stack>
            </Section>

            <Section title="Footer">
              <TextInput
                label="Footer"
                description={`Optional, up to ${LIMITS.footer} characters, no variables`}
                {...form.getInputProps('footer')}
                error={err('footer')}
                disabled={!editable}
              />
            </Section>

            <Section
              title="Buttons"
              aside={
                editable && (
                  <Menu position="bottom-end" withinPortal>
                    <Menu.Target>
                      <Button
                        size="xs"
                        variant="light"
                        leftSection={<IconPlus size={14} />}
                        disabled={v.buttons.length >= MAX_BUTTONS}
                      >
                        Add button
                      </Button>
                    </Menu.Target>
                    <Menu.Dropdown>
                      {(Object.keys(BUTTON_LABEL) as ButtonType[]).map((t) => (
                        <Menu.Item key={t} onClick={() => addButton(t)} disabled={!buttonAllowed(t)}>
                          {BUTTON_LABEL[t]}
                        </Menu.Item>
                      ))}
                    </Menu.Dropdown>
                  </Menu>
                )
              }
            >
              {typeof err('buttons') === 'string' && (
                <Text size="xs" c="red" mb="xs">
                  {err('buttons')}
                </Text>
              )}
              {v.buttons.length === 0 ? (
                <Text size="sm" c="dimmed">
                  No buttons. Quick replies let customers answer with one tap; others open a link, call or copy a code.
                </Text>
              ) : (
                <Stack gap="xs">
                  {v.buttons.map((b, i) => (
                    <ButtonRow key={i} i={i} b={b} form={form} err={err} disabled={!editable} />
                  ))}
                </Stack>
              )}
            </Section>

            <Section title="Variables">
              <Text size="sm" c="dimmed" mb="sm">
                Default values for each variable when sending to a contact; a campaign can change them.
              </Text>
              <MappingEditor
                variables={variables}
                value={fullMapping}
                onChange={(m) => {
                  setMapping(m);
                  setMappingDirty(true);
                }}
                errors={{ ...live.mapping, ...mappingErrs }}
                buttons={v.buttons}
                examples={(k) => exampleFor(v, k)}
                disabled={!isAdmin}
              />
            </Section>
          </Stack>
        </Grid.Col>

        <Grid.Col span={{ base: 12, md: 5 }}>
          <Box pos={{ base: 'static', md: 'sticky' }} top={72}>
            <Stack>
              <PhonePreview model={previewOfForm(v)} channelName={channel?.name} />
              {editable && (
                <ValidationSummary validating={validation.isFetching} ok={validation.data?.ok} other={liveOther} />
              )}
              {template && (
                <Paper withBorder radius="md" p="md">
                  <ContactPreview
                    templateId={template.id}
                    mapping={fullMapping}
                    variables={variables}
                    buttons={template.components.buttons}
                    channelName={template.channel.name}
                  />
                </Paper>
              )}
            </Stack>
          </Box>
        </Grid.Col>
      </Grid>
    </>
  );
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function ValidationSummary({
  validating,
  ok,
  other,
}: {
  validating: boolean;
  ok: boolean | undefined;
  other: string[];
}) {
  if (ok === undefined && !validating) return null;
  return (
    <Paper withBorder radius="md" p="sm" data-testid="validation-summary" aria-live="polite">
      {validating ? (
        <Group gap="xs">
          <Loader size="xs" />
          <Text size="sm" c="dimmed">
            Checking…
          </Text>
        </Group>
      ) : ok ? (
        <Group gap="xs">
          <Badge color="teal" variant="light" leftSection={<IconCheck size={12} />}>
            Looks good
          </Badge>
          <Text size="xs" c="dimmed">
            Nothing WhatsApp would reject
          </Text>
        </Group>
      ) : (
        <Stack gap={4}>
          <Text size="sm" c="red" fw={500}>
            Needs changes before it can be saved
          </Text>
          {other.map((o) => (
            <Text key={o} size="xs" c="red">
              {o}
            </Text>
          ))}
        </Stack>
      )}
    </Paper>
  );
}

function ButtonRow({
  i,
  b,
  form,
  err,
  disabled,
}: {
  i: number;
  b: TemplateFormValues['buttons'][number];
  form: ReturnType<typeof useForm<TemplateFormValues>>;
  err: (path: string) => string | undefined;
  disabled: boolean;
}) {
  const n = i + 1;
  const p = (f: string) => ({ ...form.getInputProps(`buttons.${i}.${f}`), error: err(`buttons.${i}.${f}`), disabled });
  const urlHasVar = /\{\{\s*1\s*\}\}\s*$/.test(b.url);
  return (
    <Paper withBorder radius="sm" p="xs" data-testid="button-row" data-type={b.type}>
      <Group justify="space-between" mb={6}>
        <Text size="sm" fw={600}>
          Button {n}: {BUTTON_LABEL[b.type]}
        </Text>
        {!disabled && (
          <ActionIcon
            variant="subtle"
            color="red"
            aria-label={`Remove button ${n}`}
            onClick={() => form.removeListItem('buttons', i)}
          >
            <IconTrash size={16} />
          </ActionIcon>
        )}
      </Group>
      <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="xs">
        {b.type !== 'copy_code' && (
          <TextInput label={`Button ${n} text`} maxLength={LIMITS.buttonText} {...p('text')} />
        )}
        {b.type === 'url' && (
          <TextInput
            label={`Button ${n} URL`}
            placeholder="https://example.com/orders/{{1}}"
            description="May end with {{1}}: a value per contact"
            {...p('url')}
          />
        )}
        {b.type === 'url' && urlHasVar && <TextInput label={`Button ${n} example for {{1}}`} {...p('example')} />}
        {b.type === 'phone' && (
          <TextInput label={`Button ${n} phone number`} placeholder="+4930123456" {...p('phone')} />
        )}
        {b.type === 'copy_code' && (
          <TextInput label={`Button ${n} example code`} description="A sample offer code" {...p('example')} />
        )}
      </SimpleGrid>
    </Paper>
  );
}
