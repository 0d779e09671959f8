//! Contacts through the HTTP API, on every backend.

// Test helpers unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::{collections::HashSet, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wamage_contacts::{ConsentChannel, ConsentPurpose, DenyReason, SendPermission};
use wamage_testkit::{
    TestApp, TestUser, app_tests, expect_json, expect_problem, problem_fields,
    tenancy::{Probe, assert_isolated},
};

async fn create(app: &TestApp, who: &TestUser, body: Value) -> Value {
    expect_json(
        app.post_as(who, "/api/v1/contacts", &body).await,
        StatusCode::CREATED,
    )
    .await
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// The names of the contacts a search finds.
async fn search(app: &TestApp, who: &TestUser, q: &str) -> Vec<String> {
    let url = format!("/api/v1/contacts?q={}", urlencode(q));
    let page = expect_json(app.get_as(who, &url).await, StatusCode::OK).await;
    let mut names: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn search_ids(app: &TestApp, who: &TestUser, q: &str) -> Vec<String> {
    let url = format!("/api/v1/contacts?q={}", urlencode(q));
    let page = expect_json(app.get_as(who, &url).await, StatusCode::OK).await;
    page["items"].as_array().unwrap().iter().map(id).collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn define(app: &TestApp, who: &TestUser, body: Value) -> Value {
    expect_json(
        app.post_as(who, "/api/v1/contact-attributes", &body).await,
        StatusCode::CREATED,
    )
    .await
}

async fn crud_round_trip(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let agent = app.add_member(&owner, "agent@acme.example", "agent").await;
    // Agents create, read and change contacts.
    let c = create(
        &app,
        &agent,
        json!({
            "name": "  Ana Lima ",
            "company": "Lima Foods",
            "language": "pt-BR",
            "time_zone": "Europe/Lisbon",
            "notes": "Prefers WhatsApp",
            "favorite": true,
            "identities": [
                {"kind": "phone", "value": "(415) 555-2671"},
                {"kind": "email", "value": "Ana.Lima@Example.com"},
                {"kind": "whatsapp_phone", "value": "+14155552671"},
                {"kind": "whatsapp_user", "value": "US.1234567890"},
                {"kind": "telegram", "value": "-1001234567890"}
            ]
        }),
    )
    .await;
    let cid = id(&c);
    assert_eq!(c["name"], "Ana Lima");
    assert_eq!(c["company"], "Lima Foods");
    assert_eq!(c["language"], "pt-BR");
    assert_eq!(c["time_zone"], "Europe/Lisbon");
    assert_eq!(c["favorite"], true);
    assert_eq!(c["blocked"], false);
    assert_eq!(c["attributes"], json!({}));
    let idents: Vec<(String, String)> = c["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        idents,
        [
            ("phone".to_owned(), "+14155552671".to_owned()),
            ("email".to_owned(), "ana.lima@example.com".to_owned()),
            ("whatsapp_phone".to_owned(), "+14155552671".to_owned()),
            ("whatsapp_user".to_owned(), "US.1234567890".to_owned()),
            ("telegram".to_owned(), "-1001234567890".to_owned()),
        ]
    );

    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, c);

    // Patch: set, clear (null) and leave (absent).
    let patched = expect_json(
        app.patch_as(
            &agent,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"name": "Ana M. Lima", "notes": null, "blocked": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["name"], "Ana M. Lima");
    assert_eq!(patched["notes"], Value::Null);
    assert_eq!(patched["company"], "Lima Foods");
    assert_eq!(patched["blocked"], true);
    assert_eq!(patched["identities"].as_array().unwrap().len(), 5);

    // Identities: add one, remove one.
    let added = expect_json(
        app.post_as(
            &agent,
            &format!("/api/v1/contacts/{cid}/identities"),
            &json!({"kind": "email", "value": "ana@work.example"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(added["value"], "ana@work.example");
    let iid = id(&added);
    let res = app
        .delete_as(&agent, &format!("/api/v1/contacts/{cid}/identities/{iid}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .delete_as(&agent, &format!("/api/v1/contacts/{cid}/identities/{iid}"))
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;

    // Deleting needs an admin.
    expect_problem(
        app.delete_as(&agent, &format!("/api/v1/contacts/{cid}"))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let res = app
        .delete_as(&owner, &format!("/api/v1/contacts/{cid}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get_as(&owner, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Its identities went with it: the phone can be used again.
    create(
        &app,
        &agent,
        json!({"name": "Someone", "identities": [{"kind": "phone", "value": "+14155552671"}]}),
    )
    .await;
}

async fn phones_are_normalised_with_the_default_country(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let settings = expect_json(
        app.get_as(&owner, "/api/v1/contact-settings").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(settings["default_country"], "US");

    let c = create(
        &app,
        &owner,
        json!({"name": "A", "identities": [
            {"kind": "phone", "value": "(415) 555-2671"},
            {"kind": "whatsapp_phone", "value": "+44 20 7946 0958"}
        ]}),
    )
    .await;
    assert_eq!(c["identities"][0]["value"], "+14155552671");
    assert_eq!(c["identities"][1]["value"], "+442079460958");

    // Invalid numbers answer 422 on the field, with the reason.
    let p = expect_problem(
        app.post_as(
            &owner,
            "/api/v1/contacts",
            &json!({"name": "B", "identities": [
                {"kind": "phone", "value": "12"},
                {"kind": "phone", "value": "(415) 000-0000"},
                {"kind": "phone", "value": "call me maybe"},
                {"kind": "whatsapp_phone", "value": "+1 415 555 2671 1234 5678 9"}
            ]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem_fields(&p),
        [
            "identities[0].value",
            "identities[1].value",
            "identities[2].value",
            "identities[3].value"
        ]
    );
    let messages: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages[0], "is too short");
    assert_eq!(messages[1], "is not a valid number for region US");
    assert_eq!(messages[2], "is not a phone number");
    assert!(
        messages[3].starts_with("is too long") || messages[3].contains("valid"),
        "{messages:?}"
    );

    // Another default country reads national numbers differently; only admins change it.
    let agent = app.add_member(&owner, "agent@acme.example", "agent").await;
    let res = app
        .request_as(&agent, Method::PUT, "/api/v1/contact-settings")
        .json(&json!({"default_country": "GB"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app
        .request_as(&owner, Method::PUT, "/api/v1/contact-settings")
        .json(&json!({"default_country": "XX"}))
        .send()
        .await
        .unwrap();
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), ["default_country"]);
    let res = app
        .request_as(&owner, Method::PUT, "/api/v1/contact-settings")
        .json(&json!({"default_country": "gb"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(res, StatusCode::OK).await["default_country"],
        "GB"
    );
    let c = create(
        &app,
        &agent,
        json!({"name": "C", "identities": [{"kind": "phone", "value": "020 7946 0000"}]}),
    )
    .await;
    assert_eq!(c["identities"][0]["value"], "+442079460000");
}

async fn duplicate_identities_name_the_contact_that_has_them(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let ana = create(
        &app,
        &owner,
        json!({"name": "Ana", "identities": [
            {"kind": "phone", "value": "+14155552671"},
            {"kind": "email", "value": "ana@example.com"}
        ]}),
    )
    .await;
    let ana_id = id(&ana);
    // The same phone written differently is the same identity.
    let p = expect_problem(
        app.post_as(
            &owner,
            "/api/v1/contacts",
            &json!({"name": "Other", "identities": [
                {"kind": "telegram", "value": "42"},
                {"kind": "phone", "value": "(415) 555-2671"}
            ]}),
        )
        .await,
        StatusCode::CONFLICT,
        "identity_taken",
    )
    .await;
    assert_eq!(problem_fields(&p), ["identities[1].value"]);
    assert!(p.to_string().contains(&ana_id), "{p}");
    // Nothing of the refused contact was stored (not even its telegram id).
    let list = expect_json(app.get_as(&owner, "/api/v1/contacts").await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let bob = create(
        &app,
        &owner,
        json!({"name": "Bob", "identities": [{"kind": "telegram", "value": "42"}]}),
    )
    .await;
    // Through the sub-endpoint too, e-mail compared case-insensitively.
    let p = expect_problem(
        app.post_as(
            &owner,
            &format!("/api/v1/contacts/{}/identities", id(&bob)),
            &json!({"kind": "email", "value": "ANA@example.com"}),
        )
        .await,
        StatusCode::CONFLICT,
        "identity_taken",
    )
    .await;
    assert_eq!(problem_fields(&p), ["value"]);
    assert!(p.to_string().contains(&ana_id), "{p}");
    // A phone and a WhatsApp phone are different identities.
    expect_json(
        app.post_as(
            &owner,
            &format!("/api/v1/contacts/{}/identities", id(&bob)),
            &json!({"kind": "whatsapp_phone", "value": "+14155552671"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    // The same identity twice in one request is a validation error.
    let p = expect_problem(
        app.post_as(
            &owner,
            "/api/v1/contacts",
            &json!({"name": "Twice", "identities": [
                {"kind": "email", "value": "x@example.com"},
                {"kind": "email", "value": "X@example.com"}
            ]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["identities[1].value"]);
    // Another organisation may hold the same identity.
    let other = app.register("owner@other.example", "Other").await;
    create(
        &app,
        &other,
        json!({"name": "Ana elsewhere", "identities": [{"kind": "phone", "value": "+14155552671"}]}),
    )
    .await;
}

async fn attributes_are_validated_against_their_definitions(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let agent = app.add_member(&owner, "agent@acme.example", "agent").await;
    define(
        &app,
        &owner,
        json!({"key": "city", "label": "City", "type": "text"}),
    )
    .await;
    define(
        &app,
        &owner,
        json!({"key": "score", "label": "Score", "type": "number"}),
    )
    .await;
    define(
        &app,
        &owner,
        json!({"key": "birthday", "label": "Birthday", "type": "date"}),
    )
    .await;
    define(
        &app,
        &owner,
        json!({"key": "vip", "label": "VIP", "type": "boolean"}),
    )
    .await;
    define(
        &app,
        &owner,
        json!({"key": "plan", "label": "Plan", "type": "single_choice", "options": ["free", "pro"]}),
    )
    .await;
    define(
        &app,
        &owner,
        json!({"key": "channels", "label": "Channels", "type": "multi_choice", "options": ["sms", "email", "whatsapp"]}),
    )
    .await;
    let defs = expect_json(
        app.get_as(&agent, "/api/v1/contact-attributes").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(defs["items"].as_array().unwrap().len(), 6);
    // Ordered by key.
    assert_eq!(defs["items"][3]["key"], "plan");
    assert_eq!(defs["items"][3]["options"], json!(["free", "pro"]));

    // Definitions themselves are validated, unique, and admin-only.
    let p = expect_problem(
        app.post_as(
            &owner,
            "/api/v1/contact-attributes",
            &json!({"key": "Bad Key", "label": "", "type": "single_choice"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["key", "label", "options"]);
    expect_problem(
        app.post_as(
            &owner,
            "/api/v1/contact-attributes",
            &json!({"key": "city", "label": "Town", "type": "text"}),
        )
        .await,
        StatusCode::CONFLICT,
        "attribute_key_taken",
    )
    .await;
    expect_problem(
        app.post_as(
            &agent,
            "/api/v1/contact-attributes",
            &json!({"key": "x", "label": "X", "type": "text"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    // Every wrong value is reported at once, with what was expected.
    let p = expect_problem(
        app.post_as(
            &agent,
            "/api/v1/contacts",
            &json!({"name": "Ana", "attributes": {
                "city": 3,
                "score": "ten",
                "birthday": "2024-13-01",
                "vip": "yes",
                "plan": "gold",
                "channels": ["sms", "fax"],
                "shoe_size": 42
            }}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(
        problem_fields(&p),
        [
            "attributes.birthday",
            "attributes.channels",
            "attributes.city",
            "attributes.plan",
            "attributes.score",
            "attributes.shoe_size",
            "attributes.vip"
        ]
    );
    let msg = |field: &str| {
        p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["field"] == field)
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(msg("attributes.birthday").contains("YYYY-MM-DD"));
    assert!(msg("attributes.channels").contains("fax"));
    assert!(msg("attributes.city").contains("text"));
    assert!(msg("attributes.plan").contains("free, pro"));
    assert!(msg("attributes.score").contains("number"));
    assert!(msg("attributes.shoe_size").contains("not a defined"));
    assert!(msg("attributes.vip").contains("boolean"));

    let c = create(
        &app,
        &agent,
        json!({"name": "Ana", "attributes": {
            "city": "Lisbon",
            "score": 9.5,
            "birthday": "1990-02-28",
            "vip": true,
            "plan": "pro",
            "channels": ["sms", "whatsapp"]
        }}),
    )
    .await;
    let cid = id(&c);
    assert_eq!(c["attributes"]["score"], 9.5);
    assert_eq!(c["attributes"]["channels"], json!(["sms", "whatsapp"]));

    // A patch merges: given keys change, null removes, others stay.
    let patched = expect_json(
        app.patch_as(
            &agent,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"attributes": {"plan": "free", "vip": null}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["attributes"]["plan"], "free");
    assert!(patched["attributes"].get("vip").is_none());
    assert_eq!(patched["attributes"]["city"], "Lisbon");
    let p = expect_problem(
        app.patch_as(
            &agent,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"attributes": {"birthday": "28/02/1990"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["attributes.birthday"]);

    // A required attribute must be given on create and cannot be removed.
    expect_json(
        app.patch_as(
            &owner,
            "/api/v1/contact-attributes/city",
            &json!({"required": true, "label": "Home city"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let p = expect_problem(
        app.post_as(&agent, "/api/v1/contacts", &json!({"name": "Bob"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["attributes.city"]);
    let p = expect_problem(
        app.patch_as(
            &agent,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"attributes": {"city": null}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["attributes.city"]);

    // Changing the options changes what is accepted.
    expect_json(
        app.patch_as(
            &owner,
            "/api/v1/contact-attributes/plan",
            &json!({"options": ["free", "pro", "enterprise"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        app.patch_as(
            &agent,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"attributes": {"plan": "enterprise"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;

    // Deleting a definition removes every contact's value for it, and its search words.
    assert_eq!(search(&app, &agent, "lisb").await, ["Ana"]);
    let res = app
        .delete_as(&owner, "/api/v1/contact-attributes/city")
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert!(got["attributes"].get("city").is_none(), "{got}");
    assert_eq!(got["attributes"]["plan"], "enterprise");
    assert!(search(&app, &agent, "lisb").await.is_empty());
    expect_problem(
        app.delete_as(&owner, "/api/v1/contact-attributes/city")
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn search_matches_prefixes_of_names_identities_and_attributes(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    define(
        &app,
        &owner,
        json!({"key": "city", "label": "City", "type": "text"}),
    )
    .await;
    define(
        &app,
        &owner,
        json!({"key": "score", "label": "Score", "type": "number"}),
    )
    .await;
    let ana = create(
        &app,
        &owner,
        json!({"name": "Ana Lima", "identities": [
            {"kind": "phone", "value": "(415) 555-2671"},
            {"kind": "email", "value": "ana.lima@example.com"}
        ]}),
    )
    .await;
    create(
        &app,
        &owner,
        json!({"name": "Bruno Costa", "company": "Limoeiro Foods", "attributes": {"city": "Porto", "score": 415},
               "identities": [{"kind": "telegram", "value": "987654321"}]}),
    )
    .await;
    create(
        &app,
        &owner,
        json!({"name": "Carla Anand", "attributes": {"city": "Lisbon"},
               "identities": [{"kind": "whatsapp_phone", "value": "+44 20 7946 0958"}]}),
    )
    .await;

    assert_eq!(
        search(&app, &owner, "ana").await,
        ["Ana Lima", "Carla Anand"]
    );
    assert_eq!(search(&app, &owner, "Ana Lim").await, ["Ana Lima"]);
    assert_eq!(
        search(&app, &owner, "lim").await,
        ["Ana Lima", "Bruno Costa"]
    );
    // Phone digits, with or without the country code or the plus.
    assert_eq!(search(&app, &owner, "+1415").await, ["Ana Lima"]);
    assert_eq!(search(&app, &owner, "1415").await, ["Ana Lima"]);
    assert_eq!(search(&app, &owner, "(415) 555").await, ["Ana Lima"]);
    assert_eq!(search(&app, &owner, "+44 20 79").await, ["Carla Anand"]);
    // E-mail prefix.
    assert_eq!(search(&app, &owner, "ana.lima@exa").await, ["Ana Lima"]);
    // Telegram id and text attributes; number attributes are not searched.
    assert_eq!(search(&app, &owner, "98765").await, ["Bruno Costa"]);
    assert_eq!(search(&app, &owner, "lisb").await, ["Carla Anand"]);
    assert_eq!(search(&app, &owner, "port").await, ["Bruno Costa"]);
    assert!(search(&app, &owner, "zebra").await.is_empty());
    // Search composes with filters.
    expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/contacts/{}", id(&ana)),
            &json!({"favorite": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let page = expect_json(
        app.get_as(&owner, "/api/v1/contacts?q=ana&favorite=true")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "Ana Lima");

    // The index follows every write in the same transaction.
    let phone_id = ana["identities"][0]["id"].as_str().unwrap();
    let res = app
        .delete_as(
            &owner,
            &format!("/api/v1/contacts/{}/identities/{phone_id}", id(&ana)),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(search(&app, &owner, "1415").await.is_empty());
    expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/contacts/{}", id(&ana)),
            &json!({"name": "Joana Silva"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(search(&app, &owner, "silv").await, ["Joana Silva"]);
    // Her e-mail still says "ana lima"; Bruno's old name and company leave the index.
    assert_eq!(search(&app, &owner, "ana lima").await, ["Joana Silva"]);
    let bruno = search_ids(&app, &owner, "costa").await;
    assert_eq!(bruno.len(), 1);
    expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/contacts/{}", bruno[0]),
            &json!({"name": "Bruno Dias", "company": null}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(search(&app, &owner, "costa").await.is_empty());
    assert!(search(&app, &owner, "limoeiro").await.is_empty());
    assert_eq!(search(&app, &owner, "dias").await, ["Bruno Dias"]);
    let res = app
        .delete_as(&owner, &format!("/api/v1/contacts/{}", id(&ana)))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(search(&app, &owner, "silv").await.is_empty());
}

/// Walks every page of a list; returns the ids in order.
async fn walk(app: &TestApp, who: &TestUser, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("/api/v1/contacts?limit=25&{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = expect_json(app.get_as(who, &url).await, StatusCode::OK).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 25);
        out.extend(items.iter().cloned());
        pages += 1;
        assert!(pages < 20, "paging does not end");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out
}

async fn keyset_paging_has_no_duplicates_or_gaps(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let mut all = HashSet::new();
    for i in 0..120 {
        // Repeated names and equal creation times: the id breaks ties.
        let c = create(
            &app,
            &owner,
            json!({"name": format!("Person {:02}", i % 40), "favorite": i % 3 == 0}),
        )
        .await;
        all.insert(id(&c));
        if i % 7 == 0 {
            app.clock.advance(Duration::from_millis(5));
        }
    }
    for sort in ["name", "-created_at", "-updated_at"] {
        let items = walk(&app, &owner, &format!("sort={sort}")).await;
        let ids: Vec<String> = items.iter().map(id).collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(ids.len(), 120, "{sort}: duplicates or gaps");
        assert_eq!(unique, all, "{sort}");
        let keys: Vec<(String, String)> = items
            .iter()
            .map(|c| match sort {
                "name" => (c["name"].as_str().unwrap().to_lowercase(), id(c)),
                "-created_at" => (c["created_at"].as_str().unwrap().to_owned(), id(c)),
                _ => (c["updated_at"].as_str().unwrap().to_owned(), id(c)),
            })
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if sort.starts_with('-') {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{sort}: out of order");
    }
    // Filters page too.
    let favs = walk(&app, &owner, "favorite=true&sort=name").await;
    assert_eq!(favs.len(), 40);
    assert!(favs.iter().all(|c| c["favorite"] == true));
    // A cursor belongs to its sort.
    let page = expect_json(
        app.get_as(&owner, "/api/v1/contacts?limit=5&sort=name")
            .await,
        StatusCode::OK,
    )
    .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let p = expect_problem(
        app.get_as(
            &owner,
            &format!("/api/v1/contacts?sort=-created_at&cursor={cursor}"),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["cursor"]);
}

async fn writes_invalidate_the_cached_contact(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let c = create(&app, &owner, json!({"name": "Ana"})).await;
    let cid = id(&c);
    let key = format!("contacts:{}:contact:{cid}", owner.org_id);
    assert!(app.state.cache.get(&key).await.unwrap().is_none());
    expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        app.state.cache.get(&key).await.unwrap().is_some(),
        "a read fills the cache"
    );
    expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"name": "Ana Lima"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(app.state.cache.get(&key).await.unwrap().is_none());
    let got = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["name"], "Ana Lima");
    // Identity changes invalidate too.
    expect_json(
        app.post_as(
            &owner,
            &format!("/api/v1/contacts/{cid}/identities"),
            &json!({"kind": "telegram", "value": "12345"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let got = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["identities"][0]["value"], "12345");
    let res = app
        .delete_as(&owner, &format!("/api/v1/contacts/{cid}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get_as(&owner, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn next_event(sub: &mut wamage_platform::bus::Subscription) -> wamage_kernel::Event {
    tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .expect("an event within 5 s")
        .expect("bus open")
}

async fn changes_are_published_as_events(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let mut sub = app.state.bus.subscribe("wamage.contact.*");
    let c = create(
        &app,
        &owner,
        json!({"name": "Ana", "identities": [{"kind": "phone", "value": "+14155552671"}]}),
    )
    .await;
    let cid = id(&c);
    let e = next_event(&mut sub).await;
    assert_eq!(e.type_, "wamage.contact.created");
    assert_eq!(e.orgid.to_string(), owner.org_id);
    assert_eq!(e.data.value()["contact"], c);

    expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"name": "Ana Lima", "favorite": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let e = next_event(&mut sub).await;
    assert_eq!(e.type_, "wamage.contact.updated");
    assert_eq!(e.data.value()["contact"]["name"], "Ana Lima");
    assert_eq!(e.data.value()["changed"], json!(["name", "favorite"]));
    assert_eq!(
        e.data.value()["contact"]["identities"][0]["value"],
        "+14155552671"
    );

    let added = expect_json(
        app.post_as(
            &owner,
            &format!("/api/v1/contacts/{cid}/identities"),
            &json!({"kind": "email", "value": "ana@example.com"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let e = next_event(&mut sub).await;
    assert_eq!(e.type_, "wamage.contact.updated");
    assert_eq!(e.data.value()["changed"], json!(["identities"]));
    assert_eq!(e.data.value()["contact"]["identities"][1], added);

    // A patch that changes nothing writes nothing and publishes nothing.
    let before = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    app.clock.advance(Duration::from_secs(1));
    let same = expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"name": "Ana Lima", "favorite": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(same["updated_at"], before["updated_at"]);

    let res = app
        .delete_as(&owner, &format!("/api/v1/contacts/{cid}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let e = next_event(&mut sub).await;
    assert_eq!(e.type_, "wamage.contact.deleted");
    assert_eq!(e.data.value()["contact"]["id"], cid.as_str());
    assert_eq!(e.data.value()["contact"]["name"], "Ana Lima");
}

/// Contacts created for inbound senders (a webhook batch, a batch send) are published and
/// cached as they were written: what a later read from the database returns.
async fn senders_resolved_together_are_published_and_cached_as_stored(app: TestApp) {
    use wamage_contacts::IdentityKind;
    let owner = app.register("owner@acme.example", "Acme").await;
    let org: wamage_kernel::OrgId = owner.org_id.parse().unwrap();
    let known = create(
        &app,
        &owner,
        json!({"name": "Known", "identities": [{"kind": "phone", "value": "+14155550100"}]}),
    )
    .await;
    // A segment count is cached, and so is the known contact (read once).
    let everyone = json!({"field": "favorite", "op": "is", "value": false});
    assert_eq!(preview_count(&app, &owner, &everyone).await, 1);
    let known_key = format!("contacts:{}:contact:{}", owner.org_id, id(&known));
    expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{}", id(&known)))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(app.state.cache.get(&known_key).await.unwrap().is_some());
    let mut sub = app.state.bus.subscribe("wamage.contact.*");
    let senders = vec![
        vec![(IdentityKind::WhatsappPhone, "+14155552671".to_owned())],
        vec![
            (IdentityKind::Telegram, "123456789".to_owned()),
            (IdentityKind::Phone, "+14155550199".to_owned()),
        ],
        vec![(IdentityKind::Phone, "+14155550100".to_owned())],
    ];
    let (resolved, new) = app
        .state
        .contacts
        .resolve_inbound_many_with_new(org, &senders, &[Some("Ana"), None, None])
        .await
        .unwrap();
    assert_eq!(resolved.len(), 3);
    assert_eq!(new.len(), 2, "the new contacts, as rendered");
    assert!(resolved[0].created && resolved[1].created);
    assert!(
        !resolved[2].created,
        "the known phone resolves to its contact"
    );
    assert_eq!(resolved[2].id.to_string(), id(&known));
    // New contacts change the counts, not the contacts already cached.
    assert_eq!(preview_count(&app, &owner, &everyone).await, 3);
    assert!(
        app.state.cache.get(&known_key).await.unwrap().is_some(),
        "a cached contact outlives contacts created beside it"
    );

    for r in &resolved[..2] {
        let e = next_event(&mut sub).await;
        assert_eq!(e.type_, "wamage.contact.created");
        let published = e.data.value()["contact"].clone();
        assert_eq!(published["id"], r.id.to_string());
        let given = new.iter().find(|c| c.id == r.id).expect("given back");
        assert_eq!(serde_json::to_value(given).unwrap(), published);
        let key = format!("contacts:{}:contact:{}", owner.org_id, r.id);
        let cached: Value =
            serde_json::from_slice(&app.state.cache.get(&key).await.unwrap().expect("cached"))
                .unwrap();
        assert_eq!(cached, published);
        // What the database holds, read past the cache.
        app.state.cache.delete(&key).await.unwrap();
        let stored = expect_json(
            app.get_as(&owner, &format!("/api/v1/contacts/{}", r.id))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(stored, published);
    }
    let second = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{}", resolved[1].id))
            .await,
        StatusCode::OK,
    )
    .await;
    let kinds: Vec<&str> = second["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{second}");
    assert!(
        kinds.contains(&"telegram") && kinds.contains(&"phone"),
        "{second}"
    );
}

async fn bad_input_is_refused_with_the_field(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let res = app
        .request_as(&owner, Method::POST, "/api/v1/contacts")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::BAD_REQUEST, "malformed_json").await;

    let check = |body: Value, fields: &'static [&'static str]| {
        let app = &app;
        let owner = &owner;
        async move {
            let p = expect_problem(
                app.post_as(owner, "/api/v1/contacts", &body).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            )
            .await;
            assert_eq!(problem_fields(&p), fields, "{body}: {p}");
        }
    };
    check(json!({"name": "Ana", "admin": true}), &["admin"]).await;
    check(json!({"company": "x"}), &["name"]).await;
    check(json!({"name": "x".repeat(201)}), &["name"]).await;
    check(json!({"name": "   "}), &["name"]).await;
    check(
        json!({"name": "Ana", "time_zone": "Mars/Olympus", "language": "english please"}),
        &["language", "time_zone"],
    )
    .await;
    check(
        json!({"name": "Ana", "identities": [{"kind": "telegram", "value": "@ana"}]}),
        &["identities[0].value"],
    )
    .await;
    check(
        json!({"name": "Ana", "identities": [{"kind": "email", "value": "not-an-email"}]}),
        &["identities[0].value"],
    )
    .await;
    check(
        json!({"name": "Ana", "identities": [{"kind": "fax", "value": "1"}]}),
        &["identities[0].kind"],
    )
    .await;
    check(
        json!({"name": "Ana", "attributes": [1, 2]}),
        &["attributes"],
    )
    .await;

    let c = create(&app, &owner, json!({"name": "Ana"})).await;
    let p = expect_problem(
        app.patch_as(
            &owner,
            &format!("/api/v1/contacts/{}", id(&c)),
            &json!({"time_zone": "Europe/Nowhere"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["time_zone"]);
    // Nothing was changed by the refused patch.
    let got = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{}", id(&c)))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["time_zone"], Value::Null);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("sort=email", "sort"),
        ("cursor=bogus", "cursor"),
    ] {
        let p = expect_problem(
            app.get_as(&owner, &format!("/api/v1/contacts?{query}"))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&p), [field], "{query}");
    }
    let res = app.get_as(&owner, "/api/v1/contacts/not-a-uuid").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    expect_problem(
        app.get_as(
            &owner,
            "/api/v1/contacts/0190f5a2-0000-7000-8000-000000000000",
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let res = app
        .request(Method::GET, "/api/v1/contacts")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn post_ok(app: &TestApp, who: &TestUser, path: &str, body: Value) -> Value {
    expect_json(app.post_as(who, path, &body).await, StatusCode::CREATED).await
}

async fn bulk(app: &TestApp, who: &TestUser, body: Value) -> u64 {
    let out = expect_json(
        app.post_as(who, "/api/v1/contacts/bulk", &body).await,
        StatusCode::OK,
    )
    .await;
    out["affected"].as_u64().unwrap()
}

async fn tags_and_groups_have_unique_names_and_valid_colours(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let agent = app.add_member(&owner, "agent@acme.example", "agent").await;
    let vip = post_ok(
        &app,
        &agent,
        "/api/v1/tags",
        json!({"name": " VIP ", "color": "#FF8800"}),
    )
    .await;
    assert_eq!(vip["name"], "VIP");
    assert_eq!(vip["color"], "#ff8800");
    let lead = post_ok(
        &app,
        &agent,
        "/api/v1/tags",
        json!({"name": "Lead", "color": "#00aa00"}),
    )
    .await;
    // Names are unique ignoring case, on create and on rename.
    let p = expect_problem(
        app.post_as(
            &agent,
            "/api/v1/tags",
            &json!({"name": "vip", "color": "#000000"}),
        )
        .await,
        StatusCode::CONFLICT,
        "tag_name_taken",
    )
    .await;
    assert_eq!(problem_fields(&p), ["name"]);
    let p = expect_problem(
        app.patch_as(
            &agent,
            &format!("/api/v1/tags/{}", id(&lead)),
            &json!({"name": "Vip"}),
        )
        .await,
        StatusCode::CONFLICT,
        "tag_name_taken",
    )
    .await;
    assert_eq!(problem_fields(&p), ["name"]);
    for color in ["red", "#12345", "#1234567", "#12345g", "ff8800"] {
        let p = expect_problem(
            app.post_as(
                &agent,
                "/api/v1/tags",
                &json!({"name": "Other", "color": color}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&p), ["color"], "{color}");
    }
    let p = expect_problem(
        app.post_as(
            &agent,
            "/api/v1/tags",
            &json!({"name": "", "color": "#000"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["name", "color"]);
    let renamed = expect_json(
        app.patch_as(
            &agent,
            &format!("/api/v1/tags/{}", id(&lead)),
            &json!({"name": "Hot lead", "color": "#ABCDEF"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["name"], "Hot lead");
    assert_eq!(renamed["color"], "#abcdef");
    let list = expect_json(app.get_as(&agent, "/api/v1/tags").await, StatusCode::OK).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Hot lead", "VIP"]);

    // Groups.
    let news = post_ok(
        &app,
        &agent,
        "/api/v1/groups",
        json!({"name": "Newsletter", "description": "Monthly news"}),
    )
    .await;
    assert_eq!(news["member_count"], 0);
    assert_eq!(news["description"], "Monthly news");
    let p = expect_problem(
        app.post_as(&agent, "/api/v1/groups", &json!({"name": "NEWSLETTER"}))
            .await,
        StatusCode::CONFLICT,
        "group_name_taken",
    )
    .await;
    assert_eq!(problem_fields(&p), ["name"]);
    let p = expect_problem(
        app.post_as(
            &agent,
            "/api/v1/groups",
            &json!({"name": "x", "description": "d".repeat(1001)}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["description"]);
    let gid = id(&news);
    let patched = expect_json(
        app.patch_as(
            &agent,
            &format!("/api/v1/groups/{gid}"),
            &json!({"description": null}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["name"], "Newsletter");
    assert_eq!(patched["description"], Value::Null);

    // A tagged, grouped contact loses the tag and group when they are deleted.
    let c = create(&app, &agent, json!({"name": "Ana"})).await;
    let cid = id(&c);
    assert_eq!(c["tags"], json!([]));
    assert_eq!(c["groups"], json!([]));
    bulk(
        &app,
        &agent,
        json!({"action": "add_tags", "contact_ids": [cid], "tag_ids": [id(&vip), id(&lead)]}),
    )
    .await;
    bulk(
        &app,
        &agent,
        json!({"action": "add_to_groups", "contact_ids": [cid], "group_ids": [gid]}),
    )
    .await;
    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        got["tags"],
        json!([
            {"id": id(&lead), "name": "Hot lead", "color": "#abcdef"},
            {"id": id(&vip), "name": "VIP", "color": "#ff8800"},
        ])
    );
    assert_eq!(got["groups"], json!([{"id": gid, "name": "Newsletter"}]));
    let g = expect_json(
        app.get_as(&agent, &format!("/api/v1/groups/{gid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(g["member_count"], 1);
    // Renaming a tag shows on the (cached) contact.
    expect_json(
        app.patch_as(
            &agent,
            &format!("/api/v1/tags/{}", id(&vip)),
            &json!({"name": "Gold"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["tags"][0]["name"], "Gold");
    for path in [
        format!("/api/v1/tags/{}", id(&vip)),
        format!("/api/v1/groups/{gid}"),
    ] {
        let res = app.delete_as(&agent, &path).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{path}");
        let res = app.delete_as(&agent, &path).await;
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    expect_problem(
        app.get_as(&agent, &format!("/api/v1/groups/{gid}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        got["tags"],
        json!([{"id": id(&lead), "name": "Hot lead", "color": "#abcdef"}])
    );
    assert_eq!(got["groups"], json!([]));
    // The name is free again.
    post_ok(
        &app,
        &agent,
        "/api/v1/groups",
        json!({"name": "Newsletter"}),
    )
    .await;
}

async fn bulk_membership_drives_the_tag_and_group_filters(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let agent = app.add_member(&owner, "agent@acme.example", "agent").await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let name = if i % 2 == 0 { "Even" } else { "Odd" };
        let c = create(&app, &agent, json!({"name": format!("{name} {i:02}")})).await;
        ids.push(id(&c));
    }
    let t = id(&post_ok(
        &app,
        &agent,
        "/api/v1/tags",
        json!({"name": "VIP", "color": "#ff0000"}),
    )
    .await);
    let g = id(&post_ok(&app, &agent, "/api/v1/groups", json!({"name": "Promo"})).await);
    let mut sub = app.state.bus.subscribe("wamage.contact.*");

    // Tag the first 40 (in two overlapping requests: only new links count).
    let n = bulk(
        &app,
        &agent,
        json!({"action": "add_tags", "contact_ids": ids[..30], "tag_ids": [t]}),
    )
    .await;
    assert_eq!(n, 30);
    let e = next_event(&mut sub).await;
    assert_eq!(e.type_, "wamage.contact.updated");
    assert_eq!(e.data.value()["changed"], json!(["tags"]));
    assert_eq!(e.data.value()["contact"]["tags"][0]["id"], t.as_str());
    let n = bulk(
        &app,
        &agent,
        json!({"action": "add_tags", "contact_ids": ids[20..40], "tag_ids": [t, t]}),
    )
    .await;
    assert_eq!(n, 10);
    // Group 30..60, then take 50..60 out again.
    let n = bulk(
        &app,
        &agent,
        json!({"action": "add_to_groups", "contact_ids": ids[30..], "group_ids": [g]}),
    )
    .await;
    assert_eq!(n, 30);
    let n = bulk(
        &app,
        &agent,
        json!({"action": "remove_from_groups", "contact_ids": ids[50..], "group_ids": [g]}),
    )
    .await;
    assert_eq!(n, 10);
    let n = bulk(
        &app,
        &agent,
        json!({"action": "remove_tags", "contact_ids": [ids[0], ids[1], ids[59]], "tag_ids": [t]}),
    )
    .await;
    assert_eq!(n, 2, "contact 59 had no tag");

    // Other tags and groups on other contacts do not leak into the filters.
    let other_t = id(&post_ok(
        &app,
        &agent,
        "/api/v1/tags",
        json!({"name": "Other", "color": "#00ff00"}),
    )
    .await);
    let other_g = id(&post_ok(&app, &agent, "/api/v1/groups", json!({"name": "Other"})).await);
    bulk(
        &app,
        &agent,
        json!({"action": "add_tags", "contact_ids": ids[40..50], "tag_ids": [other_t]}),
    )
    .await;
    bulk(
        &app,
        &agent,
        json!({"action": "add_to_groups", "contact_ids": ids[..10], "group_ids": [other_g]}),
    )
    .await;
    let set = |items: &[Value]| items.iter().map(id).collect::<HashSet<String>>();
    let expect = |r: std::ops::Range<usize>| ids[r].iter().cloned().collect::<HashSet<String>>();
    // Filters page like any list: 38 tagged over two pages of 25.
    let tagged = walk(&app, &agent, &format!("tag={t}&sort=-created_at")).await;
    assert_eq!(tagged.len(), 38);
    assert_eq!(set(&tagged), expect(2..40));
    assert_eq!(
        set(&walk(&app, &agent, &format!("tag={other_t}")).await),
        expect(40..50)
    );
    assert_eq!(
        set(&walk(&app, &agent, &format!("group={other_g}")).await),
        expect(0..10)
    );
    let grouped = walk(&app, &agent, &format!("group={g}&sort=name")).await;
    assert_eq!(set(&grouped), expect(30..50));
    let both = walk(&app, &agent, &format!("tag={t}&group={g}")).await;
    assert_eq!(set(&both), expect(30..40));
    let even_tagged = walk(&app, &agent, &format!("tag={t}&q=even")).await;
    let want: HashSet<String> = (2..40).step_by(2).map(|i| ids[i].clone()).collect();
    assert_eq!(set(&even_tagged), want);
    assert!(even_tagged.iter().all(|c| c["tags"][0]["name"] == "VIP"));
    let g_out = expect_json(
        app.get_as(&agent, &format!("/api/v1/groups/{g}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(g_out["member_count"], 20);
    let groups = expect_json(app.get_as(&agent, "/api/v1/groups").await, StatusCode::OK).await;
    let counts: Vec<(&str, i64)> = groups["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap(),
                g["member_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [("Other", 10), ("Promo", 20)]);

    // Deleting in bulk needs an admin; the members of the filter go with their contacts.
    let del = json!({"action": "delete", "contact_ids": ids[30..35]});
    expect_problem(
        app.post_as(&agent, "/api/v1/contacts/bulk", &del).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_eq!(bulk(&app, &owner, del).await, 5);
    let both = walk(&app, &agent, &format!("tag={t}&group={g}")).await;
    assert_eq!(set(&both), expect(35..40));
    expect_problem(
        app.get_as(&agent, &format!("/api/v1/contacts/{}", ids[30]))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn bulk_with_a_foreign_or_bad_id_writes_nothing(app: TestApp) {
    let b_owner = app.register("owner@b.example", "Org B").await;
    let b_contact = id(&create(&app, &b_owner, json!({"name": "B"})).await);
    let b_tag = id(&post_ok(
        &app,
        &b_owner,
        "/api/v1/tags",
        json!({"name": "B tag", "color": "#000000"}),
    )
    .await);
    let b_group = id(&post_ok(&app, &b_owner, "/api/v1/groups", json!({"name": "B group"})).await);

    let owner = app.register("owner@acme.example", "Acme").await;
    let a1 = id(&create(&app, &owner, json!({"name": "A1"})).await);
    let a2 = id(&create(&app, &owner, json!({"name": "A2"})).await);
    let t = id(&post_ok(
        &app,
        &owner,
        "/api/v1/tags",
        json!({"name": "VIP", "color": "#ff0000"}),
    )
    .await);
    let g = id(&post_ok(&app, &owner, "/api/v1/groups", json!({"name": "Promo"})).await);
    for body in [
        json!({"action": "add_tags", "contact_ids": [a1, b_contact, a2], "tag_ids": [t]}),
        json!({"action": "add_tags", "contact_ids": [a1, a2], "tag_ids": [t, b_tag]}),
        json!({"action": "add_to_groups", "contact_ids": [a1, a2], "group_ids": [g, b_group]}),
        json!({"action": "add_to_groups", "contact_ids": [a1, b_contact], "group_ids": [g]}),
        json!({"action": "delete", "contact_ids": [a1, a2, b_contact]}),
    ] {
        expect_problem(
            app.post_as(&owner, "/api/v1/contacts/bulk", &body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    for who in [&a1, &a2] {
        let c = expect_json(
            app.get_as(&owner, &format!("/api/v1/contacts/{who}")).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(c["tags"], json!([]));
        assert_eq!(c["groups"], json!([]));
    }
    assert!(walk(&app, &owner, &format!("tag={t}")).await.is_empty());
    assert!(walk(&app, &owner, &format!("group={g}")).await.is_empty());
    let b = expect_json(
        app.get_as(&b_owner, &format!("/api/v1/contacts/{b_contact}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(b["name"], "B");

    let too_many: Vec<String> = (0..1001).map(|_| a1.clone()).collect();
    let distinct: Vec<String> = (0..1001)
        .map(|i| format!("0190f5a2-0000-7000-8000-{i:012}"))
        .collect();
    for (body, fields) in [
        (
            json!({"action": "add_tags", "contact_ids": [], "tag_ids": [t]}),
            vec!["contact_ids"],
        ),
        (
            json!({"action": "add_tags", "contact_ids": distinct, "tag_ids": [t]}),
            vec!["contact_ids"],
        ),
        (
            json!({"action": "add_tags", "contact_ids": [a1]}),
            vec!["tag_ids"],
        ),
        (
            json!({"action": "add_tags", "contact_ids": [a1], "tag_ids": []}),
            vec!["tag_ids"],
        ),
        (
            json!({"action": "remove_from_groups", "contact_ids": [a1], "tag_ids": [t]}),
            vec!["tag_ids", "group_ids"],
        ),
        (
            json!({"action": "delete", "contact_ids": [a1], "group_ids": [g]}),
            vec!["group_ids"],
        ),
        (
            json!({"action": "explode", "contact_ids": [a1]}),
            vec!["action"],
        ),
    ] {
        let p = expect_problem(
            app.post_as(&owner, "/api/v1/contacts/bulk", &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&p), fields, "{body}");
    }
    // Repeats of one id count once.
    let n = bulk(
        &app,
        &owner,
        json!({"action": "add_tags", "contact_ids": too_many, "tag_ids": [t]}),
    )
    .await;
    assert_eq!(n, 1);
}

async fn may_send(
    app: &TestApp,
    org: &str,
    contact: &str,
    channel: ConsentChannel,
    purpose: ConsentPurpose,
) -> SendPermission {
    app.state
        .contacts
        .may_send(
            org.parse().unwrap(),
            contact.parse().unwrap(),
            channel,
            purpose,
        )
        .await
        .unwrap()
}

async fn consent_ledger_keeps_history_and_answers_may_send(app: TestApp) {
    use ConsentChannel::{Email, Whatsapp};
    use ConsentPurpose::{Marketing, Utility};
    let denied = |reason| SendPermission::Denied { reason };
    let owner = app.register("owner@acme.example", "Acme").await;
    let agent = app.add_member(&owner, "agent@acme.example", "agent").await;
    let created = expect_json(
        app.post_as(
            &owner,
            "/api/v1/api-keys",
            &json!({"name": "CRM", "role": "agent"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let api = TestUser {
        access_token: created["key"].as_str().unwrap().to_owned(),
        email: owner.email.clone(),
        password: owner.password.clone(),
        refresh_token: owner.refresh_token.clone(),
        user_id: owner.user_id.clone(),
        org_id: owner.org_id.clone(),
        role: "agent".to_owned(),
    };
    let c = create(&app, &agent, json!({"name": "Ana"})).await;
    let cid = id(&c);
    let path = format!("/api/v1/contacts/{cid}/consent");
    let org = owner.org_id.clone();
    let ledger = expect_json(app.get_as(&agent, &path).await, StatusCode::OK).await;
    assert_eq!(ledger, json!({"current": [], "history": []}));
    // No entries: utility goes, marketing does not.
    assert_eq!(
        may_send(&app, &org, &cid, Whatsapp, Utility).await,
        SendPermission::Allowed
    );
    assert_eq!(
        may_send(&app, &org, &cid, Whatsapp, Marketing).await,
        denied(DenyReason::NoOptIn)
    );

    let mut sub = app.state.bus.subscribe("wamage.consent.*");
    let first = post_ok(
        &app,
        &agent,
        &path,
        json!({"channel": "whatsapp", "purpose": "marketing", "status": "opted_in",
               "source": "form", "note": "  signed up at the till "}),
    )
    .await;
    assert_eq!(first["source"], "form");
    assert_eq!(first["note"], "signed up at the till");
    assert_eq!(first["recorded_by"], agent.user_id.as_str());
    let e = next_event(&mut sub).await;
    assert_eq!(e.type_, "wamage.consent.changed");
    assert_eq!(
        e.data.value(),
        json!({"contact_id": cid, "channel": "whatsapp", "purpose": "marketing",
               "status": "opted_in", "source": "form"})
    );
    assert!(
        may_send(&app, &org, &cid, Whatsapp, Marketing)
            .await
            .is_allowed()
    );

    app.clock.advance(Duration::from_secs(60));
    // Without a source: `agent` for a member, `api` for an API key.
    let second = post_ok(
        &app,
        &agent,
        &path,
        json!({"channel": "whatsapp", "purpose": "marketing", "status": "opted_out"}),
    )
    .await;
    assert_eq!(second["source"], "agent");
    let third = post_ok(
        &app,
        &api,
        &path,
        json!({"channel": "email", "purpose": "utility", "status": "opted_out"}),
    )
    .await;
    assert_eq!(third["source"], "api");
    assert_eq!(third["recorded_by"], Value::Null);
    assert_eq!(
        next_event(&mut sub).await.data.value()["status"],
        "opted_out"
    );

    let ledger = expect_json(app.get_as(&agent, &path).await, StatusCode::OK).await;
    assert_eq!(
        ledger["current"],
        json!([
            {"channel": "whatsapp", "purpose": "marketing", "status": "opted_out",
             "source": "agent", "at": second["at"]},
            {"channel": "email", "purpose": "utility", "status": "opted_out",
             "source": "api", "at": third["at"]},
        ])
    );
    let history: Vec<String> = ledger["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(history, [id(&third), id(&second), id(&first)]);
    assert_eq!(ledger["history"][2], first);

    // Opt-in then opt-out denies marketing; the opt-out only covers its channel and purpose.
    assert_eq!(
        may_send(&app, &org, &cid, Whatsapp, Marketing).await,
        denied(DenyReason::OptedOut)
    );
    assert_eq!(
        may_send(&app, &org, &cid, Whatsapp, Utility).await,
        SendPermission::Allowed
    );
    assert_eq!(
        may_send(&app, &org, &cid, Email, Utility).await,
        denied(DenyReason::OptedOut)
    );
    assert_eq!(
        may_send(&app, &org, &cid, Email, Marketing).await,
        denied(DenyReason::NoOptIn)
    );
    // A later opt-in stands again (in the same millisecond too).
    post_ok(
        &app,
        &agent,
        &path,
        json!({"channel": "whatsapp", "purpose": "marketing", "status": "opted_in", "source": "keyword"}),
    )
    .await;
    assert!(
        may_send(&app, &org, &cid, Whatsapp, Marketing)
            .await
            .is_allowed()
    );
    // Blocked contacts get nothing.
    expect_json(
        app.patch_as(
            &agent,
            &format!("/api/v1/contacts/{cid}"),
            &json!({"blocked": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    for (ch, p) in [(Whatsapp, Marketing), (Whatsapp, Utility)] {
        assert_eq!(
            may_send(&app, &org, &cid, ch, p).await,
            denied(DenyReason::ContactBlocked)
        );
    }

    for (body, field) in [
        (
            json!({"channel": "fax", "purpose": "utility", "status": "opted_in"}),
            "channel",
        ),
        (
            json!({"channel": "sms", "purpose": "spam", "status": "opted_in"}),
            "purpose",
        ),
        (
            json!({"channel": "sms", "purpose": "utility", "status": "maybe"}),
            "status",
        ),
        (
            json!({"channel": "sms", "purpose": "utility", "status": "opted_in", "source": "rumour"}),
            "source",
        ),
        (
            json!({"channel": "sms", "purpose": "utility", "status": "opted_in", "note": "n".repeat(1001)}),
            "note",
        ),
    ] {
        let p = expect_problem(
            app.post_as(&agent, &path, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(problem_fields(&p), [field], "{body}");
    }
    let ledger = expect_json(app.get_as(&agent, &path).await, StatusCode::OK).await;
    assert_eq!(
        ledger["history"].as_array().unwrap().len(),
        4,
        "refused entries are not written"
    );

    // Another organisation's contact is not there to ask about.
    let b_owner = app.register("owner@b.example", "Org B").await;
    let err = app
        .state
        .contacts
        .may_send(
            b_owner.org_id.parse().unwrap(),
            cid.parse().unwrap(),
            Whatsapp,
            Utility,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, "not_found");
}

async fn merge_moves_everything_to_the_survivor_and_is_recorded(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let agent = app.add_member(&owner, "agent@acme.example", "agent").await;
    for key in ["city", "tier"] {
        define(
            &app,
            &owner,
            json!({"key": key, "label": key, "type": "text"}),
        )
        .await;
    }
    let t1 = id(&post_ok(
        &app,
        &agent,
        "/api/v1/tags",
        json!({"name": "A", "color": "#000001"}),
    )
    .await);
    let t2 = id(&post_ok(
        &app,
        &agent,
        "/api/v1/tags",
        json!({"name": "B", "color": "#000002"}),
    )
    .await);
    let g1 = id(&post_ok(&app, &agent, "/api/v1/groups", json!({"name": "G1"})).await);
    let g2 = id(&post_ok(&app, &agent, "/api/v1/groups", json!({"name": "G2"})).await);
    let keep = create(
        &app,
        &agent,
        json!({"name": "Ana", "language": "pt-BR", "attributes": {"city": "Lisbon"},
               "identities": [{"kind": "phone", "value": "+14155552671"}]}),
    )
    .await;
    let dup = create(
        &app,
        &agent,
        json!({"name": "Ana Lima", "company": "Lima Foods", "language": "en", "notes": "VIP",
               "blocked": true, "attributes": {"city": "Porto", "tier": "gold"},
               "identities": [{"kind": "email", "value": "ana@lima.example"}]}),
    )
    .await;
    let (k, d) = (id(&keep), id(&dup));
    bulk(
        &app,
        &agent,
        json!({"action": "add_tags", "contact_ids": [k], "tag_ids": [t1]}),
    )
    .await;
    bulk(
        &app,
        &agent,
        json!({"action": "add_tags", "contact_ids": [d], "tag_ids": [t1, t2]}),
    )
    .await;
    bulk(
        &app,
        &agent,
        json!({"action": "add_to_groups", "contact_ids": [k], "group_ids": [g1]}),
    )
    .await;
    bulk(
        &app,
        &agent,
        json!({"action": "add_to_groups", "contact_ids": [d], "group_ids": [g2]}),
    )
    .await;
    let consent = |who: &str| format!("/api/v1/contacts/{who}/consent");
    let c1 = post_ok(
        &app,
        &agent,
        &consent(&d),
        json!({"channel": "email", "purpose": "marketing", "status": "opted_in"}),
    )
    .await;
    let c2 = post_ok(
        &app,
        &agent,
        &consent(&k),
        json!({"channel": "sms", "purpose": "utility", "status": "opted_out"}),
    )
    .await;
    let c3 = post_ok(
        &app,
        &agent,
        &consent(&d),
        json!({"channel": "email", "purpose": "marketing", "status": "opted_out"}),
    )
    .await;
    // Warm the survivor's cache entry: the merge must drop it.
    expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{k}")).await,
        StatusCode::OK,
    )
    .await;

    let merge = format!("/api/v1/contacts/{k}/merge");
    expect_problem(
        app.post_as(&agent, &merge, &json!({"other_id": d})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let p = expect_problem(
        app.post_as(&owner, &merge, &json!({"other_id": k})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["other_id"]);
    expect_problem(
        app.post_as(
            &owner,
            &merge,
            &json!({"other_id": "0190f5a2-0000-7000-8000-000000000000"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let mut sub = app.state.bus.subscribe("wamage.contact.merged");
    let merged = expect_json(
        app.post_as(&owner, &merge, &json!({"other_id": d})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(merged["id"], k.as_str());
    assert_eq!(merged["name"], "Ana", "the survivor keeps its own values");
    assert_eq!(merged["language"], "pt-BR");
    assert_eq!(merged["company"], "Lima Foods", "empty fields are filled");
    assert_eq!(merged["notes"], "VIP");
    assert_eq!(merged["blocked"], true, "a block survives a merge");
    assert_eq!(
        merged["attributes"],
        json!({"city": "Lisbon", "tier": "gold"})
    );
    let idents: Vec<&str> = merged["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(idents, ["+14155552671", "ana@lima.example"]);
    let tag_ids: Vec<String> = merged["tags"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(tag_ids, [t1.clone(), t2.clone()]);
    let group_ids: Vec<String> = merged["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(group_ids, [g1.clone(), g2.clone()]);
    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{k}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, merged);
    expect_problem(
        app.get_as(&agent, &format!("/api/v1/contacts/{d}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let e = next_event(&mut sub).await;
    assert_eq!(e.type_, "wamage.contact.merged");
    assert_eq!(e.data.value()["survivor"], k.as_str());
    assert_eq!(e.data.value()["merged_id"], d.as_str());

    // The consent history moved, in the order it was recorded.
    let ledger = expect_json(app.get_as(&agent, &consent(&k)).await, StatusCode::OK).await;
    let history: Vec<String> = ledger["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(history, [id(&c3), id(&c2), id(&c1)]);
    assert!(
        may_send(
            &app,
            &owner.org_id,
            &k,
            ConsentChannel::Email,
            ConsentPurpose::Marketing
        )
        .await
            != SendPermission::Allowed
    );
    // Lists, filters and search know only the survivor.
    let only = |items: Vec<Value>| items.iter().map(id).collect::<Vec<_>>();
    assert_eq!(
        only(walk(&app, &agent, &format!("tag={t2}")).await),
        [k.as_str()]
    );
    assert_eq!(
        only(walk(&app, &agent, &format!("group={g2}")).await),
        [k.as_str()]
    );
    assert_eq!(search_ids(&app, &agent, "ana@lima").await, [k.as_str()]);
    assert_eq!(search_ids(&app, &agent, "lima").await, [k.as_str()]);
    let g = expect_json(
        app.get_as(&agent, &format!("/api/v1/groups/{g2}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(g["member_count"], 1);
    // The e-mail is the survivor's now, so it cannot be given to anyone else.
    expect_problem(
        app.post_as(
            &agent,
            "/api/v1/contacts",
            &json!({"name": "X", "identities": [{"kind": "email", "value": "ana@lima.example"}]}),
        )
        .await,
        StatusCode::CONFLICT,
        "identity_taken",
    )
    .await;

    // The merge is recorded with who did it and the merged contact as it was.
    let (survivor, merged_id): (wamage_contacts::ContactId, wamage_contacts::ContactId) =
        (k.parse().unwrap(), d.parse().unwrap());
    let rows: Vec<(sqlx::types::Json<Value>, Option<wamage_kernel::UserId>)> =
        wamage_platform::with_db!(&app.state.db, |p| sqlx::query_as(
            "SELECT snapshot, merged_by FROM contact_merges WHERE survivor_id = $1 AND merged_id = $2"
        )
        .bind(survivor)
        .bind(merged_id)
        .fetch_all(p)
        .await)
        .unwrap();
    assert_eq!(rows.len(), 1);
    let (snapshot, by) = &rows[0];
    assert_eq!(by.unwrap().to_string(), owner.user_id);
    assert_eq!(snapshot.0["id"], d.as_str());
    assert_eq!(snapshot.0["name"], "Ana Lima");
    assert_eq!(snapshot.0["identities"][0]["value"], "ana@lima.example");
    assert_eq!(snapshot.0["tags"].as_array().unwrap().len(), 2);

    // Another organisation's contact cannot be merged in; nothing changes.
    let b_owner = app.register("owner@b.example", "Org B").await;
    let b = id(&create(&app, &b_owner, json!({"name": "B"})).await);
    expect_problem(
        app.post_as(&owner, &merge, &json!({"other_id": b})).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_json(
        app.get_as(&b_owner, &format!("/api/v1/contacts/{b}")).await,
        StatusCode::OK,
    )
    .await;
}

async fn other_organisations_cannot_reach_contacts(app: TestApp) {
    let b_owner = app.register("owner@b.example", "Org B").await;
    define(
        &app,
        &b_owner,
        json!({"key": "city", "label": "City", "type": "text"}),
    )
    .await;
    define(
        &app,
        &b_owner,
        json!({"key": "tier", "label": "Tier", "type": "text"}),
    )
    .await;
    let c = create(
        &app,
        &b_owner,
        json!({"name": "B customer", "attributes": {"city": "Bergen"},
               "identities": [{"kind": "email", "value": "cust@b.example"}]}),
    )
    .await;
    let cid = id(&c);
    let iid = c["identities"][0]["id"].as_str().unwrap().to_owned();

    let doomed = id(&create(&app, &b_owner, json!({"name": "B doomed"})).await);
    let dupe = id(&create(&app, &b_owner, json!({"name": "B dupe"})).await);
    let tag = id(&post_ok(
        &app,
        &b_owner,
        "/api/v1/tags",
        json!({"name": "VIP", "color": "#ff0000"}),
    )
    .await);
    let group = id(&post_ok(&app, &b_owner, "/api/v1/groups", json!({"name": "Promo"})).await);

    let a_owner = app.register("owner@a.example", "Org A").await;
    // A photo upload is multipart, which a probe cannot send: checked by hand, the same way.
    let c = expect_json(
        put_avatar(&app, &b_owner, &cid, png(8), "image/png").await,
        StatusCode::OK,
    )
    .await;
    let photo = c["avatar_url"].as_str().unwrap().to_owned();
    expect_problem(
        put_avatar(&app, &a_owner, &cid, png(9), "image/png").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let (status, _, bytes) = fetch_photo(&app, &photo).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, png(8), "the intruder replaced nothing");
    let got = expect_json(
        app.get_as(&b_owner, &format!("/api/v1/contacts/{cid}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["avatar_url"], photo.as_str());
    assert_isolated(
        &app,
        &b_owner,
        &a_owner,
        &[
            Probe::get(format!("/api/v1/contacts/{cid}")),
            Probe::patch(format!("/api/v1/contacts/{cid}"), json!({"favorite": true})),
            Probe::post(
                format!("/api/v1/contacts/{cid}/identities"),
                json!({"kind": "telegram", "value": "777"}),
            ),
            Probe::delete(format!("/api/v1/contacts/{cid}/identities/{iid}")),
            Probe::delete(format!("/api/v1/contacts/{cid}/avatar")),
            Probe::get(format!("/api/v1/contacts/{cid}/consent")),
            Probe::post(
                format!("/api/v1/contacts/{cid}/consent"),
                json!({"channel": "sms", "purpose": "marketing", "status": "opted_in"}),
            ),
            Probe::patch(
                "/api/v1/contact-attributes/city".to_owned(),
                json!({"label": "Town"}),
            ),
            Probe::delete("/api/v1/contact-attributes/tier".to_owned()),
            Probe::patch(format!("/api/v1/tags/{tag}"), json!({"color": "#00ff00"})),
            Probe::get(format!("/api/v1/groups/{group}")),
            Probe::patch(
                format!("/api/v1/groups/{group}"),
                json!({"description": "x"}),
            ),
            Probe::post(
                "/api/v1/contacts/bulk".to_owned(),
                json!({"action": "add_tags", "contact_ids": [cid], "tag_ids": [tag]}),
            ),
            Probe::post(
                "/api/v1/contacts/bulk".to_owned(),
                json!({"action": "add_to_groups", "contact_ids": [cid], "group_ids": [group]}),
            ),
            Probe::delete(format!("/api/v1/tags/{tag}")),
            Probe::delete(format!("/api/v1/groups/{group}")),
            Probe::post(
                "/api/v1/contacts/bulk".to_owned(),
                json!({"action": "delete", "contact_ids": [doomed]}),
            ),
            Probe::post(
                format!("/api/v1/contacts/{cid}/merge"),
                json!({"other_id": dupe}),
            ),
            Probe::delete(format!("/api/v1/contacts/{cid}")),
        ],
    )
    .await;
    // Lists and searches never show the other organisation's rows.
    let c2 = create(
        &app,
        &b_owner,
        json!({"name": "B second", "identities": [{"kind": "telegram", "value": "555"}]}),
    )
    .await;
    for path in [
        "/api/v1/contacts",
        "/api/v1/contacts?q=b",
        "/api/v1/contacts?q=555",
        "/api/v1/contact-attributes",
        "/api/v1/tags",
        "/api/v1/groups",
    ] {
        let body = expect_json(app.get_as(&a_owner, path).await, StatusCode::OK).await;
        assert_eq!(body["items"], json!([]), "{path}: {body}");
    }
    let body = expect_json(
        app.get_as(&b_owner, "/api/v1/contacts?q=555").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(body["items"][0]["id"], id(&c2).as_str());
    // Settings are per organisation.
    let res = app
        .request_as(&a_owner, Method::PUT, "/api/v1/contact-settings")
        .json(&json!({"default_country": "BR"}))
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::OK).await;
    let b_settings = expect_json(
        app.get_as(&b_owner, "/api/v1/contact-settings").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(b_settings["default_country"], "US");
}

async fn export_csv(app: &TestApp, who: &TestUser, query: &str) -> (String, String) {
    let res = app
        .get_as(who, &format!("/api/v1/contacts/export.csv{query}"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    (disposition, res.text().await.unwrap())
}

async fn export_is_the_filtered_view_with_formulas_neutralised(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    define(
        &app,
        &owner,
        json!({"key": "city", "label": "City", "type": "text"}),
    )
    .await;
    let evil = create(
        &app,
        &owner,
        json!({
            "name": "=cmd|' /C calc'!A0",
            "company": "@SUM(A1), \"Inc\"",
            "attributes": {"city": "-2+3"},
            "identities": [
                {"kind": "phone", "value": "+14155552671"},
                {"kind": "email", "value": "evil@example.com"}
            ]
        }),
    )
    .await;
    let plain = create(
        &app,
        &owner,
        json!({"name": "Bruno", "attributes": {"city": "Porto"}}),
    )
    .await;
    create(&app, &owner, json!({"name": "Carla"})).await;
    let tag = post_ok(
        &app,
        &owner,
        "/api/v1/tags",
        json!({"name": "vip", "color": "#ff0000"}),
    )
    .await;
    bulk(
        &app,
        &owner,
        json!({"action": "add_tags", "contact_ids": [id(&evil), id(&plain)], "tag_ids": [id(&tag)]}),
    )
    .await;

    let (disposition, body) = export_csv(&app, &owner, &format!("?tag={}", id(&tag))).await;
    assert!(
        disposition.starts_with("attachment; filename=\"contacts-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "id,name,company,language,time_zone,phones,emails,tags,groups,city,created_at"
    );
    // Two tagged contacts, by name: "=cmd…" sorts before "bruno"; Carla is filtered out.
    assert_eq!(lines.len(), 3, "{body}");
    assert!(!body.contains("Carla"));
    let evil_line = lines[1];
    assert!(
        evil_line.starts_with(&format!(
            "{},'=cmd|' /C calc'!A0,\"'@SUM(A1), \"\"Inc\"\"\",,,+14155552671,evil@example.com,vip,,'-2+3,",
            id(&evil)
        )),
        "{evil_line}"
    );
    assert!(lines[2].starts_with(&format!("{},Bruno,,,,,,vip,,Porto,", id(&plain))));

    // Other filters apply too; an empty view is just the header.
    let (_, body) = export_csv(&app, &owner, "?q=bru").await;
    assert_eq!(body.lines().count(), 2, "{body}");
    let (_, body) = export_csv(&app, &owner, "?favorite=true").await;
    assert_eq!(body.lines().count(), 1, "{body}");
    // Another organisation exports nothing of ours.
    let other = app.register("owner@other.example", "Other").await;
    let (_, body) = export_csv(&app, &other, "").await;
    assert_eq!(
        body,
        "id,name,company,language,time_zone,phones,emails,tags,groups,created_at\r\n"
    );
}

/// Uploads a CSV; returns the response.
async fn upload(
    app: &TestApp,
    who: &TestUser,
    csv: Vec<u8>,
    mapping: Value,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv)
                .file_name("people.csv")
                .mime_str("text/csv")
                .unwrap(),
        )
        .text("mapping", mapping.to_string());
    for (k, v) in fields {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    app.request_as(who, Method::POST, "/api/v1/imports")
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads, runs the jobs and returns the finished import.
async fn import_all(
    app: &TestApp,
    who: &TestUser,
    csv: String,
    mapping: Value,
    fields: &[(&str, &str)],
) -> Value {
    let imp = expect_json(
        upload(app, who, csv.into_bytes(), mapping, fields).await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(imp["status"], "queued");
    assert_eq!(imp["rows_done"], 0);
    let path = format!("/api/v1/imports/{}", id(&imp));
    let mut last_done = 0;
    for _ in 0..20 {
        app.run_jobs().await;
        let now = expect_json(app.get_as(who, &path).await, StatusCode::OK).await;
        let done = now["rows_done"].as_i64().unwrap();
        assert!(done >= last_done, "progress never goes back: {now}");
        last_done = done;
        if now["status"] == "completed" || now["status"] == "failed" {
            return now;
        }
    }
    panic!("the import did not finish");
}

async fn get_text(app: &TestApp, who: &TestUser, path: &str) -> String {
    let res = app.get_as(who, path).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

/// An import's error report (CSV text).
async fn error_report(app: &TestApp, who: &TestUser, import: &Value) -> String {
    get_text(
        app,
        who,
        &format!("/api/v1/imports/{}/errors.csv", id(import)),
    )
    .await
}

/// How many contacts a group has, as the API says.
async fn member_count(app: &TestApp, who: &TestUser, group: &Value) -> Value {
    let g = expect_json(
        app.get_as(who, &format!("/api/v1/groups/{}", id(group)))
            .await,
        StatusCode::OK,
    )
    .await;
    g["member_count"].clone()
}

fn pt_phone(i: usize) -> String {
    format!("+351 912 {i:06}")
}

async fn a_thousand_rows_with_ten_bad_ones_import_990(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    define(
        &app,
        &owner,
        json!({"key": "score", "label": "Score", "type": "number"}),
    )
    .await;
    let group = post_ok(&app, &owner, "/api/v1/groups", json!({"name": "Imported"})).await;
    post_ok(
        &app,
        &owner,
        "/api/v1/tags",
        json!({"name": "lead", "color": "#00ff00"}),
    )
    .await;
    let mut csv = String::from("Name,Phone,Email,Score,Tags,Comment\n");
    // line → reason fragment, for the rows that must be rejected.
    let mut bad: Vec<(usize, &str)> = Vec::new();
    for i in 0..1000 {
        let line = i + 2;
        let row = match i {
            10 => "=HYPERLINK(\"http://evil\"),+351912000010\n".to_owned(),
            20 | 30 => format!("Ragged {i},{},x@y.example,1,lead,c,extra\n", pt_phone(i)),
            40 | 50 | 60 => format!("Bad phone {i},12,,1,lead,c\n"),
            70 | 80 => format!("Bad score {i},{},,lots,lead,c\n", pt_phone(i)),
            // Rows 90 and 95 repeat the phones of rows 1 and 2.
            90 | 95 => format!("Dupe {i},{},,1,lead,c\n", pt_phone(i / 45 - 1)),
            _ => format!(
                "Person {i},{},p{i}@example.com,{i},lead,\"note, with comma\"\n",
                pt_phone(i)
            ),
        };
        match i {
            10 | 20 | 30 => bad.push((line, "columns")),
            // The reason names the column and the value (quotes doubled by CSV).
            40 | 50 | 60 => bad.push((line, "Phone: phone \"\"12\"\"")),
            70 | 80 => bad.push((line, "attributes.score")),
            90 | 95 => bad.push((line, "duplicate of line")),
            _ => {}
        }
        csv.push_str(&row);
    }
    let imp = expect_json(
        upload(
            &app,
            &owner,
            csv.into_bytes(),
            json!({"Name": "name", "Phone": "phone", "Email": "email", "Score": "attr:score",
                   "Tags": "tag", "Comment": "ignore"}),
            &[("dedupe", "phone"), ("group_id", &id(&group))],
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let path = format!("/api/v1/imports/{}", id(&imp));
    // Run the first batch by hand, as a worker would: progress shows between batches.
    let batch = |from_byte: u64| wamage_platform::jobs::JobContext {
        id: wamage_platform::jobs::JobId::new(),
        kind: wamage_contacts::IMPORT_JOB.to_owned(),
        org_id: Some(owner.org_id.parse().unwrap()),
        payload: json!({"import_id": imp["id"], "from_byte": from_byte}),
        attempt: 1,
        max_attempts: 5,
        run_at: app.clock.now(),
        created_at: app.clock.now(),
        worker_id: "test".to_owned(),
    };
    let handler = wamage_contacts::ImportJob(app.state.contacts.clone());
    let run = |job| {
        let handler = &handler;
        async move { wamage_platform::jobs::JobHandler::run(handler, &job).await }
    };
    assert_eq!(run(batch(0)).await, wamage_platform::jobs::JobOutcome::Done);
    let mid = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
    assert_eq!(mid["status"], "running", "{mid}");
    assert_eq!(mid["rows_done"], 500, "{mid}");
    assert_eq!(
        mid["created"].as_i64().unwrap() + mid["failed"].as_i64().unwrap(),
        500
    );
    assert_eq!(
        mid["total_rows"], 1000,
        "the total is counted when the file is checked"
    );
    // The same batch again (a retried or duplicated job, a restarted worker) finds the
    // checkpoint moved on and changes nothing.
    assert_eq!(run(batch(0)).await, wamage_platform::jobs::JobOutcome::Done);
    let same = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
    assert_eq!(same, mid);
    // The queue holds the original job (now stale) and the next batch; run them.
    let mut done = Value::Null;
    for _ in 0..5 {
        app.run_jobs().await;
        done = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
        if done["status"] != "running" {
            break;
        }
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["created"], 990, "{done}");
    assert_eq!(done["failed"], 10, "{done}");
    assert_eq!(done["updated"], 0);
    assert_eq!(done["skipped"], 0);
    assert_eq!(done["rows_done"], 1000);
    assert_eq!(done["total_rows"], 1000);
    assert!(done["finished_at"].is_i64() || done["finished_at"].is_string());

    // The contacts are there, normalised, tagged, in the group, with typed attributes.
    let page = expect_json(
        app.get_as(&owner, "/api/v1/contacts?q=Person%20999").await,
        StatusCode::OK,
    )
    .await;
    let c = &page["items"][0];
    assert_eq!(c["name"], "Person 999");
    assert_eq!(c["attributes"]["score"], 999);
    let values: Vec<&str> = c["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert!(values.contains(&"+351912000999"), "{values:?}");
    assert!(values.contains(&"p999@example.com"), "{values:?}");
    assert_eq!(c["tags"][0]["name"], "lead");
    assert_eq!(c["groups"][0]["name"], "Imported");
    assert_eq!(member_count(&app, &owner, &group).await, 990);

    let report = error_report(&app, &owner, &done).await;
    let lines: Vec<&str> = report.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "line,reason,Name,Phone,Email,Score,Tags,Comment");
    assert_eq!(lines.len(), 11, "{report}");
    for ((line, why), got) in bad.iter().zip(&lines[1..]) {
        assert!(
            got.starts_with(&format!("{line},")),
            "{got} should be line {line}"
        );
        assert!(got.contains(why), "{got} should say {why}");
    }
    // The uploaded file is deleted once the import is done; the report keeps the bad rows.
    let key = format!("contact-imports/{}/{}.csv", owner.org_id, id(&done));
    assert!(app.state.blobs.get(&key).await.unwrap().is_none());
    // The formula cell of the ragged row is neutralised in the report.
    assert!(report.contains("'=HYPERLINK"), "{report}");
    assert!(!report.contains(",=HYPERLINK"), "{report}");

    // The export streams every page of the view (more than one page of 500), no row twice.
    let (_, body) = export_csv(&app, &owner, &format!("?group={}", id(&group))).await;
    let rows: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 991);
    let unique: HashSet<&str> = rows[1..].iter().map(|l| &l[..36]).collect();
    assert_eq!(unique.len(), 990);

    // The list shows it, newest first.
    let list = expect_json(app.get_as(&owner, "/api/v1/imports").await, StatusCode::OK).await;
    assert_eq!(list["items"][0]["id"], done["id"]);
    assert_eq!(list["items"][0]["file_name"], "people.csv");
}

/// With a run budget, one job run writes batch after batch (reading the next while one is
/// written). Stopped anywhere — here its task is aborted once a batch is in — a retry of the
/// same run resumes from the checkpoint: every row is decided once, duplicates are still found
/// across batches, and a stale job (one the import has moved past) does nothing.
async fn an_interrupted_run_resumes_from_its_checkpoint(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let group = post_ok(&app, &owner, "/api/v1/groups", json!({"name": "Imported"})).await;
    let mut csv = String::from("Name,Phone\n");
    for i in 0..2300 {
        match i {
            // Line 1802 repeats the phone of line 7, four batches earlier.
            1800 => csv.push_str(&format!("Again {i},{}\n", pt_phone(5))),
            2000 => csv.push_str("Bad phone,12\n"),
            _ => csv.push_str(&format!("Person {i},{}\n", pt_phone(i))),
        }
    }
    let imp = expect_json(
        upload(
            &app,
            &owner,
            csv.into_bytes(),
            json!({"Name": "name", "Phone": "phone"}),
            &[("dedupe", "phone"), ("group_id", &id(&group))],
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let path = format!("/api/v1/imports/{}", id(&imp));
    let job = |from_byte: u64, attempt: u32| wamage_platform::jobs::JobContext {
        id: wamage_platform::jobs::JobId::new(),
        kind: wamage_contacts::IMPORT_JOB.to_owned(),
        org_id: Some(owner.org_id.parse().unwrap()),
        payload: json!({"import_id": imp["id"], "from_byte": from_byte}),
        attempt,
        max_attempts: 5,
        run_at: app.clock.now(),
        created_at: app.clock.now(),
        worker_id: "test".to_owned(),
    };
    let handler = wamage_contacts::ImportJob(app.state.contacts.clone());
    let first = job(0, 1);
    let task =
        tokio::spawn(async move { wamage_platform::jobs::JobHandler::run(&handler, &first).await });
    let started = std::time::Instant::now();
    loop {
        let now = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
        if now["rows_done"].as_i64().unwrap() >= 500 || task.is_finished() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    task.abort();
    let _ = task.await;
    // A batch of the aborted run may be committing right now (its COMMIT already sent): take
    // the import's row for writing, which waits until no batch transaction holds it (SQLite:
    // the write lock), so what is read next is final.
    {
        let import_id: uuid::Uuid = id(&imp).parse().unwrap();
        let mut tx = app.state.db.begin().await.unwrap();
        wamage_platform::with_tx!(&mut tx, |c| sqlx::query(
            "UPDATE contact_imports SET status = status WHERE id = $1"
        )
        .bind(import_id)
        .execute(c)
        .await
        .map(|_| ()))
        .unwrap();
        tx.rollback().await.unwrap();
    }
    let cut = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
    assert!(cut["rows_done"].as_i64().unwrap() >= 500, "{cut}");

    // A job queued from another offset is stale: nothing changes.
    let handler = wamage_contacts::ImportJob(app.state.contacts.clone());
    let stale = wamage_platform::jobs::JobHandler::run(&handler, &job(1, 1)).await;
    assert_eq!(stale, wamage_platform::jobs::JobOutcome::Done);
    let same = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
    assert_eq!(same, cut);

    // The retry of the run (as the reaper would requeue it) finishes the import.
    let retried = wamage_platform::jobs::JobHandler::run(&handler, &job(0, 2)).await;
    assert_eq!(retried, wamage_platform::jobs::JobOutcome::Done);
    let done = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["rows_done"], 2300, "{done}");
    assert_eq!(done["created"], 2298, "{done}");
    assert_eq!(done["failed"], 2, "{done}");
    // The queued job of the upload is stale too once the import is done.
    app.run_jobs().await;
    let after = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
    assert_eq!(after, done);
    assert_eq!(member_count(&app, &owner, &group).await, 2298);
    let report = error_report(&app, &owner, &done).await;
    let lines: Vec<&str> = report.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(
        lines[1].starts_with("1802,duplicate of line 7 "),
        "{report}"
    );
    assert!(lines[2].starts_with("2002,"), "{report}");
    for i in [499, 500, 1799, 2299] {
        let hits = search(&app, &owner, &format!("Person {i}")).await;
        assert_eq!(hits.len(), 1, "Person {i}: {hits:?}");
    }
}

/// On PostgreSQL a run writes batches side by side, each in its own transaction: a batch is
/// planned while the one before it is still open (held open here), so it cannot see that
/// one's rows in the database. Keys repeated from the batch in flight are still duplicates
/// within the file (an updating row's key included), every batch commits, in file order, and
/// the one job run does the whole file.
async fn batches_written_side_by_side_still_find_duplicates(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let existing = post_ok(
        &app,
        &owner,
        "/api/v1/contacts",
        json!({"name": "Old Name", "identities": [{"kind": "phone", "value": pt_phone(990_000)}]}),
    )
    .await;
    let mut csv = String::from("Name,Phone,Email\n");
    for i in 0..2000 {
        let (name, phone, email) = match i {
            // Batch 1 (lines 2–501) updates the existing contact; batch 2 repeats its phone.
            100 => (
                "Updated Name".to_owned(),
                pt_phone(990_000),
                "x100@example.com".to_owned(),
            ),
            600 => (
                format!("Again {i}"),
                pt_phone(990_000),
                format!("p{i}@example.com"),
            ),
            // Batch 2 repeats a phone batch 1 creates; batch 3 an e-mail batch 2 creates.
            700 => (
                format!("Again {i}"),
                pt_phone(450),
                format!("p{i}@example.com"),
            ),
            1100 => (
                format!("Again {i}"),
                pt_phone(i),
                "p900@example.com".to_owned(),
            ),
            // The last batch repeats a phone of the first, long committed.
            1990 => (
                format!("Again {i}"),
                pt_phone(5),
                format!("p{i}@example.com"),
            ),
            // And the phone of the contact batch 1 updated: that row created no identity, so
            // only the import's recorded keys know it.
            1995 => (
                format!("Again {i}"),
                pt_phone(990_000),
                format!("p{i}@example.com"),
            ),
            _ => (
                format!("Person {i}"),
                pt_phone(i),
                format!("p{i}@example.com"),
            ),
        };
        csv.push_str(&format!("{name},{phone},{email}\n"));
    }
    let imp = expect_json(
        upload(
            &app,
            &owner,
            csv.into_bytes(),
            json!({"Name": "name", "Phone": "phone", "Email": "email"}),
            &[("dedupe", "phone"), ("on_duplicate", "update")],
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.state
        .contacts
        .hold_import_commits(std::time::Duration::from_millis(300));
    let handler = wamage_contacts::ImportJob(app.state.contacts.clone());
    let job = wamage_platform::jobs::JobContext {
        id: wamage_platform::jobs::JobId::new(),
        kind: wamage_contacts::IMPORT_JOB.to_owned(),
        org_id: Some(owner.org_id.parse().unwrap()),
        payload: json!({"import_id": imp["id"], "from_byte": 0}),
        attempt: 1,
        max_attempts: 5,
        run_at: app.clock.now(),
        created_at: app.clock.now(),
        worker_id: "test".to_owned(),
    };
    let outcome = wamage_platform::jobs::JobHandler::run(&handler, &job).await;
    assert_eq!(outcome, wamage_platform::jobs::JobOutcome::Done);
    let path = format!("/api/v1/imports/{}", id(&imp));
    let done = expect_json(app.get_as(&owner, &path).await, StatusCode::OK).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        (
            &done["rows_done"],
            &done["created"],
            &done["updated"],
            &done["failed"]
        ),
        (&json!(2000), &json!(1994), &json!(1), &json!(5)),
        "{done}"
    );
    let report = error_report(&app, &owner, &done).await;
    let lines: Vec<&str> = report.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 6, "{report}");
    for (line, of) in [(602, 102), (702, 452), (1102, 902), (1992, 7), (1997, 102)] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{line},duplicate of line {of} "))),
            "line {line} should repeat line {of}: {report}"
        );
    }
    assert!(search(&app, &owner, "Again").await.is_empty());
    let updated = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{}", id(&existing)))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["name"], "Updated Name", "{updated}");
    for i in [0, 499, 500, 1999] {
        let hits = search(&app, &owner, &format!("Person {i}")).await;
        assert_eq!(hits.len(), 1, "Person {i}: {hits:?}");
    }
}

wamage_testkit::app_tests_with!(
    long_runs,
    |c| c.import_run_secs = 60,
    an_interrupted_run_resumes_from_its_checkpoint,
    batches_written_side_by_side_still_find_duplicates
);

async fn a_second_import_updates_or_skips_duplicates(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let mapping = json!({"name": "name", "email": "email", "company": "company"});
    let first = import_all(
        &app,
        &owner,
        "name,email,company\nAna,ana@example.com,Old\nBruno,bruno@example.com,Old\n".to_owned(),
        mapping.clone(),
        &[("dedupe", "email")],
    )
    .await;
    assert_eq!(first["created"], 2, "{first}");

    let again = "name,email,company\nAna Lima,ANA@example.com,New\nCarla,carla@example.com,New\n";
    let skip = import_all(
        &app,
        &owner,
        again.to_owned(),
        mapping.clone(),
        &[("dedupe", "email"), ("on_duplicate", "skip")],
    )
    .await;
    assert_eq!(
        (
            &skip["created"],
            &skip["updated"],
            &skip["skipped"],
            &skip["failed"]
        ),
        (&json!(1), &json!(0), &json!(1), &json!(0)),
        "{skip}"
    );
    assert_eq!(search(&app, &owner, "ana").await, vec!["Ana"]);

    let update = import_all(
        &app,
        &owner,
        again.to_owned(),
        mapping.clone(),
        &[("dedupe", "email"), ("on_duplicate", "update")],
    )
    .await;
    assert_eq!(
        (
            &update["created"],
            &update["updated"],
            &update["skipped"],
            &update["failed"]
        ),
        (&json!(0), &json!(2), &json!(0), &json!(0)),
        "{update}"
    );
    assert_eq!(search(&app, &owner, "ana").await, vec!["Ana Lima"]);
    let page = expect_json(
        app.get_as(&owner, "/api/v1/contacts?q=ana").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"][0]["company"], "New");

    // Without dedupe an existing identity rejects the row instead of creating a second owner.
    let none = import_all(
        &app,
        &owner,
        "name,email,company\nAna Again,ana@example.com,X\n".to_owned(),
        mapping,
        &[("dedupe", "none")],
    )
    .await;
    assert_eq!(none["failed"], 1, "{none}");
    assert_eq!(none["created"], 0);
    let report = error_report(&app, &owner, &none).await;
    assert!(report.contains("already belongs to contact"), "{report}");
}

async fn junk_uploads_are_refused_with_the_field(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let map = json!({"Name": "name"});
    // Latin-1 bytes are not UTF-8.
    let latin1 = b"Name,City\nJos\xe9,S\xe3o Paulo\n".to_vec();
    let body = expect_problem(
        upload(&app, &owner, latin1, map.clone(), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), vec!["file"]);
    // Junk that is text but not this CSV: the mapped column is not in the header.
    let junk: String = (0..2000)
        .map(|i| char::from(b'!' + (i % 90) as u8))
        .collect();
    let body = expect_problem(
        upload(&app, &owner, junk.into_bytes(), map.clone(), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), vec!["mapping.Name"]);
    // An empty file, a field mapped twice, an unknown target, bad options.
    let body = expect_problem(
        upload(&app, &owner, Vec::new(), map.clone(), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(problem_fields(&body).contains(&"file".to_owned()));
    let body = expect_problem(
        upload(
            &app,
            &owner,
            b"A,B,C\n1,2,3\n".to_vec(),
            json!({"A": "name", "B": "name", "C": "attr:nope"}),
            &[
                ("dedupe", "fax"),
                ("on_duplicate", "merge"),
                ("group_id", "nope"),
            ],
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let mut fields = problem_fields(&body);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "dedupe",
            "group_id",
            "mapping.B",
            "mapping.C",
            "on_duplicate"
        ]
    );
    // Large files get past the server's default body limit (1 MB; this file is 3 MB) and are checked like
    // any other; past 50 MB the answer is 413 on the file.
    let mut big = String::from("Name\n");
    while big.len() < 3 * 1024 * 1024 {
        big.push_str("Someone with a long enough name to fill the file quickly\n");
    }
    let body = expect_problem(
        upload(&app, &owner, big.into_bytes(), json!({"Nope": "name"}), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), vec!["mapping.Nope"]);
    let mut huge = b"Name\n".to_vec();
    huge.resize(50 * 1024 * 1024 + 1, b'x');
    let body = expect_problem(
        upload(&app, &owner, huge, map.clone(), &[]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(problem_fields(&body), vec!["file"]);
    // Nothing was recorded or imported.
    let list = expect_json(app.get_as(&owner, "/api/v1/imports").await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    assert_eq!(app.run_jobs().await, 0);
    // A file that breaks mid-way (an unterminated quote swallows the rest) still completes with
    // every row accounted for: the broken record is reported as ragged.
    let done = import_all(
        &app,
        &owner,
        "Name,Phone\nAna,+351912000001\n\"Bruno,+351912000002\nCarla,+351912000003\n".to_owned(),
        json!({"Name": "name", "Phone": "phone"}),
        &[],
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["created"], 1, "{done}");
    assert_eq!(done["failed"], 1, "{done}");
}

async fn other_organisations_cannot_reach_imports(app: TestApp) {
    let b_owner = app.register("owner@b.example", "Org B").await;
    let imp = import_all(
        &app,
        &b_owner,
        "name\nAna\n,\n".to_owned(),
        json!({"name": "name"}),
        &[],
    )
    .await;
    let a_owner = app.register("owner@a.example", "Org A").await;
    assert_isolated(
        &app,
        &b_owner,
        &a_owner,
        &[
            Probe::get(format!("/api/v1/imports/{}", id(&imp))),
            Probe::get(format!("/api/v1/imports/{}/errors.csv", id(&imp))),
        ],
    )
    .await;
    let list = expect_json(
        app.get_as(&a_owner, "/api/v1/imports").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

// ---- segments ----------------------------------------------------------------------------------

/// Ten contacts with tags, groups, attributes and consent, for the segment tests.
struct SegFixture {
    hot: String,
    cold: String,
    news: String,
}

async fn segment_fixture(app: &TestApp, who: &TestUser) -> SegFixture {
    for def in [
        json!({"key": "city", "label": "City", "type": "text"}),
        json!({"key": "score", "label": "Score", "type": "number"}),
        json!({"key": "born", "label": "Born", "type": "date"}),
        json!({"key": "vip", "label": "VIP", "type": "boolean"}),
        json!({"key": "plan", "label": "Plan", "type": "single_choice", "options": ["free", "pro"]}),
        json!({"key": "langs", "label": "Languages", "type": "multi_choice", "options": ["en", "pt", "de"]}),
    ] {
        define(app, who, def).await;
    }
    let hot = id(&post_ok(
        app,
        who,
        "/api/v1/tags",
        json!({"name": "hot", "color": "#ff0000"}),
    )
    .await);
    let cold = id(&post_ok(
        app,
        who,
        "/api/v1/tags",
        json!({"name": "cold", "color": "#0000ff"}),
    )
    .await);
    let news = id(&post_ok(app, who, "/api/v1/groups", json!({"name": "News"})).await);
    let mk = |name: &str, extra: Value| {
        let mut body = json!({"name": name});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let bodies = [
        mk(
            "Ana",
            json!({"favorite": true, "attributes": {"city": "Lisbon", "score": 10, "born": "1990-01-01", "vip": true, "plan": "pro", "langs": ["en", "pt"]}}),
        ),
        mk(
            "Bruno",
            json!({"attributes": {"city": "Porto", "score": 5, "vip": false, "plan": "free", "langs": ["de"]}}),
        ),
        mk(
            "Carla",
            json!({"blocked": true, "attributes": {"city": "lisboa norte", "score": 20}}),
        ),
        mk("Dario", json!({})),
        mk(
            "Eva",
            json!({"attributes": {"city": "x' OR 1=1 --", "score": 7.5}}),
        ),
        mk(
            "Filipe",
            json!({"attributes": {"born": "2000-06-15", "plan": "pro"}}),
        ),
        mk("Gil", json!({"attributes": {"vip": true}})),
        mk("Hugo", json!({"attributes": {"langs": ["pt"]}})),
        mk("Ines", json!({"favorite": true})),
        mk("Joao", json!({})),
    ];
    let mut ids = Vec::new();
    for b in bodies {
        ids.push(id(&create(app, who, b).await));
    }
    let bulk_ok = |body: Value| async move {
        expect_json(
            app.post_as(who, "/api/v1/contacts/bulk", &body).await,
            StatusCode::OK,
        )
        .await;
    };
    bulk_ok(json!({"action": "add_tags", "contact_ids": [ids[0], ids[2]], "tag_ids": [hot]})).await;
    bulk_ok(json!({"action": "add_tags", "contact_ids": [ids[1], ids[2]], "tag_ids": [cold]}))
        .await;
    bulk_ok(json!({"action": "add_to_groups", "contact_ids": [ids[0], ids[2], ids[9]], "group_ids": [news]})).await;
    let consent = |who_id: &str, channel: &str, status: &str| {
        let path = format!("/api/v1/contacts/{who_id}/consent");
        let body = json!({"channel": channel, "purpose": "marketing", "status": status});
        async move {
            let r = app.post_as(who, &path, &body).await;
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    consent(&ids[0], "whatsapp", "opted_in").await;
    consent(&ids[1], "whatsapp", "opted_in").await;
    consent(&ids[1], "whatsapp", "opted_out").await;
    consent(&ids[3], "whatsapp", "opted_out").await;
    consent(&ids[3], "whatsapp", "opted_in").await;
    consent(&ids[6], "sms", "opted_in").await;
    SegFixture { hot, cold, news }
}

/// The names a filter matches (through a saved segment and the list), checked against the
/// preview and the segment's count.
async fn matching(app: &TestApp, who: &TestUser, filter: Value) -> Vec<String> {
    let preview = expect_json(
        app.post_as(who, "/api/v1/segments/preview", &json!({"filter": filter}))
            .await,
        StatusCode::OK,
    )
    .await;
    let name = format!("s{}", uuid_like(&filter));
    let seg = post_ok(
        app,
        who,
        "/api/v1/segments",
        json!({"name": name, "filter": filter}),
    )
    .await;
    let page = expect_json(
        app.get_as(
            who,
            &format!("/api/v1/contacts?limit=200&segment={}", id(&seg)),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let names: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let count = expect_json(
        app.get_as(who, &format!("/api/v1/segments/{}/count", id(&seg)))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(count["count"], names.len(), "{filter}");
    assert_eq!(preview["count"], names.len(), "{filter}");
    names
}

/// The count `POST /api/v1/segments/preview` answers for `filter`.
async fn preview_count(app: &TestApp, who: &TestUser, filter: &Value) -> i64 {
    expect_json(
        app.post_as(who, "/api/v1/segments/preview", &json!({"filter": filter}))
            .await,
        StatusCode::OK,
    )
    .await["count"]
        .as_i64()
        .unwrap()
}

/// A name unique enough for a segment per filter.
fn uuid_like(v: &Value) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

fn all_but(except: &[&str]) -> Vec<String> {
    [
        "Ana", "Bruno", "Carla", "Dario", "Eva", "Filipe", "Gil", "Hugo", "Ines", "Joao",
    ]
    .iter()
    .filter(|n| !except.contains(n))
    .map(|n| (*n).to_owned())
    .collect()
}

/// Filters of every operator over the fixture, with the names each matches.
fn operator_cases(f: &SegFixture) -> Vec<(Value, Vec<&'static str>)> {
    vec![
        (
            json!({"field": "tag", "op": "has", "value": f.hot}),
            vec!["Ana", "Carla"],
        ),
        (
            json!({"field": "tag", "op": "has", "value": f.cold}),
            vec!["Bruno", "Carla"],
        ),
        (
            json!({"field": "group", "op": "in", "value": f.news}),
            vec!["Ana", "Carla", "Joao"],
        ),
        (
            json!({"field": "favorite", "op": "is", "value": true}),
            vec!["Ana", "Ines"],
        ),
        (
            json!({"field": "blocked", "op": "is", "value": true}),
            vec!["Carla"],
        ),
        (
            json!({"field": "attr:city", "op": "eq", "value": "Lisbon"}),
            vec!["Ana"],
        ),
        (
            json!({"field": "attr:city", "op": "contains", "value": "LISB"}),
            vec!["Ana", "Carla"],
        ),
        (
            json!({"field": "attr:city", "op": "is_set"}),
            vec!["Ana", "Bruno", "Carla", "Eva"],
        ),
        (
            json!({"field": "attr:score", "op": "gt", "value": 6}),
            vec!["Ana", "Carla", "Eva"],
        ),
        (
            json!({"field": "attr:score", "op": "lt", "value": 6}),
            vec!["Bruno"],
        ),
        (
            json!({"field": "attr:score", "op": "eq", "value": 7.5}),
            vec!["Eva"],
        ),
        (
            json!({"field": "attr:born", "op": "lt", "value": "1995-01-01"}),
            vec!["Ana"],
        ),
        (
            json!({"field": "attr:born", "op": "gt", "value": "1995-01-01"}),
            vec!["Filipe"],
        ),
        (
            json!({"field": "attr:vip", "op": "eq", "value": true}),
            vec!["Ana", "Gil"],
        ),
        (
            json!({"field": "attr:vip", "op": "eq", "value": false}),
            vec!["Bruno"],
        ),
        (
            json!({"field": "attr:plan", "op": "eq", "value": "pro"}),
            vec!["Ana", "Filipe"],
        ),
        (
            json!({"field": "attr:langs", "op": "contains", "value": "pt"}),
            vec!["Ana", "Hugo"],
        ),
        (
            json!({"field": "consent", "op": "opted_in", "channel": "whatsapp", "purpose": "marketing"}),
            vec!["Ana", "Dario"],
        ),
        (
            json!({"field": "consent", "op": "opted_out", "channel": "whatsapp", "purpose": "marketing"}),
            vec!["Bruno"],
        ),
        (
            json!({"field": "consent", "op": "opted_in", "channel": "sms", "purpose": "marketing"}),
            vec!["Gil"],
        ),
        (
            json!({"field": "created_at", "op": "after", "value": "2999-01-01T00:00:00Z"}),
            vec![],
        ),
        // A value that looks like SQL is only a value.
        (
            json!({"field": "attr:city", "op": "eq", "value": "x' OR 1=1 --"}),
            vec!["Eva"],
        ),
        (
            json!({"field": "attr:city", "op": "contains", "value": "' OR 1=1 --"}),
            vec!["Eva"],
        ),
        (
            json!({"field": "attr:city", "op": "contains", "value": "%"}),
            vec![],
        ),
        // Nesting.
        (
            json!({"all": [
                {"any": [{"field": "tag", "op": "has", "value": f.hot}, {"field": "group", "op": "in", "value": f.news}]},
                {"field": "favorite", "op": "is", "value": false}
            ]}),
            vec!["Carla", "Joao"],
        ),
        (
            json!({"any": [
                {"all": [{"field": "attr:vip", "op": "eq", "value": true}, {"field": "tag", "op": "has_not", "value": f.hot}]},
                {"all": [{"any": [{"field": "attr:plan", "op": "eq", "value": "free"}]}]}
            ]}),
            vec!["Bruno", "Gil"],
        ),
        (json!({"any": []}), vec![]),
    ]
}

/// Filters over the fixture, with the names each does **not** match.
fn complement_cases(f: &SegFixture) -> Vec<(Value, Vec<&'static str>)> {
    vec![
        (
            json!({"field": "tag", "op": "has_not", "value": f.hot}),
            vec!["Ana", "Carla"],
        ),
        (
            json!({"field": "group", "op": "not_in", "value": f.news}),
            vec!["Ana", "Carla", "Joao"],
        ),
        (
            json!({"field": "attr:city", "op": "neq", "value": "Lisbon"}),
            vec!["Ana"],
        ),
        (
            json!({"field": "attr:city", "op": "is_not_set"}),
            vec!["Ana", "Bruno", "Carla", "Eva"],
        ),
        (
            json!({"field": "attr:vip", "op": "neq", "value": true}),
            vec!["Ana", "Gil"],
        ),
        (
            json!({"field": "attr:plan", "op": "neq", "value": "pro"}),
            vec!["Ana", "Filipe"],
        ),
        (
            json!({"field": "consent", "op": "no_consent", "channel": "whatsapp", "purpose": "marketing"}),
            vec!["Ana", "Bruno", "Dario"],
        ),
        (
            json!({"field": "created_at", "op": "before", "value": "2999-01-01T00:00:00+02:00"}),
            vec![],
        ),
        (json!({"all": []}), vec![]),
    ]
}

async fn segment_operators_match_exactly(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let f = segment_fixture(&app, &owner).await;
    for (filter, want) in operator_cases(&f) {
        let got = matching(&app, &owner, filter.clone()).await;
        assert_eq!(got, want, "{filter}");
    }
    for (filter, except) in complement_cases(&f) {
        let got = matching(&app, &owner, filter.clone()).await;
        assert_eq!(got, all_but(&except), "{filter}");
    }
}

/// The organisation's in-memory count index: built by itself once counts are slow (here: any
/// count), it answers every operator it can exactly as SQL does, stops answering the moment a
/// write lands (profile, membership, consent), and is built again after.
async fn the_count_index_counts_what_sql_counts(app: TestApp) {
    // SQLite reads the book in pages: small ones, so the fixture crosses several.
    wamage_contacts::set_count_index_page_rows(3);
    let owner = app.register("owner@acme.example", "Acme").await;
    let f = segment_fixture(&app, &owner).await;
    let org: wamage_kernel::OrgId = owner.org_id.parse().unwrap();
    let contacts = app.state.contacts.clone();
    let both = |filter: Value| {
        let contacts = contacts.clone();
        async move { contacts.count_both_ways(org, &filter).await.unwrap() }
    };
    // Waits for the index to be (re)built by itself and answer `filter`.
    let rebuilt = |filter: Value| {
        let contacts = contacts.clone();
        async move {
            for _ in 0..300 {
                if let (Some(n), sql) = contacts.count_both_ways(org, &filter).await.unwrap() {
                    assert_eq!(n, sql, "{filter}");
                    return n;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the count index was not built");
        }
    };
    let favorite = json!({"field": "favorite", "op": "is", "value": true});
    assert_eq!(
        both(favorite.clone()).await,
        (None, 2),
        "no index before a count"
    );

    let (app_ref, owner_ref) = (&app, &owner);
    let preview = |filter: Value| async move { preview_count(app_ref, owner_ref, &filter).await };
    assert_eq!(preview(favorite.clone()).await, 2);
    assert_eq!(rebuilt(favorite.clone()).await, 2);

    // Another process on the same database and cache, whose counts never start a build,
    // warms its own index at start-up under the same token: neither makes the other's look
    // stale. (Start-up warms books of a size: this one has 10 contacts.)
    let s = &app.state;
    let other = wamage_contacts::Contacts::new(wamage_contacts::ContactsDeps {
        db: s.db.clone(),
        cache: s.cache.clone(),
        bus: s.bus.clone(),
        blobs: s.blobs.clone(),
        jobs: s.jobs.clone(),
        clock: s.clock.clone(),
        import_batch_rows: None,
        import_run_budget: None,
        import_writers: None,
        count_index_after: Some(Duration::from_secs(60)),
        count_index_on_import: false,
    });
    assert_eq!(other.warm_count_indexes(11).await.unwrap(), 0);
    assert_eq!(
        other.count_both_ways(org, &favorite).await.unwrap(),
        (None, 2)
    );
    assert_eq!(other.warm_count_indexes(10).await.unwrap(), 1);
    let mut warmed = None;
    for _ in 0..300 {
        warmed = other.count_both_ways(org, &favorite).await.unwrap().0;
        if warmed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(warmed, Some(2), "warmed at start-up");
    assert_eq!(both(favorite.clone()).await, (Some(2), 2));

    let cases = operator_cases(&f).into_iter().chain(complement_cases(&f));
    for (filter, _) in cases {
        let (indexed, sql) = both(filter.clone()).await;
        // Case-insensitive text search stays in SQL (LOWER differs between the backends).
        if filter["field"] == "attr:city" && filter["op"] == "contains" {
            assert_eq!(indexed, None, "{filter}");
        } else {
            assert_eq!(indexed, Some(sql), "{filter}");
        }
    }
    // Through the API, from the index.
    let lisbon = json!({"field": "attr:city", "op": "eq", "value": "Lisbon"});
    assert_eq!(preview(lisbon.clone()).await, 1);

    // A new contact: the index stops answering at once, SQL counts it, the index comes back.
    let kim = create(
        &app,
        &owner,
        json!({"name": "Kim", "favorite": true, "attributes": {"city": "Lisbon"}}),
    )
    .await;
    assert_eq!(both(lisbon.clone()).await, (None, 2));
    assert_eq!(
        other.count_both_ways(org, &lisbon).await.unwrap(),
        (None, 2)
    );
    assert_eq!(preview(lisbon.clone()).await, 2);
    assert_eq!(rebuilt(lisbon.clone()).await, 2);
    assert_eq!(both(favorite.clone()).await, (Some(3), 3));

    // Membership.
    let news = json!({"field": "group", "op": "in", "value": f.news});
    assert_eq!(both(news.clone()).await, (Some(3), 3));
    expect_json(
        app.post_as(
            &owner,
            "/api/v1/contacts/bulk",
            &json!({"action": "add_to_groups", "contact_ids": [id(&kim)], "group_ids": [f.news]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(both(news.clone()).await.0, None);
    assert_eq!(rebuilt(news).await, 4);

    // Consent: Kim opts in, then out; the newest entry is the state.
    let opted_in = json!({"field": "consent", "op": "opted_in", "channel": "whatsapp", "purpose": "marketing"});
    assert_eq!(rebuilt(opted_in.clone()).await, 2);
    for status in ["opted_in", "opted_out"] {
        post_ok(
            &app,
            &owner,
            &format!("/api/v1/contacts/{}/consent", id(&kim)),
            json!({"channel": "whatsapp", "purpose": "marketing", "status": status, "source": "agent"}),
        )
        .await;
        assert_eq!(both(opted_in.clone()).await.0, None);
    }
    assert_eq!(rebuilt(opted_in).await, 2);
    let opted_out = json!({"field": "consent", "op": "opted_out", "channel": "whatsapp", "purpose": "marketing"});
    assert_eq!(both(opted_out).await, (Some(2), 2));

    // Deleting a contact.
    let res = app
        .request_as(
            &owner,
            Method::DELETE,
            &format!("/api/v1/contacts/{}", id(&kim)),
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(both(favorite.clone()).await, (None, 2));
    assert_eq!(rebuilt(favorite.clone()).await, 2);

    // Campaign audience breakdowns: reachable by the channel's identity kinds, blocked,
    // opted out, without consent; the index answers them as SQL does.
    for (name, identities, blocked) in [
        (
            "Pia",
            json!([{"kind": "whatsapp_phone", "value": "+351912000001"}]),
            false,
        ),
        (
            "Quim",
            json!([{"kind": "phone", "value": "+351912000002"}]),
            true,
        ),
        ("Rui", json!([{"kind": "telegram", "value": "4242"}]), false),
        (
            "Sara",
            json!([{"kind": "whatsapp_user", "value": "PT.77"}]),
            false,
        ),
    ] {
        let c = create(
            &app,
            &owner,
            json!({"name": name, "identities": identities, "blocked": blocked}),
        )
        .await;
        expect_json(
            app.post_as(
                &owner,
                "/api/v1/contacts/bulk",
                &json!({"action": "add_to_groups", "contact_ids": [id(&c)], "group_ids": [f.news]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        if name == "Pia" || name == "Sara" {
            let status = if name == "Pia" {
                "opted_in"
            } else {
                "opted_out"
            };
            post_ok(
                &app,
                &owner,
                &format!("/api/v1/contacts/{}/consent", id(&c)),
                json!({"channel": "whatsapp", "purpose": "marketing", "status": status, "source": "agent"}),
            )
            .await;
        }
    }
    assert_eq!(rebuilt(favorite).await, 2);
    use wamage_contacts::{AudienceSpec, SendChannel, address_kinds};
    let news: wamage_contacts::GroupId = f.news.parse().unwrap();
    let hot: wamage_contacts::TagId = f.hot.parse().unwrap();
    let specs = [
        AudienceSpec {
            groups: vec![news],
            ..AudienceSpec::default()
        },
        AudienceSpec {
            groups: vec![news],
            tags: vec![hot],
            exclude_tags: vec![hot],
            ..AudienceSpec::default()
        },
    ];
    let channels = [
        SendChannel {
            consent: Some(ConsentChannel::Whatsapp),
            kinds: address_kinds(ConsentChannel::Whatsapp),
        },
        SendChannel {
            consent: Some(ConsentChannel::Telegram),
            kinds: address_kinds(ConsentChannel::Telegram),
        },
        SendChannel {
            consent: None,
            kinds: address_kinds(ConsentChannel::Whatsapp),
        },
    ];
    use wamage_contacts::VarField;
    let variables = [
        vec![],
        vec![VarField::FirstName, VarField::Company],
        vec![VarField::Language, VarField::Email],
        vec![VarField::Phone],
        vec![
            VarField::Attr("city".into()),
            VarField::Attr("langs".into()),
        ],
    ];
    let mut every_bucket = (false, false);
    for spec in &specs {
        for channel in channels {
            for purpose in [ConsentPurpose::Marketing, ConsentPurpose::Utility] {
                for required in &variables {
                    let (indexed, sql) = contacts
                        .breakdown_both_ways(org, spec, channel, purpose, required)
                        .await
                        .unwrap();
                    assert_eq!(
                        indexed,
                        Some(sql),
                        "{spec:?} {channel:?} {purpose:?} {required:?}"
                    );
                    every_bucket.0 |= sql.opted_out > 0 && sql.blocked > 0 && sql.no_identity > 0;
                    every_bucket.1 |= sql.missing_variables > 0 && sql.eligible > 0;
                }
            }
        }
    }
    assert_eq!(
        every_bucket,
        (true, true),
        "the fixture exercises every bucket"
    );
}

wamage_testkit::app_tests_with!(
    count_index,
    |c| c.count_index_after_ms = 0,
    the_count_index_counts_what_sql_counts
);

async fn segments_compose_with_the_list_and_page(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let f = segment_fixture(&app, &owner).await;
    let seg = post_ok(
        &app,
        &owner,
        "/api/v1/segments",
        json!({"name": "Not hot", "description": "everyone else",
               "filter": {"field": "tag", "op": "has_not", "value": f.hot}}),
    )
    .await;
    let sid = id(&seg);
    assert_eq!(seg["description"], "everyone else");
    // Paging by 3 visits all 8 once, in name order.
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/v1/contacts?segment={sid}&limit=3");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", urlencode(c)));
        }
        let page = expect_json(app.get_as(&owner, &url).await, StatusCode::OK).await;
        for c in page["items"].as_array().unwrap() {
            names.push(c["name"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, all_but(&["Ana", "Carla"]));
    // With the other filters.
    let page = expect_json(
        app.get_as(
            &owner,
            &format!("/api/v1/contacts?segment={sid}&tag={}", f.cold),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["name"], "Bruno");
    let page = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts?segment={sid}&q=gi"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"][0]["name"], "Gil");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let page = expect_json(
        app.get_as(
            &owner,
            &format!(
                "/api/v1/contacts?segment={sid}&group={}&sort=-created_at",
                f.news
            ),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["items"][0]["name"], "Joao");
    // The export takes the segment too.
    let r = app
        .get_as(
            &owner,
            &format!("/api/v1/contacts/export.csv?segment={sid}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 1 + 8, "{csv}");
    assert!(!csv.contains("Ana") && csv.contains("Joao"), "{csv}");
    // Change it: the audience is live.
    let seg = expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/segments/{sid}"),
            &json!({"name": "Hot", "filter": {"field": "tag", "op": "has", "value": f.hot}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(seg["name"], "Hot");
    let count = expect_json(
        app.get_as(&owner, &format!("/api/v1/segments/{sid}/count"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(count["count"], 2);
    // Names are unique per organisation.
    let p = expect_problem(
        app.post_as(
            &owner,
            "/api/v1/segments",
            &json!({"name": "hot", "filter": {"all": []}}),
        )
        .await,
        StatusCode::CONFLICT,
        "segment_name_taken",
    )
    .await;
    assert_eq!(problem_fields(&p), ["name"]);
    let list = expect_json(app.get_as(&owner, "/api/v1/segments").await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // A deleted tag matches nobody rather than breaking the segment.
    let r = app
        .delete_as(&owner, &format!("/api/v1/tags/{}", f.hot))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let count = expect_json(
        app.get_as(&owner, &format!("/api/v1/segments/{sid}/count"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(count["count"], 0);
    let r = app
        .delete_as(&owner, &format!("/api/v1/segments/{sid}"))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.get_as(&owner, &format!("/api/v1/segments/{sid}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    expect_problem(
        app.get_as(&owner, &format!("/api/v1/contacts?segment={sid}"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

async fn invalid_segment_filters_name_the_path(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    segment_fixture(&app, &owner).await;
    let bad = |filter: Value| {
        let app = &app;
        let owner = &owner;
        async move {
            let p = expect_problem(
                app.post_as(
                    owner,
                    "/api/v1/segments/preview",
                    &json!({"filter": filter}),
                )
                .await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            )
            .await;
            problem_fields(&p)
        }
    };
    assert_eq!(
        bad(json!({"all": [
            {"field": "tag", "op": "has", "value": "not-an-id"},
            {"field": "attr:score", "op": "contains", "value": "x"},
            {"field": "attr:nope", "op": "eq", "value": 1},
            {"any": [{"field": "consent", "op": "opted_in", "channel": "fax", "purpose": "marketing"}]},
            {"field": "attr:score", "op": "eq", "value": "ten"},
            {"field": "attr:plan", "op": "eq", "value": "gold"},
            {"field": "created_at", "op": "before", "value": "yesterday"},
            {"field": "favorite", "op": "eq", "value": true},
            {"field": "name", "op": "eq", "value": "x"},
            {"field": "tag", "op": "has", "value": "0193a0e0-0000-7000-8000-000000000001"},
            7
        ]}))
        .await,
        [
            "filter.all[0].value",
            "filter.all[1].op",
            "filter.all[2].field",
            "filter.all[3].any[0].channel",
            "filter.all[4].value",
            "filter.all[5].value",
            "filter.all[6].value",
            "filter.all[7].op",
            "filter.all[8].field",
            "filter.all[9].value",
            "filter.all[10]",
        ]
    );
    assert_eq!(
        bad(json!({"all": [{"any": [{"all": [{"any": [{"all": []}]}]}]}]})).await,
        ["filter.all[0].any[0].all[0].any[0]"]
    );
    let many: Vec<Value> = (0..51)
        .map(|_| json!({"field": "favorite", "op": "is", "value": true}))
        .collect();
    assert_eq!(bad(json!({"any": many})).await, ["filter"]);
    assert_eq!(
        bad(json!({"field": "attr:city", "op": "is_set", "value": "x"})).await,
        ["filter.value"]
    );
    assert_eq!(bad(json!({"all": [], "any": []})).await, ["filter"]);
    // Saving checks the same way, and the name.
    let p = expect_problem(
        app.post_as(
            &owner,
            "/api/v1/segments",
            &json!({"name": "", "filter": {"field": "blocked", "op": "is", "value": "yes"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["name", "filter.value"]);
    let p = expect_problem(
        app.post_as(
            &owner,
            "/api/v1/segments",
            &json!({"name": "Bad", "filter": {"field": "blocked", "op": "is", "value": "yes"}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["filter.value"]);
}

async fn other_organisations_cannot_reach_segments(app: TestApp) {
    let b_owner = app.register("owner@b.example", "Org B").await;
    let b_tag = id(&post_ok(
        &app,
        &b_owner,
        "/api/v1/tags",
        json!({"name": "VIP", "color": "#ff0000"}),
    )
    .await);
    create(&app, &b_owner, json!({"name": "B customer"})).await;
    let seg = id(&post_ok(
        &app,
        &b_owner,
        "/api/v1/segments",
        json!({"name": "VIPs", "filter": {"field": "tag", "op": "has", "value": b_tag}}),
    )
    .await);
    let a_owner = app.register("owner@a.example", "Org A").await;
    assert_isolated(
        &app,
        &b_owner,
        &a_owner,
        &[
            Probe::get(format!("/api/v1/segments/{seg}")),
            Probe::patch(format!("/api/v1/segments/{seg}"), json!({"name": "Mine"})),
            Probe::get(format!("/api/v1/segments/{seg}/count")),
            Probe::delete(format!("/api/v1/segments/{seg}")),
        ],
    )
    .await;
    // Another organisation's tag is not a tag here.
    let p = expect_problem(
        app.post_as(
            &a_owner,
            "/api/v1/segments",
            &json!({"name": "Theirs", "filter": {"field": "tag", "op": "has", "value": b_tag}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&p), ["filter.value"]);
    // Nor is its segment, and nothing of B is listed or counted.
    expect_problem(
        app.get_as(&a_owner, &format!("/api/v1/contacts?segment={seg}"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let list = expect_json(
        app.get_as(&a_owner, "/api/v1/segments").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    let n = expect_json(
        app.post_as(
            &a_owner,
            "/api/v1/segments/preview",
            &json!({"filter": {"all": []}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(n["count"], 0);
}

/// Counts are cached; every kind of write to the contacts must show in the next count.
async fn cached_segment_counts_follow_every_write(app: TestApp) {
    let owner = app.register("owner@example.com", "Acme").await;
    let filter = json!({"all": [{"field": "favorite", "op": "is", "value": true},
                                {"field": "consent", "op": "opted_in",
                                 "channel": "whatsapp", "purpose": "marketing"}]});
    let count = || preview_count(&app, &owner, &filter);
    assert_eq!(count().await, 0);
    let c = post_ok(
        &app,
        &owner,
        "/api/v1/contacts",
        json!({"name": "Ana", "favorite": true}),
    )
    .await;
    assert_eq!(count().await, 0, "no consent yet");
    post_ok(
        &app,
        &owner,
        &format!("/api/v1/contacts/{}/consent", id(&c)),
        json!({"channel": "whatsapp", "purpose": "marketing", "status": "opted_in", "source": "agent"}),
    )
    .await;
    assert_eq!(count().await, 1, "the consent shows");
    let res = app
        .request_as(
            &owner,
            Method::PATCH,
            &format!("/api/v1/contacts/{}", id(&c)),
        )
        .json(&json!({"favorite": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(count().await, 0, "the edit shows");
    let res = app
        .request_as(
            &owner,
            Method::PATCH,
            &format!("/api/v1/contacts/{}", id(&c)),
        )
        .json(&json!({"favorite": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(count().await, 1);
    let res = app
        .request_as(
            &owner,
            Method::DELETE,
            &format!("/api/v1/contacts/{}", id(&c)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(count().await, 0, "the deletion shows");
}

/// Browsers always accept gzip: the streamed export must arrive whole through the compression
/// layer (it once panicked when polled after its end, leaving an empty reply).
async fn export_survives_compression(app: TestApp) {
    let owner = app.register("owner@example.com", "Acme").await;
    for i in 0..3 {
        expect_json(
            app.post_as(
                &owner,
                "/api/v1/contacts",
                &json!({"name": format!("Person {i}")}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let res = app
        .request_as(&owner, Method::GET, "/api/v1/contacts/export.csv")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let body = res
        .bytes()
        .await
        .expect("the whole compressed body arrives");
    assert!(body.starts_with(&[0x1f, 0x8b]), "a gzip stream");
    assert!(body.len() > 20);
}

// ---- photos -----------------------------------------------------------------------------------

/// A tiny PNG: the signature is what the server judges, the rest makes each image distinct.
fn png(fill: u8) -> Vec<u8> {
    [b"\x89PNG\r\n\x1a\n".as_slice(), &[fill; 64]].concat()
}

async fn put_avatar(
    app: &TestApp,
    who: &TestUser,
    cid: &str,
    bytes: Vec<u8>,
    mime: &str,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name("photo.png")
            .mime_str(mime)
            .unwrap(),
    );
    app.request_as(who, Method::PUT, &format!("/api/v1/contacts/{cid}/avatar"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The photo behind a URL, fetched without a token as an `<img>` would.
async fn fetch_photo(app: &TestApp, url: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let res = app.request(Method::GET, url).send().await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, ct, res.bytes().await.unwrap().to_vec())
}

async fn contact_photos_are_stored_replaced_and_removed(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let agent = app.add_member(&owner, "agent@acme.example", "agent").await;
    let cid = id(&create(&app, &agent, json!({"name": "Ana"})).await);
    let mut sub = app.state.bus.subscribe("wamage.contact.*");

    let first = png(1);
    let c = expect_json(
        put_avatar(&app, &agent, &cid, first.clone(), "image/png").await,
        StatusCode::OK,
    )
    .await;
    let url1 = c["avatar_url"].as_str().unwrap().to_owned();
    assert!(
        url1.starts_with(&format!("/api/v1/contact-avatars/{}/{cid}/", owner.org_id)),
        "{url1}"
    );
    assert!(url1.ends_with(".png"), "{url1}");
    let (status, ct, bytes) = fetch_photo(&app, &url1).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("image/png"));
    assert_eq!(bytes, first);
    let e = next_event(&mut sub).await;
    assert_eq!(e.type_, "wamage.contact.updated");
    assert_eq!(e.data.value()["changed"], json!(["avatar_url"]));
    assert_eq!(e.data.value()["contact"]["avatar_url"], url1.as_str());
    // The cached contact and the list show it.
    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["avatar_url"], url1.as_str());
    let page = expect_json(app.get_as(&agent, "/api/v1/contacts").await, StatusCode::OK).await;
    assert_eq!(page["items"][0]["avatar_url"], url1.as_str());

    // Replacing it stores the new one under a new URL and deletes the old blob.
    let gif = b"GIF89a\x01\x00\x01\x00rest".to_vec();
    let c = expect_json(
        put_avatar(&app, &agent, &cid, gif.clone(), "image/png").await,
        StatusCode::OK,
    )
    .await;
    let url2 = c["avatar_url"].as_str().unwrap().to_owned();
    assert_ne!(url2, url1);
    assert!(
        url2.ends_with(".gif"),
        "judged by the bytes, not the declared type: {url2}"
    );
    let (status, ct, bytes) = fetch_photo(&app, &url2).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("image/gif"));
    assert_eq!(bytes, gif);
    assert_eq!(fetch_photo(&app, &url1).await.0, StatusCode::NOT_FOUND);
    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["avatar_url"], url2.as_str(), "the cache was dropped");

    // Removing it answers 204, clears the URL and deletes the blob; removing again is harmless.
    let path = format!("/api/v1/contacts/{cid}/avatar");
    assert_eq!(
        app.delete_as(&agent, &path).await.status(),
        StatusCode::NO_CONTENT
    );
    let got = expect_json(
        app.get_as(&agent, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert!(got["avatar_url"].is_null(), "{got}");
    assert_eq!(fetch_photo(&app, &url2).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete_as(&agent, &path).await.status(),
        StatusCode::NO_CONTENT
    );

    // Deleting the contact deletes its photo.
    let c = expect_json(
        put_avatar(&app, &agent, &cid, png(3), "image/png").await,
        StatusCode::OK,
    )
    .await;
    let url3 = c["avatar_url"].as_str().unwrap().to_owned();
    assert_eq!(fetch_photo(&app, &url3).await.0, StatusCode::OK);
    assert_eq!(
        app.delete_as(&owner, &format!("/api/v1/contacts/{cid}"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(fetch_photo(&app, &url3).await.0, StatusCode::NOT_FOUND);

    // So does a bulk delete.
    let other = id(&create(&app, &agent, json!({"name": "Bo"})).await);
    let c = expect_json(
        put_avatar(&app, &agent, &other, png(4), "image/png").await,
        StatusCode::OK,
    )
    .await;
    let url4 = c["avatar_url"].as_str().unwrap().to_owned();
    assert_eq!(
        bulk(
            &app,
            &owner,
            json!({"action": "delete", "contact_ids": [other]})
        )
        .await,
        1
    );
    assert_eq!(fetch_photo(&app, &url4).await.0, StatusCode::NOT_FOUND);
    // Made-up photo paths are 404, never a file-system error.
    for bad in [
        "/api/v1/contact-avatars/x/y/z.png",
        &format!("/api/v1/contact-avatars/{}/{cid}/..", owner.org_id),
        &format!("/api/v1/contact-avatars/{}/{cid}/nope.png", owner.org_id),
    ] {
        assert_eq!(
            fetch_photo(&app, bad).await.0,
            StatusCode::NOT_FOUND,
            "{bad}"
        );
    }
}

async fn bad_photos_are_refused_with_the_field(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let cid = id(&create(&app, &owner, json!({"name": "Ana"})).await);
    // An SVG declared as a PNG is judged by its bytes.
    let body = expect_problem(
        put_avatar(
            &app,
            &owner,
            &cid,
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"></svg>".to_vec(),
            "image/png",
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["file"]);
    // Over 2 MB. (Far bigger bodies are cut off by the body limit while still being sent, which
    // the client sees as a broken connection, so the case tested is the one a user hits.)
    let big = [b"\x89PNG\r\n\x1a\n".as_slice(), &vec![0u8; 2 * 1024 * 1024]].concat();
    let body = expect_problem(
        put_avatar(&app, &owner, &cid, big, "image/png").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    assert_eq!(problem_fields(&body), ["file"], "{body}");
    // Not multipart at all.
    expect_problem(
        app.request_as(
            &owner,
            Method::PUT,
            &format!("/api/v1/contacts/{cid}/avatar"),
        )
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // No file part.
    let form = reqwest::multipart::Form::new().text("other", "x");
    let body = expect_problem(
        app.request_as(
            &owner,
            Method::PUT,
            &format!("/api/v1/contacts/{cid}/avatar"),
        )
        .multipart(form)
        .send()
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["file"]);
    // Nothing was stored.
    let got = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{cid}")).await,
        StatusCode::OK,
    )
    .await;
    assert!(got["avatar_url"].is_null(), "{got}");
}

async fn a_merge_survivor_keeps_its_photo_or_takes_the_merged_one(app: TestApp) {
    let owner = app.register("owner@acme.example", "Acme").await;
    let photo_of = |c: &Value| c["avatar_url"].as_str().unwrap().to_owned();
    let merge = |into: &str, other: &str| {
        let path = format!("/api/v1/contacts/{into}/merge");
        let body = json!({"other_id": other});
        let app = &app;
        let owner = &owner;
        async move { expect_json(app.post_as(owner, &path, &body).await, StatusCode::OK).await }
    };

    // Both have one: the survivor keeps its own, the merged one's is deleted.
    let keep = id(&create(&app, &owner, json!({"name": "Keep"})).await);
    let gone = id(&create(&app, &owner, json!({"name": "Gone"})).await);
    let keep_url = photo_of(
        &expect_json(
            put_avatar(&app, &owner, &keep, png(1), "image/png").await,
            StatusCode::OK,
        )
        .await,
    );
    let gone_url = photo_of(
        &expect_json(
            put_avatar(&app, &owner, &gone, png(2), "image/png").await,
            StatusCode::OK,
        )
        .await,
    );
    let out = merge(&keep, &gone).await;
    assert_eq!(out["avatar_url"], keep_url.as_str());
    assert_eq!(fetch_photo(&app, &keep_url).await.0, StatusCode::OK);
    assert_eq!(fetch_photo(&app, &gone_url).await.0, StatusCode::NOT_FOUND);

    // The survivor has none: it takes the merged one's, under its own key.
    let bare = id(&create(&app, &owner, json!({"name": "Bare"})).await);
    let donor = id(&create(&app, &owner, json!({"name": "Donor"})).await);
    let donor_png = png(7);
    let donor_url = photo_of(
        &expect_json(
            put_avatar(&app, &owner, &donor, donor_png.clone(), "image/png").await,
            StatusCode::OK,
        )
        .await,
    );
    let out = merge(&bare, &donor).await;
    let taken = photo_of(&out);
    assert!(taken.contains(&format!("/{bare}/")), "{taken}");
    let (status, _, bytes) = fetch_photo(&app, &taken).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, donor_png);
    assert_eq!(fetch_photo(&app, &donor_url).await.0, StatusCode::NOT_FOUND);
    let got = expect_json(
        app.get_as(&owner, &format!("/api/v1/contacts/{bare}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["avatar_url"], taken.as_str());
}

app_tests!(
    export_survives_compression,
    senders_resolved_together_are_published_and_cached_as_stored,
    crud_round_trip,
    phones_are_normalised_with_the_default_country,
    duplicate_identities_name_the_contact_that_has_them,
    attributes_are_validated_against_their_definitions,
    search_matches_prefixes_of_names_identities_and_attributes,
    keyset_paging_has_no_duplicates_or_gaps,
    writes_invalidate_the_cached_contact,
    changes_are_published_as_events,
    bad_input_is_refused_with_the_field,
    other_organisations_cannot_reach_contacts,
    tags_and_groups_have_unique_names_and_valid_colours,
    bulk_membership_drives_the_tag_and_group_filters,
    bulk_with_a_foreign_or_bad_id_writes_nothing,
    consent_ledger_keeps_history_and_answers_may_send,
    merge_moves_everything_to_the_survivor_and_is_recorded,
    export_is_the_filtered_view_with_formulas_neutralised,
    a_thousand_rows_with_ten_bad_ones_import_990,
    a_second_import_updates_or_skips_duplicates,
    junk_uploads_are_refused_with_the_field,
    other_organisations_cannot_reach_imports,
    segment_operators_match_exactly,
    segments_compose_with_the_list_and_page,
    invalid_segment_filters_name_the_path,
    other_organisations_cannot_reach_segments,
    cached_segment_counts_follow_every_write,
    contact_photos_are_stored_replaced_and_removed,
    bad_photos_are_refused_with_the_field,
    a_merge_survivor_keeps_its_photo_or_takes_the_merged_one,
);
