/** Campaign calls (issue 6): query keys, read hooks and writes. */
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';

import { raw } from '../../api/untyped';
import { fileNameFrom, saveBlob } from '../download';
import type {
  Audience,
  Breakdown,
  CampaignIn,
  CampaignOut,
  CampaignPatch,
  CampaignStatus,
  LaunchIn,
  RecipientPage,
  RecipientState,
  Slice,
  StatsOut,
} from './types';

export const campaignKeys = {
  all: ['campaigns'] as const,
  lists: ['campaigns', 'list'] as const,
  list: (status: CampaignStatus | null) => ['campaigns', 'list', status] as const,
  one: (id: string) => ['campaigns', 'one', id] as const,
  stats: (id: string) => ['campaigns', 'stats', id] as const,
  recipientsOf: (id: string) => ['campaigns', 'recipients', id] as const,
  recipients: (id: string, state: RecipientState | null) => ['campaigns', 'recipients', id, state] as const,
  audience: (id: string) => ['campaigns', 'audience', id] as const,
};

const path = (id: string, rest = '') => `/api/v1/campaigns/${encodeURIComponent(id)}${rest}`;

/** Statuses during which counts move (and the page polls as a fallback to the socket). */
export const LIVE: readonly CampaignStatus[] = ['running', 'scheduled'];

export function useCampaigns(status: CampaignStatus | null) {
  return useQuery({
    queryKey: campaignKeys.list(status),
    queryFn: () =>
      raw.get<{ items: CampaignOut[] }>('/api/v1/campaigns', { status: status ?? undefined }).then((r) => r.items),
    // Progress events keep running rows current; the poll only catches what a dropped socket missed.
    refetchInterval: (q) => (q.state.data?.some((c) => LIVE.includes(c.status)) ? 15_000 : false),
  });
}

export function useCampaign(id: string) {
  return useQuery({
    queryKey: campaignKeys.one(id),
    queryFn: () => raw.get<CampaignOut>(path(id)),
    refetchInterval: (q) => (q.state.data && LIVE.includes(q.state.data.status) ? 10_000 : false),
  });
}

/** Delivery and read receipts keep coming in for a while after the last send. */
const RECEIPTS_WINDOW_MS = 10 * 60_000;

/**
 * How often a campaign's stats are refetched: every few seconds while it sends or is paused
 * (events move the counts in between), every few more for a while after it finished (late
 * receipts), else never.
 */
export function statsInterval(c: Pick<CampaignOut, 'status' | 'completed_at'>, now = Date.now()): number | false {
  if (c.status === 'running' || c.status === 'paused') return 3_000;
  if (c.completed_at && now - Date.parse(c.completed_at) < RECEIPTS_WINDOW_MS) return 5_000;
  return false;
}

export function useCampaignStats(c: Pick<CampaignOut, 'id' | 'status' | 'completed_at'>) {
  return useQuery({
    queryKey: campaignKeys.stats(c.id),
    queryFn: () => raw.get<StatsOut>(path(c.id, '/stats')),
    refetchInterval: () => statsInterval(c),
  });
}

export const RECIPIENT_PAGE = 50;

export function useRecipients(id: string, state: RecipientState | null) {
  return useInfiniteQuery({
    queryKey: campaignKeys.recipients(id, state),
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      raw.get<RecipientPage>(path(id, '/recipients'), {
        state: state ?? undefined,
        cursor: pageParam,
        limit: RECIPIENT_PAGE,
      }),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    placeholderData: (prev) => prev,
  });
}

export function useCampaignAudience(id: string, enabled = true) {
  return useQuery({
    queryKey: campaignKeys.audience(id),
    queryFn: () => raw.get<Breakdown>(path(id, '/audience')),
    enabled,
  });
}

export const createCampaign = (body: CampaignIn) => raw.post<CampaignOut>('/api/v1/campaigns', body);
export const updateCampaign = (id: string, body: CampaignPatch) => raw.patch<CampaignOut>(path(id), body);
export const deleteCampaign = (id: string) => raw.del(path(id));
export const previewAudience = (body: { channel_id: string; template_id?: string; audience: Audience }) =>
  raw.post<Breakdown>('/api/v1/campaigns/audience-preview', body);
export const launchCampaign = (id: string, body: LaunchIn) => raw.post<CampaignOut>(path(id, '/launch'), body);
export const pauseCampaign = (id: string) => raw.post<CampaignOut>(path(id, '/pause'));
export const resumeCampaign = (id: string) => raw.post<CampaignOut>(path(id, '/resume'));
export const cancelCampaign = (id: string) => raw.post<CampaignOut>(path(id, '/cancel'));
export const retargetCampaign = (id: string, slice: Slice, name?: string) =>
  raw.post<CampaignOut>(path(id, '/retarget'), { slice, ...(name ? { name } : {}) });

/** Downloads the per-recipient CSV (through the API client, which carries the bearer token). */
export async function exportCampaign(c: Pick<CampaignOut, 'id' | 'name'>): Promise<void> {
  const { blob, response } = await raw.blob(path(c.id, '/export'));
  const safe = c.name.replace(/[^\p{L}\p{N}_-]+/gu, '-').replace(/^-+|-+$/g, '') || 'campaign';
  saveBlob(blob, fileNameFrom(response.headers.get('Content-Disposition'), `${safe}-recipients.csv`));
}
