//! `wamage-bench inbox-outbound | inbox-pacing | inbox-inbound …`: the inbox and its WhatsApp
//! channel end to end, through a real `wamage serve` process (release build) whose WhatsApp
//! channel points at the testkit's fake Graph API ([`FakeMeta`], served by this process).
//!
//! - **outbound**: template messages to distinct numbers through `POST /api/v1/messages/batch`
//!   (pacing off). Durable sends/s = messages over the time from the first request until every
//!   message is `sent` (or later) in the server's database, read with a direct SQL count.
//! - **pacing**: pacing on at the channel's `messages_per_second`, the fake enforcing exactly
//!   that rate (a sliding one-second window, 130429 beyond it); a producer keeps a backlog
//!   queued, and the rate the fake accepted is read from its accept timestamps over a window.
//! - **inbound**: signed webhooks (¾ delivery statuses of real sent messages, ¼ customer
//!   messages) from concurrent clients, each posting when its last is answered, or offered at a
//!   fixed rate (`--rate`, latency from each webhook's due time): accepted/s and the latency of
//!   the 200; then the message webhooks are redelivered and must create no `inbox_messages`
//!   row.
//!
//! The fake, the HTTP clients and the server share the machine's cores: every number is a
//! whole-system number on this machine, and the load average is recorded with it.

use std::{
    collections::{BTreeMap, HashSet},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use wamage_platform::{Db, DbOptions, with_db};
use wamage_testkit::fakes::{
    FakeMeta,
    meta::{self, webhook},
};

use crate::{
    BackendArg,
    contacts::{
        Server, cpu_seconds_of, create_pg_database, default_bin, drop_pg_database, expect,
        percentiles, start_with,
    },
    machine, round2,
};

pub(crate) const APP_SECRET: &str = "bench-meta-app-secret-0123456789";
const TEMPLATE: &str = "bench_notice";
/// Messages per `POST /api/v1/messages/batch` (the API's maximum).
const BATCH_MAX: usize = 100;
const SENT_SQL: &str =
    "SELECT COUNT(*) FROM inbox_messages WHERE status IN ('sent', 'delivered', 'read')";
const FAILED_SQL: &str = "SELECT COUNT(*) FROM inbox_messages WHERE status = 'failed'";
const DELIVERED_SQL: &str = "SELECT COUNT(*) FROM inbox_messages \
     WHERE direction = 'outbound' AND status IN ('delivered', 'read')";
const INBOUND_SQL: &str = "SELECT COUNT(*) FROM inbox_messages WHERE direction = 'inbound'";
/// Webhooks not processed yet: ingest jobs queued or running, and events the SQLite intake
/// stored whose jobs are not queued yet.
const INGEST_PENDING_SQL: &str = "SELECT (SELECT COUNT(*) FROM jobs \
     WHERE kind = 'channels.ingest' AND state IN ('queued', 'running')) \
     + (SELECT COUNT(*) FROM channel_events WHERE state = 'received')";
const INGEST_DEAD_SQL: &str =
    "SELECT COUNT(*) FROM jobs WHERE kind = 'channels.ingest' AND state = 'dead'";

/// What every inbox scenario takes to start the server.
#[derive(Parser, Clone)]
pub struct ServerArgs {
    /// The `wamage` binary to run (build it with `cargo build --release -p wamage-server`).
    #[arg(long, env = "WAMAGE_BIN")]
    wamage_bin: Option<PathBuf>,
    /// The server's `WAMAGE_WORKER_CONCURRENCY` (its default when not given).
    #[arg(long)]
    worker_concurrency: Option<usize>,
    /// PostgreSQL server URL (a fresh database is created and dropped).
    #[arg(
        long,
        env = "WAMAGE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Where to write the JSON result.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Parser)]
pub struct OutboundArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Template messages to send, one per distinct phone number.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Concurrent HTTP clients posting batches of 100.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Post the same batches to `wamage-bench send-floor` instead of Wamage: a server that
    /// only stores each batch's messages and job, sends them to the same fake Graph API and
    /// stores them `sent` (what the machine allows; SQLite).
    #[arg(long)]
    floor: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Parser)]
pub struct PacingArgs {
    /// The channel's `messages_per_second`, and exactly what the fake accepts per second.
    #[arg(long, default_value_t = 80)]
    rate: u32,
    /// The measured window.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Sending before the window opens (the backlog builds up, the worker gets going).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Concurrent HTTP clients keeping the backlog queued.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Parser)]
pub struct InboundArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Webhooks to post: 75 % delivery statuses, 25 % customer messages.
    #[arg(long, default_value_t = 20_000)]
    webhooks: usize,
    /// Redeliveries of already processed message webhooks (at most `--webhooks`).
    #[arg(long, default_value_t = 100_000)]
    duplicates: usize,
    /// Concurrent webhook clients (connections). Without `--rate` each posts its next webhook
    /// when the last is answered (a closed loop: the rate is what the answers' latency allows).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Offer the webhooks at this many per second instead, whatever the answers' latency (an
    /// open loop, as Meta delivers): webhook i is due at i / rate s and the next free client
    /// posts it then. Each latency counts from the due time, so a server that falls behind
    /// (or too few clients) shows in the percentiles.
    #[arg(long)]
    rate: Option<u32>,
    /// Outbound messages sent first, whose wamids the status webhooks report on.
    #[arg(long, default_value_t = 1_000)]
    seed: usize,
    /// Post the same webhooks to `wamage-bench webhook-floor` instead of Wamage: a server
    /// that only checks signatures and stores events durably (what the machine allows).
    #[arg(long)]
    floor: bool,
    #[command(flatten)]
    server: ServerArgs,
}

pub(crate) fn backend_name(b: BackendArg) -> &'static str {
    match b {
        BackendArg::Sqlite => "sqlite",
        BackendArg::Postgres => "postgres",
    }
}

pub(crate) fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The owner's view of the server's API and the bench channel (cheap to clone into tasks).
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    channel_id: String,
}

/// A started server with an owner, a WhatsApp channel on the fake, and a direct connection to
/// its database for cheap counts.
struct Rig {
    server: Server,
    api: Api,
    fake: FakeMeta,
    db: Db,
    backend: BackendArg,
}

