//! [`Worker`]: claims due jobs, runs their handlers with bounded concurrency, heartbeats their
//! leases and writes the outcomes back in batches.

use std::{
    borrow::Cow,
    collections::{HashMap, VecDeque},
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::FutureExt as _;
use tokio::{sync::Semaphore, task::JoinSet, time::MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;
use wamage_kernel::Clock;

use super::{
    JobContext, JobHandler, JobId, JobOutcome, Result,
    queue::{Finished, JobQueue, Reach, TryResult},
};

/// Tuning of a [`Worker`].
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs claimed per statement.
    pub batch_size: usize,
    /// Handlers running at the same time.
    pub concurrency: usize,
    /// How long a claim holds a job without a heartbeat.
    pub lease: Duration,
    /// How often the leases of running jobs are extended (well under `lease`).
    pub heartbeat: Duration,
    /// How often an idle worker looks for due jobs (enqueues in this process wake it sooner).
    pub poll_interval: Duration,
    /// On shutdown, how long running handlers may take to finish before they are aborted.
    pub drain_timeout: Duration,
    /// How often the loop runs the reaper.
    pub reap_interval: Duration,
    /// How often the loop refreshes the queue gauges.
    pub metrics_interval: Duration,
    /// Longest a finished try waits before its outcome is written (outcomes are batched).
    pub flush_interval: Duration,
    /// Kinds that may run fewer handlers at once than `concurrency` (e.g. jobs that all take
    /// the same write lock). Jobs of a kind at its limit are not claimed; other kinds are.
    pub kind_limits: HashMap<String, usize>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            concurrency: 32,
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(20),
            poll_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(30),
            reap_interval: Duration::from_secs(15),
            metrics_interval: Duration::from_secs(5),
            flush_interval: Duration::from_millis(20),
            kind_limits: HashMap::new(),
        }
    }
}

