//! [`JobQueue`]: enqueueing, claiming, completing, reaping and inspecting jobs.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use sqlx::{AssertSqlSafe, types::Json};
use tokio::sync::Notify;
use uuid::Uuid;
use wamage_kernel::{Clock, OrgId, Timestamp};

use super::{
    AttemptOutcome, Job, JobAttempt, JobContext, JobError, JobId, JobOutcome, JobState, KindStats,
    NewJob, Result, RetryPolicies, RetryPolicy, truncate_error,
};
use crate::{
    db::{Db, Tx},
    with_db, with_tx, with_write,
};

/// Rows per multi-row statement (keeps the bind count far below both backends' limits).
const CHUNK: usize = 500;
/// Expired leases handled per reaper statement.
const REAP_BATCH: i64 = 500;

/// The job queue: a handle on the store plus the clock and the retry policies. Cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    db: Db,
    clock: Clock,
    policies: RetryPolicies,
    restart_limit: u32,
    wake: Arc<Notify>,
    wakes: Arc<Wakes>,
    gauge_kinds: Arc<Mutex<BTreeSet<String>>>,
}

/// What the wake-ups of a queue were about: each is numbered, and a wake-up for one kind
/// ([`JobQueue::notify_kind`]) is remembered under that kind. A worker that holds some kinds
/// back can then tell whether anything it may claim was added since its last claim, instead of
/// claiming (and finding nothing) on every wake-up of a burst of the kinds it holds back.
#[derive(Debug, Default)]
struct Wakes {
    /// The number of the last wake-up.
    seq: AtomicU64,
    /// The number of the last wake-up for any kind ([`JobQueue::notify`]).
    any: AtomicU64,
    /// The number of the last wake-up for each kind.
    kinds: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobQueue")
            .field("backend", &self.db.backend())
            .field("restart_limit", &self.restart_limit)
            .finish_non_exhaustive()
    }
}

/// The end of one try, as the worker hands it back to the queue.
pub(crate) struct Finished {
    pub job: JobContext,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub latency: Duration,
    pub result: TryResult,
}

pub(crate) enum TryResult {
    Ran(JobOutcome),
    /// The handler never finished (the worker shut down and aborted it).
    Lost(String),
}

/// What a finished try does to its job.
enum Next {
    Succeeded,
    Requeue(Timestamp),
    Dead,
}

struct Resolution<'a> {
    f: &'a Finished,
    outcome: AttemptOutcome,
    error: Option<String>,
    next: Next,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    org_id: Option<Uuid>,
    kind: String,
    payload: Json<Value>,
    state: String,
    priority: i32,
    run_at: i64,
    attempts: i32,
    max_attempts: i32,
    dedupe_key: Option<String>,
    locked_by: Option<String>,
    locked_until: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl TryFrom<JobRow> for Job {
    type Error = JobError;

    fn try_from(r: JobRow) -> Result<Self> {
        Ok(Self {
            id: JobId(r.id),
            org_id: r.org_id.map(OrgId),
            kind: r.kind,
            payload: r.payload.0,
            state: JobState::parse(&r.state)
                .ok_or_else(|| JobError::Corrupt(format!("unknown job state {:?}", r.state)))?,
            priority: r.priority,
            run_at: Timestamp(r.run_at),
            attempts: to_u32(r.attempts),
            max_attempts: to_u32(r.max_attempts),
            dedupe_key: r.dedupe_key,
            locked_by: r.locked_by,
            locked_until: r.locked_until.map(Timestamp),
            last_error: r.last_error,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
            finished_at: r.finished_at.map(Timestamp),
        })
    }
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: Uuid,
    org_id: Option<Uuid>,
    kind: String,
    payload: Json<Value>,
    attempts: i32,
    max_attempts: i32,
    run_at: i64,
    created_at: i64,
}

/// A claimed job as the SQLite claim returns it:
/// `[hex id, hex org_id, kind, payload, attempts before the claim, max_attempts, run_at,
/// created_at]`.
#[derive(serde::Deserialize)]
struct SqliteClaimRow(String, Option<String>, String, Value, i32, i32, i64, i64);

#[derive(sqlx::FromRow)]
struct AttemptRow {
    job_id: Uuid,
    attempt: i32,
    worker_id: String,
    started_at: i64,
    finished_at: i64,
    outcome: String,
    error: Option<String>,
    latency_ms: i64,
}

#[derive(sqlx::FromRow)]
struct ExpiredRow {
    id: Uuid,
    kind: String,
    attempts: i32,
    max_attempts: i32,
    lost_count: i32,
    locked_by: Option<String>,
    started_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StatRow {
    kind: String,
    state: String,
    n: i64,
    oldest: Option<i64>,
}

const JOB_COLUMNS: &str = "id, org_id, kind, payload, state, priority, run_at, attempts, \
    max_attempts, dedupe_key, locked_by, locked_until, last_error, created_at, updated_at, \
    finished_at";

const CLAIM_RETURNING: &str =
    "RETURNING id, org_id, kind, payload, attempts, max_attempts, run_at, created_at";

/// How a claim finds its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The walk of the queue's head, in claim order, skipping other kinds' jobs: cheapest when
    /// the claim takes every kind the queue holds.
    Head,
    /// Kind by kind, the first due jobs of each, merged in claim order: for a claim that
    /// leaves out kinds with a backlog, which the walk of the head would step over one by one.
    PerKind,
}

/// PostgreSQL's claim by [`Reach::Head`]: `$1` worker, `$2` lease end, `$3` now, `$4` due by,
/// `$5` kinds, `$6` how many.
static CLAIM_HEAD_PG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $2, \
         started_at = $3, updated_at = $3, attempts = attempts + 1 \
         WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE state = 'queued' \
         AND run_at <= $4 AND kind = ANY($5) ORDER BY priority DESC, run_at LIMIT $6 \
         FOR UPDATE SKIP LOCKED)) {CLAIM_RETURNING}"
    )
});

/// PostgreSQL's claim by [`Reach::PerKind`] (the parameters of [`CLAIM_HEAD_PG`]): up to `$6`
/// jobs of each kind from `jobs_claim_kind`, locked there, then the first `$6` of them all.
/// (Rows locked but not taken stay locked, skipped by other claims, until this one commits.)
static CLAIM_PER_KIND_PG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $2, \
         started_at = $3, updated_at = $3, attempts = attempts + 1 \
         WHERE id = ANY(ARRAY(SELECT j.id FROM unnest($5::text[]) AS k (kind) \
         CROSS JOIN LATERAL (SELECT id, priority, run_at FROM jobs WHERE state = 'queued' \
         AND kind = k.kind AND run_at <= $4 ORDER BY priority DESC, run_at LIMIT $6 \
         FOR UPDATE SKIP LOCKED) AS j ORDER BY j.priority DESC, j.run_at LIMIT $6)) \
         {CLAIM_RETURNING}"
    )
});

