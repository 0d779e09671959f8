/**
 * How a campaign's numbers are shown: progress (done = sent + failed + skipped of total), the
 * sending rate and time left, status / slice / skip-reason labels, and which of two snapshots of
 * the counts is newer (socket events and stats refetches race; counts only ever grow).
 */
import type { CampaignOut, CampaignStatus, Counts, RecipientState, Slice, SkipReason } from './types';

export const EMPTY_COUNTS: Counts = {
  total: 0,
  pending: 0,
  sending: 0,
  sent: 0,
  delivered: 0,
  read: 0,
  replied: 0,
  failed: 0,
  skipped: 0,
};

/** Recipients that are finished: sent (delivered and read are part of sent), failed or skipped. */
export function doneCount(c: Counts): number {
  return c.sent + c.failed + c.skipped;
}

/** 0–100, one decimal; 100 when there is nothing to send. */
export function progressPercent(c: Counts): number {
  if (c.total <= 0) return 0;
  return Math.min(100, Math.round((doneCount(c) / c.total) * 1000) / 10);
}

/** "1,234 / 5,000" (done / total). */
export function progressLabel(c: Counts): string {
  const n = new Intl.NumberFormat('en-US');
  return `${n.format(Math.min(doneCount(c), c.total))} / ${n.format(c.total)}`;
}

/** "12.5 msg/s", "0.4 msg/s", "—" when idle. */
export function formatRate(perSecond: number | null | undefined): string {
  if (!perSecond || !Number.isFinite(perSecond) || perSecond <= 0) return '—';
  const digits = perSecond >= 100 ? 0 : 1;
  return `${perSecond.toFixed(digits).replace(/\.0$/, '')} msg/s`;
}

/** "less than a minute", "4 min", "1 h 05 min", "2 d 3 h"; "—" when unknown. */
export function formatEta(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—';
  if (seconds < 60) return 'less than a minute';
  const mins = Math.round(seconds / 60);
  if (mins < 60) return `${mins} min`;
  const h = Math.floor(mins / 60);
  if (h < 24) return `${h} h ${String(mins % 60).padStart(2, '0')} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** Sum of the counters that only ever grow, to tell which snapshot is newer. */
function reached(c: Counts): number {
  return c.sent + c.delivered + c.read + c.replied + c.failed + c.skipped;
}

/** `next`, unless it is older than `prev` (a stats response that left before the last event). */
export function newerCounts(prev: Counts | undefined, next: Counts): Counts {
  if (!prev) return next;
  return reached(next) >= reached(prev) ? next : prev;
}

export const STATUS_LABEL: Record<CampaignStatus, string> = {
  draft: 'Draft',
  scheduled: 'Scheduled',
  running: 'Running',
  paused: 'Paused',
  completed: 'Completed',
  cancelled: 'Cancelled',
  failed: 'Failed',
};

export const STATUS_COLOR: Record<CampaignStatus, string> = {
  draft: 'gray',
  scheduled: 'indigo',
  running: 'blue',
  paused: 'orange',
  completed: 'teal',
  cancelled: 'gray',
  failed: 'red',
};

export const SLICE_LABEL: Record<Slice, string> = {
  failed: 'Failed',
  skipped: 'Skipped',
  sent_not_delivered: 'Sent but not delivered',
  delivered_not_read: 'Delivered but not read',
  read: 'Read',
  replied: 'Replied',
  not_replied: 'Did not reply',
};

export const SLICES = Object.keys(SLICE_LABEL) as Slice[];

export const SKIP_LABEL: Record<SkipReason, string> = {
  opted_out: 'Opted out',
  no_consent: 'No marketing consent',
  blocked: 'Blocked',
  no_identity: 'No address for this channel',
  missing_variable: 'Missing variable',
  duplicate_address: 'Same address twice',
  cancelled: 'Campaign cancelled',
};

export function skipLabel(reason: string): string {
  return SKIP_LABEL[reason as SkipReason] ?? reason.replaceAll('_', ' ');
}

export const RECIPIENT_STATES: RecipientState[] = [
  'pending',
  'sending',
  'sent',
  'delivered',
  'read',
  'failed',
  'skipped',
];

export const RECIPIENT_LABEL: Record<RecipientState, string> = {
  pending: 'Pending',
  sending: 'Sending',
  sent: 'Sent',
  delivered: 'Delivered',
  read: 'Read',
  failed: 'Failed',
  skipped: 'Skipped',
};

export const canPause = (c: Pick<CampaignOut, 'status'>) => c.status === 'running';
export const canResume = (c: Pick<CampaignOut, 'status'>) => c.status === 'paused';
export const canCancel = (c: Pick<CampaignOut, 'status'>) => ['running', 'paused', 'scheduled'].includes(c.status);
export const canEdit = (c: Pick<CampaignOut, 'status'>) => c.status === 'draft' || c.status === 'scheduled';
export const canDelete = (c: Pick<CampaignOut, 'status'>) => c.status !== 'running' && c.status !== 'paused';
/** Retargeting needs recipients with a result. */
export const canRetarget = (c: Pick<CampaignOut, 'status'>) => !['draft', 'scheduled'].includes(c.status);
