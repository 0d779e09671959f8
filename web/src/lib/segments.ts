/**
 * The segment condition builder's model: a flat list of condition rows under an all/any toggle,
 * to and from the server's filter JSON, and server error paths (`filter.all[1].value`) → row index.
 */
import type { AttrDefOut, AttrType } from '../api/types';

export type SegmentMode = 'all' | 'any';

export interface ConditionRow {
  /** `tag`, `group`, `favorite`, `blocked`, `consent`, `attr:<key>`. */
  field: string;
  op: string;
  /** Tag / group id, `true`/`false`, or the attribute value as typed. */
  value: string;
  channel: string;
  purpose: string;
}

export interface SegmentDraft {
  mode: SegmentMode;
  rows: ConditionRow[];
}

export const OP_LABEL: Record<string, string> = {
  has: 'has',
  has_not: 'has not',
  in: 'in',
  not_in: 'not in',
  is: 'is',
  eq: 'equals',
  neq: 'does not equal',
  gt: 'greater than',
  lt: 'less than',
  contains: 'contains',
  is_set: 'is set',
  is_not_set: 'is not set',
  opted_in: 'opted in',
  opted_out: 'opted out',
  no_consent: 'no consent',
};

const ATTR_OPS: Record<AttrType, string[]> = {
  text: ['eq', 'neq', 'contains', 'is_set', 'is_not_set'],
  number: ['eq', 'neq', 'gt', 'lt', 'is_set', 'is_not_set'],
  date: ['eq', 'neq', 'gt', 'lt', 'is_set', 'is_not_set'],
  boolean: ['eq', 'is_set', 'is_not_set'],
  single_choice: ['eq', 'neq', 'is_set', 'is_not_set'],
  multi_choice: ['contains', 'is_set', 'is_not_set'],
};

export function attrDef(field: string, defs: readonly AttrDefOut[]): AttrDefOut | undefined {
  if (!field.startsWith('attr:')) return undefined;
  const key = field.slice(5);
  return defs.find((d) => d.key === key);
}

/** The operators a field allows. */
export function opsFor(field: string, defs: readonly AttrDefOut[]): string[] {
  switch (field) {
    case 'tag':
      return ['has', 'has_not'];
    case 'group':
      return ['in', 'not_in'];
    case 'favorite':
    case 'blocked':
      return ['is'];
    case 'consent':
      return ['opted_in', 'opted_out', 'no_consent'];
    default: {
      const d = attrDef(field, defs);
      return d ? ATTR_OPS[d.type] : ['eq', 'neq', 'is_set', 'is_not_set'];
    }
  }
}

/** Whether the operator takes a value input. */
export function needsValue(field: string, op: string): boolean {
  return field !== 'consent' && op !== 'is_set' && op !== 'is_not_set';
}

export function newRow(field = 'tag', defs: readonly AttrDefOut[] = []): ConditionRow {
  const op = opsFor(field, defs)[0] ?? 'eq';
  const value = field === 'favorite' || field === 'blocked' ? 'true' : '';
  return { field, op, value, channel: 'whatsapp', purpose: 'marketing' };
}

function attrValue(raw: string, type: AttrType | undefined): unknown {
  if (type === 'number') {
    const n = Number(raw);
    return raw.trim() !== '' && Number.isFinite(n) ? n : raw;
  }
  if (type === 'boolean') return raw === 'true';
  return raw;
}

export function rowToCondition(row: ConditionRow, defs: readonly AttrDefOut[]): Record<string, unknown> {
  if (row.field === 'consent') return { field: 'consent', op: row.op, channel: row.channel, purpose: row.purpose };
  if (row.field === 'favorite' || row.field === 'blocked')
    return { field: row.field, op: 'is', value: row.value === 'true' };
  if (!needsValue(row.field, row.op)) return { field: row.field, op: row.op };
  if (row.field.startsWith('attr:'))
    return { field: row.field, op: row.op, value: attrValue(row.value, attrDef(row.field, defs)?.type) };
  return { field: row.field, op: row.op, value: row.value };
}

export function toFilter(draft: SegmentDraft, defs: readonly AttrDefOut[]): Record<string, unknown> {
  return { [draft.mode]: draft.rows.map((r) => rowToCondition(r, defs)) };
}

function str(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  return String(v as number | boolean);
}

/** A saved filter back into the builder (top-level conditions; nested groups are not editable here). */
export function fromFilter(filter: unknown): SegmentDraft {
  const f = (filter ?? {}) as Record<string, unknown>;
  const mode: SegmentMode = Array.isArray(f.any) ? 'any' : 'all';
  const list = (Array.isArray(f[mode]) ? f[mode] : []) as Record<string, unknown>[];
  const rows = list
    .filter((c) => typeof c.field === 'string')
    .map((c) => ({
      field: str(c.field),
      op: str(c.op),
      value: str(c.value),
      channel: str(c.channel) || 'whatsapp',
      purpose: str(c.purpose) || 'marketing',
    }));
  return { mode, rows };
}

/** `filter.all[1].value` → 1 (the top-level row the error belongs to), else null. */
export function errorRow(field: string): number | null {
  const m = /^filter\.(?:all|any)\[(\d+)\]/.exec(field);
  return m ? Number(m[1]) : null;
}
