/**
 * The template builder's logic, free of React: one flat form for every part of a template, its
 * request body, the variables it declares (in the order the server lists them), "Add variable",
 * the live preview model (variables replaced by their examples) and the server's field paths
 * (`components.buttons[1].text`) → form paths (`buttons.1.text`).
 *
 * Variables are `{{1}}`, `{{2}}`… (positional) or `{{first_name}}` (named, not mixed with
 * positional ones). Keys say where they sit: `header.1`, `body.2`, `body.first_name`, and
 * `button.<index>` for a URL button's `{{1}}` suffix or a copy-code button's code.
 */
import { normalizeField } from '../../api/problem';
import type {
  ButtonType,
  Components,
  HeaderFormat,
  Mapping,
  PreviewOut,
  TemplateCategory,
  TemplateIn,
  TemplateOut,
  TemplatePatch,
} from './types';

export interface ButtonDraft {
  type: ButtonType;
  text: string;
  url: string;
  /** URL suffix example, or the copy code's example. */
  example: string;
  phone: string;
}

export interface TemplateFormValues {
  channel_id: string;
  name: string;
  language: string;
  category: TemplateCategory;
  header_format: 'none' | HeaderFormat;
  header_text: string;
  /** The text header's `{{1}}` example, or the sample media URL. */
  header_example: string;
  body_text: string;
  body_examples: string[];
  footer: string;
  buttons: ButtonDraft[];
}

export const MAX_BUTTONS = 10;
export const LIMITS = { name: 512, header: 60, body: 1024, footer: 60, buttonText: 25, url: 2000 } as const;

export const CATEGORY_LABEL: Record<TemplateCategory, string> = {
  MARKETING: 'Marketing',
  UTILITY: 'Utility',
  AUTHENTICATION: 'Authentication',
};

export const BUTTON_LABEL: Record<ButtonType, string> = {
  quick_reply: 'Quick reply',
  url: 'Visit website',
  phone: 'Call phone number',
  copy_code: 'Copy offer code',
};

export const HEADER_LABEL: Record<'none' | HeaderFormat, string> = {
  none: 'None',
  text: 'Text',
  image: 'Image',
  video: 'Video',
  document: 'Document',
};

export function emptyButton(type: ButtonType): ButtonDraft {
  return { type, text: '', url: '', example: '', phone: '' };
}

export function emptyTemplateForm(channelId = ''): TemplateFormValues {
  return {
    channel_id: channelId,
    name: '',
    language: 'en_US',
    category: 'MARKETING',
    header_format: 'none',
    header_text: '',
    header_example: '',
    body_text: '',
    body_examples: [],
    footer: '',
    buttons: [],
  };
}

export function templateToForm(t: TemplateOut): TemplateFormValues {
  const c = t.components;
  const h = c.header;
  return {
    channel_id: t.channel.id,
    name: t.name,
    language: t.language,
    category: t.category,
    header_format: h ? h.format : 'none',
    header_text: h?.format === 'text' ? h.text : '',
    header_example: (h?.example ?? '') || '',
    body_text: c.body.text,
    body_examples: [...c.body.examples],
    footer: c.footer ?? '',
    buttons: c.buttons.map((b) => {
      const d = emptyButton(b.type);
      if (b.type === 'copy_code') return { ...d, example: b.example };
      if (b.type === 'url') return { ...d, text: b.text, url: b.url, example: b.example ?? '' };
      if (b.type === 'phone') return { ...d, text: b.text, phone: b.phone };
      return { ...d, text: b.text };
    }),
  };
}

// ---- placeholders -----------------------------------------------------------------------------

const PLACEHOLDER = /\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g;

/**
 * The distinct placeholders of a text, in the order their examples are given: positional ones by
 * number, named ones by first appearance.
 */
export function placeholders(text: string): string[] {
  const seen: string[] = [];
  for (const m of text.matchAll(PLACEHOLDER)) {
    const p = m[1]!;
    if (!seen.includes(p)) seen.push(p);
  }
  const positional = seen.filter((p) => /^\d+$/.test(p));
  if (positional.length === seen.length) return positional.sort((a, b) => Number(a) - Number(b));
  return seen;
}

/** The number "Add variable" inserts next: one above the highest positional placeholder. */
export function nextVariable(text: string): number {
  let max = 0;
  for (const m of text.matchAll(PLACEHOLDER)) {
    const n = Number(m[1]);
    if (Number.isInteger(n) && n > max) max = n;
  }
  return max + 1;
}

