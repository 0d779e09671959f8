/**
 * Sending one of the organisation's templates from the inbox composer, free of React: the values
 * to start from (the server's preview for the conversation's contact), which still need typing,
 * and the message body to send.
 *
 * Variable keys say where a value goes (`header.1`, `body.1` or `body.first_name`, `button.<i>`),
 * in the template's `variables` order, which is the send order. A WhatsApp template goes out as
 * `type: "template"` with its parameters; a local one (Telegram, Sandbox) as the text it renders
 * to, like a campaign sends it (URL buttons appended as "Text: link" lines).
 */
import type { components } from '../../api/schema';
import { fillPlaceholders } from '../templates/builder';
import type { SendIn } from './types';

type Schemas = components['schemas'];

/** What a send needs of a template (`TemplateOut`, generated or hand-written). */
export type SendableTemplate = Pick<Schemas['TemplateOut'], 'kind' | 'name' | 'language' | 'variables'> & {
  components: { body: Pick<Schemas['Body'], 'text'>; buttons?: Schemas['Button'][] };
};

/** Variable key → the value typed (or resolved for the contact). */
export type TemplateValues = Record<string, string>;

type WhatsAppTemplate = NonNullable<Schemas['SendIn']['template']>;

const part = (key: string) => key.slice(0, key.indexOf('.'));
const rest = (key: string) => key.slice(key.indexOf('.') + 1);
const valueOf = (values: TemplateValues, key: string) => (values[key] ?? '').trim();

/** The values to start from: the preview's resolved value of each variable, else empty. */
export function initialValues(
  t: Pick<SendableTemplate, 'variables'>,
  preview?: { values?: Record<string, string> | null } | null,
): TemplateValues {
  const out: TemplateValues = {};
  for (const k of t.variables) out[k] = preview?.values?.[k] ?? '';
  return out;
}

/** Variables still without a value, keyed like the inputs (every parameter needs one to send). */
export function templateValueErrors(t: Pick<SendableTemplate, 'variables'>, values: TemplateValues) {
  const errors: Record<string, string> = {};
  for (const k of t.variables) if (!valueOf(values, k)) errors[k] = 'Enter a value';
  return errors;
}

/** The WhatsApp send parameters: header and body in `variables` order, typed button parameters. */
export function whatsappTemplate(t: SendableTemplate, values: TemplateValues): WhatsAppTemplate {
  const header = t.variables.filter((k) => part(k) === 'header').map((k) => valueOf(values, k));
  const bodyKeys = t.variables.filter((k) => part(k) === 'body');
  const names = bodyKeys.map(rest);
  const named = names.some((n) => !/^\d+$/.test(n));
  const buttonParams: NonNullable<WhatsAppTemplate['button_params']> = [];
  for (const k of t.variables) {
    if (part(k) !== 'button') continue;
    const index = Number(rest(k));
    const type = t.components.buttons?.[index]?.type;
    if (type !== 'url' && type !== 'copy_code') continue;
    buttonParams.push({ sub_type: type, index, value: valueOf(values, k) });
  }
  return {
    name: t.name,
    language: t.language,
    ...(header.length > 0 ? { header } : {}),
    body: bodyKeys.map((k) => valueOf(values, k)),
    ...(named ? { body_names: names } : {}),
    ...(buttonParams.length > 0 ? { button_params: buttonParams } : {}),
  };
}

/** The text a local template renders to: the filled body, then one "Text: link" line per URL button. */
export function localTemplateText(t: SendableTemplate, values: TemplateValues): string {
  const get = (key: string) => valueOf(values, key) || undefined;
  let text = fillPlaceholders(t.components.body.text, 'body', get)
    .map((s) => s.text)
    .join('');
  (t.components.buttons ?? []).forEach((b, i) => {
    if (b.type !== 'url') return;
    const link = b.url.replace(/\{\{\s*1\s*\}\}/, get(`button.${i}`) ?? '{{1}}');
    text += `\n${b.text}: ${link}`;
  });
  return text;
}

/** The inbox send body for `t` with `values`. */
export function templateSendBody(t: SendableTemplate, values: TemplateValues): SendIn {
  if (t.kind === 'local') return { type: 'text', text: localTemplateText(t, values) };
  return { type: 'template', template: whatsappTemplate(t, values) };
}

/** The picker's option label: "order_update · en_US". */
export const templateLabel = (t: Pick<SendableTemplate, 'name' | 'language'>) => `${t.name} · ${t.language}`;

/**
 * Whether a template matches the picker's search: every word of it occurs in the name or the
 * language, ignoring case, with `_` and spaces alike ("order en" finds `order_update` in `en_US`).
 */
export function matchesTemplateSearch(t: Pick<SendableTemplate, 'name' | 'language'>, search: string): boolean {
  const hay = `${t.name} ${t.language}`.toLowerCase().replace(/_/g, ' ');
  return search
    .toLowerCase()
    .replace(/[_·]/g, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .every((w) => hay.includes(w));
}
