/**
 * Hand-written shapes of the channels / inbox / canned-responses API (issue 5), copied from the
 * contract in notes/inbox-api.md because the server's OpenAPI document does not describe these
 * endpoints yet. Once it does, derive them from `paths` like `src/api/types.ts` does and delete
 * this file.
 */

export type ChannelKind = 'whatsapp' | 'telegram' | 'sandbox';
export type HealthState = 'unknown' | 'healthy' | 'unhealthy';
export type CircuitState = 'closed' | 'open' | 'half_open';

/** Non-secret settings per kind (read-only ones filled by "Test connection"). */
export interface WhatsAppConfig {
  phone_number_id?: string;
  waba_id?: string | null;
  api_version?: string;
  display_phone_number?: string | null;
}
export interface TelegramConfig {
  mode?: 'webhook' | 'polling';
  bot_username?: string | null;
}
export interface SandboxConfig {
  auto_read?: boolean;
}

export interface ChannelOut {
  id: string;
  kind: ChannelKind;
  name: string;
  enabled: boolean;
  health: { state: HealthState; reason: string | null; checked_at: string | null };
  circuit: { state: CircuitState; failures: number; opened_at: string | null; retry_at: string | null };
  messages_per_second: number;
  config: WhatsAppConfig & TelegramConfig & SandboxConfig & Record<string, unknown>;
  /** Which secrets are set (never their values). */
  secrets: Record<string, boolean>;
  webhook_url: string | null;
  verify_token: string | null;
  created_at: string;
  updated_at: string;
}

/** `config` of a create or update: non-secret settings plus secrets (only when typed). */
export type ChannelConfigIn = Record<string, string | boolean | null>;

export interface ChannelIn {
  kind: ChannelKind;
  name: string;
  messages_per_second?: number;
  config: ChannelConfigIn;
}

export interface ChannelPatch {
  name?: string;
  enabled?: boolean;
  messages_per_second?: number;
  config?: ChannelConfigIn;
}

export type ChannelTestOut = { ok: true; detail: Record<string, unknown> } | { ok: false; error: string };

export interface SimulateIn {
  from: { handle: string; name: string };
  text: string;
  reply_to_message_id?: string;
}
export interface SimulateOut {
  message_id: string;
  conversation_id: string;
}

// ---- conversations ----------------------------------------------------------------------------

export type ConversationStatus = 'open' | 'pending' | 'snoozed' | 'resolved';
export type StatusFilter = ConversationStatus | 'all';
export type AssigneeFilter = 'me' | 'unassigned' | 'all';
export type Priority = 'none' | 'low' | 'medium' | 'high' | 'urgent';

export type MessageDirection = 'inbound' | 'outbound';
export type MessageKind =
  | 'text'
  | 'image'
  | 'video'
  | 'audio'
  | 'voice'
  | 'document'
  | 'sticker'
  | 'location'
  | 'contacts'
  | 'interactive_reply'
  | 'button_reply'
  | 'reaction'
  | 'template'
  | 'buttons'
  | 'list'
  | 'unsupported'
  | 'system'
  | 'note';
/** `note` is what private notes carry. */
export type MessageStatus = 'received' | 'queued' | 'sent' | 'delivered' | 'read' | 'played' | 'failed' | 'note';

export interface PersonRef {
  id: string;
  name: string;
  avatar_url: string | null;
}

export interface ConversationOut {
  id: string;
  channel: { id: string; kind: ChannelKind; name: string };
  contact: { id: string; name: string; avatar_url: string | null; phone: string | null; handle: string };
  status: ConversationStatus;
  snoozed_until: string | null;
  priority: Priority;
  assignee: PersonRef | null;
  team: { id: string; name: string } | null;
  labels: string[];
  /** Inbound messages after the caller's read marker (0 in events: they are not per caller). */
  unread_count: number;
  last_message: {
    id: string;
    direction: MessageDirection;
    kind: MessageKind;
    preview: string;
    status: MessageStatus;
    at: string;
  } | null;
  /** The WhatsApp 24-hour customer service window; always open (no expiry) elsewhere. */
  window: { open: boolean; expires_at: string | null };
  last_activity_at: string;
  created_at: string;
  updated_at: string;
}

export interface ConversationPage {
  items: ConversationOut[];
  next_cursor: string | null;
}

export interface ConversationCounts {
  mine: number;
  unassigned: number;
  all: number;
}

export interface ConversationPatch {
  status?: ConversationStatus;
  snoozed_until?: string | null;
  priority?: Priority;
  labels?: string[];
}

export interface MediaOut {
  kind: string;
  url: string | null;
  mime_type: string | null;
  filename: string | null;
  size: number | null;
  state: 'pending' | 'ready' | 'failed';
  error: string | null;
}

export interface ReactionOut {
  emoji: string;
  by: 'customer' | 'agent';
  user_id: string | null;
}

export interface MessageError {
  code: number | string;
  title: string;
  detail: string | null;
  class: 'retryable' | 'permanent' | 'needs_action';
}

export interface MessageOut {
  id: string;
  conversation_id: string;
  direction: MessageDirection;
  kind: MessageKind;
  text: string | null;
  /** Kind-specific: location, buttons, list, template, interactive_reply, contacts, unsupported. */
  content: Record<string, unknown> | null;
  media: MediaOut | null;
  reply_to: { id: string; direction: MessageDirection; preview: string } | null;
  reactions: ReactionOut[];
  status: MessageStatus;
  error: MessageError | null;
  author: PersonRef | null;
  private: boolean;
  created_at: string;
  sent_at: string | null;
  delivered_at: string | null;
  read_at: string | null;
}

export interface MessagePage {
  items: MessageOut[];
  has_more: boolean;
}

export interface ButtonIn {
  id: string;
  title: string;
}

export type SendIn =
  | { type: 'text'; text: string; reply_to_id?: string; preview_url?: boolean }
  | { type: 'note'; text: string }
  | { type: 'media'; attachment_id: string; caption?: string; reply_to_id?: string }
  | { type: 'buttons'; text: string; buttons: ButtonIn[] }
  | {
      type: 'list';
      text: string;
      button: string;
      sections: { title: string; rows: { id: string; title: string; description?: string }[] }[];
    }
  | { type: 'location'; latitude: number; longitude: number; name?: string; address?: string }
  | { type: 'reaction'; reply_to_id: string; emoji: string }
  | {
      type: 'template';
      template: { name: string; language: string; body: string[]; header?: string[]; buttons?: string[] };
    };

export interface AttachmentOut {
  id: string;
  kind: string;
  mime_type: string;
  filename: string;
  size: number;
  url: string;
}

// ---- canned responses -------------------------------------------------------------------------

export interface CannedOut {
  id: string;
  shortcut: string;
  title: string;
  body: string;
  created_at: string;
  updated_at: string;
}

export interface CannedIn {
  shortcut: string;
  title: string;
  body: string;
}
