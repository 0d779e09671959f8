//! `wamage-bench contacts …`: a contacts import and search at scale, end to end through a real
//! `wamage serve` process (release build) on a fresh SQLite file or PostgreSQL database.
//!
//! 1. Generates a CSV of `--rows` contacts (name, phone, e-mail, city; every phone unique, so
//!    dedupe by phone checks every row and creates it).
//! 2. Uploads it to `POST /api/v1/imports` (dedupe by phone, into a group) and polls the
//!    import until it completes; rows/s is rows over the time from the upload to completion.
//!    The server's RSS is sampled at every poll (is memory flat while streaming the file?).
//! 3. Prefix searches (`GET /api/v1/contacts?q=`) for names and phone digits, one at a time:
//!    latency percentiles.
//! 4. Waits for the organisation's count index (built in the background after a large import;
//!    `/metrics` says when), recording how long after the import it was ready, then times
//!    segment counts (`POST /api/v1/segments/preview`); `/metrics` tells where each count was
//!    answered (cache, index, database); then a campaign audience preview of the whole group
//!    (`POST /api/v1/campaigns/audience-preview`, Sandbox channel), from the same index.

use std::{
    io::Write as _,
    os::fd::AsFd as _,
    path::PathBuf,
    process::{Child, Command as Proc, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

use crate::{BackendArg, machine, round2};

#[derive(Parser)]
pub struct ContactsArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Contacts in the imported file.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Searches (and segment counts) to time after the import.
    #[arg(long, default_value_t = 500)]
    queries: usize,
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
    /// Where to write the JSON result.
    #[arg(long)]
    out: Option<PathBuf>,
}

const CITIES: [&str; 8] = [
    "Porto", "Lisbon", "Braga", "Faro", "Evora", "Leiria", "Aveiro", "Viseu",
];

/// The CSV: `Name,Phone,Email,City`, ~44 bytes a row.
fn csv(rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * 48 + 32);
    out.extend_from_slice(b"Name,Phone,Email,City\n");
    for i in 0..rows {
        let _ = writeln!(
            out,
            "C{i:07},+351912{:06},c{i:07}@x.io,{}",
            i % 1_000_000,
            CITIES[i % CITIES.len()]
        );
    }
    out
}

/// A `wamage serve` child process on a free loopback port with its own data dir; killed on
/// drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's data dir (its SQLite file is `wamage.db` there).
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// CPU seconds (user + system) the server has used so far.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// utime + stime of a `/proc/…/stat` file, in seconds (clock ticks of 1/100 s).
pub(crate) fn cpu_seconds_of(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces: state is the 3rd field overall.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

pub(crate) fn default_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("release/wamage")
}

async fn start(bin: &PathBuf, database_url: Option<&str>) -> anyhow::Result<Server> {
    start_with(bin, database_url, &[]).await
}

/// Starts the server with extra `WAMAGE_*` settings in its environment.
pub(crate) async fn start_with(
    bin: &PathBuf,
    database_url: Option<&str>,
    env: &[(&str, String)],
) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let child = spawn_server(bin, port, dir.path(), database_url, env)?;
    let server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    };
    wait_ready(&server.base).await?;
    Ok(server)
}

/// Spawns `wamage serve` on `127.0.0.1:port` with `data_dir`, the bench's secret key, the log
/// level of `$WAMAGE_BENCH_SERVER_LOG` (default `warn`) and `env`; its log goes to our stderr.
pub(crate) fn spawn_server(
    bin: &PathBuf,
    port: u16,
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    env: &[(&str, String)],
) -> anyhow::Result<Child> {
    let mut cmd = Proc::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .env(
            "WAMAGE_SECRET_KEY",
            "bench-secret-key-that-is-long-enough-0123456789",
        )
        .env(
            "WAMAGE_LOG_LEVEL",
            std::env::var("WAMAGE_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        // The server's log (stdout) goes to our stderr: our stdout is the JSON result.
        .stdout(Stdio::from(
            std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .context("failed to dup stderr")?,
        ))
        .stderr(Stdio::inherit());
    if let Some(url) = database_url {
        cmd.env("WAMAGE_DATABASE_URL", url);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.spawn()
        .with_context(|| format!("failed to start {}", bin.display()))
}

/// Waits (up to a minute) until `{base}/ready` answers 2xx.
pub(crate) async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("{base}/ready")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not become ready")
}

pub(crate) fn percentiles(mut ms: Vec<f64>) -> Value {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let i = ((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1;
        round2(ms[i])
    };
    if ms.is_empty() {
        return json!(null);
    }
    json!({
        "n": ms.len(),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round2(ms[ms.len() - 1]),
    })
}

pub(crate) async fn expect(res: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{what}: {status} {body}");
    }
    Ok(body)
}

pub async fn run(args: ContactsArgs) -> anyhow::Result<()> {
    let bin = args.wamage_bin.clone().unwrap_or_else(default_bin);
    let (db_url, db_name) = match args.backend {
        BackendArg::Sqlite => (None, None),
        BackendArg::Postgres => {
            let (url, name) = create_pg_database(&args.postgres_url).await?;
            (Some(url), Some(name))
        }
    };
    let result = bench(&args, &bin, db_url.as_deref()).await;
    if let Some(name) = db_name {
        drop_pg_database(&args.postgres_url, &name).await?;
    }
    let result = result?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&result)? + "\n")
            .with_context(|| format!("failed to write {}", out.display()))?;
    }
    Ok(())
}

