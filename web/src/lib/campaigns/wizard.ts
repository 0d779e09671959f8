/**
 * The campaign wizard's state and rules, free of React: channel → template → variables →
 * audience → schedule → review. Each step says what blocks "Next"; the bodies of the draft and of
 * the launch come from one state; a launch refusal (problem code or field) says which step to go
 * back to. A scheduled time is a wall-clock time in an IANA zone (the server takes it that way);
 * the zone's offset on that day is worked out here only to tell "in the past" before sending.
 */
import { isApiError } from '../../api/problem';
import { cleanMapping, completeMapping, mappingErrors } from '../templates/mapping';
import type { Mapping, TemplateOut } from '../templates/types';
import type { Audience, CampaignIn, CampaignOut, LaunchIn } from './types';

export const STEPS = ['channel', 'template', 'variables', 'audience', 'schedule', 'review'] as const;
export type Step = (typeof STEPS)[number];

export const STEP_LABEL: Record<Step, string> = {
  channel: 'Channel',
  template: 'Template',
  variables: 'Variables',
  audience: 'Audience',
  schedule: 'Schedule',
  review: 'Review',
};

export interface Schedule {
  mode: 'now' | 'later';
  /** `YYYY-MM-DD` */
  date: string;
  /** `HH:mm` */
  time: string;
  timeZone: string;
}

export interface WizardState {
  /** Set once the draft exists (saved, or a retarget / draft being continued). */
  campaignId: string | null;
  name: string;
  channelId: string | null;
  templateId: string | null;
  variables: Mapping;
  audience: Audience;
  schedule: Schedule;
  /** Percent, 1–100: pause by itself when more than this share of sends fail. */
  failurePercent: number;
}

export const EMPTY_AUDIENCE: Audience = {
  groups: [],
  tags: [],
  segments: [],
  exclude_groups: [],
  exclude_tags: [],
  exclude_segments: [],
};

export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** Every IANA zone the browser knows (the browser's own first), or a short list on old browsers. */
export function timeZones(own = browserTimeZone()): string[] {
  const all =
    typeof Intl.supportedValuesOf === 'function'
      ? Intl.supportedValuesOf('timeZone')
      : ['UTC', 'Europe/London', 'Europe/Berlin', 'America/New_York', 'America/Los_Angeles', 'Asia/Kolkata'];
  return [own, ...all.filter((z) => z !== own && z !== 'UTC'), ...(own === 'UTC' ? [] : ['UTC'])];
}

export function emptyWizard(timeZone = browserTimeZone()): WizardState {
  return {
    campaignId: null,
    name: '',
    channelId: null,
    templateId: null,
    variables: {},
    audience: { ...EMPTY_AUDIENCE },
    schedule: { mode: 'now', date: '', time: '', timeZone },
    failurePercent: 20,
  };
}

/** A saved draft (or a retarget's new draft) back into the wizard. */
export function wizardFromCampaign(c: CampaignOut, timeZone = browserTimeZone()): WizardState {
  const local = c.scheduled_at && c.time_zone ? wallTimeIn(new Date(c.scheduled_at), c.time_zone) : null;
  return {
    campaignId: c.id,
    name: c.name,
    channelId: c.channel.id,
    templateId: c.template?.id ?? null,
    variables: { ...c.variables },
    audience: { ...EMPTY_AUDIENCE, ...c.audience },
    schedule: local
      ? { mode: 'later', date: local.date, time: local.time, timeZone: c.time_zone! }
      : { mode: 'now', date: '', time: '', timeZone },
    failurePercent: Math.round((c.failure_threshold ?? 0.2) * 100),
  };
}

/** The template's variables with the campaign's mapping, else the template's default, else fixed text. */
export function prefillVariables(t: Pick<TemplateOut, 'variables' | 'mapping'>, current?: Mapping): Mapping {
  return completeMapping(t.variables, current, t.mapping);
}

export function audienceIsEmpty(a: Audience): boolean {
  return a.groups.length + a.tags.length + a.segments.length === 0 && !a.from_campaign;
}

// ---- time zones -------------------------------------------------------------------------------

/** The wall-clock date and time of `d` in `timeZone`. */
export function wallTimeIn(d: Date, timeZone: string): { date: string; time: string } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(d)
      .map((p) => [p.type, p.value]),
  );
  return { date: `${parts.year}-${parts.month}-${parts.day}`, time: `${parts.hour}:${parts.minute}` };
}

