//! The durable job queue, on the relational store (SQLite or PostgreSQL).
//!
//! Every outbound side effect is a row in `jobs`, written **in the caller's transaction**
//! ([`JobQueue::enqueue`]): if the domain change rolls back, the job never existed
//! (transactional outbox). Workers then run the rows.
//!
//! # Claiming
//! A [`Worker`] claims due jobs in batches, flipping them to `running`:
//!
//! - PostgreSQL: `UPDATE jobs SET state = 'running', … WHERE id = ANY(ARRAY(SELECT id … ORDER BY
//!   priority DESC, run_at LIMIT $n FOR UPDATE SKIP LOCKED)) RETURNING …` — concurrent workers
//!   skip each other's rows instead of waiting on them. The claim transaction turns off sorts,
//!   bitmap and sequential scans and JIT (`SET LOCAL` semantics), so the plan is always the
//!   ordered walk of the partial index `jobs_claim` that stops after `$n` rows: with the stale
//!   statistics a queue table always has, the planner otherwise sorted every queued row on each
//!   claim. A worker holding some kinds back (at their [limits](WorkerConfig::kind_limits))
//!   claims the others kind by kind from `jobs_claim_kind` instead
//!   ([`JobQueue::claim_among`]): the walk of the head would step over the whole backlog of the
//!   kinds held back on every claim;
//! - SQLite: under the write lock (`BEGIN IMMEDIATE`), one `SELECT … ORDER BY … LIMIT $n` that
//!   returns the batch as a single JSON row, then one `UPDATE … WHERE id IN (…)`. SQLite
//!   serialises writers, so nobody can claim the same rows in between.
//!
//! A claim increments `attempts`, records `locked_by` (the worker id) and sets
//! `locked_until = now + lease`. No transaction stays open while a handler runs.
//!
//! # Leases, heartbeats and the reaper
//! While handlers run, the worker extends `locked_until` of the jobs it holds every
//! `heartbeat` interval. A worker that dies stops heartbeating; once the lease has expired,
//! [`JobQueue::reap_expired`] (called periodically by every worker loop) requeues the job,
//! records the try as a `lost` attempt, and moves the job to `dead` when it has used its
//! attempts or was lost [`restart_limit`](JobQueue::with_restart_limit) times. Every write that
//! finishes a try is fenced on `(id, attempts, locked_by, state = 'running')`, so a worker that
//! lost its lease cannot overwrite the outcome of the next claim.
//!
//! # Merged runs
//! A handler whose jobs are cheaper done together (a burst of small webhook batches) says how
//! many it takes at once ([`JobHandler::merge_limit`]): the worker hands that many claimed jobs
//! of the kind and organisation to one [`JobHandler::run_many`] call, which answers one outcome
//! per job. Each job keeps its own outcome, retries and attempt row; a panic in a merged run
//! makes each of its jobs retry. A kind limit counts a merged run as one handler.
//!
//! # Outcomes and retries
//! A [`JobHandler`] returns a [`JobOutcome`]: `Done`, `Retry` (retryable, optionally with the
//! provider's `Retry-After`) or `Fail` (permanent: the job goes to `dead`). A panicking handler
//! counts as `Retry`. Retries are data: the [`RetryPolicy`] of the kind (exponential backoff
//! with bounded jitter, never sooner than `Retry-After`) gives the next `run_at`, and the row goes
//! back to `queued`; nothing sleeps in a worker. After `max_attempts` tries the job is `dead`
//! with its last error. Every try is a row in `job_attempts` (outcome, error truncated to 2 KB,
//! latency). Successful completions are written in batches.
//!
//! # Throughput notes
//! - Enqueues, success updates and attempt rows are one statement per batch (of up to 500).
//!   PostgreSQL: a fixed statement over `UNNEST` of array parameters (prepared once per
//!   connection); a success is `WITH done AS (UPDATE … FROM UNNEST(…) … RETURNING id) INSERT
//!   INTO job_attempts …` — the fenced update and its attempt rows in one round trip. SQLite: one
//!   JSON parameter expanded with `json_each` (its lookup of numbered parameters is quadratic in
//!   their count), and no `RETURNING` on hot paths: sqlx hands result rows over from SQLite's
//!   thread one at a time, a thread wake-up each, so results come back as one
//!   `json_group_array` row or as a row count.
//! - On PostgreSQL, claims and outcome writes commit with `synchronous_commit = off`: a crash can
//!   only lose the last few of them, which makes those jobs run again (delivery is at least
//!   once anyway); enqueues keep the caller's durability.
//! - `job_attempts` has no foreign key to `jobs` (the check is a lookup plus, on PostgreSQL, a
//!   row lock per attempt); [`JobQueue::purge_finished`] deletes a job's attempts with it.
//! - Succeeded jobs stay in `jobs` (as `succeeded`) until purged, so [`JobQueue::get`] keeps
//!   answering for them; the partial indexes keep finished rows out of the claim and lease
//!   paths. On PostgreSQL the table has `fillfactor = 70` and per-table autovacuum at ~1 % of
//!   change (see the migration).
//!
//! # States
//! `queued` → `running` → `succeeded` | `queued` (retry scheduled) | `dead`; `queued` →
//! `cancelled`. A `dedupe_key` is unique among the unfinished (`queued`/`running`) jobs of a kind:
//! enqueueing a duplicate returns the existing job's id.
//!
//! # Metrics
//! `wamage_jobs_attempts_total{kind,outcome}`, `wamage_jobs_failures_total{kind}`,
//! `wamage_jobs_duration_seconds{kind}`, and the gauges `wamage_jobs_queue_depth{kind,state}` and
//! `wamage_jobs_oldest_queued_age_seconds{kind}` refreshed by [`JobQueue::sample_metrics`].

