//! The webhook intake: verified webhooks are stored in batches (group commit) and answered once
//! durable; their processing is queued as `channels.ingest` jobs.
//!
//! - **SQLite** (one writer): a batch is one autocommit multi-row `INSERT`, ahead of ordinary
//!   writers at the write lock — one round trip to the connection's thread while the senders
//!   wait. Its events are stored `received`; a dispatcher task queues their ingest jobs and
//!   marks them `pending` in its own transaction, for the webhooks of up to
//!   [`DISPATCH_EVERY`] at a time during a burst. Events left `received` (a crash between the
//!   two, a failed dispatch) are found by a sweep at start-up and every [`SWEEP_EVERY`].
//! - **PostgreSQL**: a batch's events and jobs in one statement (committed on its own: one
//!   round trip).
//!
//! On both, one batch is stored at a time ([`INTAKE_PARALLEL`]): the next is formed when the
//! last one is stored, and takes every webhook that arrived meanwhile.
//!
//! A burst — batches of [`BURST_MIN`] webhooks or more, formed while the last one was written —
//! is what [`Channels::yield_to_burst`] lets processing wait for.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use serde_json::json;
use wamage_kernel::{OrgId, Problem, Timestamp};
use wamage_platform::{Backend, Db, jobs::NewJob};

use super::{Channels, INGEST_JOB, db_err};
use crate::{model::ChannelId, model::EventId, store};

/// A webhook waiting for the batcher to store it.
pub(super) struct Pending {
    pub org: OrgId,
    pub channel: ChannelId,
    /// The raw body as received (shared with the request's buffer, not copied).
    pub body: Bytes,
    pub reply: tokio::sync::oneshot::Sender<Result<EventId, Problem>>,
    /// When it was handed to the batcher.
    pub queued: Instant,
}

/// PostgreSQL: the connection the intake keeps between batches. Its statement is prepared
/// and planned once there, and no batch waits for the pool (nor for the check the pool makes
/// of every connection it hands out). Taking a pool connection per batch instead walks the
/// pool's connections in turn, each preparing and planning the statement anew: a slow start
/// to every burst on a fresh or recycled pool.
pub(super) struct HeldConn {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    taken: Instant,
    used: Instant,
}

/// A kept connection idle this long is checked (a ping) before its next batch.
const HELD_CHECK_AFTER: Duration = Duration::from_secs(1);
/// A kept connection goes back to the pool after this long, like the pool's own connections
/// (which it closes after 30 minutes), and the next batch takes another.
const HELD_AT_MOST: Duration = Duration::from_secs(15 * 60);

impl HeldConn {
    /// The kept connection, checked if it was idle, or a new one from the pool.
    async fn ready<'h>(
        held: &'h mut Option<HeldConn>,
        pool: &sqlx::PgPool,
    ) -> Result<&'h mut HeldConn, sqlx::Error> {
        use sqlx::Connection as _;
        if let Some(h) = held.as_mut() {
            let fresh = h.taken.elapsed() < HELD_AT_MOST;
            if !fresh || (h.used.elapsed() >= HELD_CHECK_AFTER && h.conn.ping().await.is_err()) {
                *held = None;
            }
        }
        let h = match held.take() {
            Some(h) => h,
            None => {
                let now = Instant::now();
                HeldConn {
                    conn: pool.acquire().await?,
                    taken: now,
                    used: now,
                }
            }
        };
        Ok(held.insert(h))
    }
}

/// Webhooks stored together at most (one multi-row insert).
const INTAKE_BATCH: usize = store::EVENTS_PER_STATEMENT;
/// Events processed by one ingest job at most (webhooks stored together are processed
/// together: one job claim, one read of the events, one write of their outcomes).
const INGEST_CHUNK: usize = 64;
/// Batches being stored at once. SQLite has one writer anyway. PostgreSQL could overlap them,
/// but fewer, larger statements cost both sides less CPU per webhook and commit as fast:
/// measured on the inbound benchmark (2 cores shared with PostgreSQL and the load), 4 at once
/// made ~4 webhooks per statement and 9.3–11.9k webhooks/s, 2 made 9.1–12.4k/s and 1
/// 10.9–12.8k/s, with ~8 % less server CPU than 2 and its processing done sooner.
const INTAKE_PARALLEL: usize = 1;
/// Webhooks waiting for the batcher before senders wait too.
pub(super) const INTAKE_QUEUE: usize = 4096;
/// A batch of at least this many webhooks means they arrive faster than they are stored.
const BURST_MIN: usize = 4;
/// An intake with no such batch for this long is not in a burst.
const BURST_QUIET: Duration = Duration::from_millis(20);
/// During a burst, the SQLite dispatcher queues the jobs of this long's webhooks at a time.
const DISPATCH_EVERY: Duration = Duration::from_millis(50);
/// How often the dispatcher looks for events stored without a job.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// How old such an event is before the sweep queues it (younger ones are on their way).
const SWEEP_AFTER: Duration = Duration::from_secs(5);
/// Events the sweep queues at a time.
const SWEEP_MOST: i64 = 2000;

