//! A fake WhatsApp Cloud API (Graph API) for one business phone number.
//!
//! Endpoints, as documented by Meta:
//! - `POST /{version}/{phone_number_id}/messages`: sends (shape-checked like Meta: a wrong shape
//!   is HTTP 400 with a Graph error, code 100) and read receipts (`status: "read"`).
//! - `GET /{version}/{phone_number_id}`: the number's fields.
//! - `GET /{version}/{media_id}`: media info whose `url` points back at this fake; downloading it
//!   needs the token like Meta's media CDN.
//! - `GET|POST /{version}/{waba_id}/message_templates`: cursor paging and creation (checked like
//!   Meta checks a submission: text lengths, variables and their examples, buttons).
//!
//! Every call needs `Authorization: Bearer <token>` (wrong: HTTP 401, code 190). Webhook bodies
//! are built by the functions of [`webhook`] and posted, signed, with [`FakeMeta::post_webhook`].
//!
//! # Webhooks the fake sends by itself
//!
//! With a target set ([`FakeMeta::set_webhook`]) the fake posts, signed like Meta
//! (`X-Hub-Signature-256`), what Meta would post on its own:
//! - delivery statuses of accepted sends ([`FakeMeta::set_auto_statuses`]), each echoing the
//!   send's `biz_opaque_callback_data`, up to 100 statuses per post;
//! - a `failed` status for sends accepted and then not delivered
//!   ([`FakeMeta::set_async_failure_for`]);
//! - `message_template_status_update` when a review decides ([`FakeMeta::set_template_review`])
//!   or a test changes a template ([`FakeMeta::set_template_status`]).
//!
//! Like Meta, a post that is not answered 2xx is retried with backoff (200 ms doubling to 5 s,
//! for up to 10 minutes: [`WebhookRetry`]), so a server that was down gets them later.
//!
//! # Scale
//!
//! [`FakeMeta::set_record_bodies`]`(false)` keeps only a compact entry per accepted send
//! (recipient, `biz_opaque_callback_data`, template name, instant) so a million sends fit in
//! memory; duplicate `biz_opaque_callback_data` are counted in both modes
//! ([`FakeMeta::duplicate_callback_data`]).
//!
//! # Control API (not Meta's)
//!
//! The same server answers, without a token, under `/_fake/` (used by the `fake-providers`
//! binary's clients: browser tests, benchmarks); errors are HTTP 400/404 `{"error": "…"}`:
//! - `POST /_fake/config` `{"webhook_url", "app_secret", "auto_statuses": ["sent", …],
//!   "template_review": {"rule": "approve_all" | "reject_all" | "reject_names_containing",
//!   "needle", "reason", "delay_ms"}, "record_bodies", "rate_limit_per_second",
//!   "async_failures": {"<to>": <code>}}`: every field optional, only given ones change; `null`
//!   turns `webhook_url`, `template_review` and `rate_limit_per_second` off. Answers the
//!   resulting configuration, as does `GET /_fake/config`.
//! - `GET /_fake/stats`: `{"sent", "distinct_callback_data", "duplicate_callback_data",
//!   "throttled", "pair_throttled", "requests", "read_receipts", "templates",
//!   "webhooks": {"posts", "failed_attempts", "pending", "dropped"}}`.
//! - `POST /_fake/templates/{id}/status` `{"status", "reason"}`: like
//!   [`FakeMeta::set_template_status`].
//! - `POST /_fake/reset`: forgets sends, read receipts, counters and undelivered webhooks
//!   ([`FakeMeta::reset`]); configuration and templates stay.

mod control;
mod delivery;
#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

use self::delivery::Delivery;
pub use self::delivery::{WebhookRetry, WebhookStats};
use super::{ServerGuard, Window, serve_on};

/// The business phone number id the fake serves.
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// The business account id (templates live here).
pub const WABA_ID: &str = "102290129340398";
/// The number as customers see it.
pub const DISPLAY_PHONE_NUMBER: &str = "15550783881";
/// The access token the fake accepts until [`FakeMeta::set_token`].
pub const TOKEN: &str = "EAAfake-token";
/// The Graph API version tests use.
pub const API_VERSION: &str = "v21.0";

/// Meta's title for an error code (the codes tests use; "Error" for others).
fn error_title(code: i64) -> &'static str {
    match code {
        1 => "An unknown error has occurred.",
        2 => "Service temporarily unavailable",
        4 => "Application request limit reached",
        100 => "Invalid parameter",
        190 => "Invalid OAuth access token - Cannot parse access token",
        368 => "Temporarily blocked for policies violations",
        80007 => "Rate limit issues",
        130429 => "Rate limit hit",
        131000 => "Something went wrong",
        131026 => "Message undeliverable",
        131031 => "Account has been locked",
        131047 => "Re-engagement message",
        131049 => "This message was not delivered to maintain healthy ecosystem engagement.",
        131050 => {
            "Unable to deliver message. Reasons can include: The recipient has stopped marketing messages."
        }
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        132000 => "Number of parameters does not match the expected number of params",
        132001 => "Template name does not exist in the translation",
        133010 => "Account not registered",
        _ => "Error",
    }
}

/// A Graph API error to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError {
    pub status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub details: Option<String>,
}

impl MetaError {
    /// The error Meta answers for `code`, with Meta's title for the codes tests use.
    pub fn new(status: u16, code: i64) -> Self {
        Self {
            status,
            code,
            subcode: None,
            message: format!("(#{code}) {}", error_title(code)),
            details: None,
        }
    }

    /// The same error with `error_data.details`.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    fn body(&self) -> Value {
        let mut err = json!({
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "fbtrace_id": fbtrace_id(),
        });
        if let Some(sub) = self.subcode {
            err["error_subcode"] = json!(sub);
        }
        if let Some(d) = &self.details {
            err["error_data"] = json!({ "messaging_product": "whatsapp", "details": d });
        }
        if self.status >= 500 || matches!(self.code, 1 | 2) {
            err["is_transient"] = json!(true);
        }
        json!({ "error": err })
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self.body())).into_response()
    }
}

fn invalid(details: impl Into<String>) -> MetaError {
    let mut e = MetaError::new(400, 100).with_details(details);
    e.subcode = Some(2_494_010);
    e
}

static SEQ: AtomicU64 = AtomicU64::new(1);

fn fbtrace_id() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("trace{n:08}"))
}

/// A fresh, unique WhatsApp message id (`wamid.` + base64, like Meta's).
pub fn wamid() -> String {
    wamid_for(SEQ.fetch_add(1, Ordering::Relaxed))
}

/// The message id for sequence number `n`: derivable again from `n` (compact records keep only
/// the number), and distinct across runs of the process by a stamp taken at first use, so a
/// restarted `fake-providers` does not hand out ids an app already stored.
fn wamid_for(n: u64) -> String {
    static STAMP: OnceLock<u32> = OnceLock::new();
    let stamp = STAMP.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    });
    let raw = format!("HBgL{n:012}{stamp:09}FQIAERgS");
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// One message the fake accepted.
///
/// With [`FakeMeta::set_record_bodies`]`(false)` the `body` is synthesized from the compact
/// record: `messaging_product`, `to` (or `recipient`), `biz_opaque_callback_data` when the send
/// had one and, for templates, `type: "template"` with `template.name`; nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The `wamid` the fake answered with.
    pub id: String,
    /// The request body as sent.
    pub body: Value,
    /// When the fake accepted it (after the rate limits let it through): benchmarks build
    /// per-second histograms of what a provider actually took.
    pub accepted_at: Instant,
}

/// What scale mode keeps of an accepted send (about 100 bytes instead of the whole body).
#[derive(Debug)]
struct CompactSend {
    /// The sequence number of the `wamid` ([`wamid_for`]).
    seq: u64,
    recipient: Box<str>,
    /// `recipient` is a BSUID (sent as `recipient`), not phone digits (`to`).
    by_user_id: bool,
    /// Shared with the set of seen callback data.
    callback: Option<Arc<str>>,
    /// Interned: a campaign sends one template a million times.
    template: Option<Arc<str>>,
    accepted_at: Instant,
}

#[derive(Debug)]
enum Recorded {
    Full(SentMessage),
    Compact(CompactSend),
}

impl Recorded {
    fn accepted_at(&self) -> Instant {
        match self {
            Self::Full(m) => m.accepted_at,
            Self::Compact(c) => c.accepted_at,
        }
    }

