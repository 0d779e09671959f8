//! The job queue on every backend: outbox semantics, exclusive claims, leases and the reaper,
//! retry policies, delays, dedupe keys, panics, graceful shutdown and stats.

#![allow(clippy::unwrap_used)] // test helpers are not `#[test]` fns, which is what clippy.toml exempts

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wamage_kernel::{Clock, OrgId, Timestamp};
use wamage_platform::{
    jobs::{
        AttemptOutcome, JobContext, JobError, JobId, JobOutcome, JobQueue, JobState, KindStats,
        NewJob, RetryPolicy, Worker, WorkerConfig, handler_fn,
    },
    testing::TestDb,
};

const T0: Timestamp = Timestamp(1_700_000_000_000);

type Counts = Arc<Mutex<HashMap<JobId, usize>>>;

fn setup(db: &TestDb) -> (JobQueue, Clock) {
    let clock = Clock::manual(T0);
    (JobQueue::new(db.db.clone(), clock.clone()), clock)
}

/// A worker whose handler for `kind` counts executions per job id.
fn counting_worker(queue: &JobQueue, kind: &str, id: &str) -> (Worker, Counts) {
    let counts: Counts = Arc::default();
    let c = Arc::clone(&counts);
    let worker = Worker::new(queue.clone()).with_id(id).register(
        kind,
        handler_fn(move |job: JobContext| {
            let c = Arc::clone(&c);
            async move {
                tokio::task::yield_now().await;
                *c.lock().unwrap().entry(job.id).or_default() += 1;
                JobOutcome::Done
            }
        }),
    );
    (worker, counts)
}

async fn rolled_back_jobs_never_run_committed_ones_run_once(t: TestDb) {
    let (q, _clock) = setup(&t);
    let (worker, counts) = counting_worker(&q, "mail.send", "w1");

    let mut tx = t.db.begin().await.unwrap();
    let lost = q
        .enqueue(
            &mut tx,
            NewJob::new("mail.send", json!({"to": "a@example.com"})),
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = t.db.begin().await.unwrap();
    let kept = q
        .enqueue(
            &mut tx,
            NewJob::new("mail.send", json!({"to": "b@example.com"})),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(worker.run_due_jobs().await.unwrap(), 1);
    assert_eq!(worker.run_due_jobs().await.unwrap(), 0);
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts.get(&kept), Some(&1));
    assert!(q.get(lost).await.unwrap().is_none());

    let job = q.get(kept).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.payload, json!({"to": "b@example.com"}));
    assert!(job.locked_by.is_none() && job.finished_at.is_some());
    let attempts = q.attempts(kept).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Succeeded);
    assert_eq!(attempts[0].worker_id, "w1");
}

async fn two_workers_never_run_a_job_twice(t: TestDb) {
    let (q, _clock) = setup(&t);
    let counts: Counts = Arc::default();
    let make = |id: &str| {
        let c = Arc::clone(&counts);
        Worker::new(q.clone())
            .with_id(id)
            .with_config(WorkerConfig {
                batch_size: 16,
                concurrency: 8,
                ..WorkerConfig::default()
            })
            .register(
                "race",
                handler_fn(move |job: JobContext| {
                    let c = Arc::clone(&c);
                    async move {
                        tokio::task::yield_now().await;
                        *c.lock().unwrap().entry(job.id).or_default() += 1;
                        JobOutcome::Done
                    }
                }),
            )
    };
    let (a, b) = (make("a"), make("b"));

    let mut tx = t.db.begin().await.unwrap();
    let jobs = (0..500)
        .map(|i| NewJob::new("race", json!({ "i": i })))
        .collect();
    let ids = q.enqueue_many(&mut tx, jobs).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), 500);

    let (ra, rb) = tokio::join!(
        tokio::spawn({
            let a = a.clone();
            async move { a.run_due_jobs().await.unwrap() }
        }),
        tokio::spawn({
            let b = b.clone();
            async move { b.run_due_jobs().await.unwrap() }
        }),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra + rb, 500, "a ran {ra}, b ran {rb}");
    let counts = counts.lock().unwrap().clone();
    assert_eq!(counts.len(), 500);
    assert!(counts.values().all(|&n| n == 1), "a job ran twice");
    for id in ids {
        assert_eq!(q.get(id).await.unwrap().unwrap().state, JobState::Succeeded);
    }
}

