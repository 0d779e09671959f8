/**
 * Names for the channels / inbox / canned-response shapes (issue 5), derived from the generated
 * `paths` like `src/api/types.ts` does, so they follow the server's OpenAPI document.
 *
 * Hand-written parts, where the document is looser than what the UI relies on:
 * - string fields documented as a closed set (`MessageOut.kind` / `status`, `error.class`,
 *   `reactions[].by`, `media.state`, `last_message.kind` / `status`) are narrowed to unions;
 * - `ChannelOut.secrets` (an object of booleans) and the test's `detail` (the document says only "object");
 * - `content` of a message (kind-specific JSON);
 * - `SendIn` as a union per `type` (the document has one flat body with every field optional);
 * - the list filters (`AssigneeFilter`, `StatusFilter`; plain strings in the document).
 */
import type { paths } from '../../api/schema';

type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;
type Ok<Op> = Op extends { responses: infer R }
  ? R extends { 200: infer S }
    ? Json<S>
    : R extends { 201: infer S }
      ? Json<S>
      : R extends { 202: infer S }
        ? Json<S>
        : never
  : never;
type Body<Op> = Op extends { requestBody?: infer B } ? Json<NonNullable<B>> : never;

// ---- channels ---------------------------------------------------------------------------------

type ChannelGen = Ok<paths['/api/v1/channels/{id}']['get']>;

export type ChannelKind = ChannelGen['kind'];
export type HealthState = ChannelGen['health']['state'];
export type CircuitState = ChannelGen['circuit']['state'];
/** Non-secret settings of every kind (read-only ones filled by "Test connection"). */
export type ChannelConfig = ChannelGen['config'];

export type ChannelOut = Omit<ChannelGen, 'secrets'> & {
  /** Which secrets are set (never their values). */
  secrets: Record<string, boolean>;
};

export type ChannelIn = Body<paths['/api/v1/channels']['post']>;
export type ChannelPatch = Body<paths['/api/v1/channels/{id}']['patch']>;
/** `config` of a create or update: non-secret settings plus secrets (only when typed). */
export type ChannelConfigIn = NonNullable<ChannelIn['config']>;
/** `{ok: true, detail}` (provider info) or `{ok: false, error}`. */
export type ChannelTestOut = Omit<Ok<paths['/api/v1/channels/{id}/test']['post']>, 'detail'> & {
  detail?: Record<string, unknown> | null;
};

export type SimulateIn = Body<paths['/api/v1/channels/{id}/simulate']['post']>;
export type SimulateOut = Ok<paths['/api/v1/channels/{id}/simulate']['post']>;

// ---- conversations ----------------------------------------------------------------------------

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

type ConversationGen = Ok<paths['/api/v1/conversations/{id}']['get']>;
type LastMessageGen = NonNullable<ConversationGen['last_message']>;

export type ConversationStatus = ConversationGen['status'];
export type StatusFilter = ConversationStatus | 'all';
export type AssigneeFilter = 'me' | 'unassigned' | 'all';
export type Priority = ConversationGen['priority'];
export type PersonRef = NonNullable<ConversationGen['assignee']>;

export type ConversationOut = Omit<ConversationGen, 'last_message'> & {
  last_message?: (Omit<LastMessageGen, 'kind' | 'status'> & { kind: MessageKind; status: MessageStatus }) | null;
};

export type ConversationPage = Omit<Ok<paths['/api/v1/conversations']['get']>, 'items'> & {
  items: ConversationOut[];
};
export type ConversationCounts = Ok<paths['/api/v1/conversations/counts']['get']>;
export type ConversationPatch = Body<paths['/api/v1/conversations/{id}']['patch']>;

// ---- messages ---------------------------------------------------------------------------------

type MessageGen = Ok<paths['/api/v1/messages/{id}']['get']>;
type MediaGen = NonNullable<MessageGen['media']>;
type ErrorGen = NonNullable<MessageGen['error']>;

export type MediaOut = Omit<MediaGen, 'state'> & { state: 'pending' | 'ready' | 'failed' };
export type ReactionOut = Omit<MessageGen['reactions'][number], 'by'> & { by: 'customer' | 'agent' };
export type MessageError = Omit<ErrorGen, 'class'> & { class: 'retryable' | 'permanent' | 'needs_action' };

export type MessageOut = Omit<MessageGen, 'kind' | 'status' | 'content' | 'media' | 'reactions' | 'error'> & {
  kind: MessageKind;
  status: MessageStatus;
  /** Kind-specific: location, buttons, list, template, interactive_reply, contacts, unsupported. */
  content?: Record<string, unknown> | null;
  media?: MediaOut | null;
  reactions: ReactionOut[];
  error?: MessageError | null;
};

export type MessagePage = Omit<Ok<paths['/api/v1/conversations/{id}/messages']['get']>, 'items'> & {
  items: MessageOut[];
};

type SendGen = Body<paths['/api/v1/conversations/{id}/messages']['post']>;
export type ButtonIn = NonNullable<SendGen['buttons']>[number];

/** One body per `type`; every member is a valid `SendIn` of the document. */
export type SendIn =
  | { type: 'text'; text: string; reply_to_id?: string; preview_url?: boolean }
  | { type: 'note'; text: string }
  | { type: 'media'; attachment_id: string; caption?: string; reply_to_id?: string }
  | { type: 'buttons'; text: string; buttons: ButtonIn[] }
  | {
      type: 'list';
      text: string;
      button: string;
      sections: NonNullable<SendGen['sections']>;
    }
  | { type: 'location'; latitude: number; longitude: number; name?: string; address?: string }
  | { type: 'reaction'; reply_to_id: string; emoji: string }
  | { type: 'template'; template: NonNullable<SendGen['template']> };

export type AttachmentOut = Ok<paths['/api/v1/conversations/{id}/attachments']['post']>;

// ---- canned responses -------------------------------------------------------------------------

export type CannedOut = Ok<paths['/api/v1/canned-responses']['get']>[number];
export type CannedIn = Body<paths['/api/v1/canned-responses']['post']>;
export type CannedPatch = Body<paths['/api/v1/canned-responses/{id}']['patch']>;