    fn to_sent(&self) -> SentMessage {
        match self {
            Self::Full(m) => m.clone(),
            Self::Compact(c) => {
                let mut body = json!({ "messaging_product": "whatsapp" });
                body[if c.by_user_id { "recipient" } else { "to" }] = json!(&*c.recipient);
                if let Some(data) = &c.callback {
                    body["biz_opaque_callback_data"] = json!(&**data);
                }
                if let Some(name) = &c.template {
                    body["type"] = json!("template");
                    body["template"] = json!({ "name": &**name });
                }
                SentMessage {
                    id: wamid_for(c.seq),
                    body,
                    accepted_at: c.accepted_at,
                }
            }
        }
    }
}

/// How a configured review decides on a submitted template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewRule {
    ApproveAll,
    /// Every template is rejected with this reason (Meta's: `INVALID_FORMAT`, `PROMOTIONAL`,
    /// `ABUSIVE_CONTENT`, `INCORRECT_CATEGORY`, `SCAM`, `TAG_CONTENT_MISMATCH`, …).
    RejectAll {
        reason: String,
    },
    /// Templates whose name contains `needle` are rejected with `reason`; others approved.
    RejectNamesContaining {
        needle: String,
        reason: String,
    },
}

impl ReviewRule {
    /// `Err(reason)` when the template is rejected.
    fn verdict(&self, name: &str) -> Result<(), &str> {
        match self {
            Self::ApproveAll => Ok(()),
            Self::RejectAll { reason } => Err(reason),
            Self::RejectNamesContaining { needle, reason } if name.contains(needle.as_str()) => {
                Err(reason)
            }
            Self::RejectNamesContaining { .. } => Ok(()),
        }
    }
}

/// Meta's review of submitted templates: `delay` after creation the template becomes APPROVED
/// or REJECTED by `rule` and a `message_template_status_update` webhook is posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateReview {
    pub delay: Duration,
    pub rule: ReviewRule,
}

#[derive(Debug)]
struct Media {
    bytes: Vec<u8>,
    mime: String,
}

#[derive(Debug)]
struct MetaState {
    addr: SocketAddr,
    token: String,
    rate: Option<Window>,
    pair: Option<(u32, Duration)>,
    pair_hits: HashMap<String, Window>,
    throttled: u64,
    pair_throttled: u64,
    fail_next: VecDeque<MetaError>,
    fail_for: HashMap<String, MetaError>,
    /// Recipients whose sends are accepted and then reported `failed` with this code.
    async_fail: HashMap<String, i64>,
    hang: Option<Duration>,
    media: HashMap<String, Media>,
    sent: Vec<Recorded>,
    record_bodies: bool,
    /// Every `biz_opaque_callback_data` an accepted send carried.
    callbacks: HashSet<Arc<str>>,
    /// Accepted sends whose `biz_opaque_callback_data` an earlier accepted send carried.
    duplicate_callbacks: usize,
    template_names: HashMap<String, Arc<str>>,
    auto_statuses: Vec<&'static str>,
    review: Option<TemplateReview>,
    read: Vec<String>,
    requests: u64,
    templates: Vec<Value>,
    delivery: Arc<Delivery>,
}

impl MetaState {
    /// Counts `data` as seen; the shared copy to record.
    fn note_callback(&mut self, data: &str) -> Arc<str> {
        if let Some(seen) = self.callbacks.get(data) {
            self.duplicate_callbacks += 1;
            return seen.clone();
        }
        let data: Arc<str> = data.into();
        self.callbacks.insert(data.clone());
        data
    }

    fn intern_template(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.template_names.get(name) {
            return n.clone();
        }
        let n: Arc<str> = name.into();
        self.template_names.insert(name.to_owned(), n.clone());
        n
    }

    /// The pricing category Meta reports for a send: the template's category, `service` for
    /// free-form messages.
    fn pricing_category(&self, template: Option<(&str, &str)>) -> String {
        let Some((name, language)) = template else {
            return "service".to_owned();
        };
        self.templates
            .iter()
            .find(|t| {
                t.get("name").and_then(Value::as_str) == Some(name)
                    && t.get("language").and_then(Value::as_str) == Some(language)
            })
            .and_then(|t| t.get("category").and_then(Value::as_str))
            .unwrap_or("MARKETING")
            .to_ascii_lowercase()
    }

    /// Forgets sends, receipts, counters and undelivered webhooks; keeps configuration.
    fn reset(&mut self) {
        self.sent = Vec::new();
        self.read.clear();
        self.callbacks = HashSet::new();
        self.duplicate_callbacks = 0;
        self.throttled = 0;
        self.pair_throttled = 0;
        self.requests = 0;
        self.pair_hits.clear();
        self.rate = self.rate.as_ref().map(|w| Window::new(w.max, w.per));
        self.delivery.reset();
    }
}

/// A running fake Cloud API; clones share the server and its state. Dropping the last one stops
/// the server.
#[derive(Debug, Clone)]
pub struct FakeMeta {
    state: Arc<Mutex<MetaState>>,
    addr: SocketAddr,
    _server: Arc<ServerGuard>,
}

type Shared = Arc<Mutex<MetaState>>;

