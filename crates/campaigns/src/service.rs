//! Campaign use cases: drafts, audience previews with the consent breakdown, launch (now or
//! at a local time), the snapshot, the dispatchers, pause/resume/cancel, analytics and
//! retargeting.
//!
//! **Never twice.** Each recipient is one row, unique per campaign and contact. A dispatcher
//! leases the next range of `seq` numbers (one row in `campaign_leases`; the recipients are
//! not written), sends the range's pending recipients, and records each outcome only on rows
//! it still holds, releasing the lease in the same write. Once every number has been leased,
//! the recipients still pending are claimed row by row with a lease (`sending`), never one
//! inside a live range lease. A recipient whose lease ran out (its worker stopped mid-send)
//! becomes `unconfirmed`: the send may or may not have reached the provider. WhatsApp sends carry
//! `biz_opaque_callback_data` = `wc:{campaign}:{seq}`, which Meta echoes in every delivery
//! report, so a report settles the row as sent; only when no report came within the grace
//! period is it sent again. Other channels have no such echo: an unconfirmed row is failed
//! (never resent) after the grace period.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::{Value, json};
use wamage_channels::{
    Channel, ChannelId, ChannelKind, Channels, HealthState, SendError,
    pacing::Gate,
    provider::{ActionNeeded, Outbound, Recipient, StatusUpdate},
    recipient_key,
};
use wamage_contacts::{
    Breakdown, ConsentChannel, ConsentPurpose, ContactId, Contacts, IdentityKind, SendContact,
    SystemConsent,
};
use wamage_identity::{Principal, Role};
use wamage_inbox::IngestHook;
use wamage_kernel::{Clock, OrgId, Problem, Timestamp, validate::Validator};
use wamage_platform::{
    Backend, Db,
    bus::SharedBus,
    jobs::{JobContext, JobHandler, JobOutcome, JobQueue, NewJob},
};
use wamage_realtime::{Room, event_for_rooms};
use wamage_templates::{Template, TemplateStatus, Templates, model as tpl, send_channel};

use crate::{
    http::{
        CampaignIn, CampaignOut, CampaignPatch, ChannelRef, Counts, FailedCode, LaunchIn,
        PreviewIn, RecipientOut, RecipientPage, RetargetIn, SeriesPoint, SkippedReason, StatsOut,
        TemplateRef,
    },
    model::{Audience, CampaignId, CampaignStatus, FromCampaign},
    store::{self, CampaignRow, Claimed, NewRecipient, Outcome},
};

pub const SOURCE: &str = "/wamage/campaigns";
/// Snapshots a launched campaign's audience (`{campaign_id}`), at its scheduled time.
pub const LAUNCH_JOB: &str = "campaigns.launch";
/// Sends a running campaign (`{campaign_id, shard}`); several run at once.
pub const DISPATCH_JOB: &str = "campaigns.dispatch";
/// Once a minute while campaigns run: gives every running campaign its dispatchers again if
/// they are gone (a job that died with its worker too often is not retried by the queue).
pub const WATCH_JOB: &str = "campaigns.watch";
/// How often the watchdog looks.
const WATCH_EVERY: Duration = Duration::from_secs(60);
/// Contacts a snapshot copies per statement.
const SNAPSHOT_PAGE: usize = 5000;
/// Ranges of contacts a PostgreSQL snapshot copies side by side.
const SNAPSHOT_STREAMS: usize = 3;

/// Tuning, from the server config.
#[derive(Debug, Clone)]
pub struct CampaignsConfig {
    /// Dispatch jobs per campaign (spread over workers and processes).
    pub dispatchers: u32,
    /// Recipients claimed per batch (fewer when the channel's pace is slow).
    pub batch: u32,
    /// Sends in flight per dispatcher.
    pub concurrency: u32,
    /// How long a claimed batch is held.
    pub lease: Duration,
    /// How long an unconfirmed send waits for the provider's report before it is settled.
    pub confirm_grace: Duration,
    /// A customer message within this long after a send counts as a reply to it.
    pub reply_window: Duration,
}

