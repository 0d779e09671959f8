//! Composition: connects the store, cache, bus, blob store and mailer chosen by the config,
//! builds each domain on them, and assembles the router and the background worker.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use serde::Deserialize;
use wamage_campaigns::{
    CampaignHook, Campaigns, CampaignsConfig, CampaignsDeps, DISPATCH_JOB, DispatchJob, LAUNCH_JOB,
    LaunchJob, WATCH_JOB, WatchJob,
};
use wamage_channels::{Channels, ChannelsConfig, ChannelsDeps, INGEST_JOB};
use wamage_chat::{Chat, ChatDeps, ChatRooms, EXPIRE_JOB, ExpireJob};
use wamage_contacts::{Contacts, ContactsDeps, IMPORT_JOB, ImportJob};
use wamage_identity::{HashCost, Identity, IdentityConfig, IdentityDeps, MAIL_JOB};
use wamage_inbox::{
    ConversationRooms, Inbox, InboxDeps, IngestJob, MEDIA_JOB, MediaJob, READ_JOB, ReadJob,
    SEND_JOB, SEND_MANY_JOB, SNOOZE_JOB, SendJob, SendManyJob, SnoozeJob,
};
use wamage_kernel::Clock;
use wamage_platform::{
    Db, DbOptions,
    blob::{LocalBlobStore, SharedBlobStore},
    bus::{SharedBus, connect_bus},
    cache::{SharedCache, connect_cache},
    jobs::{JobContext, JobHandler, JobOutcome, JobQueue, RetryPolicy, Worker, WorkerConfig},
    mail::{LogMailer, Mail, SharedMailer, SmtpMailer},
};
use wamage_realtime::{Realtime, RealtimeConfig, RealtimeDeps};
use wamage_templates::{SYNC_JOB, SyncJob, TemplateHook, Templates, TemplatesDeps};

use crate::{config::Config, http};

/// Everything a running Wamage process holds. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub cache: SharedCache,
    pub bus: SharedBus,
    pub blobs: SharedBlobStore,
    pub mailer: SharedMailer,
    pub jobs: JobQueue,
    pub clock: Clock,
    pub identity: Arc<Identity>,
    pub contacts: Arc<Contacts>,
    pub chat: Arc<Chat>,
    pub channels: Arc<Channels>,
    pub inbox: Arc<Inbox>,
    pub templates: Arc<Templates>,
    pub campaigns: Arc<Campaigns>,
    /// The Socket.IO gateway (mounted by the router when the `realtime` role is on).
    pub realtime: Arc<Realtime>,
}

/// Things tests (and only tests) replace.
#[derive(Default)]
pub struct BuildOptions {
    /// An already connected, migrated database (tests isolate themselves per schema).
    pub db: Option<Db>,
    pub cache: Option<SharedCache>,
    pub clock: Option<Clock>,
    pub mailer: Option<SharedMailer>,
    pub hash_cost: Option<HashCost>,
}

/// The migrations of every crate, in the order they apply.
pub fn all_migrations() -> Vec<wamage_platform::MigrationSet> {
    vec![
        wamage_platform::migrations(),
        wamage_identity::migrations(),
        wamage_contacts::migrations(),
        wamage_chat::migrations(),
        wamage_channels::migrations(),
        wamage_inbox::migrations(),
        wamage_templates::migrations(),
        wamage_campaigns::migrations(),
    ]
}

/// Connects to the database named by the config and applies pending migrations.
pub async fn connect_db(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("failed to create data dir {}", config.data_dir.display()))?;
    }
    let db = Db::connect(
        &url,
        &DbOptions {
            max_connections: config.db_max_connections,
            ..DbOptions::default()
        },
    )
    .await?;
    db.migrate(&all_migrations()).await?;
    Ok(db)
}