impl Rig {
    async fn start(
        args: &ServerArgs,
        backend: BackendArg,
        db_url: Option<&str>,
        pacing: bool,
        rate: u32,
    ) -> anyhow::Result<Self> {
        let bin = args.wamage_bin.clone().unwrap_or_else(default_bin);
        let mut env = vec![
            ("WAMAGE_ALLOW_CHANNEL_BASE_URL", "true".to_owned()),
            ("WAMAGE_CHANNEL_PACING", pacing.to_string()),
        ];
        if let Some(n) = args.worker_concurrency {
            env.push(("WAMAGE_WORKER_CONCURRENCY", n.to_string()));
        }
        let server = start_with(&bin, db_url, &env).await?;
        let fake = FakeMeta::start().await;
        let http = reqwest::Client::new();
        let base = server.base.clone();
        let auth = expect(
            http.post(format!("{base}/api/v1/auth/register"))
                .json(
                    &json!({"email": "bench@example.com", "password": "bench-password-123",
                              "name": "Bench", "organization": "Bench"}),
                )
                .send()
                .await
                .context("failed to register")?,
            "register",
        )
        .await?;
        let token = auth["access_token"]
            .as_str()
            .context("no access token in the register answer")?
            .to_owned();
        let channel = expect(
            http.post(format!("{base}/api/v1/channels"))
                .bearer_auth(&token)
                .json(&json!({"kind": "whatsapp", "name": "Bench WhatsApp",
                    "messages_per_second": rate,
                    "config": {"phone_number_id": meta::PHONE_NUMBER_ID, "waba_id": meta::WABA_ID,
                        "access_token": meta::TOKEN, "app_secret": APP_SECRET,
                        "base_url": fake.base_url()}}))
                .send()
                .await
                .context("failed to create the channel")?,
            "create channel",
        )
        .await?;
        let channel_id = channel["id"].as_str().context("no channel id")?.to_owned();
        let url = match db_url {
            Some(u) => u.to_owned(),
            None => format!("sqlite://{}", server.data_dir().join("wamage.db").display()),
        };
        let db = Db::connect(
            &url,
            &DbOptions {
                max_connections: 2,
                ..DbOptions::default()
            },
        )
        .await
        .context("failed to open the server's database")?;
        Ok(Self {
            server,
            api: Api {
                http,
                base,
                token,
                channel_id,
            },
            fake,
            db,
            backend,
        })
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        let (n,): (i64,) = with_db!(&self.db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(p)
            .await)
        .with_context(|| format!("failed to count: {sql}"))?;
        Ok(n)
    }

    /// Outbound messages sent (or further) and failed, in one scan.
    async fn sent_and_failed(&self) -> anyhow::Result<(i64, i64)> {
        let sql = "SELECT COALESCE(SUM(CASE WHEN status IN ('sent', 'delivered', 'read') \
                   THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 \
                   ELSE 0 END), 0) FROM inbox_messages";
        let counts: (i64, i64) = with_db!(&self.db, |p| sqlx::query_as(sql).fetch_one(p).await)
            .context("failed to count sent and failed messages")?;
        Ok(counts)
    }

    /// Job, provider and HTTP figures from `/metrics` (histogram sums and counts, gauges,
    /// counters; no buckets).
    async fn metrics(&self) -> anyhow::Result<Value> {
        scrape_metrics(
            &self.api.http,
            &self.api.base,
            &[
                "wamage_jobs_duration_seconds",
                "wamage_jobs_queue_depth",
                "wamage_jobs_attempts_total",
                "wamage_provider_send_seconds",
                "wamage_sends_total",
                "wamage_webhooks_received_total",
                "wamage_inbound_duplicates_total",
                "wamage_db_pool_connections",
                "wamage_http_request_duration_seconds",
                "wamage_webhook_ingest_lag_seconds",
                "wamage_webhook_store_seconds",
                "wamage_webhook_batch_size",
                "wamage_db_write_turn_seconds",
                "wamage_db_write_hold_seconds",
                "wamage_db_checkpoint_seconds",
                "wamage_db_begin_seconds",
                "wamage_inbox_sent_write_rows",
                "wamage_inbox_batch_merge_requests",
                "wamage_ingest_burst_wait_seconds",
            ],
        )
        .await
    }

    async fn close(self) {
        self.db.close().await;
    }
}

/// The series of `/metrics` whose names start with one of `wanted` (histogram sums and counts,
/// gauges, counters; no buckets), and the mean of every histogram in ms.
pub(crate) async fn scrape_metrics(
    http: &reqwest::Client,
    base: &str,
    wanted: &[&str],
) -> anyhow::Result<Value> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .context("failed to scrape /metrics")?
        .text()
        .await?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.contains("_bucket{") {
            continue;
        }
        if !wanted.iter().any(|w| line.starts_with(w)) {
            continue;
        }
        if let Some((key, value)) = line.rsplit_once(' ')
            && let Ok(v) = value.parse::<f64>()
        {
            out.insert(key.to_owned(), v);
        }
    }
    // Mean of every histogram (job durations per kind, provider sends, HTTP requests per
    // route) in ms, the figures the write-up quotes. Cumulative since the server started.
    let mut means = BTreeMap::new();
    for (k, sum) in &out {
        if let Some((name, labels)) = k.split_once("_sum")
            && let Some(count) = out.get(&format!("{name}_count{labels}"))
            && *count > 0.0
        {
            means.insert(
                format!("{name}{labels}"),
                json!({ "mean_ms": round2(sum / count * 1000.0), "count": count }),
            );
        }
    }
    Ok(json!({ "means": means, "raw": out }))
}

/// A template message to the `i`-th bench number.
fn template_to(channel_id: &str, i: usize) -> Value {
    json!({"channel_id": channel_id, "to": {"phone": format!("+1555{i:07}")},
           "type": "template",
           "template": {"name": TEMPLATE, "language": "en_US", "body": [format!("{i}")]}})
}

/// What a set of batch clients achieved.
#[derive(Default)]
struct Sent {
    accepted: usize,
    rejected: usize,
    first_problem: Option<Value>,
}

impl Sent {
    fn add(&mut self, other: Self) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.first_problem = self.first_problem.take().or(other.first_problem);
    }
}