/** Inserts the next `{{n}}` at the selection (replacing it); returns the text and the new caret. */
export function insertVariable(text: string, start: number, end = start): { text: string; cursor: number } {
  const s = Math.max(0, Math.min(start, text.length));
  const e = Math.max(s, Math.min(end, text.length));
  const token = `{{${nextVariable(text.slice(0, s) + text.slice(e))}}}`;
  return { text: text.slice(0, s) + token + text.slice(e), cursor: s + token.length };
}

/** `examples` resized to `count` (kept values stay, new ones are empty). */
export function resizeExamples(examples: readonly string[], count: number): string[] {
  return Array.from({ length: count }, (_, i) => examples[i] ?? '');
}

const hasUrlVariable = (url: string) => /\{\{\s*1\s*\}\}\s*$/.test(url);

/** The variable keys of the form, in the server's order: header, body, buttons. */
export function variablesOf(v: TemplateFormValues): string[] {
  const keys: string[] = [];
  if (v.header_format === 'text') keys.push(...placeholders(v.header_text).map((p) => `header.${p}`));
  keys.push(...placeholders(v.body_text).map((p) => `body.${p}`));
  v.buttons.forEach((b, i) => {
    if ((b.type === 'url' && hasUrlVariable(b.url)) || b.type === 'copy_code') keys.push(`button.${i}`);
  });
  return keys;
}

/** "Body {{2}}", "Header {{1}}", "Button 1 (URL suffix)". */
export function describeVariable(key: string, buttons?: readonly { type: ButtonType }[]): string {
  const [part, rest = ''] = splitKey(key);
  if (part === 'header') return `Header {{${rest}}}`;
  if (part === 'body') return `Body {{${rest}}}`;
  if (part === 'button') {
    const i = Number(rest);
    const type = buttons?.[i]?.type;
    return `Button ${i + 1}${type === 'copy_code' ? ' (offer code)' : type === 'url' ? ' (URL suffix)' : ''}`;
  }
  return key;
}

function splitKey(key: string): [string, string | undefined] {
  const dot = key.indexOf('.');
  return dot < 0 ? [key, undefined] : [key.slice(0, dot), key.slice(dot + 1)];
}

/** The example the form gives for a variable key (what the preview shows without a contact). */
export function exampleFor(v: TemplateFormValues, key: string): string {
  const [part, rest = ''] = splitKey(key);
  if (part === 'header') return v.header_example;
  if (part === 'body') return v.body_examples[placeholders(v.body_text).indexOf(rest)] ?? '';
  if (part === 'button') return v.buttons[Number(rest)]?.example ?? '';
  return '';
}

// ---- request bodies ---------------------------------------------------------------------------

export function componentsOf(v: TemplateFormValues): Components {
  let header: Components['header'] = null;
  if (v.header_format === 'text') {
    const hasVar = placeholders(v.header_text).length > 0;
    header = { format: 'text', text: v.header_text.trim(), ...(hasVar ? { example: v.header_example.trim() } : {}) };
  } else if (v.header_format !== 'none') {
    header = { format: v.header_format, example: v.header_example.trim() };
  }
  const count = placeholders(v.body_text).length;
  return {
    header,
    body: { text: v.body_text.trim(), examples: resizeExamples(v.body_examples, count).map((e) => e.trim()) },
    footer: v.footer.trim() || null,
    buttons: v.buttons.map((b) => {
      switch (b.type) {
        case 'copy_code':
          return { type: 'copy_code', example: b.example.trim() };
        case 'url':
          return {
            type: 'url',
            text: b.text.trim(),
            url: b.url.trim(),
            ...(hasUrlVariable(b.url) ? { example: b.example.trim() } : {}),
          };
        case 'phone':
          return { type: 'phone', text: b.text.trim(), phone: b.phone.trim() };
        default:
          return { type: 'quick_reply', text: b.text.trim() };
      }
    }),
  };
}

export function templateBody(v: TemplateFormValues, mapping?: Mapping): TemplateIn {
  return {
    channel_id: v.channel_id,
    name: v.name.trim(),
    language: v.language.trim(),
    category: v.category,
    components: componentsOf(v),
    ...(mapping ? { mapping: onlyKeys(mapping, variablesOf(v)) } : {}),
  };
}

