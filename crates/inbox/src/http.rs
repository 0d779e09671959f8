//! Inbox HTTP API: conversations, their messages, the single-send API, attachments, canned
//! responses and the Sandbox's "simulate customer" endpoints. Thin handlers: extract, call one
//! service function, answer. Every member of the organisation sees every conversation.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{DefaultBodyLimit, Multipart, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize, de::value::MapDeserializer};
use serde_json::{Value, value::RawValue};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;
use wamage_channels::{ChannelId, ChannelKind};
use wamage_contacts::ContactId;
use wamage_identity::Caller;
use wamage_kernel::{ApiJson, Problem, Timestamp, UserId, problem::ProblemBody};

use crate::{
    model::{
        AttachmentId, CannedId, ConversationId, ConversationStatus, Direction, MessageId, Priority,
    },
    service::{ATTACHMENT_MAX, Inbox, Upload},
};

type Svc = State<Arc<Inbox>>;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelRef {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactRef {
    pub id: ContactId,
    pub name: String,
    pub avatar_url: Option<String>,
    pub phone: Option<String>,
    /// How the customer is addressed on this channel (`+4915…`, `@ada`, `ada`).
    pub handle: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = InboxUserRef)]
pub struct UserRef {
    pub id: UserId,
    pub name: String,
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TeamRef {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LastMessage {
    pub id: MessageId,
    pub direction: Direction,
    pub kind: String,
    pub preview: String,
    pub status: String,
    pub at: Timestamp,
}

/// The WhatsApp 24-hour customer-service window (always open elsewhere).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WindowOut {
    pub open: bool,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationOut {
    pub id: ConversationId,
    pub channel: ChannelRef,
    pub contact: ContactRef,
    pub status: ConversationStatus,
    pub snoozed_until: Option<Timestamp>,
    pub priority: Priority,
    pub assignee: Option<UserRef>,
    pub team: Option<TeamRef>,
    pub labels: Vec<String>,
    /// Customer messages after the caller's read marker.
    pub unread_count: i64,
    pub last_message: Option<LastMessage>,
    pub window: WindowOut,
    pub last_activity_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationPage {
    pub items: Vec<ConversationOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CountsOut {
    pub mine: i64,
    pub unassigned: i64,
    pub all: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MediaOut {
    pub kind: String,
    /// Where the file can be fetched (unguessable), once downloaded.
    pub url: Option<String>,
    pub mime_type: Option<String>,
    pub filename: Option<String>,
    pub size: Option<u64>,
    /// `pending` (being downloaded), `ready` or `failed`.
    pub state: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplyRef {
    pub id: MessageId,
    pub direction: Direction,
    pub preview: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = InboxReactionOut)]
pub struct ReactionOut {
    pub emoji: String,
    /// `customer` or `agent`.
    pub by: String,
    pub user_id: Option<UserId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorOut {
    pub code: i64,
    pub title: String,
    pub detail: Option<String>,
    /// `retryable`, `permanent` or `needs_action`.
    pub class: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = InboxMessageOut)]
pub struct MessageOut {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub direction: Direction,
    pub kind: String,
    pub text: Option<String>,
    // The content as stored: checked and copied, not parsed into values.
    #[schema(value_type = Option<Object>)]
    pub content: Option<Box<RawValue>>,
    pub media: Option<MediaOut>,
    pub reply_to: Option<ReplyRef>,
    pub reactions: Vec<ReactionOut>,
    /// `received` (customer messages), `queued`, `sent`, `delivered`, `read`, `played`,
    /// `failed`, or `note`.
    pub status: String,
    pub error: Option<ErrorOut>,
    pub author: Option<UserRef>,
    pub private: bool,
    pub edited: bool,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = InboxMessagePage)]
pub struct MessagePage {
    /// Oldest first.
    pub items: Vec<MessageOut>,
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `me`, `unassigned` or `all` (default).
    pub assignee: Option<String>,
    /// `open` (default), `pending`, `snoozed`, `resolved` or `all`.
    pub status: Option<String>,
    pub channel_id: Option<ChannelId>,
    pub label: Option<String>,
    pub team_id: Option<Uuid>,
    /// Searches the contact's name and address and the messages' text.
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    pub status: Option<ConversationStatus>,
    /// Required (in the future) with `status: snoozed`.
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    pub snoozed_until: Option<Option<Timestamp>>,
    pub priority: Option<Priority>,
    pub labels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignIn {
    /// The agent (`null` unassigns).
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    pub assignee_id: Option<Option<UserId>>,
    /// The team (`null` clears it).
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    pub team_id: Option<Option<Uuid>>,
    /// Round-robin among the team's online agents below their capacity.
    #[serde(default)]
    pub auto: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonIn {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RowIn {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionIn {
    pub title: String,
    pub rows: Vec<RowIn>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub header: Vec<String>,
    #[serde(default)]
    pub body: Vec<String>,
    /// Button parameters in order (quick-reply payloads or URL suffixes).
    #[serde(default)]
    pub buttons: Vec<String>,
    /// For templates with named variables (`{{first_name}}`): the name of each `body`
    /// parameter, in the same order.
    #[serde(default)]
    pub body_names: Vec<String>,
    /// Typed button parameters (a URL button's suffix, a copy-code button's code) by the
    /// button's index; when given, `buttons` is ignored.
    #[serde(default)]
    pub button_params: Vec<TemplateButtonIn>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateButtonIn {
    /// `url`, `copy_code` or `quick_reply`.
    pub sub_type: String,
    pub index: u32,
    pub value: String,
}

/// A message to send (or a private note). Which fields apply depends on `type`; a field it
/// does not know (a misspelt one) is refused, not ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendIn {
    /// `text`, `note`, `media`, `buttons`, `list`, `location`, `reaction` or `template`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub reply_to_id: Option<MessageId>,
    pub preview_url: Option<bool>,
    pub attachment_id: Option<AttachmentId>,
    /// Media by public link instead of an upload.
    pub media_url: Option<String>,
    pub media_kind: Option<String>,
    pub caption: Option<String>,
    pub header: Option<String>,
    pub footer: Option<String>,
    pub buttons: Option<Vec<ButtonIn>>,
    pub button: Option<String>,
    pub sections: Option<Vec<SectionIn>>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub name: Option<String>,
    pub address: Option<String>,
    pub emoji: Option<String>,
    pub template: Option<TemplateIn>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToIn {
    pub contact_id: Option<ContactId>,
    /// E.164 (WhatsApp).
    pub phone: Option<String>,
    pub telegram_chat_id: Option<i64>,
    /// A Sandbox customer handle.
    pub handle: Option<String>,
}

/// The single-send API: a message to a contact or address on a channel. Read with
/// [`DirectSendIn::from_json`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DirectSendIn {
    pub channel_id: ChannelId,
    pub to: ToIn,
    /// `utility` (default) or `marketing` (needs an opt-in).
    pub purpose: Option<String>,
    #[serde(flatten)]
    pub message: SendIn,
}

impl DirectSendIn {
    /// Reads a direct send from JSON, naming a wrong field by its path after `prefix`
    /// (`"messages[3]."` for a batch item). The message's fields sit beside `channel_id` and
    /// `to`: read apart, so that a wrong one is named by its path (`template.name`), which
    /// serde loses through `flatten`.
    pub fn from_json(v: &RawValue, prefix: &str) -> Result<Self, Problem> {
        #[derive(Deserialize)]
        struct Head {
            channel_id: ChannelId,
            to: ToIn,
            purpose: Option<String>,
        }
        // The fields by name, each still its JSON text: read once, into their types, without
        // a tree of values in between.
        let mut message: BTreeMap<String, &RawValue> =
            wamage_kernel::json::from_deserializer(v, prefix)?;
        let head: Vec<(String, &RawValue)> = ["channel_id", "to", "purpose"]
            .into_iter()
            .filter_map(|k| message.remove_entry(k))
            .collect();
        let head: Head = wamage_kernel::json::from_deserializer(
            MapDeserializer::<_, serde_json::Error>::new(head.into_iter()),
            prefix,
        )?;
        let message: SendIn = wamage_kernel::json::from_deserializer(
            MapDeserializer::<_, serde_json::Error>::new(message.into_iter()),
            prefix,
        )?;
        Ok(Self {
            channel_id: head.channel_id,
            to: head.to,
            purpose: head.purpose,
            message,
        })
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    // Each item as the single send reads it, kept as JSON text until it is read.
    #[schema(value_type = Vec<Value>)]
    pub messages: Vec<Box<RawValue>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchResult {
    pub index: usize,
    pub status: u16,
    // The message as the single send answers it: its JSON kept as rendered, not parsed again
    // to be written out.
    #[schema(value_type = Option<MessageOut>)]
    pub message: Option<Box<RawValue>>,
    #[schema(value_type = Option<Object>)]
    pub problem: Option<Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchOut {
    pub results: Vec<BatchResult>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = InboxAttachmentOut)]
pub struct AttachmentOut {
    pub id: AttachmentId,
    pub kind: String,
    pub mime_type: String,
    pub filename: String,
    pub size: i64,
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimFrom {
    pub handle: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateIn {
    pub from: SimFrom,
    pub text: String,
    pub reply_to_message_id: Option<MessageId>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SimulateOut {
    /// The provider id the simulated message got (`sbx.…`).
    pub provider_message_id: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateReadIn {
    pub conversation_id: ConversationId,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CannedOut {
    pub id: CannedId,
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedIn {
    pub shortcut: String,
    pub title: String,
    pub body: String,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedPatch {
    pub shortcut: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CannedQuery {
    pub q: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The oldest message id you have; answers older ones.
    pub before: Option<MessageId>,
    pub limit: Option<u32>,
}

fn idem_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) if wamage_platform::idempotency::valid_key(s) => Ok(Some(s.to_owned())),
            _ => Err(Problem::invalid_field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )),
        },
    }
}

// ---- handlers ------------------------------------------------------------------------------

/// Conversations, most recent activity first.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "inbox", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = ConversationPage), (status = 422, body = ProblemBody)))]
pub async fn list_conversations(
    State(s): Svc,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> Result<ApiJson<ConversationPage>, Problem> {
    Ok(ApiJson(s.list(&who, &q).await?))
}

/// Open conversations: assigned to me, unassigned, all.
#[utoipa::path(get, path = "/api/v1/conversations/counts", tag = "inbox", security(("bearer" = [])),
    responses((status = 200, body = CountsOut)))]
pub async fn conversation_counts(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<CountsOut>, Problem> {
    Ok(ApiJson(s.counts(&who).await?))
}

#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path)), responses((status = 200, body = ConversationOut), (status = 404, body = ProblemBody)))]
pub async fn get_conversation(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
) -> Result<ApiJson<ConversationOut>, Problem> {
    Ok(ApiJson(s.conversation(&who, id).await?))
}

/// Change status (snooze needs `snoozed_until`), priority or labels.
#[utoipa::path(patch, path = "/api/v1/conversations/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path)), request_body = ConversationPatch,
    responses((status = 200, body = ConversationOut), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_conversation(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
    ApiJson(b): ApiJson<ConversationPatch>,
) -> Result<ApiJson<ConversationOut>, Problem> {
    Ok(ApiJson(s.update(&who, id, &b).await?))
}

/// Assign to an agent and/or team, or round-robin (`auto`).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/assign", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path)), request_body = AssignIn,
    responses((status = 200, body = ConversationOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn assign_conversation(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
    ApiJson(b): ApiJson<AssignIn>,
) -> Result<ApiJson<ConversationOut>, Problem> {
    Ok(ApiJson(s.assign(&who, id, &b).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/resolve", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path)), responses((status = 200, body = ConversationOut), (status = 404, body = ProblemBody)))]
pub async fn resolve_conversation(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
) -> Result<ApiJson<ConversationOut>, Problem> {
    let b = ConversationPatch {
        status: Some(ConversationStatus::Resolved),
        ..ConversationPatch::default()
    };
    Ok(ApiJson(s.update(&who, id, &b).await?))
}

#[utoipa::path(post, path = "/api/v1/conversations/{id}/reopen", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path)), responses((status = 200, body = ConversationOut), (status = 404, body = ProblemBody)))]
pub async fn reopen_conversation(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
) -> Result<ApiJson<ConversationOut>, Problem> {
    let b = ConversationPatch {
        status: Some(ConversationStatus::Open),
        ..ConversationPatch::default()
    };
    Ok(ApiJson(s.update(&who, id, &b).await?))
}

/// Moves the caller's read marker to now.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/read", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn read_conversation(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
) -> Result<StatusCode, Problem> {
    s.mark_read(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Messages, a page backwards from the newest (or from `before`), oldest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", operation_id = "list_conversation_messages", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path), PageQuery),
    responses((status = 200, body = MessagePage), (status = 404, body = ProblemBody)))]
pub async fn list_messages(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
    Query(q): Query<PageQuery>,
) -> Result<ApiJson<MessagePage>, Problem> {
    Ok(ApiJson(s.messages(&who, id, &q).await?))
}

/// Send a reply (queued; answers 202) or add a private note (201). Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path), ("Idempotency-Key" = Option<String>, Header)), request_body = SendIn,
    responses((status = 202, body = MessageOut), (status = 201, body = MessageOut), (status = 404, body = ProblemBody),
        (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn send_message(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
    headers: HeaderMap,
    ApiJson(b): ApiJson<SendIn>,
) -> Result<Response, Problem> {
    let key = idem_key(&headers)?;
    let (status, body) = s.send(&who, id, &b, key.as_deref()).await?;
    Ok(json_response(status, body))
}

/// Send to a contact or address directly (creates the conversation when needed).
#[utoipa::path(post, path = "/api/v1/messages", tag = "inbox", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header)), request_body = DirectSendIn,
    responses((status = 202, body = MessageOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn send_direct(
    State(s): Svc,
    Caller(who): Caller,
    headers: HeaderMap,
    ApiJson(b): ApiJson<Box<RawValue>>,
) -> Result<Response, Problem> {
    let b = DirectSendIn::from_json(&b, "")?;
    let key = idem_key(&headers)?;
    let (status, body) = s.send_direct(&who, &b, key.as_deref()).await?;
    Ok(json_response(status, body))
}

/// Up to 100 single sends; each gets its own result.
#[utoipa::path(post, path = "/api/v1/messages/batch", tag = "inbox", security(("bearer" = [])),
    request_body = BatchIn, responses((status = 200, body = BatchOut), (status = 422, body = ProblemBody)))]
pub async fn send_batch(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<BatchIn>,
) -> Result<ApiJson<BatchOut>, Problem> {
    Ok(ApiJson(s.send_batch(&who, b.messages).await?))
}

#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = MessageId, Path)), responses((status = 200, body = MessageOut), (status = 404, body = ProblemBody)))]
pub async fn get_message(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<MessageId>,
) -> Result<ApiJson<MessageOut>, Problem> {
    Ok(ApiJson(s.message(&who, id).await?))
}

/// Upload a file to send (multipart `file`, up to 16 MB).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/attachments", operation_id = "upload_conversation_attachment", tag = "inbox", security(("bearer" = [])),
    params(("id" = ConversationId, Path)),
    responses((status = 201, body = AttachmentOut), (status = 413, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn upload_attachment(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ConversationId>,
    mut form: Multipart,
) -> Result<(StatusCode, ApiJson<AttachmentOut>), Problem> {
    let mut upload = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| Problem::invalid_field("file", format!("unreadable upload: {e}")))?
    {
        if field.name() == Some("file") {
            let filename = field.file_name().unwrap_or("file").to_owned();
            let declared = field.content_type().map(str::to_owned);
            let bytes = field.bytes().await.map_err(|e| {
                if e.to_string().contains("length limit") {
                    Problem::payload_too_large(ATTACHMENT_MAX).with_field("file", "is too large")
                } else {
                    Problem::invalid_field("file", format!("unreadable upload: {e}"))
                }
            })?;
            upload = Some(Upload {
                filename,
                declared,
                bytes,
            });
        }
    }
    let upload = upload.ok_or_else(|| Problem::invalid_field("file", "is required"))?;
    Ok((
        StatusCode::CREATED,
        ApiJson(s.upload(&who, id, upload).await?),
    ))
}

/// Message media and uploads by their unguessable key (no credentials: providers fetch
/// outbound media from here, `<img>` tags load inbound media).
#[utoipa::path(get, path = "/api/v1/inbox-media/{key}", tag = "inbox",
    params(("key" = String, Path)), responses((status = 200), (status = 404, body = ProblemBody)))]
pub async fn get_media(State(s): Svc, Path(key): Path<String>) -> Result<Response, Problem> {
    let (bytes, mime) = s.media(&key).await?;
    Ok((
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "private, max-age=86400".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; sandbox".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// A simulated customer writes on a Sandbox channel.
#[utoipa::path(post, path = "/api/v1/channels/{id}/simulate", tag = "inbox", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = SimulateIn,
    responses((status = 202, body = SimulateOut), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn simulate(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<SimulateIn>,
) -> Result<(StatusCode, ApiJson<SimulateOut>), Problem> {
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(s.simulate(&who, id, &b).await?),
    ))
}

/// The simulated customer reads every message of a Sandbox conversation.
#[utoipa::path(post, path = "/api/v1/channels/{id}/simulate/read", tag = "inbox", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = SimulateReadIn,
    responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn simulate_read(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<SimulateReadIn>,
) -> Result<StatusCode, Problem> {
    s.simulate_read(&who, id, b.conversation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/canned-responses", tag = "inbox", security(("bearer" = [])),
    params(CannedQuery), responses((status = 200, body = Vec<CannedOut>)))]
pub async fn list_canned(
    State(s): Svc,
    Caller(who): Caller,
    Query(q): Query<CannedQuery>,
) -> Result<ApiJson<Vec<CannedOut>>, Problem> {
    Ok(ApiJson(s.canned(&who, q.q.as_deref()).await?))
}

#[utoipa::path(post, path = "/api/v1/canned-responses", tag = "inbox", security(("bearer" = [])),
    request_body = CannedIn, responses((status = 201, body = CannedOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_canned(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<CannedIn>,
) -> Result<(StatusCode, ApiJson<CannedOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.create_canned(&who, &b).await?),
    ))
}

#[utoipa::path(patch, path = "/api/v1/canned-responses/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = CannedId, Path)), request_body = CannedPatch,
    responses((status = 200, body = CannedOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_canned(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CannedId>,
    ApiJson(b): ApiJson<CannedPatch>,
) -> Result<ApiJson<CannedOut>, Problem> {
    Ok(ApiJson(s.update_canned(&who, id, &b).await?))
}

#[utoipa::path(delete, path = "/api/v1/canned-responses/{id}", tag = "inbox", security(("bearer" = [])),
    params(("id" = CannedId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_canned(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CannedId>,
) -> Result<StatusCode, Problem> {
    s.delete_canned(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub fn routes(inbox: Arc<Inbox>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(conversation_counts))
        .routes(routes!(get_conversation, update_conversation))
        .routes(routes!(assign_conversation))
        .routes(routes!(resolve_conversation))
        .routes(routes!(reopen_conversation))
        .routes(routes!(read_conversation))
        .routes(routes!(list_messages, send_message))
        .routes(routes!(send_direct))
        .routes(routes!(send_batch))
        .routes(routes!(get_message))
        .routes(routes!(get_media))
        .routes(routes!(simulate))
        .routes(routes!(simulate_read))
        .routes(routes!(list_canned, create_canned))
        .routes(routes!(update_canned, delete_canned))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(upload_attachment))
                .layer(DefaultBodyLimit::max(ATTACHMENT_MAX + 256 * 1024)),
        )
        .with_state(inbox)
}
