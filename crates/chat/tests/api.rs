//! Team chat through the real app: REST, the realtime gateway and background jobs, on every
//! backend.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wamage_testkit::{
    TestApp, TestUser, app_tests, expect_json, expect_problem, problem_fields,
    tenancy::{Probe, assert_isolated},
};

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn channel(app: &TestApp, who: &TestUser, body: Value) -> Value {
    expect_json(
        app.post_as(who, "/api/v1/chat/channels", &body).await,
        StatusCode::CREATED,
    )
    .await
}

async fn post(app: &TestApp, who: &TestUser, ch: &str, body: Value) -> Value {
    expect_json(
        app.post_as(who, &format!("/api/v1/chat/channels/{ch}/messages"), &body)
            .await,
        StatusCode::CREATED,
    )
    .await
}

async fn say(app: &TestApp, who: &TestUser, ch: &str, text: &str) -> Value {
    post(app, who, ch, json!({ "text": text })).await
}

async fn get(app: &TestApp, who: &TestUser, path: &str) -> Value {
    expect_json(app.get_as(who, path).await, StatusCode::OK).await
}

fn texts(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

fn listed<'a>(list: &'a Value, ch: &str) -> &'a Value {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == ch)
        .unwrap_or_else(|| panic!("channel {ch} not listed: {list}"))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs `who` in again (access tokens last 15 minutes of the test clock).
async fn relogin(app: &TestApp, who: &mut TestUser) {
    let body = expect_json(app.login(&who.email, &who.password).await, StatusCode::OK).await;
    who.access_token = body["access_token"].as_str().unwrap().to_owned();
}

/// Ana (owner), Ben (agent) and Cid (agent) of Acme.
async fn team(app: &TestApp) -> (TestUser, TestUser, TestUser) {
    let ana = app.register("ana@acme.example", "Acme").await;
    let ben = app.add_member(&ana, "ben@acme.example", "agent").await;
    let cid = app.add_member(&ana, "cid@acme.example", "agent").await;
    (ana, ben, cid)
}

