/**
 * Campaigns (issue 6), hand-written from the API contract until the OpenAPI document describes
 * them (see `api/untyped.ts`).
 *
 * `sent` / `delivered` / `read` in `Counts` are cumulative ("reached at least"): delivered ⊆ sent,
 * read ⊆ delivered. A recipient is done once sent, failed or skipped.
 */
import type { ChannelRef, Mapping, TemplateCategory, TemplateStatus } from '../templates/types';

export interface Counts {
  total: number;
  pending: number;
  sending: number;
  sent: number;
  delivered: number;
  read: number;
  replied: number;
  failed: number;
  skipped: number;
}

export type Slice =
  'failed' | 'skipped' | 'sent_not_delivered' | 'delivered_not_read' | 'read' | 'replied' | 'not_replied';

export interface Audience {
  groups: string[];
  tags: string[];
  segments: string[];
  exclude_groups: string[];
  exclude_tags: string[];
  exclude_segments: string[];
  from_campaign?: { campaign_id: string; slice: Slice } | null;
}

export type CampaignStatus = 'draft' | 'scheduled' | 'running' | 'paused' | 'completed' | 'cancelled' | 'failed';

export interface CampaignOut {
  id: string;
  name: string;
  channel: ChannelRef;
  template: { id: string; name: string; language: string; category: TemplateCategory; status: TemplateStatus } | null;
  variables: Mapping;
  audience: Audience;
  status: CampaignStatus;
  /** Why it paused by itself (or why it failed). */
  pause_reason: string | null;
  scheduled_at: string | null;
  time_zone: string | null;
  /** 0..1: pauses by itself above this failure rate. */
  failure_threshold: number;
  counts: Counts;
  rate_per_second: number;
  eta_seconds: number | null;
  created_at: string;
  updated_at: string;
  launched_at: string | null;
  completed_at: string | null;
}

export interface CampaignIn {
  name: string;
  channel_id: string;
  template_id: string;
  variables?: Mapping;
  audience: Audience;
  failure_threshold?: number;
}

export type CampaignPatch = Partial<Omit<CampaignIn, 'channel_id'>> & { channel_id?: string };

export interface Breakdown {
  total: number;
  eligible: number;
  opted_out: number;
  no_consent: number;
  blocked: number;
  no_identity: number;
  missing_variables: number;
}

export interface LaunchIn {
  /** Local wall time `YYYY-MM-DDTHH:mm` in `time_zone`. */
  scheduled_at?: string;
  time_zone?: string;
}

export type SkipReason =
  'opted_out' | 'no_consent' | 'blocked' | 'no_identity' | 'missing_variable' | 'duplicate_address' | 'cancelled';

export interface SeriesPoint {
  /** Start of a one-minute bucket. */
  at: string;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
}

export interface StatsOut {
  counts: Counts;
  rate_per_second: number;
  eta_seconds: number | null;
  failed_by_code: { code: number | string; title: string; count: number }[];
  skipped_by_reason: { reason: SkipReason | string; count: number }[];
  series: SeriesPoint[];
}

export type RecipientState = 'pending' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed' | 'skipped';

export interface RecipientOut {
  contact_id: string;
  contact_name: string;
  address: string;
  state: RecipientState;
  replied: boolean;
  error_code: number | null;
  error_title: string | null;
  skip_reason: string | null;
  sent_at: string | null;
  delivered_at: string | null;
  read_at: string | null;
  replied_at: string | null;
  failed_at: string | null;
}

export interface RecipientPage {
  items: RecipientOut[];
  next_cursor: string | null;
}

/** `campaign.progress` (at most one a second per campaign). */
export interface ProgressEvent {
  campaign_id: string;
  counts: Counts;
  rate_per_second: number;
  eta_seconds: number | null;
}
