//! The relational store's upkeep (planner statistics of tables that grew fast) and its
//! transactions' key locks.

#![allow(clippy::unwrap_used)] // test helpers are not `#[test]` fns, which is what clippy.toml exempts

use std::time::{Duration, Instant};

use serde_json::json;
use wamage_kernel::Clock;
use wamage_platform::{
    Db,
    db::planner_stats,
    jobs::{JobQueue, NewJob},
    testing::TestDb,
};

/// A table that grew from nothing to a thousand rows is analyzed; then it is fresh again.
async fn a_table_that_grew_fast_is_analyzed_once(t: TestDb) {
    let queue = JobQueue::new(t.db.clone(), Clock::system());
    let mut tx = t.db.begin().await.unwrap();
    let jobs = (0..1_200)
        .map(|i| NewJob::new("grow", json!({ "i": i })))
        .collect();
    queue.enqueue_many(&mut tx, jobs).await.unwrap();
    tx.commit().await.unwrap();

    let Db::Postgres(pool) = &t.db else {
        // SQLite plans these lookups without statistics: nothing to do there.
        assert!(planner_stats::refresh(&t.db).await.unwrap().is_empty());
        return;
    };
    // The server's activity counters reach `pg_stat_user_tables` within a second or so of
    // the commit.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let analyzed = planner_stats::refresh(&t.db).await.unwrap();
        if analyzed.iter().any(|t| t == "jobs") {
            break;
        }
        assert!(Instant::now() < deadline, "jobs was never analyzed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (estimate, analyzed): (f32, bool) = sqlx::query_as(
        "SELECT c.reltuples, s.last_analyze IS NOT NULL FROM pg_class c \
         JOIN pg_stat_user_tables s ON s.relid = c.oid \
         WHERE s.schemaname = current_schema() AND s.relname = 'jobs'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(analyzed);
    assert!(
        estimate >= 1_000.0,
        "the planner still thinks jobs holds {estimate} rows"
    );
    // Fresh now: the next look leaves it alone.
    let again = planner_stats::refresh(&t.db).await.unwrap();
    assert!(
        !again.iter().any(|t| t == "jobs"),
        "analyzed twice: {again:?}"
    );
}

/// Transactions locking a shared key take turns; those with other keys do not wait.
async fn transactions_locking_one_key_take_turns(t: TestDb) {
    let keys = |ks: &[&str]| ks.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
    if !matches!(t.db, Db::Postgres(_)) {
        // SQLite's write transactions take turns already: the locks cost nothing.
        let mut tx = t.db.begin().await.unwrap();
        tx.lock_keys(&keys(&["a", "b"])).await.unwrap();
        tx.commit().await.unwrap();
        return;
    }
    let mut first = t.db.begin().await.unwrap();
    first.lock_keys(&keys(&["a", "b"])).await.unwrap();
    // Other keys (and none at all) are not held up.
    let mut other = t.db.begin().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), other.lock_keys(&keys(&["c", "d"])))
        .await
        .expect("other keys wait for nothing")
        .unwrap();
    other.lock_keys(&[]).await.unwrap();
    other.commit().await.unwrap();
    // A shared key waits until the first transaction ends.
    let db = t.db.clone();
    let second = tokio::spawn(async move {
        let mut tx = db.begin().await.unwrap();
        tx.lock_keys(&keys(&["d", "b", "b"])).await.unwrap();
        tx.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the shared key was not held");
    first.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the key was not given back at commit")
        .unwrap();
}

wamage_platform::backend_tests!(
    [wamage_platform::migrations()];
    a_table_that_grew_fast_is_analyzed_once,
    transactions_locking_one_key_take_turns,
);