/// PostgreSQL's insert of jobs given as a row of arrays (`$1` now, `$2`–`$9` the columns): a
/// fixed statement, prepared once per connection, instead of thousands of placeholders to
/// parse, plan and bind.
const PG_INSERT_JOBS: &str = "INSERT INTO jobs (id, org_id, kind, payload, priority, run_at, \
     max_attempts, dedupe_key, state, attempts, lost_count, created_at, updated_at) \
     SELECT id, org_id, kind, payload, priority, run_at, max_attempts, dedupe_key, 'queued', 0, \
     0, $1, $1 \
     FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::jsonb[], $6::int4[], $7::int8[], \
     $8::int4[], $9::text[]) \
     AS r (id, org_id, kind, payload, priority, run_at, max_attempts, dedupe_key) \
     ON CONFLICT DO NOTHING RETURNING id";

/// The first parameter of the statements given to [`JobQueue::enqueue_many_with_pg`].
pub const PG_WITH_FIRST_PARAM: usize = 10;

/// The query [`JobQueue::enqueue_many_with_pg`] hands its caller to bind its own parameters
/// (it returns the ids of the jobs inserted).
pub type PgScalarQuery<'q> =
    sqlx::query::QueryScalar<'q, sqlx::Postgres, Uuid, sqlx::postgres::PgArguments>;

/// Jobs as [`PG_INSERT_JOBS`]'s columns.
struct PgJobRows<'j> {
    now: i64,
    ids: Vec<Uuid>,
    orgs: Vec<Option<Uuid>>,
    kinds: Vec<&'j str>,
    payloads: Vec<Json<&'j Value>>,
    priorities: Vec<i32>,
    run_ats: Vec<i64>,
    maxes: Vec<i32>,
    keys: Vec<Option<&'j str>>,
}

impl<'j> PgJobRows<'j> {
    fn of(rows: &[(Uuid, &'j NewJob, i32)], now: i64) -> Self {
        let mut out = Self {
            now,
            ids: Vec::with_capacity(rows.len()),
            orgs: Vec::with_capacity(rows.len()),
            kinds: Vec::with_capacity(rows.len()),
            payloads: Vec::with_capacity(rows.len()),
            priorities: Vec::with_capacity(rows.len()),
            run_ats: Vec::with_capacity(rows.len()),
            maxes: Vec::with_capacity(rows.len()),
            keys: Vec::with_capacity(rows.len()),
        };
        for (id, job, max_attempts) in rows {
            out.ids.push(*id);
            out.orgs.push(job.org_id.map(|o| o.0));
            out.kinds.push(job.kind.as_str());
            out.payloads.push(Json(&job.payload));
            out.priorities.push(job.priority);
            out.run_ats.push(job.run_at.map_or(now, Timestamp::millis));
            out.maxes.push(*max_attempts);
            out.keys.push(job.dedupe_key.as_deref());
        }
        out
    }

    /// Binds `$1`–`$9`.
    fn bind<'q>(self, q: PgScalarQuery<'q>) -> PgScalarQuery<'q>
    where
        'j: 'q,
    {
        q.bind(self.now)
            .bind(self.ids)
            .bind(self.orgs)
            .bind(self.kinds)
            .bind(self.payloads)
            .bind(self.priorities)
            .bind(self.run_ats)
            .bind(self.maxes)
            .bind(self.keys)
    }
}

fn to_u32(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Ids from a SQLite `json_group_array(hex(id))`: one result row instead of one per id.
fn sqlite_ids(json: Option<&str>) -> Result<Vec<Uuid>> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let hex: Vec<String> = serde_json::from_str(json)
        .map_err(|e| JobError::Corrupt(format!("id list from the store: {e}")))?;
    hex.iter()
        .map(|h| Uuid::try_parse(h).map_err(|e| JobError::Corrupt(format!("job id {h:?}: {e}"))))
        .collect()
}

/// `($first, $first+1, …), (…)`: `rows` tuples of `cols` placeholders.
fn tuples(rows: usize, cols: usize, first: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            let _ = write!(s, "${n}");
            n += 1;
        }
        s.push(')');
    }
    s
}

/// `id IN ($first, …) AND (id, attempts) IN (VALUES ($first, $first+1), …)` for `rows` bound
/// `(id, attempts)` pairs: the id list lets both planners look rows up by primary key, the row
/// values fence each row on its claim.
fn fence(rows: usize, first: usize) -> String {
    let ids = (0..rows)
        .map(|i| format!("${}", first + 2 * i))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "id IN ({ids}) AND (id, attempts) IN (VALUES {})",
        tuples(rows, 2, first)
    )
}

impl JobQueue {
    /// A queue on `db` with the default retry policy for every kind and a restart limit of 3.
    pub fn new(db: Db, clock: Clock) -> Self {
        Self {
            db,
            clock,
            policies: RetryPolicies::default(),
            restart_limit: 3,
            wake: Arc::new(Notify::new()),
            wakes: Arc::default(),
            gauge_kinds: Arc::default(),
        }
    }

    /// Replaces all retry policies.
    #[must_use]
    pub fn with_policies(mut self, policies: RetryPolicies) -> Self {
        self.policies = policies;
        self
    }

    /// Sets the retry policy of one kind.
    #[must_use]
    pub fn with_policy(mut self, kind: impl Into<String>, policy: RetryPolicy) -> Self {
        self.policies = self.policies.with(kind, policy);
        self
    }

