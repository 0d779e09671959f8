//! Template use cases: the builder's checks, Meta review (submit, the status webhook, the
//! periodic sync that walks the list API), variable mapping and previews.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde_json::{Value, json};
use wamage_channels::{Channel, ChannelId, ChannelKind, Channels, SendError, describe};
use wamage_contacts::{Contacts, SendChannel, address_kinds};
use wamage_identity::{Principal, Role};
use wamage_inbox::{IngestHook, TemplateStatusChange};
use wamage_kernel::{Clock, OrgId, Problem, Timestamp, validate::Validator};
use wamage_platform::{
    Db,
    bus::SharedBus,
    jobs::{JobContext, JobHandler, JobOutcome, JobQueue, NewJob},
};
use wamage_realtime::{Room, event_for_rooms};

use crate::{
    http::{ChannelRef, PreviewIn, SyncOut, TemplateIn, TemplateOut, TemplatePatch, ValidateOut},
    model::{
        self, Category, Components, Mapping, Preview, TemplateId, TemplateKind, TemplateStatus,
        Variables,
    },
    store::{self, TemplateRow},
};

pub const SOURCE: &str = "/wamage/templates";
/// Syncs a channel's templates with its business account (`{channel_id}`), then again later.
pub const SYNC_JOB: &str = "templates.sync";
/// How often the periodic sync runs per channel.
pub const SYNC_EVERY: Duration = Duration::from_secs(3600);

pub struct TemplatesDeps {
    pub db: Db,
    pub bus: SharedBus,
    pub jobs: JobQueue,
    pub clock: Clock,
    pub channels: Arc<Channels>,
    pub contacts: Arc<Contacts>,
}

/// The templates service.
pub struct Templates {
    db: Db,
    bus: SharedBus,
    jobs: JobQueue,
    clock: Clock,
    channels: Arc<Channels>,
    contacts: Arc<Contacts>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

/// A stored template, parsed: what campaigns and the inbox send with.
#[derive(Debug, Clone)]
pub struct Template {
    pub id: TemplateId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub kind: TemplateKind,
    pub name: String,
    pub language: String,
    pub category: Category,
    pub status: TemplateStatus,
    pub components: Components,
    pub variables: Variables,
    pub mapping: Mapping,
}

impl Template {
    fn from_row(r: &TemplateRow) -> Result<Self, Problem> {
        let components: Components = serde_json::from_str(&r.components)
            .map_err(|e| Problem::internal(format_args!("template components: {e}")))?;
        let variables = model::variables_of(&components);
        Ok(Self {
            id: r.id,
            org_id: r.org_id,
            channel_id: r.channel_id,
            kind: TemplateKind::from_db(&r.kind),
            name: r.name.clone(),
            language: r.language.clone(),
            category: Category::parse(&r.category).unwrap_or(Category::Utility),
            status: TemplateStatus::from_db(&r.status),
            components,
            variables,
            mapping: serde_json::from_str(&r.mapping).unwrap_or_default(),
        })
    }

