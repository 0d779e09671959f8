//! Operations endpoints: `/health` (the process is alive), `/ready` (its dependencies answer),
//! `/metrics` (Prometheus text).

use std::{sync::OnceLock, time::Duration};

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wamage_kernel::ApiJson;

use crate::app::AppState;

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once (tests build many apps in one process).
pub fn prometheus() -> &'static PrometheusHandle {
    PROMETHEUS.get_or_init(|| {
        let buckets = [
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            Err(e) => {
                // Another recorder is installed (only possible in odd embeddings): keep a handle
                // that renders nothing rather than failing the process.
                tracing::warn!(error = %e, "prometheus recorder not installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    /// Always `ok` when the process answers.
    pub status: String,
    pub version: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReadyOut {
    /// `ready` or `unavailable`.
    pub status: String,
    /// Per dependency: `ok` or the reason it failed.
    pub checks: std::collections::BTreeMap<String, String>,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = HealthOut)))]
pub async fn health() -> ApiJson<HealthOut> {
    ApiJson(HealthOut {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

async fn check(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(2), fut).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("timed out after 2 s".to_owned()),
    }
}

/// Readiness: the database, cache and event bus answer.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, body = ReadyOut), (status = 503, body = ReadyOut)))]
pub async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let (db, cache, bus) = tokio::join!(
        check(async { s.db.ping().await.map_err(anyhow::Error::from) }),
        check(s.cache.ping()),
        check(s.bus.ping()),
    );
    let mut checks = std::collections::BTreeMap::new();
    let mut ok = true;
    for (name, result, backend) in [
        ("database", db, s.db.backend().name()),
        ("cache", cache, s.cache.backend()),
        ("bus", bus, s.bus.backend()),
    ] {
        match result {
            Ok(()) => {
                checks.insert(name.to_owned(), format!("ok ({backend})"));
            }
            Err(e) => {
                ok = false;
                tracing::warn!(dependency = name, error = %e, "readiness check failed");
                checks.insert(name.to_owned(), "unavailable".to_owned());
            }
        }
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        ApiJson(ReadyOut {
            status: if ok { "ready" } else { "unavailable" }.to_owned(),
            checks,
        }),
    )
}

/// Prometheus metrics: HTTP, jobs, database pool, bus.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, content_type = "text/plain", description = "Prometheus text format")))]
pub async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    let (size, idle) = s.db.pool_stats();
    metrics::gauge!("wamage_db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("wamage_db_pool_connections", "state" => "busy")
        .set(f64::from(size).max(idle as f64) - idle as f64);
    if let Err(e) = s.jobs.sample_metrics().await {
        tracing::warn!(error = %e, "failed to sample job metrics");
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus().render(),
    )
}

pub fn routes(state: AppState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics_text))
        .with_state(state)
}
