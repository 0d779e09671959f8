//! The WhatsApp adapter against the fake Cloud API: every outbound shape is accepted by a server
//! that checks shapes like Meta, errors are classified, webhooks round-trip through signing and
//! parsing.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::json;
use wamage_channels::{
    provider::{
        ActionNeeded, DeliveryStatus, Inbound, InboundContent, ListRow, ListSection, Location,
        MediaKind, Outbound, OutboundContent, OutboundMedia, ProviderClient, Recipient,
        ReplyButton, SendError, TemplateButtonParam, TemplateMessage, TemplateParam,
    },
    whatsapp::{self, WhatsappClient, WhatsappConfig},
};
use wamage_testkit::fakes::meta::{
    self, FakeMeta, MetaError, PHONE_NUMBER_ID, Signature, TOKEN, WABA_ID, webhook,
};

const CUSTOMER: &str = "+4915112345678";
const CUSTOMER_DIGITS: &str = "4915112345678";
const APP_SECRET: &str = "app-secret-123";

fn client(fake: &FakeMeta) -> WhatsappClient {
    client_with_timeout(fake, Duration::from_secs(5))
}

fn client_with_timeout(fake: &FakeMeta, timeout: Duration) -> WhatsappClient {
    WhatsappClient::new(WhatsappConfig {
        base_url: fake.base_url(),
        api_version: meta::API_VERSION.to_owned(),
        phone_number_id: PHONE_NUMBER_ID.to_owned(),
        waba_id: Some(WABA_ID.to_owned()),
        access_token: TOKEN.to_owned(),
        timeout,
    })
    .unwrap()
}

fn to(phone: &str) -> Recipient {
    Recipient::Whatsapp {
        phone: Some(phone.to_owned()),
        user_id: None,
    }
}

fn out(content: OutboundContent) -> Outbound {
    Outbound {
        to: to(CUSTOMER),
        content,
        reply_to: None,
        callback_data: None,
    }
}

fn text(body: &str) -> OutboundContent {
    OutboundContent::Text {
        body: body.to_owned(),
        preview_url: false,
        buttons: vec![],
    }
}

fn buttons(n: usize, title_len: usize) -> Vec<ReplyButton> {
    (0..n)
        .map(|i| ReplyButton {
            id: format!("b{i}"),
            title: "x".repeat(title_len),
        })
        .collect()
}

fn media(kind: MediaKind, id: Option<&str>, link: Option<&str>) -> OutboundContent {
    OutboundContent::Media(OutboundMedia {
        kind,
        provider_media_id: id.map(str::to_owned),
        link: link.map(str::to_owned),
        caption: matches!(
            kind,
            MediaKind::Image | MediaKind::Video | MediaKind::Document
        )
        .then(|| "caption".to_owned()),
        filename: (kind == MediaKind::Document).then(|| "invoice.pdf".to_owned()),
    })
}

fn list(rows: usize) -> OutboundContent {
    OutboundContent::List {
        body: "Pick one".into(),
        header: Some("Menu".into()),
        footer: Some("Thanks".into()),
        button: "Options".into(),
        sections: vec![ListSection {
            title: "Main".into(),
            rows: (0..rows)
                .map(|i| ListRow {
                    id: format!("r{i}"),
                    title: format!("Row {i}"),
                    description: Some("desc".into()),
                })
                .collect(),
        }],
    }
}

