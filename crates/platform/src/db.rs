//! The relational store: SQLite (embedded default) or PostgreSQL (scale-out), picked from the URL.
//!
//! Store code is written once and type-checked against both drivers: [`Db`] and [`Tx`] are enums
//! over the two pools/transactions, and the [`with_db!`](crate::with_db) / [`with_tx!`](crate::with_tx)
//! macros expand a body once per backend. Where the SQL really differs (claims with
//! `FOR UPDATE SKIP LOCKED`, upserts), the body matches on [`Backend`]. This replaces one
//! hand-written `sqlite.rs` + `postgres.rs` pair per store: the two can no longer drift apart,
//! and the conformance suites still run every store test on both backends.
//!
//! Conventions shared by every migration: ids are UUIDs (`BLOB` in SQLite, `UUID` in PostgreSQL),
//! times are `BIGINT` Unix milliseconds, JSON is `TEXT`/`JSONB`, booleans `INTEGER`/`BOOLEAN`,
//! placeholders are `$1, $2, …` (SQLite accepts them too).

use std::{
    collections::{HashMap, VecDeque},
    ops::{Deref, DerefMut},
    path::PathBuf,
    str::FromStr,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

use anyhow::Context;
use sqlx::{
    ConnectOptions, Connection, Database, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool,
    migrate::{Migration, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::oneshot;

pub mod planner_stats;

/// Which engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// A connection pool to either backend. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction on either backend. Dropped without `commit` it rolls back.
#[derive(Debug)]
pub enum Tx {
    /// With this process's turn at the database's write lock when it writes ([`Db::begin`]),
    /// given back when the transaction ends.
    Sqlite(SqliteTx, Option<WriteTurn>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// An SQLite transaction: on this process's writer connection when it writes ([`Db::begin`]),
/// on a pooled connection when it only reads ([`Db::begin_read`]). Dereferences to the
/// connection (`&mut **t` is an executor). Dropped without `commit` it rolls back.
#[derive(Debug)]
pub struct SqliteTx(SqliteTxOn);

#[derive(Debug)]
enum SqliteTxOn {
    Pool(sqlx::Transaction<'static, Sqlite>),
    Writer(WriterConn),
}

impl SqliteTx {
    /// Commits (`commit`) or rolls back the transaction.
    async fn end(self, commit: bool) -> Result<(), sqlx::Error> {
        type Manager = <Sqlite as Database>::TransactionManager;
        match self.0 {
            SqliteTxOn::Pool(t) if commit => t.commit().await,
            SqliteTxOn::Pool(t) => t.rollback().await,
            SqliteTxOn::Writer(mut w) => {
                if commit {
                    Manager::commit(&mut w).await?;
                } else {
                    Manager::rollback(&mut w).await?;
                }
                w.in_tx = false;
                Ok(())
            }
        }
    }
}

impl Deref for SqliteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.0 {
            SqliteTxOn::Pool(t) => t,
            SqliteTxOn::Writer(w) => w,
        }
    }
}

impl DerefMut for SqliteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.0 {
            SqliteTxOn::Pool(t) => t,
            SqliteTxOn::Writer(w) => w,
        }
    }
}

/// The connection this process writes to an SQLite file with, lent to the holder of the write
/// turn and given back to the file's [`WriteGate`] when dropped (an open transaction on it is
/// rolled back first).
///
/// One connection for every write, kept out of the pool: in WAL mode a connection drops its
/// whole page cache when another connection has written since its last transaction, so
/// writes spread over the pool's connections read the tables' and indexes' pages again each
/// time; the writer finds them cached. It also skips the pool's hand-back, which pings the
/// connection's thread after every use.
#[derive(Debug)]
struct WriterConn {
    conn: Option<SqliteConnection>,
    gate: Arc<WriteGate>,
    /// A transaction is open on it (rolled back on drop).
    in_tx: bool,
}

impl WriterConn {
    /// The writer of `pool`'s file, opened with the pool's options the first time (and again
    /// after one was given up). Only the holder of the file's write turn takes it.
    async fn take(pool: &SqlitePool, gate: &Arc<WriteGate>) -> Result<Self, sqlx::Error> {
        let kept = gate
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let mut conn = match kept {
            Some(c) => c,
            None => {
                (*pool.connect_options())
                    .clone()
                    .statement_cache_capacity(WRITER_STATEMENTS)
                    .connect()
                    .await?
            }
        };
        if <Sqlite as Database>::TransactionManager::get_transaction_depth(&conn) > 0 {
            // Left in a transaction by a statement cut short: undone before anything else.
            <Sqlite as Database>::TransactionManager::start_rollback(&mut conn);
        }
        Ok(Self {
            conn: Some(conn),
            gate: Arc::clone(gate),
            in_tx: false,
        })
    }

    /// Begins a write transaction on the writer. A writer whose thread is gone is given up and
    /// a new one opened.
    async fn begin(pool: &SqlitePool, gate: &Arc<WriteGate>) -> Result<Self, sqlx::Error> {
        let mut retried = false;
        loop {
            let mut w = Self::take(pool, gate).await?;
            let begin = sqlx::SqlSafeStr::into_sql_str("BEGIN IMMEDIATE");
            match <Sqlite as Database>::TransactionManager::begin(&mut w, Some(begin)).await {
                Ok(()) => {
                    w.in_tx = true;
                    return Ok(w);
                }
                Err(sqlx::Error::WorkerCrashed) if !retried => {
                    // Dropped, not given back: the next take opens a new one.
                    w.conn = None;
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Deref for WriterConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn
            .as_ref()
            .expect("the writer is held until dropped")
    }
}

impl DerefMut for WriterConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("the writer is held until dropped")
    }
}

impl Drop for WriterConn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.in_tx {
            // Runs on the connection's thread before whatever the next holder sends it.
            <Sqlite as Database>::TransactionManager::start_rollback(&mut conn);
        }
        *self
            .gate
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(conn);
    }
}

/// A write outside a transaction ([`with_write!`](crate::with_write)): the writer connection
/// and the turn, given back in that order.
#[derive(Debug)]
pub struct SqliteWrite {
    conn: WriterConn,
    _turn: WriteTurn,
}

impl SqliteWrite {
    /// The writer connection (an executor), for one statement or several in autocommit.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

/// This process's turn at the write lock of `pool`'s file and its writer connection, for
/// writes outside [`Db::begin`] (`urgent`: ahead of the ordinary writers, like
/// [`Db::begin_urgent`]).
pub async fn sqlite_write(pool: &SqlitePool, urgent: bool) -> Result<SqliteWrite, sqlx::Error> {
    let turn = metered_turn(pool, urgent).await?;
    let conn = WriterConn::take(pool, &turn.gate).await?;
    Ok(SqliteWrite { conn, _turn: turn })
}

/// Numbered placeholders `$from, $from+1, …` for `n` bound values (an `IN (…)` list).
pub fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A turn at an SQLite database's one write lock, among this process's write transactions.
/// Dropping it hands the lock to the next waiter and records how long it was held
/// (`wamage_db_write_hold_seconds`, per lane).
#[derive(Debug)]
pub struct WriteTurn {
    gate: Arc<WriteGate>,
    lane: &'static str,
    since: std::time::Instant,
}

impl WriteTurn {
    fn new(gate: Arc<WriteGate>, urgent: bool) -> Self {
        Self {
            gate,
            lane: if urgent { "urgent" } else { "other" },
            since: std::time::Instant::now(),
        }
    }
}

impl Drop for WriteTurn {
    fn drop(&mut self) {
        self.gate.pass();
        self.gate.wrote.notify_one();
        metrics::histogram!("wamage_db_write_hold_seconds", "lane" => self.lane)
            .record(self.since.elapsed().as_secs_f64());
    }
}

/// How long a write transaction waits for its turn (SQLite's own busy timeout is the same).
const WRITE_TURN_WAIT: Duration = Duration::from_secs(10);

/// Who waits for an SQLite write lock: urgent turns first (their callers are answering a
/// request, like a webhook's acknowledgement), then the others, each in arrival order.
#[derive(Debug, Default)]
struct WriteGate {
    state: Mutex<GateState>,
    /// Told when a write turn ends: the checkpointer has WAL frames to copy.
    wrote: tokio::sync::Notify,
    /// The writer connection while nobody holds it ([`WriterConn`]).
    writer: Mutex<Option<SqliteConnection>>,
}

#[derive(Debug, Default)]
struct GateState {
    taken: bool,
    urgent: VecDeque<oneshot::Sender<()>>,
    other: VecDeque<oneshot::Sender<()>>,
}

impl WriteGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The turn now, or a place in the line.
    fn join(&self, urgent: bool) -> Option<oneshot::Receiver<()>> {
        let mut st = self.lock();
        if !st.taken {
            st.taken = true;
            return None;
        }
        let (tx, rx) = oneshot::channel();
        if urgent {
            st.urgent.push_back(tx);
        } else {
            st.other.push_back(tx);
        }
        Some(rx)
    }

    /// The turn ends: the next waiter still waiting gets it.
    fn pass(&self) {
        let mut st = self.lock();
        while let Some(next) = st.urgent.pop_front().or_else(|| st.other.pop_front()) {
            if next.send(()).is_ok() {
                return;
            }
        }
        st.taken = false;
    }
}

/// A place in a [`WriteGate`]'s line. Given up (timed out, or its caller went away) after the
/// turn was handed to it, it hands the turn on.
struct Waiting {
    gate: Arc<WriteGate>,
    /// `None` once the turn was taken.
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.pass();
            }
        }
    }
}

