//! Processing stored webhook events (`channels.ingest` jobs): every item is applied
//! idempotently, so a redelivered webhook or a retried job changes nothing twice. Up to 16
//! queued ingest jobs of an organisation run together, in passes of 128 events: a pass reads its
//! events with one query, resolves the senders together, applies the delivery reports in short
//! transactions and the new customer messages in one (per channel), then the rest (edits,
//! reactions, blocks, template changes, reports for other domains) item by item, and writes the
//! events' outcomes in one transaction.
//!
//! - Customer messages resolve their contact (contacts façade), find the conversation of that
//!   address on the channel (creating one, or a new one after a resolved conversation when the
//!   channel's reopen policy says so), and insert the message keyed by its provider id: a
//!   duplicate inserts nothing and publishes nothing. The conversation reopens, its window
//!   moves, media is queued for download, and a lone opt-out keyword (STOP, …) records an
//!   opt-out of marketing in the consent ledger (START opts back in).
//! - Delivery reports only move a message forward ([`DeliveryStatus::may_advance_to`]). A
//!   report about a message whose send result is not stored yet (the provider's webhook can
//!   beat its own HTTP answer) makes the job retry shortly; on its last try it is dropped.
//! - A Telegram user blocking the bot records an opt-out of both purposes; unblocking an
//!   opt-in of utility messages. Meta's marketing opt-out error (131050) records an opt-out.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use serde::Deserialize;
use serde_json::{Value, json};
use wamage_channels::{
    Channel, ChannelId, ChannelKind, EventId, EventRow, ReopenPolicy,
    provider::{
        DeliveryStatus, Inbound, InboundContent, InboundMessage, Recipient, Sender, StatusUpdate,
    },
};
use wamage_contacts::{
    ConsentPurpose, ConsentSource, ConsentStatus, ContactId, IdentityKind, ResolvedContact,
    SystemConsent,
};
use wamage_kernel::{OrgId, Problem, Timestamp};
use wamage_platform::{
    Backend, Db,
    jobs::{JobContext, JobHandler, JobOutcome, NewJob},
};

use super::{Inbox, MEDIA_JOB, consent_channel, db_err, error_json};
use crate::{
    model::{ConversationId, MessageId, OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS},
    store::{self, ConversationRow, MessageRow},
};

/// Runs `channels.ingest` jobs.
pub struct IngestJob(pub Arc<Inbox>);

#[derive(Deserialize)]
struct Payload {
    /// The events stored together by the webhook intake, in arrival order.
    #[serde(default)]
    event_ids: Vec<EventId>,
    /// A single event (synthetic events, polled updates, jobs queued by earlier versions).
    #[serde(default)]
    event_id: Option<EventId>,
}

#[derive(Debug, Clone, Copy)]
enum Applied {
    Done,
    /// A delivery report for a message we do not know (yet).
    Unknown,
}

/// Ingest jobs the worker may run together: a burst of webhooks is stored in many small
/// batches, each with its job, and is processed in passes of [`EVENTS_PER_PASS`] instead.
const MERGE_JOBS: usize = 16;

/// Events read, applied and finished together.
const EVENTS_PER_PASS: usize = 128;

/// Delivery reports applied per transaction: short ones, so the webhook intake (which goes
/// first at SQLite's write lock) never waits long for it.
const STATUSES_PER_TX: usize = 16;

/// How an event of a pass ended.
enum EventEnd {
    /// Processed, or found unreadable (kept with the reason), or no longer pending.
    Finished,
    /// Delivery reports about messages not known yet: left pending for the job's retry.
    Waiting(usize),
    /// Left pending for the job's retry.
    Failed(String),
}

