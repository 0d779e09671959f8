//! Identity persistence: one function per use case, each taking the organisation it acts in
//! (users are global accounts; everything else is scoped by `org_id`). SQL is written once and
//! compiled for SQLite and PostgreSQL by `with_tx!`/`with_db!`.

use sqlx::FromRow;
use wamage_kernel::{OrgId, Timestamp, UserId};
use wamage_platform::{Db, Tx, with_db, with_tx, with_write};

use crate::model::{ApiKeyId, InvitationId, Role, SessionId, TeamId};

type R<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub avatar_key: Option<String>,
    pub status_text: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, FromRow)]
pub struct OrgRow {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub avatar_key: Option<String>,
    pub role: String,
    pub joined_at: Timestamp,
}

#[derive(Debug, Clone, FromRow)]
pub struct TeamRow {
    pub id: TeamId,
    pub name: String,
    pub description: Option<String>,
    pub member_count: i64,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, FromRow)]
pub struct TeamMemberRow {
    pub user_id: UserId,
    pub name: String,
    pub email: String,
    pub avatar_key: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct InvitationRow {
    pub id: InvitationId,
    pub org_id: OrgId,
    pub email: String,
    pub role: String,
    pub invited_by: UserId,
    pub inviter_name: String,
    pub org_name: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: SessionId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A session joined with the member's current role (absent when the membership is gone).
#[derive(Debug, Clone, FromRow)]
pub struct SessionAuthRow {
    pub id: SessionId,
    pub org_id: OrgId,
    pub user_id: UserId,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub role: Option<String>,
}

#[derive(Debug, Clone, FromRow)]
pub struct RefreshRow {
    pub session_id: SessionId,
    pub used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, FromRow)]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: String,
    pub prefix: String,
    pub role: String,
    pub created_by: UserId,
    pub creator_name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, FromRow)]
pub struct ResetRow {
    pub user_id: UserId,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

// ---- organisations and users -------------------------------------------------------------

pub async fn insert_org(tx: &mut Tx, id: OrgId, name: &str, now: Timestamp) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)"
    )
    .bind(id)
    .bind(name)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get_org(db: &Db, org: OrgId) -> R<Option<OrgRow>> {
    with_db!(db, |p| sqlx::query_as::<_, OrgRow>(
        "SELECT id, name, created_at FROM organizations WHERE id = $1"
    )
    .bind(org)
    .fetch_optional(p)
    .await)
}

pub async fn rename_org(db: &Db, org: OrgId, name: &str) -> R<Option<OrgRow>> {
    with_write!(db, |p| sqlx::query_as::<_, OrgRow>(
        "UPDATE organizations SET name = $2 WHERE id = $1 RETURNING id, name, created_at"
    )
    .bind(org)
    .bind(name)
    .fetch_optional(p)
    .await)
}

const USER_COLS: &str = "id, email, name, password_hash, avatar_key, status_text, created_at";

pub async fn insert_user(
    tx: &mut Tx,
    id: UserId,
    email: &str,
    name: &str,
    password_hash: &str,
    now: Timestamp,
) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)"
    )
    .bind(id)
    .bind(email)
    .bind(name)
    .bind(password_hash)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get_user(db: &Db, id: UserId) -> R<Option<UserRow>> {
    with_db!(db, |p| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(
        format!("SELECT {USER_COLS} FROM users WHERE id = $1")
    ))
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn find_user_by_email(db: &Db, email: &str) -> R<Option<UserRow>> {
    with_db!(db, |p| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(
        format!("SELECT {USER_COLS} FROM users WHERE email = $1")
    ))
    .bind(email)
    .fetch_optional(p)
    .await)
}

pub async fn find_user_by_email_tx(tx: &mut Tx, email: &str) -> R<Option<UserRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(
        format!("SELECT {USER_COLS} FROM users WHERE email = $1")
    ))
    .bind(email)
    .fetch_optional(c)
    .await)
}