impl Default for CampaignsConfig {
    fn default() -> Self {
        Self {
            dispatchers: 2,
            batch: 500,
            concurrency: 64,
            lease: Duration::from_secs(120),
            confirm_grace: Duration::from_secs(120),
            reply_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

pub struct CampaignsDeps {
    pub db: Db,
    pub bus: SharedBus,
    pub jobs: JobQueue,
    pub clock: Clock,
    pub channels: Arc<Channels>,
    pub contacts: Arc<Contacts>,
    pub templates: Arc<Templates>,
    pub config: CampaignsConfig,
}

/// The campaigns service.
pub struct Campaigns {
    db: Db,
    bus: SharedBus,
    jobs: JobQueue,
    clock: Clock,
    channels: Arc<Channels>,
    contacts: Arc<Contacts>,
    templates: Arc<Templates>,
    config: CampaignsConfig,
    /// Last progress event per campaign, for throttling and the live rate.
    progress: Mutex<HashMap<CampaignId, ProgressSample>>,
}

impl std::fmt::Debug for Campaigns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Campaigns").finish_non_exhaustive()
    }
}

fn db_err(e: sqlx::Error) -> Problem {
    Problem::internal(format_args!("database: {e}"))
}

fn admin_only(who: &Principal) -> Result<(), Problem> {
    if who.role >= Role::Admin {
        Ok(())
    } else {
        Err(Problem::forbidden("Only admins can manage campaigns"))
    }
}

fn invalid_state(what: &str, status: CampaignStatus) -> Problem {
    Problem::conflict(
        "invalid_state",
        format!("A {} campaign cannot be {what}", status.as_str()),
    )
}

/// What a batch's sends ask the dispatcher to do besides recording outcomes.
#[derive(Debug, Clone)]
enum Effect {
    Pause(String),
    OptOut(ContactId),
}

/// Everything a batch's sends share.
struct BatchCtx<'a> {
    campaign: CampaignId,
    channel: &'a Channel,
    template: &'a Template,
    mapping: &'a tpl::Mapping,
    purpose: ConsentPurpose,
    guard: Arc<wamage_channels::pacing::Guard>,
    client: Arc<dyn wamage_channels::ProviderClient>,
    deadline: Instant,
    /// Set when the campaign stops running (paused or cancelled, by anyone on any node):
    /// sends not yet on the wire go back to pending.
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Campaigns {
    pub fn new(deps: CampaignsDeps) -> Arc<Self> {
        Arc::new(Self {
            db: deps.db,
            bus: deps.bus,
            jobs: deps.jobs,
            clock: deps.clock,
            channels: deps.channels,
            contacts: deps.contacts,
            templates: deps.templates,
            config: deps.config,
            progress: Mutex::new(HashMap::new()),
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn publish(&self, org: OrgId, type_: &str, data: Value) {
        let rooms: Vec<Room> = Room::new("org", org.as_uuid()).into_iter().collect();
        let ev = event_for_rooms(SOURCE, type_, org, self.now(), &rooms, data);
        if let Err(e) = self.bus.publish(ev).await {
            tracing::warn!(error = %e, event = type_, "failed to publish a campaign event");
        }
    }

    async fn publish_campaign(&self, org: OrgId, type_: &str, id: CampaignId) {
        match self.out_by_id(org, id).await {
            Ok(out) => self.publish(org, type_, json!({ "campaign": out })).await,
            Err(e) => tracing::warn!(error = %e, "failed to render a campaign for its event"),
        }
    }

    /// The campaign's template, if it still exists.
    async fn template_of(&self, row: &CampaignRow) -> Option<Template> {
        match row.template_id {
            Some(t) => self.templates.template(row.org_id, t).await.ok(),
            None => None,
        }
    }

    async fn row(&self, org: OrgId, id: CampaignId) -> Result<CampaignRow, Problem> {
        store::get(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("campaign"))
    }

    async fn counts(&self, id: CampaignId, total: i64) -> Result<Counts, Problem> {
        // States move forward only (sent → delivered → read; a failure report never follows a
        // delivery), so the cumulative counts come from the state index alone.
        let states = store::state_counts(&self.db, id).await.map_err(db_err)?;
        let replied = store::replied_count(&self.db, id).await.map_err(db_err)?;
        let get = |s: &str| states.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        let (delivered, read) = (get("delivered") + get("read"), get("read"));
        let rows: i64 = states.iter().map(|(_, n)| n).sum();
        // Pending rows inside a range lease are being sent.
        let in_flight = if get("pending") > 0 {
            store::leased_pending(&self.db, id).await.map_err(db_err)?
        } else {
            0
        };
        Ok(Counts {
            total: total.max(rows),
            pending: get("pending") - in_flight,
            sending: get("sending") + get("unconfirmed") + in_flight,
            sent: get("sent") + get("delivered") + get("read"),
            delivered,
            read,
            replied,
            failed: get("failed"),
            skipped: get("skipped"),
        })
    }

    /// The live rate: from this process's progress samples, else the last 30 s of sends.
    async fn rate(&self, id: CampaignId, status: CampaignStatus) -> f64 {
        if status != CampaignStatus::Running {
            return 0.0;
        }
        if let Ok(m) = self.progress.lock()
            && let Some(p) = m.get(&id)
            && p.at.elapsed() < Duration::from_secs(10)
        {
            return p.rate;
        }
        let since = self.now().minus(Duration::from_secs(30));
        store::sent_since(&self.db, id, since)
            .await
            .map_or(0.0, |n| n as f64 / 30.0)
    }

    async fn out(&self, r: &CampaignRow) -> Result<CampaignOut, Problem> {
        let channel = self.channels.get_any(r.channel_id).await?;
        let template = self.template_of(r).await;
        let status = CampaignStatus::from_db(&r.status);
        let counts = self.counts(r.id, r.total).await?;
        let rate = self.rate(r.id, status).await;
        let remaining = counts.pending + counts.sending;
        Ok(CampaignOut {
            id: r.id,
            name: r.name.clone(),
            channel: channel.map_or(
                ChannelRef {
                    id: r.channel_id,
                    name: "Deleted channel".to_owned(),
                    kind: ChannelKind::Sandbox,
                },
                |c| ChannelRef {
                    id: c.id,
                    name: c.name,
                    kind: c.kind,
                },
            ),
            template: template.map(|t| TemplateRef {
                id: t.id,
                name: t.name,
                language: t.language,
                category: t.category,
                status: t.status,
            }),
            variables: serde_json::from_str(&r.variables).unwrap_or_default(),
            audience: serde_json::from_str(&r.audience).unwrap_or_default(),
            status,
            pause_reason: r.pause_reason.clone(),
            scheduled_at: r.scheduled_at,
            time_zone: r.time_zone.clone(),
            failure_threshold: r.failure_threshold,
            counts,
            rate_per_second: (rate * 10.0).round() / 10.0,
            eta_seconds: (status == CampaignStatus::Running && rate > 0.0 && remaining > 0)
                .then(|| (remaining as f64 / rate).ceil() as i64),
            created_at: r.created_at,
            updated_at: r.updated_at,
            launched_at: r.launched_at,
            completed_at: r.completed_at,
        })
    }

    async fn out_by_id(&self, org: OrgId, id: CampaignId) -> Result<CampaignOut, Problem> {
        let r = self.row(org, id).await?;
        self.out(&r).await
    }

    pub async fn list(
        &self,
        who: &Principal,
        status: Option<CampaignStatus>,
    ) -> Result<Vec<CampaignOut>, Problem> {
        let rows = store::list(&self.db, who.org_id, status.map(CampaignStatus::as_str))
            .await
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.out(r).await?);
        }
        Ok(out)
    }

    pub async fn get(&self, who: &Principal, id: CampaignId) -> Result<CampaignOut, Problem> {
        self.out_by_id(who.org_id, id).await
    }

    /// Checks a campaign's parts; returns the channel and template.
    async fn check(
        &self,
        v: &mut Validator,
        org: OrgId,
        channel_id: ChannelId,
        template_id: Option<wamage_templates::TemplateId>,
        variables: &tpl::Mapping,
        audience: &Audience,
    ) -> Result<(Option<Channel>, Option<Template>), Problem> {
        let channel = match self.channels.get(org, channel_id).await {
            Ok(c) => Some(c),
            Err(_) => {
                v.error("channel_id", "is not a channel of this organisation");
                None
            }
        };
        let template = match template_id {
            Some(t) => match self.templates.template(org, t).await {
                Ok(t) => {
                    if channel.as_ref().is_some_and(|c| c.id != t.channel_id) {
                        v.error("template_id", "belongs to another channel");
                    }
                    tpl::check_mapping(v, "variables", &t.variables, variables);
                    Some(t)
                }
                Err(_) => {
                    v.error("template_id", "is not a template of this organisation");
                    None
                }
            },
            None => None,
        };
        if let Err(p) = self.contacts.check_audience(org, &audience.spec()).await {
            for e in p.errors {
                v.error(&e.field, e.message);
            }
        }
        if let Some(f) = &audience.from_campaign
            && store::get(&self.db, org, f.campaign_id)
                .await
                .map_err(db_err)?
                .is_none()
        {
            v.error(
                "audience.from_campaign.campaign_id",
                "is not a campaign of this organisation",
            );
        }
        Ok((channel, template))
    }

    pub async fn create(&self, who: &Principal, b: &CampaignIn) -> Result<CampaignOut, Problem> {
        admin_only(who)?;
        let mut v = Validator::new();
        let name = b.name.trim();
        v.length("name", name, 1, 200);
        let threshold = b.failure_threshold.unwrap_or(0.2);
        if !(0.0..=1.0).contains(&threshold) {
            v.error("failure_threshold", "must be between 0 and 1");
        }
        let variables = b.variables.clone().unwrap_or_default();
        let (_, template) = self
            .check(
                &mut v,
                who.org_id,
                b.channel_id,
                b.template_id,
                &variables,
                &b.audience,
            )
            .await?;
        v.finish()?;
        // Unmapped variables start from the template's own mapping.
        let mut vars = template
            .as_ref()
            .map(|t| t.mapping.clone())
            .unwrap_or_default();
        vars.extend(variables);
        let now = self.now();
        let row = CampaignRow {
            id: CampaignId::new(),
            org_id: who.org_id,
            channel_id: b.channel_id,
            template_id: b.template_id,
            name: name.to_owned(),
            variables: serde_json::to_string(&vars).unwrap_or_default(),
            audience: serde_json::to_string(&b.audience).unwrap_or_default(),
            status: CampaignStatus::Draft.as_str().to_owned(),
            pause_reason: None,
            scheduled_at: None,
            time_zone: None,
            failure_threshold: threshold,
            total: 0,
            snapshot_at: None,
            created_by: Some(who.user_id),
            created_at: now,
            updated_at: now,
            launched_at: None,
            completed_at: None,
        };
        store::insert(&self.db, &row).await.map_err(db_err)?;
        self.out(&row).await
    }

    pub async fn update(
        &self,
        who: &Principal,
        id: CampaignId,
        b: &CampaignPatch,
    ) -> Result<CampaignOut, Problem> {
        admin_only(who)?;
        let mut row = self.row(who.org_id, id).await?;
        let status = CampaignStatus::from_db(&row.status);
        if status != CampaignStatus::Draft {
            return Err(Problem::conflict(
                "not_editable",
                "Only draft campaigns can be changed",
            )
            .with_detail("Cancel a scheduled campaign to edit it, or retarget a finished one into a new draft."));
        }
        let mut v = Validator::new();
        if let Some(n) = &b.name {
            v.length("name", n.trim(), 1, 200);
            row.name = n.trim().to_owned();
        }
        if let Some(t) = b.failure_threshold {
            if !(0.0..=1.0).contains(&t) {
                v.error("failure_threshold", "must be between 0 and 1");
            }
            row.failure_threshold = t;
        }
        if let Some(c) = b.channel_id {
            row.channel_id = c;
        }
        if let Some(t) = b.template_id {
            row.template_id = Some(t);
        }
        let mut variables: tpl::Mapping = serde_json::from_str(&row.variables).unwrap_or_default();
        if let Some(m) = &b.variables {
            variables = m.clone();
        }
        let audience: Audience = match &b.audience {
            Some(a) => a.clone(),
            None => serde_json::from_str(&row.audience).unwrap_or_default(),
        };
        let (_, template) = self
            .check(
                &mut v,
                who.org_id,
                row.channel_id,
                row.template_id,
                &variables,
                &audience,
            )
            .await?;
        v.finish()?;
        if b.template_id.is_some() && b.variables.is_none() {
            variables = template.map(|t| t.mapping).unwrap_or_default();
        }
        row.variables = serde_json::to_string(&variables).unwrap_or_default();
        row.audience = serde_json::to_string(&audience).unwrap_or_default();
        row.updated_at = self.now();
        if !store::save_draft(&self.db, &row).await.map_err(db_err)? {
            return Err(Problem::conflict(
                "not_editable",
                "Only draft campaigns can be changed",
            ));
        }
        self.out(&row).await
    }

    pub async fn delete(&self, who: &Principal, id: CampaignId) -> Result<(), Problem> {
        admin_only(who)?;
        let row = self.row(who.org_id, id).await?;
        let status = CampaignStatus::from_db(&row.status);
        if matches!(
            status,
            CampaignStatus::Running | CampaignStatus::Paused | CampaignStatus::Scheduled
        ) {
            return Err(Problem::conflict(
                "invalid_state",
                "Cancel the campaign before deleting it",
            ));
        }
        store::delete(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?;
        self.publish(
            who.org_id,
            "wamage.campaign.deleted",
            json!({ "campaign_id": id }),
        )
        .await;
        Ok(())
    }

    // ---- audiences ---------------------------------------------------------------------------

    async fn breakdown(
        &self,
        org: OrgId,
        channel: &Channel,
        template: Option<&Template>,
        variables: &tpl::Mapping,
        audience: &Audience,
    ) -> Result<Breakdown, Problem> {
        let purpose = template.map_or(ConsentPurpose::Marketing, |t| t.category.purpose());
        let required = template.map_or_else(Vec::new, |t| {
            let mut m = t.mapping.clone();
            m.extend(variables.clone());
            // Variables without any mapping need a value too (none can come).
            tpl::required_fields(&t.variables, &m)
        });
        let unmapped = template.is_some_and(|t| {
            let mut m = t.mapping.clone();
            m.extend(variables.clone());
            t.keys().iter().any(|k| !m.contains_key(k))
        });
        let sc = send_channel(channel.kind);
        let mut b = if audience.spec().is_empty() {
            Breakdown::default()
        } else {
            self.contacts
                .audience_breakdown(org, &audience.spec(), sc, purpose, &required)
                .await?
        };
        if let Some(f) = audience.from_campaign {
            // Retargeted contacts not already counted: walk the slice.
            let mut after = 0;
            let counted: HashSet<ContactId> = HashSet::new();
            loop {
                let page =
                    store::slice_contacts(&self.db, f.campaign_id, f.slice.sql(), after, 1000)
                        .await
                        .map_err(db_err)?;
                let Some(last) = page.last() else { break };
                after = last.0;
                let ids: Vec<ContactId> = page
                    .iter()
                    .map(|(_, c)| *c)
                    .filter(|c| !counted.contains(c))
                    .collect();
                let ctx = self.contacts.send_context(org, &ids, sc, purpose).await?;
                for id in ids {
                    b.total += 1;
                    match ctx.get(&id).and_then(|c| c.skip_reason(purpose)) {
                        None if ctx.contains_key(&id) => b.eligible += 1,
                        None => b.no_identity += 1,
                        Some(r) => match r {
                            wamage_contacts::SkipReason::NoIdentity => b.no_identity += 1,
                            wamage_contacts::SkipReason::Blocked => b.blocked += 1,
                            wamage_contacts::SkipReason::OptedOut => b.opted_out += 1,
                            wamage_contacts::SkipReason::NoConsent => b.no_consent += 1,
                        },
                    }
                }
            }
        }
        if unmapped {
            b.missing_variables = b.eligible;
        }
        Ok(b)
    }

    pub async fn audience_preview(
        &self,
        who: &Principal,
        b: &PreviewIn,
    ) -> Result<Breakdown, Problem> {
        let mut v = Validator::new();
        let (channel, template) = self
            .check(
                &mut v,
                who.org_id,
                b.channel_id,
                b.template_id,
                &tpl::Mapping::new(),
                &b.audience,
            )
            .await?;
        v.finish()?;
        let channel = channel.ok_or_else(|| Problem::not_found("channel"))?;
        self.breakdown(
            who.org_id,
            &channel,
            template.as_ref(),
            &tpl::Mapping::new(),
            &b.audience,
        )
        .await
    }

    pub async fn audience(&self, who: &Principal, id: CampaignId) -> Result<Breakdown, Problem> {
        let row = self.row(who.org_id, id).await?;
        let channel = self.channels.get(who.org_id, row.channel_id).await?;
        let template = self.template_of(&row).await;
        let variables: tpl::Mapping = serde_json::from_str(&row.variables).unwrap_or_default();
        let audience: Audience = serde_json::from_str(&row.audience).unwrap_or_default();
        self.breakdown(
            who.org_id,
            &channel,
            template.as_ref(),
            &variables,
            &audience,
        )
        .await
    }

    // ---- launch ------------------------------------------------------------------------------

    pub async fn launch(
        &self,
        who: &Principal,
        id: CampaignId,
        b: &LaunchIn,
    ) -> Result<CampaignOut, Problem> {
        admin_only(who)?;
        let row = self.row(who.org_id, id).await?;
        let status = CampaignStatus::from_db(&row.status);
        if status != CampaignStatus::Draft {
            return Err(Problem::conflict(
                "already_launched",
                "This campaign was already launched",
            )
            .with_detail(format!("It is {}.", status.as_str())));
        }
        let now = self.now();
        let (scheduled_at, tz) = parse_schedule(b, now)?;
        let channel = self.channels.get(who.org_id, row.channel_id).await?;
        let Some(template_id) = row.template_id else {
            return Err(Problem::invalid_field(
                "template_id",
                "is required to launch",
            ));
        };
        let template = self
            .templates
            .template(who.org_id, template_id)
            .await
            .map_err(|_| Problem::invalid_field("template_id", "the template was deleted"))?;
        if template.status != TemplateStatus::Approved {
            return Err(
                Problem::conflict("template_not_approved", "The template is not approved")
                    .with_detail(format!(
                        "Template {} is {}: only approved templates can be sent.",
                        template.name,
                        template.status.as_str()
                    )),
            );
        }
        if channel.health == HealthState::Unhealthy || !channel.enabled {
            return Err(
                Problem::conflict("channel_unhealthy", "The channel cannot send now").with_detail(
                    channel.health_reason.clone().unwrap_or_else(|| {
                        if channel.enabled {
                            "The channel is unhealthy".to_owned()
                        } else {
                            "The channel is disabled".to_owned()
                        }
                    }),
                ),
            );
        }
        let variables: tpl::Mapping = serde_json::from_str(&row.variables).unwrap_or_default();
        let audience: Audience = serde_json::from_str(&row.audience).unwrap_or_default();
        if audience.is_empty() {
            return Err(unprocessable("empty_audience", "The audience is empty")
                .with_field("audience", "choose at least one group, tag or segment"));
        }
        // One eligible contact is enough to launch; the full count (a read of the whole
        // audience) is only needed to explain why nobody is.
        let spec = audience.spec();
        let anyone = !spec.is_empty()
            && self
                .contacts
                .audience_any_eligible(
                    who.org_id,
                    &spec,
                    send_channel(channel.kind),
                    template.category.purpose(),
                )
                .await?;
        let breakdown = if anyone {
            Breakdown {
                total: 1,
                eligible: 1,
                ..Breakdown::default()
            }
        } else {
            self.breakdown(who.org_id, &channel, Some(&template), &variables, &audience)
                .await?
        };
        if breakdown.total == 0 {
            return Err(unprocessable("empty_audience", "The audience is empty")
                .with_detail("No contact is in the chosen groups, tags and segments."));
        }
        if breakdown.eligible == 0 {
            return Err(unprocessable(
                "no_eligible_recipients",
                "Nobody in the audience may receive this campaign",
            )
            .with_detail(format!(
                "{} contacts: {} opted out, {} without consent for {}, {} blocked, {} without an address on this channel.",
                breakdown.total,
                breakdown.opted_out,
                breakdown.no_consent,
                template.category.purpose().as_str(),
                breakdown.blocked,
                breakdown.no_identity
            )));
        }
        let to = if scheduled_at.is_some() {
            CampaignStatus::Scheduled
        } else {
            CampaignStatus::Running
        };
        if !store::launch(&self.db, id, to.as_str(), scheduled_at, tz.as_deref(), now)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::conflict(
                "already_launched",
                "This campaign was already launched",
            ));
        }
        let mut job = NewJob::new(LAUNCH_JOB, json!({ "campaign_id": id }))
            .with_org(who.org_id)
            .with_dedupe_key(format!("campaign:{id}:launch"));
        if let Some(at) = scheduled_at {
            job = job.with_run_at(at);
        }
        self.jobs
            .enqueue_now(job)
            .await
            .map_err(|e| Problem::internal(format_args!("enqueue launch: {e}")))?;
        let ev = if to == CampaignStatus::Running {
            "wamage.campaign.started"
        } else {
            "wamage.campaign.updated"
        };
        self.publish_campaign(who.org_id, ev, id).await;
        self.out_by_id(who.org_id, id).await
    }

    /// The snapshot: the audience becomes recipient rows (skips recorded with their reason),
    /// then the dispatchers start. Safe to run again after a crash (it starts over) until the
    /// snapshot is committed.
    async fn snapshot(&self, id: CampaignId) -> Result<JobOutcome, Problem> {
        let Some(row) = store::get_any(&self.db, id).await.map_err(db_err)? else {
            return Ok(JobOutcome::Done);
        };
        if row.snapshot_at.is_some() {
            return Ok(JobOutcome::Done);
        }
        let org = row.org_id;
        let now = self.now();
        match CampaignStatus::from_db(&row.status) {
            CampaignStatus::Scheduled => {
                if !store::transition(&self.db, id, &["scheduled"], "running", None, now)
                    .await
                    .map_err(db_err)?
                {
                    return Ok(JobOutcome::Done);
                }
                self.publish_campaign(org, "wamage.campaign.started", id)
                    .await;
            }
            CampaignStatus::Running | CampaignStatus::Paused => {}
            _ => return Ok(JobOutcome::Done),
        }
        let Some(channel) = self.channels.get_any(row.channel_id).await? else {
            self.fail_campaign(&row, "The channel was deleted").await?;
            return Ok(JobOutcome::Done);
        };
        let template = self.template_of(&row).await;
        let Some(template) = template else {
            self.fail_campaign(&row, "The template was deleted").await?;
            return Ok(JobOutcome::Done);
        };
        let audience: Audience = serde_json::from_str(&row.audience).unwrap_or_default();
        let purpose = template.category.purpose();
        let sc = send_channel(channel.kind);
        store::clear_recipients(&self.db, id)
            .await
            .map_err(db_err)?;
        let started = Instant::now();
        // The audience is copied page by page in the database (contact order, 5,000 a
        // statement: each commit is short, so other writers are not held up); only a retarget
        // slice passes through here.
        let spec = audience.spec();
        let mut seq: i64 = 0;
        let mut total_walk: i64 = 0;
        if !spec.is_empty() {
            let mut walk = self.contacts.audience_walk(org, &spec, sc, purpose).await?;
            // PostgreSQL writes several ranges of contacts side by side (each range numbers its
            // recipients from its own base: `seq` orders sends, it need not be dense).
            let streams = match self.db.backend() {
                Backend::Sqlite => 1,
                Backend::Postgres => SNAPSHOT_STREAMS,
            };
            walk.split(&self.contacts, streams).await?;
            let walk = &walk;
            let copied = futures::future::try_join_all(walk.ranges().into_iter().enumerate().map(
                |(r, (mut after, until))| async move {
                    let base = i64::try_from(r).unwrap_or(0) << 40;
                    let mut n_range: i64 = 0;
                    loop {
                        let page = walk.page(after, until, SNAPSHOT_PAGE, 4);
                        let (n, last) = store::snapshot_page(
                            &self.db,
                            id,
                            page,
                            SNAPSHOT_PAGE,
                            base + n_range,
                            now,
                        )
                        .await
                        .map_err(db_err)?;
                        n_range += i64::try_from(n).unwrap_or(0);
                        match last {
                            Some(c) => after = Some(c),
                            None => return Ok::<_, Problem>((base + n_range, n_range)),
                        }
                    }
                },
            ))
            .await?;
            for (last_seq, n) in copied {
                seq = seq.max(last_seq);
                total_walk += n;
            }
        }
        let mut total = total_walk;
        if let Some(FromCampaign { campaign_id, slice }) = audience.from_campaign {
            let mut after = 0;
            loop {
                let page = store::slice_contacts(&self.db, campaign_id, slice.sql(), after, 1000)
                    .await
                    .map_err(db_err)?;
                let Some(last) = page.last() else { break };
                after = last.0;
                let ids: Vec<ContactId> = page.iter().map(|(_, c)| *c).collect();
                let ctx = self.contacts.send_context(org, &ids, sc, purpose).await?;
                let batch: Vec<NewRecipient> = ids
                    .iter()
                    .filter_map(|cid| ctx.get(cid))
                    .map(|c| {
                        seq += 1;
                        let reason = c.skip_reason(purpose).map(|r| r.as_str().to_owned());
                        NewRecipient {
                            seq,
                            contact_id: c.id,
                            name: c.name.clone(),
                            address: c.address.as_ref().map(|(_, a)| a.clone()),
                            address_kind: c.address.as_ref().map(|(k, _)| k.as_str().to_owned()),
                            state: if reason.is_some() {
                                "skipped"
                            } else {
                                "pending"
                            },
                            skip_reason: reason,
                        }
                    })
                    .collect();
                // A contact the audience already has keeps its row (and its `seq` goes unused).
                let n = store::insert_recipients(&self.db, id, &batch, now)
                    .await
                    .map_err(db_err)?;
                total += i64::try_from(n).unwrap_or(0);
            }
        }
        store::skip_duplicate_addresses(&self.db, id, now)
            .await
            .map_err(db_err)?;
        if total >= 10_000
            && let Err(e) = store::analyze_recipients(&self.db).await
        {
            tracing::warn!(error = %e, "failed to refresh the recipients' statistics");
        }
        metrics::histogram!("wamage_campaign_snapshot_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::info!(campaign = %id, recipients = total, elapsed_ms = started.elapsed().as_millis() as u64, "campaign audience snapshotted");
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::set_snapshot(&mut tx, id, total, self.now())
            .await
            .map_err(db_err)?;
        let jobs = (0..self.config.dispatchers.max(1))
            .map(|shard| self.dispatch_job(org, id, shard))
            .collect();
        self.jobs
            .enqueue_many(&mut tx, jobs)
            .await
            .map_err(|e| Problem::internal(format_args!("enqueue dispatch: {e}")))?;
        tx.commit().await.map_err(db_err)?;
        self.jobs.notify();
        self.schedule_watch(self.now().plus(WATCH_EVERY)).await;
        self.publish_progress(org, id, true).await;
        Ok(JobOutcome::Done)
    }

    /// Schedules the watchdog's next look (one per minute, whoever asks).
    async fn schedule_watch(&self, at: Timestamp) {
        let job = NewJob::new(WATCH_JOB, json!({}))
            .with_run_at(at)
            .with_dedupe_key(format!("campaigns.watch:{}", at.millis() / 60_000));
        if let Err(e) = self.jobs.enqueue_now(job).await {
            tracing::warn!(error = %e, "failed to schedule the campaign watchdog");
        }
    }

    /// At a worker's start: running campaigns get their dispatch jobs now rather than at the
    /// watchdog's next minute (their last ones may have died with the process before).
    pub async fn resume_on_start(&self) {
        if let Err(p) = self.watch().await {
            tracing::warn!(error = %p, "failed to resume the running campaigns");
        }
    }

    /// The watchdog: every running campaign gets its dispatch jobs (a live one is kept by its
    /// dedupe key, a dead or lost one is replaced); looks again in a minute while any runs.
    async fn watch(&self) -> Result<JobOutcome, Problem> {
        let running = store::running(&self.db).await.map_err(db_err)?;
        if running.is_empty() {
            return Ok(JobOutcome::Done);
        }
        let jobs: Vec<NewJob> = running
            .iter()
            .flat_map(|(id, org)| {
                (0..self.config.dispatchers.max(1)).map(|shard| self.dispatch_job(*org, *id, shard))
            })
            .collect();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        self.jobs
            .enqueue_many(&mut tx, jobs)
            .await
            .map_err(|e| Problem::internal(format_args!("enqueue dispatch: {e}")))?;
        tx.commit().await.map_err(db_err)?;
        self.jobs.notify();
        self.schedule_watch(self.now().plus(WATCH_EVERY)).await;
        Ok(JobOutcome::Done)
    }

    fn dispatch_job(&self, org: OrgId, id: CampaignId, shard: u32) -> NewJob {
        NewJob::new(DISPATCH_JOB, json!({ "campaign_id": id, "shard": shard }))
            .with_org(org)
            .with_dedupe_key(format!("campaign:{id}:dispatch:{shard}"))
    }

    async fn fail_campaign(&self, row: &CampaignRow, reason: &str) -> Result<(), Problem> {
        if store::transition(
            &self.db,
            row.id,
            &["running", "scheduled", "paused"],
            "failed",
            Some(reason),
            self.now(),
        )
        .await
        .map_err(db_err)?
        {
            self.publish_campaign(row.org_id, "wamage.campaign.failed", row.id)
                .await;
        }
        Ok(())
    }

    /// Pauses a running campaign with the reason shown to people.
    async fn auto_pause(&self, row: &CampaignRow, reason: &str) -> Result<(), Problem> {
        if store::transition(
            &self.db,
            row.id,
            &["running"],
            "paused",
            Some(reason),
            self.now(),
        )
        .await
        .map_err(db_err)?
        {
            tracing::warn!(campaign = %row.id, reason, "campaign paused automatically");
            metrics::counter!("wamage_campaign_auto_pauses_total").increment(1);
            self.publish_campaign(row.org_id, "wamage.campaign.paused", row.id)
                .await;
        }
        Ok(())
    }

    // ---- pause / resume / cancel -------------------------------------------------------------

    pub async fn pause(&self, who: &Principal, id: CampaignId) -> Result<CampaignOut, Problem> {
        admin_only(who)?;
        let row = self.row(who.org_id, id).await?;
        if !store::transition(
            &self.db,
            id,
            &["running"],
            "paused",
            Some("Paused by a person"),
            self.now(),
        )
        .await
        .map_err(db_err)?
        {
            return Err(invalid_state(
                "paused",
                CampaignStatus::from_db(&row.status),
            ));
        }
        self.publish_campaign(who.org_id, "wamage.campaign.paused", id)
            .await;
        self.out_by_id(who.org_id, id).await
    }

    pub async fn resume(&self, who: &Principal, id: CampaignId) -> Result<CampaignOut, Problem> {
        admin_only(who)?;
        let row = self.row(who.org_id, id).await?;
        let status = CampaignStatus::from_db(&row.status);
        if status != CampaignStatus::Paused {
            return Err(invalid_state("resumed", status));
        }
        // What paused it must be gone, or it would pause again at once.
        if let Some(t) = row.template_id {
            match self.templates.template(who.org_id, t).await {
                Ok(t) if t.status == TemplateStatus::Approved => {}
                Ok(t) => {
                    return Err(Problem::conflict(
                        "template_not_approved",
                        "The template is not approved",
                    )
                    .with_detail(format!(
                        "Template {} is {}.",
                        t.name,
                        t.status.as_str()
                    )));
                }
                Err(_) => {
                    return Err(Problem::conflict(
                        "template_not_approved",
                        "The template was deleted",
                    ));
                }
            }
        }
        let channel = self.channels.get(who.org_id, row.channel_id).await?;
        if channel.health == HealthState::Unhealthy {
            return Err(
                Problem::conflict("channel_unhealthy", "The channel cannot send now")
                    .with_detail(channel.health_reason.unwrap_or_default()),
            );
        }
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let moved = {
            let n = wamage_platform::with_tx!(&mut tx, |c| sqlx::query(
                "UPDATE campaigns SET status = 'running', pause_reason = NULL, updated_at = $2 \
                 WHERE id = $1 AND status = 'paused'"
            )
            .bind(id)
            .bind(self.now())
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
            .map_err(db_err)?;
            n > 0
        };
        if !moved {
            return Err(invalid_state("resumed", status));
        }
        if row.snapshot_at.is_some() {
            let jobs = (0..self.config.dispatchers.max(1))
                .map(|shard| self.dispatch_job(who.org_id, id, shard))
                .collect();
            self.jobs
                .enqueue_many(&mut tx, jobs)
                .await
                .map_err(|e| Problem::internal(format_args!("enqueue dispatch: {e}")))?;
        }
        tx.commit().await.map_err(db_err)?;
        self.jobs.notify();
        self.schedule_watch(self.now().plus(WATCH_EVERY)).await;
        self.publish_campaign(who.org_id, "wamage.campaign.resumed", id)
            .await;
        self.out_by_id(who.org_id, id).await
    }

    pub async fn cancel(&self, who: &Principal, id: CampaignId) -> Result<CampaignOut, Problem> {
        admin_only(who)?;
        let row = self.row(who.org_id, id).await?;
        if !store::transition(
            &self.db,
            id,
            &["running", "paused", "scheduled"],
            "cancelled",
            Some("Cancelled by a person"),
            self.now(),
        )
        .await
        .map_err(db_err)?
        {
            return Err(invalid_state(
                "cancelled",
                CampaignStatus::from_db(&row.status),
            ));
        }
        store::skip_pending(&self.db, id, "cancelled", self.now())
            .await
            .map_err(db_err)?;
        self.publish_campaign(who.org_id, "wamage.campaign.cancelled", id)
            .await;
        self.out_by_id(who.org_id, id).await
    }

    // ---- dispatch ----------------------------------------------------------------------------

    /// Sends a running campaign batch by batch until nothing is pending, it stops running, or
    /// unconfirmed sends must wait (then the job comes back later).
    async fn dispatch(&self, id: CampaignId, shard: u32) -> Result<JobOutcome, Problem> {
        // The lease and unconfirmed sweeps run at the start and then at most once a second
        // (not before every batch): leases last `WAMAGE_CAMPAIGN_LEASE_SECS`, far longer.
        let mut swept: Option<Instant> = None;
        // The last `seq` this dispatcher claimed row by row (see `store::claim`).
        let mut cursor: i64 = 0;
        // Every number of the campaign has been leased in a range (see `store::claim_range`).
        let mut ranges_done = false;
        loop {
            let Some(row) = store::get_any(&self.db, id).await.map_err(db_err)? else {
                return Ok(JobOutcome::Done);
            };
            match CampaignStatus::from_db(&row.status) {
                CampaignStatus::Running => {}
                CampaignStatus::Cancelled => {
                    // Recipients this dispatcher's last batch gave back (not sent when the
                    // cancel came) were in a live lease when the cancel skipped the rest.
                    store::skip_pending(&self.db, id, "cancelled", self.now())
                        .await
                        .map_err(db_err)?;
                    return Ok(JobOutcome::Done);
                }
                _ => return Ok(JobOutcome::Done),
            }
            if row.snapshot_at.is_none() {
                return Ok(JobOutcome::retry_after(
                    "the snapshot is not done",
                    Duration::from_secs(1),
                ));
            }
            let org = row.org_id;
            let now = self.now();
            let sweep = swept.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
            if sweep {
                store::expire_leases(&self.db, id, now)
                    .await
                    .map_err(db_err)?;
            }
            let Some(channel) = self.channels.get_any(row.channel_id).await? else {
                self.fail_campaign(&row, "The channel was deleted").await?;
                return Ok(JobOutcome::Done);
            };
            let template = self.template_of(&row).await;
            let Some(template) = template else {
                self.auto_pause(&row, "The template was deleted").await?;
                return Ok(JobOutcome::Done);
            };
            if template.status != TemplateStatus::Approved {
                self.auto_pause(
                    &row,
                    &format!(
                        "The template {} is {} on the provider",
                        template.name,
                        template.status.as_str()
                    ),
                )
                .await?;
                return Ok(JobOutcome::Done);
            }
            if !channel.enabled {
                self.auto_pause(&row, "The channel is disabled").await?;
                return Ok(JobOutcome::Done);
            }
            if channel.health == HealthState::Unhealthy {
                let reason = channel
                    .health_reason
                    .clone()
                    .unwrap_or_else(|| "unknown reason".to_owned());
                self.auto_pause(&row, &format!("The channel is unhealthy: {reason}"))
                    .await?;
                return Ok(JobOutcome::Done);
            }
            if sweep {
                store::settle_unconfirmed(
                    &self.db,
                    id,
                    now.minus(self.config.confirm_grace),
                    channel.kind == ChannelKind::Whatsapp,
                    now,
                )
                .await
                .map_err(db_err)?;
                swept = Some(Instant::now());
            }
            // Batches hold about five seconds of sends at the channel's pace.
            let pace = if self.channels.config().pacing {
                channel.messages_per_second.max(1)
            } else {
                u32::MAX
            };
            let size = i64::from(self.config.batch.min(pace.saturating_mul(5)).max(1));
            let lease = now.plus(self.config.lease);
            let (lease_first, claimed) = self
                .next_batch(id, size, lease, now, &mut ranges_done, &mut cursor)
                .await?;
            if claimed.is_empty() {
                let states = store::state_counts(&self.db, id).await.map_err(db_err)?;
                let open: i64 = states
                    .iter()
                    .filter(|(s, _)| matches!(s.as_str(), "pending" | "sending" | "unconfirmed"))
                    .map(|(_, n)| n)
                    .sum();
                if open == 0 {
                    if store::transition(&self.db, id, &["running"], "completed", None, self.now())
                        .await
                        .map_err(db_err)?
                    {
                        self.publish_progress(org, id, true).await;
                        self.publish_campaign(org, "wamage.campaign.completed", id)
                            .await;
                    }
                    return Ok(JobOutcome::Done);
                }
                // Sends in flight elsewhere, or interrupted ones waiting for their reports:
                // the first dispatcher stays to settle them and complete the campaign (the
                // others leave; a dead one's job is reaped and run again).
                if shard == 0 {
                    return Ok(JobOutcome::retry_after(
                        "waiting for the last sends to settle",
                        Duration::from_secs(2),
                    ));
                }
                return Ok(JobOutcome::Done);
            }
            let effects = self
                .send_batch(&row, &channel, &template, claimed, lease_first)
                .await?;
            for e in effects {
                match e {
                    Effect::Pause(reason) => self.auto_pause(&row, &reason).await?,
                    Effect::OptOut(contact) => {
                        if let Some(ch) = consent_channel(channel.kind)
                            && let Err(p) = self
                                .contacts
                                .record_system_consent(
                                    org,
                                    contact,
                                    SystemConsent::marketing_stopped(ch),
                                )
                                .await
                        {
                            tracing::warn!(error = %p, "failed to record a provider opt-out");
                        }
                    }
                }
            }
            let counts = self.publish_progress(org, id, false).await;
            if let Some(c) = counts {
                let attempted = c.sent + c.failed;
                if attempted >= 50 {
                    let rate = c.failed as f64 / attempted as f64;
                    if rate > row.failure_threshold {
                        self.auto_pause(
                            &row,
                            &format!(
                                "{:.0}% of sends failed, above the {:.0}% threshold",
                                rate * 100.0,
                                row.failure_threshold * 100.0
                            ),
                        )
                        .await?;
                        return Ok(JobOutcome::Done);
                    }
                }
            }
        }
    }

    /// A dispatcher's next batch, with its range lease's first `seq`. While ranges remain, the
    /// pending recipients of the next range (nothing written per recipient; a range with none
    /// is given back and the next one taken); then the pending ones row by row after `cursor`
    /// (from the start once nothing is pending past it).
    async fn next_batch(
        &self,
        id: CampaignId,
        size: i64,
        lease: Timestamp,
        now: Timestamp,
        ranges_done: &mut bool,
        cursor: &mut i64,
    ) -> Result<(Option<i64>, Vec<Claimed>), Problem> {
        while !*ranges_done {
            match store::claim_range(&self.db, id, size, lease)
                .await
                .map_err(db_err)?
            {
                Some((first, claimed)) if claimed.is_empty() => {
                    store::release_lease(&self.db, id, first)
                        .await
                        .map_err(db_err)?;
                }
                Some((first, claimed)) => return Ok((Some(first), claimed)),
                None => *ranges_done = true,
            }
        }
        let mut claimed = store::claim(&self.db, id, size, *cursor, lease, now)
            .await
            .map_err(db_err)?;
        if claimed.is_empty() && *cursor > 0 {
            // Past the cursor nothing is pending; rows sent back behind it are claimed now.
            *cursor = 0;
            claimed = store::claim(&self.db, id, size, 0, lease, now)
                .await
                .map_err(db_err)?;
        }
        if let Some(last) = claimed.iter().map(|c| c.seq).max() {
            *cursor = last;
        }
        Ok((None, claimed))
    }

    /// Sends one claimed batch and records every outcome.
    async fn send_batch(
        &self,
        row: &CampaignRow,
        channel: &Channel,
        template: &Template,
        claimed: Vec<Claimed>,
        lease: Option<i64>,
    ) -> Result<Vec<Effect>, Problem> {
        let purpose = template.category.purpose();
        let ids: Vec<ContactId> = claimed.iter().map(|c| c.contact_id).collect();
        let ctx = self
            .contacts
            .send_context(row.org_id, &ids, send_channel(channel.kind), purpose)
            .await?;
        let mut mapping = template.mapping.clone();
        mapping.extend(serde_json::from_str::<tpl::Mapping>(&row.variables).unwrap_or_default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let bc = BatchCtx {
            campaign: row.id,
            channel,
            template,
            mapping: &mapping,
            purpose,
            guard: self.channels.guard(channel),
            client: self.channels.client(channel),
            deadline: Instant::now() + self.config.lease / 2,
            stop: stop.clone(),
        };
        // A pause or cancel takes effect within a quarter second, not at the batch's end.
        let watcher = {
            let db = self.db.clone();
            let id = row.id;
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    match store::get_any(&db, id).await {
                        Ok(Some(c)) if c.status == "running" => {}
                        Ok(_) => {
                            stop.store(true, std::sync::atomic::Ordering::Relaxed);
                            return;
                        }
                        Err(_) => {}
                    }
                }
            })
        };
        let sends: Vec<_> = claimed
            .iter()
            .map(|c| self.send_one(&bc, c, ctx.get(&c.contact_id)))
            .collect();
        // No more sends waiting for their slot than a tenth of a second's worth at a slow pace:
        // fewer timers racing for the same cores, so slots are kept more precisely (a strict
        // provider counts every sliding second).
        let paced = if self.channels.config().pacing {
            (channel.messages_per_second / 10).max(4)
        } else {
            u32::MAX
        };
        let concurrency = self.config.concurrency.min(paced).max(1) as usize;
        let results: Vec<(i64, Outcome, Option<Effect>)> = futures::stream::iter(sends)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        watcher.abort();
        let mut outcomes = Vec::with_capacity(results.len());
        let mut effects = Vec::new();
        for (seq, o, e) in results {
            outcomes.push((seq, o));
            if let Some(e) = e {
                effects.push(e);
            }
        }
        store::record(&self.db, row.id, &outcomes, lease, self.now())
            .await
            .map_err(db_err)?;
        Ok(effects)
    }

    async fn send_one(
        &self,
        bc: &BatchCtx<'_>,
        c: &Claimed,
        contact: Option<&SendContact>,
    ) -> (i64, Outcome, Option<Effect>) {
        let skip = |reason: &str| {
            (
                c.seq,
                Outcome::Skipped {
                    reason: reason.to_owned(),
                },
                None,
            )
        };
        let Some(contact) = contact else {
            return skip("contact_deleted");
        };
        if let Some(r) = contact.skip_reason(bc.purpose) {
            return skip(r.as_str());
        }
        let Some(to) = recipient(bc.channel.kind, contact.address.as_ref()) else {
            return skip("no_identity");
        };
        let t = bc.template;
        let Ok(values) = tpl::resolve(&t.components, &t.variables, bc.mapping, Some(contact))
        else {
            return skip("missing_variable");
        };
        let content = tpl::outbound(
            t.kind,
            &t.name,
            &t.language,
            &t.components,
            &t.variables,
            &values,
        );
        let out = Outbound {
            to,
            content,
            reply_to: None,
            callback_data: Some(format!("wc:{}:{}", bc.campaign, c.seq)),
        };
        let rkey = recipient_key(&out.to);
        let stopped = || bc.stop.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            if stopped() {
                return (c.seq, Outcome::Retry, None);
            }
            match bc.guard.admit(&rkey, Instant::now()) {
                Gate::Go(d) => {
                    if !d.is_zero() {
                        tokio::time::sleep(d).await;
                    }
                    if stopped() {
                        // The slot was reserved for a send that will not happen.
                        bc.guard.release(&rkey);
                        return (c.seq, Outcome::Retry, None);
                    }
                    while let Err(d) = bc.guard.window_admit(Instant::now()) {
                        tokio::time::sleep(d.min(Duration::from_millis(250))).await;
                        if stopped() {
                            bc.guard.release(&rkey);
                            return (c.seq, Outcome::Retry, None);
                        }
                    }
                    break;
                }
                Gate::Later(d) => {
                    if Instant::now() + d > bc.deadline {
                        return (c.seq, Outcome::Retry, None);
                    }
                    tokio::time::sleep(d.min(Duration::from_millis(250))).await;
                }
            }
        }
        let kind = bc.channel.kind.as_str();
        match bc.client.send(&out).await {
            Ok(sent) => {
                bc.guard.succeeded();
                metrics::counter!("wamage_campaign_sends_total", "kind" => kind, "outcome" => "sent").increment(1);
                (
                    c.seq,
                    Outcome::Sent {
                        provider_message_id: sent.provider_message_id,
                    },
                    None,
                )
            }
            Err(e) => {
                let code = e.code();
                metrics::counter!("wamage_campaign_sends_total", "kind" => kind, "outcome" => "error", "code" => code.to_string()).increment(1);
                let failed = |title: &str| Outcome::Failed {
                    code,
                    title: title.to_owned(),
                };
                match &e {
                    SendError::Retryable { retry_after, .. } => {
                        let now = Instant::now();
                        let wait = retry_after.unwrap_or(Duration::from_secs(1));
                        match code {
                            130429 | 429 | 4 | 80007 => bc.guard.throttle_channel(wait, now),
                            131056 => {
                                bc.guard
                                    .throttle_pair(&rkey, wait.max(Duration::from_secs(6)), now)
                            }
                            _ => {
                                if bc.guard.failed(now, self.now()) {
                                    tracing::warn!(channel = %bc.channel.id, "circuit opened after repeated provider failures");
                                }
                            }
                        }
                        if c.attempts >= 10 {
                            (c.seq, failed(e.message()), None)
                        } else {
                            (c.seq, Outcome::Retry, None)
                        }
                    }
                    SendError::Permanent { message, .. } => {
                        bc.guard.succeeded();
                        match code {
                            // The template itself is unusable: stop before failing everyone.
                            132001 | 132015 | 132016 | 132000 | 132012 | 132007 => (
                                c.seq,
                                Outcome::Retry,
                                Some(Effect::Pause(format!(
                                    "WhatsApp refused the template {} ({code}): {message}",
                                    t.name
                                ))),
                            ),
                            _ => (c.seq, failed(message), None),
                        }
                    }
                    SendError::NeedsAction {
                        message, action, ..
                    } => {
                        bc.guard.succeeded();
                        match action {
                            ActionNeeded::ExpiredToken | ActionNeeded::AccountRestricted => {
                                self.channels.note_send_error(bc.channel, &e).await;
                                (
                                    c.seq,
                                    Outcome::Retry,
                                    Some(Effect::Pause(format!(
                                        "The channel needs attention ({code}): {message}"
                                    ))),
                                )
                            }
                            ActionNeeded::MarketingOptOut => {
                                (c.seq, failed(message), Some(Effect::OptOut(contact.id)))
                            }
                            // 131049: Meta's per-user marketing limit: recorded, not retried.
                            _ => (c.seq, failed(message), None),
                        }
                    }
                }
            }
        }
    }

