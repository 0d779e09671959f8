//! `wamage-bench webhook-floor`: the least a server can do for the P3 inbound benchmark
//! (`wamage-bench inbox-inbound --floor`), to measure what the machine allows with the same
//! clients on the same cores.
//!
//! It answers `POST /webhooks/whatsapp/{channel}` as the issue asks of Wamage and nothing
//! more: the body is read (1 MiB at most), its `X-Hub-Signature-256` checked with HMAC-SHA256
//! on the raw bytes, and the raw event made durable before the 200 — in the same kind of SQLite
//! database Wamage uses (WAL, `synchronous = NORMAL`, through sqlx), with group commit: the
//! webhooks waiting when the writer is free are inserted with one statement and committed
//! together. No channel look-up, no job, no parsing, no de-duplication, no metrics.

use std::sync::Arc;

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};
use wamage_platform::{Db, DbOptions};

#[derive(clap::Parser)]
pub struct FloorArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The SQLite database to store events in (created if missing).
    #[arg(long)]
    db: String,
    /// The app secret webhooks are signed with.
    #[arg(long)]
    app_secret: String,
}

/// Largest webhook body accepted (Wamage's limit).
const MAX_BODY: usize = 1 << 20;
/// Events stored in one transaction at most (Wamage's intake batch).
const BATCH: usize = 256;
/// SQLite's limit on bound parameters per statement is 32,766; four per row.
const ROWS_PER_STATEMENT: usize = 256;

/// A verified webhook waiting for the writer.
struct Pending {
    channel: String,
    body: Bytes,
    done: oneshot::Sender<bool>,
}

#[derive(Clone)]
struct Floor {
    secret: Arc<[u8]>,
    writer: mpsc::Sender<Pending>,
}

/// `sha256=<hex>` of the body, checked in constant time.
pub(crate) fn signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

async fn webhook(
    State(floor): State<Floor>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature_ok(&floor.secret, &body, signature) {
        return StatusCode::UNAUTHORIZED;
    }
    let (done, stored) = oneshot::channel();
    let pending = Pending {
        channel,
        body,
        done,
    };
    if floor.writer.send(pending).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    match stored.await {
        Ok(true) => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Stores whatever is waiting when it is free, in one transaction, then answers each.
async fn write_batches(db: Db, mut rx: mpsc::Receiver<Pending>) {
    let Db::Sqlite(pool) = db else {
        return;
    };
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        let stored = async {
            let mut tx = pool.begin().await?;
            for rows in batch.chunks(ROWS_PER_STATEMENT) {
                let values = vec!["(?, ?, ?, ?)"; rows.len()].join(", ");
                let sql =
                    format!("INSERT INTO events (id, channel, body, received_at) VALUES {values}");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for p in rows {
                    q = q
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind(p.channel.as_str())
                        .bind(p.body.as_ref())
                        .bind(now);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await
        .is_ok();
        for p in batch {
            let _ = p.done.send(stored);
        }
    }
}

pub async fn run(args: FloorArgs) -> anyhow::Result<()> {
    let url = if args.db.starts_with("sqlite:") {
        args.db.clone()
    } else {
        format!("sqlite://{}", args.db)
    };
    let db = Db::connect(&url, &DbOptions::default())
        .await
        .context("failed to open the floor's database")?;
    let Db::Sqlite(pool) = &db else {
        anyhow::bail!("the webhook floor stores events in SQLite");
    };
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, channel TEXT NOT NULL, \
         body BLOB NOT NULL, received_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(write_batches(db.clone(), rx));
    let floor = Floor {
        secret: Arc::from(args.app_secret.as_bytes()),
        writer: tx,
    };
    let app = Router::new()
        .route("/webhooks/whatsapp/{channel}", post(webhook))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening at http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_on_the_raw_bytes() {
        let body = br#"{"object":"whatsapp_business_account"}"#;
        let good = wamage_testkit::fakes::FakeMeta::sign("s3cret", body);
        assert!(signature_ok(b"s3cret", body, Some(&good)));
        assert!(!signature_ok(b"other", body, Some(&good)));
        assert!(!signature_ok(b"s3cret", b"{}", Some(&good)));
        assert!(!signature_ok(b"s3cret", body, None));
        assert!(!signature_ok(b"s3cret", body, Some("sha256=zz")));
        assert!(!signature_ok(
            b"s3cret",
            body,
            Some(good.trim_start_matches("sha256="))
        ));
    }
}
