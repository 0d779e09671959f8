//! `wamage-bench campaign-throughput | campaign-pacing | campaign-kill …`: WhatsApp campaigns
//! end to end, through a real `wamage serve` process (release build) whose WhatsApp channel
//! points at the testkit's fake Graph API ([`FakeMeta`], served by this process, in its compact
//! recording mode so a million sends fit in memory).
//!
//! Every scenario seeds its audience **directly by SQL** in the server's database (contacts
//! with deterministic ids, one `whatsapp_phone` identity each, all in one group — what a CSV
//! import leaves behind, in seconds instead of a minute; then the statistics refresh an import
//! runs), imports a UTILITY template from the fake (`POST /api/v1/templates/sync`; utility
//! sends need no consent row) and creates the campaign through the API.
//!
//! - **throughput** (pacing off): launch → snapshot (`campaigns.snapshot_at`) → every
//!   recipient `sent` in the database; sends/s overall and per 5-second window (from the fake's
//!   accept instants); the fake must have received every recipient exactly once.
//! - **pacing** (pacing on): the channel's `messages_per_second` = `--rate`, the fake strict at
//!   exactly that rate (sliding second, 130429 beyond it); the accepted rate over a window.
//! - **kill**: one server process, fixed data dir and port, SIGKILLed `--kills` times while it
//!   sends and restarted on the same database; the fake posts signed `sent` statuses echoing
//!   `biz_opaque_callback_data` (retried until answered), which is how the campaign confirms
//!   sends a dead process made. Every recipient must reach the fake exactly once.
//!
//! The fake, the clients and the server share the machine's cores: every number is a
//! whole-system number on this machine, recorded with the load average.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::Child,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use wamage_platform::{Backend, Db, DbOptions, with_db};
use wamage_testkit::fakes::{FakeMeta, meta};

use crate::{
    BackendArg,
    contacts::{
        cpu_seconds_of, default_bin, expect, free_port, spawn_server, start_with, wait_ready,
    },
    inbox::{
        APP_SECRET, CpuMeter, backend_name, load_avg, scrape_metrics, with_database, write_result,
    },
    machine, round2,
};

/// The fake's template: UTILITY (no consent needed), one body variable.
const TEMPLATE: &str = "bench_campaign";
const SENT_STATES: &str = "('sent', 'delivered', 'read')";
/// Contacts seeded per statement.
const SEED_CHUNK: usize = 50_000;
/// The `/metrics` series the campaign results keep.
const METRICS: &[&str] = &[
    "wamage_jobs_duration_seconds",
    "wamage_jobs_attempts_total",
    "wamage_provider_send_seconds",
    "wamage_campaign_snapshot_seconds",
    "wamage_campaign_sends_total",
    "wamage_campaign_auto_pauses_total",
    "wamage_webhooks_received_total",
    "wamage_db_pool_connections",
];

/// How the server runs campaigns (unset: the server's own default), and where things are.
#[derive(Parser, Clone)]
pub struct CampaignServerArgs {
    /// `WAMAGE_CAMPAIGN_DISPATCHERS`: dispatch jobs per campaign.
    #[arg(long, default_value_t = 2)]
    dispatchers: u32,
    /// `WAMAGE_CAMPAIGN_CONCURRENCY`: sends in flight per dispatcher.
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    /// `WAMAGE_CAMPAIGN_BATCH`: recipients claimed per batch.
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// `WAMAGE_WORKER_CONCURRENCY` (server default when not given).
    #[arg(long)]
    worker_concurrency: Option<usize>,
    /// `WAMAGE_DB_MAX_CONNECTIONS` (server default when not given).
    #[arg(long)]
    db_max_connections: Option<u32>,
    /// The `wamage` binary to run (build it with `cargo build --release -p wamage-server`).
    #[arg(long, env = "WAMAGE_BIN")]
    wamage_bin: Option<PathBuf>,
    /// PostgreSQL server URL (a fresh database is created and dropped).
    #[arg(
        long,
        env = "WAMAGE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    /// Give up when the fake received nothing new for this many seconds (throughput: longer
    /// than the lease plus the confirmation grace, so a resend after them is seen).
    #[arg(long, default_value_t = 300)]
    stall_secs: u64,
    /// Where to write the JSON result.
    #[arg(long)]
    out: Option<PathBuf>,
}

impl CampaignServerArgs {
    fn bin(&self) -> PathBuf {
        self.wamage_bin.clone().unwrap_or_else(default_bin)
    }

    /// The server binary and when it was built (results from different builds differ).
    fn binary(&self) -> Value {
        let bin = self.bin();
        let modified = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .ok()
            .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
        json!({ "path": bin.display().to_string(), "modified": modified })
    }

    /// The server's environment: the campaign tuning, pacing, and `extra`.
    fn env(&self, pacing: bool, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("WAMAGE_ALLOW_CHANNEL_BASE_URL", "true".to_owned()),
            ("WAMAGE_CHANNEL_PACING", pacing.to_string()),
            ("WAMAGE_CAMPAIGN_DISPATCHERS", self.dispatchers.to_string()),
            ("WAMAGE_CAMPAIGN_CONCURRENCY", self.concurrency.to_string()),
            ("WAMAGE_CAMPAIGN_BATCH", self.batch.to_string()),
        ];
        if let Some(n) = self.worker_concurrency {
            env.push(("WAMAGE_WORKER_CONCURRENCY", n.to_string()));
        }
        if let Some(n) = self.db_max_connections {
            env.push(("WAMAGE_DB_MAX_CONNECTIONS", n.to_string()));
        }
        env.extend(extra.iter().cloned());
        env
    }

    fn tuning(&self) -> Value {
        json!({
            "dispatchers": self.dispatchers,
            "concurrency": self.concurrency,
            "batch": self.batch,
            "worker_concurrency": self.worker_concurrency,
            "db_max_connections": self.db_max_connections,
        })
    }
}

