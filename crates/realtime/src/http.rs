//! Realtime HTTP API: the presence of the organisation's members (the live updates come as
//! `presence.changed` over Socket.IO).

use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wamage_identity::Caller;
use wamage_kernel::{ApiJson, Problem, UserId, problem::ProblemBody};

use crate::{Realtime, presence::PresenceOut};

#[derive(Debug, Serialize, ToSchema)]
pub struct PresenceList {
    /// One entry per member of the organisation.
    pub items: Vec<PresenceOut>,
}

/// Presence of every member of the organisation: `online`, `away` or `offline`, with when it
/// last changed.
#[utoipa::path(get, path = "/api/v1/presence", tag = "realtime", security(("bearer" = [])),
    responses((status = 200, body = PresenceList), (status = 401, body = ProblemBody)))]
pub async fn list_presence(
    State(rt): State<Arc<Realtime>>,
    Caller(who): Caller,
) -> Result<ApiJson<PresenceList>, Problem> {
    let shared = rt.shared();
    let members: Vec<UserId> = shared
        .identity
        .members(&who)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    let items = shared
        .presence
        .of(who.org_id, &members)
        .await
        .map_err(|e| Problem::internal(format_args!("presence: {e:#}")))?;
    Ok(ApiJson(PresenceList { items }))
}

pub fn routes(rt: Arc<Realtime>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_presence))
        .with_state(rt)
}