    /// Publishes `campaign.progress` at most once a second per campaign (always when
    /// `force`); returns the counts it published.
    async fn publish_progress(&self, org: OrgId, id: CampaignId, force: bool) -> Option<Counts> {
        // Claim the slot before counting, so concurrent dispatchers count once per interval.
        let now = Instant::now();
        let prev = {
            let mut m = self.progress.lock().ok()?;
            let prev = m.get(&id).copied();
            if !force && prev.is_some_and(|p| p.at.elapsed() < p.every) {
                return None;
            }
            let reserved = prev.map_or(
                ProgressSample {
                    at: now,
                    done: 0,
                    rate: 0.0,
                    every: Duration::from_secs(1),
                },
                |p| ProgressSample { at: now, ..p },
            );
            m.insert(id, reserved);
            prev
        };
        let row = store::get_any(&self.db, id).await.ok().flatten()?;
        let counts = self.counts(id, row.total).await.ok()?;
        let done = counts.sent + counts.failed;
        let rate = match prev {
            Some(p) if now > p.at => {
                (done - p.done).max(0) as f64 / now.duration_since(p.at).as_secs_f64()
            }
            _ => 0.0,
        };
        if let Ok(mut m) = self.progress.lock() {
            m.insert(
                id,
                ProgressSample {
                    at: now,
                    done,
                    rate,
                    every: progress_interval(row.total),
                },
            );
            if m.len() > 1000 {
                m.retain(|_, p| p.at.elapsed() < Duration::from_secs(60));
            }
        }
        let remaining = counts.pending + counts.sending;
        self.publish(
            org,
            "wamage.campaign.progress",
            json!({
                "campaign_id": id,
                "counts": counts,
                "rate_per_second": (rate * 10.0).round() / 10.0,
                "eta_seconds": (rate > 0.0 && remaining > 0).then(|| (remaining as f64 / rate).ceil() as i64),
            }),
        )
        .await;
        Some(counts)
    }

