//! Channels HTTP: the management API under `/api/v1/channels` (members read, admins write) and
//! the provider-facing webhooks under `/webhooks/{kind}/{channel_id}` (no session: the
//! signature is the authentication).

use std::sync::Arc;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wamage_identity::Caller;
use wamage_kernel::{ApiJson, Problem, Timestamp, problem::ProblemBody};

use crate::{
    model::{ChannelId, ChannelKind, HealthState, ReopenPolicy},
    pacing::CircuitOut,
    service::{ChannelConfig, Channels, WEBHOOK_MAX_BYTES},
};

type Svc = State<Arc<Channels>>;

/// Settings given when connecting or editing a channel. Secrets are write-only.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigIn {
    /// WhatsApp: the phone number id (digits).
    pub phone_number_id: Option<String>,
    /// WhatsApp: the WhatsApp Business Account id (digits; templates need it).
    pub waba_id: Option<String>,
    /// WhatsApp: Graph API version, like `v21.0`.
    pub api_version: Option<String>,
    /// WhatsApp: a system user access token (secret).
    pub access_token: Option<String>,
    /// WhatsApp: the Meta app secret that signs webhooks (secret).
    pub app_secret: Option<String>,
    /// Telegram: the bot token from @BotFather (secret).
    pub bot_token: Option<String>,
    /// Telegram: `webhook` or `polling` (default).
    pub mode: Option<String>,
    /// Sandbox: simulated customers read what they receive (default true).
    pub auto_read: Option<bool>,
    /// Provider base URL (only on servers that allow overrides, e.g. tests).
    pub base_url: Option<String>,
    /// What a customer message does to a resolved conversation.
    pub reopen: Option<ReopenPolicy>,
    /// A team whose online agents get new conversations round-robin (`null` turns it off).
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    pub assign_team_id: Option<Option<uuid::Uuid>>,
    /// Extra opt-out words (matched as the whole message, case-insensitive).
    pub opt_out_keywords: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = InboxChannelIn)]
#[serde(deny_unknown_fields)]
pub struct ChannelIn {
    pub kind: ChannelKind,
    pub name: String,
    /// Pacing, 1–1000 (default: WhatsApp 80, Telegram 30, Sandbox 1000).
    pub messages_per_second: Option<u32>,
    #[serde(default)]
    pub config: ConfigIn,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(as = InboxChannelPatch)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub messages_per_second: Option<u32>,
    /// Partial: a secret is replaced only when given.
    pub config: Option<ConfigIn>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ChannelHealthOut)]
pub struct HealthOut {
    pub state: HealthState,
    pub reason: Option<String>,
    pub checked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = InboxChannelOut)]