fn lock(state: &Mutex<MetaState>) -> MutexGuard<'_, MetaState> {
    // A test that panicked while holding the lock must not hide its own failure behind ours.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeMeta {
    /// Starts the fake on a fresh local port.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a local port for the fake Cloud API")
    }

    /// Starts the fake on `addr` (e.g. a fixed port for the `fake-providers` binary).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(MetaState {
            addr,
            token: TOKEN.to_owned(),
            rate: None,
            pair: None,
            pair_hits: HashMap::new(),
            throttled: 0,
            pair_throttled: 0,
            fail_next: VecDeque::new(),
            fail_for: HashMap::new(),
            async_fail: HashMap::new(),
            hang: None,
            media: HashMap::new(),
            sent: Vec::new(),
            record_bodies: true,
            callbacks: HashSet::new(),
            duplicate_callbacks: 0,
            template_names: HashMap::new(),
            auto_statuses: Vec::new(),
            review: None,
            read: Vec::new(),
            requests: 0,
            templates: Vec::new(),
            delivery: Delivery::start(),
        }));
        let router = Router::new()
            .route(
                "/{version}/{id}/messages",
                axum::routing::post(post_messages),
            )
            .route(
                "/{version}/{id}/message_templates",
                get(list_templates).post(create_template),
            )
            .route("/{version}/{id}", get(get_object))
            .route(
                "/lookaside/whatsapp_business/attachments/{mid}",
                get(download),
            )
            .nest("/_fake", control::router())
            .with_state(state.clone());
        let (addr, guard) = serve_on(router, addr).await?;
        lock(&state).addr = addr;
        Ok(Self {
            state,
            addr,
            _server: Arc::new(guard),
        })
    }

    /// `http://127.0.0.1:<port>`: the `base_url` for a client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token requests must carry from now on.
    pub fn set_token(&self, token: &str) {
        lock(&self.state).token = token.to_owned();
    }

    /// At most `per_second` sends per second over all recipients (Meta's throughput limit);
    /// more are answered HTTP 400 code 130429. `None` lifts the limit.
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        lock(&self.state).rate = per_second.map(|n| Window::new(n, Duration::from_secs(1)));
    }

    /// At most `max` sends to one recipient per `per` (Meta's pair rate limit); more are
    /// answered HTTP 400 code 131056. `None` lifts the limit.
    pub fn set_pair_rate_limit(&self, limit: Option<(u32, Duration)>) {
        let mut s = lock(&self.state);
        s.pair = limit;
        s.pair_hits.clear();
    }

    /// How many sends were refused with 130429.
    pub fn throttled_count(&self) -> u64 {
        lock(&self.state).throttled
    }

    /// How many sends were refused with 131056.
    pub fn pair_throttled_count(&self) -> u64 {
        lock(&self.state).pair_throttled
    }

    /// The next `n` API calls (any endpoint) fail with `error`.
    pub fn fail_next(&self, n: usize, error: MetaError) {
        let mut s = lock(&self.state);
        s.fail_next.extend(std::iter::repeat_n(error, n));
    }

    /// The next `n` API calls answer HTTP 500 with Meta's transient unknown error (code 1).
    pub fn fail_next_with_500(&self, n: usize) {
        self.fail_next(n, MetaError::new(500, 1));
    }

    /// Every send to `to` (phone digits as sent, or a BSUID) fails with `error` until
    /// [`Self::clear_failures`].
    pub fn fail_for_recipient(&self, to: &str, error: MetaError) {
        lock(&self.state).fail_for.insert(to.to_owned(), error);
    }

    /// Every send to `to` (phone digits, or a BSUID) is accepted (HTTP 200 and a `wamid`) and
    /// then reported by webhook as `failed` with `code` (131049 ecosystem engagement, 131026
    /// undeliverable, 131050 marketing opt-out, …) instead of the automatic statuses, until
    /// [`Self::clear_failures`]. Needs a webhook target ([`Self::set_webhook`]).
    pub fn set_async_failure_for(&self, to: &str, code: i64) {
        lock(&self.state).async_fail.insert(to.to_owned(), code);
    }

    /// Removes every injected failure.
    pub fn clear_failures(&self) {
        let mut s = lock(&self.state);
        s.fail_next.clear();
        s.fail_for.clear();
        s.async_fail.clear();
    }

    /// Every call waits this long before answering (longer than a client's timeout: a hang).
    pub fn set_hang(&self, delay: Option<Duration>) {
        lock(&self.state).hang = delay;
    }

    /// Makes media downloadable under a new id, which is returned.
    pub fn add_media(&self, bytes: &[u8], mime: &str) -> String {
        let id = format!(
            "{}",
            1_000_000_000_000 + SEQ.fetch_add(1, Ordering::Relaxed)
        );
        lock(&self.state).media.insert(
            id.clone(),
            Media {
                bytes: bytes.to_vec(),
                mime: mime.to_owned(),
            },
        );
        id
    }

    /// Whether accepted sends are recorded whole (the default) or, for runs of millions, as a
    /// compact entry each (see [`SentMessage`] for what [`Self::sent`] then returns). Applies
    /// to sends accepted from now on.
    pub fn set_record_bodies(&self, record: bool) {
        lock(&self.state).record_bodies = record;
    }

    /// Every accepted message, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        lock(&self.state)
            .sent
            .iter()
            .map(Recorded::to_sent)
            .collect()
    }

    /// When each accepted message was accepted, in order (cheaper than [`Self::sent`]).
    pub fn accepted_times(&self) -> Vec<Instant> {
        lock(&self.state)
            .sent
            .iter()
            .map(Recorded::accepted_at)
            .collect()
    }

    /// How many messages were accepted.
    pub fn sent_count(&self) -> usize {
        lock(&self.state).sent.len()
    }

    /// How many accepted sends carried a `biz_opaque_callback_data` that an earlier accepted
    /// send already carried: a campaign that sends each job once keeps this at 0.
    pub fn duplicate_callback_data(&self) -> usize {
        lock(&self.state).duplicate_callbacks
    }

    /// How many different `biz_opaque_callback_data` accepted sends carried.
    pub fn distinct_callback_data(&self) -> usize {
        lock(&self.state).callbacks.len()
    }

    /// The message ids marked read, in order.
    pub fn read_receipts(&self) -> Vec<String> {
        lock(&self.state).read.clone()
    }

    /// How many API requests arrived (accepted or not, media downloads excluded).
    pub fn request_count(&self) -> u64 {
        lock(&self.state).requests
    }

    /// Forgets accepted sends, read receipts, counters (requests, throttled, callback data,
    /// webhook stats) and webhooks not yet delivered; knobs, media and templates stay.
    pub fn reset(&self) {
        lock(&self.state).reset();
    }

    /// Adds a template as Meta lists it (`name`, `language`, `status`, `category`,
    /// `components`); an `id` is assigned when missing. Returns the id.
    pub fn add_template(&self, mut template: Value) -> String {
        let id = template
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}", 9_000_000_000 + SEQ.fetch_add(1, Ordering::Relaxed)));
        template["id"] = json!(id);
        lock(&self.state).templates.push(template);
        id
    }

    /// The business account's templates, including created ones.
    pub fn templates(&self) -> Vec<Value> {
        lock(&self.state).templates.clone()
    }

    /// Reviews templates created from now on (`None`: they stay PENDING).
    pub fn set_template_review(&self, review: Option<TemplateReview>) {
        lock(&self.state).review = review;
    }

    /// Sets a template's `status` (APPROVED, REJECTED, PAUSED, DISABLED, …) as Meta would, with
    /// `rejected_reason` for REJECTED, and posts the `message_template_status_update` webhook
    /// (`event` = `status`, `reason` or `NONE`). False when there is no such template.
    pub fn set_template_status(
        &self,
        template_id: &str,
        status: &str,
        reason: Option<&str>,
    ) -> bool {
        change_template_status(&self.state, template_id, status, reason, false)
    }

    // -- webhooks the fake sends ---------------------------------------------------------------

    /// Where the fake posts the webhooks it generates (statuses, template updates), signed with
    /// `app_secret` like [`Self::post_webhook`]; `None` stops posting (pending retries still go
    /// to the old target).
    pub fn set_webhook(&self, url: Option<String>, app_secret: String) {
        lock(&self.state).delivery.set_target(url, app_secret);
    }

    /// The statuses posted for every accepted send, in order (e.g. `["sent", "delivered"]`,
    /// `["sent", "delivered", "read"]`; also `played`). Empty, the default, posts none.
    pub fn set_auto_statuses(&self, statuses: Vec<&'static str>) {
        lock(&self.state).auto_statuses = statuses;
    }

    /// How posts of generated webhooks are retried (tests shorten it).
    pub fn set_webhook_retry(&self, retry: WebhookRetry) {
        lock(&self.state).delivery.set_retry(retry);
    }

    /// Counters of the generated webhooks.
    pub fn webhook_stats(&self) -> WebhookStats {
        lock(&self.state).delivery.stats()
    }

    /// Waits until no generated webhook is queued or awaiting a retry; false on timeout.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        let delivery = lock(&self.state).delivery.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        while delivery.stats().pending > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    // -- webhook bodies, posted by tests ------------------------------------------------------

    /// A webhook with one text message from a customer: its `wamid` and the body.
    pub fn webhook_text(from_wa_id: &str, name: &str, body: &str) -> (String, Value) {
        let (id, msg) = webhook::text(from_wa_id, body);
        let value = webhook::messages_value(
            vec![webhook::contact(Some(from_wa_id), None, name, None)],
            vec![msg],
            vec![],
        );
        (
            id,
            webhook::envelope(vec![webhook::entry(vec![webhook::change(
                "messages", value,
            )])]),
        )
    }

    /// A webhook with these messages and their senders' `contacts[]` entries.
    pub fn webhook_messages(contacts: Vec<Value>, messages: Vec<Value>) -> Value {
        let value = webhook::messages_value(contacts, messages, vec![]);
        webhook::envelope(vec![webhook::entry(vec![webhook::change(
            "messages", value,
        )])])
    }

    /// A webhook with these delivery statuses (see [`webhook::status`], [`webhook::failed`]).
    pub fn webhook_statuses(statuses: Vec<Value>) -> Value {
        let value = webhook::messages_value(vec![], vec![], statuses);
        webhook::envelope(vec![webhook::entry(vec![webhook::change(
            "messages", value,
        )])])
    }

    /// The `message_template_status_update` webhook for a template as [`Self::templates`] lists
    /// it (see [`webhook::template_status_of`]).
    pub fn webhook_template_status(template: &Value, event: &str, reason: Option<&str>) -> Value {
        webhook::envelope(vec![webhook::entry_at(
            vec![webhook::template_status_of(template, event, reason)],
            super::unix_now(),
        )])
    }

    /// `sha256=<hex>`: the `X-Hub-Signature-256` Meta sends for these bytes.
    pub fn sign(app_secret: &str, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Posts a webhook as Meta does (JSON, correctly signed); returns the HTTP status.
    pub async fn post_webhook(url: &str, app_secret: &str, body: &Value) -> u16 {
        let bytes = serde_json::to_vec(body).expect("webhook body serialises");
        Self::post_webhook_raw(url, &bytes, Signature::Valid(app_secret)).await
    }

    /// Posts raw bytes with a valid, wrong or missing signature; returns the HTTP status.
    pub async fn post_webhook_raw(url: &str, body: &[u8], signature: Signature<'_>) -> u16 {
        let mut req = reqwest::Client::new()
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        match signature {
            Signature::Valid(secret) => {
                req = req.header("X-Hub-Signature-256", Self::sign(secret, body));
            }
            Signature::Wrong => {
                req = req.header(
                    "X-Hub-Signature-256",
                    Self::sign("not-the-app-secret", body),
                );
            }
            Signature::Missing => {}
        }
        req.send()
            .await
            .expect("post the webhook")
            .status()
            .as_u16()
    }

    /// Posts the same webhook twice, as Meta does when it retries; both statuses.
    pub async fn post_webhook_twice(url: &str, app_secret: &str, body: &Value) -> (u16, u16) {
        let first = Self::post_webhook(url, app_secret, body).await;
        let second = Self::post_webhook(url, app_secret, body).await;
        (first, second)
    }

    /// Posts `read`, then `delivered`, then `sent` for one message, each in its own webhook
    /// (Meta gives no ordering guarantee); the statuses of the three posts.
    pub async fn post_statuses_out_of_order(
        url: &str,
        app_secret: &str,
        wamid: &str,
        recipient_wa_id: &str,
    ) -> Vec<u16> {
        let now = super::unix_now();
        let mut codes = Vec::new();
        for (status, at) in [("read", now), ("delivered", now - 1), ("sent", now - 2)] {
            let body =
                Self::webhook_statuses(vec![webhook::status(wamid, status, recipient_wa_id, at)]);
            codes.push(Self::post_webhook(url, app_secret, &body).await);
        }
        codes
    }
}

