//! WhatsApp Cloud API and Telegram Bot API channels through the real app, against the fake
//! providers of the testkit: signed webhooks in (verified on the raw bytes, stored, processed
//! once whatever the redeliveries), sends out with the providers' error codes classified, and
//! everything a user sees change — on every backend.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wamage_testkit::{
    PASSWORD, TestApp, TestUser, app_tests, expect_json, expect_problem,
    fakes::{
        FakeMeta, FakeTelegram,
        meta::{self, MetaError, Signature, webhook},
        telegram::{self, updates},
    },
};

const APP_SECRET: &str = "meta-app-secret-0123456789";

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
        .to_owned()
}

async fn whatsapp(app: &TestApp, admin: &TestUser, fake: &FakeMeta) -> Value {
    whatsapp_number(app, admin, fake, "Support", meta::PHONE_NUMBER_ID).await
}

/// A WhatsApp channel for the business number `phone_number_id`, on the fake Graph API.
async fn whatsapp_number(
    app: &TestApp,
    admin: &TestUser,
    fake: &FakeMeta,
    name: &str,
    phone_number_id: &str,
) -> Value {
    expect_json(
        app.post_as(
            admin,
            "/api/v1/channels",
            &json!({"kind": "whatsapp", "name": name, "config": {
                "phone_number_id": phone_number_id, "waba_id": meta::WABA_ID,
                "access_token": meta::TOKEN, "app_secret": APP_SECRET,
                "base_url": fake.base_url()}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

async fn list(app: &TestApp, who: &TestUser) -> Vec<Value> {
    expect_json(
        app.get_as(who, "/api/v1/conversations?status=all").await,
        StatusCode::OK,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn thread(app: &TestApp, who: &TestUser, conv: &str) -> Vec<Value> {
    expect_json(
        app.get_as(who, &format!("/api/v1/conversations/{conv}/messages"))
            .await,
        StatusCode::OK,
    )
    .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// Sends a text reply in a conversation (accepted, 202) and lets its jobs run: the message as
/// the send API answered it.
async fn reply_text(app: &TestApp, who: &TestUser, conv: &str, text: &str) -> Value {
    let m = expect_json(
        app.post_as(
            who,
            &format!("/api/v1/conversations/{conv}/messages"),
            &json!({"type": "text", "text": text}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    settle(app).await;
    m
}

async fn count(app: &TestApp, table: &str) -> i64 {
    use wamage_platform::{Db, with_db};
    let db: &Db = &app.state.db;
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let (n,): (i64,) = with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .fetch_one(p)
        .await)
    .unwrap();
    n
}

/// A message as the API shows it.
async fn message(app: &TestApp, who: &TestUser, id: impl std::fmt::Display) -> Value {
    expect_json(
        app.get_as(who, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await
}

/// Posts a batch send and returns its answer (200, one result per item).
async fn post_batch(app: &TestApp, who: &TestUser, items: Vec<Value>) -> Value {
    expect_json(
        app.post_as(who, "/api/v1/messages/batch", &json!({ "messages": items }))
            .await,
        StatusCode::OK,
    )
    .await
}

/// Runs jobs until none is due (a few rounds: jobs enqueue jobs).
async fn settle(app: &TestApp) {
    for _ in 0..5 {
        if app.run_jobs().await == 0 {
            break;
        }
    }
}

async fn whatsapp_webhooks_in(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = whatsapp(&app, &admin, &fake).await;
    let id = s(&ch, "id");
    // Credentials are never returned, nor stored in the clear.
    let text = ch.to_string();
    assert!(
        !text.contains(meta::TOKEN) && !text.contains(APP_SECRET),
        "{text}"
    );
    assert_eq!(ch["secrets"]["access_token"], true);
    assert!(
        ch["webhook_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/webhooks/whatsapp/{id}"))
    );
    let verify = s(&ch, "verify_token");
    {
        use wamage_platform::{Db, with_db};
        let db: &Db = &app.state.db;
        let (sealed,): (String,) = with_db!(db, |p| sqlx::query_as("SELECT secrets FROM channels")
            .fetch_one(p)
            .await)
        .unwrap();
        assert!(
            sealed.starts_with("v1:") && !sealed.contains("EAA") && !sealed.contains("meta-app")
        );
    }

    // Meta's subscription check echoes the challenge verbatim, only with the right token.
    let url = app.url(&format!("/webhooks/whatsapp/{id}"));
    let res = app
        .client
        .get(format!(
            "{url}?hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=1158201444"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "1158201444");
    let res = app
        .client
        .get(format!(
            "{url}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Wrong or missing signatures, unknown channels: 401/404 and nothing stored.
    let (wamid, body) = FakeMeta::webhook_text("4915112345678", "Grace Hopper", "Hi there");
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(
        FakeMeta::post_webhook_raw(&url, &bytes, Signature::Wrong).await,
        401
    );
    assert_eq!(
        FakeMeta::post_webhook_raw(&url, &bytes, Signature::Missing).await,
        401
    );
    let ghost = app.url("/webhooks/whatsapp/0190a1b2-0000-7000-8000-000000000000");
    assert_eq!(FakeMeta::post_webhook(&ghost, APP_SECRET, &body).await, 404);
    assert_eq!(
        FakeMeta::post_webhook(&app.url("/webhooks/whatsapp/not-a-uuid"), APP_SECRET, &body).await,
        404
    );
    let huge = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(
        FakeMeta::post_webhook_raw(&url, &huge, Signature::Valid(APP_SECRET)).await,
        413
    );
    assert_eq!(count(&app, "channel_events").await, 0);

    // Meta retries: the same webhook twice is stored twice and makes one message.
    assert_eq!(
        FakeMeta::post_webhook_twice(&url, APP_SECRET, &body).await,
        (200, 200)
    );
    settle(&app).await;
    let convs = list(&app, &admin).await;
    assert_eq!(convs.len(), 1);
    let conv = s(&convs[0], "id");
    assert_eq!(convs[0]["contact"]["name"], "Grace Hopper");
    assert_eq!(convs[0]["contact"]["phone"], "+4915112345678");
    assert_eq!(convs[0]["window"]["open"], true);
    assert_eq!(thread(&app, &admin, &conv).await.len(), 1);

    // Malformed JSON with a good signature: accepted (Meta would retry forever otherwise),
    // kept with the reason, creates nothing.
    assert_eq!(
        FakeMeta::post_webhook_raw(&url, b"{not json", Signature::Valid(APP_SECRET)).await,
        200
    );
    settle(&app).await;
    assert_eq!(thread(&app, &admin, &conv).await.len(), 1);

    // A batch: media, location, a button reply, a reply with context, a reaction, an
    // unsupported type, and a customer known only by a business-scoped user id.
    let media_id = fake.add_media(b"\x89PNG\r\n\x1a\nfake-png-bytes", "image/png");
    let from = "4915112345678";
    let (_, image) = webhook::image(from, &media_id, Some("my receipt"));
    let (_, loc) = webhook::location(from, 52.52, 13.405, Some("Office"), Some("Berlin"));
    let (_, tap) = webhook::button_reply(from, "yes", "Yes please");
    let (_, reply) = webhook::text(from, "answering you");
    let reply = webhook::reply_to(reply, from, &wamid);
    let (_, react) = webhook::reaction(from, &wamid, Some("👍"));
    let (_, odd) = webhook::unsupported(from);
    let (_, bsuid) = webhook::message_from_user_id(
        "US.13491208655302741918",
        "text",
        json!({"body": "no phone here"}),
    );
    let batch = FakeMeta::webhook_messages(
        vec![
            webhook::contact(Some(from), None, "Grace Hopper", None),
            webhook::contact(
                None,
                Some("US.13491208655302741918"),
                "Anon",
                Some("anon_user"),
            ),
        ],
        vec![image, loc, tap, reply, react, odd, bsuid],
    );
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &batch).await, 200);
    settle(&app).await;
    let msgs = thread(&app, &admin, &conv).await;
    let kinds: Vec<&str> = msgs.iter().map(|m| m["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        vec![
            "text",
            "image",
            "location",
            "interactive_reply",
            "text",
            "unsupported"
        ],
        "{msgs:?}"
    );
    assert_eq!(msgs[0]["reactions"][0]["emoji"], "👍");
    assert_eq!(msgs[0]["reactions"][0]["by"], "customer");
    assert_eq!(msgs[4]["reply_to"]["id"], msgs[0]["id"]);
    assert_eq!(msgs[2]["content"]["latitude"], 52.52);
    let media = &msgs[1]["media"];
    assert_eq!(media["state"], "ready", "{media}");
    let got = app
        .client
        .get(media["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert!(got.bytes().await.unwrap().starts_with(b"\x89PNG"));
    let convs = list(&app, &admin).await;
    assert_eq!(
        convs.len(),
        2,
        "the user-id-only customer has their own conversation"
    );
    let anon = convs
        .iter()
        .find(|c| c["contact"]["name"] == "Anon")
        .unwrap();
    assert_eq!(anon["contact"]["handle"], "US.13491208655302741918");

    // A media download that fails is retried, then shown as failed.
    let (_, broken) = webhook::image(from, "missing-media-id", None);
    let body = FakeMeta::webhook_messages(
        vec![webhook::contact(Some(from), None, "Grace Hopper", None)],
        vec![broken],
    );
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
    settle(&app).await;
    let last = thread(&app, &admin, &conv).await.pop().unwrap();
    assert_eq!(last["media"]["state"], "failed", "{last}");
    assert!(last["media"]["error"].is_string());
}

async fn whatsapp_sends_out(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = whatsapp(&app, &admin, &fake).await;
    let id = s(&ch, "id");
    let url = app.url(&format!("/webhooks/whatsapp/{id}"));
    let test = expect_json(
        app.post_as(&admin, &format!("/api/v1/channels/{id}/test"), &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(test["ok"], true, "{test}");
    let ch = expect_json(
        app.get_as(&admin, &format!("/api/v1/channels/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ch["health"]["state"], "healthy");
    assert!(ch["config"]["display_phone_number"].is_string(), "{ch}");

    let (inbound, body) =
        FakeMeta::webhook_text("4915112345678", "Grace Hopper", "Do you ship to Kyiv?");
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
    settle(&app).await;
    let conv = s(&list(&app, &admin).await[0], "id");
    // Opening the conversation marks the customer's message read at Meta (blue ticks).
    let res = app
        .request_as(
            &admin,
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{conv}/read"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    settle(&app).await;
    assert_eq!(fake.read_receipts(), vec![inbound]);
    let path = format!("/api/v1/conversations/{conv}/messages");
    let send = |text: &str| {
        let body = json!({"type": "text", "text": text});
        let (app, admin, path) = (&app, &admin, path.clone());
        async move { app.post_as(admin, &path, &body).await }
    };

    // Accepted: the exact Cloud API body, then out-of-order statuses end at read.
    let m = expect_json(send("Yes, in 3 days").await, StatusCode::ACCEPTED).await;
    settle(&app).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["to"], "4915112345678");
    assert_eq!(sent[0].body["type"], "text");
    assert_eq!(sent[0].body["text"]["body"], "Yes, in 3 days");
    let wamid = sent[0].id.clone();
    assert_eq!(
        FakeMeta::post_statuses_out_of_order(&url, APP_SECRET, &wamid, "4915112345678").await,
        vec![200, 200, 200]
    );
    settle(&app).await;
    let got = message(&app, &admin, s(&m, "id")).await;
    assert_eq!(got["status"], "read", "{got}");
    assert!(got["delivered_at"].is_string() && got["read_at"].is_string());

    // 130429 (throughput): retried after a pause, never lost, never sent twice.
    fake.fail_next(1, MetaError::new(400, 130429));
    let m = expect_json(send("Rate limited once").await, StatusCode::ACCEPTED).await;
    settle(&app).await;
    let got = message(&app, &admin, s(&m, "id")).await;
    assert_eq!(got["status"], "queued", "waiting to retry: {got}");
    assert_eq!(fake.sent_count(), 1);
    app.clock.advance(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    settle(&app).await;
    let got = message(&app, &admin, s(&m, "id")).await;
    assert_eq!(got["status"], "sent", "{got}");
    assert_eq!(fake.sent_count(), 2);

    // 131026 (undeliverable): permanent, with the provider's reason.
    fake.fail_next(1, MetaError::new(400, 131026));
    let m = expect_json(send("Undeliverable").await, StatusCode::ACCEPTED).await;
    settle(&app).await;
    let got = message(&app, &admin, s(&m, "id")).await;
    assert_eq!(got["status"], "failed");
    assert_eq!(got["error"]["code"], 131026);
    assert_eq!(got["error"]["class"], "permanent");

    // 190 (expired token): the message fails and the channel shows it needs attention.
    fake.set_token("a-rotated-token");
    let m = expect_json(send("Token expired").await, StatusCode::ACCEPTED).await;
    settle(&app).await;
    let got = message(&app, &admin, s(&m, "id")).await;
    assert_eq!(got["status"], "failed");
    assert_eq!(got["error"]["class"], "needs_action");
    let ch = expect_json(
        app.get_as(&admin, &format!("/api/v1/channels/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ch["health"]["state"], "unhealthy", "{ch}");
    assert!(ch["health"]["reason"].as_str().unwrap().contains("190"));
    // The admin fixes the token; the next send works and the channel is healthy again.
    fake.set_token(meta::TOKEN);
    expect_json(
        app.patch_as(
            &admin,
            &format!("/api/v1/channels/{id}"),
            &json!({"config": {"access_token": meta::TOKEN}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_json(send("Works again").await, StatusCode::ACCEPTED).await;
    settle(&app).await;
    let ch = expect_json(
        app.get_as(&admin, &format!("/api/v1/channels/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ch["health"]["state"], "healthy");

    // Provider down: 5xx count towards the breaker, which opens; nothing is dropped.
    fake.fail_next_with_500(100);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(s(
            &expect_json(
                send(&format!("During the outage {i}")).await,
                StatusCode::ACCEPTED,
            )
            .await,
            "id",
        ));
    }
    settle(&app).await;
    let ch = expect_json(
        app.get_as(&admin, &format!("/api/v1/channels/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ch["circuit"]["state"], "open", "{ch}");
    for m in &ids {
        let got = expect_json(
            app.get_as(&admin, &format!("/api/v1/messages/{m}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(got["status"], "queued");
    }

    // Opt-out words: built-in STOP and the channel's own; both land in the consent ledger.
    expect_json(
        app.patch_as(
            &admin,
            &format!("/api/v1/channels/{id}"),
            &json!({"config": {"opt_out_keywords": ["genug"]}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let contact = s(&list(&app, &admin).await[0]["contact"], "id");
    let (_, body) = FakeMeta::webhook_text("4915112345678", "Grace Hopper", "Genug!");
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
    settle(&app).await;
    let ledger = expect_json(
        app.get_as(&admin, &format!("/api/v1/contacts/{contact}/consent"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(ledger["current"][0]["status"], "opted_out", "{ledger}");
    assert_eq!(ledger["current"][0]["source"], "keyword");
    assert_eq!(ledger["current"][0]["purpose"], "marketing");

    // Outside the 24-hour window only templates go out.
    app.clock.advance(Duration::from_secs(25 * 3600));
    let res = app.login(&admin.email, PASSWORD).await;
    let body = expect_json(res, StatusCode::OK).await;
    let admin = TestUser {
        access_token: s(&body, "access_token"),
        ..admin
    };
    let p = expect_problem(
        app.post_as(&admin, &path, &json!({"type": "text", "text": "Late"}))
            .await,
        StatusCode::CONFLICT,
        "window_closed",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("template"));
    let conv_out = expect_json(
        app.get_as(&admin, &format!("/api/v1/conversations/{conv}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(conv_out["window"]["open"], false);
    expect_json(
        app.post_as(&admin, &path, &json!({"type": "template", "template": {"name": "order_update", "language": "en_US", "body": ["Grace"]}})).await,
        StatusCode::ACCEPTED,
    )
    .await;
}

async fn telegram_webhook_polling_and_blocks(app: TestApp) {
    let fake = FakeTelegram::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = expect_json(
        app.post_as(&admin, "/api/v1/channels", &json!({"kind": "telegram", "name": "Bot",
            "config": {"bot_token": telegram::TOKEN, "mode": "webhook", "base_url": fake.base_url()}}))
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(!ch.to_string().contains("AAFake"));
    let id = s(&ch, "id");
    let channel = app
        .state
        .channels
        .get(admin.org_id.parse().unwrap(), id.parse().unwrap())
        .await
        .unwrap();
    let secret = channel.secrets.webhook_secret.clone().unwrap();
    let url = app.url(&format!("/webhooks/telegram/{id}"));
    // 64-bit ids beyond 2^53 survive the whole way.
    let big: i64 = 9_007_199_254_740_993;
    let user = updates::user(big, "Linus", Some("T"), Some("linus"));
    let chat = updates::private_chat(&user);
    let update = updates::message_update(1, updates::text(10, &chat, Some(&user), "Moin"));
    assert_eq!(
        FakeTelegram::post_webhook(&url, Some("wrong"), &update).await,
        401
    );
    assert_eq!(FakeTelegram::post_webhook(&url, None, &update).await, 401);
    assert_eq!(
        FakeTelegram::post_webhook(&url, Some(&secret), &update).await,
        200
    );
    assert_eq!(
        FakeTelegram::post_webhook(&url, Some(&secret), &update).await,
        200
    );
    settle(&app).await;
    let convs = list(&app, &admin).await;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["contact"]["handle"], big.to_string());
    let conv = s(&convs[0], "id");
    assert_eq!(thread(&app, &admin, &conv).await.len(), 1);

    // Replies go to the chat, with buttons as an inline keyboard.
    expect_json(
        app.post_as(&admin, &format!("/api/v1/conversations/{conv}/messages"),
            &json!({"type": "buttons", "text": "Rate us", "buttons": [{"id": "good", "title": "Good"}, {"id": "bad", "title": "Bad"}]}))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    settle(&app).await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].chat_id, big);
    assert_eq!(sent[0].method, "sendMessage");
    assert!(sent[0].params["reply_markup"]["inline_keyboard"].is_array());

    // A tap on an inline button arrives as a callback query and is answered.
    let tap = updates::callback_query_update(
        5,
        "cbq-42",
        &user,
        &updates::text(12, &chat, None, "Rate us"),
        "good",
    );
    assert_eq!(
        FakeTelegram::post_webhook(&url, Some(&secret), &tap).await,
        200
    );
    settle(&app).await;
    assert_eq!(
        fake.answered_callbacks().len(),
        1,
        "{:?}",
        fake.answered_callbacks()
    );
    let last = thread(&app, &admin, &conv).await.pop().unwrap();
    assert_eq!(last["kind"], "button_reply", "{last}");

    // The user blocks the bot: sends fail with the reason and consent records the opt-out.
    fake.block_chat(big);
    let m = reply_text(&app, &admin, &conv, "Still there?").await;
    let got = message(&app, &admin, s(&m, "id")).await;
    assert_eq!(got["status"], "failed");
    assert_eq!(got["error"]["class"], "needs_action");
    let kicked = updates::my_chat_member_update(2, &chat, &user, "member", "kicked");
    assert_eq!(
        FakeTelegram::post_webhook(&url, Some(&secret), &kicked).await,
        200
    );
    settle(&app).await;
    let contact = s(&convs[0]["contact"], "id");
    let ledger = expect_json(
        app.get_as(&admin, &format!("/api/v1/contacts/{contact}/consent"))
            .await,
        StatusCode::OK,
    )
    .await;
    let current = ledger["current"].as_array().unwrap();
    assert!(
        current.iter().any(|c| c["channel"] == "telegram"
            && c["purpose"] == "utility"
            && c["status"] == "opted_out"),
        "{ledger}"
    );
    let p = expect_problem(
        app.post_as(
            &admin,
            &format!("/api/v1/conversations/{conv}/messages"),
            &json!({"type": "text", "text": "Hello?"}),
        )
        .await,
        StatusCode::CONFLICT,
        "consent_denied",
    )
    .await;
    assert!(p["detail"].is_string());

    // Long polling: switch to polling; updates are fetched, stored and confirmed.
    expect_json(
        app.patch_as(
            &admin,
            &format!("/api/v1/channels/{id}"),
            &json!({"config": {"mode": "polling"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let other = updates::user(77, "Ada", None, None);
    let other_chat = updates::private_chat(&other);
    fake.push_update(updates::message_update(
        3,
        updates::text(11, &other_chat, Some(&other), "Polling works"),
    ));
    let token = tokio_util::sync::CancellationToken::new();
    let poller = tokio::spawn(wamage_channels::poller::run(
        app.state.channels.clone(),
        token.clone(),
    ));
    let mut found = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settle(&app).await;
        if list(&app, &admin).await.len() == 2 {
            found = true;
            break;
        }
    }
    token.cancel();
    let _ = poller.await;
    assert!(found, "the polled update became a conversation");
    assert_eq!(fake.pending_updates(), 0, "the offset confirmed the update");
}

async fn concurrent_webhooks_are_stored_together_and_each_once(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = whatsapp(&app, &admin, &fake).await;
    let url = app.url(&format!("/webhooks/whatsapp/{}", s(&ch, "id")));
    // 40 customers write at once, each webhook posted twice (Meta retries).
    let bodies: Vec<Value> = (0..40)
        .map(|i| FakeMeta::webhook_text(&format!("49151000000{i:02}"), &format!("C{i}"), "hi").1)
        .collect();
    let posts = bodies
        .iter()
        .chain(bodies.iter())
        .map(|b| FakeMeta::post_webhook(&url, APP_SECRET, b));
    let codes = futures::future::join_all(posts).await;
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(count(&app, "channel_events").await, 80);
    settle(&app).await;
    assert_eq!(count(&app, "inbox_conversations").await, 40);
    assert_eq!(count(&app, "inbox_messages").await, 40);
}

/// PostgreSQL: the intake keeps one connection for its statement. When that connection dies
/// between two webhooks (a restarted or failed-over database, an idle timeout), the next
/// webhook is still stored — once — on a connection from the pool, and the intake keeps that.
async fn a_webhook_after_the_intake_connection_died_is_stored_once(app: TestApp) {
    use wamage_platform::{Db, with_db};
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = whatsapp(&app, &admin, &fake).await;
    let url = app.url(&format!("/webhooks/whatsapp/{}", s(&ch, "id")));
    for (n, number) in ["4915100000011", "4915100000012", "4915100000013"]
        .into_iter()
        .enumerate()
    {
        let pid = app.state.channels.intake_backend_pid().await;
        let db: &Db = &app.state.db;
        match (db, pid) {
            (Db::Postgres(pool), Some(pid)) => {
                let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                    .bind(pid)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                assert!(killed, "the intake's connection ended");
            }
            (Db::Postgres(_), None) => assert_eq!(n, 0, "the intake keeps its connection"),
            (Db::Sqlite(_), pid) => assert_eq!(pid, None, "no kept connection on SQLite"),
        }
        let (_, body) = FakeMeta::webhook_text(number, "Ada", "still there?");
        assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
        assert_eq!(count(&app, "channel_events").await, n as i64 + 1);
    }
    settle(&app).await;
    assert_eq!(count(&app, "inbox_messages").await, 3);
    assert!(events(&app).await.iter().all(|(s, _)| s == "processed"));
    let db: &Db = &app.state.db;
    let failed: i64 = with_db!(db, |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'channels.ingest' AND state <> 'succeeded'"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(failed, 0);
}

/// A webhook stored without its ingest job — on SQLite the job is queued just after the
/// answer, so a process stopping in between leaves the event `received` — is found by the
/// sweep (the dispatcher's, at start-up and every few seconds) and processed once; webhooks that
/// went the usual way are not queued again.
async fn webhooks_stored_without_their_jobs_are_swept_up(app: TestApp) {
    use wamage_platform::{Db, with_db};
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = whatsapp(&app, &admin, &fake).await;
    let url = app.url(&format!("/webhooks/whatsapp/{}", s(&ch, "id")));
    let (_, usual) = FakeMeta::webhook_text("4915100000001", "Ada", "first");
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &usual).await, 200);
    settle(&app).await;
    assert_eq!(count(&app, "inbox_messages").await, 1);
    assert_eq!(app.state.channels.sweep_received().await, 0);

    // Stored as the SQLite intake stores a webhook, ten seconds ago, and no job queued.
    let (_, lost) = FakeMeta::webhook_text("4915100000002", "Bob", "did this arrive?");
    let org: wamage_kernel::OrgId = admin.org_id.parse().unwrap();
    let channel: wamage_channels::ChannelId = s(&ch, "id").parse().unwrap();
    let received_at = app.clock.now().minus(Duration::from_secs(10));
    let db: &Db = &app.state.db;
    with_db!(db, |p| sqlx::query(
        "INSERT INTO channel_events (id, org_id, channel_id, body, state, received_at) \
         VALUES ($1, $2, $3, $4, 'received', $5)"
    )
    .bind(wamage_channels::EventId::new())
    .bind(org)
    .bind(channel)
    .bind(serde_json::to_vec(&lost).unwrap())
    .bind(received_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    assert_eq!(app.run_jobs().await, 0, "no job for it yet");
    assert_eq!(app.state.channels.sweep_received().await, 1);
    settle(&app).await;
    assert_eq!(count(&app, "inbox_messages").await, 2);
    assert_eq!(count(&app, "inbox_conversations").await, 2);
    assert!(events(&app).await.iter().all(|(s, _)| s == "processed"));
    assert_eq!(app.state.channels.sweep_received().await, 0);
}

/// One webhook carrying several messages of a new customer (one of them twice, one quoting
/// another) and one of a second customer: one conversation each, each message once, the quote
/// found within the batch, the newest message last; the same webhook again changes nothing.
async fn messages_of_one_webhook_share_their_conversation(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = whatsapp(&app, &admin, &fake).await;
    let url = app.url(&format!("/webhooks/whatsapp/{}", s(&ch, "id")));
    let (ada, bob) = ("4915111111111", "4915122222222");
    let (first_id, first) = webhook::text(ada, "Is my order on its way?");
    let (_, second) = webhook::text(ada, "It is order 1042");
    let second = webhook::reply_to(second, ada, &first_id);
    let (_, other) = webhook::text(bob, "Hello there");
    let body = FakeMeta::webhook_messages(
        vec![
            webhook::contact(Some(ada), None, "Ada", None),
            webhook::contact(Some(bob), None, "Bob", None),
        ],
        vec![first.clone(), second, first, other],
    );
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
    settle(&app).await;
    let convs = list(&app, &admin).await;
    assert_eq!(convs.len(), 2, "{convs:?}");
    let ada_conv = convs
        .iter()
        .find(|c| c["contact"]["name"] == "Ada")
        .unwrap();
    assert_eq!(ada_conv["status"], "open");
    assert_eq!(ada_conv["window"]["open"], true);
    let msgs = thread(&app, &admin, &s(ada_conv, "id")).await;
    let texts: Vec<&str> = msgs.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["Is my order on its way?", "It is order 1042"]);
    assert_eq!(msgs[1]["reply_to"]["id"], msgs[0]["id"], "{msgs:?}");
    assert_eq!(ada_conv["last_message"]["id"], msgs[1]["id"]);
    assert_eq!(count(&app, "inbox_messages").await, 3);

    // Meta retries the whole webhook.
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
    settle(&app).await;
    assert_eq!(count(&app, "inbox_messages").await, 3);
    assert_eq!(count(&app, "inbox_conversations").await, 2);
    assert!(events(&app).await.iter().all(|(s, _)| s == "processed"));
}

/// Runs one statement against the app's database.
async fn exec(app: &TestApp, sql: &str) {
    use wamage_platform::{Db, with_db};
    let db: &Db = &app.state.db;
    with_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
}

/// The stored events' states and processing times, oldest first.
async fn events(app: &TestApp) -> Vec<(String, Option<i64>)> {
    use wamage_platform::{Db, with_db};
    let db: &Db = &app.state.db;
    let rows: Vec<(String, Option<wamage_kernel::Timestamp>)> = with_db!(db, |p| sqlx::query_as(
        "SELECT state, processed_at FROM channel_events ORDER BY received_at, id"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    rows.into_iter()
        .map(|(s, t)| (s, t.map(|t| t.millis())))
        .collect()
}

/// A WhatsApp channel whose customer wrote and got a reply the provider accepted: the fake,
/// the owner, the channel's webhook URL and the reply as the send API answered it.
async fn a_reply_sent(app: &TestApp) -> (FakeMeta, TestUser, String, Value) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = whatsapp(app, &admin, &fake).await;
    let url = app.url(&format!("/webhooks/whatsapp/{}", s(&ch, "id")));
    let (_, body) = FakeMeta::webhook_text("4915112345678", "Grace Hopper", "Hello");
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
    settle(app).await;
    let conv = s(&list(app, &admin).await[0], "id");
    let m = reply_text(app, &admin, &conv, "Hi Grace").await;
    (fake, admin, url, m)
}

async fn an_early_report_waits_and_the_rest_is_done_once(app: TestApp) {
    let (fake, admin, url, m) = a_reply_sent(&app).await;
    let wamid = fake.sent()[0].id.clone();
    // The provider's report beats its own HTTP answer: the send result is not stored yet.
    exec(
        &app,
        "UPDATE inbox_messages SET provider_message_id = NULL WHERE direction = 'outbound'",
    )
    .await;

    // The report and three customers' messages arrive together.
    let mut bodies = vec![FakeMeta::webhook_statuses(vec![webhook::status(
        &wamid,
        "delivered",
        "4915112345678",
        1_700_000_000,
    )])];
    bodies.extend(
        (0..3).map(|i| {
            FakeMeta::webhook_text(&format!("49151000001{i:02}"), &format!("C{i}"), "hi").1
        }),
    );
    let codes = futures::future::join_all(
        bodies
            .iter()
            .map(|b| FakeMeta::post_webhook(&url, APP_SECRET, b)),
    )
    .await;
    assert_eq!(codes, vec![200; 4]);
    settle(&app).await;
    assert_eq!(count(&app, "inbox_conversations").await, 4);
    let first = events(&app).await;
    let states: Vec<&str> = first.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states.iter().filter(|s| **s == "processed").count(),
        4,
        "the messages are done at once: {first:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "pending").count(),
        1,
        "the early report waits: {first:?}"
    );
    assert_eq!(
        message_status(&app, &admin, &json!({ "message": m })).await,
        "sent"
    );

    // The send result lands; the retry applies the report, and only the report.
    exec(
        &app,
        &format!(
            "UPDATE inbox_messages SET provider_message_id = '{wamid}' WHERE direction = 'outbound'"
        ),
    )
    .await;
    app.clock.advance(Duration::from_secs(5));
    settle(&app).await;
    assert_eq!(
        message_status(&app, &admin, &json!({ "message": m })).await,
        "delivered"
    );
    let second = events(&app).await;
    assert!(second.iter().all(|(s, _)| s == "processed"), "{second:?}");
    for (before, after) in first.iter().zip(&second) {
        if before.0 == "processed" {
            assert_eq!(before, after, "a processed event is not processed again");
        }
    }
    assert_eq!(
        count(&app, "inbox_messages WHERE direction = 'inbound'").await,
        4
    );
}

/// A send the provider accepted and later reports failed: the message shows the failure
/// with the provider's reason; a later read proves delivery after all.
async fn a_failed_report_shows_the_reason_until_a_read_proves_delivery(app: TestApp) {
    let (fake, admin, url, m) = a_reply_sent(&app).await;
    let wamid = fake.sent()[0].id.clone();
    let report = |status: Value| {
        let body = FakeMeta::webhook_statuses(vec![status]);
        let url = url.clone();
        async move { FakeMeta::post_webhook(&url, APP_SECRET, &body).await }
    };
    assert_eq!(
        report(webhook::failed(
            &wamid,
            "4915112345678",
            131026,
            "Message undeliverable"
        ))
        .await,
        200
    );
    settle(&app).await;
    let got = message(&app, &admin, s(&m, "id")).await;
    assert_eq!(got["status"], "failed", "{got}");
    assert_eq!(got["error"]["code"], 131026);
    assert_eq!(got["error"]["class"], "permanent");
    let failed_events = events(&app).await;
    assert!(
        failed_events.iter().all(|(s, _)| s == "processed"),
        "{failed_events:?}"
    );

    assert_eq!(
        report(webhook::status(
            &wamid,
            "read",
            "4915112345678",
            1_700_000_100
        ))
        .await,
        200
    );
    settle(&app).await;
    let got = message(&app, &admin, s(&m, "id")).await;
    assert_eq!(got["status"], "read", "{got}");
    assert!(got["read_at"].is_string(), "{got}");
}

/// One POST with several reports about the same messages, out of order and repeated: each
/// message ends where its reports lead, in the order they came, with each step's own time.
async fn reports_about_one_message_in_one_post_apply_in_order(app: TestApp) {
    let (fake, admin, url, first) = a_reply_sent(&app).await;
    let conv = s(&first, "conversation_id");
    let second = reply_text(&app, &admin, &conv, "Anything else?").await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    let (a, b) = (sent[0].id.clone(), sent[1].id.clone());
    let to = "4915112345678";
    let body = FakeMeta::webhook_statuses(vec![
        // The first: read straight away (proving the earlier steps), then an older report
        // and the same read again.
        webhook::status(&a, "read", to, 1_700_000_100),
        webhook::status(&b, "delivered", to, 1_700_000_200),
        webhook::status(&a, "delivered", to, 1_700_000_050),
        webhook::status(&b, "read", to, 1_700_000_300),
        webhook::status(&a, "read", to, 1_700_000_100),
        // The second: a duplicate of its delivery after its read changes nothing.
        webhook::status(&b, "delivered", to, 1_700_000_400),
    ]);
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
    settle(&app).await;

    let at = |secs: i64| json!(wamage_kernel::Timestamp::from_millis(secs * 1000).to_rfc3339());
    let got = message(&app, &admin, s(&first, "id")).await;
    assert_eq!(got["status"], "read", "{got}");
    // (`sent_at` is the provider's answer to the send.)
    for step in ["delivered_at", "read_at"] {
        assert_eq!(got[step], at(1_700_000_100), "{step}: {got}");
    }
    let got = message(&app, &admin, s(&second, "id")).await;
    assert_eq!(got["status"], "read", "{got}");
    assert_eq!(got["delivered_at"], at(1_700_000_200), "{got}");
    assert_eq!(got["read_at"], at(1_700_000_300), "{got}");
    let all = events(&app).await;
    assert!(all.iter().all(|(s, _)| s == "processed"), "{all:?}");
}

/// The status of a batch result's message, read back.
async fn message_status(app: &TestApp, admin: &TestUser, result: &Value) -> String {
    let id = result["message"]["id"].as_str().unwrap().to_owned();
    expect_json(
        app.get_as(admin, &format!("/api/v1/messages/{id}")).await,
        StatusCode::OK,
    )
    .await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `POST /messages/batch`: items to numbers are written together and sent by one job, each
/// with its own answer; the rest take the single-send path. Nothing is sent twice, and a
/// send that must wait is retried on its own.
async fn batch_sends_to_numbers(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = s(&whatsapp(&app, &admin, &fake).await, "id");
    // A known customer who opted out of marketing, and one addressed by contact id.
    let known = |name: &str, phone: &str| {
        let body =
            json!({"name": name, "identities": [{"kind": "whatsapp_phone", "value": phone}]});
        let (app, admin) = (&app, &admin);
        async move {
            s(
                &expect_json(
                    app.post_as(admin, "/api/v1/contacts", &body).await,
                    StatusCode::CREATED,
                )
                .await,
                "id",
            )
        }
    };
    let opted_out = known("Olga", "+4915112345609").await;
    expect_json(
        app.post_as(
            &admin,
            &format!("/api/v1/contacts/{opted_out}/consent"),
            &json!({"channel": "whatsapp", "purpose": "marketing", "status": "opted_out"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let by_id = known("Ida", "+4915112345608").await;
    let contacts_before = count(&app, "contacts").await;

    let template = |to: Value, n: &str| {
        json!({"channel_id": ch, "to": to, "type": "template", "purpose": "marketing",
               "template": {"name": "order_update", "language": "en_US", "body": [n]}})
    };
    let utility = |to: Value, n: &str| {
        json!({"channel_id": ch, "to": to, "type": "template",
               "template": {"name": "order_update", "language": "en_US", "body": [n]}})
    };
    // 130429 for one number: that send waits and goes later on its own.
    fake.fail_for_recipient("4915112345604", MetaError::new(400, 130429));
    let mut updates = app.state.bus.subscribe("wamage.conversation.updated");
    let batch = expect_json(
        app.post_as(&admin, "/api/v1/messages/batch", &json!({"messages": [
            utility(json!({"phone": "+4915112345601"}), "1"),
            utility(json!({"phone": "+49 151 1234 5602"}), "2"),
            // The same number again: the same contact and conversation, a second message.
            utility(json!({"phone": "+4915112345601"}), "3"),
            // Free-form text to a number that never wrote: the 24-hour window is closed.
            {"channel_id": ch, "to": {"phone": "+4915112345603"}, "type": "text", "text": "hi"},
            // Marketing to the opted-out customer.
            template(json!({"phone": "+4915112345609"}), "5"),
            utility(json!({"phone": "123"}), "6"),
            utility(json!({"contact_id": by_id}), "7"),
            {"channel_id": "0190a1b2-0000-7000-8000-000000000000", "to": {"phone": "+4915112345601"},
             "type": "template", "template": {"name": "order_update", "language": "en_US"}},
            utility(json!({"phone": "+4915112345604"}), "9"),
            {"channel_id": ch, "to": {"phone": "+4915112345601"}, "type": "template"},
            // Marketing to a number never seen: its new contact has not opted in.
            template(json!({"phone": "+4915112345610"}), "11"),
        ]}))
        .await,
        StatusCode::OK,
    )
    .await;
    let r = batch["results"].as_array().unwrap();
    let statuses: Vec<i64> = r.iter().map(|x| x["status"].as_i64().unwrap()).collect();
    assert_eq!(
        statuses,
        vec![202, 202, 202, 409, 409, 422, 202, 422, 202, 422, 409],
        "{batch}"
    );
    for (i, x) in r.iter().enumerate() {
        assert_eq!(x["index"], i);
    }
    assert_eq!(r[3]["problem"]["code"], "window_closed");
    assert_eq!(r[4]["problem"]["code"], "consent_denied");
    assert_eq!(r[5]["problem"]["errors"][0]["field"], "to.phone");
    assert_eq!(r[7]["problem"]["errors"][0]["field"], "channel_id");
    assert_eq!(r[9]["problem"]["errors"][0]["field"], "template");
    assert_eq!(r[10]["problem"]["code"], "consent_denied");
    assert!(
        r[10]["problem"]["detail"]
            .as_str()
            .unwrap()
            .contains("opt-in"),
        "{batch}"
    );
    assert_eq!(r[0]["message"]["status"], "queued");
    assert_eq!(
        r[0]["message"]["conversation_id"], r[2]["message"]["conversation_id"],
        "one conversation per number"
    );
    // New customers: +…01, +…02 and +…04. Nothing for +…03 or +…10, refused before anything
    // was created: a number that never wrote has no open window, and marketing to a number
    // no contact holds has no opt-in.
    let all = expect_json(
        app.get_as(&admin, "/api/v1/contacts?limit=50").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(count(&app, "contacts").await, contacts_before + 3, "{all}");
    assert_eq!(count(&app, "inbox_conversations").await, 4);
    // Single sends refused for numbers that never wrote leave nothing behind either.
    let direct = |body: Value| {
        let (app, admin) = (&app, &admin);
        async move { app.post_as(admin, "/api/v1/messages", &body).await }
    };
    expect_problem(
        direct(json!({"channel_id": ch, "to": {"phone": "+4915112345603"},
                      "type": "text", "text": "hi"}))
        .await,
        StatusCode::CONFLICT,
        "window_closed",
    )
    .await;
    let p = expect_problem(
        direct(template(json!({"phone": "+4915112345611"}), "12")).await,
        StatusCode::CONFLICT,
        "consent_denied",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("opt-in"), "{p}");
    assert_eq!(count(&app, "contacts").await, contacts_before + 3);
    assert_eq!(count(&app, "inbox_conversations").await, 4);
    // Marketing to a known contact is the ledger's call: the opted-out customer is refused,
    // by number or by contact id, before a conversation is started for her.
    for to in [
        json!({"phone": "+4915112345609"}),
        json!({"contact_id": opted_out}),
    ] {
        expect_problem(
            direct(template(to, "13")).await,
            StatusCode::CONFLICT,
            "consent_denied",
        )
        .await;
    }
    assert_eq!(count(&app, "inbox_conversations").await, 4);
    // Refused for its message; a wrong field is named by its path.
    let invalid = |body: Value| {
        let direct = &direct;
        async move {
            let p = expect_problem(
                direct(body).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            )
            .await;
            p["errors"][0]["field"].as_str().unwrap().to_owned()
        }
    };
    let to = json!({"phone": "+4915112345620"});
    let bad_name = json!({"name": "Not a name!", "language": "en_US"});
    for (body, field) in [
        (
            json!({"channel_id": ch, "to": to, "type": "template", "template": bad_name}),
            "template.name",
        ),
        (
            json!({"channel_id": ch, "to": to, "type": "template", "template": {"language": "en_US"}}),
            "template.name",
        ),
        (
            json!({"channel_id": ch, "to": {"phone": 4915112345620_i64}, "type": "text"}),
            "to.phone",
        ),
        // A misspelt field is refused by its name, not ignored.
        (
            json!({"channel_id": ch, "to": to, "type": "text", "txt": "hi"}),
            "txt",
        ),
        (
            json!({"channel_id": ch, "to": to, "type": "template",
                   "template": {"name": "order_update", "language": "en_US", "bodyy": ["1"]}}),
            "template.bodyy",
        ),
    ] {
        assert_eq!(invalid(body).await, field);
    }
    let out = post_batch(
        &app,
        &admin,
        vec![
            json!({"channel_id": ch, "to": {"phone": "+4915112345620"}, "type": "template",
                   "template": {"language": "en_US", "body": [1]}}),
            json!("not an object"),
            json!({"to": {"phone": "+4915112345620"}, "type": "text", "text": "hi"}),
            json!({"channel_id": ch, "to": {"phone": "+4915112345620"}, "type": "text",
                   "text": "hi", "preview": true}),
        ],
    )
    .await;
    let fields: Vec<&str> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["problem"]["errors"][0]["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "messages[0].template.body[0]",
            "messages[1]",
            "messages[2].channel_id",
            "messages[3].preview"
        ],
        "{out}"
    );
    assert_eq!(count(&app, "contacts").await, contacts_before + 3);
    assert_eq!(count(&app, "inbox_conversations").await, 4);
    // The conversation shows its newest message (the second one to +…01).
    let convs = list(&app, &admin).await;
    let c1 = convs
        .iter()
        .find(|c| c["id"] == r[0]["message"]["conversation_id"])
        .unwrap();
    assert_eq!(c1["last_message"]["id"], r[2]["message"]["id"], "{c1}");
    // The conversations' events show the new customers as stored (rendered from what was
    // written, not read back): the same contact card as the list.
    let mut shown = 0;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(500), updates.recv()).await {
        let data = e.data.value();
        let conv = &data["conversation"];
        let listed = convs.iter().find(|c| c["id"] == conv["id"]).unwrap();
        assert_eq!(conv["contact"], listed["contact"], "{conv}");
        shown += 1;
    }
    assert!(shown >= 3, "one event per conversation written: {shown}");
    assert_eq!(c1["contact"]["phone"], "+4915112345601", "{c1}");

    settle(&app).await;
    let sent = fake.sent();
    let mut to: Vec<String> = sent
        .iter()
        .map(|m| m.body["to"].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(
        to,
        vec![
            "4915112345601",
            "4915112345601",
            "4915112345602",
            "4915112345608"
        ],
        "each accepted message once; the throttled one waits"
    );
    let status_of = |i: usize| message_status(&app, &admin, &r[i]);
    for i in [0, 1, 2, 6] {
        assert_eq!(status_of(i).await, "sent", "message {i}");
    }
    assert_eq!(status_of(8).await, "queued", "waiting for its retry");
    // The rate limit lifts; the waiting message goes, once.
    fake.clear_failures();
    app.clock.advance(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    settle(&app).await;
    assert_eq!(status_of(8).await, "sent");
    assert_eq!(fake.sent_count(), 5);
    settle(&app).await;
    assert_eq!(fake.sent_count(), 5, "nothing sent twice");
    // The customer's search finds the new contact by number.
    let found = expect_json(
        app.get_as(&admin, "/api/v1/contacts?q=15112345602").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
}

/// The same with pacing off (the sender's concurrency is not bounded by a slow channel's
/// pace): one `inbox.send_many` job sends the batch, each message once, a throttled one later
/// on its own.
async fn batch_sender_without_pacing(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = s(&whatsapp(&app, &admin, &fake).await, "id");
    fake.fail_for_recipient("4915112345613", MetaError::new(400, 130429));
    let items: Vec<Value> = (11..=14)
        .map(|i| {
            json!({"channel_id": ch, "to": {"phone": format!("+49151123456{i}")}, "type": "template",
                   "template": {"name": "order_update", "language": "en_US", "body": [i.to_string()]}})
        })
        .collect();
    let batch = post_batch(&app, &admin, items).await;
    let r = batch["results"].as_array().unwrap();
    assert!(r.iter().all(|x| x["status"] == 202), "{batch}");
    assert_eq!(count(&app, "jobs WHERE kind = 'inbox.send_many'").await, 1);
    assert_eq!(count(&app, "jobs WHERE kind = 'inbox.send'").await, 0);
    settle(&app).await;
    assert_eq!(fake.sent_count(), 3, "the throttled one waits");
    let status_of = |i: usize| message_status(&app, &admin, &r[i]);
    assert_eq!(status_of(0).await, "sent");
    assert_eq!(status_of(2).await, "queued");
    fake.clear_failures();
    app.clock.advance(Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    settle(&app).await;
    assert_eq!(status_of(2).await, "sent");
    assert_eq!(fake.sent_count(), 4, "each message once");
}

/// Several batches at once (their `inbox.send_many` jobs run together and hand their accepted
/// sends to one writer): every message reaches the provider once and is stored `sent` with
/// its wamid, and each is published as sent once.
async fn batches_at_once_store_every_send_once(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = s(&whatsapp(&app, &admin, &fake).await, "id");
    let mut sent_events = app.state.bus.subscribe("wamage.message.sent");
    let post = |from: usize| {
        let items: Vec<Value> = (from..from + 100)
            .map(|i| {
                json!({"channel_id": ch, "to": {"phone": format!("+4915100{i:05}")},
                       "type": "template",
                       "template": {"name": "order_update", "language": "en_US",
                                    "body": [i.to_string()]}})
            })
            .collect();
        let app = &app;
        let admin = &admin;
        async move { post_batch(app, admin, items).await }
    };
    let (a, b, c) = tokio::join!(post(0), post(100), post(200));
    for batch in [&a, &b, &c] {
        let r = batch["results"].as_array().unwrap();
        assert!(r.iter().all(|x| x["status"] == 202), "{batch}");
    }
    settle(&app).await;
    assert_eq!(fake.sent_count(), 300, "each message once");
    let wamids: std::collections::HashSet<String> = fake.sent().into_iter().map(|m| m.id).collect();
    assert_eq!(wamids.len(), 300);
    assert_eq!(
        count(
            &app,
            "inbox_messages WHERE direction = 'outbound' AND status = 'sent' \
             AND provider_message_id IS NOT NULL AND sent_at IS NOT NULL"
        )
        .await,
        300
    );
    let mut published = std::collections::HashSet::new();
    while let Ok(Some(e)) =
        tokio::time::timeout(Duration::from_millis(500), sent_events.recv()).await
    {
        let data = e.data.value();
        let m = &data["message"];
        assert_eq!(m["status"], "sent", "{m}");
        assert!(m["sent_at"].is_string(), "{m}");
        assert!(published.insert(m["id"].to_string()), "published once: {m}");
    }
    assert_eq!(published.len(), 300);
}

/// Batch requests arriving together are written together (one contact resolution per
/// organisation, one transaction), yet each keeps its own answers: two organisations, two
/// batches sharing numbers, one refused item.
async fn concurrent_batches_are_written_together_and_answered_apart(app: TestApp) {
    let fake = FakeMeta::start().await;
    let acme = app.register("owner@acme.test", "Acme").await;
    let globex = app.register("owner@globex.test", "Globex").await;
    let wa = s(&whatsapp(&app, &acme, &fake).await, "id");
    let sandbox = s(
        &expect_json(
            app.post_as(
                &globex,
                "/api/v1/channels",
                &json!({"kind": "sandbox", "name": "Playground"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    let template = |i: usize| {
        json!({"channel_id": wa, "to": {"phone": format!("+4915200{i:05}")},
               "type": "template",
               "template": {"name": "order_update", "language": "en_US", "body": [i.to_string()]}})
    };
    let first: Vec<Value> = (0..50).map(template).collect();
    // The second batch starts with free text to a number that never wrote (refused: the
    // window is closed) and shares numbers 25..50 with the first.
    let mut second = vec![json!({"channel_id": wa, "to": {"phone": "+4915200099999"},
                                 "type": "text", "text": "hello"})];
    second.extend((25..75).map(template));
    let third: Vec<Value> = (0..30)
        .map(|i| {
            json!({"channel_id": sandbox, "to": {"handle": format!("guest{i}")},
                        "type": "text", "text": format!("hi {i}")})
        })
        .collect();
    let post = |who: &TestUser, items: Vec<Value>| {
        let app = &app;
        let who = who.clone();
        async move { post_batch(app, &who, items).await }
    };
    let (a, b, c) = tokio::join!(
        post(&acme, first),
        post(&acme, second),
        post(&globex, third)
    );
    let results = |v: &Value| v["results"].as_array().unwrap().clone();
    let (a, b, c) = (results(&a), results(&b), results(&c));
    assert_eq!((a.len(), b.len(), c.len()), (50, 51, 30));
    for (batch, r) in [(&a, 0), (&b, 1), (&c, 0)] {
        for (i, x) in batch.iter().enumerate() {
            assert_eq!(x["index"], i, "answers keep their request's order: {x}");
            if i >= r {
                assert_eq!(x["status"], 202, "{x}");
            }
        }
    }
    assert_eq!(b[0]["status"], 409, "{}", b[0]);
    assert_eq!(b[0]["problem"]["code"], "window_closed", "{}", b[0]);
    // One conversation per number: the shared numbers' messages of both batches are in it.
    let conv_of = |x: &Value| s(&x["message"], "conversation_id");
    for i in 25..50 {
        assert_eq!(conv_of(&a[i]), conv_of(&b[i - 25 + 1]), "number {i}");
    }
    let acme_convs: std::collections::HashSet<String> =
        a.iter().chain(&b[1..]).map(conv_of).collect();
    let globex_convs: std::collections::HashSet<String> = c.iter().map(conv_of).collect();
    assert_eq!((acme_convs.len(), globex_convs.len()), (75, 30));
    assert_eq!(count(&app, "inbox_conversations").await, 105);
    assert_eq!(
        count(&app, "inbox_messages WHERE direction = 'outbound'").await,
        130
    );
    // One contact per address; none for the refused item's number, which never wrote.
    assert_eq!(count(&app, "contacts").await, 105);
    // Each organisation sees its own conversations only.
    assert!(
        list(&app, &globex)
            .await
            .iter()
            .all(|c| globex_convs.contains(&s(c, "id")))
    );
    settle(&app).await;
    assert_eq!(fake.sent_count(), 100, "each template once");
}

/// A customer's first messages, single sends and a batch to that customer, all at the same
/// moment and with the jobs running meanwhile: every number gets one conversation (on
/// PostgreSQL the writers would otherwise each find none and create one).
async fn sends_and_webhooks_to_new_numbers_at_once_share_one_conversation(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = s(&whatsapp(&app, &admin, &fake).await, "id");
    let url = app.url(&format!("/webhooks/whatsapp/{ch}"));
    let numbers: Vec<String> = (0..24).map(|i| format!("4915300000{i:03}")).collect();
    let template = |n: &str| {
        json!({"channel_id": ch, "to": {"phone": format!("+{n}")}, "type": "template",
               "template": {"name": "order_update", "language": "en_US", "body": [n]}})
    };
    let single = |n: String| {
        let (app, admin, body) = (&app, &admin, template(&n));
        async move {
            let r = app.post_as(admin, "/api/v1/messages", &body).await;
            assert_eq!(r.status(), StatusCode::ACCEPTED, "{n}");
        }
    };
    let batch = |ns: Vec<String>| {
        let (app, admin) = (&app, &admin);
        let items: Vec<Value> = ns.iter().map(|n| template(n)).collect();
        async move {
            let out = post_batch(app, admin, items).await;
            for r in out["results"].as_array().unwrap() {
                assert_eq!(r["status"], 202, "{r}");
            }
        }
    };
    let inbound = |n: String| {
        let url = url.clone();
        async move {
            let (_, body) = FakeMeta::webhook_text(&n, "Customer", "hello?");
            assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
        }
    };
    let running = std::sync::atomic::AtomicBool::new(true);
    let jobs = async {
        while running.load(std::sync::atomic::Ordering::Relaxed) {
            app.run_jobs().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let everything = async {
        let mut all: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>> =
            Vec::new();
        for n in &numbers {
            all.push(Box::pin(single(n.clone())));
            all.push(Box::pin(single(n.clone())));
            all.push(Box::pin(inbound(n.clone())));
        }
        all.push(Box::pin(batch(numbers.clone())));
        all.push(Box::pin(batch(numbers.iter().rev().cloned().collect())));
        futures::future::join_all(all).await;
        running.store(false, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(jobs, everything);
    settle(&app).await;
    let per_number: Vec<(String, i64)> = {
        use wamage_platform::{Db, with_db};
        let db: &Db = &app.state.db;
        with_db!(db, |p| sqlx::query_as(
            "SELECT recipient_key, COUNT(*) FROM inbox_conversations \
             GROUP BY recipient_key HAVING COUNT(*) > 1"
        )
        .fetch_all(p)
        .await)
        .unwrap()
    };
    assert!(
        per_number.is_empty(),
        "numbers with several conversations: {per_number:?}"
    );
    assert_eq!(count(&app, "inbox_conversations").await, 24);
    assert_eq!(count(&app, "contacts").await, 24);
    assert_eq!(
        count(&app, "inbox_messages WHERE direction = 'inbound'").await,
        24
    );
    assert_eq!(
        count(&app, "inbox_messages WHERE direction = 'outbound'").await,
        24 * 4
    );
    assert_eq!(fake.sent_count(), 24 * 4, "each send once");
}

/// Batches to the same new numbers on two WhatsApp numbers of one organisation, at once and in
/// opposite orders, again and again: writes that overlap (PostgreSQL writes two merges at a
/// time) race for the same new contact identities and must neither deadlock nor fail — the
/// loser resolves again and both end on the same contacts.
async fn batches_on_two_numbers_to_the_same_new_customers_share_their_contacts(app: TestApp) {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let first = s(&whatsapp(&app, &admin, &fake).await, "id");
    let second = s(
        &whatsapp_number(&app, &admin, &fake, "Sales", "200000000000002").await,
        "id",
    );
    let batch = |ch: String, ns: Vec<String>, pause: u64| {
        let (app, admin) = (&app, &admin);
        let items: Vec<Value> = ns
            .iter()
            .map(|n| {
                json!({"channel_id": ch, "to": {"phone": format!("+{n}")}, "type": "template",
                       "template": {"name": "order_update", "language": "en_US", "body": [n]}})
            })
            .collect();
        async move {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let out = post_batch(app, admin, items).await;
            for r in out["results"].as_array().unwrap() {
                assert_eq!(r["status"], 202, "{r}");
            }
        }
    };
    let rounds: i64 = 8;
    for (round, pause) in (0..rounds).zip([0, 1, 2, 3].into_iter().cycle()) {
        let numbers: Vec<String> = (0..100)
            .map(|i| format!("4915400{round:02}{i:03}"))
            .collect();
        let reversed: Vec<String> = numbers.iter().rev().cloned().collect();
        tokio::join!(
            batch(first.clone(), numbers.clone(), 0),
            batch(second.clone(), reversed, pause),
        );
    }
    assert_eq!(count(&app, "contacts").await, rounds * 100);
    assert_eq!(count(&app, "contact_identities").await, rounds * 100);
    assert_eq!(count(&app, "inbox_conversations").await, rounds * 200);
    assert_eq!(
        count(&app, "inbox_messages WHERE direction = 'outbound'").await,
        rounds * 200
    );
}

wamage_testkit::app_tests_with!(
    unpaced,
    |c| c.channel_pacing = false,
    batch_sender_without_pacing,
    batches_at_once_store_every_send_once,
    concurrent_batches_are_written_together_and_answered_apart,
    sends_and_webhooks_to_new_numbers_at_once_share_one_conversation,
    batches_on_two_numbers_to_the_same_new_customers_share_their_contacts
);

app_tests!(
    an_early_report_waits_and_the_rest_is_done_once,
    a_failed_report_shows_the_reason_until_a_read_proves_delivery,
    reports_about_one_message_in_one_post_apply_in_order,
    concurrent_webhooks_are_stored_together_and_each_once,
    a_webhook_after_the_intake_connection_died_is_stored_once,
    webhooks_stored_without_their_jobs_are_swept_up,
    messages_of_one_webhook_share_their_conversation,
    whatsapp_webhooks_in,
    whatsapp_sends_out,
    batch_sends_to_numbers,
    telegram_webhook_polling_and_blocks
);
