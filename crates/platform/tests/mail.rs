#![allow(clippy::unwrap_used)]

use wamage_platform::mail::{LogMailer, Mail, Mailer, SharedMailer, SmtpMailer};

fn mail(n: usize) -> Mail {
    Mail {
        to: format!("user{n}@example.com"),
        subject: format!("Reset your password ({n})"),
        text: format!("https://wamage.example/reset?token=t{n}"),
    }
}

#[tokio::test]
async fn log_mailer_records_sent_mail() {
    let mailer = LogMailer::new();
    let shared: SharedMailer = std::sync::Arc::new(mailer.clone());
    assert!(mailer.sent().is_empty());
    shared.send(&mail(1)).await.unwrap();
    shared.send(&mail(2)).await.unwrap();
    // Clones share the record, so a test can keep a handle to the mailer it gave the app.
    assert_eq!(mailer.sent(), vec![mail(1), mail(2)]);
}

#[tokio::test]
async fn log_mailer_keeps_the_last_hundred() {
    let mailer = LogMailer::new();
    for n in 0..105 {
        mailer.send(&mail(n)).await.unwrap();
    }
    let sent = mailer.sent();
    assert_eq!(sent.len(), 100);
    assert_eq!(sent.first(), Some(&mail(5)));
    assert_eq!(sent.last(), Some(&mail(104)));
}

#[test]
fn smtp_mailer_parses_urls() {
    for url in [
        "smtp://user:pass@mail.example.com:587?tls=required",
        "smtp://user:pass@mail.example.com:587?tls=opportunistic",
        "smtp://localhost:25",
        "smtp://localhost",
        "smtps://user%40example.com:p%40ss@mail.example.com:465",
        "smtps://mail.example.com",
    ] {
        SmtpMailer::from_url(url, "Wamage <noreply@example.com>")
            .unwrap_or_else(|e| panic!("{url}: {e:#}"));
    }
    for url in [
        "http://mail.example.com",
        "mail.example.com:587",
        "smtp://",
        "smtp://mail.example.com?tls=sometimes",
    ] {
        assert!(
            SmtpMailer::from_url(url, "noreply@example.com").is_err(),
            "accepted {url}"
        );
    }
    assert!(SmtpMailer::from_url("smtp://localhost", "not an address").is_err());
}

#[test]
fn smtp_mailer_debug_hides_the_password() {
    let mailer = SmtpMailer::from_url(
        "smtps://alice:Sup3r-S3cret@mail.example.com:465",
        "noreply@example.com",
    )
    .unwrap();
    let debug = format!("{mailer:?}");
    assert!(!debug.contains("Sup3r-S3cret"), "{debug}");
    assert!(debug.contains("mail.example.com"), "{debug}");
    assert!(debug.contains("alice"), "{debug}");
    assert!(!format!("{mailer:#?}").contains("Sup3r-S3cret"));
}

#[test]
fn smtp_url_errors_do_not_echo_the_password() {
    let err =
        SmtpMailer::from_url("ftp://bob:Hunter2-pw@mail.example.com", "a@example.com").unwrap_err();
    assert!(!format!("{err:#}").contains("Hunter2-pw"), "{err:#}");
}

/// A minimal SMTP server on loopback (plain SMTP, no TLS, no auth): enough of RFC 5321 for one
/// client session. Returns the envelope and the message it received.
async fn fake_smtp_server() -> (u16, tokio::task::JoinHandle<(Vec<String>, String)>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut lines = BufReader::new(r).lines();
        let mut envelope = Vec::new();
        let mut data = String::new();
        w.write_all(b"220 fake.test ESMTP\r\n").await.unwrap();
        while let Some(line) = lines.next_line().await.unwrap() {
            let upper = line.to_ascii_uppercase();
            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                w.write_all(b"250-fake.test\r\n250 8BITMIME\r\n")
                    .await
                    .unwrap();
            } else if upper.starts_with("MAIL FROM") || upper.starts_with("RCPT TO") {
                envelope.push(line.clone());
                w.write_all(b"250 OK\r\n").await.unwrap();
            } else if upper == "DATA" {
                w.write_all(b"354 go ahead\r\n").await.unwrap();
                while let Some(l) = lines.next_line().await.unwrap() {
                    if l == "." {
                        break;
                    }
                    data.push_str(&l);
                    data.push('\n');
                }
                w.write_all(b"250 queued\r\n").await.unwrap();
            } else if upper == "QUIT" {
                w.write_all(b"221 bye\r\n").await.unwrap();
                break;
            } else {
                w.write_all(b"250 OK\r\n").await.unwrap();
            }
        }
        (envelope, data)
    });
    (port, handle)
}

#[tokio::test]
async fn smtp_mailer_delivers_to_a_server() {
    let (port, server) = fake_smtp_server().await;
    let mailer = SmtpMailer::from_url(
        &format!("smtp://127.0.0.1:{port}"),
        "Wamage <no-reply@wamage.test>",
    )
    .unwrap();
    mailer.send(&mail(7)).await.unwrap();
    drop(mailer); // closes the pooled connection, so the fake sees QUIT or EOF
    let (envelope, data) = tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        envelope
            .iter()
            .any(|l| l.contains("<no-reply@wamage.test>")),
        "{envelope:?}"
    );
    assert!(
        envelope.iter().any(|l| l.contains("<user7@example.com>")),
        "{envelope:?}"
    );
    assert!(data.contains("Subject: Reset your password (7)"), "{data}");
    assert!(
        data.contains("https://wamage.example/reset?token=t7"),
        "{data}"
    );
}
