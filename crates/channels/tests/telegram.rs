//! The Telegram adapter against the fake Bot API: sends of every kind, error classification,
//! media download, long polling with offset confirmation, and update parsing with 64-bit ids.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use serde_json::{Value, json};
use wamage_channels::{
    provider::{
        ActionNeeded, Inbound, InboundContent, ListRow, ListSection, Location, MediaKind, Outbound,
        OutboundContent, OutboundMedia, ProviderClient, Recipient, ReplyButton, SendError,
        TemplateMessage,
    },
    telegram::{self, TelegramClient, TelegramConfig},
};
use wamage_testkit::fakes::telegram::{FakeTelegram, TOKEN, TgLimits, updates};

/// Beyond 2^53: would lose precision through f64.
const BIG_USER: i64 = 9_007_199_254_740_993;
const BIG_GROUP: i64 = -1_009_007_199_254_740_991;

fn client(fake: &FakeTelegram) -> TelegramClient {
    client_with_timeout(fake, Duration::from_secs(5))
}

fn client_with_timeout(fake: &FakeTelegram, timeout: Duration) -> TelegramClient {
    TelegramClient::new(TelegramConfig {
        base_url: fake.base_url(),
        bot_token: TOKEN.to_owned(),
        timeout,
    })
    .unwrap()
}

fn out(chat_id: i64, content: OutboundContent) -> Outbound {
    Outbound {
        to: Recipient::Telegram { chat_id },
        content,
        reply_to: None,
        callback_data: None,
    }
}

fn text(body: &str) -> OutboundContent {
    OutboundContent::Text {
        body: body.to_owned(),
        preview_url: true,
        buttons: vec![],
    }
}

fn media(kind: MediaKind, source: &str) -> OutboundContent {
    let is_url = source.starts_with("https://");
    OutboundContent::Media(OutboundMedia {
        kind,
        provider_media_id: (!is_url).then(|| source.to_owned()),
        link: is_url.then(|| source.to_owned()),
        caption: (kind != MediaKind::Sticker).then(|| "caption".to_owned()),
        filename: None,
    })
}