/// How [`FakeMeta::post_webhook_raw`] signs.
#[derive(Debug, Clone, Copy)]
pub enum Signature<'a> {
    /// With this app secret.
    Valid(&'a str),
    /// With another secret.
    Wrong,
    /// No `X-Hub-Signature-256` header.
    Missing,
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

/// What every API call goes through first: count, hang, token, injected failure.
async fn preamble(state: &Shared, headers: &HeaderMap, version: &str) -> Result<(), Response> {
    let hang = {
        let mut s = lock(state);
        s.requests += 1;
        s.hang
    };
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    let mut s = lock(state);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(s.token.as_str()) {
        return Err(MetaError::new(401, 190).into_response());
    }
    if !valid_version(version) {
        let mut e = MetaError::new(400, 2500);
        e.message = format!("Unknown path components: /{version}");
        return Err(e.into_response());
    }
    if let Some(e) = s.fail_next.pop_front() {
        return Err(e.into_response());
    }
    Ok(())
}

fn valid_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.chars().all(|c| c.is_ascii_digit())
                && minor.chars().all(|c| c.is_ascii_digit())
        })
}

fn unknown_object(id: &str) -> Response {
    let mut e = MetaError::new(400, 100);
    e.subcode = Some(33);
    e.message = format!(
        "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
    );
    e.into_response()
}

async fn post_messages(
    State(state): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = preamble(&state, &headers, &version).await {
        return r;
    }
    if id != PHONE_NUMBER_ID {
        return unknown_object(&id);
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("The request body is not valid JSON").into_response();
    };
    if body.get("status").and_then(Value::as_str) == Some("read") {
        return mark_read(&state, &body);
    }
    let to = match validate_message(&body) {
        Ok(to) => to,
        Err(e) => return e.into_response(),
    };
    let by_user_id = body.get("to").is_none();
    let template = if body.get("type").and_then(Value::as_str) == Some("template") {
        let name = body.pointer("/template/name").and_then(Value::as_str);
        let language = body
            .pointer("/template/language/code")
            .and_then(Value::as_str);
        name.zip(language)
    } else {
        None
    };

    let mut s = lock(&state);
    if let Some(e) = s.fail_for.get(&to) {
        return e.clone().into_response();
    }
    let now = Instant::now();
    if let Some(rate) = s.rate.as_mut()
        && rate.hit(now).is_err()
    {
        s.throttled += 1;
        return MetaError::new(400, 130429).into_response();
    }
    if let Some((max, per)) = s.pair {
        let window = s
            .pair_hits
            .entry(to.clone())
            .or_insert_with(|| Window::new(max, per));
        if window.hit(now).is_err() {
            s.pair_throttled += 1;
            return MetaError::new(400, 131056).into_response();
        }
    }

    // Accepted.
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let id = wamid_for(seq);
    let callback = body
        .get("biz_opaque_callback_data")
        .and_then(Value::as_str)
        .map(|data| s.note_callback(data));
    let failure = s.async_fail.get(&to).copied();
    let webhooks = !s.auto_statuses.is_empty() || failure.is_some();
    let follow_up = (webhooks && s.delivery.has_target()).then(|| FollowUp {
        statuses: s.auto_statuses.clone(),
        failure,
        category: s.pricing_category(template),
        delivery: s.delivery.clone(),
    });
    let record = if s.record_bodies {
        Recorded::Full(SentMessage {
            id: id.clone(),
            body,
            accepted_at: now,
        })
    } else {
        let template = template.map(|(name, _)| s.intern_template(name));
        Recorded::Compact(CompactSend {
            seq,
            recipient: to.as_str().into(),
            by_user_id,
            callback: callback.clone(),
            template,
            accepted_at: now,
        })
    };
    s.sent.push(record);
    drop(s);

    if let Some(f) = follow_up {
        f.queue(&id, &to, by_user_id, callback.as_deref());
    }
    let contact = if by_user_id {
        json!({ "input": to, "user_id": to })
    } else {
        json!({ "input": to, "wa_id": to })
    };
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [contact],
        "messages": [{ "id": id }],
    }))
    .into_response()
}

/// The webhooks an accepted send causes, built outside the state lock.
struct FollowUp {
    statuses: Vec<&'static str>,
    /// Accepted, then `failed` with this code instead of `statuses`.
    failure: Option<i64>,
    category: String,
    delivery: Arc<Delivery>,
}

impl FollowUp {
    fn queue(self, wamid: &str, recipient: &str, by_user_id: bool, callback: Option<&str>) {
        let extras = webhook::StatusExtras {
            biz_opaque_callback_data: callback,
            category: Some(&self.category),
            recipient_is_user_id: by_user_id,
        };
        let now = super::unix_now();
        let statuses = match self.failure {
            Some(code) => vec![webhook::failed_with(wamid, recipient, code, now, extras)],
            None => self
                .statuses
                .iter()
                .map(|status| webhook::status_with(wamid, status, recipient, now, extras))
                .collect(),
        };
        self.delivery.queue_statuses(statuses);
    }
}

fn mark_read(state: &Shared, body: &Value) -> Response {
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return invalid("The parameter messaging_product is required.").into_response();
    }
    let Some(id) = body.get("message_id").and_then(Value::as_str) else {
        return invalid("The parameter message_id is required.").into_response();
    };
    if !id.starts_with("wamid.") {
        return invalid(format!("Invalid message_id {id}")).into_response();
    }
    lock(state).read.push(id.to_owned());
    Json(json!({ "success": true })).into_response()
}

// -- message validation (Meta's documented limits) --------------------------------------------

type Check = Result<(), MetaError>;

fn text_field<'a>(
    obj: &'a Value,
    path: &str,
    max_chars: usize,
    required: bool,
) -> Result<Option<&'a str>, MetaError> {
    match obj.pointer(path) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.is_empty() || !required => {
            if s.chars().count() > max_chars {
                Err(invalid(format!(
                    "Param {} must be at most {max_chars} characters long.",
                    path.trim_start_matches('/').replace('/', ".")
                )))
            } else {
                Ok(Some(s))
            }
        }
        _ => Err(invalid(format!(
            "The parameter {} is required.",
            path.trim_start_matches('/').replace('/', ".")
        ))),
    }
}

/// Checks a send body; the recipient (`to` digits or `recipient`) when it is well formed.
fn validate_message(body: &Value) -> Result<String, MetaError> {
    let Some(obj) = body.as_object() else {
        return Err(invalid("The request body must be a JSON object"));
    };
    if obj.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(invalid("The parameter messaging_product is required."));
    }
    if let Some(rt) = obj.get("recipient_type")
        && rt != "individual"
        && rt != "group"
    {
        return Err(invalid(
            "Param recipient_type must be one of {INDIVIDUAL, GROUP}",
        ));
    }
    let to = match (obj.get("to"), obj.get("recipient")) {
        (Some(Value::String(to)), _) => {
            let digits: String = to
                .chars()
                .filter(|c| !matches!(c, '+' | ' ' | '-' | '(' | ')'))
                .collect();
            if !(7..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
                return Err(invalid(format!("Invalid phone number {to}")));
            }
            digits
        }
        (None, Some(Value::String(r))) => {
            let ok = r.split_once('.').is_some_and(|(cc, rest)| {
                cc.len() == 2
                    && cc.chars().all(|c| c.is_ascii_uppercase())
                    && !rest.is_empty()
                    && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
            });
            if !ok {
                return Err(invalid(format!("Invalid business-scoped user id {r}")));
            }
            r.clone()
        }
        _ => return Err(invalid("The parameter to is required.")),
    };
    if let Some(ctx) = obj.get("context") {
        text_field(ctx, "/message_id", 512, true)?;
    }
    // Meta does not read it, only echoes it on the statuses of this message.
    if obj.contains_key("biz_opaque_callback_data") {
        text_field(body, "/biz_opaque_callback_data", 512, true)?;
    }
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("text");
    let Some(content) = obj.get(kind).filter(|v| v.is_object()) else {
        return Err(invalid(format!("The parameter {kind} is required.")));
    };
    match kind {
        "text" => {
            text_field(content, "/body", 4096, true)?;
            if let Some(p) = content.get("preview_url")
                && !p.is_boolean()
            {
                return Err(invalid("Param text.preview_url must be a boolean"));
            }
        }
        "image" | "video" | "audio" | "document" | "sticker" => check_media(kind, content)?,
        "template" => check_template(content)?,
        "interactive" => check_interactive(content)?,
        "reaction" => {
            text_field(content, "/message_id", 512, true)?;
            if !content.get("emoji").is_some_and(Value::is_string) {
                return Err(invalid("The parameter reaction.emoji is required."));
            }
        }
        "location" => {
            let lat = content.get("latitude").and_then(Value::as_f64);
            let lon = content.get("longitude").and_then(Value::as_f64);
            if !lat.is_some_and(|l| (-90.0..=90.0).contains(&l))
                || !lon.is_some_and(|l| (-180.0..=180.0).contains(&l))
            {
                return Err(invalid(
                    "Param location requires a valid latitude and longitude",
                ));
            }
        }
        "contacts" => {}
        other => {
            let mut e = MetaError::new(400, 131051);
            e.message = "(#131051) Unsupported message type".into();
            e.details = Some(format!("Message type {other} is not supported"));
            return Err(e);
        }
    }
    Ok(to)
}

