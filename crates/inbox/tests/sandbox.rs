//! The shared inbox end to end on the Sandbox channel: a simulated customer writes, agents see
//! it live, reply (once, whatever the retries), and watch delivery and read reports arrive —
//! on every backend.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wamage_testkit::{
    TestApp, TestUser, app_tests, expect_json, expect_problem, problem_fields,
    tenancy::{Probe, assert_isolated},
};

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
        .to_owned()
}

async fn sandbox(app: &TestApp, admin: &TestUser) -> String {
    let ch = expect_json(
        app.post_as(
            admin,
            "/api/v1/channels",
            &json!({"kind": "sandbox", "name": "Playground"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(ch["kind"], "sandbox");
    assert_eq!(ch["config"]["auto_read"], true);
    s(&ch, "id")
}

async fn simulate(app: &TestApp, who: &TestUser, ch: &str, handle: &str, text: &str) -> String {
    let out = expect_json(
        app.post_as(
            who,
            &format!("/api/v1/channels/{ch}/simulate"),
            &json!({"from": {"handle": handle, "name": "Ada Lovelace"}, "text": text}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    s(&out, "provider_message_id")
}

async fn conversations(app: &TestApp, who: &TestUser, query: &str) -> Vec<Value> {
    let page = expect_json(
        app.get_as(who, &format!("/api/v1/conversations{query}"))
            .await,
        StatusCode::OK,
    )
    .await;
    page["items"].as_array().unwrap().clone()
}

async fn thread(app: &TestApp, who: &TestUser, conv: &str) -> Vec<Value> {
    let page = expect_json(
        app.get_as(who, &format!("/api/v1/conversations/{conv}/messages"))
            .await,
        StatusCode::OK,
    )
    .await;
    page["items"].as_array().unwrap().clone()
}

async fn sandbox_customer_to_resolved(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let agent = app.add_member(&admin, "agent@acme.test", "agent").await;
    let ch = sandbox(&app, &admin).await;
    let mut sock = app.socket(&agent).await;

    simulate(&app, &agent, &ch, "ada", "Hello, my order is late").await;
    // Stored, not processed yet: nothing listed until the ingest job runs.
    assert!(conversations(&app, &agent, "").await.is_empty());
    app.run_jobs().await;

    let list = conversations(&app, &agent, "").await;
    assert_eq!(list.len(), 1, "{list:?}");
    let c = &list[0];
    let conv = s(c, "id");
    assert_eq!(c["status"], "open");
    assert_eq!(c["unread_count"], 1);
    assert_eq!(c["channel"]["kind"], "sandbox");
    assert_eq!(c["contact"]["name"], "Ada Lovelace");
    assert_eq!(c["contact"]["handle"], "ada");
    assert_eq!(c["last_message"]["preview"], "Hello, my order is late");
    assert_eq!(c["window"]["open"], true);
    let got = sock
        .expect_event("message.received", |d| {
            d["data"]["conversation_id"] == conv.as_str()
        })
        .await;
    assert_eq!(got["data"]["message"]["text"], "Hello, my order is late");
    assert_eq!(got["data"]["message"]["direction"], "inbound");

    // The contact exists with its Sandbox identity.
    let contact = expect_json(
        app.get_as(
            &agent,
            &format!("/api/v1/contacts/{}", s(&c["contact"], "id")),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(contact["identities"][0]["kind"], "sandbox");
    assert_eq!(contact["identities"][0]["value"], "ada");

    // Assign to me, read it.
    let assigned = expect_json(
        app.post_as(
            &agent,
            &format!("/api/v1/conversations/{conv}/assign"),
            &json!({"assignee_id": agent.user_id}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(assigned["assignee"]["id"], agent.user_id.as_str());
    assert_eq!(conversations(&app, &agent, "?assignee=me").await.len(), 1);
    assert!(
        conversations(&app, &agent, "?assignee=unassigned")
            .await
            .is_empty()
    );
    let counts = expect_json(
        app.get_as(&agent, "/api/v1/conversations/counts").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(counts, json!({"mine": 1, "unassigned": 0, "all": 1}));
    let res = app
        .request_as(
            &agent,
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{conv}/read"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(conversations(&app, &agent, "").await[0]["unread_count"], 0);

    // Reply with an Idempotency-Key: a retry replays, a different body with the key is refused.
    let send = |body: Value, key: &'static str| {
        app.request_as(
            &agent,
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{conv}/messages"),
        )
        .header("idempotency-key", key)
        .json(&body)
        .send()
    };
    let first = expect_json(
        send(
            json!({"type": "text", "text": "Sorry! Checking now."}),
            "k-1",
        )
        .await
        .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(first["status"], "queued");
    assert_eq!(first["author"]["id"], agent.user_id.as_str());
    let again = expect_json(
        send(
            json!({"type": "text", "text": "Sorry! Checking now."}),
            "k-1",
        )
        .await
        .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(again, first, "a retried request gets the same answer");
    let reused = send(json!({"type": "text", "text": "Something else"}), "k-1")
        .await
        .unwrap();
    let p = expect_problem(
        reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["Idempotency-Key"]);
    let out: Vec<Value> = thread(&app, &agent, &conv).await;
    assert_eq!(
        out.iter().filter(|m| m["direction"] == "outbound").count(),
        1
    );

    // The send job delivers; the simulated customer reports delivery at once and reading 2 s later.
    app.run_jobs().await;
    sock.expect_event("message.sent", |d| {
        d["data"]["message"]["id"] == first["id"]
    })
    .await;
    app.run_jobs().await;
    let m = &thread(&app, &agent, &conv).await[1];
    assert_eq!(m["status"], "delivered", "{m}");
    assert!(m["delivered_at"].is_string());
    app.clock.advance(Duration::from_secs(3));
    app.run_jobs().await;
    let m = &thread(&app, &agent, &conv).await[1];
    assert_eq!(m["status"], "read", "{m}");
    sock.expect_event("message.status.updated", |d| {
        d["data"]["message"]["id"] == first["id"] && d["data"]["message"]["status"] == "read"
    })
    .await;

    // A private note is never sent.
    let note = expect_json(
        app.post_as(
            &agent,
            &format!("/api/v1/conversations/{conv}/messages"),
            &json!({"type": "note", "text": format!("@[Owner](user:{}) refund?", admin.user_id)}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(note["private"], true);
    assert_eq!(note["status"], "note");
    assert_eq!(app.run_jobs().await, 0, "a note enqueues nothing");

    // Resolve; the customer writes again and the conversation reopens with its history.
    let resolved = expect_json(
        app.post_as(
            &agent,
            &format!("/api/v1/conversations/{conv}/resolve"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(resolved["status"], "resolved");
    assert!(conversations(&app, &agent, "").await.is_empty());
    assert_eq!(
        conversations(&app, &agent, "?status=resolved").await.len(),
        1
    );
    simulate(&app, &agent, &ch, "ada", "Any news?").await;
    app.run_jobs().await;
    let list = conversations(&app, &agent, "").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], conv.as_str());
    assert_eq!(thread(&app, &agent, &conv).await.len(), 4);

    // Search finds it by message text and by name.
    assert_eq!(
        conversations(&app, &agent, "?status=all&q=order%20is")
            .await
            .len(),
        1
    );
    assert_eq!(
        conversations(&app, &agent, "?status=all&q=lovelace")
            .await
            .len(),
        1
    );
    assert!(
        conversations(&app, &agent, "?status=all&q=nothing-like-this")
            .await
            .is_empty()
    );
}

async fn redelivered_and_out_of_order_events_change_nothing_twice(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = sandbox(&app, &admin).await;
    let channel: wamage_channels::ChannelId = ch.parse().unwrap();
    let event =
        wamage_channels::sandbox::message_event("sbx.dup-1", "bob", Some("Bob"), "Hi", None, 1);
    for _ in 0..3 {
        app.state
            .channels
            .record_synthetic(channel, &event, None)
            .await
            .unwrap();
    }
    app.run_jobs().await;
    let list = conversations(&app, &admin, "").await;
    assert_eq!(list.len(), 1);
    let conv = s(&list[0], "id");
    assert_eq!(
        thread(&app, &admin, &conv).await.len(),
        1,
        "three deliveries, one message"
    );

    // Switch auto-read off to drive the statuses by hand.
    expect_json(
        app.patch_as(
            &admin,
            &format!("/api/v1/channels/{ch}"),
            &json!({"config": {"auto_read": false}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let sent = expect_json(
        app.post_as(
            &admin,
            &format!("/api/v1/conversations/{conv}/messages"),
            &json!({"type": "text", "text": "Hello Bob"}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.run_jobs().await;
    app.run_jobs().await;
    let m = thread(&app, &admin, &conv).await.pop().unwrap();
    assert_eq!(m["id"], sent["id"]);
    assert_eq!(m["status"], "delivered");
    // The API does not show provider ids: read the one the Sandbox gave from the store.
    let pid: String = provider_id(&app, &s(&sent, "id")).await;
    use wamage_channels::provider::DeliveryStatus::{Delivered, Failed, Read, Sent};
    for st in [Read, Delivered, Sent, Failed, Read] {
        let ev = wamage_channels::sandbox::status_event(&pid, st, 5);
        app.state
            .channels
            .record_synthetic(channel, &ev, None)
            .await
            .unwrap();
    }
    app.run_jobs().await;
    let m = thread(&app, &admin, &conv).await.pop().unwrap();
    assert_eq!(m["status"], "read", "statuses only move forward: {m}");
    assert!(
        m["error"].is_null(),
        "a failure after delivery does not apply: {m}"
    );
}

async fn provider_id(app: &TestApp, message: &str) -> String {
    use wamage_platform::{Db, with_db};
    let id: uuid::Uuid = message.parse().unwrap();
    let db: &Db = &app.state.db;
    let row: (String,) = with_db!(db, |p| sqlx::query_as(
        "SELECT provider_message_id FROM inbox_messages WHERE id = $1"
    )
    .bind(id)
    .fetch_one(p)
    .await)
    .unwrap();
    row.0
}

async fn bad_input_gets_field_errors(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let agent = app.add_member(&admin, "agent@acme.test", "agent").await;
    let cases = [
        (
            json!({"kind": "whatsapp", "name": "WA", "config": {}}),
            vec![
                "config.phone_number_id",
                "config.access_token",
                "config.app_secret",
            ],
        ),
        (
            json!({"kind": "whatsapp", "name": "WA", "config": {"phone_number_id": "12ab", "access_token": "short", "app_secret": "0123456789abcdef", "api_version": "21"}}),
            vec![
                "config.phone_number_id",
                "config.api_version",
                "config.access_token",
            ],
        ),
        (
            json!({"kind": "telegram", "name": "Bot", "config": {"bot_token": "nope"}}),
            vec!["config.bot_token"],
        ),
        (
            json!({"kind": "telegram", "name": "Bot", "config": {"bot_token": "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "mode": "push"}}),
            vec!["config.mode"],
        ),
        (
            json!({"kind": "sandbox", "name": "", "messages_per_second": 5000}),
            vec!["name", "messages_per_second"],
        ),
        (
            json!({"kind": "sandbox", "name": "S", "config": {"access_token": "0123456789"}}),
            vec!["config.access_token"],
        ),
    ];
    for (body, fields) in cases {
        let p = expect_problem(
            app.post_as(&admin, "/api/v1/channels", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        let got = problem_fields(&p);
        for f in &fields {
            assert!(
                got.contains(&(*f).to_owned()),
                "{body}: expected {f} in {got:?}"
            );
        }
    }
    // Unknown fields and kinds name the field.
    let p = expect_problem(
        app.post_as(
            &admin,
            "/api/v1/channels",
            &json!({"kind": "fax", "name": "x"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(problem_fields(&p).iter().any(|f| f.contains("kind")), "{p}");
    // Agents cannot manage channels.
    expect_problem(
        app.post_as(
            &agent,
            "/api/v1/channels",
            &json!({"kind": "sandbox", "name": "x"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    let ch = sandbox(&app, &admin).await;
    let p = expect_problem(
        app.post_as(
            &agent,
            &format!("/api/v1/channels/{ch}/simulate"),
            &json!({"from": {"handle": "a b"}, "text": " "}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["from.handle", "text"]);
    simulate(&app, &agent, &ch, "cy", "hi").await;
    app.run_jobs().await;
    let conv = s(&conversations(&app, &agent, "").await[0], "id");
    let path = format!("/api/v1/conversations/{conv}/messages");
    let bad = [
        (json!({"type": "fax"}), "type"),
        (json!({"type": "text"}), "text"),
        (json!({"type": "text", "text": "x".repeat(5000)}), "text"),
        (
            json!({"type": "buttons", "text": "Pick", "buttons": [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}, {"id": "c", "title": "C"}, {"id": "d", "title": "D"}]}),
            "buttons",
        ),
        (
            json!({"type": "buttons", "text": "Pick", "buttons": [{"id": "a", "title": "A title that is far too long"}]}),
            "buttons[0].title",
        ),
        (
            json!({"type": "location", "latitude": 91, "longitude": 0}),
            "latitude",
        ),
        (json!({"type": "reaction", "emoji": "👍"}), "reply_to_id"),
        (json!({"type": "media"}), "attachment_id"),
        (
            json!({"type": "media", "media_url": "ftp://x"}),
            "media_url",
        ),
        (
            json!({"type": "text", "text": "hi", "reply_to_id": "0190a1b2-0000-7000-8000-000000000000"}),
            "reply_to_id",
        ),
        // A misspelt field is refused by its name rather than ignored.
        (
            json!({"type": "text", "text": "hi", "reply_to": "x"}),
            "reply_to",
        ),
    ];
    for (body, field) in bad {
        let p = expect_problem(
            app.post_as(&agent, &path, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(
            problem_fields(&p).contains(&field.to_owned()),
            "{body}: {p}"
        );
    }
    let p = expect_problem(
        app.request_as(&agent, reqwest::Method::POST, &path)
            .header("idempotency-key", "has space")
            .json(&json!({"type": "text", "text": "hi"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["Idempotency-Key"]);
    let p = expect_problem(
        app.patch_as(
            &agent,
            &format!("/api/v1/conversations/{conv}"),
            &json!({"status": "snoozed"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["snoozed_until"]);
    let p = expect_problem(
        app.patch_as(
            &agent,
            &format!("/api/v1/conversations/{conv}"),
            &json!({"labels": [" x"], "priority": "meh"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        problem_fields(&p).iter().any(|f| f.contains("priority")),
        "{p}"
    );
    let p = expect_problem(
        app.get_as(
            &agent,
            "/api/v1/conversations?status=closed&limit=500&cursor=zz",
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["limit", "status", "cursor"]);

    // Nothing reached the sandbox by accident.
    assert_eq!(thread(&app, &agent, &conv).await.len(), 1);
}

async fn snooze_wakes_and_labels_and_priority(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = sandbox(&app, &admin).await;
    simulate(&app, &admin, &ch, "dee", "hello").await;
    app.run_jobs().await;
    let conv = s(&conversations(&app, &admin, "").await[0], "id");
    let until = wamage_kernel::Timestamp::from_millis(app.clock.now().millis() + 300_000);
    let c = expect_json(
        app.patch_as(
            &admin,
            &format!("/api/v1/conversations/{conv}"),
            &json!({"status": "snoozed", "snoozed_until": until, "labels": ["vip", "billing", "vip"], "priority": "high"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(c["status"], "snoozed");
    assert_eq!(c["labels"], json!(["billing", "vip"]));
    assert_eq!(c["priority"], "high");
    assert_eq!(
        conversations(&app, &admin, "?status=all&label=vip")
            .await
            .len(),
        1
    );
    assert!(
        conversations(&app, &admin, "?status=all&label=vi")
            .await
            .is_empty()
    );
    app.run_jobs().await;
    assert_eq!(
        conversations(&app, &admin, "?status=snoozed").await.len(),
        1
    );
    app.clock.advance(Duration::from_secs(301));
    app.run_jobs().await;
    assert_eq!(conversations(&app, &admin, "").await.len(), 1, "woken up");
}

async fn canned_responses(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let c = expect_json(
        app.post_as(&admin, "/api/v1/canned-responses", &json!({"shortcut": "refund", "title": "Refund policy", "body": "Hi {{contact.first_name}}, refunds take 5 days."}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    expect_problem(
        app.post_as(
            &admin,
            "/api/v1/canned-responses",
            &json!({"shortcut": "refund", "title": "Again", "body": "x"}),
        )
        .await,
        StatusCode::CONFLICT,
        "shortcut_taken",
    )
    .await;
    let p = expect_problem(
        app.post_as(
            &admin,
            "/api/v1/canned-responses",
            &json!({"shortcut": "Bad Shortcut", "title": "", "body": ""}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["shortcut", "title", "body"]);
    let found = expect_json(
        app.get_as(&admin, "/api/v1/canned-responses?q=/ref").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    let id = s(&c, "id");
    let up = expect_json(
        app.patch_as(
            &admin,
            &format!("/api/v1/canned-responses/{id}"),
            &json!({"title": "Refunds"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(up["title"], "Refunds");
    let other = app.register("other@else.test", "Else").await;
    assert_isolated(
        &app,
        &admin,
        &other,
        &[Probe::patch(
            format!("/api/v1/canned-responses/{id}"),
            json!({"title": "Refunds"}),
        )],
    )
    .await;
    let res = app
        .delete_as(&admin, &format!("/api/v1/canned-responses/{id}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

async fn other_organisations_see_nothing(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let other = app.register("other@else.test", "Else").await;
    let ch = sandbox(&app, &admin).await;
    simulate(&app, &admin, &ch, "eve", "hello").await;
    app.run_jobs().await;
    let conv = s(&conversations(&app, &admin, "").await[0], "id");
    let msg = s(&thread(&app, &admin, &conv).await[0], "id");
    assert_isolated(
        &app,
        &admin,
        &other,
        &[
            Probe::get(format!("/api/v1/channels/{ch}")),
            Probe::get(format!("/api/v1/conversations/{conv}")),
            Probe::get(format!("/api/v1/conversations/{conv}/messages")),
            Probe::get(format!("/api/v1/messages/{msg}")),
            Probe::patch(
                format!("/api/v1/conversations/{conv}"),
                json!({"priority": "low"}),
            ),
        ],
    )
    .await;
    assert!(conversations(&app, &other, "?status=all").await.is_empty());
    // Another organisation cannot simulate on this channel or send into the conversation.
    let res = app
        .post_as(
            &other,
            &format!("/api/v1/channels/{ch}/simulate"),
            &json!({"from": {"handle": "x"}, "text": "hi"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .post_as(
            &other,
            &format!("/api/v1/conversations/{conv}/messages"),
            &json!({"type": "text", "text": "hi"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

async fn direct_send_api(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = sandbox(&app, &admin).await;
    let m = expect_json(
        app.post_as(&admin, "/api/v1/messages", &json!({"channel_id": ch, "to": {"handle": "fay"}, "type": "text", "text": "Your order shipped"}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(m["status"], "queued");
    // The conversation exists (resolved until the customer answers).
    assert!(conversations(&app, &admin, "").await.is_empty());
    assert_eq!(
        conversations(&app, &admin, "?status=resolved").await.len(),
        1
    );
    app.run_jobs().await;
    let got = expect_json(
        app.get_as(&admin, &format!("/api/v1/messages/{}", s(&m, "id")))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["status"], "sent");
    let batch = expect_json(
        app.post_as(&admin, "/api/v1/messages/batch", &json!({"messages": [
            {"channel_id": ch, "to": {"handle": "fay"}, "type": "text", "text": "One"},
            {"channel_id": ch, "to": {"phone": "+15551234567"}, "type": "text", "text": "Wrong address kind"},
            {"channel_id": ch, "to": {"handle": "gus"}, "type": "text"},
        ]}))
        .await,
        StatusCode::OK,
    )
    .await;
    let r = batch["results"].as_array().unwrap();
    assert_eq!(r[0]["status"], 202);
    assert_eq!(r[1]["status"], 422);
    assert_eq!(r[2]["status"], 422);
    assert_eq!(r[2]["problem"]["errors"][0]["field"], "text");
}

async fn teams_get_new_conversations_round_robin(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let ann = app.add_member(&admin, "ann@acme.test", "agent").await;
    let ben = app.add_member(&admin, "ben@acme.test", "agent").await;
    let cid = app.add_member(&admin, "cid@acme.test", "agent").await;
    let team = expect_json(
        app.post_as(&admin, "/api/v1/teams", &json!({"name": "Support"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let team_id = s(&team, "id");
    for u in [&ann, &ben, &cid] {
        let res = app
            .put_as(
                &admin,
                &format!("/api/v1/teams/{team_id}/members/{}", u.user_id),
            )
            .await;
        assert!(res.status().is_success(), "{}", res.status());
    }
    let ch = sandbox(&app, &admin).await;
    // An unknown team is a field error.
    let p = expect_problem(
        app.patch_as(&admin, &format!("/api/v1/channels/{ch}"), &json!({"config": {"assign_team_id": "0190a1b2-0000-7000-8000-000000000000", "opt_out_keywords": [""]}}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem_fields(&p),
        vec!["config.opt_out_keywords[0]", "config.assign_team_id"]
    );
    let updated = expect_json(
        app.patch_as(
            &admin,
            &format!("/api/v1/channels/{ch}"),
            &json!({"config": {"assign_team_id": team_id, "opt_out_keywords": ["halt", "Halt"]}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["config"]["opt_out_keywords"], json!(["HALT"]));
    // Ann and Ben are online (Cid is not): four customers split two and two.
    let _a = app.socket(&ann).await;
    let _b = app.socket(&ben).await;
    for h in ["c1", "c2", "c3", "c4"] {
        simulate(&app, &admin, &ch, h, "hello").await;
        app.run_jobs().await;
    }
    let list = conversations(&app, &admin, "").await;
    assert_eq!(list.len(), 4);
    let to = |u: &TestUser| {
        list.iter()
            .filter(|c| c["assignee"]["id"] == u.user_id.as_str())
            .count()
    };
    assert_eq!((to(&ann), to(&ben), to(&cid)), (2, 2, 0), "{list:?}");
    assert!(list.iter().all(|c| c["team"]["id"] == team_id.as_str()));
    // Manual round-robin on request works the same way; nobody online → 409.
    drop(_a);
    drop(_b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let conv = s(&list[0], "id");
    expect_problem(
        app.post_as(
            &admin,
            &format!("/api/v1/conversations/{conv}/assign"),
            &json!({"auto": true, "team_id": team_id}),
        )
        .await,
        StatusCode::CONFLICT,
        "no_agent_available",
    )
    .await;
}

app_tests!(
    teams_get_new_conversations_round_robin,
    sandbox_customer_to_resolved,
    redelivered_and_out_of_order_events_change_nothing_twice,
    bad_input_gets_field_errors,
    snooze_wakes_and_labels_and_priority,
    canned_responses,
    other_organisations_see_nothing,
    direct_send_api,
);
