/**
 * Contacts: custom attribute values ↔ form values, the contact form ↔ API bodies, and server
 * field names (`identities[0].value`, `attributes.plan`) ↔ Mantine form paths.
 */
import type {
  AttrDefOut,
  AttrType,
  ContactIn,
  ContactOut,
  ContactPatch,
  IdentityKind,
  IdentityOut,
} from '../api/types';
import { isApiError, networkError } from '../api/problem';

/** The kinds a person can type in; `sandbox` identities come only from the Sandbox channel. */
export const IDENTITY_KINDS: readonly IdentityKind[] = [
  'phone',
  'email',
  'whatsapp_phone',
  'whatsapp_user',
  'telegram',
];

export const IDENTITY_LABEL: Record<IdentityKind, string> = {
  phone: 'Phone',
  email: 'E-mail',
  whatsapp_phone: 'WhatsApp phone',
  whatsapp_user: 'WhatsApp user id',
  telegram: 'Telegram id',
  sandbox: 'Sandbox handle',
};

export const ATTR_TYPE_LABEL: Record<AttrType, string> = {
  text: 'Text',
  number: 'Number',
  date: 'Date',
  boolean: 'Yes / no',
  single_choice: 'Single choice',
  multi_choice: 'Multiple choice',
};

export const ATTR_TYPES = Object.keys(ATTR_TYPE_LABEL) as AttrType[];

export function isChoice(t: AttrType): boolean {
  return t === 'single_choice' || t === 'multi_choice';
}

/** What a Mantine input holds for each attribute type. */
export type AttrFormValue = string | number | boolean | string[];

/** The empty input value of a type. */
export function emptyAttrValue(t: AttrType): AttrFormValue {
  switch (t) {
    case 'boolean':
      return false;
    case 'multi_choice':
      return [];
    default:
      return '';
  }
}

/** A stored attribute value (JSON) → the input value of its type; unknown shapes become empty. */
export function attrToForm(t: AttrType, v: unknown): AttrFormValue {
  switch (t) {
    case 'boolean':
      return v === true;
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) ? v : '';
    case 'multi_choice':
      return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
    default:
      return typeof v === 'string' ? v : '';
  }
}

/**
 * An input value → the JSON value to send, or `null` for "no value". Numbers typed as text are
 * parsed; a text that is not a number is sent as is so the server names the problem.
 */
export function formToAttr(t: AttrType, v: AttrFormValue): unknown {
  switch (t) {
    case 'boolean':
      return v === true;
    case 'number': {
      if (typeof v === 'number') return Number.isFinite(v) ? v : null;
      const s = String(v).trim();
      if (!s) return null;
      const n = Number(s);
      return Number.isFinite(n) ? n : s;
    }
    case 'multi_choice':
      return Array.isArray(v) && v.length > 0 ? v : null;
    default: {
      const s = typeof v === 'string' ? v.trim() : String(v);
      return s ? s : null;
    }
  }
}

/** A stored value for display: "—" when absent. */
export function formatAttr(t: AttrType, v: unknown): string {
  if (v === null || v === undefined || v === '') return '—';
  if (t === 'boolean') return v === true ? 'Yes' : 'No';
  if (Array.isArray(v)) return v.length ? v.join(', ') : '—';
  return String(v);
}

export interface IdentityRow {
  kind: IdentityKind;
  value: string;
}

export interface ContactFormValues {
  name: string;
  company: string;
  language: string;
  time_zone: string;
  notes: string;
  favorite: boolean;
  blocked: boolean;
  identities: IdentityRow[];
  attributes: Record<string, AttrFormValue>;
}

export function contactToForm(defs: AttrDefOut[], c?: ContactOut | null): ContactFormValues {
  const attributes: Record<string, AttrFormValue> = {};
  const stored = (c?.attributes ?? {}) as Record<string, unknown>;
  for (const d of defs) attributes[d.key] = attrToForm(d.type, stored[d.key]);
  return {
    name: c?.name ?? '',
    company: c?.company ?? '',
    language: c?.language ?? '',
    time_zone: c?.time_zone ?? '',
    notes: c?.notes ?? '',
    favorite: c?.favorite ?? false,
    blocked: c?.blocked ?? false,
    // Existing identities are edited in the detail view (add / remove); a new contact starts with a phone row.
    identities: c ? [] : [{ kind: 'phone', value: '' }],
    attributes,
  };
}

const opt = (s: string): string | null => (s.trim() ? s.trim() : null);

function attributesOut(defs: AttrDefOut[], v: ContactFormValues, keepNulls: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const d of defs) {
    const value = formToAttr(d.type, v.attributes[d.key] ?? emptyAttrValue(d.type));
    if (value !== null || keepNulls) out[d.key] = value;
  }
  return out;
}

