//! Channels: an organisation's connected provider accounts (WhatsApp Cloud API numbers,
//! Telegram bots, the built-in Sandbox), their webhooks in and their sender's resilience.
//!
//! - [`provider`] is the provider-neutral contract: adapters turn webhooks into [`Inbound`]
//!   items and send [`Outbound`] messages, classifying failures into retryable / permanent /
//!   needs-action ([`SendError`]).
//! - [`whatsapp`], [`telegram`] and [`sandbox`] are the adapters.
//! - Credentials are sealed at rest ([`secrets`]) and never returned by the API.
//! - Webhooks (`/webhooks/whatsapp/{id}`, `/webhooks/telegram/{id}`) are verified on the raw
//!   bytes (HMAC-SHA256 with the app secret / the secret token), stored as they came, and
//!   answered 200 once durable; [`INGEST_JOB`]s queued for them (with them on PostgreSQL, just
//!   after on SQLite, where a sweep finds any a crash left without one) let the inbox's job
//!   handler process them. Webhooks arriving together are stored together and share ingest
//!   jobs (up to 64 events each); while they arrive faster than they are stored, processing
//!   waits for the burst to end, up to a configured limit ([`Channels::yield_to_burst`]).
//!   Telegram channels in polling mode are fed by [`poller`] instead.
//! - [`pacing`]: per-channel GCRA pacing, WhatsApp pair pacing and the circuit breaker.

mod adapters;
pub mod http;
pub mod model;
pub mod pacing;
pub mod poller;
pub mod provider;
pub mod sandbox;
pub mod secrets;
mod service;
mod store;
pub mod telegram;
pub mod whatsapp;

use wamage_platform::{MigrationSet, migration_set};

pub use http::{routes, webhook_routes};
pub use model::{ChannelId, ChannelKind, EventId, HealthState, ReopenPolicy};
pub use provider::{Inbound, Outbound, ProviderClient, SendError, WebhookError};
pub use service::{
    Channel, ChannelConfig, ChannelSecrets, Channels, ChannelsConfig, ChannelsDeps, INGEST_JOB,
    WEBHOOK_MAX_BYTES, describe, recipient_key,
};
pub use store::EventRow;

/// This crate's migrations.
pub fn migrations() -> MigrationSet {
    migration_set!()
}
