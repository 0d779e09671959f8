//! A fake Telegram Bot API for one bot.
//!
//! `/bot{token}/{method}` with parameters as JSON body or query string, answering
//! `{"ok": true, "result": …}` or `{"ok": false, "error_code", "description", "parameters"}`
//! like the real API: `getMe`, `sendMessage`, `sendPhoto`, `sendVideo`, `sendAudio`, `sendVoice`,
//! `sendDocument`, `sendSticker`, `sendLocation`, `sendVenue`, `setMessageReaction`,
//! `answerCallbackQuery`, `getFile`, `getUpdates`, `setWebhook`, `deleteWebhook`; files at
//! `/file/bot{token}/{file_path}`.
//!
//! `getUpdates` is a queue with the documented offset rule: calling it with `offset` confirms
//! (forgets) every update with a smaller id; a negative offset keeps only the last `-offset`;
//! `timeout` long-polls until an update is pushed. While a webhook is set it answers 409.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

use super::{ServerGuard, Window, serve_on, unix_now};

/// The token the fake accepts until [`FakeTelegram::set_token`].
pub const TOKEN: &str = "123456789:AAFakeTokenForWamageTests_abcdefghij";
/// The bot's own user id.
pub const BOT_ID: i64 = 123_456_789;
/// The bot's username.
pub const BOT_USERNAME: &str = "wamage_test_bot";

/// One call the fake accepted that sends or changes something in a chat.
#[derive(Debug, Clone, PartialEq)]
pub struct TgSent {
    /// The Bot API method (`sendMessage`, `sendPhoto`, `setMessageReaction`, …).
    pub method: String,
    pub chat_id: i64,
    /// The new message's id (none for reactions).
    pub message_id: Option<i64>,
    /// The parameters as received.
    pub params: Value,
}

/// Rate limits like Telegram's: messages per second in one chat and over all chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TgLimits {
    pub per_chat_per_second: u32,
    pub global_per_second: u32,
}

impl Default for TgLimits {
    /// Telegram's documented limits: about one message per second per chat, 30 per second.
    fn default() -> Self {
        Self {
            per_chat_per_second: 1,
            global_per_second: 30,
        }
    }
}

#[derive(Debug, Clone)]
struct Injected {
    status: u16,
    description: String,
    retry_after: Option<u64>,
}

#[derive(Debug)]
struct TgState {
    token: String,
    webhook: Option<(String, Option<String>)>,
    updates: VecDeque<Value>,
    next_message_id: HashMap<i64, i64>,
    sent: Vec<TgSent>,
    callbacks: Vec<(String, Option<String>)>,
    limits: Option<TgLimits>,
    chat_windows: HashMap<i64, Window>,
    global_window: Option<Window>,
    throttled: u64,
    blocked: HashSet<i64>,
    fail_next: VecDeque<Injected>,
    hang: Option<Duration>,
    files: HashMap<String, (String, Vec<u8>)>,
    requests: u64,
}

/// A running fake Bot API; clones share the server and its state. Dropping the last one stops
/// the server.
#[derive(Debug, Clone)]
pub struct FakeTelegram {
    state: Arc<Mutex<TgState>>,
    notify: Arc<Notify>,
    addr: SocketAddr,
    _server: Arc<ServerGuard>,
}

#[derive(Clone)]
struct Ctx {
    state: Arc<Mutex<TgState>>,
    notify: Arc<Notify>,
}

fn lock(state: &Mutex<TgState>) -> MutexGuard<'_, TgState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

static SEQ: AtomicU64 = AtomicU64::new(1);