/** The create body: blank optional fields are left out, identity rows without a value are dropped. */
export function formToContactIn(defs: AttrDefOut[], v: ContactFormValues): ContactIn {
  const body: ContactIn = {
    name: v.name.trim(),
    favorite: v.favorite,
    blocked: v.blocked,
    identities: v.identities.filter((i) => i.value.trim()).map((i) => ({ kind: i.kind, value: i.value.trim() })),
    attributes: attributesOut(defs, v, false) as ContactIn['attributes'],
  };
  for (const k of ['company', 'language', 'time_zone', 'notes'] as const) {
    const s = opt(v[k]);
    if (s !== null) body[k] = s;
  }
  return body;
}

/**
 * The update body: every field is sent; a blank optional field is `null` (cleared). Attributes
 * that had a value and are now empty are sent as `null` (removed); never-set empty ones are left out.
 */
export function formToContactPatch(defs: AttrDefOut[], v: ContactFormValues, before: ContactOut): ContactPatch {
  const stored = (before.attributes ?? {}) as Record<string, unknown>;
  const attrs = attributesOut(defs, v, true);
  for (const [k, val] of Object.entries(attrs)) {
    if (val === null && !(k in stored)) delete attrs[k];
  }
  return {
    name: v.name.trim(),
    company: opt(v.company),
    language: opt(v.language),
    time_zone: opt(v.time_zone),
    notes: opt(v.notes),
    favorite: v.favorite,
    blocked: v.blocked,
    attributes: attrs as ContactPatch['attributes'],
  };
}

/**
 * A server field name → the Mantine form path: `identities[0].value` → `identities.0.value`,
 * `/attributes/plan` → `attributes.plan`, `body.name` → `name`.
 */
export function toFormPath(field: string): string {
  let f = field.trim();
  if (f.startsWith('/')) f = f.slice(1).replaceAll('/', '.');
  if (f.startsWith('body.')) f = f.slice(5);
  return f.replace(/\[(\d+)\]/g, '.$1');
}

/** Whether `path` names something in `values` (nested objects and arrays). */
export function hasPath(values: unknown, path: string): boolean {
  let cur: unknown = values;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || !(part in (cur as Record<string, unknown>))) return false;
    cur = (cur as Record<string, unknown>)[part];
  }
  return true;
}

/** The first identity of the kinds given, in order of preference. */
export function mainIdentity(ids: IdentityOut[], kinds: IdentityKind[]): IdentityOut | undefined {
  for (const k of kinds) {
    const hit = ids.find((i) => i.kind === k);
    if (hit) return hit;
  }
  return undefined;
}

/** IANA time zones from the browser, with a small fallback for old engines. */
export function timeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (k: string) => string[] };
  try {
    const zones = intl.supportedValuesOf?.('timeZone');
    if (zones && zones.length) return zones.includes('UTC') ? zones : ['UTC', ...zones];
  } catch {
    // fall through
  }
  return ['UTC', 'Europe/London', 'Europe/Lisbon', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'];
}

/** Turns a label into a suggested attribute key: "Customer plan" → "customer_plan". */
export function suggestKey(label: string): string {
  return label
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .replace(/^(\d)/, 'f_$1')
    .slice(0, 40);
}

/**
 * Like `applyApiError`, for forms with nested values: each field error goes under the input at
 * its path (`identities.0.value`, `attributes.plan`); the rest is returned for a form-level alert.
 */
export function applyNestedApiError(
  form: { getValues(): unknown; setFieldError(path: string, message: string): void },
  err: unknown,
): string | null {
  const e = isApiError(err) ? err : networkError(err);
  const values = form.getValues();
  const unmatched: string[] = [];
  let matched = 0;
  for (const fe of e.errors) {
    const path = toFormPath(fe.field);
    if (path && hasPath(values, path)) {
      form.setFieldError(path, fe.message);
      matched++;
    } else {
      unmatched.push(fe.field ? `${fe.field}: ${fe.message}` : fe.message);
    }
  }
  if (matched > 0 && unmatched.length === 0) return null;
  if (unmatched.length > 0) return `${e.userMessage} (${unmatched.join('; ')})`;
  return e.userMessage;
}

const NOT_COUNTRIES = new Set(['EU', 'EZ', 'UN', 'QO', 'XA', 'XB', 'ZZ']);

/** ISO 3166-1 alpha-2 regions the browser can name, as select options "Portugal (PT)", sorted by name. */
export function countryOptions(locale?: string): { value: string; label: string }[] {
  let names: Intl.DisplayNames;
  try {
    names = new Intl.DisplayNames(locale ? [locale] : undefined, { type: 'region', fallback: 'none' });
  } catch {
    return [];
  }
  const out: { value: string; label: string }[] = [];
  for (let a = 65; a <= 90; a++) {
    for (let b = 65; b <= 90; b++) {
      const code = String.fromCharCode(a, b);
      if (NOT_COUNTRIES.has(code)) continue;
      let name: string | undefined;
      try {
        name = names.of(code);
      } catch {
        name = undefined;
      }
      if (name && name !== code) out.push({ value: code, label: `${name} (${code})` });
    }
  }
  return out.sort((x, y) => x.label.localeCompare(y.label));
}