/// Creates a fresh database `wamage_bench_<pid>` on the server of `postgres_url`: its URL and
/// name.
pub(crate) async fn create_pg_database(postgres_url: &str) -> anyhow::Result<(String, String)> {
    let name = format!("wamage_bench_{}", std::process::id());
    let admin = wamage_platform::Db::connect(postgres_url, &wamage_platform::DbOptions::default())
        .await
        .context("connect to PostgreSQL")?;
    if let wamage_platform::Db::Postgres(pool) = &admin {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(pool)
            .await
            .with_context(|| format!("failed to create database {name}"))?;
    }
    admin.close().await;
    let base = postgres_url
        .rsplit_once('/')
        .map_or(postgres_url, |(b, _)| b);
    Ok((format!("{base}/{name}"), name))
}

/// Drops a database made by [`create_pg_database`] (closing any connection left to it).
pub(crate) async fn drop_pg_database(postgres_url: &str, name: &str) -> anyhow::Result<()> {
    let admin = wamage_platform::Db::connect(postgres_url, &wamage_platform::DbOptions::default())
        .await
        .context("connect to PostgreSQL")?;
    if let wamage_platform::Db::Postgres(pool) = &admin {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(pool)
        .await
        .with_context(|| format!("failed to drop database {name}"))?;
    }
    admin.close().await;
    Ok(())
}

