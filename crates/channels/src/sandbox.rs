//! The Sandbox channel: a simulated customer endpoint built in, so the whole inbox can be tried
//! without any provider account.
//!
//! Customers are simulated by posting *sandbox events* (`wamage simulate`, the UI's "simulate
//! customer" panel, `POST /api/v1/channels/{id}/simulate`). They are stored and processed exactly
//! like a provider's webhook (raw event row + `channels.ingest` job), so the Sandbox exercises
//! the same pipeline as WhatsApp and Telegram. Outbound sends "reach" the simulated customer:
//! the client answers with a `sbx.` message id and records a `delivered` status event at once
//! and, when the channel's `auto_read` is on, a `read` one [`READ_DELAY`] later.
//!
//! Event format (one JSON object per event):
//! - `{"sandbox":"message","id":"sbx.…","from":{"handle":"ada","name":"Ada"},"text":"Hi",
//!    "reply_to":"sbx.…"|null,"at_ms":…}`
//! - `{"sandbox":"status","id":"sbx.…","status":"delivered"|"read"|"failed","at_ms":…}`

use std::{sync::Weak, time::Duration};

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    model::ChannelId,
    provider::{
        DeliveryStatus, Inbound, InboundContent, InboundMessage, MediaBytes, Outbound,
        OutboundContent, ProviderClient, ProviderError, Recipient, SendError, Sender, Sent,
        StatusUpdate,
    },
    service::Channels,
};

/// How long after delivery a simulated customer with `auto_read` reads a message.
pub const READ_DELAY: Duration = Duration::from_secs(2);
/// Longest simulated handle.
pub const HANDLE_MAX: usize = 64;

/// Is `h` a valid simulated customer handle (`[A-Za-z0-9_.+-]{1,64}`)?
pub fn valid_handle(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= HANDLE_MAX
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
}

/// A new provider message id of the Sandbox.
pub fn new_message_id() -> String {
    format!("sbx.{}", Uuid::now_v7().simple())
}

#[derive(Debug, Deserialize)]
struct SandboxFrom {
    handle: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "sandbox", rename_all = "snake_case")]
enum SandboxEvent {
    Message {
        id: String,
        from: SandboxFrom,
        text: String,
        reply_to: Option<String>,
        at_ms: i64,
    },
    Status {
        id: String,
        status: String,
        at_ms: i64,
    },
}

/// The event of a simulated customer message.
pub fn message_event(
    id: &str,
    handle: &str,
    name: Option<&str>,
    text: &str,
    reply_to: Option<&str>,
    at_ms: i64,
) -> Value {
    json!({
        "sandbox": "message",
        "id": id,
        "from": {"handle": handle, "name": name},
        "text": text,
        "reply_to": reply_to,
        "at_ms": at_ms,
    })
}

/// The event of a simulated delivery report.
pub fn status_event(id: &str, status: DeliveryStatus, at_ms: i64) -> Value {
    json!({"sandbox": "status", "id": id, "status": status.as_str(), "at_ms": at_ms})
}

/// Parses one stored sandbox event.
pub fn parse_event(raw: &[u8]) -> Result<Vec<Inbound>, String> {
    let ev: SandboxEvent =
        serde_json::from_slice(raw).map_err(|e| format!("invalid sandbox event: {e}"))?;
    Ok(vec![match ev {
        SandboxEvent::Message {
            id,
            from,
            text,
            reply_to,
            at_ms,
        } => Inbound::Message(InboundMessage {
            provider_message_id: id,
            from: Sender {
                username: Some(from.handle),
                name: from.name,
                ..Sender::default()
            },
            sent_at_ms: at_ms,
            content: InboundContent::Text { body: text },
            reply_to,
            edited: false,
            group: false,
        }),
        SandboxEvent::Status { id, status, at_ms } => {
            let status = DeliveryStatus::parse(&status)
                .ok_or_else(|| format!("unknown sandbox status {status:?}"))?;
            Inbound::Status(StatusUpdate {
                provider_message_id: id,
                status,
                at_ms,
                recipient: None,
                callback_data: None,
                errors: if status == DeliveryStatus::Failed {
                    vec![ProviderError {
                        code: 131026,
                        title: "Message undeliverable".to_owned(),
                        detail: Some("The simulated customer could not be reached".to_owned()),
                    }]
                } else {
                    Vec::new()
                },
            })
        }
    }])
}