/// When the intake last stored a batch of a burst, and how far the SQLite dispatcher is.
#[derive(Debug)]
pub(super) struct Pulse {
    start: tokio::time::Instant,
    /// Microseconds after `start`; 0: never.
    last: AtomicU64,
    /// Batches handed to the dispatcher, and those it has dealt with.
    handed: AtomicU64,
    dispatched: AtomicU64,
    dispatch_done: tokio::sync::Notify,
}

impl Default for Pulse {
    fn default() -> Self {
        Self {
            start: tokio::time::Instant::now(),
            last: AtomicU64::new(0),
            handed: AtomicU64::new(0),
            dispatched: AtomicU64::new(0),
            dispatch_done: tokio::sync::Notify::new(),
        }
    }
}

impl Pulse {
    fn beat(&self) {
        let us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last.store(us.max(1), Ordering::Relaxed);
    }

    /// Waits until no burst batch was formed or stored for [`BURST_QUIET`], `most` at the
    /// longest; how long it waited.
    async fn quiet(&self, most: Duration) -> Duration {
        let start = tokio::time::Instant::now();
        while let Some(since) = self.since() {
            let left = most.saturating_sub(start.elapsed());
            if since >= BURST_QUIET || left.is_zero() {
                break;
            }
            tokio::time::sleep((BURST_QUIET - since).min(left)).await;
        }
        start.elapsed()
    }

    /// How long ago a burst batch was last formed or stored (`None`: never).
    fn since(&self) -> Option<Duration> {
        let last = self.last.load(Ordering::Relaxed);
        (last > 0).then(|| {
            self.start
                .elapsed()
                .saturating_sub(Duration::from_micros(last))
        })
    }
}

/// The ingest jobs of these events: per organisation, up to [`INGEST_CHUNK`] events each, in
/// arrival order.
fn ingest_jobs(events: &[(OrgId, EventId)]) -> Vec<NewJob> {
    let mut by_org: Vec<(OrgId, Vec<EventId>)> = Vec::new();
    for (org, id) in events {
        match by_org.iter_mut().find(|(o, _)| o == org) {
            Some((_, ids)) => ids.push(*id),
            None => by_org.push((*org, vec![*id])),
        }
    }
    by_org
        .iter()
        .flat_map(|(org, ids)| {
            ids.chunks(INGEST_CHUNK).map(|chunk| {
                NewJob::new(INGEST_JOB, json!({ "event_ids": chunk }))
                    .with_org(*org)
                    .with_priority(10)
            })
        })
        .collect()
}

impl Channels {
    /// Waits while this process's webhook intake is in a burst, so that processing that can
    /// wait leaves the write lock and the cores to the webhooks whose senders wait for their
    /// answer — at most until the configured `burst_yield` has passed since `since` (when the
    /// work arrived). Without a burst it returns at once. How long it waited.
    pub async fn yield_to_burst(&self, since: Timestamp) -> Duration {
        let age =
            Duration::from_millis(u64::try_from(self.now().millis() - since.millis()).unwrap_or(0));
        self.after_burst(self.cfg.burst_yield.saturating_sub(age))
            .await
    }

    /// Waits until the ingest jobs of every webhook stored so far by this process are queued
    /// (on SQLite the dispatcher queues them just after the webhooks are answered): for tests
    /// and tools that run the jobs themselves.
    pub async fn intake_settled(&self) {
        loop {
            let done = self.pulse.dispatch_done.notified();
            if self.pulse.dispatched.load(Ordering::SeqCst)
                >= self.pulse.handed.load(Ordering::SeqCst)
            {
                return;
            }
            done.await;
        }
    }

    /// Waits until the intake has stored no burst batch for [`BURST_QUIET`], `most` at the
    /// longest.
    async fn after_burst(&self, most: Duration) -> Duration {
        self.pulse.quiet(most).await
    }

