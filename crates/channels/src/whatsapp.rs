//! WhatsApp Cloud API (Meta Graph API): webhook verification and parsing in, the messages,
//! media and templates endpoints out.
//!
//! Webhooks arrive as `whatsapp_business_account` batches: `entry[]` per business account,
//! `changes[]` per field, and in a `messages` change any number of `messages[]`, `statuses[]`
//! and `errors[]` for one business phone number (`metadata.phone_number_id`). Parsing walks the
//! JSON by hand rather than through strict structs: one odd item must not cost the rest of the
//! batch, so an item we cannot use becomes [`Inbound::Ignored`] and only a body that is not a
//! WhatsApp webhook at all is a [`WebhookError`].
//!
//! Senders are identified by phone (`wa_id`, digits) and, since usernames, by a business-scoped
//! user id (BSUID, `user_id`) that may be the only identifier; outbound, a phone goes in `to` and
//! a BSUID-only recipient in `recipient`.
//!
//! Failures are classified by the Graph error `code` ([`classify`]): throttling and Meta-side
//! trouble are retryable, bad requests permanent, and token, 24-hour window, account and
//! marketing-consent problems need someone to act.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::{RequestBuilder, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::provider::{
    ActionNeeded, DeliveryStatus, Inbound, InboundContent, InboundMessage, Location, MediaBytes,
    MediaKind, MediaRef, Outbound, OutboundContent, OutboundMedia, ProviderClient, ProviderError,
    Recipient, SendError, Sender, Sent, StatusUpdate, TemplateButtonParam, TemplateMessage,
    TemplateParam, WebhookError, transport_error,
};

/// The `object` of every WhatsApp Business Platform webhook.
pub const WEBHOOK_OBJECT: &str = "whatsapp_business_account";
/// The header carrying `sha256=<hex HMAC of the raw body with the app secret>`.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// One WhatsApp Business phone number's Cloud API access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsappConfig {
    /// Graph API root, `https://graph.facebook.com` (a fake's address in tests).
    pub base_url: String,
    /// Graph API version, `v21.0`.
    pub api_version: String,
    /// The business phone number's id (not the phone number).
    pub phone_number_id: String,
    /// The WhatsApp Business Account id, needed for templates.
    pub waba_id: Option<String>,
    /// A system user's (or embedded-signup) access token.
    pub access_token: String,
    /// Timeout of one whole request, connection to last byte.
    pub timeout: Duration,
}

impl WhatsappConfig {
    /// Meta's Graph API root.
    pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
    /// The Graph API version the adapter is written against.
    pub const DEFAULT_API_VERSION: &str = "v21.0";
    /// Long enough for Meta's slow moments, short enough to free a sender.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