impl Rig {
    /// The channel's webhook verify token (for the subscription handshake).
    async fn verify_token(&self) -> anyhow::Result<String> {
        let api = &self.api;
        let channel = expect(
            api.http
                .get(format!("{}/api/v1/channels/{}", api.base, api.channel_id))
                .bearer_auth(&api.token)
                .send()
                .await
                .context("failed to read the channel")?,
            "read channel",
        )
        .await?;
        Ok(channel["verify_token"]
            .as_str()
            .context("no verify_token in the channel")?
            .to_owned())
    }
}

impl Api {
    /// Posts one batch; counts the 202s.
    async fn post_batch(&self, messages: Vec<Value>) -> anyhow::Result<Sent> {
        let res = expect(
            self.http
                .post(format!("{}/api/v1/messages/batch", self.base))
                .bearer_auth(&self.token)
                .json(&json!({ "messages": messages }))
                .send()
                .await
                .context("failed to post a batch")?,
            "batch",
        )
        .await?;
        let mut sent = Sent::default();
        for r in res["results"].as_array().into_iter().flatten() {
            if r["status"] == 202 {
                sent.accepted += 1;
            } else {
                sent.rejected += 1;
                if sent.first_problem.is_none() {
                    sent.first_problem = Some(r["problem"].clone());
                }
            }
        }
        Ok(sent)
    }

    /// Templates to bench numbers `from..to`, in batches of 100, from `clients` concurrent
    /// clients.
    async fn send_range(&self, from: usize, to: usize, clients: usize) -> anyhow::Result<Sent> {
        let next = Arc::new(AtomicUsize::new(from));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients.max(1) {
            let next = Arc::clone(&next);
            let api = self.clone();
            tasks.spawn(async move {
                let mut total = Sent::default();
                loop {
                    let start = next.fetch_add(BATCH_MAX, Ordering::Relaxed);
                    if start >= to {
                        return anyhow::Ok(total);
                    }
                    let end = (start + BATCH_MAX).min(to);
                    let msgs = (start..end)
                        .map(|i| template_to(&api.channel_id, i))
                        .collect();
                    total.add(api.post_batch(msgs).await?);
                }
            });
        }
        let mut all = Sent::default();
        while let Some(r) = tasks.join_next().await {
            all.add(r.context("a batch client panicked")??);
        }
        Ok(all)
    }
}

/// Runs `body` against a fresh database of `backend`, dropping a PostgreSQL one afterwards.
pub(crate) async fn with_database<F, Fut>(
    backend: BackendArg,
    postgres_url: &str,
    body: F,
) -> anyhow::Result<Value>
where
    F: FnOnce(Option<String>) -> Fut,
    Fut: Future<Output = anyhow::Result<Value>>,
{
    match backend {
        BackendArg::Sqlite => body(None).await,
        BackendArg::Postgres => {
            let (url, name) = create_pg_database(postgres_url).await?;
            let result = body(Some(url)).await;
            drop_pg_database(postgres_url, &name).await?;
            result
        }
    }
}

pub(crate) fn write_result(result: &Value, out: Option<&PathBuf>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(result)?;
    println!("{text}");
    if let Some(out) = out {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(out, format!("{text}\n"))
            .with_context(|| format!("failed to write {}", out.display()))?;
    }
    Ok(())
}