/** The PATCH body: content only while it may change (draft, rejected, local), the mapping always. */
export function templatePatch(v: TemplateFormValues, mapping: Mapping, contentEditable: boolean): TemplatePatch {
  if (!contentEditable) return { mapping };
  const b = templateBody(v);
  return {
    name: b.name,
    language: b.language,
    category: b.category,
    components: b.components,
    mapping: onlyKeys(mapping, variablesOf(v)),
  };
}

function onlyKeys(mapping: Mapping, keys: readonly string[]): Mapping {
  const out: Mapping = {};
  for (const k of keys) if (mapping[k]) out[k] = mapping[k]!;
  return out;
}

/** A WhatsApp template's content changes only while draft or rejected; a local one always. */
export function contentEditable(t: Pick<TemplateOut, 'kind' | 'status'> | null): boolean {
  return !t || t.kind === 'local' || t.status === 'draft' || t.status === 'rejected';
}

// ---- server field paths → form paths ----------------------------------------------------------

/**
 * `components.buttons[1].text` → `components.buttons.1.text`; `mapping["body.1"]` → `mapping.body.1`;
 * JSON pointers (`/components/footer`) and a `body.` prefix as `normalizeField` takes them.
 */
export function dotted(path: string): string {
  return normalizeField(path)
    .replace(/\[["']([^"'\]]+)["']\]/g, '.$1')
    .replace(/\[(\d+)\]/g, '.$1')
    .replace(/^\./, '');
}

const FORM_FIELD: Record<string, string> = {
  channel_id: 'channel_id',
  name: 'name',
  language: 'language',
  category: 'category',
  components: 'body_text',
  'components.header': 'header_text',
  'components.header.text': 'header_text',
  'components.header.format': 'header_format',
  'components.header.example': 'header_example',
  'components.body': 'body_text',
  'components.body.text': 'body_text',
  'components.body.examples': 'body_examples',
  'components.footer': 'footer',
  'components.buttons': 'buttons',
};

/** The form path for a server field path, or null when no input shows it. */
export function formFieldFor(apiField: string, v?: TemplateFormValues): string | null {
  const f = dotted(apiField);
  if (FORM_FIELD[f]) {
    // A media header's sample is typed where the text would be.
    if (f === 'components.header' && v && v.header_format !== 'text') return 'header_example';
    return FORM_FIELD[f]!;
  }
  let m = /^components\.body\.examples\.(\d+)$/.exec(f);
  if (m) return `body_examples.${m[1]}`;
  m = /^components\.buttons\.(\d+)(?:\.(text|url|example|phone|type))?$/.exec(f);
  if (m) return `buttons.${m[1]}.${m[2] ?? 'text'}`;
  return null;
}

export interface SplitErrors {
  /** Form path → message (first one wins). */
  fields: Record<string, string>;
  /** Variable key → message, for the mapping editor. */
  mapping: Record<string, string>;
  /** Everything no input shows, as "field: message". */
  other: string[];
}

export function splitErrors(
  errors: readonly { field: string; message: string }[],
  v?: TemplateFormValues,
  variables: readonly string[] = [],
): SplitErrors {
  const out: SplitErrors = { fields: {}, mapping: {}, other: [] };
  for (const e of errors) {
    const f = dotted(e.field);
    if (f.startsWith('mapping.')) {
      const rest = f.slice('mapping.'.length);
      const key = [...variables]
        .sort((a, b) => b.length - a.length)
        .find((k) => rest === k || rest.startsWith(`${k}.`));
      if (key) {
        out.mapping[key] ??= e.message;
        continue;
      }
    }
    const field = formFieldFor(e.field, v);
    if (field) out.fields[field] ??= e.message;
    else out.other.push(e.field ? `${e.field}: ${e.message}` : e.message);
  }
  return out;
}

// ---- the preview ------------------------------------------------------------------------------

/** A run of text; `variable` is set where a variable's value (or its unfilled `{{n}}`) stands. */
export interface Segment {
  text: string;
  variable?: string;
  missing?: boolean;
}

export interface PreviewButton {
  type: ButtonType;
  label: string;
  /** The URL, phone number or code behind it. */
  detail?: string;
}

export interface PreviewModel {
  header: { format: HeaderFormat; text?: Segment[]; mediaUrl?: string } | null;
  body: Segment[];
  footer: string | null;
  buttons: PreviewButton[];
}