#[derive(Parser)]
pub struct ThroughputArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Recipients (contacts in the campaign's group).
    #[arg(long, default_value_t = 1_000_000)]
    recipients: usize,
    /// Width of the windows the sends/s are counted in.
    #[arg(long, default_value_t = 5)]
    window: u64,
    /// Diagnostic (PostgreSQL): `ANALYZE campaign_recipients` from the bench as soon as the
    /// snapshot is committed, so the dispatchers' claims are planned with statistics.
    #[arg(long)]
    analyze_recipients: bool,
    #[command(flatten)]
    server: CampaignServerArgs,
}

#[derive(Parser)]
pub struct PacingArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// The channel's `messages_per_second`, and exactly what the fake accepts per second.
    #[arg(long, default_value_t = 80)]
    rate: u32,
    /// The measured window.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Sending before the window opens.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    #[command(flatten)]
    server: CampaignServerArgs,
}

#[derive(Parser)]
pub struct KillArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Recipients (contacts in the campaign's group).
    #[arg(long, default_value_t = 100_000)]
    recipients: usize,
    /// SIGKILLs of the server while it sends (then it is restarted on the same data).
    #[arg(long, default_value_t = 5)]
    kills: usize,
    /// `WAMAGE_CAMPAIGN_CONFIRM_SECS`.
    #[arg(long, default_value_t = 10)]
    confirm_secs: u64,
    /// `WAMAGE_CAMPAIGN_LEASE_SECS`.
    #[arg(long, default_value_t = 10)]
    lease_secs: u64,
    /// On a stall (nothing new at the fake for `--stall-secs`), stop and report instead of
    /// pausing and resuming the campaign through the API.
    #[arg(long)]
    no_recover: bool,
    #[command(flatten)]
    server: CampaignServerArgs,
}

// ---- shared set-up ---------------------------------------------------------------------------

/// The owner's view of the server's API.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn post(&self, path: &str, body: &Value, what: &str) -> anyhow::Result<Value> {
        expect(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .json(body)
                .send()
                .await
                .with_context(|| format!("{what}: request failed"))?,
            what,
        )
        .await
    }

    async fn get(&self, path: &str, what: &str) -> anyhow::Result<Value> {
        expect(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .with_context(|| format!("{what}: request failed"))?,
            what,
        )
        .await
    }
}

/// What the API set up: the owner, a WhatsApp channel on the fake, an approved UTILITY
/// template, and an empty group.
struct World {
    api: Api,
    org: uuid::Uuid,
    channel: String,
    template: String,
    group: uuid::Uuid,
}

fn uuid_of(v: &Value, what: &str) -> anyhow::Result<uuid::Uuid> {
    v.as_str()
        .with_context(|| format!("no {what} id"))?
        .parse()
        .with_context(|| format!("{what} id is not a UUID"))
}

async fn set_up(base: &str, fake: &FakeMeta, rate: u32) -> anyhow::Result<World> {
    let http = reqwest::Client::new();
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
    let api = Api {
        http,
        base: base.to_owned(),
        token: auth["access_token"]
            .as_str()
            .context("no access token in the register answer")?
            .to_owned(),
    };
    let org = uuid_of(&auth["organization"]["id"], "organization")?;
    let channel = api
        .post(
            "/api/v1/channels",
            &json!({"kind": "whatsapp", "name": "Bench WhatsApp", "messages_per_second": rate,
                "config": {"phone_number_id": meta::PHONE_NUMBER_ID, "waba_id": meta::WABA_ID,
                    "access_token": meta::TOKEN, "app_secret": APP_SECRET,
                    "base_url": fake.base_url()}}),
            "create channel",
        )
        .await?["id"]
        .as_str()
        .context("no channel id")?
        .to_owned();
    fake.add_template(
        json!({"name": TEMPLATE, "language": "en_US", "status": "APPROVED",
        "category": "UTILITY", "components": [{"type": "BODY", "text": "Hello {{1}}",
        "example": {"body_text": [["x"]]}}]}),
    );
    api.post(
        "/api/v1/templates/sync",
        &json!({ "channel_id": channel }),
        "template sync",
    )
    .await?;
    let list = api
        .get(
            &format!("/api/v1/templates?channel_id={channel}"),
            "list templates",
        )
        .await?;
    let template = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == TEMPLATE)
        .with_context(|| format!("the sync did not import {TEMPLATE}: {list}"))?;
    if template["status"] != "approved" {
        bail!("the template is not approved after the sync: {template}");
    }
    let template = template["id"]
        .as_str()
        .context("no template id")?
        .to_owned();
    let group = api
        .post(
            "/api/v1/groups",
            &json!({"name": "Campaign audience"}),
            "create group",
        )
        .await?;
    let group = uuid_of(&group["id"], "group")?;
    Ok(World {
        api,
        org,
        channel,
        template,
        group,
    })
}

