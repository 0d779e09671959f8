//! Contacts: the people an organisation talks to.
//!
//! A contact has a profile (name, company, language, time zone, notes, favorite and blocked
//! flags), values for the organisation's custom attributes (typed, validated on write) and
//! channel identities (phone, e-mail, WhatsApp phone or business-scoped user id, Telegram id),
//! each normalised and unique within the organisation. Lists search as you type (SQLite FTS5 /
//! PostgreSQL full text, prefix matches) and page by keyset.
//!
//! Events: `wamage.contact.created`, `wamage.contact.updated` (with `changed` fields) and
//! `wamage.contact.deleted`, each carrying the contact as the API shows it (`data.contact`).

pub mod http;
mod model;
mod service;
mod store;

pub use http::routes;
pub use model::{AttrType, ContactId, IdentityId, IdentityKind};
pub use service::{Contacts, ContactsDeps};
use wamage_platform::{MigrationSet, migration_set};

/// This crate's migrations.
pub fn migrations() -> MigrationSet {
    migration_set!()
}
