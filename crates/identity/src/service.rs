//! Identity use cases. Each one validates, does its writes in one transaction (enqueuing any side
//! effect, like a reset e-mail, in that same transaction), then drops the cache entries it made
//! stale and publishes its events.
//!
//! Authentication is on every request's path, so it is served from the cache: the principal of a
//! session (`identity:{org}:sess:{sid}`) or of an API key (`identity:apikey:{hash}`) is cached for
//! a minute, negative answers included; revocations and role changes delete those entries, so
//! they take effect on the next request (at once with Redis across nodes).

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use serde_json::json;
use wamage_kernel::{Clock, Event, OrgId, Problem, Timestamp, UserId, validate::Validator};
use wamage_platform::{
    Db, Tx,
    blob::{SharedBlobStore, sniff_image},
    bus::SharedBus,
    cache::{self, SharedCache},
    db::{is_unique_violation, violated_constraint},
    jobs::{JobQueue, NewJob},
};

use crate::{
    model::{
        ApiKeyId, Email, InvitationId, Principal, Role, SessionId, TeamId, Via, check_password,
    },
    secrets::{self, HashCost, TokenSigner},
    store::{self, NewApiKey, NewInvitation, NewSession},
};

pub const SOURCE: &str = "/wamage/identity";
/// Job kind for outgoing e-mail (handled by the mail worker).
pub const MAIL_JOB: &str = "mail.send";

/// Identity settings.
#[derive(Clone, Debug)]
pub struct IdentityConfig {
    pub hash_cost: HashCost,
    pub access_ttl: Duration,
    /// A session ends when its refresh token has not been used for this long.
    pub session_ttl: Duration,
    /// A rotated refresh token presented again within this window (two tabs refreshing at
    /// once) gets a fresh pair instead of revoking the session.
    pub refresh_reuse_leeway: Duration,
    pub reset_ttl: Duration,
    /// Base URL of the web app, for links in e-mails and invitations.
    pub public_url: String,
    pub login_limits: LoginLimits,
}

#[derive(Clone, Copy, Debug)]
pub struct LoginLimits {
    /// Failed logins allowed per account in `window` before logins are refused.
    pub per_account: i64,
    /// Login/registration/reset attempts allowed per client IP in `window`.
    pub per_ip: i64,
    pub window: Duration,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            hash_cost: HashCost::default(),
            access_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_reuse_leeway: Duration::from_secs(10),
            reset_ttl: Duration::from_secs(3600),
            public_url: "http://127.0.0.1:8080".to_owned(),
            login_limits: LoginLimits {
                per_account: 10,
                per_ip: 100,
                window: Duration::from_secs(15 * 60),
            },
        }
    }
}

/// Where a request comes from (recorded on sessions, used for rate limits).
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Tokens handed to a client that signed in.
#[derive(Clone, Debug)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user: store::UserRow,
    pub org: store::OrgRow,
    pub role: Role,
    pub session_id: SessionId,
}

/// The identity service: shared by the HTTP handlers and the auth extractor.
#[derive(Debug)]
pub struct Identity {
    pub(crate) db: Db,
    pub(crate) cache: SharedCache,
    pub(crate) bus: SharedBus,
    pub(crate) blobs: SharedBlobStore,
    pub(crate) jobs: JobQueue,
    pub(crate) clock: Clock,
    pub(crate) signer: TokenSigner,
    pub(crate) cfg: IdentityConfig,
    /// A real argon2 hash of a random password, verified against when an e-mail is unknown so
    /// that the response time does not reveal which addresses have accounts.
    dummy_hash: String,
    /// Member cards per organisation, in this process: every chat post and inbox read renders
    /// names from them. Dropped on membership, role, name and avatar changes made here; other
    /// nodes see a change within [`CARDS_TTL`].
    cards: moka::future::Cache<OrgId, Arc<Vec<crate::MemberCard>>>,
}

/// How long another node may show a member's old name or avatar.
const CARDS_TTL: Duration = Duration::from_secs(10);

/// Everything the identity service needs from the platform.
pub struct IdentityDeps {
    pub db: Db,
    pub cache: SharedCache,
    pub bus: SharedBus,
    pub blobs: SharedBlobStore,
    pub jobs: JobQueue,
    pub clock: Clock,
    pub secret: Vec<u8>,
}

const PRINCIPAL_TTL: Duration = Duration::from_secs(60);

fn sess_key(org: OrgId, sid: SessionId) -> String {
    format!("identity:{org}:sess:{sid}")
}

fn apikey_key(hash: &str) -> String {
    format!("identity:apikey:{hash}")
}

fn user_key(user: UserId) -> String {
    format!("identity:user:{user}")
}

fn db_err(e: sqlx::Error) -> Problem {
    Problem::internal(format_args!("database: {e}"))
}

impl Identity {
    pub async fn new(deps: IdentityDeps, cfg: IdentityConfig) -> anyhow::Result<Arc<Self>> {
        // Unknown accounts are checked against this, so they answer as slowly as known ones.
        let dummy_hash = secrets::unmatchable_hash(cfg.hash_cost)?;
        Ok(Arc::new(Self {
            signer: TokenSigner::new(&deps.secret, cfg.access_ttl),
            db: deps.db,
            cache: deps.cache,
            bus: deps.bus,
            blobs: deps.blobs,
            jobs: deps.jobs,
            clock: deps.clock,
            cfg,
            dummy_hash,
            cards: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(CARDS_TTL)
                .build(),
        }))
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.cfg
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn publish(&self, org: OrgId, type_: &str, data: serde_json::Value) {
        let event = Event::new(SOURCE, type_, org, self.now(), data);
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(error = %e, event_type = type_, "failed to publish event");
        }
    }

    async fn forget(&self, key: &str) {
        if let Err(e) = self.cache.delete(key).await {
            tracing::warn!(error = %e, key, "failed to invalidate cache entry");
        }
    }

    async fn forget_sessions(&self, revoked: &[(SessionId, OrgId)]) {
        for (sid, org) in revoked {
            self.forget(&sess_key(*org, *sid)).await;
        }
    }