/// A 2-connection pool on the server's database (SQLite file in its data dir, or `db_url`).
async fn open_db(data_dir: &std::path::Path, db_url: Option<&str>) -> anyhow::Result<Db> {
    let url = match db_url {
        Some(u) => u.to_owned(),
        None => format!("sqlite://{}", data_dir.join("wamage.db").display()),
    };
    Db::connect(
        &url,
        &DbOptions {
            max_connections: 2,
            ..DbOptions::default()
        },
    )
    .await
    .context("failed to open the server's database")
}

/// A UUID as an SQL literal of the backend (ids are BLOBs in SQLite, `uuid` in PostgreSQL).
fn id_lit(backend: Backend, id: uuid::Uuid) -> String {
    match backend {
        Backend::Sqlite => format!("x'{}'", id.simple()),
        Backend::Postgres => format!("'{}'::uuid", id.hyphenated()),
    }
}

async fn exec(db: &Db, sql: &str) -> anyhow::Result<u64> {
    with_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .with_context(|| format!("failed: {}", &sql[..sql.len().min(200)]))
}

async fn count(db: &Db, sql: &str) -> anyhow::Result<i64> {
    let (n,): (i64,) = with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(p)
        .await)
    .with_context(|| format!("failed to count: {sql}"))?;
    Ok(n)
}

/// Seeds `n` contacts (`Contact {i}`, id `b0000000-0000-4000-8000-{i:012x}`), each with the
/// `whatsapp_phone` identity `+1555{i:07}` and in `group`, 50,000 per statement; then refreshes
/// the planner statistics like a finished import does. Returns the seconds it took.
async fn seed(db: &Db, org: uuid::Uuid, group: uuid::Uuid, n: usize) -> anyhow::Result<f64> {
    if n >= 10_000_000 {
        bail!("at most 9,999,999 recipients (the numbers are +1555 and seven digits)");
    }
    let started = Instant::now();
    let backend = db.backend();
    let org = id_lit(backend, org);
    let group = id_lit(backend, group);
    let now = chrono::Utc::now().timestamp_millis();
    let mut lo = 1;
    while lo <= n {
        let hi = (lo + SEED_CHUNK - 1).min(n);
        let (series, contact, ident) = match backend {
            Backend::Sqlite => (
                format!(
                    "WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s \
                     WHERE i < {hi}) "
                ),
                "unhex(printf('b0000000000040008000%012x', i))",
                "unhex(printf('b1000000000040008000%012x', i))",
            ),
            Backend::Postgres => (
                String::new(),
                "('b0000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid",
                "('b1000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid",
            ),
        };
        let from = match backend {
            Backend::Sqlite => "FROM s".to_owned(),
            Backend::Postgres => format!("FROM generate_series({lo}, {hi}) AS g(i)"),
        };
        let phone = match backend {
            Backend::Sqlite => "printf('+1555%07d', i)",
            Backend::Postgres => "'+1555' || lpad(i::text, 7, '0')",
        };
        exec(
            db,
            &format!(
                "{series}INSERT INTO contacts (id, org_id, name, sort_name, created_at, updated_at) \
                 SELECT {contact}, {org}, 'Contact ' || i, 'contact ' || i, {now}, {now} {from}"
            ),
        )
        .await?;
        exec(
            db,
            &format!(
                "{series}INSERT INTO contact_identities (id, org_id, contact_id, kind, value, \
                 created_at) SELECT {ident}, {org}, {contact}, 'whatsapp_phone', {phone}, {now} \
                 {from}"
            ),
        )
        .await?;
        exec(
            db,
            &format!(
                "{series}INSERT INTO contact_group_members (org_id, contact_id, group_id) \
                 SELECT {org}, {contact}, {group} {from}"
            ),
        )
        .await?;
        lo = hi + 1;
    }
    match db {
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            sqlx::query("PRAGMA analysis_limit = 2000")
                .execute(&mut *conn)
                .await?;
            sqlx::query("PRAGMA optimize").execute(&mut *conn).await?;
        }
        Db::Postgres(pool) => {
            sqlx::query("ANALYZE contacts, contact_identities, contact_group_members")
                .execute(pool)
                .await?;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A fresh owner token (the register answer's may have expired by then).
async fn login(base: &str) -> anyhow::Result<Api> {
    let http = reqwest::Client::new();
    let auth = expect(
        http.post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "bench@example.com", "password": "bench-password-123"}))
            .send()
            .await
            .context("failed to log in")?,
        "login",
    )
    .await?;
    Ok(Api {
        http,
        base: base.to_owned(),
        token: auth["access_token"]
            .as_str()
            .context("no access token in the login answer")?
            .to_owned(),
    })
}

/// Creates the campaign (the template's `{{1}}` = the contact's name) to the group.
async fn create_campaign(w: &World) -> anyhow::Result<uuid::Uuid> {
    let c = w
        .api
        .post(
            "/api/v1/campaigns",
            &json!({"name": "Bench campaign", "channel_id": w.channel,
                "template_id": w.template,
                "variables": {"body.1": {"source": "contact.name"}},
                "audience": {"groups": [w.group]}}),
            "create campaign",
        )
        .await?;
    uuid_of(&c["id"], "campaign")
}

/// The campaign's row as the bench reads it.
#[derive(Debug, Clone)]
struct CampaignState {
    status: String,
    pause_reason: Option<String>,
    total: i64,
    snapshot_at: Option<i64>,
    launched_at: Option<i64>,
    completed_at: Option<i64>,
}