    // ---- reports from the provider -----------------------------------------------------------

    async fn apply_status(&self, c: &Channel, s: &StatusUpdate) -> Result<bool, Problem> {
        let key = s.callback_data.as_deref().and_then(parse_callback);
        if s.callback_data.is_some() && key.is_none() {
            return Ok(false);
        }
        let Some((campaign, seq, org)) =
            store::recipient_for_report(&self.db, key, &s.provider_message_id)
                .await
                .map_err(db_err)?
        else {
            return Ok(false);
        };
        if org != c.org_id {
            return Ok(false);
        }
        let error = s.errors.first().map(|e| (e.code, e.title.as_str()));
        let at = Timestamp::from_millis(s.at_ms);
        store::apply_report(
            &self.db,
            campaign,
            seq,
            s.status.as_str(),
            &s.provider_message_id,
            at,
            error,
            self.now(),
        )
        .await
        .map_err(db_err)?;
        if s.status == wamage_channels::provider::DeliveryStatus::Failed
            && s.errors.iter().any(|e| e.code == 131050)
            && let Some(ch) = consent_channel(c.kind)
            && let Some(r) =
                store::recipients(&self.db, campaign, &[], store::Leased::Any, seq - 1, 1)
                    .await
                    .map_err(db_err)?
                    .into_iter()
                    .next()
            && let Err(p) = self
                .contacts
                .record_system_consent(org, r.contact_id, SystemConsent::marketing_stopped(ch))
                .await
        {
            tracing::warn!(error = %p, "failed to record a provider opt-out");
        }
        Ok(true)
    }