/** Milliseconds `timeZone` is ahead of UTC at the instant `utcMs`. */
function offsetAt(utcMs: number, timeZone: string): number {
  const { date, time } = wallTimeIn(new Date(utcMs), timeZone);
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number];
  const [h, mi] = time.split(':').map(Number) as [number, number];
  const asUtc = Date.UTC(y, mo - 1, d, h, mi);
  return asUtc - Math.floor(utcMs / 60_000) * 60_000;
}

/**
 * The instant a wall-clock `date` `time` in `timeZone` stands for, or null when the input is not a
 * date and time or the zone is unknown. (In a DST gap the later offset is used, like most systems.)
 */
export function zonedToUtc(date: string, time: string, timeZone: string): Date | null {
  const dm = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const tm = /^(\d{2}):(\d{2})$/.exec(time);
  if (!dm || !tm) return null;
  const guess = Date.UTC(Number(dm[1]), Number(dm[2]) - 1, Number(dm[3]), Number(tm[1]), Number(tm[2]));
  if (Number.isNaN(guess)) return null;
  try {
    const first = guess - offsetAt(guess, timeZone);
    const second = guess - offsetAt(first, timeZone);
    return new Date(second);
  } catch {
    return null;
  }
}

/** `2026-12-24T09:00` as the launch body wants it. */
export function scheduledAt(s: Schedule): string {
  return `${s.date}T${s.time}`;
}

// ---- steps ------------------------------------------------------------------------------------

export interface StepContext {
  /** Variable keys of the chosen template. */
  variables: readonly string[];
  /** The chosen template's status (only approved ones can be sent). */
  templateStatus?: string | null;
  /** False while the chosen template (and so its variables) is still loading. */
  templateLoaded?: boolean;
  now?: number;
}

/** What blocks leaving `step`, keyed by field (`name`, `channel`, `template`, `variables.<key>`, `audience`, `schedule.date`…). */
export function stepErrors(step: Step, s: WizardState, ctx: StepContext): Record<string, string> {
  const e: Record<string, string> = {};
  switch (step) {
    case 'channel':
      if (!s.name.trim()) e.name = 'Give the campaign a name';
      else if (s.name.trim().length > 200) e.name = 'At most 200 characters';
      if (!s.channelId) e.channel = 'Choose the channel to send from';
      break;
    case 'template':
      if (!s.templateId) e.template = 'Choose an approved template';
      else if (ctx.templateLoaded === false) e.template = 'Loading the template…';
      else if (ctx.templateStatus && ctx.templateStatus !== 'approved')
        e.template = 'This template is not approved (yet): pick an approved one';
      break;
    case 'variables':
      for (const [k, msg] of Object.entries(mappingErrors(s.variables, ctx.variables))) e[`variables.${k}`] = msg;
      break;
    case 'audience':
      if (audienceIsEmpty(s.audience)) e.audience = 'Pick at least one group, tag or segment';
      break;
    case 'schedule':
      if (s.schedule.mode === 'later') {
        if (!s.schedule.date) e['schedule.date'] = 'Pick a date';
        if (!s.schedule.time) e['schedule.time'] = 'Pick a time';
        if (!s.schedule.timeZone) e['schedule.timeZone'] = 'Pick a time zone';
        if (s.schedule.date && s.schedule.time && s.schedule.timeZone) {
          const at = zonedToUtc(s.schedule.date, s.schedule.time, s.schedule.timeZone);
          if (!at) e['schedule.date'] = 'Not a valid date and time';
          else if (at.getTime() <= (ctx.now ?? Date.now())) e['schedule.time'] = 'This time is in the past';
        }
      }
      break;
    case 'review':
      if (!(s.failurePercent >= 1 && s.failurePercent <= 100)) e.failurePercent = 'Between 1 and 100 %';
      break;
  }
  return e;
}

