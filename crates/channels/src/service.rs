//! Channel use cases: connecting accounts (credentials sealed before they touch the store),
//! receiving webhooks (verified on the raw bytes, stored, answered, processed by a job), and
//! handing the sender a provider client plus the channel's pacing and breaker.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::StatusCode;
use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wamage_identity::{Principal, Role};
use wamage_kernel::{Clock, OrgId, Problem, Timestamp, validate::Validator};
use wamage_platform::{
    Db,
    db::is_unique_violation,
    jobs::{JobQueue, NewJob},
};

mod intake;

use intake::{HeldConn, Pending, Pulse};

use crate::{
    adapters,
    http::{ChannelIn, ChannelOut, ChannelPatch, ConfigIn, HealthOut, TestOut},
    model::{ChannelId, ChannelKind, EventId, HealthState, NAME_MAX, ReopenPolicy},
    pacing::{CircuitOut, Guard, Guards, PairLimit},
    provider::{ActionNeeded, Inbound, ProviderClient, SendError},
    secrets::SecretBox,
    store::{self, ChannelRow, EventRow},
};

/// Job kind that processes one stored webhook event (handler: the inbox's `IngestJob`).
pub const INGEST_JOB: &str = "channels.ingest";
/// Largest webhook body accepted (Meta batches stay far below).
pub const WEBHOOK_MAX_BYTES: usize = 1024 * 1024;
const MAX_RATE: u32 = 1000;

/// Where providers are and how the sender behaves; from the server config.
#[derive(Debug, Clone)]
pub struct ChannelsConfig {
    /// Public base URL of this server (webhook URLs shown to the user).
    pub public_url: String,
    pub whatsapp_base_url: String,
    pub whatsapp_api_version: String,
    pub telegram_base_url: String,
    /// Lets a channel's config carry its own `base_url` (tests point channels at fakes).
    pub allow_base_url_override: bool,
    pub http_timeout: Duration,
    /// Pacing on (the benchmarks of raw throughput turn it off).
    pub pacing: bool,
    /// How long webhook processing may wait for a burst of webhooks to end, counted from the
    /// webhooks' arrival (see [`Channels::yield_to_burst`]); zero: never.
    pub burst_yield: Duration,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080".to_owned(),
            whatsapp_base_url: "https://graph.facebook.com".to_owned(),
            whatsapp_api_version: "v21.0".to_owned(),
            telegram_base_url: "https://api.telegram.org".to_owned(),
            allow_base_url_override: false,
            http_timeout: Duration::from_secs(20),
            pacing: true,
            burst_yield: Duration::from_secs(3),
        }
    }
}

pub struct ChannelsDeps {
    pub db: Db,
    /// Checks that an assignment team exists.
    pub identity: Arc<wamage_identity::Identity>,
    pub jobs: JobQueue,
    pub clock: Clock,
    /// The server secret (credentials are sealed with a key derived from it).
    pub secret: Vec<u8>,
}

/// Non-secret settings of a channel, stored as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// From "test connection" (WhatsApp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_rating: Option<String>,
    /// Telegram: `webhook` or `polling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<i64>,
    /// Sandbox: simulated customers read what they get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_read: Option<bool>,
    /// Provider base URL override (only when the server allows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// What a customer message does to a resolved conversation.
    #[serde(default)]
    pub reopen: ReopenPolicy,
    /// New conversations go round-robin to this team's online agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_team_id: Option<uuid::Uuid>,
    /// Extra opt-out words (any language) besides the built-in STOP, UNSUBSCRIBE, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opt_out_keywords: Vec<String>,
}

/// Secret settings, sealed at rest.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ChannelSecrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<String>,
    /// Telegram `secret_token` we set on the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSecrets")
            .field("access_token", &self.access_token.as_ref().map(|_| "…"))
            .field("app_secret", &self.app_secret.as_ref().map(|_| "…"))
            .field("bot_token", &self.bot_token.as_ref().map(|_| "…"))
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A channel, decrypted, as the other domains see it.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: ChannelId,
    pub org_id: OrgId,
    pub kind: ChannelKind,
    pub name: String,
    pub enabled: bool,
    pub config: ChannelConfig,
    pub secrets: ChannelSecrets,
    pub verify_token: Option<String>,
    pub messages_per_second: u32,
    pub health: HealthState,
    pub health_reason: Option<String>,
    pub health_at: Option<Timestamp>,
    pub poll_offset: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub(crate) fn db_err(e: sqlx::Error) -> Problem {
    Problem::internal(format_args!("database: {e}"))
}

