//! Telegram Bot API: updates in (webhook or `getUpdates` long polling), `send*` methods out.
//!
//! Telegram ids are 64-bit integers (chat ids of supergroups and channels are large negative
//! numbers) and are read from the JSON as `i64`, never through `f64`. A message is identified
//! by its chat and its per-chat number, so our provider message id is `"{chat_id}:{message_id}"`;
//! a callback query (a tap on an inline button) has no message of its own and is identified as
//! `"callback:{callback_query_id}"`.
//!
//! Telegram has no templates, no interactive lists and no read receipts: lists and reply
//! buttons become inline keyboards, templates are refused (callers render them as text) and
//! `mark_read` does nothing.

use std::time::Duration;

use reqwest::header;
use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;

use crate::provider::{
    ActionNeeded, Inbound, InboundContent, InboundMessage, ListSection, Location, MediaBytes,
    MediaKind, MediaRef, Outbound, OutboundContent, ProviderClient, ProviderError, Recipient,
    ReplyButton, SendError, Sender, Sent, WebhookError, transport_error,
};

/// The header Telegram sets on webhook calls to the `secret_token` given to `setWebhook`.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// One bot's Bot API access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramConfig {
    /// Bot API root, `https://api.telegram.org` (a fake's address in tests).
    pub base_url: String,
    /// The token from @BotFather (`123456:ABC…`).
    pub bot_token: String,
    /// Timeout of one request; `getUpdates` adds its long-polling time to it.
    pub timeout: Duration,
}

impl TelegramConfig {
    /// Telegram's Bot API root.
    pub const DEFAULT_BASE_URL: &str = "https://api.telegram.org";
    /// Timeout of one ordinary call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