/// The write gate of `pool`'s database file, shared by every pool of this process on it.
fn gate_of(pool: &SqlitePool) -> Arc<WriteGate> {
    static GATES: OnceLock<Mutex<HashMap<PathBuf, Arc<WriteGate>>>> = OnceLock::new();
    let file = pool.connect_options().get_filename().to_path_buf();
    let mut gates = GATES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Arc::clone(gates.entry(file).or_default())
}

/// Waits for this process's turn to write to `pool`'s database file.
///
/// SQLite lets one connection write at a time; the others' `BEGIN IMMEDIATE` waits in its busy
/// handler, which polls with sleeps growing to 100 ms — so under contention the lock often sits
/// free while every waiter sleeps, and a waiter can lose its turn again and again. Taking
/// turns here first (urgent ones first, then first come, first served, woken the moment the
/// previous transaction ends) leaves SQLite's handler only other processes and the job
/// queue's claims (on purpose: see `JobQueue::claim_due`). Writes outside [`Db::begin`] take
/// their turn with [`with_write!`](crate::with_write) or [`sqlite_write`]. One gate per
/// database file, shared by every pool of this process that opens it.
async fn write_turn(pool: &SqlitePool, urgent: bool) -> Result<WriteTurn, sqlx::Error> {
    let gate = gate_of(pool);
    let Some(rx) = gate.join(urgent) else {
        return Ok(WriteTurn::new(gate, urgent));
    };
    let mut waiting = Waiting {
        gate: Arc::clone(&gate),
        rx: Some(rx),
    };
    let Some(rx) = waiting.rx.as_mut() else {
        return Err(sqlx::Error::PoolTimedOut);
    };
    match tokio::time::timeout(WRITE_TURN_WAIT, rx).await {
        Ok(Ok(())) => {
            // The turn is ours: nothing for the line to hand on.
            waiting.rx = None;
            Ok(WriteTurn::new(gate, urgent))
        }
        _ => Err(sqlx::Error::PoolTimedOut),
    }
}

