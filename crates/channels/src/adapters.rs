//! The seam between the stored channel and its provider adapter: which parser reads its
//! events, which client sends for it, how its webhooks authenticate.

use std::sync::{Arc, Weak};

use serde_json::Value;

use crate::{
    model::ChannelKind,
    provider::{Inbound, ProviderClient},
    sandbox::{self, SandboxClient},
    service::{Channel, ChannelConfig, Channels},
    telegram::{self, TelegramClient, TelegramConfig},
    whatsapp::{self, WhatsappClient, WhatsappConfig},
};

pub(crate) fn whatsapp_signature_ok(app_secret: &str, raw: &[u8], header: Option<&str>) -> bool {
    !app_secret.is_empty() && whatsapp::verify_signature(app_secret, raw, header)
}

pub(crate) fn whatsapp_subscription(
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
    expected: &str,
) -> Option<String> {
    if expected.is_empty() {
        return None;
    }
    whatsapp::verify_subscription(mode, token, challenge, expected)
}

pub(crate) fn telegram_secret_ok(expected: &str, header: Option<&str>) -> bool {
    !expected.is_empty() && telegram::verify_secret(expected, header)
}

/// The items of one stored event of channel `c`.
pub(crate) fn parse(c: &Channel, raw: &[u8]) -> Result<Vec<Inbound>, String> {
    match c.kind {
        ChannelKind::Whatsapp => whatsapp::parse_webhook(raw, c.config.phone_number_id.as_deref())
            .map_err(|e| e.to_string()),
        ChannelKind::Telegram => {
            let v: Value = serde_json::from_slice(raw).map_err(|e| format!("invalid JSON: {e}"))?;
            telegram::parse_update(&v)
                .map(|(_, items)| items)
                .map_err(|e| e.to_string())
        }
        ChannelKind::Sandbox => sandbox::parse_event(raw),
    }
}

pub(crate) fn whatsapp_config(ch: &Channels, c: &Channel) -> WhatsappConfig {
    let cfg = ch.config();
    WhatsappConfig {
        base_url: c
            .config
            .base_url
            .clone()
            .filter(|_| cfg.allow_base_url_override)
            .unwrap_or_else(|| cfg.whatsapp_base_url.clone()),
        api_version: c
            .config
            .api_version
            .clone()
            .unwrap_or_else(|| cfg.whatsapp_api_version.clone()),
        phone_number_id: c.config.phone_number_id.clone().unwrap_or_default(),
        waba_id: c.config.waba_id.clone(),
        access_token: c.secrets.access_token.clone().unwrap_or_default(),
        timeout: cfg.http_timeout,
    }
}

pub(crate) fn telegram_config(ch: &Channels, c: &Channel) -> TelegramConfig {
    let cfg = ch.config();
    TelegramConfig {
        base_url: c
            .config
            .base_url
            .clone()
            .filter(|_| cfg.allow_base_url_override)
            .unwrap_or_else(|| cfg.telegram_base_url.clone()),
        bot_token: c.secrets.bot_token.clone().unwrap_or_default(),
        timeout: cfg.http_timeout,
    }
}

pub(crate) fn client(ch: &Channels, me: Weak<Channels>, c: &Channel) -> Arc<dyn ProviderClient> {
    match c.kind {
        ChannelKind::Whatsapp => Arc::new(WhatsappClient::with_http(
            whatsapp_config(ch, c),
            ch.http_client().clone(),
        )),
        ChannelKind::Telegram => Arc::new(TelegramClient::with_http(
            telegram_config(ch, c),
            ch.http_client().clone(),
        )),
        ChannelKind::Sandbox => Arc::new(SandboxClient {
            channels: me,
            channel: c.id,
            auto_read: c.config.auto_read.unwrap_or(true),
        }),
    }
}

/// Points the bot's webhook at this channel's URL with the channel's secret token.
pub(crate) async fn telegram_set_webhook(
    ch: &Channels,
    c: &Channel,
    url: &str,
) -> Result<(), crate::provider::SendError> {
    TelegramClient::with_http(telegram_config(ch, c), ch.http_client().clone())
        .set_webhook(url, c.secrets.webhook_secret.as_deref().unwrap_or_default())
        .await
}

/// Acknowledges a tap on an inline keyboard button (Telegram shows a spinner until then).
pub(crate) async fn telegram_answer_callback(
    ch: &Channels,
    c: &Channel,
    id: &str,
) -> Result<(), crate::provider::SendError> {
    TelegramClient::with_http(telegram_config(ch, c), ch.http_client().clone())
        .answer_callback_query(id, None)
        .await
}

/// Keeps what a successful "test connection" taught us about the account.
pub(crate) fn absorb_check(kind: ChannelKind, cfg: &mut ChannelConfig, detail: &Value) {
    let s = |k: &str| detail.get(k).and_then(Value::as_str).map(str::to_owned);
    match kind {
        ChannelKind::Whatsapp => {
            if let Some(v) = s("display_phone_number") {
                cfg.display_phone_number = Some(v);
            }
            if let Some(v) = s("verified_name") {
                cfg.verified_name = Some(v);
            }
            if let Some(v) = s("quality_rating") {
                cfg.quality_rating = Some(v);
            }
        }
        ChannelKind::Telegram => {
            if let Some(v) = s("username") {
                cfg.bot_username = Some(v);
            }
        }
        ChannelKind::Sandbox => {}
    }
}
