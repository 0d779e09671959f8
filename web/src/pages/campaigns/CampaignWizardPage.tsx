/**
 * The campaign wizard (`/campaigns/new`, and `/campaigns/:id/edit` for a draft — e.g. a
 * retarget): channel → template (approved ones of that channel) → variables (prefilled from the
 * template's mapping, previewed for a contact) → audience (with the consent breakdown) →
 * schedule (now, or a wall-clock time in an IANA zone) → review & launch.
 *
 * Launching saves the draft (POST, or PATCH once it exists) and then launches it; a refusal says
 * which step can fix it.
 */
import {
  Alert,
  Anchor,
  Badge,
  Button,
  Grid,
  Group,
  List,
  NumberInput,
  Paper,
  Radio,
  SimpleGrid,
  Stack,
  Stepper,
  Text,
  TextInput,
  Select,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { IconAlertTriangle, IconArrowLeft, IconCalendar, IconDeviceFloppy, IconRocket } from '@tabler/icons-react';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useMemo, useState } from 'react';
import { Link, Navigate, useNavigate, useParams } from 'react-router';

import { useContactAttributes } from '../../api/queries';
import { atLeast } from '../../api/types';
import { useCurrent } from '../../auth/useCurrent';
import { EmptyState, QueryState } from '../../components/QueryState';
import { PageHeader } from '../../components/PageHeader';
import {
  campaignKeys,
  createCampaign,
  launchCampaign,
  previewAudience,
  updateCampaign,
  useCampaign,
} from '../../lib/campaigns/api';
import type { CampaignOut } from '../../lib/campaigns/types';
import {
  STEPS,
  STEP_LABEL,
  audienceIsEmpty,
  campaignBody,
  emptyWizard,
  launchBody,
  launchProblem,
  prefillVariables,
  stepErrors,
  timeZones,
  wizardFromCampaign,
  zonedToUtc,
  type LaunchProblem,
  type Step,
  type WizardState,
} from '../../lib/campaigns/wizard';
import { formatDateTime } from '../../lib/format';
import { KIND_LABEL } from '../../lib/inbox/channels';
import { useInboxChannels } from '../../lib/inbox/api';
import { useTemplate, useTemplates } from '../../lib/templates/api';
import {
  CATEGORY_LABEL,
  describeVariable,
  exampleFor,
  previewOfForm,
  templateToForm,
} from '../../lib/templates/builder';
import { mappedPreviewValue, sourceLabel } from '../../lib/templates/mapping';
import { ChannelIcon } from '../inbox/ChannelIcon';
import { ContactPreview } from '../templates/ContactPreview';
import { MappingEditor } from '../templates/MappingEditor';
import { PhonePreview } from '../templates/PhonePreview';
import { AudiencePicker, BreakdownPanel } from './Audience';

export function CampaignWizardPage() {
  const { id } = useParams();
  const back = (
    <Anchor component={Link} to={id ? `/campaigns/${id}` : '/campaigns'} size="sm">
      <Group gap={4} mb="sm">
        <IconArrowLeft size={14} /> {id ? 'Campaign' : 'Campaigns'}
      </Group>
    </Anchor>
  );
  if (!id) {
    return (
      <>
        {back}
        <Wizard initial={emptyWizard()} />
      </>
    );
  }
  return <DraftWizard id={id} back={back} />;
}

function DraftWizard({ id, back }: { id: string; back: React.ReactNode }) {
  const campaign = useCampaign(id);
  return (
    <>
      {back}
      <QueryState query={campaign}>
        {(c) =>
          c.status === 'draft' ? (
            <Wizard key={c.id} initial={wizardFromCampaign(c)} />
          ) : (
            <Navigate to={`/campaigns/${c.id}`} replace />
          )
        }
      </QueryState>
    </>
  );
}