#[tokio::test]
async fn every_outbound_type_is_accepted_by_the_bot_api() {
    let fake = FakeTelegram::start().await;
    let c = client(&fake);
    let chat = BIG_USER;
    let contents = vec![
        text("hello"),
        OutboundContent::Text {
            body: "pick".into(),
            preview_url: false,
            buttons: vec![
                ReplyButton {
                    id: "yes".into(),
                    title: "Yes".into(),
                },
                ReplyButton {
                    id: "no".into(),
                    title: "No".into(),
                },
            ],
        },
        media(MediaKind::Image, "AgACAgIAAxkBAAIBQ2"),
        media(MediaKind::Image, "https://example.com/a.jpg"),
        media(MediaKind::Video, "https://example.com/a.mp4"),
        media(MediaKind::Audio, "CQACAgIAAxkBAAIB"),
        media(MediaKind::Voice, "AwACAgIAAxkBAAIB"),
        media(MediaKind::Document, "https://example.com/i.pdf"),
        media(MediaKind::Sticker, "CAACAgIAAxkBAAIB"),
        OutboundContent::Buttons {
            body: "Sure?".into(),
            header: Some("Confirm".into()),
            footer: None,
            buttons: vec![ReplyButton {
                id: "ok".into(),
                title: "OK".into(),
            }],
        },
        OutboundContent::List {
            body: "Choose".into(),
            header: None,
            footer: Some("thanks".into()),
            button: "Open".into(),
            sections: vec![ListSection {
                title: "A".into(),
                rows: vec![
                    ListRow {
                        id: "r1".into(),
                        title: "One".into(),
                        description: None,
                    },
                    ListRow {
                        id: "r2".into(),
                        title: "Two".into(),
                        description: None,
                    },
                ],
            }],
        },
        OutboundContent::Location(Location {
            latitude: 52.52,
            longitude: 13.405,
            name: None,
            address: None,
        }),
    ];
    let mut ids = Vec::new();
    for content in &contents {
        let sent = c
            .send(&out(chat, content.clone()))
            .await
            .unwrap_or_else(|e| panic!("{content:?}: {e}"));
        ids.push(sent.provider_message_id);
    }
    let expected: Vec<String> = (1..=contents.len())
        .map(|i| format!("{chat}:{i}"))
        .collect();
    assert_eq!(ids, expected);

    // A reply, then a reaction to it and its removal.
    let reply = c
        .send(&Outbound {
            to: Recipient::Telegram { chat_id: chat },
            content: text("answer"),
            reply_to: Some(format!("{chat}:1")),
            callback_data: None,
        })
        .await
        .unwrap();
    let reacted = c
        .send(&out(
            chat,
            OutboundContent::Reaction {
                to_provider_message_id: reply.provider_message_id.clone(),
                emoji: "👍".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(reacted.provider_message_id, reply.provider_message_id);
    c.send(&out(
        chat,
        OutboundContent::Reaction {
            to_provider_message_id: reply.provider_message_id.clone(),
            emoji: String::new(),
        },
    ))
    .await
    .unwrap();

    let sent = fake.sent();
    let methods: Vec<&str> = sent.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        methods,
        vec![
            "sendMessage",
            "sendMessage",
            "sendPhoto",
            "sendPhoto",
            "sendVideo",
            "sendAudio",
            "sendVoice",
            "sendDocument",
            "sendSticker",
            "sendMessage",
            "sendMessage",
            "sendLocation",
            "sendMessage",
            "setMessageReaction",
            "setMessageReaction",
        ]
    );
    assert!(sent.iter().all(|s| s.chat_id == chat));
    assert_eq!(
        sent[1].params["reply_markup"]["inline_keyboard"][1][0]["callback_data"],
        "no"
    );
    assert_eq!(sent[1].params["link_preview_options"]["is_disabled"], true);
    assert_eq!(sent[12].params["reply_parameters"]["message_id"], 1);
    assert_eq!(sent[13].params["reaction"][0]["emoji"], "👍");
    assert_eq!(sent[14].params["reaction"], json!([]));
}

#[tokio::test]
async fn templates_are_refused_without_a_request() {
    let fake = FakeTelegram::start().await;
    let err = client(&fake)
        .send(&out(
            1,
            OutboundContent::Template(TemplateMessage {
                name: "welcome".into(),
                language: "en".into(),
                header: vec![],
                body: vec![],
                buttons: vec![],
            }),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent { .. }));
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test]
async fn flood_limits_are_retryable_with_retry_after() {
    let fake = FakeTelegram::start().await;
    fake.set_rate_limits(Some(TgLimits::default()));
    let c = client(&fake);
    c.send(&out(10, text("1"))).await.unwrap();
    let err = c.send(&out(10, text("2"))).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.code(), 429);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    // Another chat still has room.
    c.send(&out(11, text("1"))).await.unwrap();
    assert_eq!(fake.throttled_count(), 1);

    fake.set_rate_limits(None);
    fake.throttle_next(1, 7);
    let err = c.send(&out(10, text("3"))).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn the_global_limit_applies_across_chats() {
    let fake = FakeTelegram::start().await;
    fake.set_rate_limits(Some(TgLimits {
        per_chat_per_second: 1,
        global_per_second: 3,
    }));
    let c = client(&fake);
    for chat in 1..=3 {
        c.send(&out(chat, text("x"))).await.unwrap();
    }
    let err = c.send(&out(4, text("x"))).await.unwrap_err();
    assert_eq!(err.code(), 429);
}

#[tokio::test]
async fn blocked_wrong_token_server_errors_and_bad_requests() {
    let fake = FakeTelegram::start().await;
    let c = client(&fake);

    fake.block_chat(77);
    let err = c.send(&out(77, text("x"))).await.unwrap_err();
    assert_eq!(err.code(), 403);
    assert_eq!(err.action(), Some(ActionNeeded::BlockedByUser));
    fake.unblock_chat(77);
    c.send(&out(77, text("x"))).await.unwrap();

    fake.fail_next(1, 502, "Bad Gateway");
    assert!(
        c.send(&out(77, text("x")))
            .await
            .unwrap_err()
            .is_retryable()
    );

    let long_data = ReplyButton {
        id: "x".repeat(65),
        title: "Too long".into(),
    };
    let err = c
        .send(&out(
            77,
            OutboundContent::Text {
                body: "x".into(),
                preview_url: false,
                buttons: vec![long_data],
            },
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SendError::Permanent { code: 400, message } if message.contains("BUTTON_DATA_INVALID")),
        "{err:?}"
    );
    let err = c.send(&out(77, text(" "))).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { code: 400, .. }));

    fake.set_token("999:other");
    let err = c.check().await.unwrap_err();
    assert_eq!(err.action(), Some(ActionNeeded::ExpiredToken));
}

