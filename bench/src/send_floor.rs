//! `wamage-bench send-floor`: the least a server can do for the P1 outbound benchmark
//! (`wamage-bench inbox-outbound --floor`), to measure what the machine allows with the same
//! clients, the same fake Graph API and the same cores.
//!
//! It answers `POST /api/v1/messages/batch` as the issue asks of Wamage and nothing more: the
//! bearer token is compared, each item's phone and template checked, and the batch's messages
//! and their send job made durable before the answer (the transactional outbox) — in the same
//! kind of SQLite database Wamage uses (WAL, `synchronous = NORMAL`, through sqlx). A sender
//! then posts every message to the Graph API's `/{version}/{phone_number_id}/messages` (64 in
//! flight) and stores each message's state `sent` with its wamid. One writer does every write
//! with group commit: what is waiting when it is free shares one transaction. No contacts, no
//! conversations, no events, no pacing, no retries, no metrics.

use std::sync::Arc;

use anyhow::Context;
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, oneshot};
use wamage_platform::{Db, DbOptions};

#[derive(clap::Parser)]
pub struct FloorArgs {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The SQLite database to store messages in (created if missing).
    #[arg(long)]
    db: String,
    /// The Graph API to send to (the bench's fake).
    #[arg(long)]
    provider: String,
    /// The Graph API version in its paths.
    #[arg(long, default_value = "v21.0")]
    api_version: String,
    /// The WhatsApp phone number id messages are sent from.
    #[arg(long)]
    phone_number_id: String,
    /// The Graph API access token.
    #[arg(long)]
    access_token: String,
    /// The bearer token the batch endpoint accepts.
    #[arg(long)]
    api_token: String,
}

/// Largest request body accepted (Wamage's limit).
const MAX_BODY: usize = 1 << 20;
/// Messages in one batch request at most (Wamage's limit).
const BATCH_MAX: usize = 100;
/// Provider requests in flight at most.
const IN_FLIGHT: usize = 64;
/// Rows per many-row statement (SQLite allows 32,766 bound parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// A message as stored: its id, the recipient and the Graph API request body.
struct Message {
    id: String,
    to: String,
    payload: Vec<u8>,
}

/// One write for the writer; `done` hears whether it committed.
enum Write {
    /// A batch's messages and their job.
    Accept {
        job: String,
        messages: Arc<Vec<Message>>,
        done: oneshot::Sender<bool>,
    },
    /// A provider accepted a message: its wamid; the job is done with its last message.
    Sent {
        id: String,
        wamid: String,
        job_done: Option<String>,
    },
}

#[derive(Clone)]
struct Floor {
    api_token: Arc<str>,
    writer: mpsc::Sender<Write>,
    sender: mpsc::UnboundedSender<(String, Arc<Vec<Message>>)>,
}

fn problem(status: StatusCode, field: &str, detail: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(
            json!({"type": "about:blank", "title": detail, "status": status.as_u16(),
                    "field": field}),
        ),
    )
}

/// The Graph API body for one batch item, or what is wrong with it.
fn payload_of(item: &Value) -> Result<(String, Vec<u8>), &'static str> {
    let phone = item
        .pointer("/to/phone")
        .and_then(Value::as_str)
        .ok_or("to.phone")?;
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if !phone.starts_with('+') || !(8..=15).contains(&digits.len()) {
        return Err("to.phone");
    }
    if item.get("type").and_then(Value::as_str) != Some("template") {
        return Err("type");
    }
    let name = item
        .pointer("/template/name")
        .and_then(Value::as_str)
        .ok_or("template.name")?;
    let language = item
        .pointer("/template/language")
        .and_then(Value::as_str)
        .ok_or("template.language")?;
    let params: Vec<Value> = item
        .pointer("/template/body")
        .and_then(Value::as_array)
        .map(|b| {
            b.iter()
                .map(|t| json!({"type": "text", "text": t.as_str().unwrap_or_default()}))
                .collect()
        })
        .unwrap_or_default();
    let body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": digits,
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": language},
            "components": [{"type": "body", "parameters": params}],
        },
    });
    Ok((digits, serde_json::to_vec(&body).unwrap_or_default()))
}

