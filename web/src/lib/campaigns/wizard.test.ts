import { describe, expect, it } from 'vitest';

import { ApiError } from '../../api/problem';
import { campaign } from './fixtures';
import {
  EMPTY_AUDIENCE,
  campaignBody,
  emptyWizard,
  firstInvalidStep,
  launchBody,
  launchProblem,
  stepErrors,
  wallTimeIn,
  wizardFromCampaign,
  zonedToUtc,
  type WizardState,
} from './wizard';

const NOW = Date.parse('2026-06-01T12:00:00Z');
const ctx = { variables: ['body.1', 'body.2'], templateStatus: 'approved', now: NOW };

function filled(over: Partial<WizardState> = {}): WizardState {
  return {
    ...emptyWizard('Europe/Berlin'),
    name: 'Spring sale',
    channelId: 'ch-wa',
    templateId: 't1',
    variables: {
      'body.1': { source: 'contact.first_name', fallback: 'there' },
      'body.2': { source: 'fixed', value: '20' },
    },
    audience: { ...EMPTY_AUDIENCE, groups: ['g1'], exclude_tags: ['vip'] },
    ...over,
  };
}

describe('wizard steps', () => {
  it('needs a name and a channel, then an approved template', () => {
    const s = emptyWizard('UTC');
    expect(stepErrors('channel', s, ctx)).toEqual({
      name: 'Give the campaign a name',
      channel: 'Choose the channel to send from',
    });
    expect(stepErrors('template', s, ctx)).toEqual({ template: 'Choose an approved template' });
    expect(stepErrors('template', filled(), { ...ctx, templateStatus: 'pending' })).toEqual({
      template: 'This template is not approved (yet): pick an approved one',
    });
    expect(stepErrors('template', filled(), { ...ctx, templateLoaded: false })).toEqual({
      template: 'Loading the template…',
    });
    expect(firstInvalidStep(filled(), ctx)).toBeNull();
    expect(firstInvalidStep(filled({ templateId: null }), ctx)).toBe('template');
  });

  it('needs a value for every fixed variable and at least one included audience list', () => {
    const s = filled({ variables: { 'body.1': { source: 'fixed', value: '' } } });
    expect(stepErrors('variables', s, ctx)).toEqual({
      'variables.body.1': 'Enter the text to use',
      'variables.body.2': 'Choose where the value comes from',
    });
    // Exclusions alone are no audience.
    expect(stepErrors('audience', filled({ audience: { ...EMPTY_AUDIENCE, exclude_groups: ['g1'] } }), ctx)).toEqual({
      audience: 'Pick at least one group, tag or segment',
    });
    // A retarget's audience is the earlier campaign's slice.
    expect(
      stepErrors(
        'audience',
        filled({ audience: { ...EMPTY_AUDIENCE, from_campaign: { campaign_id: 'c0', slice: 'failed' } } }),
        ctx,
      ),
    ).toEqual({});
  });

  it('needs a future date and time when scheduling', () => {
    const later = (date: string, time: string) =>
      filled({ schedule: { mode: 'later', date, time, timeZone: 'Europe/Berlin' } });
    expect(stepErrors('schedule', filled(), ctx)).toEqual({});
    expect(stepErrors('schedule', later('', ''), ctx)).toEqual({
      'schedule.date': 'Pick a date',
      'schedule.time': 'Pick a time',
    });
    // 13:59 in Berlin (UTC+2 in June) is 11:59 UTC: in the past at 12:00 UTC.
    expect(stepErrors('schedule', later('2026-06-01', '13:59'), ctx)).toEqual({
      'schedule.time': 'This time is in the past',
    });
    expect(stepErrors('schedule', later('2026-06-01', '14:01'), ctx)).toEqual({});
  });
});

describe('time zones', () => {
  it('turns a wall-clock time in a zone into the instant, across DST', () => {
    expect(zonedToUtc('2026-12-24', '09:00', 'Europe/Berlin')?.toISOString()).toBe('2026-12-24T08:00:00.000Z');
    expect(zonedToUtc('2026-07-01', '09:00', 'Europe/Berlin')?.toISOString()).toBe('2026-07-01T07:00:00.000Z');
    expect(zonedToUtc('2026-03-08', '09:30', 'America/New_York')?.toISOString()).toBe('2026-03-08T13:30:00.000Z');
    expect(zonedToUtc('2026-07-01', '09:00', 'Asia/Kolkata')?.toISOString()).toBe('2026-07-01T03:30:00.000Z');
    expect(zonedToUtc('2026-07-01', '9am', 'UTC')).toBeNull();
    expect(zonedToUtc('2026-07-01', '09:00', 'Not/AZone')).toBeNull();
    expect(wallTimeIn(new Date('2026-12-24T08:00:00Z'), 'Europe/Berlin')).toEqual({
      date: '2026-12-24',
      time: '09:00',
    });
  });
});

