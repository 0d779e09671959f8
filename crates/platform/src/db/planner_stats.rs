//! Fresh planner statistics for PostgreSQL tables that grow fast.
//!
//! PostgreSQL plans a query from each table's statistics, which `ANALYZE` gathers. Autovacuum
//! refreshes them when a tenth of a table has changed, but it looks only once a minute by
//! default (`autovacuum_naptime`). A table that goes from empty to 20,000 rows in seconds (a
//! new database's first batch send, an import) is planned as empty meanwhile: lookups of a
//! hundred contacts' identities then walked every identity of the organisation through the
//! `(org_id, kind, value)` index, and 20,000 templates were sent at half the rate.
//!
//! [`refresh`] analyzes the tables of the current schema changed by more than half their
//! estimated size since their last analysis (and by at least [`MIN_CHANGED`] rows); [`keep`]
//! does that every [`EVERY`] while the process runs. Ordinary drift is still autovacuum's.
//! `ANALYZE (SKIP_LOCKED)` passes over a table that autovacuum or another process is working
//! on, so processes running it at once do not wait on each other.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Db;

/// How often [`keep`] looks.
pub const EVERY: Duration = Duration::from_secs(2);
/// Fewer changed rows than this never make a table stale (autovacuum's base is 50).
pub const MIN_CHANGED: i64 = 500;
/// Changed rows, as a share of the estimated rows, that make a table stale.
const STALE_SHARE: f64 = 0.5;
/// Tables analyzed per look, the most changed first.
const PER_LOOK: i64 = 8;

/// Analyzes the current schema's stale tables (see the module docs); returns their names.
/// Does nothing on SQLite, whose planner needs no statistics for these plans.
pub async fn refresh(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let Db::Postgres(pool) = db else {
        return Ok(Vec::new());
    };
    let stale: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.schemaname::text, s.relname::text FROM pg_stat_user_tables s \
         JOIN pg_class c ON c.oid = s.relid \
         WHERE s.schemaname = current_schema() AND s.n_mod_since_analyze >= $1 \
         AND s.n_mod_since_analyze > $2 * GREATEST(c.reltuples, 0) \
         ORDER BY s.n_mod_since_analyze DESC LIMIT $3",
    )
    .bind(MIN_CHANGED)
    .bind(STALE_SHARE)
    .bind(PER_LOOK)
    .fetch_all(pool)
    .await?;
    let mut done = Vec::with_capacity(stale.len());
    for (schema, table) in stale {
        let sql = format!(
            "ANALYZE (SKIP_LOCKED) {}.{}",
            quote_ident(&schema),
            quote_ident(&table)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
        metrics::counter!("wamage_db_analyzed_total").increment(1);
        done.push(table);
    }
    Ok(done)
}

/// Runs [`refresh`] every [`EVERY`] until `stop` (PostgreSQL only; returns at once on SQLite).
pub async fn keep(db: Db, stop: CancellationToken) {
    if !matches!(db, Db::Postgres(_)) {
        return;
    }
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => match refresh(&db).await {
                Ok(tables) if !tables.is_empty() => {
                    tracing::debug!(?tables, "refreshed planner statistics");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "failed to refresh planner statistics"),
            },
        }
    }
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("jobs"), "\"jobs\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
