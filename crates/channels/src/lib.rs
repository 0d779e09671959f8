//! Channels: an organisation's connected provider accounts (WhatsApp Cloud API numbers,
//! Telegram bots, the built-in Sandbox), their webhooks in and their sender out.

pub mod provider;
pub mod telegram;
pub mod whatsapp;

pub use provider::{ProviderClient, SendError, WebhookError};
