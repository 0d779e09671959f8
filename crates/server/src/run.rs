//! Running a process: logging, the HTTP listener and the background worker per the configured
//! roles, and a graceful stop on SIGTERM / Ctrl-C (stop accepting, finish in-flight requests,
//! drain running jobs, release the rest back to the queue).

use std::net::SocketAddr;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{
    app::{self, BuildOptions},
    config::{Config, LogFormat, ServerRole},
};

/// Sets up `tracing` per the config (`RUST_LOG` wins over `log_level` when set).
pub fn init_logging(cfg: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match cfg.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
}

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// `wamage serve`.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let roles = cfg.roles()?;
    let addr: SocketAddr = cfg.listen_addr()?;
    // Held until this process ends (the kernel lets go of it on a crash too).
    let sqlite_lock = lock_sqlite_file(&cfg.database_url())?;
    let state = app::build_state(cfg, BuildOptions::default()).await?;
    if sqlite_lock.is_some() && roles.contains(&ServerRole::Worker) {
        // This is the only process on the file: jobs still running were left by the one before.
        match state.jobs.reap_orphaned().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                jobs = n,
                "jobs left running by the previous process run again"
            ),
            Err(e) => tracing::warn!(error = %e, "failed to release the previous process's jobs"),
        }
    }
    let shutdown = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();

    if roles.contains(&ServerRole::Worker) {
        state.campaigns.resume_on_start().await;
        let worker = app::worker(&state);
        let token = shutdown.child_token();
        tracing::info!(worker_id = worker.id(), "worker started");
        tasks.spawn(wamage_channels::poller::run(
            state.channels.clone(),
            token.clone(),
        ));
        // PostgreSQL: tables that grow fast get fresh planner statistics (see the module).
        tasks.spawn(wamage_platform::db::planner_stats::keep(
            state.db.clone(),
            token.clone(),
        ));
        tasks.spawn(async move {
            if let Err(e) = worker.run(token).await {
                tracing::error!(error = %e, "worker stopped with an error");
            }
        });
    }
    // The gateway is served by the same listener; `router` mounts it for the realtime role.
    let realtime = roles.contains(&ServerRole::Realtime);
    if roles.contains(&ServerRole::Api) {
        // Segment counts of large contact books come from memory from the first one on
        // (listing the books is a scan: it does not hold up the start).
        let contacts = state.contacts.clone();
        tokio::spawn(async move {
            match contacts
                .warm_count_indexes(wamage_contacts::INDEX_AFTER_IMPORT_ROWS)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(organisations = n, "building segment count indexes"),
                Err(e) => tracing::warn!(error = %e, "failed to list contact books to index"),
            }
        });
    }
    if roles.contains(&ServerRole::Api) || realtime {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to listen on {addr} (WAMAGE_LISTEN)"))?;
        let local = listener.local_addr()?;
        let router = app::router(&state);
        let token = shutdown.clone();
        tracing::info!(url = %format!("http://{local}"), database = state.db.backend().name(), cache = state.cache.backend(), realtime, "wamage is running");
        println!("Wamage is running at http://{local}");
        tasks.spawn(async move {
            let served = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "http server stopped with an error");
            }
        });
    }

    shutdown_signal().await;
    // Sockets first: a held long-polling request or an open websocket would otherwise keep the
    // graceful HTTP shutdown waiting; closing them also marks their users offline.
    if realtime {
        state.realtime.close().await;
    }
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    state.db.close().await;
    drop(sqlite_lock);
    tracing::info!("stopped");
    Ok(())
}

/// An exclusive lock on `{database file}.lock` for an embedded SQLite database: one server
/// process per file (two would each take the other's running jobs for abandoned ones). `None`
/// for PostgreSQL and in-memory databases.
fn lock_sqlite_file(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok(None);
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let lock_path = format!("{path}.lock");
    if let Some(dir) = std::path::Path::new(&lock_path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("failed to open {lock_path}"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another Wamage process is serving the SQLite database {path} (its lock file \
             {lock_path} is held): stop it first, or use PostgreSQL to run several processes"
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("failed to lock {lock_path}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lock_sqlite_file;

    #[test]
    fn one_process_per_sqlite_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("a/wamage.db").display()
        );
        let held = lock_sqlite_file(&url).expect("first lock");
        assert!(held.is_some());
        let err = lock_sqlite_file(&url).expect_err("second lock");
        assert!(err.to_string().contains("another Wamage process"), "{err}");
        drop(held);
        assert!(lock_sqlite_file(&url).expect("lock again").is_some());
        assert!(
            lock_sqlite_file("sqlite::memory:")
                .expect("memory")
                .is_none()
        );
        assert!(
            lock_sqlite_file("postgres://postgres@127.0.0.1/x")
                .expect("postgres")
                .is_none()
        );
    }
}