async fn channels_and_dms(app: TestApp) {
    let (ana, ben, cid) = team(&app).await;
    let general = channel(
        &app,
        &ana,
        json!({"kind": "public", "name": "  General ", "topic": "Everything", "member_ids": [ben.user_id]}),
    )
    .await;
    assert_eq!(general["name"], "General");
    assert_eq!(general["kind"], "public");
    assert_eq!(general["my_role"], "admin");
    assert_eq!(general["joined"], true);
    assert_eq!(general["member_count"], 2);
    assert_eq!(general["disappearing"], "off");
    assert_eq!(
        general["members_preview"][0]["user_id"],
        ben.user_id.as_str()
    );
    assert_eq!(general["members_preview"][0]["name"], "ben");
    let gid = id(&general);

    // Names are unique ignoring case; bad fields are all named.
    let res = app
        .post_as(
            &ben,
            "/api/v1/chat/channels",
            &json!({"kind": "private", "name": "GENERAL"}),
        )
        .await;
    let body = expect_problem(res, StatusCode::CONFLICT, "name_taken").await;
    assert_eq!(problem_fields(&body), vec!["name"]);
    let res = app
        .post_as(
            &ben,
            "/api/v1/chat/channels",
            &json!({"kind": "dm", "name": "a/b", "topic": "x".repeat(251), "member_ids": [uuid::Uuid::now_v7()]}),
        )
        .await;
    let body = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(
        problem_fields(&body),
        vec!["kind", "name", "topic", "member_ids[0]"]
    );
    let res = app
        .post_as(
            &ben,
            "/api/v1/chat/channels",
            &json!({"kind": "secret", "name": "x"}),
        )
        .await;
    let body = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&body), vec!["kind"]);

    let private = channel(&app, &ben, json!({"kind": "private", "name": "Deals"})).await;
    let pid = id(&private);
    // Cid is not in the private channel: he cannot see it, nor does it show in browse.
    let res = app
        .get_as(&cid, &format!("/api/v1/chat/channels/{pid}"))
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "not_a_member").await;
    let browse = get(&app, &cid, "/api/v1/chat/channels/browse").await;
    let names: Vec<&str> = browse["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["General"]);
    assert_eq!(browse["items"][0]["joined"], false);
    let browse = get(&app, &cid, "/api/v1/chat/channels/browse?q=ner").await;
    assert_eq!(browse["items"].as_array().unwrap().len(), 1);
    let browse = get(&app, &cid, "/api/v1/chat/channels/browse?q=zzz").await;
    assert!(browse["items"].as_array().unwrap().is_empty());
    // But a public channel can be looked at, then joined.
    let seen = get(&app, &cid, &format!("/api/v1/chat/channels/{gid}")).await;
    assert_eq!(seen["joined"], false);
    assert_eq!(seen["my_role"], Value::Null);
    let joined = expect_json(
        app.post_as(
            &cid,
            &format!("/api/v1/chat/channels/{gid}/join"),
            &json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(joined["joined"], true);
    assert_eq!(joined["my_role"], "member");
    assert_eq!(joined["member_count"], 3);
    let res = app
        .post_as(
            &cid,
            &format!("/api/v1/chat/channels/{pid}/join"),
            &json!({}),
        )
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "not_a_member").await;

    // The same people always get the same DM; 2+ others make a group DM.
    let res = app
        .post_as(
            &ana,
            "/api/v1/chat/dms",
            &json!({"user_ids": [ben.user_id]}),
        )
        .await;
    let dm = expect_json(res, StatusCode::CREATED).await;
    assert_eq!(dm["kind"], "dm");
    assert_eq!(dm["name"], Value::Null);
    assert_eq!(dm["members_preview"].as_array().unwrap().len(), 1);
    let res = app
        .post_as(
            &ben,
            "/api/v1/chat/dms",
            &json!({"user_ids": [ana.user_id, ben.user_id]}),
        )
        .await;
    let again = expect_json(res, StatusCode::OK).await;
    assert_eq!(again["id"], dm["id"]);
    let group = expect_json(
        app.post_as(
            &ana,
            "/api/v1/chat/dms",
            &json!({"user_ids": [ben.user_id, cid.user_id]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(group["kind"], "group_dm");
    assert_eq!(group["member_count"], 3);
    for (body, field) in [
        (json!({"user_ids": []}), "user_ids"),
        (json!({"user_ids": [ana.user_id]}), "user_ids"),
        (json!({"user_ids": [uuid::Uuid::now_v7()]}), "user_ids[0]"),
        (
            json!({"user_ids": [ben.user_id, ben.user_id]}),
            "user_ids[1]",
        ),
        (json!({"user_ids": "ben"}), "user_ids"),
    ] {
        let res = app.post_as(&ana, "/api/v1/chat/dms", &body).await;
        let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem_fields(&p), vec![field], "{body}");
    }

    // Ana's list: her channels and DMs, most recently active first.
    app.clock.advance(Duration::from_secs(1));
    say(&app, &ana, &gid, "hello").await;
    let list = get(&app, &ana, "/api/v1/chat/channels").await;
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{list}");
    assert_eq!(ids[0], gid);
    assert_eq!(listed(&list, &gid)["last_message"]["text"], "hello");

    // Rename, topic, archive: channel admins and organisation admins only.
    let res = app
        .patch_as(
            &cid,
            &format!("/api/v1/chat/channels/{gid}"),
            &json!({"name": "x"}),
        )
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let renamed = expect_json(
        app.patch_as(
            &ana,
            &format!("/api/v1/chat/channels/{gid}"),
            &json!({"name": "Town square", "topic": null}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["name"], "Town square");
    assert_eq!(renamed["topic"], Value::Null);
    let res = app
        .patch_as(
            &ana,
            &format!("/api/v1/chat/channels/{gid}"),
            &json!({"name": "deals"}),
        )
        .await;
    expect_problem(res, StatusCode::CONFLICT, "name_taken").await;
    // DMs: any member may set disappearing messages, nothing else.
    let dmid = id(&dm);
    let res = app
        .patch_as(
            &ben,
            &format!("/api/v1/chat/channels/{dmid}"),
            &json!({"name": "x"}),
        )
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["name"]);
    let res = app
        .patch_as(
            &ben,
            &format!("/api/v1/chat/channels/{dmid}"),
            &json!({"disappearing": "7d"}),
        )
        .await;
    assert_eq!(expect_json(res, StatusCode::OK).await["disappearing"], "7d");
    let res = app
        .patch_as(
            &ben,
            &format!("/api/v1/chat/channels/{dmid}"),
            &json!({"disappearing": "1y"}),
        )
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["disappearing"]);

    // Archived: listed only on request, no posting.
    let archived = expect_json(
        app.patch_as(
            &ana,
            &format!("/api/v1/chat/channels/{gid}"),
            &json!({"archived": true}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(archived["archived"], true);
    let list = get(&app, &ana, "/api/v1/chat/channels").await;
    assert!(
        !list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == gid)
    );
    let list = get(&app, &ana, "/api/v1/chat/channels?archived=true").await;
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == gid)
    );
    let res = app
        .post_as(
            &ben,
            &format!("/api/v1/chat/channels/{gid}/messages"),
            &json!({"text": "hi"}),
        )
        .await;
    expect_problem(res, StatusCode::CONFLICT, "archived").await;

    // Ids that are not UUIDs are 400; unknown ids are 404.
    let res = app.get_as(&ana, "/api/v1/chat/channels/nope").await;
    expect_problem(res, StatusCode::BAD_REQUEST, "bad_request").await;
    let res = app.get_as(&ana, "/api/v1/chat/messages/nope/thread").await;
    expect_problem(res, StatusCode::BAD_REQUEST, "bad_request").await;
    let ghost = uuid::Uuid::now_v7();
    let res = app
        .get_as(&ana, &format!("/api/v1/chat/channels/{ghost}"))
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = app
        .post_as(
            &ana,
            &format!("/api/v1/chat/channels/{ghost}/messages"),
            &json!({"text": "x"}),
        )
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
}

async fn members_and_admins(app: TestApp) {
    let (ana, ben, cid) = team(&app).await;
    let ch = id(&channel(&app, &ben, json!({"kind": "private", "name": "ops"})).await);
    let path = format!("/api/v1/chat/channels/{ch}/members");
    // Ben (channel admin) adds Cid; Cid (member) may not add anyone.
    let list = expect_json(
        app.post_as(&ben, &path, &json!({"user_ids": [cid.user_id]}))
            .await,
        StatusCode::OK,
    )
    .await;
    let roles: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, vec![("ben", "admin"), ("cid", "member")]);
    let res = app
        .post_as(&cid, &path, &json!({"user_ids": [ana.user_id]}))
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app
        .post_as(
            &ben,
            &path,
            &json!({"user_ids": [uuid::Uuid::now_v7()], "role": "boss"}),
        )
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["role"]);
    // Ana is an organisation owner: she may manage channels she is not in.
    expect_json(
        app.post_as(
            &ana,
            &path,
            &json!({"user_ids": [cid.user_id], "role": "admin"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let list = get(&app, &cid, &path).await;
    assert_eq!(list["items"][1]["role"], "admin");
    // Cid leaves; then he is no longer a member.
    let res = app
        .request_as(
            &cid,
            Method::POST,
            &format!("/api/v1/chat/channels/{ch}/leave"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .post_as(
            &cid,
            &format!("/api/v1/chat/channels/{ch}/messages"),
            &json!({"text": "hi"}),
        )
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "not_a_member").await;
    let res = app.get_as(&cid, &path).await;
    expect_problem(res, StatusCode::FORBIDDEN, "not_a_member").await;
    // Removing someone who is not a member is 404; a member cannot remove others.
    let res = app
        .delete_as(&ben, &format!("{path}/{}", cid.user_id))
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    // DMs keep their members.
    let dm = expect_json(
        app.post_as(
            &ana,
            "/api/v1/chat/dms",
            &json!({"user_ids": [ben.user_id]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let res = app
        .post_as(
            &ana,
            &format!("/api/v1/chat/channels/{}/members", id(&dm)),
            &json!({"user_ids": [cid.user_id]}),
        )
        .await;
    expect_problem(res, StatusCode::CONFLICT, "dm_members_fixed").await;
    let res = app
        .request_as(
            &ben,
            Method::POST,
            &format!("/api/v1/chat/channels/{}/leave", id(&dm)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
}

async fn messages_threads_edits_and_reactions(app: TestApp) {
    let (ana, ben, cid) = team(&app).await;
    let ch = id(&channel(
        &app,
        &ana,
        json!({"kind": "public", "name": "general", "member_ids": [ben.user_id]}),
    )
    .await);
    let text = format!(
        "**Hi** @[Ben](user:{}) and @[Ghost](user:{}) — @channel",
        ben.user_id,
        uuid::Uuid::now_v7()
    );
    let m = say(&app, &ana, &ch, &text).await;
    assert_eq!(
        m["text"],
        text.as_str(),
        "markdown and tokens are kept as written"
    );
    assert_eq!(
        m["mentions"],
        json!([ben.user_id]),
        "only members of the organisation"
    );
    assert_eq!(m["mentions_channel"], true);
    assert_eq!(m["author"]["name"], "ana");
    assert_eq!(m["edited_at"], Value::Null);
    assert_eq!(m["deleted"], false);
    let mid = id(&m);

    // Bad input: all named, nothing stored.
    let path = format!("/api/v1/chat/channels/{ch}/messages");
    for (body, field) in [
        (json!({"text": "x".repeat(8001)}), "text"),
        (json!({"text": "   "}), "text"),
        (json!({}), "text"),
        (json!({"text": 5}), "text"),
        (
            json!({"text": "x", "thread_id": uuid::Uuid::now_v7()}),
            "thread_id",
        ),
        (
            json!({"text": "x", "quote_id": uuid::Uuid::now_v7()}),
            "quote_id",
        ),
        (
            json!({"text": "x", "attachment_ids": [uuid::Uuid::now_v7()]}),
            "attachment_ids[0]",
        ),
    ] {
        let res = app.post_as(&ana, &path, &body).await;
        let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem_fields(&p), vec![field], "{body}");
    }
    let res = app
        .post_as(&ana, &path, &json!({"text": "x", "colour": "red"}))
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // Exactly 8000 characters (multi-byte) is fine.
    say(&app, &ana, &ch, &"é".repeat(8000)).await;
    // Cid is not a member of the public channel: he may read it, not post in it.
    let res = app.post_as(&cid, &path, &json!({"text": "hi"})).await;
    expect_problem(res, StatusCode::FORBIDDEN, "not_a_member").await;
    assert_eq!(
        get(&app, &cid, &path).await["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Threads: replies are counted on the parent and live in the thread only.
    let r1 = post(
        &app,
        &ben,
        &ch,
        json!({"text": "reply one", "thread_id": mid}),
    )
    .await;
    assert_eq!(r1["thread_id"], mid.as_str());
    post(
        &app,
        &ana,
        &ch,
        json!({"text": "reply two", "thread_id": mid}),
    )
    .await;
    let res = app
        .post_as(
            &ana,
            &path,
            &json!({"text": "nested", "thread_id": id(&r1)}),
        )
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["thread_id"]);
    let thread = get(&app, &ben, &format!("/api/v1/chat/messages/{mid}/thread")).await;
    assert_eq!(thread["parent"]["reply_count"], 2);
    assert!(thread["parent"]["last_reply_at"].is_string());
    assert_eq!(texts(&thread), vec!["reply one", "reply two"]);
    assert_eq!(thread["has_more_after"], false);
    let thread = get(
        &app,
        &ben,
        &format!("/api/v1/chat/messages/{mid}/thread?limit=1"),
    )
    .await;
    assert_eq!(texts(&thread), vec!["reply one"]);
    assert_eq!(thread["has_more_after"], true);
    let thread = get(
        &app,
        &ben,
        &format!("/api/v1/chat/messages/{mid}/thread?after={}", id(&r1)),
    )
    .await;
    assert_eq!(texts(&thread), vec!["reply two"]);
    let history = get(&app, &ben, &path).await;
    assert_eq!(
        history["items"].as_array().unwrap().len(),
        2,
        "no replies in history"
    );

    // Quote-reply.
    let q = post(&app, &ben, &ch, json!({"text": "agreed", "quote_id": mid})).await;
    assert_eq!(q["quote"]["id"], mid.as_str());
    assert_eq!(q["quote"]["author_name"], "ana");
    assert_eq!(q["quote"]["text"], text.as_str());

    // Edit: the author only.
    let mpath = format!("/api/v1/chat/messages/{mid}");
    let res = app
        .patch_as(&ben, &mpath, &json!({"text": "hijacked"}))
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app
        .patch_as(&ana, &mpath, &json!({"text": "y".repeat(8001)}))
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["text"]);
    let edited = expect_json(
        app.patch_as(&ana, &mpath, &json!({"text": "Hi all"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(edited["text"], "Hi all");
    assert!(edited["edited_at"].is_string());
    assert_eq!(edited["mentions"], json!([]));
    assert_eq!(edited["mentions_channel"], false);

    // Reactions.
    let rpath = format!("{mpath}/reactions/{}", urlencode("👍"));
    let r = expect_json(app.put_as(&ben, &rpath).await, StatusCode::OK).await;
    assert_eq!(
        r["reactions"],
        json!([{"emoji": "👍", "count": 1, "me": true, "user_ids": [ben.user_id]}])
    );
    expect_json(app.put_as(&ben, &rpath).await, StatusCode::OK).await;
    let r = expect_json(app.put_as(&ana, &rpath).await, StatusCode::OK).await;
    assert_eq!(r["reactions"][0]["count"], 2);
    let r = expect_json(app.delete_as(&ben, &rpath).await, StatusCode::OK).await;
    assert_eq!(r["reactions"][0]["count"], 1);
    assert_eq!(r["reactions"][0]["me"], false);
    let res = app
        .put_as(&ben, &format!("{mpath}/reactions/{}", "x".repeat(33)))
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["emoji"]);
    let res = app.put_as(&cid, &rpath).await;
    expect_problem(res, StatusCode::FORBIDDEN, "not_a_member").await;

    // Pins.
    let pinned = expect_json(
        app.put_as(&ben, &format!("{mpath}/pin")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(pinned["pinned"], true);
    let pins = get(&app, &cid, &format!("/api/v1/chat/channels/{ch}/pins")).await;
    assert_eq!(texts(&pins), vec!["Hi all"]);
    let unpinned = expect_json(
        app.delete_as(&ben, &format!("{mpath}/pin")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unpinned["pinned"], false);

    // Forward to a DM: marked with where it came from.
    let dm = expect_json(
        app.post_as(
            &ben,
            "/api/v1/chat/dms",
            &json!({"user_ids": [cid.user_id]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let fwd = expect_json(
        app.post_as(
            &ben,
            &format!("{mpath}/forward"),
            &json!({"channel_id": id(&dm), "text": "look"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(fwd["channel_id"], dm["id"]);
    assert_eq!(fwd["text"], "Hi all");
    assert_eq!(fwd["forwarded_from"]["message_id"], mid.as_str());
    assert_eq!(fwd["forwarded_from"]["channel_id"], ch.as_str());
    assert_eq!(fwd["forwarded_from"]["author_name"], "ana");
    let dm_history = get(
        &app,
        &cid,
        &format!("/api/v1/chat/channels/{}/messages", id(&dm)),
    )
    .await;
    assert_eq!(texts(&dm_history), vec!["look", "Hi all"]);
    // Ana may not forward into a DM she is not in.
    let res = app
        .post_as(
            &ana,
            &format!("{mpath}/forward"),
            &json!({"channel_id": id(&dm)}),
        )
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "not_a_member").await;

    // Delete: the author or an admin; the message stays as a tombstone.
    let bens = say(&app, &ben, &ch, "oops").await;
    let res = app
        .delete_as(&cid, &format!("/api/v1/chat/messages/{}", id(&bens)))
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "not_a_member").await;
    let res = app
        .delete_as(&ana, &format!("/api/v1/chat/messages/{}", id(&bens)))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::NO_CONTENT,
        "a channel admin may delete"
    );
    let res = app.delete_as(&ben, &mpath).await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app.delete_as(&ana, &mpath).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let history = get(&app, &ben, &path).await;
    let gone = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == mid.as_str())
        .unwrap();
    assert_eq!(gone["deleted"], true);
    assert_eq!(gone["text"], "");
    assert_eq!(gone["reactions"], json!([]));
    let quote = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == q["id"])
        .unwrap();
    assert_eq!(quote["quote"]["deleted"], true);
    assert_eq!(quote["quote"]["text"], "");
    let res = app.patch_as(&ana, &mpath, &json!({"text": "back"})).await;
    expect_problem(res, StatusCode::CONFLICT, "message_deleted").await;
    let res = app.put_as(&ben, &rpath).await;
    expect_problem(res, StatusCode::CONFLICT, "message_deleted").await;
    let res = app
        .delete_as(
            &ana,
            &format!("/api/v1/chat/messages/{}", uuid::Uuid::now_v7()),
        )
        .await;
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
}

async fn read_markers_and_receipts(app: TestApp) {
    let (ana, ben, cid) = team(&app).await;
    let ch = id(&channel(
        &app,
        &ana,
        json!({"kind": "private", "name": "team", "member_ids": [ben.user_id, cid.user_id]}),
    )
    .await);
    let m1 = say(&app, &ben, &ch, "one").await;
    let m2 = say(
        &app,
        &ben,
        &ch,
        &format!("two @[Ana](user:{})", ana.user_id),
    )
    .await;
    let m3 = say(&app, &cid, &ch, "three @here").await;
    say(&app, &ana, &ch, "my own").await;
    let list = get(&app, &ana, "/api/v1/chat/channels").await;
    let c = listed(&list, &ch);
    // Ana's own message moved her marker: everything before it counts as read.
    assert_eq!(c["unread_count"], 0);
    assert_eq!(c["mention_count"], 0);
    let list = get(&app, &ben, "/api/v1/chat/channels").await;
    let c = listed(&list, &ch);
    assert_eq!(c["unread_count"], 2, "cid's and ana's, not his own: {c}");
    assert_eq!(c["mention_count"], 1, "@here");
    assert_eq!(c["last_message"]["text"], "my own");
    assert_eq!(c["last_read_id"], m2["id"]);

    // Ben reads up to m3: one unread left, no mentions; the marker never moves back.
    let read = format!("/api/v1/chat/channels/{ch}/read");
    let res = app
        .post_as(&ben, &read, &json!({"message_id": m3["id"]}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .post_as(&ben, &read, &json!({"message_id": m1["id"]}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let c = get(&app, &ben, &format!("/api/v1/chat/channels/{ch}")).await;
    assert_eq!(c["unread_count"], 1);
    assert_eq!(c["mention_count"], 0);
    assert_eq!(c["last_read_id"], m3["id"]);
    let res = app
        .post_as(&ben, &read, &json!({"message_id": uuid::Uuid::now_v7()}))
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["message_id"]);
    // Cid starts with everything of others unread (except before his own message).
    let c = get(&app, &cid, &format!("/api/v1/chat/channels/{ch}")).await;
    assert_eq!(c["unread_count"], 1);

    // Read receipts in DMs only.
    let page = get(&app, &ana, &format!("/api/v1/chat/channels/{ch}/messages")).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["read_by"] == json!([]))
    );
    let dm = id(&expect_json(
        app.post_as(
            &ana,
            "/api/v1/chat/dms",
            &json!({"user_ids": [ben.user_id]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await);
    let d1 = say(&app, &ana, &dm, "ping").await;
    assert_eq!(d1["read_by"], json!([]));
    let res = app
        .post_as(
            &ben,
            &format!("/api/v1/chat/channels/{dm}/read"),
            &json!({"message_id": d1["id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let page = get(&app, &ana, &format!("/api/v1/chat/channels/{dm}/messages")).await;
    assert_eq!(page["items"][0]["read_by"], json!([ben.user_id]));
    let list = get(&app, &ana, "/api/v1/chat/channels").await;
    assert_eq!(
        listed(&list, &dm)["last_message"]["read_by"],
        json!([ben.user_id])
    );
}

async fn history_pages_both_ways(app: TestApp) {
    let (ana, _, _) = team(&app).await;
    let ch = id(&channel(&app, &ana, json!({"kind": "public", "name": "log"})).await);
    let mut ids = Vec::new();
    for i in 1..=7 {
        ids.push(id(&say(&app, &ana, &ch, &format!("m{i}")).await));
        app.clock.advance(Duration::from_millis(10));
    }
    let path = format!("/api/v1/chat/channels/{ch}/messages");
    let latest = get(&app, &ana, &format!("{path}?limit=3")).await;
    assert_eq!(texts(&latest), vec!["m5", "m6", "m7"]);
    assert_eq!(latest["has_more_before"], true);
    assert_eq!(latest["has_more_after"], false);
    let older = get(&app, &ana, &format!("{path}?limit=3&before={}", ids[4])).await;
    assert_eq!(texts(&older), vec!["m2", "m3", "m4"]);
    assert_eq!(older["has_more_before"], true);
    assert_eq!(older["has_more_after"], true);
    let oldest = get(&app, &ana, &format!("{path}?limit=3&before={}", ids[1])).await;
    assert_eq!(texts(&oldest), vec!["m1"]);
    assert_eq!(oldest["has_more_before"], false);
    let newer = get(&app, &ana, &format!("{path}?limit=2&after={}", ids[0])).await;
    assert_eq!(texts(&newer), vec!["m2", "m3"]);
    assert_eq!(newer["has_more_before"], true);
    assert_eq!(newer["has_more_after"], true);
    let newest = get(&app, &ana, &format!("{path}?limit=5&after={}", ids[4])).await;
    assert_eq!(texts(&newest), vec!["m6", "m7"]);
    assert_eq!(newest["has_more_after"], false);
    let around = get(&app, &ana, &format!("{path}?limit=3&around={}", ids[3])).await;
    assert_eq!(texts(&around), vec!["m3", "m4", "m5"]);
    assert_eq!(around["has_more_before"], true);
    assert_eq!(around["has_more_after"], true);
    // Near the start, the page fills up with newer messages.
    let around = get(&app, &ana, &format!("{path}?limit=4&around={}", ids[0])).await;
    assert_eq!(texts(&around), vec!["m1", "m2", "m3", "m4"]);
    assert_eq!(around["has_more_after"], true);
    assert_eq!(around["has_more_before"], false);
    // Jumping to a thread reply shows its parent.
    let reply = post(&app, &ana, &ch, json!({"text": "r", "thread_id": ids[5]})).await;
    let around = get(&app, &ana, &format!("{path}?limit=1&around={}", id(&reply))).await;
    assert_eq!(texts(&around), vec!["m6"]);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        (
            &format!("before={}&after={}", ids[1], ids[2]) as &str,
            "before",
        ),
        (
            &format!("around={}", uuid::Uuid::now_v7()) as &str,
            "around",
        ),
    ] {
        let res = app.get_as(&ana, &format!("{path}?{q}")).await;
        let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(problem_fields(&p), vec![field], "{q}");
    }
    let res = app.get_as(&ana, &format!("{path}?before=nope")).await;
    assert!(res.status().is_client_error());
}

async fn search_covers_my_channels_only(app: TestApp) {
    let (ana, ben, _) = team(&app).await;
    let open = id(&channel(&app, &ana, json!({"kind": "public", "name": "open"})).await);
    let secret = id(&channel(&app, &ana, json!({"kind": "private", "name": "secret"})).await);
    let bens = id(&channel(&app, &ben, json!({"kind": "private", "name": "bens"})).await);
    say(&app, &ana, &open, "Quarterly invoice for Globex").await;
    say(&app, &ana, &secret, "Invoices are overdue").await;
    say(&app, &ben, &bens, "invoice of Ben").await;
    let gone = say(&app, &ana, &open, "invoice deleted").await;
    app.delete_as(&ana, &format!("/api/v1/chat/messages/{}", id(&gone)))
        .await;
    let hits = get(&app, &ana, "/api/v1/chat/search?q=invoic").await;
    let mut found = texts(&hits);
    found.sort();
    assert_eq!(
        found,
        vec!["Invoices are overdue", "Quarterly invoice for Globex"]
    );
    let hits = get(&app, &ana, "/api/v1/chat/search?q=invoice%20glo").await;
    assert_eq!(texts(&hits), vec!["Quarterly invoice for Globex"]);
    let hits = get(
        &app,
        &ana,
        &format!("/api/v1/chat/search?q=invoice&channel_id={secret}"),
    )
    .await;
    assert_eq!(texts(&hits), vec!["Invoices are overdue"]);
    // Ben is in no channel of Ana's: only his own.
    let hits = get(&app, &ben, "/api/v1/chat/search?q=invoice").await;
    assert_eq!(texts(&hits), vec!["invoice of Ben"]);
    // Another organisation finds nothing.
    let eve = app.register("eve@evil.example", "Evil").await;
    let hits = get(&app, &eve, "/api/v1/chat/search?q=invoice").await;
    assert!(hits["items"].as_array().unwrap().is_empty());
    // Quotes and operators are words, not syntax.
    let hits = get(
        &app,
        &ana,
        &format!("/api/v1/chat/search?q={}", urlencode("\"invoice' OR * -x")),
    )
    .await;
    assert!(hits["items"].is_array());
    for q in ["", "q=", "q=%20%2B%2B", "q=invoice&limit=0"] {
        let res = app.get_as(&ana, &format!("/api/v1/chat/search?{q}")).await;
        expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
}

async fn chat_lock(app: TestApp) {
    let (ana, ben, _) = team(&app).await;
    let dm = id(&expect_json(
        app.post_as(
            &ana,
            "/api/v1/chat/dms",
            &json!({"user_ids": [ben.user_id]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await);
    say(&app, &ben, &dm, "the secret plan").await;
    let lock = format!("/api/v1/chat/channels/{dm}/lock");
    let res = app
        .request_as(&ana, Method::PUT, &lock)
        .json(&json!({"password": "wrong password"}))
        .send()
        .await
        .unwrap();
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["password"]);
    let res = app
        .request_as(&ana, Method::PUT, &lock)
        .json(&json!({"password": ana.password}))
        .send()
        .await
        .unwrap();
    let c = expect_json(res, StatusCode::OK).await;
    assert_eq!(c["locked"], true);
    assert_eq!(c["last_message"], Value::Null);
    let list = get(&app, &ana, "/api/v1/chat/channels").await;
    let c = listed(&list, &dm);
    assert_eq!(c["locked"], true);
    assert_eq!(
        c["last_message"],
        Value::Null,
        "no preview of a locked chat"
    );
    // Ben did not lock it: he still sees it.
    let list = get(&app, &ben, "/api/v1/chat/channels").await;
    assert_eq!(
        listed(&list, &dm)["last_message"]["text"],
        "the secret plan"
    );

    let msgs = format!("/api/v1/chat/channels/{dm}/messages");
    let res = app.get_as(&ana, &msgs).await;
    expect_problem(res, StatusCode::FORBIDDEN, "chat_locked").await;
    let res = app
        .get_as(&ana, &format!("/api/v1/chat/channels/{dm}/pins"))
        .await;
    expect_problem(res, StatusCode::FORBIDDEN, "chat_locked").await;
    let hits = get(&app, &ana, "/api/v1/chat/search?q=secret").await;
    assert!(
        hits["items"].as_array().unwrap().is_empty(),
        "locked chats are not searched"
    );

    let unlock = format!("/api/v1/chat/channels/{dm}/unlock");
    let res = app
        .post_as(&ana, &unlock, &json!({"password": "nope"}))
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let grant = expect_json(
        app.post_as(&ana, &unlock, &json!({"password": ana.password}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(grant["expires_in"], 600);
    let token = grant["unlock_token"].as_str().unwrap();
    let res = app
        .request_as(&ana, Method::GET, &msgs)
        .header("X-Chat-Unlock", token)
        .send()
        .await
        .unwrap();
    let page = expect_json(res, StatusCode::OK).await;
    assert_eq!(texts(&page), vec!["the secret plan"]);
    let res = app
        .request_as(&ana, Method::GET, "/api/v1/chat/search?q=secret")
        .header("X-Chat-Unlock", token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        texts(&expect_json(res, StatusCode::OK).await),
        vec!["the secret plan"]
    );
    // The token is Ana's: Ben's is not needed and Ana's does not open another channel.
    let other = id(&channel(&app, &ana, json!({"kind": "private", "name": "x"})).await);
    let res = app
        .request_as(
            &ana,
            Method::PUT,
            &format!("/api/v1/chat/channels/{other}/lock"),
        )
        .json(&json!({"password": ana.password}))
        .send()
        .await
        .unwrap();
    expect_json(res, StatusCode::OK).await;
    let res = app
        .request_as(
            &ana,
            Method::GET,
            &format!("/api/v1/chat/channels/{other}/messages"),
        )
        .header("X-Chat-Unlock", token)
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "chat_locked").await;
    let res = app
        .request_as(&ana, Method::GET, &msgs)
        .header("X-Chat-Unlock", "forged")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "chat_locked").await;
    // Removing the lock needs the password again.
    let res = app
        .request_as(&ana, Method::DELETE, &lock)
        .json(&json!({"password": ana.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(res, StatusCode::OK).await["locked"], false);
    get(&app, &ana, &msgs).await;
    // Guessing is limited: 10 wrong passwords (2 above), then even the right one waits.
    let mut refused = 0;
    for _ in 0..12 {
        let res = app
            .post_as(&ana, &unlock, &json!({"password": "guess"}))
            .await;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        refused += 1;
    }
    assert_eq!(refused, 8);
    let res = app
        .post_as(&ana, &unlock, &json!({"password": ana.password}))
        .await;
    expect_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

/// A PNG of `w`×`h` pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

async fn upload(
    app: &TestApp,
    who: &TestUser,
    bytes: Vec<u8>,
    name: &str,
    content_type: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(content_type)
            .unwrap(),
    );
    for (k, v) in extra {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    app.request_as(who, Method::POST, "/api/v1/chat/attachments")
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn attachments(app: TestApp) {
    let (ana, ben, cid) = team(&app).await;
    let dm = id(&expect_json(
        app.post_as(
            &ana,
            "/api/v1/chat/dms",
            &json!({"user_ids": [ben.user_id]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await);
    let image = png(640, 480);
    let a = expect_json(
        upload(
            &app,
            &ana,
            image.clone(),
            "../../photo.png",
            "image/png",
            &[],
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(a["kind"], "image");
    assert_eq!(a["name"], "photo.png");
    assert_eq!(a["content_type"], "image/png");
    assert_eq!(a["width"], 640);
    assert_eq!(a["height"], 480);
    assert_eq!(a["size"], image.len());
    let aid = id(&a);
    // Unsent: only the uploader may open it.
    let file = format!("/api/v1/chat/attachments/{aid}");
    assert_eq!(app.get_as(&ana, &file).await.status(), StatusCode::OK);
    expect_problem(
        app.get_as(&ben, &file).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Sent with a message: the other members may open it and its thumbnail.
    let m = post(
        &app,
        &ana,
        &dm,
        json!({"text": "", "attachment_ids": [aid]}),
    )
    .await;
    assert_eq!(m["attachments"][0]["id"], aid.as_str());
    let res = app.get_as(&ben, &file).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert_eq!(res.bytes().await.unwrap().to_vec(), image);
    let res = app.get_as(&ben, &format!("{file}/thumbnail")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let thumb = image::load_from_memory(&res.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 240));
    expect_problem(
        app.get_as(&cid, &file).await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    )
    .await;
    // An attachment is used once.
    let res = app
        .post_as(
            &ana,
            &format!("/api/v1/chat/channels/{dm}/messages"),
            &json!({"text": "again", "attachment_ids": [aid]}),
        )
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["attachment_ids[0]"]);

    // Lying content types, unknown types and bad fields.
    let res = upload(&app, &ana, image.clone(), "x.pdf", "application/pdf", &[]).await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["file"]);
    let res = upload(
        &app,
        &ana,
        b"just some notes".to_vec(),
        "x.png",
        "image/png",
        &[],
    )
    .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["file"]);
    let res = upload(
        &app,
        &ana,
        b"<html><script>alert(1)</script></html>".to_vec(),
        "x.png",
        "image/png",
        &[],
    )
    .await;
    let p = expect_problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_file_type",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["file"]);
    let res = upload(
        &app,
        &ana,
        b"MZ\x90\0\x03\0\0\0\x04\0\0\0".to_vec(),
        "x.exe",
        "application/octet-stream",
        &[],
    )
    .await;
    let p = expect_problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_file_type",
    )
    .await;
    assert_eq!(problem_fields(&p), vec!["file"]);
    let mut broken = image[..40].to_vec();
    broken.extend_from_slice(&[0; 64]);
    let res = upload(&app, &ana, broken, "x.png", "image/png", &[]).await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["file"]);
    let res = upload(
        &app,
        &ana,
        b"notes".to_vec(),
        "a.txt",
        "text/plain",
        &[("duration_ms", "5")],
    )
    .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["duration_ms"]);
    let res = upload(
        &app,
        &ana,
        b"notes".to_vec(),
        "a.txt",
        "text/plain",
        &[("view_once", "maybe")],
    )
    .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["view_once"]);
    let res = app
        .request_as(&ana, Method::POST, "/api/v1/chat/attachments")
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    expect_problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // Too big: 25 MB for files, 10 MB for images.
    let mut big = b"%PDF-1.7\n".to_vec();
    big.resize(25 * 1024 * 1024 + 1, b'a');
    let res = upload(&app, &ana, big, "big.pdf", "application/pdf", &[]).await;
    let p = expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(problem_fields(&p), vec!["file"]);
    let mut big_png = image.clone();
    big_png.resize(10 * 1024 * 1024 + 1, 0);
    let res = upload(&app, &ana, big_png, "big.png", "image/png", &[]).await;
    let p = expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(problem_fields(&p), vec!["file"]);

    // A voice note: Ogg audio with its duration and waveform.
    let mut ogg = b"OggS\0\x02".to_vec();
    ogg.resize(2048, 7);
    let v = expect_json(
        upload(
            &app,
            &ana,
            ogg.clone(),
            "voice.ogg",
            "audio/ogg; codecs=opus",
            &[("duration_ms", "3200"), ("waveform", "[0, 50, 100]")],
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(v["kind"], "voice");
    assert_eq!(v["duration_ms"], 3200);
    assert_eq!(v["waveform"], json!([0, 50, 100]));
    assert_eq!(v["thumbnail_url"], Value::Null);
    let res = upload(
        &app,
        &ana,
        ogg,
        "voice.ogg",
        "audio/ogg",
        &[("waveform", "[101]")],
    )
    .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["waveform"]);

    // View-once: each recipient opens it once.
    let once = expect_json(
        upload(
            &app,
            &ana,
            png(8, 8),
            "once.png",
            "image/png",
            &[("view_once", "true")],
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(once["view_once"], true);
    assert_eq!(
        once["thumbnail_url"],
        Value::Null,
        "no thumbnail would keep it secret"
    );
    post(
        &app,
        &ana,
        &dm,
        json!({"text": "once", "attachment_ids": [once["id"]]}),
    )
    .await;
    let once_file = format!("/api/v1/chat/attachments/{}", id(&once));
    let page = get(&app, &ben, &format!("/api/v1/chat/channels/{dm}/messages")).await;
    assert_eq!(page["items"][1]["attachments"][0]["viewed"], false);
    let res = app.get_as(&ben, &once_file).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    expect_problem(
        app.get_as(&ben, &once_file).await,
        StatusCode::GONE,
        "viewed",
    )
    .await;
    let page = get(&app, &ben, &format!("/api/v1/chat/channels/{dm}/messages")).await;
    assert_eq!(page["items"][1]["attachments"][0]["viewed"], true);
    assert_eq!(app.get_as(&ana, &once_file).await.status(), StatusCode::OK);

    // Forwarding takes the files along (not view-once ones).
    let share = id(&channel(
        &app,
        &ana,
        json!({"kind": "private", "name": "share", "member_ids": [cid.user_id]}),
    )
    .await);
    let fwd = expect_json(
        app.post_as(
            &ana,
            &format!("/api/v1/chat/messages/{}/forward", id(&m)),
            &json!({"channel_id": share}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let copy = &fwd["attachments"][0];
    assert_ne!(copy["id"], aid.as_str());
    assert_eq!(copy["width"], 640);
    let copy_file = copy["url"].as_str().unwrap().to_owned();
    let res = app.get_as(&cid, &copy_file).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().to_vec(), image);
    let page = get(&app, &ana, &format!("/api/v1/chat/channels/{dm}/messages")).await;
    let once_msg = id(&page["items"][1]);
    let fwd = expect_json(
        app.post_as(
            &ana,
            &format!("/api/v1/chat/messages/{once_msg}/forward"),
            &json!({"channel_id": share}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(fwd["attachments"], json!([]));

    // Deleting the message deletes its files; a forwarded copy keeps working.
    let res = app
        .delete_as(&ana, &format!("/api/v1/chat/messages/{}", id(&m)))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get_as(&ben, &file).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let res = app.get_as(&cid, &copy_file).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().to_vec(), image);
    let res = app.get_as(&cid, &format!("{copy_file}/thumbnail")).await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn disappearing_messages(app: TestApp) {
    let (mut ana, mut ben, _) = team(&app).await;
    let ch = id(&channel(
        &app,
        &ana,
        json!({"kind": "private", "name": "ephemeral", "member_ids": [ben.user_id]}),
    )
    .await);
    let kept = say(&app, &ana, &ch, "before it was on").await;
    assert_eq!(kept["expires_at"], Value::Null);
    let c = expect_json(
        app.patch_as(
            &ana,
            &format!("/api/v1/chat/channels/{ch}"),
            &json!({"disappearing": "24h"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(c["disappearing"], "24h");
    let f = expect_json(
        upload(
            &app,
            &ana,
            b"hello file".to_vec(),
            "a.txt",
            "text/plain",
            &[],
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let gone = post(
        &app,
        &ana,
        &ch,
        json!({"text": "self destruct", "attachment_ids": [f["id"]]}),
    )
    .await;
    assert!(gone["expires_at"].is_string());
    app.clock.advance(Duration::from_secs(3600));
    relogin(&app, &mut ben).await;
    let later = say(&app, &ben, &ch, "an hour later").await;
    let mut socket = app.socket(&ben).await;
    let ack = socket
        .emit_with_ack("join", &json!({ "room": format!("chat:{ch}") }))
        .await;
    assert_eq!(ack["ok"], true);

    // Not yet.
    app.clock.advance(Duration::from_secs(23 * 3600 - 60));
    app.run_jobs().await;
    relogin(&app, &mut ben).await;
    let page = get(&app, &ben, &format!("/api/v1/chat/channels/{ch}/messages")).await;
    assert_eq!(
        texts(&page),
        vec!["before it was on", "self destruct", "an hour later"]
    );
    // A day after it was sent, the job deletes it and its file.
    app.clock.advance(Duration::from_secs(120));
    assert!(app.run_jobs().await >= 1);
    relogin(&app, &mut ben).await;
    relogin(&app, &mut ana).await;
    let page = get(&app, &ben, &format!("/api/v1/chat/channels/{ch}/messages")).await;
    assert_eq!(texts(&page), vec!["before it was on", "an hour later"]);
    let ev = socket
        .expect_event("chat.message.deleted", |d| {
            d["data"]["message"]["id"] == gone["id"]
        })
        .await;
    assert_eq!(ev["data"]["message"]["deleted"], true);
    expect_problem(
        app.get_as(&ana, &format!("/api/v1/chat/attachments/{}", id(&f)))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let res = app
        .get_as(
            &ben,
            &format!("/api/v1/chat/channels/{ch}/messages?around={}", id(&gone)),
        )
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // The later message goes an hour later.
    app.clock.advance(Duration::from_secs(3600));
    app.run_jobs().await;
    relogin(&app, &mut ben).await;
    let page = get(&app, &ben, &format!("/api/v1/chat/channels/{ch}/messages")).await;
    assert_eq!(texts(&page), vec!["before it was on"]);
    assert!(later["expires_at"].is_string());
    socket.close().await;
}

async fn live_events_reach_members(app: TestApp) {
    let (ana, ben, cid) = team(&app).await;
    let ch = id(&channel(
        &app,
        &ana,
        json!({"kind": "private", "name": "live", "member_ids": [ben.user_id]}),
    )
    .await);
    let mut b = app.socket(&ben).await;
    let mut c = app.socket(&cid).await;
    let room = format!("chat:{ch}");
    let ack = b.emit_with_ack("join", &json!({ "room": room })).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let ack = c.emit_with_ack("join", &json!({ "room": room })).await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"], "forbidden");

    let m = say(&app, &ana, &ch, "live hello").await;
    let ev = b
        .expect_event("chat.message.created", |d| {
            d["data"]["message"]["id"] == m["id"]
        })
        .await;
    assert_eq!(ev["data"]["channel_id"], ch.as_str());
    assert_eq!(ev["data"]["message"]["text"], "live hello");
    assert_eq!(ev["data"]["message"]["read_by"], json!([]));
    assert!(ev["data"].get("audience").is_none());
    let rpath = format!(
        "/api/v1/chat/messages/{}/reactions/{}",
        id(&m),
        urlencode("🎉")
    );
    expect_json(app.put_as(&ana, &rpath).await, StatusCode::OK).await;
    let ev = b.expect_event("chat.reaction.added", |_| true).await;
    assert_eq!(ev["data"]["emoji"], "🎉");
    assert_eq!(ev["data"]["reactions"][0]["me"], false);
    let res = app
        .post_as(
            &ana,
            &format!("/api/v1/chat/channels/{ch}/read"),
            &json!({"message_id": m["id"]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Ana's own post already moved her marker there: no event for a marker that did not move.
    assert!(
        b.event_where("chat.read", Duration::from_millis(300), |_| true)
            .await
            .is_none()
    );
    expect_json(
        app.patch_as(
            &ana,
            &format!("/api/v1/chat/messages/{}", id(&m)),
            &json!({"text": "edited"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let ev = b.expect_event("chat.message.updated", |_| true).await;
    assert_eq!(ev["data"]["message"]["text"], "edited");
    // Cid, added later, hears about it in his own room, then may join.
    expect_json(
        app.post_as(
            &ana,
            &format!("/api/v1/chat/channels/{ch}/members"),
            &json!({"user_ids": [cid.user_id]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let ev = c.expect_event("chat.member.added", |_| true).await;
    assert_eq!(ev["data"]["user_id"], cid.user_id.as_str());
    let ack = c.emit_with_ack("join", &json!({ "room": room })).await;
    assert_eq!(ack["ok"], true);
    // Nothing crosses organisations.
    let eve = app.register("eve@evil.example", "Evil").await;
    let mut e = app.socket(&eve).await;
    let ack = e.emit_with_ack("join", &json!({ "room": room })).await;
    assert_eq!(ack["ok"], false);
    say(&app, &ana, &ch, "second").await;
    c.expect_event("chat.message.created", |d| {
        d["data"]["message"]["text"] == "second"
    })
    .await;
    assert!(
        e.collect("chat.message.created", Duration::from_millis(300))
            .await
            .is_empty()
    );
    // Removed: no more events for Cid.
    let res = app
        .delete_as(
            &ana,
            &format!("/api/v1/chat/channels/{ch}/members/{}", cid.user_id),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    c.expect_event("chat.member.removed", |_| true).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    say(&app, &ana, &ch, "third").await;
    b.expect_event("chat.message.created", |d| {
        d["data"]["message"]["text"] == "third"
    })
    .await;
    assert!(
        c.collect("chat.message.created", Duration::from_millis(300))
            .await
            .is_empty()
    );
    b.close().await;
    c.close().await;
    e.close().await;
}

async fn other_organisations_get_404(app: TestApp) {
    let (ana, ben, _) = team(&app).await;
    let ch = id(&channel(
        &app,
        &ana,
        json!({"kind": "public", "name": "general", "member_ids": [ben.user_id]}),
    )
    .await);
    let m = say(&app, &ana, &ch, "hello").await;
    let mid = id(&m);
    let reply = post(&app, &ana, &ch, json!({"text": "r", "thread_id": mid})).await;
    let f = expect_json(
        upload(&app, &ana, png(4, 4), "p.png", "image/png", &[]).await,
        StatusCode::CREATED,
    )
    .await;
    post(
        &app,
        &ana,
        &ch,
        json!({"text": "pic", "attachment_ids": [f["id"]]}),
    )
    .await;
    let fid = id(&f);
    let spare = id(&channel(&app, &ana, json!({"kind": "private", "name": "spare"})).await);
    let eve = app.register("eve@evil.example", "Evil").await;
    // Eve's own channel, as a forward target and for her own ids.
    let evil = id(&channel(&app, &eve, json!({"kind": "public", "name": "evil"})).await);
    let r = urlencode("👍");
    assert_isolated(
        &app,
        &ana,
        &eve,
        &[
            Probe::get(format!("/api/v1/chat/channels/{ch}")),
            Probe::patch(format!("/api/v1/chat/channels/{ch}"), json!({"topic": "t"})),
            Probe::get(format!("/api/v1/chat/channels/{ch}/members")),
            Probe::post(
                format!("/api/v1/chat/channels/{ch}/members"),
                json!({"user_ids": [ben.user_id]}),
            ),
            Probe::post(format!("/api/v1/chat/channels/{ch}/join"), json!({})),
            Probe::get(format!("/api/v1/chat/channels/{ch}/messages")),
            Probe::get(format!("/api/v1/chat/channels/{ch}/messages?around={mid}")),
            Probe::post(
                format!("/api/v1/chat/channels/{ch}/messages"),
                json!({"text": "x"}),
            ),
            Probe::get(format!("/api/v1/chat/channels/{ch}/pins")),
            Probe::get(format!("/api/v1/chat/search?q=hello&channel_id={ch}")),
            Probe::post(
                format!("/api/v1/chat/channels/{ch}/read"),
                json!({"message_id": mid}),
            ),
            Probe::get(format!("/api/v1/chat/messages/{mid}/thread")),
            Probe::patch(
                format!("/api/v1/chat/messages/{mid}"),
                json!({"text": "edited"}),
            ),
            Probe::post(
                format!("/api/v1/chat/messages/{mid}/forward"),
                json!({"channel_id": ch}),
            ),
            Probe::put(format!("/api/v1/chat/messages/{mid}/reactions/{r}")),
            Probe::delete(format!("/api/v1/chat/messages/{mid}/reactions/{r}")),
            Probe::put(format!("/api/v1/chat/messages/{mid}/pin")),
            Probe::delete(format!("/api/v1/chat/messages/{mid}/pin")),
            Probe::get(format!("/api/v1/chat/attachments/{fid}")),
            Probe::get(format!("/api/v1/chat/attachments/{fid}/thumbnail")),
            Probe::delete(format!("/api/v1/chat/messages/{}", id(&reply))),
            Probe::delete(format!(
                "/api/v1/chat/channels/{ch}/members/{}",
                ben.user_id
            )),
            Probe::post(
                format!("/api/v1/chat/channels/{spare}/unlock"),
                json!({"password": ana.password}),
            ),
            Probe {
                method: Method::PUT,
                path: format!("/api/v1/chat/channels/{spare}/lock"),
                body: Some(json!({"password": ana.password})),
            },
            Probe {
                method: Method::DELETE,
                path: format!("/api/v1/chat/channels/{spare}/lock"),
                body: Some(json!({"password": ana.password})),
            },
            Probe::post(format!("/api/v1/chat/channels/{spare}/leave"), json!({})),
        ],
    )
    .await;
    // Eve's own valid password changes nothing either.
    let res = app
        .request_as(
            &eve,
            Method::POST,
            &format!("/api/v1/chat/channels/{spare}/unlock"),
        )
        .json(&json!({"password": eve.password}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    // Ana's ids in Eve's requests: a DM with Ana, a forward into Ana's channel, Ana's files.
    let res = app
        .post_as(
            &eve,
            "/api/v1/chat/dms",
            &json!({"user_ids": [ana.user_id]}),
        )
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["user_ids[0]"]);
    let mine = say(&app, &eve, &evil, "mine").await;
    let res = app
        .post_as(
            &eve,
            &format!("/api/v1/chat/messages/{}/forward", id(&mine)),
            &json!({"channel_id": ch}),
        )
        .await;
    let p = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&p), vec!["channel_id"]);
    let res = app
        .post_as(
            &eve,
            &format!("/api/v1/chat/channels/{evil}/messages"),
            &json!({"text": "x", "quote_id": mid}),
        )
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let res = app
        .post_as(
            &eve,
            &format!("/api/v1/chat/channels/{evil}/messages"),
            &json!({"text": "x", "attachment_ids": [fid]}),
        )
        .await;
    expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // And Eve's lists show nothing of Acme.
    let list = get(&app, &eve, "/api/v1/chat/channels").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let browse = get(&app, &eve, "/api/v1/chat/channels/browse").await;
    assert_eq!(browse["items"].as_array().unwrap().len(), 1);
}

app_tests!(
    channels_and_dms,
    members_and_admins,
    messages_threads_edits_and_reactions,
    read_markers_and_receipts,
    history_pages_both_ways,
    search_covers_my_channels_only,
    chat_lock,
    attachments,
    disappearing_messages,
    live_events_reach_members,
    other_organisations_get_404,
);
