//! Identity through the HTTP API, on every backend.

// Test helpers unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use wamage_testkit::{
    PASSWORD, TestApp, app_tests, expect_json, expect_problem, problem_fields,
    tenancy::{Probe, assert_isolated},
};

async fn register_login_refresh_logout(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    assert_eq!(ana.role, "owner");
    let me = expect_json(app.get_as(&ana, "/api/v1/me").await, StatusCode::OK).await;
    assert_eq!(me["user"]["email"], "ana@example.com");
    assert_eq!(me["organization"]["name"], "Acme");
    assert_eq!(me["role"], "owner");

    // Log in (e-mail is case-insensitive), then rotate the refresh token.
    let login = expect_json(app.login("ANA@example.com", PASSWORD).await, StatusCode::OK).await;
    let r1 = login["refresh_token"].as_str().unwrap().to_owned();
    let rotated = expect_json(
        app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": r1}))
            .await,
        StatusCode::OK,
    )
    .await;
    let r2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    let me = app.get_with_token(&access2, "/api/v1/me").await;
    assert_eq!(me.status(), StatusCode::OK);

    // Reuse of a rotated token inside the leeway (two tabs refreshing at once) is tolerated…
    expect_json(
        app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": r1}))
            .await,
        StatusCode::OK,
    )
    .await;
    // …after it, it means theft: the whole session (family) is revoked.
    app.clock.advance(Duration::from_secs(30));
    expect_problem(
        app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": r1}))
            .await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    expect_problem(
        app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": r2}))
            .await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    let me = app.get_with_token(&access2, "/api/v1/me").await;
    expect_problem(me, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Logout ends the session: its access token stops working at once.
    let res = app
        .request_as(&ana, Method::POST, "/api/v1/auth/logout")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get_as(&ana, "/api/v1/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    // An access token expires with time.
    let fresh = expect_json(app.login("ana@example.com", PASSWORD).await, StatusCode::OK).await;
    app.clock.advance(Duration::from_secs(16 * 60));
    let res = app
        .get_with_token(fresh["access_token"].as_str().unwrap(), "/api/v1/me")
        .await;
    let body = expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(body["title"].as_str().unwrap().contains("expired"));
}

async fn bad_input_gets_clear_problems(app: TestApp) {
    // Malformed JSON.
    let res = app
        .request(Method::POST, "/api/v1/auth/register")
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::BAD_REQUEST, "malformed_json").await;
    // Wrong content type.
    let res = app
        .request(Method::POST, "/api/v1/auth/register")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    expect_problem(
        res,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // Wrong type names the field.
    let body = expect_problem(
        app.post_json(
            "/api/v1/auth/register",
            &json!({"email": 5, "password": "x", "name": "a", "organization": "b"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["email"]);
    // Missing and unknown fields.
    let body = expect_problem(
        app.post_json("/api/v1/auth/register", &json!({"email": "a@b.co"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["password"]);
    let body = expect_problem(
        app.post_json(
            "/api/v1/auth/register",
            &json!({"email": "a@b.co", "password": PASSWORD, "name": "A", "organization": "B", "role": "owner"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field")
    );
    // Every invalid field at once.
    let body = expect_problem(
        app.post_json(
            "/api/v1/auth/register",
            &json!({"email": "not-an-email", "password": "short", "name": "x".repeat(101), "organization": "  "}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let mut fields = problem_fields(&body);
    fields.sort();
    assert_eq!(fields, ["email", "name", "organization", "password"]);

    // Duplicate e-mail: 409 on the field, and nothing half-written (no second organisation).
    let ana = app.register("ana@example.com", "Acme").await;
    let body = expect_problem(
        app.post_json(
            "/api/v1/auth/register",
            &json!({"email": "Ana@Example.com", "password": PASSWORD, "name": "Other", "organization": "Ghost Org"}),
        )
        .await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    assert_eq!(problem_fields(&body), ["email"]);
    let orgs: i64 = wamage_platform::with_db!(&app.state.db, |p| {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM organizations")
            .fetch_one(p)
            .await
            .unwrap()
    });
    assert_eq!(
        orgs, 1,
        "the failed registration must not leave an organisation behind"
    );

    // Missing, malformed, tampered tokens.
    expect_problem(
        app.request(Method::GET, "/api/v1/me").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_problem(
        app.request(Method::GET, "/api/v1/me")
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let mut tampered = ana.access_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    expect_problem(
        app.get_with_token(&tampered, "/api/v1/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Bad path parameter and unknown API route are problems too, never the web page.
    expect_problem(
        app.get_as(&ana, "/api/v1/teams/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    )
    .await;
    expect_problem(
        app.get_as(&ana, "/api/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A body over the limit.
    let res = app
        .request_as(&ana, Method::PATCH, "/api/v1/me")
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Still serving.
    expect_json(app.get_as(&ana, "/api/v1/me").await, StatusCode::OK).await;
}

async fn repeated_wrong_passwords_are_rate_limited(app: TestApp) {
    app.register("ana@example.com", "Acme").await;
    let bob = app.register("bob@example.com", "Bobs").await;
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let res = app.login("ana@example.com", "wrong password!").await;
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().get("retry-after").is_some());
            expect_problem(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
        } else {
            expect_problem(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        }
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED)
    );
    assert!(
        statuses[10..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS)
    );
    // The locked account refuses even the right password for now; other accounts are unaffected.
    expect_problem(
        app.login("ana@example.com", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    )
    .await;
    expect_json(app.login("bob@example.com", PASSWORD).await, StatusCode::OK).await;
    expect_json(app.get_as(&bob, "/api/v1/me").await, StatusCode::OK).await;
    // An unknown account answers exactly like a wrong password.
    expect_problem(
        app.login("nobody@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

async fn invitations_roles_and_members(app: TestApp) {
    let owner = app.register("owner@example.com", "Acme").await;
    // Invite, look at it publicly, accept in a "second browser".
    let inv = expect_json(
        app.post_as(
            &owner,
            "/api/v1/invitations",
            &json!({"email": "Agent@Example.com", "role": "agent"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(inv["status"], "pending");
    assert_eq!(inv["email"], "agent@example.com");
    let url = inv["invite_url"].as_str().unwrap();
    assert!(url.contains("/invite/"));
    let token = url.rsplit('/').next().unwrap();
    let public = expect_json(
        app.request(Method::GET, &format!("/api/v1/auth/invitations/{token}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(public["organization"]["name"], "Acme");
    assert_eq!(public["account_exists"], false);
    assert_eq!(public["invited_by_name"], "owner");
    let body = expect_problem(
        app.post_json(
            &format!("/api/v1/auth/invitations/{token}/accept"),
            &json!({"name": "", "password": "short"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["name", "password"]);
    let agent = expect_json(
        app.post_json(
            &format!("/api/v1/auth/invitations/{token}/accept"),
            &json!({"name": "Agent", "password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(agent["role"], "agent");
    assert_eq!(agent["organization"]["id"].as_str().unwrap(), owner.org_id);
    let agent_id = agent["user"]["id"].as_str().unwrap().to_owned();
    let agent_token = agent["access_token"].as_str().unwrap().to_owned();
    // Used invitations cannot be used again.
    expect_problem(
        app.post_json(
            &format!("/api/v1/auth/invitations/{token}/accept"),
            &json!({"name": "X", "password": PASSWORD}),
        )
        .await,
        StatusCode::GONE,
        "invitation_used",
    )
    .await;
    let list = expect_json(
        app.get_as(&owner, "/api/v1/invitations").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"][0]["status"], "accepted");
    assert!(
        list["items"][0].get("invite_url").is_none(),
        "the link is shown once only"
    );

    // Agents cannot administer.
    let res = app
        .request(Method::POST, "/api/v1/teams")
        .bearer_auth(&agent_token)
        .json(&json!({"name": "Support"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;

    // Promote to admin: the new role applies to the agent's existing token at once.
    let m = expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/members/{agent_id}"),
            &json!({"role": "admin"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(m["role"], "admin");
    let res = app.get_with_token(&agent_token, "/api/v1/me").await;
    assert_eq!(expect_json(res, StatusCode::OK).await["role"], "admin");
    // An admin cannot grant ownership or invite owners.
    let res = app
        .request(Method::PATCH, &format!("/api/v1/members/{}", owner.user_id))
        .bearer_auth(&agent_token)
        .json(&json!({"role": "agent"}))
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app
        .request(Method::POST, "/api/v1/invitations")
        .bearer_auth(&agent_token)
        .json(&json!({"email": "boss@example.com", "role": "owner"}))
        .send()
        .await
        .unwrap();
    let body = expect_problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(problem_fields(&body), ["role"]);
    // The last owner cannot be demoted.
    expect_problem(
        app.patch_as(
            &owner,
            &format!("/api/v1/members/{}", owner.user_id),
            &json!({"role": "admin"}),
        )
        .await,
        StatusCode::CONFLICT,
        "last_owner",
    )
    .await;
    // Inviting an existing member is refused on the field.
    let body = expect_problem(
        app.post_as(
            &owner,
            "/api/v1/invitations",
            &json!({"email": "agent@example.com", "role": "agent"}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_member",
    )
    .await;
    assert_eq!(problem_fields(&body), ["email"]);

    // Expired and revoked invitations.
    let inv = expect_json(
        app.post_as(
            &owner,
            "/api/v1/invitations",
            &json!({"email": "late@example.com", "role": "agent", "expires_in_hours": 1}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let late_token = inv["invite_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    app.clock.advance(Duration::from_secs(2 * 3600));
    expect_problem(
        app.request(
            Method::GET,
            &format!("/api/v1/auth/invitations/{late_token}"),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::GONE,
        "invitation_expired",
    )
    .await;
    // The owner's access token expired with the clock; refresh it like the web app does.
    let refreshed = expect_json(
        app.post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": owner.refresh_token}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let owner = wamage_testkit::TestUser {
        access_token: refreshed["access_token"].as_str().unwrap().to_owned(),
        refresh_token: refreshed["refresh_token"].as_str().unwrap().to_owned(),
        ..owner
    };
    let inv = expect_json(
        app.post_as(
            &owner,
            "/api/v1/invitations",
            &json!({"email": "rev@example.com", "role": "agent"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let rev_token = inv["invite_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let res = app
        .delete_as(
            &owner,
            &format!("/api/v1/invitations/{}", inv["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.post_json(
            &format!("/api/v1/auth/invitations/{rev_token}/accept"),
            &json!({"name": "R", "password": PASSWORD}),
        )
        .await,
        StatusCode::GONE,
        "invitation_revoked",
    )
    .await;
    expect_problem(
        app.request(Method::GET, "/api/v1/auth/invitations/nonsense")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // An existing account joins a second organisation with its own password.
    let other = app.register("other@example.com", "Other Org").await;
    let inv = expect_json(
        app.post_as(
            &other,
            "/api/v1/invitations",
            &json!({"email": "owner@example.com", "role": "agent"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let t = inv["invite_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let public = expect_json(
        app.request(Method::GET, &format!("/api/v1/auth/invitations/{t}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(public["account_exists"], true);
    expect_problem(
        app.post_json(
            &format!("/api/v1/auth/invitations/{t}/accept"),
            &json!({"password": "not my password"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let joined = expect_json(
        app.post_json(
            &format!("/api/v1/auth/invitations/{t}/accept"),
            &json!({"password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(joined["organization"]["name"], "Other Org");
    assert_eq!(joined["role"], "agent");
    // Login picks an organisation on request.
    let res = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "owner@example.com", "password": PASSWORD, "organization_id": other.org_id}),
        )
        .await;
    assert_eq!(
        expect_json(res, StatusCode::OK).await["organization"]["name"],
        "Other Org"
    );

    // Removing a member ends their sessions in this organisation.
    let res = app
        .delete_as(&owner, &format!("/api/v1/members/{agent_id}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get_with_token(&agent_token, "/api/v1/me").await;
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let members = expect_json(app.get_as(&owner, "/api/v1/members").await, StatusCode::OK).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1);
}

async fn teams_and_membership(app: TestApp) {
    let owner = app.register("owner@example.com", "Acme").await;
    let agent = app.add_member(&owner, "agent@example.com", "agent").await;
    let team = expect_json(
        app.post_as(
            &owner,
            "/api/v1/teams",
            &json!({"name": "Support", "description": "Front line"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let id = team["id"].as_str().unwrap().to_owned();
    assert_eq!(team["member_count"], 0);
    let body = expect_problem(
        app.post_as(&owner, "/api/v1/teams", &json!({"name": "Support"}))
            .await,
        StatusCode::CONFLICT,
        "team_name_taken",
    )
    .await;
    assert_eq!(problem_fields(&body), ["name"]);
    let res = app
        .put_as(
            &owner,
            &format!("/api/v1/teams/{id}/members/{}", agent.user_id),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Adding twice is harmless.
    let res = app
        .put_as(
            &owner,
            &format!("/api/v1/teams/{id}/members/{}", agent.user_id),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let detail = expect_json(
        app.get_as(&agent, &format!("/api/v1/teams/{id}")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(detail["member_count"], 1);
    assert_eq!(detail["members"][0]["email"], "agent@example.com");
    // A non-member cannot be added.
    let stranger = app.register("stranger@example.com", "Elsewhere").await;
    expect_problem(
        app.put_as(
            &owner,
            &format!("/api/v1/teams/{id}/members/{}", stranger.user_id),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let patched = expect_json(
        app.patch_as(
            &owner,
            &format!("/api/v1/teams/{id}"),
            &json!({"name": "Tier 1", "description": null}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(patched["name"], "Tier 1");
    assert!(patched["description"].is_null());
    let res = app
        .delete_as(
            &owner,
            &format!("/api/v1/teams/{id}/members/{}", agent.user_id),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.delete_as(&owner, &format!("/api/v1/teams/{id}")).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let list = expect_json(app.get_as(&agent, "/api/v1/teams").await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

async fn api_keys_authenticate_until_revoked(app: TestApp) {
    let owner = app.register("owner@example.com", "Acme").await;
    let created = expect_json(
        app.post_as(
            &owner,
            "/api/v1/api-keys",
            &json!({"name": "CRM sync", "role": "admin"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wam_"));
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    let id = created["id"].as_str().unwrap().to_owned();
    let me = expect_json(app.get_with_token(&key, "/api/v1/me").await, StatusCode::OK).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["organization"]["id"].as_str().unwrap(), owner.org_id);
    // The key is never shown again, and its use is recorded.
    let list = expect_json(app.get_as(&owner, "/api/v1/api-keys").await, StatusCode::OK).await;
    assert!(list["items"][0].get("key").is_none());
    assert!(list["items"][0]["last_used_at"].is_string());
    // Keys cannot manage the account's own devices.
    let res = app.get_with_token(&key, "/api/v1/sessions").await;
    expect_problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    // Revoked: refused at once.
    let res = app
        .delete_as(&owner, &format!("/api/v1/api-keys/{id}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get_with_token(&key, "/api/v1/me").await;
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let res = app.get_with_token("wam_0000", "/api/v1/me").await;
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // Expiring keys expire; an admin cannot mint an owner key.
    let admin = app.add_member(&owner, "admin@example.com", "admin").await;
    let body = expect_problem(
        app.post_as(
            &admin,
            "/api/v1/api-keys",
            &json!({"name": "x", "role": "owner"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["role"]);
    let short = expect_json(
        app.post_as(
            &admin,
            "/api/v1/api-keys",
            &json!({"name": "temp", "expires_in_days": 1}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(short["role"], "agent");
    app.clock.advance(Duration::from_secs(2 * 86_400));
    let res = app
        .get_with_token(short["key"].as_str().unwrap(), "/api/v1/me")
        .await;
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

async fn sessions_are_listed_and_revocable(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let laptop = expect_json(app.login("ana@example.com", PASSWORD).await, StatusCode::OK).await;
    let phone = expect_json(app.login("ana@example.com", PASSWORD).await, StatusCode::OK).await;
    let list = expect_json(app.get_as(&ana, "/api/v1/sessions").await, StatusCode::OK).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(items[0]["user_agent"], "wamage-testkit");
    assert_eq!(items[0]["ip"], "127.0.0.1");
    // Revoke the laptop from here.
    let laptop_access = laptop["access_token"].as_str().unwrap();
    let laptop_me = expect_json(
        app.get_with_token(laptop_access, "/api/v1/me").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(laptop_me["user"]["email"], "ana@example.com");
    let laptop_sid = items
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .unwrap()
        .to_owned();
    let res = app
        .delete_as(&ana, &format!("/api/v1/sessions/{laptop_sid}"))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.delete_as(&ana, &format!("/api/v1/sessions/{laptop_sid}"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Sign out everything else.
    let res = app.delete_as(&ana, "/api/v1/sessions").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for t in [laptop_access, phone["access_token"].as_str().unwrap()] {
        let res = app.get_with_token(t, "/api/v1/me").await;
        expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    expect_problem(
        app.post_json(
            "/api/v1/auth/refresh",
            &json!({"refresh_token": phone["refresh_token"]}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    )
    .await;
    let list = expect_json(app.get_as(&ana, "/api/v1/sessions").await, StatusCode::OK).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn password_change_and_reset(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let other_device =
        expect_json(app.login("ana@example.com", PASSWORD).await, StatusCode::OK).await;
    let body = expect_problem(
        app.post_as(
            &ana,
            "/api/v1/me/password",
            &json!({"current_password": "nope nope nope", "new_password": "a new passphrase"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["current_password"]);
    let res = app
        .post_as(
            &ana,
            "/api/v1/me/password",
            &json!({"current_password": PASSWORD, "new_password": "a new passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_json(app.get_as(&ana, "/api/v1/me").await, StatusCode::OK).await;
    let res = app
        .get_with_token(other_device["access_token"].as_str().unwrap(), "/api/v1/me")
        .await;
    expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    expect_problem(
        app.login("ana@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    // Forgot password: 202 either way; only a real account gets mail, through the job queue.
    for email in ["ana@example.com", "ghost@example.com"] {
        let res = app
            .post_json("/api/v1/auth/password/forgot", &json!({"email": email}))
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    assert!(
        app.mailer.sent().is_empty(),
        "mail goes out from the worker, not the request"
    );
    assert_eq!(app.run_jobs().await, 1);
    let sent = app.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "ana@example.com");
    let link = sent[0]
        .text
        .split_whitespace()
        .find(|w| w.contains("/reset-password?token="))
        .unwrap()
        .to_owned();
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let body = expect_problem(
        app.post_json(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "password": "short"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["password"]);
    let res = app
        .post_json(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "password": "reset passphrase 2"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Every session ended, the link is single-use, the new password works.
    expect_problem(
        app.get_as(&ana, "/api/v1/me").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_problem(
        app.post_json(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "password": "another passphrase"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_reset_token",
    )
    .await;
    expect_json(
        app.login("ana@example.com", "reset passphrase 2").await,
        StatusCode::OK,
    )
    .await;

    // Links expire.
    app.post_json(
        "/api/v1/auth/password/forgot",
        &json!({"email": "ana@example.com"}),
    )
    .await;
    app.run_jobs().await;
    let text = app.mailer.sent().last().unwrap().text.clone();
    let token = text
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    app.clock.advance(Duration::from_secs(2 * 3600));
    expect_problem(
        app.post_json(
            "/api/v1/auth/password/reset",
            &json!({"token": token, "password": "expired passphrase"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_reset_token",
    )
    .await;
}

async fn profile_and_avatar(app: TestApp) {
    let ana = app.register("ana@example.com", "Acme").await;
    let u = expect_json(
        app.patch_as(
            &ana,
            "/api/v1/me",
            &json!({"name": "Ana Lima", "status_text": "On leave until Monday"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(u["name"], "Ana Lima");
    assert_eq!(u["status_text"], "On leave until Monday");
    let me = expect_json(app.get_as(&ana, "/api/v1/me").await, StatusCode::OK).await;
    assert_eq!(
        me["user"]["name"], "Ana Lima",
        "the cached profile is refreshed on change"
    );
    let u = expect_json(
        app.patch_as(&ana, "/api/v1/me", &json!({"status_text": null}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(u["status_text"].is_null());
    assert_eq!(u["name"], "Ana Lima");

    let png: Vec<u8> = [b"\x89PNG\r\n\x1a\n".as_slice(), &[0u8; 64]].concat();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(png.clone())
            .file_name("me.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let u = expect_json(
        app.request_as(&ana, Method::PUT, "/api/v1/me/avatar")
            .multipart(form)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let url = u["avatar_url"].as_str().unwrap().to_owned();
    let img = app.request(Method::GET, &url).send().await.unwrap();
    assert_eq!(img.status(), StatusCode::OK);
    assert_eq!(img.headers()["content-type"], "image/png");
    assert_eq!(img.bytes().await.unwrap().as_ref(), png.as_slice());
    // A lying content type is judged by the bytes.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"<svg onload=alert(1)></svg>".to_vec())
            .file_name("x.png")
            .mime_str("image/png")
            .unwrap(),
    );
    let body = expect_problem(
        app.request_as(&ana, Method::PUT, "/api/v1/me/avatar")
            .multipart(form)
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(problem_fields(&body), ["file"]);
    // Too big.
    let big: Vec<u8> = [b"\x89PNG\r\n\x1a\n".as_slice(), &vec![0u8; 2 * 1024 * 1024]].concat();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(big).file_name("big.png"),
    );
    let res = app
        .request_as(&ana, Method::PUT, "/api/v1/me/avatar")
        .multipart(form)
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Removing it deletes the file.
    let u = expect_json(
        app.delete_as(&ana, "/api/v1/me/avatar").await,
        StatusCode::OK,
    )
    .await;
    assert!(u["avatar_url"].is_null());
    let res = app.request(Method::GET, &url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Organisation: agents read, admins rename.
    let agent = app.add_member(&ana, "agent@example.com", "agent").await;
    expect_problem(
        app.patch_as(&agent, "/api/v1/organization", &json!({"name": "Hacked"}))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let org = expect_json(
        app.patch_as(&ana, "/api/v1/organization", &json!({"name": "Acme Ltd"}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(org["name"], "Acme Ltd");
    let me = expect_json(app.get_as(&agent, "/api/v1/me").await, StatusCode::OK).await;
    assert_eq!(me["organization"]["name"], "Acme Ltd");
}

/// Every endpoint that takes an id answers 404 to another organisation.
async fn organisations_are_isolated(app: TestApp) {
    let b_owner = app.register("owner@b.example", "Org B").await;
    let b_agent = app.add_member(&b_owner, "agent@b.example", "agent").await;
    let b_device = expect_json(app.login("owner@b.example", PASSWORD).await, StatusCode::OK).await;
    let team = expect_json(
        app.post_as(&b_owner, "/api/v1/teams", &json!({"name": "B team"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let team = team["id"].as_str().unwrap();
    let inv = expect_json(
        app.post_as(
            &b_owner,
            "/api/v1/invitations",
            &json!({"email": "x@b.example", "role": "agent"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let key = expect_json(
        app.post_as(&b_owner, "/api/v1/api-keys", &json!({"name": "B key"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let sessions = expect_json(
        app.get_as(&b_owner, "/api/v1/sessions").await,
        StatusCode::OK,
    )
    .await;
    let device_sid = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .unwrap()
        .to_owned();
    assert!(b_device["access_token"].is_string());

    let a_owner = app.register("owner@a.example", "Org A").await;
    let agent = &b_agent.user_id;
    assert_isolated(
        &app,
        &b_owner,
        &a_owner,
        &[
            Probe::get(format!("/api/v1/teams/{team}")),
            Probe::patch(format!("/api/v1/teams/{team}"), json!({"name": "renamed"})),
            Probe::put(format!("/api/v1/teams/{team}/members/{agent}")),
            Probe::delete(format!("/api/v1/teams/{team}/members/{agent}")),
            Probe::patch(format!("/api/v1/members/{agent}"), json!({"role": "admin"})),
            Probe::delete(format!(
                "/api/v1/invitations/{}",
                inv["id"].as_str().unwrap()
            )),
            Probe::delete(format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap())),
            Probe::delete(format!("/api/v1/sessions/{device_sid}")),
            Probe::delete(format!("/api/v1/teams/{team}")),
            Probe::delete(format!("/api/v1/members/{agent}")),
        ],
    )
    .await;
    // And lists never show the other organisation's rows.
    for path in [
        "/api/v1/members",
        "/api/v1/teams",
        "/api/v1/invitations",
        "/api/v1/api-keys",
        "/api/v1/sessions",
    ] {
        let body = expect_json(app.get_as(&a_owner, path).await, StatusCode::OK).await;
        let text = body.to_string();
        assert!(
            !text.contains("b.example") && !text.contains("B team") && !text.contains("B key"),
            "{path}: {text}"
        );
    }
}

/// Identity changes are published on the bus for other domains (and, later, webhooks).
async fn changes_are_published_as_events(app: TestApp) {
    let mut sub = app.state.bus.subscribe("wamage.*");
    let owner = app.register("owner@example.com", "Acme").await;
    let agent = app.add_member(&owner, "agent@example.com", "agent").await;
    app.patch_as(
        &owner,
        &format!("/api/v1/members/{}", agent.user_id),
        &json!({"role": "admin"}),
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let e = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("event within 5 s")
            .expect("bus open");
        assert_eq!(e.specversion, "1.0");
        assert_eq!(e.orgid.to_string(), owner.org_id);
        seen.push((e.type_.clone(), e.data.value()));
    }
    let types: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "wamage.user.registered",
            "wamage.member.invited",
            "wamage.member.joined",
            "wamage.member.role_changed"
        ]
    );
    assert_eq!(seen[3].1["to"], "admin");
    assert_eq!(seen[3].1["user_id"].as_str().unwrap(), agent.user_id);
}

app_tests!(
    changes_are_published_as_events,
    register_login_refresh_logout,
    bad_input_gets_clear_problems,
    repeated_wrong_passwords_are_rate_limited,
    invitations_roles_and_members,
    teams_and_membership,
    api_keys_authenticate_until_revoked,
    sessions_are_listed_and_revocable,
    password_change_and_reset,
    profile_and_avatar,
    organisations_are_isolated,
);