#[async_trait::async_trait]
impl JobHandler for IngestJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        self.run_many(std::slice::from_ref(job))
            .await
            .pop()
            .unwrap_or(JobOutcome::Done)
    }

    fn merge_limit(&self) -> usize {
        MERGE_JOBS
    }

    /// Processes the jobs' events in order, in passes. An event is marked processed once all
    /// its items are applied; one whose items could not all be applied (an error, or a
    /// delivery report that beat its send result) is left pending and its job retries —
    /// only those events are read again.
    async fn run_many(&self, jobs: &[JobContext]) -> Vec<JobOutcome> {
        let mut outcomes: Vec<Option<JobOutcome>> = jobs.iter().map(|_| None).collect();
        let mut owner: HashMap<EventId, usize> = HashMap::new();
        let mut ids = Vec::new();
        for (j, job) in jobs.iter().enumerate() {
            let p: Payload = match job.payload_as() {
                Ok(p) => p,
                Err(e) => {
                    outcomes[j] = Some(JobOutcome::fail(format!("invalid ingest payload: {e}")));
                    continue;
                }
            };
            let mut mine = p.event_ids;
            mine.extend(p.event_id);
            if mine.is_empty() {
                outcomes[j] = Some(JobOutcome::fail("an ingest job without events"));
                continue;
            }
            for id in mine {
                if owner.insert(id, j).is_none() {
                    ids.push(id);
                }
            }
        }
        // New events wait for a burst of webhooks to be stored first (up to a limit counted
        // from the oldest job's creation); retries do not.
        if !ids.is_empty()
            && jobs.iter().all(|j| j.attempt == 1)
            && let Some(oldest) = jobs.iter().map(|j| j.created_at).min()
        {
            let waited = self.0.channels.yield_to_burst(oldest).await;
            metrics::histogram!("wamage_ingest_burst_wait_seconds").record(waited.as_secs_f64());
        }
        // Per job: delivery reports waiting, and the first error.
        let mut waiting = vec![0usize; jobs.len()];
        let mut failure: Vec<Option<String>> = jobs.iter().map(|_| None).collect();
        for pass in ids.chunks(EVENTS_PER_PASS) {
            let last = |id: &EventId| owner.get(id).is_some_and(|j| jobs[*j].is_last_attempt());
            match self.pass(pass, last).await {
                Ok(ends) => {
                    for (id, end) in ends {
                        let Some(&j) = owner.get(&id) else { continue };
                        match end {
                            EventEnd::Finished => {}
                            EventEnd::Waiting(n) => waiting[j] += n,
                            EventEnd::Failed(e) => {
                                failure[j].get_or_insert(e);
                            }
                        }
                    }
                }
                Err(e) => {
                    for id in pass {
                        if let Some(&j) = owner.get(id) {
                            failure[j].get_or_insert_with(|| e.clone());
                        }
                    }
                }
            }
        }
        outcomes
            .into_iter()
            .enumerate()
            .map(|(j, o)| {
                o.unwrap_or_else(|| {
                    if let Some(e) = failure[j].take() {
                        JobOutcome::retry(e)
                    } else if waiting[j] > 0 {
                        JobOutcome::retry_after(
                            format!(
                                "{} delivery report(s) for messages not known yet",
                                waiting[j]
                            ),
                            Duration::from_secs(2),
                        )
                    } else {
                        JobOutcome::Done
                    }
                })
            })
            .collect()
    }
}

impl IngestJob {
    /// One pass over some events (those still pending): their items applied, their outcomes
    /// written together. `last` says whether an event's job is on its last try (its waiting
    /// reports are then given up). An error here leaves every event of the pass pending.
    async fn pass(
        &self,
        ids: &[EventId],
        last: impl Fn(&EventId) -> bool,
    ) -> Result<Vec<(EventId, EventEnd)>, String> {
        let inbox = &self.0;
        let events = inbox
            .channels
            .pending_events(ids)
            .await
            .map_err(|e| e.to_string())?;
        let parsed: Vec<_> = events
            .iter()
            .map(|(channel, ev)| (channel, ev, inbox.channels.parse(channel, &ev.body)))
            .collect();
        let senders = inbox
            .resolve_senders(
                parsed
                    .iter()
                    .filter_map(|(c, _, items)| Some((*c, items.as_ref().ok()?.as_slice()))),
            )
            .await;
        let mut reports = Vec::new();
        let mut planned = inbox.apply_batched(&parsed, &senders, &mut reports).await;
        let mut outcomes = Vec::with_capacity(events.len());
        let mut ends = Vec::with_capacity(events.len());
        for (at, (channel, ev, items)) in parsed.into_iter().enumerate() {
            let items = match items {
                Ok(items) => items,
                Err(e) => {
                    // Malformed or unknown: kept in the raw log with the reason, never retried.
                    metrics::counter!("wamage_webhooks_unparsable_total", "kind" => channel.kind.as_str())
                        .increment(1);
                    outcomes.push((ev.id, Err(e)));
                    ends.push((ev.id, EventEnd::Finished));
                    continue;
                }
            };
            let mut waiting = 0;
            let mut error = None;
            for (i, item) in items.iter().enumerate() {
                let applied = match planned.remove(&(at, i)) {
                    Some(applied) => applied,
                    None => inbox.apply(channel, item, &senders, &mut reports).await,
                };
                match applied {
                    Ok(Applied::Done) => {}
                    Ok(Applied::Unknown) => waiting += 1,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = error {
                ends.push((
                    ev.id,
                    EventEnd::Failed(format!("applying an inbound item: {e}")),
                ));
                continue;
            }
            if waiting > 0 && !last(&ev.id) {
                ends.push((ev.id, EventEnd::Waiting(waiting)));
                continue;
            }
            outcomes.push((ev.id, Ok(items.len())));
            ends.push((ev.id, EventEnd::Finished));
            let lag = inbox.now().millis() - ev.received_at.millis();
            metrics::histogram!("wamage_webhook_ingest_lag_seconds", "kind" => channel.kind.as_str())
                .record(lag.max(0) as f64 / 1000.0);
        }
        inbox
            .publish_message_rows("wamage.message.status.updated", reports)
            .await;
        inbox
            .channels
            .finish_events(&outcomes)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ends)
    }
}

/// A sender's contact identities (canonical kind and value).
type Identities = Vec<(IdentityKind, String)>;

/// Contacts of customer-message senders resolved ahead, by organisation and identities.
type Senders = HashMap<(OrgId, Identities), ResolvedContact>;

/// A job's event with its channel, and what it says (or why it cannot be read).
type Parsed<'a> = (&'a Channel, &'a EventRow, Result<Vec<Inbound>, String>);

/// Outcomes of the items applied together, by (event, item) position in the job.
type Planned = HashMap<(usize, usize), Result<Applied, Problem>>;

/// A new customer message on its way into a batch: its place in the batch, reply address,
/// address key and the sender's contact.
struct Fresh<'m> {
    at: usize,
    m: &'m InboundMessage,
    recipient: Recipient,
    key: String,
    contact: ResolvedContact,
}

