//! Team chat HTTP API under `/api/v1/chat`: DTOs (`…In`, `…Patch`, `…Out`) and thin handlers —
//! extract, call one service function, answer. Any member of the organisation may call them;
//! what they may do in a channel is decided by the service (membership, channel admin).
//! Reading a channel the caller locked needs the `X-Chat-Unlock` header ([`UnlockTokens`]).

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, Multipart, Path, Query, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wamage_identity::Caller;
use wamage_kernel::{ApiJson, Problem, Timestamp, UserId, problem::ProblemBody};

use crate::{
    model::{AttachmentId, ChannelId, ChannelKind, ChatMessageId, Disappearing, MemberRole},
    service::{ATTACHMENT_MAX, Chat, Upload},
};

type Svc = State<Arc<Chat>>;

/// The header carrying unlock tokens of locked channels.
pub const UNLOCK_HEADER: &str = "x-chat-unlock";

/// The unlock tokens sent in `X-Chat-Unlock` (several may be comma-separated).
#[derive(Debug, Clone, Default)]
pub struct UnlockTokens(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for UnlockTokens {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let tokens = parts
            .headers
            .get_all(UNLOCK_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .take(20)
            .map(str::to_owned)
            .collect();
        Ok(Self(tokens))
    }
}

// ---- DTOs --------------------------------------------------------------------------------

/// A member as a channel title shows them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberPreview {
    pub user_id: UserId,
    pub name: String,
    pub avatar_url: Option<String>,
}

