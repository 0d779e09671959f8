//! Templates HTTP API under `/api/v1/templates` (members read, admins write).

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wamage_channels::{ChannelId, ChannelKind};
use wamage_contacts::ContactId;
use wamage_identity::Caller;
use wamage_kernel::{ApiJson, Problem, Timestamp, problem::FieldError, problem::ProblemBody};

use crate::{
    model::{Category, Components, Mapping, Preview, TemplateId, TemplateKind, TemplateStatus},
    service::Templates,
};

type Svc = State<Arc<Templates>>;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = TemplateChannelRef)]
pub struct ChannelRef {
    pub id: ChannelId,
    pub name: String,
    pub kind: ChannelKind,
}

/// A template as the builder and the lists show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateOut {
    pub id: TemplateId,
    pub channel: ChannelRef,
    pub kind: TemplateKind,
    pub name: String,
    pub language: String,
    pub category: Category,
    pub status: TemplateStatus,
    /// Meta's reason when rejected.
    pub rejected_reason: Option<String>,
    /// Meta's quality rating (`GREEN`, `YELLOW`, `RED`, `UNKNOWN`).
    pub quality: Option<String>,
    pub provider_template_id: Option<String>,
    pub components: Components,
    /// Variable keys in send order (`header.1`, `body.1`, `button.0`, …).
    pub variables: Vec<String>,
    /// The default variable mapping (campaigns start from it).
    #[schema(value_type = Object)]
    pub mapping: Mapping,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub submitted_at: Option<Timestamp>,
    pub synced_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateList {
    pub items: Vec<TemplateOut>,
}

/// A new template (WhatsApp: saved as a draft to submit; Telegram/Sandbox: ready to send).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateIn {
    pub channel_id: Option<ChannelId>,
    pub name: String,
    pub language: String,
    pub category: Category,
    pub components: Components,
    #[schema(value_type = Option<Object>)]
    pub mapping: Option<Mapping>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplatePatch {
    pub name: Option<String>,
    pub language: Option<String>,
    pub category: Option<Category>,
    pub components: Option<Components>,
    #[schema(value_type = Option<Object>)]
    pub mapping: Option<Mapping>,
}

/// The builder's live check: never an error status, the problems are the answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidateOut {
    pub ok: bool,
    pub errors: Vec<FieldError>,
    pub variables: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncIn {
    pub channel_id: ChannelId,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct SyncOut {
    /// Templates found on the account that were not here.
    pub imported: u32,
    /// Templates whose status, category, quality or reason changed.
    pub updated: u32,
    /// Templates on the account.
    pub total: u32,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewIn {
    /// Render for this contact (without one, the samples stand in).
    pub contact_id: Option<ContactId>,
    /// Try a mapping other than the template's.
    #[schema(value_type = Option<Object>)]
    pub mapping: Option<Mapping>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    pub channel_id: Option<ChannelId>,
    pub status: Option<TemplateStatus>,
    /// Part of the name.
    pub q: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = TemplateList)))]
pub async fn list_templates(
    State(s): Svc,
    Caller(who): Caller,
    Query(q): Query<ListQuery>,
) -> Result<ApiJson<TemplateList>, Problem> {
    Ok(ApiJson(TemplateList {
        items: s.list(&who, q.channel_id, q.status, q.q.as_deref()).await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", security(("bearer" = [])),
    request_body = TemplateIn,
    responses((status = 201, body = TemplateOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_template(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<TemplateIn>,
) -> Result<(StatusCode, ApiJson<TemplateOut>), Problem> {
    Ok((StatusCode::CREATED, ApiJson(s.create(&who, &b).await?)))
}

/// Checks a template as the builder edits it (the answer lists what Meta would reject).
#[utoipa::path(post, path = "/api/v1/templates/validate", tag = "templates", security(("bearer" = [])),
    request_body = TemplateIn, responses((status = 200, body = ValidateOut)))]
pub async fn validate_template(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<TemplateIn>,
) -> Result<ApiJson<ValidateOut>, Problem> {
    Ok(ApiJson(s.validate(&who, &b).await?))
}

#[utoipa::path(get, path = "/api/v1/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(("id" = TemplateId, Path)), responses((status = 200, body = TemplateOut), (status = 404, body = ProblemBody)))]
pub async fn get_template(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<TemplateId>,
) -> Result<ApiJson<TemplateOut>, Problem> {
    Ok(ApiJson(s.get(&who, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(("id" = TemplateId, Path)), request_body = TemplatePatch,
    responses((status = 200, body = TemplateOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_template(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<TemplateId>,
    ApiJson(b): ApiJson<TemplatePatch>,
) -> Result<ApiJson<TemplateOut>, Problem> {
    Ok(ApiJson(s.update(&who, id, &b).await?))
}

#[utoipa::path(delete, path = "/api/v1/templates/{id}", tag = "templates", security(("bearer" = [])),
    params(("id" = TemplateId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_template(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<TemplateId>,
) -> Result<StatusCode, Problem> {
    s.delete(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Submits a WhatsApp template for Meta's review (`pending` until the verdict arrives).
#[utoipa::path(post, path = "/api/v1/templates/{id}/submit", tag = "templates", security(("bearer" = [])),
    params(("id" = TemplateId, Path)),
    responses((status = 200, body = TemplateOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody), (status = 502, body = ProblemBody)))]
pub async fn submit_template(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<TemplateId>,
) -> Result<ApiJson<TemplateOut>, Problem> {
    Ok(ApiJson(s.submit(&who, id).await?))
}

/// Reads every template of the channel's business account: statuses update, templates made
/// elsewhere are imported.
#[utoipa::path(post, path = "/api/v1/templates/sync", tag = "templates", security(("bearer" = [])),
    request_body = SyncIn,
    responses((status = 200, body = SyncOut), (status = 422, body = ProblemBody), (status = 502, body = ProblemBody)))]
pub async fn sync_templates(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<SyncIn>,
) -> Result<ApiJson<SyncOut>, Problem> {
    Ok(ApiJson(s.sync(&who, b.channel_id).await?))
}

/// The template as a contact will see it.
#[utoipa::path(post, path = "/api/v1/templates/{id}/preview", tag = "templates", security(("bearer" = [])),
    params(("id" = TemplateId, Path)), request_body = PreviewIn,
    responses((status = 200, body = Preview), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn preview_template(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<TemplateId>,
    ApiJson(b): ApiJson<PreviewIn>,
) -> Result<ApiJson<Preview>, Problem> {
    Ok(ApiJson(s.preview(&who, id, &b).await?))
}

pub fn routes(templates: Arc<Templates>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_templates, create_template))
        .routes(routes!(validate_template))
        .routes(routes!(sync_templates))
        .routes(routes!(get_template, update_template, delete_template))
        .routes(routes!(submit_template))
        .routes(routes!(preview_template))
        .with_state(templates)
}
