import { QueryClient } from '@tanstack/react-query';
import { describe, expect, it } from 'vitest';

import { campaignKeys } from '../lib/campaigns/api';
import { campaign, counts, template } from '../lib/campaigns/fixtures';
import type { CampaignOut, StatsOut } from '../lib/campaigns/types';
import { templateKeys } from '../lib/templates/api';
import type { TemplateFilters, TemplateOut } from '../lib/templates/types';
import { applyCampaignEvent } from './campaignEvents';

const ALL: TemplateFilters = { channelId: null, status: null, q: '' };
const PENDING: TemplateFilters = { ...ALL, status: 'pending' };

describe('template events', () => {
  it('an approval updates the template everywhere and leaves a "pending" list', () => {
    const qc = new QueryClient();
    const pending = template('t1', { status: 'pending' });
    qc.setQueryData(templateKeys.one('t1'), pending);
    qc.setQueryData(templateKeys.list(ALL), [pending, template('t2')]);
    qc.setQueryData(templateKeys.list(PENDING), [pending]);
    const fx = applyCampaignEvent(qc, 'template.updated', { template: { ...pending, status: 'approved' } });
    expect(fx).toEqual({});
    expect(qc.getQueryData<TemplateOut>(templateKeys.one('t1'))!.status).toBe('approved');
    expect(qc.getQueryData<TemplateOut[]>(templateKeys.list(ALL))!.map((t) => [t.id, t.status])).toEqual([
      ['t1', 'approved'],
      ['t2', 'approved'],
    ]);
    expect(qc.getQueryData<TemplateOut[]>(templateKeys.list(PENDING))).toEqual([]);
  });

  it('an unknown template that belongs in a list asks for a refetch', () => {
    const qc = new QueryClient();
    qc.setQueryData(templateKeys.list(ALL), []);
    expect(applyCampaignEvent(qc, 'template.updated', { template: template('t9') })).toEqual({
      refetchTemplateLists: true,
    });
    expect(applyCampaignEvent(qc, 'template.updated', {})).toEqual({});
  });
});

describe('campaign events', () => {
  function setup() {
    const qc = new QueryClient();
    const c = campaign('c1', { counts: counts({ total: 500, sent: 100, pending: 400 }) });
    qc.setQueryData(campaignKeys.one('c1'), c);
    qc.setQueryData(campaignKeys.list(null), [c, campaign('c2', { status: 'completed' })]);
    qc.setQueryData(campaignKeys.list('running'), [c]);
    qc.setQueryData<StatsOut>(campaignKeys.stats('c1'), {
      counts: c.counts,
      rate_per_second: 10,
      eta_seconds: 40,
      failed_by_code: [],
      skipped_by_reason: [],
      series: [],
    });
    const one = () => qc.getQueryData<CampaignOut>(campaignKeys.one('c1'))!;
    return { qc, c, one };
  }

  it('progress moves the counts, rate and ETA of the campaign, its stats and every list', () => {
    const { qc, one } = setup();
    const next = counts({ total: 500, sent: 250, delivered: 200, skipped: 20, pending: 230 });
    const fx = applyCampaignEvent(qc, 'campaign.progress', {
      campaign_id: 'c1',
      counts: next,
      rate_per_second: 42.5,
      eta_seconds: 6,
    });
    expect(fx).toEqual({});
    expect(one()).toMatchObject({ counts: next, rate_per_second: 42.5, eta_seconds: 6 });
    expect(qc.getQueryData<StatsOut>(campaignKeys.stats('c1'))).toMatchObject({ counts: next, rate_per_second: 42.5 });
    expect(qc.getQueryData<CampaignOut[]>(campaignKeys.list(null))![0]!.counts).toEqual(next);
    expect(qc.getQueryData<CampaignOut[]>(campaignKeys.list('running'))![0]!.counts).toEqual(next);
  });

  it('an older progress snapshot does not move the numbers back', () => {
    const { qc, one } = setup();
    applyCampaignEvent(qc, 'campaign.progress', {
      campaign_id: 'c1',
      counts: counts({ total: 500, sent: 50, pending: 450 }),
      rate_per_second: 1,
      eta_seconds: 999,
    });
    expect(one()).toMatchObject({ counts: { sent: 100 }, rate_per_second: 0 });
  });

  it('a state change replaces the campaign, moves it between status lists and reloads its stats', () => {
    const { qc, c, one } = setup();
    const paused = { ...c, status: 'paused' as const, pause_reason: 'Failure rate 35% is above 20%' };
    const fx = applyCampaignEvent(qc, 'campaign.paused', { campaign: paused });
    expect(fx).toEqual({ refetchCampaign: 'c1' });
    expect(one()).toMatchObject({ status: 'paused', pause_reason: 'Failure rate 35% is above 20%' });
    expect(qc.getQueryData<CampaignOut[]>(campaignKeys.list('running'))).toEqual([]);
    expect(qc.getQueryData<CampaignOut[]>(campaignKeys.list(null))![0]!.status).toBe('paused');
  });

  it('a campaign no list has yet asks for a refetch of the lists', () => {
    const { qc } = setup();
    expect(applyCampaignEvent(qc, 'campaign.started', { campaign: campaign('c3') })).toEqual({
      refetchCampaignLists: true,
      refetchCampaign: 'c3',
    });
    expect(applyCampaignEvent(qc, 'campaign.updated', { campaign: campaign('c1', { name: 'Renamed' }) })).toEqual({});
  });
});