/// How writing a batch of customer messages ended.
enum Stored {
    Done,
    /// One of them was stored by another job meanwhile: nothing was written.
    Raced,
}

/// A plain customer message (not an edit or a reaction): applied with the others of its job.
fn plain(m: &InboundMessage) -> bool {
    !m.edited && !matches!(m.content, InboundContent::Reaction { .. })
}

/// A sender's contact identities, reply address and address key.
type Address = (Vec<(IdentityKind, String)>, Recipient, String);

/// The contact identities, reply address and address key of a sender.
fn address(c: &Channel, from: &Sender) -> Option<Address> {
    match c.kind {
        ChannelKind::Whatsapp => {
            let mut ids = Vec::new();
            if let Some(p) = &from.phone {
                ids.push((IdentityKind::WhatsappPhone, p.clone()));
            }
            if let Some(u) = &from.wa_user_id {
                ids.push((IdentityKind::WhatsappUser, u.clone()));
            }
            let key = from.phone.clone().or_else(|| from.wa_user_id.clone())?;
            Some((
                ids,
                Recipient::Whatsapp {
                    phone: from.phone.clone(),
                    user_id: from.wa_user_id.clone(),
                },
                key,
            ))
        }
        ChannelKind::Telegram => {
            let chat = from.telegram_chat_id.or(from.telegram_user_id)?;
            let user = from.telegram_user_id.unwrap_or(chat);
            Some((
                vec![(IdentityKind::Telegram, user.to_string())],
                Recipient::Telegram { chat_id: chat },
                chat.to_string(),
            ))
        }
        ChannelKind::Sandbox => {
            let h = from.username.clone()?;
            Some((
                vec![(IdentityKind::Sandbox, h.clone())],
                Recipient::Sandbox { handle: h.clone() },
                h,
            ))
        }
    }
}

/// Kind, text, content and media columns of an inbound message.
fn columns(content: &InboundContent) -> (String, Option<String>, Option<Value>, Option<Value>) {
    match content {
        InboundContent::Text { body } => ("text".into(), Some(body.clone()), None, None),
        InboundContent::Media(m) => (
            m.kind.as_str().into(),
            m.caption.clone(),
            None,
            Some(json!({
                "kind": m.kind.as_str(),
                "provider_media_id": m.provider_media_id,
                "mime_type": m.mime_type,
                "filename": m.filename,
                "size": m.size,
                "sha256": m.sha256,
                "state": "pending",
            })),
        ),
        InboundContent::Location(l) => (
            "location".into(),
            l.name.clone(),
            Some(
                json!({"latitude": l.latitude, "longitude": l.longitude, "name": l.name, "address": l.address}),
            ),
            None,
        ),
        InboundContent::Contacts { contacts } => (
            "contacts".into(),
            None,
            Some(json!({ "contacts": contacts })),
            None,
        ),
        InboundContent::InteractiveReply {
            reply_kind,
            id,
            title,
            description,
        } => (
            "interactive_reply".into(),
            Some(title.clone()),
            Some(
                json!({"reply_kind": reply_kind, "id": id, "title": title, "description": description}),
            ),
            None,
        ),
        InboundContent::Button {
            payload,
            text,
            callback_id,
        } => (
            "button_reply".into(),
            Some(text.clone()),
            Some(json!({"payload": payload, "callback_id": callback_id})),
            None,
        ),
        InboundContent::Reaction { emoji, .. } => {
            ("reaction".into(), Some(emoji.clone()), None, None)
        }
        InboundContent::Unsupported { errors } => (
            "unsupported".into(),
            None,
            Some(json!({ "errors": errors })),
            None,
        ),
        InboundContent::System { body } => ("system".into(), Some(body.clone()), None, None),
    }
}