    /// Customers wrote on `c` at `at`: their recipients of campaigns sent on that channel
    /// within the reply window count as replied. One read when no campaign on the channel
    /// could have been replied to.
    async fn customer_messages(
        &self,
        c: &Channel,
        contacts: &[ContactId],
        at: Timestamp,
    ) -> Result<(), Problem> {
        let since = at.minus(self.config.reply_window);
        if contacts.is_empty()
            || !store::replies_possible(&self.db, c.id, since, at)
                .await
                .map_err(db_err)?
        {
            return Ok(());
        }
        for contact in contacts {
            store::mark_replied(&self.db, c.id, *contact, since, at)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }

    // ---- analytics ---------------------------------------------------------------------------

    pub async fn stats(&self, who: &Principal, id: CampaignId) -> Result<StatsOut, Problem> {
        let row = self.row(who.org_id, id).await?;
        let out = self.out(&row).await?;
        let failed_by_code = store::failed_by_code(&self.db, id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|(code, title, count)| FailedCode { code, title, count })
            .collect();
        let skipped_by_reason = store::skipped_by_reason(&self.db, id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|(reason, count)| SkippedReason { reason, count })
            .collect();
        let series = store::series(&self.db, id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|(m, sent, delivered, read, failed)| SeriesPoint {
                at: Timestamp::from_millis(m * 60_000),
                sent,
                delivered,
                read,
                failed,
            })
            .collect();
        Ok(StatsOut {
            counts: out.counts,
            rate_per_second: out.rate_per_second,
            eta_seconds: out.eta_seconds,
            failed_by_code,
            skipped_by_reason,
            series,
        })
    }

    pub async fn recipients(
        &self,
        who: &Principal,
        id: CampaignId,
        state: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<RecipientPage, Problem> {
        self.row(who.org_id, id).await?;
        // A pending recipient inside a range lease is being sent.
        let (states, leased): (Vec<&str>, _) = match state {
            None | Some("") => (Vec::new(), store::Leased::Any),
            Some("sending") => (
                vec!["sending", "unconfirmed", "pending"],
                store::Leased::Only,
            ),
            Some("pending") => (vec!["pending"], store::Leased::Not),
            Some(s @ ("sent" | "delivered" | "read" | "failed" | "skipped")) => {
                (vec![s], store::Leased::Any)
            }
            Some(_) => {
                return Err(Problem::invalid_field(
                    "state",
                    "must be pending, sending, sent, delivered, read, failed or skipped",
                ));
            }
        };
        let after = match cursor {
            None | Some("") => 0,
            Some(c) => c
                .parse::<i64>()
                .map_err(|_| Problem::invalid_field("cursor", "is not a cursor from this list"))?,
        };
        let limit = i64::from(limit.unwrap_or(50).clamp(1, 500));
        let rows = store::recipients(&self.db, id, &states, leased, after, limit)
            .await
            .map_err(db_err)?;
        let next_cursor = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|r| r.seq.to_string()))
            .flatten();
        Ok(RecipientPage {
            items: rows.into_iter().map(recipient_out).collect(),
            next_cursor,
        })
    }