function Wizard({ initial }: { initial: WizardState }) {
  const { role } = useCurrent();
  const isAdmin = atLeast(role, 'admin');
  const qc = useQueryClient();
  const navigate = useNavigate();
  const [s, setS] = useState<WizardState>(initial);
  const [active, setActive] = useState(0);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<LaunchProblem | null>(null);
  const step: Step = STEPS[active]!;
  const update = (patch: Partial<WizardState>) => {
    setS((prev) => ({ ...prev, ...patch }));
    setErrors({});
  };

  const channels = useInboxChannels();
  const channel = (channels.data ?? []).find((c) => c.id === s.channelId);
  const approved = useTemplates({ channelId: s.channelId, status: 'approved', q: '' }, !!s.channelId);
  const template = useTemplate(s.templateId);
  const t = template.data && template.data.id === s.templateId ? template.data : undefined;
  const variables = t?.variables ?? [];
  const attrs = useContactAttributes();

  // A new template's variables: the campaign's own values where it has them, else the template's defaults.
  useEffect(() => {
    if (!t) return;
    setS((prev) => ({ ...prev, variables: prefillVariables(t, prev.variables) }));
  }, [t]);

  const ctx = { variables, templateStatus: t?.status ?? null, templateLoaded: !s.templateId || !!t };

  // The consent breakdown, recounted (debounced) whenever the audience or template changes.
  const [debouncedAudience] = useDebouncedValue(s.audience, 400);
  const breakdown = useQuery({
    queryKey: ['campaigns', 'audience-preview', s.channelId, s.templateId, debouncedAudience],
    queryFn: () =>
      previewAudience({
        channel_id: s.channelId!,
        ...(s.templateId ? { template_id: s.templateId } : {}),
        audience: debouncedAudience,
      }),
    enabled: !!s.channelId && !audienceIsEmpty(debouncedAudience),
    placeholderData: keepPreviousData,
    staleTime: 5_000,
  });
  const shownBreakdown = audienceIsEmpty(s.audience) ? undefined : breakdown.data;

  const goTo = (target: number) => {
    // Forward only over complete steps.
    for (let i = active; i < target; i++) {
      const e = stepErrors(STEPS[i]!, s, ctx);
      if (Object.keys(e).length > 0) {
        setActive(i);
        setErrors(e);
        return;
      }
    }
    setErrors({});
    setProblem(null);
    setActive(target);
  };

  const saveDraft = async (): Promise<CampaignOut> => {
    const body = campaignBody(s, variables);
    const c = s.campaignId ? await updateCampaign(s.campaignId, body) : await createCampaign(body);
    setS((prev) => ({ ...prev, campaignId: c.id }));
    qc.setQueryData(campaignKeys.one(c.id), c);
    void qc.invalidateQueries({ queryKey: campaignKeys.lists });
    return c;
  };

  const onProblem = (e: unknown) => {
    const p = launchProblem(e);
    setProblem(p);
    if (p.field && p.step) setErrors({ [p.field]: p.message });
  };

  const draft = useMutation({
    mutationFn: saveDraft,
    onMutate: () => setProblem(null),
    onSuccess: (c) => {
      notifications.show({ color: 'teal', message: `${c.name} saved as a draft` });
      navigate('/campaigns');
    },
    onError: onProblem,
  });

  const launch = useMutation({
    mutationFn: async () => {
      const c = await saveDraft();
      return launchCampaign(c.id, launchBody(s));
    },
    onMutate: () => setProblem(null),
    onSuccess: (c) => {
      qc.setQueryData(campaignKeys.one(c.id), c);
      void qc.invalidateQueries({ queryKey: campaignKeys.lists });
      notifications.show({
        color: 'teal',
        title: c.status === 'scheduled' ? 'Campaign scheduled' : 'Campaign launched',
        message:
          c.status === 'scheduled' && c.scheduled_at ? `${c.name} starts ${formatDateTime(c.scheduled_at)}` : c.name,
      });
      navigate(`/campaigns/${c.id}`);
    },
    onError: (e) => {
      const p = launchProblem(e);
      if (p.alreadyLaunched && s.campaignId) navigate(`/campaigns/${s.campaignId}`);
      else onProblem(e);
    },
  });

  const zones = useMemo(() => timeZones(), []);
  const scheduledInstant =
    s.schedule.mode === 'later' ? zonedToUtc(s.schedule.date, s.schedule.time, s.schedule.timeZone) : null;

  if (!isAdmin) {
    return (
      <Alert color="yellow" title="Not available for your role">
        Only admins and owners create campaigns.
      </Alert>
    );
  }

  return (
    <>
      <PageHeader
        title={initial.campaignId ? `Edit ${initial.name || 'campaign'}` : 'New campaign'}
        actions={
          <Button
            variant="default"
            leftSection={<IconDeviceFloppy size={16} />}
            onClick={() => {
              const e = { ...stepErrors('channel', s, ctx), ...stepErrors('template', s, ctx) };
              if (Object.keys(e).length > 0) {
                setErrors(e);
                setActive(e.name || e.channel ? 0 : 1);
                return;
              }
              draft.mutate();
            }}
            loading={draft.isPending}
            disabled={launch.isPending}
          >
            Save draft
          </Button>
        }
      />
      <Stepper active={active} onStepClick={goTo} size="sm" mb="lg" allowNextStepsSelect={false} wrap>
        {STEPS.map((st) => (
          <Stepper.Step key={st} label={STEP_LABEL[st]} aria-label={STEP_LABEL[st]} />
        ))}
      </Stepper>

      <Grid gutter="lg">
        <Grid.Col span={{ base: 12, md: step === 'channel' || step === 'schedule' ? 12 : 7 }}>
          {step === 'channel' && (
            <Stack maw={720}>
              <TextInput
                label="Campaign name"
                required
                value={s.name}
                onChange={(e) => update({ name: e.currentTarget.value })}
                error={errors.name}
                data-autofocus
              />
              <Radio.Group
                label="Channel"
                description="The number or bot the messages come from"
                value={s.channelId ?? ''}
                onChange={(id) => update({ channelId: id, templateId: null, variables: {} })}
                error={errors.channel}
              >
                {channels.data && channels.data.length === 0 ? (
                  <EmptyState
                    title="No channels yet"
                    action={
                      <Button component={Link} to="/settings/channels?connect=1" variant="light">
                        Connect a channel
                      </Button>
                    }
                  />
                ) : (
                  <SimpleGrid cols={{ base: 1, sm: 2, lg: 3 }} mt="xs">
                    {(channels.data ?? []).map((c) => (
                      <Radio.Card key={c.id} value={c.id} p="sm" radius="md" aria-label={c.name} disabled={!c.enabled}>
                        <Group wrap="nowrap" align="flex-start">
                          <Radio.Indicator />
                          <div>
                            <Group gap={6}>
                              <ChannelIcon kind={c.kind} size={16} />
                              <Text fw={600}>{c.name}</Text>
                            </Group>
                            <Text size="xs" c="dimmed">
                              {KIND_LABEL[c.kind]} · {c.messages_per_second} msg/s
                              {c.enabled ? '' : ' · disabled'}
                              {c.health.state === 'unhealthy' ? ' · unhealthy' : ''}
                            </Text>
                          </div>
                        </Group>
                      </Radio.Card>
                    ))}
                  </SimpleGrid>
                )}
              </Radio.Group>
            </Stack>
          )}

          {step === 'template' && (
            <Radio.Group
              label="Template"
              description={`Approved templates of ${channel?.name ?? 'this channel'}`}
              value={s.templateId ?? ''}
              onChange={(id) => update({ templateId: id, variables: {} })}
              error={errors.template}
            >
              <QueryState
                query={approved}
                isEmpty={(l) => l.length === 0}
                empty={
                  <EmptyState
                    title="No approved templates for this channel"
                    action={
                      <Button component={Link} to={`/templates/new?channel=${s.channelId ?? ''}`} variant="light">
                        Build a template
                      </Button>
                    }
                  >
                    {channel?.kind === 'whatsapp'
                      ? 'WhatsApp only sends templates Meta approved. Submit one and come back once it is approved.'
                      : 'Create a template for this channel first.'}
                  </EmptyState>
                }
              >
                {(list) => (
                  <Stack gap="xs" mt="xs">
                    {list.map((tp) => (
                      <Radio.Card
                        key={tp.id}
                        value={tp.id}
                        p="sm"
                        radius="md"
                        aria-label={`${tp.name} (${tp.language})`}
                      >
                        <Group wrap="nowrap" align="flex-start">
                          <Radio.Indicator />
                          <div style={{ minWidth: 0 }}>
                            <Group gap={6}>
                              <Text fw={600} ff="monospace">
                                {tp.name}
                              </Text>
                              <Badge size="xs" variant="outline" color="gray">
                                {tp.language}
                              </Badge>
                              <Badge size="xs" variant="light" color={tp.category === 'MARKETING' ? 'grape' : 'blue'}>
                                {CATEGORY_LABEL[tp.category]}
                              </Badge>
                            </Group>
                            <Text size="xs" c="dimmed" lineClamp={2}>
                              {tp.components.body.text}
                            </Text>
                          </div>
                        </Group>
                      </Radio.Card>
                    ))}
                  </Stack>
                )}
              </QueryState>
            </Radio.Group>
          )}

          {step === 'variables' && (
            <Stack>
              <Title order={4}>Variables</Title>
              <Text size="sm" c="dimmed">
                Where each variable's value comes from for every contact. Contacts without a value and without a
                fallback are skipped.
              </Text>
              {t ? (
                <MappingEditor
                  variables={variables}
                  value={s.variables}
                  onChange={(m) => update({ variables: m })}
                  errors={Object.fromEntries(
                    Object.entries(errors)
                      .filter(([k]) => k.startsWith('variables.'))
                      .map(([k, v]) => [k.slice('variables.'.length), v]),
                  )}
                  buttons={t.components.buttons}
                  examples={(k) => exampleFor(templateToForm(t), k)}
                />
              ) : (
                <Text size="sm" c="dimmed">
                  Loading the template…
                </Text>
              )}
              {errors.variables && (
                <Text size="sm" c="red">
                  {errors.variables}
                </Text>
              )}
            </Stack>
          )}

          {step === 'audience' && (
            <AudiencePicker
              audience={s.audience}
              onChange={(a) => update({ audience: a })}
              error={errors.audience}
              campaignName={s.name}
            />
          )}

          {step === 'schedule' && (
            <Stack maw={720}>
              <Radio.Group
                label="When"
                value={s.schedule.mode}
                onChange={(m) => update({ schedule: { ...s.schedule, mode: m as 'now' | 'later' } })}
              >
                <Stack gap="xs" mt="xs">
                  <Radio value="now" label="Send now" description="Starts as soon as you launch it" />
                  <Radio
                    value="later"
                    label="Schedule for later"
                    description="A date and time in a time zone you pick"
                  />
                </Stack>
              </Radio.Group>
              {s.schedule.mode === 'later' && (
                <Paper withBorder radius="md" p="md">
                  <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="sm">
                    <TextInput
                      type="date"
                      label="Date"
                      required
                      leftSection={<IconCalendar size={14} />}
                      value={s.schedule.date}
                      onChange={(e) => update({ schedule: { ...s.schedule, date: e.currentTarget.value } })}
                      error={errors['schedule.date']}
                    />
                    <TextInput
                      type="time"
                      label="Time"
                      required
                      value={s.schedule.time}
                      onChange={(e) => update({ schedule: { ...s.schedule, time: e.currentTarget.value } })}
                      error={errors['schedule.time']}
                    />
                    <Select
                      label="Time zone"
                      required
                      searchable
                      data={zones}
                      value={s.schedule.timeZone}
                      allowDeselect={false}
                      onChange={(z) => z && update({ schedule: { ...s.schedule, timeZone: z } })}
                      error={errors['schedule.timeZone']}
                      limit={200}
                    />
                  </SimpleGrid>
                  {scheduledInstant && (
                    <Text size="xs" c="dimmed" mt="xs" data-testid="schedule-local">
                      That is {formatDateTime(scheduledInstant.toISOString())} in your browser's time.
                    </Text>
                  )}
                </Paper>
              )}
            </Stack>
          )}

          {step === 'review' && (
            <Stack>
              {problem && (
                <Alert
                  color="red"
                  icon={<IconAlertTriangle size={18} />}
                  title={problem.title}
                  role="alert"
                  data-testid="launch-problem"
                >
                  <Stack gap="xs" align="flex-start">
                    <Text size="sm">{problem.message}</Text>
                    {problem.step && (
                      <Button
                        size="xs"
                        variant="light"
                        color="red"
                        onClick={() => setActive(STEPS.indexOf(problem.step!))}
                      >
                        Fix in {STEP_LABEL[problem.step]}
                      </Button>
                    )}
                  </Stack>
                </Alert>
              )}
              <Paper withBorder radius="md" p="md" data-testid="review">
                <List spacing={6} size="sm" listStyleType="none">
                  <List.Item>
                    <b>Name:</b> {s.name}
                  </List.Item>
                  <List.Item>
                    <b>Channel:</b> {channel?.name ?? '—'}
                  </List.Item>
                  <List.Item>
                    <b>Template:</b> {t ? `${t.name} (${t.language}, ${CATEGORY_LABEL[t.category]})` : '—'}
                  </List.Item>
                  {variables.map((k) => (
                    <List.Item key={k}>
                      <b>{describeVariable(k, t?.components.buttons)}:</b>{' '}
                      {s.variables[k]?.source === 'fixed'
                        ? `“${s.variables[k]?.value ?? ''}”`
                        : `${sourceLabel(s.variables[k]?.source ?? '', attrs.data ?? [])}${s.variables[k]?.fallback ? `, else “${s.variables[k]?.fallback}”` : ''}`}
                    </List.Item>
                  ))}
                  <List.Item>
                    <b>When:</b>{' '}
                    {s.schedule.mode === 'now'
                      ? 'Right after launch'
                      : `${s.schedule.date} ${s.schedule.time} (${s.schedule.timeZone})`}
                  </List.Item>
                </List>
              </Paper>
              <NumberInput
                label="Pause by itself when more than this share of messages fail (%)"
                min={1}
                max={100}
                value={s.failurePercent}
                onChange={(v) => update({ failurePercent: typeof v === 'number' ? v : Number(v) || 0 })}
                error={errors.failurePercent}
                maw={420}
              />
            </Stack>
          )}

          <Group justify="space-between" mt="lg">
            <Button variant="default" onClick={() => setActive((a) => Math.max(0, a - 1))} disabled={active === 0}>
              Back
            </Button>
            {step !== 'review' ? (
              <Button onClick={() => goTo(active + 1)}>Next</Button>
            ) : (
              <Button
                leftSection={<IconRocket size={16} />}
                onClick={() => {
                  const e = stepErrors('review', s, ctx);
                  if (Object.keys(e).length > 0) return setErrors(e);
                  launch.mutate();
                }}
                loading={launch.isPending}
                disabled={draft.isPending}
              >
                {s.schedule.mode === 'later' ? 'Schedule campaign' : 'Launch campaign'}
                {shownBreakdown ? ` (${shownBreakdown.eligible})` : ''}
              </Button>
            )}
          </Group>
        </Grid.Col>

        {step !== 'channel' && step !== 'schedule' && (
          <Grid.Col span={{ base: 12, md: 5 }}>
            <Stack>
              {(step === 'audience' || step === 'review') && channel && (
                <BreakdownPanel
                  breakdown={shownBreakdown}
                  kind={channel.kind}
                  loading={breakdown.isFetching}
                  error={breakdown.isError ? breakdown.error : undefined}
                />
              )}
              {t && (
                <PhonePreview
                  model={previewOfForm(templateToForm(t), (k) => mappedPreviewValue(s.variables[k], attrs.data ?? []))}
                  channelName={channel?.name}
                  title={step === 'template' ? 'Template' : 'Message'}
                />
              )}
              {t && step === 'variables' && (
                <Paper withBorder radius="md" p="md">
                  <ContactPreview
                    templateId={t.id}
                    mapping={s.variables}
                    variables={variables}
                    buttons={t.components.buttons}
                    channelName={channel?.name}
                  />
                </Paper>
              )}
            </Stack>
          </Grid.Col>
        )}
      </Grid>
    </>
  );
}