    /// A configuration with the default Graph root, version and timeout.
    pub fn new(phone_number_id: impl Into<String>, access_token: impl Into<String>) -> Self {
        Self {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            api_version: Self::DEFAULT_API_VERSION.to_owned(),
            phone_number_id: phone_number_id.into(),
            waba_id: None,
            access_token: access_token.into(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook verification
// ---------------------------------------------------------------------------------------------

/// Checks `X-Hub-Signature-256` (`sha256=<hex>`): the HMAC-SHA256 of the raw body bytes, keyed
/// with the app secret. Compare before parsing; a missing or malformed header is a failure.
pub fn verify_signature(app_secret: &str, raw_body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(raw_body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).is_ok()
}

/// The subscription handshake (`GET` with `hub.mode`, `hub.verify_token`, `hub.challenge`):
/// the challenge to echo verbatim as the body, or `None` to answer 403.
pub fn verify_subscription(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Option<String> {
    let token = token?;
    let token_ok: bool = token.as_bytes().ct_eq(expected_token.as_bytes()).into();
    if mode == Some("subscribe") && token_ok && !expected_token.is_empty() {
        challenge.map(str::to_owned)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook parsing
// ---------------------------------------------------------------------------------------------

/// Parses one webhook body into what it tells us, in the order it tells it.
///
/// `phone_number_id` is the channel's number: changes for another number of the same business
/// account become [`Inbound::Ignored`] (`None` accepts every number).
pub fn parse_webhook(
    raw_body: &[u8],
    phone_number_id: Option<&str>,
) -> Result<Vec<Inbound>, WebhookError> {
    let body: Value = serde_json::from_slice(raw_body)?;
    let Some(obj) = body.as_object() else {
        return Err(WebhookError::Malformed("body is not a JSON object".into()));
    };
    match obj.get("object").and_then(Value::as_str) {
        Some(WEBHOOK_OBJECT) => {}
        Some(other) => {
            return Err(WebhookError::WrongObject {
                expected: WEBHOOK_OBJECT,
                found: other.to_owned(),
            });
        }
        None => return Err(WebhookError::Malformed("no `object` field".into())),
    }
    let Some(entries) = obj.get("entry").and_then(Value::as_array) else {
        return Err(WebhookError::Malformed("no `entry` array".into()));
    };

    let mut out = Vec::new();
    for entry in entries {
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            out.push(ignored("entry without `changes`"));
            continue;
        };
        for change in changes {
            parse_change(change, phone_number_id, &mut out);
        }
    }
    Ok(out)
}

fn ignored(reason: impl Into<String>) -> Inbound {
    Inbound::Ignored {
        reason: reason.into(),
    }
}

fn parse_change(change: &Value, phone_number_id: Option<&str>, out: &mut Vec<Inbound>) {
    let field = change.get("field").and_then(Value::as_str).unwrap_or("");
    let value = change.get("value").unwrap_or(&Value::Null);
    match field {
        "messages" => parse_messages_value(value, phone_number_id, out),
        "message_template_status_update" => out.push(parse_template_status(value)),
        "" => out.push(ignored("change without `field`")),
        other => out.push(ignored(format!("field `{other}` is not handled"))),
    }
}

fn parse_messages_value(value: &Value, phone_number_id: Option<&str>, out: &mut Vec<Inbound>) {
    let theirs = value
        .pointer("/metadata/phone_number_id")
        .and_then(Value::as_str);
    if let (Some(ours), Some(theirs)) = (phone_number_id, theirs)
        && ours != theirs
    {
        out.push(ignored(format!(
            "change for phone number id {theirs}, not this channel's"
        )));
        return;
    }
    if phone_number_id.is_some() && theirs.is_none() {
        out.push(ignored("change without `metadata.phone_number_id`"));
        return;
    }

    let contacts: &[Value] = value
        .get("contacts")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    for msg in array(value, "messages") {
        out.push(parse_message(msg, contacts));
    }
    for status in array(value, "statuses") {
        out.push(parse_status(status));
    }
    let errors = parse_errors(value);
    if !errors.is_empty() {
        tracing::warn!(?errors, "whatsapp webhook reports errors");
        let list = errors
            .iter()
            .map(|e| format!("{} {}", e.code, e.title))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(ignored(format!("provider reported errors: {list}")));
    }
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Graph timestamps are seconds as strings; numbers are accepted too.
fn timestamp_ms(v: &Value) -> i64 {
    let secs = match v.get("timestamp") {
        Some(Value::String(s)) => s.trim().parse::<i64>().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    };
    secs.saturating_mul(1000)
}

/// `wa_id` (digits, maybe formatted) → E.164 with `+`.
fn phone_from_wa_id(wa_id: &str) -> Option<String> {
    let digits: String = wa_id.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("+{digits}"))
}

/// An id that may be a JSON string or number (template ids are numbers in some payloads).
fn id_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn parse_errors(v: &Value) -> Vec<ProviderError> {
    array(v, "errors")
        .iter()
        .map(|e| {
            let message = str_of(e, "message");
            ProviderError {
                code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
                title: str_of(e, "title")
                    .or_else(|| message.clone())
                    .unwrap_or_default(),
                detail: e
                    .pointer("/error_data/details")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or(message),
            }
        })
        .collect()
}

/// The sender of one message: `from` (phone digits) and/or `from_user_id` (BSUID), completed
/// from the matching `contacts[]` entry (or the only one).
fn sender_of(msg: &Value, contacts: &[Value]) -> Sender {
    let from = msg.get("from").and_then(Value::as_str);
    let from_user_id = msg.get("from_user_id").and_then(Value::as_str);
    let contact = contacts
        .iter()
        .find(|c| {
            let wa = c.get("wa_id").and_then(Value::as_str);
            let user = c.get("user_id").and_then(Value::as_str);
            (from.is_some() && (wa == from || user == from))
                || (from_user_id.is_some() && user == from_user_id)
        })
        .or(match contacts {
            [only] => Some(only),
            _ => None,
        });
    let c = contact.unwrap_or(&Value::Null);

    // `from` is normally the phone digits, but for a BSUID-only sender it may carry the BSUID
    // (which has a country prefix and a dot, never only digits).
    let from_is_phone =
        from.is_some_and(|f| !f.is_empty() && f.chars().all(|ch| ch.is_ascii_digit()));
    let phone = from
        .filter(|_| from_is_phone)
        .or_else(|| c.get("wa_id").and_then(Value::as_str))
        .and_then(phone_from_wa_id);
    let wa_user_id = from_user_id
        .map(str::to_owned)
        .or_else(|| str_of(c, "user_id"))
        .or_else(|| from.filter(|_| !from_is_phone).map(str::to_owned));
    Sender {
        phone,
        wa_user_id,
        username: c
            .pointer("/profile/username")
            .and_then(Value::as_str)
            .or_else(|| c.get("username").and_then(Value::as_str))
            .map(|u| u.trim_start_matches('@').to_owned()),
        telegram_user_id: None,
        telegram_chat_id: None,
        name: c
            .pointer("/profile/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

fn parse_message(msg: &Value, contacts: &[Value]) -> Inbound {
    let Some(id) = str_of(msg, "id") else {
        return ignored("message without `id`");
    };
    let kind = msg.get("type").and_then(Value::as_str).unwrap_or("unknown");
    let content = match message_content(kind, msg) {
        Ok(c) => c,
        Err(reason) => return ignored(format!("message {id}: {reason}")),
    };
    let reply_to = match content {
        // A reaction names its message in the content; `context` is for replies.
        InboundContent::Reaction { .. } => None,
        _ => msg
            .pointer("/context/id")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    Inbound::Message(InboundMessage {
        provider_message_id: id,
        from: sender_of(msg, contacts),
        sent_at_ms: timestamp_ms(msg),
        content,
        reply_to,
        edited: false,
        group: msg.get("group_id").is_some(),
    })
}

fn media_ref(kind: MediaKind, obj: &Value) -> Result<InboundContent, String> {
    let Some(id) = id_string(obj.get("id")) else {
        return Err(format!("{} without media `id`", kind.as_str()));
    };
    Ok(InboundContent::Media(MediaRef {
        kind,
        provider_media_id: id,
        mime_type: str_of(obj, "mime_type"),
        sha256: str_of(obj, "sha256"),
        filename: str_of(obj, "filename"),
        caption: str_of(obj, "caption"),
        size: obj.get("file_size").and_then(Value::as_u64),
    }))
}

fn unsupported(kind: &str, msg: &Value) -> InboundContent {
    let mut errors = parse_errors(msg);
    if errors.is_empty() {
        errors.push(ProviderError {
            code: 131051,
            title: "Unsupported message type".into(),
            detail: Some(format!("message type `{kind}`")),
        });
    }
    InboundContent::Unsupported { errors }
}

fn message_content(kind: &str, msg: &Value) -> Result<InboundContent, String> {
    let obj = msg.get(kind).unwrap_or(&Value::Null);
    let needs_obj = || {
        if obj.is_object() {
            Ok(())
        } else {
            Err(format!("`{kind}` message without its `{kind}` object"))
        }
    };
    Ok(match kind {
        "text" => {
            needs_obj()?;
            InboundContent::Text {
                body: str_of(obj, "body").unwrap_or_default(),
            }
        }
        "image" => media_ref(MediaKind::Image, obj)?,
        "video" => media_ref(MediaKind::Video, obj)?,
        "audio" => {
            let voice = obj.get("voice").and_then(Value::as_bool).unwrap_or(false);
            media_ref(
                if voice {
                    MediaKind::Voice
                } else {
                    MediaKind::Audio
                },
                obj,
            )?
        }
        "document" => media_ref(MediaKind::Document, obj)?,
        "sticker" => media_ref(MediaKind::Sticker, obj)?,
        "location" => {
            needs_obj()?;
            let (Some(latitude), Some(longitude)) = (
                obj.get("latitude").and_then(Value::as_f64),
                obj.get("longitude").and_then(Value::as_f64),
            ) else {
                return Err("location without coordinates".into());
            };
            InboundContent::Location(Location {
                latitude,
                longitude,
                name: str_of(obj, "name"),
                address: str_of(obj, "address"),
            })
        }
        "contacts" => InboundContent::Contacts {
            contacts: msg.get("contacts").cloned().unwrap_or(Value::Null),
        },
        "interactive" => {
            needs_obj()?;
            let reply_kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
            match reply_kind {
                "button_reply" | "list_reply" => {
                    let reply = obj.get(reply_kind).unwrap_or(&Value::Null);
                    InboundContent::InteractiveReply {
                        reply_kind: reply_kind.to_owned(),
                        id: str_of(reply, "id").unwrap_or_default(),
                        title: str_of(reply, "title").unwrap_or_default(),
                        description: str_of(reply, "description"),
                    }
                }
                // A WhatsApp Flow's answer: the form data is a JSON string.
                "nfm_reply" => {
                    let reply = obj.get("nfm_reply").unwrap_or(&Value::Null);
                    InboundContent::InteractiveReply {
                        reply_kind: reply_kind.to_owned(),
                        id: str_of(reply, "response_json").unwrap_or_default(),
                        title: str_of(reply, "body").unwrap_or_default(),
                        description: str_of(reply, "name"),
                    }
                }
                other => unsupported(&format!("interactive {other}"), msg),
            }
        }
        "button" => {
            needs_obj()?;
            InboundContent::Button {
                payload: str_of(obj, "payload").unwrap_or_default(),
                text: str_of(obj, "text").unwrap_or_default(),
                callback_id: None,
            }
        }
        "reaction" => {
            needs_obj()?;
            let Some(to) = str_of(obj, "message_id") else {
                return Err("reaction without `message_id`".into());
            };
            InboundContent::Reaction {
                to_provider_message_id: to,
                // No emoji means the customer removed their reaction.
                emoji: str_of(obj, "emoji").unwrap_or_default(),
            }
        }
        "system" => InboundContent::System {
            body: str_of(obj, "body")
                .or_else(|| str_of(obj, "type"))
                .unwrap_or_default(),
        },
        other => unsupported(other, msg),
    })
}

fn parse_status(status: &Value) -> Inbound {
    let Some(id) = str_of(status, "id") else {
        return ignored("status without `id`");
    };
    let name = status.get("status").and_then(Value::as_str).unwrap_or("");
    let Some(delivery) = DeliveryStatus::parse(name).filter(|s| *s != DeliveryStatus::Queued)
    else {
        return ignored(format!("status `{name}` for {id} is not a delivery state"));
    };
    Inbound::Status(StatusUpdate {
        provider_message_id: id,
        status: delivery,
        at_ms: timestamp_ms(status),
        recipient: str_of(status, "recipient_id").or_else(|| str_of(status, "recipient_user_id")),
        errors: parse_errors(status),
        callback_data: str_of(status, "biz_opaque_callback_data"),
    })
}

fn parse_template_status(value: &Value) -> Inbound {
    let Some(template_id) = id_string(value.get("message_template_id")) else {
        return ignored("template status without `message_template_id`");
    };
    Inbound::TemplateStatus {
        template_id,
        name: str_of(value, "message_template_name").unwrap_or_default(),
        language: str_of(value, "message_template_language").unwrap_or_default(),
        status: str_of(value, "event").unwrap_or_default(),
        reason: str_of(value, "reason").filter(|r| !r.is_empty() && r != "NONE"),
    }
}

// ---------------------------------------------------------------------------------------------
// Error classification
// ---------------------------------------------------------------------------------------------

/// Classifies a Graph API error answer by its `error.code`.
///
/// Needs-action codes win whatever the HTTP status; otherwise any 5xx is retryable, then the
/// code table decides, and an unknown code is permanent unless Meta marks it `is_transient`.
pub fn classify(http_status: u16, body: &Value, retry_after_header: Option<Duration>) -> SendError {
    let err = body.get("error").unwrap_or(&Value::Null);
    let code = err.get("code").and_then(Value::as_i64);
    let message = error_message(err, http_status);
    let retryable = |code: i64, message: String| SendError::Retryable {
        code,
        message,
        retry_after: retry_after_header,
    };
    let Some(code) = code else {
        return if http_status >= 500 || http_status == 429 {
            retryable(i64::from(http_status), message)
        } else {
            SendError::Permanent {
                code: i64::from(http_status),
                message,
            }
        };
    };

    if let Some(action) = action_for(code) {
        return SendError::NeedsAction {
            code,
            message,
            action,
        };
    }
    let transient = err.get("is_transient").and_then(Value::as_bool) == Some(true);
    match code {
        _ if http_status >= 500 => retryable(code, message),
        // Throughput, pair rate, Meta-side trouble, app and business-account rate limits.
        130429 | 131056 | 131000 | 1 | 2 | 4 | 80007 => retryable(code, message),
        // Undeliverable, bad parameters, unsupported type, media, templates, number not on
        // WhatsApp, sending to ourselves: the same request never succeeds.
        131026
        | 100
        | 131008
        | 131009
        | 131051
        | 131052
        | 131053
        | 132000..=132069
        | 133010
        | 131021 => SendError::Permanent { code, message },
        _ if transient => retryable(code, message),
        _ => SendError::Permanent { code, message },
    }
}

fn action_for(code: i64) -> Option<ActionNeeded> {
    Some(match code {
        // 190: expired or revoked token. 10 and 200–299: the token lacks a permission; either
        // way someone has to reconnect the account with a valid token.
        190 | 10 | 200..=299 => ActionNeeded::ExpiredToken,
        131047 => ActionNeeded::OutsideWindow,
        // Restricted or locked account, policy block, payment problem.
        131031 | 368 | 131045 | 131042 => ActionNeeded::AccountRestricted,
        131050 => ActionNeeded::MarketingOptOut,
        131049 => ActionNeeded::MarketingLimit,
        _ => return None,
    })
}

/// `message (details)` from a Graph error object, falling back to the HTTP status.
fn error_message(err: &Value, http_status: u16) -> String {
    let message = err.get("message").and_then(Value::as_str);
    let details = err
        .pointer("/error_data/details")
        .and_then(Value::as_str)
        .or_else(|| err.get("error_user_msg").and_then(Value::as_str));
    match (message, details) {
        (Some(m), Some(d)) if m != d => format!("{m} ({d})"),
        (Some(m), _) => m.to_owned(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => format!("HTTP {http_status} without a Graph error"),
    }
}

fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

// ---------------------------------------------------------------------------------------------
// Outbound bodies
// ---------------------------------------------------------------------------------------------

fn refuse(message: impl Into<String>) -> SendError {
    SendError::Permanent {
        code: 100,
        message: message.into(),
    }
}

/// The `POST /{phone_number_id}/messages` body for one outbound message, exactly as the Cloud
/// API documents it. Fails (permanently) for what WhatsApp cannot address or carry.
pub fn message_body(msg: &Outbound) -> Result<Value, SendError> {
    let mut body = Map::new();
    body.insert("messaging_product".into(), json!("whatsapp"));
    body.insert("recipient_type".into(), json!("individual"));
    match &msg.to {
        Recipient::Whatsapp {
            phone: Some(phone), ..
        } => {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            if digits.is_empty() {
                return Err(refuse(format!("not a phone number: {phone:?}")));
            }
            body.insert("to".into(), json!(digits));
        }
        // Only a business-scoped user id known (the customer hides their number).
        Recipient::Whatsapp {
            phone: None,
            user_id: Some(user_id),
        } => {
            body.insert("recipient".into(), json!(user_id));
        }
        Recipient::Whatsapp { .. } => {
            return Err(refuse("WhatsApp recipient without phone or user id"));
        }
        other => return Err(refuse(format!("not a WhatsApp recipient: {other:?}"))),
    }

    let (kind, object) = content_object(&msg.content)?;
    if let Some(reply_to) = &msg.reply_to
        && kind != "reaction"
    {
        body.insert("context".into(), json!({ "message_id": reply_to }));
    }
    body.insert("type".into(), json!(kind));
    body.insert(kind.into(), object);
    if let Some(data) = &msg.callback_data {
        body.insert("biz_opaque_callback_data".into(), json!(data));
    }
    Ok(Value::Object(body))
}

fn content_object(content: &OutboundContent) -> Result<(&'static str, Value), SendError> {
    Ok(match content {
        OutboundContent::Text {
            body,
            preview_url,
            buttons,
        } => {
            if buttons.is_empty() {
                ("text", json!({ "preview_url": preview_url, "body": body }))
            } else {
                // Plain text has no buttons on WhatsApp; reply buttons are the equivalent.
                (
                    "interactive",
                    interactive_buttons(body, None, None, buttons),
                )
            }
        }
        OutboundContent::Media(media) => media_object(media)?,
        OutboundContent::Template(t) => ("template", template_object(t)?),
        OutboundContent::Buttons {
            body,
            header,
            footer,
            buttons,
        } => (
            "interactive",
            interactive_buttons(body, header.as_deref(), footer.as_deref(), buttons),
        ),
        OutboundContent::List {
            body,
            header,
            footer,
            button,
            sections,
        } => {
            let sections: Vec<Value> = sections
                .iter()
                .map(|s| {
                    let rows: Vec<Value> = s
                        .rows
                        .iter()
                        .map(|r| {
                            let mut row = json!({ "id": r.id, "title": r.title });
                            if let Some(d) = &r.description {
                                row["description"] = json!(d);
                            }
                            row
                        })
                        .collect();
                    json!({ "title": s.title, "rows": rows })
                })
                .collect();
            let mut obj = json!({
                "type": "list",
                "body": { "text": body },
                "action": { "button": button, "sections": sections },
            });
            decorate(&mut obj, header.as_deref(), footer.as_deref());
            ("interactive", obj)
        }
        OutboundContent::Reaction {
            to_provider_message_id,
            emoji,
        } => (
            "reaction",
            json!({ "message_id": to_provider_message_id, "emoji": emoji }),
        ),
        OutboundContent::Location(loc) => {
            let mut obj = json!({ "latitude": loc.latitude, "longitude": loc.longitude });
            if let Some(n) = &loc.name {
                obj["name"] = json!(n);
            }
            if let Some(a) = &loc.address {
                obj["address"] = json!(a);
            }
            ("location", obj)
        }
    })
}

fn decorate(obj: &mut Value, header: Option<&str>, footer: Option<&str>) {
    if let Some(h) = header {
        obj["header"] = json!({ "type": "text", "text": h });
    }
    if let Some(f) = footer {
        obj["footer"] = json!({ "text": f });
    }
}

fn interactive_buttons(
    body: &str,
    header: Option<&str>,
    footer: Option<&str>,
    buttons: &[crate::provider::ReplyButton],
) -> Value {
    let buttons: Vec<Value> = buttons
        .iter()
        .map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } }))
        .collect();
    let mut obj = json!({
        "type": "button",
        "body": { "text": body },
        "action": { "buttons": buttons },
    });
    decorate(&mut obj, header, footer);
    obj
}

fn media_object(media: &OutboundMedia) -> Result<(&'static str, Value), SendError> {
    let kind = match media.kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        // WhatsApp shows an OGG/Opus audio as a voice note; there is no separate type.
        MediaKind::Audio | MediaKind::Voice => "audio",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
    };
    let mut obj = match (&media.provider_media_id, &media.link) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(link)) => json!({ "link": link }),
        (None, None) => return Err(refuse(format!("{kind} without media id or link"))),
    };
    if let Some(caption) = &media.caption
        && matches!(kind, "image" | "video" | "document")
    {
        obj["caption"] = json!(caption);
    }
    if let Some(filename) = &media.filename
        && kind == "document"
    {
        obj["filename"] = json!(filename);
    }
    Ok((kind, obj))
}

fn template_param(p: &TemplateParam) -> Value {
    match p {
        TemplateParam::Text {
            text,
            parameter_name,
        } => {
            let mut v = json!({ "type": "text", "text": text });
            if let Some(name) = parameter_name {
                v["parameter_name"] = json!(name);
            }
            v
        }
        TemplateParam::Image { link } => json!({ "type": "image", "image": { "link": link } }),
        TemplateParam::Video { link } => json!({ "type": "video", "video": { "link": link } }),
        TemplateParam::Document { link, filename } => {
            let mut doc = json!({ "link": link });
            if let Some(f) = filename {
                doc["filename"] = json!(f);
            }
            json!({ "type": "document", "document": doc })
        }
    }
}

fn template_button(b: &TemplateButtonParam) -> Result<Value, SendError> {
    let param = match b.sub_type.as_str() {
        "quick_reply" => json!({ "type": "payload", "payload": b.value }),
        "url" => json!({ "type": "text", "text": b.value }),
        "copy_code" => json!({ "type": "coupon_code", "coupon_code": b.value }),
        other => {
            return Err(refuse(format!(
                "unknown template button sub_type {other:?}"
            )));
        }
    };
    Ok(json!({
        "type": "button",
        "sub_type": b.sub_type,
        "index": b.index.to_string(),
        "parameters": [param],
    }))
}

fn template_object(t: &TemplateMessage) -> Result<Value, SendError> {
    let mut components = Vec::new();
    if !t.header.is_empty() {
        let params: Vec<Value> = t.header.iter().map(template_param).collect();
        components.push(json!({ "type": "header", "parameters": params }));
    }
    if !t.body.is_empty() {
        let params: Vec<Value> = t.body.iter().map(template_param).collect();
        components.push(json!({ "type": "body", "parameters": params }));
    }
    for b in &t.buttons {
        components.push(template_button(b)?);
    }
    let mut obj = json!({ "name": t.name, "language": { "code": t.language } });
    if !components.is_empty() {
        obj["components"] = Value::Array(components);
    }
    Ok(obj)
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// One page of `GET /{waba_id}/message_templates`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePage {
    /// The templates as Meta describes them (`name`, `language`, `status`, `category`,
    /// `components`, `id`).
    pub data: Vec<Value>,
    /// The cursor of the next page (`paging.cursors.after`), `None` on the last page.
    pub after: Option<String>,
}

/// The Cloud API client of one business phone number.
#[derive(Debug, Clone)]
pub struct WhatsappClient {
    http: reqwest::Client,
    config: WhatsappConfig,
    /// `/{phone_number_id}/messages`, every send's and mark-as-read's address, made once.
    messages_url: String,
    /// `Bearer {access_token}`, made once (and kept out of logs), `None` when the token cannot
    /// be a header value (each request then fails as reqwest reports it).
    auth: Option<header::HeaderValue>,
}

impl WhatsappClient {
    /// A client with its own connection pool and the configured timeout.
    pub fn new(config: WhatsappConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Self::with_http(config, http))
    }

    /// A client sharing a connection pool; the configured timeout is applied per request.
    pub fn with_http(config: WhatsappConfig, http: reqwest::Client) -> Self {
        let messages_url = url_of(&config, &format!("{}/messages", config.phone_number_id));
        let auth = header::HeaderValue::from_str(&format!("Bearer {}", config.access_token))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        Self {
            http,
            config,
            messages_url,
            auth,
        }
    }

    /// The configuration the client was made with.
    pub fn config(&self) -> &WhatsappConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        url_of(&self.config, path)
    }

    /// Sends with the token, returns the JSON answer or the classified error.
    async fn call(&self, req: RequestBuilder) -> Result<Value, SendError> {
        self.call_as(req).await
    }

    /// [`Self::call`], the successful answer read as `T` (an answer that is not JSON, or not
    /// a `T`, is a permanent error).
    async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> Result<T, SendError> {
        let req = match &self.auth {
            Some(auth) => req.header(header::AUTHORIZATION, auth.clone()),
            None => req.bearer_auth(&self.config.access_token),
        };
        let res = req
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = res.status();
        let wait = retry_after(res.headers());
        let bytes = res.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            return match serde_json::from_slice::<Option<T>>(&bytes) {
                Ok(Some(body)) => Ok(body),
                Err(e) if e.classify() == serde_json::error::Category::Data => {
                    Err(SendError::Permanent {
                        code: SendError::CODE_BAD_RESPONSE,
                        message: format!("answer is not the JSON expected (HTTP {status}): {e}"),
                    })
                }
                _ => Err(SendError::Permanent {
                    code: SendError::CODE_BAD_RESPONSE,
                    message: format!("answer is not JSON (HTTP {status})"),
                }),
            };
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let err = classify(status.as_u16(), &body, wait);
        tracing::warn!(
            http_status = status.as_u16(),
            code = err.code(),
            "whatsapp request failed"
        );
        Err(err)
    }

    fn waba_id(&self) -> Result<&str, SendError> {
        self.config
            .waba_id
            .as_deref()
            .ok_or_else(|| refuse("the channel has no WhatsApp Business Account id"))
    }

    /// One page of the business account's message templates, after the given cursor.
    pub async fn list_templates(&self, after: Option<&str>) -> Result<TemplatePage, SendError> {
        let url = self.url(&format!("{}/message_templates", self.waba_id()?));
        let mut req = self.http.get(url).query(&[("limit", "100")]);
        if let Some(after) = after {
            req = req.query(&[("after", after)]);
        }
        let body = self.call(req).await?;
        let data = body
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // Graph keeps `cursors` on the last page too; only `next` says there is more.
        let after = body
            .pointer("/paging/next")
            .and_then(Value::as_str)
            .and(
                body.pointer("/paging/cursors/after")
                    .and_then(Value::as_str),
            )
            .map(str::to_owned);
        Ok(TemplatePage { data, after })
    }

    /// Submits a template for review (`name`, `language`, `category`, `components`); Meta
    /// answers `{id, status, category}`.
    pub async fn create_template(&self, body: &Value) -> Result<Value, SendError> {
        let url = self.url(&format!("{}/message_templates", self.waba_id()?));
        self.call(self.http.post(url).json(body)).await
    }
}

/// `{base_url}/{api_version}/{path}`.
fn url_of(config: &WhatsappConfig, path: &str) -> String {
    format!(
        "{}/{}/{}",
        config.base_url.trim_end_matches('/'),
        config.api_version,
        path
    )
}

#[async_trait::async_trait]
impl ProviderClient for WhatsappClient {
    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        /// What the send answer is read for: `messages[0].id` (its `contacts`, and any field
        /// Meta adds, are skipped unread).
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            messages: Vec<AnswerMessage>,
        }
        #[derive(Deserialize)]
        struct AnswerMessage {
            id: Option<String>,
        }
        let body = message_body(msg)?;
        let answer: Answer = self
            .call_as(self.http.post(self.messages_url.as_str()).json(&body))
            .await?;
        let id = answer
            .messages
            .into_iter()
            .next()
            .and_then(|m| m.id)
            .ok_or_else(|| SendError::Permanent {
                code: SendError::CODE_BAD_RESPONSE,
                message: "send answer without `messages[0].id`".into(),
            })?;
        Ok(Sent {
            provider_message_id: id,
        })
    }