async fn batch(
    State(floor): State<Floor>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(&*floor.api_token) {
        return problem(StatusCode::UNAUTHORIZED, "Authorization", "not signed in");
    }
    let Some(items) = body.get("messages").and_then(Value::as_array) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "messages", "missing");
    };
    if items.is_empty() || items.len() > BATCH_MAX {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "messages",
            "must have 1 to 100 messages",
        );
    }
    let mut messages = Vec::with_capacity(items.len());
    let mut results = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match payload_of(item) {
            Ok((to, payload)) => {
                let id = uuid::Uuid::now_v7().to_string();
                results.push(json!({"index": index, "status": 202,
                                    "message": {"id": id, "status": "queued"}}));
                messages.push(Message { id, to, payload });
            }
            Err(field) => results.push(json!({"index": index, "status": 422,
                "problem": {"status": 422, "field": format!("messages[{index}].{field}")}})),
        }
    }
    if !messages.is_empty() {
        let job = uuid::Uuid::now_v7().to_string();
        let messages = Arc::new(messages);
        let (done, committed) = oneshot::channel();
        let write = Write::Accept {
            job: job.clone(),
            messages: Arc::clone(&messages),
            done,
        };
        if floor.writer.send(write).await.is_err() || committed.await != Ok(true) {
            return problem(StatusCode::SERVICE_UNAVAILABLE, "", "not stored");
        }
        let _ = floor.sender.send((job, messages));
    }
    (StatusCode::OK, Json(json!({ "results": results })))
}

