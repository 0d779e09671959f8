/**
 * Variable mappings: where each template variable's value comes from when a message goes to a
 * contact (a fixed text, a contact field or a custom attribute), with a fallback for contacts
 * that lack it. Shared by the template builder (the template's default mapping) and the campaign
 * wizard (the campaign's own, prefilled from the template's).
 */
import type { AttrDefOut } from '../../api/types';
import type { Mapping, VariableMapping, VariableSource } from './types';

export const CONTACT_SOURCES: { value: VariableSource; label: string }[] = [
  { value: 'fixed', label: 'Fixed text' },
  { value: 'contact.name', label: 'Contact name' },
  { value: 'contact.first_name', label: 'First name' },
  { value: 'contact.company', label: 'Company' },
  { value: 'contact.email', label: 'E-mail' },
  { value: 'contact.phone', label: 'Phone' },
  { value: 'contact.language', label: 'Language' },
];

/** The source choices: the contact fields, then one per custom attribute (`attr.<key>`). */
export function sourceOptions(defs: readonly Pick<AttrDefOut, 'key' | 'label'>[]): { value: string; label: string }[] {
  return [...CONTACT_SOURCES, ...defs.map((d) => ({ value: `attr.${d.key}`, label: `Field: ${d.label}` }))];
}

export function sourceLabel(source: string, defs: readonly Pick<AttrDefOut, 'key' | 'label'>[] = []): string {
  const known = CONTACT_SOURCES.find((s) => s.value === source);
  if (known) return known.label;
  if (source.startsWith('attr.')) {
    const key = source.slice(5);
    return `Field: ${defs.find((d) => d.key === key)?.label ?? key}`;
  }
  return source;
}

/** One entry per variable, in order: the given mapping where it has one, else a fixed text. */
export function completeMapping(variables: readonly string[], ...sources: (Mapping | null | undefined)[]): Mapping {
  const out: Mapping = {};
  for (const key of variables) {
    const found = sources.map((s) => s?.[key]).find(Boolean);
    out[key] = found ? { ...found } : { source: 'fixed', value: '' };
  }
  return out;
}

/** The entry as sent: a fixed text keeps its value, other sources their (non-empty) fallback. */
export function cleanEntry(e: VariableMapping): VariableMapping {
  const value = e.value?.trim() ?? '';
  const fallback = e.fallback?.trim() ?? '';
  if (e.source === 'fixed') return { source: 'fixed', value };
  return { source: e.source, ...(fallback ? { fallback } : {}) };
}

export function cleanMapping(m: Mapping, variables: readonly string[]): Mapping {
  const out: Mapping = {};
  for (const key of variables) if (m[key]) out[key] = cleanEntry(m[key]!);
  return out;
}

/**
 * Problems per variable key that make a send impossible for everyone: a fixed text left empty, a
 * custom attribute without a key. (A contact field without a fallback is allowed: contacts missing
 * it are skipped as "missing variables", which the audience preview counts.)
 */
export function mappingErrors(m: Mapping, variables: readonly string[]): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const key of variables) {
    const e = m[key];
    if (!e) errors[key] = 'Choose where the value comes from';
    else if (e.source === 'fixed' && !e.value?.trim()) errors[key] = 'Enter the text to use';
    else if (e.source.startsWith('attr.') && e.source.length <= 5) errors[key] = 'Choose a field';
  }
  return errors;
}

/** What a preview shows for a mapped variable: the fixed text, or the source's name in brackets. */
export function mappedPreviewValue(
  e: VariableMapping | undefined,
  defs: readonly Pick<AttrDefOut, 'key' | 'label'>[] = [],
): string | undefined {
  if (!e) return undefined;
  if (e.source === 'fixed') return e.value?.trim() || undefined;
  return `[${sourceLabel(e.source, defs)}]`;
}