fn admin_only(who: &Principal) -> Result<(), Problem> {
    if who.role >= Role::Admin {
        Ok(())
    } else {
        Err(Problem::forbidden("Only admins can manage channels"))
    }
}

fn random_token(n: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn digits(v: &mut Validator, field: &str, s: &str) {
    if s.is_empty() || s.len() > 32 || !s.chars().all(|c| c.is_ascii_digit()) {
        v.error(
            field,
            "must be the numeric id shown in Meta's WhatsApp Manager",
        );
    }
}

fn check_secret(v: &mut Validator, field: &str, s: &str) {
    if s.trim().len() < 8 || s.len() > 1024 || s.chars().any(char::is_whitespace) {
        v.error(field, "must be 8 to 1024 characters without spaces");
    }
}

/// `123456789:AA…` (bot id, colon, 30+ characters).
fn valid_bot_token(s: &str) -> Option<i64> {
    let (id, rest) = s.split_once(':')?;
    let id: i64 = id.parse().ok()?;
    (id > 0
        && rest.len() >= 20
        && rest.len() <= 100
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    .then_some(id)
}

fn valid_api_version(s: &str) -> bool {
    s.len() <= 8
        && s.strip_prefix('v').is_some_and(|r| {
            let mut parts = r.split('.');
            parts
                .next()
                .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                && parts
                    .next()
                    .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
                && parts.next().is_none()
        })
}

/// The channel's pacing key of a recipient (phone, user id or chat id).
pub fn recipient_key(to: &crate::provider::Recipient) -> String {
    use crate::provider::Recipient;
    match to {
        Recipient::Whatsapp { phone, user_id } => phone
            .clone()
            .or_else(|| user_id.clone())
            .unwrap_or_default(),
        Recipient::Telegram { chat_id } => chat_id.to_string(),
        Recipient::Sandbox { handle } => handle.clone(),
    }
}

/// A provider client and the channel version it was built for.
type CachedClient = (Timestamp, Arc<dyn ProviderClient>);

/// The channels service.
pub struct Channels {
    db: Db,
    identity: Arc<wamage_identity::Identity>,
    jobs: JobQueue,
    clock: Clock,
    sealer: SecretBox,
    http: reqwest::Client,
    cfg: ChannelsConfig,
    guards: Guards,
    clients: Mutex<HashMap<ChannelId, CachedClient>>,
    /// Live channels by id, decrypted (every webhook and every send reads its channel).
    /// Dropped on every change made here; other nodes see a change within [`CHANNEL_TTL`].
    live: moka::future::Cache<ChannelId, Option<Arc<Channel>>>,
    /// The webhook batcher's queue, once started ([`Channels::start_intake`]).
    intake: std::sync::OnceLock<tokio::sync::mpsc::Sender<Pending>>,
    /// When the intake last stored a burst's batch ([`Channels::yield_to_burst`]).
    pulse: Pulse,
    /// PostgreSQL: the connection the intake keeps for its statement ([`HeldConn`]).
    intake_conn: tokio::sync::Mutex<Option<HeldConn>>,
    me: Weak<Channels>,
}

/// How long another node may use a channel's previous settings.
const CHANNEL_TTL: Duration = Duration::from_secs(5);

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels").finish_non_exhaustive()
    }
}