    /// Every recipient as CSV (formula-looking cells neutralised).
    pub async fn export_csv(
        &self,
        who: &Principal,
        id: CampaignId,
    ) -> Result<(String, Vec<u8>), Problem> {
        let row = self.row(who.org_id, id).await?;
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = [
            "contact_id",
            "name",
            "address",
            "state",
            "replied",
            "error_code",
            "error_title",
            "skip_reason",
            "sent_at",
            "delivered_at",
            "read_at",
            "replied_at",
            "failed_at",
        ];
        w.write_record(header)
            .map_err(|e| Problem::internal(e.to_string()))?;
        let ts = |t: Option<Timestamp>| t.map(Timestamp::to_rfc3339).unwrap_or_default();
        let mut after = 0;
        loop {
            let rows = store::recipients(&self.db, id, &[], store::Leased::Any, after, 5000)
                .await
                .map_err(db_err)?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for r in rows {
                w.write_record([
                    r.contact_id.to_string(),
                    safe_cell(&r.name),
                    safe_cell(r.address.as_deref().unwrap_or_default()),
                    r.state.clone(),
                    r.replied_at.is_some().to_string(),
                    r.error_code.map(|c| c.to_string()).unwrap_or_default(),
                    safe_cell(r.error_title.as_deref().unwrap_or_default()),
                    r.skip_reason.clone().unwrap_or_default(),
                    ts(r.sent_at),
                    ts(r.delivered_at),
                    ts(r.read_at),
                    ts(r.replied_at),
                    ts(r.failed_at),
                ])
                .map_err(|e| Problem::internal(e.to_string()))?;
            }
        }
        let bytes = w
            .into_inner()
            .map_err(|e| Problem::internal(e.to_string()))?;
        let name: String = row
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        Ok((format!("campaign-{name}-recipients.csv"), bytes))
    }