pub async fn build_state(config: Config, opts: BuildOptions) -> anyhow::Result<AppState> {
    let db = match opts.db {
        Some(db) => db,
        None => connect_db(&config).await?,
    };
    let cache = match opts.cache {
        Some(c) => c,
        None => connect_cache(config.cache_url.expose())
            .await
            .context("failed to connect the cache (WAMAGE_CACHE_URL)")?,
    };
    let bus = connect_bus(config.bus_url.expose())
        .await
        .context("failed to connect the event bus (WAMAGE_BUS_URL)")?;
    let blobs: SharedBlobStore = Arc::new(LocalBlobStore::new(config.data_dir.join("files"))?);
    let mailer: SharedMailer = match (opts.mailer, &config.smtp_url) {
        (Some(m), _) => m,
        (None, Some(url)) if !url.expose().is_empty() => {
            Arc::new(SmtpMailer::from_url(url.expose(), &config.smtp_from)?)
        }
        (None, _) => Arc::new(LogMailer::new()),
    };
    let clock = opts.clock.unwrap_or_default();
    let jobs = JobQueue::new(db.clone(), clock.clone())
        .with_policy(
            MAIL_JOB,
            RetryPolicy::fixed_exponential(8, Duration::from_secs(10), 2.0),
        )
        // Statuses can beat the send result they report on: a few quick retries.
        .with_policy(
            INGEST_JOB,
            RetryPolicy::fixed_exponential(8, Duration::from_secs(1), 2.0),
        )
        // Pacing and an open breaker reschedule sends: many tries, capped backoff, so a long
        // provider outage delays messages instead of dropping them (~20 h in all).
        .with_policy(
            SEND_JOB,
            RetryPolicy {
                max_attempts: 200,
                base_delay: Duration::from_secs(1),
                factor: 2.0,
                max_delay: Duration::from_secs(600),
                jitter: 0.2,
            },
        )
        // A batch's sender: a few quick tries, then (on its last) every message still queued
        // gets its own `inbox.send` job.
        .with_policy(
            SEND_MANY_JOB,
            RetryPolicy::fixed_exponential(6, Duration::from_secs(1), 2.0),
        )
        .with_policy(
            MEDIA_JOB,
            RetryPolicy::fixed_exponential(6, Duration::from_secs(5), 3.0),
        )
        // A dispatcher comes back while sends settle (retry_after) and after any hiccup; a
        // campaign must not stop because its job ran out of tries.
        .with_policy(
            DISPATCH_JOB,
            RetryPolicy {
                max_attempts: 100_000,
                base_delay: Duration::from_secs(1),
                factor: 2.0,
                max_delay: Duration::from_secs(60),
                jitter: 0.1,
            },
        )
        .with_policy(
            LAUNCH_JOB,
            RetryPolicy::fixed_exponential(20, Duration::from_secs(2), 2.0),
        );
    let secret = config.load_or_create_secret()?;
    let channel_secret = secret.clone();
    let identity = Identity::new(
        IdentityDeps {
            db: db.clone(),
            cache: cache.clone(),
            bus: bus.clone(),
            blobs: blobs.clone(),
            jobs: jobs.clone(),
            clock: clock.clone(),
            secret,
        },
        IdentityConfig {
            hash_cost: opts.hash_cost.unwrap_or_default(),
            public_url: config.public_url(),
            ..IdentityConfig::default()
        },
    )
    .await?;
    let channels = Channels::new(
        ChannelsDeps {
            db: db.clone(),
            identity: identity.clone(),
            jobs: jobs.clone(),
            clock: clock.clone(),
            secret: channel_secret,
        },
        ChannelsConfig {
            public_url: config.public_url(),
            whatsapp_base_url: config.whatsapp_base_url.clone(),
            whatsapp_api_version: config.whatsapp_api_version.clone(),
            telegram_base_url: config.telegram_base_url.clone(),
            allow_base_url_override: config.allow_channel_base_url,
            http_timeout: Duration::from_secs(config.provider_timeout_secs.max(1)),
            pacing: config.channel_pacing,
            burst_yield: Duration::from_millis(config.ingest_burst_yield_ms),
        },
    );
    channels.start_intake();
    let contacts = Contacts::new(ContactsDeps {
        db: db.clone(),
        cache: cache.clone(),
        bus: bus.clone(),
        blobs: blobs.clone(),
        jobs: jobs.clone(),
        clock: clock.clone(),
        import_batch_rows: Some(config.import_batch_rows),
        import_run_budget: Some(Duration::from_secs(config.import_run_secs)),
        import_writers: Some(config.import_writers),
        count_index_after: Some(Duration::from_millis(config.count_index_after_ms)),
        count_index_on_import: config
            .roles()
            .map_or(true, |r| r.contains(&crate::config::ServerRole::Api)),
    });
    let realtime = Realtime::new(
        RealtimeDeps {
            identity: identity.clone(),
            cache: cache.clone(),
            bus: bus.clone(),
            clock: clock.clone(),
        },
        RealtimeConfig::default(),
    );
    let chat = Chat::new(ChatDeps {
        db: db.clone(),
        cache: cache.clone(),
        bus: bus.clone(),
        blobs: blobs.clone(),
        jobs: jobs.clone(),
        clock: clock.clone(),
        identity: identity.clone(),
        realtime: realtime.clone(),
    });
    realtime.register_policy(wamage_chat::ROOM_KIND, Arc::new(ChatRooms(chat.clone())));
    let inbox = Inbox::new(InboxDeps {
        db: db.clone(),
        bus: bus.clone(),
        blobs: blobs.clone(),
        jobs: jobs.clone(),
        clock: clock.clone(),
        identity: identity.clone(),
        contacts: contacts.clone(),
        channels: channels.clone(),
        realtime: realtime.clone(),
        public_url: config.public_url(),
    });
    realtime.register_policy(
        wamage_inbox::ROOM_KIND,
        Arc::new(ConversationRooms(inbox.clone())),
    );
    let templates = Templates::new(TemplatesDeps {
        db: db.clone(),
        bus: bus.clone(),
        jobs: jobs.clone(),
        clock: clock.clone(),
        channels: channels.clone(),
        contacts: contacts.clone(),
    });
    inbox.add_hook(Arc::new(TemplateHook(templates.clone())));
    let campaigns = Campaigns::new(CampaignsDeps {
        db: db.clone(),
        bus: bus.clone(),
        jobs: jobs.clone(),
        clock: clock.clone(),
        channels: channels.clone(),
        contacts: contacts.clone(),
        templates: templates.clone(),
        config: CampaignsConfig {
            dispatchers: config.campaign_dispatchers,
            batch: config.campaign_batch,
            concurrency: config.campaign_concurrency,
            confirm_grace: Duration::from_secs(config.campaign_confirm_secs),
            lease: Duration::from_secs(config.campaign_lease_secs),
            ..CampaignsConfig::default()
        },
    });
    inbox.add_hook(Arc::new(CampaignHook(campaigns.clone())));
    Ok(AppState {
        config: Arc::new(config),
        db,
        cache,
        bus,
        blobs,
        mailer,
        jobs,
        clock,
        identity,
        contacts,
        chat,
        channels,
        inbox,
        templates,
        campaigns,
        realtime,
    })
}

