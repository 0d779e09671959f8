//! The Socket.IO side: authentication, automatic rooms, `join`/`leave`, `typing`, `presence`,
//! and the per-socket lifecycle that keeps presence counts right.
//!
//! Everything is set up in the connect middleware, before the client's connection is
//! acknowledged: rooms are joined (an event published right after the client sees `connect`
//! reaches it) and the handlers, the disconnect handler included, are registered. Presence is
//! counted in the connect handler, which socketioxide calls only for a socket that really
//! joined the namespace; a small per-socket state machine ([`Life`]) makes the count and the
//! un-count happen exactly once each whatever the order in which the two handlers run.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::json;
use socketioxide::{
    SocketIo,
    extract::{AckSender, SocketRef, TryData},
    handler::ConnectHandler,
};
use tokio_util::sync::CancellationToken;
use wamage_identity::{Identity, Principal, Via};
use wamage_kernel::Clock;
use wamage_platform::bus::SharedBus;

use crate::{
    PRESENCE_CHANGED, RealtimeConfig, SOURCE, event_for_rooms,
    presence::{HEARTBEAT, PresenceOut, SharedPresence, Status},
    room::{Decision, Policies, Room, USER},
};

/// State every handler shares.
pub(crate) struct Shared {
    pub(crate) identity: Arc<Identity>,
    pub(crate) bus: SharedBus,
    pub(crate) presence: SharedPresence,
    pub(crate) clock: Clock,
    pub(crate) policies: Policies,
    pub(crate) cfg: RealtimeConfig,
    /// Sockets counted in presence whose disconnect work has not finished (see `Realtime::close`).
    pub(crate) live: AtomicUsize,
    /// Signed-in sockets of this process, counted before they join any room and uncounted when
    /// their session is dropped (after they left every room): while it is zero no room has a
    /// member here and the forwarder skips events without building their frames.
    pub(crate) sockets: Arc<AtomicUsize>,
}

impl Shared {
    /// Publishes a presence change to the organisation's room (through the bus, so every node's
    /// sockets get it).
    pub(crate) async fn announce(&self, org: wamage_kernel::OrgId, change: PresenceOut) {
        let data = serde_json::to_value(&change).unwrap_or_default();
        let event = event_for_rooms(
            SOURCE,
            PRESENCE_CHANGED,
            org,
            self.clock.now(),
            &[Room::org(org)],
            data,
        );
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(error = %e, "failed to publish presence change");
        }
    }
}

/// Where a socket is in its life, for the presence count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// Authenticated; the connect handler has not run yet.
    Pending,
    /// Counted in presence (and in the connected gauge).
    Counted,
    /// Disconnected; nothing more to do.
    Closed,
}

/// Per-socket state, kept in the socket's extensions.
#[derive(Clone)]
struct Session(Arc<SessionInner>);

struct SessionInner {
    principal: Principal,
    life: tokio::sync::Mutex<Life>,
    /// Last relayed `typing` per room key.
    typing: Mutex<HashMap<String, Instant>>,
    /// This socket's place in `Shared::sockets`.
    _counted: Counted,
}

/// One unit of a counter, given back when dropped.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Session {
    /// Sockets of people count in presence; API keys are programs.
    fn is_person(&self) -> bool {
        matches!(self.0.principal.via, Via::Session(_))
    }
}

#[derive(Debug, Deserialize)]
struct AuthIn {
    #[serde(default)]
    token: Option<String>,
}

/// The connect refusal a client sees as `err.message` in `connect_error`.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("missing token: connect with auth: {{ token }}")]
    Missing,
    #[error("invalid or expired token")]
    Invalid,
    #[error("authentication is unavailable, try again")]
    Unavailable,
}

/// `{ room: "…" }` or `"…"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RoomArg {
    Object { room: String },
    Name(String),
}

impl RoomArg {
    fn name(&self) -> &str {
        match self {
            Self::Object { room } | Self::Name(room) => room,
        }
    }
}

#[derive(Debug, Serialize)]
struct AckOut {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
}

fn ok(room: Option<String>) -> AckOut {
    AckOut {
        ok: true,
        room,
        error: None,
        message: None,
    }
}

fn refuse(error: &'static str, message: &'static str) -> AckOut {
    metrics::counter!("wamage_realtime_dropped_total", "reason" => error).increment(1);
    AckOut {
        ok: false,
        room: None,
        error: Some(error),
        message: Some(message),
    }
}

fn reply(ack: AckSender, out: &AckOut) {
    // Without an ack callback `send` does nothing; a closed socket needs no answer.
    let _ = ack.send(out);
}

fn count_in(event: &'static str) {
    metrics::counter!("wamage_realtime_events_in_total", "event" => event).increment(1);
}