    /// Counts an event in a fixed window and refuses past `limit`.
    async fn limit(&self, key: &str, limit: i64, window: Duration) -> Result<(), Problem> {
        match self.cache.incr(key, window).await {
            Ok((n, secs_left)) if n > limit => Err(Problem::too_many_requests(secs_left)),
            Ok(_) => Ok(()),
            Err(e) => {
                // Fail open: an unreachable cache must not lock every user out.
                tracing::warn!(error = %e, "rate limit check failed");
                Ok(())
            }
        }
    }

    async fn ip_limit(&self, action: &str, client: &ClientInfo) -> Result<(), Problem> {
        let Some(ip) = &client.ip else { return Ok(()) };
        let l = self.cfg.login_limits;
        self.limit(&format!("ratelimit:{action}:ip:{ip}"), l.per_ip, l.window)
            .await
    }

    // ---- registration, login, tokens ------------------------------------------------------

    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: &str,
        organization: &str,
        client: &ClientInfo,
    ) -> Result<Issued, Problem> {
        let mut v = Validator::new();
        let parsed_email = Email::parse(email);
        if let Err(m) = &parsed_email {
            v.error("email", *m);
        }
        if let Err(m) = check_password(password) {
            v.error("password", m);
        }
        v.length("name", name, 1, 100);
        v.length("organization", organization, 1, 100);
        v.finish()?;
        let Ok(email) = parsed_email else {
            return Err(Problem::invalid_field("email", "is invalid"));
        };
        self.ip_limit("register", client).await?;

        let hash = secrets::hash_password(password.to_owned(), self.cfg.hash_cost)
            .await
            .map_err(Problem::internal)?;
        let now = self.now();
        let (user_id, org_id) = (UserId::new(), OrgId::new());
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::insert_org(&mut tx, org_id, organization.trim(), now)
            .await
            .map_err(db_err)?;
        if let Err(e) =
            store::insert_user(&mut tx, user_id, email.as_str(), name.trim(), &hash, now).await
        {
            return Err(if is_unique_violation(&e) {
                Problem::conflict("email_taken", "An account with this e-mail already exists")
                    .with_field("email", "is already registered")
            } else {
                db_err(e)
            });
        }
        store::insert_membership(&mut tx, org_id, user_id, Role::Owner, now)
            .await
            .map_err(db_err)?;
        let (session_id, refresh) = self.open_session(&mut tx, org_id, user_id, client).await?;
        tx.commit().await.map_err(db_err)?;
        metrics::counter!("wamage_identity_registrations_total").increment(1);
        self.publish(
            org_id,
            "wamage.user.registered",
            json!({ "user_id": user_id, "organization_id": org_id, "email": email.as_str() }),
        )
        .await;
        self.issued(user_id, org_id, Role::Owner, session_id, refresh)
            .await
    }

    async fn open_session(
        &self,
        tx: &mut Tx,
        org: OrgId,
        user: UserId,
        client: &ClientInfo,
    ) -> Result<(SessionId, String), Problem> {
        let now = self.now();
        let id = SessionId::new();
        let refresh = secrets::random_token("wrt_");
        store::insert_session(
            tx,
            NewSession {
                id,
                org,
                user,
                user_agent: client.user_agent.as_deref(),
                ip: client.ip.as_deref(),
                now,
                expires_at: now.plus(self.cfg.session_ttl),
                refresh_hash: &secrets::token_hash(&refresh),
            },
        )
        .await
        .map_err(db_err)?;
        Ok((id, refresh))
    }

    async fn issued(
        &self,
        user_id: UserId,
        org_id: OrgId,
        role: Role,
        session_id: SessionId,
        refresh_token: String,
    ) -> Result<Issued, Problem> {
        let user = store::get_user(&self.db, user_id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::internal("user vanished after sign-in"))?;
        let org = store::get_org(&self.db, org_id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::internal("organisation vanished after sign-in"))?;
        let access_token = self
            .signer
            .issue(user_id, org_id, session_id, self.now())
            .map_err(Problem::internal)?;
        Ok(Issued {
            access_token,
            refresh_token,
            expires_in: self.cfg.access_ttl.as_secs(),
            user,
            org,
            role,
            session_id,
        })
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        org: Option<OrgId>,
        client: &ClientInfo,
    ) -> Result<Issued, Problem> {
        let normalized = wamage_kernel::validate::normalize_email(email);
        let mut v = Validator::new();
        v.length("email", email, 1, 254);
        v.length("password", password, 1, 1024);
        v.finish()?;
        self.ip_limit("login", client).await?;
        let l = self.cfg.login_limits;
        // Attempts since the last successful sign-in of this account: past the limit, even the
        // right password is refused until the window ends (brute-force protection).
        let account_key = format!("ratelimit:login:account:{normalized}");
        self.limit(&account_key, l.per_account, l.window)
            .await
            .map_err(|p| {
                p.with_detail("too many failed sign-ins for this account; try again later")
            })?;

        let user = store::find_user_by_email(&self.db, &normalized)
            .await
            .map_err(db_err)?;
        let (hash, user) = match user {
            Some(u) => (u.password_hash.clone(), Some(u)),
            None => (self.dummy_hash.clone(), None),
        };
        let ok = secrets::verify_password(password.to_owned(), hash)
            .await
            .map_err(Problem::internal)?;
        let Some(user) = user.filter(|_| ok) else {
            metrics::counter!("wamage_identity_login_failures_total").increment(1);
            return Err(Problem::new(
                http::StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Wrong e-mail or password",
            ));
        };
        let Some((org_id, role)) = store::login_membership(&self.db, user.id, org)
            .await
            .map_err(db_err)?
        else {
            return Err(
                Problem::forbidden("This account is not a member of that organisation")
                    .with_field("organization_id", "is not one of your organisations"),
            );
        };
        let role = Role::from_db(&role);
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let (session_id, refresh) = self.open_session(&mut tx, org_id, user.id, client).await?;
        tx.commit().await.map_err(db_err)?;
        self.forget(&account_key).await;
        self.issued(user.id, org_id, role, session_id, refresh)
            .await
    }

    /// Rotates a refresh token. A token already rotated and presented again after the leeway
    /// means it was stolen (or leaked): the whole session is revoked.
    pub async fn refresh(&self, token: &str, client: &ClientInfo) -> Result<Issued, Problem> {
        let invalid = || {
            Problem::new(
                http::StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "The refresh token is invalid or expired; sign in again",
            )
        };
        if token.is_empty() || token.len() > 200 {
            return Err(invalid());
        }
        let now = self.now();
        let hash = secrets::token_hash(token);
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let Some(row) = store::find_refresh(&mut tx, &hash).await.map_err(db_err)? else {
            return Err(invalid());
        };
        let Some(session) = store::session_auth_tx(&mut tx, row.session_id)
            .await
            .map_err(db_err)?
        else {
            return Err(invalid());
        };
        if session.revoked_at.is_some() || session.expires_at <= now {
            return Err(invalid());
        }
        let Some(role) = session.role.as_deref().map(Role::from_db) else {
            return Err(invalid());
        };
        if let Some(used_at) = row.used_at
            && now.millis() - used_at.millis() > self.cfg.refresh_reuse_leeway.as_millis() as i64
        {
            let revoked =
                store::revoke_session_by_id(&mut tx, session.id, now, "refresh_token_reused")
                    .await
                    .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            if revoked {
                self.forget(&sess_key(session.org_id, session.id)).await;
                tracing::warn!(session_id = %session.id, "refresh token reuse detected, session revoked");
                metrics::counter!("wamage_identity_refresh_reuse_total").increment(1);
            }
            return Err(Problem::new(
                http::StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "This refresh token was already used; the session has been signed out for safety",
            ));
        }
        store::mark_refresh_used(&mut tx, &hash, now)
            .await
            .map_err(db_err)?;
        let next = secrets::random_token("wrt_");
        store::insert_refresh(&mut tx, session.id, &secrets::token_hash(&next), now)
            .await
            .map_err(db_err)?;
        store::touch_session(
            &mut tx,
            session.id,
            now,
            now.plus(self.cfg.session_ttl),
            client.user_agent.as_deref(),
            client.ip.as_deref(),
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.issued(session.user_id, session.org_id, role, session.id, next)
            .await
    }

    pub async fn logout(&self, who: &Principal) -> Result<(), Problem> {
        if let Some(sid) = who.session_id() {
            self.revoke_session(who, sid).await.or_else(|p| {
                if p.status == http::StatusCode::NOT_FOUND {
                    Ok(())
                } else {
                    Err(p)
                }
            })?;
        }
        Ok(())
    }

    /// Resolves a bearer credential (JWT access token or `wam_` API key) to a principal.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, Problem> {
        if bearer.starts_with("wam_") {
            return self.authenticate_api_key(bearer).await;
        }
        let now = self.now();
        let claims = self
            .signer
            .verify(bearer, now)
            .map_err(|reason| Problem::unauthorized(reason).with_detail("sign in again"))?;
        let key = sess_key(claims.org, claims.sid);
        let cached: Option<Option<Principal>> = cache::get_json(self.cache.as_ref(), &key)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cache read failed");
                None
            });
        let principal = match cached {
            Some(p) => p,
            None => {
                let row = store::session_auth(&self.db, claims.sid)
                    .await
                    .map_err(db_err)?;
                let p = row.and_then(|s| {
                    let active = s.revoked_at.is_none() && s.expires_at > now;
                    let role = s.role.as_deref().map(Role::from_db)?;
                    (active && s.user_id == claims.sub && s.org_id == claims.org).then_some(
                        Principal {
                            org_id: s.org_id,
                            user_id: s.user_id,
                            role,
                            via: Via::Session(s.id),
                        },
                    )
                });
                if p.is_some()
                    && let Err(e) = store::touch_session_seen(&self.db, claims.sid, now).await
                {
                    tracing::warn!(error = %e, "failed to record session activity");
                }
                let _ = cache::set_json(self.cache.as_ref(), &key, &p, PRINCIPAL_TTL).await;
                p
            }
        };
        principal.ok_or_else(|| {
            Problem::unauthorized("This session has been signed out").with_detail("sign in again")
        })
    }

    async fn authenticate_api_key(&self, key: &str) -> Result<Principal, Problem> {
        let now = self.now();
        let hash = secrets::token_hash(key);
        let ck = apikey_key(&hash);
        let cached: Option<Option<(Principal, Option<Timestamp>)>> =
            cache::get_json(self.cache.as_ref(), &ck)
                .await
                .unwrap_or(None);
        let entry = match cached {
            Some(e) => e,
            None => {
                let row = store::find_api_key_by_hash(&self.db, &hash)
                    .await
                    .map_err(db_err)?;
                let e = row.filter(|k| k.revoked_at.is_none()).map(|k| {
                    (
                        Principal {
                            org_id: k.org_id,
                            user_id: k.created_by,
                            role: Role::from_db(&k.role),
                            via: Via::ApiKey(k.id),
                        },
                        k.expires_at,
                    )
                });
                if let Some((p, _)) = &e
                    && let Via::ApiKey(id) = p.via
                    && let Err(err) = store::touch_api_key(&self.db, id, now).await
                {
                    tracing::warn!(error = %err, "failed to record API key use");
                }
                let _ = cache::set_json(self.cache.as_ref(), &ck, &e, PRINCIPAL_TTL).await;
                e
            }
        };
        match entry {
            Some((p, expires)) if expires.is_none_or(|t| t > now) => Ok(p),
            Some(_) => Err(Problem::unauthorized("This API key has expired")),
            None => Err(Problem::unauthorized("This API key is invalid or revoked")),
        }
    }

    // ---- profile --------------------------------------------------------------------------

    pub async fn user(&self, id: UserId) -> Result<store::UserRow, Problem> {
        store::get_user(&self.db, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("user"))
    }

    pub async fn organization(&self, org: OrgId) -> Result<store::OrgRow, Problem> {
        store::get_org(&self.db, org)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("organisation"))
    }

    /// The profile, cached (it is read by every screen load).
    pub async fn profile(&self, id: UserId) -> Result<crate::http::UserOut, Problem> {
        let key = user_key(id);
        if let Ok(Some(u)) = cache::get_json(self.cache.as_ref(), &key).await {
            return Ok(u);
        }
        let out = crate::http::UserOut::from(self.user(id).await?);
        let _ = cache::set_json(self.cache.as_ref(), &key, &out, PRINCIPAL_TTL).await;
        Ok(out)
    }

    /// The organisation, cached.
    pub async fn organization_cached(&self, org: OrgId) -> Result<crate::http::OrgOut, Problem> {
        let key = format!("identity:{org}:org");
        if let Ok(Some(o)) = cache::get_json(self.cache.as_ref(), &key).await {
            return Ok(o);
        }
        let out = crate::http::OrgOut::from(self.organization(org).await?);
        let _ = cache::set_json(self.cache.as_ref(), &key, &out, PRINCIPAL_TTL).await;
        Ok(out)
    }

    pub async fn update_profile(
        &self,
        who: &Principal,
        name: Option<&str>,
        status_text: Option<Option<&str>>,
    ) -> Result<store::UserRow, Problem> {
        let mut v = Validator::new();
        if let Some(n) = name {
            v.length("name", n, 1, 100);
        }
        if let Some(Some(s)) = status_text {
            v.length("status_text", s, 0, 140);
        }
        v.finish()?;
        let status = status_text.map(|s| s.map(str::trim).filter(|s| !s.is_empty()));
        let row = store::update_profile(
            &self.db,
            who.user_id,
            name.map(str::trim),
            status,
            self.now(),
        )
        .await
        .map_err(db_err)?
        .ok_or_else(|| Problem::not_found("user"))?;
        self.forget(&user_key(who.user_id)).await;
        self.cards.invalidate(&who.org_id).await;
        Ok(row)
    }

    /// Stores a new avatar image (PNG, JPEG, GIF or WebP, checked by its bytes, not its name).
    pub async fn set_avatar(
        &self,
        who: &Principal,
        bytes: Bytes,
    ) -> Result<store::UserRow, Problem> {
        const MAX: usize = 2 * 1024 * 1024;
        if bytes.len() > MAX {
            return Err(Problem::payload_too_large(MAX).with_field("file", "must be at most 2 MB"));
        }
        let Some((ext, content_type)) = sniff_image(&bytes) else {
            return Err(Problem::invalid_field(
                "file",
                "must be a PNG, JPEG, GIF or WebP image",
            ));
        };
        let key = format!(
            "avatars/{}.{ext}",
            secrets::random_token("").get(..32).unwrap_or("x")
        );
        self.blobs
            .put(&key, bytes, content_type)
            .await
            .map_err(Problem::internal)?;
        self.replace_avatar(who, Some(&key)).await
    }

    pub async fn clear_avatar(&self, who: &Principal) -> Result<store::UserRow, Problem> {
        self.replace_avatar(who, None).await
    }

    async fn replace_avatar(
        &self,
        who: &Principal,
        key: Option<&str>,
    ) -> Result<store::UserRow, Problem> {
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let old = store::set_avatar(&mut tx, who.user_id, key, self.now())
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.cards.invalidate(&who.org_id).await;
        if let Some(old) = old
            && let Err(e) = self.blobs.delete(&old).await
        {
            tracing::warn!(error = %e, key = %old, "failed to delete replaced avatar");
        }
        self.forget(&user_key(who.user_id)).await;
        self.user(who.user_id).await
    }

    /// Serves an avatar by its key (keys are unguessable, so avatars are public like on most chat apps).
    pub async fn avatar(&self, name: &str) -> Result<wamage_platform::blob::Blob, Problem> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !valid {
            return Err(Problem::not_found("avatar"));
        }
        self.blobs
            .get(&format!("avatars/{name}"))
            .await
            .map_err(Problem::internal)?
            .ok_or_else(|| Problem::not_found("avatar"))
    }

    pub async fn change_password(
        &self,
        who: &Principal,
        current: &str,
        new: &str,
    ) -> Result<(), Problem> {
        if let Err(m) = check_password(new) {
            return Err(Problem::invalid_field("new_password", m));
        }
        let user = self.user(who.user_id).await?;
        let ok = secrets::verify_password(current.to_owned(), user.password_hash)
            .await
            .map_err(Problem::internal)?;
        if !ok {
            return Err(Problem::invalid_field(
                "current_password",
                "is not your current password",
            ));
        }
        let hash = secrets::hash_password(new.to_owned(), self.cfg.hash_cost)
            .await
            .map_err(Problem::internal)?;
        // Every other device signs in again; this one stays.
        let tx = self.db.begin().await.map_err(db_err)?;
        self.store_password(tx, who.user_id, &hash, who.session_id(), "password_changed")
            .await
    }

    /// Stores a new password hash and signs the account out on every device but `keep`, in the
    /// caller's transaction (which this commits).
    async fn store_password(
        &self,
        mut tx: Tx,
        user: UserId,
        hash: &str,
        keep: Option<SessionId>,
        reason: &str,
    ) -> Result<(), Problem> {
        let now = self.now();
        store::set_password(&mut tx, user, hash, now)
            .await
            .map_err(db_err)?;
        let revoked = store::revoke_user_sessions(&mut tx, user, None, keep, now, reason)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.forget_sessions(&revoked).await;
        Ok(())
    }

    /// Starts a password reset. Always succeeds from the caller's point of view, so it cannot be
    /// used to learn which addresses have accounts; the e-mail is a job enqueued in the same
    /// transaction as the token.
    pub async fn forgot_password(&self, email: &str, client: &ClientInfo) -> Result<(), Problem> {
        let Ok(email) = Email::parse(email) else {
            return Err(Problem::invalid_field(
                "email",
                "must be an e-mail address like name@example.com",
            ));
        };
        self.ip_limit("forgot", client).await?;
        self.limit(
            &format!("ratelimit:forgot:account:{}", email.as_str()),
            5,
            Duration::from_secs(3600),
        )
        .await?;
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let Some(user) = store::find_user_by_email_tx(&mut tx, email.as_str())
            .await
            .map_err(db_err)?
        else {
            return Ok(());
        };
        let token = secrets::random_token("");
        store::insert_reset(
            &mut tx,
            &secrets::token_hash(&token),
            user.id,
            now,
            now.plus(self.cfg.reset_ttl),
        )
        .await
        .map_err(db_err)?;
        let link = format!(
            "{}/reset-password?token={token}",
            self.cfg.public_url.trim_end_matches('/')
        );
        let minutes = self.cfg.reset_ttl.as_secs() / 60;
        let mail = json!({
            "to": user.email,
            "subject": "Reset your Wamage password",
            "text": format!(
                "Hello {},\n\nSomeone (hopefully you) asked to reset your Wamage password. \
                 Open this link within {minutes} minutes to choose a new one:\n\n{link}\n\n\
                 If you did not ask for this, ignore this e-mail; your password stays the same.\n",
                user.name
            ),
        });
        self.jobs
            .enqueue(&mut tx, NewJob::new(MAIL_JOB, mail))
            .await
            .map_err(Problem::internal)?;
        tx.commit().await.map_err(db_err)?;
        // Wake this process's worker now rather than at its next poll.
        self.jobs.notify();
        Ok(())
    }

    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(), Problem> {
        if let Err(m) = check_password(password) {
            return Err(Problem::invalid_field("password", m));
        }
        // Public and hashing on every call: limited per client like sign-in.
        self.ip_limit("reset", client).await?;
        let invalid = || {
            Problem::bad_request(
                "invalid_reset_token",
                "This reset link is invalid or has expired",
            )
            .with_field("token", "is invalid or expired; ask for a new link")
        };
        let now = self.now();
        let hash = secrets::hash_password(password.to_owned(), self.cfg.hash_cost)
            .await
            .map_err(Problem::internal)?;
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let Some(reset) = store::find_reset(&mut tx, &secrets::token_hash(token))
            .await
            .map_err(db_err)?
        else {
            return Err(invalid());
        };
        if reset.used_at.is_some() || reset.expires_at <= now {
            return Err(invalid());
        }
        store::use_resets(&mut tx, reset.user_id, now)
            .await
            .map_err(db_err)?;
        self.store_password(tx, reset.user_id, &hash, None, "password_reset")
            .await
    }

    // ---- organisation and members ---------------------------------------------------------

    pub async fn rename_organization(
        &self,
        who: &Principal,
        name: &str,
    ) -> Result<store::OrgRow, Problem> {
        let mut v = Validator::new();
        v.length("name", name, 1, 100);
        v.finish()?;
        let org = store::rename_org(&self.db, who.org_id, name.trim())
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("organisation"))?;
        self.forget(&format!("identity:{}:org", who.org_id)).await;
        self.publish(
            who.org_id,
            "wamage.organization.updated",
            json!({ "name": org.name }),
        )
        .await;
        Ok(org)
    }

    /// Every member of `org` as other domains show them: id, name, avatar and role. Part of the
    /// façade (chat names message authors and channel members with it).
    pub async fn member_cards(&self, org: OrgId) -> Result<Arc<Vec<crate::MemberCard>>, Problem> {
        if let Some(c) = self.cards.get(&org).await {
            return Ok(c);
        }
        let rows = store::list_members(&self.db, org).await.map_err(db_err)?;
        let cards = Arc::new(
            rows.into_iter()
                .map(|m| crate::MemberCard {
                    user_id: m.user_id,
                    avatar_url: crate::http::avatar_url(m.avatar_key.as_deref()),
                    name: m.name,
                    role: Role::from_db(&m.role),
                })
                .collect::<Vec<_>>(),
        );
        self.cards.insert(org, cards.clone()).await;
        Ok(cards)
    }

    /// Whether `password` is the password of `user` (argon2id, checked on the blocking pool).
    /// Part of the façade: domains that re-check a password before a sensitive action (a chat
    /// lock) call it; the caller decides what a wrong password means.
    pub async fn verify_password(&self, user: UserId, password: &str) -> Result<bool, Problem> {
        let row = self.user(user).await?;
        secrets::verify_password(password.to_owned(), row.password_hash)
            .await
            .map_err(Problem::internal)
    }

    pub async fn members(&self, who: &Principal) -> Result<Vec<store::MemberRow>, Problem> {
        store::list_members(&self.db, who.org_id)
            .await
            .map_err(db_err)
    }

    /// Changes a member's role. Only owners grant or take away ownership; an organisation always
    /// keeps at least one owner.
    pub async fn change_role(
        &self,
        who: &Principal,
        user: UserId,
        role: Role,
    ) -> Result<store::MemberRow, Problem> {
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let target = store::get_member(&mut tx, who.org_id, user)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("member"))?;
        let current = Role::from_db(&target.role);
        if (role == Role::Owner || current == Role::Owner) && who.role != Role::Owner {
            return Err(Problem::forbidden(
                "Only an owner can grant or remove ownership",
            ));
        }
        if current == Role::Owner
            && role != Role::Owner
            && store::count_owners(&mut tx, who.org_id)
                .await
                .map_err(db_err)?
                <= 1
        {
            return Err(Problem::conflict(
                "last_owner",
                "The organisation must keep at least one owner",
            )
            .with_field("role", "the last owner cannot be demoted"));
        }
        store::set_role(&mut tx, who.org_id, user, role)
            .await
            .map_err(db_err)?;
        let updated = store::get_member(&mut tx, who.org_id, user)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("member"))?;
        tx.commit().await.map_err(db_err)?;
        self.forget_org_principals(who.org_id).await;
        self.publish(
            who.org_id,
            "wamage.member.role_changed",
            json!({ "user_id": user, "from": current, "to": role, "by": who.user_id }),
        )
        .await;
        Ok(updated)
    }

    async fn forget_org_principals(&self, org: OrgId) {
        self.cards.invalidate(&org).await;
        if let Err(e) = self
            .cache
            .delete_prefix(&format!("identity:{org}:sess:"))
            .await
        {
            tracing::warn!(error = %e, "failed to invalidate cached sessions");
        }
    }

    pub async fn remove_member(&self, who: &Principal, user: UserId) -> Result<(), Problem> {
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let target = store::get_member(&mut tx, who.org_id, user)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("member"))?;
        let role = Role::from_db(&target.role);
        if role == Role::Owner && who.role != Role::Owner {
            return Err(Problem::forbidden("Only an owner can remove an owner"));
        }
        if role == Role::Owner
            && store::count_owners(&mut tx, who.org_id)
                .await
                .map_err(db_err)?
                <= 1
        {
            return Err(Problem::conflict(
                "last_owner",
                "The organisation must keep at least one owner",
            ));
        }
        store::delete_membership(&mut tx, who.org_id, user)
            .await
            .map_err(db_err)?;
        let revoked = store::revoke_user_sessions(
            &mut tx,
            user,
            Some(who.org_id),
            None,
            now,
            "member_removed",
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.forget_sessions(&revoked).await;
        self.forget_org_principals(who.org_id).await;
        self.publish(
            who.org_id,
            "wamage.member.removed",
            json!({ "user_id": user, "by": who.user_id }),
        )
        .await;
        Ok(())
    }

    // ---- teams ----------------------------------------------------------------------------

    pub async fn teams(&self, who: &Principal) -> Result<Vec<store::TeamRow>, Problem> {
        store::list_teams(&self.db, who.org_id)
            .await
            .map_err(db_err)
    }

    /// Every team of `org` by id and name (for other domains' cards).
    pub async fn team_names(&self, org: OrgId) -> Result<Vec<(uuid::Uuid, String)>, Problem> {
        Ok(store::list_teams(&self.db, org)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|t| (t.id.as_uuid(), t.name))
            .collect())
    }

    /// The members of one of the caller's organisation's teams (404 for another's).
    pub async fn team_member_ids(
        &self,
        who: &Principal,
        id: uuid::Uuid,
    ) -> Result<Vec<UserId>, Problem> {
        self.team_members_in(who.org_id, id).await
    }

    /// The members of a team of `org` (404 when `org` has no such team), for other domains
    /// acting on their own (automatic assignment).
    pub async fn team_members_in(
        &self,
        org: OrgId,
        id: uuid::Uuid,
    ) -> Result<Vec<UserId>, Problem> {
        store::get_team(&self.db, org, TeamId(id))
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("team"))?;
        Ok(store::team_members(&self.db, org, TeamId(id))
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| m.user_id)
            .collect())
    }

    pub async fn team(
        &self,
        who: &Principal,
        id: TeamId,
    ) -> Result<(store::TeamRow, Vec<store::TeamMemberRow>), Problem> {
        let team = store::get_team(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("team"))?;
        let members = store::team_members(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?;
        Ok((team, members))
    }

    fn team_name_taken(e: &sqlx::Error) -> bool {
        is_unique_violation(e)
            && violated_constraint(e)
                .is_some_and(|c| c.contains("teams_org_name_key") || c.contains("teams.name"))
    }

    pub async fn create_team(
        &self,
        who: &Principal,
        name: &str,
        description: Option<&str>,
    ) -> Result<store::TeamRow, Problem> {
        let mut v = Validator::new();
        v.length("name", name, 1, 80);
        if let Some(d) = description {
            v.length("description", d, 0, 500);
        }
        v.finish()?;
        let id = TeamId::new();
        let desc = description.map(str::trim).filter(|d| !d.is_empty());
        store::insert_team(&self.db, who.org_id, id, name.trim(), desc, self.now())
            .await
            .map_err(|e| {
                if Self::team_name_taken(&e) {
                    Problem::conflict("team_name_taken", "A team with this name already exists")
                        .with_field("name", "is already used by another team")
                } else {
                    db_err(e)
                }
            })?;
        self.publish(
            who.org_id,
            "wamage.team.created",
            json!({ "team_id": id, "name": name.trim() }),
        )
        .await;
        Ok(self.team(who, id).await?.0)
    }

    pub async fn update_team(
        &self,
        who: &Principal,
        id: TeamId,
        name: Option<&str>,
        description: Option<Option<&str>>,
    ) -> Result<store::TeamRow, Problem> {
        let mut v = Validator::new();
        if let Some(n) = name {
            v.length("name", n, 1, 80);
        }
        if let Some(Some(d)) = description {
            v.length("description", d, 0, 500);
        }
        v.finish()?;
        let desc = description.map(|d| d.map(str::trim).filter(|d| !d.is_empty()));
        let found = store::update_team(&self.db, who.org_id, id, name.map(str::trim), desc)
            .await
            .map_err(|e| {
                if Self::team_name_taken(&e) {
                    Problem::conflict("team_name_taken", "A team with this name already exists")
                        .with_field("name", "is already used by another team")
                } else {
                    db_err(e)
                }
            })?;
        if !found {
            return Err(Problem::not_found("team"));
        }
        self.publish(who.org_id, "wamage.team.updated", json!({ "team_id": id }))
            .await;
        Ok(self.team(who, id).await?.0)
    }

    pub async fn delete_team(&self, who: &Principal, id: TeamId) -> Result<(), Problem> {
        if !store::delete_team(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("team"));
        }
        self.publish(who.org_id, "wamage.team.deleted", json!({ "team_id": id }))
            .await;
        Ok(())
    }

    pub async fn add_team_member(
        &self,
        who: &Principal,
        team: TeamId,
        user: UserId,
    ) -> Result<(), Problem> {
        store::get_team(&self.db, who.org_id, team)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("team"))?;
        if !store::is_member(&self.db, who.org_id, user)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("member"));
        }
        store::add_team_member(&self.db, who.org_id, team, user, self.now())
            .await
            .map_err(db_err)?;
        self.publish(
            who.org_id,
            "wamage.team.member_added",
            json!({ "team_id": team, "user_id": user }),
        )
        .await;
        Ok(())
    }

    pub async fn remove_team_member(
        &self,
        who: &Principal,
        team: TeamId,
        user: UserId,
    ) -> Result<(), Problem> {
        store::get_team(&self.db, who.org_id, team)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("team"))?;
        if !store::remove_team_member(&self.db, who.org_id, team, user)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("team member"));
        }
        self.publish(
            who.org_id,
            "wamage.team.member_removed",
            json!({ "team_id": team, "user_id": user }),
        )
        .await;
        Ok(())
    }

    // ---- invitations ----------------------------------------------------------------------

    pub async fn invitations(&self, who: &Principal) -> Result<Vec<store::InvitationRow>, Problem> {
        store::list_invitations(&self.db, who.org_id)
            .await
            .map_err(db_err)
    }

    /// Invites an address; returns the invitation and its one-time link.
    pub async fn invite(
        &self,
        who: &Principal,
        email: &str,
        role: Role,
        expires_in_hours: Option<u32>,
    ) -> Result<(store::InvitationRow, String), Problem> {
        let hours = expires_in_hours.unwrap_or(168);
        let mut v = Validator::new();
        let email = Email::parse(email);
        if let Err(m) = &email {
            v.error("email", *m);
        }
        v.check(
            (1..=720).contains(&hours),
            "expires_in_hours",
            "must be between 1 and 720",
        );
        v.check(
            role <= who.role,
            "role",
            "cannot be higher than your own role",
        );
        v.finish()?;
        let Ok(email) = email else {
            return Err(Problem::invalid_field("email", "is invalid"));
        };
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        if let Some(existing) = store::find_user_by_email_tx(&mut tx, email.as_str())
            .await
            .map_err(db_err)?
            && store::get_member(&mut tx, who.org_id, existing.id)
                .await
                .map_err(db_err)?
                .is_some()
        {
            return Err(
                Problem::conflict("already_member", "This person is already a member")
                    .with_field("email", "is already a member of this organisation"),
            );
        }
        let token = secrets::random_token("");
        let id = InvitationId::new();
        store::insert_invitation(
            &mut tx,
            NewInvitation {
                id,
                org: who.org_id,
                email: email.as_str(),
                role,
                token_hash: &secrets::token_hash(&token),
                invited_by: who.user_id,
                now,
                expires_at: now.plus(Duration::from_secs(u64::from(hours) * 3600)),
            },
        )
        .await
        .map_err(db_err)?;
        let row = store::get_invitation(&mut tx, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::internal("invitation vanished"))?;
        tx.commit().await.map_err(db_err)?;
        self.publish(
            who.org_id,
            "wamage.member.invited",
            json!({ "invitation_id": id, "email": email.as_str(), "role": role, "by": who.user_id }),
        )
        .await;
        let link = format!(
            "{}/invite/{token}",
            self.cfg.public_url.trim_end_matches('/')
        );
        Ok((row, link))
    }

    pub async fn revoke_invitation(
        &self,
        who: &Principal,
        id: InvitationId,
    ) -> Result<(), Problem> {
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let inv = store::get_invitation(&mut tx, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("invitation"))?;
        if inv.accepted_at.is_some() {
            return Err(Problem::conflict(
                "invitation_used",
                "This invitation was already accepted",
            ));
        }
        store::revoke_invitation(&mut tx, who.org_id, id, self.now())
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    fn check_invitation(&self, inv: &store::InvitationRow) -> Result<(), Problem> {
        if inv.revoked_at.is_some() {
            return Err(Problem::gone(
                "invitation_revoked",
                "This invitation has been revoked",
            ));
        }
        if inv.accepted_at.is_some() {
            return Err(Problem::gone(
                "invitation_used",
                "This invitation has already been used",
            ));
        }
        if inv.expires_at <= self.now() {
            return Err(Problem::gone(
                "invitation_expired",
                "This invitation has expired",
            ));
        }
        Ok(())
    }

    /// What the accept page shows before the person signs up.
    pub async fn invitation_by_token(
        &self,
        token: &str,
    ) -> Result<(store::InvitationRow, bool), Problem> {
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let inv = store::find_invitation_by_token(&mut tx, &secrets::token_hash(token))
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("invitation"))?;
        self.check_invitation(&inv)?;
        let exists = store::find_user_by_email_tx(&mut tx, &inv.email)
            .await
            .map_err(db_err)?
            .is_some();
        tx.rollback().await.map_err(db_err)?;
        Ok((inv, exists))
    }

    /// Accepts an invitation: creates the account (or, for an existing account, checks its
    /// password), adds the membership and signs the person in — all in one transaction.
    pub async fn accept_invitation(
        &self,
        token: &str,
        name: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<Issued, Problem> {
        self.ip_limit("accept", client).await?;
        let now = self.now();
        let (inv, exists) = self.invitation_by_token(token).await?;
        let existing = if exists {
            store::find_user_by_email(&self.db, &inv.email)
                .await
                .map_err(db_err)?
        } else {
            None
        };
        let new_hash = match &existing {
            Some(user) => {
                let ok = secrets::verify_password(password.to_owned(), user.password_hash.clone())
                    .await
                    .map_err(Problem::internal)?;
                if !ok {
                    return Err(Problem::invalid_field(
                        "password",
                        "is not the password of your existing account",
                    ));
                }
                None
            }
            None => {
                let mut v = Validator::new();
                v.length("name", name, 1, 100);
                if let Err(m) = check_password(password) {
                    v.error("password", m);
                }
                v.finish()?;
                Some(
                    secrets::hash_password(password.to_owned(), self.cfg.hash_cost)
                        .await
                        .map_err(Problem::internal)?,
                )
            }
        };
        let role = Role::from_db(&inv.role);
        let mut tx = self.db.begin().await.map_err(db_err)?;
        if !store::accept_invitation(&mut tx, inv.id, now)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::gone(
                "invitation_used",
                "This invitation has already been used",
            ));
        }
        let user_id = match (&existing, new_hash) {
            (Some(u), _) => u.id,
            (None, Some(hash)) => {
                let id = UserId::new();
                store::insert_user(&mut tx, id, &inv.email, name.trim(), &hash, now)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            Problem::conflict(
                                "email_taken",
                                "An account with this e-mail already exists",
                            )
                        } else {
                            db_err(e)
                        }
                    })?;
                id
            }
            (None, None) => return Err(Problem::internal("no password hash for new account")),
        };
        if store::get_member(&mut tx, inv.org_id, user_id)
            .await
            .map_err(db_err)?
            .is_some()
        {
            return Err(Problem::conflict(
                "already_member",
                "You are already a member",
            ));
        }
        store::insert_membership(&mut tx, inv.org_id, user_id, role, now)
            .await
            .map_err(db_err)?;
        let (session_id, refresh) = self
            .open_session(&mut tx, inv.org_id, user_id, client)
            .await?;
        tx.commit().await.map_err(db_err)?;
        self.cards.invalidate(&inv.org_id).await;
        self.publish(
            inv.org_id,
            "wamage.member.joined",
            json!({ "user_id": user_id, "role": role, "invitation_id": inv.id }),
        )
        .await;
        self.issued(user_id, inv.org_id, role, session_id, refresh)
            .await
    }

    // ---- API keys -------------------------------------------------------------------------

    pub async fn api_keys(&self, who: &Principal) -> Result<Vec<store::ApiKeyRow>, Problem> {
        store::list_api_keys(&self.db, who.org_id)
            .await
            .map_err(db_err)
    }

    /// Creates a key; the secret is returned once and only its hash is stored.
    pub async fn create_api_key(
        &self,
        who: &Principal,
        name: &str,
        role: Option<Role>,
        expires_in_days: Option<u32>,
    ) -> Result<(store::ApiKeyRow, String), Problem> {
        let role = role.unwrap_or(Role::Agent);
        let mut v = Validator::new();
        v.length("name", name, 1, 100);
        v.check(
            role <= who.role,
            "role",
            "cannot be higher than your own role",
        );
        if let Some(d) = expires_in_days {
            v.check(
                (1..=3650).contains(&d),
                "expires_in_days",
                "must be between 1 and 3650",
            );
        }
        v.finish()?;
        let now = self.now();
        let secret = secrets::random_token("wam_");
        let prefix = secret.get(..12).unwrap_or("wam_").to_owned();
        let id = ApiKeyId::new();
        store::insert_api_key(
            &self.db,
            NewApiKey {
                id,
                org: who.org_id,
                name: name.trim(),
                prefix: &prefix,
                key_hash: &secrets::token_hash(&secret),
                role,
                created_by: who.user_id,
                now,
                expires_at: expires_in_days
                    .map(|d| now.plus(Duration::from_secs(u64::from(d) * 86_400))),
            },
        )
        .await
        .map_err(db_err)?;
        let row = store::get_api_key(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::internal("api key vanished"))?;
        self.publish(
            who.org_id,
            "wamage.api_key.created",
            json!({ "api_key_id": id, "by": who.user_id }),
        )
        .await;
        Ok((row, secret))
    }

    pub async fn revoke_api_key(&self, who: &Principal, id: ApiKeyId) -> Result<(), Problem> {
        let Some(hash) = store::revoke_api_key(&self.db, who.org_id, id, self.now())
            .await
            .map_err(db_err)?
        else {
            // Unknown, another org's, or already revoked: all look the same from outside.
            return match store::get_api_key(&self.db, who.org_id, id)
                .await
                .map_err(db_err)?
            {
                Some(_) => Ok(()),
                None => Err(Problem::not_found("API key")),
            };
        };
        self.forget(&apikey_key(&hash)).await;
        self.publish(
            who.org_id,
            "wamage.api_key.revoked",
            json!({ "api_key_id": id, "by": who.user_id }),
        )
        .await;
        Ok(())
    }

    // ---- sessions -------------------------------------------------------------------------

    pub async fn sessions(&self, who: &Principal) -> Result<Vec<store::SessionRow>, Problem> {
        store::list_sessions(&self.db, who.org_id, who.user_id, self.now())
            .await
            .map_err(db_err)
    }

    pub async fn revoke_session(&self, who: &Principal, id: SessionId) -> Result<(), Problem> {
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let found =
            store::revoke_session(&mut tx, who.org_id, who.user_id, id, self.now(), "revoked")
                .await
                .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        if !found {
            return Err(Problem::not_found("session"));
        }
        self.forget(&sess_key(who.org_id, id)).await;
        Ok(())
    }

    /// Signs out every other device of the caller in this organisation.
    pub async fn revoke_other_sessions(&self, who: &Principal) -> Result<usize, Problem> {
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let revoked = store::revoke_user_sessions(
            &mut tx,
            who.user_id,
            Some(who.org_id),
            who.session_id(),
            self.now(),
            "revoked",
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.forget_sessions(&revoked).await;
        Ok(revoked.len())
    }

    // ---- administration (CLI) -------------------------------------------------------------

    /// Creates an account with its own organisation, as its owner (`wamage admin create-user`).
    pub async fn admin_create_user(
        &self,
        email: &str,
        password: &str,
        name: &str,
        organization: &str,
    ) -> Result<Issued, Problem> {
        self.register(
            email,
            password,
            name,
            organization,
            &ClientInfo {
                ip: None,
                user_agent: Some("wamage-cli".to_owned()),
            },
        )
        .await
    }

    /// Sets a new password for an account and signs it out everywhere (`wamage admin reset-password`).
    pub async fn admin_reset_password(&self, email: &str, password: &str) -> Result<(), Problem> {
        if let Err(m) = check_password(password) {
            return Err(Problem::invalid_field("password", m));
        }
        let email = Email::parse(email).map_err(|m| Problem::invalid_field("email", m))?;
        let user = store::find_user_by_email(&self.db, email.as_str())
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("user"))?;
        let hash = secrets::hash_password(password.to_owned(), self.cfg.hash_cost)
            .await
            .map_err(Problem::internal)?;
        let tx = self.db.begin().await.map_err(db_err)?;
        self.store_password(tx, user.id, &hash, None, "password_reset")
            .await
    }
}
