//! Contacts through the HTTP API, on every backend.

// Test helpers unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::{collections::HashSet, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
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
    assert_eq!(e.data["contact"], c);

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
    assert_eq!(e.data["contact"]["name"], "Ana Lima");
    assert_eq!(e.data["changed"], json!(["name", "favorite"]));
    assert_eq!(e.data["contact"]["identities"][0]["value"], "+14155552671");

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
    assert_eq!(e.data["changed"], json!(["identities"]));
    assert_eq!(e.data["contact"]["identities"][1], added);

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
    assert_eq!(e.data["contact"]["id"], cid.as_str());
    assert_eq!(e.data["contact"]["name"], "Ana Lima");
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

    let a_owner = app.register("owner@a.example", "Org A").await;
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
            Probe::patch(
                "/api/v1/contact-attributes/city".to_owned(),
                json!({"label": "Town"}),
            ),
            Probe::delete("/api/v1/contact-attributes/tier".to_owned()),
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

app_tests!(
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
);