fn file_id(prefix: &str) -> String {
    format!(
        "{prefix}AgACAgIAAxkBAAI{:010}",
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl FakeTelegram {
    /// Starts the fake on a fresh local port.
    pub async fn start() -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind a local port for the fake Telegram")
    }

    /// Starts the fake on `addr` (e.g. a fixed port for the `fake-providers` binary).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(TgState {
            token: TOKEN.to_owned(),
            webhook: None,
            updates: VecDeque::new(),
            next_message_id: HashMap::new(),
            sent: Vec::new(),
            callbacks: Vec::new(),
            limits: None,
            chat_windows: HashMap::new(),
            global_window: None,
            throttled: 0,
            blocked: HashSet::new(),
            fail_next: VecDeque::new(),
            hang: None,
            files: HashMap::new(),
            requests: 0,
        }));
        let notify = Arc::new(Notify::new());
        let ctx = Ctx {
            state: state.clone(),
            notify: notify.clone(),
        };
        let router = Router::new()
            .route("/{bot}/{method}", any(call))
            .route("/file/{bot}/{*path}", get(file))
            .with_state(ctx);
        let (addr, guard) = serve_on(router, addr).await?;
        Ok(Self {
            state,
            notify,
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

    /// Turns Telegram's flood limits on (`Some`) or off; over the limit a send is answered 429
    /// with `parameters.retry_after`.
    pub fn set_rate_limits(&self, limits: Option<TgLimits>) {
        let mut s = lock(&self.state);
        s.limits = limits;
        s.chat_windows.clear();
        s.global_window = limits.map(|l| Window::new(l.global_per_second, Duration::from_secs(1)));
    }

    /// How many calls were answered 429 by the rate limits.
    pub fn throttled_count(&self) -> u64 {
        lock(&self.state).throttled
    }

    /// The user blocked the bot: sends to this chat get 403.
    pub fn block_chat(&self, chat_id: i64) {
        lock(&self.state).blocked.insert(chat_id);
    }

    /// The user unblocked the bot again.
    pub fn unblock_chat(&self, chat_id: i64) {
        lock(&self.state).blocked.remove(&chat_id);
    }

    /// The next `n` calls fail with this status and description (e.g. 500
    /// "Internal Server Error", 502 "Bad Gateway").
    pub fn fail_next(&self, n: usize, status: u16, description: &str) {
        let inj = Injected {
            status,
            description: description.to_owned(),
            retry_after: None,
        };
        lock(&self.state)
            .fail_next
            .extend(std::iter::repeat_n(inj, n));
    }

    /// The next `n` calls are answered 429 with `retry_after` seconds.
    pub fn throttle_next(&self, n: usize, retry_after: u64) {
        let inj = Injected {
            status: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
        };
        lock(&self.state)
            .fail_next
            .extend(std::iter::repeat_n(inj, n));
    }

    /// Every call waits this long before answering (longer than a client's timeout: a hang).
    pub fn set_hang(&self, delay: Option<Duration>) {
        lock(&self.state).hang = delay;
    }

    /// Makes a file available to `getFile` and the file endpoint; returns its `file_id`.
    pub fn add_file(&self, bytes: &[u8], extension: &str) -> String {
        let id = file_id("");
        let path = format!(
            "documents/file_{}.{extension}",
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        lock(&self.state)
            .files
            .insert(id.clone(), (path, bytes.to_vec()));
        id
    }

    /// Queues an update for `getUpdates` (and wakes a waiting long poll).
    pub fn push_update(&self, update: Value) {
        lock(&self.state).updates.push_back(update);
        self.notify.notify_waiters();
    }

    /// Updates not yet confirmed by an offset.
    pub fn pending_updates(&self) -> usize {
        lock(&self.state).updates.len()
    }

    /// The webhook URL and secret set with `setWebhook`, if any.
    pub fn webhook(&self) -> Option<(String, Option<String>)> {
        lock(&self.state).webhook.clone()
    }

    /// Every accepted send (and reaction), in order.
    pub fn sent(&self) -> Vec<TgSent> {
        lock(&self.state).sent.clone()
    }

    /// How many sends (and reactions) were accepted.
    pub fn sent_count(&self) -> usize {
        lock(&self.state).sent.len()
    }

    /// Answered callback queries: `(callback_query_id, text)`.
    pub fn answered_callbacks(&self) -> Vec<(String, Option<String>)> {
        lock(&self.state).callbacks.clone()
    }

    /// How many API calls arrived.
    pub fn request_count(&self) -> u64 {
        lock(&self.state).requests
    }

    /// Posts an update to a webhook as Telegram does, with the secret header when given;
    /// returns the HTTP status.
    pub async fn post_webhook(url: &str, secret: Option<&str>, update: &Value) -> u16 {
        let mut req = reqwest::Client::new().post(url).json(update);
        if let Some(s) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        req.send()
            .await
            .expect("post the webhook")
            .status()
            .as_u16()
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

fn ok(result: Value) -> Response {
    Json(json!({ "ok": true, "result": result })).into_response()
}

fn fail(status: u16, description: &str) -> Response {
    fail_with(status, description, None)
}

fn fail_with(status: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({ "ok": false, "error_code": status, "description": description });
    if let Some(r) = retry_after {
        body["parameters"] = json!({ "retry_after": r });
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (code, Json(body)).into_response()
}

fn bad(description: &str) -> Response {
    fail(400, &format!("Bad Request: {description}"))
}

/// Query string values are strings; numbers and JSON objects in them are decoded the way the
/// Bot API does.
fn query_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

fn int_param(p: &Map<String, Value>, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

async fn call(
    State(ctx): State<Ctx>,
    Path((bot, method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let hang = {
        let mut s = lock(&ctx.state);
        s.requests += 1;
        s.hang
    };
    if let Some(d) = hang {
        tokio::time::sleep(d).await;
    }
    let Some(token) = bot.strip_prefix("bot") else {
        return fail(404, "Not Found");
    };
    {
        let mut s = lock(&ctx.state);
        if token != s.token {
            return fail(401, "Unauthorized");
        }
        if let Some(inj) = s.fail_next.pop_front() {
            return fail_with(inj.status, &inj.description, inj.retry_after);
        }
    }

    let mut params: Map<String, Value> = query
        .iter()
        .map(|(k, v)| (k.clone(), query_value(v)))
        .collect();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !body.is_empty() {
        if !is_json {
            return bad("only JSON bodies are supported by this fake");
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => params.extend(m),
            _ => return bad("can't parse JSON object"),
        }
    }

    match method.as_str() {
        "getMe" => ok(json!({
            "id": BOT_ID, "is_bot": true, "first_name": "Wamage Test",
            "username": BOT_USERNAME, "can_join_groups": true,
            "can_read_all_group_messages": false, "supports_inline_queries": false,
        })),
        "getUpdates" => get_updates(&ctx, &params).await,
        "setWebhook" => set_webhook(&ctx, &params),
        "deleteWebhook" => {
            let mut s = lock(&ctx.state);
            s.webhook = None;
            if params.get("drop_pending_updates") == Some(&Value::Bool(true)) {
                s.updates.clear();
            }
            ok(json!(true))
        }
        "getWebhookInfo" => {
            let s = lock(&ctx.state);
            ok(json!({
                "url": s.webhook.as_ref().map_or("", |w| w.0.as_str()),
                "has_custom_certificate": false,
                "pending_update_count": s.updates.len(),
            }))
        }
        "getFile" => {
            let Some(id) = params.get("file_id").and_then(Value::as_str) else {
                return bad("file_id is empty");
            };
            let s = lock(&ctx.state);
            match s.files.get(id) {
                Some((path, bytes)) => ok(json!({
                    "file_id": id, "file_unique_id": format!("u{}", id.len()),
                    "file_size": bytes.len(), "file_path": path,
                })),
                None => bad("invalid file_id"),
            }
        }
        "answerCallbackQuery" => {
            let Some(id) = params.get("callback_query_id").and_then(Value::as_str) else {
                return bad("callback_query_id is empty");
            };
            let text = params.get("text").and_then(Value::as_str);
            if text.is_some_and(|t| t.chars().count() > 200) {
                return bad("MESSAGE_TOO_LONG");
            }
            lock(&ctx.state)
                .callbacks
                .push((id.to_owned(), text.map(str::to_owned)));
            ok(json!(true))
        }
        "sendMessage" | "sendPhoto" | "sendVideo" | "sendAudio" | "sendVoice" | "sendDocument"
        | "sendSticker" | "sendLocation" | "sendVenue" | "setMessageReaction" => {
            send(&ctx, &method, params)
        }
        _ => fail(404, "Not Found"),
    }
}

async fn get_updates(ctx: &Ctx, params: &Map<String, Value>) -> Response {
    let offset = int_param(params, "offset");
    let limit = int_param(params, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = int_param(params, "timeout").unwrap_or(0).clamp(0, 50) as u64;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        // Register for a wake-up before looking, so a push in between is not missed.
        let notified = ctx.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut s = lock(&ctx.state);
            if s.webhook.is_some() {
                return fail(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                );
            }
            let id_of = |u: &Value| u.get("update_id").and_then(Value::as_i64).unwrap_or(0);
            match offset {
                Some(o) if o < 0 => {
                    let keep = usize::try_from(o.unsigned_abs()).unwrap_or(usize::MAX);
                    while s.updates.len() > keep {
                        s.updates.pop_front();
                    }
                }
                Some(o) => s.updates.retain(|u| id_of(u) >= o),
                None => {}
            }
            if !s.updates.is_empty() || Instant::now() >= deadline {
                let page: Vec<Value> = s.updates.iter().take(limit).cloned().collect();
                return ok(Value::Array(page));
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(remaining, notified).await;
    }
}

fn set_webhook(ctx: &Ctx, params: &Map<String, Value>) -> Response {
    let url = params.get("url").and_then(Value::as_str).unwrap_or("");
    if url.is_empty() {
        // An empty URL removes the webhook, as documented.
        lock(&ctx.state).webhook = None;
        return ok(json!(true));
    }
    if !url.starts_with("https://") {
        return bad("bad webhook: An HTTPS URL must be provided for webhook");
    }
    let secret = params.get("secret_token").and_then(Value::as_str);
    if let Some(s) = secret
        && (s.is_empty()
            || s.len() > 256
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return bad("secret token contains unallowed characters");
    }
    lock(&ctx.state).webhook = Some((url.to_owned(), secret.map(str::to_owned)));
    ok(json!(true))
}

/// The chat id as the API takes it: an integer (or its decimal string). `@channel` usernames
/// are not modelled.
fn chat_id_of(p: &Map<String, Value>) -> Result<i64, String> {
    match p.get("chat_id") {
        None | Some(Value::Null) => Err("chat_id is empty".to_owned()),
        Some(_) => int_param(p, "chat_id").ok_or_else(|| "chat not found".to_owned()),
    }
}

fn check_text(
    text: Option<&Value>,
    max: usize,
    empty_msg: &str,
    long_msg: &str,
) -> Result<(), String> {
    match text {
        Some(Value::String(t)) if !t.trim().is_empty() => {
            if t.chars().count() > max {
                Err(long_msg.to_owned())
            } else {
                Ok(())
            }
        }
        _ => Err(empty_msg.to_owned()),
    }
}

fn check_reply_markup(p: &Map<String, Value>) -> Result<(), String> {
    let Some(markup) = p.get("reply_markup") else {
        return Ok(());
    };
    let Some(rows) = markup.get("inline_keyboard") else {
        // Reply keyboards and force-reply are valid but not modelled beyond being objects.
        return if markup.is_object() {
            Ok(())
        } else {
            Err("can't parse reply keyboard markup JSON object".to_owned())
        };
    };
    let Some(rows) = rows.as_array() else {
        return Err(
            "field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array".to_owned(),
        );
    };
    for row in rows {
        let Some(buttons) = row.as_array() else {
            return Err(
                "field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays"
                    .to_owned(),
            );
        };
        for b in buttons {
            let text = b.get("text").and_then(Value::as_str).unwrap_or("");
            if text.is_empty() {
                return Err("can't parse inline keyboard button: Text must be non-empty".to_owned());
            }
            match (b.get("callback_data"), b.get("url")) {
                (Some(Value::String(d)), None) if !d.is_empty() && d.len() <= 64 => {}
                (None, Some(Value::String(u))) if !u.is_empty() => {}
                (Some(_), None) => return Err("BUTTON_DATA_INVALID".to_owned()),
                _ => {
                    return Err("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard".to_owned());
                }
            }
        }
    }
    Ok(())
}

fn send(ctx: &Ctx, method: &str, p: Map<String, Value>) -> Response {
    let chat_id = match chat_id_of(&p) {
        Ok(c) => c,
        Err(e) => return bad(&e),
    };
    // Shape checks, as the Bot API does them.
    let checked = match method {
        "sendMessage" => check_text(
            p.get("text"),
            4096,
            "message text is empty",
            "message is too long",
        ),
        "sendLocation" | "sendVenue" => {
            let lat = p.get("latitude").and_then(Value::as_f64);
            let lon = p.get("longitude").and_then(Value::as_f64);
            if !lat.is_some_and(|l| (-90.0..=90.0).contains(&l))
                || !lon.is_some_and(|l| (-180.0..=180.0).contains(&l))
            {
                Err("wrong latitude or longitude".to_owned())
            } else if method == "sendVenue"
                && (p.get("title").and_then(Value::as_str).is_none()
                    || p.get("address").and_then(Value::as_str).is_none())
            {
                Err("title and address must be non-empty".to_owned())
            } else {
                Ok(())
            }
        }
        "setMessageReaction" => check_reaction(&p),
        _ => {
            let field = media_field(method);
            match p.get(field) {
                Some(Value::String(s)) if !s.is_empty() => {
                    match p.get("caption").and_then(Value::as_str) {
                        Some(c) if c.chars().count() > 1024 => {
                            Err("message caption is too long".to_owned())
                        }
                        _ if method == "sendSticker" && p.contains_key("caption") => {
                            Err("stickers can't have a caption".to_owned())
                        }
                        _ => Ok(()),
                    }
                }
                _ => Err(format!("there is no {field} in the request")),
            }
        }
    };
    if let Err(e) = checked.and_then(|()| check_reply_markup(&p)) {
        return bad(&e);
    }
    if let Some(reply) = p.get("reply_parameters")
        && !reply.get("message_id").is_some_and(Value::is_i64)
    {
        return bad("invalid reply parameters");
    }

    let mut s = lock(&ctx.state);
    if s.blocked.contains(&chat_id) {
        return fail(403, "Forbidden: bot was blocked by the user");
    }
    if method != "setMessageReaction"
        && let Some(limits) = s.limits
    {
        let now = Instant::now();
        let chat_wait = s
            .chat_windows
            .entry(chat_id)
            .or_insert_with(|| Window::new(limits.per_chat_per_second, Duration::from_secs(1)))
            .hit(now)
            .err();
        let global_wait = match (chat_wait, s.global_window.as_mut()) {
            (None, Some(w)) => w.hit(now).err(),
            _ => None,
        };
        if let Some(wait) = chat_wait.or(global_wait) {
            s.throttled += 1;
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let secs = secs.max(1);
            return fail_with(
                429,
                &format!("Too Many Requests: retry after {secs}"),
                Some(secs),
            );
        }
    }

    if method == "setMessageReaction" {
        s.sent.push(TgSent {
            method: method.to_owned(),
            chat_id,
            message_id: None,
            params: Value::Object(p),
        });
        return ok(json!(true));
    }
    let counter = s.next_message_id.entry(chat_id).or_insert(0);
    *counter += 1;
    let message_id = *counter;
    let chat_type = if chat_id > 0 { "private" } else { "supergroup" };
    let mut message = json!({
        "message_id": message_id,
        "from": { "id": BOT_ID, "is_bot": true, "first_name": "Wamage Test", "username": BOT_USERNAME },
        "chat": { "id": chat_id, "type": chat_type },
        "date": unix_now(),
    });
    echo_content(method, &p, &mut message);
    s.sent.push(TgSent {
        method: method.to_owned(),
        chat_id,
        message_id: Some(message_id),
        params: Value::Object(p),
    });
    ok(message)
}

fn check_reaction(p: &Map<String, Value>) -> Result<(), String> {
    if int_param(p, "message_id").is_none() {
        return Err("message_id is empty".to_owned());
    }
    let reactions = match p.get("reaction") {
        None => return Ok(()),
        Some(Value::Array(r)) => r,
        Some(_) => return Err("can't parse reaction types JSON object".to_owned()),
    };
    // Bots may set at most one reaction.
    if reactions.len() > 1 {
        return Err("REACTIONS_TOO_MANY".to_owned());
    }
    for r in reactions {
        let emoji = r.get("emoji").and_then(Value::as_str).unwrap_or("");
        if r.get("type").and_then(Value::as_str) != Some("emoji") || emoji.is_empty() {
            return Err("REACTION_INVALID".to_owned());
        }
    }
    Ok(())
}

fn media_field(method: &str) -> &'static str {
    match method {
        "sendPhoto" => "photo",
        "sendVideo" => "video",
        "sendAudio" => "audio",
        "sendVoice" => "voice",
        "sendDocument" => "document",
        _ => "sticker",
    }
}

/// Fills the returned Message with what was sent, as Telegram echoes it.
fn echo_content(method: &str, p: &Map<String, Value>, message: &mut Value) {
    match method {
        "sendMessage" => message["text"] = p.get("text").cloned().unwrap_or(Value::Null),
        "sendLocation" | "sendVenue" => {
            let loc = json!({ "latitude": p.get("latitude"), "longitude": p.get("longitude") });
            if method == "sendVenue" {
                message["venue"] = json!({ "location": loc, "title": p.get("title"), "address": p.get("address") });
            }
            message["location"] = loc;
        }
        "sendPhoto" => {
            message["photo"] = json!([
                { "file_id": file_id("s"), "file_unique_id": "s", "width": 90, "height": 90 },
                { "file_id": file_id("m"), "file_unique_id": "m", "width": 800, "height": 800 },
            ]);
        }
        _ => {
            let field = media_field(method);
            message[field] = json!({ "file_id": file_id(""), "file_unique_id": "u" });
        }
    }
    if let Some(c) = p.get("caption") {
        message["caption"] = c.clone();
    }
    if let Some(m) = p.get("reply_markup") {
        message["reply_markup"] = m.clone();
    }
}

async fn file(State(ctx): State<Ctx>, Path((bot, path)): Path<(String, String)>) -> Response {
    let s = lock(&ctx.state);
    if bot.strip_prefix("bot") != Some(s.token.as_str()) {
        return fail(401, "Unauthorized");
    }
    match s.files.values().find(|(p, _)| *p == path) {
        Some((_, bytes)) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes.clone(),
        )
            .into_response(),
        None => fail(404, "Not Found"),
    }
}

// ---------------------------------------------------------------------------------------------
// Update builders
// ---------------------------------------------------------------------------------------------

/// Builders for `Update` objects in the Bot API's shape, with 64-bit ids as JSON integers.
pub mod updates {
    use serde_json::{Value, json};

    use super::unix_now;

    /// A user (`from`).
    pub fn user(
        id: i64,
        first_name: &str,
        last_name: Option<&str>,
        username: Option<&str>,
    ) -> Value {
        let mut u =
            json!({ "id": id, "is_bot": false, "first_name": first_name, "language_code": "en" });
        if let Some(l) = last_name {
            u["last_name"] = json!(l);
        }
        if let Some(n) = username {
            u["username"] = json!(n);
        }
        u
    }

    /// The private chat with a user (its id is the user's id).
    pub fn private_chat(user: &Value) -> Value {
        let mut c =
            json!({ "id": user["id"], "type": "private", "first_name": user["first_name"] });
        for key in ["last_name", "username"] {
            if let Some(v) = user.get(key) {
                c[key] = v.clone();
            }
        }
        c
    }

    /// A supergroup (ids like `-100…`).
    pub fn group_chat(id: i64, title: &str) -> Value {
        json!({ "id": id, "type": "supergroup", "title": title })
    }

    /// A channel (posts come without `from`).
    pub fn channel_chat(id: i64, title: &str, username: Option<&str>) -> Value {
        let mut c = json!({ "id": id, "type": "channel", "title": title });
        if let Some(u) = username {
            c["username"] = json!(u);
        }
        c
    }

    /// A message in `chat` from `from` with these content fields merged in.
    pub fn message(message_id: i64, chat: &Value, from: Option<&Value>, fields: Value) -> Value {
        let mut m = json!({ "message_id": message_id, "chat": chat, "date": unix_now() });
        if let Some(f) = from {
            m["from"] = f.clone();
        }
        if let (Some(obj), Value::Object(extra)) = (m.as_object_mut(), fields) {
            obj.extend(extra);
        }
        m
    }

    /// A text message.
    pub fn text(message_id: i64, chat: &Value, from: Option<&Value>, text: &str) -> Value {
        message(message_id, chat, from, json!({ "text": text }))
    }

    /// A photo in three sizes, the largest last (as Telegram sends them).
    pub fn photo(
        message_id: i64,
        chat: &Value,
        from: Option<&Value>,
        file_ids: [&str; 3],
        caption: Option<&str>,
    ) -> Value {
        let mut fields = json!({ "photo": [
            { "file_id": file_ids[0], "file_unique_id": "p0", "width": 90, "height": 67, "file_size": 1_240 },
            { "file_id": file_ids[1], "file_unique_id": "p1", "width": 320, "height": 240, "file_size": 15_802 },
            { "file_id": file_ids[2], "file_unique_id": "p2", "width": 1280, "height": 960, "file_size": 120_330 },
        ] });
        if let Some(c) = caption {
            fields["caption"] = json!(c);
        }
        message(message_id, chat, from, fields)
    }

    /// A voice note.
    pub fn voice(message_id: i64, chat: &Value, from: Option<&Value>, file_id: &str) -> Value {
        message(
            message_id,
            chat,
            from,
            json!({ "voice": {
            "file_id": file_id, "file_unique_id": "v", "duration": 3, "mime_type": "audio/ogg", "file_size": 5_000 } }),
        )
    }

    /// A music file.
    pub fn audio(message_id: i64, chat: &Value, from: Option<&Value>, file_id: &str) -> Value {
        message(
            message_id,
            chat,
            from,
            json!({ "audio": {
            "file_id": file_id, "file_unique_id": "a", "duration": 180, "performer": "Band",
            "title": "Song", "file_name": "song.mp3", "mime_type": "audio/mpeg", "file_size": 3_000_000 } }),
        )
    }

    /// A video.
    pub fn video(message_id: i64, chat: &Value, from: Option<&Value>, file_id: &str) -> Value {
        message(
            message_id,
            chat,
            from,
            json!({ "video": {
            "file_id": file_id, "file_unique_id": "vi", "width": 640, "height": 360, "duration": 12,
            "mime_type": "video/mp4", "file_size": 900_000 } }),
        )
    }

    /// A document with its file name and MIME type.
    pub fn document(
        message_id: i64,
        chat: &Value,
        from: Option<&Value>,
        file_id: &str,
        file_name: &str,
        mime_type: &str,
    ) -> Value {
        message(
            message_id,
            chat,
            from,
            json!({ "document": {
            "file_id": file_id, "file_unique_id": "d", "file_name": file_name,
            "mime_type": mime_type, "file_size": 20_480 } }),
        )
    }

    /// A static sticker.
    pub fn sticker(message_id: i64, chat: &Value, from: Option<&Value>, file_id: &str) -> Value {
        message(
            message_id,
            chat,
            from,
            json!({ "sticker": {
            "file_id": file_id, "file_unique_id": "st", "type": "regular", "width": 512, "height": 512,
            "is_animated": false, "is_video": false, "emoji": "👍", "file_size": 10_000 } }),
        )
    }

    /// A shared location.
    pub fn location(
        message_id: i64,
        chat: &Value,
        from: Option<&Value>,
        latitude: f64,
        longitude: f64,
    ) -> Value {
        message(
            message_id,
            chat,
            from,
            json!({ "location": { "latitude": latitude, "longitude": longitude } }),
        )
    }

    /// A shared contact.
    pub fn contact(
        message_id: i64,
        chat: &Value,
        from: Option<&Value>,
        phone_number: &str,
        first_name: &str,
    ) -> Value {
        message(
            message_id,
            chat,
            from,
            json!({ "contact": { "phone_number": phone_number, "first_name": first_name } }),
        )
    }

    /// Makes `message` a reply to `to`.
    pub fn reply(mut message: Value, to: &Value) -> Value {
        message["reply_to_message"] = to.clone();
        message
    }

    /// `{"update_id": …, kind: payload}`.
    pub fn update(update_id: i64, kind: &str, payload: Value) -> Value {
        json!({ "update_id": update_id, kind: payload })
    }

    /// A new message.
    pub fn message_update(update_id: i64, message: Value) -> Value {
        update(update_id, "message", message)
    }

    /// An edit of `message` (same ids, `edit_date` set).
    pub fn edited_message_update(update_id: i64, mut message: Value) -> Value {
        message["edit_date"] = json!(unix_now());
        update(update_id, "edited_message", message)
    }

    /// A post in a channel the bot administers.
    pub fn channel_post_update(update_id: i64, message: Value) -> Value {
        update(update_id, "channel_post", message)
    }

    /// A tap on an inline button of `message` (which carries the keyboard).
    pub fn callback_query_update(
        update_id: i64,
        callback_id: &str,
        from: &Value,
        message: &Value,
        data: &str,
    ) -> Value {
        update(
            update_id,
            "callback_query",
            json!({
                "id": callback_id,
                "from": from,
                "message": message,
                "chat_instance": "-5383455372519112373",
                "data": data,
            }),
        )
    }

    /// The bot's membership in `chat` changed (`kicked`: the user blocked the bot; `member`:
    /// unblocked or restarted).
    pub fn my_chat_member_update(
        update_id: i64,
        chat: &Value,
        from: &Value,
        old_status: &str,
        new_status: &str,
    ) -> Value {
        let bot = json!({ "id": super::BOT_ID, "is_bot": true, "first_name": "Wamage Test", "username": super::BOT_USERNAME });
        let mut new_member = json!({ "user": bot, "status": new_status });
        if new_status == "kicked" {
            new_member["until_date"] = json!(0);
        }
        update(
            update_id,
            "my_chat_member",
            json!({
                "chat": chat,
                "from": from,
                "date": unix_now(),
                "old_chat_member": { "user": bot, "status": old_status },
                "new_chat_member": new_member,
            }),
        )
    }
}