async fn bench(args: &ContactsArgs, bin: &PathBuf, db_url: Option<&str>) -> anyhow::Result<Value> {
    let server = start(bin, db_url).await?;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let auth = expect(
        http.post(format!("{base}/api/v1/auth/register"))
            .json(
                &json!({"email": "bench@example.com", "password": "bench-password-123",
                          "name": "Bench", "organization": "Bench"}),
            )
            .send()
            .await?,
        "register",
    )
    .await?;
    let token = auth["access_token"].as_str().unwrap_or_default().to_owned();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    expect(
        post(
            "/api/v1/contact-attributes",
            json!({"key": "city", "label": "City", "type": "text"}),
        )
        .await?,
        "define city",
    )
    .await?;
    let group = expect(
        post("/api/v1/groups", json!({"name": "Imported"})).await?,
        "create group",
    )
    .await?;

    let file = csv(args.rows);
    let file_mb = file.len() as f64 / 1024.0 / 1024.0;
    eprintln!("importing {} rows ({file_mb:.1} MiB)", args.rows);
    let rss_before = server.rss_kb();
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(file)
                .file_name("bench.csv")
                .mime_str("text/csv")?,
        )
        .text(
            "mapping",
            json!({"Name": "name", "Phone": "phone", "Email": "email", "City": "attr:city"})
                .to_string(),
        )
        .text("dedupe", "phone")
        .text(
            "group_id",
            group["id"].as_str().unwrap_or_default().to_owned(),
        );
    let started = Instant::now();
    let imp = expect(
        http.post(format!("{base}/api/v1/imports"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await?,
        "upload",
    )
    .await?;
    let accepted_s = started.elapsed().as_secs_f64();
    let path = format!("{base}/api/v1/imports/{}", imp["id"].as_str().unwrap_or(""));
    let mut rss_peak = 0;
    let mut rss_samples: Vec<u64> = Vec::new();
    let done = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rss = server.rss_kb();
        rss_peak = rss_peak.max(rss);
        rss_samples.push(rss);
        let now = expect(http.get(&path).bearer_auth(&token).send().await?, "poll").await?;
        match now["status"].as_str() {
            Some("completed") => break now,
            Some("failed") => bail!("the import failed: {now}"),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("the import took over an hour: {now}");
        }
    };
    let import_s = started.elapsed().as_secs_f64();
    let import_done = Instant::now();
    if done["created"].as_u64() != Some(args.rows as u64) {
        bail!("expected {} contacts created: {done}", args.rows);
    }
    let rows_per_sec = args.rows as f64 / import_s;
    eprintln!("imported in {import_s:.1} s: {rows_per_sec:.0} rows/s");

    // Prefix searches: a name prefix (matches 10 contacts) and phone digits (100 contacts).
    let mut name_ms = Vec::new();
    let mut phone_ms = Vec::new();
    let step = (args.rows / args.queries.max(1)).max(1);
    for q in 0..args.queries {
        let i = (q * step + 7) % args.rows;
        for (query, into) in [
            (format!("c{:06}", i / 10), &mut name_ms),
            (format!("912{:04}", (i % 1_000_000) / 100), &mut phone_ms),
        ] {
            let t = Instant::now();
            let page = expect(
                http.get(format!("{base}/api/v1/contacts?q={query}&limit=50"))
                    .bearer_auth(&token)
                    .send()
                    .await?,
                "search",
            )
            .await?;
            into.push(t.elapsed().as_secs_f64() * 1000.0);
            if page["items"].as_array().is_none_or(Vec::is_empty) {
                bail!("search {query} found nothing");
            }
        }
    }

    // Segment counts are answered by the organisation's in-memory count index, which the
    // server builds in the background once an import of 20,000+ rows completes (counts before
    // that go to SQL). Wait for it, and say how long after the import it was ready.
    let scrape = || async {
        let res = http.get(format!("{base}/metrics")).send().await?;
        anyhow::Ok(res.text().await?)
    };
    let metric = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let index_ready_s = loop {
        let text = scrape().await?;
        if metric(&text, "wamage_contacts_count_index_contacts ") >= args.rows as f64 {
            break import_done.elapsed().as_secs_f64();
        }
        if import_done.elapsed() > Duration::from_secs(300) {
            bail!("the count index was not built within 5 minutes of the import");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("count index ready {index_ready_s:.1} s after the import completed");

    // Segment counts: a text attribute (an eighth of the book) and group membership with it.
    let mut attr_ms = Vec::new();
    let mut group_ms = Vec::new();
    let segment_queries = (args.queries / 10).max(5);
    for q in 0..segment_queries {
        let city = CITIES[q % CITIES.len()];
        for (filter, into) in [
            (
                json!({"all": [{"field": "attr:city", "op": "eq", "value": city}]}),
                &mut attr_ms,
            ),
            (
                json!({"all": [{"field": "group", "op": "in", "value": group["id"]},
                               {"field": "attr:city", "op": "neq", "value": city}]}),
                &mut group_ms,
            ),
        ] {
            let t = Instant::now();
            let count = expect(
                post("/api/v1/segments/preview", json!({ "filter": filter })).await?,
                "segment count",
            )
            .await?;
            into.push(t.elapsed().as_secs_f64() * 1000.0);
            if count["count"].as_i64().unwrap_or(0) == 0 {
                bail!("segment {filter} counted nobody");
            }
        }
    }

    // A campaign's audience preview (size and consent breakdown) of the whole group, on a
    // Sandbox channel (no provider to reach): from the same index.
    let channel = expect(
        post(
            "/api/v1/channels",
            json!({"kind": "sandbox", "name": "Bench sandbox"}),
        )
        .await?,
        "create channel",
    )
    .await?;
    let mut preview_ms = Vec::new();
    for _ in 0..segment_queries {
        let t = Instant::now();
        let b = expect(
            post(
                "/api/v1/campaigns/audience-preview",
                json!({"channel_id": channel["id"], "audience": {"groups": [group["id"]]}}),
            )
            .await?,
            "audience preview",
        )
        .await?;
        preview_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if b["total"].as_u64() != Some(args.rows as u64) {
            bail!("the audience preview counted {b}");
        }
    }

    let text = scrape().await?;
    let by_source: serde_json::Map<String, Value> = ["cache", "index", "database"]
        .iter()
        .map(|src| {
            let series = format!("wamage_contacts_segment_counts_total{{source=\"{src}\"}} ");
            ((*src).to_owned(), json!(metric(&text, &series)))
        })
        .collect();

    Ok(json!({
        "bench": "contacts",
        "backend": match args.backend { BackendArg::Sqlite => "sqlite", BackendArg::Postgres => "postgres" },
        "rows": args.rows,
        "file_mib": round2(file_mb),
        "upload_accepted_s": round2(accepted_s),
        "import_s": round2(import_s),
        "rows_per_sec": rows_per_sec.round(),
        "rss_kb": {
            "before_upload": rss_before,
            "peak_during_import": rss_peak,
            "samples": rss_samples.len(),
            "last": rss_samples.last().copied().unwrap_or(0),
        },
        "search_name_prefix": percentiles(name_ms),
        "search_phone_digits": percentiles(phone_ms),
        "segment_count_attr": percentiles(attr_ms),
        "segment_count_group_and_attr": percentiles(group_ms),
        "campaign_audience_preview": percentiles(preview_ms),
        "count_index_ready_after_import_s": round2(index_ready_s),
        "count_index_build_s": metric(&text, "wamage_contacts_count_index_build_seconds_sum "),
        "count_index_bytes": metric(&text, "wamage_contacts_count_index_bytes "),
        "segment_counts_by_source": by_source,
        "machine": machine(),
        "load_avg": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "date": chrono::Utc::now().to_rfc3339(),
    }))
}
