//! Channel persistence: one function per use case, scoped to the organisation (webhooks look a
//! channel up by id alone: the id in the URL is the only thing a provider knows).

use sqlx::FromRow;
use wamage_kernel::{OrgId, Timestamp};
use wamage_platform::{Db, Tx, db::placeholders, with_db, with_tx, with_write};

use crate::model::{ChannelId, EventId};

type R<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone, FromRow)]
pub struct ChannelRow {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    pub config: String,
    pub secrets: String,
    pub external_id: Option<String>,
    pub verify_token: Option<String>,
    pub messages_per_second: i64,
    pub health_state: String,
    pub health_reason: Option<String>,
    pub health_at: Option<Timestamp>,
    pub poll_offset: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLS: &str = "id, org_id, kind, name, enabled, config, secrets, external_id, verify_token, \
     messages_per_second, health_state, health_reason, health_at, poll_offset, created_at, \
     updated_at";

pub async fn insert(tx: &mut Tx, c: &ChannelRow) -> R<()> {
    with_tx!(tx, |e| sqlx::query(
        "INSERT INTO channels (id, org_id, kind, name, enabled, config, secrets, external_id, \
         verify_token, messages_per_second, health_state, health_reason, health_at, poll_offset, \
         created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    )
    .bind(c.id)
    .bind(c.org_id)
    .bind(&c.kind)
    .bind(&c.name)
    .bind(c.enabled)
    .bind(&c.config)
    .bind(&c.secrets)
    .bind(&c.external_id)
    .bind(&c.verify_token)
    .bind(c.messages_per_second)
    .bind(&c.health_state)
    .bind(&c.health_reason)
    .bind(c.health_at)
    .bind(c.poll_offset)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes the editable columns back.
pub async fn update(tx: &mut Tx, c: &ChannelRow) -> R<u64> {
    with_tx!(tx, |e| sqlx::query(
        "UPDATE channels SET name = $3, enabled = $4, config = $5, secrets = $6, \
         external_id = $7, messages_per_second = $8, updated_at = $9 \
         WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL"
    )
    .bind(c.id)
    .bind(c.org_id)
    .bind(&c.name)
    .bind(c.enabled)
    .bind(&c.config)
    .bind(&c.secrets)
    .bind(&c.external_id)
    .bind(c.messages_per_second)
    .bind(c.updated_at)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))
}

pub async fn get_tx(tx: &mut Tx, org: OrgId, id: ChannelId) -> R<Option<ChannelRow>> {
    let sql =
        format!("SELECT {COLS} FROM channels WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL");
    with_tx!(tx, |e| sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(id)
        .bind(org)
        .fetch_optional(e)
        .await)
}

/// A live channel by id alone (webhooks, workers).
pub async fn get_any(db: &Db, id: ChannelId) -> R<Option<ChannelRow>> {
    let sql = format!("SELECT {COLS} FROM channels WHERE id = $1 AND deleted_at IS NULL");
    with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(id)
        .fetch_optional(p)
        .await)
}

pub async fn list(db: &Db, org: OrgId) -> R<Vec<ChannelRow>> {
    let sql = format!(
        "SELECT {COLS} FROM channels WHERE org_id = $1 AND deleted_at IS NULL ORDER BY created_at, id"
    );
    with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(org)
        .fetch_all(p)
        .await)
}

/// Every live Telegram channel in polling mode, across organisations (the poller).
pub async fn polling_channels(db: &Db) -> R<Vec<ChannelRow>> {
    let sql = format!(
        "SELECT {COLS} FROM channels WHERE kind = 'telegram' AND enabled = TRUE \
         AND deleted_at IS NULL ORDER BY id"
    );
    with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .fetch_all(p)
        .await)
}

pub async fn soft_delete(tx: &mut Tx, org: OrgId, id: ChannelId, now: Timestamp) -> R<u64> {
    with_tx!(tx, |e| sqlx::query(
        "UPDATE channels SET deleted_at = $3, enabled = FALSE, updated_at = $3 \
         WHERE id = $1 AND org_id = $2 AND deleted_at IS NULL"
    )
    .bind(id)
    .bind(org)
    .bind(now)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))
}

