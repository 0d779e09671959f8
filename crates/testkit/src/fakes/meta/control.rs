//! The `/_fake/…` control API: the knobs of [`FakeMeta`](super::FakeMeta) over HTTP, for
//! clients in other processes (browser tests, benchmarks) of the `fake-providers` binary. Not
//! part of Meta's API and not behind its token; the routes are listed in the parent module's
//! docs. Bad input is answered 400 `{"error": "…"}`, never a panic.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{MetaState, ReviewRule, Shared, TemplateReview, Window, change_template_status, lock};

pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route("/config", get(get_config).post(set_config))
        .route("/stats", get(get_stats))
        .route("/templates/{id}/status", post(set_template_status))
        .route("/reset", post(reset))
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// `Some(value)` for a field that is present, even as `null` (then `Some(None)`), so absent
/// (leave alone) and `null` (turn off) differ.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigIn {
    #[serde(default, deserialize_with = "present")]
    webhook_url: Option<Option<String>>,
    app_secret: Option<String>,
    auto_statuses: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    template_review: Option<Option<ReviewIn>>,
    record_bodies: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    rate_limit_per_second: Option<Option<u32>>,
    /// Replaces the set: recipient → error code of the `failed` status.
    async_failures: Option<HashMap<String, i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RuleIn {
    ApproveAll,
    RejectAll,
    RejectNamesContaining,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewIn {
    rule: RuleIn,
    needle: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    delay_ms: u64,
}

impl ReviewIn {
    fn into_review(self) -> Result<TemplateReview, String> {
        let reason = self.reason.unwrap_or_else(|| "INVALID_FORMAT".to_owned());
        let rule = match self.rule {
            RuleIn::ApproveAll => ReviewRule::ApproveAll,
            RuleIn::RejectAll => ReviewRule::RejectAll { reason },
            RuleIn::RejectNamesContaining => match self.needle.filter(|n| !n.is_empty()) {
                Some(needle) => ReviewRule::RejectNamesContaining { needle, reason },
                None => {
                    return Err(
                        "template_review.needle is required for reject_names_containing".to_owned(),
                    );
                }
            },
        };
        Ok(TemplateReview {
            delay: Duration::from_millis(self.delay_ms),
            rule,
        })
    }
}

/// The statuses [`FakeMeta::set_auto_statuses`](super::FakeMeta::set_auto_statuses) takes.
fn auto_status(name: &str) -> Option<&'static str> {
    Some(match name {
        "sent" => "sent",
        "delivered" => "delivered",
        "read" => "read",
        "played" => "played",
        _ => return None,
    })
}

fn is_http_url(url: &str) -> bool {
    url.strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .is_some_and(|rest| !rest.is_empty())
}

async fn set_config(State(state): State<Shared>, body: axum::body::Bytes) -> Response {
    let config: ConfigIn = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return bad(format!("invalid config: {e}")),
    };
    // Check everything before changing anything.
    let statuses = match &config.auto_statuses {
        None => None,
        Some(names) => {
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                match auto_status(n) {
                    Some(s) => out.push(s),
                    None => {
                        return bad(format!(
                            "auto_statuses: unknown status {n:?} (sent, delivered, read, played)"
                        ));
                    }
                }
            }
            Some(out)
        }
    };
    let review = match config.template_review {
        None => None,
        Some(None) => Some(None),
        Some(Some(r)) => match r.into_review() {
            Ok(r) => Some(Some(r)),
            Err(e) => return bad(e),
        },
    };
    if let Some(Some(url)) = &config.webhook_url
        && !is_http_url(url)
    {
        return bad(format!("webhook_url must be an http(s) URL, got {url:?}"));
    }

    let mut s = lock(&state);
    match (config.webhook_url, config.app_secret) {
        (Some(Some(url)), Some(secret)) => s.delivery.set_target(Some(url), secret),
        (Some(Some(_)), None) => return bad("app_secret is required with webhook_url"),
        (Some(None), _) => s.delivery.set_target(None, String::new()),
        (None, Some(secret)) => {
            if !s.delivery.set_secret(secret) {
                return bad("app_secret needs a webhook_url");
            }
        }
        (None, None) => {}
    }
    if let Some(statuses) = statuses {
        s.auto_statuses = statuses;
    }
    if let Some(review) = review {
        s.review = review;
    }
    if let Some(record) = config.record_bodies {
        s.record_bodies = record;
    }
    if let Some(rate) = config.rate_limit_per_second {
        s.rate = rate.map(|n| Window::new(n, Duration::from_secs(1)));
    }
    if let Some(failures) = config.async_failures {
        s.async_fail = failures;
    }
    Json(config_out(&s)).into_response()
}

async fn get_config(State(state): State<Shared>) -> Response {
    Json(config_out(&lock(&state))).into_response()
}

/// The configuration as `POST /_fake/config` takes it (without the secret).
fn config_out(s: &MetaState) -> Value {
    let review = s.review.as_ref().map(|r| {
        let delay_ms = u64::try_from(r.delay.as_millis()).unwrap_or(u64::MAX);
        match &r.rule {
            ReviewRule::ApproveAll => json!({ "rule": "approve_all", "delay_ms": delay_ms }),
            ReviewRule::RejectAll { reason } => {
                json!({ "rule": "reject_all", "reason": reason, "delay_ms": delay_ms })
            }
            ReviewRule::RejectNamesContaining { needle, reason } => json!({
                "rule": "reject_names_containing", "needle": needle, "reason": reason,
                "delay_ms": delay_ms,
            }),
        }
    });
    json!({
        "webhook_url": s.delivery.target_url(),
        "auto_statuses": s.auto_statuses,
        "template_review": review,
        "record_bodies": s.record_bodies,
        "rate_limit_per_second": s.rate.as_ref().map(|w| w.max),
        "async_failures": s.async_fail,
    })
}

async fn get_stats(State(state): State<Shared>) -> Response {
    let s = lock(&state);
    let webhooks = s.delivery.stats();
    Json(json!({
        "sent": s.sent.len(),
        "distinct_callback_data": s.callbacks.len(),
        "duplicate_callback_data": s.duplicate_callbacks,
        "throttled": s.throttled,
        "pair_throttled": s.pair_throttled,
        "requests": s.requests,
        "read_receipts": s.read.len(),
        "templates": s.templates.len(),
        "webhooks": {
            "posts": webhooks.posts,
            "failed_attempts": webhooks.failed_attempts,
            "pending": webhooks.pending,
            "dropped": webhooks.dropped,
        },
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateStatusIn {
    status: String,
    reason: Option<String>,
}

async fn set_template_status(
    State(state): State<Shared>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let input: TemplateStatusIn = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return bad(format!("invalid template status: {e}")),
    };
    if input.status.is_empty()
        || !input
            .status
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_')
    {
        return bad(format!(
            "status must be Meta's upper-case status (APPROVED, REJECTED, PAUSED, …), got {:?}",
            input.status
        ));
    }
    if change_template_status(&state, &id, &input.status, input.reason.as_deref(), false) {
        Json(json!({ "id": id, "status": input.status })).into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no template with id {id}"))
    }
}

async fn reset(State(state): State<Shared>) -> Response {
    lock(&state).reset();
    Json(json!({ "reset": true })).into_response()
}