    /// Starts the webhook batcher on the current runtime (once; later calls do nothing), and on
    /// SQLite the dispatcher of its ingest jobs.
    pub fn start_intake(self: &Arc<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(INTAKE_QUEUE);
        if self.intake.set(tx).is_err() {
            return;
        }
        let me = Arc::downgrade(self);
        let dispatch = match self.db.backend() {
            Backend::Postgres => None,
            Backend::Sqlite => {
                let (dtx, drx) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(dispatch(me.clone(), drx));
                Some(dtx)
            }
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(INTAKE_PARALLEL));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let mut batch = vec![first];
                while batch.len() < INTAKE_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let Some(ch) = me.upgrade() else {
                    break;
                };
                let dispatch = dispatch.clone();
                tokio::spawn(async move {
                    ch.store_batch(batch, dispatch.as_ref()).await;
                    drop(permit);
                });
            }
        });
    }

    /// Stores a batch of webhooks and answers each: on SQLite `received`, their jobs left to
    /// `dispatch`; on PostgreSQL with their jobs, in one statement.
    async fn store_batch(
        &self,
        batch: Vec<Pending>,
        dispatch: Option<&tokio::sync::mpsc::UnboundedSender<Vec<(OrgId, EventId)>>>,
    ) {
        let now = self.now();
        let queued = metrics::histogram!("wamage_webhook_store_seconds", "phase" => "queue");
        for p in &batch {
            queued.record(p.queued.elapsed().as_secs_f64());
        }
        let ids: Vec<EventId> = batch.iter().map(|_| EventId::new()).collect();
        let rows: Vec<_> = batch
            .iter()
            .zip(&ids)
            .map(|(p, id)| (*id, p.org, p.channel, &p.body[..]))
            .collect();
        let events: Vec<(OrgId, EventId)> = batch
            .iter()
            .map(|p| p.org)
            .zip(ids.iter().copied())
            .collect();
        // A burst's batch counts from when it is formed to when it is stored: a write that
        // stalls (a WAL checkpoint, a long turn of another writer) does not end the burst.
        let burst = batch.len() >= BURST_MIN;
        if burst {
            self.pulse.beat();
        }
        let t0 = Instant::now();
        let res: Result<(), Problem> = match &self.db {
            Db::Sqlite(pool) => {
                let res = store::insert_received(pool, &rows, now)
                    .await
                    .map_err(db_err);
                if res.is_ok() {
                    self.pulse.handed.fetch_add(1, Ordering::SeqCst);
                    if dispatch.is_none_or(|d| d.send(events).is_err()) {
                        // The dispatcher is gone (the runtime is stopping): the sweep of the
                        // next start queues these.
                        self.pulse.dispatched.fetch_add(1, Ordering::SeqCst);
                    }
                }
                res
            }
            Db::Postgres(pool) => {
                // One statement, committed on its own: one round trip where a transaction
                // (begin, events, jobs, commit) takes four.
                let jobs = ingest_jobs(&events);
                let res = self.store_batch_pg(pool, &rows, &jobs, now).await;
                if res.is_ok() {
                    self.jobs.notify_kind(INGEST_JOB);
                }
                res
            }
        };
        metrics::histogram!("wamage_webhook_store_seconds", "phase" => "write")
            .record(t0.elapsed().as_secs_f64());
        metrics::histogram!("wamage_webhook_batch_size").record(batch.len() as f64);
        if burst {
            self.pulse.beat();
        }
        for (p, id) in batch.into_iter().zip(ids) {
            let _ = p.reply.send(res.clone().map(|()| id));
        }
    }

    /// PostgreSQL: the server process behind the connection the intake keeps, if it keeps one
    /// (for tests that break it).
    #[doc(hidden)]
    pub async fn intake_backend_pid(&self) -> Option<i32> {
        let mut held = self.intake_conn.lock().await;
        let h = held.as_mut()?;
        store::backend_pid(&mut h.conn).await.ok()
    }

    /// PostgreSQL: a batch's events and ingest jobs in one statement, on the connection the
    /// intake keeps ([`HeldConn`]). When it fails there, the batch is tried once more on a
    /// connection from the pool (which checks it first): the held one may have died. The
    /// events' ids are fixed, so a batch whose first try did commit after all fails the
    /// second (their ids are taken) rather than being stored twice.
    async fn store_batch_pg(
        &self,
        pool: &sqlx::PgPool,
        rows: &[(EventId, OrgId, ChannelId, &[u8])],
        jobs: &[NewJob],
        now: Timestamp,
    ) -> Result<(), Problem> {
        let mut held = self.intake_conn.lock().await;
        let mut first_error = None;
        for _ in 0..2 {
            let conn = match HeldConn::ready(&mut held, pool).await {
                Ok(c) => c,
                Err(e) => {
                    first_error.get_or_insert(e.to_string());
                    continue;
                }
            };
            let res = self
                .jobs
                .enqueue_many_with_pg(
                    &mut *conn.conn,
                    store::insert_events_pg_with(),
                    |q| store::bind_events_pg(q, rows, now),
                    jobs,
                )
                .await;
            match res {
                Ok(_) => {
                    conn.used = Instant::now();
                    return Ok(());
                }
                Err(e) => {
                    *held = None;
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        Err(Problem::internal(format_args!(
            "store webhooks: {}",
            first_error.unwrap_or_default()
        )))
    }

    /// Queues the ingest jobs of events stored `received` and marks them `pending`, in one
    /// transaction. On failure they stay `received` for the sweep.
    async fn queue_received(&self, events: &[(OrgId, EventId)]) {
        if events.is_empty() {
            return;
        }
        let ids: Vec<EventId> = events.iter().map(|(_, id)| *id).collect();
        let res: Result<(), Problem> = async {
            let mut tx = self.db.begin().await.map_err(db_err)?;
            self.jobs
                .enqueue_many(&mut tx, ingest_jobs(events))
                .await
                .map_err(|e| Problem::internal(format_args!("enqueue ingest: {e}")))?;
            store::mark_pending(&mut tx, &ids).await.map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        }
        .await;
        match res {
            Ok(()) => self.jobs.notify_kind(INGEST_JOB),
            Err(e) => {
                tracing::warn!(error = %e, events = events.len(), "failed to queue webhook processing; the sweep will retry");
            }
        }
    }

    /// Queues events stored `received` more than [`SWEEP_AFTER`] ago (their dispatch was lost
    /// to a crash or failed). How many. The SQLite intake's dispatcher runs it at start-up and
    /// every [`SWEEP_EVERY`].
    pub async fn sweep_received(&self) -> usize {
        let before = self.now().minus(SWEEP_AFTER);
        let mut total = 0;
        loop {
            let found = match store::received_before(&self.db, before, SWEEP_MOST).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to look for webhooks stored without a job");
                    return total;
                }
            };
            let n = found.len();
            total += n;
            self.queue_received(&found).await;
            if n < SWEEP_MOST as usize {
                break;
            }
        }
        if total > 0 {
            tracing::info!(
                events = total,
                "queued the processing of webhooks stored without a job"
            );
        }
        total
    }
}

