//! Message templates.
//!
//! WhatsApp templates are built here, checked against what Meta would reject (name format,
//! variable numbering, lengths, samples, button rules) **before** they are submitted to the
//! channel's business account, then follow Meta's verdicts: `pending` → `approved` /
//! `rejected` (with the reason) / `paused` / `disabled`, from the
//! `message_template_status_update` webhook (an [`IngestHook`](wamage_inbox::IngestHook)) and
//! from a periodic sync ([`SyncJob`], hourly per channel, also on demand) that walks the list
//! API's pages to the end and imports templates made elsewhere. Telegram and Sandbox channels
//! get local text templates (same variables, no review).
//!
//! Variables map to contact fields, custom attributes or fixed values with fallbacks
//! ([`model::Mapping`]); a preview renders a template for a chosen contact exactly as it will
//! be sent. Campaigns and the inbox send with [`Template`] and [`model::outbound`].
//!
//! Events (to `org:{org}`): `wamage.template.updated` (`data.template`) and
//! `wamage.template.deleted`.

pub mod http;
pub mod model;
mod service;
mod store;

pub use http::routes;
pub use model::{Category, TemplateId, TemplateKind, TemplateStatus};
pub use service::{
    SYNC_JOB, SyncJob, Template, TemplateHook, Templates, TemplatesDeps, send_channel,
};
use wamage_platform::{MigrationSet, migration_set};

/// This crate's migrations.
pub fn migrations() -> MigrationSet {
    migration_set!()
}