async fn a_dead_workers_job_is_rerun_after_its_lease_expires(t: TestDb) {
    let (q, clock) = setup(&t);
    let (worker, counts) = counting_worker(&q, "k", "survivor");
    let id = q.enqueue_now(NewJob::new("k", json!({}))).await.unwrap();

    // A worker claims the job and dies without completing it.
    let claimed = q
        .claim("doomed", &["k".to_owned()], 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    drop(claimed);
    let job = q.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.locked_by.as_deref(), Some("doomed"));

    // The lease still holds: nobody may take the job.
    assert_eq!(worker.run_due_jobs().await.unwrap(), 0);
    assert_eq!(worker.reap_expired().await.unwrap(), 0);
    clock.advance(Duration::from_secs(29));
    assert_eq!(worker.reap_expired().await.unwrap(), 0);

    clock.advance(Duration::from_secs(2));
    assert_eq!(worker.reap_expired().await.unwrap(), 1);
    assert_eq!(q.get(id).await.unwrap().unwrap().state, JobState::Queued);
    assert_eq!(worker.run_due_jobs().await.unwrap(), 1);
    assert_eq!(counts.lock().unwrap().get(&id), Some(&1));

    let job = q.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.attempts, 2);
    let attempts = q.attempts(id).await.unwrap();
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.worker_id.as_str(), a.outcome))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "doomed", AttemptOutcome::Lost),
            (2, "survivor", AttemptOutcome::Succeeded)
        ]
    );

    // A late completion by the dead worker would be fenced off; a job lost more often than the
    // restart limit allows is dead.
    let q = q.with_restart_limit(1);
    let id = q.enqueue_now(NewJob::new("k", json!({}))).await.unwrap();
    for expected in [JobState::Queued, JobState::Dead] {
        let claimed = q
            .claim("doomed", &["k".to_owned()], 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        clock.advance(Duration::from_secs(31));
        assert_eq!(q.reap_expired().await.unwrap(), 1);
        assert_eq!(q.get(id).await.unwrap().unwrap().state, expected);
    }
    let job = q.get(id).await.unwrap().unwrap();
    assert!(job.last_error.unwrap().contains("lease expired"));
}

async fn a_restarted_sole_process_runs_its_predecessors_jobs_at_once(t: TestDb) {
    let (q, _clock) = setup(&t);
    let id = q.enqueue_now(NewJob::new("k", json!({}))).await.unwrap();
    let other = q.enqueue_now(NewJob::new("k", json!({}))).await.unwrap();
    let claimed = q
        .claim("killed", &["k".to_owned()], 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let taken = claimed[0].id;
    // Its lease still holds, so the periodic reaper leaves it; a restart of the only process
    // on the database releases it at once, and only the running one.
    assert_eq!(q.reap_expired().await.unwrap(), 0);
    assert_eq!(q.reap_orphaned().await.unwrap(), 1);
    let job = q.get(taken).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert!(job.last_error.unwrap().contains("found at start"));
    let untouched = if taken == id { other } else { id };
    let job = q.get(untouched).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.last_error, None);
    assert_eq!(
        q.attempts(taken).await.unwrap()[0].outcome,
        AttemptOutcome::Lost
    );
}

async fn heartbeats_keep_a_running_job_leased(t: TestDb) {
    let (q, clock) = setup(&t);
    let id = q.enqueue_now(NewJob::new("k", json!({}))).await.unwrap();
    let lease = Duration::from_secs(30);
    let claimed = q.claim("slow", &["k".to_owned()], 1, lease).await.unwrap();
    assert_eq!(claimed.len(), 1);
    for _ in 0..5 {
        clock.advance(Duration::from_secs(20));
        assert_eq!(q.heartbeat("slow", &[id], lease).await.unwrap(), 1);
        assert_eq!(q.reap_expired().await.unwrap(), 0);
    }
    // Another worker's heartbeat does not touch the lease.
    assert_eq!(q.heartbeat("other", &[id], lease).await.unwrap(), 0);
}

