/**
 * The channel forms (connect wizard and edit page): one flat set of values for every kind, its
 * validation, and the create / update bodies. Secrets are write-only: the edit form starts them
 * empty ("set" is shown instead) and a secret goes out only when something was typed.
 */
import type { ChannelConfigIn, ChannelIn, ChannelKind, ChannelOut, ChannelPatch } from './types';

export const KIND_LABEL: Record<ChannelKind, string> = {
  whatsapp: 'WhatsApp',
  telegram: 'Telegram',
  sandbox: 'Sandbox',
};

/** The server's defaults per kind (messages per second). */
export const DEFAULT_RATE: Record<ChannelKind, number> = { whatsapp: 80, telegram: 30, sandbox: 1000 };
export const SECRET_FIELDS: Record<ChannelKind, readonly string[]> = {
  whatsapp: ['access_token', 'app_secret'],
  telegram: ['bot_token'],
  sandbox: [],
};

export interface ChannelFormValues {
  name: string;
  messages_per_second: number | string;
  phone_number_id: string;
  waba_id: string;
  access_token: string;
  app_secret: string;
  api_version: string;
  bot_token: string;
  mode: 'webhook' | 'polling';
  auto_read: boolean;
}

export function emptyChannelForm(kind: ChannelKind): ChannelFormValues {
  return {
    name: kind === 'sandbox' ? 'Sandbox' : `Support ${KIND_LABEL[kind]}`,
    messages_per_second: DEFAULT_RATE[kind],
    phone_number_id: '',
    waba_id: '',
    access_token: '',
    app_secret: '',
    api_version: 'v21.0',
    bot_token: '',
    mode: 'polling',
    auto_read: true,
  };
}

/** The edit form of an existing channel: its settings, secrets empty. */
export function channelToForm(c: ChannelOut): ChannelFormValues {
  const base = emptyChannelForm(c.kind);
  return {
    ...base,
    name: c.name,
    messages_per_second: c.messages_per_second,
    phone_number_id: c.config.phone_number_id ?? '',
    waba_id: c.config.waba_id ?? '',
    api_version: c.config.api_version ?? base.api_version,
    mode: c.config.mode === 'webhook' || c.config.mode === 'polling' ? c.config.mode : base.mode,
    auto_read: c.config.auto_read ?? base.auto_read,
  };
}

export const TELEGRAM_TOKEN_RE = /^\d{3,}:[A-Za-z0-9_-]{20,}$/;

/**
 * Errors keyed by form field. Creating, the required secrets must be typed; editing, an empty
 * secret means "keep the one that is set".
 */
export function validateChannelForm(
  kind: ChannelKind,
  v: ChannelFormValues,
  creating: boolean,
): Partial<Record<keyof ChannelFormValues, string>> {
  const e: Partial<Record<keyof ChannelFormValues, string>> = {};
  if (!v.name.trim()) e.name = 'Enter a name';
  else if (v.name.trim().length > 100) e.name = 'At most 100 characters';
  const rate = Number(v.messages_per_second);
  if (!Number.isInteger(rate) || rate < 1 || rate > 1000) e.messages_per_second = 'A whole number from 1 to 1000';
  if (kind === 'whatsapp') {
    if (!/^\d+$/.test(v.phone_number_id.trim())) e.phone_number_id = 'Digits only, from WhatsApp Manager → API setup';
    if (v.waba_id.trim() && !/^\d+$/.test(v.waba_id.trim())) e.waba_id = 'Digits only';
    if (creating && !v.access_token.trim()) e.access_token = 'Enter the access token';
    if (creating && !v.app_secret.trim()) e.app_secret = 'Enter the app secret';
    if (!/^v\d+\.\d+$/.test(v.api_version.trim())) e.api_version = 'Like v21.0';
  }
  if (kind === 'telegram') {
    const t = v.bot_token.trim();
    if (creating && !t) e.bot_token = 'Enter the bot token from @BotFather';
    else if (t && !TELEGRAM_TOKEN_RE.test(t))
      e.bot_token = 'A bot token looks like 123456789:AAF…, as @BotFather gave it';
  }
  return e;
}

function configOf(kind: ChannelKind, v: ChannelFormValues): ChannelConfigIn {
  switch (kind) {
    case 'whatsapp': {
      const c: ChannelConfigIn = {
        phone_number_id: v.phone_number_id.trim(),
        waba_id: v.waba_id.trim() || null,
        api_version: v.api_version.trim(),
      };
      if (v.access_token.trim()) c.access_token = v.access_token.trim();
      if (v.app_secret.trim()) c.app_secret = v.app_secret.trim();
      return c;
    }
    case 'telegram': {
      const c: ChannelConfigIn = { mode: v.mode };
      if (v.bot_token.trim()) c.bot_token = v.bot_token.trim();
      return c;
    }
    case 'sandbox':
      return { auto_read: v.auto_read };
  }
}

export function channelCreateBody(kind: ChannelKind, v: ChannelFormValues): ChannelIn {
  return { kind, name: v.name.trim(), messages_per_second: Number(v.messages_per_second), config: configOf(kind, v) };
}

/** Name, rate and settings; a secret only when one was typed (the server keeps the others). */
export function channelPatchBody(c: ChannelOut, v: ChannelFormValues): ChannelPatch {
  return { name: v.name.trim(), messages_per_second: Number(v.messages_per_second), config: configOf(c.kind, v) };
}

/** Server field names (`config.bot_token`) → form fields, for `applyApiError`. */
export const CHANNEL_ERROR_FIELDS: Record<string, string> = Object.fromEntries(
  ['phone_number_id', 'waba_id', 'access_token', 'app_secret', 'api_version', 'bot_token', 'mode', 'auto_read'].map(
    (f) => [`config.${f}`, f],
  ),
);
