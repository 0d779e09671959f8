//! Contacts: the people an organisation talks to.
//!
//! A contact has a profile (name, company, language, time zone, notes, favorite and blocked
//! flags), values for the organisation's custom attributes (typed, validated on write) and
//! channel identities (phone, e-mail, WhatsApp phone or business-scoped user id, Telegram id),
//! each normalised and unique within the organisation. Lists search as you type (SQLite FTS5 /
//! PostgreSQL full text, prefix matches) and page by keyset.
//!
//! Events: `wamage.contact.created`, `wamage.contact.updated` (with `changed` fields) and
//! `wamage.contact.deleted`, each carrying the contact as the API shows it (`data.contact`);
//! `wamage.contact.merged` (`survivor`, `merged_id` and the surviving `contact`);
//! `wamage.consent.changed` for every consent ledger entry.
//!
//! CSV import (`/api/v1/imports`) runs as a background job, one batch of 500 rows per
//! transaction with a checkpoint, and records every rejected row with its line and reason; it
//! publishes no per-contact events, only `wamage.contacts.imported` with the counts when it
//! completes (see `service/import.rs`). CSV export (`/api/v1/contacts/export.csv`) streams the
//! filtered view with formula cells neutralised (see `csvfmt.rs`).
//!
//! Segments (`/api/v1/segments`) are saved filters in one JSON filter language (documented in
//! `segment.rs`), parsed once into a typed tree and compiled to SQL with bound values only; the
//! contact list and the export take `segment=<id>` alongside their other filters.
//!
//! A contact may have a photo (`PUT`/`DELETE /api/v1/contacts/{id}/avatar`), stored in the blob
//! store and served publicly at its unguessable `avatar_url` like member avatars (see
//! `service/avatar.rs`); its blob is deleted when it is replaced or removed, or when the contact
//! is deleted or merged away.
//!
//! Other domains ask [`Contacts::may_send`] before sending (the rule is documented in
//! `consent.rs` and on that method).

mod consent;
mod count_index;
mod csvfmt;
pub mod http;
mod model;
mod segment;
mod service;
mod store;

pub use consent::{
    ConsentChannel, ConsentPurpose, ConsentSource, ConsentStatus, DenyReason, SendPermission,
};
pub use http::routes;
pub use model::{
    AttrType, ContactId, GroupId, IdentityId, IdentityKind, ImportId, SegmentId, TagId,
};
pub use service::{
    AudienceSpec, AudienceWalk, Breakdown, COUNT_INDEX_AFTER, Contacts, ContactsDeps,
    IDENTITY_TAKEN, IMPORT_BATCH_ROWS, IMPORT_JOB, IMPORT_RUN_BUDGET, IMPORT_WRITERS,
    INDEX_AFTER_IMPORT_ROWS, ImportJob, InboundResolution, ResolvedContact, SendChannel,
    SendContact, SkipReason, SystemConsent, VarField, address_kinds,
};
pub use store::{AudiencePage, set_count_index_page_rows};
use wamage_platform::{MigrationSet, migration_set};

/// This crate's migrations.
pub fn migrations() -> MigrationSet {
    migration_set!()
}