async fn retries_follow_the_policy(t: TestDb) {
    let clock = Clock::manual(T0);
    let q = JobQueue::new(t.db.clone(), clock.clone()).with_policy(
        "flaky",
        RetryPolicy::fixed_exponential(4, Duration::from_secs(10), 2.0),
    );
    let worker = Worker::new(q.clone())
        .with_id("w")
        .register(
            "flaky",
            handler_fn(|job: JobContext| async move {
                JobOutcome::Retry {
                    error: format!("boom {}", job.attempt),
                    // The provider asks for 100 s on the second try.
                    retry_after: (job.attempt == 2).then_some(Duration::from_secs(100)),
                }
            }),
        )
        .register(
            "broken",
            handler_fn(|_job: JobContext| async move { JobOutcome::fail("invalid recipient") }),
        );
    let id = q
        .enqueue_now(NewJob::new("flaky", json!({})))
        .await
        .unwrap();

    let next_delay = |job: &wamage_platform::jobs::Job| {
        Duration::from_millis(u64::try_from(job.run_at.millis() - clock.now().millis()).unwrap())
    };

    // Try 1 fails: next in 10 s.
    assert_eq!(worker.run_due_jobs().await.unwrap(), 1);
    let job = q.get(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Queued, 1));
    assert_eq!(next_delay(&job), Duration::from_secs(10));
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(worker.run_due_jobs().await.unwrap(), 0);
    clock.advance(Duration::from_millis(1));

    // Try 2 fails with Retry-After 100 s, longer than the policy's 20 s: honoured.
    assert_eq!(worker.run_due_jobs().await.unwrap(), 1);
    let job = q.get(id).await.unwrap().unwrap();
    assert_eq!(next_delay(&job), Duration::from_secs(100));
    clock.advance(Duration::from_secs(99));
    assert_eq!(worker.run_due_jobs().await.unwrap(), 0);
    clock.advance(Duration::from_secs(1));

    // Try 3 fails: 40 s.
    assert_eq!(worker.run_due_jobs().await.unwrap(), 1);
    let job = q.get(id).await.unwrap().unwrap();
    assert_eq!(next_delay(&job), Duration::from_secs(40));
    clock.advance(Duration::from_secs(40));

    // Try 4 is the last: dead, with the last error.
    assert_eq!(worker.run_due_jobs().await.unwrap(), 1);
    let job = q.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 4);
    assert_eq!(job.last_error.as_deref(), Some("boom 4"));
    assert!(job.finished_at.is_some());
    clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(worker.run_due_jobs().await.unwrap(), 0);

    let attempts = q.attempts(id).await.unwrap();
    let summary: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.outcome, a.error.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, AttemptOutcome::Retry, "boom 1".to_owned()),
            (2, AttemptOutcome::Retry, "boom 2".to_owned()),
            (3, AttemptOutcome::Retry, "boom 3".to_owned()),
            (4, AttemptOutcome::Dead, "boom 4".to_owned()),
        ]
    );

    // A permanent failure is dead at once.
    let id = q
        .enqueue_now(NewJob::new("broken", json!({})))
        .await
        .unwrap();
    assert_eq!(worker.run_due_jobs().await.unwrap(), 1);
    let job = q.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.last_error.as_deref(), Some("invalid recipient"));
    let attempts = q.attempts(id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Failed);

    // Long errors are truncated.
    let long = "x".repeat(10_000);
    let w = Worker::new(q.clone()).register(
        "verbose",
        handler_fn(move |_job: JobContext| {
            let long = long.clone();
            async move { JobOutcome::fail(long) }
        }),
    );
    let id = q
        .enqueue_now(NewJob::new("verbose", json!({})))
        .await
        .unwrap();
    assert_eq!(w.run_due_jobs().await.unwrap(), 1);
    let err = q.attempts(id).await.unwrap()[0].error.clone().unwrap();
    assert!(err.len() <= 2048);
}