/// A channel, DM or group DM as the caller sees it (events carry a neutral view: no role,
/// not joined, no counters).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelOut {
    pub id: ChannelId,
    pub kind: ChannelKind,
    /// `null` for DMs (the UI names them after `members_preview`).
    pub name: Option<String>,
    pub topic: Option<String>,
    pub archived: bool,
    pub disappearing: Disappearing,
    pub member_count: i64,
    /// Up to 5 members other than the caller, oldest first.
    pub members_preview: Vec<MemberPreview>,
    pub my_role: Option<MemberRole>,
    pub joined: bool,
    /// Top-level messages of others after the caller's read marker.
    pub unread_count: i64,
    /// Messages mentioning the caller (or `@channel`/`@here`) after the read marker.
    pub mention_count: i64,
    pub last_read_id: Option<ChatMessageId>,
    /// `null` when the caller locked the channel.
    pub last_message: Option<Box<MessageOut>>,
    pub last_activity_at: Timestamp,
    /// The caller locked this channel.
    pub locked: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelList {
    pub items: Vec<ChannelOut>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelIn {
    /// `public` or `private`.
    pub kind: ChannelKind,
    /// 1–80 letters, digits, spaces, `-` and `_`; unique in the organisation ignoring case.
    pub name: String,
    #[serde(default)]
    pub topic: Option<String>,
    /// Members to add besides the creator (who becomes a channel admin).
    #[serde(default)]
    pub member_ids: Option<Vec<UserId>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DmIn {
    /// The other people: 1 → a DM, 2–8 → a group DM (the caller is added implicitly).
    pub user_ids: Vec<UserId>,
}

/// Changes to a channel: absent fields stay; `topic: null` clears it. DMs: only `disappearing`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub topic: Option<Option<String>>,
    pub archived: Option<bool>,
    pub disappearing: Option<Disappearing>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelMemberOut {
    pub user_id: UserId,
    pub name: String,
    pub avatar_url: Option<String>,
    pub role: MemberRole,
    pub joined_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelMemberList {
    pub items: Vec<ChannelMemberOut>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MembersIn {
    pub user_ids: Vec<UserId>,
    /// Default `member`; given for someone already in the channel, changes their role.
    #[serde(default)]
    pub role: Option<MemberRole>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordIn {
    /// The caller's account password.
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnlockOut {
    /// Send as `X-Chat-Unlock: <token>` to read the channel.
    pub unlock_token: String,
    /// Seconds the token is valid.
    pub expires_in: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorOut {
    pub id: UserId,
    pub name: String,
    pub avatar_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QuoteOut {
    pub id: ChatMessageId,
    pub author_name: String,
    pub text: String,
    /// The quoted message was deleted (or has disappeared): no text.
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ForwardedFrom {
    pub channel_id: ChannelId,
    pub message_id: ChatMessageId,
    pub author_id: UserId,
    pub author_name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReactionOut {
    pub emoji: String,
    pub count: i64,
    /// The caller reacted with it.
    pub me: bool,
    pub user_ids: Vec<UserId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AttachmentOut {
    pub id: AttachmentId,
    /// `image`, `audio`, `voice` or `file`.
    pub kind: String,
    pub name: String,
    /// The type sniffed from the bytes.
    pub content_type: String,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Voice notes: up to 128 levels 0–100.
    pub waveform: Option<Vec<u8>>,
    pub view_once: bool,
    /// View-once: the caller already opened it.
    pub viewed: bool,
    pub url: String,
    pub thumbnail_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageOut {
    pub id: ChatMessageId,
    pub channel_id: ChannelId,
    pub author: AuthorOut,
    /// Markdown, kept as written; mentions as `@[Name](user:<uuid>)` tokens.
    pub text: String,
    /// Users mentioned by token (members of the organisation).
    pub mentions: Vec<UserId>,
    /// Says `@channel` or `@here`.
    pub mentions_channel: bool,
    /// The parent, for a thread reply.
    pub thread_id: Option<ChatMessageId>,
    pub reply_count: i64,
    pub last_reply_at: Option<Timestamp>,
    pub quote: Option<QuoteOut>,
    pub forwarded_from: Option<ForwardedFrom>,
    pub attachments: Vec<AttachmentOut>,
    pub reactions: Vec<ReactionOut>,
    pub pinned: bool,
    pub edited_at: Option<Timestamp>,
    pub deleted: bool,
    pub created_at: Timestamp,
    /// Disappearing messages: when it goes.
    pub expires_at: Option<Timestamp>,
    /// DMs and group DMs: members other than the author whose read marker is at or after it.
    pub read_by: Vec<UserId>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessagePage {
    /// Oldest first.
    pub items: Vec<MessageOut>,
    pub has_more_before: bool,
    pub has_more_after: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageList {
    pub items: Vec<MessageOut>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages older than this one.
    pub before: Option<ChatMessageId>,
    /// Messages newer than this one.
    pub after: Option<ChatMessageId>,
    /// Messages around this one, itself included (jump to message).
    pub around: Option<ChatMessageId>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Include archived channels.
    pub archived: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BrowseQuery {
    /// Part of the name.
    pub q: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// At most 8000 characters; may be empty only with attachments.
    #[serde(default)]
    pub text: String,
    /// Reply in the thread of this top-level message.
    #[serde(default)]
    pub thread_id: Option<ChatMessageId>,
    /// Quote this message of the same channel.
    #[serde(default)]
    pub quote_id: Option<ChatMessageId>,
    /// Up to 10 of the caller's unsent uploads.
    #[serde(default)]
    pub attachment_ids: Option<Vec<AttachmentId>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagePatch {
    pub text: String,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThreadQuery {
    /// Replies after this one.
    pub after: Option<ChatMessageId>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ThreadOut {
    pub parent: MessageOut,
    /// Oldest first.
    pub items: Vec<MessageOut>,
    pub has_more_after: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardIn {
    pub channel_id: ChannelId,
    /// A comment, sent just before the forwarded message.
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReactionsOut {
    pub reactions: Vec<ReactionOut>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadIn {
    pub message_id: ChatMessageId,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words; each must prefix-match a word of the message.
    pub q: Option<String>,
    pub channel_id: Option<ChannelId>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
}

/// The multipart form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the multipart body; read field by field in the handler
pub struct AttachmentForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// `true`: each recipient may open it once.
    view_once: Option<bool>,
    /// Voice notes: the length in milliseconds (makes it a voice note).
    duration_ms: Option<i64>,
    /// Voice notes: a JSON array of up to 128 numbers 0–100.
    waveform: Option<String>,
}

// ---- handlers ----------------------------------------------------------------------------

/// The caller's channels and DMs, most recently active first.
#[utoipa::path(get, path = "/api/v1/chat/channels", tag = "chat", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = ChannelList)))]
pub async fn list_channels(
    State(s): Svc,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> Result<ApiJson<ChannelList>, Problem> {
    Ok(ApiJson(ChannelList {
        items: s.channels(&who, q.archived.unwrap_or(false)).await?,
    }))
}

/// Create a public or private channel; the caller becomes its admin.
#[utoipa::path(post, path = "/api/v1/chat/channels", tag = "chat", security(("bearer" = [])),
    request_body = ChannelIn,
    responses((status = 201, body = ChannelOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_channel(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<ChannelIn>,
) -> Result<(StatusCode, ApiJson<ChannelOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.create_channel(&who, &b).await?),
    ))
}

/// The organisation's public channels, joined or not.
#[utoipa::path(get, path = "/api/v1/chat/channels/browse", tag = "chat", security(("bearer" = [])),
    params(BrowseQuery), responses((status = 200, body = ChannelList), (status = 422, body = ProblemBody)))]
pub async fn browse_channels(
    State(s): Svc,
    Caller(who): Caller,
    Query(q): Query<BrowseQuery>,
) -> Result<ApiJson<ChannelList>, Problem> {
    Ok(ApiJson(ChannelList {
        items: s.browse(&who, q.q.as_deref()).await?,
    }))
}

/// Open the DM or group DM with these people: 200 with the existing one, 201 with a new one.
#[utoipa::path(post, path = "/api/v1/chat/dms", tag = "chat", security(("bearer" = [])),
    request_body = DmIn,
    responses((status = 200, body = ChannelOut), (status = 201, body = ChannelOut), (status = 422, body = ProblemBody)))]
pub async fn open_dm(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<DmIn>,
) -> Result<(StatusCode, ApiJson<ChannelOut>), Problem> {
    let (created, out) = s.open_dm(&who, &b.user_ids).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, ApiJson(out)))
}

/// A channel (members; any member of the organisation for a public channel).
#[utoipa::path(get, path = "/api/v1/chat/channels/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)),
    responses((status = 200, body = ChannelOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)))]
pub async fn get_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
) -> Result<ApiJson<ChannelOut>, Problem> {
    Ok(ApiJson(s.channel(&who, id).await?))
}

/// Rename, set the topic, archive or set disappearing messages (channel or organisation
/// admin; in DMs any member may set `disappearing`).
#[utoipa::path(patch, path = "/api/v1/chat/channels/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = ChannelPatch,
    responses((status = 200, body = ChannelOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<ChannelPatch>,
) -> Result<ApiJson<ChannelOut>, Problem> {
    Ok(ApiJson(s.update_channel(&who, id, &b).await?))
}

/// The members of a channel.
#[utoipa::path(get, path = "/api/v1/chat/channels/{id}/members", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)),
    responses((status = 200, body = ChannelMemberList), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)))]
pub async fn list_channel_members(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
) -> Result<ApiJson<ChannelMemberList>, Problem> {
    Ok(ApiJson(ChannelMemberList {
        items: s.members(&who, id).await?,
    }))
}

/// Add members (channel or organisation admin); answers the member list.
#[utoipa::path(post, path = "/api/v1/chat/channels/{id}/members", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = MembersIn,
    responses((status = 200, body = ChannelMemberList), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn add_channel_members(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<MembersIn>,
) -> Result<ApiJson<ChannelMemberList>, Problem> {
    Ok(ApiJson(ChannelMemberList {
        items: s.add_members(&who, id, &b.user_ids, b.role).await?,
    }))
}

/// Remove a member (channel or organisation admin, or oneself).
#[utoipa::path(delete, path = "/api/v1/chat/channels/{id}/members/{user_id}", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path), ("user_id" = UserId, Path)),
    responses((status = 204), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn remove_channel_member(
    State(s): Svc,
    Caller(who): Caller,
    Path((id, user)): Path<(ChannelId, UserId)>,
) -> Result<StatusCode, Problem> {
    s.remove_member(&who, id, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Join a public channel.
#[utoipa::path(post, path = "/api/v1/chat/channels/{id}/join", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)),
    responses((status = 200, body = ChannelOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn join_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
) -> Result<ApiJson<ChannelOut>, Problem> {
    Ok(ApiJson(s.join(&who, id).await?))
}

/// Leave a channel (not a DM).
#[utoipa::path(post, path = "/api/v1/chat/channels/{id}/leave", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)),
    responses((status = 204), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn leave_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
) -> Result<StatusCode, Problem> {
    s.leave(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lock a channel for yourself (your password is checked).
#[utoipa::path(put, path = "/api/v1/chat/channels/{id}/lock", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = PasswordIn,
    responses((status = 200, body = ChannelOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody), (status = 429, body = ProblemBody)))]
pub async fn lock_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<PasswordIn>,
) -> Result<ApiJson<ChannelOut>, Problem> {
    Ok(ApiJson(s.set_lock(&who, id, &b.password, true).await?))
}

/// Remove your lock from a channel (your password is checked).
#[utoipa::path(delete, path = "/api/v1/chat/channels/{id}/lock", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = PasswordIn,
    responses((status = 200, body = ChannelOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody), (status = 429, body = ProblemBody)))]
pub async fn unlock_channel_for_good(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<PasswordIn>,
) -> Result<ApiJson<ChannelOut>, Problem> {
    Ok(ApiJson(s.set_lock(&who, id, &b.password, false).await?))
}

/// A 10-minute token to read a locked channel (header `X-Chat-Unlock`).
#[utoipa::path(post, path = "/api/v1/chat/channels/{id}/unlock", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = PasswordIn,
    responses((status = 200, body = UnlockOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody), (status = 429, body = ProblemBody)))]
pub async fn unlock_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<PasswordIn>,
) -> Result<ApiJson<UnlockOut>, Problem> {
    Ok(ApiJson(s.unlock(&who, id, &b.password).await?))
}

/// Top-level messages of a channel, oldest first, by keyset in either direction.
#[utoipa::path(get, path = "/api/v1/chat/channels/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path), HistoryQuery, ("X-Chat-Unlock" = Option<String>, Header)),
    responses((status = 200, body = MessagePage), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn list_messages(
    State(s): Svc,
    Caller(who): Caller,
    UnlockTokens(unlock): UnlockTokens,
    Path(id): Path<ChannelId>,
    Query(q): Query<HistoryQuery>,
) -> Result<ApiJson<MessagePage>, Problem> {
    Ok(ApiJson(s.history(&who, id, &q, &unlock).await?))
}

/// Send a message (members only).
#[utoipa::path(post, path = "/api/v1/chat/channels/{id}/messages", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = MessageIn,
    responses((status = 201, body = MessageOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn post_message(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<MessageIn>,
) -> Result<(StatusCode, ApiJson<MessageOut>), Problem> {
    Ok((StatusCode::CREATED, ApiJson(s.post(&who, id, &b).await?)))
}

/// A thread: its parent and replies, oldest first.
#[utoipa::path(get, path = "/api/v1/chat/messages/{id}/thread", tag = "chat", security(("bearer" = [])),
    params(("id" = ChatMessageId, Path), ThreadQuery, ("X-Chat-Unlock" = Option<String>, Header)),
    responses((status = 200, body = ThreadOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn get_thread(
    State(s): Svc,
    Caller(who): Caller,
    UnlockTokens(unlock): UnlockTokens,
    Path(id): Path<ChatMessageId>,
    Query(q): Query<ThreadQuery>,
) -> Result<ApiJson<ThreadOut>, Problem> {
    Ok(ApiJson(s.thread(&who, id, &q, &unlock).await?))
}

/// Edit your message.
#[utoipa::path(patch, path = "/api/v1/chat/messages/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = ChatMessageId, Path)), request_body = MessagePatch,
    responses((status = 200, body = MessageOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn edit_message(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChatMessageId>,
    ApiJson(b): ApiJson<MessagePatch>,
) -> Result<ApiJson<MessageOut>, Problem> {
    Ok(ApiJson(s.edit(&who, id, &b.text).await?))
}

/// Delete a message (its author, or a channel or organisation admin): it stays as a tombstone.
#[utoipa::path(delete, path = "/api/v1/chat/messages/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = ChatMessageId, Path)),
    responses((status = 204), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)))]
pub async fn delete_message(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChatMessageId>,
) -> Result<StatusCode, Problem> {
    s.delete(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forward a message to another channel or DM.
#[utoipa::path(post, path = "/api/v1/chat/messages/{id}/forward", tag = "chat", security(("bearer" = [])),
    params(("id" = ChatMessageId, Path)), request_body = ForwardIn,
    responses((status = 201, body = MessageOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn forward_message(
    State(s): Svc,
    Caller(who): Caller,
    UnlockTokens(unlock): UnlockTokens,
    Path(id): Path<ChatMessageId>,
    ApiJson(b): ApiJson<ForwardIn>,
) -> Result<(StatusCode, ApiJson<MessageOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.forward(&who, id, &b, &unlock).await?),
    ))
}

/// React to a message.
#[utoipa::path(put, path = "/api/v1/chat/messages/{id}/reactions/{emoji}", tag = "chat", security(("bearer" = [])),
    params(("id" = ChatMessageId, Path), ("emoji" = String, Path)),
    responses((status = 200, body = ReactionsOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn add_reaction(
    State(s): Svc,
    Caller(who): Caller,
    Path((id, emoji)): Path<(ChatMessageId, String)>,
) -> Result<ApiJson<ReactionsOut>, Problem> {
    Ok(ApiJson(ReactionsOut {
        reactions: s.react(&who, id, &emoji, true).await?,
    }))
}

/// Take your reaction back.
#[utoipa::path(delete, path = "/api/v1/chat/messages/{id}/reactions/{emoji}", tag = "chat", security(("bearer" = [])),
    params(("id" = ChatMessageId, Path), ("emoji" = String, Path)),
    responses((status = 200, body = ReactionsOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn remove_reaction(
    State(s): Svc,
    Caller(who): Caller,
    Path((id, emoji)): Path<(ChatMessageId, String)>,
) -> Result<ApiJson<ReactionsOut>, Problem> {
    Ok(ApiJson(ReactionsOut {
        reactions: s.react(&who, id, &emoji, false).await?,
    }))
}

/// Pin a message to its channel.
#[utoipa::path(put, path = "/api/v1/chat/messages/{id}/pin", tag = "chat", security(("bearer" = [])),
    params(("id" = ChatMessageId, Path)),
    responses((status = 200, body = MessageOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)))]
pub async fn pin_message(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChatMessageId>,
) -> Result<ApiJson<MessageOut>, Problem> {
    Ok(ApiJson(s.pin(&who, id, true).await?))
}

/// Unpin a message.
#[utoipa::path(delete, path = "/api/v1/chat/messages/{id}/pin", tag = "chat", security(("bearer" = [])),
    params(("id" = ChatMessageId, Path)),
    responses((status = 200, body = MessageOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)))]
pub async fn unpin_message(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChatMessageId>,
) -> Result<ApiJson<MessageOut>, Problem> {
    Ok(ApiJson(s.pin(&who, id, false).await?))
}

/// The pinned messages of a channel, most recently pinned first.
#[utoipa::path(get, path = "/api/v1/chat/channels/{id}/pins", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path), ("X-Chat-Unlock" = Option<String>, Header)),
    responses((status = 200, body = MessageList), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)))]
pub async fn list_pins(
    State(s): Svc,
    Caller(who): Caller,
    UnlockTokens(unlock): UnlockTokens,
    Path(id): Path<ChannelId>,
) -> Result<ApiJson<MessageList>, Problem> {
    Ok(ApiJson(MessageList {
        items: s.pins(&who, id, &unlock).await?,
    }))
}

/// Mark the channel read up to a message (the marker never moves back).
#[utoipa::path(post, path = "/api/v1/chat/channels/{id}/read", tag = "chat", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = ReadIn,
    responses((status = 204), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn mark_read(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<ReadIn>,
) -> Result<StatusCode, Problem> {
    s.mark_read(&who, id, b.message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Full-text search over the channels you are a member of (locked ones only with their
/// unlock token), newest first.
#[utoipa::path(get, path = "/api/v1/chat/search", tag = "chat", security(("bearer" = [])),
    params(SearchQuery, ("X-Chat-Unlock" = Option<String>, Header)),
    responses((status = 200, body = MessageList), (status = 422, body = ProblemBody)))]
pub async fn search_messages(
    State(s): Svc,
    Caller(who): Caller,
    UnlockTokens(unlock): UnlockTokens,
    Query(q): Query<SearchQuery>,
) -> Result<ApiJson<MessageList>, Problem> {
    Ok(ApiJson(MessageList {
        items: s
            .search(
                &who,
                q.q.as_deref().unwrap_or(""),
                q.channel_id,
                q.limit,
                &unlock,
            )
            .await?,
    }))
}

fn upload_error(e: &axum::extract::multipart::MultipartError) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::payload_too_large(ATTACHMENT_MAX).with_field("file", "must be at most 25 MB")
    } else {
        Problem::bad_request("malformed_multipart", "The upload could not be read")
    }
}

/// Upload a file for your next message (multipart field `file`; images ≤ 10 MB, other files
/// ≤ 25 MB; the type is read from the bytes).
#[utoipa::path(post, path = "/api/v1/chat/attachments", tag = "chat", security(("bearer" = [])),
    request_body(content = AttachmentForm, content_type = "multipart/form-data"),
    responses((status = 201, body = AttachmentOut), (status = 413, body = ProblemBody), (status = 415, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn upload_attachment(
    State(s): Svc,
    Caller(who): Caller,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, ApiJson<AttachmentOut>), Problem> {
    let mut multipart =
        multipart.map_err(|_| Problem::unsupported_media_type("multipart/form-data"))?;
    let mut up = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| upload_error(&e))? {
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            up.file_name = field.file_name().map(str::to_owned);
            up.content_type = field.content_type().map(str::to_owned);
            up.file = Some(field.bytes().await.map_err(|e| upload_error(&e))?);
            continue;
        }
        let slot = match name.as_str() {
            "view_once" => &mut up.view_once,
            "duration_ms" => &mut up.duration_ms,
            "waveform" => &mut up.waveform,
            _ => continue,
        };
        *slot = Some(field.text().await.map_err(|e| upload_error(&e))?);
    }
    Ok((StatusCode::CREATED, ApiJson(s.upload(&who, up).await?)))
}

/// The file of an attachment. A view-once file opens once per recipient, then 410 `viewed`.
#[utoipa::path(get, path = "/api/v1/chat/attachments/{id}", tag = "chat", security(("bearer" = [])),
    params(("id" = AttachmentId, Path), ("X-Chat-Unlock" = Option<String>, Header)),
    responses((status = 200, content_type = "application/octet-stream"), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 410, body = ProblemBody)))]
pub async fn get_attachment(
    State(s): Svc,
    Caller(who): Caller,
    UnlockTokens(unlock): UnlockTokens,
    Path(id): Path<AttachmentId>,
) -> Result<Response, Problem> {
    let (blob, name, view_once) = s.attachment_file(&who, id, &unlock).await?;
    let inline = blob.content_type.starts_with("image/") || blob.content_type.starts_with("audio/");
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        name.replace(|c: char| !c.is_ascii() || c == '"' || c == '\\', "_")
    );
    let mut res = (
        [
            (header::CONTENT_TYPE, blob.content_type),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        blob.bytes,
    )
        .into_response();
    let cache = if view_once {
        "no-store"
    } else {
        "private, max-age=3600"
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// The thumbnail of an image attachment (PNG, ≤ 320 px).
#[utoipa::path(get, path = "/api/v1/chat/attachments/{id}/thumbnail", tag = "chat", security(("bearer" = [])),
    params(("id" = AttachmentId, Path), ("X-Chat-Unlock" = Option<String>, Header)),
    responses((status = 200, content_type = "image/png"), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody)))]
pub async fn get_attachment_thumbnail(
    State(s): Svc,
    Caller(who): Caller,
    UnlockTokens(unlock): UnlockTokens,
    Path(id): Path<AttachmentId>,
) -> Result<Response, Problem> {
    let blob = s.attachment_thumbnail(&who, id, &unlock).await?;
    Ok((
        [
            (header::CONTENT_TYPE, blob.content_type),
            (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
        ],
        blob.bytes,
    )
        .into_response())
}

/// The chat API, with its OpenAPI description.
pub fn routes(chat: Arc<Chat>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(browse_channels))
        .routes(routes!(open_dm))
        .routes(routes!(get_channel, update_channel))
        .routes(routes!(list_channel_members, add_channel_members))
        .routes(routes!(remove_channel_member))
        .routes(routes!(join_channel))
        .routes(routes!(leave_channel))
        .routes(routes!(lock_channel, unlock_channel_for_good))
        .routes(routes!(unlock_channel))
        .routes(routes!(list_messages, post_message))
        .routes(routes!(get_thread))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(forward_message))
        .routes(routes!(add_reaction, remove_reaction))
        .routes(routes!(pin_message, unpin_message))
        .routes(routes!(list_pins))
        .routes(routes!(mark_read))
        .routes(routes!(search_messages))
        .merge(
            // Files may be 25 MB; a little more for the multipart framing and the other
            // fields, so the size check answers 413 naming `file` instead of cutting the
            // connection.
            OpenApiRouter::new()
                .routes(routes!(upload_attachment))
                .layer(axum::extract::DefaultBodyLimit::max(
                    ATTACHMENT_MAX + 256 * 1024,
                )),
        )
        .routes(routes!(get_attachment))
        .routes(routes!(get_attachment_thumbnail))
        .with_state(chat)
}
