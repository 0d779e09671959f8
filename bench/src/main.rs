//! Wamage benchmarks. `wamage-bench jobs …` measures the job queue end to end: enqueue in
//! batches (one transaction per batch), then claim, run (no-op handler) and complete with a
//! worker, and writes the numbers as JSON.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

mod campaigns;
mod contacts;
mod inbox;
mod send_floor;
mod webhook_floor;
mod ws_floor;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use wamage_kernel::Clock;
use wamage_platform::{
    Db, DbOptions,
    jobs::{JobContext, JobOutcome, JobQueue, NewJob, Worker, WorkerConfig, handler_fn},
};

#[derive(Parser)]
#[command(name = "wamage-bench", about = "Wamage benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Job queue throughput: enqueue, claim, run (no-op) and complete.
    Jobs(JobsArgs),
    /// Contacts: a large CSV import, then search and segment-count latency, through a real
    /// `wamage serve`.
    Contacts(contacts::ContactsArgs),
    /// Inbox outbound: template sends through `/api/v1/messages/batch` to a fake Graph API,
    /// pacing off; durable sends/s.
    InboxOutbound(inbox::OutboundArgs),
    /// Inbox pacing: the rate a strictly rate-limited fake Graph API accepts with pacing on.
    InboxPacing(inbox::PacingArgs),
    /// Inbox inbound: signed WhatsApp webhooks/s, latency of the 200, redeliveries deduplicated.
    InboxInbound(inbox::InboundArgs),
    /// Campaign throughput: a campaign to N seeded contacts, pacing off; snapshot time and
    /// sends/s, every recipient exactly once.
    CampaignThroughput(campaigns::ThroughputArgs),
    /// Campaign pacing: the rate a strictly rate-limited fake Graph API accepts from a
    /// campaign with pacing on.
    CampaignPacing(campaigns::PacingArgs),
    /// Campaign crash safety: the server is SIGKILLed and restarted during a campaign; every
    /// recipient must be sent exactly once.
    CampaignKill(campaigns::KillArgs),
    /// The realtime fan-out's floor: a Socket.IO server that does nothing but write each
    /// message to its room's sockets (`bench/realtime.sh fanout --servers floor`).
    WsFloor(ws_floor::FloorArgs),
    /// The P3 inbound benchmark's floor: a server that only checks each webhook's signature
    /// and stores it durably, with group commit (`wamage-bench inbox-inbound --floor`).
    WebhookFloor(webhook_floor::FloorArgs),
    /// The P1 outbound benchmark's floor: a server that only stores each batch's messages and
    /// job, sends them to the Graph API and stores them sent (`wamage-bench inbox-outbound --floor`).
    SendFloor(send_floor::FloorArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Sequential,
    Concurrent,
}

#[derive(Parser)]
struct JobsArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: BackendArg,
    /// Jobs to push through.
    #[arg(long, default_value_t = 200_000)]
    jobs: usize,
    /// Jobs per enqueue transaction and per claim.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Handlers running at once in the worker.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// PostgreSQL server URL (a fresh schema is created and dropped).
    #[arg(
        long,
        env = "WAMAGE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/wamage_test"
    )]
    postgres_url: String,
    /// `sequential`: enqueue everything, then drain with `run_due_jobs`; `concurrent`: a
    /// producer enqueues while the worker's `run` loop drains.
    #[arg(long, value_enum, default_value = "concurrent")]
    mode: Mode,
    /// Where to write the JSON result.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Jobs(args) => jobs(args).await,
        Command::Contacts(args) => contacts::run(args).await,
        Command::InboxOutbound(args) => inbox::outbound(args).await,
        Command::InboxPacing(args) => inbox::pacing(args).await,
        Command::InboxInbound(args) => inbox::inbound(args).await,
        Command::CampaignThroughput(args) => campaigns::throughput(args).await,
        Command::CampaignPacing(args) => campaigns::pacing(args).await,
        Command::CampaignKill(args) => campaigns::kill(args).await,
        Command::WsFloor(args) => ws_floor::run(args).await,
        Command::WebhookFloor(args) => webhook_floor::run(args).await,
        Command::SendFloor(args) => send_floor::run(args).await,
    }
}

async fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    if args.jobs == 0 || args.batch == 0 {
        bail!("--jobs and --batch must be positive");
    }
    let dir = tempfile::tempdir()?;
    let (db, backend, schema) = match args.backend {
        BackendArg::Sqlite => {
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            (
                Db::connect(&url, &DbOptions::default()).await?,
                "sqlite",
                None,
            )
        }
        BackendArg::Postgres => {
            let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
            let admin = Db::connect(&args.postgres_url, &DbOptions::default())
                .await
                .context("connect to PostgreSQL")?;
            if let Db::Postgres(pool) = &admin {
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(pool)
                    .await?;
            }
            admin.close().await;
            let db = Db::connect(
                &args.postgres_url,
                &DbOptions {
                    pg_schema: Some(schema.clone()),
                    ..DbOptions::default()
                },
            )
            .await?;
            (db, "postgres", Some(schema))
        }
    };
    db.migrate(&[wamage_platform::migrations()]).await?;

    let queue = JobQueue::new(db.clone(), Clock::system());
    let ran = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&ran);
    let worker = Worker::new(queue.clone())
        .with_id("bench")
        .with_config(WorkerConfig {
            batch_size: args.batch,
            concurrency: args.concurrency,
            ..WorkerConfig::default()
        })
        .register(
            "bench.noop",
            handler_fn(move |_job: JobContext| {
                let counter = Arc::clone(&counter);
                async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    JobOutcome::Done
                }
            }),
        );

    eprintln!(
        "jobs benchmark: backend={backend} jobs={} batch={}",
        args.jobs, args.batch
    );
    let start = Instant::now();
    let (enqueue_secs, t1) = match args.mode {
        Mode::Sequential => {
            enqueue_all(&queue, args.jobs, args.batch).await?;
            let enqueue_secs = start.elapsed().as_secs_f64();
            eprintln!("enqueued in {enqueue_secs:.2}s");
            let t1 = Instant::now();
            let mut processed = 0usize;
            while processed < args.jobs {
                let n = worker.run_due_jobs().await?;
                if n == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                processed += n;
            }
            (enqueue_secs, t1)
        }
        Mode::Concurrent => {
            let shutdown = tokio_util::sync::CancellationToken::new();
            let runner = tokio::spawn({
                let worker = worker.clone();
                let shutdown = shutdown.clone();
                async move { worker.run(shutdown).await }
            });
            enqueue_all(&queue, args.jobs, args.batch).await?;
            let enqueue_secs = start.elapsed().as_secs_f64();
            while ran.load(Ordering::Relaxed) < args.jobs as u64 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            // Wait for the last outcomes to be written.
            loop {
                let stats = queue.stats().await?;
                if stats.iter().all(|s| s.queued + s.running == 0) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            shutdown.cancel();
            runner.await??;
            (enqueue_secs, start)
        }
    };
    let process_secs = t1.elapsed().as_secs_f64();
    let seconds = start.elapsed().as_secs_f64();
    let stats = queue.stats().await?;
    let ran = ran.load(Ordering::Relaxed);
    if ran != args.jobs as u64 || stats.iter().any(|s| s.queued + s.running + s.dead > 0) {
        bail!("not every job ran exactly once: ran {ran}, stats {stats:?}");
    }

    #[allow(clippy::cast_precision_loss)]
    let jobs = args.jobs as f64;
    let result = json!({
        "benchmark": "jobs",
        "backend": backend,
        "jobs": args.jobs,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "mode": match args.mode {
            Mode::Sequential => "sequential",
            Mode::Concurrent => "concurrent",
        },
        "seconds": round2(seconds),
        "jobs_per_sec": jobs / seconds,
        "enqueue_seconds": round2(enqueue_secs),
        "enqueue_per_sec": jobs / enqueue_secs,
        "process_seconds": round2(process_secs),
        "process_per_sec": jobs / process_secs,
        "machine": machine(),
        "date": chrono::Utc::now().to_rfc3339(),
    });
    let text = serde_json::to_string_pretty(&result)?;
    println!("{text}");
    if let Some(out) = &args.out {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(out, format!("{text}\n"))?;
    }

    if let (Some(schema), Db::Postgres(pool)) = (schema, &db) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(pool)
            .await?;
    }
    db.close().await;
    Ok(())
}

/// Enqueues `jobs` no-op jobs, `batch` per transaction, waking the local worker after each.
async fn enqueue_all(queue: &JobQueue, jobs: usize, batch: usize) -> anyhow::Result<()> {
    let mut left = jobs;
    let mut n = 0u64;
    while left > 0 {
        let take = left.min(batch);
        let jobs = (0..take)
            .map(|_| {
                n += 1;
                NewJob::new(
                    "bench.noop",
                    json!({ "n": n, "to": "+15550100", "text": "hello" }),
                )
            })
            .collect();
        let mut tx = queue.db().begin().await?;
        queue.enqueue_many(&mut tx, jobs).await?;
        tx.commit().await?;
        queue.notify();
        left -= take;
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn machine() -> serde_json::Value {
    let nproc = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    json!({
        "nproc": nproc,
        "mem_gib": round2(mem_kb as f64 / 1024.0 / 1024.0),
        "cpu": cpu,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}