async fn delayed_jobs_do_not_run_early(t: TestDb) {
    let (q, clock) = setup(&t);
    let (worker, counts) = counting_worker(&q, "later", "w");
    let id = q
        .enqueue_now(NewJob::new("later", json!({})).with_run_at(T0.plus(Duration::from_secs(60))))
        .await
        .unwrap();
    assert_eq!(worker.run_due_jobs().await.unwrap(), 0);
    clock.advance(Duration::from_secs(59));
    assert_eq!(worker.run_due_jobs().await.unwrap(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(worker.run_due_jobs().await.unwrap(), 1);
    assert_eq!(counts.lock().unwrap().get(&id), Some(&1));
}

async fn dedupe_keys_return_the_unfinished_job(t: TestDb) {
    let (q, _clock) = setup(&t);
    let (worker, counts) = counting_worker(&q, "sync", "w");
    let first = q
        .enqueue_now(NewJob::new("sync", json!({"n": 1})).with_dedupe_key("contact-42"))
        .await
        .unwrap();
    let again = q
        .enqueue_now(NewJob::new("sync", json!({"n": 2})).with_dedupe_key("contact-42"))
        .await
        .unwrap();
    assert_eq!(first, again);
    let other_kind = q
        .enqueue_now(NewJob::new("other", json!({})).with_dedupe_key("contact-42"))
        .await
        .unwrap();
    assert_ne!(first, other_kind);

    // In one multi-row insert too, duplicates inside the batch included.
    let mut tx = t.db.begin().await.unwrap();
    let ids = q
        .enqueue_many(
            &mut tx,
            vec![
                NewJob::new("sync", json!({})).with_dedupe_key("contact-42"),
                NewJob::new("sync", json!({})).with_dedupe_key("contact-7"),
                NewJob::new("sync", json!({})).with_dedupe_key("contact-7"),
                NewJob::new("sync", json!({})),
            ],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids[0], first);
    assert_eq!(ids[1], ids[2]);
    assert_ne!(ids[1], ids[3]);

    assert_eq!(worker.run_due_jobs().await.unwrap(), 3);
    assert_eq!(counts.lock().unwrap().len(), 3);
    // Once finished, the key is free again.
    let after = q
        .enqueue_now(NewJob::new("sync", json!({})).with_dedupe_key("contact-42"))
        .await
        .unwrap();
    assert_ne!(after, first);
    assert_eq!(
        q.get(first).await.unwrap().unwrap().payload,
        json!({"n": 1})
    );
}

async fn a_panicking_handler_does_not_kill_the_worker(t: TestDb) {
    let (q, clock) = setup(&t);
    let worker = Worker::new(q.clone()).register(
        "fragile",
        handler_fn(|job: JobContext| async move {
            assert!(job.payload["panic"] != json!(true), "the handler blew up");
            JobOutcome::Done
        }),
    );
    let bad = q
        .enqueue_now(NewJob::new("fragile", json!({"panic": true})))
        .await
        .unwrap();
    let good = q
        .enqueue_now(NewJob::new("fragile", json!({})))
        .await
        .unwrap();
    assert_eq!(worker.run_due_jobs().await.unwrap(), 2);
    assert_eq!(
        q.get(good).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    let job = q.get(bad).await.unwrap().unwrap();
    assert_eq!(
        job.state,
        JobState::Queued,
        "a panic is a retryable failure"
    );
    assert!(job.last_error.unwrap().contains("the handler blew up"));

    let next = q
        .enqueue_now(NewJob::new("fragile", json!({})))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(3600));
    assert_eq!(worker.run_due_jobs().await.unwrap(), 2);
    assert_eq!(
        q.get(next).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(q.get(bad).await.unwrap().unwrap().attempts, 2);
}

async fn graceful_shutdown_releases_unstarted_jobs(t: TestDb) {
    let (q, _clock) = setup(&t);
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (s, r) = (Arc::clone(&started), Arc::clone(&release));
    let worker = Worker::new(q.clone())
        .with_id("stopping")
        .with_config(WorkerConfig {
            batch_size: 10,
            concurrency: 1,
            poll_interval: Duration::from_millis(10),
            ..WorkerConfig::default()
        })
        .register(
            "slow",
            handler_fn(move |_job: JobContext| {
                let (s, r) = (Arc::clone(&s), Arc::clone(&r));
                async move {
                    s.notify_one();
                    r.notified().await;
                    JobOutcome::Done
                }
            }),
        );
    let mut tx = t.db.begin().await.unwrap();
    let ids = q
        .enqueue_many(
            &mut tx,
            (0..10)
                .map(|i| NewJob::new("slow", json!({ "i": i })))
                .collect(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let shutdown = CancellationToken::new();
    let handle = tokio::spawn({
        let worker = worker.clone();
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the first job starts");
    shutdown.cancel();
    release.notify_one();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();

    let mut states = HashMap::new();
    for id in &ids {
        let job = q.get(*id).await.unwrap().unwrap();
        *states.entry(job.state).or_insert(0) += 1;
        if job.state == JobState::Queued {
            assert_eq!(job.attempts, 0, "an unstarted claim is not a try");
            assert!(job.locked_by.is_none());
            assert!(q.attempts(*id).await.unwrap().is_empty());
        }
    }
    assert_eq!(states.get(&JobState::Succeeded), Some(&1));
    assert_eq!(states.get(&JobState::Queued), Some(&9));

    let (other, counts) = counting_worker(&q, "slow", "other");
    assert_eq!(other.run_due_jobs().await.unwrap(), 9);
    assert_eq!(counts.lock().unwrap().len(), 9);
}

async fn shutdown_requeues_jobs_that_outlive_the_drain_timeout(t: TestDb) {
    let (q, _clock) = setup(&t);
    let started = Arc::new(Notify::new());
    let s = Arc::clone(&started);
    let worker = Worker::new(q.clone())
        .with_id("impatient")
        .with_config(WorkerConfig {
            drain_timeout: Duration::from_millis(50),
            ..WorkerConfig::default()
        })
        .register(
            "stuck",
            handler_fn(move |_job: JobContext| {
                let s = Arc::clone(&s);
                async move {
                    s.notify_one();
                    std::future::pending::<()>().await;
                    JobOutcome::Done
                }
            }),
        );
    let id = q
        .enqueue_now(NewJob::new("stuck", json!({})))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the job starts");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("the worker stops")
        .unwrap()
        .unwrap();
    let job = q.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempts, 1);
    let attempts = q.attempts(id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, AttemptOutcome::Lost);
}

async fn the_run_loop_picks_up_new_jobs(t: TestDb) {
    let (q, _clock) = setup(&t);
    let (worker, counts) = counting_worker(&q, "live", "looper");
    let worker = worker.with_config(WorkerConfig {
        poll_interval: Duration::from_secs(3600),
        ..WorkerConfig::default()
    });
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    // The wake-up from `enqueue_now`, not the (hour-long) poll, gets the jobs run.
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            q.enqueue_now(NewJob::new("live", json!({ "i": i })))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut all = true;
        for id in &ids {
            all &= q.get(*id).await.unwrap().unwrap().state == JobState::Succeeded;
        }
        if all {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "jobs did not run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert!(counts.lock().unwrap().values().all(|&n| n == 1));
}

async fn a_kind_limit_caps_its_handlers_and_not_the_others(t: TestDb) {
    let (q, _clock) = setup(&t);
    // Handlers of "narrow" running now and at most; the order kinds finished in.
    let now = Arc::new(Mutex::new((0usize, 0usize)));
    let finished: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let handler = |kind: &'static str| {
        let (now, finished) = (Arc::clone(&now), Arc::clone(&finished));
        handler_fn(move |_job: JobContext| {
            let (now, finished) = (Arc::clone(&now), Arc::clone(&finished));
            async move {
                if kind == "narrow" {
                    let mut n = now.lock().unwrap();
                    n.0 += 1;
                    n.1 = n.1.max(n.0);
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
                if kind == "narrow" {
                    now.lock().unwrap().0 -= 1;
                }
                finished.lock().unwrap().push(kind);
                JobOutcome::Done
            }
        })
    };
    let worker = Worker::new(q.clone())
        .with_config(WorkerConfig {
            concurrency: 8,
            kind_limits: [("narrow".to_owned(), 2)].into(),
            ..WorkerConfig::default()
        })
        .register("narrow", handler("narrow"))
        .register("wide", handler("wide"));
    let mut tx = t.db.begin().await.unwrap();
    let jobs = (0..12)
        .map(|i| NewJob::new("narrow", json!({ "i": i })))
        .chain((0..4).map(|i| NewJob::new("wide", json!({ "i": i }))))
        .collect();
    let ids = q.enqueue_many(&mut tx, jobs).await.unwrap();
    tx.commit().await.unwrap();

    let shutdown = CancellationToken::new();
    let handle = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while finished.lock().unwrap().len() < ids.len() {
        assert!(tokio::time::Instant::now() < deadline, "jobs did not run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(
        now.lock().unwrap().1,
        2,
        "at most, and up to, two narrow jobs at once"
    );
    let order = finished.lock().unwrap().clone();
    let last_narrow = order.iter().rposition(|k| *k == "narrow").unwrap();
    let last_wide = order.iter().rposition(|k| *k == "wide").unwrap();
    assert!(
        last_wide < last_narrow,
        "the other kind did not wait for the narrow queue: {order:?}"
    );
    for id in ids {
        assert_eq!(q.get(id).await.unwrap().unwrap().state, JobState::Succeeded);
    }
}

/// A worker whose kind is at its limit still runs other kinds as soon as they are enqueued
/// (no poll in this test): the wake-ups about the kind held back do not hide theirs.
async fn wake_ups_for_a_kind_held_back_do_not_hide_the_others(t: TestDb) {
    let (q, _clock) = setup(&t);
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let handler = |wait: bool| {
        let (release, ran) = (Arc::clone(&release), Arc::clone(&ran));
        handler_fn(move |job: JobContext| {
            let (release, ran) = (Arc::clone(&release), Arc::clone(&ran));
            async move {
                if wait {
                    release.acquire().await.unwrap().forget();
                }
                ran.lock()
                    .unwrap()
                    .push(job.payload["n"].as_str().unwrap().to_owned());
                JobOutcome::Done
            }
        })
    };
    let worker = Worker::new(q.clone())
        .with_config(WorkerConfig {
            concurrency: 8,
            poll_interval: Duration::from_secs(3600),
            kind_limits: [("narrow".to_owned(), 1)].into(),
            ..WorkerConfig::default()
        })
        .register("narrow", handler(true))
        .register("wide", handler(false));
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { worker.run(shutdown).await }
    });
    let wait_for = |n: &'static str| {
        let ran = Arc::clone(&ran);
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while !ran.lock().unwrap().iter().any(|r| r == n) {
                assert!(tokio::time::Instant::now() < deadline, "{n} did not run");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let enqueue = |kind: &'static str, n: &'static str| {
        let (q, db) = (q.clone(), t.db.clone());
        async move {
            let mut tx = db.begin().await.unwrap();
            q.enqueue(&mut tx, NewJob::new(kind, json!({ "n": n })))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            q.notify_kind(kind);
        }
    };
    // The narrow kind's one handler is busy, its other jobs wait.
    q.enqueue_now(NewJob::new("narrow", json!({ "n": "n1" })))
        .await
        .unwrap();
    enqueue("narrow", "n2").await;
    q.enqueue_now(NewJob::new("wide", json!({ "n": "w1" })))
        .await
        .unwrap();
    wait_for("w1").await;
    // Wake-ups for the narrow kind, then one for the other kind, then a plain one.
    for n in ["n3", "n4", "n5"] {
        enqueue("narrow", n).await;
    }
    enqueue("wide", "w2").await;
    wait_for("w2").await;
    enqueue("narrow", "n6").await;
    let mut tx = t.db.begin().await.unwrap();
    q.enqueue(&mut tx, NewJob::new("wide", json!({ "n": "w3" })))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    q.notify();
    wait_for("w3").await;
    assert!(
        !ran.lock().unwrap().iter().any(|r| r.starts_with('n')),
        "the narrow handler was released early"
    );
    // Released, the narrow jobs all run.
    release.add_permits(6);
    for n in ["n1", "n2", "n3", "n4", "n5", "n6"] {
        wait_for(n).await;
    }
    shutdown.cancel();
    handle.await.unwrap().unwrap();
}

/// Merges claimed jobs of its kind by organisation, up to 3; fails the jobs whose payload
/// says so, and panics on a merged run holding a job whose payload says so.
struct Merging {
    calls: Arc<Mutex<Vec<Vec<i64>>>>,
}

#[async_trait::async_trait]
impl wamage_platform::jobs::JobHandler for Merging {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        self.run_many(std::slice::from_ref(job)).await.remove(0)
    }

    fn merge_limit(&self) -> usize {
        3
    }

    async fn run_many(&self, jobs: &[JobContext]) -> Vec<JobOutcome> {
        let orgs: Vec<_> = jobs.iter().map(|j| j.org_id).collect();
        assert!(
            orgs.iter().all(|o| *o == orgs[0]),
            "one organisation per run"
        );
        let ns: Vec<i64> = jobs
            .iter()
            .map(|j| j.payload["n"].as_i64().unwrap())
            .collect();
        self.calls.lock().unwrap().push(ns.clone());
        if jobs.len() > 1 && jobs.iter().any(|j| j.payload["panic"] == true) {
            panic!("merged run of {ns:?}");
        }
        jobs.iter()
            .map(|j| {
                if j.payload["fail"] == true {
                    JobOutcome::fail("told to")
                } else {
                    JobOutcome::Done
                }
            })
            .collect()
    }
}

async fn merged_jobs_run_together_and_end_each_on_its_own(t: TestDb) {
    let (q, _clock) = setup(&t);
    let calls: Arc<Mutex<Vec<Vec<i64>>>> = Arc::default();
    let worker = Worker::new(q.clone()).with_id("w1").register(
        "merge",
        Merging {
            calls: Arc::clone(&calls),
        },
    );
    let (a, b) = (OrgId::new(), OrgId::new());
    let mut tx = t.db.begin().await.unwrap();
    // Org a: 0..5 (job 1 fails on its own); org b: 10, 11.
    let jobs = (0..5)
        .map(|n| NewJob::new("merge", json!({ "n": n, "fail": n == 1 })).with_org(a))
        .chain((10..12).map(|n| NewJob::new("merge", json!({ "n": n })).with_org(b)))
        .collect();
    let ids = q.enqueue_many(&mut tx, jobs).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(worker.run_due_jobs().await.unwrap(), 7);
    let mut runs = calls.lock().unwrap().clone();
    runs.sort();
    assert_eq!(
        runs,
        vec![vec![0, 1, 2], vec![3, 4], vec![10, 11]],
        "up to 3 of an organisation per run"
    );
    for (i, id) in ids.iter().enumerate() {
        let want = if i == 1 {
            JobState::Dead
        } else {
            JobState::Succeeded
        };
        assert_eq!(q.get(*id).await.unwrap().unwrap().state, want, "job {i}");
    }

    // A merged run that panics: each of its jobs retries, none is lost.
    calls.lock().unwrap().clear();
    let mut tx = t.db.begin().await.unwrap();
    let jobs = vec![
        NewJob::new("merge", json!({ "n": 20 })).with_org(a),
        NewJob::new("merge", json!({ "n": 21, "panic": true })).with_org(a),
    ];
    let ids = q.enqueue_many(&mut tx, jobs).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(worker.run_due_jobs().await.unwrap(), 2);
    for id in &ids {
        let job = q.get(*id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued, "retried");
        assert!(
            job.last_error.as_deref().unwrap().contains("panicked"),
            "{:?}",
            job.last_error
        );
    }
}

async fn stats_count_per_kind(t: TestDb) {
    let (q, clock) = setup(&t);
    for _ in 0..2 {
        q.enqueue_now(NewJob::new("a", json!({}))).await.unwrap();
    }
    q.enqueue_now(NewJob::new("a", json!({})).with_run_at(T0.plus(Duration::from_secs(3600))))
        .await
        .unwrap();
    for _ in 0..2 {
        q.enqueue_now(NewJob::new("b", json!({}))).await.unwrap();
    }
    let cancelled = q.enqueue_now(NewJob::new("c", json!({}))).await.unwrap();
    assert!(q.cancel(cancelled).await.unwrap());
    assert!(!q.cancel(cancelled).await.unwrap());
    clock.advance(Duration::from_secs(30));

    let claimed = q
        .claim("x", &["a".to_owned()], 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let failing = Worker::new(q.clone()).register(
        "b",
        handler_fn(|_job: JobContext| async move { JobOutcome::fail("nope") }),
    );
    assert_eq!(failing.run_due_jobs().await.unwrap(), 2);

    let stats = q.sample_metrics().await.unwrap();
    assert_eq!(
        stats,
        vec![
            KindStats {
                kind: "a".to_owned(),
                queued: 2,
                running: 1,
                dead: 0,
                oldest_queued_age: Duration::from_secs(30),
            },
            KindStats {
                kind: "b".to_owned(),
                queued: 0,
                running: 0,
                dead: 2,
                oldest_queued_age: Duration::ZERO,
            },
        ]
    );
    assert_eq!(
        q.get(cancelled).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
}

async fn priorities_and_purge(t: TestDb) {
    let (q, clock) = setup(&t);
    let order: Arc<Mutex<Vec<i64>>> = Arc::default();
    let o = Arc::clone(&order);
    let worker = Worker::new(q.clone())
        .with_config(WorkerConfig {
            batch_size: 1,
            concurrency: 1,
            ..WorkerConfig::default()
        })
        .register(
            "p",
            handler_fn(move |job: JobContext| {
                let o = Arc::clone(&o);
                async move {
                    o.lock().unwrap().push(job.payload["n"].as_i64().unwrap());
                    JobOutcome::Done
                }
            }),
        );
    let low = q
        .enqueue_now(NewJob::new("p", json!({"n": 1})))
        .await
        .unwrap();
    let high = q
        .enqueue_now(NewJob::new("p", json!({"n": 2})).with_priority(10))
        .await
        .unwrap();
    assert_eq!(worker.run_due_jobs().await.unwrap(), 2);
    assert_eq!(*order.lock().unwrap(), vec![2, 1]);
    assert_eq!(q.attempts(low).await.unwrap().len(), 1);

    clock.advance(Duration::from_secs(8 * 24 * 3600));
    assert_eq!(
        q.purge_finished(Duration::from_secs(7 * 24 * 3600))
            .await
            .unwrap(),
        2
    );
    // The attempt history goes with the job.
    for id in [low, high] {
        assert!(q.get(id).await.unwrap().is_none());
        assert!(q.attempts(id).await.unwrap().is_empty());
    }
}

/// A claim hands the handler the job as enqueued (both backends decode claimed rows their own
/// way: PostgreSQL from `RETURNING`, SQLite from one JSON row).
async fn claims_carry_the_enqueued_fields(t: TestDb) {
    let (q, _clock) = setup(&t);
    let org = OrgId(uuid::Uuid::now_v7());
    let payload = json!({"to": "+15550100", "text": "héllo", "n": [1, 2.5, null], "o": {}});
    let with_org = q
        .enqueue_now(
            NewJob::new("c", payload.clone())
                .with_org(org)
                .with_max_attempts(7)
                .with_priority(5),
        )
        .await
        .unwrap();
    let without = q.enqueue_now(NewJob::new("c", json!(null))).await.unwrap();
    let kinds = vec!["c".to_owned()];
    let jobs = q
        .claim("w1", &kinds, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 2);
    // Priority first.
    assert_eq!(jobs[0].id, with_org);
    assert_eq!(jobs[0].org_id, Some(org));
    assert_eq!(jobs[0].kind, "c");
    assert_eq!(jobs[0].payload, payload);
    assert_eq!(jobs[0].attempt, 1);
    assert_eq!(jobs[0].max_attempts, 7);
    assert_eq!(jobs[0].run_at, T0);
    assert_eq!(jobs[0].created_at, T0);
    assert_eq!(jobs[0].worker_id, "w1");
    assert_eq!(jobs[1].id, without);
    assert_eq!(jobs[1].org_id, None);
    assert_eq!(jobs[1].payload, json!(null));
    let job = q.get(with_org).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.locked_by.as_deref(), Some("w1"));
    // Nothing left to claim.
    assert!(
        q.claim("w2", &kinds, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A claim that leaves kinds out (a worker whose kind is at its limit) takes the due jobs of
/// the other kinds in claim order (priority, then due time), past a backlog of the kinds left
/// out, and never one of those, one not due yet or one already claimed.
async fn a_claim_among_some_kinds_takes_only_theirs_in_order(t: TestDb) {
    let (q, clock) = setup(&t);
    let mut backlog = Vec::new();
    for n in 0..300 {
        backlog.push(NewJob::new("ingest", json!({ "n": n })).with_priority(10));
    }
    let mut tx = t.db.begin().await.unwrap();
    q.enqueue_many(&mut tx, backlog).await.unwrap();
    tx.commit().await.unwrap();
    let at = |secs: u64| T0.plus(Duration::from_secs(secs));
    let mut want = Vec::new();
    for (kind, priority, due) in [
        ("send", 5, 3),
        ("mail", 0, 1),
        ("send", 5, 1),
        ("mail", 7, 2),
        ("send", 0, 0),
    ] {
        let id = q
            .enqueue_now(
                NewJob::new(kind, json!({}))
                    .with_priority(priority)
                    .with_run_at(at(due)),
            )
            .await
            .unwrap();
        want.push((id, priority, due));
    }
    // Not due before the others are claimed.
    q.enqueue_now(
        NewJob::new("send", json!({}))
            .with_priority(9)
            .with_run_at(at(60)),
    )
    .await
    .unwrap();
    clock.advance(Duration::from_secs(5));
    want.sort_by_key(|(_, priority, due)| (-priority, *due));
    let want: Vec<JobId> = want.into_iter().map(|(id, _, _)| id).collect();
    let kinds = ["send".to_owned(), "mail".to_owned(), "other".to_owned()];
    let lease = Duration::from_secs(60);
    // Which jobs a claim takes follows the claim order; the order they come back in does not.
    let ids = |jobs: Vec<JobContext>| jobs.into_iter().map(|j| j.id).collect::<BTreeSet<_>>();
    let first = ids(q.claim_among("w1", &kinds, 3, lease).await.unwrap());
    assert_eq!(first, want[..3].iter().copied().collect());
    let rest = ids(q.claim_among("w2", &kinds, 10, lease).await.unwrap());
    assert_eq!(rest, want[3..].iter().copied().collect());
    assert!(
        q.claim_among("w3", &kinds, 10, lease)
            .await
            .unwrap()
            .is_empty()
    );
    // The backlog left out is all still there, for a claim that takes its kind.
    let ingest = q
        .claim("w4", &["ingest".to_owned()], 1000, lease)
        .await
        .unwrap();
    assert_eq!(ingest.len(), 300);
    assert!(ingest.iter().all(|j| j.kind == "ingest"));
}

wamage_platform::backend_tests!(
    [wamage_platform::migrations()];
    claims_carry_the_enqueued_fields,
    a_claim_among_some_kinds_takes_only_theirs_in_order,
    rolled_back_jobs_never_run_committed_ones_run_once,
    two_workers_never_run_a_job_twice,
    a_dead_workers_job_is_rerun_after_its_lease_expires,
    a_restarted_sole_process_runs_its_predecessors_jobs_at_once,
    heartbeats_keep_a_running_job_leased,
    retries_follow_the_policy,
    delayed_jobs_do_not_run_early,
    dedupe_keys_return_the_unfinished_job,
    a_panicking_handler_does_not_kill_the_worker,
    graceful_shutdown_releases_unstarted_jobs,
    shutdown_requeues_jobs_that_outlive_the_drain_timeout,
    the_run_loop_picks_up_new_jobs,
    a_kind_limit_caps_its_handlers_and_not_the_others,
    wake_ups_for_a_kind_held_back_do_not_hide_the_others,
    merged_jobs_run_together_and_end_each_on_its_own,
    stats_count_per_kind,
    priorities_and_purge,
);

/// PostgreSQL: jobs enqueued in one statement with the caller's own writes exist together with
/// them or not at all.
mod one_statement_on_postgres {
    use super::*;
    use wamage_platform::{db::Db, jobs::PG_WITH_FIRST_PARAM};

    const NOTES: &str = "notes AS (INSERT INTO test_notes (id, body) \
                         SELECT * FROM UNNEST($10::uuid[], $11::bytea[]))";

    async fn counts(pool: &sqlx::PgPool) -> (i64, i64) {
        let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM test_notes")
            .fetch_one(pool)
            .await
            .unwrap();
        let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
            .fetch_one(pool)
            .await
            .unwrap();
        (notes, jobs)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_share_one_statement_with_other_writes() {
        let Some(t) = TestDb::postgres(&[wamage_platform::migrations()]).await else {
            eprintln!(
                "skipped: {} is not set",
                wamage_platform::testing::POSTGRES_URL_VAR
            );
            return;
        };
        assert_eq!(PG_WITH_FIRST_PARAM, 10);
        let Db::Postgres(pool) = &t.db else {
            panic!("a PostgreSQL test database");
        };
        sqlx::query("CREATE TABLE test_notes (id UUID PRIMARY KEY, body BYTEA NOT NULL)")
            .execute(pool)
            .await
            .unwrap();
        let (q, _clock) = setup(&t);
        let org = OrgId(uuid::Uuid::now_v7());
        let first = uuid::Uuid::now_v7();
        let notes = vec![first, uuid::Uuid::now_v7()];
        let bodies: Vec<&[u8]> = vec![b"one", b"\x00two\xff"];

        let ids = q
            .enqueue_many_with_pg(
                pool,
                NOTES,
                |s| s.bind(notes.clone()).bind(bodies.clone()),
                &[
                    NewJob::new("n", json!({"note": 1}))
                        .with_org(org)
                        .with_priority(3),
                    NewJob::new("n", json!({"note": 2})),
                ],
            )
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(counts(pool).await, (2, 2));
        let stored: Vec<u8> = sqlx::query_scalar("SELECT body FROM test_notes WHERE id = $1")
            .bind(notes[1])
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(stored, b"\x00two\xff");
        let claimed = q
            .claim("w1", &["n".to_owned()], 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        assert_eq!(claimed[0].id, ids[0]);
        assert_eq!(claimed[0].org_id, Some(org));
        assert_eq!(claimed[0].payload, json!({"note": 1}));
        assert_eq!(claimed[0].created_at, T0);
        assert_eq!(claimed[1].id, ids[1]);
        assert_eq!(claimed[1].org_id, None);

        // The caller's write fails (a note's id taken): no job either.
        let err = q
            .enqueue_many_with_pg(
                pool,
                NOTES,
                |s| {
                    s.bind(vec![uuid::Uuid::now_v7(), first])
                        .bind(bodies.clone())
                },
                &[NewJob::new("n", json!({"note": 3}))],
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("duplicate key"), "{err}");
        assert_eq!(counts(pool).await, (2, 2));

        // Jobs that cannot be enqueued: nothing is written.
        for bad in [
            NewJob::new("n", json!(null)).with_dedupe_key("k"),
            NewJob::new(" ", json!(null)),
        ] {
            let err = q
                .enqueue_many_with_pg(
                    pool,
                    NOTES,
                    |s| {
                        s.bind(vec![uuid::Uuid::now_v7()])
                            .bind(vec![b"x".as_slice()])
                    },
                    &[bad],
                )
                .await
                .unwrap_err();
            assert!(matches!(err, JobError::Invalid(_)), "{err}");
            assert_eq!(counts(pool).await, (2, 2));
        }
    }
}
