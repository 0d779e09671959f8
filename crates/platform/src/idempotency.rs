//! `Idempotency-Key` for mutating API calls: the key, a fingerprint of the request and the
//! response are stored **in the same transaction** as the domain change, so a retried request
//! either finds the stored response (and gets it again, byte for byte) or finds nothing because
//! the first attempt rolled back. Keys are scoped per organisation and caller (`scope`) and
//! kept for [`RETENTION`].
//!
//! Use: [`lookup`] before the work (replay, or 422 `idempotency_key_reused` when the same key
//! came with a different request); then [`save`] inside the work's transaction; when `save`
//! hits the unique key (a concurrent twin committed first) roll back and [`lookup`] again.

use std::time::Duration;

use wamage_kernel::{OrgId, Timestamp};

use crate::{Db, Tx, with_db, with_tx, with_write};

/// How long keys are remembered.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Longest accepted key.
pub const KEY_MAX: usize = 255;

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub fingerprint: String,
    pub status: u16,
    pub body: String,
}

/// Is `key` acceptable (1–255 visible ASCII characters)?
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= KEY_MAX && key.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn lookup(
    db: &Db,
    org: OrgId,
    scope: &str,
    key: &str,
    now: Timestamp,
) -> Result<Option<Stored>, sqlx::Error> {
    let since = now.minus(RETENTION);
    let row: Option<(String, i64, String)> = with_db!(db, |p| sqlx::query_as(
        "SELECT fingerprint, status, body FROM idempotency_keys \
         WHERE org_id = $1 AND scope = $2 AND key = $3 AND created_at >= $4"
    )
    .bind(org)
    .bind(scope)
    .bind(key)
    .bind(since)
    .fetch_optional(p)
    .await)?;
    Ok(row.map(|(fingerprint, status, body)| Stored {
        fingerprint,
        status: u16::try_from(status).unwrap_or(200),
        body,
    }))
}

/// Stores the response with the work's transaction. An expired record of the same key is
/// replaced. Fails with a unique violation when a concurrent request with the key won.
#[allow(clippy::too_many_arguments)]
pub async fn save(
    tx: &mut Tx,
    org: OrgId,
    scope: &str,
    key: &str,
    fingerprint: &str,
    status: u16,
    body: &str,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    let since = now.minus(RETENTION);
    with_tx!(tx, |c| {
        sqlx::query(
        "DELETE FROM idempotency_keys WHERE org_id = $1 AND scope = $2 AND key = $3 AND created_at < $4"
    )
    .bind(org)
    .bind(scope)
    .bind(key)
    .bind(since)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO idempotency_keys (org_id, scope, key, fingerprint, status, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(org)
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(i64::from(status))
    .bind(body)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes records older than [`RETENTION`]; returns how many.
pub async fn purge(db: &Db, now: Timestamp) -> Result<u64, sqlx::Error> {
    let before = now.minus(RETENTION);
    with_write!(db, |p| sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < $1"
    )
    .bind(before)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}