    /// How many times a job may be lost (its worker stopped heartbeating) and requeued; the next
    /// loss makes it dead. Default 3.
    #[must_use]
    pub fn with_restart_limit(mut self, limit: u32) -> Self {
        self.restart_limit = limit;
        self
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn policies(&self) -> &RetryPolicies {
        &self.policies
    }

    /// Wakes the workers of this process now instead of at their next poll. [`enqueue_now`]
    /// does it itself; call it after committing a transaction that enqueued jobs.
    ///
    /// [`enqueue_now`]: Self::enqueue_now
    pub fn notify(&self) {
        let n = self.wakes.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.wakes.any.fetch_max(n, Ordering::SeqCst);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// [`notify`](Self::notify) after committing jobs of one kind only: a worker holding that
    /// kind back (at its limit) does not claim for it.
    pub fn notify_kind(&self, kind: &str) {
        {
            let mut kinds = self
                .wakes
                .kinds
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = self.wakes.seq.fetch_add(1, Ordering::SeqCst) + 1;
            match kinds.get_mut(kind) {
                Some(at) => *at = n,
                None => {
                    kinds.insert(kind.to_owned(), n);
                }
            }
        }
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// The number of the last wake-up: taken before a claim, it is what
    /// [`woken_for`](Self::woken_for) compares with.
    pub(crate) fn wake_mark(&self) -> u64 {
        self.wakes.seq.load(Ordering::SeqCst)
    }

    /// Whether a wake-up since `mark` may concern one of `kinds`.
    pub(crate) fn woken_for(&self, kinds: &[String], mark: u64) -> bool {
        if self.wakes.any.load(Ordering::SeqCst) > mark {
            return true;
        }
        let stamped = self
            .wakes
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kinds
            .iter()
            .any(|k| stamped.get(k).is_some_and(|at| *at > mark))
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    // ---------------------------------------------------------------- enqueue

    /// Enqueues `job` inside the caller's transaction: it exists only if `tx` commits. With a
    /// `dedupe_key` already held by a queued or running job of the same kind, returns that job's
    /// id and inserts nothing.
    pub async fn enqueue(&self, tx: &mut Tx, job: NewJob) -> Result<JobId> {
        let ids = self.enqueue_many(tx, vec![job]).await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| JobError::Corrupt("enqueue returned no id".to_owned()))
    }

    /// Enqueues `job` in a transaction of its own and wakes local workers.
    pub async fn enqueue_now(&self, job: NewJob) -> Result<JobId> {
        let mut tx = self.db.begin().await?;
        let id = self.enqueue(&mut tx, job).await?;
        tx.commit().await?;
        self.notify();
        Ok(id)
    }

    /// Enqueues many jobs in the caller's transaction with multi-row inserts. Returns the ids in
    /// the order of `jobs` (an existing job's id for a deduplicated one).
    pub async fn enqueue_many(&self, tx: &mut Tx, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        let now = self.clock.now().millis();
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(CHUNK) {
            let rows = self.checked_rows(chunk)?;
            let inserted: Vec<Uuid> = match tx {
                Tx::Sqlite(t, _) => {
                    // One JSON parameter: SQLite looks bound parameters up by name in a list,
                    // which makes thousands of placeholders quadratic.
                    let rows_json = Value::Array(
                        rows.iter()
                            .map(|(id, job, max_attempts)| {
                                serde_json::json!({
                                    "i": id.simple().to_string(),
                                    "o": job.org_id.map(|o| o.0.simple().to_string()),
                                    "k": job.kind,
                                    "p": job.payload,
                                    "r": job.priority,
                                    "t": job.run_at.map_or(now, Timestamp::millis),
                                    "m": max_attempts,
                                    "d": job.dedupe_key,
                                })
                            })
                            .collect(),
                    );
                    let n = sqlx::query(
                        "INSERT INTO jobs (id, org_id, kind, payload, priority, run_at, \
                         max_attempts, dedupe_key, state, attempts, lost_count, created_at, \
                         updated_at) \
                         SELECT unhex(value ->> '$.i'), unhex(value ->> '$.o'), value ->> '$.k', \
                         value -> '$.p', value ->> '$.r', value ->> '$.t', value ->> '$.m', \
                         value ->> '$.d', 'queued', 0, 0, $1, $1 FROM json_each($2) WHERE true \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(now)
                    .bind(rows_json.to_string())
                    .execute(&mut **t)
                    .await?
                    .rows_affected();
                    // sqlx hands every result row over from SQLite's thread one by one (a
                    // thread wake-up each): without a dedupe conflict the count is enough.
                    if usize::try_from(n).ok() == Some(rows.len()) {
                        rows.iter().map(|(id, _, _)| *id).collect()
                    } else {
                        let ids = Value::Array(
                            rows.iter()
                                .map(|(id, _, _)| Value::String(id.simple().to_string()))
                                .collect(),
                        );
                        let found: Option<String> = sqlx::query_scalar(
                            "SELECT json_group_array(hex(id)) FROM jobs \
                             WHERE id IN (SELECT unhex(value) FROM json_each($1))",
                        )
                        .bind(ids.to_string())
                        .fetch_one(&mut **t)
                        .await?;
                        sqlite_ids(found.as_deref())?
                    }
                }
                Tx::Postgres(t) => {
                    PgJobRows::of(&rows, now)
                        .bind(sqlx::query_scalar(PG_INSERT_JOBS))
                        .fetch_all(&mut **t)
                        .await?
                }
            };
            let inserted: HashSet<Uuid> = inserted.into_iter().collect();
            for (id, job, _) in &rows {
                if inserted.contains(id) {
                    out.push(JobId(*id));
                } else {
                    out.push(self.resolve_duplicate(tx, job, now).await?);
                }
            }
        }
        Ok(out)
    }

    /// Each job with a new id and its attempts, checked.
    fn checked_rows<'j>(&self, jobs: &'j [NewJob]) -> Result<Vec<(Uuid, &'j NewJob, i32)>> {
        jobs.iter()
            .map(|job| {
                if job.kind.trim().is_empty() {
                    return Err(JobError::Invalid("the job kind is empty".to_owned()));
                }
                let max_attempts = job
                    .max_attempts
                    .unwrap_or_else(|| self.policies.for_kind(&job.kind).max_attempts);
                if max_attempts == 0 {
                    return Err(JobError::Invalid(
                        "max_attempts must be at least 1".to_owned(),
                    ));
                }
                Ok((Uuid::now_v7(), job, to_i32(max_attempts)))
            })
            .collect()
    }

    /// PostgreSQL: enqueues `jobs` in one statement with the caller's own writes — one round
    /// trip and one commit, where a transaction would take four. `with` is that statement's
    /// `WITH` list (data-modifying statements, e.g. `"e AS (INSERT INTO … )"`), whose parameters
    /// are numbered from [`PG_WITH_FIRST_PARAM`] (the jobs take those before) and bound by
    /// `bind`, in order. The statement runs in a transaction of its own: all of it is durable
    /// when this returns, or none of it. Jobs enqueued this way cannot carry a `dedupe_key`
    /// (a duplicate could not be resolved in the same statement). Does not wake the workers:
    /// call [`Self::notify`] after. `db` is the pool, or a connection the caller keeps (its
    /// statement stays prepared and planned there).
    pub async fn enqueue_many_with_pg<'q, 'c>(
        &self,
        db: impl sqlx::PgExecutor<'c>,
        with: &'q str,
        bind: impl FnOnce(PgScalarQuery<'q>) -> PgScalarQuery<'q>,
        jobs: &'q [NewJob],
    ) -> Result<Vec<JobId>> {
        if jobs.iter().any(|j| j.dedupe_key.is_some()) {
            return Err(JobError::Invalid(
                "jobs enqueued with other writes in one statement cannot carry a dedupe key"
                    .to_owned(),
            ));
        }
        let rows = self.checked_rows(jobs)?;
        let now = self.clock.now().millis();
        let sql = format!("WITH {with} {PG_INSERT_JOBS}");
        let query = PgJobRows::of(&rows, now).bind(sqlx::query_scalar(AssertSqlSafe(sql)));
        let inserted: Vec<Uuid> = bind(query).fetch_all(db).await?;
        if inserted.len() != rows.len() {
            return Err(JobError::Corrupt(format!(
                "{} of {} jobs were inserted",
                inserted.len(),
                rows.len()
            )));
        }
        Ok(rows.iter().map(|(id, _, _)| JobId(*id)).collect())
    }

    /// A row of a multi-row insert was skipped: find the unfinished job holding its dedupe key
    /// (or insert it alone if that job finished in the meantime).
    async fn resolve_duplicate(&self, tx: &mut Tx, job: &NewJob, now: i64) -> Result<JobId> {
        let Some(key) = job.dedupe_key.as_deref() else {
            return Err(JobError::Corrupt(
                "a job without dedupe key conflicted".to_owned(),
            ));
        };
        for _ in 0..3 {
            let existing: Option<Uuid> = with_tx!(tx, |conn| {
                sqlx::query_scalar(
                    "SELECT id FROM jobs WHERE kind = $1 AND dedupe_key = $2 \
                     AND state IN ('queued', 'running')",
                )
                .bind(job.kind.as_str())
                .bind(key)
                .fetch_optional(conn)
                .await?
            });
            if let Some(id) = existing {
                return Ok(JobId(id));
            }
            let id = Uuid::now_v7();
            let max_attempts = to_i32(
                job.max_attempts
                    .unwrap_or_else(|| self.policies.for_kind(&job.kind).max_attempts),
            );
            let inserted: Option<Uuid> = with_tx!(tx, |conn| {
                sqlx::query_scalar(
                    "INSERT INTO jobs (id, org_id, kind, payload, priority, run_at, max_attempts, \
                     dedupe_key, state, attempts, lost_count, created_at, updated_at) \
                     VALUES ($2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, 0, $1, $1) \
                     ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(now)
                .bind(id)
                .bind(job.org_id.map(|o| o.0))
                .bind(job.kind.as_str())
                .bind(Json(&job.payload))
                .bind(job.priority)
                .bind(job.run_at.map_or(now, Timestamp::millis))
                .bind(max_attempts)
                .bind(key)
                .fetch_optional(conn)
                .await?
            });
            if let Some(id) = inserted {
                return Ok(JobId(id));
            }
        }
        Err(JobError::Corrupt(format!(
            "could not enqueue or find the job with dedupe key {key:?}"
        )))
    }

    // ---------------------------------------------------------------- inspect

    pub async fn get(&self, id: JobId) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<JobRow> = with_db!(&self.db, |pool| {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(id.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(Job::try_from).transpose()
    }

    /// Every try of a job, oldest first.
    pub async fn attempts(&self, id: JobId) -> Result<Vec<JobAttempt>> {
        let rows: Vec<AttemptRow> = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT job_id, attempt, worker_id, started_at, finished_at, outcome, error, \
                 latency_ms FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
            )
            .bind(id.0)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(JobAttempt {
                    job_id: JobId(r.job_id),
                    attempt: to_u32(r.attempt),
                    worker_id: r.worker_id,
                    started_at: Timestamp(r.started_at),
                    finished_at: Timestamp(r.finished_at),
                    outcome: AttemptOutcome::parse(&r.outcome).ok_or_else(|| {
                        JobError::Corrupt(format!("unknown attempt outcome {:?}", r.outcome))
                    })?,
                    error: r.error,
                    latency: Duration::from_millis(u64::try_from(r.latency_ms).unwrap_or(0)),
                })
            })
            .collect()
    }

    /// Cancels a queued job. False when it is not queued (running jobs finish their try).
    pub async fn cancel(&self, id: JobId) -> Result<bool> {
        let now = self.clock.now().millis();
        let done = with_write!(&self.db, |pool| {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', finished_at = $1, updated_at = $1 \
                 WHERE id = $2 AND state = 'queued'",
            )
            .bind(now)
            .bind(id.0)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Per kind: queued, running and dead counts and the age of the oldest due job. Kinds with
    /// none of those are omitted. Sorted by kind.
    pub async fn stats(&self) -> Result<Vec<KindStats>> {
        let now = self.clock.now().millis();
        let rows: Vec<StatRow> = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT kind, 'queued' AS state, COUNT(*) AS n, \
                        MIN(CASE WHEN run_at <= $1 THEN run_at END) AS oldest \
                   FROM jobs WHERE state = 'queued' GROUP BY kind \
                 UNION ALL \
                 SELECT kind, 'running' AS state, COUNT(*) AS n, NULL AS oldest \
                   FROM jobs WHERE state = 'running' GROUP BY kind \
                 UNION ALL \
                 SELECT kind, 'dead' AS state, COUNT(*) AS n, NULL AS oldest \
                   FROM jobs WHERE state = 'dead' GROUP BY kind",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        let mut by_kind: HashMap<String, KindStats> = HashMap::new();
        for r in rows {
            let s = by_kind.entry(r.kind.clone()).or_insert_with(|| KindStats {
                kind: r.kind.clone(),
                ..KindStats::default()
            });
            let n = u64::try_from(r.n).unwrap_or(0);
            match r.state.as_str() {
                "queued" => {
                    s.queued = n;
                    if let Some(oldest) = r.oldest {
                        s.oldest_queued_age =
                            Duration::from_millis(u64::try_from(now - oldest).unwrap_or(0));
                    }
                }
                "running" => s.running = n,
                _ => s.dead = n,
            }
        }
        let mut out: Vec<KindStats> = by_kind.into_values().collect();
        out.sort_by(|a, b| a.kind.cmp(&b.kind));
        Ok(out)
    }

    /// Refreshes the queue gauges from [`stats`](Self::stats); kinds that disappeared read 0.
    pub async fn sample_metrics(&self) -> Result<Vec<KindStats>> {
        let stats = self.stats().await?;
        let mut known = self
            .gauge_kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current: BTreeSet<String> = stats.iter().map(|s| s.kind.clone()).collect();
        for gone in known.difference(&current) {
            for state in ["queued", "running", "dead"] {
                metrics::gauge!("wamage_jobs_queue_depth", "kind" => gone.clone(), "state" => state)
                    .set(0.0);
            }
            metrics::gauge!("wamage_jobs_oldest_queued_age_seconds", "kind" => gone.clone())
                .set(0.0);
        }
        #[allow(clippy::cast_precision_loss)]
        for s in &stats {
            for (state, n) in [
                ("queued", s.queued),
                ("running", s.running),
                ("dead", s.dead),
            ] {
                metrics::gauge!("wamage_jobs_queue_depth", "kind" => s.kind.clone(), "state" => state)
                    .set(n as f64);
            }
            metrics::gauge!("wamage_jobs_oldest_queued_age_seconds", "kind" => s.kind.clone())
                .set(s.oldest_queued_age.as_secs_f64());
        }
        *known = current;
        Ok(stats)
    }

    /// Deletes succeeded and cancelled jobs (and their attempts) finished more than
    /// `older_than` ago. Dead jobs stay until handled.
    pub async fn purge_finished(&self, older_than: Duration) -> Result<u64> {
        let cutoff = self.clock.now().minus(older_than).millis();
        let mut tx = self.db.begin().await?;
        // `job_attempts` has no foreign key to `jobs` (a per-row check on the hot completion
        // path), so its rows go explicitly, in the same transaction.
        with_tx!(&mut tx, |conn| {
            sqlx::query(
                "DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs \
                 WHERE state IN ('succeeded', 'cancelled') AND finished_at < $1)",
            )
            .bind(cutoff)
            .execute(conn)
            .await?;
        });
        let n = with_tx!(&mut tx, |conn| {
            sqlx::query(
                "DELETE FROM jobs WHERE state IN ('succeeded', 'cancelled') AND finished_at < $1",
            )
            .bind(cutoff)
            .execute(conn)
            .await?
            .rows_affected()
        });
        tx.commit().await?;
        Ok(n)
    }

    // ---------------------------------------------------------------- claim

    /// Claims up to `limit` due jobs of the given kinds for `worker_id`, holding each for
    /// `lease` (extend it with [`heartbeat`](Self::heartbeat)). Workers call this; it is public
    /// for custom workers and tests.
    pub async fn claim(
        &self,
        worker_id: &str,
        kinds: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<JobContext>> {
        self.claim_due(
            worker_id,
            kinds,
            limit,
            lease,
            self.clock.now(),
            Reach::Head,
        )
        .await
    }

    /// [`claim`](Self::claim) for a worker that holds some of its kinds back (a kind at its
    /// limit): the due jobs of `kinds` are looked up kind by kind, so a backlog of the kinds
    /// held back is not walked on every claim. On PostgreSQL that is one probe of
    /// `jobs_claim_kind` per kind; SQLite claims as [`claim`](Self::claim) does.
    pub async fn claim_among(
        &self,
        worker_id: &str,
        kinds: &[String],
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<JobContext>> {
        self.claim_due(
            worker_id,
            kinds,
            limit,
            lease,
            self.clock.now(),
            Reach::PerKind,
        )
        .await
    }

    /// [`claim`](Self::claim) of jobs due at `due_by`.
    pub(crate) async fn claim_due(
        &self,
        worker_id: &str,
        kinds: &[String],
        limit: usize,
        lease: Duration,
        due_by: Timestamp,
        reach: Reach,
    ) -> Result<Vec<JobContext>> {
        if kinds.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now().millis();
        let locked_until = now.saturating_add(millis(lease));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<ClaimRow> = match &self.db {
            Db::Postgres(pool) => {
                // A claim lost in a crash only means the job runs again (at least once anyway).
                let mut t = pool.begin().await?;
                // The plan must be the ordered walk of `jobs_claim` that stops after `limit`
                // rows (or, kind by kind, of `jobs_claim_kind`). Queue tables churn faster than
                // statistics follow: with stale ones the planner picked a bitmap scan plus a
                // sort of *every* queued row, which made each claim O(queue length), and a
                // sequential scan of the whole table (finished jobs included) to find the
                // claimed ids. Sorts, bitmap and sequential scans are ruled out for this
                // transaction only; so is JIT compilation, which the cost of a ruled-out sort
                // (the per-kind claim's final one has no alternative) would start: ~200 ms.
                sqlx::query(
                    "SELECT set_config('synchronous_commit', 'off', true), \
                     set_config('enable_sort', 'off', true), \
                     set_config('enable_bitmapscan', 'off', true), \
                     set_config('enable_seqscan', 'off', true), \
                     set_config('jit', 'off', true)",
                )
                .execute(&mut *t)
                .await?;
                let sql = match reach {
                    Reach::Head => CLAIM_HEAD_PG.as_str(),
                    Reach::PerKind => CLAIM_PER_KIND_PG.as_str(),
                };
                let rows = sqlx::query_as(AssertSqlSafe(sql))
                    .bind(worker_id)
                    .bind(locked_until)
                    .bind(now)
                    .bind(due_by.millis())
                    .bind(kinds)
                    .bind(limit)
                    .fetch_all(&mut *t)
                    .await?;
                t.commit().await?;
                rows
            }
            Db::Sqlite(pool) => {
                // Select then update under the write lock (`BEGIN IMMEDIATE`) instead of
                // `UPDATE … RETURNING`: the claimed rows come back as one JSON result row,
                // where sqlx would hand `RETURNING` rows over from SQLite's thread one by one
                // (a thread wake-up per job).
                let kinds_json = serde_json::to_string(kinds)
                    .map_err(|e| JobError::Invalid(format!("job kinds: {e}")))?;
                // Claims take SQLite's lock outside this process's turns (`Db::begin`), so one
                // that finds the lock held backs off in SQLite's busy handler, behind the
                // webhook intake and the handlers' writes. Measured on the inbound benchmark:
                // claims in the turns' line, or claims that first look for due jobs without
                // the lock, start ingest runs sooner with fewer jobs each, and the intake fell
                // from ~11,000 to ~8,000 webhooks/s.
                let mut t = pool.begin_with("BEGIN IMMEDIATE").await?;
                let picked: Option<String> = sqlx::query_scalar(
                    "SELECT json_group_array(json_array(hex(id), \
                     iif(org_id IS NULL, NULL, hex(org_id)), kind, json(payload), attempts, max_attempts, run_at, created_at)) \
                     FROM (SELECT id, org_id, kind, payload, attempts, max_attempts, run_at, \
                     created_at FROM jobs WHERE state = 'queued' AND run_at <= $1 \
                     AND kind IN (SELECT value FROM json_each($2)) \
                     ORDER BY priority DESC, run_at LIMIT $3)",
                )
                .bind(due_by.millis())
                .bind(kinds_json)
                .bind(limit)
                .fetch_one(&mut *t)
                .await?;
                let picked: Vec<SqliteClaimRow> =
                    serde_json::from_str(picked.as_deref().unwrap_or("[]"))
                        .map_err(|e| JobError::Corrupt(format!("claimed jobs: {e}")))?;
                if picked.is_empty() {
                    t.rollback().await?;
                    return Ok(Vec::new());
                }
                let ids = Value::Array(picked.iter().map(|r| Value::String(r.0.clone())).collect());
                sqlx::query(
                    "UPDATE jobs SET state = 'running', locked_by = $1, locked_until = $2, \
                     started_at = $3, updated_at = $3, attempts = attempts + 1 \
                     WHERE id IN (SELECT unhex(value) FROM json_each($4))",
                )
                .bind(worker_id)
                .bind(locked_until)
                .bind(now)
                .bind(ids.to_string())
                .execute(&mut *t)
                .await?;
                t.commit().await?;
                picked
                    .into_iter()
                    .map(|r| {
                        let parse = |h: &str| {
                            Uuid::try_parse(h)
                                .map_err(|e| JobError::Corrupt(format!("job id {h:?}: {e}")))
                        };
                        Ok(ClaimRow {
                            id: parse(&r.0)?,
                            org_id: r.1.as_deref().map(parse).transpose()?,
                            kind: r.2,
                            payload: Json(r.3),
                            attempts: r.4.saturating_add(1),
                            max_attempts: r.5,
                            run_at: r.6,
                            created_at: r.7,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        Ok(rows
            .into_iter()
            .map(|r| JobContext {
                id: JobId(r.id),
                kind: r.kind,
                org_id: r.org_id.map(OrgId),
                payload: r.payload.0,
                attempt: to_u32(r.attempts),
                max_attempts: to_u32(r.max_attempts),
                run_at: Timestamp(r.run_at),
                created_at: Timestamp(r.created_at),
                worker_id: worker_id.to_owned(),
            })
            .collect())
    }

    /// Extends the lease of the given running jobs held by `worker_id` to `now + lease`.
    /// Returns how many leases were extended.
    pub async fn heartbeat(&self, worker_id: &str, jobs: &[JobId], lease: Duration) -> Result<u64> {
        let until = self.clock.now().plus(lease).millis();
        let mut n = 0;
        for chunk in jobs.chunks(CHUNK) {
            let sql = format!(
                "UPDATE jobs SET locked_until = $1 WHERE state = 'running' AND locked_by = $2 \
                 AND id IN ({})",
                (0..chunk.len())
                    .map(|i| format!("${}", i + 3))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            n += with_write!(&self.db, |pool| {
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(until).bind(worker_id);
                for id in chunk {
                    q = q.bind(id.0);
                }
                q.execute(pool).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(n)
    }

    /// Gives claimed jobs that never started back to the queue (the claim did not count as a
    /// try). Returns how many were released.
    pub(crate) async fn release(&self, worker_id: &str, jobs: &[(JobId, u32)]) -> Result<u64> {
        let now = self.clock.now().millis();
        let mut n = 0;
        for chunk in jobs.chunks(CHUNK) {
            let sql = format!(
                "UPDATE jobs SET state = 'queued', locked_by = NULL, locked_until = NULL, \
                 attempts = attempts - 1, updated_at = $1 \
                 WHERE state = 'running' AND locked_by = $2 AND {}",
                fence(chunk.len(), 3)
            );
            n += with_write!(&self.db, |pool| {
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(now).bind(worker_id);
                for (id, attempt) in chunk {
                    q = q.bind(id.0).bind(to_i32(*attempt));
                }
                q.execute(pool).await.map(|r| r.rows_affected())
            })?;
        }
        Ok(n)
    }

    // ---------------------------------------------------------------- complete

    fn resolve<'a>(&self, f: &'a Finished, now: Timestamp) -> Resolution<'a> {
        let exhausted = f.job.attempt >= f.job.max_attempts;
        match &f.result {
            TryResult::Ran(JobOutcome::Done) => Resolution {
                f,
                outcome: AttemptOutcome::Succeeded,
                error: None,
                next: Next::Succeeded,
            },
            TryResult::Ran(JobOutcome::Retry { error, retry_after }) => {
                if exhausted {
                    Resolution {
                        f,
                        outcome: AttemptOutcome::Dead,
                        error: Some(truncate_error(error)),
                        next: Next::Dead,
                    }
                } else {
                    let delay = self
                        .policies
                        .for_kind(&f.job.kind)
                        .delay(f.job.attempt, *retry_after)
                        // A retry is always in the future, even with a zero delay.
                        .max(Duration::from_millis(1));
                    Resolution {
                        f,
                        outcome: AttemptOutcome::Retry,
                        error: Some(truncate_error(error)),
                        next: Next::Requeue(now.max(f.finished_at).plus(delay)),
                    }
                }
            }
            TryResult::Ran(JobOutcome::Fail { error }) => Resolution {
                f,
                outcome: AttemptOutcome::Failed,
                error: Some(truncate_error(error)),
                next: Next::Dead,
            },
            TryResult::Lost(error) => Resolution {
                f,
                outcome: AttemptOutcome::Lost,
                error: Some(truncate_error(error)),
                next: if exhausted {
                    Next::Dead
                } else {
                    Next::Requeue(now)
                },
            },
        }
    }

    /// Writes the outcomes of finished tries in one transaction: successes with one statement
    /// per chunk, retries and dead letters one by one, and an attempt row for each. Writes are
    /// fenced on the claim (`locked_by`, `attempts`, `running`): a try whose lease was reaped in
    /// the meantime is not applied. Returns how many were applied.
    pub(crate) async fn complete(&self, worker_id: &str, finished: &[Finished]) -> Result<usize> {
        if finished.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now();
        let resolutions: Vec<Resolution<'_>> =
            finished.iter().map(|f| self.resolve(f, now)).collect();
        let mut applied: Vec<&Resolution<'_>> = Vec::with_capacity(resolutions.len());
        let mut tx = self.db.begin().await?;

        let succeeded: Vec<&Resolution<'_>> = resolutions
            .iter()
            .filter(|r| matches!(r.next, Next::Succeeded))
            .collect();
        for chunk in succeeded.chunks(CHUNK) {
            let ids: Vec<Uuid> = match &mut tx {
                Tx::Sqlite(t, _) => {
                    let fence = Value::Array(
                        chunk
                            .iter()
                            .map(|r| {
                                serde_json::json!([
                                    r.f.job.id.0.simple().to_string(),
                                    r.f.job.attempt
                                ])
                            })
                            .collect(),
                    );
                    // The fenced rows as one result row (not `RETURNING`, which sqlx hands over
                    // row by row from SQLite's thread); the write lock, taken by `BEGIN
                    // IMMEDIATE`, keeps them so until the update below.
                    let valid: Option<String> = sqlx::query_scalar(
                        "SELECT json_group_array(hex(id)) FROM jobs \
                         WHERE id IN (SELECT unhex(value ->> 0) FROM json_each($2)) \
                         AND state = 'running' AND locked_by = $1 AND (id, attempts) IN \
                         (SELECT unhex(value ->> 0), value ->> 1 FROM json_each($2))",
                    )
                    .bind(worker_id)
                    .bind(fence.to_string())
                    .fetch_one(&mut **t)
                    .await?;
                    let ids = sqlite_ids(valid.as_deref())?;
                    if !ids.is_empty() {
                        sqlx::query(
                            "UPDATE jobs SET state = 'succeeded', locked_by = NULL, \
                             locked_until = NULL, finished_at = $1, updated_at = $1 \
                             WHERE id IN (SELECT unhex(value) FROM json_each($2))",
                        )
                        .bind(now.millis())
                        .bind(valid.as_deref())
                        .execute(&mut **t)
                        .await?;
                    }
                    ids
                }
                Tx::Postgres(t) => {
                    // Outcomes are re-derivable (a lost completion is reaped and re-run), so
                    // they need not wait for a WAL flush.
                    sqlx::query("SET LOCAL synchronous_commit = off")
                        .execute(&mut **t)
                        .await?;
                    // One statement per chunk, arrays as parameters: the fenced update and
                    // the attempt rows of the tries it applied.
                    let mut ids = Vec::with_capacity(chunk.len());
                    let mut attempts = Vec::with_capacity(chunk.len());
                    let mut started = Vec::with_capacity(chunk.len());
                    let mut ended = Vec::with_capacity(chunk.len());
                    let mut latencies = Vec::with_capacity(chunk.len());
                    for r in chunk {
                        ids.push(r.f.job.id.0);
                        attempts.push(to_i32(r.f.job.attempt));
                        started.push(r.f.started_at.millis());
                        ended.push(r.f.finished_at.millis());
                        latencies.push(millis(r.f.latency));
                    }
                    sqlx::query_scalar(
                        "WITH f AS (SELECT * FROM UNNEST($3::uuid[], $4::int4[], $5::int8[], \
                         $6::int8[], $7::int8[]) AS f (id, attempt, started_at, finished_at, \
                         latency_ms)), \
                         done AS (UPDATE jobs j SET state = 'succeeded', locked_by = NULL, \
                         locked_until = NULL, finished_at = $1, updated_at = $1 FROM f \
                         WHERE j.id = f.id AND j.attempts = f.attempt AND j.state = 'running' \
                         AND j.locked_by = $2 RETURNING j.id), \
                         ins AS (INSERT INTO job_attempts (job_id, attempt, worker_id, \
                         started_at, finished_at, outcome, error, latency_ms) \
                         SELECT f.id, f.attempt, $2, f.started_at, f.finished_at, 'succeeded', \
                         NULL, f.latency_ms FROM f JOIN done ON done.id = f.id \
                         ON CONFLICT DO NOTHING) \
                         SELECT id FROM done",
                    )
                    .bind(now.millis())
                    .bind(worker_id)
                    .bind(ids)
                    .bind(attempts)
                    .bind(started)
                    .bind(ended)
                    .bind(latencies)
                    .fetch_all(&mut **t)
                    .await?
                }
            };
            if ids.len() == chunk.len() {
                applied.extend(chunk.iter().copied());
            } else {
                let ids: HashSet<Uuid> = ids.into_iter().collect();
                applied.extend(
                    chunk
                        .iter()
                        .copied()
                        .filter(|r| ids.contains(&r.f.job.id.0)),
                );
            }
        }

        for r in resolutions
            .iter()
            .filter(|r| !matches!(r.next, Next::Succeeded))
        {
            let n = match r.next {
                Next::Requeue(run_at) => with_tx!(&mut tx, |conn| {
                    sqlx::query(
                        "UPDATE jobs SET state = 'queued', run_at = $1, locked_by = NULL, \
                         locked_until = NULL, last_error = $2, updated_at = $3 \
                         WHERE id = $4 AND attempts = $5 AND locked_by = $6 AND state = 'running'",
                    )
                    .bind(run_at.millis())
                    .bind(r.error.as_deref())
                    .bind(now.millis())
                    .bind(r.f.job.id.0)
                    .bind(to_i32(r.f.job.attempt))
                    .bind(worker_id)
                    .execute(conn)
                    .await?
                    .rows_affected()
                }),
                _ => with_tx!(&mut tx, |conn| {
                    sqlx::query(
                        "UPDATE jobs SET state = 'dead', locked_by = NULL, locked_until = NULL, \
                         last_error = $1, finished_at = $2, updated_at = $2 \
                         WHERE id = $3 AND attempts = $4 AND locked_by = $5 AND state = 'running'",
                    )
                    .bind(r.error.as_deref())
                    .bind(now.millis())
                    .bind(r.f.job.id.0)
                    .bind(to_i32(r.f.job.attempt))
                    .bind(worker_id)
                    .execute(conn)
                    .await?
                    .rows_affected()
                }),
            };
            if n == 1 {
                applied.push(r);
            } else {
                tracing::warn!(
                    job.id = %r.f.job.id,
                    job.kind = %r.f.job.kind,
                    attempt = r.f.job.attempt,
                    "job outcome discarded: the claim was lost (lease expired)"
                );
            }
        }

        // On PostgreSQL the success statement already wrote its attempt rows.
        let pg = matches!(tx, Tx::Postgres(_));
        let unrecorded: Vec<&Resolution<'_>> = applied
            .iter()
            .copied()
            .filter(|r| !(pg && matches!(r.next, Next::Succeeded)))
            .collect();
        for chunk in unrecorded.chunks(CHUNK) {
            match &mut tx {
                Tx::Sqlite(t, _) => {
                    let rows = Value::Array(
                        chunk
                            .iter()
                            .map(|r| {
                                serde_json::json!([
                                    r.f.job.id.0.simple().to_string(),
                                    r.f.job.attempt,
                                    r.f.started_at.millis(),
                                    r.f.finished_at.millis(),
                                    r.outcome.as_str(),
                                    r.error,
                                    millis(r.f.latency),
                                ])
                            })
                            .collect(),
                    );
                    sqlx::query(
                        "INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, \
                         finished_at, outcome, error, latency_ms) \
                         SELECT unhex(value ->> 0), value ->> 1, $1, value ->> 2, value ->> 3, \
                         value ->> 4, value ->> 5, value ->> 6 FROM json_each($2) WHERE true \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(worker_id)
                    .bind(rows.to_string())
                    .execute(&mut **t)
                    .await?;
                }
                Tx::Postgres(t) => {
                    sqlx::query(
                        "INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, \
                         finished_at, outcome, error, latency_ms) \
                         SELECT job_id, attempt, $1, started_at, finished_at, outcome, error, \
                         latency_ms FROM UNNEST($2::uuid[], $3::int4[], $4::int8[], $5::int8[], \
                         $6::text[], $7::text[], $8::int8[]) AS r (job_id, attempt, started_at, \
                         finished_at, outcome, error, latency_ms) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(worker_id)
                    .bind(chunk.iter().map(|r| r.f.job.id.0).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|r| to_i32(r.f.job.attempt))
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        chunk
                            .iter()
                            .map(|r| r.f.started_at.millis())
                            .collect::<Vec<_>>(),
                    )
                    .bind(
                        chunk
                            .iter()
                            .map(|r| r.f.finished_at.millis())
                            .collect::<Vec<_>>(),
                    )
                    .bind(chunk.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
                    .bind(
                        chunk
                            .iter()
                            .map(|r| millis(r.f.latency))
                            .collect::<Vec<_>>(),
                    )
                    .execute(&mut **t)
                    .await?;
                }
            }
        }
        tx.commit().await?;

        for r in &applied {
            let kind = r.f.job.kind.clone();
            metrics::counter!("wamage_jobs_attempts_total", "kind" => kind.clone(), "outcome" => r.outcome.as_str())
                .increment(1);
            metrics::histogram!("wamage_jobs_duration_seconds", "kind" => kind.clone())
                .record(r.f.latency.as_secs_f64());
            if r.outcome != AttemptOutcome::Succeeded {
                metrics::counter!("wamage_jobs_failures_total", "kind" => kind).increment(1);
            }
            if matches!(r.next, Next::Dead) {
                tracing::warn!(
                    job.id = %r.f.job.id,
                    job.kind = %r.f.job.kind,
                    attempt = r.f.job.attempt,
                    error = r.error.as_deref().unwrap_or_default(),
                    "job is dead"
                );
            }
        }
        Ok(applied.len())
    }

    // ---------------------------------------------------------------- reaper

    /// Requeues running jobs whose lease expired (their worker died), recording a `lost` attempt
    /// each; a job that used its attempts or its restart limit goes to `dead` instead. Returns
    /// how many jobs were reaped.
    pub async fn reap_expired(&self) -> Result<usize> {
        self.reap(false).await
    }

    /// Reaps every running job at once, whatever its lease: for a process that knows it is
    /// the only one on its database (the embedded SQLite install holds a lock on its file),
    /// jobs still `running` at start were left by a predecessor that stopped. They run again
    /// now instead of when their lease would have run out (up to a minute of nothing).
    pub async fn reap_orphaned(&self) -> Result<usize> {
        self.reap(true).await
    }

    async fn reap(&self, all: bool) -> Result<usize> {
        let mut total = 0;
        loop {
            let n = self.reap_batch(all).await?;
            total += n;
            if i64::try_from(n).unwrap_or(i64::MAX) < REAP_BATCH {
                return Ok(total);
            }
        }
    }

    async fn reap_batch(&self, all: bool) -> Result<usize> {
        let now = self.clock.now().millis();
        let cutoff = if all { i64::MAX } else { now };
        let mut tx = self.db.begin().await?;
        let expired: Vec<ExpiredRow> =
            match &mut tx {
                Tx::Postgres(t) => sqlx::query_as(
                    "SELECT id, kind, attempts, max_attempts, lost_count, locked_by, started_at \
                     FROM jobs WHERE state = 'running' AND locked_until < $1 \
                     ORDER BY locked_until LIMIT $2 FOR UPDATE SKIP LOCKED",
                )
                .bind(cutoff)
                .bind(REAP_BATCH)
                .fetch_all(&mut **t)
                .await?,
                Tx::Sqlite(t, _) => sqlx::query_as(
                    "SELECT id, kind, attempts, max_attempts, lost_count, locked_by, started_at \
                     FROM jobs WHERE state = 'running' AND locked_until < $1 \
                     ORDER BY locked_until LIMIT $2",
                )
                .bind(cutoff)
                .bind(REAP_BATCH)
                .fetch_all(&mut **t)
                .await?,
            };
        let mut reaped = 0;
        for row in &expired {
            let worker = row
                .locked_by
                .clone()
                .unwrap_or_else(|| "unknown".to_owned());
            let dead =
                row.attempts >= row.max_attempts || to_u32(row.lost_count) >= self.restart_limit;
            let error = if all {
                format!("worker {worker} stopped with the process before it (found at start)")
            } else {
                format!("lease expired: worker {worker} stopped heartbeating")
            };
            let state = if dead { "dead" } else { "queued" };
            let n = with_tx!(&mut tx, |conn| {
                sqlx::query(
                    "UPDATE jobs SET state = $1, lost_count = lost_count + 1, last_error = $2, \
                     run_at = $3, updated_at = $3, locked_by = NULL, locked_until = NULL, \
                     finished_at = CASE WHEN $1 = 'dead' THEN $3 ELSE NULL END \
                     WHERE id = $4 AND attempts = $5 AND state = 'running' AND locked_until < $6",
                )
                .bind(state)
                .bind(error.as_str())
                .bind(now)
                .bind(row.id)
                .bind(row.attempts)
                .bind(cutoff)
                .execute(conn)
                .await?
                .rows_affected()
            });
            if n != 1 {
                continue;
            }
            let started = row.started_at.unwrap_or(now);
            with_tx!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, \
                     finished_at, outcome, error, latency_ms) \
                     VALUES ($1, $2, $3, $4, $5, 'lost', $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(row.id)
                .bind(row.attempts)
                .bind(worker.as_str())
                .bind(started)
                .bind(now)
                .bind(error.as_str())
                .bind((now - started).max(0))
                .execute(conn)
                .await?;
            });
            metrics::counter!("wamage_jobs_attempts_total", "kind" => row.kind.clone(), "outcome" => "lost")
                .increment(1);
            metrics::counter!("wamage_jobs_failures_total", "kind" => row.kind.clone())
                .increment(1);
            tracing::warn!(
                job.id = %row.id,
                job.kind = %row.kind,
                attempt = row.attempts,
                worker = %worker,
                dead,
                "job lease expired, reaped"
            );
            reaped += 1;
        }
        tx.commit().await?;
        Ok(reaped)
    }
}

#[cfg(test)]
mod tests {
    use super::tuples;

    #[test]
    fn tuples_number_placeholders_in_order() {
        assert_eq!(tuples(2, 2, 3), "($3, $4), ($5, $6)");
        assert_eq!(tuples(1, 3, 1), "($1, $2, $3)");
    }
}
