//! Realtime: the Socket.IO gateway every live screen uses.
//!
//! Socket.IO (protocol v5, what the official `socket.io-client` v3/v4 speaks) is served at
//! `/socket.io` by [`Realtime::layer`], on the default namespace `/`, over long-polling and
//! websocket.
//!
//! # Connecting
//!
//! `io(url, { auth: { token } })` where `token` is an access token (JWT) or an API key (`wam_…`),
//! checked by [`Identity::authenticate`] exactly like a REST `Authorization: Bearer` header. A
//! missing, invalid, expired or revoked credential is refused before the socket connects: the
//! client's `connect_error` carries `err.message` = `"missing token: connect with auth: { token }"`
//! or `"invalid or expired token"`.
//!
//! # Rooms
//!
//! A room name is `kind:uuid` ([`Room`]). Every socket joins `user:{its user id}` and
//! `org:{its organisation id}` before its connection is acknowledged. Other kinds are joined on
//! request: the client emits `join` with `{ room: "chat:…" }` (or the bare string) and an ack
//! callback, and gets `{ ok: true, room }` or `{ ok: false, error, message }` with `error` one of
//! `invalid_room`, `forbidden`, `too_many_rooms`, `unavailable`. Whether a user may join is
//! decided server-side by the [`RoomPolicy`] registered for the kind
//! ([`Realtime::register_policy`]); `user:`/`org:` rooms are only one's own; a kind without a
//! policy cannot be joined. `leave` takes the same argument. A domain that takes access away
//! (a member removed from a channel) calls [`Realtime::remove_user_from_room`].
//!
//! In the Socket.IO adapter each room lives under its organisation (`{org}/{kind}:{id}`): the
//! organisation always comes from the socket's credentials or from the event envelope, never
//! from a client's or an event's words, so nothing can address another organisation's sockets.
//!
//! # Forwarding domain events (how to publish to sockets)
//!
//! The gateway subscribes to every event on the platform bus and forwards the ones that name an
//! audience. Publishers put the target rooms in `data.audience`, a list of room names, all
//! inside the event's organisation (`orgid` in the envelope); [`event_for_rooms`] builds such
//! an event:
//!
//! ```ignore
//! let event = wamage_realtime::event_for_rooms(
//!     "/wamage/chat", "wamage.chat.message.created", org, now,
//!     &[Room::new("chat", channel_id)?], json!({ "message": message_out }),
//! );
//! bus.publish(event).await?;
//! ```
//!
//! Sockets in any of those rooms receive, once even when they are in several of them, the
//! Socket.IO event named after the type without its `wamage.` prefix (`chat.message.created`,
//! `presence.changed`) with the payload `{ id, type, time, data }` (`data` without
//! `audience`). Events without an audience are not forwarded: sockets only see what a
//! publisher meant for them. An `org:` room of another organisation in an audience is dropped
//! (and logged). The frame of one event is encoded once and the same bytes are queued to every
//! recipient (socketioxide's local adapter encodes the packet before walking the room); the
//! forwarder does no per-recipient work beyond that, and no database work at all. A process
//! with no signed-in socket skips events before building their frames (worker nodes, API-only
//! installs, bulk sends with nobody watching).
//!
//! The bus is at-most-once and per process (see `wamage_platform::bus`): an event is for live
//! screens; a client that reconnects reloads its state over REST.
//!
//! # Presence
//!
//! Online from a user's first socket until their last one closes, several tabs and devices
//! counted in the cache (in-process or Redis); `away` when a client emits `presence` with
//! `{ status: "away" }` (and `online` back). Every change is published as
//! `wamage.presence.changed` to the organisation's room (`{ user_id, status, last_seen }`);
//! `GET /api/v1/presence` lists the members' presence. Details in `presence.rs`.
//!
//! # Typing
//!
//! A client emits `typing` with `{ room }` for a room its socket has joined (not its own
//! `user:` room); the other sockets in that room get `typing` with `{ room, user_id }`.
//! Relays are throttled per socket and room ([`RealtimeConfig::typing_interval`], 2 s): a
//! client can emit on every keystroke, at most one relay goes out per interval, and the
//! receivers treat "typing" as lasting a few seconds. Other typing events are dropped silently.
//!
//! # Metrics
//!
//! `wamage_realtime_connected_sockets` (gauge), `wamage_realtime_events_in_total{event}` (client
//! events received), `wamage_realtime_events_out_total{event}` (frames broadcast — one per
//! event, whatever the number of recipients), `wamage_realtime_dropped_total{reason}`
//! (throttled typing, refused joins) and `wamage_realtime_fanout_seconds` (from the event's
//! `time` at publication to the frame handed to the sockets).