/// Polls `sql` until it counts at least `want`; bails after `limit`.
async fn wait_count(rig: &Rig, sql: &str, want: i64, limit: Duration) -> anyhow::Result<i64> {
    let started = Instant::now();
    loop {
        let n = rig.count(sql).await?;
        if n >= want {
            return Ok(n);
        }
        if started.elapsed() > limit {
            bail!("waited {limit:?} for {want} rows of `{sql}`: {n}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- P1: outbound ------------------------------------------------------------------------

pub async fn outbound(args: OutboundArgs) -> anyhow::Result<()> {
    if args.messages == 0 {
        bail!("--messages must be positive");
    }
    let a = &args;
    let result = if args.floor {
        outbound_floor_bench(a).await?
    } else {
        with_database(args.backend, &args.server.postgres_url, |url| async move {
            outbound_bench(a, url.as_deref()).await
        })
        .await?
    };
    write_result(&result, args.server.out.as_ref())
}

/// Starts a floor server (`cmd`: this binary with a floor subcommand): the child, its pid and
/// the base URL it says it listens at.
async fn start_floor(
    mut cmd: tokio::process::Command,
) -> anyhow::Result<(tokio::process::Child, u32, String)> {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("failed to start the floor server")?;
    let pid = child.id().context("the floor server exited at once")?;
    let stdout = child
        .stdout
        .take()
        .context("no stdout from the floor server")?;
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await?;
    let base = line
        .trim()
        .strip_prefix("listening at ")
        .context("the floor server did not say where it listens")?
        .to_owned();
    Ok((child, pid, base))
}

/// The same batches posted the same way to `wamage-bench send-floor`, which sends them to
/// the same fake Graph API in this process.
async fn outbound_floor_bench(args: &OutboundArgs) -> anyhow::Result<Value> {
    const FLOOR_TOKEN: &str = "bench-floor-token";
    let n = args.messages;
    let fake = FakeMeta::start().await;
    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("send-floor.db");
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.arg("send-floor")
        .arg("--db")
        .arg(&db_path)
        .args(["--provider", &fake.base_url()])
        .args(["--api-version", meta::API_VERSION])
        .args(["--phone-number-id", meta::PHONE_NUMBER_ID])
        .args(["--access-token", meta::TOKEN])
        .args(["--api-token", FLOOR_TOKEN]);
    let (mut child, pid, base) = start_floor(cmd).await?;
    let api = Api {
        http: reqwest::Client::new(),
        base,
        token: FLOOR_TOKEN.to_owned(),
        channel_id: "floor".to_owned(),
    };
    let db = Db::connect(
        &format!("sqlite://{}", db_path.display()),
        &DbOptions {
            max_connections: 1,
            ..DbOptions::default()
        },
    )
    .await?;
    let count_sent = || async {
        let (n,): (i64,) = with_db!(&db, |p| sqlx::query_as(
            "SELECT COUNT(*) FROM messages WHERE state = 'sent'"
        )
        .fetch_one(p)
        .await)?;
        anyhow::Ok(n)
    };
    let load_before = load_avg();
    eprintln!(
        "inbox-outbound: floor server, messages={n} clients={}",
        args.clients
    );
    let cpu = CpuMeter::of(pid);
    let started = Instant::now();
    let posted = api.send_range(0, n, args.clients).await?;
    let api_seconds = started.elapsed().as_secs_f64();
    if posted.rejected > 0 {
        bail!(
            "{} of {n} messages were refused by the floor, e.g. {}",
            posted.rejected,
            posted.first_problem.unwrap_or(Value::Null)
        );
    }
    let limit = Duration::from_secs(600);
    let sent = loop {
        let sent = count_sent().await?;
        if usize::try_from(sent).unwrap_or(0) >= n {
            break sent;
        }
        if started.elapsed() > limit {
            bail!("the floor sent {sent} of {n} messages within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.stop(seconds);
    let load_after = load_avg();
    let _ = child.kill().await;
    db.close().await;
    let received = fake.sent();
    let distinct: HashSet<&str> = received
        .iter()
        .filter_map(|m| m.body["to"].as_str())
        .collect();
    let sends_per_sec = sent as f64 / seconds;
    eprintln!(
        "inbox-outbound floor: {n} messages; API accepted {:.0}/s; all sent after {seconds:.1} s \
         = {sends_per_sec:.0} durable sends/s; fake received {} ({} distinct); server {} \
         cores, bench and fake {} cores; load {load_before} -> {load_after}",
        n as f64 / api_seconds,
        received.len(),
        distinct.len(),
        cpu["server_cores"],
        cpu["bench_cores"],
    );
    Ok(json!({
        "bench": "inbox-outbound",
        "server": "floor (wamage-bench send-floor: durable messages + job, Graph API send, durable `sent`)",
        "messages": n,
        "clients": args.clients,
        "batch": BATCH_MAX,
        "api_seconds": round2(api_seconds),
        "api_accepted_per_sec": (n as f64 / api_seconds).round(),
        "seconds_to_all_sent": round2(seconds),
        "durable_sends_per_sec": sends_per_sec.round(),
        "sent_in_db": sent,
        "fake_received": received.len(),
        "fake_distinct_recipients": distinct.len(),
        "exactly_once": received.len() == n && distinct.len() == n,
        "cpu": cpu,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    }))
}

async fn outbound_bench(args: &OutboundArgs, db_url: Option<&str>) -> anyhow::Result<Value> {
    let rig = Rig::start(&args.server, args.backend, db_url, false, 1000).await?;
    let n = args.messages;
    let load_before = load_avg();
    eprintln!(
        "inbox-outbound: backend={} messages={n} clients={}",
        backend_name(rig.backend),
        args.clients
    );
    let metrics_before = rig.metrics().await?;
    let cpu = CpuMeter::start(&rig.server);
    let started = Instant::now();
    let mut sender = Some({
        let api = rig.api.clone();
        let clients = args.clients;
        tokio::spawn(async move {
            let r = api.send_range(0, n, clients).await;
            r.map(|s| (s, started.elapsed().as_secs_f64()))
        })
    });
    let mut api = None;
    let mut progress = Vec::new();
    let mut last_sample = Instant::now();
    let mut rss_peak = 0;
    let limit = Duration::from_secs(1800);
    // The database is counted once a second until the fake has received every message, then
    // every 20 ms. Its count scans the messages table: counted every 100 ms, it took the
    // server's cores (on PostgreSQL two ~13 ms scans per count at 40,000 messages).
    let mut counted: Option<Instant> = None;
    let (sent, failed) = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        rss_peak = rss_peak.max(rig.server.rss_kb());
        if let Some(task) = sender.take_if(|t| t.is_finished()) {
            let (s, secs) = task.await.context("the batch clients panicked")??;
            if s.rejected > 0 {
                bail!(
                    "{} of {n} messages were refused by the API, e.g. {}",
                    s.rejected,
                    s.first_problem.unwrap_or(Value::Null)
                );
            }
            api = Some(secs);
        }
        let all_received = api.is_some() && rig.fake.sent_count() >= n;
        if !all_received && counted.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            continue;
        }
        counted = Some(Instant::now());
        let (sent, failed) = rig.sent_and_failed().await?;
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            progress.push(json!({
                "t_s": round2(started.elapsed().as_secs_f64()),
                "sent_in_db": sent,
                "fake_received": rig.fake.sent_count(),
            }));
        }
        if api.is_some() && usize::try_from(sent + failed).unwrap_or(0) >= n {
            break (sent, failed);
        }
        if started.elapsed() > limit {
            bail!("not every message was sent within {limit:?}: {sent} sent, {failed} failed");
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let api_seconds = api.unwrap_or(seconds);
    let cpu = cpu.stop(seconds);
    let load_after = load_avg();
    let received = rig.fake.sent();
    let distinct: HashSet<&str> = received
        .iter()
        .filter_map(|m| m.body["to"].as_str())
        .collect();
    let sends_per_sec = sent as f64 / seconds;
    let api_per_sec = n as f64 / api_seconds;
    let result = json!({
        "bench": "inbox-outbound",
        "backend": backend_name(rig.backend),
        "messages": n,
        "clients": args.clients,
        "batch": BATCH_MAX,
        "worker_concurrency": args.server.worker_concurrency,
        "pacing": false,
        "api_seconds": round2(api_seconds),
        "api_accepted_per_sec": api_per_sec.round(),
        "seconds_to_all_sent": round2(seconds),
        "durable_sends_per_sec": sends_per_sec.round(),
        "sent_in_db": sent,
        "failed_in_db": failed,
        "fake_received": received.len(),
        "fake_distinct_recipients": distinct.len(),
        "fake_throttled": rig.fake.throttled_count(),
        "exactly_once": received.len() == n && distinct.len() == n,
        "target_per_sec": 10_000,
        "target_met": sends_per_sec >= 10_000.0 && received.len() == n && distinct.len() == n,
        "server_rss_peak_kb": rss_peak,
        "cpu": cpu,
        "progress": progress,
        "metrics_before": metrics_before,
        "metrics": rig.metrics().await?,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    });
    eprintln!(
        "inbox-outbound {}: {n} messages; API accepted {api_per_sec:.0}/s ({api_seconds:.1} s); \
         all sent after {seconds:.1} s = {sends_per_sec:.0} durable sends/s; fake received {} \
         ({} distinct), {failed} failed; load {load_before} -> {load_after}",
        backend_name(rig.backend),
        received.len(),
        distinct.len(),
    );
    rig.close().await;
    Ok(result)
}

// ---- P2: pacing ----------------------------------------------------------------------------

pub async fn pacing(args: PacingArgs) -> anyhow::Result<()> {
    if args.rate == 0 || args.seconds == 0 {
        bail!("--rate and --seconds must be positive");
    }
    let result = pacing_bench(&args).await?;
    write_result(&result, args.server.out.as_ref())
}

async fn pacing_bench(args: &PacingArgs) -> anyhow::Result<Value> {
    let rig = Rig::start(&args.server, BackendArg::Sqlite, None, true, args.rate).await?;
    rig.fake.set_rate_limit(Some(args.rate));
    let rate = f64::from(args.rate);
    // Queued but not yet at the fake: a few seconds' worth keeps the sender saturated.
    let backlog_target = (args.rate as usize * 3).max(300);
    eprintln!(
        "inbox-pacing: rate={} window={} s (after {} s warm-up), backlog ≥ {backlog_target}",
        args.rate, args.seconds, args.warmup
    );
    let load_before = load_avg();
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..args.clients.max(1) {
        let (next, accepted, stop) = (Arc::clone(&next), Arc::clone(&accepted), Arc::clone(&stop));
        let api = rig.api.clone();
        let fake = rig.fake.clone();
        producers.spawn(async move {
            let mut total = Sent::default();
            while !stop.load(Ordering::Relaxed) {
                let backlog = accepted
                    .load(Ordering::Relaxed)
                    .saturating_sub(fake.sent_count());
                if backlog >= backlog_target {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let start = next.fetch_add(BATCH_MAX, Ordering::Relaxed);
                let msgs = (start..start + BATCH_MAX)
                    .map(|i| template_to(&api.channel_id, i))
                    .collect();
                let s = api.post_batch(msgs).await?;
                accepted.fetch_add(s.accepted, Ordering::Relaxed);
                total.add(s);
            }
            anyhow::Ok(total)
        });
    }

    let t = Instant::now();
    while rig.fake.sent_count() == 0 {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("nothing reached the fake within 60 s");
        }
        if let Some(r) = producers.try_join_next() {
            r.context("a producer panicked")??;
            bail!("a producer stopped early");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let t0 = Instant::now();
    let window = Duration::from_secs(args.seconds);
    let mut min_backlog = usize::MAX;
    while t0.elapsed() < window {
        let backlog = accepted
            .load(Ordering::Relaxed)
            .saturating_sub(rig.fake.sent_count());
        min_backlog = min_backlog.min(backlog);
        tokio::time::sleep(Duration::from_millis(100).min(window.saturating_sub(t0.elapsed())))
            .await;
    }
    let t1 = t0 + window;
    stop.store(true, Ordering::Relaxed);
    let mut api = Sent::default();
    while let Some(r) = producers.join_next().await {
        api.add(r.context("a producer panicked")??);
    }
    let load_after = load_avg();
    if api.rejected > 0 {
        bail!(
            "{} messages were refused by the API, e.g. {}",
            api.rejected,
            api.first_problem.unwrap_or(Value::Null)
        );
    }
    let times = rig.fake.accepted_times();
    let in_window: Vec<Duration> = times
        .iter()
        .filter(|at| **at >= t0 && **at < t1)
        .map(|at| at.duration_since(t0))
        .collect();
    let mut per_second = vec![0u64; usize::try_from(args.seconds).unwrap_or(0)];
    for d in &in_window {
        if let Some(slot) = per_second.get_mut(usize::try_from(d.as_secs()).unwrap_or(usize::MAX)) {
            *slot += 1;
        }
    }
    let measured = in_window.len() as f64 / window.as_secs_f64();
    let deviation = (measured - rate) / rate * 100.0;
    let throttled = rig.fake.throttled_count();
    let result = json!({
        "bench": "inbox-pacing",
        "backend": "sqlite",
        "rate": args.rate,
        "window_s": args.seconds,
        "warmup_s": args.warmup,
        "clients": args.clients,
        "worker_concurrency": args.server.worker_concurrency,
        "accepted_in_window": in_window.len(),
        "measured_per_sec": round2(measured),
        "deviation_pct": round2(deviation),
        "per_second": per_second,
        "per_second_min": per_second.iter().min(),
        "per_second_max": per_second.iter().max(),
        "fake_throttled_130429": throttled,
        "fake_accepted_total": times.len(),
        "api_accepted_total": api.accepted,
        "min_backlog_in_window": min_backlog,
        "saturated": min_backlog > 0,
        "failed_in_db": rig.count(FAILED_SQL).await?,
        "target": "within ±2 % of the rate, zero 130429",
        "target_met": deviation.abs() <= 2.0 && throttled == 0,
        "metrics": rig.metrics().await?,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    });
    eprintln!(
        "inbox-pacing {}: {:.2}/s accepted by the fake over {} s ({deviation:+.2} %), \
         {throttled} × 130429, backlog min {min_backlog}; load {load_before} -> {load_after}",
        args.rate, measured, args.seconds
    );
    rig.close().await;
    Ok(result)
}

// ---- P3: inbound -------------------------------------------------------------------------

/// What a round of webhook posts achieved.
struct Posted {
    /// (posting order, latency in ms) of each webhook.
    latencies: Vec<(usize, f64)>,
    not_ok: usize,
    first_error: Option<String>,
    seconds: f64,
    /// When the posting started (UTC), to line it up with the server's and database's logs.
    started_utc: Option<chrono::DateTime<chrono::Utc>>,
    /// Open loop only: the offered rate, and how late each webhook left the bench after its
    /// scheduled time (the generator's own lag, or every client still busy).
    offered_per_sec: Option<f64>,
    dispatch_lag_ms: Vec<f64>,
}

impl Posted {
    fn new(capacity: usize) -> Self {
        Self {
            latencies: Vec::with_capacity(capacity),
            not_ok: 0,
            first_error: None,
            seconds: 0.0,
            started_utc: None,
            offered_per_sec: None,
            dispatch_lag_ms: Vec::new(),
        }
    }

    fn latencies_ms(&self) -> Vec<f64> {
        self.latencies.iter().map(|(_, ms)| *ms).collect()
    }

    /// The latency percentiles of each tenth of the webhooks in posting order (a slow start,
    /// or a server falling behind as the run goes on, shows here).
    fn over_time(&self) -> Value {
        let Some(last) = self.latencies.iter().map(|(i, _)| *i).max() else {
            return Value::Null;
        };
        let mut tenths = vec![Vec::new(); 10];
        for &(i, ms) in &self.latencies {
            tenths[(i * 10 / (last + 1)).min(9)].push(ms);
        }
        Value::Array(tenths.into_iter().map(percentiles).collect())
    }
}

/// How webhooks are offered to the server.
#[derive(Clone, Copy)]
enum Load {
    /// `clients` concurrent clients, each posting its next webhook when the last is answered.
    Closed { clients: usize },
    /// Webhook `i` due at `i / rate` seconds and posted then by the next free one of
    /// `clients`, whatever is still unanswered; its latency counts from its due time.
    Open { rate: f64, clients: usize },
}

impl Load {
    fn of(args: &InboundArgs) -> Self {
        match args.rate {
            Some(rate) => Self::Open {
                rate: f64::from(rate),
                clients: args.clients.max(1),
            },
            None => Self::Closed {
                clients: args.clients.max(1),
            },
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Closed { clients } => format!("from {clients} clients"),
            Self::Open { rate, clients } => {
                format!("at {rate:.0}/s (open loop) from {clients} clients")
            }
        }
    }

    fn json(self) -> Value {
        match self {
            Self::Closed { clients } => json!({ "model": "closed", "clients": clients }),
            Self::Open { rate, clients } => {
                json!({ "model": "open", "rate": rate, "clients": clients })
            }
        }
    }
}

/// One signed webhook posted; `Some(reason)` when the answer was not 200.
async fn post_one(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    signature: &str,
) -> Option<String> {
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body.to_vec())
        .send()
        .await;
    match res {
        Ok(r) if r.status() == reqwest::StatusCode::OK => {
            // Read the (empty) body so the connection goes back to the pool.
            let _ = r.bytes().await;
            None
        }
        Ok(r) => {
            let status = r.status();
            Some(format!("{status} {}", r.text().await.unwrap_or_default()))
        }
        Err(e) => Some(e.to_string()),
    }
}

/// Posts `order` (indices into `bodies`: signed webhook bytes) as `load` says, timing each
/// answer. `verify_token` answers the subscription handshake that opens the open loop's
/// connections.
async fn post_webhooks(
    http: &reqwest::Client,
    url: &str,
    bodies: &Arc<Vec<(Vec<u8>, String)>>,
    order: Vec<usize>,
    load: Load,
    verify_token: &str,
) -> anyhow::Result<Posted> {
    let (clients, rate) = match load {
        Load::Closed { clients } => (clients.max(1), None),
        Load::Open { rate, clients } => {
            if !(rate.is_finite() && rate > 0.0) {
                bail!("--rate must be positive");
            }
            open_connections(http, url, clients.max(1), verify_token).await?;
            (clients.max(1), Some(rate))
        }
    };
    let order = Arc::new(order);
    let next = Arc::new(AtomicUsize::new(0));
    let started_utc = chrono::Utc::now();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (order, next, bodies) = (Arc::clone(&order), Arc::clone(&next), Arc::clone(bodies));
        let (http, url) = (http.clone(), url.to_owned());
        tasks.spawn(async move {
            let mut posted = Posted::new(0);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&b) = order.get(i) else {
                    return posted;
                };
                let due = match rate {
                    // Due at i / rate whatever happened to the earlier ones. A client still
                    // busy with an earlier webhook takes this one late, and its latency
                    // shows it.
                    Some(rate) => {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                        posted
                            .dispatch_lag_ms
                            .push(due.elapsed().as_secs_f64() * 1000.0);
                        due
                    }
                    None => Instant::now(),
                };
                let (body, signature) = &bodies[b];
                let error = post_one(&http, &url, body, signature).await;
                posted
                    .latencies
                    .push((i, due.elapsed().as_secs_f64() * 1000.0));
                if let Some(e) = error {
                    posted.not_ok += 1;
                    posted.first_error.get_or_insert(e);
                }
            }
        });
    }
    let mut posted = Posted::new(order.len());
    while let Some(r) = tasks.join_next().await {
        let p = r.context("a webhook client panicked")?;
        posted.latencies.extend(p.latencies);
        posted.dispatch_lag_ms.extend(p.dispatch_lag_ms);
        posted.not_ok += p.not_ok;
        posted.first_error = posted.first_error.or(p.first_error);
    }
    posted.seconds = started.elapsed().as_secs_f64();
    posted.started_utc = Some(started_utc);
    posted.offered_per_sec = rate;
    Ok(posted)
}

/// Opens each client's connection before the clock starts, as Meta keeps its connections
/// open: one subscription handshake (`GET`) per client, all at once so that none reuses
/// another's.
async fn open_connections(
    http: &reqwest::Client,
    url: &str,
    clients: usize,
    verify_token: &str,
) -> anyhow::Result<()> {
    let handshake =
        format!("{url}?hub.mode=subscribe&hub.verify_token={verify_token}&hub.challenge=warm-up");
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, handshake) = (http.clone(), handshake.clone());
        opening.spawn(async move {
            let r = http.get(&handshake).send().await?;
            r.bytes().await
        });
    }
    while let Some(r) = opening.join_next().await {
        r.context("a connection opener panicked")?
            .context("opening a client's connection")?;
    }
    Ok(())
}

impl Posted {
    fn summary(&self) -> Value {
        let ok = self.latencies.len() - self.not_ok;
        json!({
            "posted": self.latencies.len(),
            "not_200": self.not_ok,
            "first_error": self.first_error,
            "seconds": round2(self.seconds),
            "started": self.started_utc.map(|t| t.to_rfc3339()),
            "accepted_per_sec": (ok as f64 / self.seconds).round(),
            "offered_per_sec": self.offered_per_sec,
            "latency": percentiles(self.latencies_ms()),
            "dispatch_lag": percentiles(self.dispatch_lag_ms.clone()),
            "latency_by_tenth_of_schedule": self.over_time(),
        })
    }

    /// The answered rate: 200s over the wall time of the posting.
    fn accepted_per_sec(&self) -> f64 {
        (self.latencies.len() - self.not_ok) as f64 / self.seconds
    }

    /// P3's target: ≥ 20,000 webhooks/s with p99 ≤ 25 ms, every webhook answered 200. In a
    /// closed loop the answered rate must reach it; in an open loop the offered rate must, and
    /// the server must keep up: p99 counts from the scheduled times, and the answered rate
    /// stays within 2 % of the offered one.
    fn target_met(&self) -> bool {
        let p99 = percentiles(self.latencies_ms())["p99_ms"]
            .as_f64()
            .unwrap_or(f64::MAX);
        let rate_ok = match self.offered_per_sec {
            None => self.accepted_per_sec() >= 20_000.0,
            Some(offered) => offered >= 20_000.0 && self.accepted_per_sec() >= 0.98 * offered,
        };
        rate_ok && p99 <= 25.0 && self.not_ok == 0
    }
}

/// A webhook body and its `X-Hub-Signature-256`.
type Signed = (Vec<u8>, String);

/// The P3 webhooks, signed up front: every 4th a customer message from a new number, the
/// others a status (sent → delivered → read, then repeats) of one of `targets` (wamid, phone).
/// Also the indices of the message webhooks.
fn webhook_bodies(
    n: usize,
    targets: &[(String, String)],
) -> anyhow::Result<(Vec<Signed>, Vec<usize>)> {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    const STATUSES: [&str; 3] = ["sent", "delivered", "read"];
    let mut bodies = Vec::with_capacity(n);
    let mut message_hooks = Vec::new();
    for i in 0..n {
        let body = if i % 4 == 3 {
            let j = i / 4;
            message_hooks.push(i);
            FakeMeta::webhook_text(
                &format!("1556{j:07}"),
                &format!("Customer {j}"),
                &format!("Hello, this is message {j}"),
            )
            .1
        } else {
            let k = i % targets.len();
            let round = i / targets.len();
            let (wamid, to) = &targets[k];
            FakeMeta::webhook_statuses(vec![webhook::status(
                wamid,
                STATUSES[round % STATUSES.len()],
                to,
                now + i64::try_from(round)?,
            )])
        };
        let bytes = serde_json::to_vec(&body)?;
        let signature = FakeMeta::sign(APP_SECRET, &bytes);
        bodies.push((bytes, signature));
    }
    Ok((bodies, message_hooks))
}

/// The same webhooks posted the same way to `wamage-bench webhook-floor`.
async fn floor_bench(args: &InboundArgs) -> anyhow::Result<Value> {
    let n = args.webhooks;
    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("floor.db");
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.arg("webhook-floor")
        .arg("--db")
        .arg(&db_path)
        .args(["--app-secret", APP_SECRET]);
    let (mut child, pid, base) = start_floor(cmd).await?;
    // Statuses about made-up sends (the floor reads nothing).
    let targets: Vec<(String, String)> = (0..args.seed.max(1))
        .map(|k| (format!("wamid.floor{k:08}"), format!("1555{k:07}")))
        .collect();
    let (bodies, message_hooks) = webhook_bodies(n, &targets)?;
    let bodies = Arc::new(bodies);
    let url = format!("{base}/webhooks/whatsapp/0190a1b2-0000-7000-8000-000000000001");
    let http = reqwest::Client::new();
    let load_before = load_avg();
    eprintln!(
        "inbox-inbound: floor server, posting {n} webhooks ({} messages) {}",
        message_hooks.len(),
        Load::of(args).describe()
    );
    let cpu = CpuMeter::of(pid);
    let posted = post_webhooks(
        &http,
        &url,
        &bodies,
        (0..n).collect(),
        Load::of(args),
        "floor",
    )
    .await?;
    let cpu = cpu.stop(posted.seconds);
    let load_after = load_avg();
    let db = Db::connect(
        &format!("sqlite://{}", db_path.display()),
        &DbOptions {
            max_connections: 1,
            ..DbOptions::default()
        },
    )
    .await?;
    let (stored,): (i64,) = with_db!(&db, |p| sqlx::query_as("SELECT COUNT(*) FROM events")
        .fetch_one(p)
        .await)?;
    let _ = child.kill().await;
    let p = percentiles(posted.latencies_ms());
    let rate = posted.accepted_per_sec();
    eprintln!(
        "inbox-inbound floor: {n} webhooks accepted at {rate:.0}/s (p50 {} / p95 {} / p99 {} ms, \
         {} not 200), {stored} stored; server {} cores, clients {} cores; load {load_before} -> {load_after}",
        p["p50_ms"],
        p["p95_ms"],
        p["p99_ms"],
        posted.not_ok,
        cpu["server_cores"],
        cpu["bench_cores"],
    );
    Ok(json!({
        "bench": "inbox-inbound",
        "server": "floor (wamage-bench webhook-floor: signature check + durable insert only)",
        "webhooks": n,
        "message_webhooks": message_hooks.len(),
        "clients": args.clients,
        "load": Load::of(args).json(),
        "first_delivery": posted.summary(),
        "events_stored": stored,
        "cpu": cpu,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    }))
}

pub async fn inbound(args: InboundArgs) -> anyhow::Result<()> {
    if args.webhooks < 4 || args.seed == 0 {
        bail!("--webhooks must be at least 4 and --seed positive");
    }
    if args.floor {
        let result = floor_bench(&args).await?;
        return write_result(&result, args.server.out.as_ref());
    }
    let a = &args;
    let result = with_database(args.backend, &args.server.postgres_url, |url| async move {
        inbound_bench(a, url.as_deref()).await
    })
    .await?;
    write_result(&result, args.server.out.as_ref())
}

async fn inbound_bench(args: &InboundArgs, db_url: Option<&str>) -> anyhow::Result<Value> {
    let rig = Rig::start(&args.server, args.backend, db_url, false, 1000).await?;
    let n = args.webhooks;
    let limit = Duration::from_secs(1800);

    // Real outbound messages for the statuses to report on.
    eprintln!("inbox-inbound: sending {} seed messages", args.seed);
    let seeded = rig.api.send_range(0, args.seed, 4).await?;
    if seeded.rejected > 0 {
        bail!("seed messages refused: {:?}", seeded.first_problem);
    }
    wait_count(&rig, SENT_SQL, i64::try_from(args.seed)?, limit).await?;
    let targets: Vec<(String, String)> = rig
        .fake
        .sent()
        .into_iter()
        .map(|m| (m.id, m.body["to"].as_str().unwrap_or_default().to_owned()))
        .collect();

    let (bodies, message_hooks) = webhook_bodies(n, &targets)?;
    let bodies = Arc::new(bodies);
    let url = format!("{}/webhooks/whatsapp/{}", rig.api.base, rig.api.channel_id);
    let verify_token = rig.verify_token().await?;
    let inbound_before = rig.count(INBOUND_SQL).await?;
    let metrics_before = rig.metrics().await?;
    let load_before = load_avg();
    eprintln!(
        "inbox-inbound: backend={} posting {n} webhooks ({} messages) {}",
        backend_name(rig.backend),
        message_hooks.len(),
        Load::of(args).describe()
    );

    let cpu = CpuMeter::start(&rig.server);
    let started = Instant::now();
    let first = post_webhooks(
        &rig.api.http,
        &url,
        &bodies,
        (0..n).collect(),
        Load::of(args),
        &verify_token,
    )
    .await?;
    let rss_after_posts = rig.server.rss_kb();
    wait_count_zero(&rig, INGEST_PENDING_SQL, limit).await?;
    let processed_s = started.elapsed().as_secs_f64();
    let cpu = cpu.stop(processed_s);
    let load_mid = load_avg();
    let inbound_after = rig.count(INBOUND_SQL).await?;
    let delivered = rig.count(DELIVERED_SQL).await?;
    let metrics_first = rig.metrics().await?;

    // Redeliveries of the already processed customer messages, byte for byte.
    let dups = args.duplicates.min(n);
    let order: Vec<usize> = message_hooks.iter().copied().cycle().take(dups).collect();
    eprintln!("inbox-inbound: redelivering {dups} message webhooks");
    let dup_started = Instant::now();
    let second = post_webhooks(
        &rig.api.http,
        &url,
        &bodies,
        order,
        Load::of(args),
        &verify_token,
    )
    .await?;
    wait_count_zero(&rig, INGEST_PENDING_SQL, limit).await?;
    let dup_processed_s = dup_started.elapsed().as_secs_f64();
    let inbound_final = rig.count(INBOUND_SQL).await?;
    let dead = rig.count(INGEST_DEAD_SQL).await?;
    let load_after = load_avg();

    let p = percentiles(first.latencies_ms());
    let rate = first.accepted_per_sec();
    let new_from_dups = inbound_final - inbound_after;
    let result = json!({
        "bench": "inbox-inbound",
        "backend": backend_name(rig.backend),
        "webhooks": n,
        "message_webhooks": message_hooks.len(),
        "status_webhooks": n - message_hooks.len(),
        "seed_messages": targets.len(),
        "clients": args.clients,
        "load": Load::of(args).json(),
        "worker_concurrency": args.server.worker_concurrency,
        "first_delivery": first.summary(),
        "all_processed_s": round2(processed_s),
        "processed_per_sec": (n as f64 / processed_s).round(),
        "inbound_rows_created": inbound_after - inbound_before,
        "outbound_delivered_or_read": delivered,
        "server_rss_after_posts_kb": rss_after_posts,
        "cpu_until_processed": cpu,
        "duplicates": {
            "redelivered": dups,
            "delivery": second.summary(),
            "all_processed_s": round2(dup_processed_s),
            "new_inbox_messages": new_from_dups,
        },
        "ingest_jobs_dead": dead,
        "target": "≥ 20,000 webhooks/s, p99 ≤ 25 ms, 0 rows from duplicates",
        "target_met": first.target_met() && new_from_dups == 0,
        "metrics_before": metrics_before,
        "metrics_after_first": metrics_first,
        "metrics": rig.metrics().await?,
        "load_avg_before": load_before,
        "load_avg_after_first": load_mid,
        "load_avg_after": load_after,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    });
    eprintln!(
        "inbox-inbound {}: {n} webhooks accepted at {rate:.0}/s (p50 {} / p95 {} / p99 {} ms, \
         {} not 200), all processed after {processed_s:.1} s; {} inbound rows; {dups} \
         redeliveries → {new_from_dups} new rows; load {load_before} -> {load_after}",
        backend_name(rig.backend),
        p["p50_ms"],
        p["p95_ms"],
        p["p99_ms"],
        first.not_ok,
        inbound_after - inbound_before,
    );
    rig.close().await;
    Ok(result)
}

/// Polls `sql` until it counts zero; bails after `limit`.
async fn wait_count_zero(rig: &Rig, sql: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let n = rig.count(sql).await?;
        if n == 0 {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("waited {limit:?} for `{sql}` to reach 0: {n}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CPU seconds of a server process and of this process (fake + clients) over a phase.
pub(crate) struct CpuMeter {
    stat: String,
    server: f64,
    bench: f64,
}

impl CpuMeter {
    pub(crate) fn start(server: &Server) -> Self {
        Self::of(server.pid())
    }

    /// A meter for the process `pid` (a floor server).
    pub(crate) fn of(pid: u32) -> Self {
        let stat = format!("/proc/{pid}/stat");
        Self {
            server: cpu_seconds_of(&stat),
            bench: cpu_seconds_of("/proc/self/stat"),
            stat,
        }
    }

    /// CPU used since the start, in seconds and in cores over `wall` seconds.
    pub(crate) fn stop(self, wall: f64) -> Value {
        let s = cpu_seconds_of(&self.stat) - self.server;
        let b = cpu_seconds_of("/proc/self/stat") - self.bench;
        json!({
            "wall_s": round2(wall),
            "server_cpu_s": round2(s),
            "server_cores": round2(s / wall),
            "bench_cpu_s": round2(b),
            "bench_cores": round2(b / wall),
        })
    }
}