pub async fn set_health(
    db: &Db,
    id: ChannelId,
    state: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> R<u64> {
    with_write!(db, |p| sqlx::query(
        "UPDATE channels SET health_state = $2, health_reason = $3, health_at = $4 WHERE id = $1"
    )
    .bind(id)
    .bind(state)
    .bind(reason)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

/// Merges provider facts (display number, bot username) into the stored config.
pub async fn set_config(db: &Db, id: ChannelId, config: &str) -> R<u64> {
    with_write!(db, |p| sqlx::query(
        "UPDATE channels SET config = $2 WHERE id = $1"
    )
    .bind(id)
    .bind(config)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

pub async fn set_poll_offset(db: &Db, id: ChannelId, offset: i64) -> R<u64> {
    with_write!(db, |p| {
        sqlx::query(
        "UPDATE channels SET poll_offset = $2 WHERE id = $1 AND (poll_offset IS NULL OR poll_offset < $2)"
    )
    .bind(id)
    .bind(offset)
    .execute(p)
    .await
    .map(|r| r.rows_affected())
    })
}

// ---- raw events ----------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: EventId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub body: Vec<u8>,
    pub state: String,
    pub received_at: Timestamp,
}

pub async fn insert_event(
    tx: &mut Tx,
    id: EventId,
    org: OrgId,
    channel: ChannelId,
    body: &[u8],
    now: Timestamp,
) -> R<()> {
    with_tx!(tx, |e| sqlx::query(
        "INSERT INTO channel_events (id, org_id, channel_id, body, state, received_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5)"
    )
    .bind(id)
    .bind(org)
    .bind(channel)
    .bind(body)
    .bind(now)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// SQLite's multi-row insert of `n` events stored `received` (5 parameters each: id,
/// organisation, channel, body, received at).
fn insert_received_sql(n: usize) -> String {
    let values = (0..n)
        .map(|i| {
            let b = i * 5;
            format!(
                "(${}, ${}, ${}, ${}, 'received', ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO channel_events (id, org_id, channel_id, body, state, received_at) \
         VALUES {values}"
    )
}

/// PostgreSQL: the `WITH` list that stores webhook events `pending`, for
/// [`wamage_platform::jobs::JobQueue::enqueue_many_with_pg`] (their ingest jobs in the same
/// statement): a fixed statement of arrays, prepared once per connection. Parameters: received
/// at, then ids, organisations, channels and bodies; bound by [`bind_events_pg`].
pub fn insert_events_pg_with() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let p = wamage_platform::jobs::PG_WITH_FIRST_PARAM;
        format!(
            "events AS (INSERT INTO channel_events (id, org_id, channel_id, body, state, \
             received_at) SELECT id, org_id, channel_id, body, 'pending', ${p} \
             FROM UNNEST(${}::uuid[], ${}::uuid[], ${}::uuid[], ${}::bytea[]) \
             AS r (id, org_id, channel_id, body))",
            p + 1,
            p + 2,
            p + 3,
            p + 4
        )
    })
}

/// PostgreSQL: the server process behind a connection.
pub async fn backend_pid(conn: &mut sqlx::PgConnection) -> R<i32> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
}

/// Binds [`insert_events_pg_with`]'s parameters.
pub fn bind_events_pg<'q>(
    q: wamage_platform::jobs::PgScalarQuery<'q>,
    events: &[(EventId, OrgId, ChannelId, &'q [u8])],
    now: Timestamp,
) -> wamage_platform::jobs::PgScalarQuery<'q> {
    let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.0.0).collect();
    let orgs: Vec<uuid::Uuid> = events.iter().map(|e| e.1.0).collect();
    let channels: Vec<uuid::Uuid> = events.iter().map(|e| e.2.0).collect();
    let bodies: Vec<&[u8]> = events.iter().map(|e| e.3).collect();
    q.bind(now).bind(ids).bind(orgs).bind(channels).bind(bodies)
}

/// Stores up to [`EVENTS_PER_STATEMENT`] webhook events on SQLite as `received` (their ingest
/// jobs not queued yet: [`mark_pending`]), in one autocommit statement taken ahead of ordinary
/// writers at the write lock — one round trip to the connection's thread.
pub async fn insert_received(
    pool: &sqlx::SqlitePool,
    rows: &[(EventId, OrgId, ChannelId, &[u8])],
    now: Timestamp,
) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    debug_assert!(rows.len() <= EVENTS_PER_STATEMENT);
    let sql = insert_received_sql(rows.len());
    let mut write = wamage_platform::db::sqlite_write(pool, true).await?;
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (id, org, channel, body) in rows {
        q = q.bind(*id).bind(*org).bind(*channel).bind(*body).bind(now);
    }
    q.execute(write.conn()).await?;
    Ok(())
}

/// Marks `received` events `pending` (their ingest jobs are queued in the same transaction).
pub async fn mark_pending(tx: &mut Tx, ids: &[EventId]) -> R<()> {
    for chunk in ids.chunks(EVENTS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE channel_events SET state = 'pending' WHERE state = 'received' AND id IN ({})",
            placeholders(1, chunk.len())
        );
        with_tx!(tx, |e| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(e).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Events stored `received` before `before` (oldest first, `limit` at most), with their
/// organisations.
pub async fn received_before(db: &Db, before: Timestamp, limit: i64) -> R<Vec<(OrgId, EventId)>> {
    with_db!(db, |pool| {
        sqlx::query_as::<_, (OrgId, EventId)>(
            "SELECT org_id, id FROM channel_events WHERE state = 'received' AND received_at < $1 \
             ORDER BY received_at LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(pool)
        .await
    })
}

/// Events per multi-row insert (5 parameters each; SQLite allows 32,766, PostgreSQL 65,535).
pub const EVENTS_PER_STATEMENT: usize = 200;

/// The events among `ids` still waiting to be processed, in the order of `ids`.
pub async fn pending_events(db: &Db, ids: &[EventId]) -> R<Vec<EventRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, org_id, channel_id, body, state, received_at FROM channel_events \
         WHERE state = 'pending' AND id IN ({})",
        placeholders(1, ids.len())
    );
    let mut rows: Vec<EventRow> = with_db!(db, |p| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })?;
    rows.sort_by_key(|r| ids.iter().position(|i| *i == r.id));
    Ok(rows)
}

/// Records the same outcome for several events.
pub async fn finish_events(
    tx: &mut Tx,
    ids: &[EventId],
    state: &str,
    items: Option<i64>,
    error: Option<&str>,
    now: Timestamp,
) -> R<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE channel_events SET state = $1, items = $2, error = $3, processed_at = $4 \
         WHERE id IN ({})",
        placeholders(5, ids.len())
    );
    with_tx!(tx, |e| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(state)
            .bind(items)
            .bind(error)
            .bind(now);
        for id in ids {
            q = q.bind(*id);
        }
        q.execute(e).await.map(|r| r.rows_affected())
    })
}