/// Runs jobs of the kinds it has handlers for. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    queue: JobQueue,
    id: String,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
    kinds: Vec<String>,
    config: WorkerConfig,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("kinds", &self.kinds)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker with a unique id (`w-<pid>-<random>`), no handlers and the default config.
    pub fn new(queue: JobQueue) -> Self {
        let random = Uuid::new_v4().simple().to_string();
        Self {
            queue,
            id: format!("w-{}-{}", std::process::id(), &random[..8]),
            handlers: HashMap::new(),
            kinds: Vec::new(),
            config: WorkerConfig::default(),
        }
    }

    /// Names this worker (shown in `locked_by` and in attempts). Must be unique among live
    /// workers.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    #[must_use]
    pub fn with_config(mut self, config: WorkerConfig) -> Self {
        self.config = config;
        self
    }

    /// Runs jobs of `kind` with `handler` (replacing an earlier one).
    #[must_use]
    pub fn register(self, kind: impl Into<String>, handler: impl JobHandler) -> Self {
        self.register_arc(kind, Arc::new(handler))
    }

    #[must_use]
    pub fn register_arc(mut self, kind: impl Into<String>, handler: Arc<dyn JobHandler>) -> Self {
        let kind = kind.into();
        if self.handlers.insert(kind.clone(), handler).is_none() {
            self.kinds.push(kind);
            self.kinds.sort();
        }
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    /// Requeues jobs whose lease expired; see [`JobQueue::reap_expired`].
    pub async fn reap_expired(&self) -> Result<usize> {
        self.queue.reap_expired().await
    }

    /// Runs `jobs` (one, or several of a kind merged by [`Self::take_group`]) in one task.
    fn spawn_jobs(
        &self,
        set: &mut JoinSet<Vec<Finished>>,
        jobs: Vec<JobContext>,
        gate: Option<Arc<Semaphore>>,
    ) {
        let handler = jobs
            .first()
            .and_then(|j| self.handlers.get(&j.kind))
            .cloned();
        let clock = self.queue.clock().clone();
        set.spawn(async move {
            let _permit = match gate {
                Some(gate) => gate.acquire_owned().await.ok(),
                None => None,
            };
            execute(handler, jobs, clock).await
        });
    }

    /// Takes the job at `at` out of `jobs`, with the jobs after it of the same kind and
    /// organisation its handler may run together with it ([`JobHandler::merge_limit`]).
    fn take_group(&self, jobs: &mut VecDeque<JobContext>, at: usize) -> Vec<JobContext> {
        let Some(first) = jobs.remove(at) else {
            return Vec::new();
        };
        let limit = self
            .handlers
            .get(&first.kind)
            .map_or(1, |h| h.merge_limit().max(1));
        let mut group = vec![first];
        let mut i = at;
        while group.len() < limit && i < jobs.len() {
            if jobs[i].kind == group[0].kind && jobs[i].org_id == group[0].org_id {
                if let Some(j) = jobs.remove(i) {
                    group.push(j);
                }
            } else {
                i += 1;
            }
        }
        group
    }

    /// Claims and runs every job due now, batch after batch, until none is left; returns how
    /// many tries ran. Jobs rescheduled during the call (retries) are not due until later. This
    /// is how tests drive a worker step by step.
    pub async fn run_due_jobs(&self) -> Result<usize> {
        let due_by = self.queue.clock().now();
        let batch = self.config.batch_size.max(1);
        let gate = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut total = 0;
        loop {
            let jobs = self
                .queue
                .claim_due(
                    &self.id,
                    &self.kinds,
                    batch,
                    self.config.lease,
                    due_by,
                    Reach::Head,
                )
                .await?;
            if jobs.is_empty() {
                return Ok(total);
            }
            let claimed = jobs.len();
            total += claimed;
            let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
            let mut set = JoinSet::new();
            let mut jobs: VecDeque<JobContext> = jobs.into();
            while !jobs.is_empty() {
                let group = self.take_group(&mut jobs, 0);
                self.spawn_jobs(&mut set, group, Some(Arc::clone(&gate)));
            }
            let mut heartbeat = interval(self.config.heartbeat);
            let mut done = Vec::with_capacity(claimed);
            loop {
                tokio::select! {
                    res = set.join_next() => match res {
                        Some(Ok(f)) => done.extend(f),
                        Some(Err(e)) => tracing::error!(error = %e, "job task failed"),
                        None => break,
                    },
                    _ = heartbeat.tick() => {
                        if let Err(e) = self.queue.heartbeat(&self.id, &ids, self.config.lease).await {
                            tracing::warn!(error = %e, "job heartbeat failed");
                        }
                    }
                }
            }
            self.queue.complete(&self.id, &done).await?;
            if claimed < batch {
                return Ok(total);
            }
        }
    }

    /// The long-running loop: claims when it has room, runs handlers (at most `concurrency` at
    /// once), heartbeats, writes outcomes in batches, reaps expired leases and samples the queue
    /// gauges, until `shutdown` is cancelled. Then it stops claiming, gives back claimed jobs
    /// that have not started, waits up to `drain_timeout` for running ones, and requeues (as
    /// `lost`) those that did not finish.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<()> {
        let cfg = &self.config;
        let batch = cfg.batch_size.max(1);
        let concurrency = cfg.concurrency.max(1);
        tracing::info!(worker = %self.id, kinds = ?self.kinds, "job worker started");
        let wake = self.queue.wake_handle();
        let mut buffer: VecDeque<JobContext> = VecDeque::new();
        let mut inflight: HashMap<JobId, JobContext> = HashMap::new();
        let mut set: JoinSet<Vec<Finished>> = JoinSet::new();
        let mut done: Vec<Finished> = Vec::new();
        let mut heartbeat = interval(cfg.heartbeat);
        let mut flush = interval(cfg.flush_interval);
        let mut poll = interval(cfg.poll_interval);
        let mut reap = interval(cfg.reap_interval);
        let mut sample = interval(cfg.metrics_interval);
        // True when the last claim found less than a full batch: wait for a poll or a wake-up.
        let mut idle = false;
        // Set when that claim held kinds back: the wake-ups before it (see `JobQueue::woken_for`).
        let mut held_back_at: Option<u64> = None;
        // Handlers running per limited kind.
        let mut running: HashMap<String, usize> = HashMap::new();
        let room = |running: &HashMap<String, usize>, kind: &str| {
            cfg.kind_limits
                .get(kind)
                .is_none_or(|limit| running.get(kind).copied().unwrap_or(0) < (*limit).max(1))
        };

        loop {
            while set.len() < concurrency {
                let Some(at) = buffer.iter().position(|j| room(&running, &j.kind)) else {
                    break;
                };
                let group = self.take_group(&mut buffer, at);
                let Some(kind) = group.first().map(|j| j.kind.clone()) else {
                    break;
                };
                if cfg.kind_limits.contains_key(&kind) {
                    *running.entry(kind).or_default() += 1;
                }
                for job in &group {
                    inflight.insert(job.id, job.clone());
                }
                self.spawn_jobs(&mut set, group, None);
            }
            if done.len() >= batch {
                self.flush(&mut done).await;
            }
            // Claim when nothing claimed can start: only kinds with room left, counting the
            // jobs already waiting here.
            let kinds: Cow<'_, [String]> = if cfg.kind_limits.is_empty() {
                Cow::Borrowed(&self.kinds)
            } else {
                let mut taken = running.clone();
                for j in buffer
                    .iter()
                    .filter(|j| cfg.kind_limits.contains_key(&j.kind))
                {
                    *taken.entry(j.kind.clone()).or_default() += 1;
                }
                let open = self.kinds.iter().filter(|k| room(&taken, k));
                Cow::Owned(open.cloned().collect())
            };
            let can_claim = set.len() < concurrency
                && !kinds.is_empty()
                && !buffer.iter().any(|j| room(&running, &j.kind));
            if can_claim && !idle && !shutdown.is_cancelled() {
                // Kinds held back (at their limit) may have a backlog at the head of the
                // queue: the others are looked up kind by kind.
                let narrowed = kinds.len() < self.kinds.len();
                let reach = if narrowed {
                    Reach::PerKind
                } else {
                    Reach::Head
                };
                let mark = self.queue.wake_mark();
                let now = self.queue.clock().now();
                match self
                    .queue
                    .claim_due(&self.id, &kinds, batch, cfg.lease, now, reach)
                    .await
                {
                    Ok(jobs) => {
                        idle = jobs.len() < batch;
                        held_back_at = (idle && narrowed).then_some(mark);
                        buffer.extend(jobs);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "job claim failed");
                        idle = true;
                        held_back_at = None;
                    }
                }
                continue;
            }
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(res) = set.join_next(), if !set.is_empty() => {
                    match res {
                        Ok(group) => {
                            if let Some(n) = group.first().and_then(|f| running.get_mut(&f.job.kind)) {
                                // Room for the kind again: its due jobs may be claimed.
                                *n = n.saturating_sub(1);
                                idle = false;
                            }
                            for f in group {
                                inflight.remove(&f.job.id);
                                done.push(f);
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "job task failed"),
                    }
                    if set.is_empty() && buffer.is_empty() {
                        self.flush(&mut done).await;
                    }
                }
                _ = flush.tick(), if !done.is_empty() => self.flush(&mut done).await,
                _ = heartbeat.tick() => self.heartbeat(&buffer, &inflight, &done).await,
                _ = reap.tick() => {
                    if let Err(e) = self.queue.reap_expired().await {
                        tracing::warn!(error = %e, "job reaper failed");
                    }
                }
                _ = sample.tick() => {
                    if let Err(e) = self.queue.sample_metrics().await {
                        tracing::warn!(error = %e, "job metrics sampling failed");
                    }
                }
                // A wake-up only for kinds held back finds nothing new to claim.
                () = wake.notified(), if can_claim => {
                    idle = held_back_at.is_some_and(|mark| !self.queue.woken_for(&kinds, mark));
                }
                _ = poll.tick(), if can_claim => idle = false,
            }
        }

        tracing::info!(
            worker = %self.id,
            running = set.len(),
            unstarted = buffer.len(),
            "job worker stopping"
        );
        let unstarted: Vec<(JobId, u32)> = buffer.drain(..).map(|j| (j.id, j.attempt)).collect();
        if !unstarted.is_empty() {
            match self.queue.release(&self.id, &unstarted).await {
                Ok(n) => tracing::info!(released = n, "released unstarted jobs"),
                Err(e) => tracing::warn!(error = %e, "releasing unstarted jobs failed"),
            }
        }
        let deadline = tokio::time::sleep(cfg.drain_timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                res = set.join_next() => match res {
                    Some(Ok(group)) => {
                        for f in group {
                            inflight.remove(&f.job.id);
                            done.push(f);
                        }
                    }
                    Some(Err(e)) => tracing::error!(error = %e, "job task failed"),
                    None => break,
                },
                _ = heartbeat.tick() => self.heartbeat(&buffer, &inflight, &done).await,
                () = &mut deadline => {
                    tracing::warn!(running = set.len(), "drain timeout, aborting running jobs");
                    set.abort_all();
                    while let Some(res) = set.join_next().await {
                        for f in res.into_iter().flatten() {
                            inflight.remove(&f.job.id);
                            done.push(f);
                        }
                    }
                    break;
                }
            }
        }
        let now = self.queue.clock().now();
        for (_, job) in inflight.drain() {
            done.push(Finished {
                job,
                started_at: now,
                finished_at: now,
                latency: Duration::ZERO,
                result: TryResult::Lost("worker shut down before the job finished".to_owned()),
            });
        }
        self.flush(&mut done).await;
        if !done.is_empty() {
            tracing::warn!(
                count = done.len(),
                "job outcomes could not be written; the reaper will requeue them"
            );
        }
        tracing::info!(worker = %self.id, "job worker stopped");
        Ok(())
    }

    /// Writes finished tries; on a store error keeps them for the next flush.
    async fn flush(&self, done: &mut Vec<Finished>) {
        if done.is_empty() {
            return;
        }
        match self.queue.complete(&self.id, done).await {
            Ok(_) => done.clear(),
            Err(e) => {
                tracing::warn!(error = %e, pending = done.len(), "writing job outcomes failed")
            }
        }
    }

    async fn heartbeat(
        &self,
        buffer: &VecDeque<JobContext>,
        inflight: &HashMap<JobId, JobContext>,
        done: &[Finished],
    ) {
        let ids: Vec<JobId> = buffer
            .iter()
            .map(|j| j.id)
            .chain(inflight.keys().copied())
            .chain(done.iter().map(|f| f.job.id))
            .collect();
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self
            .queue
            .heartbeat(&self.id, &ids, self.config.lease)
            .await
        {
            tracing::warn!(error = %e, "job heartbeat failed");
        }
    }
}

