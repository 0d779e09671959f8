/** CSV import helpers: the header row read client-side, and a first guess at each column's target. */
import type { AttrDefOut } from '../api/types';

export const BASE_TARGETS: { value: string; label: string }[] = [
  { value: 'name', label: 'Name' },
  { value: 'company', label: 'Company' },
  { value: 'language', label: 'Language' },
  { value: 'time_zone', label: 'Time zone' },
  { value: 'notes', label: 'Notes' },
  { value: 'phone', label: 'Phone' },
  { value: 'email', label: 'E-mail' },
  { value: 'whatsapp_phone', label: 'WhatsApp phone' },
  { value: 'telegram', label: 'Telegram' },
  { value: 'tag', label: 'Tags (separated by ;)' },
  { value: 'ignore', label: 'Ignore' },
];

export function importTargets(defs: readonly AttrDefOut[]): { value: string; label: string }[] {
  return [...BASE_TARGETS, ...defs.map((d) => ({ value: `attr:${d.key}`, label: `Field: ${d.label}` }))];
}

/** The cells of the first record of a CSV text (RFC 4180 quoting, BOM stripped). */
export function csvHeader(text: string): string[] {
  const s = text.replace(/^\uFEFF/, '');
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quoted) {
      if (ch === '"') {
        if (s[i + 1] === '"') {
          cell += '"';
          i++;
        } else quoted = false;
      } else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      cells.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') break;
    else cell += ch;
  }
  cells.push(cell);
  return cells.map((c) => c.trim()).filter((c, i, all) => c !== '' || i < all.length - 1);
}

const ALIASES: Record<string, string> = {
  name: 'name',
  'full name': 'name',
  company: 'company',
  organization: 'company',
  language: 'language',
  'time zone': 'time_zone',
  time_zone: 'time_zone',
  timezone: 'time_zone',
  notes: 'notes',
  phone: 'phone',
  mobile: 'phone',
  email: 'email',
  'e-mail': 'email',
  whatsapp: 'whatsapp_phone',
  whatsapp_phone: 'whatsapp_phone',
  telegram: 'telegram',
  tag: 'tag',
  tags: 'tag',
};

/** A first guess per column: known names, then attribute keys/labels, else `ignore`; each scalar once. */
export function guessMapping(header: readonly string[], defs: readonly AttrDefOut[]): Record<string, string> {
  const used = new Set<string>();
  const out: Record<string, string> = {};
  for (const h of header) {
    const k = h.trim().toLowerCase();
    let t = ALIASES[k];
    if (!t) {
      const d = defs.find((x) => x.key.toLowerCase() === k || x.label.toLowerCase() === k);
      if (d) t = `attr:${d.key}`;
    }
    if (!t || (t !== 'tag' && used.has(t))) t = 'ignore';
    if (t !== 'ignore' && t !== 'tag') used.add(t);
    out[h] = t;
  }
  return out;
}