#[tokio::test]
async fn every_outbound_type_is_accepted_by_the_cloud_api() {
    let fake = FakeMeta::start().await;
    let c = client(&fake);
    let template = TemplateMessage {
        name: "order_shipped".into(),
        language: "en_US".into(),
        header: vec![TemplateParam::Document {
            link: "https://example.com/i.pdf".into(),
            filename: Some("i.pdf".into()),
        }],
        body: vec![
            TemplateParam::Text {
                text: "Ann".into(),
                parameter_name: Some("first_name".into()),
            },
            TemplateParam::Text {
                text: "42".into(),
                parameter_name: Some("order".into()),
            },
        ],
        buttons: vec![
            TemplateButtonParam {
                sub_type: "quick_reply".into(),
                index: 0,
                value: "STOP".into(),
            },
            TemplateButtonParam {
                sub_type: "url".into(),
                index: 1,
                value: "track/42".into(),
            },
            TemplateButtonParam {
                sub_type: "copy_code".into(),
                index: 2,
                value: "SAVE10".into(),
            },
        ],
    };
    let contents = vec![
        text("hello"),
        OutboundContent::Text {
            body: "see https://example.com".into(),
            preview_url: true,
            buttons: vec![],
        },
        OutboundContent::Text {
            body: "text with buttons".into(),
            preview_url: false,
            buttons: buttons(2, 10),
        },
        media(MediaKind::Image, Some("1234"), None),
        media(MediaKind::Image, None, Some("https://example.com/a.jpg")),
        media(MediaKind::Video, None, Some("https://example.com/a.mp4")),
        media(MediaKind::Audio, Some("55"), None),
        media(MediaKind::Voice, Some("56"), None),
        media(MediaKind::Document, None, Some("https://example.com/i.pdf")),
        media(MediaKind::Sticker, Some("57"), None),
        OutboundContent::Template(template),
        OutboundContent::Buttons {
            body: "Are you sure?".into(),
            header: Some("Confirm".into()),
            footer: Some("Reply below".into()),
            buttons: buttons(3, 20),
        },
        list(10),
        OutboundContent::Reaction {
            to_provider_message_id: "wamid.THEIRS".into(),
            emoji: "👍".into(),
        },
        OutboundContent::Reaction {
            to_provider_message_id: "wamid.THEIRS".into(),
            emoji: String::new(),
        },
        OutboundContent::Location(Location {
            latitude: 52.52,
            longitude: 13.405,
            name: Some("Office".into()),
            address: Some("Alexanderplatz 1".into()),
        }),
    ];
    let mut ids = Vec::new();
    for content in &contents {
        let sent = c
            .send(&out(content.clone()))
            .await
            .unwrap_or_else(|e| panic!("{content:?}: {e}"));
        assert!(sent.provider_message_id.starts_with("wamid."));
        ids.push(sent.provider_message_id);
    }
    // A reply and a customer known only by business-scoped user id.
    let reply = c
        .send(&Outbound {
            to: to(CUSTOMER),
            content: text("answer"),
            reply_to: Some("wamid.QUESTION".into()),
            callback_data: None,
        })
        .await
        .unwrap();
    let bsuid = c
        .send(&Outbound {
            to: Recipient::Whatsapp {
                phone: None,
                user_id: Some("US.13491208655302741918".into()),
            },
            content: text("hi without a number"),
            reply_to: None,
            callback_data: None,
        })
        .await
        .unwrap();
    ids.push(reply.provider_message_id);
    ids.push(bsuid.provider_message_id);

    let sent = fake.sent();
    assert_eq!(sent.len(), contents.len() + 2);
    assert_eq!(sent.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), ids);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "wamids are unique");
    assert_eq!(sent[0].body["to"], CUSTOMER_DIGITS);
    assert_eq!(sent[2].body["type"], "interactive");
    assert_eq!(sent[7].body["type"], "audio");
    let reply_body = &sent[contents.len()].body;
    assert_eq!(reply_body["context"]["message_id"], "wamid.QUESTION");
    let bsuid_body = &sent[contents.len() + 1].body;
    assert_eq!(bsuid_body["recipient"], "US.13491208655302741918");
    assert!(bsuid_body.get("to").is_none());
}