fn interval(period: Duration) -> tokio::time::Interval {
    let period = period.max(Duration::from_millis(1));
    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// Runs one try: the handler inside a span, a panic turned into a retryable failure.
/// Runs one job, or several merged ones in one [`JobHandler::run_many`] call; each gets its
/// own outcome (a panic, or a handler that answers for a different number of jobs, makes
/// every one of them retry).
async fn execute(
    handler: Option<Arc<dyn JobHandler>>,
    jobs: Vec<JobContext>,
    clock: Clock,
) -> Vec<Finished> {
    let Some(first) = jobs.first() else {
        return Vec::new();
    };
    let span = tracing::info_span!(
        "job",
        job.id = %first.id,
        job.kind = %first.kind,
        attempt = first.attempt,
        merged = jobs.len()
    );
    let started_at = clock.now();
    let t0 = Instant::now();
    let outcomes: Vec<JobOutcome> = match handler {
        Some(handler) => {
            let run = async {
                if let [job] = jobs.as_slice() {
                    vec![handler.run(job).await]
                } else {
                    handler.run_many(&jobs).await
                }
            };
            match AssertUnwindSafe(run)
                .catch_unwind()
                .instrument(span.clone())
                .await
            {
                Ok(outcomes) if outcomes.len() == jobs.len() => outcomes,
                Ok(outcomes) => {
                    let error = format!(
                        "the handler answered for {} of {} jobs",
                        outcomes.len(),
                        jobs.len()
                    );
                    jobs.iter().map(|_| JobOutcome::retry(&error)).collect()
                }
                Err(panic) => {
                    let error = format!("handler panicked: {}", panic_text(&*panic));
                    jobs.iter().map(|_| JobOutcome::retry(&error)).collect()
                }
            }
        }
        None => jobs
            .iter()
            .map(|j| JobOutcome::retry(format!("no handler for job kind {:?}", j.kind)))
            .collect(),
    };
    let latency = t0.elapsed();
    let finished_at = clock.now();
    jobs.into_iter()
        .zip(outcomes)
        .map(|(job, outcome)| {
            span.in_scope(|| match &outcome {
                JobOutcome::Done => {
                    tracing::debug!(job = %job.id, latency_ms = latency.as_millis(), "job done");
                }
                JobOutcome::Retry { error, .. } => {
                    tracing::warn!(job = %job.id, error = %error, latency_ms = latency.as_millis(), "job try failed");
                }
                JobOutcome::Fail { error } => {
                    tracing::warn!(job = %job.id, error = %error, latency_ms = latency.as_millis(), "job failed permanently");
                }
            });
            Finished {
                job,
                started_at,
                finished_at,
                latency,
                result: TryResult::Ran(outcome),
            }
        })
        .collect()
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
