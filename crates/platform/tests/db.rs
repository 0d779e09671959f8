//! The relational store's upkeep (planner statistics of tables that grew fast, SQLite's WAL
//! checkpoints) and its transactions' key locks.

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

/// SQLite: a commit never copies the WAL into the database file itself (automatic checkpoints
/// are off); the background checkpointer does it soon after.
async fn sqlite_writes_reach_the_database_file_in_the_background(t: TestDb) {
    let Db::Sqlite(pool) = &t.db else {
        return;
    };
    let (every,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        every, 0,
        "commits would checkpoint with the write lock held"
    );
    let file = pool.connect_options().get_filename().to_path_buf();
    let wal = file.with_extension("db-wal");
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let before = size(&file);

    // ~8 MiB in one transaction: eight times SQLite's automatic checkpoint mark.
    let mut tx = t.db.begin().await.unwrap();
    wamage_platform::with_tx!(&mut tx, |e| sqlx::query(
        "CREATE TABLE ckpt_test (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"
    )
    .execute(e)
    .await
    .map(drop))
    .unwrap();
    for i in 0..2_000_i64 {
        wamage_platform::with_tx!(&mut tx, |e| sqlx::query(
            "INSERT INTO ckpt_test (id, body) VALUES ($1, randomblob(4096))"
        )
        .bind(i)
        .execute(e)
        .await
        .map(drop))
        .unwrap();
    }
    tx.commit().await.unwrap();
    assert!(size(&wal) >= 8 << 20, "the rows are in the WAL");

    let deadline = Instant::now() + Duration::from_secs(20);
    while size(&file) < before + (8 << 20) {
        assert!(
            Instant::now() < deadline,
            "the database file never got the rows ({} bytes, WAL {} bytes)",
            size(&file),
            size(&wal)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM ckpt_test")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 2_000);
}

wamage_platform::backend_tests!(
    [wamage_platform::migrations()];
    sqlite_writes_reach_the_database_file_in_the_background,
    a_table_that_grew_fast_is_analyzed_once,
    transactions_locking_one_key_take_turns,
);