#[tokio::test]
async fn shapes_meta_refuses_are_permanent_invalid_parameter() {
    let fake = FakeMeta::start().await;
    let c = client(&fake);
    let bad = [
        OutboundContent::Buttons {
            body: "too many".into(),
            header: None,
            footer: None,
            buttons: buttons(4, 5),
        },
        OutboundContent::Buttons {
            body: "title too long".into(),
            header: None,
            footer: None,
            buttons: buttons(1, 21),
        },
        list(11),
        text(""),
    ];
    for content in bad {
        let err = c.send(&out(content.clone())).await.unwrap_err();
        assert!(
            matches!(err, SendError::Permanent { code: 100, .. }),
            "{content:?}: {err:?}"
        );
    }
    assert_eq!(fake.sent_count(), 0);
}

#[tokio::test]
async fn throughput_limit_is_retryable_130429() {
    let fake = FakeMeta::start().await;
    fake.set_rate_limit(Some(2));
    let c = client(&fake);
    c.send(&out(text("1"))).await.unwrap();
    c.send(&out(text("2"))).await.unwrap();
    let err = c.send(&out(text("3"))).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(err.code(), 130429);
    assert_eq!(fake.throttled_count(), 1);
    assert_eq!(fake.sent_count(), 2);
}

#[tokio::test]
async fn pair_rate_limit_is_retryable_131056_per_recipient() {
    let fake = FakeMeta::start().await;
    fake.set_pair_rate_limit(Some((1, Duration::from_secs(60))));
    let c = client(&fake);
    c.send(&out(text("1"))).await.unwrap();
    let err = c.send(&out(text("2"))).await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.code(), 131056);
    // Another customer is not affected.
    c.send(&Outbound {
        to: to("+14155550123"),
        content: text("hi"),
        reply_to: None,
        callback_data: None,
    })
    .await
    .unwrap();
    assert_eq!(fake.pair_throttled_count(), 1);
}

#[tokio::test]
async fn expired_token_needs_action() {
    let fake = FakeMeta::start().await;
    fake.set_token("rotated-token");
    let err = client(&fake).send(&out(text("x"))).await.unwrap_err();
    assert_eq!(err.code(), 190);
    assert_eq!(err.action(), Some(ActionNeeded::ExpiredToken));
    let err = client(&fake).check().await.unwrap_err();
    assert_eq!(err.action(), Some(ActionNeeded::ExpiredToken));
}

#[tokio::test]
async fn injected_errors_are_classified() {
    let fake = FakeMeta::start().await;
    let c = client(&fake);

    fake.fail_for_recipient(
        CUSTOMER_DIGITS,
        MetaError::new(400, 131047).with_details("more than 24 hours have passed"),
    );
    let err = c.send(&out(text("late"))).await.unwrap_err();
    assert_eq!(err.action(), Some(ActionNeeded::OutsideWindow));
    assert!(err.message().contains("24 hours"), "{err}");
    fake.clear_failures();

    fake.fail_next(1, MetaError::new(400, 131026));
    let err = c.send(&out(text("x"))).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { code: 131026, .. }));

    fake.fail_next(1, MetaError::new(400, 100));
    let err = c.send(&out(text("x"))).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { code: 100, .. }));

    fake.fail_next(1, MetaError::new(400, 131050));
    let err = c.send(&out(text("x"))).await.unwrap_err();
    assert_eq!(err.action(), Some(ActionNeeded::MarketingOptOut));

    fake.fail_next_with_500(2);
    for _ in 0..2 {
        let err = c.send(&out(text("x"))).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }
    // The injected failures are used up: the next send goes through.
    c.send(&out(text("x"))).await.unwrap();
    assert_eq!(fake.sent_count(), 1);
}

#[tokio::test]
async fn a_hanging_api_is_a_retryable_timeout() {
    let fake = FakeMeta::start().await;
    fake.set_hang(Some(Duration::from_secs(3)));
    let c = client_with_timeout(&fake, Duration::from_millis(200));
    let started = std::time::Instant::now();
    let err = c.send(&out(text("x"))).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.is_retryable());
    assert_eq!(err.code(), SendError::CODE_TIMEOUT);
}

