//! Infrastructure every Wamage domain builds on, each piece built once:
//!
//! - [`db`]: the relational store (SQLite or PostgreSQL) and migrations;
//! - [`jobs`]: the durable job queue on that store (transactional outbox, retries as data);
//! - [`cache`]: TTL cache with prefix invalidation (in-process or Redis);
//! - [`bus`]: the domain event bus (in-process; NATS later);
//! - [`blob`]: file storage (local directory; S3 later);
//! - [`mail`]: outgoing e-mail (log or SMTP);
//! - [`testing`] (feature `testing`): a fresh database per test on every backend.

pub mod blob;
pub mod bus;
pub mod cache;
pub mod db;
pub mod idempotency;
pub mod jobs;
pub mod mail;

#[cfg(feature = "testing")]
pub mod testing;

pub use db::{Backend, Db, DbOptions, MigrationSet, Tx};

/// This crate's own migrations (the job queue).
pub fn migrations() -> MigrationSet {
    migration_set!()
}