    /// A configuration with the default API root and timeout.
    pub fn new(bot_token: impl Into<String>) -> Self {
        Self {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            bot_token: bot_token.into(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

/// Checks `X-Telegram-Bot-Api-Secret-Token` against the secret given to `setWebhook`, in
/// constant time. An empty expected secret never matches.
pub fn verify_secret(expected: &str, header: Option<&str>) -> bool {
    match header {
        Some(got) if !expected.is_empty() => got.as_bytes().ct_eq(expected.as_bytes()).into(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Update parsing
// ---------------------------------------------------------------------------------------------

/// Parses one `Update` into its `update_id` and what it tells us.
///
/// Callback queries carry no time of their own: their `sent_at_ms` is 0 and the caller uses the
/// time it received them.
pub fn parse_update(update: &Value) -> Result<(i64, Vec<Inbound>), WebhookError> {
    let Some(obj) = update.as_object() else {
        return Err(WebhookError::Malformed(
            "update is not a JSON object".into(),
        ));
    };
    let Some(update_id) = obj.get("update_id").and_then(Value::as_i64) else {
        return Err(WebhookError::Malformed(
            "update without an integer `update_id`".into(),
        ));
    };
    let item = if let Some(m) = obj.get("message") {
        parse_message(m, false)
    } else if let Some(m) = obj.get("edited_message") {
        parse_message(m, true)
    } else if let Some(m) = obj.get("channel_post") {
        parse_message(m, false)
    } else if let Some(m) = obj.get("edited_channel_post") {
        parse_message(m, true)
    } else if let Some(q) = obj.get("callback_query") {
        parse_callback_query(q)
    } else if let Some(m) = obj.get("my_chat_member") {
        parse_my_chat_member(m)
    } else {
        let kind = obj
            .keys()
            .find(|k| *k != "update_id")
            .map_or("empty", String::as_str);
        ignored(format!("update kind `{kind}` is not handled"))
    };
    Ok((update_id, vec![item]))
}

fn ignored(reason: impl Into<String>) -> Inbound {
    Inbound::Ignored {
        reason: reason.into(),
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn i64_of(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// `first_name last_name`, or a chat's title.
fn display_name(v: &Value) -> Option<String> {
    let first = v.get("first_name").and_then(Value::as_str);
    let last = v.get("last_name").and_then(Value::as_str);
    match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.to_owned()),
        (None, Some(l)) => Some(l.to_owned()),
        (None, None) => str_of(v, "title"),
    }
}

/// The sender: the user (`from`) when there is one, else the chat itself (channel posts,
/// anonymous group admins post as `sender_chat`).
fn sender(from: Option<&Value>, chat: &Value, sender_chat: Option<&Value>) -> Sender {
    let chat_id = i64_of(chat, "id");
    match from.filter(|f| f.is_object()) {
        Some(user) => Sender {
            telegram_user_id: i64_of(user, "id"),
            telegram_chat_id: chat_id,
            username: str_of(user, "username"),
            name: display_name(user),
            ..Sender::default()
        },
        None => {
            let who = sender_chat.unwrap_or(chat);
            Sender {
                telegram_chat_id: chat_id,
                username: str_of(who, "username"),
                name: display_name(who),
                ..Sender::default()
            }
        }
    }
}

fn message_id_of(chat_id: i64, message_id: i64) -> String {
    format!("{chat_id}:{message_id}")
}

fn parse_message(m: &Value, edited: bool) -> Inbound {
    let chat = m.get("chat").unwrap_or(&Value::Null);
    let (Some(chat_id), Some(message_id)) = (i64_of(chat, "id"), i64_of(m, "message_id")) else {
        return ignored("message without `chat.id` or `message_id`");
    };
    let content = match message_content(m) {
        Ok(c) => c,
        Err(reason) => return ignored(format!("message {chat_id}:{message_id}: {reason}")),
    };
    let date = if edited {
        i64_of(m, "edit_date").or_else(|| i64_of(m, "date"))
    } else {
        i64_of(m, "date")
    };
    let reply_to = m.get("reply_to_message").and_then(|r| {
        let reply_chat = r
            .pointer("/chat/id")
            .and_then(Value::as_i64)
            .unwrap_or(chat_id);
        i64_of(r, "message_id").map(|id| message_id_of(reply_chat, id))
    });
    Inbound::Message(InboundMessage {
        provider_message_id: message_id_of(chat_id, message_id),
        from: sender(m.get("from"), chat, m.get("sender_chat")),
        sent_at_ms: date.unwrap_or(0).saturating_mul(1000),
        content,
        reply_to,
        edited,
        group: chat.get("type").and_then(Value::as_str) != Some("private"),
    })
}

fn media(kind: MediaKind, obj: &Value, caption: Option<String>) -> Result<InboundContent, String> {
    let Some(file_id) = str_of(obj, "file_id") else {
        return Err(format!("{} without `file_id`", kind.as_str()));
    };
    let mime_type = str_of(obj, "mime_type").or_else(|| match kind {
        MediaKind::Image => Some("image/jpeg".to_owned()),
        MediaKind::Sticker => Some(
            if obj.get("is_animated").and_then(Value::as_bool) == Some(true) {
                "application/x-tgsticker"
            } else if obj.get("is_video").and_then(Value::as_bool) == Some(true) {
                "video/webm"
            } else {
                "image/webp"
            }
            .to_owned(),
        ),
        _ => None,
    });
    Ok(InboundContent::Media(MediaRef {
        kind,
        provider_media_id: file_id,
        mime_type,
        sha256: None,
        filename: str_of(obj, "file_name"),
        caption,
        size: obj.get("file_size").and_then(Value::as_u64),
    }))
}

/// Keys of service messages (members joining, titles changing, pins …).
const SERVICE_KEYS: &[&str] = &[
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "new_chat_photo",
    "delete_chat_photo",
    "group_chat_created",
    "supergroup_chat_created",
    "channel_chat_created",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "pinned_message",
    "message_auto_delete_timer_changed",
];

fn message_content(m: &Value) -> Result<InboundContent, String> {
    let caption = str_of(m, "caption");
    if let Some(text) = m.get("text").and_then(Value::as_str) {
        return Ok(InboundContent::Text {
            body: text.to_owned(),
        });
    }
    if let Some(sizes) = m.get("photo").and_then(Value::as_array) {
        // Every size of the photo comes along; the largest is the one worth keeping.
        let area = |p: &Value| {
            let w = p.get("width").and_then(Value::as_u64).unwrap_or(0);
            let h = p.get("height").and_then(Value::as_u64).unwrap_or(0);
            let size = p.get("file_size").and_then(Value::as_u64).unwrap_or(0);
            (w.saturating_mul(h), size)
        };
        let Some(largest) = sizes.iter().max_by_key(|p| area(p)) else {
            return Err("photo without sizes".into());
        };
        return media(MediaKind::Image, largest, caption);
    }
    // `animation` messages also carry a `document` for old clients: check it first.
    for (key, kind) in [
        ("animation", MediaKind::Video),
        ("video", MediaKind::Video),
        ("video_note", MediaKind::Video),
        ("voice", MediaKind::Voice),
        ("audio", MediaKind::Audio),
        ("document", MediaKind::Document),
        ("sticker", MediaKind::Sticker),
    ] {
        if let Some(obj) = m.get(key) {
            return media(kind, obj, caption);
        }
    }
    if let Some(loc) = m.get("location") {
        let (Some(latitude), Some(longitude)) = (
            loc.get("latitude").and_then(Value::as_f64),
            loc.get("longitude").and_then(Value::as_f64),
        ) else {
            return Err("location without coordinates".into());
        };
        let venue = m.get("venue").unwrap_or(&Value::Null);
        return Ok(InboundContent::Location(Location {
            latitude,
            longitude,
            name: str_of(venue, "title"),
            address: str_of(venue, "address"),
        }));
    }
    if let Some(contact) = m.get("contact") {
        return Ok(InboundContent::Contacts {
            contacts: json!([contact]),
        });
    }
    if let Some(key) = SERVICE_KEYS.iter().find(|k| m.get(**k).is_some()) {
        return Ok(InboundContent::System {
            body: (*key).to_owned(),
        });
    }
    let kind = m
        .as_object()
        .and_then(|o| {
            o.keys()
                .find(|k| {
                    !matches!(
                        k.as_str(),
                        "message_id" | "from" | "chat" | "date" | "edit_date" | "sender_chat"
                    )
                })
                .cloned()
        })
        .unwrap_or_else(|| "empty".to_owned());
    Ok(InboundContent::Unsupported {
        errors: vec![ProviderError {
            code: 0,
            title: "Unsupported message type".into(),
            detail: Some(format!("Telegram message with `{kind}`")),
        }],
    })
}

fn parse_callback_query(q: &Value) -> Inbound {
    let Some(id) = str_of(q, "id") else {
        return ignored("callback query without `id`");
    };
    let message = q.get("message").unwrap_or(&Value::Null);
    let from = q.get("from");
    let chat = match message.get("chat") {
        Some(chat) => chat.clone(),
        // A button of an inline-mode message: no chat, answer in the private chat.
        None => json!({ "id": from.and_then(|f| f.get("id")), "type": "private" }),
    };
    let data = str_of(q, "data")
        .or_else(|| str_of(q, "game_short_name"))
        .unwrap_or_default();
    // The tapped button's label, found in the keyboard of the message it belongs to.
    let label = message
        .pointer("/reply_markup/inline_keyboard")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .find(|b| b.get("callback_data").and_then(Value::as_str) == Some(data.as_str()))
        .and_then(|b| str_of(b, "text"));
    let reply_to = match (i64_of(&chat, "id"), i64_of(message, "message_id")) {
        (Some(c), Some(m)) => Some(message_id_of(c, m)),
        _ => None,
    };
    Inbound::Message(InboundMessage {
        provider_message_id: format!("callback:{id}"),
        from: sender(from, &chat, None),
        sent_at_ms: 0,
        content: InboundContent::Button {
            text: label.unwrap_or_else(|| data.clone()),
            payload: data,
            callback_id: Some(id),
        },
        reply_to,
        edited: false,
        group: chat.get("type").and_then(Value::as_str) != Some("private"),
    })
}

fn parse_my_chat_member(m: &Value) -> Inbound {
    let chat = m.get("chat").unwrap_or(&Value::Null);
    let status = m
        .pointer("/new_chat_member/status")
        .and_then(Value::as_str)
        .unwrap_or("");
    let blocked = match status {
        // In a private chat `kicked` is the user blocking the bot; in a group, being removed.
        "kicked" | "left" => true,
        "member" | "administrator" | "creator" | "restricted" => false,
        other => return ignored(format!("bot membership status `{other}` is not handled")),
    };
    Inbound::BotBlocked {
        from: sender(m.get("from"), chat, None),
        blocked,
    }
}

// ---------------------------------------------------------------------------------------------
// Error classification
// ---------------------------------------------------------------------------------------------

/// Classifies a Bot API error answer (`ok: false`) by its `error_code` (or the HTTP status).
pub fn classify(http_status: u16, body: &Value) -> SendError {
    let code = body
        .get("error_code")
        .and_then(Value::as_i64)
        .unwrap_or(i64::from(http_status));
    let message = str_of(body, "description").unwrap_or_else(|| format!("HTTP {http_status}"));
    let retry_after = body
        .pointer("/parameters/retry_after")
        .and_then(Value::as_u64)
        .map(Duration::from_secs);
    match code {
        429 => SendError::Retryable {
            code,
            message,
            retry_after,
        },
        500..=599 => SendError::Retryable {
            code,
            message,
            retry_after,
        },
        // Blocked by the user, kicked from the group, user deactivated.
        403 => SendError::NeedsAction {
            code,
            message,
            action: ActionNeeded::BlockedByUser,
        },
        // The token is wrong or revoked (the Bot API answers 404 for unknown tokens).
        401 | 404 => SendError::NeedsAction {
            code,
            message,
            action: ActionNeeded::ExpiredToken,
        },
        _ => SendError::Permanent { code, message },
    }
}

// ---------------------------------------------------------------------------------------------
// Outbound
// ---------------------------------------------------------------------------------------------

fn refuse(message: impl Into<String>) -> SendError {
    SendError::Permanent {
        code: 400,
        message: message.into(),
    }
}

/// `"{chat_id}:{message_id}"` (or a bare message id) → `(chat_id, message_id)`.
fn split_message_id(id: &str, default_chat: i64) -> Result<(i64, i64), SendError> {
    let parsed = match id.rsplit_once(':') {
        Some((chat, msg)) => chat.parse().ok().zip(msg.parse().ok()),
        None => id.parse().ok().map(|m| (default_chat, m)),
    };
    parsed.ok_or_else(|| refuse(format!("not a Telegram message id: {id:?}")))
}

fn inline_keyboard(rows: Vec<Vec<Value>>) -> Value {
    json!({ "inline_keyboard": rows })
}

fn button(b: &ReplyButton) -> Value {
    json!({ "text": b.title, "callback_data": b.id })
}

fn joined_text(header: Option<&str>, body: &str, footer: Option<&str>) -> String {
    [header, Some(body), footer]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn list_keyboard(sections: &[ListSection]) -> Value {
    let rows = sections
        .iter()
        .flat_map(|s| &s.rows)
        .map(|r| vec![json!({ "text": r.title, "callback_data": r.id })])
        .collect();
    inline_keyboard(rows)
}

/// The Bot API method and its parameters for one outbound message.
pub fn method_call(msg: &Outbound) -> Result<(&'static str, Value), SendError> {
    let Recipient::Telegram { chat_id } = msg.to else {
        return Err(refuse(format!("not a Telegram recipient: {:?}", msg.to)));
    };
    let mut p = Map::new();
    p.insert("chat_id".into(), json!(chat_id));
    let method = match &msg.content {
        OutboundContent::Text {
            body,
            preview_url,
            buttons,
        } => {
            p.insert("text".into(), json!(body));
            p.insert(
                "link_preview_options".into(),
                json!({ "is_disabled": !preview_url }),
            );
            if !buttons.is_empty() {
                let rows = buttons.iter().map(|b| vec![button(b)]).collect();
                p.insert("reply_markup".into(), inline_keyboard(rows));
            }
            "sendMessage"
        }
        OutboundContent::Media(m) => {
            let (method, field) = match m.kind {
                MediaKind::Image => ("sendPhoto", "photo"),
                MediaKind::Video => ("sendVideo", "video"),
                MediaKind::Audio => ("sendAudio", "audio"),
                MediaKind::Voice => ("sendVoice", "voice"),
                MediaKind::Document => ("sendDocument", "document"),
                MediaKind::Sticker => ("sendSticker", "sticker"),
            };
            // A `file_id` Telegram already has, or a URL it fetches itself.
            let Some(source) = m.provider_media_id.as_ref().or(m.link.as_ref()) else {
                return Err(refuse(format!("{field} without file id or link")));
            };
            p.insert(field.into(), json!(source));
            if let Some(caption) = &m.caption
                && m.kind != MediaKind::Sticker
            {
                p.insert("caption".into(), json!(caption));
            }
            method
        }
        OutboundContent::Template(t) => {
            return Err(SendError::Permanent {
                code: 400,
                message: format!(
                    "Telegram has no message templates; render template {:?} as text",
                    t.name
                ),
            });
        }
        OutboundContent::Buttons {
            body,
            header,
            footer,
            buttons,
        } => {
            p.insert(
                "text".into(),
                json!(joined_text(header.as_deref(), body, footer.as_deref())),
            );
            let rows = buttons.iter().map(|b| vec![button(b)]).collect();
            p.insert("reply_markup".into(), inline_keyboard(rows));
            "sendMessage"
        }
        OutboundContent::List {
            body,
            header,
            footer,
            sections,
            ..
        } => {
            p.insert(
                "text".into(),
                json!(joined_text(header.as_deref(), body, footer.as_deref())),
            );
            p.insert("reply_markup".into(), list_keyboard(sections));
            "sendMessage"
        }
        OutboundContent::Reaction {
            to_provider_message_id,
            emoji,
        } => {
            let (chat, message_id) = split_message_id(to_provider_message_id, chat_id)?;
            p.insert("chat_id".into(), json!(chat));
            p.insert("message_id".into(), json!(message_id));
            let reaction: Vec<Value> = if emoji.is_empty() {
                Vec::new()
            } else {
                vec![json!({ "type": "emoji", "emoji": emoji })]
            };
            p.insert("reaction".into(), Value::Array(reaction));
            return Ok(("setMessageReaction", Value::Object(p)));
        }
        OutboundContent::Location(loc) => {
            p.insert("latitude".into(), json!(loc.latitude));
            p.insert("longitude".into(), json!(loc.longitude));
            "sendLocation"
        }
    };
    if let Some(reply_to) = &msg.reply_to {
        let (chat, message_id) = split_message_id(reply_to, chat_id)?;
        let mut reply = json!({ "message_id": message_id });
        if chat != chat_id {
            reply["chat_id"] = json!(chat);
        }
        p.insert("reply_parameters".into(), reply);
    }
    Ok((method, Value::Object(p)))
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// The Bot API client of one bot.
#[derive(Debug, Clone)]
pub struct TelegramClient {
    http: reqwest::Client,
    config: TelegramConfig,
}

impl TelegramClient {
    /// A client with its own connection pool. Timeouts are set per request (long polling needs
    /// a longer one).
    pub fn new(config: TelegramConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().build()?;
        Ok(Self { http, config })
    }

    /// A client sharing a connection pool.
    pub fn with_http(config: TelegramConfig, http: reqwest::Client) -> Self {
        Self { http, config }
    }

    /// The configuration the client was made with.
    pub fn config(&self) -> &TelegramConfig {
        &self.config
    }

    fn base(&self) -> &str {
        self.config.base_url.trim_end_matches('/')
    }

    /// Calls one method with JSON parameters; the `result` or the classified error.
    async fn call(
        &self,
        method: &str,
        params: &Value,
        extra: Duration,
    ) -> Result<Value, SendError> {
        let url = format!("{}/bot{}/{method}", self.base(), self.config.bot_token);
        let res = self
            .http
            .post(url)
            .json(params)
            .timeout(self.config.timeout + extra)
            .send()
            .await
            .map_err(transport_error)?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(transport_error)?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() && body.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(body.get("result").cloned().unwrap_or(Value::Null));
        }
        if status.is_success() {
            return Err(SendError::Permanent {
                code: SendError::CODE_BAD_RESPONSE,
                message: format!("{method}: answer without `ok: true`"),
            });
        }
        let err = classify(status.as_u16(), &body);
        tracing::warn!(
            method,
            http_status = status.as_u16(),
            code = err.code(),
            "telegram request failed"
        );
        Err(err)
    }

    /// Stops the button's loading animation; `text` shows as a small notification.
    pub async fn answer_callback_query(
        &self,
        callback_query_id: &str,
        text: Option<&str>,
    ) -> Result<(), SendError> {
        let mut params = json!({ "callback_query_id": callback_query_id });
        if let Some(t) = text {
            params["text"] = json!(t);
        }
        self.call("answerCallbackQuery", &params, Duration::ZERO)
            .await
            .map(drop)
    }

    /// Long polling: the next updates from `offset` on, waiting up to `timeout_secs` for one.
    /// Passing the last seen `update_id + 1` as the next offset confirms everything before it.
    pub async fn get_updates(
        &self,
        offset: Option<i64>,
        timeout_secs: u32,
    ) -> Result<Vec<Value>, SendError> {
        let mut params = json!({ "timeout": timeout_secs });
        if let Some(o) = offset {
            params["offset"] = json!(o);
        }
        let result = self
            .call(
                "getUpdates",
                &params,
                Duration::from_secs(u64::from(timeout_secs)),
            )
            .await?;
        match result {
            Value::Array(updates) => Ok(updates),
            _ => Err(SendError::Permanent {
                code: SendError::CODE_BAD_RESPONSE,
                message: "getUpdates result is not an array".into(),
            }),
        }
    }

    /// Has Telegram post updates to `url`, with `secret_token` in [`SECRET_HEADER`].
    pub async fn set_webhook(&self, url: &str, secret_token: &str) -> Result<(), SendError> {
        let params = json!({ "url": url, "secret_token": secret_token });
        self.call("setWebhook", &params, Duration::ZERO)
            .await
            .map(drop)
    }

    /// Back to `getUpdates` (pending updates are kept).
    pub async fn delete_webhook(&self) -> Result<(), SendError> {
        self.call("deleteWebhook", &json!({}), Duration::ZERO)
            .await
            .map(drop)
    }
}

#[async_trait::async_trait]
impl ProviderClient for TelegramClient {
    /// Sends one message. A reaction creates no message: the reacted-to message's id comes
    /// back.
    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let (method, params) = method_call(msg)?;
        let result = self.call(method, &params, Duration::ZERO).await?;
        if method == "setMessageReaction" {
            let chat = params.get("chat_id").and_then(Value::as_i64).unwrap_or(0);
            let id = params
                .get("message_id")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            return Ok(Sent {
                provider_message_id: message_id_of(chat, id),
            });
        }
        let chat = result.pointer("/chat/id").and_then(Value::as_i64);
        let id = result.get("message_id").and_then(Value::as_i64);
        match (chat, id) {
            (Some(chat), Some(id)) => Ok(Sent {
                provider_message_id: message_id_of(chat, id),
            }),
            _ => Err(SendError::Permanent {
                code: SendError::CODE_BAD_RESPONSE,
                message: format!("{method}: result without `message_id` and `chat.id`"),
            }),
        }
    }

    /// Telegram has no read receipts for bots.
    async fn mark_read(&self, _provider_message_id: &str) -> Result<(), SendError> {
        Ok(())
    }

    async fn download_media(&self, provider_media_id: &str) -> Result<MediaBytes, SendError> {
        let file = self
            .call(
                "getFile",
                &json!({ "file_id": provider_media_id }),
                Duration::ZERO,
            )
            .await?;
        let Some(path) = file.get("file_path").and_then(Value::as_str) else {
            // Files over the Bot API's download limit (20 MB) come without a path.
            return Err(SendError::Permanent {
                code: 400,
                message: "file cannot be downloaded by bots (no `file_path`)".into(),
            });
        };
        let url = format!("{}/file/bot{}/{path}", self.base(), self.config.bot_token);
        let res = self
            .http
            .get(url)
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = res.status();
        if !status.is_success() {
            let body: Value = res.json().await.unwrap_or(Value::Null);
            return Err(classify(status.as_u16(), &body));
        }
        let mime_type = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|m| *m != "application/octet-stream")
            .map(str::to_owned);
        let bytes = res.bytes().await.map_err(transport_error)?;
        Ok(MediaBytes { bytes, mime_type })
    }

    async fn check(&self) -> Result<Value, SendError> {
        self.call("getMe", &json!({}), Duration::ZERO).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::provider::{ListRow, OutboundMedia, TemplateMessage};

    fn only(update: &Value) -> Inbound {
        let (_, mut items) = parse_update(update).unwrap();
        assert_eq!(items.len(), 1);
        items.remove(0)
    }

    #[test]
    fn ids_beyond_f64_precision_stay_exact() {
        // 2^53 + 1 is not representable as f64.
        let raw = r#"{"update_id": 9007199254740993,
            "message": {"message_id": 9007199254740995, "date": 1700000000,
                "from": {"id": 9007199254740997, "is_bot": false, "first_name": "Ada", "last_name": "L", "username": "ada"},
                "chat": {"id": -1009007199254740999, "type": "supergroup", "title": "G"},
                "text": "hi"}}"#;
        let update: Value = serde_json::from_str(raw).unwrap();
        let (update_id, items) = parse_update(&update).unwrap();
        assert_eq!(update_id, 9_007_199_254_740_993);
        let Inbound::Message(m) = &items[0] else {
            panic!()
        };
        assert_eq!(
            m.provider_message_id,
            "-1009007199254740999:9007199254740995"
        );
        assert_eq!(m.from.telegram_user_id, Some(9_007_199_254_740_997));
        assert_eq!(m.from.telegram_chat_id, Some(-1_009_007_199_254_740_999));
        assert_eq!(m.from.name.as_deref(), Some("Ada L"));
        assert!(m.group);
    }

    #[test]
    fn largest_photo_size_wins() {
        let u = json!({ "update_id": 1, "message": { "message_id": 2, "date": 3,
            "chat": { "id": 5, "type": "private" }, "caption": "look",
            "photo": [
                { "file_id": "small", "width": 90, "height": 60, "file_size": 1000 },
                { "file_id": "big", "width": 1280, "height": 853, "file_size": 90000 },
                { "file_id": "mid", "width": 320, "height": 213, "file_size": 9000 }
            ] } });
        let Inbound::Message(m) = only(&u) else {
            panic!()
        };
        let InboundContent::Media(media) = m.content else {
            panic!()
        };
        assert_eq!(media.provider_media_id, "big");
        assert_eq!(media.caption.as_deref(), Some("look"));
        assert!(!m.group);
    }

    #[test]
    fn callback_query_finds_the_button_label() {
        let u = json!({ "update_id": 7, "callback_query": { "id": "4382", "chat_instance": "x",
            "from": { "id": 42, "first_name": "Bo" }, "data": "yes",
            "message": { "message_id": 10, "date": 1, "chat": { "id": 42, "type": "private" },
                "text": "Sure?", "reply_markup": { "inline_keyboard": [
                    [{ "text": "Yes please", "callback_data": "yes" }],
                    [{ "text": "No", "callback_data": "no" }]] } } } });
        let Inbound::Message(m) = only(&u) else {
            panic!()
        };
        assert_eq!(m.provider_message_id, "callback:4382");
        assert_eq!(m.reply_to.as_deref(), Some("42:10"));
        assert_eq!(
            m.content,
            InboundContent::Button {
                payload: "yes".into(),
                text: "Yes please".into(),
                callback_id: Some("4382".into())
            }
        );
    }

    #[test]
    fn odd_updates_never_panic() {
        let samples = [
            json!(null),
            json!([]),
            json!({ "update_id": "1" }),
            json!({ "update_id": 1.5 }),
            json!({ "update_id": 1 }),
            json!({ "update_id": 1, "message": null }),
            json!({ "update_id": 1, "message": { "chat": { "id": "x" } } }),
            json!({ "update_id": 1, "message": { "chat": { "id": 1 }, "message_id": 1, "photo": [] } }),
            json!({ "update_id": 1, "message": { "chat": { "id": 1 }, "message_id": 1, "voice": 3 } }),
            json!({ "update_id": 1, "message": { "chat": { "id": 1 }, "message_id": 1, "location": {} } }),
            json!({ "update_id": 1, "callback_query": { "id": "c", "message": { "reply_markup": { "inline_keyboard": [1, [2]] } } } }),
            json!({ "update_id": 1, "my_chat_member": { "new_chat_member": { "status": 5 } } }),
            json!({ "update_id": 1, "poll": {} }),
        ];
        for s in &samples {
            let _ = parse_update(s);
        }
        assert!(parse_update(&json!({ "update_id": "1" })).is_err());
        assert!(matches!(
            only(&json!({ "update_id": 1, "poll": {} })),
            Inbound::Ignored { .. }
        ));
    }

    #[test]
    fn classification() {
        let body =
            |code: i64, desc: &str| json!({ "ok": false, "error_code": code, "description": desc });
        let throttled = json!({ "ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 5", "parameters": { "retry_after": 5 } });
        assert_eq!(
            classify(429, &throttled).retry_after(),
            Some(Duration::from_secs(5))
        );
        assert!(classify(502, &Value::Null).is_retryable());
        assert_eq!(
            classify(403, &body(403, "Forbidden: bot was blocked by the user")).action(),
            Some(ActionNeeded::BlockedByUser)
        );
        assert_eq!(
            classify(401, &body(401, "Unauthorized")).action(),
            Some(ActionNeeded::ExpiredToken)
        );
        assert_eq!(
            classify(404, &body(404, "Not Found")).action(),
            Some(ActionNeeded::ExpiredToken)
        );
        assert!(matches!(
            classify(400, &body(400, "Bad Request: chat not found")),
            SendError::Permanent { code: 400, .. }
        ));
    }

    #[test]
    fn method_calls() {
        let out = |content, reply_to: Option<&str>| Outbound {
            to: Recipient::Telegram { chat_id: -100 },
            content,
            reply_to: reply_to.map(str::to_owned),
            callback_data: None,
        };
        let (m, p) = method_call(&out(
            OutboundContent::Text {
                body: "hi".into(),
                preview_url: false,
                buttons: vec![ReplyButton {
                    id: "a".into(),
                    title: "A".into(),
                }],
            },
            Some("-100:7"),
        ))
        .unwrap();
        assert_eq!(m, "sendMessage");
        assert_eq!(
            p,
            json!({ "chat_id": -100, "text": "hi",
                    "link_preview_options": { "is_disabled": true },
                    "reply_markup": { "inline_keyboard": [[{ "text": "A", "callback_data": "a" }]] },
                    "reply_parameters": { "message_id": 7 } })
        );
        let (m, p) = method_call(&out(
            OutboundContent::Media(OutboundMedia {
                kind: MediaKind::Voice,
                provider_media_id: None,
                link: Some("https://x/v.ogg".into()),
                caption: None,
                filename: None,
            }),
            Some("55:7"),
        ))
        .unwrap();
        assert_eq!(m, "sendVoice");
        assert_eq!(p["voice"], "https://x/v.ogg");
        assert_eq!(
            p["reply_parameters"],
            json!({ "message_id": 7, "chat_id": 55 })
        );
        let (m, p) = method_call(&out(
            OutboundContent::List {
                body: "Pick".into(),
                header: Some("Menu".into()),
                footer: None,
                button: "Open".into(),
                sections: vec![ListSection {
                    title: "S".into(),
                    rows: vec![ListRow {
                        id: "r1".into(),
                        title: "One".into(),
                        description: None,
                    }],
                }],
            },
            None,
        ))
        .unwrap();
        assert_eq!(m, "sendMessage");
        assert_eq!(p["text"], "Menu\n\nPick");
        assert_eq!(
            p["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            "r1"
        );
        let (m, p) = method_call(&out(
            OutboundContent::Reaction {
                to_provider_message_id: "-100:9".into(),
                emoji: String::new(),
            },
            None,
        ))
        .unwrap();
        assert_eq!(m, "setMessageReaction");
        assert_eq!(
            p,
            json!({ "chat_id": -100, "message_id": 9, "reaction": [] })
        );
        let template = method_call(&out(
            OutboundContent::Template(TemplateMessage {
                name: "t".into(),
                language: "en".into(),
                header: vec![],
                body: vec![],
                buttons: vec![],
            }),
            None,
        ));
        assert!(matches!(template, Err(SendError::Permanent { .. })));
        assert!(
            method_call(&out(
                OutboundContent::Text {
                    body: "x".into(),
                    preview_url: true,
                    buttons: vec![]
                },
                Some("not-an-id")
            ))
            .is_err()
        );
    }
}