describe('bodies', () => {
  it('builds the draft and the launch from the state', () => {
    const s = filled({
      failurePercent: 15,
      variables: {
        'body.1': { source: 'contact.first_name', value: 'stale', fallback: 'there' },
        'body.2': { source: 'fixed', value: ' 20 ' },
      },
    });
    expect(campaignBody(s, ['body.1', 'body.2'])).toEqual({
      name: 'Spring sale',
      channel_id: 'ch-wa',
      template_id: 't1',
      variables: {
        'body.1': { source: 'contact.first_name', fallback: 'there' },
        'body.2': { source: 'fixed', value: '20' },
      },
      audience: { ...EMPTY_AUDIENCE, groups: ['g1'], exclude_tags: ['vip'] },
      failure_threshold: 0.15,
    });
    expect(launchBody(s)).toEqual({});
    expect(
      launchBody(filled({ schedule: { mode: 'later', date: '2026-12-24', time: '09:00', timeZone: 'Europe/Berlin' } })),
    ).toEqual({
      scheduled_at: '2026-12-24T09:00',
      time_zone: 'Europe/Berlin',
    });
  });

  it('continues a draft (e.g. a retarget) where it was', () => {
    const c = campaign('c2', {
      status: 'draft',
      audience: { ...EMPTY_AUDIENCE, from_campaign: { campaign_id: 'c1', slice: 'failed' } },
      variables: { 'body.1': { source: 'contact.name' } },
      scheduled_at: '2026-12-24T08:00:00Z',
      time_zone: 'Europe/Berlin',
      failure_threshold: 0.1,
    });
    const s = wizardFromCampaign(c, 'UTC');
    expect(s).toMatchObject({
      campaignId: 'c2',
      channelId: 'ch-wa',
      templateId: 't1',
      variables: { 'body.1': { source: 'contact.name' } },
      schedule: { mode: 'later', date: '2026-12-24', time: '09:00', timeZone: 'Europe/Berlin' },
      failurePercent: 10,
    });
    expect(s.audience.from_campaign).toEqual({ campaign_id: 'c1', slice: 'failed' });
  });
});

describe('launch refusals', () => {
  const problem = (status: number, code: string, extra: Partial<ConstructorParameters<typeof ApiError>[0]> = {}) =>
    new ApiError({ status, code, title: code, ...extra });

  it('sends each refusal back to the step that can fix it', () => {
    expect(launchProblem(problem(422, 'empty_audience'))).toMatchObject({
      step: 'audience',
      field: 'audience',
      title: 'The audience is empty',
    });
    expect(launchProblem(problem(422, 'no_eligible_recipients', { detail: '20 opted out, 0 eligible' }))).toMatchObject(
      {
        step: 'audience',
        title: 'Nobody in this audience can receive it',
        message: expect.stringContaining('20 opted out'),
      },
    );
    expect(launchProblem(problem(409, 'template_not_approved'))).toMatchObject({ step: 'template', field: 'template' });
    expect(
      launchProblem(
        problem(422, 'validation_failed', { errors: [{ field: 'scheduled_at', message: 'is in the past' }] }),
      ),
    ).toMatchObject({ step: 'schedule', field: 'schedule.time', message: 'The scheduled time is in the past.' });
    expect(
      launchProblem(
        problem(422, 'validation_failed', { errors: [{ field: 'variables["body.1"].value', message: 'is required' }] }),
      ),
    ).toMatchObject({ step: 'variables', field: 'variables.body.1' });
    expect(launchProblem(problem(409, 'channel_unhealthy'))).toMatchObject({
      step: null,
      title: 'The channel is unhealthy',
    });
    expect(launchProblem(problem(409, 'already_launched'))).toMatchObject({ alreadyLaunched: true });
    expect(launchProblem(new Error('boom'))).toMatchObject({ step: null, message: 'boom' });
  });
});