mod policy;
mod queue;
mod worker;

use std::{future::Future, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use uuid::Uuid;
use wamage_kernel::{OrgId, Timestamp};

pub use self::{
    policy::{RetryPolicies, RetryPolicy},
    queue::{JobQueue, PG_WITH_FIRST_PARAM, PgScalarQuery},
    worker::{Worker, WorkerConfig},
};

/// Longest error text kept per attempt (and as `last_error`).
pub const MAX_ERROR_LEN: usize = 2048;

/// The id of a job (UUIDv7).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct JobId(pub Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_at` (first run or a scheduled retry).
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    Succeeded,
    /// Dead-lettered: attempts used up, a permanent failure, or lost too many times.
    Dead,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "dead" => Self::Dead,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }
}

/// How one try of a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    /// Failed, another try is scheduled.
    Retry,
    /// Failed permanently (the job is dead).
    Failed,
    /// Failed and that was the last allowed try (the job is dead).
    Dead,
    /// The worker stopped heartbeating (crash) or shut down before the handler finished.
    Lost,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Retry => "retry",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "succeeded" => Self::Succeeded,
            "retry" => Self::Retry,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            "lost" => Self::Lost,
            _ => return None,
        })
    }
}

/// A job to enqueue. Build with [`NewJob::new`] and the `with_*` methods.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    pub kind: String,
    pub org_id: Option<OrgId>,
    pub payload: Value,
    /// Not before this time (default: now).
    pub run_at: Option<Timestamp>,
    /// At most one unfinished job per `(kind, dedupe_key)`.
    pub dedupe_key: Option<String>,
    /// Default: the kind's retry policy.
    pub max_attempts: Option<u32>,
    /// Higher runs first among due jobs (default 0).
    pub priority: i32,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        Self {
            kind: kind.into(),
            payload,
            ..Self::default()
        }
    }

    #[must_use]
    pub fn with_org(mut self, org: OrgId) -> Self {
        self.org_id = Some(org);
        self
    }

    #[must_use]
    pub fn with_run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self
    }

    #[must_use]
    pub fn with_dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    #[must_use]
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    #[must_use]
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
}