/// Writes whatever is waiting when it is free, in one transaction, then answers each.
async fn write_batches(pool: sqlx::SqlitePool, mut rx: mpsc::Receiver<Write>) {
    while let Some(first) = rx.recv().await {
        let mut writes = vec![first];
        while writes.len() < 1024 {
            match rx.try_recv() {
                Ok(w) => writes.push(w),
                Err(_) => break,
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        let mut accepted: Vec<&Message> = Vec::new();
        let mut jobs: Vec<&str> = Vec::new();
        let mut sent: Vec<(&str, &str)> = Vec::new();
        let mut jobs_done: Vec<&str> = Vec::new();
        for w in &writes {
            match w {
                Write::Accept { job, messages, .. } => {
                    jobs.push(job);
                    accepted.extend(messages.iter());
                }
                Write::Sent {
                    id,
                    wamid,
                    job_done,
                } => {
                    sent.push((id, wamid));
                    jobs_done.extend(job_done.as_deref());
                }
            }
        }
        let stored: Result<(), sqlx::Error> = async {
            let mut tx = pool.begin().await?;
            for rows in accepted.chunks(ROWS_PER_STATEMENT) {
                let values = vec!["(?, ?, ?, 'queued', ?)"; rows.len()].join(", ");
                let sql = format!(
                    "INSERT INTO messages (id, recipient, payload, state, created_at) VALUES {values}"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for m in rows {
                    q = q
                        .bind(m.id.as_str())
                        .bind(m.to.as_str())
                        .bind(m.payload.as_slice())
                        .bind(now);
                }
                q.execute(&mut *tx).await?;
            }
            for rows in jobs.chunks(ROWS_PER_STATEMENT) {
                let values = vec!["(?, 'queued', ?)"; rows.len()].join(", ");
                let sql = format!("INSERT INTO jobs (id, state, created_at) VALUES {values}");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for j in rows {
                    q = q.bind(*j).bind(now);
                }
                q.execute(&mut *tx).await?;
            }
            for rows in sent.chunks(ROWS_PER_STATEMENT) {
                let values = vec!["(?, ?)"; rows.len()].join(", ");
                let sql = format!(
                    "UPDATE messages SET state = 'sent', provider_id = v.column2, sent_at = ? \
                     FROM (VALUES {values}) AS v WHERE messages.id = v.column1"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                for (id, wamid) in rows {
                    q = q.bind(*id).bind(*wamid);
                }
                q.execute(&mut *tx).await?;
            }
            for rows in jobs_done.chunks(ROWS_PER_STATEMENT) {
                let marks = vec!["?"; rows.len()].join(", ");
                let sql = format!("UPDATE jobs SET state = 'done' WHERE id IN ({marks})");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for j in rows {
                    q = q.bind(*j);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = &stored {
            eprintln!("send-floor: write failed: {e}");
        }
        for w in writes {
            if let Write::Accept { done, .. } = w {
                let _ = done.send(stored.is_ok());
            }
        }
    }
}

/// Posts every message of the jobs it is handed, `IN_FLIGHT` at a time, and hands each
/// accepted one to the writer.
async fn send_jobs(
    args: Arc<FloorArgs>,
    writer: mpsc::Sender<Write>,
    mut jobs: mpsc::UnboundedReceiver<(String, Arc<Vec<Message>>)>,
) {
    let http = reqwest::Client::new();
    let url = format!(
        "{}/{}/{}/messages",
        args.provider.trim_end_matches('/'),
        args.api_version,
        args.phone_number_id
    );
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some((job, messages)) = jobs.recv().await {
        let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(messages.len()));
        for index in 0..messages.len() {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (http, url, writer) = (http.clone(), url.clone(), writer.clone());
            let (job, messages, remaining) =
                (job.clone(), Arc::clone(&messages), Arc::clone(&remaining));
            let token = args.access_token.clone();
            tokio::spawn(async move {
                let m = &messages[index];
                let wamid = async {
                    let res = http
                        .post(&url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(m.payload.clone())
                        .send()
                        .await
                        .ok()?;
                    if !res.status().is_success() {
                        eprintln!("send-floor: the provider answered {}", res.status());
                        return None;
                    }
                    let body: Value = res.json().await.ok()?;
                    body.pointer("/messages/0/id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                }
                .await;
                drop(permit);
                let Some(wamid) = wamid else {
                    return;
                };
                let last = remaining.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1;
                let _ = writer
                    .send(Write::Sent {
                        id: m.id.clone(),
                        wamid,
                        job_done: last.then_some(job),
                    })
                    .await;
            });
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
    let Db::Sqlite(pool) = db else {
        anyhow::bail!("the send floor stores messages in SQLite");
    };
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, recipient TEXT NOT NULL, \
         payload BLOB NOT NULL, state TEXT NOT NULL, provider_id TEXT, created_at INTEGER NOT NULL, \
         sent_at INTEGER)",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, \
         created_at INTEGER NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let (writer, writes) = mpsc::channel(8192);
    tokio::spawn(write_batches(pool, writes));
    let (sender, jobs) = mpsc::unbounded_channel();
    let listen = args.listen.clone();
    let api_token: Arc<str> = Arc::from(args.api_token.as_str());
    tokio::spawn(send_jobs(Arc::new(args), writer.clone(), jobs));
    let floor = Floor {
        api_token,
        writer,
        sender,
    };
    let app = Router::new()
        .route("/api/v1/messages/batch", post(batch))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening at http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_items_become_graph_api_template_requests() {
        let item = json!({"channel_id": "c", "to": {"phone": "+15550000042"}, "type": "template",
                          "template": {"name": "notice", "language": "en_US", "body": ["42"]}});
        let (to, payload) = payload_of(&item).expect("a valid item");
        assert_eq!(to, "15550000042");
        let body: Value = serde_json::from_slice(&payload).expect("JSON");
        assert_eq!(body["template"]["language"]["code"], "en_US");
        assert_eq!(
            body["template"]["components"][0]["parameters"][0]["text"],
            "42"
        );
        let bad = json!({"to": {"phone": "15550000042"}, "type": "template"});
        assert_eq!(payload_of(&bad).err(), Some("to.phone"));
        let text = json!({"to": {"phone": "+15550000042"}, "type": "text"});
        assert_eq!(payload_of(&text).err(), Some("type"));
    }
}