    /// A new draft to a slice of this campaign's recipients, with the same channel, template
    /// and variables.
    pub async fn retarget(
        &self,
        who: &Principal,
        id: CampaignId,
        b: &RetargetIn,
    ) -> Result<CampaignOut, Problem> {
        admin_only(who)?;
        let row = self.row(who.org_id, id).await?;
        if row.snapshot_at.is_none() {
            return Err(Problem::conflict(
                "invalid_state",
                "Only a launched campaign has recipients to retarget",
            ));
        }
        let name = b
            .name
            .clone()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{} — {}", row.name, b.slice.label()));
        let mut v = Validator::new();
        v.length("name", &name, 1, 200);
        v.finish()?;
        let now = self.now();
        let new = CampaignRow {
            id: CampaignId::new(),
            org_id: who.org_id,
            channel_id: row.channel_id,
            template_id: row.template_id,
            name,
            variables: row.variables.clone(),
            audience: serde_json::to_string(&Audience {
                from_campaign: Some(FromCampaign {
                    campaign_id: id,
                    slice: b.slice,
                }),
                ..Audience::default()
            })
            .unwrap_or_default(),
            status: CampaignStatus::Draft.as_str().to_owned(),
            pause_reason: None,
            scheduled_at: None,
            time_zone: None,
            failure_threshold: row.failure_threshold,
            total: 0,
            snapshot_at: None,
            created_by: Some(who.user_id),
            created_at: now,
            updated_at: now,
            launched_at: None,
            completed_at: None,
        };
        store::insert(&self.db, &new).await.map_err(db_err)?;
        self.out(&new).await
    }
}