    /// The variable keys of this template, in send order.
    pub fn keys(&self) -> Vec<String> {
        self.variables.keys()
    }
}

fn db_err(e: sqlx::Error) -> Problem {
    Problem::internal(format_args!("database: {e}"))
}

fn admin_only(who: &Principal) -> Result<(), Problem> {
    if who.role >= Role::Admin {
        Ok(())
    } else {
        Err(Problem::forbidden("Only admins can manage templates"))
    }
}

fn taken() -> Problem {
    Problem::conflict(
        "template_exists",
        "This channel already has a template with this name and language",
    )
    .with_field("name", "is taken for this language on this channel")
}

/// How a template's channel sends consent-wise and which identities address it.
pub fn send_channel(kind: ChannelKind) -> SendChannel {
    use wamage_contacts::{ConsentChannel, IdentityKind};
    match kind {
        ChannelKind::Whatsapp => SendChannel {
            consent: Some(ConsentChannel::Whatsapp),
            kinds: address_kinds(ConsentChannel::Whatsapp),
        },
        ChannelKind::Telegram => SendChannel {
            consent: Some(ConsentChannel::Telegram),
            kinds: address_kinds(ConsentChannel::Telegram),
        },
        ChannelKind::Sandbox => SendChannel {
            consent: None,
            kinds: &[IdentityKind::Sandbox],
        },
    }
}

impl Templates {
    pub fn new(deps: TemplatesDeps) -> Arc<Self> {
        Arc::new(Self {
            db: deps.db,
            bus: deps.bus,
            jobs: deps.jobs,
            clock: deps.clock,
            channels: deps.channels,
            contacts: deps.contacts,
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn publish(&self, org: OrgId, out: &TemplateOut) {
        let rooms: Vec<Room> = Room::new("org", org.as_uuid()).into_iter().collect();
        let ev = event_for_rooms(
            SOURCE,
            "wamage.template.updated",
            org,
            self.now(),
            &rooms,
            json!({ "template": out }),
        );
        if let Err(e) = self.bus.publish(ev).await {
            tracing::warn!(error = %e, "failed to publish a template event");
        }
    }

    fn out(&self, r: &TemplateRow, channels: &HashMap<ChannelId, ChannelRef>) -> TemplateOut {
        let components: Components = serde_json::from_str(&r.components).unwrap_or(Components {
            header: None,
            body: model::Body {
                text: String::new(),
                examples: Vec::new(),
            },
            footer: None,
            buttons: Vec::new(),
        });
        let variables = model::variables_of(&components).keys();
        TemplateOut {
            id: r.id,
            channel: channels.get(&r.channel_id).cloned().unwrap_or(ChannelRef {
                id: r.channel_id,
                name: "Deleted channel".to_owned(),
                kind: ChannelKind::Sandbox,
            }),
            kind: TemplateKind::from_db(&r.kind),
            name: r.name.clone(),
            language: r.language.clone(),
            category: Category::parse(&r.category).unwrap_or(Category::Utility),
            status: TemplateStatus::from_db(&r.status),
            rejected_reason: r.rejected_reason.clone(),
            quality: r.quality.clone(),
            provider_template_id: r.provider_template_id.clone(),
            components,
            variables,
            mapping: serde_json::from_str(&r.mapping).unwrap_or_default(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            submitted_at: r.submitted_at,
            synced_at: r.synced_at,
        }
    }

    async fn channel_refs(&self, org: OrgId) -> Result<HashMap<ChannelId, ChannelRef>, Problem> {
        Ok(self
            .channels
            .channels_of(org)
            .await?
            .into_iter()
            .map(|c| {
                (
                    c.id,
                    ChannelRef {
                        id: c.id,
                        name: c.name,
                        kind: c.kind,
                    },
                )
            })
            .collect())
    }

    async fn render(&self, org: OrgId, r: &TemplateRow) -> Result<TemplateOut, Problem> {
        Ok(self.out(r, &self.channel_refs(org).await?))
    }

    async fn row(&self, org: OrgId, id: TemplateId) -> Result<TemplateRow, Problem> {
        store::get(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("template"))
    }

    /// A template of the organisation, parsed (for campaigns and the inbox).
    pub async fn template(&self, org: OrgId, id: TemplateId) -> Result<Template, Problem> {
        Template::from_row(&self.row(org, id).await?)
    }

    pub async fn list(
        &self,
        who: &Principal,
        channel: Option<ChannelId>,
        status: Option<TemplateStatus>,
        q: Option<&str>,
    ) -> Result<Vec<TemplateOut>, Problem> {
        let rows = store::list(
            &self.db,
            who.org_id,
            channel,
            status.map(TemplateStatus::as_str),
            q.map(str::trim).filter(|q| !q.is_empty()),
        )
        .await
        .map_err(db_err)?;
        let channels = self.channel_refs(who.org_id).await?;
        Ok(rows.iter().map(|r| self.out(r, &channels)).collect())
    }

    pub async fn get(&self, who: &Principal, id: TemplateId) -> Result<TemplateOut, Problem> {
        let r = self.row(who.org_id, id).await?;
        self.render(who.org_id, &r).await
    }

    /// Checks a template without saving it: the builder's live checks.
    pub async fn validate(&self, who: &Principal, b: &TemplateIn) -> Result<ValidateOut, Problem> {
        let kind = match b.channel_id {
            Some(id) => match self.channels.get(who.org_id, id).await {
                Ok(c) => Some(kind_of(c.kind)),
                Err(_) => None,
            },
            None => None,
        };
        let mut v = Validator::new();
        if b.channel_id.is_none() {
            v.error("channel_id", "is required");
        } else if kind.is_none() {
            v.error("channel_id", "is not a channel of this organisation");
        }
        let vars = model::check(
            &mut v,
            kind.unwrap_or(TemplateKind::Whatsapp),
            b.name.trim(),
            b.language.trim(),
            b.category,
            &b.components,
        );
        if let Some(m) = &b.mapping {
            model::check_mapping(&mut v, "mapping", &vars, m);
        }
        let errors = match v.finish() {
            Ok(()) => Vec::new(),
            Err(p) => p.errors,
        };
        Ok(ValidateOut {
            ok: errors.is_empty(),
            errors,
            variables: vars.keys(),
        })
    }

    pub async fn create(&self, who: &Principal, b: &TemplateIn) -> Result<TemplateOut, Problem> {
        admin_only(who)?;
        let mut v = Validator::new();
        let channel = match b.channel_id {
            None => {
                v.error("channel_id", "is required");
                None
            }
            Some(id) => match self.channels.get(who.org_id, id).await {
                Ok(c) => Some(c),
                Err(_) => {
                    v.error("channel_id", "is not a channel of this organisation");
                    None
                }
            },
        };
        let kind = channel
            .as_ref()
            .map_or(TemplateKind::Whatsapp, |c| kind_of(c.kind));
        let (name, language) = (b.name.trim(), b.language.trim());
        let vars = model::check(&mut v, kind, name, language, b.category, &b.components);
        let mapping = b.mapping.clone().unwrap_or_default();
        model::check_mapping(&mut v, "mapping", &vars, &mapping);
        if let Some(c) = &channel
            && c.kind == ChannelKind::Whatsapp
            && c.config.waba_id.is_none()
        {
            v.error(
                "channel_id",
                "this WhatsApp channel has no business account id (waba_id): add it in the channel settings",
            );
        }
        v.finish()?;
        let Some(channel) = channel else {
            return Err(Problem::invalid_field("channel_id", "is required"));
        };
        let now = self.now();
        let row = TemplateRow {
            id: TemplateId::new(),
            org_id: who.org_id,
            channel_id: channel.id,
            kind: kind.as_str().to_owned(),
            name: name.to_owned(),
            language: language.to_owned(),
            category: b.category.as_str().to_owned(),
            status: match kind {
                TemplateKind::Whatsapp => TemplateStatus::Draft,
                TemplateKind::Local => TemplateStatus::Approved,
            }
            .as_str()
            .to_owned(),
            rejected_reason: None,
            quality: None,
            provider_template_id: None,
            components: serde_json::to_string(&b.components).unwrap_or_default(),
            mapping: serde_json::to_string(&mapping).unwrap_or_default(),
            created_at: now,
            updated_at: now,
            submitted_at: None,
            synced_at: None,
        };
        if !store::insert(&self.db, &row).await.map_err(db_err)? {
            return Err(taken());
        }
        self.render(who.org_id, &row).await
    }

    pub async fn update(
        &self,
        who: &Principal,
        id: TemplateId,
        b: &TemplatePatch,
    ) -> Result<TemplateOut, Problem> {
        admin_only(who)?;
        let mut row = self.row(who.org_id, id).await?;
        let kind = TemplateKind::from_db(&row.kind);
        let status = TemplateStatus::from_db(&row.status);
        let editing_content = b.name.is_some()
            || b.language.is_some()
            || b.category.is_some()
            || b.components.is_some();
        if editing_content
            && kind == TemplateKind::Whatsapp
            && !matches!(status, TemplateStatus::Draft | TemplateStatus::Rejected)
        {
            return Err(Problem::conflict(
                "not_editable",
                "Only drafts and rejected templates can be changed",
            )
            .with_detail("A submitted template is fixed while Meta reviews or uses it: create a new one (or a new language) instead."));
        }
        let name = b
            .name
            .as_deref()
            .map_or(row.name.clone(), |n| n.trim().to_owned());
        let language = b
            .language
            .as_deref()
            .map_or(row.language.clone(), |l| l.trim().to_owned());
        let category = b
            .category
            .unwrap_or_else(|| Category::parse(&row.category).unwrap_or(Category::Utility));
        let components = match &b.components {
            Some(c) => c.clone(),
            None => serde_json::from_str(&row.components)
                .map_err(|e| Problem::internal(format_args!("template components: {e}")))?,
        };
        let mut v = Validator::new();
        let vars = model::check(&mut v, kind, &name, &language, category, &components);
        let mapping = match &b.mapping {
            Some(m) => m.clone(),
            None => serde_json::from_str(&row.mapping).unwrap_or_default(),
        };
        // Variables that disappeared lose their mapping silently; new ones start unmapped.
        let mapping: Mapping = mapping
            .into_iter()
            .filter(|(k, _)| b.mapping.is_some() || vars.keys().contains(k))
            .collect();
        model::check_mapping(&mut v, "mapping", &vars, &mapping);
        v.finish()?;
        row.name = name;
        row.language = language;
        row.category = category.as_str().to_owned();
        row.components = serde_json::to_string(&components).unwrap_or_default();
        row.mapping = serde_json::to_string(&mapping).unwrap_or_default();
        if editing_content && status == TemplateStatus::Rejected {
            row.status = TemplateStatus::Draft.as_str().to_owned();
            row.rejected_reason = None;
            row.provider_template_id = None;
        }
        row.updated_at = self.now();
        if !store::save(&self.db, &row).await.map_err(db_err)? {
            return Err(taken());
        }
        let out = self.render(who.org_id, &row).await?;
        self.publish(who.org_id, &out).await;
        Ok(out)
    }

    pub async fn delete(&self, who: &Principal, id: TemplateId) -> Result<(), Problem> {
        admin_only(who)?;
        let row = self.row(who.org_id, id).await?;
        store::delete(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?;
        let ev = event_for_rooms(
            SOURCE,
            "wamage.template.deleted",
            who.org_id,
            self.now(),
            &Room::new("org", who.org_id.as_uuid())
                .into_iter()
                .collect::<Vec<_>>(),
            json!({ "template_id": row.id, "channel_id": row.channel_id }),
        );
        if let Err(e) = self.bus.publish(ev).await {
            tracing::warn!(error = %e, "failed to publish a template deletion");
        }
        Ok(())
    }

    /// Submits a WhatsApp draft (or a rejected template, changed) for Meta's review.
    pub async fn submit(&self, who: &Principal, id: TemplateId) -> Result<TemplateOut, Problem> {
        admin_only(who)?;
        let mut row = self.row(who.org_id, id).await?;
        if TemplateKind::from_db(&row.kind) != TemplateKind::Whatsapp {
            return Err(Problem::conflict(
                "not_reviewed",
                "Telegram and Sandbox templates need no review: they are ready to send",
            ));
        }
        let status = TemplateStatus::from_db(&row.status);
        if !matches!(status, TemplateStatus::Draft | TemplateStatus::Rejected) {
            return Err(Problem::conflict(
                "already_submitted",
                "This template was already submitted",
            ));
        }
        let t = Template::from_row(&row)?;
        let mut v = Validator::new();
        model::check(
            &mut v,
            t.kind,
            &t.name,
            &t.language,
            t.category,
            &t.components,
        );
        v.finish()?;
        let channel = self.channels.get(who.org_id, row.channel_id).await?;
        let client = self
            .channels
            .whatsapp_client(&channel)
            .ok_or_else(|| Problem::internal("no WhatsApp client for the channel"))?;
        let body = model::meta_body(
            &t.name,
            &t.language,
            t.category,
            &t.components,
            &t.variables,
        );
        let answer = client
            .create_template(&body)
            .await
            .map_err(provider_problem)?;
        let now = self.now();
        row.provider_template_id = answer.get("id").and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        });
        row.status = answer
            .get("status")
            .and_then(Value::as_str)
            .and_then(TemplateStatus::from_meta)
            .unwrap_or(TemplateStatus::Pending)
            .as_str()
            .to_owned();
        if let Some(cat) = answer
            .get("category")
            .and_then(Value::as_str)
            .and_then(Category::parse)
        {
            row.category = cat.as_str().to_owned();
        }
        row.rejected_reason = None;
        row.submitted_at = Some(now);
        row.updated_at = now;
        store::save(&self.db, &row).await.map_err(db_err)?;
        self.schedule_sync(row.channel_id, now.plus(SYNC_EVERY))
            .await;
        let out = self.render(who.org_id, &row).await?;
        self.publish(who.org_id, &out).await;
        Ok(out)
    }

    /// Walks the business account's template list to its end: updates what changed (status,
    /// category, quality, rejection reason) and imports templates made elsewhere.
    pub async fn sync(&self, who: &Principal, channel_id: ChannelId) -> Result<SyncOut, Problem> {
        admin_only(who)?;
        let channel = self.channels.get(who.org_id, channel_id).await?;
        if channel.kind != ChannelKind::Whatsapp {
            return Err(Problem::invalid_field(
                "channel_id",
                "only WhatsApp channels have templates to sync",
            ));
        }
        let out = self.sync_channel(&channel).await?;
        self.schedule_sync(channel.id, self.now().plus(SYNC_EVERY))
            .await;
        Ok(out)
    }

    async fn sync_channel(&self, channel: &Channel) -> Result<SyncOut, Problem> {
        let client = self
            .channels
            .whatsapp_client(channel)
            .ok_or_else(|| Problem::internal("no WhatsApp client for the channel"))?;
        let mut after: Option<String> = None;
        let mut out = SyncOut::default();
        // A runaway cursor must not loop forever: 1,000 pages of 100 is far beyond Meta's cap.
        for _ in 0..1000 {
            let page = client
                .list_templates(after.as_deref())
                .await
                .map_err(provider_problem)?;
            for t in &page.data {
                out.total += 1;
                match self.merge_remote(channel, t).await? {
                    Merged::Imported => out.imported += 1,
                    Merged::Updated => out.updated += 1,
                    Merged::Same => {}
                }
            }
            match page.after {
                Some(next) if !page.data.is_empty() => after = Some(next),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn merge_remote(&self, channel: &Channel, t: &Value) -> Result<Merged, Problem> {
        let str_of = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
        let provider_id = t
            .get("id")
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_i64().map(|n| n.to_string()))
            })
            .unwrap_or_default();
        let (Some(name), Some(language)) = (str_of("name"), str_of("language")) else {
            return Ok(Merged::Same);
        };
        let status = str_of("status")
            .as_deref()
            .and_then(TemplateStatus::from_meta)
            .unwrap_or(TemplateStatus::Pending);
        let category = str_of("category").as_deref().and_then(Category::parse);
        let quality = t
            .pointer("/quality_score/score")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let reason = str_of("rejected_reason").filter(|r| r != "NONE" && !r.is_empty());
        let now = self.now();
        match store::by_provider(&self.db, channel.id, &provider_id, &name, &language)
            .await
            .map_err(db_err)?
        {
            Some(mut row) => {
                let before = (
                    row.status.clone(),
                    row.category.clone(),
                    row.quality.clone(),
                    row.rejected_reason.clone(),
                    row.provider_template_id.clone(),
                );
                row.status = status.as_str().to_owned();
                if let Some(c) = category {
                    row.category = c.as_str().to_owned();
                }
                row.quality = quality.or(row.quality);
                row.rejected_reason = if status == TemplateStatus::Rejected {
                    reason.or(row.rejected_reason)
                } else {
                    None
                };
                if !provider_id.is_empty() {
                    row.provider_template_id = Some(provider_id);
                }
                row.synced_at = Some(now);
                let changed = before
                    != (
                        row.status.clone(),
                        row.category.clone(),
                        row.quality.clone(),
                        row.rejected_reason.clone(),
                        row.provider_template_id.clone(),
                    );
                if changed {
                    row.updated_at = now;
                }
                store::save(&self.db, &row).await.map_err(db_err)?;
                if changed {
                    let out = self.render(channel.org_id, &row).await?;
                    self.publish(channel.org_id, &out).await;
                    Ok(Merged::Updated)
                } else {
                    Ok(Merged::Same)
                }
            }
            None => {
                let components = model::from_meta(t);
                let row = TemplateRow {
                    id: TemplateId::new(),
                    org_id: channel.org_id,
                    channel_id: channel.id,
                    kind: TemplateKind::Whatsapp.as_str().to_owned(),
                    name,
                    language,
                    category: category.unwrap_or(Category::Utility).as_str().to_owned(),
                    status: status.as_str().to_owned(),
                    rejected_reason: reason.filter(|_| status == TemplateStatus::Rejected),
                    quality,
                    provider_template_id: Some(provider_id).filter(|p| !p.is_empty()),
                    components: serde_json::to_string(&components).unwrap_or_default(),
                    mapping: "{}".to_owned(),
                    created_at: now,
                    updated_at: now,
                    submitted_at: None,
                    synced_at: Some(now),
                };
                store::insert(&self.db, &row).await.map_err(db_err)?;
                let out = self.render(channel.org_id, &row).await?;
                self.publish(channel.org_id, &out).await;
                Ok(Merged::Imported)
            }
        }
    }

    /// Schedules a channel's sync. Runs are keyed by their hour, so every path that schedules
    /// (submit, manual sync, the periodic chain) converges on one run per hour.
    async fn schedule_sync(&self, channel: ChannelId, at: Timestamp) {
        self.enqueue_sync(channel, at, &format!("{}", at.millis() / 3_600_000))
            .await;
    }

    async fn enqueue_sync(&self, channel: ChannelId, at: Timestamp, slot: &str) {
        let job = NewJob::new(SYNC_JOB, json!({ "channel_id": channel }))
            .with_run_at(at)
            .with_dedupe_key(format!("templates.sync:{channel}:{slot}"));
        match self.jobs.enqueue_now(job).await {
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "failed to schedule a template sync"),
        }
    }

    /// A status report from Meta's webhook.
    async fn apply_status(&self, c: &Channel, ch: &TemplateStatusChange) -> Result<(), Problem> {
        let Some(status) = TemplateStatus::from_meta(&ch.status) else {
            return Ok(());
        };
        let Some(mut row) =
            store::by_provider(&self.db, c.id, &ch.template_id, &ch.name, &ch.language)
                .await
                .map_err(db_err)?
        else {
            // Made elsewhere: a sync now imports it with its full content.
            self.enqueue_sync(c.id, self.now(), "now").await;
            return Ok(());
        };
        row.status = status.as_str().to_owned();
        row.rejected_reason = if status == TemplateStatus::Rejected {
            ch.reason.clone()
        } else {
            None
        };
        if row.provider_template_id.is_none() {
            row.provider_template_id = Some(ch.template_id.clone());
        }
        row.updated_at = self.now();
        store::save(&self.db, &row).await.map_err(db_err)?;
        let out = self.render(c.org_id, &row).await?;
        self.publish(c.org_id, &out).await;
        Ok(())
    }

    /// Renders a template for a contact (or with its samples), as the customer will see it.
    pub async fn preview(
        &self,
        who: &Principal,
        id: TemplateId,
        b: &PreviewIn,
    ) -> Result<Preview, Problem> {
        let t = self.template(who.org_id, id).await?;
        let mapping = b.mapping.clone().unwrap_or_else(|| t.mapping.clone());
        let mut v = Validator::new();
        model::check_mapping(&mut v, "mapping", &t.variables, &mapping);
        v.finish()?;
        let contact = match b.contact_id {
            Some(cid) => {
                let channel = self.channels.get(who.org_id, t.channel_id).await?;
                let found = self
                    .contacts
                    .send_context(
                        who.org_id,
                        &[cid],
                        send_channel(channel.kind),
                        t.category.purpose(),
                    )
                    .await?;
                Some(found.get(&cid).cloned().ok_or_else(|| {
                    Problem::invalid_field("contact_id", "is not a contact of this organisation")
                })?)
            }
            None => None,
        };
        let (values, missing) =
            match model::resolve(&t.components, &t.variables, &mapping, contact.as_ref()) {
                Ok(v) => (v, Vec::new()),
                Err((v, m)) => (v, m),
            };
        Ok(model::render(&t.components, &values, missing))
    }
}

enum Merged {
    Imported,
    Updated,
    Same,
}

fn kind_of(k: ChannelKind) -> TemplateKind {
    if k == ChannelKind::Whatsapp {
        TemplateKind::Whatsapp
    } else {
        TemplateKind::Local
    }
}

/// A provider refusal as a problem: Meta's message in the detail.
fn provider_problem(e: SendError) -> Problem {
    match &e {
        SendError::Permanent { .. } => Problem::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "provider_rejected",
            "WhatsApp refused the request",
        )
        .with_detail(describe(&e)),
        _ => Problem::new(
            http::StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            "WhatsApp could not be reached or asked for action",
        )
        .with_detail(describe(&e)),
    }
}

/// Runs `templates.sync` jobs: one channel's sync, then the next one an hour later.
pub struct SyncJob(pub Arc<Templates>);

#[async_trait::async_trait]
impl JobHandler for SyncJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        #[derive(serde::Deserialize)]
        struct P {
            channel_id: ChannelId,
        }
        let p: P = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid sync payload: {e}")),
        };
        let t = &self.0;
        let channel = match t.channels.get_any(p.channel_id).await {
            Ok(Some(c)) if c.kind == ChannelKind::Whatsapp => c,
            Ok(_) => return JobOutcome::Done,
            Err(e) => return JobOutcome::retry(e.to_string()),
        };
        if let Err(e) = t.sync_channel(&channel).await {
            return JobOutcome::retry(e.to_string());
        }
        // The next run falls in a later hour, so its key differs from this run's.
        t.schedule_sync(channel.id, t.now().plus(SYNC_EVERY)).await;
        JobOutcome::Done
    }
}

/// The ingest hook: Meta's template status webhooks.
pub struct TemplateHook(pub Arc<Templates>);

#[async_trait::async_trait]
impl IngestHook for TemplateHook {
    async fn template_status(
        &self,
        channel: &Channel,
        change: &TemplateStatusChange,
    ) -> Result<(), Problem> {
        self.0.apply_status(channel, change).await
    }
}
