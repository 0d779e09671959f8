//! The fake's own behaviour: generated webhooks (statuses, template review), scale mode,
//! template submission checks and the control API. Receivers are real HTTP servers.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};

use super::{
    API_VERSION, FakeMeta, PHONE_NUMBER_ID, ReviewRule, TOKEN, TemplateReview, WABA_ID,
    WebhookRetry, WebhookStats,
};
use crate::fakes::{ServerGuard, serve_on};

const SECRET: &str = "app-secret-for-tests";

/// One post a receiver got: what it answered, the signature header and the raw body.
#[derive(Debug, Clone)]
struct Post {
    answered: u16,
    signature: Option<String>,
    body: Bytes,
}

impl Post {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }

    fn signed_with(&self, secret: &str) -> bool {
        self.signature.as_deref() == Some(FakeMeta::sign(secret, &self.body).as_str())
    }
}

/// A webhook endpoint that answers 500 to its first `fail_first` posts, then 200.
#[derive(Debug, Clone, Default)]
struct Receiver {
    posts: Arc<Mutex<Vec<Post>>>,
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(fail_first: usize) -> (Self, String, ServerGuard) {
        let r = Self {
            posts: Arc::default(),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
        };
        let router = Router::new()
            .route("/webhook", post(receive))
            .with_state(r.clone());
        let (addr, guard) = serve_on(router, ([127, 0, 0, 1], 0).into()).await.unwrap();
        (r, format!("http://{addr}/webhook"), guard)
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// Bodies of the posts answered 200.
    fn accepted(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .filter(|p| p.answered == 200)
            .map(Post::json)
            .collect()
    }

    /// Every status in the accepted posts, in order.
    fn statuses(&self) -> Vec<Value> {
        self.accepted()
            .iter()
            .flat_map(|b| {
                b.pointer("/entry/0/changes/0/value/statuses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let fail = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    r.posts.lock().unwrap().push(Post {
        answered: status.as_u16(),
        signature: headers
            .get("X-Hub-Signature-256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    });
    status
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn fast_retry() -> WebhookRetry {
    WebhookRetry {
        first: Duration::from_millis(20),
        max: Duration::from_millis(100),
        give_up_after: Duration::from_secs(10),
    }
}

/// Calls the Graph API with the token; the status and the JSON answer.
async fn call(fake: &FakeMeta, path: &str, body: &Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/{API_VERSION}/{path}", fake.base_url()))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn send(fake: &FakeMeta, body: &Value) -> (u16, Value) {
    call(fake, &format!("{PHONE_NUMBER_ID}/messages"), body).await
}

/// Sends a template message and returns its `wamid`.
async fn send_template(fake: &FakeMeta, to: &str, callback: Option<&str>) -> String {
    let (status, answer) = send(fake, &template_message(to, callback)).await;
    assert_eq!(status, 200, "{answer}");
    answer["messages"][0]["id"].as_str().unwrap().to_owned()
}

fn template_message(to: &str, callback: Option<&str>) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": { "name": "spring_sale", "language": { "code": "en_US" } },
    });
    if let Some(c) = callback {
        body["biz_opaque_callback_data"] = json!(c);
    }
    body
}

async fn create_template(fake: &FakeMeta, body: &Value) -> (u16, Value) {
    call(fake, &format!("{WABA_ID}/message_templates"), body).await
}

fn spring_sale() -> Value {
    json!({
        "name": "spring_sale", "language": "en_US", "status": "APPROVED", "category": "MARKETING",
        "components": [{ "type": "BODY", "text": "Spring sale starts now" }],
    })
}

// -- generated statuses ------------------------------------------------------------------------

#[tokio::test]
async fn auto_statuses_echo_callback_data_and_are_retried_until_answered_2xx() {
    let fake = FakeMeta::start().await;
    fake.add_template(spring_sale());
    let (receiver, url, _server) = Receiver::start(2).await;
    fake.set_webhook(Some(url), SECRET.to_owned());
    fake.set_webhook_retry(fast_retry());
    fake.set_auto_statuses(vec!["sent", "delivered"]);

    let wamid = send_template(&fake, "15550001111", Some("job-42")).await;
    assert!(fake.wait_for_webhooks(Duration::from_secs(10)).await);

    // Refused twice, then delivered: the same signed body every time.
    let posts = receiver.posts();
    let answers: Vec<u16> = posts.iter().map(|p| p.answered).collect();
    assert_eq!(answers, [500, 500, 200]);
    assert!(posts.iter().all(|p| p.body == posts[0].body));
    assert!(posts[2].signed_with(SECRET), "{:?}", posts[2].signature);
    assert!(!posts[2].signed_with("another-secret"));
    assert_eq!(
        fake.webhook_stats(),
        WebhookStats {
            posts: 1,
            failed_attempts: 2,
            pending: 0,
            dropped: 0
        }
    );

    let body = posts[2].json();
    assert_eq!(body["object"], "whatsapp_business_account");
    assert_eq!(body["entry"][0]["changes"][0]["field"], "messages");
    let value = &body["entry"][0]["changes"][0]["value"];
    assert_eq!(value["metadata"]["phone_number_id"], PHONE_NUMBER_ID);
    let statuses = value["statuses"].as_array().unwrap();
    let names: Vec<&str> = statuses
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sent", "delivered"]);
    for s in statuses {
        assert_eq!(s["id"], wamid.as_str());
        assert_eq!(s["recipient_id"], "15550001111");
        assert_eq!(s["biz_opaque_callback_data"], "job-42");
        assert!(s["timestamp"].as_str().unwrap().parse::<i64>().is_ok());
        assert_eq!(s["pricing"]["category"], "marketing");
        assert_eq!(s["conversation"]["origin"]["type"], "marketing");
    }

    // A send without callback data has statuses without it.
    let (status, answer) = send(
        &fake,
        &json!({ "messaging_product": "whatsapp", "to": "15550001112", "type": "text",
                 "text": { "body": "hi" } }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(fake.wait_for_webhooks(Duration::from_secs(10)).await);
    let last = receiver.statuses().pop().unwrap();
    assert_eq!(last["id"], answer["messages"][0]["id"]);
    assert!(last.get("biz_opaque_callback_data").is_none(), "{last}");
    assert_eq!(last["pricing"]["category"], "service");
}

#[tokio::test]
async fn statuses_of_sends_accepted_at_once_share_posts_of_at_most_100() {
    let fake = FakeMeta::start().await;
    let (receiver, url, _server) = Receiver::start(0).await;
    fake.set_webhook(Some(url), SECRET.to_owned());
    fake.set_auto_statuses(vec!["sent", "delivered", "read"]);

    let sends =
        (0..60).map(|i| {
            let fake = fake.clone();
            async move {
                send_template(&fake, &format!("1555000{i:04}"), Some(&format!("job-{i}"))).await
            }
        });
    let wamids = futures_join_all(sends).await;
    assert!(fake.wait_for_webhooks(Duration::from_secs(10)).await);

    let posts = receiver.accepted();
    let sizes: Vec<usize> = posts
        .iter()
        .map(|b| {
            b["entry"][0]["changes"][0]["value"]["statuses"]
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 180);
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");
    assert!(posts.len() < 60, "statuses were not batched: {sizes:?}");
    let statuses = receiver.statuses();
    for (i, wamid) in wamids.iter().enumerate() {
        let mine: Vec<&Value> = statuses
            .iter()
            .filter(|s| s["id"] == wamid.as_str())
            .collect();
        let names: Vec<&str> = mine.iter().map(|s| s["status"].as_str().unwrap()).collect();
        assert_eq!(names, ["sent", "delivered", "read"], "{wamid}");
        assert!(
            mine.iter()
                .all(|s| s["biz_opaque_callback_data"] == format!("job-{i}"))
        );
    }
}

/// `futures::future::join_all` without the dependency (only the `app` feature has it).
async fn futures_join_all<F: std::future::Future<Output = String> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<String> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn async_failure_is_accepted_then_reported_failed_with_metas_error() {
    let fake = FakeMeta::start().await;
    let (receiver, url, _server) = Receiver::start(0).await;
    fake.set_webhook(Some(url), SECRET.to_owned());
    fake.set_auto_statuses(vec!["sent", "delivered"]);
    fake.set_async_failure_for("15550002222", 131049);
    fake.set_async_failure_for("15550003333", 131050);

    let failed = send_template(&fake, "15550002222", Some("job-7")).await;
    let opted_out = send_template(&fake, "15550003333", None).await;
    assert!(fake.wait_for_webhooks(Duration::from_secs(10)).await);
    assert_eq!(fake.sent_count(), 2);

    let statuses = receiver.statuses();
    assert_eq!(
        statuses.len(),
        2,
        "only `failed`, no auto statuses: {statuses:?}"
    );
    let of = |id: &str| statuses.iter().find(|s| s["id"] == id).unwrap().clone();
    let s = of(&failed);
    assert_eq!(s["status"], "failed");
    assert_eq!(s["recipient_id"], "15550002222");
    assert_eq!(s["biz_opaque_callback_data"], "job-7");
    let e = &s["errors"][0];
    assert_eq!(e["code"], 131049);
    assert_eq!(
        e["title"],
        "This message was not delivered to maintain healthy ecosystem engagement."
    );
    assert_eq!(e["message"], e["title"]);
    assert!(!e["error_data"]["details"].as_str().unwrap().is_empty());

    let s = of(&opted_out);
    assert_eq!(s["errors"][0]["code"], 131050);
    assert_eq!(
        s["errors"][0]["title"],
        "Unable to deliver message. Reasons can include: The recipient has stopped marketing messages."
    );
    assert!(s.get("biz_opaque_callback_data").is_none());

    fake.clear_failures();
    let ok = send_template(&fake, "15550002222", None).await;
    assert!(fake.wait_for_webhooks(Duration::from_secs(10)).await);
    let names: Vec<Value> = receiver
        .statuses()
        .iter()
        .filter(|s| s["id"] == ok.as_str())
        .map(|s| s["status"].clone())
        .collect();
    assert_eq!(names, [json!("sent"), json!("delivered")]);
}

// -- template review ---------------------------------------------------------------------------

#[tokio::test]
async fn template_review_updates_the_template_and_posts_a_signed_status_webhook() {
    let fake = FakeMeta::start().await;
    let (receiver, url, _server) = Receiver::start(0).await;
    fake.set_webhook(Some(url), SECRET.to_owned());
    fake.set_template_review(Some(TemplateReview {
        delay: Duration::from_millis(50),
        rule: ReviewRule::RejectNamesContaining {
            needle: "promo".into(),
            reason: "PROMOTIONAL".into(),
        },
    }));

    let (status, order) = create_template(
        &fake,
        &json!({
            "name": "order_update", "language": "en_US", "category": "UTILITY",
            "components": [{ "type": "BODY", "text": "Your order {{1}} has shipped",
                             "example": { "body_text": [["A-1001"]] } }],
        }),
    )
    .await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["status"], "PENDING");
    let (status, promo) = create_template(
        &fake,
        &json!({
            "name": "promo_blast", "language": "pt_BR", "category": "MARKETING",
            "components": [{ "type": "BODY", "text": "Everything half price" }],
        }),
    )
    .await;
    assert_eq!(status, 200, "{promo}");
    let statuses = |fake: &FakeMeta| -> Vec<Value> {
        fake.templates()
            .iter()
            .map(|t| t["status"].clone())
            .collect()
    };
    assert_eq!(statuses(&fake), [json!("PENDING"), json!("PENDING")]);

    eventually("two review webhooks", || receiver.accepted().len() == 2).await;
    assert_eq!(statuses(&fake), [json!("APPROVED"), json!("REJECTED")]);
    let templates = fake.templates();
    assert!(templates[0].get("rejected_reason").is_none());
    assert_eq!(templates[1]["rejected_reason"], "PROMOTIONAL");

    let posts = receiver.posts();
    assert!(posts.iter().all(|p| p.signed_with(SECRET)));
    let value_for = |name: &str| -> Value {
        posts
            .iter()
            .map(Post::json)
            .find(|b| b["entry"][0]["changes"][0]["value"]["message_template_name"] == name)
            .unwrap_or_else(|| panic!("no webhook for {name}"))
    };
    let body = value_for("order_update");
    assert_eq!(body["object"], "whatsapp_business_account");
    assert_eq!(body["entry"][0]["id"], WABA_ID);
    assert!(body["entry"][0]["time"].is_i64());
    let change = &body["entry"][0]["changes"][0];
    assert_eq!(change["field"], "message_template_status_update");
    let order_id: u64 = order["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        change["value"],
        json!({
            "event": "APPROVED",
            "message_template_id": order_id,
            "message_template_name": "order_update",
            "message_template_language": "en_US",
            "message_template_category": "UTILITY",
            "reason": "NONE",
        })
    );
    let value = &value_for("promo_blast")["entry"][0]["changes"][0]["value"];
    assert_eq!(value["event"], "REJECTED");
    assert_eq!(value["reason"], "PROMOTIONAL");
    assert_eq!(value["message_template_language"], "pt_BR");
    assert_eq!(
        value["message_template_id"],
        promo["id"].as_str().unwrap().parse::<u64>().unwrap()
    );

    // A test pauses the approved one.
    assert!(fake.set_template_status(order["id"].as_str().unwrap(), "PAUSED", None));
    eventually("the PAUSED webhook", || receiver.accepted().len() == 3).await;
    let last = receiver.accepted().pop().unwrap();
    assert_eq!(last["entry"][0]["changes"][0]["value"]["event"], "PAUSED");
    assert_eq!(fake.templates()[0]["status"], "PAUSED");
    assert!(!fake.set_template_status("404", "PAUSED", None));
}

#[tokio::test]
async fn a_status_set_during_review_is_not_overwritten() {
    let fake = FakeMeta::start().await;
    fake.set_template_review(Some(TemplateReview {
        delay: Duration::from_millis(50),
        rule: ReviewRule::RejectAll {
            reason: "INVALID_FORMAT".into(),
        },
    }));
    let (_, created) = create_template(
        &fake,
        &json!({ "name": "hello", "language": "en", "category": "UTILITY",
                 "components": [{ "type": "BODY", "text": "Hello" }] }),
    )
    .await;
    assert!(fake.set_template_status(created["id"].as_str().unwrap(), "APPROVED", None));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(fake.templates()[0]["status"], "APPROVED");
}

// -- scale mode --------------------------------------------------------------------------------

#[tokio::test]
async fn compact_mode_counts_duplicate_callback_data_and_keeps_a_minimal_record() {
    let fake = FakeMeta::start().await;
    fake.set_record_bodies(false);
    let mut wamids = Vec::new();
    let callbacks = [Some("a"), Some("b"), Some("a"), None, Some("c"), Some("a")];
    for (i, cb) in callbacks.iter().enumerate() {
        wamids.push(send_template(&fake, &format!("1555000000{i}"), *cb).await);
    }
    // Refused sends do not count.
    fake.set_rate_limit(Some(0));
    let (status, _) = send(&fake, &template_message("15550000009", Some("z"))).await;
    assert_eq!(status, 400);
    fake.set_rate_limit(None);

    assert_eq!(fake.sent_count(), 6);
    assert_eq!(fake.distinct_callback_data(), 3);
    assert_eq!(fake.duplicate_callback_data(), 2);
    assert_eq!(fake.accepted_times().len(), 6);
    let sent = fake.sent();
    let ids: Vec<&str> = sent.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, wamids);
    assert_eq!(
        sent[0].body,
        json!({
            "messaging_product": "whatsapp",
            "to": "15550000000",
            "biz_opaque_callback_data": "a",
            "type": "template",
            "template": { "name": "spring_sale" },
        })
    );
    assert!(sent[3].body.get("biz_opaque_callback_data").is_none());

    // Whole bodies again from now on; duplicates are counted the same way.
    fake.set_record_bodies(true);
    send_template(&fake, "15550000007", Some("b")).await;
    assert_eq!(fake.duplicate_callback_data(), 3);
    let last = fake.sent().pop().unwrap();
    assert_eq!(last.body["template"]["language"]["code"], "en_US");

    fake.reset();
    assert_eq!(
        (
            fake.sent_count(),
            fake.duplicate_callback_data(),
            fake.distinct_callback_data()
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn callback_data_longer_than_512_characters_is_refused() {
    let fake = FakeMeta::start().await;
    let long = "x".repeat(513);
    let (status, answer) = send(&fake, &template_message("15550000001", Some(&long))).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], 100);
    assert_eq!(fake.sent_count(), 0);
}

// -- template submission checks ----------------------------------------------------------------

fn body(text: &str) -> Value {
    json!({ "type": "BODY", "text": text })
}

fn submission(components: Value) -> Value {
    json!({ "name": "checked", "language": "en_US", "category": "MARKETING", "components": components })
}

#[tokio::test]
async fn create_template_rejects_what_meta_rejects() {
    let fake = FakeMeta::start().await;
    let button = |text: &str| json!({ "type": "QUICK_REPLY", "text": text });
    let cases: Vec<(Value, &str)> = vec![
        (
            submission(json!([{ "type": "FOOTER", "text": "x" }])),
            "BODY",
        ),
        (
            submission(json!([body(&"x".repeat(1025))])),
            "components[0].text must be at most 1024",
        ),
        (
            submission(json!([{ "type": "BODY" }])),
            "components[0].text is required",
        ),
        (
            submission(
                json!([{ "type": "HEADER", "format": "TEXT", "text": "h".repeat(61) }, body("b")]),
            ),
            "components[0].text must be at most 60",
        ),
        (
            submission(json!([body("b"), { "type": "FOOTER", "text": "f".repeat(61) }])),
            "components[1].text",
        ),
        (
            submission(json!([{ "type": "BODY", "text": "Hi {{1}} and {{3}}",
                                "example": { "body_text": [["a", "b"]] } }])),
            "not sequential",
        ),
        (
            submission(json!([body("Hi {{1}}")])),
            "components[0].example.body_text",
        ),
        (
            submission(json!([{ "type": "BODY", "text": "Hi {{1}} {{2}}",
                                "example": { "body_text": [["a"]] } }])),
            "needs 2 example value(s)",
        ),
        (
            submission(json!([{ "type": "BODY", "text": "Hi {{first_name}}",
                                "example": { "body_text": [["a"]] } }])),
            "parameter_format to NAMED",
        ),
        (submission(json!([body("Hi {{ 1 }}")])), "invalid variable"),
        (
            submission(json!([{ "type": "HEADER", "format": "TEXT", "text": "{{1}}" }, body("b")])),
            "components[0].example.header_text",
        ),
        (
            submission(json!([body("b"), { "type": "BUTTONS",
                "buttons": (0..11).map(|i| button(&format!("b{i}"))).collect::<Vec<_>>() }])),
            "components[1].buttons must have 1 to 10",
        ),
        (
            submission(
                json!([body("b"), { "type": "BUTTONS", "buttons": [button(&"t".repeat(26))] }]),
            ),
            "components[1].buttons[0].text must be at most 25",
        ),
        (
            submission(json!([body("b"), { "type": "BUTTONS",
                "buttons": [{ "type": "URL", "text": "Open" }] }])),
            "components[1].buttons[0].url is required",
        ),
        (
            json!({ "name": "checked", "language": "en_US", "category": "MARKETING",
                    "parameter_format": "NAMED",
                    "components": [body("Hi {{first_name}}")] }),
            "example.body_text_named_params needs an example for {{first_name}}",
        ),
        (
            json!({ "name": "checked", "language": "en_US", "category": "MARKETING",
                    "parameter_format": "NAMED", "components": [{ "type": "BODY",
                    "text": "Hi {{1}}", "example": { "body_text": [["a"]] } }] }),
            "positional variable {{1}}",
        ),
        (
            json!({ "name": "checked", "language": "en_US", "category": "PROMO",
                    "components": [body("b")] }),
            "category",
        ),
    ];
    for (i, (submitted, expected)) in cases.iter().enumerate() {
        let (status, answer) = create_template(&fake, submitted).await;
        assert_eq!(status, 400, "case {i}: {answer}");
        assert_eq!(answer["error"]["code"], 100, "case {i}: {answer}");
        let details = answer["error"]["error_data"]["details"]
            .as_str()
            .unwrap_or("");
        assert!(
            details.contains(expected),
            "case {i}: {details:?} lacks {expected:?}"
        );
    }
    assert!(fake.templates().is_empty());

    // Valid ones, with fields the checks do not know.
    let positional = json!({
        "name": "order_shipped", "language": "en_US", "category": "UTILITY",
        "allow_category_change": true,
        "components": [
            { "type": "HEADER", "format": "TEXT", "text": "Order {{1}}",
              "example": { "header_text": ["A-1"] } },
            { "type": "BODY", "text": "Hi {{1}}, order {{2}} ships {{1}}",
              "example": { "body_text": [["Ana", "A-1"]] } },
            { "type": "FOOTER", "text": "Reply STOP to opt out" },
            { "type": "BUTTONS", "buttons": [
                { "type": "QUICK_REPLY", "text": "Track it" },
                { "type": "URL", "text": "Open", "url": "https://example.com/o/{{1}}",
                  "example": ["https://example.com/o/A-1"] },
                { "type": "COPY_CODE", "example": "SPRING25" },
            ] },
            { "type": "LIMITED_TIME_OFFER", "limited_time_offer": { "text": "Soon" } },
        ],
    });
    let (status, answer) = create_template(&fake, &positional).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "PENDING");
    assert_eq!(answer["category"], "UTILITY");
    let named = json!({
        "name": "welcome", "language": "en_US", "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [{ "type": "BODY", "text": "Welcome {{first_name}}",
            "example": { "body_text_named_params": [
                { "param_name": "first_name", "example": "Ana" }] } }],
    });
    let (status, answer) = create_template(&fake, &named).await;
    assert_eq!(status, 200, "{answer}");

    let stored = fake.templates();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["parameter_format"], "POSITIONAL");
    assert_eq!(stored[1]["parameter_format"], "NAMED");
    for t in &stored {
        assert_eq!(t["status"], "PENDING");
        for key in ["name", "language", "category", "components"] {
            assert!(t.get(key).is_some(), "{key} missing in {t}");
        }
    }

    let (status, again) = create_template(&fake, &named).await;
    assert_eq!(status, 400);
    assert_eq!(again["error"]["error_subcode"], 2_388_024);
}

// -- control API -------------------------------------------------------------------------------

async fn control(fake: &FakeMeta, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}/_fake/{path}", fake.base_url());
    let req = match method {
        "GET" => http.get(url),
        _ => http.post(url),
    };
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(b.to_owned()),
        None => req,
    };
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn control_api_configures_and_reports() {
    let fake = FakeMeta::start().await;
    let (receiver, url, _server) = Receiver::start(0).await;
    let config = json!({
        "webhook_url": url,
        "app_secret": SECRET,
        "auto_statuses": ["sent", "delivered", "read"],
        "template_review": { "rule": "reject_all", "reason": "SCAM", "delay_ms": 10 },
        "record_bodies": false,
        "rate_limit_per_second": 2,
    });
    let (status, answer) = control(&fake, "POST", "config", Some(&config.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["webhook_url"], url.as_str());
    assert_eq!(
        answer["auto_statuses"],
        json!(["sent", "delivered", "read"])
    );
    assert_eq!(answer["template_review"]["rule"], "reject_all");
    assert_eq!(answer["record_bodies"], false);
    assert_eq!(answer["rate_limit_per_second"], 2);
    assert!(answer.get("app_secret").is_none());

    // Two sends pass the limit of 2 per second, the third is throttled.
    let a = send_template(&fake, "15550000001", Some("x")).await;
    let b = send_template(&fake, "15550000002", Some("x")).await;
    let (status, _) = send(&fake, &template_message("15550000003", Some("y"))).await;
    assert_eq!(status, 400);
    let (status, created) = create_template(
        &fake,
        &json!({ "name": "hello", "language": "en", "category": "UTILITY",
                 "components": [{ "type": "BODY", "text": "Hello" }] }),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    eventually("statuses and the review", || {
        receiver.statuses().len() == 6 && receiver.accepted().len() >= 2
    })
    .await;
    assert!(fake.wait_for_webhooks(Duration::from_secs(10)).await);
    for wamid in [&a, &b] {
        let n = receiver
            .statuses()
            .iter()
            .filter(|s| s["id"] == wamid.as_str() && s["biz_opaque_callback_data"] == "x")
            .count();
        assert_eq!(n, 3);
    }
    assert_eq!(fake.templates()[0]["status"], "REJECTED");
    assert_eq!(fake.templates()[0]["rejected_reason"], "SCAM");

    let (status, stats) = control(&fake, "GET", "stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["sent"], 2);
    assert_eq!(stats["distinct_callback_data"], 1);
    assert_eq!(stats["duplicate_callback_data"], 1);
    assert_eq!(stats["throttled"], 1);
    assert_eq!(stats["requests"], 4);
    assert_eq!(stats["templates"], 1);
    assert_eq!(stats["webhooks"]["pending"], 0);
    assert_eq!(stats["webhooks"]["failed_attempts"], 0);
    assert!(stats["webhooks"]["posts"].as_u64().unwrap() >= 2);
    // Compact records were kept.
    assert_eq!(
        fake.sent()[0].body.get("template").unwrap(),
        &json!({ "name": "spring_sale" })
    );

    // A template changed by hand.
    let id = created["id"].as_str().unwrap();
    let (status, answer) = control(
        &fake,
        "POST",
        &format!("templates/{id}/status"),
        Some(r#"{"status": "APPROVED"}"#),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(fake.templates()[0]["status"], "APPROVED");
    assert!(fake.templates()[0].get("rejected_reason").is_none());
    eventually("the APPROVED webhook", || {
        receiver
            .accepted()
            .iter()
            .any(|b| b["entry"][0]["changes"][0]["value"]["event"] == "APPROVED")
    })
    .await;
    let (status, _) = control(
        &fake,
        "POST",
        "templates/123/status",
        Some(r#"{"status": "PAUSED"}"#),
    )
    .await;
    assert_eq!(status, 404);

    // Bad input is a 400 with a message, and changes nothing.
    let bad = [
        "not json",
        r#"{"auto_statuses": ["bogus"]}"#,
        r#"{"record_bodies": true, "auto_statuses": ["bogus"]}"#,
        r#"{"template_review": {"rule": "maybe"}}"#,
        r#"{"template_review": {"rule": "reject_names_containing"}}"#,
        r#"{"rate_limit_per_second": "fast"}"#,
        r#"{"webhook_url": "ftp://example.com", "app_secret": "s"}"#,
        r#"{"webhook_url": "http://example.com/hook"}"#,
        r#"{"unknown_knob": 1}"#,
    ];
    for b in bad {
        let (status, answer) = control(&fake, "POST", "config", Some(b)).await;
        assert_eq!(status, 400, "{b}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{b}: {answer}"
        );
    }
    let (status, _) = control(
        &fake,
        "POST",
        &format!("templates/{id}/status"),
        Some(r#"{"status": "approved"}"#),
    )
    .await;
    assert_eq!(status, 400);
    let (_, now) = control(&fake, "GET", "config", None).await;
    assert_eq!(now["record_bodies"], false);
    assert_eq!(now["webhook_url"], url.as_str());

    // `null` turns a knob off; absent fields stay.
    let (status, answer) = control(
        &fake,
        "POST",
        "config",
        Some(r#"{"rate_limit_per_second": null, "template_review": null}"#),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rate_limit_per_second"], Value::Null);
    assert_eq!(answer["template_review"], Value::Null);
    assert_eq!(
        answer["auto_statuses"],
        json!(["sent", "delivered", "read"])
    );

    // The Graph API still wants the token.
    let res = reqwest::Client::new()
        .post(format!(
            "{}/{API_VERSION}/{PHONE_NUMBER_ID}/messages",
            fake.base_url()
        ))
        .json(&template_message("15550000004", None))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);

    let (status, _) = control(&fake, "POST", "reset", None).await;
    assert_eq!(status, 200);
    let (_, stats) = control(&fake, "GET", "stats", None).await;
    assert_eq!(stats["sent"], 0);
    assert_eq!(stats["requests"], 0);
    assert_eq!(stats["throttled"], 0);
    assert_eq!(stats["duplicate_callback_data"], 0);
    assert_eq!(stats["templates"], 1);
}

#[tokio::test]
async fn a_reset_abandons_webhooks_still_being_retried() {
    let fake = FakeMeta::start().await;
    let (receiver, url, _server) = Receiver::start(usize::MAX).await;
    fake.set_webhook(Some(url), SECRET.to_owned());
    fake.set_webhook_retry(fast_retry());
    fake.set_auto_statuses(vec!["sent"]);
    send_template(&fake, "15550000001", Some("a")).await;
    eventually("a refused attempt", || !receiver.posts().is_empty()).await;
    assert_eq!(fake.webhook_stats().pending, 1);
    fake.reset();
    assert!(fake.wait_for_webhooks(Duration::from_secs(5)).await);
    let attempts = receiver.posts().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.posts().len(),
        attempts,
        "still retrying after reset"
    );
}