fn check_media(kind: &str, m: &Value) -> Check {
    match (m.get("id"), m.get("link")) {
        (Some(Value::String(_)), None) | (None, Some(Value::String(_))) => {}
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "Param {kind} must have either id or link, not both"
            )));
        }
        _ => {
            return Err(invalid(format!(
                "The parameter {kind}.id or {kind}.link is required."
            )));
        }
    }
    if m.get("caption").is_some() && matches!(kind, "audio" | "sticker") {
        return Err(invalid(format!("Param {kind}.caption is not allowed")));
    }
    if m.get("filename").is_some() && kind != "document" {
        return Err(invalid(format!("Param {kind}.filename is not allowed")));
    }
    text_field(m, "/caption", 1024, false)?;
    Ok(())
}

fn check_param(p: &Value) -> Check {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => {
            text_field(p, "/text", 32_768, true)?;
            text_field(p, "/parameter_name", 512, false)?;
        }
        "payload" => {
            text_field(p, "/payload", 1024, true)?;
        }
        "coupon_code" => {
            text_field(p, "/coupon_code", 20, true)?;
        }
        "currency" | "date_time" | "action" | "location" => {}
        "image" | "video" | "document" => check_media(kind, p.get(kind).unwrap_or(&Value::Null))?,
        _ => return Err(invalid(format!("Invalid parameter type {kind:?}"))),
    }
    Ok(())
}

fn check_template(t: &Value) -> Check {
    text_field(t, "/name", 512, true)?;
    text_field(t, "/language/code", 15, true)?;
    let Some(components) = t.get("components") else {
        return Ok(());
    };
    let Some(components) = components.as_array() else {
        return Err(invalid("Param template.components must be an array"));
    };
    let mut named = HashSet::new();
    let mut positional = 0;
    for c in components {
        match c.get("type").and_then(Value::as_str) {
            Some("header" | "body") => {}
            Some("button") => {
                let sub = c.get("sub_type").and_then(Value::as_str);
                if !matches!(
                    sub,
                    Some("quick_reply" | "url" | "copy_code" | "flow" | "catalog")
                ) {
                    return Err(invalid("Param template.components.sub_type is invalid"));
                }
                let index = match c.get("index") {
                    Some(Value::String(s)) => s.parse::<u32>().ok(),
                    Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                    _ => None,
                };
                if index.is_none_or(|i| i >= 10) {
                    return Err(invalid("Param template.components.index must be 0 to 9"));
                }
            }
            _ => return Err(invalid("Param template.components.type is invalid")),
        }
        let Some(params) = c.get("parameters").and_then(Value::as_array) else {
            return Err(invalid(
                "The parameter template.components.parameters is required.",
            ));
        };
        for p in params {
            check_param(p)?;
            if c.get("type").and_then(Value::as_str) == Some("body") {
                match p.get("parameter_name").and_then(Value::as_str) {
                    Some(name) => {
                        named.insert(name.to_owned());
                    }
                    None => positional += 1,
                }
            }
        }
    }
    if !named.is_empty() && positional > 0 {
        let mut e = MetaError::new(400, 132000);
        e.details = Some("Named and positional body parameters cannot be mixed".into());
        return Err(e);
    }
    Ok(())
}

fn check_interactive(i: &Value) -> Check {
    let kind = i.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(h) = i.get("header") {
        match h.get("type").and_then(Value::as_str) {
            Some("text") => {
                text_field(h, "/text", 60, true)?;
            }
            Some("image" | "video" | "document") if kind == "button" => {}
            _ => return Err(invalid("Param interactive.header.type is invalid")),
        }
    }
    text_field(i, "/footer/text", 60, false)?;
    match kind {
        "button" => {
            text_field(i, "/body/text", 1024, true)?;
            let Some(buttons) = i.pointer("/action/buttons").and_then(Value::as_array) else {
                return Err(invalid(
                    "The parameter interactive.action.buttons is required.",
                ));
            };
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(invalid(
                    "Param interactive.action.buttons must have 1 to 3 elements",
                ));
            }
            let mut ids = HashSet::new();
            for b in buttons {
                if b.get("type").and_then(Value::as_str) != Some("reply") {
                    return Err(invalid(
                        "Param interactive.action.buttons.type must be reply",
                    ));
                }
                let id = text_field(b, "/reply/id", 256, true)?.unwrap_or_default();
                text_field(b, "/reply/title", 20, true)?;
                if !ids.insert(id.to_owned()) {
                    return Err(invalid("Button ids must be unique"));
                }
            }
        }
        "list" => {
            text_field(i, "/body/text", 4096, true)?;
            text_field(i, "/action/button", 20, true)?;
            let Some(sections) = i.pointer("/action/sections").and_then(Value::as_array) else {
                return Err(invalid(
                    "The parameter interactive.action.sections is required.",
                ));
            };
            if sections.is_empty() || sections.len() > 10 {
                return Err(invalid(
                    "Param interactive.action.sections must have 1 to 10 elements",
                ));
            }
            let mut ids = HashSet::new();
            for s in sections {
                if sections.len() > 1 {
                    text_field(s, "/title", 24, true)?;
                }
                let Some(rows) = s.get("rows").and_then(Value::as_array) else {
                    return Err(invalid(
                        "The parameter interactive.action.sections.rows is required.",
                    ));
                };
                for r in rows {
                    let id = text_field(r, "/id", 200, true)?.unwrap_or_default();
                    text_field(r, "/title", 24, true)?;
                    text_field(r, "/description", 72, false)?;
                    if !ids.insert(id.to_owned()) {
                        return Err(invalid("Row ids must be unique"));
                    }
                }
            }
            if ids.is_empty() || ids.len() > 10 {
                return Err(invalid("Total row count must be 1 to 10"));
            }
        }
        "cta_url" | "flow" | "product" | "product_list" | "location_request_message" => {}
        _ => return Err(invalid("Param interactive.type is invalid")),
    }
    Ok(())
}

// -- other endpoints ---------------------------------------------------------------------------

