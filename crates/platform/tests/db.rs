//! The relational store's upkeep (planner statistics of tables that grew fast, SQLite's WAL
//! checkpoints), its transactions' key locks, and writes that are abandoned half-way.

#![allow(clippy::unwrap_used)] // test helpers are not `#[test]` fns, which is what clippy.toml exempts

use std::time::{Duration, Instant};

use serde_json::json;
use wamage_kernel::Clock;
use wamage_platform::{
    Db, Tx,
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

/// Inserts `id` in `db_write_test` within `tx`.
async fn insert_in(tx: &mut Tx, id: i64) {
    wamage_platform::with_tx!(tx, |e| sqlx::query(
        "INSERT INTO db_write_test (id) VALUES ($1)"
    )
    .bind(id)
    .execute(e)
    .await
    .map(drop))
    .unwrap();
}

/// Inserts `id` in `db_write_test` in a transaction of its own, committed.
async fn insert_committed(db: &Db, id: i64) {
    let mut tx = db.begin().await.unwrap();
    insert_in(&mut tx, id).await;
    tx.commit().await.unwrap();
}

/// The ids in `db_write_test`, as a connection other than the writer sees them.
async fn committed_ids(db: &Db) -> Vec<i64> {
    let mut tx = db.begin_read().await.unwrap();
    let ids: Vec<(i64,)> = wamage_platform::with_tx!(&mut tx, |e| sqlx::query_as(
        "SELECT id FROM db_write_test ORDER BY id"
    )
    .fetch_all(e)
    .await)
    .unwrap();
    ids.into_iter().map(|(id,)| id).collect()
}

/// Writes (SQLite: all on the one writer connection) from many tasks at once all land; a
/// transaction dropped without commit, or cut short in the middle of a statement, leaves
/// nothing behind, and the writes after it are committed for every connection to see (not
/// left inside a transaction nobody ends).
async fn writes_land_and_abandoned_transactions_leave_nothing(t: TestDb) {
    wamage_platform::with_write!(&t.db, |e| sqlx::query(
        "CREATE TABLE db_write_test (id BIGINT PRIMARY KEY)"
    )
    .execute(e)
    .await
    .map(drop))
    .unwrap();

    // Dropped without commit.
    let mut tx = t.db.begin().await.unwrap();
    insert_in(&mut tx, -1).await;
    drop(tx);
    insert_committed(&t.db, 1).await;
    assert_eq!(committed_ids(&t.db).await, vec![1]);

    // Cut short while a long statement runs after an insert.
    let cut = tokio::time::timeout(Duration::from_millis(20), async {
        let mut tx = t.db.begin().await.unwrap();
        insert_in(&mut tx, -2).await;
        let _: Result<(i64,), sqlx::Error> = wamage_platform::with_tx!(&mut tx, |e| {
            sqlx::query_as(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n \
                 WHERE i < 5000000) SELECT count(*) FROM n",
            )
            .fetch_one(e)
            .await
        });
        tx.commit().await.unwrap();
    })
    .await;
    assert!(cut.is_err(), "the long statement finished within 20 ms");
    insert_committed(&t.db, 2).await;
    assert_eq!(committed_ids(&t.db).await, vec![1, 2]);

    // Cut short at every point of a transaction (begin, insert, commit): whatever committed
    // is there, the next write is committed.
    let mut ok = Vec::new();
    for i in 0..60_i64 {
        let id = 100 + i;
        let done = tokio::time::timeout(
            Duration::from_micros(50 * i as u64),
            insert_committed(&t.db, id),
        )
        .await;
        if done.is_ok() {
            ok.push(id);
        }
    }
    insert_committed(&t.db, 3).await;
    let ids = committed_ids(&t.db).await;
    assert!(
        ids.contains(&3),
        "the write after the cut ones is not visible: {ids:?}"
    );
    for id in &ok {
        assert!(ids.contains(id), "{id} was committed but is missing");
    }
    assert!(
        ids.iter().all(|id| *id > 0),
        "a rolled-back row stayed: {ids:?}"
    );

    // Many writers at once, in transactions and single statements.
    let mut tasks = Vec::new();
    for w in 0..16_i64 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10_i64 {
                let id = 10_000 + w * 100 + i;
                if i % 2 == 0 {
                    insert_committed(&db, id).await;
                } else {
                    wamage_platform::with_write!(&db, |e| sqlx::query(
                        "INSERT INTO db_write_test (id) VALUES ($1)"
                    )
                    .bind(id)
                    .execute(e)
                    .await
                    .map(drop))
                    .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let ids = committed_ids(&t.db).await;
    assert_eq!(ids.iter().filter(|id| **id >= 10_000).count(), 160);
}

wamage_platform::backend_tests!(
    [wamage_platform::migrations()];
    sqlite_writes_reach_the_database_file_in_the_background,
    a_table_that_grew_fast_is_analyzed_once,
    transactions_locking_one_key_take_turns,
    writes_land_and_abandoned_transactions_leave_nothing,
);

/// PostgreSQL: a pooled connection idle for a while is checked before it is handed out, so a
/// connection the server ended meanwhile (a restart, an idle timeout) is replaced, not handed
/// to a caller whose statement would fail.
#[tokio::test]
async fn postgres_connections_idle_a_while_are_checked_before_use() {
    let Some(t) = TestDb::postgres(&[wamage_platform::migrations()]).await else {
        eprintln!(
            "skipped: {} is not set",
            wamage_platform::testing::POSTGRES_URL_VAR
        );
        return;
    };
    let one = Db::connect(
        &t.url,
        &wamage_platform::DbOptions {
            max_connections: 1,
            pg_schema: t.pg_schema.clone(),
            ..wamage_platform::DbOptions::default()
        },
    )
    .await
    .unwrap();
    let (Db::Postgres(pool), Db::Postgres(admin)) = (&one, &t.db) else {
        panic!("PostgreSQL test databases are PostgreSQL");
    };
    let pid = |p: &sqlx::PgPool| {
        let p = p.clone();
        async move {
            sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                .fetch_one(&p)
                .await
        }
    };
    let first = pid(pool).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(admin)
        .await
        .unwrap();
    assert!(ended);
    // The server process is gone once it no longer shows among the backends.
    for _ in 0..100 {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(first)
                .fetch_one(admin)
                .await
                .unwrap();
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = pid(pool).await.expect("a checked, working connection");
    assert_ne!(first, second, "the ended connection was replaced");
    one.close().await;
}