pub(crate) fn register(io: &SocketIo, shared: Arc<Shared>) {
    let auth = {
        let shared = shared.clone();
        move |s: SocketRef, TryData(auth): TryData<AuthIn>| async move {
            authenticate(&shared, s, auth.ok()).await
        }
    };
    let connected = move |s: SocketRef| async move { on_connected(&shared, s).await };
    io.ns("/", connected.with(auth));
}

/// Connect middleware: authenticates, joins the automatic rooms and installs the handlers.
async fn authenticate(
    shared: &Arc<Shared>,
    s: SocketRef,
    auth: Option<AuthIn>,
) -> Result<(), Refused> {
    let token = auth
        .and_then(|a| a.token)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or(Refused::Missing)?;
    // Bound what reaches the verifier: real tokens are well under this.
    if token.len() > 4096 {
        return Err(Refused::Invalid);
    }
    let principal = match shared.identity.authenticate(&token).await {
        Ok(p) => p,
        Err(p) if p.status.is_server_error() => {
            tracing::warn!(problem = ?p.title, "socket authentication failed");
            return Err(Refused::Unavailable);
        }
        Err(_) => return Err(Refused::Invalid),
    };
    let org = principal.org_id;
    // Counted before the socket is in any room (see `Shared::sockets`).
    let counted = Counted::new(&shared.sockets);
    s.join([
        Room::user(principal.user_id).key(org),
        Room::org(org).key(org),
    ]);
    let session = Session(Arc::new(SessionInner {
        principal,
        life: tokio::sync::Mutex::new(Life::Pending),
        typing: Mutex::new(HashMap::new()),
        _counted: counted,
    }));
    s.extensions.insert(session);
    install_handlers(shared, &s);
    Ok(())
}

fn session(s: &SocketRef) -> Option<Session> {
    s.extensions.get::<Session>()
}

fn install_handlers(shared: &Arc<Shared>, s: &SocketRef) {
    {
        let shared = shared.clone();
        s.on(
            "join",
            move |s: SocketRef, TryData(arg): TryData<RoomArg>, ack: AckSender| async move {
                count_in("join");
                let out = join(&shared, &s, arg.ok()).await;
                reply(ack, &out);
            },
        );
    }
    s.on(
        "leave",
        |s: SocketRef, TryData(arg): TryData<RoomArg>, ack: AckSender| async move {
            count_in("leave");
            let out = leave(&s, arg.ok());
            reply(ack, &out);
        },
    );
    {
        let shared = shared.clone();
        s.on(
            "typing",
            move |s: SocketRef, TryData(arg): TryData<RoomArg>| async move {
                count_in("typing");
                typing(&shared, &s, arg.ok()).await;
            },
        );
    }
    {
        let shared = shared.clone();
        s.on(
            "presence",
            move |s: SocketRef, TryData(arg): TryData<PresenceIn>, ack: AckSender| async move {
                count_in("presence");
                let out = set_presence(&shared, &s, arg.ok()).await;
                reply(ack, &out);
            },
        );
    }
    s.on_fallback(|| async move { count_in("unknown") });
    let shared = shared.clone();
    s.on_disconnect(move |s: SocketRef| async move { on_disconnected(&shared, s).await });
}

async fn on_connected(shared: &Shared, s: SocketRef) {
    let Some(session) = session(&s) else { return };
    let mut life = session.0.life.lock().await;
    if *life != Life::Pending {
        return;
    }
    *life = Life::Counted;
    shared.live.fetch_add(1, Ordering::SeqCst);
    metrics::gauge!("wamage_realtime_connected_sockets").increment(1.0);
    if session.is_person() {
        let p = &session.0.principal;
        match shared.presence.connected(p.org_id, p.user_id).await {
            Ok(Some(change)) => shared.announce(p.org_id, change).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "failed to record presence"),
        }
    }
}

async fn on_disconnected(shared: &Shared, s: SocketRef) {
    let Some(session) = session(&s) else { return };
    let mut life = session.0.life.lock().await;
    let was = std::mem::replace(&mut *life, Life::Closed);
    if was != Life::Counted {
        return;
    }
    metrics::gauge!("wamage_realtime_connected_sockets").decrement(1.0);
    if session.is_person() {
        let p = &session.0.principal;
        match shared.presence.disconnected(p.org_id, p.user_id).await {
            Ok(Some(change)) => shared.announce(p.org_id, change).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "failed to record presence"),
        }
    }
    shared.live.fetch_sub(1, Ordering::SeqCst);
}