impl Inbox {
    /// The contacts of the senders of these customer messages, resolved together: one
    /// transaction per organisation instead of one per message. A sender missing from the
    /// answer (or all of them, when this fails) is resolved by its message on its own.
    async fn resolve_senders<'a>(
        &self,
        events: impl Iterator<Item = (&'a Channel, &'a [Inbound])>,
    ) -> Senders {
        // Per organisation: the senders' identities and their profile names.
        type Batch<'n> = (OrgId, Vec<Identities>, Vec<Option<&'n str>>);
        let mut by_org: Vec<Batch<'a>> = Vec::new();
        let mut seen = HashSet::new();
        for (c, items) in events {
            for item in items {
                let Inbound::Message(m) = item else { continue };
                if m.edited || matches!(m.content, InboundContent::Reaction { .. }) {
                    continue;
                }
                let Some((ids, _, _)) = address(c, &m.from) else {
                    continue;
                };
                if !seen.insert((c.org_id, ids.clone())) {
                    continue;
                }
                let at = match by_org.iter().position(|(o, _, _)| *o == c.org_id) {
                    Some(at) => at,
                    None => {
                        by_org.push((c.org_id, Vec::new(), Vec::new()));
                        by_org.len() - 1
                    }
                };
                by_org[at].1.push(ids);
                by_org[at].2.push(m.from.name.as_deref());
            }
        }
        let mut out = Senders::new();
        for (org, senders, names) in by_org {
            match self
                .contacts
                .resolve_inbound_many(org, &senders, &names)
                .await
            {
                Ok(contacts) => out.extend(senders.into_iter().map(|ids| (org, ids)).zip(contacts)),
                Err(p) => tracing::warn!(error = %p, "resolving a batch of senders failed"),
            }
        }
        out
    }

    /// Applies one item of an event. Messages moved by a delivery report are added to
    /// `reports`, to be published together.
    async fn apply(
        &self,
        c: &Channel,
        item: &Inbound,
        senders: &Senders,
        reports: &mut Vec<MessageRow>,
    ) -> Result<Applied, Problem> {
        match item {
            Inbound::Message(m) if plain(m) => self
                .apply_messages(&[(c, m)], senders)
                .await
                .pop()
                .unwrap_or(Ok(Applied::Done)),
            Inbound::Message(m) => self.apply_change(c, m).await,
            Inbound::Status(s) => self.apply_status(c, s, reports).await,
            Inbound::BotBlocked { from, blocked } => {
                self.apply_block(c, from, *blocked).await?;
                Ok(Applied::Done)
            }
            Inbound::TemplateStatus {
                template_id,
                name,
                language,
                status,
                reason,
            } => {
                let change = crate::TemplateStatusChange {
                    template_id: template_id.clone(),
                    name: name.clone(),
                    language: language.clone(),
                    status: status.clone(),
                    reason: reason.clone(),
                };
                for h in self.hooks() {
                    h.template_status(c, &change).await?;
                }
                // Also on the bus, for anything else listening (no socket audience).
                let ev = wamage_kernel::Event::new(
                    super::SOURCE,
                    "wamage.template.status_changed",
                    c.org_id,
                    self.now(),
                    json!({"channel_id": c.id, "template_id": template_id, "name": name,
                           "language": language, "status": status, "reason": reason}),
                );
                if let Err(e) = self.bus.publish(ev).await {
                    tracing::warn!(error = %e, "failed to publish a template status");
                }
                Ok(Applied::Done)
            }
            Inbound::Ignored { .. } => Ok(Applied::Done),
        }
    }

    /// A reaction to a stored message, or an edit of one. An edit of a message not stored
    /// (yet) is stored as a new message.
    async fn apply_change(&self, c: &Channel, m: &InboundMessage) -> Result<Applied, Problem> {
        let org = c.org_id;
        let now = self.now();
        if let InboundContent::Reaction {
            to_provider_message_id,
            emoji,
        } = &m.content
        {
            let Some(target) = store::message_by_provider(&self.db, c.id, to_provider_message_id)
                .await
                .map_err(db_err)?
            else {
                return Ok(Applied::Done);
            };
            let mut tx = self.db.begin().await.map_err(db_err)?;
            store::set_reaction(&mut tx, target.id, "customer", emoji, now)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            self.publish_message(org, "wamage.message.updated", target.id)
                .await;
            return Ok(Applied::Done);
        }
        if m.edited
            && let Some(existing) =
                store::message_by_provider(&self.db, c.id, &m.provider_message_id)
                    .await
                    .map_err(db_err)?
        {
            let (_, text, _, _) = columns(&m.content);
            let mut tx = self.db.begin().await.map_err(db_err)?;
            store::edit_text(
                &mut tx,
                existing.id,
                text.as_deref().unwrap_or_default(),
                now,
            )
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            self.publish_message(org, "wamage.message.updated", existing.id)
                .await;
            return Ok(Applied::Done);
        }
        self.apply_messages(&[(c, m)], &Senders::new())
            .await
            .pop()
            .unwrap_or(Ok(Applied::Done))
    }

    /// Applies together what a job's events hold the most of: delivery reports (one
    /// transaction) and new customer messages (one transaction per channel). Reports that
    /// carry callback data (other domains' sends) and edits and reactions are left to
    /// [`Self::apply`], item by item.
    async fn apply_batched(
        &self,
        parsed: &[Parsed<'_>],
        senders: &Senders,
        reports: &mut Vec<MessageRow>,
    ) -> Planned {
        let mut statuses = Vec::new();
        let mut messages = Vec::new();
        for (e, (c, _, items)) in parsed.iter().enumerate() {
            let Ok(items) = items else { continue };
            for (i, item) in items.iter().enumerate() {
                match item {
                    Inbound::Status(s) if s.callback_data.is_none() => {
                        statuses.push(((e, i), (*c, s)));
                    }
                    Inbound::Message(m) if plain(m) => messages.push(((e, i), (*c, m))),
                    _ => {}
                }
            }
        }
        let mut planned = Planned::new();
        if !statuses.is_empty() {
            let (at, batch): (Vec<_>, Vec<_>) = statuses.into_iter().unzip();
            let applied = self.apply_statuses(&batch, reports).await;
            planned.extend(at.into_iter().zip(applied));
        }
        if !messages.is_empty() {
            let (at, batch): (Vec<_>, Vec<_>) = messages.into_iter().unzip();
            let applied = self.apply_messages(&batch, senders).await;
            planned.extend(at.into_iter().zip(applied));
        }
        planned
    }

    /// New customer messages, in order, one outcome each. Per channel: redeliveries are
    /// found with one query, then the conversations, messages and media jobs are written in
    /// one transaction, and the events are published rendered together.
    async fn apply_messages(
        &self,
        batch: &[(&Channel, &InboundMessage)],
        senders: &Senders,
    ) -> Vec<Result<Applied, Problem>> {
        let mut out: Vec<Option<Result<Applied, Problem>>> =
            std::iter::repeat_with(|| None).take(batch.len()).collect();
        let mut channels: Vec<&Channel> = Vec::new();
        for (c, _) in batch {
            if !channels.iter().any(|x| x.id == c.id) {
                channels.push(c);
            }
        }
        for c in channels {
            let mine: Vec<(usize, &InboundMessage)> = batch
                .iter()
                .enumerate()
                .filter(|(_, (x, _))| x.id == c.id)
                .map(|(at, (_, m))| (at, *m))
                .collect();
            // Another job storing one of these at the same time (the same webhook delivered
            // twice at once) makes the batch start over: its redelivery check then sees it.
            let mut result = Err(Problem::unavailable(
                "Redeliveries of these messages kept being stored at the same time",
            ));
            for _ in 0..3 {
                match self
                    .apply_channel_messages(c, &mine, senders, &mut out)
                    .await
                {
                    Ok(Stored::Raced) => continue,
                    Ok(Stored::Done) => result = Ok(()),
                    Err(p) => result = Err(p),
                }
                break;
            }
            if let Err(p) = result {
                for (at, _) in &mine {
                    if out[*at].is_none() {
                        out[*at] = Some(Err(p.clone()));
                    }
                }
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or(Ok(Applied::Done)))
            .collect()
    }

    /// [`Self::apply_messages`] for the messages of one channel. Outcomes are set in `out` as
    /// they are known; an error is the outcome of every message still without one.
    async fn apply_channel_messages<'m>(
        &self,
        c: &Channel,
        msgs: &[(usize, &'m InboundMessage)],
        senders: &Senders,
        out: &mut [Option<Result<Applied, Problem>>],
    ) -> Result<Stored, Problem> {
        let org = c.org_id;
        let now = self.now();
        // Redeliveries (stored before, or twice in this batch): nothing to resolve or write.
        let ids: Vec<&str> = msgs
            .iter()
            .map(|(_, m)| m.provider_message_id.as_str())
            .collect();
        let stored: HashSet<String> = store::ids_by_provider(&self.db, c.id, &ids)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let mut seen = HashSet::new();
        let mut fresh: Vec<Fresh<'m>> = Vec::with_capacity(msgs.len());
        for &(at, m) in msgs {
            let Some((identities, recipient, key)) = address(c, &m.from) else {
                tracing::warn!(channel = %c.id, "inbound message without a usable sender address");
                out[at] = Some(Ok(Applied::Done));
                continue;
            };
            if stored.contains(&m.provider_message_id)
                || !seen.insert(m.provider_message_id.as_str())
            {
                metrics::counter!("wamage_inbound_duplicates_total").increment(1);
                out[at] = Some(Ok(Applied::Done));
                continue;
            }
            let contact = match senders.get(&(org, identities.clone())) {
                Some(contact) => contact.clone(),
                None => match self
                    .contacts
                    .resolve_inbound(org, &identities, m.from.name.as_deref())
                    .await
                {
                    Ok(contact) => contact,
                    Err(p) => {
                        out[at] = Some(Err(p));
                        continue;
                    }
                },
            };
            fresh.push(Fresh {
                at,
                m,
                recipient,
                key,
                contact,
            });
        }
        if fresh.is_empty() {
            return Ok(Stored::Done);
        }

        let mut tx = self.db.begin().await.map_err(db_err)?;
        // The conversation of each address: its newest one, unless that is resolved and the
        // channel opens a new one then; else a new one (shared by the batch's later messages).
        let mut keys: Vec<&str> = fresh.iter().map(|f| f.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        store::lock_addresses(&mut tx, keys.iter().map(|k| (c.id, *k)))
            .await
            .map_err(db_err)?;
        let mut convs: Vec<(ConversationRow, bool)> = Vec::new();
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for cv in store::latest_for_addresses(&mut tx, c.id, &keys)
            .await
            .map_err(db_err)?
        {
            if !(cv.status == "resolved" && c.config.reopen == ReopenPolicy::New) {
                by_key.insert(cv.recipient_key.clone(), convs.len());
                convs.push((cv, false));
            }
        }
        // Quoted messages stored before (those of this batch are added as they are placed).
        let mut quoted: Vec<&str> = fresh
            .iter()
            .filter_map(|f| f.m.reply_to.as_deref())
            .collect();
        quoted.sort_unstable();
        quoted.dedup();
        let mut targets: HashMap<String, MessageId> =
            store::ids_by_provider(&mut tx, c.id, &quoted)
                .await
                .map_err(db_err)?
                .into_iter()
                .collect();
        let mut rows: Vec<MessageRow> = Vec::with_capacity(fresh.len());
        let mut media_jobs = Vec::new();
        for f in &fresh {
            let ci = match by_key.get(&f.key) {
                Some(ci) => *ci,
                None => {
                    let cv = ConversationRow {
                        status: "open".to_owned(),
                        resolved_at: None,
                        ..ConversationRow::resolved(
                            org,
                            c.id,
                            (f.contact.id, f.contact.name.clone()),
                            &f.recipient,
                            f.key.clone(),
                            now,
                        )
                    };
                    by_key.insert(f.key.clone(), convs.len());
                    convs.push((cv, true));
                    convs.len() - 1
                }
            };
            let (kind, text, content, media) = columns(&f.m.content);
            let sent_at = Timestamp::from_millis(f.m.sent_at_ms.min(now.millis()));
            let conv = &mut convs[ci].0;
            let row = MessageRow {
                id: MessageId::new(),
                org_id: org,
                conversation_id: conv.id,
                channel_id: c.id,
                direction: "inbound".to_owned(),
                kind,
                text,
                content: content.as_ref().map(wamage_kernel::json::to_text),
                media: media.as_ref().map(wamage_kernel::json::to_text),
                reply_to_id: f.m.reply_to.as_ref().and_then(|r| targets.get(r).copied()),
                provider_message_id: Some(f.m.provider_message_id.clone()),
                status: "received".to_owned(),
                error: None,
                author_id: None,
                private: false,
                purpose: None,
                edited: false,
                created_at: now,
                sent_at: Some(sent_at),
                delivered_at: None,
                read_at: None,
                updated_at: now,
            };
            targets.insert(f.m.provider_message_id.clone(), row.id);
            if media.is_some() {
                media_jobs
                    .push(NewJob::new(MEDIA_JOB, json!({ "message_id": row.id })).with_org(org));
            }
            // The customer's message (re)opens the conversation and moves its window.
            if conv.status != "open" {
                conv.status = "open".to_owned();
                conv.snoozed_until = None;
                conv.resolved_at = None;
            }
            conv.last_message_id = Some(row.id);
            conv.last_activity_at = now;
            conv.last_inbound_at = Some(conv.last_inbound_at.map_or(sent_at, |t| t.max(sent_at)));
            conv.contact_name = f.contact.name.clone();
            conv.recipient = serde_json::to_string(&f.recipient).unwrap_or_default();
            conv.updated_at = now;
            rows.push(row);
        }
        let created: Vec<ConversationRow> = convs
            .iter()
            .filter(|(_, created)| *created)
            .map(|(cv, _)| cv.clone())
            .collect();
        store::insert_conversations(&mut tx, &created)
            .await
            .map_err(db_err)?;
        let inserted = store::insert_messages_once(&mut tx, &rows)
            .await
            .map_err(db_err)?;
        if inserted != rows.len() as u64 {
            tx.rollback().await.map_err(db_err)?;
            return Ok(Stored::Raced);
        }
        for (cv, created) in &convs {
            if !created {
                store::save_conversation(&mut tx, cv)
                    .await
                    .map_err(db_err)?;
            }
        }
        let media = !media_jobs.is_empty();
        if media {
            self.jobs
                .enqueue_many(&mut tx, media_jobs)
                .await
                .map_err(|e| Problem::internal(format_args!("enqueue media: {e}")))?;
        }
        tx.commit().await.map_err(db_err)?;
        if media {
            self.jobs.notify();
        }
        metrics::counter!("wamage_messages_received_total", "kind" => c.kind.as_str())
            .increment(rows.len() as u64);
        for f in &fresh {
            out[f.at] = Some(Ok(Applied::Done));
        }

        // Events: the conversations with their last messages, then the messages.
        let lasts: Vec<MessageRow> = convs
            .iter()
            .filter_map(|(cv, _)| {
                let last = cv.last_message_id?;
                rows.iter().find(|m| m.id == last).cloned()
            })
            .collect();
        let auto: Vec<ConversationId> = convs
            .iter()
            .filter(|(_, created)| *created)
            .map(|(cv, _)| cv.id)
            .collect();
        let events = convs
            .into_iter()
            .map(|(cv, created)| {
                let type_ = if created {
                    "wamage.conversation.created"
                } else {
                    "wamage.conversation.updated"
                };
                (type_, cv)
            })
            .collect();
        self.publish_conversation_rows(org, events, lasts).await;
        let texts: Vec<(ContactId, Option<String>)> = fresh
            .iter()
            .zip(&rows)
            .map(|(f, m)| (f.contact.id, m.text.clone()))
            .collect();
        self.publish_message_rows("wamage.message.received", rows)
            .await;
        let mut contacts: Vec<ContactId> = fresh.iter().map(|f| f.contact.id).collect();
        contacts.sort_unstable();
        contacts.dedup();
        for h in self.hooks() {
            if let Err(p) = h.customer_messages(c, &contacts, now).await {
                tracing::warn!(error = %p, "an ingest hook failed on customer messages");
            }
        }
        if let Some(team) = c.config.assign_team_id {
            for id in auto {
                self.auto_assign(org, id, team).await;
            }
        }
        for f in &fresh {
            if let InboundContent::Button {
                callback_id: Some(id),
                ..
            } = &f.m.content
            {
                self.channels.answer_callback(c, id).await;
            }
        }
        for (contact, text) in texts {
            if let Some(t) = &text {
                self.keyword(c, contact, t).await;
            }
        }
        Ok(Stored::Done)
    }

    async fn keyword(&self, c: &Channel, contact: ContactId, text: &str) {
        let Some(channel) = consent_channel(c.kind) else {
            return;
        };
        let word = text.trim().trim_end_matches(['.', '!']).to_uppercase();
        let status = if OPT_OUT_KEYWORDS.contains(&word.as_str())
            || c.config.opt_out_keywords.contains(&word)
        {
            ConsentStatus::OptedOut
        } else if OPT_IN_KEYWORDS.contains(&word.as_str()) {
            ConsentStatus::OptedIn
        } else {
            return;
        };
        let note = format!("Keyword \"{word}\"");
        if let Err(p) = self
            .contacts
            .record_system_consent(
                c.org_id,
                contact,
                SystemConsent {
                    channel,
                    purpose: ConsentPurpose::Marketing,
                    status,
                    source: ConsentSource::Keyword,
                    note: Some(&note),
                },
            )
            .await
        {
            tracing::warn!(error = %p, "failed to record a keyword consent change");
        }
    }

    /// One delivery report: one that carries callback data is offered to the hooks first
    /// (another domain's send), the rest as [`Self::apply_statuses`].
    async fn apply_status(
        &self,
        c: &Channel,
        s: &StatusUpdate,
        reports: &mut Vec<MessageRow>,
    ) -> Result<Applied, Problem> {
        // Reports carrying callback data are for sends of other domains (campaigns): the
        // inbox never sets it on its own sends.
        if s.callback_data.is_some() {
            for h in self.hooks() {
                if h.status(c, s).await? {
                    return Ok(Applied::Done);
                }
            }
        }
        self.apply_statuses(&[(c, s)], reports)
            .await
            .pop()
            .unwrap_or(Ok(Applied::Done))
    }

    /// Delivery reports about the inbox's sends, in order: on SQLite in short transactions of
    /// [`STATUSES_PER_TX`] (the webhook intake takes the write lock between them), on
    /// PostgreSQL all at once ([`store::advance_statuses_pg`]). Each
    /// moves its message forward or changes nothing (a duplicate, or older than what is
    /// stored). Moved messages are added to `reports`. A report about a message not stored is
    /// offered to the hooks, and is [`Applied::Unknown`] when no hook places it either.
    async fn apply_statuses(
        &self,
        batch: &[(&Channel, &StatusUpdate)],
        reports: &mut Vec<MessageRow>,
    ) -> Vec<Result<Applied, Problem>> {
        let now = self.now();
        let mut moved: Vec<Option<MessageRow>> = Vec::with_capacity(batch.len());
        let mut failed = None;
        // PostgreSQL takes them all at once: its writers do not take turns at one lock.
        let per_tx = match self.db.backend() {
            Backend::Postgres => batch.len().max(1),
            Backend::Sqlite => STATUSES_PER_TX,
        };
        for chunk in batch.chunks(per_tx) {
            match self.advance_statuses(chunk, now).await {
                Ok(rows) => moved.extend(rows),
                Err(p) => {
                    failed = Some(p);
                    break;
                }
            }
        }
        let (applied, rest) = batch.split_at(moved.len());
        // Reports that moved nothing: about a stored message (nothing to do) or not.
        let stored = self.stored_among(applied, &moved).await;
        let mut out = Vec::with_capacity(batch.len());
        for ((c, s), m) in applied.iter().zip(moved) {
            let Some(m) = m else {
                let placed = match &stored {
                    Err(p) => Err(p.clone()),
                    Ok(stored) if stored.contains(&(c.id, s.provider_message_id.as_str())) => {
                        Ok(Applied::Done)
                    }
                    Ok(_) => self.offer_status(c, s).await,
                };
                out.push(placed);
                continue;
            };
            let conversation = m.conversation_id;
            reports.push(m);
            if s.status == DeliveryStatus::Failed
                && s.errors.iter().any(|e| e.code == 131050)
                && let Ok(Some(conv)) = store::conversation(&self.db, c.org_id, conversation).await
                && let Some(channel) = consent_channel(c.kind)
                && let Err(p) = self
                    .contacts
                    .record_system_consent(
                        c.org_id,
                        conv.contact_id,
                        SystemConsent::marketing_stopped(channel),
                    )
                    .await
            {
                tracing::warn!(error = %p, "failed to record a provider opt-out");
            }
            out.push(Ok(Applied::Done));
        }
        // Reports after a transaction that failed are left for the retry.
        if let Some(p) = failed {
            out.extend(rest.iter().map(|_| Err(p.clone())));
        }
        out
    }

    /// Moves the messages of these reports forward, all or none (one transaction on SQLite; on
    /// PostgreSQL one statement per round of [`store::advance_statuses_pg`]): the moved rows,
    /// or `None` for a report that changed nothing.
    async fn advance_statuses(
        &self,
        batch: &[(&Channel, &StatusUpdate)],
        now: Timestamp,
    ) -> Result<Vec<Option<MessageRow>>, Problem> {
        let moves: Vec<store::StatusMove> = batch
            .iter()
            .map(|(c, s)| store::StatusMove {
                channel: c.id,
                provider_id: &s.provider_message_id,
                to: s.status.as_str(),
                from: moved_from(s.status),
                at: Timestamp::from_millis(s.at_ms),
                error: report_error(s),
            })
            .collect();
        if let Db::Postgres(pool) = &self.db {
            return store::advance_statuses_pg(pool, &moves, now)
                .await
                .map_err(db_err);
        }
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let mut moved = Vec::with_capacity(batch.len());
        for m in &moves {
            let m = store::advance_status(
                &mut tx,
                m.channel,
                m.provider_id,
                m.to,
                &m.from,
                m.at,
                m.error.as_deref(),
                now,
            )
            .await
            .map_err(db_err)?;
            moved.push(m);
        }
        tx.commit().await.map_err(db_err)?;
        Ok(moved)
    }

    /// Of the reports that moved nothing (`None` in `moved`), the (channel, provider id) of
    /// those about a stored message.
    async fn stored_among<'s>(
        &self,
        batch: &[(&Channel, &'s StatusUpdate)],
        moved: &[Option<MessageRow>],
    ) -> Result<HashSet<(ChannelId, &'s str)>, Problem> {
        let mut unmoved: Vec<(ChannelId, Vec<&'s str>)> = Vec::new();
        for ((c, s), m) in batch.iter().zip(moved) {
            if m.is_some() {
                continue;
            }
            match unmoved.iter_mut().find(|(id, _)| *id == c.id) {
                Some((_, ids)) => ids.push(&s.provider_message_id),
                None => unmoved.push((c.id, vec![&s.provider_message_id])),
            }
        }
        let mut stored = HashSet::new();
        for (channel, ids) in unmoved {
            let found: HashSet<String> = store::ids_by_provider(&self.db, channel, &ids)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            stored.extend(
                ids.into_iter()
                    .filter(|p| found.contains(*p))
                    .map(|p| (channel, p)),
            );
        }
        Ok(stored)
    }

    /// A report about a message the inbox does not have, offered to the hooks (another
    /// domain's send): [`Applied::Unknown`] when none places it.
    async fn offer_status(&self, c: &Channel, s: &StatusUpdate) -> Result<Applied, Problem> {
        for h in self.hooks() {
            if h.status(c, s).await? {
                return Ok(Applied::Done);
            }
        }
        Ok(Applied::Unknown)
    }

    async fn apply_block(&self, c: &Channel, from: &Sender, blocked: bool) -> Result<(), Problem> {
        let (Some((identities, _, _)), Some(channel)) = (address(c, from), consent_channel(c.kind))
        else {
            return Ok(());
        };
        let contact = self
            .contacts
            .resolve_inbound(c.org_id, &identities, from.name.as_deref())
            .await?;
        let purposes: &[ConsentPurpose] = if blocked {
            &[ConsentPurpose::Utility, ConsentPurpose::Marketing]
        } else {
            &[ConsentPurpose::Utility]
        };
        for purpose in purposes {
            self.contacts
                .record_system_consent(
                    c.org_id,
                    contact.id,
                    SystemConsent {
                        channel,
                        purpose: *purpose,
                        status: if blocked {
                            ConsentStatus::OptedOut
                        } else {
                            ConsentStatus::OptedIn
                        },
                        source: ConsentSource::Provider,
                        note: Some(if blocked {
                            "The customer blocked the bot"
                        } else {
                            "The customer unblocked the bot"
                        }),
                    },
                )
                .await?;
        }
        Ok(())
    }
}

/// The statuses a message may move from to reach `to`.
fn moved_from(to: DeliveryStatus) -> Vec<&'static str> {
    [
        DeliveryStatus::Queued,
        DeliveryStatus::Sent,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
        DeliveryStatus::Played,
        DeliveryStatus::Failed,
    ]
    .into_iter()
    .filter(|x| x.may_advance_to(to))
    .map(DeliveryStatus::as_str)
    .collect()
}

/// A report's first error as the message stores it, classified by its code.
fn report_error(s: &StatusUpdate) -> Option<String> {
    s.errors.first().map(|e| {
        let class = match e.code {
            131047 | 131050 | 131049 | 190 => "needs_action",
            130429 | 131056 | 131000 => "retryable",
            _ => "permanent",
        };
        error_json(e.code, &e.title, e.detail.as_deref(), class)
    })
}
