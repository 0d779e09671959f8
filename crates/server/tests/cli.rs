//! The `wamage` command line, run as a user would.

// Test helpers unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn wamage(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wamage"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAMAGE_DATA_DIR", data_dir)
        .env("WAMAGE_LOG_LEVEL", "warn");
    c
}

#[test]
fn version_migrate_and_admin_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = wamage(dir.path()).arg("version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wamage "));

    let out = wamage(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("wamage.db").exists());

    let out = wamage(dir.path())
        .args([
            "admin",
            "create-user",
            "--email",
            "root@example.com",
            "--name",
            "Root",
            "--organization",
            "Acme",
            "--password",
            "a long passphrase",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("owner of \"Acme\""));

    // The same e-mail again is refused with the reason.
    let out = wamage(dir.path())
        .args([
            "admin",
            "create-user",
            "--email",
            "root@example.com",
            "--name",
            "Root",
            "--organization",
            "Acme",
            "--password",
            "a long passphrase",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already"));

    // Reset, with the password on standard input.
    let mut child = wamage(dir.path())
        .args(["admin", "reset-password", "--email", "root@example.com"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"another long passphrase\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = wamage(dir.path())
        .args([
            "admin",
            "reset-password",
            "--email",
            "nobody@example.com",
            "--password",
            "a long passphrase",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn bad_configuration_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = wamage(dir.path())
        .env("WAMAGE_LISTEN", "not-an-address")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WAMAGE_LISTEN"));
    let out = wamage(dir.path())
        .env("WAMAGE_DATABASE_URL", "mysql://x")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WAMAGE_DATABASE_URL"));
    let out = wamage(dir.path())
        .args(["serve", "--roles", "api,cook"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cook"));
}

#[test]
fn openapi_command_prints_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = wamage(dir.path()).arg("openapi").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["paths"]["/api/v1/auth/login"].is_object());
}

/// `wamage simulate` plays a Sandbox customer against a running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_writes_and_reads_as_a_sandbox_customer() {
    use reqwest::StatusCode;
    use serde_json::json;
    use wamage_testkit::{TestApp, expect_json};

    let app = TestApp::sqlite().await;
    let owner = app.register("owner@example.com", "Acme").await;
    let key = expect_json(
        app.post_as(
            &owner,
            "/api/v1/api-keys",
            &json!({"name": "cli", "role": "agent"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let (data, base) = (dir.path().to_path_buf(), app.base.clone());
    let run = move |args: Vec<String>| {
        let mut c = wamage(&data);
        c.env("WAMAGE_URL", &base)
            .env("WAMAGE_API_KEY", &key)
            .arg("simulate")
            .args(args);
        c.output().unwrap()
    };
    // No Sandbox channel yet: a clear error.
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(vec!["hello".into()])
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Sandbox channel"));

    expect_json(
        app.post_as(
            &owner,
            "/api/v1/channels",
            &json!({"kind": "sandbox", "name": "Try", "config": {"auto_read": false}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        move || {
            run(vec![
                "--from".into(),
                "zed".into(),
                "--name".into(),
                "Zed".into(),
                "Where is my parcel?".into(),
            ])
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.run_jobs().await;
    let list = expect_json(
        app.get_as(&owner, "/api/v1/conversations").await,
        StatusCode::OK,
    )
    .await;
    let conv = list["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list["items"][0]["contact"]["name"], "Zed");

    // A reply the customer then reads.
    let m = expect_json(
        app.post_as(
            &owner,
            &format!("/api/v1/conversations/{conv}/messages"),
            &json!({"type": "text", "text": "Today!"}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    for _ in 0..3 {
        app.run_jobs().await;
    }
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        let conv = conv.clone();
        move || run(vec!["--from".into(), "zed".into(), "--read".into(), conv])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.run_jobs().await;
    let got = expect_json(
        app.get_as(
            &owner,
            &format!("/api/v1/messages/{}", m["id"].as_str().unwrap()),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got["status"], "read");
    // Bad input is named.
    let out =
        tokio::task::spawn_blocking(move || run(vec!["--from".into(), "a b".into(), "hi".into()]))
            .await
            .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("from.handle"));
}