/// The SQLite intake's dispatcher: queues the ingest jobs of stored batches (those of up to
/// [`DISPATCH_EVERY`] together during a burst) and sweeps for events left without one.
async fn dispatch(
    me: Weak<Channels>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<(OrgId, EventId)>>,
) {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            got = rx.recv() => match got {
                Some(events) => Some(events),
                None => break,
            },
            _ = sweep.tick() => None,
        };
        let Some(ch) = me.upgrade() else {
            break;
        };
        match first {
            Some(mut events) => {
                ch.after_burst(DISPATCH_EVERY).await;
                let mut batches = 1;
                while let Ok(more) = rx.try_recv() {
                    events.extend(more);
                    batches += 1;
                }
                ch.queue_received(&events).await;
                ch.pulse.dispatched.fetch_add(batches, Ordering::SeqCst);
                ch.pulse.dispatch_done.notify_waiters();
            }
            None => {
                ch.sweep_received().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` burst batches stored 5 ms apart.
    fn beat_every_5ms(pulse: &Arc<Pulse>, n: usize) -> tokio::task::JoinHandle<()> {
        let pulse = Arc::clone(pulse);
        tokio::spawn(async move {
            for _ in 0..n {
                pulse.beat();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }

    /// `got` is `want`, give or take the timer's millisecond.
    fn about(got: Duration, want: Duration) -> bool {
        got + Duration::from_millis(2) >= want && got <= want + Duration::from_millis(2)
    }

    #[tokio::test(start_paused = true)]
    async fn processing_waits_for_a_burst_to_end_and_no_longer_than_its_limit() {
        let pulse = Arc::new(Pulse::default());
        // No burst yet: no wait.
        assert_eq!(pulse.quiet(Duration::from_secs(1)).await, Duration::ZERO);
        // A batch of a burst just now: the intake is quiet again after BURST_QUIET.
        pulse.beat();
        let waited = pulse.quiet(Duration::from_secs(1)).await;
        assert!(about(waited, BURST_QUIET), "{waited:?}");
        // Batches every 5 ms for 100 ms: the wait lasts until BURST_QUIET after the last.
        let beating = beat_every_5ms(&pulse, 20);
        tokio::task::yield_now().await;
        let waited = pulse.quiet(Duration::from_secs(1)).await;
        assert!(
            waited >= Duration::from_millis(90) + BURST_QUIET
                && waited <= Duration::from_millis(105) + BURST_QUIET,
            "{waited:?}"
        );
        beating.await.unwrap();
        // A burst longer than the limit: the wait ends at the limit.
        let beating = beat_every_5ms(&pulse, 40);
        tokio::task::yield_now().await;
        let waited = pulse.quiet(Duration::from_millis(50)).await;
        assert!(about(waited, Duration::from_millis(50)), "{waited:?}");
        beating.await.unwrap();
        // The limit already used up: no wait at all.
        pulse.beat();
        assert_eq!(pulse.quiet(Duration::ZERO).await, Duration::ZERO);
    }
}
