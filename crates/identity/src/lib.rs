//! Identity: who people are and what they may do.
//!
//! Users (global accounts with argon2id passwords), organisations (the tenants), memberships with
//! roles (owner / admin / agent), teams, invitations, sessions (one per signed-in device, each a
//! family of rotating refresh tokens), API keys and password resets.
//!
//! Other domains use only this façade: the [`Caller`] / [`AdminCaller`] extractors, the
//! [`Principal`] they yield, [`Role`], the ids, and on [`Identity`] the member directory
//! ([`Identity::member_cards`]) and the password re-check ([`Identity::verify_password`]).

mod auth;
pub mod http;
mod model;
mod secrets;
mod service;
mod store;

pub use auth::{AdminCaller, Caller, SessionCaller, TrustForwardedFor};
pub use http::routes;
pub use model::{ApiKeyId, InvitationId, MemberCard, Principal, Role, SessionId, TeamId, Via};
pub use secrets::HashCost;
pub use service::{ClientInfo, Identity, IdentityConfig, IdentityDeps, LoginLimits, MAIL_JOB};
use wamage_platform::{MigrationSet, migration_set};

/// This crate's migrations.
pub fn migrations() -> MigrationSet {
    migration_set!()
}
