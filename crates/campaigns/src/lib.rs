//! Campaigns: one approved template sent to an audience on one channel, paced, never twice to
//! a recipient, with live analytics.
//!
//! A campaign is a draft (channel, template, variable mapping, audience of groups ∪ tags ∪
//! segments ∪ an earlier campaign's slice, minus exclusions) until it is launched, now or at a
//! local time in a time zone. Launch snapshots the audience into one recipient row per contact
//! (skips recorded with their reason: opted out, no marketing consent, blocked, no address on
//! the channel, duplicate address); dispatch jobs then claim pending rows in leased batches and
//! send through the channel's pacing and circuit breaker, re-checking consent and rendering
//! variables from current contact data at send time. The exactly-once rule is documented on
//! `service.rs`. Campaigns pause themselves when the template stops being approved, the
//! channel turns unhealthy or the failure rate crosses the campaign's threshold, with the
//! reason shown; people pause, resume and cancel at any time.
//!
//! Events (to `org:{org}`): `wamage.campaign.started|paused|resumed|completed|failed|
//! cancelled|updated` (`data.campaign`), `wamage.campaign.progress` (at most once a second per
//! campaign and process: `campaign_id`, `counts`, `rate_per_second`, `eta_seconds`).

pub mod http;
pub mod model;
mod service;
mod store;

pub use http::routes;
pub use model::{CampaignId, CampaignStatus};
pub use service::{
    CampaignHook, Campaigns, CampaignsConfig, CampaignsDeps, DISPATCH_JOB, DispatchJob, LAUNCH_JOB,
    LaunchJob, WATCH_JOB, WatchJob,
};
use wamage_platform::{MigrationSet, migration_set};

/// This crate's migrations.
pub fn migrations() -> MigrationSet {
    migration_set!()
}