/// Prepared statements the writer connection keeps (sqlx's default is 100 per connection):
/// every write of the process goes through it, and a statement's text varies with its row
/// count (one text per count of rows inserted together).
const WRITER_STATEMENTS: usize = 1024;

/// Bytes of WAL file kept after a checkpoint (SQLite's `journal_size_limit`).
const WAL_KEPT: u64 = 64 << 20;
/// PostgreSQL: a pooled connection idle at least this long is pinged before it is handed out.
const PG_PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Rows a SQLite statement's thread may hand over before the reading task takes them (sqlx's
/// default is 50).
const ROWS_HANDED_OVER: usize = 1024;

/// The least time between two background checkpoints while writes go on.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The most time between two background checkpoints when this process writes nothing.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(30);

/// Copies the WAL of `pool`'s database into the database file after writes, at most every
/// [`CHECKPOINT_EVERY`] (and every [`CHECKPOINT_IDLE`] otherwise), until the pool closes. A
/// passive checkpoint takes no write lock: writers go on appending while it copies, and the
/// next writer after a complete one starts the WAL over. (Automatic checkpoints are off on
/// these connections: they would run in the write that crosses the mark, with the write lock
/// held.)
async fn checkpointer(pool: SqlitePool) {
    let gate = gate_of(&pool);
    let closed = pool.close_event();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            () = &mut closed => return close_writer(&gate).await,
            () = gate.wrote.notified() => {}
            // Writes made outside this process's turns (another process on the same
            // file) are copied too, if later.
            () = tokio::time::sleep(CHECKPOINT_IDLE) => {}
        }
        let t0 = std::time::Instant::now();
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            Ok((_, log, copied)) => {
                metrics::histogram!("wamage_db_checkpoint_seconds")
                    .record(t0.elapsed().as_secs_f64());
                metrics::gauge!("wamage_db_wal_frames").set(log as f64);
                tracing::trace!(log, copied, "checkpoint");
            }
            Err(e) if pool.is_closed() => {
                tracing::debug!(error = %e, "checkpointer stops: the pool is closed");
                return close_writer(&gate).await;
            }
            Err(e) => tracing::warn!(error = %e, "background checkpoint failed"),
        }
        tokio::select! {
            () = &mut closed => return close_writer(&gate).await,
            () = tokio::time::sleep(CHECKPOINT_EVERY) => {}
        }
    }
}