mod forward;
mod gateway;
pub mod http;
mod presence;
mod room;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde::Serialize;
use socketioxide::{SocketIo, layer::SocketIoLayer};
use tokio_util::sync::CancellationToken;
use wamage_identity::Identity;
use wamage_kernel::{Clock, Event, OrgId, Timestamp, event::EventData};
use wamage_platform::{bus::SharedBus, cache::SharedCache};

pub use http::routes;
pub use presence::{PresenceOut, Status};
pub use room::{InvalidRoom, ORG, Room, RoomPolicy, USER};

use crate::{presence::Presence, room::Policies};

/// The component name in events this crate publishes.
pub const SOURCE: &str = "/wamage/realtime";
/// The event published on every presence change.
pub const PRESENCE_CHANGED: &str = "wamage.presence.changed";
/// The field of an event's `data` that lists the rooms it goes to.
pub const AUDIENCE: &str = "audience";

/// Builds an event addressed to `rooms` (inside `org`): `data` gets an `audience` field with
/// the room names. `data` should serialize as a JSON object (a struct or a map, which must not
/// have an `audience` field of its own); `null` adds nothing to the audience, anything else is
/// wrapped as `{ "value": … }`. The data is encoded once, here (see
/// [`wamage_kernel::event::EventData`]).
pub fn event_for_rooms(
    source: &str,
    type_: &str,
    org: OrgId,
    time: Timestamp,
    rooms: &[Room],
    data: impl Serialize,
) -> Event {
    #[derive(Serialize)]
    struct Addressed<'a, T> {
        #[serde(flatten)]
        data: &'a T,
        audience: &'a [String],
    }
    #[derive(Serialize)]
    struct Wrapped<'a, T> {
        value: &'a T,
        audience: &'a [String],
    }
    let audience: Vec<String> = rooms.iter().map(ToString::to_string).collect();
    let audience = audience.as_slice();
    // Flattening fails for data that is not an object: that is wrapped.
    let data = match serde_json::value::to_raw_value(&Addressed {
        data: &data,
        audience,
    }) {
        Ok(raw) => EventData::from_raw(raw),
        Err(_) => EventData::encode(Wrapped {
            value: &data,
            audience,
        }),
    };
    Event::encoded(source, type_, org, time, data)
}

/// Gateway settings.
#[derive(Clone, Debug)]
pub struct RealtimeConfig {
    /// At most one `typing` relay per socket and room in this interval.
    pub typing_interval: Duration,
    /// Rooms a socket may have joined on request (its own user and org rooms not counted).
    pub max_rooms_per_socket: usize,
    /// Engine.IO ping interval and timeout (the client learns them in the handshake).
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// Largest message a client may send (websocket frame or polling request body).
    pub max_message_bytes: usize,
    /// Packets queued per socket before emits to it fail (a client too slow to read).
    pub max_buffer: usize,
    /// Bytes each websocket reads at a time, allocated per socket for its whole life.
    /// Clients send small packets (joins, typing, acks), so 1 KiB costs no extra reads for
    /// them and keeps 3 KiB per idle socket that the 4 KiB default would hold (10 % of a
    /// socket's memory); a larger message still arrives whole, read in more steps.
    pub ws_read_buffer: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            typing_interval: Duration::from_secs(2),
            max_rooms_per_socket: 500,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_message_bytes: 64 * 1024,
            max_buffer: 1024,
            ws_read_buffer: 1024,
        }
    }
}

/// What the gateway needs from the platform and from identity.
pub struct RealtimeDeps {
    pub identity: Arc<Identity>,
    pub cache: SharedCache,
    pub bus: SharedBus,
    pub clock: Clock,
}

/// The gateway: build it once per process, register the room policies of the domains, mount
/// [`Realtime::layer`], call [`Realtime::start`], and [`Realtime::close`] on shutdown.
pub struct Realtime {
    io: SocketIo,
    layer: SocketIoLayer,
    shared: Arc<gateway::Shared>,
    started: AtomicBool,
    stop: CancellationToken,
}

