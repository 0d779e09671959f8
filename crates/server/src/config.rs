//! Configuration, layered: built-in defaults → `wamage.toml` (or `--config FILE`) → `WAMAGE_*`
//! environment variables → command-line flags. Validated once at start-up with messages that
//! name the setting; secrets never appear in `Debug` output or logs.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use anyhow::{Context, bail};
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// A secret value: usable, never printed.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// What a process runs. `serve` runs all by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    /// The HTTP API and the web UI.
    Api,
    /// Background jobs.
    Worker,
    /// The Socket.IO gateway.
    Realtime,
}

impl FromStr for ServerRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "api" => Ok(Self::Api),
            "worker" => Ok(Self::Worker),
            "realtime" => Ok(Self::Realtime),
            other => Err(format!(
                "unknown role `{other}`: expected api, worker or realtime"
            )),
        }
    }
}

/// Every setting, with its default.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`WAMAGE_LISTEN`).
    pub listen: String,
    /// Where the SQLite database, the secret key and files live (`WAMAGE_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default a SQLite file in the data dir.
    pub database_url: Option<Secret>,
    /// `memory` or `redis://…`.
    pub cache_url: Secret,
    /// `memory` (NATS comes later).
    pub bus_url: Secret,
    /// Key for signing tokens and encrypting secrets at rest; generated into the data dir if unset.
    pub secret_key: Option<Secret>,
    /// Public base URL of the web app, used in links sent by e-mail; default `http://{listen}`.
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `wamage=debug,sqlx=warn`.
    pub log_level: String,
    /// Origins allowed to call the API from a browser on another origin (comma-separated).
    pub cors_origins: String,
    /// Trust `X-Forwarded-For` for the client IP (only behind a reverse proxy you control).
    pub trust_forwarded_for: bool,
    /// `smtp://user:pass@host:587?tls=required` to send e-mail; unset = e-mails are logged.
    pub smtp_url: Option<Secret>,
    pub smtp_from: String,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub db_max_connections: u32,
    /// Roles to run, comma-separated (`api,worker,realtime`).
    pub roles: String,
    /// Background jobs run at once by this process's worker.
    pub worker_concurrency: usize,
    /// Webhook ingest runs at once by this process's worker (0: 1 on SQLite, whose one writer
    /// more would only queue for; on PostgreSQL one per CPU core, 2 to 8).
    pub ingest_concurrency: usize,
    /// How long (milliseconds) webhook processing may wait for a burst of webhooks to be
    /// stored first, counted from their arrival; 0: never.
    pub ingest_burst_yield_ms: u64,
    /// Rows a contacts import writes per transaction.
    pub import_batch_rows: usize,
    /// Seconds one run of a contacts import job goes on taking batches before it hands over
    /// to a new job (0: one batch per run).
    pub import_run_secs: u64,
    /// Batches of one contacts import in flight at once, each in its own transaction.
    pub import_writers: usize,
    /// A segment count by SQL this slow (milliseconds) gives the organisation an in-memory
    /// count index; 0: after any count.
    pub count_index_after_ms: u64,
    /// WhatsApp Cloud API (Graph API) root (`WAMAGE_WHATSAPP_BASE_URL`).
    pub whatsapp_base_url: String,
    /// Default Graph API version of WhatsApp channels.
    pub whatsapp_api_version: String,
    /// Telegram Bot API root (`WAMAGE_TELEGRAM_BASE_URL`).
    pub telegram_base_url: String,
    /// Let a channel's settings carry its own provider `base_url` (test set-ups only).
    pub allow_channel_base_url: bool,
    /// Outbound pacing per channel (turn off only to measure raw throughput).
    pub channel_pacing: bool,
    /// Timeout of one provider call, in seconds.
    pub provider_timeout_secs: u64,
    /// Dispatch jobs per running campaign (spread over workers and processes).
    pub campaign_dispatchers: u32,
    /// Recipients a campaign dispatcher claims per batch.
    pub campaign_batch: u32,
    /// Sends in flight per campaign dispatcher.
    pub campaign_concurrency: u32,
    /// Seconds an interrupted campaign send waits for the provider's report before it is
    /// settled (resent on WhatsApp, failed elsewhere).
    pub campaign_confirm_secs: u64,
    /// Seconds a dispatcher holds a claimed batch of campaign recipients.
    pub campaign_lease_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            cache_url: Secret::new("memory"),
            bus_url: Secret::new("memory"),
            secret_key: None,
            public_url: None,
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            cors_origins: String::new(),
            trust_forwarded_for: false,
            smtp_url: None,
            smtp_from: "Wamage <no-reply@localhost>".to_owned(),
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            db_max_connections: 16,
            roles: "api,worker,realtime".to_owned(),
            worker_concurrency: 16,
            ingest_concurrency: 0,
            ingest_burst_yield_ms: 3_000,
            import_batch_rows: wamage_contacts::IMPORT_BATCH_ROWS,
            import_run_secs: wamage_contacts::IMPORT_RUN_BUDGET.as_secs(),
            import_writers: wamage_contacts::IMPORT_WRITERS,
            count_index_after_ms: wamage_contacts::COUNT_INDEX_AFTER.as_millis() as u64,
            whatsapp_base_url: "https://graph.facebook.com".to_owned(),
            whatsapp_api_version: "v21.0".to_owned(),
            telegram_base_url: "https://api.telegram.org".to_owned(),
            allow_channel_base_url: false,
            channel_pacing: true,
            provider_timeout_secs: 20,
            campaign_dispatchers: 2,
            campaign_batch: 500,
            campaign_concurrency: 64,
            campaign_confirm_secs: 120,
            campaign_lease_secs: 120,
        }
    }
}

