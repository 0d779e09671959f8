//! The Socket.IO gateway through the real app: authentication, rooms and policies, forwarding
//! of bus events (never across organisations), presence over several tabs, typing relay and
//! throttling, bad input, both transports, metrics. Every test runs on SQLite/in-process and on
//! PostgreSQL/Redis.

#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;
use wamage_identity::Principal;
use wamage_kernel::{Event, OrgId};
use wamage_realtime::{Room, RoomPolicy, event_for_rooms};
use wamage_testkit::{
    TestApp, TestUser, app_tests, expect_json,
    socket::{TestSocket, WAIT},
};

/// A short wait used to show that something does *not* arrive.
const QUIET: Duration = Duration::from_millis(400);

/// Lets spawned handlers run (presence writes, disconnect handlers).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// Allows `chat:{id}` rooms listed at construction, in one organisation.
struct ChatPolicy {
    org: OrgId,
    allowed: Vec<Uuid>,
}

#[async_trait::async_trait]
impl RoomPolicy for ChatPolicy {
    async fn may_join(&self, viewer: &Principal, id: Uuid) -> anyhow::Result<bool> {
        Ok(viewer.org_id == self.org && self.allowed.contains(&id))
    }
}

fn org_of(user: &TestUser) -> OrgId {
    user.org_id.parse().unwrap()
}

async fn publish(app: &TestApp, org: OrgId, type_: &str, rooms: &[Room], data: Value) {
    let event = event_for_rooms("/test", type_, org, app.clock.now(), rooms, data);
    app.state.bus.publish(event).await.unwrap();
}

async fn presence_of(app: &TestApp, viewer: &TestUser, user: &TestUser) -> Value {
    let body = expect_json(app.get_as(viewer, "/api/v1/presence").await, StatusCode::OK).await;
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user_id"] == user.user_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{} missing from presence: {body}", user.email))
}

fn is_user(user: &TestUser, status: &'static str) -> impl Fn(&Value) -> bool {
    let id = user.user_id.clone();
    move |v: &Value| v["data"]["user_id"] == id.as_str() && v["data"]["status"] == status
}

// ---- connecting -------------------------------------------------------------------------------

