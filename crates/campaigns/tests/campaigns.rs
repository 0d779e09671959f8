//! Templates and campaigns through the real app against the fake WhatsApp Cloud API: the
//! builder's checks, Meta's review by webhook, the sync, previews; campaigns from audience
//! preview to analytics and retargeting; bad input; automatic pauses; and the exactly-once
//! rule under interrupted workers — on every backend.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use wamage_testkit::{
    TestApp, TestUser, app_tests, expect_json, expect_problem,
    fakes::{
        FakeMeta,
        meta::{self, MetaError, ReviewRule, TemplateReview},
    },
    problem_fields,
    tenancy::{Probe, assert_isolated},
};

const APP_SECRET: &str = "meta-app-secret-0123456789";

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
        .to_owned()
}

struct World {
    admin: TestUser,
    fake: FakeMeta,
    channel: String,
}

async fn world(app: &TestApp) -> World {
    let fake = FakeMeta::start().await;
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = expect_json(
        app.post_as(
            &admin,
            "/api/v1/channels",
            &json!({"kind": "whatsapp", "name": "Support", "config": {
                "phone_number_id": meta::PHONE_NUMBER_ID, "waba_id": meta::WABA_ID,
                "access_token": meta::TOKEN, "app_secret": APP_SECRET,
                "base_url": fake.base_url()}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let channel = s(&ch, "id");
    expect_json(
        app.post_as(
            &admin,
            "/api/v1/contact-attributes",
            &json!({"key": "code", "label": "Code", "type": "text"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    fake.set_webhook(
        Some(app.url(&format!("/webhooks/whatsapp/{channel}"))),
        APP_SECRET.to_owned(),
    );
    World {
        admin,
        fake,
        channel,
    }
}

/// Runs jobs until `done` holds (webhooks the fake posts arrive on their own time).
async fn until<F, Fut>(app: &TestApp, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        app.run_jobs().await;
        if done().await {
            return;
        }
        // A job try that failed under load comes back after a backoff on the test clock.
        app.clock.advance(Duration::from_secs(1));
        app.run_jobs().await;
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn promo_body(name: &str) -> Value {
    json!({
        "name": name, "language": "en_US", "category": "MARKETING",
        "components": {
            "header": {"format": "text", "text": "Hello {{1}}", "example": "Ana"},
            "body": {"text": "Hi {{1}}, our sale ends {{2}}. Code {{3}} inside.", "examples": ["Ana", "Friday", "SALE10"]},
            "footer": "Reply STOP to opt out",
            "buttons": [{"type": "url", "text": "Shop", "url": "https://shop.example/s/{{1}}", "example": "ana"},
                        {"type": "quick_reply", "text": "Stop"}]
        },
        "mapping": {
            "header.1": {"source": "contact.first_name", "fallback": "there"},
            "body.1": {"source": "contact.first_name", "fallback": "there"},
            "body.2": {"source": "fixed", "value": "Friday"},
            "body.3": {"source": "attr.code", "fallback": "WELCOME"},
            "button.0": {"source": "fixed", "value": "winter"}
        }
    })
}

/// An approved template (built, submitted, approved by the fake's review webhook).
async fn approved_template(app: &TestApp, w: &World, name: &str) -> String {
    w.fake.set_template_review(Some(TemplateReview {
        delay: Duration::from_millis(10),
        rule: ReviewRule::ApproveAll,
    }));
    let mut body = promo_body(name);
    body["channel_id"] = json!(w.channel);
    let t = expect_json(
        app.post_as(&w.admin, "/api/v1/templates", &body).await,
        StatusCode::CREATED,
    )
    .await;
    let id = s(&t, "id");
    expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/templates/{id}/submit"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    until(app, "the template's approval", || async {
        let t = expect_json(
            app.get_as(&w.admin, &format!("/api/v1/templates/{id}"))
                .await,
            StatusCode::OK,
        )
        .await;
        t["status"] == "approved"
    })
    .await;
    id
}

async fn contact(
    app: &TestApp,
    who: &TestUser,
    name: &str,
    phone: &str,
    code: Option<&str>,
) -> String {
    let mut body =
        json!({"name": name, "identities": [{"kind": "whatsapp_phone", "value": phone}]});
    if let Some(c) = code {
        body["attributes"] = json!({"code": c});
    }
    s(
        &expect_json(
            app.post_as(who, "/api/v1/contacts", &body).await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    )
}

async fn consent(app: &TestApp, who: &TestUser, contact: &str, status: &str) {
    expect_json(
        app.post_as(
            who,
            &format!("/api/v1/contacts/{contact}/consent"),
            &json!({"channel": "whatsapp", "purpose": "marketing", "status": status}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
}

async fn group_of(app: &TestApp, who: &TestUser, name: &str, ids: &[String]) -> String {
    let g = s(
        &expect_json(
            app.post_as(who, "/api/v1/groups", &json!({"name": name}))
                .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    for chunk in ids.chunks(1000) {
        expect_json(
            app.post_as(
                who,
                "/api/v1/contacts/bulk",
                &json!({"action": "add_to_groups", "contact_ids": chunk, "group_ids": [g]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    g
}

async fn campaign(app: &TestApp, w: &World, template: &str, group: &str) -> String {
    s(
        &expect_json(
            app.post_as(
                &w.admin,
                "/api/v1/campaigns",
                &json!({"name": "Winter sale", "channel_id": w.channel, "template_id": template,
                        "audience": {"groups": [group]}}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    )
}

async fn get(app: &TestApp, who: &TestUser, path: &str) -> Value {
    expect_json(app.get_as(who, path).await, StatusCode::OK).await
}

async fn templates_are_checked_reviewed_synced_and_previewed(app: TestApp) {
    let w = world(&app).await;
    // What Meta would reject is refused before submission, field by field.
    let res = app
        .post_as(
            &w.admin,
            "/api/v1/templates",
            &json!({"channel_id": w.channel, "name": "Bad Name", "language": "english",
                    "category": "MARKETING",
                    "components": {"body": {"text": "{{1}} and {{3}}", "examples": ["a"]},
                                   "footer": "x".repeat(61),
                                   "buttons": [{"type": "phone", "text": "Call", "phone": "12"}]}}),
        )
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let fields = problem_fields(&p);
    for f in [
        "name",
        "language",
        "components.body.text",
        "components.body.examples",
        "components.footer",
        "components.buttons[0].phone",
    ] {
        assert!(fields.contains(&f.to_owned()), "{f} not in {fields:?}");
    }
    assert_eq!(w.fake.templates().len(), 0, "nothing reached Meta");
    // The builder's live check answers 200 with the same problems.
    let v = expect_json(
        app.post_as(
            &w.admin,
            "/api/v1/templates/validate",
            &json!({"channel_id": w.channel, "name": "ok_name", "language": "en",
                    "category": "UTILITY", "components": {"body": {"text": "Hi {{1}}!", "examples": []}}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["variables"], json!(["body.1"]));
    // Malformed JSON gets a problem too, never a crash.
    let res = app
        .post_as(&w.admin, "/api/v1/templates", &json!({"name": 5}))
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Build → draft → submit → pending → the review webhook approves it.
    w.fake.set_template_review(Some(TemplateReview {
        delay: Duration::from_millis(10),
        rule: ReviewRule::RejectNamesContaining {
            needle: "spam".into(),
            reason: "PROMOTIONAL".into(),
        },
    }));
    let mut body = promo_body("winter_sale");
    body["channel_id"] = json!(w.channel);
    let t = expect_json(
        app.post_as(&w.admin, "/api/v1/templates", &body).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(t["status"], "draft");
    assert_eq!(
        t["variables"],
        json!(["header.1", "body.1", "body.2", "body.3", "button.0"])
    );
    let id = s(&t, "id");
    // The same name and language twice on a channel is a conflict.
    expect_problem(
        app.post_as(&w.admin, "/api/v1/templates", &body).await,
        StatusCode::CONFLICT,
        "template_exists",
    )
    .await;
    let t = expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/templates/{id}/submit"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(t["status"], "pending");
    let at_meta = w.fake.templates();
    assert_eq!(at_meta.len(), 1);
    assert_eq!(
        at_meta[0]["components"][1]["example"]["body_text"],
        json!([["Ana", "Friday", "SALE10"]])
    );
    expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/templates/{id}/submit"),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_submitted",
    )
    .await;
    until(&app, "approval", || async {
        get(&app, &w.admin, &format!("/api/v1/templates/{id}")).await["status"] == "approved"
    })
    .await;
    // A rejected one carries Meta's reason.
    let mut spam = promo_body("spam_blast");
    spam["channel_id"] = json!(w.channel);
    let sp = s(
        &expect_json(
            app.post_as(&w.admin, "/api/v1/templates", &spam).await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    app.post_as(
        &w.admin,
        &format!("/api/v1/templates/{sp}/submit"),
        &json!({}),
    )
    .await;
    until(&app, "rejection", || async {
        let t = get(&app, &w.admin, &format!("/api/v1/templates/{sp}")).await;
        t["status"] == "rejected" && t["rejected_reason"] == "PROMOTIONAL"
    })
    .await;
    // An approved template's content is fixed.
    expect_problem(
        app.patch_as(
            &w.admin,
            &format!("/api/v1/templates/{id}"),
            &json!({"name": "other"}),
        )
        .await,
        StatusCode::CONFLICT,
        "not_editable",
    )
    .await;

    // Templates made elsewhere are imported by the sync, which walks every page.
    for i in 0..120 {
        w.fake.add_template(json!({"name": format!("legacy_{i}"), "language": "en", "status": "APPROVED",
            "category": "UTILITY", "components": [{"type": "BODY", "text": "Order {{1}} shipped", "example": {"body_text": [["#1"]]}}]}));
    }
    let sync = expect_json(
        app.post_as(
            &w.admin,
            "/api/v1/templates/sync",
            &json!({"channel_id": w.channel}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(sync["imported"], 120, "{sync}");
    assert_eq!(sync["total"], 122);
    let list = get(
        &app,
        &w.admin,
        &format!("/api/v1/templates?channel_id={}", w.channel),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 122);
    let again = expect_json(
        app.post_as(
            &w.admin,
            "/api/v1/templates/sync",
            &json!({"channel_id": w.channel}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (again["imported"].as_u64(), again["updated"].as_u64()),
        (Some(0), Some(0))
    );

    // Preview: samples without a contact; the contact's data and fallbacks with one.
    let p = expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/templates/{id}/preview"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        p["body"],
        "Hi Ana, our sale ends Friday. Code SALE10 inside."
    );
    let bea = contact(&app, &w.admin, "Bea Lima", "+14155550100", None).await;
    let p = expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/templates/{id}/preview"),
            &json!({"contact_id": bea}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(p["header"]["text"], "Hello Bea");
    assert_eq!(
        p["body"],
        "Hi Bea, our sale ends Friday. Code WELCOME inside."
    );
    assert_eq!(p["buttons"][0]["url"], "https://shop.example/s/winter");
    assert_eq!(p["missing"], json!([]));

    // Local templates for the Sandbox need no review.
    let sb = s(
        &expect_json(
            app.post_as(
                &w.admin,
                "/api/v1/channels",
                &json!({"kind": "sandbox", "name": "Sandbox"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    let local = expect_json(
        app.post_as(
            &w.admin,
            "/api/v1/templates",
            &json!({"channel_id": sb, "name": "hello", "language": "en", "category": "UTILITY",
                    "components": {"body": {"text": "{{1}}, your order is ready"}}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        (local["kind"].as_str(), local["status"].as_str()),
        (Some("local"), Some("approved"))
    );
    // Members read, only admins write.
    let agent = app.add_member(&w.admin, "agent@acme.test", "agent").await;
    assert_eq!(
        get(&app, &agent, "/api/v1/templates").await["items"]
            .as_array()
            .unwrap()
            .len(),
        123
    );
    assert_eq!(
        app.post_as(&agent, "/api/v1/templates", &body)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

async fn a_campaign_runs_from_preview_to_retarget(app: TestApp) {
    let w = world(&app).await;
    w.fake.set_auto_statuses(vec!["sent", "delivered"]);
    let template = approved_template(&app, &w, "winter_sale").await;
    // 30 contacts: 24 opted in (one without a code attribute), 3 opted out, 2 without
    // consent, 1 blocked.
    let mut ids = Vec::new();
    for i in 0..30 {
        let code = (i != 0).then(|| format!("C{i}"));
        let id = contact(
            &app,
            &w.admin,
            &format!("Person {i}"),
            &format!("+1415555{:04}", 1000 + i),
            code.as_deref(),
        )
        .await;
        match i {
            0..=23 => consent(&app, &w.admin, &id, "opted_in").await,
            24..=26 => consent(&app, &w.admin, &id, "opted_out").await,
            27 | 28 => {}
            _ => {
                consent(&app, &w.admin, &id, "opted_in").await;
                expect_json(
                    app.patch_as(
                        &w.admin,
                        &format!("/api/v1/contacts/{id}"),
                        &json!({"blocked": true}),
                    )
                    .await,
                    StatusCode::OK,
                )
                .await;
            }
        }
        ids.push(id);
    }
    let group = group_of(&app, &w.admin, "VIP", &ids).await;
    let preview = expect_json(
        app.post_as(
            &w.admin,
            "/api/v1/campaigns/audience-preview",
            &json!({"channel_id": w.channel, "template_id": template, "audience": {"groups": [group]}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        preview,
        json!({"total": 30, "eligible": 24, "opted_out": 3, "no_consent": 2, "blocked": 1,
               "no_identity": 0, "missing_variables": 0})
    );
    let id = campaign(&app, &w, &template, &group).await;
    // Scheduling in the past is refused; nothing is sent by accident.
    let p = expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({"scheduled_at": "2020-01-01T09:00", "time_zone": "Europe/Berlin"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["scheduled_at"]);
    let c = expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(c["status"], "running");
    // Launching twice is refused.
    expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_launched",
    )
    .await;
    until(&app, "the campaign to complete", || async {
        get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await["status"] == "completed"
    })
    .await;
    assert_eq!(w.fake.sent_count(), 24, "each eligible recipient once");
    assert_eq!(w.fake.duplicate_callback_data(), 0);
    // What reached the customer: the contact's first name and attribute, fixed values.
    let first = w
        .fake
        .sent()
        .into_iter()
        .find(|m| m.body["to"] == "14155551001")
        .unwrap();
    let comps = &first.body["template"]["components"];
    assert_eq!(comps[0]["parameters"][0]["text"], "Person");
    assert_eq!(comps[1]["parameters"][2]["text"], "C1");
    assert!(
        first.body["biz_opaque_callback_data"]
            .as_str()
            .unwrap()
            .starts_with(&format!("wc:{id}:"))
    );
    // The fake's delivery reports arrive by webhook.
    until(&app, "deliveries", || async {
        get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await["counts"]["delivered"] == 24
    })
    .await;
    // A reply within the window counts.
    let (_, body) = meta::FakeMeta::webhook_text("14155551003", "Person 3", "Interested!");
    assert_eq!(
        FakeMeta::post_webhook(
            &app.url(&format!("/webhooks/whatsapp/{}", w.channel)),
            APP_SECRET,
            &body
        )
        .await,
        200
    );
    until(&app, "the reply", || async {
        get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await["counts"]["replied"] == 1
    })
    .await;
    let stats = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}/stats")).await;
    assert_eq!(
        stats["counts"],
        json!({"total": 30, "pending": 0, "sending": 0, "sent": 24, "delivered": 24, "read": 0,
               "replied": 1, "failed": 0, "skipped": 6})
    );
    let reasons: Vec<(String, i64)> = stats["skipped_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (s(r, "reason"), r["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("opted_out".into(), 3),
            ("no_consent".into(), 2),
            ("blocked".into(), 1)
        ]
    );
    assert!(!stats["series"].as_array().unwrap().is_empty());
    // Drill-down, paged.
    let page = get(
        &app,
        &w.admin,
        &format!("/api/v1/campaigns/{id}/recipients?state=skipped&limit=4"),
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let next = s(&page, "next_cursor");
    let rest = get(
        &app,
        &w.admin,
        &format!("/api/v1/campaigns/{id}/recipients?state=skipped&cursor={next}"),
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    expect_problem(
        app.get_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/recipients?state=bogus"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    // Export: one line per recipient.
    let csv = app
        .get_as(&w.admin, &format!("/api/v1/campaigns/{id}/export"))
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    let text = csv.text().await.unwrap();
    assert_eq!(text.lines().count(), 31);
    // Retarget the delivered-but-unread: a new draft for those 24.
    let r = expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/retarget"),
            &json!({"slice": "delivered_not_read"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(r["status"], "draft");
    let b = get(
        &app,
        &w.admin,
        &format!("/api/v1/campaigns/{}/audience", s(&r, "id")),
    )
    .await;
    assert_eq!(
        (b["total"].as_i64(), b["eligible"].as_i64()),
        (Some(24), Some(24))
    );
    // A finished campaign cannot be paused; a draft cannot be resumed.
    expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/pause"),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;
    expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{}/resume", s(&r, "id")),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "invalid_state",
    )
    .await;
}

async fn bad_campaigns_send_nothing(app: TestApp) {
    let w = world(&app).await;
    let template = approved_template(&app, &w, "promo").await;
    // Bad references are field errors.
    let p = expect_problem(
        app.post_as(
            &w.admin,
            "/api/v1/campaigns",
            &json!({"name": "", "channel_id": w.channel, "template_id": template,
                    "audience": {"groups": ["0191e6a4-0000-7000-8000-000000000000"]},
                    "failure_threshold": 2,
                    "variables": {"body.9": {"source": "fixed", "value": "x"}}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let fields = problem_fields(&p);
    for f in [
        "name",
        "audience.groups[0]",
        "failure_threshold",
        "variables.body.9",
    ] {
        assert!(fields.contains(&f.to_owned()), "{f} not in {fields:?}");
    }
    // An empty group, and a group of opted-out contacts.
    let empty = group_of(&app, &w.admin, "Empty", &[]).await;
    let id = campaign(&app, &w, &template, &empty).await;
    expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_audience",
    )
    .await;
    let mut out = Vec::new();
    for i in 0..3 {
        let c = contact(
            &app,
            &w.admin,
            &format!("Out {i}"),
            &format!("+1415556{i:04}"),
            None,
        )
        .await;
        consent(&app, &w.admin, &c, "opted_out").await;
        out.push(c);
    }
    let g = group_of(&app, &w.admin, "Opted out", &out).await;
    let id = campaign(&app, &w, &template, &g).await;
    let p = expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_eligible_recipients",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("3 opted out"), "{p}");
    // A template that is not approved cannot be launched.
    let mut draft = promo_body("not_yet");
    draft["channel_id"] = json!(w.channel);
    let d = s(
        &expect_json(
            app.post_as(&w.admin, "/api/v1/templates", &draft).await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    let c = contact(&app, &w.admin, "In", "+14155570000", None).await;
    consent(&app, &w.admin, &c, "opted_in").await;
    let g = group_of(&app, &w.admin, "In", &[c]).await;
    let id = campaign(&app, &w, &d, &g).await;
    expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "template_not_approved",
    )
    .await;
    // A schedule in a bad time zone, and a body that is not JSON.
    let p = expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({"scheduled_at": "2099-01-01T09:00", "time_zone": "Mars/Olympus"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["time_zone"]);
    assert_eq!(w.fake.sent_count(), 0, "nothing was sent");
}

async fn campaigns_pause_themselves_with_the_reason(app: TestApp) {
    let w = world(&app).await;
    let template = approved_template(&app, &w, "promo").await;
    let mut ids = Vec::new();
    for i in 0..80 {
        let id = contact(
            &app,
            &w.admin,
            &format!("P {i}"),
            &format!("+1415558{i:04}"),
            Some("X"),
        )
        .await;
        consent(&app, &w.admin, &id, "opted_in").await;
        ids.push(id);
        // Half of them cannot be reached.
        if i % 2 == 0 {
            w.fake
                .fail_for_recipient(&format!("1415558{i:04}"), MetaError::new(400, 131026));
        }
    }
    let g = group_of(&app, &w.admin, "All", &ids).await;
    let id = campaign(&app, &w, &template, &g).await;
    launch_now(&app, &w, &id).await;
    until(&app, "the automatic pause", || async {
        get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await["status"] == "paused"
    })
    .await;
    let c = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await;
    assert!(
        c["pause_reason"]
            .as_str()
            .unwrap()
            .contains("above the 20% threshold"),
        "{c}"
    );
    let stats = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}/stats")).await;
    assert_eq!(stats["failed_by_code"][0]["code"], 131026);
    // Meta pauses the template: resuming is refused with the reason, then the campaign pauses
    // itself when it finds the template paused.
    w.fake.clear_failures();
    let tid =
        get(&app, &w.admin, &format!("/api/v1/templates/{template}")).await["provider_template_id"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(w.fake.set_template_status(&tid, "PAUSED", None));
    until(&app, "the template pause", || async {
        get(&app, &w.admin, &format!("/api/v1/templates/{template}")).await["status"] == "paused"
    })
    .await;
    expect_problem(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/resume"),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "template_not_approved",
    )
    .await;
    assert!(w.fake.set_template_status(&tid, "APPROVED", None));
    until(&app, "the template approval", || async {
        get(&app, &w.admin, &format!("/api/v1/templates/{template}")).await["status"] == "approved"
    })
    .await;
    // Raise the threshold by hand is not possible once launched; resume, then cancel: pending
    // recipients are skipped as cancelled and nothing more is sent.
    expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/resume"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let c = expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/cancel"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(c["status"], "cancelled");
    let sent_then = w.fake.sent_count();
    for _ in 0..3 {
        app.run_jobs().await;
    }
    assert_eq!(w.fake.sent_count(), sent_then);
    let c = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(c["counts"]["pending"], 0);
    assert_eq!(w.fake.duplicate_callback_data(), 0);
}

/// Launches campaign `id` now (as the world's admin).
async fn launch_now(app: &TestApp, w: &World, id: &str) {
    expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

/// A group "All" of `n` contacts named `{name} {i}` with the numbers `{prefix}{i:04}`, each
/// opted in to marketing on WhatsApp.
async fn opted_in_group(app: &TestApp, w: &World, name: &str, prefix: &str, n: usize) -> String {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = contact(
            app,
            &w.admin,
            &format!("{name} {i}"),
            &format!("{prefix}{i:04}"),
            Some("X"),
        )
        .await;
        consent(app, &w.admin, &id, "opted_in").await;
        ids.push(id);
    }
    group_of(app, &w.admin, "All", &ids).await
}

/// Workers stop mid-send (their job is dropped while the provider is still answering) and two
/// run at once: every recipient is sent exactly once.
async fn never_twice_when_workers_stop_mid_send(app: TestApp) {
    let w = world(&app).await;
    w.fake.set_auto_statuses(vec!["sent"]);
    let template = approved_template(&app, &w, "promo").await;
    let g = opted_in_group(&app, &w, "K", "+1415559", 120).await;
    let id = campaign(&app, &w, &template, &g).await;
    launch_now(&app, &w, &id).await;
    // Snapshot first, then the sends hang at the provider and the workers are killed.
    app.run_jobs().await;
    for _ in 0..3 {
        let before = w.fake.request_count();
        let worker = {
            let state = app.state.clone();
            tokio::spawn(async move {
                let worker = wamage_server::app::worker(&state);
                let _ = worker.run_due_jobs().await;
            })
        };
        // Kill it mid-batch: sends accepted by Meta whose outcome was not written yet.
        for _ in 0..500 {
            if w.fake.request_count() > before + 30 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        worker.abort();
        let _ = worker.await;
        // The dead worker left claimed recipients behind.
        let c = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await;
        assert!(
            c["counts"]["sending"].as_i64().unwrap() > 0 || c["counts"]["pending"] == 0,
            "{c}"
        );
        // Time passes: the job's and the recipients' leases run out; Meta's reports of the
        // accepted sends (carrying their callback data) settle them as sent; sends without a
        // report go again after the grace period.
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.clock.advance(Duration::from_secs(65));
        app.state.jobs.reap_expired().await.unwrap();
    }
    assert!(w.fake.sent_count() >= 30, "the killed workers had sent");
    // A job that died with its worker too often is dead for the queue; the watchdog gives the
    // campaign its dispatchers back within a minute.
    {
        use wamage_platform::{Db, with_db};
        let db: &Db = &app.state.db;
        with_db!(db, |p| sqlx::query(
            "UPDATE jobs SET state = 'dead' WHERE kind = 'campaigns.dispatch' AND state IN ('queued', 'running')"
        )
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
    app.clock.advance(Duration::from_secs(61));
    until(&app, "the campaign to complete", || async {
        app.clock.advance(Duration::from_secs(5));
        app.state.jobs.reap_expired().await.unwrap();
        get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await["status"] == "completed"
    })
    .await;
    assert_eq!(
        w.fake.duplicate_callback_data(),
        0,
        "no recipient got it twice"
    );
    assert_eq!(
        w.fake.distinct_callback_data(),
        120,
        "no recipient was missed"
    );
    assert_eq!(w.fake.sent_count(), 120);
    let c = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(c["counts"]["sent"], 120, "{c}");
}

/// Runs SQL against the app's database (bound to the campaign id as `$1`); returns the rows
/// it changed.
async fn exec(app: &TestApp, sql: &str, campaign: &str) -> u64 {
    use wamage_platform::{Db, with_db};
    let db: &Db = &app.state.db;
    let id = uuid::Uuid::parse_str(campaign).unwrap();
    with_db!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap()
}

/// A campaign's first four recipients are held by another dispatcher's range lease (alive, but
/// not heard from): the dispatchers send the rest, never claim a held recipient row by row,
/// and show it as being sent; when the lease runs out its recipients are sent once. A cancel
/// leaves recipients in a live lease to their holder.
async fn recipients_in_a_live_lease_are_left_to_its_holder(app: TestApp) {
    let w = world(&app).await;
    w.fake.set_auto_statuses(vec!["sent"]);
    let template = approved_template(&app, &w, "promo").await;
    let g = opted_in_group(&app, &w, "L", "+1415558", 12).await;
    let launch = |id: String| {
        let app = &app;
        let w = &w;
        async move {
            launch_now(app, w, &id).await;
            app.run_jobs().await; // the snapshot
            // The first four recipients leased for a minute by a dispatcher elsewhere.
            let held = "INSERT INTO campaign_leases (campaign_id, first_seq, last_seq, lease_until) \
                 SELECT campaign_id, MIN(seq), MAX(seq), MAX(updated_at) + 60000 FROM \
                 (SELECT campaign_id, seq, updated_at FROM campaign_recipients \
                 WHERE campaign_id = $1 ORDER BY seq LIMIT 4) t GROUP BY campaign_id";
            assert_eq!(exec(app, held, &id).await, 1);
            let next = "UPDATE campaigns SET next_seq = (SELECT last_seq + 1 FROM campaign_leases \
                 WHERE campaign_id = $1) WHERE id = $1";
            assert_eq!(exec(app, next, &id).await, 1);
        }
    };

    let id = campaign(&app, &w, &template, &g).await;
    launch(id.clone()).await;
    for _ in 0..3 {
        app.run_jobs().await;
    }
    let c = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["counts"]["sent"], 8, "{c}");
    assert_eq!(
        c["counts"]["sending"], 4,
        "held recipients are being sent: {c}"
    );
    assert_eq!(c["counts"]["pending"], 0, "{c}");
    assert_eq!(w.fake.sent_count(), 8, "nobody took a held recipient");
    // The drill-down agrees: the held four are being sent, none is waiting.
    let page = |state: &'static str| {
        let app = &app;
        let w = &w;
        let id = id.clone();
        async move {
            get(
                app,
                &w.admin,
                &format!("/api/v1/campaigns/{id}/recipients?state={state}"),
            )
            .await["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| s(r, "state"))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page("sending").await, vec!["sending"; 4]);
    assert_eq!(page("pending").await, Vec::<String>::new());
    assert_eq!(page("sent").await.len(), 8);
    // The holder is never heard from: its lease runs out, its recipients become unconfirmed
    // (no report comes for them) and are sent after the grace period.
    app.clock.advance(Duration::from_secs(61));
    until(&app, "the campaign to complete", || async {
        app.clock.advance(Duration::from_secs(5));
        app.state.jobs.reap_expired().await.unwrap();
        get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await["status"] == "completed"
    })
    .await;
    assert_eq!(w.fake.sent_count(), 12);
    assert_eq!(w.fake.distinct_callback_data(), 12);
    assert_eq!(w.fake.duplicate_callback_data(), 0);
    let c = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(c["counts"]["sent"], 12, "{c}");
    let leases = "DELETE FROM campaign_leases WHERE campaign_id = $1";
    assert_eq!(exec(&app, leases, &id).await, 0, "no lease is left");

    // Cancelled while another dispatcher holds the first four: the rest is skipped, the held
    // recipients stay with their holder, and the dispatchers send nothing.
    let id = campaign(&app, &w, &template, &g).await;
    launch(id.clone()).await;
    expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/cancel"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    app.run_jobs().await;
    let c = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(c["status"], "cancelled", "{c}");
    assert_eq!(c["counts"]["skipped"], 8, "{c}");
    assert_eq!(c["counts"]["sending"], 4, "{c}");
    assert_eq!(w.fake.sent_count(), 12, "nothing more was sent");
}

/// Local templates on the Sandbox: the simulated customers get the rendered text, and the
/// Sandbox's delivery reports (no callback data) find the recipients by message id.
/// Launches a campaign now and runs jobs until it has completed.
async fn launch_to_completion(app: &TestApp, who: &TestUser, id: &str) {
    expect_json(
        app.post_as(who, &format!("/api/v1/campaigns/{id}/launch"), &json!({}))
            .await,
        StatusCode::OK,
    )
    .await;
    until(app, "the campaign to complete", || async {
        get(app, who, &format!("/api/v1/campaigns/{id}")).await["status"] == "completed"
    })
    .await;
}

/// A contact with one identity of `kind`.
async fn contact_with(
    app: &TestApp,
    who: &TestUser,
    name: &str,
    kind: &str,
    value: &str,
) -> String {
    s(
        &expect_json(
            app.post_as(
                who,
                "/api/v1/contacts",
                &json!({"name": name, "identities": [{"kind": kind, "value": value}]}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    )
}

/// The snapshot copies the audience in the database: every contact once, in contact order,
/// with the reasons it will not be sent to; two contacts reaching the same number through
/// different identity kinds (a WhatsApp number and a plain phone) get one message.
async fn one_message_per_address_and_per_contact(app: TestApp) {
    let w = world(&app).await;
    let template = approved_template(&app, &w, "shared_numbers").await;
    let a = contact(&app, &w.admin, "Ana", "+14155550101", Some("A")).await;
    let c = contact(&app, &w.admin, "Cy", "+14155550102", Some("C")).await;
    // Bo's plain phone is Ana's WhatsApp number.
    let b = contact_with(&app, &w.admin, "Bo", "phone", "+14155550101").await;
    // Di has no address WhatsApp can use.
    let d = contact_with(&app, &w.admin, "Di", "email", "di@example.com").await;
    for id in [&a, &b, &c, &d] {
        consent(&app, &w.admin, id, "opted_in").await;
    }
    // In two groups and a tag at once: still one recipient each.
    let g1 = group_of(&app, &w.admin, "One", &[a.clone(), b.clone(), d.clone()]).await;
    let g2 = group_of(&app, &w.admin, "Two", &[a.clone(), b.clone(), c.clone()]).await;
    let id = s(
        &expect_json(
            app.post_as(
                &w.admin,
                "/api/v1/campaigns",
                &json!({"name": "Shared", "channel_id": w.channel, "template_id": template,
                        "audience": {"groups": [g1, g2]}}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    launch_to_completion(&app, &w.admin, &id).await;
    let mut to: Vec<String> = w
        .fake
        .sent()
        .iter()
        .map(|m| m.body["to"].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(to, vec!["14155550101", "14155550102"]);
    let stats = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}/stats")).await;
    assert_eq!(stats["counts"]["total"], 4);
    assert_eq!(stats["counts"]["sent"], 2);
    let mut reasons: Vec<(String, i64)> = stats["skipped_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (s(r, "reason"), r["count"].as_i64().unwrap()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![("duplicate_address".into(), 1), ("no_identity".into(), 1)]
    );
    // The earlier contact keeps the number; the recipients list shows who was skipped and why.
    let skipped = get(
        &app,
        &w.admin,
        &format!("/api/v1/campaigns/{id}/recipients?state=skipped"),
    )
    .await;
    let mut who: Vec<(String, String)> = skipped["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (s(r, "contact_id"), s(r, "skip_reason")))
        .collect();
    who.sort();
    let first = a.clone().min(b.clone());
    let second = if first == a { b.clone() } else { a.clone() };
    let mut want = vec![
        (second, "duplicate_address".to_owned()),
        (d.clone(), "no_identity".to_owned()),
    ];
    want.sort();
    assert_eq!(who, want);
    // Deleting the campaign deletes its recipients with it.
    assert_eq!(
        app.delete_as(&w.admin, &format!("/api/v1/campaigns/{id}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let left: i64 = {
        use wamage_platform::{Db, with_db};
        let db: &Db = &app.state.db;
        with_db!(db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM campaign_recipients"
        )
        .fetch_one(p)
        .await)
        .unwrap()
    };
    assert_eq!(left, 0);
}

async fn sandbox_campaigns_send_local_templates(app: TestApp) {
    let admin = app.register("owner@acme.test", "Acme").await;
    let ch = s(
        &expect_json(
            app.post_as(
                &admin,
                "/api/v1/channels",
                &json!({"kind": "sandbox", "name": "Sandbox"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    for h in ["ana", "bob", "cid"] {
        expect_json(
            app.post_as(
                &admin,
                &format!("/api/v1/channels/{ch}/simulate"),
                &json!({"from": {"handle": h, "name": h.to_uppercase()}, "text": "hi"}),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
    }
    until(&app, "the simulated customers", || async {
        get(&app, &admin, "/api/v1/contacts").await["items"]
            .as_array()
            .unwrap()
            .len()
            == 3
    })
    .await;
    let ids: Vec<String> = get(&app, &admin, "/api/v1/contacts").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(c, "id"))
        .collect();
    let g = group_of(&app, &admin, "Sandbox people", &ids).await;
    let t = s(
        &expect_json(
            app.post_as(&admin, "/api/v1/templates", &json!({"channel_id": ch, "name": "ready", "language": "en",
                "category": "UTILITY", "components": {"body": {"text": "{{1}}, your order is ready"},
                "buttons": [{"type": "quick_reply", "text": "Thanks"}]},
                "mapping": {"body.1": {"source": "contact.name"}}})).await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    let id = s(
        &expect_json(
            app.post_as(
                &admin,
                "/api/v1/campaigns",
                &json!({"name": "Ready", "channel_id": ch, "template_id": t,
                "audience": {"groups": [g]}}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    expect_json(
        app.post_as(
            &admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    until(&app, "reads of every send", || async {
        // Reports that beat the send's recorded id are retried a second later.
        app.clock.advance(Duration::from_secs(2));
        let c = get(&app, &admin, &format!("/api/v1/campaigns/{id}")).await;
        c["status"] == "completed" && c["counts"]["read"] == 3
    })
    .await;
    let page = get(&app, &admin, &format!("/api/v1/campaigns/{id}/recipients")).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "read"),
        "{page}"
    );

    // Another organisation sees none of it.
    let other = app.register("other@else.test", "Else").await;
    assert_isolated(
        &app,
        &admin,
        &other,
        &[
            Probe::get(format!("/api/v1/templates/{t}")),
            Probe::post(format!("/api/v1/templates/{t}/preview"), json!({})),
            Probe::patch(format!("/api/v1/templates/{t}"), json!({"mapping": {}})),
            Probe::get(format!("/api/v1/campaigns/{id}")),
            Probe::get(format!("/api/v1/campaigns/{id}/stats")),
            Probe::get(format!("/api/v1/campaigns/{id}/recipients")),
            Probe::get(format!("/api/v1/campaigns/{id}/audience")),
            Probe::get(format!("/api/v1/campaigns/{id}/export")),
        ],
    )
    .await;
    assert!(
        get(&app, &other, "/api/v1/campaigns").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        get(&app, &other, "/api/v1/templates").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Its own campaign cannot use this organisation's channel, template or groups.
    let p = expect_problem(
        app.post_as(
            &other,
            "/api/v1/campaigns",
            &json!({"name": "X", "channel_id": ch, "template_id": t,
            "audience": {"groups": [g]}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem_fields(&p),
        vec!["channel_id", "template_id", "audience.groups[0]"]
    );
    for path in [
        format!("/api/v1/campaigns/{id}/pause"),
        format!("/api/v1/campaigns/{id}/retarget"),
        format!("/api/v1/templates/{t}/submit"),
    ] {
        let res = app.post_as(&other, &path, &json!({"slice": "read"})).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

/// A campaign scheduled for a local time in a time zone waits for it, then runs.
async fn scheduled_campaigns_wait_for_their_time(app: TestApp) {
    let mut admin = app.register("owner@acme.test", "Acme").await;
    let ch = s(
        &expect_json(
            app.post_as(
                &admin,
                "/api/v1/channels",
                &json!({"kind": "sandbox", "name": "Sandbox"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    expect_json(
        app.post_as(
            &admin,
            &format!("/api/v1/channels/{ch}/simulate"),
            &json!({"from": {"handle": "ana", "name": "Ana"}, "text": "hi"}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    until(&app, "the simulated customer", || async {
        get(&app, &admin, "/api/v1/contacts").await["items"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    let ana = s(
        &get(&app, &admin, "/api/v1/contacts").await["items"][0],
        "id",
    );
    let g = group_of(&app, &admin, "Ana", &[ana]).await;
    let t = s(
        &expect_json(
            app.post_as(
                &admin,
                "/api/v1/templates",
                &json!({"channel_id": ch, "name": "hello", "language": "en", "category": "UTILITY",
                        "components": {"body": {"text": "Hello there"}}}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    let id = s(
        &expect_json(
            app.post_as(
                &admin,
                "/api/v1/campaigns",
                &json!({"name": "Later", "channel_id": ch, "template_id": t, "audience": {"groups": [g]}}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    // Two hours from now, as a wall time in Tokyo.
    let at = chrono::DateTime::from_timestamp_millis(app.clock.now().millis() + 2 * 3600 * 1000)
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Tokyo);
    let local = at.format("%Y-%m-%dT%H:%M").to_string();
    let c = expect_json(
        app.post_as(
            &admin,
            &format!("/api/v1/campaigns/{id}/launch"),
            &json!({"scheduled_at": local, "time_zone": "Asia/Tokyo"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(c["status"], "scheduled");
    assert_eq!(c["time_zone"], "Asia/Tokyo");
    let due = chrono::DateTime::parse_from_rfc3339(c["scheduled_at"].as_str().unwrap()).unwrap();
    assert!(
        (due.timestamp() - at.timestamp()).abs() < 60,
        "{due} vs {at}"
    );
    // A scheduled campaign can no longer be edited, nor launched again.
    expect_problem(
        app.patch_as(
            &admin,
            &format!("/api/v1/campaigns/{id}"),
            &json!({"name": "x"}),
        )
        .await,
        StatusCode::CONFLICT,
        "not_editable",
    )
    .await;
    for _ in 0..3 {
        app.run_jobs().await;
    }
    let c = get(&app, &admin, &format!("/api/v1/campaigns/{id}")).await;
    assert_eq!(
        (c["status"].as_str(), c["counts"]["sent"].as_i64()),
        (Some("scheduled"), Some(0))
    );
    app.clock.advance(Duration::from_secs(2 * 3600 + 60));
    // Two hours later the access token has expired: sign in again.
    let again = expect_json(
        app.login(&admin.email, &admin.password).await,
        StatusCode::OK,
    )
    .await;
    admin.access_token = s(&again, "access_token");
    until(&app, "the scheduled run", || async {
        app.clock.advance(Duration::from_secs(1));
        let c = get(&app, &admin, &format!("/api/v1/campaigns/{id}")).await;
        c["status"] == "completed" && c["counts"]["sent"] == 1
    })
    .await;
}

/// Meta's per-user marketing limit (131049) is recorded, not retried; a marketing opt-out
/// reported by Meta (131050) lands in the consent ledger; Telegram gets the rendered text.
async fn provider_refusals_are_recorded_and_telegram_gets_text(app: TestApp) {
    let w = world(&app).await;
    w.fake.set_auto_statuses(vec!["sent", "delivered"]);
    let template = approved_template(&app, &w, "promo").await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let id = contact(
            &app,
            &w.admin,
            &format!("M {i}"),
            &format!("+1415557{i:04}"),
            Some("X"),
        )
        .await;
        consent(&app, &w.admin, &id, "opted_in").await;
        ids.push(id);
    }
    w.fake
        .fail_for_recipient("14155570000", MetaError::new(400, 131049));
    w.fake.set_async_failure_for("14155570001", 131049);
    w.fake.set_async_failure_for("14155570002", 131050);
    let g = group_of(&app, &w.admin, "Six", &ids).await;
    let id = campaign(&app, &w, &template, &g).await;
    launch_now(&app, &w, &id).await;
    until(&app, "the reports", || async {
        let c = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}")).await;
        c["status"] == "completed" && c["counts"]["failed"] == 3 && c["counts"]["delivered"] == 3
    })
    .await;
    let stats = get(&app, &w.admin, &format!("/api/v1/campaigns/{id}/stats")).await;
    let by_code: Vec<(i64, i64)> = stats["failed_by_code"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["code"].as_i64().unwrap(), f["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(by_code, vec![(131049, 2), (131050, 1)]);
    // Not retried: one request per recipient reached Meta.
    assert_eq!(
        w.fake.request_count() as usize,
        w.fake.sent_count() + 1 + 1,
        "sends + the refused one + the template submission"
    );
    let ledger = get(
        &app,
        &w.admin,
        &format!("/api/v1/contacts/{}/consent", ids[2]),
    )
    .await;
    assert!(ledger.to_string().contains("opted_out"), "{ledger}");
    // A retarget of the failed slice sees the opt-out: only the 131049 ones are eligible.
    let r = expect_json(
        app.post_as(
            &w.admin,
            &format!("/api/v1/campaigns/{id}/retarget"),
            &json!({"slice": "failed"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let b = get(
        &app,
        &w.admin,
        &format!("/api/v1/campaigns/{}/audience", s(&r, "id")),
    )
    .await;
    assert_eq!(
        (
            b["total"].as_i64(),
            b["eligible"].as_i64(),
            b["opted_out"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );

    // Telegram: a local template, rendered per contact, with its quick reply as a button.
    let tg = wamage_testkit::fakes::FakeTelegram::start().await;
    let ch = s(
        &expect_json(
            app.post_as(&w.admin, "/api/v1/channels", &json!({"kind": "telegram", "name": "Bot",
                "config": {"bot_token": wamage_testkit::fakes::telegram::TOKEN, "mode": "webhook", "base_url": tg.base_url()}})).await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    let mut people = Vec::new();
    for (i, name) in ["Ana Silva", "Bo Chen"].iter().enumerate() {
        let body = json!({"name": name, "identities": [{"kind": "telegram", "value": format!("{}", 7000 + i)}]});
        people.push(s(
            &expect_json(
                app.post_as(&w.admin, "/api/v1/contacts", &body).await,
                StatusCode::CREATED,
            )
            .await,
            "id",
        ));
    }
    let g = group_of(&app, &w.admin, "Telegram people", &people).await;
    let t = s(
        &expect_json(
            app.post_as(&w.admin, "/api/v1/templates", &json!({"channel_id": ch, "name": "notice", "language": "en",
                "category": "UTILITY", "components": {"body": {"text": "Hi {{1}}, your parcel is out"},
                "buttons": [{"type": "quick_reply", "text": "Thanks"}]},
                "mapping": {"body.1": {"source": "contact.first_name"}}})).await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    let tc = s(
        &expect_json(
            app.post_as(
                &w.admin,
                "/api/v1/campaigns",
                &json!({"name": "Parcels", "channel_id": ch, "template_id": t,
                "audience": {"groups": [g]}}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await,
        "id",
    );
    launch_to_completion(&app, &w.admin, &tc).await;
    let mut texts: Vec<String> = tg
        .sent()
        .into_iter()
        .filter(|m| m.method == "sendMessage")
        .map(|m| {
            assert!(
                m.params["reply_markup"].to_string().contains("Thanks"),
                "{}",
                m.params
            );
            m.params["text"].as_str().unwrap().to_owned()
        })
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        vec!["Hi Ana, your parcel is out", "Hi Bo, your parcel is out"]
    );
}

app_tests!(
    provider_refusals_are_recorded_and_telegram_gets_text,
    scheduled_campaigns_wait_for_their_time,
    sandbox_campaigns_send_local_templates,
    templates_are_checked_reviewed_synced_and_previewed,
    a_campaign_runs_from_preview_to_retarget,
    bad_campaigns_send_nothing,
    campaigns_pause_themselves_with_the_reason,
    never_twice_when_workers_stop_mid_send,
    recipients_in_a_live_lease_are_left_to_its_holder,
    one_message_per_address_and_per_contact
);