/// Command-line overrides (the highest layer).
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
}

impl Config {
    /// Loads every layer. `file`: an explicit config file (must exist); otherwise `wamage.toml`
    /// in the working directory is read when present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Self::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("config file {} does not exist", path.display());
                }
                fig = fig.merge(Toml::file(path));
            }
            None => fig = fig.merge(Toml::file("wamage.toml")),
        }
        let fig = fig
            // Only settings are read from the environment: other WAMAGE_* variables (test
            // harness URLs, WAMAGE_CONFIG, scripts' own) are not configuration.
            .merge(
                Env::prefixed("WAMAGE_")
                    .filter(|key| Self::keys().iter().any(|k| key == k.as_str())),
            )
            .merge(Serialized::defaults(overrides));
        let cfg: Self = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The setting names (lower-case, as in `wamage.toml`).
    fn keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Checks what a type cannot: addresses, URL schemes, ranges.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        let db = self.database_url();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres:")
            || db.starts_with("postgresql:"))
        {
            bail!("WAMAGE_DATABASE_URL must start with sqlite:// or postgres://");
        }
        let cache = self.cache_url.expose();
        if !(cache.is_empty()
            || cache.starts_with("memory")
            || cache.starts_with("redis://")
            || cache.starts_with("rediss://"))
        {
            bail!("WAMAGE_CACHE_URL must be `memory` or a redis:// URL");
        }
        let bus = self.bus_url.expose();
        if !(bus.is_empty() || bus.starts_with("memory")) {
            bail!("WAMAGE_BUS_URL must be `memory` (the NATS bus is not built yet)");
        }
        if let Some(url) = &self.public_url {
            url::Url::parse(url).context("WAMAGE_PUBLIC_URL is not a valid URL")?;
        }
        if let Some(k) = &self.secret_key
            && k.expose().len() < 32
        {
            bail!("WAMAGE_SECRET_KEY must be at least 32 characters (e.g. `openssl rand -hex 32`)");
        }
        if self.max_body_bytes < 1024 {
            bail!("WAMAGE_MAX_BODY_BYTES must be at least 1024");
        }
        if self.request_timeout_secs == 0 {
            bail!("WAMAGE_REQUEST_TIMEOUT_SECS must be at least 1");
        }
        if self.db_max_connections == 0 || self.worker_concurrency == 0 {
            bail!("WAMAGE_DB_MAX_CONNECTIONS and WAMAGE_WORKER_CONCURRENCY must be at least 1");
        }
        if self.ingest_concurrency > 1024 {
            bail!("WAMAGE_INGEST_CONCURRENCY must be between 0 (automatic) and 1024");
        }
        if self.ingest_burst_yield_ms > 60_000 {
            bail!("WAMAGE_INGEST_BURST_YIELD_MS must be between 0 and 60000");
        }
        if !(1..=50_000).contains(&self.import_batch_rows) {
            bail!("WAMAGE_IMPORT_BATCH_ROWS must be between 1 and 50000");
        }
        if self.import_run_secs > 3_600 {
            bail!("WAMAGE_IMPORT_RUN_SECS must be between 0 and 3600");
        }
        if !(1..=16).contains(&self.import_writers) {
            bail!("WAMAGE_IMPORT_WRITERS must be between 1 and 16");
        }
        if self.count_index_after_ms > 60_000 {
            bail!("WAMAGE_COUNT_INDEX_AFTER_MS must be between 0 and 60000");
        }
        if !(1..=64).contains(&self.campaign_dispatchers) {
            bail!("WAMAGE_CAMPAIGN_DISPATCHERS must be between 1 and 64");
        }
        if !(1..=10_000).contains(&self.campaign_batch) {
            bail!("WAMAGE_CAMPAIGN_BATCH must be between 1 and 10000");
        }
        if !(1..=1024).contains(&self.campaign_concurrency) {
            bail!("WAMAGE_CAMPAIGN_CONCURRENCY must be between 1 and 1024");
        }
        if !(1..=86_400).contains(&self.campaign_confirm_secs) {
            bail!("WAMAGE_CAMPAIGN_CONFIRM_SECS must be between 1 and 86400");
        }
        if !(10..=3_600).contains(&self.campaign_lease_secs) {
            bail!("WAMAGE_CAMPAIGN_LEASE_SECS must be between 10 and 3600");
        }
        self.roles()?;
        Ok(())
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen.parse().with_context(|| {
            format!(
                "WAMAGE_LISTEN `{}` is not an address like 127.0.0.1:8080",
                self.listen
            )
        })
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) if !u.expose().is_empty() => u.expose().to_owned(),
            _ => format!("sqlite://{}", self.data_dir.join("wamage.db").display()),
        }
    }

    pub fn roles(&self) -> anyhow::Result<Vec<ServerRole>> {
        let roles = self
            .roles
            .split(',')
            .filter(|r| !r.trim().is_empty())
            .map(|r| r.parse::<ServerRole>().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if roles.is_empty() {
            bail!("WAMAGE_ROLES must name at least one of api, worker, realtime");
        }
        Ok(roles)
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origins
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The secret key: configured, or read from / generated into `{data_dir}/secret.key`.
    pub fn load_or_create_secret(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(k) = &self.secret_key {
            return Ok(k.expose().as_bytes().to_vec());
        }
        let path = self.data_dir.join("secret.key");
        if path.exists() {
            let key = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            let key = key.trim();
            if key.len() < 32 {
                bail!(
                    "{} is too short; delete it to generate a new one",
                    path.display()
                );
            }
            return Ok(key.as_bytes().to_vec());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("failed to create data dir {}", self.data_dir.display()))?;
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let key = hex::encode(bytes);
        write_private(&path, &key)?;
        tracing::info!(path = %path.display(), "generated a new secret key");
        Ok(key.into_bytes())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("failed to create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_secrets_are_redacted() {
        let mut cfg = Config::default();
        cfg.validate().unwrap();
        assert!(cfg.database_url().starts_with("sqlite://"));
        cfg.secret_key = Some(Secret::new("super-secret-value-that-is-long-enough"));
        cfg.database_url = Some(Secret::new("postgres://u:pw@h/db"));
        let printed = format!("{cfg:?}");
        assert!(!printed.contains("super-secret"));
        assert!(!printed.contains(":pw@"));
    }

    #[test]
    fn bad_values_are_explained() {
        let cfg = Config {
            listen: "nope".into(),
            ..Config::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("WAMAGE_LISTEN")
        );
        let cfg = Config {
            roles: "api,cook".into(),
            ..Config::default()
        };
        assert!(cfg.validate().unwrap_err().to_string().contains("cook"));
        let cfg = Config {
            database_url: Some(Secret::new("mysql://x")),
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API fixes the error type
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "wamage.toml",
                "listen = \"127.0.0.1:9000\"\nlog_level = \"debug\"",
            )?;
            jail.set_env("WAMAGE_LISTEN", "127.0.0.1:9100");
            jail.set_env("WAMAGE_BIN", "/not/a/setting");
            let cfg = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen, "127.0.0.1:9100");
            assert_eq!(cfg.log_level, "debug");
            let cfg = Config::load(
                None,
                &Overrides {
                    listen: Some("127.0.0.1:9200".into()),
                    ..Overrides::default()
                },
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen, "127.0.0.1:9200");
            jail.create_file("wamage.toml", "colour = \"blue\"")?;
            assert!(Config::load(None, &Overrides::default()).is_err());
            Ok(())
        });
    }
}