/// Closes the writer connection of a file whose pool closed (a later pool on the file opens
/// its own).
async fn close_writer(gate: &WriteGate) {
    let writer = gate
        .writer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(conn) = writer {
        let _ = conn.close().await;
    }
}

/// A turn in its lane, its wait recorded.
async fn metered_turn(pool: &SqlitePool, urgent: bool) -> Result<WriteTurn, sqlx::Error> {
    let t0 = std::time::Instant::now();
    let turn = write_turn(pool, urgent).await?;
    let lane = if urgent { "urgent" } else { "other" };
    metrics::histogram!("wamage_db_write_turn_seconds", "lane" => lane)
        .record(t0.elapsed().as_secs_f64());
    Ok(turn)
}

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct DbOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Only for PostgreSQL: the schema to use (tests isolate themselves in a schema each).
    pub pg_schema: Option<String>,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            pg_schema: None,
        }
    }
}

/// Runs `$body` with `$conn` bound to the pool of whichever backend `$db` is.
/// The body is compiled once per backend, so it must be valid for both.
#[macro_export]
macro_rules! with_db {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($conn) => $body,
            $crate::db::Db::Postgres($conn) => $body,
        }
    };
}

/// [`with_db!`] for a body that writes: on SQLite it first waits for this process's turn at
/// the database's write lock and its writer connection (see
/// [`sqlite_write`](crate::db::sqlite_write)) and
/// holds it while `$body` runs. A write outside a transaction would otherwise wait in SQLite's
/// busy handler, which sleeps (up to 100 ms at a time) while the lock passes between the
/// transactions that take turns. On SQLite `$conn` is `&mut` the writer connection, so
/// `$body` uses it once (for several statements, use [`Db::begin`]); on PostgreSQL it is the
/// pool. `$body` must give a `Result` whose error converts from `sqlx::Error`.
#[macro_export]
macro_rules! with_write {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite(pool) => match $crate::db::sqlite_write(pool, false).await {
                Ok(mut write) => {
                    let $conn = write.conn();
                    $body
                }
                Err(e) => Err(e.into()),
            },
            $crate::db::Db::Postgres($conn) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to `&mut` the connection of an open [`Tx`].
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(t, _) => {
                let $conn = &mut **t;
                $body
            }
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

impl Db {
    /// Connects to `url`: `sqlite://path/to/file.db` (created if missing, WAL, busy timeout,
    /// foreign keys on) or `postgres://…`.
    pub async fn connect(url: &str, opts: &DbOptions) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .with_context(|| "invalid SQLite URL".to_owned())?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-16000");
            // Checkpoints (copying the WAL into the database file, with its fsyncs) run in
            // the background (`checkpointer`), not in whichever write crosses SQLite's
            // 1,000-page mark while it holds the write lock. A WAL left bigger than this
            // after a checkpoint is cut back to it.
            let connect = connect
                .pragma("wal_autocheckpoint", "0")
                .pragma("journal_size_limit", WAL_KEPT.to_string())
                // Rows are handed from the connection's thread to the reading task through a
                // bounded channel: with room for a whole result, the thread never stops for
                // each row the reader takes (a thread wake-up per row past the bound).
                .row_buffer_size(ROWS_HANDED_OVER);
            let pool = SqlitePoolOptions::new()
                .max_connections(opts.max_connections)
                .min_connections(1)
                // A connection to a local file does not go stale: no ping (a round trip to
                // the connection's thread) before every statement.
                .test_before_acquire(false)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(connect)
                .await
                .with_context(|| "failed to open the SQLite database".to_owned())?;
            tokio::spawn(checkpointer(pool.clone()));
            Ok(Self::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut connect = PgConnectOptions::from_str(url)
                .with_context(|| "invalid PostgreSQL URL".to_owned())?;
            if let Some(schema) = &opts.pg_schema {
                connect = connect.options([("search_path", schema.as_str())]);
            }
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                // A connection back in the pool within the last second is handed out as it
                // is; one idle for longer is pinged first (and replaced if that fails). The
                // pool's default pings every connection it hands out: a round trip before
                // each transaction or statement, which on a busy machine is a wait for
                // PostgreSQL's process to be scheduled.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PG_PING_AFTER_IDLE {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(connect)
                .await
                .with_context(|| "failed to connect to PostgreSQL".to_owned())?;
            Ok(Self::Postgres(pool))
        } else {
            anyhow::bail!("unsupported database URL: expected sqlite:// or postgres://")
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.begin_write(false).await
    }

    /// [`Self::begin`] for a short write someone is waiting on (a webhook's acknowledgement):
    /// on SQLite it goes ahead of the ordinary transactions waiting for the write lock.
    pub async fn begin_urgent(&self) -> Result<Tx, sqlx::Error> {
        self.begin_write(true).await
    }

    async fn begin_write(&self, urgent: bool) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            // SQLite: take the write lock up front, so a transaction that reads then writes
            // cannot fail half-way with SQLITE_BUSY on lock upgrade.
            Self::Sqlite(p) => {
                let t0 = std::time::Instant::now();
                let turn = write_turn(p, urgent).await?;
                let waited = t0.elapsed();
                let tx = SqliteTx(SqliteTxOn::Writer(WriterConn::begin(p, &turn.gate).await?));
                let lane = if urgent { "urgent" } else { "other" };
                metrics::histogram!("wamage_db_write_turn_seconds", "lane" => lane)
                    .record(waited.as_secs_f64());
                metrics::histogram!("wamage_db_begin_seconds", "lane" => lane)
                    .record((t0.elapsed() - waited).as_secs_f64());
                Tx::Sqlite(tx, Some(turn))
            }
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Begins a transaction that only reads: one consistent view of the database. On SQLite it
    /// takes no write lock (`BEGIN`), so it runs while another connection writes.
    pub async fn begin_read(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(SqliteTx(SqliteTxOn::Pool(p.begin().await?)), None),
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Checks the database answers (for `/ready`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_db!(self, |pool| {
            let mut conn = pool.acquire().await?;
            conn.ping().await
        })
    }

    /// Applies every pending migration of the given sets (one set per crate), in version order.
    pub async fn migrate(&self, sets: &[MigrationSet]) -> anyhow::Result<()> {
        let mut all: Vec<Migration> = Vec::new();
        for set in sets {
            let m = match self.backend() {
                Backend::Sqlite => &set.sqlite,
                Backend::Postgres => &set.postgres,
            };
            all.extend(m.iter().cloned());
        }
        all.sort_by_key(|m| m.version);
        let mut migrator = Migrator::DEFAULT;
        migrator.migrations = std::borrow::Cow::Owned(all);
        // A process may be older than the database (rolling upgrade): unknown applied versions
        // are not an error.
        migrator.set_ignore_missing(true);
        with_db!(self, |pool| migrator.run(pool).await)
            .with_context(|| "failed to apply database migrations".to_owned())
    }

    /// Pool statistics for `/metrics`: (size, idle).
    pub fn pool_stats(&self) -> (u32, usize) {
        with_db!(self, |pool| (pool.size(), pool.num_idle()))
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => {
                pool.close().await;
                close_writer(&gate_of(pool)).await;
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            // The turn is given back once the commit is done.
            Self::Sqlite(t, _turn) => t.end(true).await,
            Self::Postgres(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(t, _turn) => t.end(false).await,
            Self::Postgres(t) => t.rollback().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(..) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Holds these keys until the transaction ends, so that transactions about the same
    /// thing (say, "the conversation of this address") take turns where there is no row to
    /// lock yet. Nothing to do on SQLite, whose write transactions already take turns. On
    /// PostgreSQL, transaction-scoped advisory locks on the keys' 64-bit hashes, taken in
    /// the hashes' order, so two transactions locking overlapping keys cannot deadlock on
    /// them; take them before anything else a transaction may wait for. Two keys with one
    /// hash only wait for each other.
    pub async fn lock_keys(&mut self, keys: &[String]) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(..) => Ok(()),
            Self::Postgres(_) if keys.is_empty() => Ok(()),
            Self::Postgres(t) => {
                sqlx::query(
                    "SELECT count(pg_advisory_xact_lock(h)) FROM \
                     (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k \
                      ORDER BY h) AS keys",
                )
                .bind(keys)
                .execute(&mut **t)
                .await?;
                Ok(())
            }
        }
    }
}

/// The migrations one crate contributes, per backend. Version numbers are global across crates:
/// each crate owns a block (platform 1xxxx, identity 2xxxx, contacts 3xxxx, …).
pub struct MigrationSet {
    pub sqlite: Migrator,
    pub postgres: Migrator,
}

/// Builds a [`MigrationSet`] from `migrations/sqlite` and `migrations/postgres` of the calling crate.
#[macro_export]
macro_rules! migration_set {
    () => {
        $crate::db::MigrationSet {
            sqlite: sqlx::migrate!("./migrations/sqlite"),
            postgres: sqlx::migrate!("./migrations/postgres"),
        }
    };
}

/// True when the error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// The name of the violated constraint, when the backend reports it. PostgreSQL names the
/// constraint; SQLite names the columns (`UNIQUE constraint failed: users.email`), so both are
/// returned as written and callers match on either.
pub fn violated_constraint(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(db) => db
            .constraint()
            .map(str::to_owned)
            .or_else(|| Some(db.message().to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes a turn at `gate` the way [`write_turn`] does, without a database.
    async fn turn(gate: &Arc<WriteGate>, urgent: bool, wait: Duration) -> Option<WriteTurn> {
        let Some(rx) = gate.join(urgent) else {
            return Some(WriteTurn::new(Arc::clone(gate), urgent));
        };
        let mut waiting = Waiting {
            gate: Arc::clone(gate),
            rx: Some(rx),
        };
        let rx = waiting.rx.as_mut()?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(())) => {
                waiting.rx = None;
                Some(WriteTurn::new(Arc::clone(gate), urgent))
            }
            _ => None,
        }
    }

    #[tokio::test]
    async fn urgent_turns_go_first_and_a_waiter_that_leaves_passes_its_turn_on() {
        let gate = Arc::new(WriteGate::default());
        let long = Duration::from_secs(5);
        let first = turn(&gate, false, long).await.expect("a free gate");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Two ordinary writers line up, then an urgent one.
        for (name, urgent) in [("a", false), ("b", false), ("urgent", true)] {
            let (gate, order) = (Arc::clone(&gate), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let t = turn(&gate, urgent, Duration::from_secs(5)).await;
                assert!(t.is_some(), "{name} got no turn");
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // One that gives up while waiting holds nobody up.
        assert!(
            turn(&gate, false, Duration::from_millis(10))
                .await
                .is_none(),
            "the gate is taken"
        );
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec!["urgent", "a", "b"]);
        // Free again afterwards.
        assert!(turn(&gate, false, Duration::ZERO).await.is_some());
        assert!(!gate.lock().taken);
    }
}