#[tokio::test]
async fn a_hanging_api_is_a_retryable_timeout() {
    let fake = FakeTelegram::start().await;
    fake.set_hang(Some(Duration::from_secs(3)));
    let err = client_with_timeout(&fake, Duration::from_millis(200))
        .send(&out(1, text("x")))
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.code(), SendError::CODE_TIMEOUT);
    // The token is in the URL; it must not leak into the error.
    assert!(!err.message().contains(TOKEN), "{err}");
}

#[tokio::test]
async fn check_media_and_callback_answers() {
    let fake = FakeTelegram::start().await;
    let c = client(&fake);
    let me = c.check().await.unwrap();
    assert_eq!(me["is_bot"], true);
    assert!(me["username"].is_string());
    c.mark_read("1:1").await.unwrap();

    let bytes = b"OggS fake voice".to_vec();
    let file_id = fake.add_file(&bytes, "oga");
    let got = c.download_media(&file_id).await.unwrap();
    assert_eq!(got.bytes.as_ref(), bytes.as_slice());
    let err = c.download_media("nope").await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { code: 400, .. }));

    c.answer_callback_query("cb-1", Some("Thanks!"))
        .await
        .unwrap();
    c.answer_callback_query("cb-2", None).await.unwrap();
    assert_eq!(
        fake.answered_callbacks(),
        vec![
            ("cb-1".to_owned(), Some("Thanks!".to_owned())),
            ("cb-2".to_owned(), None)
        ]
    );
}

#[tokio::test]
async fn get_updates_confirms_by_offset_and_long_polls() {
    let fake = FakeTelegram::start().await;
    let c = client(&fake);
    let user = updates::user(BIG_USER, "Ada", None, Some("ada"));
    let chat = updates::private_chat(&user);
    let first_id = 900_000_000_000_000_001_i64;
    for i in 0..3 {
        fake.push_update(updates::message_update(
            first_id + i,
            updates::text(i + 1, &chat, Some(&user), &format!("m{i}")),
        ));
    }
    let got = c.get_updates(None, 0).await.unwrap();
    assert_eq!(got.len(), 3);
    // Not confirmed yet: asking again returns the same updates.
    assert_eq!(c.get_updates(None, 0).await.unwrap().len(), 3);

    // Confirm the first two.
    let got = c.get_updates(Some(first_id + 2), 0).await.unwrap();
    assert_eq!(got.len(), 1);
    let (update_id, items) = telegram::parse_update(&got[0]).unwrap();
    assert_eq!(update_id, first_id + 2);
    assert!(matches!(&items[0], Inbound::Message(m) if m.from.telegram_user_id == Some(BIG_USER)));
    assert_eq!(fake.pending_updates(), 1);

    let got = c.get_updates(Some(update_id + 1), 0).await.unwrap();
    assert!(got.is_empty());
    assert_eq!(fake.pending_updates(), 0);

    // Long polling: the call waits until an update arrives.
    let pusher = fake.clone();
    let next = first_id + 3;
    let push = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        pusher.push_update(updates::message_update(
            next,
            updates::text(4, &chat, Some(&user), "late"),
        ));
    });
    let started = std::time::Instant::now();
    let got = c.get_updates(Some(next), 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    push.await.unwrap();
}

