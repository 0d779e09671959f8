/**
 * Message templates (issue 6), hand-written from the API contract until the OpenAPI document
 * describes them (see `api/untyped.ts`).
 *
 * A WhatsApp template is reviewed by Meta (draft → pending → approved / rejected, later maybe
 * paused or disabled); a "local" one (Telegram, Sandbox) is approved at once. Variables are keyed
 * by where they sit: `header.1`, `body.1` (or `body.first_name` for named ones), `button.0`.
 */
import type { ChannelKind } from '../inbox/types';

export type TemplateKind = 'whatsapp' | 'local';
export type TemplateCategory = 'MARKETING' | 'UTILITY' | 'AUTHENTICATION';
export type TemplateStatus = 'draft' | 'pending' | 'approved' | 'rejected' | 'paused' | 'disabled';
export type TemplateQuality = 'GREEN' | 'YELLOW' | 'RED' | 'UNKNOWN';
export type MediaFormat = 'image' | 'video' | 'document';
export type HeaderFormat = 'text' | MediaFormat;

export interface ChannelRef {
  id: string;
  name: string;
  kind: ChannelKind;
}

export type Header =
  { format: 'text'; text: string; example?: string | null } | { format: MediaFormat; example: string };

export type TemplateButton =
  | { type: 'quick_reply'; text: string }
  | { type: 'url'; text: string; url: string; example?: string }
  | { type: 'phone'; text: string; phone: string }
  | { type: 'copy_code'; example: string };

export type ButtonType = TemplateButton['type'];

export interface Components {
  header: Header | null;
  body: { text: string; examples: string[] };
  footer: string | null;
  buttons: TemplateButton[];
}

/** Where a variable's value comes from: a fixed text, a contact field or a custom attribute. */
export type VariableSource =
  | 'fixed'
  | 'contact.name'
  | 'contact.first_name'
  | 'contact.company'
  | 'contact.email'
  | 'contact.phone'
  | 'contact.language'
  | `attr.${string}`;

export interface VariableMapping {
  source: VariableSource;
  value?: string;
  fallback?: string;
}

export type Mapping = Record<string, VariableMapping>;

export interface TemplateOut {
  id: string;
  channel: ChannelRef;
  kind: TemplateKind;
  name: string;
  language: string;
  category: TemplateCategory;
  status: TemplateStatus;
  rejected_reason: string | null;
  quality: TemplateQuality | null;
  provider_template_id: string | null;
  components: Components;
  variables: string[];
  mapping: Mapping;
  created_at: string;
  updated_at: string;
  submitted_at: string | null;
  synced_at: string | null;
}

export interface TemplateIn {
  channel_id: string;
  name: string;
  language: string;
  category: TemplateCategory;
  components: Components;
  mapping?: Mapping;
}

export type TemplatePatch = Partial<Omit<TemplateIn, 'channel_id'>>;

export interface FieldProblem {
  field: string;
  message: string;
}

export interface ValidateOut {
  ok: boolean;
  errors: FieldProblem[];
  variables: string[];
}

export interface SyncOut {
  imported: number;
  updated: number;
  total: number;
}

export interface PreviewIn {
  contact_id?: string;
  mapping?: Mapping;
}

export interface PreviewOut {
  header: { format: HeaderFormat; text?: string; media_url?: string } | null;
  body: string;
  footer: string | null;
  buttons: { type: ButtonType; text: string; url?: string; phone?: string; code?: string }[];
  /** Variable keys with no value and no fallback. */
  missing: string[];
  /** The value of every resolved variable key (what a send would carry). */
  values?: Record<string, string>;
}

export interface TemplateFilters {
  channelId: string | null;
  status: TemplateStatus | null;
  q: string;
}