pub async fn update_profile(
    db: &Db,
    id: UserId,
    name: Option<&str>,
    status_text: Option<Option<&str>>,
    now: Timestamp,
) -> R<Option<UserRow>> {
    // `status_text`: None = leave as is, Some(None) = clear, Some(Some(s)) = set.
    let (touch_status, status) = match status_text {
        None => (false, None),
        Some(s) => (true, s),
    };
    with_write!(db, |p| sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(
        format!(
            "UPDATE users SET name = COALESCE($2, name), \
         status_text = CASE WHEN $3 THEN $4 ELSE status_text END, updated_at = $5 \
         WHERE id = $1 RETURNING {USER_COLS}"
        )
    ))
    .bind(id)
    .bind(name)
    .bind(touch_status)
    .bind(status)
    .bind(now)
    .fetch_optional(p)
    .await)
}

/// Sets the avatar key and returns the previous one (to delete its blob).
pub async fn set_avatar(
    tx: &mut Tx,
    id: UserId,
    key: Option<&str>,
    now: Timestamp,
) -> R<Option<String>> {
    let old: Option<(Option<String>,)> = with_tx!(tx, |c| sqlx::query_as(
        "SELECT avatar_key FROM users WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)?;
    with_tx!(tx, |c| sqlx::query(
        "UPDATE users SET avatar_key = $2, updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(key)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(old.and_then(|(k,)| k))
}

pub async fn set_password(tx: &mut Tx, id: UserId, hash: &str, now: Timestamp) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(hash)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

// ---- memberships ---------------------------------------------------------------------------

pub async fn insert_membership(
    tx: &mut Tx,
    org: OrgId,
    user: UserId,
    role: Role,
    now: Timestamp,
) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)"
    )
    .bind(org)
    .bind(user)
    .bind(role.as_str())
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The organisation a login lands in: the one asked for, else the oldest membership.
pub async fn login_membership(
    db: &Db,
    user: UserId,
    org: Option<OrgId>,
) -> R<Option<(OrgId, String)>> {
    with_db!(db, |p| sqlx::query_as::<_, (OrgId, String)>(
        "SELECT org_id, role FROM memberships WHERE user_id = $1 AND ($2 IS NULL OR org_id = $2) \
         ORDER BY created_at, org_id LIMIT 1"
    )
    .bind(user)
    .bind(org)
    .fetch_optional(p)
    .await)
}

const MEMBER_SELECT: &str = "SELECT m.user_id, u.email, u.name, u.avatar_key, m.role, \
    m.created_at AS joined_at FROM memberships m JOIN users u ON u.id = m.user_id";

pub async fn list_members(db: &Db, org: OrgId) -> R<Vec<MemberRow>> {
    with_db!(db, |p| sqlx::query_as::<_, MemberRow>(sqlx::AssertSqlSafe(
        format!("{MEMBER_SELECT} WHERE m.org_id = $1 ORDER BY m.created_at, m.user_id")
    ))
    .bind(org)
    .fetch_all(p)
    .await)
}

pub async fn get_member(tx: &mut Tx, org: OrgId, user: UserId) -> R<Option<MemberRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, MemberRow>(sqlx::AssertSqlSafe(
        format!("{MEMBER_SELECT} WHERE m.org_id = $1 AND m.user_id = $2")
    ))
    .bind(org)
    .bind(user)
    .fetch_optional(c)
    .await)
}

pub async fn count_owners(tx: &mut Tx, org: OrgId) -> R<i64> {
    let (n,): (i64,) = with_tx!(tx, |c| sqlx::query_as(
        "SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND role = 'owner'"
    )
    .bind(org)
    .fetch_one(c)
    .await)?;
    Ok(n)
}

