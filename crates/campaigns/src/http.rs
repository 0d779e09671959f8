//! Campaigns HTTP API under `/api/v1/campaigns` (members read, admins write).

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wamage_channels::{ChannelId, ChannelKind};
use wamage_contacts::{Breakdown, ContactId};
use wamage_identity::Caller;
use wamage_kernel::{ApiJson, Problem, Timestamp, problem::ProblemBody};
use wamage_templates::{Category, TemplateId, TemplateStatus, model::Mapping};

use crate::{
    model::{Audience, CampaignId, CampaignStatus, Slice},
    service::Campaigns,
};

type Svc = State<Arc<Campaigns>>;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CampaignChannelRef)]
pub struct ChannelRef {
    pub id: ChannelId,
    pub name: String,
    pub kind: ChannelKind,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = CampaignTemplateRef)]
pub struct TemplateRef {
    pub id: TemplateId,
    pub name: String,
    pub language: String,
    pub category: Category,
    pub status: TemplateStatus,
}

/// Recipients by state. `sent`, `delivered` and `read` are cumulative (a read message was
/// also delivered and sent). `sending`: held by a dispatcher now, or interrupted mid-send and
/// waiting for the provider's report.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    pub total: i64,
    pub pending: i64,
    pub sending: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
    pub failed: i64,
    pub skipped: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignOut {
    pub id: CampaignId,
    pub name: String,
    pub channel: ChannelRef,
    pub template: Option<TemplateRef>,
    #[schema(value_type = Object)]
    pub variables: Mapping,
    pub audience: Audience,
    pub status: CampaignStatus,
    /// Why it paused (automatically or by a person) or failed.
    pub pause_reason: Option<String>,
    pub scheduled_at: Option<Timestamp>,
    pub time_zone: Option<String>,
    /// Pauses when more than this share of sends fail (0–1).
    pub failure_threshold: f64,
    pub counts: Counts,
    pub rate_per_second: f64,
    pub eta_seconds: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub launched_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignList {
    pub items: Vec<CampaignOut>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignIn {
    pub name: String,
    pub channel_id: ChannelId,
    pub template_id: Option<TemplateId>,
    /// Variable mapping (defaults to the template's).
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Mapping>,
    #[serde(default)]
    pub audience: Audience,
    pub failure_threshold: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub channel_id: Option<ChannelId>,
    pub template_id: Option<TemplateId>,
    #[schema(value_type = Option<Object>)]
    pub variables: Option<Mapping>,
    pub audience: Option<Audience>,
    pub failure_threshold: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    pub channel_id: ChannelId,
    pub template_id: Option<TemplateId>,
    #[serde(default)]
    pub audience: Audience,
}

/// Launch now (no body fields) or at a time: a local wall time with its IANA time zone, or an
/// RFC 3339 instant.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchIn {
    /// `2026-12-24T09:00` (with `time_zone`) or `2026-12-24T08:00:00Z`.
    pub scheduled_at: Option<String>,
    /// Like `Europe/Berlin`.
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetargetIn {
    pub slice: Slice,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailedCode {
    pub code: i64,
    pub title: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SkippedReason {
    /// `opted_out`, `no_consent`, `blocked`, `no_identity`, `missing_variable`,
    /// `duplicate_address`, `contact_deleted`, `cancelled`.
    pub reason: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the minute.
    pub at: Timestamp,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsOut {
    pub counts: Counts,
    pub rate_per_second: f64,
    pub eta_seconds: Option<i64>,
    pub failed_by_code: Vec<FailedCode>,
    pub skipped_by_reason: Vec<SkippedReason>,
    pub series: Vec<SeriesPoint>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecipientOut {
    pub contact_id: ContactId,
    pub contact_name: String,
    pub address: Option<String>,
    /// `pending`, `sending` (held by a dispatcher now, or interrupted mid-send and waiting for
    /// the provider's report), `sent`, `delivered`, `read`, `failed` or `skipped`.
    pub state: String,
    pub replied: bool,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub skip_reason: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    pub replied_at: Option<Timestamp>,
    pub failed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecipientPage {
    pub items: Vec<RecipientOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    pub status: Option<CampaignStatus>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RecipientQuery {
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = CampaignList)))]
pub async fn list_campaigns(
    State(s): Svc,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> Result<ApiJson<CampaignList>, Problem> {
    Ok(ApiJson(CampaignList {
        items: s.list(&who, q.status).await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", security(("bearer" = [])),
    request_body = CampaignIn,
    responses((status = 201, body = CampaignOut), (status = 422, body = ProblemBody)))]
pub async fn create_campaign(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<CampaignIn>,
) -> Result<(StatusCode, ApiJson<CampaignOut>), Problem> {
    Ok((StatusCode::CREATED, ApiJson(s.create(&who, &b).await?)))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), responses((status = 200, body = CampaignOut), (status = 404, body = ProblemBody)))]
pub async fn get_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
) -> Result<ApiJson<CampaignOut>, Problem> {
    Ok(ApiJson(s.get(&who, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), request_body = CampaignPatch,
    responses((status = 200, body = CampaignOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
    ApiJson(b): ApiJson<CampaignPatch>,
) -> Result<ApiJson<CampaignOut>, Problem> {
    Ok(ApiJson(s.update(&who, id, &b).await?))
}

#[utoipa::path(delete, path = "/api/v1/campaigns/{id}", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), responses((status = 204), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn delete_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
) -> Result<StatusCode, Problem> {
    s.delete(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Audience size and consent breakdown before launch.
#[utoipa::path(post, path = "/api/v1/campaigns/audience-preview", tag = "campaigns", security(("bearer" = [])),
    request_body = PreviewIn, responses((status = 200, body = Breakdown), (status = 422, body = ProblemBody)))]
pub async fn preview_audience(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<PreviewIn>,
) -> Result<ApiJson<Breakdown>, Problem> {
    Ok(ApiJson(s.audience_preview(&who, &b).await?))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/audience", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), responses((status = 200, body = Breakdown), (status = 404, body = ProblemBody)))]
pub async fn campaign_audience(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
) -> Result<ApiJson<Breakdown>, Problem> {
    Ok(ApiJson(s.audience(&who, id).await?))
}

/// Launches now, or schedules for a time.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/launch", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), request_body = LaunchIn,
    responses((status = 200, body = CampaignOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn launch_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
    body: axum::body::Bytes,
) -> Result<ApiJson<CampaignOut>, Problem> {
    // No body launches now.
    let b: LaunchIn = if body.iter().all(u8::is_ascii_whitespace) {
        LaunchIn::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::invalid_field("body", format!("is not a valid launch request: {e}"))
        })?
    };
    Ok(ApiJson(s.launch(&who, id, &b).await?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/pause", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), responses((status = 200, body = CampaignOut), (status = 409, body = ProblemBody)))]
pub async fn pause_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
) -> Result<ApiJson<CampaignOut>, Problem> {
    Ok(ApiJson(s.pause(&who, id).await?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/resume", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), responses((status = 200, body = CampaignOut), (status = 409, body = ProblemBody)))]
pub async fn resume_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
) -> Result<ApiJson<CampaignOut>, Problem> {
    Ok(ApiJson(s.resume(&who, id).await?))
}

#[utoipa::path(post, path = "/api/v1/campaigns/{id}/cancel", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), responses((status = 200, body = CampaignOut), (status = 409, body = ProblemBody)))]
pub async fn cancel_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
) -> Result<ApiJson<CampaignOut>, Problem> {
    Ok(ApiJson(s.cancel(&who, id).await?))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/stats", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), responses((status = 200, body = StatsOut), (status = 404, body = ProblemBody)))]
pub async fn campaign_stats(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
) -> Result<ApiJson<StatsOut>, Problem> {
    Ok(ApiJson(s.stats(&who, id).await?))
}

#[utoipa::path(get, path = "/api/v1/campaigns/{id}/recipients", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path), RecipientQuery),
    responses((status = 200, body = RecipientPage), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn campaign_recipients(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
    Query(q): Query<RecipientQuery>,
) -> Result<ApiJson<RecipientPage>, Problem> {
    Ok(ApiJson(
        s.recipients(&who, id, q.state.as_deref(), q.cursor.as_deref(), q.limit)
            .await?,
    ))
}

/// Every recipient with its outcome, as CSV.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}/export", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), responses((status = 200, content_type = "text/csv"), (status = 404, body = ProblemBody)))]
pub async fn export_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
) -> Result<Response, Problem> {
    let (name, bytes) = s.export_csv(&who, id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// A new draft campaign to a slice of this one's recipients.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/retarget", tag = "campaigns", security(("bearer" = [])),
    params(("id" = CampaignId, Path)), request_body = RetargetIn,
    responses((status = 201, body = CampaignOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn retarget_campaign(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<CampaignId>,
    ApiJson(b): ApiJson<RetargetIn>,
) -> Result<(StatusCode, ApiJson<CampaignOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.retarget(&who, id, &b).await?),
    ))
}

pub fn routes(campaigns: Arc<Campaigns>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(preview_audience))
        .routes(routes!(get_campaign, update_campaign, delete_campaign))
        .routes(routes!(campaign_audience))
        .routes(routes!(launch_campaign))
        .routes(routes!(pause_campaign))
        .routes(routes!(resume_campaign))
        .routes(routes!(cancel_campaign))
        .routes(routes!(campaign_stats))
        .routes(routes!(campaign_recipients))
        .routes(routes!(export_campaign))
        .routes(routes!(retarget_campaign))
        .with_state(campaigns)
}