pub struct ChannelOut {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub name: String,
    pub enabled: bool,
    pub health: HealthOut,
    /// The circuit breaker of the sender in this process.
    pub circuit: CircuitOut,
    pub messages_per_second: u32,
    pub config: ChannelConfig,
    /// Which secrets are set (never their values).
    #[schema(value_type = Object)]
    pub secrets: Value,
    /// The URL to paste into the provider's webhook settings (`null` for the Sandbox).
    pub webhook_url: Option<String>,
    /// WhatsApp: the verify token to paste next to the webhook URL.
    pub verify_token: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestOut {
    pub ok: bool,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
    pub error: Option<String>,
}

/// The organisation's channels.
#[utoipa::path(get, path = "/api/v1/channels", operation_id = "list_inbox_channels", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChannelOut>)))]
pub async fn list_channels(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<Vec<ChannelOut>>, Problem> {
    Ok(ApiJson(s.list(&who).await?))
}

/// Connect a WhatsApp number, a Telegram bot or a Sandbox (admins).
#[utoipa::path(post, path = "/api/v1/channels", operation_id = "create_inbox_channel", tag = "channels", security(("bearer" = [])),
    request_body = ChannelIn,
    responses((status = 201, body = ChannelOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_channel(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<ChannelIn>,
) -> Result<(StatusCode, ApiJson<ChannelOut>), Problem> {
    Ok((StatusCode::CREATED, ApiJson(s.create(&who, &b).await?)))
}

#[utoipa::path(get, path = "/api/v1/channels/{id}", operation_id = "get_inbox_channel", tag = "channels", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), responses((status = 200, body = ChannelOut), (status = 404, body = ProblemBody)))]
pub async fn get_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
) -> Result<ApiJson<ChannelOut>, Problem> {
    Ok(ApiJson(s.channel(&who, id).await?))
}

/// Rename, re-rate, enable/disable, or change settings (secrets only when given).
#[utoipa::path(patch, path = "/api/v1/channels/{id}", operation_id = "update_inbox_channel", tag = "channels", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), request_body = ChannelPatch,
    responses((status = 200, body = ChannelOut), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
    ApiJson(b): ApiJson<ChannelPatch>,
) -> Result<ApiJson<ChannelOut>, Problem> {
    Ok(ApiJson(s.update(&who, id, &b).await?))
}

/// Disconnect (conversations stay readable).
#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "channels", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
) -> Result<StatusCode, Problem> {
    s.delete(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check the credentials against the provider; updates the channel's health.
#[utoipa::path(post, path = "/api/v1/channels/{id}/test", tag = "channels", security(("bearer" = [])),
    params(("id" = ChannelId, Path)), responses((status = 200, body = TestOut), (status = 404, body = ProblemBody)))]
pub async fn test_channel(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ChannelId>,
) -> Result<ApiJson<TestOut>, Problem> {
    Ok(ApiJson(s.test(&who, id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct SubscribeQuery {
    #[serde(rename = "hub.mode")]
    #[param(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    #[param(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    #[param(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's webhook verification: echoes `hub.challenge` when the verify token matches.
#[utoipa::path(get, path = "/webhooks/whatsapp/{id}", tag = "webhooks",
    params(("id" = ChannelId, Path), SubscribeQuery),
    responses((status = 200, body = String, content_type = "text/plain"), (status = 403, body = ProblemBody)))]
pub async fn whatsapp_verify(
    State(s): Svc,
    Path(id): Path<String>,
    Query(q): Query<SubscribeQuery>,
) -> Result<Response, Problem> {
    let id = webhook_channel(&id)?;
    let challenge = s
        .whatsapp_subscribe(
            id,
            q.mode.as_deref(),
            q.verify_token.as_deref(),
            q.challenge.as_deref(),
        )
        .await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        challenge,
    )
        .into_response())
}

/// WhatsApp Cloud API events (signed with `X-Hub-Signature-256`). Answers 200 once stored.
#[utoipa::path(post, path = "/webhooks/whatsapp/{id}", tag = "webhooks",
    params(("id" = ChannelId, Path)), request_body(content = Object, content_type = "application/json"),
    responses((status = 200), (status = 401, body = ProblemBody), (status = 404, body = ProblemBody), (status = 413, body = ProblemBody)))]
pub async fn whatsapp_webhook(
    State(s): Svc,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let id = webhook_channel(&id)?;
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    s.receive(ChannelKind::Whatsapp, id, sig, body).await?;
    Ok(StatusCode::OK)
}

/// Telegram Bot API updates (authenticated by `X-Telegram-Bot-Api-Secret-Token`).
#[utoipa::path(post, path = "/webhooks/telegram/{id}", tag = "webhooks",
    params(("id" = ChannelId, Path)), request_body(content = Object, content_type = "application/json"),
    responses((status = 200), (status = 401, body = ProblemBody), (status = 404, body = ProblemBody), (status = 413, body = ProblemBody)))]
pub async fn telegram_webhook(
    State(s): Svc,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let id = webhook_channel(&id)?;
    let secret = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok());
    s.receive(ChannelKind::Telegram, id, secret, body).await?;
    Ok(StatusCode::OK)
}

/// The channel of a webhook URL: a path that is not a channel id is a channel that does not
/// exist (404, like an unknown id), not a malformed request.
fn webhook_channel(id: &str) -> Result<ChannelId, Problem> {
    id.parse().map_err(|_| Problem::not_found("channel"))
}

/// The management API.
pub fn routes(channels: Arc<Channels>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(get_channel, update_channel, delete_channel))
        .routes(routes!(test_channel))
        .with_state(channels)
}

/// The provider-facing webhooks (mounted outside `/api`).
pub fn webhook_routes(channels: Arc<Channels>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(whatsapp_verify, whatsapp_webhook))
        .routes(routes!(telegram_webhook))
        .layer(DefaultBodyLimit::max(WEBHOOK_MAX_BYTES))
        .with_state(channels)
}