async fn get_object(
    State(state): State<Shared>,
    Path((version, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = preamble(&state, &headers, &version).await {
        return r;
    }
    let s = lock(&state);
    if id == PHONE_NUMBER_ID {
        let all = json!({
            "display_phone_number": "+1 555-078-3881",
            "verified_name": "Wamage Test",
            "quality_rating": "GREEN",
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
            "throughput": { "level": "STANDARD" },
        });
        let mut out = Map::new();
        let fields = query.get("fields").map_or(
            "display_phone_number,verified_name,quality_rating",
            String::as_str,
        );
        for f in fields.split(',').map(str::trim) {
            match all.get(f) {
                Some(v) => {
                    out.insert(f.to_owned(), v.clone());
                }
                None => {
                    let mut e = invalid(format!("(#100) Tried accessing nonexisting field ({f})"));
                    e.message = e.details.clone().unwrap_or_default();
                    return e.into_response();
                }
            }
        }
        out.insert("id".into(), json!(PHONE_NUMBER_ID));
        return Json(Value::Object(out)).into_response();
    }
    if let Some(m) = s.media.get(&id) {
        let sha = {
            use sha2::Digest as _;
            hex::encode(Sha256::digest(&m.bytes))
        };
        return Json(json!({
            "messaging_product": "whatsapp",
            "url": format!("http://{}/lookaside/whatsapp_business/attachments/{id}?ext=1&hash=x", s.addr),
            "mime_type": m.mime,
            "sha256": sha,
            "file_size": m.bytes.len(),
            "id": id,
        }))
        .into_response();
    }
    unknown_object(&id)
}

async fn download(
    State(state): State<Shared>,
    Path(mid): Path<String>,
    headers: HeaderMap,
) -> Response {
    let s = lock(&state);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(s.token.as_str()) {
        return MetaError::new(401, 190).into_response();
    }
    match s.media.get(&mid) {
        Some(m) => ([(header::CONTENT_TYPE, m.mime.clone())], m.bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn list_templates(
    State(state): State<Shared>,
    Path((version, waba)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = preamble(&state, &headers, &version).await {
        return r;
    }
    if waba != WABA_ID {
        return unknown_object(&waba);
    }
    let s = lock(&state);
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, 100);
    let start = match query.get("after") {
        None => 0,
        Some(cursor) => match decode_cursor(cursor) {
            Some(i) => i + 1,
            None => return invalid("Invalid cursor").into_response(),
        },
    };
    let page: Vec<Value> = s
        .templates
        .iter()
        .skip(start)
        .take(limit)
        .cloned()
        .collect();
    let mut out = json!({ "data": page });
    if !page.is_empty() {
        let last = start + page.len() - 1;
        out["paging"] = json!({ "cursors": { "before": cursor(start), "after": cursor(last) } });
        if last + 1 < s.templates.len() {
            out["paging"]["next"] = json!(format!(
                "http://{}/{version}/{waba}/message_templates?limit={limit}&after={}",
                s.addr,
                cursor(last)
            ));
        }
    }
    Json(out).into_response()
}

fn cursor(index: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("tpl:{index}"))
}

fn decode_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("tpl:")?
        .parse()
        .ok()
}

async fn create_template(
    State(state): State<Shared>,
    Path((version, waba)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = preamble(&state, &headers, &version).await {
        return r;
    }
    if waba != WABA_ID {
        return unknown_object(&waba);
    }
    let Ok(t) = serde_json::from_slice::<Value>(&body) else {
        return invalid("The request body is not valid JSON").into_response();
    };
    let NewTemplate {
        name,
        language,
        category,
    } = match check_new_template(&t) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    let mut s = lock(&state);
    let duplicate = s.templates.iter().any(|x| {
        x.get("name").and_then(Value::as_str) == Some(name)
            && x.get("language").and_then(Value::as_str) == Some(language)
    });
    if duplicate {
        let mut e = invalid("Content in this language already exists");
        e.subcode = Some(2_388_024);
        return e.into_response();
    }
    let id = format!("{}", 9_000_000_000 + SEQ.fetch_add(1, Ordering::Relaxed));
    let mut stored = t.clone();
    stored["id"] = json!(id);
    stored["status"] = json!("PENDING");
    if stored.get("parameter_format").is_none() {
        stored["parameter_format"] = json!("POSITIONAL");
    }
    s.templates.push(stored);
    if let Some(review) = s.review.clone() {
        tokio::spawn(review_later(
            Arc::downgrade(&state),
            id.clone(),
            name.to_owned(),
            review,
        ));
    }
    Json(json!({ "id": id, "status": "PENDING", "category": category })).into_response()
}

/// Decides on a submitted template after the review's delay, unless a test changed its status
/// meanwhile.
async fn review_later(
    state: Weak<Mutex<MetaState>>,
    id: String,
    name: String,
    review: TemplateReview,
) {
    tokio::time::sleep(review.delay).await;
    let Some(state) = state.upgrade() else {
        return;
    };
    let (status, reason) = match review.rule.verdict(&name) {
        Ok(()) => ("APPROVED", None),
        Err(reason) => ("REJECTED", Some(reason)),
    };
    change_template_status(&state, &id, status, reason, true);
}

/// Sets a stored template's status and posts the webhook; false when there is no such template
/// (or, `only_pending`, it is no longer PENDING).
fn change_template_status(
    state: &Mutex<MetaState>,
    id: &str,
    status: &str,
    reason: Option<&str>,
    only_pending: bool,
) -> bool {
    let mut s = lock(state);
    let Some(t) = s
        .templates
        .iter_mut()
        .find(|t| t.get("id").and_then(Value::as_str) == Some(id))
    else {
        return false;
    };
    if only_pending && t.get("status").and_then(Value::as_str) != Some("PENDING") {
        return false;
    }
    t["status"] = json!(status);
    // Meta's list API has `rejected_reason` for rejected templates.
    if status == "REJECTED" {
        t["rejected_reason"] = json!(reason.unwrap_or("NONE"));
    } else if let Some(obj) = t.as_object_mut() {
        obj.remove("rejected_reason");
    }
    let body = FakeMeta::webhook_template_status(t, status, reason);
    let delivery = s.delivery.clone();
    drop(s);
    delivery.post(&body);
    true
}

// -- template submission checks (Meta's documented rules) -------------------------------------

/// What a valid submission is stored under.
struct NewTemplate<'a> {
    name: &'a str,
    language: &'a str,
    category: &'a str,
}

/// Checks a `POST /{waba_id}/message_templates` body the way Meta does, as far as tests need:
/// name, language, category; header/body/footer text lengths; variables (`{{1}}`… sequential
/// from 1, or `{{name}}` with `parameter_format: NAMED`) and their examples; buttons. Fields it
/// does not know are accepted.
fn check_new_template(t: &Value) -> Result<NewTemplate<'_>, MetaError> {
    let name = t.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty()
        || name.len() > 512
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(invalid(
            "Param name must be lowercase letters, digits and underscores",
        ));
    }
    let Some(language) = t
        .get("language")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
    else {
        return Err(invalid("The parameter language is required."));
    };
    let category = t.get("category").and_then(Value::as_str).unwrap_or("");
    if !matches!(category, "MARKETING" | "UTILITY" | "AUTHENTICATION") {
        return Err(invalid(
            "Param category must be one of {MARKETING, UTILITY, AUTHENTICATION}",
        ));
    }
    let named = match t.get("parameter_format").map(|f| f.as_str()) {
        None => false,
        Some(Some(f)) if f.eq_ignore_ascii_case("POSITIONAL") => false,
        Some(Some(f)) if f.eq_ignore_ascii_case("NAMED") => true,
        Some(_) => {
            return Err(invalid(
                "Param parameter_format must be one of {POSITIONAL, NAMED}",
            ));
        }
    };
    let components = match t.get("components") {
        None => &[][..],
        Some(Value::Array(cs)) => cs.as_slice(),
        Some(_) => return Err(invalid("Param components must be an array")),
    };
    let mut has_body = false;
    for (i, c) in components.iter().enumerate() {
        let kind = c
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase();
        match kind.as_str() {
            "BODY" => {
                has_body = true;
                if category != "AUTHENTICATION" || c.get("text").is_some() {
                    check_template_text(c, i, "body", 1024, named)?;
                }
            }
            "HEADER" => {
                let format = c.get("format").and_then(Value::as_str).unwrap_or("TEXT");
                if format.eq_ignore_ascii_case("TEXT") {
                    check_template_text(c, i, "header", 60, named)?;
                }
            }
            "FOOTER" => {
                let text = text_field(c, "/text", 60, true)
                    .map_err(|_| component_error(i, "text", "is required, at most 60 characters"))?
                    .unwrap_or_default();
                if text.contains("{{") {
                    return Err(component_error(i, "text", "can't contain variables"));
                }
            }
            "BUTTONS" => check_template_buttons(c, i)?,
            "" => return Err(component_error(i, "type", "is required")),
            // CAROUSEL, LIMITED_TIME_OFFER, …: not modelled, accepted.
            _ => {}
        }
    }
    if !has_body && category != "AUTHENTICATION" {
        return Err(invalid("A template needs a BODY component with text"));
    }
    Ok(NewTemplate {
        name,
        language,
        category,
    })
}

fn component_error(index: usize, field: &str, problem: &str) -> MetaError {
    invalid(format!("Param components[{index}].{field} {problem}"))
}

/// A header or body text: its length, its variables and the `example` they need.
fn check_template_text(
    c: &Value,
    index: usize,
    kind: &str,
    max_chars: usize,
    named: bool,
) -> Check {
    let Some(text) = c
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return Err(component_error(index, "text", "is required"));
    };
    if text.chars().count() > max_chars {
        return Err(component_error(
            index,
            "text",
            &format!("must be at most {max_chars} characters long"),
        ));
    }
    let vars = template_variables(text).map_err(|v| {
        component_error(
            index,
            "text",
            &format!("has an invalid variable {{{{{v}}}}}"),
        )
    })?;
    if vars.is_empty() {
        return Ok(());
    }
    let mut distinct: Vec<&str> = Vec::new();
    for v in &vars {
        if !distinct.contains(v) {
            distinct.push(v);
        }
    }
    if kind == "header" && distinct.len() > 1 {
        return Err(component_error(
            index,
            "text",
            "can have at most one variable",
        ));
    }
    let numeric = |v: &&str| v.chars().all(|ch| ch.is_ascii_digit());
    if named {
        if let Some(v) = distinct.iter().find(|v| numeric(v)) {
            return Err(component_error(
                index,
                "text",
                &format!("has the positional variable {{{{{v}}}}} but parameter_format is NAMED"),
            ));
        }
        let key = format!("{kind}_text_named_params");
        let names: HashSet<&str> = c
            .pointer(&format!("/example/{key}"))
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter(|p| p.get("example").is_some_and(Value::is_string))
                    .filter_map(|p| p.get("param_name").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(missing) = distinct.iter().find(|v| !names.contains(**v)) {
            return Err(component_error(
                index,
                &format!("example.{key}"),
                &format!("needs an example for {{{{{missing}}}}}"),
            ));
        }
        return Ok(());
    }
    if let Some(v) = distinct.iter().find(|v| !numeric(v)) {
        return Err(component_error(
            index,
            "text",
            &format!("has the named variable {{{{{v}}}}}: set parameter_format to NAMED"),
        ));
    }
    let mut numbers: Vec<u64> = distinct.iter().filter_map(|v| v.parse().ok()).collect();
    numbers.sort_unstable();
    if numbers.iter().zip(1..).any(|(n, expected)| *n != expected) {
        return Err(component_error(
            index,
            "text",
            "has variables that are not sequential: use {{1}}, {{2}}, … in order",
        ));
    }
    let key = format!("{kind}_text");
    let example = c.pointer(&format!("/example/{key}"));
    // Body examples are one list of values per sample (`[["a", "b"]]`), header ones a flat list.
    let values = if kind == "body" {
        example.and_then(|e| e.get(0))
    } else {
        example
    }
    .and_then(Value::as_array);
    let count = values.map_or(0, |vs| vs.iter().filter(|v| v.is_string()).count());
    if count != numbers.len() {
        return Err(component_error(
            index,
            &format!("example.{key}"),
            &format!(
                "needs {} example value(s) for the variables, got {count}",
                numbers.len()
            ),
        ));
    }
    Ok(())
}

/// The insides of the `{{…}}` variables of a text, in order; `Err` with a malformed one.
fn template_variables(text: &str) -> Result<Vec<&str>, &str> {
    let mut vars = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(after);
        };
        let inner = &after[..end];
        let positional = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_digit());
        let named = inner.starts_with(|c: char| c.is_ascii_lowercase())
            && inner
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !positional && !named {
            return Err(inner);
        }
        vars.push(inner);
        rest = &after[end + 2..];
    }
    Ok(vars)
}