/// A job row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: JobId,
    pub org_id: Option<OrgId>,
    pub kind: String,
    pub payload: Value,
    pub state: JobState,
    pub priority: i32,
    pub run_at: Timestamp,
    /// Tries started so far.
    pub attempts: u32,
    pub max_attempts: u32,
    pub dedupe_key: Option<String>,
    pub locked_by: Option<String>,
    pub locked_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// One try of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobAttempt {
    pub job_id: JobId,
    /// 1 for the first try.
    pub attempt: u32,
    pub worker_id: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    pub latency: Duration,
}

/// Queue numbers for one job kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KindStats {
    pub kind: String,
    pub queued: u64,
    pub running: u64,
    pub dead: u64,
    /// How long the oldest due job has been waiting (`now - run_at`), zero when none is due.
    pub oldest_queued_age: Duration,
}

/// What a handler gets: the claimed job.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: JobId,
    pub kind: String,
    pub org_id: Option<OrgId>,
    pub payload: Value,
    /// 1 for the first try.
    pub attempt: u32,
    pub max_attempts: u32,
    pub run_at: Timestamp,
    pub created_at: Timestamp,
    /// The worker running this try.
    pub worker_id: String,
}

impl JobContext {
    /// The payload as a typed value.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.payload)
    }

    /// True on the last allowed try.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// How a try ended, as the handler reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    /// Retryable failure (timeout, 429, 5xx …). `retry_after` (e.g. a provider's `Retry-After`)
    /// is a lower bound for the delay before the next try.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Permanent failure: the job goes to `dead` without further tries.
    Fail {
        error: String,
    },
}

impl JobOutcome {
    pub fn retry(error: impl Into<String>) -> Self {
        Self::Retry {
            error: error.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(error: impl Into<String>, after: Duration) -> Self {
        Self::Retry {
            error: error.into(),
            retry_after: Some(after),
        }
    }

    pub fn fail(error: impl Into<String>) -> Self {
        Self::Fail {
            error: error.into(),
        }
    }
}

/// Runs the jobs of one kind. Must be idempotent: delivery is at least once.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn run(&self, job: &JobContext) -> JobOutcome;

    /// How many claimed jobs of this kind and organisation the worker may hand to one
    /// [`Self::run_many`] call (jobs that are cheaper done together, like a burst of small
    /// webhook batches). 1, the default, runs each job on its own.
    fn merge_limit(&self) -> usize {
        1
    }

    /// Runs several jobs together: one outcome per job, in their order. Each job keeps its
    /// own outcome, retries and attempts. The default runs them one after the other.
    async fn run_many(&self, jobs: &[JobContext]) -> Vec<JobOutcome> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.push(self.run(job).await);
        }
        out
    }
}

/// A handler from an async closure: `handler_fn(|job| async move { JobOutcome::Done })`.
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobOutcome> + Send + 'static,
{
    FnHandler(f)
}

/// See [`handler_fn`].
pub struct FnHandler<F>(F);

#[async_trait]
impl<F, Fut> JobHandler for FnHandler<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobOutcome> + Send + 'static,
{
    async fn run(&self, job: &JobContext) -> JobOutcome {
        (self.0)(job.clone()).await
    }
}

/// Errors of the job queue.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job store error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("invalid job: {0}")]
    Invalid(String),
    #[error("corrupt job row: {0}")]
    Corrupt(String),
}

pub type Result<T, E = JobError> = std::result::Result<T, E>;

/// Cuts `text` to at most [`MAX_ERROR_LEN`] bytes on a character boundary.
pub(crate) fn truncate_error(text: &str) -> String {
    if text.len() <= MAX_ERROR_LEN {
        return text.to_owned();
    }
    let mut end = MAX_ERROR_LEN - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_truncated_on_char_boundaries() {
        let long = "é".repeat(3000);
        let cut = truncate_error(&long);
        assert!(cut.len() <= MAX_ERROR_LEN);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_error("short"), "short");
    }

    #[test]
    fn states_round_trip() {
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Dead,
            JobState::Cancelled,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
    }
}
