//! Cross-tenant checks. Every endpoint that takes an id must answer 404 to a caller from another
//! organisation — not 403, which would confirm the id exists. A probe list per domain makes this
//! one line to extend when a domain adds endpoints.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{TestApp, TestUser};

/// One request to try as the intruder.
#[derive(Debug, Clone)]
pub struct Probe {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

impl Probe {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self {
            method: Method::DELETE,
            path: path.into(),
            body: None,
        }
    }

    pub fn put(path: impl Into<String>) -> Self {
        Self {
            method: Method::PUT,
            path: path.into(),
            body: None,
        }
    }

    pub fn patch(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::PATCH,
            path: path.into(),
            body: Some(body),
        }
    }

    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            body: Some(body),
        }
    }
}

/// Asserts `intruder` (another organisation's admin) gets a 404 problem for every probe, then
/// that `owner` (whose organisation the ids belong to) still succeeds with the same request —
/// proving the resource existed and the intruder's attempt changed nothing.
pub async fn assert_isolated(
    app: &TestApp,
    owner: &TestUser,
    intruder: &TestUser,
    probes: &[Probe],
) {
    for p in probes {
        let mut req = app.request_as(intruder, p.method.clone(), &p.path);
        if let Some(b) = &p.body {
            req = req.json(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{} {} by another organisation should be 404, got {status}: {text}",
            p.method,
            p.path
        );
    }
    for p in probes {
        let mut req = app.request_as(owner, p.method.clone(), &p.path);
        if let Some(b) = &p.body {
            req = req.json(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "{} {} by its own organisation should succeed after the intrusion attempt, got {status}: {text}",
            p.method,
            p.path
        );
    }
}
