/**
 * Applies one template or campaign event from the org room to the TanStack Query caches. Pure
 * apart from the QueryClient it is given, so tests drive it with a real client and plain payloads.
 *
 * Event names arrive without the `wamage.` prefix, like the inbox events:
 *   template.updated                                            { template }
 *   campaign.started|paused|resumed|completed|failed|cancelled|updated   { campaign }
 *   campaign.progress    { campaign_id, counts, rate_per_second, eta_seconds }   (≤ 1/s per campaign)
 */
import type { QueryClient } from '@tanstack/react-query';

import { campaignKeys } from '../lib/campaigns/api';
import { newerCounts } from '../lib/campaigns/progress';
import type { CampaignOut, ProgressEvent, StatsOut } from '../lib/campaigns/types';
import { templateKeys } from '../lib/templates/api';
import type { TemplateFilters, TemplateOut } from '../lib/templates/types';

export const CAMPAIGN_EVENTS = [
  'template.updated',
  'campaign.started',
  'campaign.paused',
  'campaign.resumed',
  'campaign.completed',
  'campaign.failed',
  'campaign.cancelled',
  'campaign.updated',
  'campaign.progress',
] as const;

export interface CampaignEffects {
  /** Something changed that a cached list may not hold (or no longer match): refetch the lists. */
  refetchTemplateLists?: boolean;
  refetchCampaignLists?: boolean;
  /** The campaign's state changed: its stats and recipients are worth reloading once. */
  refetchCampaign?: string;
}

function templateMatches(t: TemplateOut, f: TemplateFilters | undefined): boolean {
  if (!f) return true;
  if (f.channelId && t.channel.id !== f.channelId) return false;
  if (f.status && t.status !== f.status) return false;
  return true;
}

export function applyTemplate(qc: QueryClient, t: TemplateOut): CampaignEffects {
  const fx: CampaignEffects = {};
  qc.setQueryData<TemplateOut>(templateKeys.one(t.id), t);
  for (const q of qc.getQueryCache().findAll({ queryKey: templateKeys.lists })) {
    const f = q.queryKey[2] as TemplateFilters | undefined;
    qc.setQueryData<TemplateOut[]>(q.queryKey, (list) => {
      if (!list) return list;
      const i = list.findIndex((x) => x.id === t.id);
      const fits = templateMatches(t, f);
      if (i < 0) {
        if (fits) fx.refetchTemplateLists = true;
        return list;
      }
      // A status filter it no longer matches (e.g. "pending" once approved): out of that list.
      if (!fits) return list.filter((x) => x.id !== t.id);
      return list.map((x) => (x.id === t.id ? t : x));
    });
  }
  return fx;
}

export function applyCampaign(qc: QueryClient, c: CampaignOut): CampaignEffects {
  const fx: CampaignEffects = {};
  qc.setQueryData<CampaignOut>(campaignKeys.one(c.id), (prev) =>
    prev ? { ...c, counts: c.status === prev.status ? newerCounts(prev.counts, c.counts) : c.counts } : c,
  );
  for (const q of qc.getQueryCache().findAll({ queryKey: campaignKeys.lists })) {
    const status = q.queryKey[2] as CampaignOut['status'] | null | undefined;
    qc.setQueryData<CampaignOut[]>(q.queryKey, (list) => {
      if (!list) return list;
      const i = list.findIndex((x) => x.id === c.id);
      const fits = !status || status === c.status;
      if (i < 0) {
        if (fits) fx.refetchCampaignLists = true;
        return list;
      }
      if (!fits) return list.filter((x) => x.id !== c.id);
      return list.map((x) => (x.id === c.id ? c : x));
    });
  }
  return fx;
}

export function applyProgress(qc: QueryClient, p: ProgressEvent): void {
  const patch = <T extends { counts: CampaignOut['counts']; rate_per_second: number; eta_seconds: number | null }>(
    x: T,
  ): T => {
    const counts = newerCounts(x.counts, p.counts);
    // An older snapshot keeps its own rate and ETA too.
    if (counts !== p.counts) return x;
    return { ...x, counts, rate_per_second: p.rate_per_second, eta_seconds: p.eta_seconds };
  };
  qc.setQueryData<CampaignOut>(campaignKeys.one(p.campaign_id), (c) => (c ? patch(c) : c));
  qc.setQueryData<StatsOut>(campaignKeys.stats(p.campaign_id), (s) => (s ? patch(s) : s));
  qc.setQueriesData<CampaignOut[]>({ queryKey: campaignKeys.lists }, (list) =>
    list?.some((c) => c.id === p.campaign_id) ? list.map((c) => (c.id === p.campaign_id ? patch(c) : c)) : list,
  );
}

export function applyCampaignEvent(qc: QueryClient, name: string, data: Record<string, unknown>): CampaignEffects {
  if (name === 'template.updated') {
    const t = data.template as TemplateOut | undefined;
    return t ? applyTemplate(qc, t) : {};
  }
  if (name === 'campaign.progress') {
    if (typeof data.campaign_id === 'string' && data.counts) applyProgress(qc, data as unknown as ProgressEvent);
    return {};
  }
  if (name.startsWith('campaign.')) {
    const c = data.campaign as CampaignOut | undefined;
    if (!c) return {};
    const fx = applyCampaign(qc, c);
    // A state change (started, paused, completed…) settles numbers the stats endpoint has in full.
    if (name !== 'campaign.updated') fx.refetchCampaign = c.id;
    return fx;
  }
  return {};
}
