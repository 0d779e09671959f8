/**
 * Canned responses: the shortcut rule, `/shortcut` detection in the composer, and the variables
 * rendered client-side when one is inserted. Unknown variables stay as written; known ones
 * without a value (a contact with no e-mail) become empty and are reported, so the composer can
 * warn before the text goes to a customer.
 */

export const SHORTCUT_RE = /^[a-z0-9_-]{1,32}$/;

export function shortcutError(v: string): string | null {
  if (!v) return 'Enter a shortcut';
  if (v.length > 32) return 'At most 32 characters';
  return SHORTCUT_RE.test(v) ? null : 'Use lower-case letters, digits, - and _ only';
}

export const VARIABLES = [
  'contact.name',
  'contact.first_name',
  'contact.phone',
  'contact.email',
  'agent.name',
  'agent.first_name',
  'conversation.id',
] as const;
export type Variable = (typeof VARIABLES)[number];

export interface VariableContext {
  contact?: { name?: string | null; phone?: string | null; email?: string | null };
  agent?: { name?: string | null };
  conversation?: { id?: string | null };
}

function firstName(name: string | null | undefined): string | null {
  const first = name?.trim().split(/\s+/)[0];
  return first || null;
}

function valueOf(v: Variable, ctx: VariableContext): string | null {
  switch (v) {
    case 'contact.name':
      return ctx.contact?.name?.trim() || null;
    case 'contact.first_name':
      return firstName(ctx.contact?.name);
    case 'contact.phone':
      return ctx.contact?.phone || null;
    case 'contact.email':
      return ctx.contact?.email || null;
    case 'agent.name':
      return ctx.agent?.name?.trim() || null;
    case 'agent.first_name':
      return firstName(ctx.agent?.name);
    case 'conversation.id':
      return ctx.conversation?.id || null;
  }
}

/** `{{ contact.first_name }}` → "Ada". Returns the text and the known variables that had no value. */
export function renderCanned(body: string, ctx: VariableContext): { text: string; missing: Variable[] } {
  const missing: Variable[] = [];
  const text = body.replace(/\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}/g, (whole, name: string) => {
    if (!(VARIABLES as readonly string[]).includes(name)) return whole;
    const value = valueOf(name as Variable, ctx);
    if (value === null) {
      if (!missing.includes(name as Variable)) missing.push(name as Variable);
      return '';
    }
    return value;
  });
  return { text, missing };
}

/**
 * The `/shortcut` being typed at `caret`: a `/` at the start of the text or after whitespace,
 * followed by shortcut characters up to the caret. Null when the caret is not in one.
 */
export function activeShortcut(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const m = /(^|\s)\/([a-z0-9_-]{0,32})$/.exec(before);
  if (!m) return null;
  return { start: caret - m[2]!.length - 1, query: m[2]! };
}

/** Replaces `text[start, caret)` (the `/query`) with `insert`; returns the new text and caret. */
export function replaceRange(
  text: string,
  start: number,
  caret: number,
  insert: string,
): { text: string; caret: number } {
  return { text: text.slice(0, start) + insert + text.slice(caret), caret: start + insert.length };
}