    async fn mark_read(&self, provider_message_id: &str) -> Result<(), SendError> {
        let url = self.messages_url.as_str();
        let body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": provider_message_id,
        });
        self.call(self.http.post(url).json(&body)).await.map(drop)
    }

    async fn download_media(&self, provider_media_id: &str) -> Result<MediaBytes, SendError> {
        let info = self
            .call(self.http.get(self.url(provider_media_id)))
            .await?;
        let Some(url) = info.get("url").and_then(Value::as_str) else {
            return Err(SendError::Permanent {
                code: SendError::CODE_BAD_RESPONSE,
                message: "media answer without `url`".into(),
            });
        };
        // The media URL is only valid with the same token, and only for a few minutes.
        let res = self
            .http
            .get(url)
            .bearer_auth(&self.config.access_token)
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = res.status();
        if !status.is_success() {
            let wait = retry_after(res.headers());
            let body: Value = res.json().await.unwrap_or(Value::Null);
            return Err(match status {
                // An expired media URL or id: the media is gone.
                StatusCode::NOT_FOUND => SendError::Permanent {
                    code: 404,
                    message: "media not found or expired".into(),
                },
                _ => classify(status.as_u16(), &body, wait),
            });
        }
        let header_mime = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = res.bytes().await.map_err(transport_error)?;
        Ok(MediaBytes {
            bytes,
            mime_type: str_of(&info, "mime_type").or(header_mime),
        })
    }

    async fn check(&self) -> Result<Value, SendError> {
        let req = self
            .http
            .get(self.url(&self.config.phone_number_id))
            .query(&[(
                "fields",
                "display_phone_number,verified_name,quality_rating",
            )]);
        self.call(req).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn envelope(value: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{ "id": "WABA", "changes": [{ "field": "messages", "value": value }] }]
        }))
        .unwrap()
    }

    fn one_message(msg: Value, contacts: Value) -> InboundMessage {
        let body = envelope(json!({
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550001111", "phone_number_id": "PNID" },
            "contacts": contacts,
            "messages": [msg],
        }));
        match parse_webhook(&body, Some("PNID")).unwrap().as_slice() {
            [Inbound::Message(m)] => m.clone(),
            other => panic!("expected one message, got {other:?}"),
        }
    }

    #[test]
    fn signature_round_trip_and_rejections() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(body);
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(verify_signature("secret", body, Some(&good)));
        assert!(!verify_signature("other", body, Some(&good)));
        assert!(!verify_signature("secret", b"tampered", Some(&good)));
        assert!(!verify_signature("secret", body, None));
        assert!(!verify_signature("secret", body, Some("sha256=zz")));
        assert!(!verify_signature("secret", body, Some(&good[7..])));
        assert!(!verify_signature("secret", body, Some("sha1=abc")));
    }

    #[test]
    fn subscription_echoes_the_challenge_only_for_the_right_token() {
        let ok = verify_subscription(Some("subscribe"), Some("tok"), Some("1158201444"), "tok");
        assert_eq!(ok.as_deref(), Some("1158201444"));
        assert!(verify_subscription(Some("subscribe"), Some("bad"), Some("1"), "tok").is_none());
        assert!(verify_subscription(Some("other"), Some("tok"), Some("1"), "tok").is_none());
        assert!(verify_subscription(Some("subscribe"), None, Some("1"), "tok").is_none());
        assert!(verify_subscription(Some("subscribe"), Some(""), Some("1"), "").is_none());
    }

    #[test]
    fn audio_with_voice_flag_is_a_voice_note() {
        let m = one_message(
            json!({ "from": "4915112345678", "id": "wamid.A", "timestamp": "1700000000",
                    "type": "audio",
                    "audio": { "id": "MEDIA1", "mime_type": "audio/ogg; codecs=opus",
                               "sha256": "abc", "voice": true } }),
            json!([{ "wa_id": "4915112345678", "profile": { "name": "Anna" } }]),
        );
        let InboundContent::Media(media) = m.content else {
            panic!("not media")
        };
        assert_eq!(media.kind, MediaKind::Voice);
        assert_eq!(media.provider_media_id, "MEDIA1");
        assert_eq!(m.from.phone.as_deref(), Some("+4915112345678"));
        assert_eq!(m.from.name.as_deref(), Some("Anna"));
        assert_eq!(m.sent_at_ms, 1_700_000_000_000);
    }

    #[test]
    fn reaction_without_emoji_is_a_removal_and_not_a_reply() {
        let m = one_message(
            json!({ "from": "1555", "id": "wamid.R", "timestamp": "1", "type": "reaction",
                    "reaction": { "message_id": "wamid.OURS" },
                    "context": { "id": "wamid.OURS" } }),
            json!([]),
        );
        assert_eq!(
            m.content,
            InboundContent::Reaction {
                to_provider_message_id: "wamid.OURS".into(),
                emoji: String::new()
            }
        );
        assert_eq!(m.reply_to, None);
    }

    #[test]
    fn bsuid_only_sender_has_no_phone() {
        let m = one_message(
            json!({ "from_user_id": "US.13491208655302741918", "id": "wamid.B",
                    "timestamp": "1700000000", "type": "text", "text": { "body": "hi" } }),
            json!([{ "user_id": "US.13491208655302741918",
                     "profile": { "name": "Ann", "username": "ann.k" } }]),
        );
        assert_eq!(m.from.phone, None);
        assert_eq!(
            m.from.wa_user_id.as_deref(),
            Some("US.13491208655302741918")
        );
        assert_eq!(m.from.username.as_deref(), Some("ann.k"));
        assert_eq!(m.from.name.as_deref(), Some("Ann"));
    }

    #[test]
    fn broken_items_are_ignored_not_fatal() {
        let body = envelope(json!({
            "metadata": { "phone_number_id": "PNID" },
            "messages": [
                { "type": "text" },
                { "id": "wamid.X", "type": "image", "image": "not an object" },
                { "id": "wamid.Y", "type": "location", "location": { "latitude": "north" } },
                { "id": "wamid.Z", "type": "text", "text": { "body": "ok" } }
            ],
            "statuses": [{ "id": "wamid.S", "status": "deleted" }, { "status": "sent" }]
        }));
        let items = parse_webhook(&body, Some("PNID")).unwrap();
        assert_eq!(items.len(), 6);
        assert!(matches!(items[3], Inbound::Message(_)));
        let ignored = items
            .iter()
            .filter(|i| matches!(i, Inbound::Ignored { .. }))
            .count();
        assert_eq!(ignored, 5);
    }

    #[test]
    fn another_numbers_change_is_ignored() {
        let body = envelope(json!({
            "metadata": { "phone_number_id": "OTHER" },
            "messages": [{ "id": "wamid.1", "type": "text", "text": { "body": "x" } }]
        }));
        let items = parse_webhook(&body, Some("PNID")).unwrap();
        assert!(matches!(items.as_slice(), [Inbound::Ignored { .. }]));
        // Without a number to compare, every number is accepted.
        let items = parse_webhook(&body, None).unwrap();
        assert!(matches!(items.as_slice(), [Inbound::Message(_)]));
    }

    #[test]
    fn not_a_whatsapp_webhook_is_an_error() {
        assert!(matches!(
            parse_webhook(b"{", None),
            Err(WebhookError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_webhook(br#"{"object":"page","entry":[]}"#, None),
            Err(WebhookError::WrongObject { .. })
        ));
        assert!(matches!(
            parse_webhook(br#"[1,2]"#, None),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            parse_webhook(br#"{"object":"whatsapp_business_account"}"#, None),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep_obj = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{}}}]}}]}}"#,
            "{\"a\":".repeat(100) + "1" + &"}".repeat(100)
        );
        let samples: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![0xff, 0xfe, 0x00],
            b"null".to_vec(),
            b"\"whatsapp_business_account\"".to_vec(),
            deep.into_bytes(),
            deep_obj.into_bytes(),
            br#"{"object":"whatsapp_business_account","entry":[null,1,"x",{"changes":null},{"changes":[null,{"field":5},{"field":"messages","value":[]},{"field":"messages","value":{"metadata":7,"messages":{"a":1},"statuses":[1,null,{"id":9}],"contacts":"x","errors":[{"code":"x"}]}}]}]}"#.to_vec(),
            br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"w","type":"interactive","interactive":{"type":"list_reply","list_reply":7}},{"id":"w2","type":"reaction","reaction":{"message_id":1}},{"id":"w3","timestamp":"99999999999999999999","type":"text","text":{"body":1}},{"id":"w4","timestamp":-1e308,"type":"system"}]}}]}]}"#.to_vec(),
            br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"message_template_status_update","value":{"message_template_id":{"x":1}}}]}]}"#.to_vec(),
        ];
        for s in samples {
            let _ = parse_webhook(&s, Some("PNID"));
            let _ = parse_webhook(&s, None);
        }
    }

    #[test]
    fn classification_table() {
        let err =
            |code: i64| json!({ "error": { "message": format!("(#{code}) x"), "code": code } });
        let cases: &[(u16, i64, &str)] = &[
            (400, 130429, "retry"),
            (400, 131056, "retry"),
            (400, 131000, "retry"),
            (500, 1, "retry"),
            (503, 2, "retry"),
            (400, 4, "retry"),
            (400, 80007, "retry"),
            (500, 131026, "retry"),
            (400, 131026, "perm"),
            (400, 100, "perm"),
            (400, 131008, "perm"),
            (400, 131009, "perm"),
            (400, 131051, "perm"),
            (400, 131052, "perm"),
            (400, 131053, "perm"),
            (400, 132000, "perm"),
            (400, 132001, "perm"),
            (400, 132069, "perm"),
            (400, 133010, "perm"),
            (400, 131021, "perm"),
            (400, 999_999, "perm"),
            (401, 190, "ExpiredToken"),
            (500, 190, "ExpiredToken"),
            (400, 131047, "OutsideWindow"),
            (400, 131031, "AccountRestricted"),
            (400, 368, "AccountRestricted"),
            (400, 131045, "AccountRestricted"),
            (400, 131050, "MarketingOptOut"),
            (400, 131049, "MarketingLimit"),
        ];
        for &(status, code, want) in cases {
            let got = classify(status, &err(code), None);
            assert_eq!(got.code(), code, "{status} {code}");
            let kind = match &got {
                SendError::Retryable { .. } => "retry".to_owned(),
                SendError::Permanent { .. } => "perm".to_owned(),
                SendError::NeedsAction { action, .. } => format!("{action:?}"),
            };
            assert_eq!(kind, want, "{status} {code}: {got:?}");
        }
    }

    #[test]
    fn classification_details_and_fallbacks() {
        let body = json!({ "error": {
            "message": "(#131047) Re-engagement message", "type": "OAuthException",
            "code": 131047,
            "error_data": { "messaging_product": "whatsapp",
                            "details": "Message failed to send because more than 24 hours have passed" },
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam" } });
        let e = classify(400, &body, None);
        assert!(e.message().contains("Re-engagement"));
        assert!(e.message().contains("24 hours"));

        let wait = Some(Duration::from_secs(7));
        let e = classify(502, &Value::Null, wait);
        assert_eq!(e.code(), 502);
        assert_eq!(e.retry_after(), wait);
        assert!(!classify(404, &json!("nope"), None).is_retryable());
        let transient = json!({ "error": { "message": "x", "code": 12345, "is_transient": true } });
        assert!(classify(400, &transient, None).is_retryable());
    }

    #[test]
    fn bodies_for_phone_and_bsuid_recipients() {
        let text = OutboundContent::Text {
            body: "hi".into(),
            preview_url: true,
            buttons: vec![],
        };
        let by_phone = message_body(&Outbound {
            to: Recipient::Whatsapp {
                phone: Some("+49 151 1234".into()),
                user_id: Some("DE.1".into()),
            },
            content: text.clone(),
            reply_to: Some("wamid.Q".into()),
            callback_data: None,
        })
        .unwrap();
        assert_eq!(
            by_phone,
            json!({ "messaging_product": "whatsapp", "recipient_type": "individual",
                    "to": "491511234", "type": "text",
                    "text": { "preview_url": true, "body": "hi" },
                    "context": { "message_id": "wamid.Q" } })
        );
        let by_bsuid = message_body(&Outbound {
            to: Recipient::Whatsapp {
                phone: None,
                user_id: Some("DE.1".into()),
            },
            content: text.clone(),
            reply_to: None,
            callback_data: None,
        })
        .unwrap();
        assert_eq!(by_bsuid["recipient"], "DE.1");
        assert!(by_bsuid.get("to").is_none());
        let telegram = message_body(&Outbound {
            to: Recipient::Telegram { chat_id: 1 },
            content: text,
            reply_to: None,
            callback_data: None,
        });
        assert!(matches!(telegram, Err(SendError::Permanent { .. })));
    }

    #[test]
    fn template_body_with_named_params_and_buttons() {
        let t = TemplateMessage {
            name: "order_update".into(),
            language: "en_US".into(),
            header: vec![TemplateParam::Image {
                link: "https://x/y.png".into(),
            }],
            body: vec![TemplateParam::Text {
                text: "Ann".into(),
                parameter_name: Some("first_name".into()),
            }],
            buttons: vec![
                TemplateButtonParam {
                    sub_type: "quick_reply".into(),
                    index: 0,
                    value: "STOP".into(),
                },
                TemplateButtonParam {
                    sub_type: "url".into(),
                    index: 1,
                    value: "abc".into(),
                },
                TemplateButtonParam {
                    sub_type: "copy_code".into(),
                    index: 2,
                    value: "SAVE10".into(),
                },
            ],
        };
        let obj = template_object(&t).unwrap();
        assert_eq!(
            obj,
            json!({ "name": "order_update", "language": { "code": "en_US" }, "components": [
                { "type": "header", "parameters": [{ "type": "image", "image": { "link": "https://x/y.png" } }] },
                { "type": "body", "parameters": [{ "type": "text", "text": "Ann", "parameter_name": "first_name" }] },
                { "type": "button", "sub_type": "quick_reply", "index": "0",
                  "parameters": [{ "type": "payload", "payload": "STOP" }] },
                { "type": "button", "sub_type": "url", "index": "1",
                  "parameters": [{ "type": "text", "text": "abc" }] },
                { "type": "button", "sub_type": "copy_code", "index": "2",
                  "parameters": [{ "type": "coupon_code", "coupon_code": "SAVE10" }] }
            ]})
        );
    }
}