/** The first step (up to and including `upTo`) that is not complete, or null. */
export function firstInvalidStep(s: WizardState, ctx: StepContext, upTo: Step = 'review'): Step | null {
  for (const step of STEPS) {
    if (Object.keys(stepErrors(step, s, ctx)).length > 0) return step;
    if (step === upTo) break;
  }
  return null;
}

// ---- bodies -----------------------------------------------------------------------------------

export function campaignBody(s: WizardState, variables: readonly string[]): CampaignIn {
  const a = s.audience;
  return {
    name: s.name.trim(),
    channel_id: s.channelId!,
    template_id: s.templateId!,
    variables: cleanMapping(s.variables, variables),
    audience: {
      groups: a.groups,
      tags: a.tags,
      segments: a.segments,
      exclude_groups: a.exclude_groups,
      exclude_tags: a.exclude_tags,
      exclude_segments: a.exclude_segments,
      ...(a.from_campaign ? { from_campaign: a.from_campaign } : {}),
    },
    failure_threshold: Math.round(s.failurePercent) / 100,
  };
}

export function launchBody(s: WizardState): LaunchIn {
  if (s.schedule.mode === 'now') return {};
  return { scheduled_at: scheduledAt(s.schedule), time_zone: s.schedule.timeZone };
}

export interface LaunchProblem {
  /** The step to go back to, or null to stay on the review. */
  step: Step | null;
  /** A field error to show there. */
  field?: string;
  title: string;
  message: string;
  /** The campaign left the draft state meanwhile: open its page instead. */
  alreadyLaunched?: boolean;
}

/** A refused save or launch, explained, with the step that can fix it. */
export function launchProblem(err: unknown): LaunchProblem {
  if (!isApiError(err)) {
    return { step: null, title: 'Could not launch', message: err instanceof Error ? err.message : String(err) };
  }
  const detail = err.detail ? ` ${err.detail}` : '';
  const scheduled = err.errors.find((x) => x.field.replace(/^body\./, '').startsWith('scheduled_at'));
  if (scheduled) {
    return {
      step: 'schedule',
      field: 'schedule.time',
      title: 'Check the schedule',
      message: `The scheduled time ${scheduled.message}.`,
    };
  }
  const zone = err.errors.find((x) => x.field.replace(/^body\./, '').startsWith('time_zone'));
  if (zone) return { step: 'schedule', field: 'schedule.timeZone', title: 'Check the schedule', message: zone.message };
  switch (err.code) {
    case 'empty_audience':
      return {
        step: 'audience',
        field: 'audience',
        title: 'The audience is empty',
        message: `No contacts are in the chosen groups, tags or segments.${detail}`,
      };
    case 'no_eligible_recipients':
      return {
        step: 'audience',
        field: 'audience',
        title: 'Nobody in this audience can receive it',
        message: `Every contact is opted out, lacks consent, is blocked or has no address for this channel.${detail}`,
      };
    case 'template_not_approved':
      return {
        step: 'template',
        field: 'template',
        title: 'The template is not approved',
        message: `Only approved templates can be sent.${detail}`,
      };
    case 'channel_unhealthy':
      return {
        step: null,
        title: 'The channel is unhealthy',
        message: `Fix the channel in Settings → Channels (or test its connection) and try again.${detail}`,
      };
    case 'already_launched':
      return { step: null, title: 'Already launched', message: err.userMessage, alreadyLaunched: true };
  }
  const fieldStep: [RegExp, Step, string][] = [
    [/^name/, 'channel', 'name'],
    [/^channel_id/, 'channel', 'channel'],
    [/^template_id/, 'template', 'template'],
    [/^variables/, 'variables', 'variables'],
    [/^audience/, 'audience', 'audience'],
    [/^failure_threshold/, 'review', 'failurePercent'],
  ];
  for (const fe of err.errors) {
    const f = fe.field.replace(/^body\./, '');
    const hit = fieldStep.find(([re]) => re.test(f));
    if (hit) {
      const [, step, field] = hit;
      const variable = /^variables(?:\.|\[["']?)([^"'\]]+)/.exec(f)?.[1];
      return {
        step,
        field: variable && step === 'variables' ? `variables.${variable}` : field,
        title: 'Check this step',
        message: `${f}: ${fe.message}`,
      };
    }
  }
  return { step: null, title: err.title, message: err.userMessage };
}
