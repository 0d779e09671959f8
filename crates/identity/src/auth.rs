//! Request extractors that establish who is calling. Authorisation lives here, not in handlers:
//! a handler that takes [`AdminCaller`] can only run for an admin or owner.
//!
//! The server puts the `Arc<Identity>` into every request's extensions, so these extractors work
//! in any domain's router whatever its state type.

use std::{net::SocketAddr, sync::Arc};

use axum::extract::{ConnectInfo, FromRequestParts};
use http::{header, request::Parts};
use wamage_kernel::Problem;

use crate::{
    model::{Principal, Role},
    service::{ClientInfo, Identity},
};

fn identity(parts: &Parts) -> Result<Arc<Identity>, Problem> {
    parts
        .extensions
        .get::<Arc<Identity>>()
        .cloned()
        .ok_or_else(|| Problem::internal("identity service missing from request extensions"))
}

fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("Sign in first: no Authorization header"))?
        .to_str()
        .map_err(|_| Problem::unauthorized("The Authorization header is not valid text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Problem::unauthorized("Expected `Authorization: Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Problem::unauthorized(
            "Expected `Authorization: Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

/// Any member of the organisation (via a session token or an API key).
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Self(p.clone()));
        }
        let identity = identity(parts)?;
        let principal = identity.authenticate(bearer(parts)?).await?;
        parts.extensions.insert(principal.clone());
        Ok(Self(principal))
    }
}

/// An admin or owner.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for AdminCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        if p.role < Role::Admin {
            return Err(Problem::forbidden("This needs the admin or owner role"));
        }
        Ok(Self(p))
    }
}

/// A signed-in person (session token), not an API key: for actions on one's own account.
#[derive(Debug, Clone)]
pub struct SessionCaller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for SessionCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(p) = Caller::from_request_parts(parts, state).await?;
        if p.session_id().is_none() {
            return Err(Problem::forbidden(
                "This needs a signed-in user, not an API key",
            ));
        }
        Ok(Self(p))
    }
}

/// Whether to trust `X-Forwarded-For` (set by the server when behind a proxy).
#[derive(Debug, Clone, Copy)]
pub struct TrustForwardedFor(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let trust = parts
            .extensions
            .get::<TrustForwardedFor>()
            .is_some_and(|t| t.0);
        let forwarded = trust
            .then(|| {
                parts
                    .headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .map(|v| v.trim().to_owned())
            })
            .flatten();
        let ip = forwarded.or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(300).collect());
        Ok(Self { ip, user_agent })
    }
}
