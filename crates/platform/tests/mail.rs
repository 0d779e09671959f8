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