async fn connects_with_a_token_or_api_key_and_refuses_bad_ones(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let socket = app.socket(&ana).await;
    assert!(!socket.sid.is_empty());
    socket.close().await;

    // No auth payload, an empty one, an empty token, garbage, a token of the wrong type.
    for auth in [
        None,
        Some(json!({})),
        Some(json!({"token": ""})),
        Some(json!({"token": 42})),
    ] {
        let refused = TestSocket::connect(&app.base, auth.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{auth:?} connected"))
            .refused();
        assert!(
            refused.starts_with("missing token") || refused == "invalid or expired token",
            "{auth:?}: {refused}"
        );
    }
    let refused = TestSocket::connect(&app.base, None)
        .await
        .err()
        .unwrap()
        .refused();
    assert_eq!(refused, "missing token: connect with auth: { token }");
    for bad in [
        "not-a-token",
        "wam_not_a_key",
        &format!("{}x", ana.access_token),
        &"a".repeat(10_000),
    ] {
        let refused = TestSocket::with_token(&app.base, bad)
            .await
            .err()
            .unwrap()
            .refused();
        assert_eq!(refused, "invalid or expired token");
    }

    // An API key works like a bearer header.
    let key = expect_json(
        app.post_as(&ana, "/api/v1/api-keys", &json!({"name": "bot"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let key = key["key"].as_str().unwrap();
    TestSocket::with_token(&app.base, key)
        .await
        .unwrap()
        .close()
        .await;

    // Access tokens last 15 minutes.
    app.clock.advance(Duration::from_secs(16 * 60));
    let refused = TestSocket::with_token(&app.base, &ana.access_token)
        .await
        .err()
        .unwrap()
        .refused();
    assert_eq!(refused, "invalid or expired token");
}

async fn long_polling_works_through_the_middleware(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let client = reqwest::Client::new();
    let url = |q: &str| app.url(&format!("/socket.io/?EIO=4&transport=polling{q}"));
    let open = client.get(url("")).send().await.unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let open = open.text().await.unwrap();
    let handshake: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = handshake["sid"].as_str().unwrap().to_owned();
    let with_sid = format!("&sid={sid}");
    let res = client
        .post(url(&with_sid))
        .body(format!("40{}", json!({"token": ana.access_token})))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Reads polling responses (answering pings) until one holds `want`.
    let poll_until = async |want: &str| {
        let mut seen = String::new();
        for _ in 0..10 {
            let res = tokio::time::timeout(WAIT, client.get(url(&with_sid)).send())
                .await
                .expect("a polling response within the wait")
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let text = res.text().await.unwrap();
            for packet in text.split('\u{1e}') {
                if packet == "2" {
                    let pong = client.post(url(&with_sid)).body("3").send().await.unwrap();
                    assert_eq!(pong.status(), StatusCode::OK);
                }
            }
            seen.push_str(&text);
            if seen.contains(want) {
                return seen;
            }
        }
        panic!("{want} never arrived; got {seen}");
    };
    poll_until("40{\"sid\"").await;

    // Forwarded events arrive over polling too.
    publish(
        &app,
        org_of(&ana),
        "wamage.test.polled",
        &[Room::org(org_of(&ana))],
        json!({"n": 1}),
    )
    .await;
    poll_until(r#"42["test.polled""#).await;
}

// ---- rooms and forwarding --------------------------------------------------------------------

async fn bus_events_reach_user_and_org_rooms(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let ben = app.add_member(&ana, "ben@example.com", "agent").await;
    let org = org_of(&ana);
    let mut a = app.socket(&ana).await;
    let mut b = app.socket(&ben).await;

    publish(
        &app,
        org,
        "wamage.test.announced",
        &[Room::org(org)],
        json!({"text": "to everyone"}),
    )
    .await;
    for s in [&mut a, &mut b] {
        let got = s.expect_event("test.announced", |_| true).await;
        assert_eq!(got["type"], "test.announced");
        assert_eq!(got["data"], json!({"text": "to everyone"}));
        assert!(got["id"].is_string() && got["time"].is_string());
    }

    let ana_id: Uuid = ana.user_id.parse().unwrap();
    publish(
        &app,
        org,
        "wamage.test.private",
        &[Room::new("user", ana_id).unwrap()],
        json!({"for": "ana"}),
    )
    .await;
    a.expect_event("test.private", |v| v["data"]["for"] == "ana")
        .await;
    assert!(
        b.event_where("test.private", QUIET, |_| true)
            .await
            .is_none()
    );

    // An event without an audience is not for sockets.
    app.state
        .bus
        .publish(Event::new(
            "/test",
            "wamage.test.internal",
            org,
            app.clock.now(),
            json!({"secret": true}),
        ))
        .await
        .unwrap();
    assert!(
        a.event_where("test.internal", QUIET, |_| true)
            .await
            .is_none()
    );
}

async fn events_never_reach_another_organisation(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let eve = app.register("eve@example.com", "Evil").await;
    let (acme, evil) = (org_of(&ana), org_of(&eve));
    let eve_id: Uuid = eve.user_id.parse().unwrap();
    let mut a = app.socket(&ana).await;
    let mut e = app.socket(&eve).await;

    // An Acme event naming Evil's rooms (its org room, its user's room) and Acme's org room:
    // only Acme's sockets get it, once.
    let event = Event::new(
        "/test",
        "wamage.test.leak",
        acme,
        app.clock.now(),
        json!({"audience": [format!("org:{evil}"), format!("user:{eve_id}"), format!("org:{acme}")]}),
    );
    app.state.bus.publish(event).await.unwrap();
    a.expect_event("test.leak", |_| true).await;
    assert!(a.event_where("test.leak", QUIET, |_| true).await.is_none());
    assert!(e.event_where("test.leak", QUIET, |_| true).await.is_none());

    // Nor may Eve join Acme's rooms.
    for room in [format!("org:{acme}"), format!("user:{}", ana.user_id)] {
        let ack = e.emit_with_ack("join", &json!({ "room": room })).await;
        assert_eq!(ack["ok"], false, "{room}: {ack}");
        assert_eq!(ack["error"], "forbidden");
    }
    // Presence changes of Acme stay in Acme.
    let ben = app.add_member(&ana, "ben@example.com", "agent").await;
    let ben_socket = app.socket(&ben).await;
    a.expect_event("presence.changed", is_user(&ben, "online"))
        .await;
    let about_ben = |v: &Value| v["data"]["user_id"] == ben.user_id.as_str();
    assert!(
        e.event_where("presence.changed", QUIET, about_ben)
            .await
            .is_none()
    );
    ben_socket.close().await;
}

async fn joins_are_decided_by_the_room_policy(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let ben = app.add_member(&ana, "ben@example.com", "agent").await;
    let org = org_of(&ana);
    let open_room = Uuid::now_v7();
    let closed_room = Uuid::now_v7();
    app.state.realtime.register_policy(
        "chat",
        Arc::new(ChatPolicy {
            org,
            allowed: vec![open_room],
        }),
    );
    let mut a = app.socket(&ana).await;
    let mut b = app.socket(&ben).await;

    let ack = a
        .emit_with_ack("join", &json!({"room": format!("chat:{open_room}")}))
        .await;
    assert_eq!(
        ack,
        json!({"ok": true, "room": format!("chat:{open_room}")})
    );
    // The bare string form works too, and joining twice is fine.
    let ack = a
        .emit_with_ack("join", &json!(format!("chat:{open_room}")))
        .await;
    assert_eq!(ack["ok"], true);

    let ack = a
        .emit_with_ack("join", &json!({"room": format!("chat:{closed_room}")}))
        .await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"], "forbidden");
    assert!(ack["message"].is_string());
    for (arg, error) in [
        (
            json!({"room": format!("user:{}", ben.user_id)}),
            "forbidden",
        ),
        (
            json!({"room": format!("nosuchkind:{open_room}")}),
            "forbidden",
        ),
        (json!({"room": "chat:not-a-uuid"}), "invalid_room"),
        (json!({"room": 12}), "invalid_room"),
        (json!({"nope": true}), "invalid_room"),
        (Value::Null, "invalid_room"),
        (json!("x".repeat(5000)), "invalid_room"),
    ] {
        let ack = a.emit_with_ack("join", &arg).await;
        assert_eq!(ack["error"], error, "{arg}: {ack}");
    }
    // Own rooms are allowed (already joined).
    let ack = a
        .emit_with_ack("join", &json!({"room": format!("org:{org}")}))
        .await;
    assert_eq!(ack["ok"], true);

    // A chat event reaches the member of the room only.
    let chat = Room::new("chat", open_room).unwrap();
    publish(
        &app,
        org,
        "wamage.chat.message.created",
        std::slice::from_ref(&chat),
        json!({"text": "hi"}),
    )
    .await;
    let got = a
        .expect_event("chat.message.created", |v| v["data"]["text"] == "hi")
        .await;
    assert_eq!(got["type"], "chat.message.created");
    assert!(
        b.event_where("chat.message.created", QUIET, |_| true)
            .await
            .is_none()
    );

    // After leaving, nothing more arrives.
    let ack = a
        .emit_with_ack("leave", &json!({"room": chat.to_string()}))
        .await;
    assert_eq!(ack["ok"], true);
    publish(
        &app,
        org,
        "wamage.chat.message.created",
        std::slice::from_ref(&chat),
        json!({"text": "again"}),
    )
    .await;
    assert!(
        a.event_where("chat.message.created", QUIET, |_| true)
            .await
            .is_none()
    );

    // A domain can take access away from every socket of a user.
    a.emit_with_ack("join", &json!({"room": chat.to_string()}))
        .await;
    let ana_id = ana.user_id.parse().unwrap();
    app.state
        .realtime
        .remove_user_from_room(org, ana_id, &chat)
        .await;
    publish(
        &app,
        org,
        "wamage.chat.message.created",
        &[chat],
        json!({"text": "gone"}),
    )
    .await;
    assert!(
        a.event_where("chat.message.created", QUIET, |_| true)
            .await
            .is_none()
    );
}

// ---- presence ---------------------------------------------------------------------------------

async fn presence_counts_every_tab(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let ben = app.add_member(&ana, "ben@example.com", "agent").await;
    let mut watcher = app.socket(&ben).await;
    let before = presence_of(&app, &ben, &ana).await;
    assert_eq!(before["status"], "offline");
    assert_eq!(before["last_seen"], Value::Null);

    let tab1 = app.socket(&ana).await;
    let online = watcher
        .expect_event("presence.changed", is_user(&ana, "online"))
        .await;
    assert!(online["data"]["last_seen"].is_string());
    assert_eq!(presence_of(&app, &ben, &ana).await["status"], "online");

    // A second tab: still online, no new announcement.
    let tab2 = app.socket(&ana).await;
    settle().await;
    // The first tab closes: the second keeps Ana online.
    tab1.close().await;
    settle().await;
    assert_eq!(presence_of(&app, &ben, &ana).await["status"], "online");
    assert!(
        watcher
            .event_where("presence.changed", QUIET, |v| v["data"]["user_id"]
                == ana.user_id.as_str())
            .await
            .is_none(),
        "a second tab opening or closing must not announce anything"
    );

    // The last tab closes: offline, with when.
    app.clock.advance(Duration::from_secs(5));
    tab2.close().await;
    let offline = watcher
        .expect_event("presence.changed", is_user(&ana, "offline"))
        .await;
    assert!(offline["data"]["last_seen"].is_string());
    let now = presence_of(&app, &ben, &ana).await;
    assert_eq!(now["status"], "offline");
    assert_eq!(now["last_seen"], offline["data"]["last_seen"]);
    assert_ne!(now["last_seen"], online["data"]["last_seen"]);

    // Back, then away, then online again.
    let mut tab3 = app.socket(&ana).await;
    watcher
        .expect_event("presence.changed", is_user(&ana, "online"))
        .await;
    let ack = tab3
        .emit_with_ack("presence", &json!({"status": "away"}))
        .await;
    assert_eq!(ack["ok"], true);
    watcher
        .expect_event("presence.changed", is_user(&ana, "away"))
        .await;
    assert_eq!(presence_of(&app, &ben, &ana).await["status"], "away");
    for bad in [
        json!({"status": "offline"}),
        json!({"status": "invisible"}),
        json!("away"),
    ] {
        let ack = tab3.emit_with_ack("presence", &bad).await;
        assert_eq!(ack["error"], "invalid_status", "{bad}");
    }
    tab3.emit_with_ack("presence", &json!({"status": "online"}))
        .await;
    watcher
        .expect_event("presence.changed", is_user(&ana, "online"))
        .await;

    // The presence list only shows one's own organisation's members.
    let eve = app.register("eve@example.com", "Evil").await;
    let list = expect_json(app.get_as(&eve, "/api/v1/presence").await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["user_id"], eve.user_id.as_str());
    let res = app
        .request(reqwest::Method::GET, "/api/v1/presence")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn api_key_sockets_have_no_presence(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let key = expect_json(
        app.post_as(&ana, "/api/v1/api-keys", &json!({"name": "bot"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let mut bot = TestSocket::with_token(&app.base, key["key"].as_str().unwrap())
        .await
        .unwrap();
    settle().await;
    assert_eq!(presence_of(&app, &ana, &ana).await["status"], "offline");
    let ack = bot
        .emit_with_ack("presence", &json!({"status": "away"}))
        .await;
    assert_eq!(ack["error"], "forbidden");
}

// ---- typing -----------------------------------------------------------------------------------

async fn typing_is_relayed_to_the_room_and_throttled(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let ben = app.add_member(&ana, "ben@example.com", "agent").await;
    let cat = app.add_member(&ana, "cat@example.com", "agent").await;
    let org = org_of(&ana);
    let room_id = Uuid::now_v7();
    app.state.realtime.register_policy(
        "chat",
        Arc::new(ChatPolicy {
            org,
            allowed: vec![room_id],
        }),
    );
    let room = format!("chat:{room_id}");
    let mut a = app.socket(&ana).await;
    let mut b = app.socket(&ben).await;
    let mut c = app.socket(&cat).await;
    for s in [&mut a, &mut b] {
        let ack = s.emit_with_ack("join", &json!({ "room": room })).await;
        assert_eq!(ack["ok"], true);
    }

    // 1,000 typing events in a burst become one relay.
    for _ in 0..1000 {
        a.emit("typing", &json!({ "room": room })).await;
    }
    let relays = b.collect("typing", Duration::from_millis(1200)).await;
    assert_eq!(relays.len(), 1, "{relays:?}");
    assert_eq!(relays[0], json!({"room": room, "user_id": ana.user_id}));
    // Not to the typist, not outside the room.
    assert!(
        a.collect("typing", Duration::from_millis(50))
            .await
            .is_empty()
    );
    assert!(
        c.collect("typing", Duration::from_millis(50))
            .await
            .is_empty()
    );

    // After the interval, the next one goes through.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.emit("typing", &json!({ "room": room })).await;
    b.expect_event("typing", |v| v["user_id"] == ana.user_id.as_str())
        .await;

    // Typing in a room one has not joined, or with junk, is dropped.
    c.emit("typing", &json!({ "room": room })).await;
    for junk in [
        json!(null),
        json!({"room": 5}),
        json!("nonsense"),
        json!([1, 2]),
    ] {
        c.emit("typing", &junk).await;
    }
    assert!(b.event_where("typing", QUIET, |_| true).await.is_none());

    // The flooding socket still works.
    let ack = a
        .emit_with_ack("join", &json!({"room": format!("org:{org}")}))
        .await;
    assert_eq!(ack["ok"], true);

    // Org rooms carry typing too (everyone in the organisation but the typist).
    a.emit("typing", &json!({"room": format!("org:{org}")}))
        .await;
    c.expect_event("typing", |v| v["room"] == format!("org:{org}"))
        .await;
}

// ---- bad input and metrics --------------------------------------------------------------------

async fn bad_frames_never_crash_the_gateway(app: TestApp) {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let ana = app.register("ana@example.com", "Acme").await;
    let mut healthy = app.socket(&ana).await;

    // Raw garbage on a fresh websocket, before and after a connect.
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        app.base.replacen("http", "ws", 1)
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    for frame in [
        "garbage",
        "4",
        "42[",
        "42[\"join\"",
        "40{\"token\":",
        "4{}",
        "49999999999999999999[\"join\",{}]",
        "\u{0}\u{1}",
    ] {
        let _ = ws.send(Message::text(frame)).await;
    }
    let _ = ws.send(Message::binary(vec![0u8; 1024])).await;
    // A frame over the size limit closes that connection only.
    let _ = ws
        .send(Message::text(format!(
            "42[\"typing\",\"{}\"]",
            "x".repeat(200_000)
        )))
        .await;
    drop(ws);

    // Unknown events, events without data, huge acked payloads on an authenticated socket.
    let mut a = app.socket(&ana).await;
    a.emit("no.such.event", &json!({"x": 1})).await;
    let ack = a.emit_with_ack("join", &Value::Null).await;
    assert_eq!(ack["error"], "invalid_room");
    let ack = a
        .emit_with_ack("leave", &json!({"room": "chat:nope"}))
        .await;
    assert_eq!(ack["error"], "invalid_room");

    // The gateway still serves everyone.
    let org = org_of(&ana);
    publish(&app, org, "wamage.test.alive", &[Room::org(org)], json!({})).await;
    healthy.expect_event("test.alive", |_| true).await;
    a.expect_event("test.alive", |_| true).await;
    let res = app
        .request(reqwest::Method::GET, "/health")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn gateway_metrics_are_exported(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let org = org_of(&ana);
    let mut a = app.socket(&ana).await;
    a.emit_with_ack("join", &json!({"room": format!("org:{org}")}))
        .await;
    publish(
        &app,
        org,
        "wamage.test.metered",
        &[Room::org(org)],
        json!({}),
    )
    .await;
    a.expect_event("test.metered", |_| true).await;
    let text = app
        .request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for metric in [
        "wamage_realtime_connected_sockets",
        "wamage_realtime_events_in_total{event=\"join\"}",
        "wamage_realtime_events_out_total{event=\"test.metered\"}",
        "wamage_realtime_fanout_seconds_bucket",
    ] {
        assert!(text.contains(metric), "{metric} missing from /metrics");
    }
    assert!(
        text.contains("route=\"socket.io\""),
        "socket.io requests are labelled in the HTTP metrics"
    );
}

async fn closing_the_gateway_marks_users_offline(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let mut a = app.socket(&ana).await;
    a.expect_event("presence.changed", is_user(&ana, "online"))
        .await;
    app.state.realtime.close().await;
    settle().await;
    assert_eq!(presence_of(&app, &ana, &ana).await["status"], "offline");
    assert!(
        a.event_where("anything", Duration::from_secs(1), |_| true)
            .await
            .is_none()
    );
    assert!(a.is_closed(), "the server closed the socket");
}

/// A process with no signed-in socket skips events before building frames (nothing is counted
/// as sent); the first socket to connect gets the next event, and once the last one has gone
/// the process skips again.
async fn events_are_skipped_while_no_socket_is_connected(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let org = org_of(&ana);
    let org_room = [Room::org(org)];
    let metrics = || async {
        app.request(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    publish(&app, org, "wamage.test.nobody_yet", &org_room, json!({})).await;

    let mut a = app.socket(&ana).await;
    publish(&app, org, "wamage.test.someone", &org_room, json!({"n": 1})).await;
    a.expect_event("test.someone", |v| v["data"]["n"] == 1)
        .await;
    a.close().await;
    // Offline once the disconnect handler ran; the session (and its count) goes with it.
    let deadline = tokio::time::Instant::now() + WAIT;
    while presence_of(&app, &ana, &ana).await["status"] != "offline" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ana never went offline"
        );
        settle().await;
    }
    settle().await;
    publish(&app, org, "wamage.test.nobody_left", &org_room, json!({})).await;
    settle().await;

    let text = metrics().await;
    assert!(text.contains("wamage_realtime_events_out_total{event=\"test.someone\"}"));
    for skipped in ["test.nobody_yet", "test.nobody_left"] {
        assert!(
            !text.contains(&format!("{{event=\"{skipped}\"}}")),
            "{skipped} was forwarded with no socket connected"
        );
    }

    // A new socket after that gets events again.
    let mut b = app.socket(&ana).await;
    publish(&app, org, "wamage.test.someone", &org_room, json!({"n": 2})).await;
    b.expect_event("test.someone", |v| v["data"]["n"] == 2)
        .await;
}

app_tests!(
    connects_with_a_token_or_api_key_and_refuses_bad_ones,
    long_polling_works_through_the_middleware,
    bus_events_reach_user_and_org_rooms,
    events_never_reach_another_organisation,
    joins_are_decided_by_the_room_policy,
    presence_counts_every_tab,
    api_key_sockets_have_no_presence,
    typing_is_relayed_to_the_room_and_throttled,
    bad_frames_never_crash_the_gateway,
    gateway_metrics_are_exported,
    closing_the_gateway_marks_users_offline,
    events_are_skipped_while_no_socket_is_connected,
);