pub async fn set_role(tx: &mut Tx, org: OrgId, user: UserId, role: Role) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE memberships SET role = $3 WHERE org_id = $1 AND user_id = $2"
    )
    .bind(org)
    .bind(user)
    .bind(role.as_str())
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn delete_membership(tx: &mut Tx, org: OrgId, user: UserId) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "DELETE FROM team_members WHERE org_id = $1 AND user_id = $2"
    )
    .bind(org)
    .bind(user)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    with_tx!(tx, |c| sqlx::query(
        "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2"
    )
    .bind(org)
    .bind(user)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

// ---- teams ---------------------------------------------------------------------------------

const TEAM_SELECT: &str = "SELECT t.id, t.name, t.description, t.created_at, \
    (SELECT COUNT(*) FROM team_members tm WHERE tm.team_id = t.id) AS member_count FROM teams t";

pub async fn list_teams(db: &Db, org: OrgId) -> R<Vec<TeamRow>> {
    with_db!(db, |p| sqlx::query_as::<_, TeamRow>(sqlx::AssertSqlSafe(
        format!("{TEAM_SELECT} WHERE t.org_id = $1 ORDER BY t.name, t.id")
    ))
    .bind(org)
    .fetch_all(p)
    .await)
}

pub async fn get_team(db: &Db, org: OrgId, team: TeamId) -> R<Option<TeamRow>> {
    with_db!(db, |p| sqlx::query_as::<_, TeamRow>(sqlx::AssertSqlSafe(
        format!("{TEAM_SELECT} WHERE t.org_id = $1 AND t.id = $2")
    ))
    .bind(org)
    .bind(team)
    .fetch_optional(p)
    .await)
}

pub async fn insert_team(
    db: &Db,
    org: OrgId,
    id: TeamId,
    name: &str,
    description: Option<&str>,
    now: Timestamp,
) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO teams (id, org_id, name, description, created_at) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(id)
    .bind(org)
    .bind(name)
    .bind(description)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn update_team(
    db: &Db,
    org: OrgId,
    team: TeamId,
    name: Option<&str>,
    description: Option<Option<&str>>,
) -> R<bool> {
    let (touch, desc) = match description {
        None => (false, None),
        Some(d) => (true, d),
    };
    let res = with_write!(db, |p| sqlx::query(
        "UPDATE teams SET name = COALESCE($3, name), \
         description = CASE WHEN $4 THEN $5 ELSE description END \
         WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(team)
    .bind(name)
    .bind(touch)
    .bind(desc)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(res > 0)
}

pub async fn delete_team(db: &Db, org: OrgId, team: TeamId) -> R<bool> {
    let n = with_write!(db, |p| sqlx::query(
        "DELETE FROM teams WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(team)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

pub async fn team_members(db: &Db, org: OrgId, team: TeamId) -> R<Vec<TeamMemberRow>> {
    with_db!(db, |p| sqlx::query_as::<_, TeamMemberRow>(
        "SELECT u.id AS user_id, u.name, u.email, u.avatar_key FROM team_members tm \
         JOIN users u ON u.id = tm.user_id WHERE tm.org_id = $1 AND tm.team_id = $2 \
         ORDER BY u.name, u.id"
    )
    .bind(org)
    .bind(team)
    .fetch_all(p)
    .await)
}

/// Adds a member to a team; idempotent. The composite foreign key guarantees the user is a
/// member of the same organisation.
pub async fn add_team_member(
    db: &Db,
    org: OrgId,
    team: TeamId,
    user: UserId,
    now: Timestamp,
) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO team_members (team_id, org_id, user_id, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (team_id, user_id) DO NOTHING"
    )
    .bind(team)
    .bind(org)
    .bind(user)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn remove_team_member(db: &Db, org: OrgId, team: TeamId, user: UserId) -> R<bool> {
    let n = with_write!(db, |p| sqlx::query(
        "DELETE FROM team_members WHERE org_id = $1 AND team_id = $2 AND user_id = $3"
    )
    .bind(org)
    .bind(team)
    .bind(user)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

pub async fn is_member(db: &Db, org: OrgId, user: UserId) -> R<bool> {
    let row: Option<(UserId,)> = with_db!(db, |p| sqlx::query_as(
        "SELECT user_id FROM memberships WHERE org_id = $1 AND user_id = $2"
    )
    .bind(org)
    .bind(user)
    .fetch_optional(p)
    .await)?;
    Ok(row.is_some())
}

// ---- invitations ---------------------------------------------------------------------------

const INVITATION_SELECT: &str = "SELECT i.id, i.org_id, i.email, i.role, i.invited_by, \
    u.name AS inviter_name, o.name AS org_name, i.created_at, i.expires_at, i.accepted_at, \
    i.revoked_at FROM invitations i JOIN users u ON u.id = i.invited_by \
    JOIN organizations o ON o.id = i.org_id";

pub struct NewInvitation<'a> {
    pub id: InvitationId,
    pub org: OrgId,
    pub email: &'a str,
    pub role: Role,
    pub token_hash: &'a str,
    pub invited_by: UserId,
    pub now: Timestamp,
    pub expires_at: Timestamp,
}

/// Inserts an invitation, revoking any pending one for the same address first.
pub async fn insert_invitation(tx: &mut Tx, inv: NewInvitation<'_>) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE invitations SET revoked_at = $3 WHERE org_id = $1 AND email = $2 \
         AND accepted_at IS NULL AND revoked_at IS NULL"
    )
    .bind(inv.org)
    .bind(inv.email)
    .bind(inv.now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(inv.id)
    .bind(inv.org)
    .bind(inv.email)
    .bind(inv.role.as_str())
    .bind(inv.token_hash)
    .bind(inv.invited_by)
    .bind(inv.now)
    .bind(inv.expires_at)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn list_invitations(db: &Db, org: OrgId) -> R<Vec<InvitationRow>> {
    with_db!(db, |p| sqlx::query_as::<_, InvitationRow>(
        sqlx::AssertSqlSafe(format!(
            "{INVITATION_SELECT} WHERE i.org_id = $1 ORDER BY i.id DESC LIMIT 500"
        ))
    )
    .bind(org)
    .fetch_all(p)
    .await)
}

pub async fn get_invitation(tx: &mut Tx, org: OrgId, id: InvitationId) -> R<Option<InvitationRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, InvitationRow>(
        sqlx::AssertSqlSafe(format!(
            "{INVITATION_SELECT} WHERE i.org_id = $1 AND i.id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(c)
    .await)
}

pub async fn find_invitation_by_token(tx: &mut Tx, token_hash: &str) -> R<Option<InvitationRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, InvitationRow>(
        sqlx::AssertSqlSafe(format!("{INVITATION_SELECT} WHERE i.token_hash = $1"))
    )
    .bind(token_hash)
    .fetch_optional(c)
    .await)
}

pub async fn revoke_invitation(tx: &mut Tx, org: OrgId, id: InvitationId, now: Timestamp) -> R<()> {
    with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE invitations SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL"
    )
    .bind(org)
    .bind(id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Marks the invitation accepted; `false` if someone else accepted or revoked it meanwhile.
pub async fn accept_invitation(tx: &mut Tx, id: InvitationId, now: Timestamp) -> R<bool> {
    let n = with_tx!(tx, |c| sqlx::query(
        "UPDATE invitations SET accepted_at = $2 WHERE id = $1 AND accepted_at IS NULL \
         AND revoked_at IS NULL"
    )
    .bind(id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

// ---- sessions and refresh tokens -----------------------------------------------------------

pub struct NewSession<'a> {
    pub id: SessionId,
    pub org: OrgId,
    pub user: UserId,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub now: Timestamp,
    pub expires_at: Timestamp,
    pub refresh_hash: &'a str,
}

pub async fn insert_session(tx: &mut Tx, s: NewSession<'_>) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO sessions (id, org_id, user_id, user_agent, ip, created_at, last_seen_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)"
    )
    .bind(s.id)
    .bind(s.org)
    .bind(s.user)
    .bind(s.user_agent)
    .bind(s.ip)
    .bind(s.now)
    .bind(s.expires_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    insert_refresh(tx, s.id, s.refresh_hash, s.now).await
}

pub async fn insert_refresh(tx: &mut Tx, session: SessionId, hash: &str, now: Timestamp) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)"
    )
    .bind(hash)
    .bind(session)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn find_refresh(tx: &mut Tx, hash: &str) -> R<Option<RefreshRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, RefreshRow>(
        "SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = $1"
    )
    .bind(hash)
    .fetch_optional(c)
    .await)
}

pub async fn mark_refresh_used(tx: &mut Tx, hash: &str, now: Timestamp) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL"
    )
    .bind(hash)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

const SESSION_AUTH_SELECT: &str = "SELECT s.id, s.org_id, s.user_id, s.expires_at, s.revoked_at, \
    m.role FROM sessions s LEFT JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id";

pub async fn session_auth(db: &Db, id: SessionId) -> R<Option<SessionAuthRow>> {
    with_db!(db, |p| sqlx::query_as::<_, SessionAuthRow>(
        sqlx::AssertSqlSafe(format!("{SESSION_AUTH_SELECT} WHERE s.id = $1"))
    )
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn session_auth_tx(tx: &mut Tx, id: SessionId) -> R<Option<SessionAuthRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, SessionAuthRow>(
        sqlx::AssertSqlSafe(format!("{SESSION_AUTH_SELECT} WHERE s.id = $1"))
    )
    .bind(id)
    .fetch_optional(c)
    .await)
}

pub async fn touch_session(
    tx: &mut Tx,
    id: SessionId,
    now: Timestamp,
    expires_at: Timestamp,
    user_agent: Option<&str>,
    ip: Option<&str>,
) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE sessions SET last_seen_at = $2, expires_at = $3, \
         user_agent = COALESCE($4, user_agent), ip = COALESCE($5, ip) WHERE id = $1"
    )
    .bind(id)
    .bind(now)
    .bind(expires_at)
    .bind(user_agent)
    .bind(ip)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn touch_session_seen(db: &Db, id: SessionId, now: Timestamp) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "UPDATE sessions SET last_seen_at = $2 WHERE id = $1"
    )
    .bind(id)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn list_sessions(
    db: &Db,
    org: OrgId,
    user: UserId,
    now: Timestamp,
) -> R<Vec<SessionRow>> {
    with_db!(db, |p| sqlx::query_as::<_, SessionRow>(
        "SELECT id, org_id, user_id, user_agent, ip, created_at, last_seen_at, expires_at, \
         revoked_at FROM sessions WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL \
         AND expires_at > $3 ORDER BY last_seen_at DESC, id"
    )
    .bind(org)
    .bind(user)
    .bind(now)
    .fetch_all(p)
    .await)
}

/// Revokes one session of a user in an org; returns whether it existed and was active.
pub async fn revoke_session(
    tx: &mut Tx,
    org: OrgId,
    user: UserId,
    id: SessionId,
    now: Timestamp,
    reason: &str,
) -> R<bool> {
    let n = with_tx!(tx, |c| sqlx::query(
        "UPDATE sessions SET revoked_at = $4, revoked_reason = $5 WHERE org_id = $1 \
         AND user_id = $2 AND id = $3 AND revoked_at IS NULL"
    )
    .bind(org)
    .bind(user)
    .bind(id)
    .bind(now)
    .bind(reason)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Revokes a session by id alone (refresh-token reuse); returns whether it was active.
pub async fn revoke_session_by_id(
    tx: &mut Tx,
    id: SessionId,
    now: Timestamp,
    reason: &str,
) -> R<bool> {
    let n = with_tx!(tx, |c| {
        sqlx::query(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL"
    )
    .bind(id)
    .bind(now)
    .bind(reason)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(n > 0)
}

/// Revokes every active session of a user (in one org, or in all when `org` is None), except
/// `keep`; returns the revoked (session, org) pairs so their cache entries can be dropped.
pub async fn revoke_user_sessions(
    tx: &mut Tx,
    user: UserId,
    org: Option<OrgId>,
    keep: Option<SessionId>,
    now: Timestamp,
    reason: &str,
) -> R<Vec<(SessionId, OrgId)>> {
    with_tx!(tx, |c| sqlx::query_as::<_, (SessionId, OrgId)>(
        "UPDATE sessions SET revoked_at = $4, revoked_reason = $5 WHERE user_id = $1 \
         AND ($2 IS NULL OR org_id = $2) AND ($3 IS NULL OR id <> $3) AND revoked_at IS NULL \
         RETURNING id, org_id"
    )
    .bind(user)
    .bind(org)
    .bind(keep)
    .bind(now)
    .bind(reason)
    .fetch_all(c)
    .await)
}

// ---- API keys ------------------------------------------------------------------------------

const API_KEY_SELECT: &str = "SELECT k.id, k.org_id, k.name, k.prefix, k.role, k.created_by, \
    u.name AS creator_name, k.created_at, k.last_used_at, k.expires_at, k.revoked_at \
    FROM api_keys k JOIN users u ON u.id = k.created_by";

pub struct NewApiKey<'a> {
    pub id: ApiKeyId,
    pub org: OrgId,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub role: Role,
    pub created_by: UserId,
    pub now: Timestamp,
    pub expires_at: Option<Timestamp>,
}

pub async fn insert_api_key(db: &Db, k: NewApiKey<'_>) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, prefix, key_hash, role, created_by, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(k.id)
    .bind(k.org)
    .bind(k.name)
    .bind(k.prefix)
    .bind(k.key_hash)
    .bind(k.role.as_str())
    .bind(k.created_by)
    .bind(k.now)
    .bind(k.expires_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn list_api_keys(db: &Db, org: OrgId) -> R<Vec<ApiKeyRow>> {
    with_db!(db, |p| sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(
        format!("{API_KEY_SELECT} WHERE k.org_id = $1 ORDER BY k.id DESC")
    ))
    .bind(org)
    .fetch_all(p)
    .await)
}

pub async fn get_api_key(db: &Db, org: OrgId, id: ApiKeyId) -> R<Option<ApiKeyRow>> {
    with_db!(db, |p| sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(
        format!("{API_KEY_SELECT} WHERE k.org_id = $1 AND k.id = $2")
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn find_api_key_by_hash(db: &Db, hash: &str) -> R<Option<ApiKeyRow>> {
    with_db!(db, |p| sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(
        format!("{API_KEY_SELECT} WHERE k.key_hash = $1")
    ))
    .bind(hash)
    .fetch_optional(p)
    .await)
}

/// Revokes a key; returns its hash (to drop it from the cache) when it was active.
pub async fn revoke_api_key(
    db: &Db,
    org: OrgId,
    id: ApiKeyId,
    now: Timestamp,
) -> R<Option<String>> {
    let row: Option<(String,)> = with_write!(db, |p| {
        sqlx::query_as(
        "UPDATE api_keys SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL \
         RETURNING key_hash"
    )
    .bind(org)
    .bind(id)
    .bind(now)
    .fetch_optional(p)
    .await
    })?;
    Ok(row.map(|(h,)| h))
}

pub async fn touch_api_key(db: &Db, id: ApiKeyId, now: Timestamp) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "UPDATE api_keys SET last_used_at = $2 WHERE id = $1"
    )
    .bind(id)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

// ---- password resets -----------------------------------------------------------------------

pub async fn insert_reset(
    tx: &mut Tx,
    hash: &str,
    user: UserId,
    now: Timestamp,
    expires_at: Timestamp,
) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)"
    )
    .bind(hash)
    .bind(user)
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn find_reset(tx: &mut Tx, hash: &str) -> R<Option<ResetRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, ResetRow>(
        "SELECT user_id, expires_at, used_at FROM password_resets WHERE token_hash = $1"
    )
    .bind(hash)
    .fetch_optional(c)
    .await)
}

/// Marks this reset used and voids the user's other outstanding reset links.
pub async fn use_resets(tx: &mut Tx, user: UserId, now: Timestamp) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL"
    )
    .bind(user)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