/// The HTTP application (API, docs, ops endpoints, web UI).
pub fn router(state: &AppState) -> Router {
    // Install the recorder before the first request, so no early metric is lost.
    let _ = crate::ops::prometheus();
    http::router(state)
}

/// The background worker with every job kind this build knows.
pub fn worker(state: &AppState) -> Worker {
    // Automatic: one on SQLite (one writer; a run applies many jobs' events together), and on
    // PostgreSQL one per core from 2 to 8 (more runs than cores take CPU from the webhook
    // intake during a burst).
    let ingest = match (state.config.ingest_concurrency, &state.db) {
        (0, Db::Sqlite(_)) => 1,
        (0, Db::Postgres(_)) => std::thread::available_parallelism()
            .map_or(2, std::num::NonZeroUsize::get)
            .clamp(2, 8),
        (n, _) => n,
    };
    Worker::new(state.jobs.clone())
        .with_config(WorkerConfig {
            concurrency: state.config.worker_concurrency,
            kind_limits: [(INGEST_JOB.to_owned(), ingest)].into(),
            ..WorkerConfig::default()
        })
        .register(
            MAIL_JOB,
            SendMail {
                mailer: state.mailer.clone(),
            },
        )
        .register(IMPORT_JOB, ImportJob(state.contacts.clone()))
        .register(EXPIRE_JOB, ExpireJob(state.chat.clone()))
        .register(INGEST_JOB, IngestJob(state.inbox.clone()))
        .register(SEND_JOB, SendJob(state.inbox.clone()))
        .register(SEND_MANY_JOB, SendManyJob(state.inbox.clone()))
        .register(MEDIA_JOB, MediaJob(state.inbox.clone()))
        .register(SNOOZE_JOB, SnoozeJob(state.inbox.clone()))
        .register(READ_JOB, ReadJob(state.inbox.clone()))
        .register(SYNC_JOB, SyncJob(state.templates.clone()))
        .register(LAUNCH_JOB, LaunchJob(state.campaigns.clone()))
        .register(DISPATCH_JOB, DispatchJob(state.campaigns.clone()))
        .register(WATCH_JOB, WatchJob(state.campaigns.clone()))
}

/// Sends one e-mail (`mail.send` jobs).
struct SendMail {
    mailer: SharedMailer,
}

#[derive(Deserialize)]
struct MailPayload {
    to: String,
    subject: String,
    text: String,
}

#[async_trait::async_trait]
impl JobHandler for SendMail {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        let p: MailPayload = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid mail payload: {e}")),
        };
        let mail = Mail {
            to: p.to,
            subject: p.subject,
            text: p.text,
        };
        match self.mailer.send(&mail).await {
            Ok(()) => JobOutcome::Done,
            Err(e) => JobOutcome::retry(format!("mail delivery failed: {e:#}")),
        }
    }
}