async fn campaign_state(db: &Db, id: uuid::Uuid) -> anyhow::Result<CampaignState> {
    let sql = format!(
        "SELECT status, pause_reason, total, snapshot_at, launched_at, completed_at \
         FROM campaigns WHERE id = {}",
        id_lit(db.backend(), id)
    );
    let row: (
        String,
        Option<String>,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    ) = with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .fetch_one(p)
        .await)
    .context("failed to read the campaign")?;
    Ok(CampaignState {
        status: row.0,
        pause_reason: row.1,
        total: row.2,
        snapshot_at: row.3,
        launched_at: row.4,
        completed_at: row.5,
    })
}

/// Recipients per state.
async fn state_counts(db: &Db, id: uuid::Uuid) -> anyhow::Result<BTreeMap<String, i64>> {
    let sql = format!(
        "SELECT state, COUNT(*) FROM campaign_recipients WHERE campaign_id = {} GROUP BY state",
        id_lit(db.backend(), id)
    );
    let rows: Vec<(String, i64)> =
        with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(p)
            .await)
        .context("failed to count recipient states")?;
    Ok(rows.into_iter().collect())
}

/// Campaign jobs per kind and state (a diagnostic for stalls).
async fn campaign_jobs(db: &Db) -> anyhow::Result<Value> {
    /// kind, state, count, most attempts, most losses, an error.
    type JobGroup = (
        String,
        String,
        i64,
        Option<i64>,
        Option<i64>,
        Option<String>,
    );
    let rows: Vec<JobGroup> = with_db!(db, |p| sqlx::query_as(
        "SELECT kind, state, COUNT(*), MAX(CAST(attempts AS BIGINT)), \
             MAX(CAST(lost_count AS BIGINT)), MAX(last_error) FROM jobs \
             WHERE kind LIKE 'campaigns.%' OR kind = 'channels.ingest' \
             GROUP BY kind, state ORDER BY kind, state"
    )
    .fetch_all(p)
    .await)
    .context("failed to read the jobs")?;
    Ok(json!(
        rows.into_iter()
            .map(
                |(k, s, n, attempts, lost, err)| json!({"kind": k, "state": s, "count": n,
                "max_attempts_used": attempts, "max_lost_count": lost, "a_last_error": err})
            )
            .collect::<Vec<_>>()
    ))
}

fn sent_sql(backend: Backend, id: uuid::Uuid) -> String {
    format!(
        "SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = {} AND state IN {SENT_STATES}",
        id_lit(backend, id)
    )
}

/// Sends per second in consecutive windows of `width` from the first accept; the last,
/// partial window is left out.
fn windows(times: &[Instant], width: Duration) -> Vec<f64> {
    let Some(first) = times.iter().min() else {
        return Vec::new();
    };
    let last = times.iter().max().unwrap_or(first);
    let full = (last.duration_since(*first).as_secs_f64() / width.as_secs_f64()).floor() as usize;
    let mut counts = vec![0u64; full];
    for t in times {
        let i = (t.duration_since(*first).as_secs_f64() / width.as_secs_f64()) as usize;
        if let Some(c) = counts.get_mut(i) {
            *c += 1;
        }
    }
    counts
        .into_iter()
        .map(|c| c as f64 / width.as_secs_f64())
        .collect()
}

/// Min / median / max of the windows, without the first and last (ramp-up and tail) when
/// there are at least three.
fn steady(per_sec: &[f64]) -> Value {
    let mut sorted: Vec<f64> = if per_sec.len() >= 3 {
        per_sec[1..per_sec.len() - 1].to_vec()
    } else {
        per_sec.to_vec()
    };
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return json!(null);
    }
    json!({
        "windows": sorted.len(),
        "min_per_sec": sorted[0].round(),
        "median_per_sec": sorted[sorted.len() / 2].round(),
        "max_per_sec": sorted[sorted.len() - 1].round(),
    })
}

// ---- throughput ------------------------------------------------------------------------------

pub async fn throughput(args: ThroughputArgs) -> anyhow::Result<()> {
    if args.recipients == 0 || args.window == 0 {
        bail!("--recipients and --window must be positive");
    }
    let a = &args;
    let result = with_database(args.backend, &args.server.postgres_url, |url| async move {
        throughput_bench(a, url.as_deref()).await
    })
    .await?;
    write_result(&result, args.server.out.as_ref())
}