fn check_template_buttons(c: &Value, index: usize) -> Check {
    let Some(buttons) = c.get("buttons").and_then(Value::as_array) else {
        return Err(component_error(index, "buttons", "is required"));
    };
    if buttons.is_empty() || buttons.len() > 10 {
        return Err(component_error(
            index,
            "buttons",
            "must have 1 to 10 elements",
        ));
    }
    for (j, b) in buttons.iter().enumerate() {
        let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
        let field = format!("buttons[{j}].text");
        match b.get("text") {
            // One-time-password and coupon-code buttons have a fixed text.
            None if kind.eq_ignore_ascii_case("OTP") || kind.eq_ignore_ascii_case("COPY_CODE") => {}
            Some(Value::String(text)) if !text.is_empty() => {
                if text.chars().count() > 25 {
                    return Err(component_error(
                        index,
                        &field,
                        "must be at most 25 characters long",
                    ));
                }
            }
            _ => return Err(component_error(index, &field, "is required")),
        }
        let needs = match kind.to_ascii_uppercase().as_str() {
            "URL" => Some("url"),
            "PHONE_NUMBER" => Some("phone_number"),
            "" => {
                return Err(component_error(
                    index,
                    &format!("buttons[{j}].type"),
                    "is required",
                ));
            }
            _ => None,
        };
        if let Some(key) = needs
            && b.get(key).and_then(Value::as_str).is_none_or(str::is_empty)
        {
            return Err(component_error(
                index,
                &format!("buttons[{j}].{key}"),
                "is required",
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Webhook builders
// ---------------------------------------------------------------------------------------------

/// Builders for webhook bodies in Meta's shape: messages and statuses, wrapped in a `value`,
/// a `change`, an `entry` and the envelope. Timestamps are now, as strings of seconds.
pub mod webhook {
    use serde_json::{Value, json};

    use super::{DISPLAY_PHONE_NUMBER, PHONE_NUMBER_ID, WABA_ID, wamid};

    fn now() -> String {
        super::super::unix_now().to_string()
    }

    /// A `contacts[]` entry: phone digits and/or BSUID, profile name, maybe a username.
    pub fn contact(
        wa_id: Option<&str>,
        user_id: Option<&str>,
        name: &str,
        username: Option<&str>,
    ) -> Value {
        let mut c = json!({ "profile": { "name": name } });
        if let Some(w) = wa_id {
            c["wa_id"] = json!(w);
        }
        if let Some(u) = user_id {
            c["user_id"] = json!(u);
        }
        if let Some(u) = username {
            c["profile"]["username"] = json!(u);
        }
        c
    }

    /// A message of any type from phone digits `from`: its new `wamid` and the object.
    pub fn message(from: &str, kind: &str, object: Value) -> (String, Value) {
        let id = wamid();
        let mut m = json!({ "from": from, "id": id, "timestamp": now(), "type": kind });
        if kind == "contacts" {
            m["contacts"] = object;
        } else {
            m[kind] = object;
        }
        (id, m)
    }

    /// A message from a customer known only by BSUID (no phone number shared).
    pub fn message_from_user_id(user_id: &str, kind: &str, object: Value) -> (String, Value) {
        let (id, mut m) = message("", kind, object);
        if let Some(obj) = m.as_object_mut() {
            obj.remove("from");
        }
        m["from_user_id"] = json!(user_id);
        (id, m)
    }

    /// A text message.
    pub fn text(from: &str, body: &str) -> (String, Value) {
        message(from, "text", json!({ "body": body }))
    }

    fn media(id: &str, mime: &str) -> Value {
        json!({ "id": id, "mime_type": mime, "sha256": "3b2f6c2d1e0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706" })
    }

    /// An image, with an optional caption.
    pub fn image(from: &str, media_id: &str, caption: Option<&str>) -> (String, Value) {
        let mut o = media(media_id, "image/jpeg");
        if let Some(c) = caption {
            o["caption"] = json!(c);
        }
        message(from, "image", o)
    }

    /// A video.
    pub fn video(from: &str, media_id: &str) -> (String, Value) {
        message(from, "video", media(media_id, "video/mp4"))
    }

    /// Audio; `voice: true` for a voice note recorded in WhatsApp.
    pub fn audio(from: &str, media_id: &str, voice: bool) -> (String, Value) {
        let mut o = media(media_id, "audio/ogg; codecs=opus");
        o["voice"] = json!(voice);
        message(from, "audio", o)
    }

    /// A PDF document with its file name.
    pub fn document(
        from: &str,
        media_id: &str,
        filename: &str,
        caption: Option<&str>,
    ) -> (String, Value) {
        let mut o = media(media_id, "application/pdf");
        o["filename"] = json!(filename);
        if let Some(c) = caption {
            o["caption"] = json!(c);
        }
        message(from, "document", o)
    }

    /// A (static) sticker.
    pub fn sticker(from: &str, media_id: &str) -> (String, Value) {
        let mut o = media(media_id, "image/webp");
        o["animated"] = json!(false);
        message(from, "sticker", o)
    }

    /// A shared location, maybe a named place.
    pub fn location(
        from: &str,
        latitude: f64,
        longitude: f64,
        name: Option<&str>,
        address: Option<&str>,
    ) -> (String, Value) {
        let mut o = json!({ "latitude": latitude, "longitude": longitude });
        if let Some(n) = name {
            o["name"] = json!(n);
        }
        if let Some(a) = address {
            o["address"] = json!(a);
        }
        message(from, "location", o)
    }

    /// Shared contact cards, e.g. `[{"name": {"formatted_name": "…"}, "phones": [...]}]`.
    pub fn contacts(from: &str, cards: Value) -> (String, Value) {
        message(from, "contacts", cards)
    }

    /// A tap on one of our reply buttons.
    pub fn button_reply(from: &str, id: &str, title: &str) -> (String, Value) {
        message(
            from,
            "interactive",
            json!({ "type": "button_reply", "button_reply": { "id": id, "title": title } }),
        )
    }

    /// A pick from one of our lists.
    pub fn list_reply(
        from: &str,
        id: &str,
        title: &str,
        description: Option<&str>,
    ) -> (String, Value) {
        let mut reply = json!({ "id": id, "title": title });
        if let Some(d) = description {
            reply["description"] = json!(d);
        }
        message(
            from,
            "interactive",
            json!({ "type": "list_reply", "list_reply": reply }),
        )
    }

    /// A tap on a template's quick-reply button.
    pub fn button(from: &str, payload: &str, text: &str) -> (String, Value) {
        message(from, "button", json!({ "payload": payload, "text": text }))
    }

    /// A reaction; `None` removes it (Meta then sends no `emoji`).
    pub fn reaction(from: &str, to_wamid: &str, emoji: Option<&str>) -> (String, Value) {
        let mut o = json!({ "message_id": to_wamid });
        if let Some(e) = emoji {
            o["emoji"] = json!(e);
        }
        message(from, "reaction", o)
    }

    /// A message WhatsApp could not hand over (`type: unsupported` with `errors[]`).
    pub fn unsupported(from: &str) -> (String, Value) {
        let (id, mut m) = message(from, "unsupported", json!({ "type": "poll_creation" }));
        m["errors"] = json!([{
            "code": 131051,
            "title": "Message type unknown",
            "message": "Message type unknown",
            "error_data": { "details": "Message type is currently not supported." }
        }]);
        (id, m)
    }

    /// A system message (e.g. the customer changed their number).
    pub fn system(from: &str, body: &str, new_wa_id: &str) -> (String, Value) {
        message(
            from,
            "system",
            json!({ "body": body, "wa_id": new_wa_id, "type": "user_changed_number" }),
        )
    }

    /// Marks a message as a reply to `to_wamid` (`context`).
    pub fn reply_to(mut message: Value, from: &str, to_wamid: &str) -> Value {
        message["context"] = json!({ "from": from, "id": to_wamid });
        message
    }

    /// What a status carries besides the message id, the status and the recipient.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct StatusExtras<'a> {
        /// The send's `biz_opaque_callback_data`, which Meta echoes on every status of that
        /// message.
        pub biz_opaque_callback_data: Option<&'a str>,
        /// The conversation and pricing category (`marketing`, `utility`, `authentication`,
        /// `service`); `service` when `None`.
        pub category: Option<&'a str>,
        /// The recipient is a BSUID: `recipient_user_id` instead of `recipient_id`.
        pub recipient_is_user_id: bool,
    }

    /// A delivery status (`sent`, `delivered`, `read`, `played`) for one of our messages.
    pub fn status(wamid: &str, status: &str, recipient_wa_id: &str, timestamp: i64) -> Value {
        status_with(
            wamid,
            status,
            recipient_wa_id,
            timestamp,
            StatusExtras::default(),
        )
    }

    /// A delivery status with what the send carried (see [`StatusExtras`]). Statuses other than
    /// `read` have `conversation` and `pricing` (per-message pricing, `PMP`); `sent` also has the
    /// conversation's `expiration_timestamp`.
    pub fn status_with(
        wamid: &str,
        status: &str,
        recipient: &str,
        timestamp: i64,
        extras: StatusExtras<'_>,
    ) -> Value {
        let mut s = json!({
            "id": wamid,
            "status": status,
            "timestamp": timestamp.to_string(),
        });
        s[recipient_key(extras)] = json!(recipient);
        if let Some(data) = extras.biz_opaque_callback_data {
            s["biz_opaque_callback_data"] = json!(data);
        }
        if status != "read" {
            let category = extras.category.unwrap_or("service");
            s["conversation"] = json!({
                "id": "b1b1f2f2a3a3",
                "origin": { "type": category },
            });
            if status == "sent" {
                s["conversation"]["expiration_timestamp"] = json!((timestamp + 86_400).to_string());
            }
            s["pricing"] = json!({
                "billable": true,
                "pricing_model": "PMP",
                "type": "regular",
                "category": category,
            });
        }
        s
    }

    fn recipient_key(extras: StatusExtras<'_>) -> &'static str {
        if extras.recipient_is_user_id {
            "recipient_user_id"
        } else {
            "recipient_id"
        }
    }

    /// Adds the send's `biz_opaque_callback_data` to a status built here.
    pub fn with_callback_data(mut status: Value, data: &str) -> Value {
        status["biz_opaque_callback_data"] = json!(data);
        status
    }

    /// A `failed` status with one error.
    pub fn failed(wamid: &str, recipient_wa_id: &str, code: i64, title: &str) -> Value {
        json!({
            "id": wamid,
            "status": "failed",
            "timestamp": now(),
            "recipient_id": recipient_wa_id,
            "errors": [{
                "code": code,
                "title": title,
                "message": title,
                "error_data": { "details": format!("{title} (fake)") },
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
            }]
        })
    }

    /// A `failed` status with Meta's error for `code`: its title (as `title` and `message`) and
    /// `error_data.details`.
    pub fn failed_with(
        wamid: &str,
        recipient: &str,
        code: i64,
        timestamp: i64,
        extras: StatusExtras<'_>,
    ) -> Value {
        let title = super::error_title(code);
        let details = match code {
            131049 => {
                "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
            }
            131026 => "Message Undeliverable.",
            131050 => "The recipient has stopped marketing messages from this business.",
            _ => title,
        };
        let mut s = json!({
            "id": wamid,
            "status": "failed",
            "timestamp": timestamp.to_string(),
            "errors": [{
                "code": code,
                "title": title,
                "message": title,
                "error_data": { "details": details },
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
            }]
        });
        s[recipient_key(extras)] = json!(recipient);
        if let Some(data) = extras.biz_opaque_callback_data {
            s["biz_opaque_callback_data"] = json!(data);
        }
        s
    }

    /// The `value` of a `messages` change for this fake's number.
    pub fn messages_value(
        contacts: Vec<Value>,
        messages: Vec<Value>,
        statuses: Vec<Value>,
    ) -> Value {
        messages_value_for(PHONE_NUMBER_ID, contacts, messages, statuses)
    }

    /// The `value` of a `messages` change for another business number.
    pub fn messages_value_for(
        phone_number_id: &str,
        contacts: Vec<Value>,
        messages: Vec<Value>,
        statuses: Vec<Value>,
    ) -> Value {
        let mut v = json!({
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": DISPLAY_PHONE_NUMBER,
                "phone_number_id": phone_number_id,
            },
        });
        if !contacts.is_empty() {
            v["contacts"] = Value::Array(contacts);
        }
        if !messages.is_empty() {
            v["messages"] = Value::Array(messages);
        }
        if !statuses.is_empty() {
            v["statuses"] = Value::Array(statuses);
        }
        v
    }

    /// A `message_template_status_update` change (`event`: APPROVED, REJECTED, …).
    pub fn template_status(
        template_id: u64,
        name: &str,
        language: &str,
        event: &str,
        reason: Option<&str>,
    ) -> Value {
        change(
            "message_template_status_update",
            json!({
                "event": event,
                "message_template_id": template_id,
                "message_template_name": name,
                "message_template_language": language,
                "reason": reason.unwrap_or("NONE"),
            }),
        )
    }

    /// A `message_template_status_update` change for a template as the list API shows it:
    /// its `id` (a JSON number when numeric, as Meta sends it), `name`, `language` and
    /// `category`; `reason` is `NONE` when not given; DISABLED adds `disable_info`.
    pub fn template_status_of(template: &Value, event: &str, reason: Option<&str>) -> Value {
        let id = template.get("id").and_then(Value::as_str).unwrap_or("");
        let field = |key: &str| template.get(key).cloned().unwrap_or(json!(""));
        let mut value = json!({
            "event": event,
            "message_template_id": id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)),
            "message_template_name": field("name"),
            "message_template_language": field("language"),
            "reason": reason.unwrap_or("NONE"),
        });
        if let Some(category) = template.get("category") {
            value["message_template_category"] = category.clone();
        }
        if event == "DISABLED" {
            value["disable_info"] = json!({ "disable_date": super::super::unix_now() });
        }
        change("message_template_status_update", value)
    }

    /// One `changes[]` item.
    pub fn change(field: &str, value: Value) -> Value {
        json!({ "field": field, "value": value })
    }

    /// An entry of this fake's business account.
    pub fn entry(changes: Vec<Value>) -> Value {
        json!({ "id": WABA_ID, "changes": changes })
    }

    /// An entry of this fake's business account stamped with `time` (seconds), as Meta sends
    /// account-level changes such as template updates.
    pub fn entry_at(changes: Vec<Value>, time: i64) -> Value {
        json!({ "id": WABA_ID, "time": time, "changes": changes })
    }

    /// The whole webhook body.
    pub fn envelope(entries: Vec<Value>) -> Value {
        json!({ "object": "whatsapp_business_account", "entry": entries })
    }
}