impl std::fmt::Debug for Realtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Realtime")
            .field("started", &self.started.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Realtime {
    /// Which of `users` are online now (connected and not away), for assignment.
    pub async fn online_users(
        &self,
        org: OrgId,
        users: &[wamage_kernel::UserId],
    ) -> anyhow::Result<Vec<wamage_kernel::UserId>> {
        Ok(self
            .shared()
            .presence
            .of(org, users)
            .await?
            .into_iter()
            .filter(|p| p.status == presence::Status::Online)
            .map(|p| p.user_id)
            .collect())
    }

    pub fn new(deps: RealtimeDeps, cfg: RealtimeConfig) -> Arc<Self> {
        let (layer, io) = SocketIo::builder()
            .ping_interval(cfg.ping_interval)
            .ping_timeout(cfg.ping_timeout)
            .max_payload(cfg.max_message_bytes as u64)
            .ws_max_message_size(cfg.max_message_bytes)
            .ws_max_frame_size(cfg.max_message_bytes)
            .max_buffer_size(cfg.max_buffer)
            .ws_read_buffer_size(cfg.ws_read_buffer)
            .build_layer();
        let shared = Arc::new(gateway::Shared {
            identity: deps.identity,
            bus: deps.bus,
            presence: Arc::new(Presence::new(deps.cache, deps.clock.clone())),
            clock: deps.clock,
            policies: Policies::default(),
            cfg,
            live: AtomicUsize::new(0),
            sockets: Arc::new(AtomicUsize::new(0)),
        });
        gateway::register(&io, shared.clone());
        Arc::new(Self {
            io,
            layer,
            shared,
            started: AtomicBool::new(false),
            stop: CancellationToken::new(),
        })
    }

    /// Lets `policy` decide who may join the rooms of `kind` (`"chat"`, `"conversation"`).
    /// Registering a kind again replaces its policy; `user` and `org` are built in.
    pub fn register_policy(&self, kind: &str, policy: Arc<dyn RoomPolicy>) {
        self.shared.policies.register(kind, policy);
    }

    /// The tower layer serving `/socket.io` (pass every other request through).
    pub fn layer(&self) -> SocketIoLayer {
        self.layer.clone()
    }

    /// Starts forwarding bus events to sockets and the presence heartbeat (once; later calls do
    /// nothing). Needs a Tokio runtime.
    pub fn start(&self) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        forward::spawn(self.io.clone(), self.shared.clone(), self.stop.clone());
        gateway::spawn_heartbeat(self.shared.clone(), self.stop.clone());
    }

    /// Disconnects every socket, waits (up to 5 s) until their users' presence is updated,
    /// then closes the transports and stops the background tasks.
    pub async fn close(&self) {
        // `SocketIo::close` alone drops the namespaces before their sockets, so it would skip
        // the disconnect handlers (and leave users online): disconnect the sockets first.
        if let Err(e) = self.io.disconnect().await {
            tracing::debug!(error = %e, "some sockets were already gone at shutdown");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.shared.live.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.io.close().await;
        self.stop.cancel();
    }

    /// Removes every socket of `user` from `room` (after their access to it ended).
    pub async fn remove_user_from_room(
        &self,
        org: OrgId,
        user: wamage_kernel::UserId,
        room: &Room,
    ) {
        let result = self
            .io
            .to(Room::user(user).key(org))
            .leave(room.key(org))
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, room = %room, "failed to remove sockets from a room");
        }
    }

    /// Sockets connected to this process.
    pub fn connected_sockets(&self) -> usize {
        self.io.sockets().len()
    }

    pub(crate) fn shared(&self) -> &gateway::Shared {
        &self.shared
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn rooms() -> (Uuid, Vec<Room>) {
        let id = Uuid::now_v7();
        (id, vec![Room::new("chat", id).unwrap()])
    }

    #[test]
    fn event_data_gets_its_audience() {
        #[derive(Serialize)]
        struct Posted<'a> {
            text: &'a str,
        }
        let (id, rooms) = rooms();
        let org = OrgId::new();
        let at = Timestamp::from_millis(5);
        let ev = event_for_rooms(
            "/t",
            "wamage.t.posted",
            org,
            at,
            &rooms,
            Posted { text: "hi" },
        );
        assert_eq!(
            ev.data.value(),
            json!({"text": "hi", "audience": [format!("chat:{id}")]})
        );
        let ev = event_for_rooms("/t", "wamage.t.posted", org, at, &rooms, json!({"n": 1}));
        assert_eq!(
            ev.data.value(),
            json!({"n": 1, "audience": [format!("chat:{id}")]})
        );
        let ev = event_for_rooms("/t", "wamage.t.posted", org, at, &[], json!({}));
        assert_eq!(ev.data.value(), json!({"audience": []}));
    }

    #[test]
    fn data_that_is_not_an_object_is_wrapped() {
        let (id, rooms) = rooms();
        let org = OrgId::new();
        let at = Timestamp::from_millis(5);
        for data in [json!("text"), json!([1, 2]), json!(3)] {
            let ev = event_for_rooms("/t", "wamage.t.posted", org, at, &rooms, &data);
            assert_eq!(
                ev.data.value(),
                json!({"value": data, "audience": [format!("chat:{id}")]})
            );
        }
        let ev = event_for_rooms("/t", "wamage.t.posted", org, at, &rooms, ());
        assert_eq!(ev.data.value(), json!({"audience": [format!("chat:{id}")]}));
    }
}