async fn throughput_bench(args: &ThroughputArgs, db_url: Option<&str>) -> anyhow::Result<Value> {
    let n = args.recipients;
    let limit = Duration::from_secs(args.server.timeout);
    let server = start_with(&args.server.bin(), db_url, &args.server.env(false, &[])).await?;
    let fake = FakeMeta::start().await;
    fake.set_record_bodies(false);
    let w = set_up(&server.base, &fake, 1000).await?;
    let db = open_db(server.data_dir(), db_url).await?;
    let backend = backend_name(args.backend);
    eprintln!("campaign-throughput: backend={backend} seeding {n} contacts");
    let seed_s = seed(&db, w.org, w.group, n).await?;
    eprintln!("seeded in {seed_s:.1} s");
    let id = create_campaign(&w).await?;

    let load_before = load_avg();
    let rss_before = server.rss_kb();
    let cpu = CpuMeter::start(&server);
    let started = Instant::now();
    w.api
        .post(
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
            "launch",
        )
        .await?;
    let launch_request_s = started.elapsed().as_secs_f64();
    let snap = loop {
        let s = campaign_state(&db, id).await?;
        if s.snapshot_at.is_some() {
            break s;
        }
        if matches!(s.status.as_str(), "failed" | "cancelled" | "paused") {
            bail!("the campaign is {} before its snapshot: {s:?}", s.status);
        }
        if started.elapsed() > limit {
            bail!("no snapshot within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let snapshot_s = started.elapsed().as_secs_f64();
    let analyze_s = if args.analyze_recipients && db.backend() == Backend::Postgres {
        let t = Instant::now();
        exec(&db, "ANALYZE campaign_recipients").await?;
        Some(round2(t.elapsed().as_secs_f64()))
    } else {
        None
    };
    let snapshot_server_s = match (snap.snapshot_at, snap.launched_at) {
        (Some(s), Some(l)) => Some(round2((s - l) as f64 / 1000.0)),
        _ => None,
    };
    eprintln!(
        "snapshot of {} recipients after {snapshot_s:.2} s (launch request {launch_request_s:.2} s)",
        snap.total
    );
    if usize::try_from(snap.total).ok() != Some(n) {
        bail!("the snapshot has {} recipients, not {n}", snap.total);
    }

    // Sending: the fake's count is free to read; the database is read once the fake has all.
    let mut progress = Vec::new();
    let mut rss_peak = 0;
    let mut last = (Instant::now(), 0usize);
    let sent_sql = sent_sql(db.backend(), id);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_sample = Instant::now();
    let sent_in_db = loop {
        tick.tick().await;
        let fake_sent = fake.sent_count();
        if last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            rss_peak = rss_peak.max(server.rss_kb());
            progress.push(json!({
                "t_s": round2(started.elapsed().as_secs_f64()),
                "fake_sent": fake_sent,
            }));
        }
        if fake_sent != last.1 {
            last = (Instant::now(), fake_sent);
        }
        if fake_sent >= n {
            let in_db = count(&db, &sent_sql).await?;
            if usize::try_from(in_db).unwrap_or(0) >= n {
                break in_db;
            }
        }
        let stalled = last.0.elapsed() > Duration::from_secs(args.server.stall_secs);
        if stalled || started.elapsed() > limit {
            bail!(
                "campaign stalled or too slow: fake {fake_sent}/{n}, campaign {:?}, states {:?}, \
                 jobs {}",
                campaign_state(&db, id).await?,
                state_counts(&db, id).await?,
                campaign_jobs(&db).await?
            );
        }
        if fake_sent >= n {
            continue;
        }
        let s = campaign_state(&db, id).await?;
        if matches!(s.status.as_str(), "failed" | "cancelled" | "paused") {
            bail!(
                "the campaign is {}: {s:?}; states {:?}",
                s.status,
                state_counts(&db, id).await?
            );
        }
    };
    let all_sent_s = started.elapsed().as_secs_f64();
    let cpu = cpu.stop(all_sent_s);
    let load_after = load_avg();
    let completed = loop {
        let s = campaign_state(&db, id).await?;
        if s.status == "completed" {
            break s;
        }
        if started.elapsed() > limit {
            bail!("not completed within {limit:?}: {s:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let completed_s = started.elapsed().as_secs_f64();

    let times = fake.accepted_times();
    let first = times.iter().min().copied();
    let last_accept = times.iter().max().copied();
    let first_send_s = first.map(|f| round2(f.duration_since(started).as_secs_f64()));
    let send_phase_s = match (first, last_accept) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    let per_window = windows(&times, Duration::from_secs(args.window));
    let steady = steady(&per_window);
    let states = state_counts(&db, id).await?;
    let sent_count = fake.sent_count();
    let distinct = fake.distinct_callback_data();
    let duplicates = fake.duplicate_callback_data();
    let exactly_once = sent_count == n && distinct == n && duplicates == 0;
    let overall = n as f64 / all_sent_s;
    let steady_median = steady["median_per_sec"].as_f64().unwrap_or(0.0);
    let snapshot_met = snapshot_s <= 10.0;
    let result = json!({
        "bench": "campaign-throughput",
        "backend": backend,
        "recipients": n,
        "tuning": args.server.tuning(),
        "server_binary": args.server.binary(),
        "pacing": false,
        "analyze_recipients_after_snapshot_s": analyze_s,
        "seed_s": round2(seed_s),
        "launch_request_s": round2(launch_request_s),
        "snapshot_s": round2(snapshot_s),
        "snapshot_server_s": snapshot_server_s,
        "first_send_s": first_send_s,
        "all_sent_s": round2(all_sent_s),
        "completed_s": round2(completed_s),
        "sends_per_sec_overall": overall.round(),
        "send_phase_s": round2(send_phase_s),
        "sends_per_sec_send_phase": if send_phase_s > 0.0 { (n as f64 / send_phase_s).round() } else { 0.0 },
        "window_s": args.window,
        "per_window_per_sec": per_window.iter().map(|v| v.round()).collect::<Vec<_>>(),
        "steady": steady,
        "sent_in_db": sent_in_db,
        "states": states,
        "campaign": {
            "status": completed.status,
            "total": completed.total,
            "completed_at_minus_launched_at_s": match (completed.completed_at, completed.launched_at) {
                (Some(c), Some(l)) => Some(round2((c - l) as f64 / 1000.0)),
                _ => None,
            },
        },
        "fake_sent": sent_count,
        "fake_distinct_callback_data": distinct,
        "fake_duplicate_callback_data": duplicates,
        "fake_throttled": fake.throttled_count(),
        "exactly_once": exactly_once,
        "target": "≥ 10,000 sends/s sustained, snapshot of 1M ≤ 10 s, exactly once",
        "target_met": {
            "sends_per_sec": steady_median >= 10_000.0 && overall >= 10_000.0,
            "snapshot": snapshot_met,
            "exactly_once": exactly_once,
        },
        "cpu": cpu,
        "server_rss_kb": { "before_launch": rss_before, "peak": rss_peak },
        "progress": progress,
        "metrics": scrape_metrics(&w.api.http, &w.api.base, METRICS).await?,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    });
    eprintln!(
        "campaign-throughput {backend}: {n} recipients; snapshot {snapshot_s:.2} s; all sent after \
         {all_sent_s:.1} s = {overall:.0}/s overall, steady {steady_median:.0}/s median; fake \
         {sent_count} sent, {distinct} distinct, {duplicates} duplicates; load {load_before} -> \
         {load_after}"
    );
    db.close().await;
    drop(server);
    Ok(result)
}

// ---- pacing ----------------------------------------------------------------------------------

pub async fn pacing(args: PacingArgs) -> anyhow::Result<()> {
    if args.rate == 0 || args.seconds == 0 {
        bail!("--rate and --seconds must be positive");
    }
    let a = &args;
    let result = with_database(args.backend, &args.server.postgres_url, |url| async move {
        pacing_bench(a, url.as_deref()).await
    })
    .await?;
    write_result(&result, args.server.out.as_ref())
}

async fn pacing_bench(args: &PacingArgs, db_url: Option<&str>) -> anyhow::Result<Value> {
    let rate = f64::from(args.rate);
    // Enough for the warm-up, the window and a margin: the campaign never runs dry.
    let n = ((rate * (args.warmup + args.seconds + 20) as f64) as usize).max(2000);
    let server = start_with(&args.server.bin(), db_url, &args.server.env(true, &[])).await?;
    let fake = FakeMeta::start().await;
    fake.set_record_bodies(false);
    fake.set_rate_limit(Some(args.rate));
    let w = set_up(&server.base, &fake, args.rate).await?;
    let db = open_db(server.data_dir(), db_url).await?;
    let backend = backend_name(args.backend);
    eprintln!(
        "campaign-pacing: backend={backend} rate={} window={} s after {} s, {n} recipients",
        args.rate, args.seconds, args.warmup
    );
    seed(&db, w.org, w.group, n).await?;
    let id = create_campaign(&w).await?;
    let load_before = load_avg();
    let started = Instant::now();
    w.api
        .post(
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
            "launch",
        )
        .await?;
    while fake.sent_count() == 0 {
        if started.elapsed() > Duration::from_secs(300) {
            bail!(
                "nothing reached the fake within 300 s: {:?}",
                campaign_state(&db, id).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_send_s = started.elapsed().as_secs_f64();
    let first_send = Instant::now();
    let t0 = first_send + Duration::from_secs(args.warmup);
    let window = Duration::from_secs(args.seconds);
    let t1 = t0 + window;
    // When the fake answered 130429 (seconds after the first send; 50 ms resolution).
    let mut throttled_at = Vec::new();
    let mut throttled_seen = fake.throttled_count();
    if throttled_seen > 0 {
        throttled_at.push(json!({"t_s": 0.0, "count": throttled_seen}));
    }
    while Instant::now() < t1 {
        tokio::time::sleep(
            Duration::from_millis(50).min(t1.saturating_duration_since(Instant::now())),
        )
        .await;
        let t = fake.throttled_count();
        if t > throttled_seen {
            throttled_at.push(json!({
                "t_s": round2(first_send.elapsed().as_secs_f64()),
                "count": t - throttled_seen,
            }));
            throttled_seen = t;
        }
    }
    let left_at_end = n.saturating_sub(fake.sent_count());
    let load_after = load_avg();
    let status = campaign_state(&db, id).await?;
    let times = fake.accepted_times();
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
    let throttled = fake.throttled_count();
    let result = json!({
        "bench": "campaign-pacing",
        "backend": backend,
        "rate": args.rate,
        "window_s": args.seconds,
        "warmup_s": args.warmup,
        "recipients": n,
        "tuning": args.server.tuning(),
        "server_binary": args.server.binary(),
        "first_send_s": round2(first_send_s),
        "accepted_in_window": in_window.len(),
        "measured_per_sec": round2(measured),
        "deviation_pct": round2(deviation),
        "per_second": per_second,
        "per_second_min": per_second.iter().min(),
        "per_second_max": per_second.iter().max(),
        "fake_throttled_130429": throttled,
        "throttled_at_s_after_first_send": throttled_at,
        "fake_accepted_total": times.len(),
        "fake_duplicate_callback_data": fake.duplicate_callback_data(),
        "recipients_left_at_window_end": left_at_end,
        "saturated": left_at_end > 0,
        "campaign_status": status.status,
        "pause_reason": status.pause_reason,
        "states": state_counts(&db, id).await?,
        "target": "within ±2 % of the rate, zero 130429",
        "target_met": deviation.abs() <= 2.0 && throttled == 0,
        "metrics": scrape_metrics(&w.api.http, &w.api.base, METRICS).await?,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    });
    eprintln!(
        "campaign-pacing {}: {measured:.2}/s accepted by the fake over {} s ({deviation:+.2} %), \
         {throttled} × 130429; load {load_before} -> {load_after}",
        args.rate, args.seconds
    );
    // Stop sending before the server goes away (not measured).
    let _ = w
        .api
        .post(
            &format!("/api/v1/campaigns/{id}/cancel"),
            &json!({}),
            "cancel",
        )
        .await;
    db.close().await;
    drop(server);
    Ok(result)
}

// ---- kill ------------------------------------------------------------------------------------

/// A `wamage serve` on a fixed port and data dir that can be SIGKILLed and started again.
struct Restartable {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    db_url: Option<String>,
    env: Vec<(&'static str, String)>,
    child: Option<Child>,
    base: String,
    /// CPU seconds of the processes already killed.
    cpu_dead: f64,
}

impl Restartable {
    fn new(
        bin: PathBuf,
        db_url: Option<String>,
        env: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        Ok(Self {
            bin,
            port,
            dir: tempfile::tempdir()?,
            db_url,
            env,
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            cpu_dead: 0.0,
        })
    }

    /// Starts the process and waits until it is ready: the seconds that took.
    async fn start(&mut self) -> anyhow::Result<f64> {
        let t = Instant::now();
        self.child = Some(spawn_server(
            &self.bin,
            self.port,
            self.dir.path(),
            self.db_url.as_deref(),
            &self.env,
        )?);
        wait_ready(&self.base).await?;
        Ok(t.elapsed().as_secs_f64())
    }

    fn cpu_seconds(&self) -> f64 {
        self.child
            .as_ref()
            .map_or(0.0, |c| cpu_seconds_of(&format!("/proc/{}/stat", c.id())))
    }

    /// SIGKILL (std's `Child::kill` on Unix), then reaps it.
    fn kill(&mut self) -> anyhow::Result<()> {
        let cpu = self.cpu_seconds();
        if let Some(mut c) = self.child.take() {
            c.kill().context("failed to SIGKILL the server")?;
            c.wait()?;
        }
        self.cpu_dead += cpu;
        Ok(())
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

pub async fn kill(args: KillArgs) -> anyhow::Result<()> {
    if args.recipients == 0 {
        bail!("--recipients must be positive");
    }
    let a = &args;
    let result = with_database(args.backend, &args.server.postgres_url, |url| async move {
        kill_bench(a, url).await
    })
    .await?;
    write_result(&result, args.server.out.as_ref())
}

async fn kill_bench(args: &KillArgs, db_url: Option<String>) -> anyhow::Result<Value> {
    let n = args.recipients;
    let limit = Duration::from_secs(args.server.timeout);
    let env = args.server.env(
        false,
        &[
            (
                "WAMAGE_CAMPAIGN_CONFIRM_SECS",
                args.confirm_secs.to_string(),
            ),
            ("WAMAGE_CAMPAIGN_LEASE_SECS", args.lease_secs.to_string()),
        ],
    );
    let mut server = Restartable::new(args.server.bin(), db_url.clone(), env)?;
    server.start().await?;
    let fake = FakeMeta::start().await;
    fake.set_record_bodies(false);
    let w = set_up(&server.base, &fake, 1000).await?;
    fake.set_webhook(
        Some(format!("{}/webhooks/whatsapp/{}", server.base, w.channel)),
        APP_SECRET.to_owned(),
    );
    fake.set_auto_statuses(vec!["sent"]);
    let db = open_db(server.dir.path(), db_url.as_deref()).await?;
    let backend = backend_name(args.backend);
    eprintln!(
        "campaign-kill: backend={backend} {n} recipients, {} kills",
        args.kills
    );
    seed(&db, w.org, w.group, n).await?;
    let id = create_campaign(&w).await?;
    let load_before = load_avg();
    let started = Instant::now();
    w.api
        .post(
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
            "launch",
        )
        .await?;

    // Kill k when the fake has seen k/(kills+1) of the recipients and sends flowed since the
    // last start: spread over the run, always mid-send. Then wait for `completed`. When the
    // fake gets nothing new for `--stall-secs`, the stall is recorded (jobs, states) and, unless
    // `--no-recover`, undone the way a person would: pause and resume through the API.
    let mut kills: Vec<Value> = Vec::new();
    let mut stalls: Vec<Value> = Vec::new();
    let mut flowing_from = 0usize;
    let mut resumed_after: Option<f64> = None;
    let mut restarted_at = Instant::now();
    let mut last_progress = (Instant::now(), 0usize);
    let stall_limit = Duration::from_secs(args.server.stall_secs);
    let mut next_kill = 1;
    let mut stalled = false;
    let completed = loop {
        let sent = fake.sent_count();
        if sent != last_progress.1 {
            last_progress = (Instant::now(), sent);
        }
        if resumed_after.is_none() && sent > flowing_from {
            resumed_after = Some(restarted_at.elapsed().as_secs_f64());
            if let Some(prev) = kills.last_mut() {
                prev["sends_resumed_after_restart_s"] = json!(resumed_after.map(round2));
            }
        }
        if next_kill <= args.kills
            && fake.distinct_callback_data() >= n * next_kill / (args.kills + 1)
            && sent > flowing_from
        {
            let at_s = started.elapsed().as_secs_f64();
            server.kill()?;
            let fake_sent = fake.sent_count();
            let distinct = fake.distinct_callback_data();
            let states = state_counts(&db, id).await?;
            let restart_s = server.start().await?;
            restarted_at = Instant::now();
            flowing_from = fake.sent_count();
            resumed_after = None;
            eprintln!(
                "kill {next_kill} at {at_s:.1} s: fake {fake_sent} sent ({distinct} distinct); \
                 states {states:?}; ready again after {restart_s:.2} s"
            );
            kills.push(json!({
                "kill": next_kill,
                "at_s": round2(at_s),
                "fake_sent_at_kill": fake_sent,
                "fake_distinct_at_kill": distinct,
                "states_at_kill": states,
                "restart_ready_s": round2(restart_s),
                "sends_resumed_after_restart_s": null,
            }));
            next_kill += 1;
            continue;
        }
        let s = campaign_state(&db, id).await?;
        if s.status == "completed" {
            break s;
        }
        if matches!(s.status.as_str(), "failed" | "cancelled" | "paused") {
            bail!("the campaign is {}: {s:?}", s.status);
        }
        if last_progress.0.elapsed() > stall_limit {
            let at_s = started.elapsed().as_secs_f64();
            let states = state_counts(&db, id).await?;
            let jobs = campaign_jobs(&db).await?;
            eprintln!(
                "STALL at {at_s:.1} s: nothing new at the fake for {stall_limit:?}; fake {sent}; \
                 campaign {s:?}; states {states:?}; jobs {jobs}"
            );
            let mut stall = json!({
                "at_s": round2(at_s),
                "fake_sent": sent,
                "campaign_status": s.status,
                "states": states,
                "jobs": jobs,
            });
            if args.no_recover {
                stalls.push(stall);
                stalled = true;
                break s;
            }
            let api = login(&server.base).await?;
            api.post(
                &format!("/api/v1/campaigns/{id}/pause"),
                &json!({}),
                "pause",
            )
            .await?;
            api.post(
                &format!("/api/v1/campaigns/{id}/resume"),
                &json!({}),
                "resume",
            )
            .await?;
            stall["recovered_by"] = json!("pause + resume through the API");
            stall["recovered_at_s"] = json!(round2(started.elapsed().as_secs_f64()));
            stalls.push(stall);
            last_progress = (Instant::now(), sent);
            continue;
        }
        if started.elapsed() > limit {
            bail!(
                "not completed within {limit:?}: fake {sent}, {s:?}, states {:?}, jobs {}",
                state_counts(&db, id).await?,
                campaign_jobs(&db).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let elapsed_s = started.elapsed().as_secs_f64();
    let load_after = load_avg();
    // Reports still on their way change no send; wait for them so the states are final.
    let webhooks_drained = fake.wait_for_webhooks(Duration::from_secs(60)).await;
    let states = state_counts(&db, id).await?;
    let lit = id_lit(db.backend(), id);
    let attempts_gt1 = count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = {lit} AND attempts > 1"
        ),
    )
    .await?;
    let sent_in_db = count(&db, &sent_sql(db.backend(), id)).await?;
    let sent_count = fake.sent_count();
    let distinct = fake.distinct_callback_data();
    let duplicates = fake.duplicate_callback_data();
    let missed = n.saturating_sub(distinct);
    let webhooks = fake.webhook_stats();
    let cpu = server.cpu_dead + server.cpu_seconds();
    // A stall that needed a pause and resume from outside is a defect, not a pass.
    let ok = missed == 0
        && duplicates == 0
        && sent_count == n
        && completed.status == "completed"
        && stalls.is_empty();
    let result = json!({
        "bench": "campaign-kill",
        "backend": backend,
        "recipients": n,
        "kills_requested": args.kills,
        "kills_done": kills.len(),
        "tuning": args.server.tuning(),
        "server_binary": args.server.binary(),
        "confirm_secs": args.confirm_secs,
        "lease_secs": args.lease_secs,
        "kills": kills,
        "stalls": stalls,
        "stalled_without_recovery": stalled,
        "elapsed_s": round2(elapsed_s),
        "campaign_status": completed.status,
        "fake_sent": sent_count,
        "fake_distinct_callback_data": distinct,
        "fake_duplicate_callback_data": duplicates,
        "missed": missed,
        "sent_in_db": sent_in_db,
        "states": states,
        "recipients_claimed_more_than_once": attempts_gt1,
        "webhooks": {
            "posts": webhooks.posts,
            "failed_attempts": webhooks.failed_attempts,
            "pending": webhooks.pending,
            "dropped": webhooks.dropped,
            "drained": webhooks_drained,
        },
        "server_cpu_s": round2(cpu),
        "target": "every recipient exactly once: 0 missed, 0 duplicates",
        "target_met": ok,
        "metrics_last_process": scrape_metrics(&w.api.http, &w.api.base, METRICS).await?,
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    });
    eprintln!(
        "campaign-kill {backend}: {n} recipients, {} kills, completed after {elapsed_s:.1} s; fake \
         {sent_count} sent, {distinct} distinct, {duplicates} duplicates, {missed} missed; load \
         {load_before} -> {load_after}",
        result["kills_done"]
    );
    db.close().await;
    drop(server);
    Ok(result)
}