async fn join(shared: &Shared, s: &SocketRef, arg: Option<RoomArg>) -> AckOut {
    let Some(session) = session(s) else {
        return refuse("unavailable", "the socket is not signed in");
    };
    let Some(room) = arg.and_then(|a| Room::parse(a.name()).ok()) else {
        return refuse(
            "invalid_room",
            "a room is `kind:uuid`, e.g. `chat:0190a1b2-…`",
        );
    };
    let principal = &session.0.principal;
    let key = room.key(principal.org_id);
    let rooms = s.rooms();
    if rooms.iter().any(|r| *r == key) {
        return ok(Some(room.to_string()));
    }
    // Two rooms are automatic and not counted.
    if rooms.len() >= shared.cfg.max_rooms_per_socket + 2 {
        return refuse("too_many_rooms", "leave a room before joining another");
    }
    match shared.policies.decide(principal, &room).await {
        Decision::Allowed => {
            s.join(key);
            ok(Some(room.to_string()))
        }
        Decision::Denied => refuse("forbidden", "you may not join this room"),
        Decision::Unavailable => refuse("unavailable", "could not check access, try again"),
    }
}

fn leave(s: &SocketRef, arg: Option<RoomArg>) -> AckOut {
    let Some(session) = session(s) else {
        return refuse("unavailable", "the socket is not signed in");
    };
    let Some(room) = arg.and_then(|a| Room::parse(a.name()).ok()) else {
        return refuse(
            "invalid_room",
            "a room is `kind:uuid`, e.g. `chat:0190a1b2-…`",
        );
    };
    let key = room.key(session.0.principal.org_id);
    s.leave(key.clone());
    if let Ok(mut typing) = session.0.typing.lock() {
        typing.remove(&key);
    }
    ok(None)
}

async fn typing(shared: &Shared, s: &SocketRef, arg: Option<RoomArg>) {
    let Some(session) = session(s) else { return };
    let Some(room) = arg.and_then(|a| Room::parse(a.name()).ok()) else {
        return;
    };
    let principal = &session.0.principal;
    if room.kind() == USER && room.id() == principal.user_id.as_uuid() {
        return;
    }
    let key = room.key(principal.org_id);
    if !s.rooms().iter().any(|r| *r == key) {
        metrics::counter!("wamage_realtime_dropped_total", "reason" => "typing_not_joined")
            .increment(1);
        return;
    }
    let now = Instant::now();
    let allowed = match session.0.typing.lock() {
        Ok(mut last) => throttle(&mut last, &key, now, shared.cfg.typing_interval),
        Err(_) => false,
    };
    if !allowed {
        metrics::counter!("wamage_realtime_dropped_total", "reason" => "typing_throttled")
            .increment(1);
        return;
    }
    let payload = json!({ "room": room.to_string(), "user_id": principal.user_id });
    metrics::counter!("wamage_realtime_events_out_total", "event" => "typing").increment(1);
    // `to` from a socket excludes that socket itself.
    if let Err(e) = s.to(key).emit("typing", &payload).await {
        tracing::debug!(error = %e, "typing relay failed");
    }
}

/// Whether a relay for `key` may go out at `now`; records it when it may. The map only holds
/// rooms the socket is in (checked by the caller), so it stays bounded by the room limit.
fn throttle(
    last: &mut HashMap<String, Instant>,
    key: &str,
    now: Instant,
    interval: Duration,
) -> bool {
    match last.get(key) {
        Some(at) if now.duration_since(*at) < interval => false,
        _ => {
            last.insert(key.to_owned(), now);
            true
        }
    }
}

#[derive(Debug, Deserialize)]
struct PresenceIn {
    status: String,
}

async fn set_presence(shared: &Shared, s: &SocketRef, arg: Option<PresenceIn>) -> AckOut {
    let Some(session) = session(s) else {
        return refuse("unavailable", "the socket is not signed in");
    };
    let status = match arg.as_ref().map(|a| a.status.as_str()) {
        Some("online") => Status::Online,
        Some("away") => Status::Away,
        _ => return refuse("invalid_status", "status is `online` or `away`"),
    };
    if !session.is_person() {
        return refuse("forbidden", "API keys have no presence");
    }
    if *session.0.life.lock().await != Life::Counted {
        return refuse("unavailable", "the socket is not connected yet");
    }
    let p = &session.0.principal;
    match shared.presence.set(p.org_id, p.user_id, status).await {
        Ok(Some(change)) => {
            shared.announce(p.org_id, change).await;
            ok(None)
        }
        Ok(None) => ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "failed to set presence");
            refuse("unavailable", "could not save the status, try again")
        }
    }
}

/// Refreshes this node's presence counts every [`HEARTBEAT`] until `stop`.
pub(crate) fn spawn_heartbeat(shared: Arc<Shared>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (org, change) in shared.presence.heartbeat().await {
                shared.announce(org, change).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_through_per_interval_and_room() {
        let mut last = HashMap::new();
        let t0 = Instant::now();
        let every = Duration::from_secs(2);
        assert!(throttle(&mut last, "a", t0, every));
        let passed = (1..1000)
            .filter(|i| throttle(&mut last, "a", t0 + Duration::from_millis(*i), every))
            .count();
        assert_eq!(passed, 0);
        // Another room has its own budget.
        assert!(throttle(&mut last, "b", t0, every));
        assert!(throttle(&mut last, "a", t0 + every, every));
    }
}
