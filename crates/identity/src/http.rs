//! Identity HTTP API: DTOs (`…In`, `…Patch`, `…Out`) and thin handlers — extract, call one
//! service function, map to an `…Out`.

use std::sync::Arc;

use axum::{
    extract::{Multipart, Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wamage_kernel::{ApiJson, OrgId, Problem, Timestamp, UserId, problem::ProblemBody};

use crate::{
    auth::{AdminCaller, Caller, SessionCaller},
    model::{ApiKeyId, InvitationId, Role, SessionId, TeamId},
    service::{ClientInfo, Identity, Issued},
    store,
};

type Svc = State<Arc<Identity>>;

/// Multipart overhead on top of the 2 MB image limit, plus room to see that a file is too big.
const AVATAR_BODY_LIMIT: usize = 3 * 1024 * 1024;

pub(crate) fn avatar_url(key: Option<&str>) -> Option<String> {
    key.and_then(|k| k.strip_prefix("avatars/"))
        .map(|name| format!("/api/v1/avatars/{name}"))
}

// ---- DTOs --------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserOut {
    pub id: UserId,
    pub email: String,
    pub name: String,
    /// URL of the avatar image, usable directly in `<img src>`.
    pub avatar_url: Option<String>,
    pub status_text: Option<String>,
    pub created_at: Timestamp,
}

impl From<store::UserRow> for UserOut {
    fn from(u: store::UserRow) -> Self {
        Self {
            avatar_url: avatar_url(u.avatar_key.as_deref()),
            id: u.id,
            email: u.email,
            name: u.name,
            status_text: u.status_text,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrgOut {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

impl From<store::OrgRow> for OrgOut {
    fn from(o: store::OrgRow) -> Self {
        Self {
            id: o.id,
            name: o.name,
            created_at: o.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuthOut {
    /// Short-lived JWT; send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Opaque, single-use: exchange at `/api/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: UserOut,
    pub organization: OrgOut,
    pub role: Role,
}

impl From<Issued> for AuthOut {
    fn from(i: Issued) -> Self {
        Self {
            access_token: i.access_token,
            refresh_token: i.refresh_token,
            token_type: "Bearer".to_owned(),
            expires_in: i.expires_in,
            user: i.user.into(),
            organization: i.org.into(),
            role: i.role,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIn {
    pub email: String,
    /// At least 10 characters.
    pub password: String,
    /// Your display name.
    pub name: String,
    /// The organisation to create; you become its owner.
    pub organization: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    pub email: String,
    pub password: String,
    /// Which organisation to sign in to, for accounts in several (default: the first joined).
    #[serde(default)]
    pub organization_id: Option<OrgId>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshIn {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordIn {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordIn {
    /// The token from the reset link.
    pub token: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    pub user: UserOut,
    pub organization: OrgOut,
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub status_text: Option<Option<String>>,
}

/// The avatar upload form.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the multipart body; read field by field in the handler
pub struct AvatarUpload {
    /// PNG, JPEG, GIF or WebP, at most 2 MB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeIn {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub joined_at: Timestamp,
}

impl From<store::MemberRow> for MemberOut {
    fn from(m: store::MemberRow) -> Self {
        Self {
            avatar_url: avatar_url(m.avatar_key.as_deref()),
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: Role::from_db(&m.role),
            joined_at: m.joined_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub items: Vec<MemberOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamOut {
    pub id: TeamId,
    pub name: String,
    pub description: Option<String>,
    pub member_count: i64,
    pub created_at: Timestamp,
}

impl From<store::TeamRow> for TeamOut {
    fn from(t: store::TeamRow) -> Self {
        Self {
            id: t.id,
            name: t.name,
            description: t.description,
            member_count: t.member_count,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamList {
    pub items: Vec<TeamOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamMemberOut {
    pub user_id: UserId,
    pub name: String,
    pub email: String,
    pub avatar_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamDetailOut {
    #[serde(flatten)]
    pub team: TeamOut,
    pub members: Vec<TeamMemberOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamIn {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserRef {
    pub id: UserId,
    pub name: String,
}

/// `pending`, `accepted`, `revoked` or `expired`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationOut {
    pub id: InvitationId,
    pub email: String,
    pub role: Role,
    pub invited_by: UserRef,
    pub status: InvitationStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The link to send to the invitee; only in the response that creates the invitation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_url: Option<String>,
}

impl InvitationOut {
    fn from_row(i: store::InvitationRow, now: Timestamp, invite_url: Option<String>) -> Self {
        let status = if i.accepted_at.is_some() {
            InvitationStatus::Accepted
        } else if i.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if i.expires_at <= now {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        };
        Self {
            id: i.id,
            email: i.email,
            role: Role::from_db(&i.role),
            invited_by: UserRef {
                id: i.invited_by,
                name: i.inviter_name,
            },
            status,
            created_at: i.created_at,
            expires_at: i.expires_at,
            invite_url,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub items: Vec<InvitationOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationIn {
    pub email: String,
    pub role: Role,
    /// 1–720, default 168 (7 days).
    #[serde(default)]
    pub expires_in_hours: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgRef {
    pub id: OrgId,
    pub name: String,
}

/// What the invitation page shows before accepting.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPublicOut {
    pub organization: OrgRef,
    pub email: String,
    pub role: Role,
    pub invited_by_name: String,
    pub expires_at: Timestamp,
    /// True when this e-mail already has an account: accepting then needs its password.
    pub account_exists: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationIn {
    /// Display name for the new account (ignored for an existing account).
    #[serde(default)]
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: ApiKeyId,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub role: Role,
    pub created_by: UserRef,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl From<store::ApiKeyRow> for ApiKeyOut {
    fn from(k: store::ApiKeyRow) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            role: Role::from_db(&k.role),
            created_by: UserRef {
                id: k.created_by,
                name: k.creator_name,
            },
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreatedOut {
    #[serde(flatten)]
    pub api_key: ApiKeyOut,
    /// The secret. Shown this once; store it now.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    pub name: String,
    /// Default `agent`; cannot exceed your own role.
    #[serde(default)]
    pub role: Option<Role>,
    /// 1–3650; absent means the key does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    pub id: SessionId,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// True for the session making this request.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<SessionOut>,
}

// ---- handlers: auth ------------------------------------------------------------------------

/// Create an account and its organisation.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterIn,
    responses((status = 201, body = AuthOut), (status = 409, description = "E-mail taken", body = ProblemBody),
              (status = 422, body = ProblemBody), (status = 429, body = ProblemBody)))]
pub async fn register(
    State(s): Svc,
    client: ClientInfo,
    ApiJson(b): ApiJson<RegisterIn>,
) -> Result<(StatusCode, ApiJson<AuthOut>), Problem> {
    let issued = s
        .register(&b.email, &b.password, &b.name, &b.organization, &client)
        .await?;
    Ok((StatusCode::CREATED, ApiJson(issued.into())))
}

/// Sign in with e-mail and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginIn,
    responses((status = 200, body = AuthOut), (status = 401, body = ProblemBody), (status = 429, body = ProblemBody)))]
pub async fn login(
    State(s): Svc,
    client: ClientInfo,
    ApiJson(b): ApiJson<LoginIn>,
) -> Result<ApiJson<AuthOut>, Problem> {
    let issued = s
        .login(&b.email, &b.password, b.organization_id, &client)
        .await?;
    Ok(ApiJson(issued.into()))
}

/// Exchange a refresh token for a new token pair (the old refresh token stops working).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshIn,
    responses((status = 200, body = AuthOut), (status = 401, body = ProblemBody)))]
pub async fn refresh(
    State(s): Svc,
    client: ClientInfo,
    ApiJson(b): ApiJson<RefreshIn>,
) -> Result<ApiJson<AuthOut>, Problem> {
    Ok(ApiJson(s.refresh(&b.refresh_token, &client).await?.into()))
}

/// Sign out this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ProblemBody)))]
pub async fn logout(State(s): Svc, Caller(who): Caller) -> Result<StatusCode, Problem> {
    s.logout(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password reset link by e-mail. Always answers 202.
#[utoipa::path(post, path = "/api/v1/auth/password/forgot", tag = "auth", request_body = ForgotPasswordIn,
    responses((status = 202), (status = 422, body = ProblemBody), (status = 429, body = ProblemBody)))]
pub async fn forgot_password(
    State(s): Svc,
    client: ClientInfo,
    ApiJson(b): ApiJson<ForgotPasswordIn>,
) -> Result<StatusCode, Problem> {
    s.forgot_password(&b.email, &client).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token from a reset link. Signs out every session.
#[utoipa::path(post, path = "/api/v1/auth/password/reset", tag = "auth", request_body = ResetPasswordIn,
    responses((status = 204), (status = 400, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn reset_password(
    State(s): Svc,
    client: ClientInfo,
    ApiJson(b): ApiJson<ResetPasswordIn>,
) -> Result<StatusCode, Problem> {
    s.reset_password(&b.token, &b.password, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Look at an invitation before accepting it.
#[utoipa::path(get, path = "/api/v1/auth/invitations/{token}", tag = "auth",
    params(("token" = String, Path, description = "The token from the invitation link")),
    responses((status = 200, body = InvitationPublicOut), (status = 404, body = ProblemBody),
              (status = 410, description = "Expired, used or revoked", body = ProblemBody)))]
pub async fn get_invitation_by_token(
    State(s): Svc,
    Path(token): Path<String>,
) -> Result<ApiJson<InvitationPublicOut>, Problem> {
    let (inv, account_exists) = s.invitation_by_token(&token).await?;
    Ok(ApiJson(InvitationPublicOut {
        organization: OrgRef {
            id: inv.org_id,
            name: inv.org_name,
        },
        email: inv.email,
        role: Role::from_db(&inv.role),
        invited_by_name: inv.inviter_name,
        expires_at: inv.expires_at,
        account_exists,
    }))
}

/// Accept an invitation: creates the account (or joins with an existing one) and signs in.
#[utoipa::path(post, path = "/api/v1/auth/invitations/{token}/accept", tag = "auth",
    params(("token" = String, Path)), request_body = AcceptInvitationIn,
    responses((status = 200, body = AuthOut), (status = 404, body = ProblemBody),
              (status = 410, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn accept_invitation(
    State(s): Svc,
    client: ClientInfo,
    Path(token): Path<String>,
    ApiJson(b): ApiJson<AcceptInvitationIn>,
) -> Result<ApiJson<AuthOut>, Problem> {
    let issued = s
        .accept_invitation(&token, &b.name, &b.password, &client)
        .await?;
    Ok(ApiJson(issued.into()))
}

// ---- handlers: me --------------------------------------------------------------------------

/// The signed-in user, their organisation and role.
#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = MeOut), (status = 401, body = ProblemBody)))]
pub async fn get_me(State(s): Svc, Caller(who): Caller) -> Result<ApiJson<MeOut>, Problem> {
    let user = s.profile(who.user_id).await?;
    let org = s.organization_cached(who.org_id).await?;
    Ok(ApiJson(MeOut {
        user,
        organization: org,
        role: who.role,
    }))
}

/// Edit your profile.
#[utoipa::path(patch, path = "/api/v1/me", tag = "me", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = UserOut), (status = 422, body = ProblemBody)))]
pub async fn update_me(
    State(s): Svc,
    SessionCaller(who): SessionCaller,
    ApiJson(b): ApiJson<ProfilePatch>,
) -> Result<ApiJson<UserOut>, Problem> {
    let status = b.status_text.as_ref().map(|o| o.as_deref());
    Ok(ApiJson(
        s.update_profile(&who, b.name.as_deref(), status)
            .await?
            .into(),
    ))
}

/// Upload an avatar (multipart field `file`: PNG, JPEG, GIF or WebP, at most 2 MB).
#[utoipa::path(put, path = "/api/v1/me/avatar", tag = "me", security(("bearer" = [])),
    request_body(content = AvatarUpload, content_type = "multipart/form-data"),
    responses((status = 200, body = UserOut), (status = 413, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn upload_avatar(
    State(s): Svc,
    SessionCaller(who): SessionCaller,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<ApiJson<UserOut>, Problem> {
    let mut multipart =
        multipart.map_err(|_| Problem::unsupported_media_type("multipart/form-data"))?;
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::payload_too_large(2 * 1024 * 1024).with_field("file", "must be at most 2 MB")
        } else {
            Problem::bad_request("malformed_multipart", "The upload could not be read")
        }
    })? {
        if field.name() == Some("file") {
            let bytes = field.bytes().await.map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::payload_too_large(2 * 1024 * 1024)
                        .with_field("file", "must be at most 2 MB")
                } else {
                    Problem::bad_request("malformed_multipart", "The upload could not be read")
                }
            })?;
            file = Some(bytes);
        }
    }
    let file = file.ok_or_else(|| Problem::invalid_field("file", "is required"))?;
    Ok(ApiJson(s.set_avatar(&who, file).await?.into()))
}

/// Remove your avatar.
#[utoipa::path(delete, path = "/api/v1/me/avatar", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = UserOut)))]
pub async fn delete_avatar(
    State(s): Svc,
    SessionCaller(who): SessionCaller,
) -> Result<ApiJson<UserOut>, Problem> {
    Ok(ApiJson(s.clear_avatar(&who).await?.into()))
}

/// An avatar image.
#[utoipa::path(get, path = "/api/v1/avatars/{name}", tag = "me",
    params(("name" = String, Path)), responses((status = 200, content_type = "image/*"), (status = 404, body = ProblemBody)))]
pub async fn get_avatar(State(s): Svc, Path(name): Path<String>) -> Result<Response, Problem> {
    let blob = s.avatar(&name).await?;
    Ok((
        [
            (header::CONTENT_TYPE, blob.content_type),
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".to_owned(),
            ),
        ],
        blob.bytes,
    )
        .into_response())
}

/// Change your password; every other device is signed out.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "me", security(("bearer" = [])),
    request_body = PasswordChangeIn, responses((status = 204), (status = 422, body = ProblemBody)))]
pub async fn change_password(
    State(s): Svc,
    SessionCaller(who): SessionCaller,
    ApiJson(b): ApiJson<PasswordChangeIn>,
) -> Result<StatusCode, Problem> {
    s.change_password(&who, &b.current_password, &b.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- handlers: organisation and members ----------------------------------------------------

/// Your organisation.
#[utoipa::path(get, path = "/api/v1/organization", tag = "organization", security(("bearer" = [])),
    responses((status = 200, body = OrgOut)))]
pub async fn get_organization(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<OrgOut>, Problem> {
    Ok(ApiJson(s.organization(who.org_id).await?.into()))
}

/// Rename the organisation (admin).
#[utoipa::path(patch, path = "/api/v1/organization", tag = "organization", security(("bearer" = [])),
    request_body = OrgPatch, responses((status = 200, body = OrgOut), (status = 403, body = ProblemBody)))]
pub async fn update_organization(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    ApiJson(b): ApiJson<OrgPatch>,
) -> Result<ApiJson<OrgOut>, Problem> {
    let org = s.rename_organization(&who, &b.name).await?;
    Ok(ApiJson(org.into()))
}

/// Members of the organisation.
#[utoipa::path(get, path = "/api/v1/members", tag = "organization", security(("bearer" = [])),
    responses((status = 200, body = MemberList)))]
pub async fn list_members(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<MemberList>, Problem> {
    let items = s.members(&who).await?.into_iter().map(Into::into).collect();
    Ok(ApiJson(MemberList { items }))
}

/// Change a member's role (admin; ownership only by an owner).
#[utoipa::path(patch, path = "/api/v1/members/{user_id}", tag = "organization", security(("bearer" = [])),
    params(("user_id" = UserId, Path)), request_body = MemberPatch,
    responses((status = 200, body = MemberOut), (status = 403, body = ProblemBody),
              (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn update_member(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(user_id): Path<UserId>,
    ApiJson(b): ApiJson<MemberPatch>,
) -> Result<ApiJson<MemberOut>, Problem> {
    Ok(ApiJson(s.change_role(&who, user_id, b.role).await?.into()))
}

/// Remove a member (admin); their sessions in this organisation end.
#[utoipa::path(delete, path = "/api/v1/members/{user_id}", tag = "organization", security(("bearer" = [])),
    params(("user_id" = UserId, Path)),
    responses((status = 204), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn remove_member(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(user_id): Path<UserId>,
) -> Result<StatusCode, Problem> {
    s.remove_member(&who, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- handlers: teams -----------------------------------------------------------------------

/// Teams of the organisation.
#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", security(("bearer" = [])),
    responses((status = 200, body = TeamList)))]
pub async fn list_teams(State(s): Svc, Caller(who): Caller) -> Result<ApiJson<TeamList>, Problem> {
    let items = s.teams(&who).await?.into_iter().map(Into::into).collect();
    Ok(ApiJson(TeamList { items }))
}

/// Create a team (admin).
#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", security(("bearer" = [])), request_body = TeamIn,
    responses((status = 201, body = TeamOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_team(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    ApiJson(b): ApiJson<TeamIn>,
) -> Result<(StatusCode, ApiJson<TeamOut>), Problem> {
    let team = s
        .create_team(&who, &b.name, b.description.as_deref())
        .await?;
    Ok((StatusCode::CREATED, ApiJson(team.into())))
}

/// A team with its members.
#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "teams", security(("bearer" = [])),
    params(("id" = TeamId, Path)), responses((status = 200, body = TeamDetailOut), (status = 404, body = ProblemBody)))]
pub async fn get_team(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<TeamId>,
) -> Result<ApiJson<TeamDetailOut>, Problem> {
    let (team, members) = s.team(&who, id).await?;
    Ok(ApiJson(TeamDetailOut {
        team: team.into(),
        members: members
            .into_iter()
            .map(|m| TeamMemberOut {
                avatar_url: avatar_url(m.avatar_key.as_deref()),
                user_id: m.user_id,
                name: m.name,
                email: m.email,
            })
            .collect(),
    }))
}

/// Rename or describe a team (admin).
#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "teams", security(("bearer" = [])),
    params(("id" = TeamId, Path)), request_body = TeamPatch,
    responses((status = 200, body = TeamOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn update_team(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(id): Path<TeamId>,
    ApiJson(b): ApiJson<TeamPatch>,
) -> Result<ApiJson<TeamOut>, Problem> {
    let desc = b.description.as_ref().map(|d| d.as_deref());
    Ok(ApiJson(
        s.update_team(&who, id, b.name.as_deref(), desc)
            .await?
            .into(),
    ))
}

/// Delete a team (admin).
#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams", security(("bearer" = [])),
    params(("id" = TeamId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_team(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(id): Path<TeamId>,
) -> Result<StatusCode, Problem> {
    s.delete_team(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a member to a team (admin).
#[utoipa::path(put, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams", security(("bearer" = [])),
    params(("id" = TeamId, Path), ("user_id" = UserId, Path)),
    responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn add_team_member(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path((id, user_id)): Path<(TeamId, UserId)>,
) -> Result<StatusCode, Problem> {
    s.add_team_member(&who, id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member from a team (admin).
#[utoipa::path(delete, path = "/api/v1/teams/{id}/members/{user_id}", tag = "teams", security(("bearer" = [])),
    params(("id" = TeamId, Path), ("user_id" = UserId, Path)),
    responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn remove_team_member(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path((id, user_id)): Path<(TeamId, UserId)>,
) -> Result<StatusCode, Problem> {
    s.remove_team_member(&who, id, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- handlers: invitations -----------------------------------------------------------------

/// Invitations of the organisation (admin).
#[utoipa::path(get, path = "/api/v1/invitations", tag = "organization", security(("bearer" = [])),
    responses((status = 200, body = InvitationList)))]
pub async fn list_invitations(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
) -> Result<ApiJson<InvitationList>, Problem> {
    let now = s.now();
    let items = s
        .invitations(&who)
        .await?
        .into_iter()
        .map(|i| InvitationOut::from_row(i, now, None))
        .collect();
    Ok(ApiJson(InvitationList { items }))
}

/// Invite someone by e-mail (admin). The response carries the link, once.
#[utoipa::path(post, path = "/api/v1/invitations", tag = "organization", security(("bearer" = [])),
    request_body = InvitationIn,
    responses((status = 201, body = InvitationOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_invitation(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    ApiJson(b): ApiJson<InvitationIn>,
) -> Result<(StatusCode, ApiJson<InvitationOut>), Problem> {
    let (row, link) = s.invite(&who, &b.email, b.role, b.expires_in_hours).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(InvitationOut::from_row(row, s.now(), Some(link))),
    ))
}

/// Revoke a pending invitation (admin).
#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "organization", security(("bearer" = [])),
    params(("id" = InvitationId, Path)),
    responses((status = 204), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody)))]
pub async fn revoke_invitation(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(id): Path<InvitationId>,
) -> Result<StatusCode, Problem> {
    s.revoke_invitation(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- handlers: API keys --------------------------------------------------------------------

/// API keys of the organisation (admin).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = ApiKeyList)))]
pub async fn list_api_keys(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
) -> Result<ApiJson<ApiKeyList>, Problem> {
    let items = s
        .api_keys(&who)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(ApiJson(ApiKeyList { items }))
}

/// Create an API key (admin). The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    request_body = ApiKeyIn, responses((status = 201, body = ApiKeyCreatedOut), (status = 422, body = ProblemBody)))]
pub async fn create_api_key(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    ApiJson(b): ApiJson<ApiKeyIn>,
) -> Result<(StatusCode, ApiJson<ApiKeyCreatedOut>), Problem> {
    let (row, key) = s
        .create_api_key(&who, &b.name, b.role, b.expires_in_days)
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(ApiKeyCreatedOut {
            api_key: row.into(),
            key,
        }),
    ))
}

/// Revoke an API key (admin); it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = ApiKeyId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn revoke_api_key(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(id): Path<ApiKeyId>,
) -> Result<StatusCode, Problem> {
    s.revoke_api_key(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- handlers: sessions --------------------------------------------------------------------

/// Your signed-in devices in this organisation.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = SessionList)))]
pub async fn list_sessions(
    State(s): Svc,
    SessionCaller(who): SessionCaller,
) -> Result<ApiJson<SessionList>, Problem> {
    let current = who.session_id();
    let items = s
        .sessions(&who)
        .await?
        .into_iter()
        .map(|r| SessionOut {
            current: Some(r.id) == current,
            id: r.id,
            user_agent: r.user_agent,
            ip: r.ip,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
        })
        .collect();
    Ok(ApiJson(SessionList { items }))
}

/// Sign out every other device.
#[utoipa::path(delete, path = "/api/v1/sessions", tag = "me", security(("bearer" = [])),
    responses((status = 204)))]
pub async fn revoke_other_sessions(
    State(s): Svc,
    SessionCaller(who): SessionCaller,
) -> Result<StatusCode, Problem> {
    s.revoke_other_sessions(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out one device.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "me", security(("bearer" = [])),
    params(("id" = SessionId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn revoke_session(
    State(s): Svc,
    SessionCaller(who): SessionCaller,
    Path(id): Path<SessionId>,
) -> Result<StatusCode, Problem> {
    s.revoke_session(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The identity API, with its OpenAPI description.
pub fn routes(identity: Arc<Identity>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(get_invitation_by_token))
        .routes(routes!(accept_invitation))
        .routes(routes!(get_me, update_me))
        .merge(
            // Avatars may be up to 2 MB; the body is read whole so the size check answers 413
            // with a field error instead of cutting the connection.
            OpenApiRouter::new()
                .routes(routes!(upload_avatar, delete_avatar))
                .layer(axum::extract::DefaultBodyLimit::max(AVATAR_BODY_LIMIT)),
        )
        .routes(routes!(get_avatar))
        .routes(routes!(change_password))
        .routes(routes!(get_organization, update_organization))
        .routes(routes!(list_members))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, update_team, delete_team))
        .routes(routes!(add_team_member, remove_team_member))
        .routes(routes!(list_invitations, create_invitation))
        .routes(routes!(revoke_invitation))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
        .routes(routes!(list_sessions, revoke_other_sessions))
        .routes(routes!(revoke_session))
        .with_state(identity)
}
