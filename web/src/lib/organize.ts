/**
 * Tags, groups, bulk actions and consent: row selection, bulk request bodies and their result
 * messages, tag colours, and the consent channel × purpose grid.
 */
import type {
  BulkAction,
  BulkIn,
  ConsentChannel,
  ConsentPurpose,
  ConsentSource,
  ConsentStateOut,
  ConsentStatus,
} from '../api/types';

/** The selected ids that are among `visible`, in the order shown. */
export function selectedOnPage(selected: ReadonlySet<string>, visible: readonly string[]): string[] {
  return visible.filter((id) => selected.has(id));
}

/** Select-all checkbox state for the rows shown. */
export function pageSelection(selected: ReadonlySet<string>, visible: readonly string[]): 'none' | 'some' | 'all' {
  const n = selectedOnPage(selected, visible).length;
  if (n === 0) return 'none';
  return n === visible.length ? 'all' : 'some';
}

/** Toggles every row shown: selects them all unless all are already selected. */
export function togglePage(selected: ReadonlySet<string>, visible: readonly string[]): Set<string> {
  const next = new Set(selected);
  if (pageSelection(selected, visible) === 'all') visible.forEach((id) => next.delete(id));
  else visible.forEach((id) => next.add(id));
  return next;
}

export function toggleOne(selected: ReadonlySet<string>, id: string): Set<string> {
  const next = new Set(selected);
  if (next.has(id)) next.delete(id);
  else next.add(id);
  return next;
}

/** The request body for a bulk action on `contactIds` with one tag or group (`target`). */
export function bulkBody(action: BulkAction, contactIds: string[], target?: string): BulkIn {
  switch (action) {
    case 'add_tags':
    case 'remove_tags':
      return { action, contact_ids: contactIds, tag_ids: target ? [target] : [] };
    case 'add_to_groups':
    case 'remove_from_groups':
      return { action, contact_ids: contactIds, group_ids: target ? [target] : [] };
    case 'delete':
      return { action, contact_ids: contactIds };
  }
}

const plural = (n: number) => `${n} contact${n === 1 ? '' : 's'}`;

/** The notification for a finished bulk action. */
export function bulkMessage(action: BulkAction, affected: number, targetName?: string): string {
  const t = targetName ?? '';
  switch (action) {
    case 'add_tags':
      return `Tagged ${plural(affected)} with ${t}`;
    case 'remove_tags':
      return `Removed ${t} from ${plural(affected)}`;
    case 'add_to_groups':
      return `Added ${plural(affected)} to ${t}`;
    case 'remove_from_groups':
      return `Removed ${plural(affected)} from ${t}`;
    case 'delete':
      return `Deleted ${plural(affected)}`;
  }
}

/** `#RRGGBB`, as the server accepts. */
export function isHexColor(v: string): boolean {
  return /^#[0-9a-fA-F]{6}$/.test(v.trim());
}

/** Black or white text, whichever reads better on `hex`. */
export function textOn(hex: string): string {
  if (!isHexColor(hex)) return '#000000';
  const n = parseInt(hex.trim().slice(1), 16);
  const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#000000' : '#ffffff';
}

export const TAG_SWATCHES = [
  '#e03131',
  '#f08c00',
  '#f59f00',
  '#2f9e44',
  '#0c8599',
  '#1971c2',
  '#6741d9',
  '#c2255c',
  '#495057',
];

export const CONSENT_CHANNELS: readonly ConsentChannel[] = ['whatsapp', 'telegram', 'email', 'sms'];
export const CONSENT_PURPOSES: readonly ConsentPurpose[] = ['marketing', 'utility'];

export const CHANNEL_LABEL: Record<ConsentChannel, string> = {
  whatsapp: 'WhatsApp',
  telegram: 'Telegram',
  email: 'E-mail',
  sms: 'SMS',
};
export const PURPOSE_LABEL: Record<ConsentPurpose, string> = { marketing: 'Marketing', utility: 'Utility' };
export const STATUS_LABEL: Record<ConsentStatus, string> = { opted_in: 'Opted in', opted_out: 'Opted out' };
export const SOURCE_LABEL: Record<ConsentSource, string> = {
  form: 'Form',
  import: 'Import',
  keyword: 'Keyword',
  api: 'API',
  agent: 'Agent',
  provider: 'Provider',
};

export interface ConsentCell {
  channel: ConsentChannel;
  purpose: ConsentPurpose;
  state: ConsentStateOut | null;
}

/** Every channel × purpose, with its standing entry or null when nothing was ever recorded. */
export function consentGrid(current: readonly ConsentStateOut[]): ConsentCell[] {
  return CONSENT_CHANNELS.flatMap((channel) =>
    CONSENT_PURPOSES.map((purpose) => ({
      channel,
      purpose,
      state: current.find((c) => c.channel === channel && c.purpose === purpose) ?? null,
    })),
  );
}