#[tokio::test]
async fn get_updates_conflicts_with_a_webhook() {
    let fake = FakeTelegram::start().await;
    let c = client(&fake);
    let err = c
        .set_webhook("http://insecure.example/hook", "s3cret")
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent { code: 400, .. }));
    c.set_webhook(
        "https://wamage.example/hooks/telegram/abc",
        "s3cret_token-1",
    )
    .await
    .unwrap();
    assert_eq!(
        fake.webhook(),
        Some((
            "https://wamage.example/hooks/telegram/abc".to_owned(),
            Some("s3cret_token-1".to_owned())
        ))
    );
    let err = c.get_updates(None, 0).await.unwrap_err();
    assert_eq!(err.code(), 409);
    c.delete_webhook().await.unwrap();
    assert!(c.get_updates(None, 0).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Webhooks and parsing
// ---------------------------------------------------------------------------------------------

/// What one update parsed into: its id and items.
type Parsed = (i64, Vec<Inbound>);

#[derive(Clone, Default)]
struct Receiver {
    items: Arc<Mutex<Vec<Parsed>>>,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    Json(update): Json<Value>,
) -> StatusCode {
    let secret = headers
        .get(telegram::SECRET_HEADER)
        .and_then(|v| v.to_str().ok());
    if !telegram::verify_secret("s3cret", secret) {
        return StatusCode::UNAUTHORIZED;
    }
    match telegram::parse_update(&update) {
        Ok(parsed) => {
            r.items.lock().unwrap().push(parsed);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[tokio::test]
async fn webhook_secret_is_checked() {
    let r = Receiver::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let user = updates::user(5, "Bo", None, None);
    let update = updates::message_update(
        1,
        updates::text(1, &updates::private_chat(&user), Some(&user), "hi"),
    );
    assert_eq!(
        FakeTelegram::post_webhook(&url, Some("s3cret"), &update).await,
        200
    );
    assert_eq!(
        FakeTelegram::post_webhook(&url, Some("wrong"), &update).await,
        401
    );
    assert_eq!(FakeTelegram::post_webhook(&url, None, &update).await, 401);
    assert_eq!(r.items.lock().unwrap().len(), 1);
    assert!(!telegram::verify_secret("", Some("")));
}

fn message_of(update: &Value) -> wamage_channels::provider::InboundMessage {
    match telegram::parse_update(update).unwrap().1.remove(0) {
        Inbound::Message(m) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_update_kind_from_the_fakes_builders() {
    let user = updates::user(BIG_USER, "Ada", Some("Lovelace"), Some("ada"));
    let chat = updates::private_chat(&user);
    let group = updates::group_chat(BIG_GROUP, "Team");
    let channel = updates::channel_chat(-1_001_234_567_890, "News", Some("news"));
    let f = Some(&user);

    let m = message_of(&updates::message_update(
        1,
        updates::text(10, &chat, f, "hi"),
    ));
    assert_eq!(m.provider_message_id, format!("{BIG_USER}:10"));
    assert_eq!(m.from.telegram_user_id, Some(BIG_USER));
    assert_eq!(m.from.telegram_chat_id, Some(BIG_USER));
    assert_eq!(m.from.username.as_deref(), Some("ada"));
    assert_eq!(m.from.name.as_deref(), Some("Ada Lovelace"));
    assert!(!m.group && !m.edited);
    assert_eq!(m.content, InboundContent::Text { body: "hi".into() });

    let media_of = |u: Value| match message_of(&u).content {
        InboundContent::Media(m) => m,
        other => panic!("{other:?}"),
    };
    let photo = media_of(updates::message_update(
        2,
        updates::photo(11, &chat, f, ["s", "m", "l"], Some("pic")),
    ));
    assert_eq!(
        (photo.kind, photo.provider_media_id.as_str()),
        (MediaKind::Image, "l")
    );
    assert_eq!(photo.caption.as_deref(), Some("pic"));
    let cases = [
        (updates::voice(12, &chat, f, "v1"), MediaKind::Voice, "v1"),
        (updates::video(13, &chat, f, "vi1"), MediaKind::Video, "vi1"),
        (updates::audio(14, &chat, f, "a1"), MediaKind::Audio, "a1"),
        (
            updates::document(15, &chat, f, "d1", "report.pdf", "application/pdf"),
            MediaKind::Document,
            "d1",
        ),
        (
            updates::sticker(16, &chat, f, "st1"),
            MediaKind::Sticker,
            "st1",
        ),
    ];
    for (i, (msg, kind, id)) in cases.into_iter().enumerate() {
        let got = media_of(updates::message_update(3 + i as i64, msg));
        assert_eq!((got.kind, got.provider_media_id.as_str()), (kind, id));
    }
    let doc = media_of(updates::message_update(
        20,
        updates::document(17, &chat, f, "d1", "report.pdf", "application/pdf"),
    ));
    assert_eq!(doc.filename.as_deref(), Some("report.pdf"));
    assert_eq!(doc.mime_type.as_deref(), Some("application/pdf"));

    let loc = message_of(&updates::message_update(
        21,
        updates::location(18, &chat, f, 52.5, 13.4),
    ));
    assert!(matches!(loc.content, InboundContent::Location(l) if l.latitude == 52.5));
    let contact = message_of(&updates::message_update(
        22,
        updates::contact(19, &chat, f, "+4915112345678", "Bob"),
    ));
    assert!(
        matches!(&contact.content, InboundContent::Contacts { contacts } if contacts[0]["phone_number"] == "+4915112345678")
    );

    let original = updates::text(20, &chat, f, "question");
    let reply = message_of(&updates::message_update(
        23,
        updates::reply(updates::text(21, &chat, f, "answer"), &original),
    ));
    assert_eq!(reply.reply_to, Some(format!("{BIG_USER}:20")));

    let edited = message_of(&updates::edited_message_update(
        24,
        updates::text(20, &chat, f, "question (edited)"),
    ));
    assert!(edited.edited);
    assert_eq!(edited.provider_message_id, format!("{BIG_USER}:20"));

    let in_group = message_of(&updates::message_update(
        25,
        updates::text(5, &group, f, "hello team"),
    ));
    assert!(in_group.group);
    assert_eq!(in_group.provider_message_id, format!("{BIG_GROUP}:5"));
    assert_eq!(in_group.from.telegram_chat_id, Some(BIG_GROUP));
    assert_eq!(in_group.from.telegram_user_id, Some(BIG_USER));

    let post = message_of(&updates::channel_post_update(
        26,
        updates::text(7, &channel, None, "news!"),
    ));
    assert!(post.group);
    assert_eq!(post.from.telegram_user_id, None);
    assert_eq!(post.from.name.as_deref(), Some("News"));

    let keyboard_msg = updates::message(
        30,
        &chat,
        None,
        json!({ "text": "Sure?", "reply_markup": { "inline_keyboard": [[
            { "text": "Yes please", "callback_data": "yes" }]] } }),
    );
    let cb = message_of(&updates::callback_query_update(
        27,
        "cbq-1",
        &user,
        &keyboard_msg,
        "yes",
    ));
    assert_eq!(
        cb.content,
        InboundContent::Button {
            payload: "yes".into(),
            text: "Yes please".into(),
            callback_id: Some("cbq-1".into())
        }
    );
    assert_eq!(cb.reply_to, Some(format!("{BIG_USER}:30")));

    let blocked = telegram::parse_update(&updates::my_chat_member_update(
        28, &chat, &user, "member", "kicked",
    ))
    .unwrap()
    .1;
    assert!(
        matches!(&blocked[0], Inbound::BotBlocked { from, blocked: true } if from.telegram_user_id == Some(BIG_USER))
    );
    let unblocked = telegram::parse_update(&updates::my_chat_member_update(
        29, &chat, &user, "kicked", "member",
    ))
    .unwrap()
    .1;
    assert!(matches!(
        &unblocked[0],
        Inbound::BotBlocked { blocked: false, .. }
    ));
}

#[test]
fn a_realistic_update_with_64_bit_ids_parses_exactly() {
    let raw = r#"{
      "update_id": 9223372036854775000,
      "message": {
        "message_id": 2147483648,
        "from": { "id": 9007199254740993, "is_bot": false, "first_name": "Jörg", "username": "joerg", "language_code": "de" },
        "sender_chat": null,
        "chat": { "id": -1009007199254740993, "title": "Support", "type": "supergroup" },
        "date": 1739321024,
        "reply_to_message": {
          "message_id": 2147483647,
          "from": { "id": 123456789, "is_bot": true, "first_name": "Wamage", "username": "wamage_bot" },
          "chat": { "id": -1009007199254740993, "title": "Support", "type": "supergroup" },
          "date": 1739321000, "text": "How can we help?"
        },
        "voice": { "duration": 2, "mime_type": "audio/ogg", "file_id": "AwACAgIAAxkBAAIBZ2ZK", "file_unique_id": "AgADx", "file_size": 7342 },
        "caption": "listen"
      }
    }"#;
    let update: Value = serde_json::from_str(raw).unwrap();
    let (update_id, items) = telegram::parse_update(&update).unwrap();
    assert_eq!(update_id, 9_223_372_036_854_775_000);
    let Inbound::Message(m) = &items[0] else {
        panic!("{items:?}")
    };
    assert_eq!(m.provider_message_id, "-1009007199254740993:2147483648");
    assert_eq!(
        m.reply_to.as_deref(),
        Some("-1009007199254740993:2147483647")
    );
    assert_eq!(m.from.telegram_user_id, Some(9_007_199_254_740_993));
    assert_eq!(m.from.name.as_deref(), Some("Jörg"));
    assert_eq!(m.sent_at_ms, 1_739_321_024_000);
    assert!(m.group);
    assert!(
        matches!(&m.content, InboundContent::Media(media) if media.kind == MediaKind::Voice && media.size == Some(7342) && media.caption.as_deref() == Some("listen"))
    );
}
