//! The assembled server: ops endpoints, OpenAPI, the embedded UI's routing, headers, errors.

// Test helpers unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wamage_testkit::{TestApp, app_tests, expect_json, expect_problem};

async fn ops_endpoints_answer(app: TestApp) {
    let health = expect_json(
        app.request(Method::GET, "/health").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(health["status"], "ok");
    let ready = expect_json(
        app.request(Method::GET, "/ready").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(ready["status"], "ready");
    for dep in ["database", "cache", "bus"] {
        assert!(
            ready["checks"][dep].as_str().unwrap().starts_with("ok"),
            "{ready}"
        );
    }
    // Traffic, a failed login and a queued job all show up in the metrics.
    app.register("ana@example.com", "Acme").await;
    app.login("ana@example.com", "wrong password!").await;
    app.post_json(
        "/api/v1/auth/password/forgot",
        &json!({"email": "ana@example.com"}),
    )
    .await;
    // A made-up method is counted, under a label that cannot grow without bound.
    let res = app
        .request(Method::from_bytes(b"PURGE").unwrap(), "/api/v1/purge-me")
        .send()
        .await
        .unwrap();
    expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    let res = app.request(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(!text.contains("PURGE"), "{text}");
    for needle in [
        "wamage_http_requests_total",
        "route=\"/api/v1/auth/register\"",
        // Counted per route template, method and status.
        "wamage_http_requests_total{method=\"POST\",route=\"/api/v1/auth/register\",status=\"201\"}",
        "wamage_http_requests_total{method=\"POST\",route=\"/api/v1/auth/login\",status=\"401\"}",
        "wamage_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"404\"}",
        "wamage_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/auth/login\",",
        "wamage_identity_login_failures_total",
        "wamage_jobs_queue_depth",
        "wamage_db_pool_connections",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

async fn openapi_describes_the_api(app: TestApp) {
    let doc = expect_json(
        app.request(Method::GET, "/api/openapi.json")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/me",
        "/api/v1/teams",
        "/api/v1/invitations",
        "/api/v1/api-keys",
        "/api/v1/sessions",
        "/health",
        "/ready",
    ] {
        assert!(paths.contains_key(p), "OpenAPI lacks {p}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ProblemBody"].is_object());
    let res = app.request(Method::GET, "/api/docs/").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("swagger"));
}

async fn web_ui_never_shadows_the_api(app: TestApp) {
    // The binary serves the built app (or, when web/dist was never built, a page saying so).
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist/index.html");
    let root = app
        .request(Method::GET, "/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    match std::fs::read_to_string(&dist) {
        Ok(index) => assert_eq!(root, index, "/ must serve web/dist/index.html"),
        Err(_) => assert!(root.contains("web UI was not built")),
    }
    for page in ["/", "/login", "/settings/profile", "/invite/abc"] {
        let res = app.request(Method::GET, page).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{page}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(res.headers().get("content-security-policy").is_some());
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        assert_eq!(res.headers()["x-frame-options"], "DENY");
    }
    for path in [
        "/api/v1/unknown",
        "/api",
        "/webhooks/whatsapp/x",
        "/metrics/x",
        "/assets/missing.js",
    ] {
        let res = app.request(Method::GET, path).send().await.unwrap();
        // Problems carry the security headers too.
        assert_eq!(res.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(res.headers().get("content-security-policy").is_some());
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    // The Socket.IO gateway owns /socket.io: a request that is not Engine.IO gets Engine.IO's
    // own JSON error (which clients understand), left alone by the problem renderer.
    let res = app
        .request(Method::GET, "/socket.io/")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["message"], "Transport unknown", "{body}");
    // Wrong method: a problem that names the allowed methods.
    let res = app
        .request(Method::DELETE, "/api/v1/auth/login")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("allow").is_some());
    expect_problem(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    // Every response carries a request id, and problems quote it.
    let res = app.request(Method::GET, "/api/v1/me").send().await.unwrap();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = expect_problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(body["request_id"], id);
    // A caller's own request id is kept.
    let res = app
        .request(Method::GET, "/health")
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");
}

app_tests!(
    ops_endpoints_answer,
    openapi_describes_the_api,
    web_ui_never_shadows_the_api
);

/// The web app's API types are generated from `web/openapi.json`; it must match the code.
/// Regenerate with `WAMAGE_UPDATE_OPENAPI=1 cargo test -p wamage-server --test server`.
#[tokio::test]
async fn web_openapi_json_is_current() {
    let app = TestApp::sqlite().await;
    let doc: Value = app
        .request(Method::GET, "/api/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
    let pretty = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var("WAMAGE_UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let committed: Value = serde_json::from_str(&committed).unwrap_or(Value::Null);
    assert!(
        committed == doc,
        "web/openapi.json is out of date: run `WAMAGE_UPDATE_OPENAPI=1 cargo test -p wamage-server --test server` and `npm run gen:api` in web/"
    );
}
