//! Outgoing e-mail (password resets, invitations, notifications).
//!
//! Without SMTP configured, [`LogMailer`] writes each mail to the log at info level, so an
//! operator can still copy a reset link from it; it also keeps the last mails for tests.
//! [`SmtpMailer`] sends through an SMTP relay given as a URL:
//!
//! - `smtp://user:pass@host:587?tls=required`: STARTTLS, refused if the server does not offer it;
//! - `smtp://user:pass@host:587?tls=opportunistic`: STARTTLS when offered;
//! - `smtp://host:25`: plain text (local relays only);
//! - `smtps://user:pass@host:465`: TLS from the first byte.
//!
//! User and password are percent-decoded; the path, if any, is the EHLO name.

use std::{
    collections::VecDeque,
    fmt,
    sync::{Arc, Mutex},
};

use anyhow::{Context as _, bail};
use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[async_trait::async_trait]
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    async fn send(&self, mail: &Mail) -> anyhow::Result<()>;
}

pub type SharedMailer = Arc<dyn Mailer>;

/// How many mails [`LogMailer`] remembers.
const KEEP_SENT: usize = 100;

/// Default: logs the mail at info level (so an operator without SMTP can still copy a reset link from the log)
/// and keeps the last 100 in memory for tests.
#[derive(Debug, Default, Clone)]
pub struct LogMailer {
    sent: Arc<Mutex<VecDeque<Mail>>>,
}

impl LogMailer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The last mails sent (at most 100), oldest first.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[async_trait::async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> anyhow::Result<()> {
        tracing::info!(
            to = %mail.to,
            subject = %mail.subject,
            text = %mail.text,
            "mail not sent (no smtp configured), logged instead"
        );
        let mut sent = self
            .sent
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sent.len() == KEEP_SENT {
            sent.pop_front();
        }
        sent.push_back(mail.clone());
        Ok(())
    }
}

/// Sends through an SMTP relay (lettre, async, rustls).
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    scheme: String,
    host: String,
    port: Option<u16>,
    username: Option<String>,
    tls: Option<String>,
}

impl fmt::Debug for SmtpMailer {
    // Hand-written so the password (inside the transport's credentials) can never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// `url`: see the module docs; `from`: `"Wamage <noreply@example.com>"` or a bare address.
    /// Nothing is contacted here; a bad relay shows up on the first send.
    pub fn from_url(url: &str, from: &str) -> anyhow::Result<Self> {
        // Errors never echo the url: it may hold the password.
        let parsed = url::Url::parse(url).context("invalid smtp url")?;
        let scheme = parsed.scheme().to_owned();
        if scheme != "smtp" && scheme != "smtps" {
            bail!("invalid smtp url: scheme must be smtp or smtps, not {scheme:?}");
        }
        let host = match parsed.host_str() {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => bail!("invalid smtp url: no host"),
        };
        // As written in the url (still percent-encoded): only shown by `Debug`.
        let username = Some(parsed.username())
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let from: Mailbox = from
            .parse()
            .with_context(|| format!("invalid sender address {from:?}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("invalid smtp url: {e}"))?
            .build();
        Ok(Self {
            transport,
            from,
            scheme,
            host,
            port: parsed.port(),
            username,
            tls,
        })
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> anyhow::Result<()> {
        let to: Mailbox = mail
            .to
            .parse()
            .with_context(|| format!("invalid recipient address {:?}", mail.to))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .context("failed to build mail")?;
        self.transport
            .send(message)
            .await
            .with_context(|| format!("failed to send mail via {}", self.host))?;
        tracing::info!(to = %mail.to, subject = %mail.subject, "mail sent");
        Ok(())
    }
}