/// The Sandbox "provider": accepts every well-formed message and reports delivery (and reading).
pub struct SandboxClient {
    pub(crate) channels: Weak<Channels>,
    pub(crate) channel: ChannelId,
    pub(crate) auto_read: bool,
}

#[async_trait::async_trait]
impl ProviderClient for SandboxClient {
    async fn send(&self, msg: &Outbound) -> Result<Sent, SendError> {
        let Recipient::Sandbox { handle } = &msg.to else {
            return Err(SendError::Permanent {
                code: 100,
                message: "the Sandbox only reaches simulated customers".to_owned(),
            });
        };
        if !valid_handle(handle) {
            return Err(SendError::Permanent {
                code: 100,
                message: format!("invalid simulated customer {handle:?}"),
            });
        }
        if let OutboundContent::Text { body, .. } = &msg.content
            && body.trim().is_empty()
        {
            return Err(SendError::Permanent {
                code: 100,
                message: "text body is empty".to_owned(),
            });
        }
        let id = new_message_id();
        // Reactions are not messages: nothing to deliver or read.
        if matches!(msg.content, OutboundContent::Reaction { .. }) {
            return Ok(Sent {
                provider_message_id: id,
            });
        }
        if let Some(ch) = self.channels.upgrade() {
            let now = ch.now_ms();
            let delivered = status_event(&id, DeliveryStatus::Delivered, now);
            ch.record_synthetic(self.channel, &delivered, None)
                .await
                .map_err(|e| SendError::Retryable {
                    code: 1,
                    message: format!("sandbox could not record delivery: {e}"),
                    retry_after: None,
                })?;
            if self.auto_read {
                let read = status_event(
                    &id,
                    DeliveryStatus::Read,
                    now + i64::try_from(READ_DELAY.as_millis()).unwrap_or(2000),
                );
                ch.record_synthetic(self.channel, &read, Some(READ_DELAY))
                    .await
                    .map_err(|e| SendError::Retryable {
                        code: 1,
                        message: format!("sandbox could not record reading: {e}"),
                        retry_after: None,
                    })?;
            }
        }
        Ok(Sent {
            provider_message_id: id,
        })
    }

    async fn mark_read(&self, _provider_message_id: &str) -> Result<(), SendError> {
        Ok(())
    }

    async fn download_media(&self, provider_media_id: &str) -> Result<MediaBytes, SendError> {
        Err(SendError::Permanent {
            code: 100,
            message: format!("the Sandbox has no media {provider_media_id:?}"),
        })
    }

    async fn check(&self) -> Result<Value, SendError> {
        Ok(json!({"sandbox": true, "auto_read": self.auto_read}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles() {
        assert!(valid_handle("ada"));
        assert!(valid_handle("+15550001"));
        assert!(!valid_handle(""));
        assert!(!valid_handle("a b"));
        assert!(!valid_handle(&"x".repeat(65)));
    }

    #[test]
    fn events_round_trip() {
        let m = message_event("sbx.1", "ada", Some("Ada"), "Hi", None, 5);
        let items = parse_event(m.to_string().as_bytes()).expect("parses");
        assert!(
            matches!(&items[0], Inbound::Message(m) if m.from.username.as_deref() == Some("ada"))
        );
        let s = status_event("sbx.1", DeliveryStatus::Read, 6);
        let items = parse_event(s.to_string().as_bytes()).expect("parses");
        assert!(matches!(&items[0], Inbound::Status(s) if s.status == DeliveryStatus::Read));
        assert!(parse_event(b"{").is_err());
        assert!(
            parse_event(br#"{"sandbox":"status","id":"x","status":"bogus","at_ms":1}"#).is_err()
        );
    }
}