fn recipient_out(r: store::RecipientRow) -> RecipientOut {
    RecipientOut {
        contact_id: r.contact_id,
        contact_name: r.name,
        address: r.address,
        state: match r.state.as_str() {
            "unconfirmed" => "sending".to_owned(),
            s => s.to_owned(),
        },
        replied: r.replied_at.is_some(),
        error_code: r.error_code,
        error_title: r.error_title,
        skip_reason: r.skip_reason,
        sent_at: r.sent_at,
        delivered_at: r.delivered_at,
        read_at: r.read_at,
        replied_at: r.replied_at,
        failed_at: r.failed_at,
    }
}

/// A cell a spreadsheet would run as a formula gets a leading quote.
fn safe_cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn consent_channel(kind: ChannelKind) -> Option<ConsentChannel> {
    match kind {
        ChannelKind::Whatsapp => Some(ConsentChannel::Whatsapp),
        ChannelKind::Telegram => Some(ConsentChannel::Telegram),
        ChannelKind::Sandbox => None,
    }
}

/// The provider address of a contact's identity.
fn recipient(kind: ChannelKind, address: Option<&(IdentityKind, String)>) -> Option<Recipient> {
    let (k, v) = address?;
    Some(match (kind, k) {
        (ChannelKind::Whatsapp, IdentityKind::WhatsappUser) => Recipient::Whatsapp {
            phone: None,
            user_id: Some(v.clone()),
        },
        (ChannelKind::Whatsapp, _) => Recipient::Whatsapp {
            phone: Some(v.clone()),
            user_id: None,
        },
        (ChannelKind::Telegram, _) => Recipient::Telegram {
            chat_id: v.parse().ok()?,
        },
        (ChannelKind::Sandbox, _) => Recipient::Sandbox { handle: v.clone() },
    })
}

/// `wc:{campaign}:{seq}`.
fn parse_callback(s: &str) -> Option<(CampaignId, i64)> {
    let rest = s.strip_prefix("wc:")?;
    let (id, seq) = rest.split_once(':')?;
    Some((id.parse().ok()?, seq.parse().ok()?))
}

/// The launch time: a local wall time in a time zone (`2026-12-24T09:00` + `Europe/Berlin`)
/// or an RFC 3339 instant; must be in the future.
fn parse_schedule(
    b: &LaunchIn,
    now: Timestamp,
) -> Result<(Option<Timestamp>, Option<String>), Problem> {
    let Some(raw) = b
        .scheduled_at
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    else {
        return Ok((None, None));
    };
    let tz_name = b
        .time_zone
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let at = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        t.with_timezone(&chrono::Utc)
    } else {
        let local = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
            .map_err(|_| {
                Problem::invalid_field(
                    "scheduled_at",
                    "must be a local time like 2026-12-24T09:00 (with time_zone) or an RFC 3339 time",
                )
            })?;
        let tz: chrono_tz::Tz = tz_name
            .ok_or_else(|| Problem::invalid_field("time_zone", "is required with a local time"))?
            .parse()
            .map_err(|_| {
                Problem::invalid_field("time_zone", "must be an IANA time zone like Europe/Berlin")
            })?;
        use chrono::TimeZone;
        match tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => t.with_timezone(&chrono::Utc),
            chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&chrono::Utc),
            chrono::LocalResult::None => {
                return Err(Problem::invalid_field(
                    "scheduled_at",
                    "does not exist in that time zone (a daylight-saving gap)",
                ));
            }
        }
    };
    if let Some(tz) = tz_name
        && tz.parse::<chrono_tz::Tz>().is_err()
    {
        return Err(Problem::invalid_field(
            "time_zone",
            "must be an IANA time zone like Europe/Berlin",
        ));
    }
    let at = Timestamp::from_millis(at.timestamp_millis());
    if at.millis() <= now.millis() {
        return Err(Problem::invalid_field("scheduled_at", "is in the past"));
    }
    if at.millis() > now.millis() + 366 * 24 * 3600 * 1000 {
        return Err(Problem::invalid_field(
            "scheduled_at",
            "must be within a year",
        ));
    }
    Ok((Some(at), tz_name.map(str::to_owned)))
}

#[derive(serde::Deserialize)]
struct CampaignPayload {
    campaign_id: CampaignId,
    #[serde(default)]
    shard: u32,
}

/// Runs `campaigns.launch` jobs (the snapshot).
pub struct LaunchJob(pub Arc<Campaigns>);

#[async_trait::async_trait]
impl JobHandler for LaunchJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        let p: CampaignPayload = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid launch payload: {e}")),
        };
        match self.0.snapshot(p.campaign_id).await {
            Ok(o) => o,
            Err(e) => JobOutcome::retry(e.to_string()),
        }
    }
}

/// Runs `campaigns.dispatch` jobs.
pub struct DispatchJob(pub Arc<Campaigns>);

#[async_trait::async_trait]
impl JobHandler for DispatchJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        let p: CampaignPayload = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid dispatch payload: {e}")),
        };
        match self.0.dispatch(p.campaign_id, p.shard).await {
            Ok(o) => o,
            Err(e) => JobOutcome::retry(e.to_string()),
        }
    }
}

/// Runs `campaigns.watch` jobs.
pub struct WatchJob(pub Arc<Campaigns>);

#[async_trait::async_trait]
impl JobHandler for WatchJob {
    async fn run(&self, _job: &JobContext) -> JobOutcome {
        match self.0.watch().await {
            Ok(o) => o,
            Err(e) => JobOutcome::retry(e.to_string()),
        }
    }
}

/// The ingest hook: delivery reports of campaign sends and replies.
pub struct CampaignHook(pub Arc<Campaigns>);

#[async_trait::async_trait]
impl IngestHook for CampaignHook {
    async fn status(&self, channel: &Channel, status: &StatusUpdate) -> Result<bool, Problem> {
        self.0.apply_status(channel, status).await
    }

    async fn customer_messages(
        &self,
        channel: &Channel,
        contacts: &[ContactId],
        at: Timestamp,
    ) -> Result<(), Problem> {
        self.0.customer_messages(channel, contacts, at).await
    }
}

fn unprocessable(code: &'static str, title: &str) -> Problem {
    Problem::new(http::StatusCode::UNPROCESSABLE_ENTITY, code, title)
}

/// A campaign's last progress event: when, sent + failed then, the rate since the one before,
/// and how long until the next.
#[derive(Debug, Clone, Copy)]
struct ProgressSample {
    at: Instant,
    done: i64,
    rate: f64,
    every: Duration,
}

/// Counting a campaign's states reads its state index, one entry per recipient (about 0.4 s
/// at a million on SQLite): progress is published once a second up to 250,000 recipients and
/// less often above, up to every 5 s from 1.25 million.
fn progress_interval(total: i64) -> Duration {
    Duration::from_millis((total.max(0) as u64 / 250).clamp(1_000, 5_000))
}