/** `text` with each placeholder replaced by `valueOf(prefix.name)`, unfilled ones kept as `{{n}}`. */
export function fillPlaceholders(
  text: string,
  prefix: string,
  valueOf: (key: string) => string | undefined,
): Segment[] {
  const out: Segment[] = [];
  let last = 0;
  for (const m of text.matchAll(PLACEHOLDER)) {
    const at = m.index ?? 0;
    if (at > last) out.push({ text: text.slice(last, at) });
    const key = `${prefix}.${m[1]}`;
    const value = valueOf(key);
    out.push(value ? { text: value, variable: key } : { text: m[0], variable: key, missing: true });
    last = at + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last) });
  return out;
}

/**
 * The phone preview of the form, with every variable shown as its example (or as `valueOf` says,
 * e.g. a campaign's mapping).
 */
export function previewOfForm(
  v: TemplateFormValues,
  valueOf: (key: string) => string | undefined = (key) => exampleFor(v, key).trim() || undefined,
): PreviewModel {
  let header: PreviewModel['header'] = null;
  if (v.header_format === 'text') header = { format: 'text', text: fillPlaceholders(v.header_text, 'header', valueOf) };
  else if (v.header_format !== 'none') header = { format: v.header_format, mediaUrl: v.header_example.trim() };
  return {
    header,
    body: fillPlaceholders(v.body_text, 'body', valueOf),
    footer: v.footer.trim() || null,
    buttons: v.buttons.map((b, i) => {
      if (b.type === 'copy_code') return { type: b.type, label: 'Copy offer code', detail: b.example.trim() };
      if (b.type === 'url') {
        const url = b.url.replace(/\{\{\s*1\s*\}\}\s*$/, valueOf(`button.${i}`) ?? '{{1}}');
        return { type: b.type, label: b.text.trim() || 'Button', detail: url.trim() };
      }
      if (b.type === 'phone') return { type: b.type, label: b.text.trim() || 'Button', detail: b.phone.trim() };
      return { type: b.type, label: b.text.trim() || 'Button' };
    }),
  };
}

/** The server's rendered preview (for a contact) in the same model. */
export function previewFromServer(p: PreviewOut): PreviewModel {
  return {
    header: p.header
      ? {
          format: p.header.format,
          ...(p.header.text !== undefined ? { text: [{ text: p.header.text }] } : {}),
          ...(p.header.media_url ? { mediaUrl: p.header.media_url } : {}),
        }
      : null,
    body: [{ text: p.body }],
    footer: p.footer,
    buttons: p.buttons.map((b) => ({
      type: b.type,
      label: b.type === 'copy_code' ? 'Copy offer code' : b.text,
      detail: b.url ?? b.phone ?? b.code,
    })),
  };
}

export type Style = 'bold' | 'italic' | 'strike' | 'mono';
export interface Styled {
  text: string;
  styles: Style[];
}

const WORD = /[\p{L}\p{N}]/u;
const MARKS: [string, Style][] = [
  ['```', 'mono'],
  ['*', 'bold'],
  ['_', 'italic'],
  ['~', 'strike'],
];

/**
 * WhatsApp's formatting (`*bold*`, `_italic_`, `~strike~`, ```` ```mono``` ````), one level deep per
 * marker; markers must enclose non-blank text on one line and stand at word boundaries
 * (`snake_case_name` stays plain), otherwise they are plain text.
 */
export function formatWhatsApp(text: string, styles: Style[] = []): Styled[] {
  const out: Styled[] = [];
  let plain = '';
  let i = 0;
  outer: while (i < text.length) {
    for (const [mark, style] of MARKS) {
      if (!styles.includes(style) && text.startsWith(mark, i)) {
        const close = text.indexOf(mark, i + mark.length);
        const inner = close > 0 ? text.slice(i + mark.length, close) : '';
        const before = text[i - 1];
        const after = text[close + mark.length];
        const bounded = (before === undefined || !WORD.test(before)) && (after === undefined || !WORD.test(after));
        if (close > 0 && bounded && inner.trim() && !inner.includes('\n') && inner.trim() === inner) {
          if (plain) out.push({ text: plain, styles });
          plain = '';
          out.push(
            ...(style === 'mono'
              ? [{ text: inner, styles: [...styles, style] }]
              : formatWhatsApp(inner, [...styles, style])),
          );
          i = close + mark.length;
          continue outer;
        }
      }
    }
    plain += text[i];
    i++;
  }
  if (plain) out.push({ text: plain, styles });
  return out;
}