#[tokio::test]
async fn mark_read_check_and_media_download() {
    let fake = FakeMeta::start().await;
    let c = client(&fake);
    let (wamid, _) = FakeMeta::webhook_text(CUSTOMER_DIGITS, "Anna", "hi");
    c.mark_read(&wamid).await.unwrap();
    assert_eq!(fake.read_receipts(), vec![wamid]);

    let info = c.check().await.unwrap();
    assert!(info["display_phone_number"].is_string());
    assert_eq!(info["quality_rating"], "GREEN");

    let bytes = b"\x89PNG fake image bytes".to_vec();
    let media_id = fake.add_media(&bytes, "image/png");
    let got = c.download_media(&media_id).await.unwrap();
    assert_eq!(got.bytes.as_ref(), bytes.as_slice());
    assert_eq!(got.mime_type.as_deref(), Some("image/png"));

    let err = c.download_media("424242").await.unwrap_err();
    assert!(
        matches!(err, SendError::Permanent { code: 100, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn templates_list_walks_cursors_and_create_submits() {
    let fake = FakeMeta::start().await;
    for i in 0..130 {
        fake.add_template(json!({
            "name": format!("t_{i:03}"), "language": "en_US", "status": "APPROVED",
            "category": "UTILITY",
            "components": [{ "type": "BODY", "text": "Hello {{1}}" }],
        }));
    }
    let c = client(&fake);
    let first = c.list_templates(None).await.unwrap();
    assert_eq!(first.data.len(), 100);
    let after = first.after.expect("a second page");
    let second = c.list_templates(Some(&after)).await.unwrap();
    assert_eq!(second.data.len(), 30);
    assert_eq!(second.after, None);
    assert_eq!(second.data[0]["name"], "t_100");

    let body = json!({
        "name": "welcome", "language": "en_US", "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [{ "type": "BODY", "text": "Welcome {{first_name}}",
            "example": { "body_text_named_params": [{ "param_name": "first_name", "example": "Ana" }] } }],
    });
    let created = c.create_template(&body).await.unwrap();
    assert_eq!(created["status"], "PENDING");
    assert!(created["id"].is_string());
    let again = c.create_template(&body).await.unwrap_err();
    assert!(matches!(again, SendError::Permanent { code: 100, .. }));
    let bad = c
        .create_template(&json!({ "name": "Bad Name", "language": "en", "category": "UTILITY" }))
        .await
        .unwrap_err();
    assert!(matches!(bad, SendError::Permanent { code: 100, .. }));
    assert_eq!(fake.templates().len(), 131);
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/// A webhook endpoint like the app's: verify the signature on the raw bytes, then parse.
/// A Graph API stand-in that answers every send `200` with `body` and keeps the
/// `Authorization` header it got.
async fn answering(body: &'static str) -> (WhatsappClient, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = seen.clone();
    let app = Router::new().route(
        "/{version}/{id}/messages",
        post(move |headers: HeaderMap| {
            let keep = keep.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                keep.lock().unwrap().push(auth.to_owned());
                ([("content-type", "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = WhatsappClient::new(WhatsappConfig {
        base_url,
        api_version: meta::API_VERSION.to_owned(),
        phone_number_id: PHONE_NUMBER_ID.to_owned(),
        waba_id: None,
        access_token: "token-1".to_owned(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    (client, seen)
}

#[tokio::test]
async fn a_send_answer_without_a_message_id_is_a_permanent_bad_response() {
    for (body, says) in [
        ("not json", "answer is not JSON (HTTP 200 OK)"),
        ("null", "answer is not JSON (HTTP 200 OK)"),
        (
            r#"{"messages": "wamid.1"}"#,
            "answer is not the JSON expected",
        ),
        (
            r#"{"messages": []}"#,
            "send answer without `messages[0].id`",
        ),
        (
            r#"{"messages": [{}]}"#,
            "send answer without `messages[0].id`",
        ),
        (
            r#"{"messaging_product": "whatsapp", "contacts": []}"#,
            "send answer without `messages[0].id`",
        ),
    ] {
        let (client, _) = answering(body).await;
        match client.send(&out(text("hi"))).await {
            Err(SendError::Permanent { code, message }) => {
                assert_eq!(code, SendError::CODE_BAD_RESPONSE, "{body}");
                assert!(message.starts_with(says), "{body}: {message}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    // Meta's answer, with fields the adapter does not read: the first message's id.
    let (client, seen) = answering(
        r#"{"messaging_product": "whatsapp", "contacts": [{"input": "+1", "wa_id": "1"}],
            "messages": [{"id": "wamid.A", "message_status": "accepted"}, {"id": "wamid.B"}],
            "new_field": {"x": 1}}"#,
    )
    .await;
    let sent = client.send(&out(text("hi"))).await.unwrap();
    assert_eq!(sent.provider_message_id, "wamid.A");
    client.send(&out(text("again"))).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["Bearer token-1", "Bearer token-1"]);
}

#[derive(Clone, Default)]
struct Receiver {
    items: Arc<Mutex<Vec<Inbound>>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers
        .get(whatsapp::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if !whatsapp::verify_signature(APP_SECRET, &body, sig) {
        return StatusCode::UNAUTHORIZED;
    }
    match whatsapp::parse_webhook(&body, Some(PHONE_NUMBER_ID)) {
        Ok(items) => {
            r.items.lock().unwrap().extend(items);
            StatusCode::OK
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn start_receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, r)
}

#[tokio::test]
async fn signed_webhooks_are_verified_and_parsed() {
    let (url, r) = start_receiver().await;
    let (wamid, body) = FakeMeta::webhook_text(CUSTOMER_DIGITS, "Anna", "Hallo");
    assert_eq!(FakeMeta::post_webhook(&url, APP_SECRET, &body).await, 200);
    let raw = serde_json::to_vec(&body).unwrap();
    assert_eq!(
        FakeMeta::post_webhook_raw(&url, &raw, Signature::Wrong).await,
        401
    );
    assert_eq!(
        FakeMeta::post_webhook_raw(&url, &raw, Signature::Missing).await,
        401
    );
    assert_eq!(
        FakeMeta::post_webhook_raw(&url, b"{not json", Signature::Valid(APP_SECRET)).await,
        400
    );
    // Meta retries: the same message arrives twice and parses to the same id (dedup is above).
    assert_eq!(
        FakeMeta::post_webhook_twice(&url, APP_SECRET, &body).await,
        (200, 200)
    );

    let items = r.items.lock().unwrap().clone();
    assert_eq!(items.len(), 3);
    for item in &items {
        let Inbound::Message(m) = item else {
            panic!("{item:?}")
        };
        assert_eq!(m.provider_message_id, wamid);
        assert_eq!(m.from.phone.as_deref(), Some(CUSTOMER));
        assert_eq!(m.from.name.as_deref(), Some("Anna"));
        assert_eq!(
            m.content,
            InboundContent::Text {
                body: "Hallo".into()
            }
        );
    }
    // The signature helpers agree with each other on both sides.
    let header = FakeMeta::sign(APP_SECRET, b"abc");
    assert!(whatsapp::verify_signature(
        APP_SECRET,
        b"abc",
        Some(&header)
    ));
    assert!(!whatsapp::verify_signature("other", b"abc", Some(&header)));
}

#[tokio::test]
async fn statuses_out_of_order_keep_the_latest_state() {
    let (url, r) = start_receiver().await;
    let codes =
        FakeMeta::post_statuses_out_of_order(&url, APP_SECRET, "wamid.OURS", CUSTOMER_DIGITS).await;
    assert_eq!(codes, vec![200, 200, 200]);
    let items = r.items.lock().unwrap().clone();
    let mut state = DeliveryStatus::Queued;
    let mut seen = Vec::new();
    for item in items {
        let Inbound::Status(s) = item else {
            panic!("{item:?}")
        };
        assert_eq!(s.provider_message_id, "wamid.OURS");
        assert_eq!(s.recipient.as_deref(), Some(CUSTOMER_DIGITS));
        seen.push(s.status);
        if state.may_advance_to(s.status) {
            state = s.status;
        }
    }
    assert_eq!(
        seen,
        vec![
            DeliveryStatus::Read,
            DeliveryStatus::Delivered,
            DeliveryStatus::Sent
        ]
    );
    assert_eq!(state, DeliveryStatus::Read);
}

#[test]
fn every_inbound_type_from_the_fakes_builders() {
    let from = CUSTOMER_DIGITS;
    let (text_id, text_msg) = webhook::text(from, "hi");
    let reply = webhook::reply_to(webhook::text(from, "answer").1, from, &text_id);
    let messages = vec![
        text_msg,
        webhook::image(from, "m-img", Some("look")).1,
        webhook::video(from, "m-vid").1,
        webhook::audio(from, "m-aud", false).1,
        webhook::audio(from, "m-voice", true).1,
        webhook::document(from, "m-doc", "a.pdf", Some("invoice")).1,
        webhook::sticker(from, "m-st").1,
        webhook::location(from, 52.5, 13.4, Some("Office"), Some("Street 1")).1,
        webhook::contacts(
            from,
            json!([{ "name": { "formatted_name": "Bob" }, "phones": [{ "phone": "+1555" }] }]),
        )
        .1,
        webhook::button_reply(from, "yes", "Yes").1,
        webhook::list_reply(from, "r1", "Row 1", Some("first")).1,
        webhook::button(from, "STOP", "Stop promotions").1,
        webhook::reaction(from, "wamid.OURS", Some("❤️")).1,
        webhook::reaction(from, "wamid.OURS", None).1,
        webhook::unsupported(from).1,
        webhook::system(from, "User Anna changed from 1 to 2", "2").1,
        reply,
    ];
    let body = FakeMeta::webhook_messages(
        vec![webhook::contact(Some(from), None, "Anna", None)],
        messages,
    );
    let items = whatsapp::parse_webhook(&serde_json::to_vec(&body).unwrap(), Some(PHONE_NUMBER_ID))
        .unwrap();
    let contents: Vec<InboundContent> = items
        .iter()
        .map(|i| match i {
            Inbound::Message(m) => {
                assert_eq!(m.from.phone.as_deref(), Some(CUSTOMER));
                assert_eq!(m.from.name.as_deref(), Some("Anna"));
                assert!(m.sent_at_ms > 1_600_000_000_000);
                m.content.clone()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(contents.len(), 17);
    let kinds: Vec<Option<MediaKind>> = contents
        .iter()
        .map(|c| match c {
            InboundContent::Media(m) => Some(m.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds[1..7],
        [
            Some(MediaKind::Image),
            Some(MediaKind::Video),
            Some(MediaKind::Audio),
            Some(MediaKind::Voice),
            Some(MediaKind::Document),
            Some(MediaKind::Sticker)
        ]
    );
    let InboundContent::Media(doc) = &contents[5] else {
        panic!()
    };
    assert_eq!(doc.filename.as_deref(), Some("a.pdf"));
    assert_eq!(doc.caption.as_deref(), Some("invoice"));
    assert_eq!(doc.mime_type.as_deref(), Some("application/pdf"));
    assert!(
        matches!(&contents[7], InboundContent::Location(l) if l.name.as_deref() == Some("Office"))
    );
    assert!(
        matches!(&contents[8], InboundContent::Contacts { contacts } if contacts[0]["name"]["formatted_name"] == "Bob")
    );
    assert_eq!(
        contents[9],
        InboundContent::InteractiveReply {
            reply_kind: "button_reply".into(),
            id: "yes".into(),
            title: "Yes".into(),
            description: None
        }
    );
    assert_eq!(
        contents[10],
        InboundContent::InteractiveReply {
            reply_kind: "list_reply".into(),
            id: "r1".into(),
            title: "Row 1".into(),
            description: Some("first".into())
        }
    );
    assert_eq!(
        contents[11],
        InboundContent::Button {
            payload: "STOP".into(),
            text: "Stop promotions".into(),
            callback_id: None
        }
    );
    assert!(matches!(&contents[12], InboundContent::Reaction { emoji, .. } if emoji == "❤️"));
    assert!(matches!(&contents[13], InboundContent::Reaction { emoji, .. } if emoji.is_empty()));
    assert!(
        matches!(&contents[14], InboundContent::Unsupported { errors } if errors[0].code == 131051)
    );
    assert!(matches!(&contents[15], InboundContent::System { body } if body.contains("changed")));
    let Inbound::Message(last) = &items[16] else {
        panic!()
    };
    assert_eq!(last.reply_to.as_deref(), Some(text_id.as_str()));

    // Statuses, including a failure with its error.
    let body = FakeMeta::webhook_statuses(vec![
        webhook::status("wamid.A", "sent", from, 1_700_000_000),
        webhook::status("wamid.A", "delivered", from, 1_700_000_001),
        webhook::status("wamid.A", "read", from, 1_700_000_002),
        webhook::status("wamid.V", "played", from, 1_700_000_003),
        webhook::failed("wamid.B", from, 131026, "Message undeliverable"),
    ]);
    let items = whatsapp::parse_webhook(&serde_json::to_vec(&body).unwrap(), None).unwrap();
    let statuses: Vec<_> = items
        .iter()
        .map(|i| match i {
            Inbound::Status(s) => (s.status, s.at_ms, s.errors.first().map(|e| e.code)),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(statuses[0], (DeliveryStatus::Sent, 1_700_000_000_000, None));
    assert_eq!(statuses[2].0, DeliveryStatus::Read);
    assert_eq!(statuses[3].0, DeliveryStatus::Played);
    assert_eq!(statuses[4].0, DeliveryStatus::Failed);
    assert_eq!(statuses[4].2, Some(131026));
}

#[test]
fn a_realistic_batch_with_several_entries_and_changes() {
    // Two entries (two business accounts share the app), changes for two numbers, a template
    // update, a field we do not handle, a BSUID-only customer with a username, and a
    // value-level error.
    let raw = r#"{
      "object": "whatsapp_business_account",
      "entry": [
        {
          "id": "102290129340398",
          "changes": [
            {
              "field": "messages",
              "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                "contacts": [
                  { "profile": { "name": "Sheena Nelson" }, "wa_id": "16505551234", "user_id": "US.13491208655302741918" },
                  { "profile": { "name": "Kai", "username": "@kai.w" }, "user_id": "US.ENT.11815799212886844830" }
                ],
                "messages": [
                  { "from": "16505551234", "from_user_id": "US.13491208655302741918",
                    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
                    "timestamp": "1739321024", "type": "text", "text": { "body": "Do you ship to Canada?" } },
                  { "from_user_id": "US.ENT.11815799212886844830",
                    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMQA=",
                    "timestamp": "1739321030", "type": "image",
                    "image": { "caption": "this one", "mime_type": "image/jpeg",
                               "sha256": "7Rx3XGyGrpBj1dzqTg8ZNN6DuiiQ5hUIpWLvyXFa4qw=", "id": "1003383421387256" },
                    "context": { "from": "15550783881", "id": "wamid.OURPRODUCT" } }
                ],
                "errors": [
                  { "code": 131000, "title": "Something went wrong", "message": "Something went wrong",
                    "error_data": { "details": "Unknown error" } }
                ]
              }
            },
            {
              "field": "messages",
              "value": {
                "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550009999", "phone_number_id": "999999999999999" },
                "statuses": [ { "id": "wamid.OTHER", "status": "sent", "timestamp": "1739321024", "recipient_id": "1" } ]
              }
            }
          ]
        },
        {
          "id": "102290129340398",
          "changes": [
            { "field": "message_template_status_update",
              "value": { "event": "REJECTED", "message_template_id": 594425479261596,
                         "message_template_name": "spring_sale", "message_template_language": "en_US",
                         "reason": "INCORRECT_CATEGORY" } },
            { "field": "account_update", "value": { "phone_number": "15550783881", "event": "VERIFIED_ACCOUNT" } },
            { "field": "messages",
              "value": { "messaging_product": "whatsapp",
                "metadata": { "display_phone_number": "15550783881", "phone_number_id": "106540352242922" },
                "statuses": [
                  { "id": "wamid.OURS", "status": "failed", "timestamp": "1739321100",
                    "recipient_id": "16505551234", "recipient_user_id": "US.13491208655302741918",
                    "errors": [ { "code": 131047, "title": "Re-engagement message",
                                  "message": "Re-engagement message",
                                  "error_data": { "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number." } } ] }
                ] } }
          ]
        }
      ]
    }"#;
    let items = whatsapp::parse_webhook(raw.as_bytes(), Some(PHONE_NUMBER_ID)).unwrap();
    assert_eq!(items.len(), 7, "{items:#?}");

    let Inbound::Message(first) = &items[0] else {
        panic!("{:?}", items[0])
    };
    assert_eq!(first.from.phone.as_deref(), Some("+16505551234"));
    assert_eq!(
        first.from.wa_user_id.as_deref(),
        Some("US.13491208655302741918")
    );
    assert_eq!(first.from.name.as_deref(), Some("Sheena Nelson"));
    assert_eq!(first.sent_at_ms, 1_739_321_024_000);

    let Inbound::Message(second) = &items[1] else {
        panic!("{:?}", items[1])
    };
    assert_eq!(second.from.phone, None, "BSUID-only customer has no phone");
    assert_eq!(
        second.from.wa_user_id.as_deref(),
        Some("US.ENT.11815799212886844830")
    );
    assert_eq!(second.from.username.as_deref(), Some("kai.w"));
    assert_eq!(second.from.name.as_deref(), Some("Kai"));
    assert_eq!(second.reply_to.as_deref(), Some("wamid.OURPRODUCT"));
    assert!(
        matches!(&second.content, InboundContent::Media(m) if m.provider_media_id == "1003383421387256")
    );

    assert!(matches!(&items[2], Inbound::Ignored { reason } if reason.contains("131000")));
    assert!(matches!(&items[3], Inbound::Ignored { reason } if reason.contains("999999999999999")));
    assert_eq!(
        items[4],
        Inbound::TemplateStatus {
            template_id: "594425479261596".into(),
            name: "spring_sale".into(),
            language: "en_US".into(),
            status: "REJECTED".into(),
            reason: Some("INCORRECT_CATEGORY".into()),
        }
    );
    assert!(matches!(&items[5], Inbound::Ignored { reason } if reason.contains("account_update")));
    let Inbound::Status(failed) = &items[6] else {
        panic!("{:?}", items[6])
    };
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert_eq!(failed.errors[0].code, 131047);
    assert!(
        failed.errors[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("24 hours"))
    );
}

#[test]
fn template_status_builder_parses() {
    let body = webhook::envelope(vec![webhook::entry(vec![webhook::template_status(
        42, "welcome", "de", "APPROVED", None,
    )])]);
    let items = whatsapp::parse_webhook(&serde_json::to_vec(&body).unwrap(), None).unwrap();
    assert_eq!(
        items,
        vec![Inbound::TemplateStatus {
            template_id: "42".into(),
            name: "welcome".into(),
            language: "de".into(),
            status: "APPROVED".into(),
            reason: None,
        }]
    );
}