impl Channels {
    pub fn new(deps: ChannelsDeps, cfg: ChannelsConfig) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(cfg.http_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("wamage/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Arc::new_cyclic(|me| Self {
            db: deps.db,
            identity: deps.identity,
            jobs: deps.jobs,
            clock: deps.clock,
            sealer: SecretBox::new(&deps.secret),
            http,
            cfg,
            guards: Guards::default(),
            clients: Mutex::new(HashMap::new()),
            live: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CHANNEL_TTL)
                .build(),
            intake: std::sync::OnceLock::new(),
            pulse: Pulse::default(),
            intake_conn: tokio::sync::Mutex::new(None),
            me: me.clone(),
        })
    }

    pub fn config(&self) -> &ChannelsConfig {
        &self.cfg
    }

    pub(crate) fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now().millis()
    }

    fn decode(&self, r: ChannelRow) -> Result<Channel, Problem> {
        let kind = ChannelKind::parse(&r.kind)
            .ok_or_else(|| Problem::internal(format_args!("unknown channel kind {}", r.kind)))?;
        let config: ChannelConfig = serde_json::from_str(&r.config)
            .map_err(|e| Problem::internal(format_args!("channel config: {e}")))?;
        let plain = self
            .sealer
            .open(r.id.as_uuid().as_bytes(), &r.secrets)
            .map_err(|e| Problem::internal(format_args!("channel {} secrets: {e}", r.id)))?;
        let secrets: ChannelSecrets = serde_json::from_slice(&plain)
            .map_err(|e| Problem::internal(format_args!("channel secrets: {e}")))?;
        Ok(Channel {
            id: r.id,
            org_id: r.org_id,
            kind,
            name: r.name,
            enabled: r.enabled,
            config,
            secrets,
            verify_token: r.verify_token,
            messages_per_second: u32::try_from(r.messages_per_second).unwrap_or(1).max(1),
            health: HealthState::parse(&r.health_state),
            health_reason: r.health_reason,
            health_at: r.health_at,
            poll_offset: r.poll_offset,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }

    fn seal(&self, id: ChannelId, s: &ChannelSecrets) -> String {
        let plain = serde_json::to_vec(s).unwrap_or_default();
        self.sealer.seal(id.as_uuid().as_bytes(), &plain)
    }

    /// The webhook URL to paste into the provider's console.
    pub fn webhook_url(&self, c: &Channel) -> Option<String> {
        let base = self.cfg.public_url.trim_end_matches('/');
        match c.kind {
            ChannelKind::Whatsapp => Some(format!("{base}/webhooks/whatsapp/{}", c.id)),
            ChannelKind::Telegram => Some(format!("{base}/webhooks/telegram/{}", c.id)),
            ChannelKind::Sandbox => None,
        }
    }

    pub(crate) fn out(&self, c: &Channel) -> ChannelOut {
        ChannelOut {
            id: c.id,
            kind: c.kind,
            name: c.name.clone(),
            enabled: c.enabled,
            health: HealthOut {
                state: c.health,
                reason: c.health_reason.clone(),
                checked_at: c.health_at,
            },
            circuit: self.guards.circuit(c.id).unwrap_or_default(),
            messages_per_second: c.messages_per_second,
            config: c.config.clone(),
            secrets: json!({
                "access_token": c.secrets.access_token.is_some(),
                "app_secret": c.secrets.app_secret.is_some(),
                "bot_token": c.secrets.bot_token.is_some(),
            }),
            webhook_url: self.webhook_url(c),
            verify_token: c.verify_token.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }

    /// A live channel of `org` (404 otherwise).
    pub async fn get(&self, org: OrgId, id: ChannelId) -> Result<Channel, Problem> {
        self.get_any(id)
            .await?
            .filter(|c| c.org_id == org)
            .ok_or_else(|| Problem::not_found("channel"))
    }

    /// A live channel by id alone (webhooks and workers), from the cache when warm.
    pub async fn get_any(&self, id: ChannelId) -> Result<Option<Channel>, Problem> {
        Ok(self.live_channel(id).await?.map(|c| (*c).clone()))
    }

    /// [`Self::get_any`] shared with the cache, not copied (a webhook's lookup).
    async fn live_channel(&self, id: ChannelId) -> Result<Option<Arc<Channel>>, Problem> {
        // One read per miss: the webhooks and sends that miss together (at start-up, or each
        // time the entry expires under load) wait for the first one's read instead of each
        // reading and decrypting the channel. A failed read is not cached.
        self.live
            .try_get_with(id, async {
                Ok(match store::get_any(&self.db, id).await.map_err(db_err)? {
                    Some(r) => Some(Arc::new(self.decode(r)?)),
                    None => None,
                })
            })
            .await
            .map_err(|e: Arc<Problem>| Problem::clone(&e))
    }

    /// Drops what this process remembers of a channel after a change.
    async fn forget(&self, id: ChannelId) {
        self.live.invalidate(&id).await;
        self.forget_client(id);
    }

    pub async fn list(&self, who: &Principal) -> Result<Vec<ChannelOut>, Problem> {
        store::list(&self.db, who.org_id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|r| self.decode(r).map(|c| self.out(&c)))
            .collect()
    }

    pub async fn channel(&self, who: &Principal, id: ChannelId) -> Result<ChannelOut, Problem> {
        Ok(self.out(&self.get(who.org_id, id).await?))
    }

    /// The org's channels as plain values (for the inbox's filters and cards).
    pub async fn channels_of(&self, org: OrgId) -> Result<Vec<Channel>, Problem> {
        store::list(&self.db, org)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|r| self.decode(r))
            .collect()
    }

    fn apply_config(
        &self,
        v: &mut Validator,
        kind: ChannelKind,
        cfg: &mut ChannelConfig,
        secrets: &mut ChannelSecrets,
        input: &ConfigIn,
        creating: bool,
    ) {
        if let Some(u) = &input.base_url {
            if !self.cfg.allow_base_url_override {
                v.error("config.base_url", "is not allowed on this server");
            } else if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 300 {
                v.error("config.base_url", "must be an http(s) URL");
            } else {
                cfg.base_url = Some(u.trim_end_matches('/').to_owned());
            }
        }
        if let Some(r) = input.reopen {
            cfg.reopen = r;
        }
        if let Some(t) = input.assign_team_id {
            cfg.assign_team_id = t;
        }
        if let Some(words) = &input.opt_out_keywords {
            v.check(
                words.len() <= 50,
                "config.opt_out_keywords",
                "at most 50 words",
            );
            let mut clean = Vec::new();
            for (i, w) in words.iter().enumerate() {
                let w = w.trim().to_uppercase();
                if w.is_empty() || w.chars().count() > 40 || w.chars().any(char::is_control) {
                    v.error(
                        &format!("config.opt_out_keywords[{i}]"),
                        "must be 1 to 40 characters",
                    );
                } else if !clean.contains(&w) {
                    clean.push(w);
                }
            }
            cfg.opt_out_keywords = clean;
        }
        match kind {
            ChannelKind::Whatsapp => {
                for (field, present) in [
                    ("config.bot_token", input.bot_token.is_some()),
                    ("config.mode", input.mode.is_some()),
                    ("config.auto_read", input.auto_read.is_some()),
                ] {
                    if present {
                        v.error(field, "is not a WhatsApp setting");
                    }
                }
                match &input.phone_number_id {
                    Some(p) => {
                        digits(v, "config.phone_number_id", p.trim());
                        cfg.phone_number_id = Some(p.trim().to_owned());
                    }
                    None if creating => v.error("config.phone_number_id", "is required"),
                    None => {}
                }
                if let Some(w) = &input.waba_id {
                    let w = w.trim();
                    if w.is_empty() {
                        cfg.waba_id = None;
                    } else {
                        digits(v, "config.waba_id", w);
                        cfg.waba_id = Some(w.to_owned());
                    }
                }
                if let Some(a) = &input.api_version {
                    if valid_api_version(a.trim()) {
                        cfg.api_version = Some(a.trim().to_owned());
                    } else {
                        v.error("config.api_version", "must look like v21.0");
                    }
                }
                match &input.access_token {
                    Some(t) => {
                        check_secret(v, "config.access_token", t);
                        secrets.access_token = Some(t.trim().to_owned());
                    }
                    None if creating => v.error("config.access_token", "is required"),
                    None => {}
                }
                match &input.app_secret {
                    Some(t) => {
                        check_secret(v, "config.app_secret", t);
                        secrets.app_secret = Some(t.trim().to_owned());
                    }
                    None if creating => v.error("config.app_secret", "is required"),
                    None => {}
                }
            }
            ChannelKind::Telegram => {
                for (field, present) in [
                    ("config.phone_number_id", input.phone_number_id.is_some()),
                    ("config.access_token", input.access_token.is_some()),
                    ("config.app_secret", input.app_secret.is_some()),
                    ("config.auto_read", input.auto_read.is_some()),
                ] {
                    if present {
                        v.error(field, "is not a Telegram setting");
                    }
                }
                match &input.bot_token {
                    Some(t) => match valid_bot_token(t.trim()) {
                        Some(id) => {
                            secrets.bot_token = Some(t.trim().to_owned());
                            cfg.bot_id = Some(id);
                        }
                        None => v.error(
                            "config.bot_token",
                            "must be the token @BotFather gave, like 123456789:AAE…",
                        ),
                    },
                    None if creating => v.error("config.bot_token", "is required"),
                    None => {}
                }
                match input.mode.as_deref() {
                    Some("webhook" | "polling") => cfg.mode = input.mode.clone(),
                    Some(_) => v.error("config.mode", "must be webhook or polling"),
                    None if creating => cfg.mode = Some("polling".to_owned()),
                    None => {}
                }
                if secrets.webhook_secret.is_none() {
                    secrets.webhook_secret = Some(random_token(48));
                }
            }
            ChannelKind::Sandbox => {
                for (field, present) in [
                    ("config.phone_number_id", input.phone_number_id.is_some()),
                    ("config.access_token", input.access_token.is_some()),
                    ("config.app_secret", input.app_secret.is_some()),
                    ("config.bot_token", input.bot_token.is_some()),
                    ("config.mode", input.mode.is_some()),
                ] {
                    if present {
                        v.error(field, "is not a Sandbox setting");
                    }
                }
                if let Some(a) = input.auto_read {
                    cfg.auto_read = Some(a);
                } else if creating {
                    cfg.auto_read = Some(true);
                }
            }
        }
    }

    async fn check_team(&self, v: &mut Validator, org: OrgId, cfg: &ChannelConfig) {
        if let Some(t) = cfg.assign_team_id
            && self.identity.team_members_in(org, t).await.is_err()
        {
            v.error(
                "config.assign_team_id",
                "is not a team of this organisation",
            );
        }
    }

    fn external_id(kind: ChannelKind, cfg: &ChannelConfig) -> Option<String> {
        match kind {
            ChannelKind::Whatsapp => cfg.phone_number_id.clone(),
            ChannelKind::Telegram => cfg.bot_id.map(|b| b.to_string()),
            ChannelKind::Sandbox => None,
        }
    }

    fn taken() -> Problem {
        Problem::conflict(
            "channel_exists",
            "This account is already connected as another channel",
        )
        .with_field("config", "is already connected")
    }

    pub async fn create(&self, who: &Principal, b: &ChannelIn) -> Result<ChannelOut, Problem> {
        admin_only(who)?;
        let mut v = Validator::new();
        v.length("name", b.name.trim(), 1, NAME_MAX);
        let rate = b.messages_per_second.unwrap_or(b.kind.default_rate());
        v.check(
            (1..=MAX_RATE).contains(&rate),
            "messages_per_second",
            format!("must be between 1 and {MAX_RATE}"),
        );
        let mut cfg = ChannelConfig::default();
        let mut secrets = ChannelSecrets::default();
        self.apply_config(&mut v, b.kind, &mut cfg, &mut secrets, &b.config, true);
        self.check_team(&mut v, who.org_id, &cfg).await;
        v.finish()?;
        let now = self.now();
        let id = ChannelId::new();
        let row = ChannelRow {
            id,
            org_id: who.org_id,
            kind: b.kind.as_str().to_owned(),
            name: b.name.trim().to_owned(),
            enabled: true,
            config: serde_json::to_string(&cfg).unwrap_or_default(),
            secrets: self.seal(id, &secrets),
            external_id: Self::external_id(b.kind, &cfg),
            verify_token: (b.kind == ChannelKind::Whatsapp).then(|| random_token(32)),
            messages_per_second: i64::from(rate),
            health_state: HealthState::Unknown.as_str().to_owned(),
            health_reason: None,
            health_at: None,
            poll_offset: None,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::insert(&mut tx, &row).await.map_err(|e| {
            if is_unique_violation(&e) {
                Self::taken()
            } else {
                db_err(e)
            }
        })?;
        tx.commit().await.map_err(db_err)?;
        let c = self.decode(row)?;
        Ok(self.out(&c))
    }

    pub async fn update(
        &self,
        who: &Principal,
        id: ChannelId,
        b: &ChannelPatch,
    ) -> Result<ChannelOut, Problem> {
        admin_only(who)?;
        let org = who.org_id;
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let row = store::get_tx(&mut tx, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("channel"))?;
        let mut c = self.decode(row.clone())?;
        let mut v = Validator::new();
        if let Some(n) = &b.name {
            v.length("name", n.trim(), 1, NAME_MAX);
            c.name = n.trim().to_owned();
        }
        if let Some(rate) = b.messages_per_second {
            v.check(
                (1..=MAX_RATE).contains(&rate),
                "messages_per_second",
                format!("must be between 1 and {MAX_RATE}"),
            );
            c.messages_per_second = rate;
        }
        if let Some(e) = b.enabled {
            c.enabled = e;
        }
        if let Some(input) = &b.config {
            let (mut cfg, mut secrets) = (c.config.clone(), c.secrets.clone());
            self.apply_config(&mut v, c.kind, &mut cfg, &mut secrets, input, false);
            self.check_team(&mut v, org, &cfg).await;
            c.config = cfg;
            c.secrets = secrets;
        }
        v.finish()?;
        c.updated_at = self.now();
        let new_row = ChannelRow {
            name: c.name.clone(),
            enabled: c.enabled,
            config: serde_json::to_string(&c.config).unwrap_or_default(),
            secrets: self.seal(id, &c.secrets),
            external_id: Self::external_id(c.kind, &c.config),
            messages_per_second: i64::from(c.messages_per_second),
            updated_at: c.updated_at,
            ..row
        };
        store::update(&mut tx, &new_row).await.map_err(|e| {
            if is_unique_violation(&e) {
                Self::taken()
            } else {
                db_err(e)
            }
        })?;
        tx.commit().await.map_err(db_err)?;
        self.forget(id).await;
        Ok(self.out(&c))
    }

    pub async fn delete(&self, who: &Principal, id: ChannelId) -> Result<(), Problem> {
        admin_only(who)?;
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let n = store::soft_delete(&mut tx, who.org_id, id, self.now())
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.forget(id).await;
        if n == 0 {
            return Err(Problem::not_found("channel"));
        }
        Ok(())
    }

    /// Calls the provider with the channel's credentials and records the result as its health
    /// (and what the provider says about the account).
    pub async fn test(&self, who: &Principal, id: ChannelId) -> Result<TestOut, Problem> {
        admin_only(who)?;
        let c = self.get(who.org_id, id).await?;
        let client = self.client(&c);
        let mut res = client.check().await;
        // A Telegram bot in webhook mode gets its webhook (URL and secret token) set here.
        if res.is_ok()
            && c.kind == ChannelKind::Telegram
            && c.config.mode.as_deref() == Some("webhook")
            && let Some(url) = self.webhook_url(&c)
            && let Err(e) = adapters::telegram_set_webhook(self, &c, &url).await
        {
            res = Err(e);
        }
        match res {
            Ok(detail) => {
                let mut cfg = c.config.clone();
                adapters::absorb_check(c.kind, &mut cfg, &detail);
                if cfg != c.config {
                    store::set_config(
                        &self.db,
                        id,
                        &serde_json::to_string(&cfg).unwrap_or_default(),
                    )
                    .await
                    .map_err(db_err)?;
                }
                self.set_health(id, HealthState::Healthy, None).await?;
                Ok(TestOut {
                    ok: true,
                    detail: Some(detail),
                    error: None,
                })
            }
            Err(e) => {
                let reason = describe(&e);
                // A transient provider problem says nothing about the credentials.
                if !matches!(e, SendError::Retryable { .. }) {
                    self.set_health(id, HealthState::Unhealthy, Some(&reason))
                        .await?;
                }
                Ok(TestOut {
                    ok: false,
                    detail: None,
                    error: Some(reason),
                })
            }
        }
    }

    pub async fn set_health(
        &self,
        id: ChannelId,
        state: HealthState,
        reason: Option<&str>,
    ) -> Result<(), Problem> {
        store::set_health(&self.db, id, state.as_str(), reason, self.now())
            .await
            .map_err(db_err)?;
        self.live.invalidate(&id).await;
        metrics::gauge!("wamage_channel_healthy", "channel" => id.to_string()).set(
            if state == HealthState::Unhealthy {
                0.0
            } else {
                1.0
            },
        );
        Ok(())
    }

    /// A send error that needs someone to act on the channel marks it unhealthy.
    pub async fn note_send_error(&self, c: &Channel, e: &SendError) {
        if let SendError::NeedsAction {
            action: ActionNeeded::ExpiredToken | ActionNeeded::AccountRestricted,
            ..
        } = e
            && let Err(p) = self
                .set_health(c.id, HealthState::Unhealthy, Some(&describe(e)))
                .await
        {
            tracing::warn!(error = %p, channel = %c.id, "failed to mark channel unhealthy");
        }
    }

    /// Answers a Telegram callback query (a button tap), so the customer's client stops
    /// waiting; failures are logged (the tap itself is already recorded).
    pub async fn answer_callback(&self, c: &Channel, id: &str) {
        if c.kind != ChannelKind::Telegram {
            return;
        }
        if let Err(e) = adapters::telegram_answer_callback(self, c, id).await {
            tracing::warn!(error = %e, channel = %c.id, "answerCallbackQuery failed");
        }
    }

    /// After a successful send: an unhealthy channel that works again is healthy.
    pub async fn note_send_ok(&self, c: &Channel) {
        if c.health != HealthState::Healthy
            && let Err(p) = self.set_health(c.id, HealthState::Healthy, None).await
        {
            tracing::warn!(error = %p, channel = %c.id, "failed to mark channel healthy");
        }
    }

    // ---- clients, pacing, breaker -------------------------------------------------------

    fn forget_client(&self, id: ChannelId) {
        if let Ok(mut m) = self.clients.lock() {
            m.remove(&id);
        }
    }

    /// The provider client of a channel (built once per version of its settings).
    pub fn client(&self, c: &Channel) -> Arc<dyn ProviderClient> {
        if let Ok(m) = self.clients.lock()
            && let Some((at, client)) = m.get(&c.id)
            && *at == c.updated_at
        {
            return client.clone();
        }
        let client = adapters::client(self, self.me.clone(), c);
        if let Ok(mut m) = self.clients.lock() {
            m.insert(c.id, (c.updated_at, client.clone()));
        }
        client
    }

    /// The Cloud API client of a WhatsApp channel (templates live on its business account);
    /// `None` for other kinds.
    pub fn whatsapp_client(&self, c: &Channel) -> Option<crate::whatsapp::WhatsappClient> {
        if c.kind != ChannelKind::Whatsapp {
            return None;
        }
        crate::whatsapp::WhatsappClient::new(adapters::whatsapp_config(self, c)).ok()
    }

    /// The channel's pacing and breaker in this process.
    pub fn guard(&self, c: &Channel) -> Arc<Guard> {
        let rate = if self.cfg.pacing {
            c.messages_per_second
        } else {
            u32::MAX / 2
        };
        let pair = match c.kind {
            _ if !self.cfg.pacing => None,
            ChannelKind::Whatsapp => Some(PairLimit::WHATSAPP),
            ChannelKind::Telegram => Some(PairLimit::TELEGRAM),
            ChannelKind::Sandbox => None,
        };
        self.guards.get(c.id, rate, pair)
    }

    pub fn circuit(&self, id: ChannelId) -> CircuitOut {
        self.guards.circuit(id).unwrap_or_default()
    }

    pub fn instant(&self) -> Instant {
        Instant::now()
    }

    // ---- webhooks in --------------------------------------------------------------------

    /// WhatsApp's subscription check: the challenge to echo, or 403.
    pub async fn whatsapp_subscribe(
        &self,
        id: ChannelId,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<String, Problem> {
        let c = self
            .get_any(id)
            .await?
            .filter(|c| c.kind == ChannelKind::Whatsapp)
            .ok_or_else(|| Problem::not_found("channel"))?;
        let expected = c.verify_token.as_deref().unwrap_or_default();
        adapters::whatsapp_subscription(mode, token, challenge, expected)
            .ok_or_else(|| Problem::forbidden("The verify token does not match this channel's"))
    }

    /// A provider webhook: verified on the raw bytes, then stored with its processing job in
    /// one transaction. Nothing is stored when the channel is unknown or the signature is
    /// wrong.
    pub async fn receive(
        &self,
        kind: ChannelKind,
        id: ChannelId,
        signature: Option<&str>,
        raw: Bytes,
    ) -> Result<EventId, Problem> {
        let c = self
            .live_channel(id)
            .await?
            .filter(|c| c.kind == kind)
            .ok_or_else(|| Problem::not_found("channel"))?;
        let ok = match kind {
            ChannelKind::Whatsapp => adapters::whatsapp_signature_ok(
                c.secrets.app_secret.as_deref().unwrap_or_default(),
                &raw,
                signature,
            ),
            ChannelKind::Telegram => adapters::telegram_secret_ok(
                c.secrets.webhook_secret.as_deref().unwrap_or_default(),
                signature,
            ),
            ChannelKind::Sandbox => false,
        };
        if !ok {
            metrics::counter!("wamage_webhooks_rejected_total", "kind" => kind.as_str(), "reason" => "signature")
                .increment(1);
            return Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "The webhook signature is missing or does not match",
            ));
        }
        let ev = self.store_event(&c, raw, None).await?;
        metrics::counter!("wamage_webhooks_received_total", "kind" => kind.as_str()).increment(1);
        Ok(ev)
    }

    async fn store_event(
        &self,
        c: &Channel,
        mut raw: Bytes,
        delay: Option<Duration>,
    ) -> Result<EventId, Problem> {
        // Webhooks arriving together share one transaction (group commit): the batcher takes
        // whatever is queued when it is free, so an idle server adds no wait.
        if delay.is_none()
            && let Some(intake) = self.intake.get()
        {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let pending = Pending {
                org: c.org_id,
                channel: c.id,
                body: raw,
                reply,
                queued: Instant::now(),
            };
            match intake.send(pending).await {
                Ok(()) => {
                    return answer.await.unwrap_or_else(|_| {
                        Err(Problem::unavailable("The webhook intake stopped"))
                    });
                }
                // The batcher is gone (the runtime is stopping): stored on its own below.
                Err(gone) => raw = gone.0.body,
            }
        }
        let id = EventId::new();
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::insert_event(&mut tx, id, c.org_id, c.id, &raw, now)
            .await
            .map_err(db_err)?;
        let mut job = NewJob::new(INGEST_JOB, json!({ "event_id": id }))
            .with_org(c.org_id)
            .with_priority(10);
        if let Some(d) = delay {
            job = job.with_run_at(now.plus(d));
        }
        self.jobs
            .enqueue(&mut tx, job)
            .await
            .map_err(|e| Problem::internal(format_args!("enqueue ingest: {e}")))?;
        tx.commit().await.map_err(db_err)?;
        if delay.is_none() {
            self.jobs.notify_kind(INGEST_JOB);
        }
        Ok(id)
    }

    /// Records an event the system made up (Sandbox customers and their delivery reports),
    /// processed like a webhook, after `delay` when given.
    pub async fn record_synthetic(
        &self,
        id: ChannelId,
        body: &Value,
        delay: Option<Duration>,
    ) -> Result<EventId, Problem> {
        let c = self
            .get_any(id)
            .await?
            .ok_or_else(|| Problem::not_found("channel"))?;
        let raw = serde_json::to_vec(body).unwrap_or_default();
        self.store_event(&c, raw.into(), delay).await
    }

    /// The events among `ids` not processed yet, with their channels, in the order of `ids`.
    /// Events whose channel is gone are left out.
    pub async fn pending_events(
        &self,
        ids: &[EventId],
    ) -> Result<Vec<(Channel, EventRow)>, Problem> {
        let rows = store::pending_events(&self.db, ids).await.map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for ev in rows {
            if let Some(c) = self.get_any(ev.channel_id).await? {
                out.push((c, ev));
            }
        }
        Ok(out)
    }

    /// Records the outcomes of several events in one transaction: the number of items
    /// applied, or why an event could not be read.
    pub async fn finish_events(
        &self,
        outcomes: &[(EventId, Result<usize, String>)],
    ) -> Result<(), Problem> {
        if outcomes.is_empty() {
            return Ok(());
        }
        // Events with the same outcome share a statement (most carry one item).
        // (items, error) → the events with that outcome.
        type Outcome<'a> = (Option<i64>, Option<&'a str>);
        let mut groups: Vec<(Outcome<'_>, Vec<EventId>)> = Vec::new();
        for (id, outcome) in outcomes {
            let key = match outcome {
                Ok(n) => (Some(i64::try_from(*n).unwrap_or(i64::MAX)), None),
                Err(e) => (None, Some(e.as_str())),
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ids)) => ids.push(*id),
                None => groups.push((key, vec![*id])),
            }
        }
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        for ((items, error), ids) in &groups {
            let state = if error.is_some() {
                "failed"
            } else {
                "processed"
            };
            store::finish_events(&mut tx, ids, state, *items, *error, now)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// What an event says, provider-neutral.
    pub fn parse(&self, c: &Channel, raw: &[u8]) -> Result<Vec<Inbound>, String> {
        adapters::parse(c, raw)
    }

    pub(crate) async fn set_poll_offset(&self, id: ChannelId, offset: i64) -> Result<(), Problem> {
        store::set_poll_offset(&self.db, id, offset)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    pub(crate) async fn polling_channels(&self) -> Result<Vec<Channel>, Problem> {
        store::polling_channels(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|r| self.decode(r))
            .filter(|c| {
                c.as_ref()
                    .map_or(true, |c| c.config.mode.as_deref() == Some("polling"))
            })
            .collect()
    }

    pub(crate) async fn store_polled(&self, c: &Channel, update: &Value) -> Result<(), Problem> {
        let raw = serde_json::to_vec(update).unwrap_or_default();
        self.store_event(c, raw.into(), None).await.map(|_| ())
    }
}

/// A send error as a person reads it.
pub fn describe(e: &SendError) -> String {
    match e {
        SendError::NeedsAction {
            action: ActionNeeded::ExpiredToken,
            code,
            message,
        } => format!("Access token expired or revoked ({code}): {message}"),
        other => format!("{} ({})", other.message(), other.code()),
    }
}
