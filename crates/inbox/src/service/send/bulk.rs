//! The batch send API's fast path and its sender.
//!
//! `POST /api/v1/messages/batch` items addressed to a phone, Telegram chat id or Sandbox handle
//! that quote no message and attach no upload (the bulk case: templates and texts to many
//! customers) are written together: one contact resolution for all of them, one consent
//! query, then one transaction holding the new conversations, the messages, one
//! `inbox.send_many` job per channel and the conversations' last-message updates. Every other
//! item goes through the single-send path, one at a time. Each item keeps its own result,
//! refused items with their own problem.
//!
//! The `inbox.send_many` job sends its messages concurrently through the channel's guard (the
//! same pacing, breaker and outcome classification as `inbox.send`) and stores the accepted
//! ones in batches as they come back. A message that must wait (pacing, an open breaker, a
//! retryable provider error) is handed to its own `inbox.send` job, which takes it from there
//! with its own retries; a message that is no longer `queued` is never sent again.
//!
//! Accepted sends are stored by one writer per process ([`SentWriter`]): whatever the jobs
//! have handed it while its last write was waiting for the database (SQLite's one write lock,
//! most of all) goes in the next write, so many jobs at once take few turns at the lock.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use wamage_channels::{Channel, ChannelId, ChannelKind};
use wamage_contacts::{ConsentPurpose, ContactId, Contacts, SendPermission, http::ContactOut};
use wamage_identity::Principal;
use wamage_kernel::{Clock, OrgId, Problem, Timestamp};
use wamage_platform::{
    Db,
    jobs::{JobContext, JobHandler, JobOutcome, NewJob},
};

use super::{
    Address, Attempt, Prepared, SEND_JOB, SendOutcome, address_of, direct_purpose, one_address,
    window_closed,
};
use crate::{
    http::DirectSendIn,
    model::{ConversationId, MessageId, WINDOW},
    service::{Inbox, consent_channel, db_err},
    store::{self, ConversationRow, MessageRow},
};

pub const SEND_MANY_JOB: &str = "inbox.send_many";

/// Accepted sends a job hands to the writer together (and the most a crash can leave sent
/// but not stored, per job).
const STORE_EVERY: usize = 32;
/// Accepted sends the writer stores in one write at most.
const WRITE_MOST: usize = 1024;

/// Accepted sends of one job, and where to tell it when they are stored (with the time
/// written as their `sent_at`).
struct SentBatch {
    rows: Vec<(MessageId, String)>,
    done: tokio::sync::oneshot::Sender<Result<Timestamp, Problem>>,
}

/// Stores the accepted sends of all `inbox.send_many` jobs of this process, those waiting
/// when it is free together (group commit).
pub(crate) struct SentWriter(tokio::sync::mpsc::UnboundedSender<SentBatch>);

impl SentWriter {
    fn start(db: Db, clock: Clock) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<SentBatch>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batches = vec![first];
                let mut rows = batches[0].rows.len();
                while rows < WRITE_MOST {
                    match rx.try_recv() {
                        Ok(b) => {
                            rows += b.rows.len();
                            batches.push(b);
                        }
                        Err(_) => break,
                    }
                }
                let all: Vec<(MessageId, String)> = batches
                    .iter_mut()
                    .flat_map(|b| std::mem::take(&mut b.rows))
                    .collect();
                let now = clock.now();
                let res = store::mark_sent_many(&db, &all, now)
                    .await
                    .map(|()| now)
                    .map_err(db_err);
                metrics::histogram!("wamage_inbox_sent_write_rows").record(all.len() as f64);
                for b in batches {
                    let _ = b.done.send(res.clone());
                }
            }
        });
        Self(tx)
    }
}

/// Sends in flight per `inbox.send_many` job when pacing is off.
const IN_FLIGHT: usize = 64;

/// True when a batch item can take the fast path.
pub(super) fn is_bulk(b: &DirectSendIn) -> bool {
    b.to.contact_id.is_none()
        && b.message.reply_to_id.is_none()
        && b.message.attachment_id.is_none()
        && !matches!(b.message.kind.as_str(), "note" | "reaction")
}

/// A fast-path item that passed its checks.
struct Item {
    index: usize,
    channel: ChannelId,
    purpose: ConsentPurpose,
    address: Address,
    prepared: Prepared,
}

impl Inbox {
    /// Writes fast-path items (see the module docs): `(index, outcome)` for each.
    pub(super) async fn send_bulk(
        &self,
        who: &Principal,
        items: Vec<(usize, DirectSendIn)>,
    ) -> Vec<(usize, SendOutcome)> {
        let org = who.org_id;
        let mut done: Vec<(usize, SendOutcome)> = Vec::with_capacity(items.len());
        let mut channels: HashMap<ChannelId, Channel> = HashMap::new();
        let mut ok: Vec<Item> = Vec::with_capacity(items.len());
        for (index, b) in items {
            match self.check_bulk(org, &b, &mut channels).await {
                Ok((purpose, address, prepared)) => ok.push(Item {
                    index,
                    channel: b.channel_id,
                    purpose,
                    address,
                    prepared,
                }),
                Err(p) => done.push((index, Err(p))),
            }
        }
        if ok.is_empty() {
            return done;
        }
        match self.write_bulk(who, ok, &channels).await {
            Ok(mut written) => done.append(&mut written),
            Err((p, indexes)) => done.extend(indexes.into_iter().map(|i| (i, Err(p.clone())))),
        }
        done
    }

    /// The checks a fast-path item passes before anything is written.
    async fn check_bulk(
        &self,
        org: OrgId,
        b: &DirectSendIn,
        channels: &mut HashMap<ChannelId, Channel>,
    ) -> Result<(ConsentPurpose, Address, Prepared), Problem> {
        let purpose = direct_purpose(b)?;
        if !channels.contains_key(&b.channel_id) {
            let c = self.channels.get(org, b.channel_id).await.map_err(|_| {
                Problem::invalid_field("channel_id", "is not a channel of this organisation")
            })?;
            channels.insert(c.id, c);
        }
        let channel = &channels[&b.channel_id];
        one_address(&b.to)?;
        let address = address_of(channel.kind, &b.to)?;
        let prepared = self.prepare(org, None, channel, &b.message).await?;
        if !channel.enabled {
            return Err(Problem::conflict(
                "channel_disabled",
                "This channel is disabled",
            ));
        }
        Ok((purpose, address, prepared))
    }

    /// Resolves, checks and writes checked items; `Err` fails them all (with their indexes).
    async fn write_bulk(
        &self,
        who: &Principal,
        items: Vec<Item>,
        channels: &HashMap<ChannelId, Channel>,
    ) -> Result<Vec<(usize, SendOutcome)>, (Problem, Vec<usize>)> {
        let org = who.org_id;
        let indexes: Vec<usize> = items.iter().map(|i| i.index).collect();
        let fail_all = |p: Problem| (p, indexes.clone());
        let senders: Vec<Vec<_>> = items.iter().map(|i| i.address.0.clone()).collect();
        let (contacts, new_contacts) = self
            .contacts
            .resolve_inbound_many_with_new(org, &senders, &[])
            .await
            .map_err(fail_all)?;
        // The conversations' events show new contacts as just written, not read back.
        let known: HashMap<ContactId, ContactOut> =
            new_contacts.into_iter().map(|c| (c.id, c)).collect();
        let mut done: Vec<(usize, SendOutcome)> = Vec::new();

        // Consent, asked once per channel kind and purpose; contacts this batch has just
        // created have no ledger yet and are not blocked, so nothing is read for them.
        let mut groups: HashMap<(ChannelKind, ConsentPurpose), Vec<ContactId>> = HashMap::new();
        let mut denied: HashMap<(ChannelKind, ConsentPurpose, ContactId), String> = HashMap::new();
        for (it, c) in items.iter().zip(&contacts) {
            let kind = channels[&it.channel].kind;
            if consent_channel(kind).is_none() {
                continue;
            }
            if c.created {
                if let SendPermission::Denied { reason } = Contacts::may_send_new(it.purpose) {
                    denied.insert((kind, it.purpose, c.id), reason.to_string());
                }
            } else {
                groups.entry((kind, it.purpose)).or_default().push(c.id);
            }
        }
        for ((kind, purpose), ids) in groups {
            let Some(cc) = consent_channel(kind) else {
                continue;
            };
            let answers = self
                .contacts
                .may_send_many(org, &ids, cc, purpose)
                .await
                .map_err(fail_all)?;
            for (id, a) in answers {
                if let SendPermission::Denied { reason } = a {
                    denied.insert((kind, purpose, id), reason.to_string());
                }
            }
        }

        let now = self.now();
        let mut tx = self.db.begin().await.map_err(db_err).map_err(fail_all)?;
        // The newest conversation of each address, per channel.
        let mut convs: HashMap<(ChannelId, String), ConversationRow> = HashMap::new();
        let mut per_channel: HashMap<ChannelId, Vec<&str>> = HashMap::new();
        for it in &items {
            per_channel
                .entry(it.channel)
                .or_default()
                .push(it.address.2.as_str());
        }
        for (channel, keys) in &per_channel {
            for c in store::latest_for_addresses(&mut tx, *channel, keys)
                .await
                .map_err(db_err)
                .map_err(fail_all)?
            {
                convs.insert((c.channel_id, c.recipient_key.clone()), c);
            }
        }
        let mut rows: Vec<MessageRow> = Vec::new();
        let mut created: Vec<ConversationRow> = Vec::new();
        let mut touched: Vec<ConversationId> = Vec::new();
        let mut accepted: Vec<usize> = Vec::new();
        for (it, contact) in items.into_iter().zip(contacts) {
            let channel = &channels[&it.channel];
            let (_, recipient, key, _) = it.address;
            if denied.contains_key(&(channel.kind, it.purpose, contact.id)) {
                let reason = denied[&(channel.kind, it.purpose, contact.id)].clone();
                done.push((
                    it.index,
                    Err(Problem::conflict(
                        "consent_denied",
                        "This contact may not be sent this message",
                    )
                    .with_detail(reason)),
                ));
                continue;
            }
            let existing = convs.get(&(channel.id, key.clone()));
            if channel.kind == ChannelKind::Whatsapp && !it.prepared.template {
                let open = existing
                    .and_then(|c| c.last_inbound_at)
                    .is_some_and(|t| t.plus(WINDOW) > now);
                if !open {
                    done.push((it.index, Err(window_closed())));
                    continue;
                }
            }
            let conv = match existing {
                Some(c) => c.id,
                None => {
                    let c = ConversationRow::resolved(
                        org,
                        channel.id,
                        (contact.id, contact.name.clone()),
                        &recipient,
                        key.clone(),
                        now,
                    );
                    let id = c.id;
                    created.push(c.clone());
                    convs.insert((channel.id, key), c);
                    id
                }
            };
            let p = it.prepared;
            rows.push(MessageRow {
                id: MessageId::new(),
                org_id: org,
                conversation_id: conv,
                channel_id: channel.id,
                direction: "outbound".to_owned(),
                kind: p.kind,
                text: p.text,
                content: p.content.as_ref().map(Value::to_string),
                media: p.media.as_ref().map(Value::to_string),
                reply_to_id: None,
                provider_message_id: None,
                status: "queued".to_owned(),
                error: None,
                author_id: Some(who.user_id),
                private: false,
                purpose: Some(it.purpose.as_str().to_owned()),
                edited: false,
                created_at: now,
                sent_at: None,
                delivered_at: None,
                read_at: None,
                updated_at: now,
            });
            touched.push(conv);
            accepted.push(it.index);
        }
        store::insert_conversations(&mut tx, &created)
            .await
            .map_err(db_err)
            .map_err(fail_all)?;
        store::insert_messages(&mut tx, &rows)
            .await
            .map_err(db_err)
            .map_err(fail_all)?;
        // The last message of each conversation (rows are in request order).
        let mut lasts: HashMap<ConversationId, MessageId> = HashMap::new();
        let mut jobs: HashMap<ChannelId, Vec<MessageId>> = HashMap::new();
        for m in &rows {
            lasts.insert(m.conversation_id, m.id);
            jobs.entry(m.channel_id).or_default().push(m.id);
        }
        let lasts: Vec<(ConversationId, MessageId)> = lasts.into_iter().collect();
        store::touch_conversations(&mut tx, &lasts, now)
            .await
            .map_err(db_err)
            .map_err(fail_all)?;
        let new_jobs: Vec<NewJob> = jobs
            .into_values()
            .map(|ids| {
                NewJob::new(SEND_MANY_JOB, json!({ "message_ids": ids }))
                    .with_org(org)
                    .with_priority(5)
            })
            .collect();
        if !new_jobs.is_empty() {
            self.jobs
                .enqueue_many(&mut tx, new_jobs)
                .await
                .map_err(|e| Problem::internal(format_args!("enqueue sends: {e}")))
                .map_err(fail_all)?;
        }
        tx.commit().await.map_err(db_err).map_err(fail_all)?;
        if rows.is_empty() {
            return Ok(done);
        }
        self.jobs.notify();

        // Answers and events: every message rendered at once, every conversation once, from
        // the rows written (nothing read back).
        let last_rows: HashMap<MessageId, MessageRow> =
            rows.iter().map(|m| (m.id, m.clone())).collect();
        let mut conv_rows: HashMap<ConversationId, ConversationRow> = convs
            .into_values()
            .filter(|c| touched.contains(&c.id))
            .map(|c| (c.id, c))
            .collect();
        for (c, m) in &lasts {
            if let Some(row) = conv_rows.get_mut(c) {
                row.last_message_id = Some(*m);
                row.last_activity_at = now;
                row.updated_at = now;
            }
        }
        let outs = match self.render_new_messages(org, rows).await {
            Ok(outs) => outs,
            Err(p) => {
                tracing::warn!(error = %p, "failed to render batch-sent messages");
                Vec::new()
            }
        };
        for (index, out) in accepted.iter().zip(&outs) {
            let conv = out.conversation_id;
            let body = serde_json::to_string(out).unwrap_or_default();
            self.publish(
                org,
                "wamage.message.created",
                Some(conv),
                json!({"message": out, "conversation_id": conv}),
            )
            .await;
            done.push((*index, Ok((StatusCode::ACCEPTED, body))));
        }
        if outs.len() != accepted.len() {
            // Written and queued, but not rendered: say so without the message body.
            for index in &accepted[outs.len()..] {
                done.push((*index, Ok((StatusCode::ACCEPTED, "null".to_owned()))));
            }
        }
        let conv_rows: Vec<(ConversationRow, i64)> =
            conv_rows.into_values().map(|c| (c, 0)).collect();
        self.publish_conversations(org, conv_rows, last_rows, known)
            .await;
        Ok(done)
    }

    /// Publishes `wamage.conversation.updated` for these conversations, with their last
    /// messages and new contacts at hand.
    async fn publish_conversations(
        &self,
        org: OrgId,
        rows: Vec<(ConversationRow, i64)>,
        lasts: HashMap<MessageId, MessageRow>,
        known: HashMap<ContactId, ContactOut>,
    ) {
        match self
            .render_conversations_with(org, rows, lasts, known)
            .await
        {
            Ok(outs) => {
                for out in outs {
                    let id = out.id;
                    self.publish(
                        org,
                        "wamage.conversation.updated",
                        Some(id),
                        json!({ "conversation": out }),
                    )
                    .await;
                }
            }
            Err(p) => tracing::warn!(error = %p, "failed to render conversation events"),
        }
    }

    /// Runs an `inbox.send_many` job (see the module docs).
    async fn deliver_many(&self, ids: &[MessageId], last: bool) -> Result<JobOutcome, Problem> {
        let msgs: Vec<MessageRow> = store::messages_by_ids(&self.db, ids)
            .await
            .map_err(db_err)?
            .into_iter()
            .filter(|m| m.status == "queued" && m.direction == "outbound")
            .collect();
        if msgs.is_empty() {
            return Ok(JobOutcome::Done);
        }
        if last {
            // This job gives up: every message still queued gets its own job.
            let rest: Vec<(MessageId, Option<Duration>)> =
                msgs.iter().map(|m| (m.id, None)).collect();
            self.hand_off(msgs[0].org_id, &rest).await?;
            return Ok(JobOutcome::Done);
        }
        let conv_ids: Vec<ConversationId> = msgs.iter().map(|m| m.conversation_id).collect();
        let convs: HashMap<ConversationId, ConversationRow> =
            store::conversations_by_ids(&self.db, &conv_ids)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
        let mut channels: HashMap<ChannelId, Option<Channel>> = HashMap::new();
        for m in &msgs {
            if let std::collections::hash_map::Entry::Vacant(e) = channels.entry(m.channel_id) {
                e.insert(self.channels.get_any(m.channel_id).await?);
            }
        }
        let paced = self.channels.config().pacing;
        let concurrency = channels
            .values()
            .flatten()
            .map(|c| {
                if paced {
                    (c.messages_per_second / 10).max(4) as usize
                } else {
                    IN_FLIGHT
                }
            })
            .min()
            .unwrap_or(IN_FLIGHT);
        let attempts: Vec<_> = msgs
            .iter()
            .map(|m| {
                self.attempt_queued(
                    m,
                    convs.get(&m.conversation_id),
                    channels.get(&m.channel_id).and_then(Option::as_ref),
                )
            })
            .collect();
        let mut stream = futures::stream::iter(attempts).buffer_unordered(concurrency);
        let mut sent: Vec<(MessageId, String)> = Vec::new();
        let mut stored: Vec<MessageRow> = Vec::new();
        let mut waiting: Vec<(MessageId, Option<Duration>)> = Vec::new();
        let mut errors: Vec<Problem> = Vec::new();
        let mut pending: Vec<MessageRow> = Vec::new();
        while let Some((m, r)) = stream.next().await {
            match r {
                Ok(Attempt::Sent(provider_id)) => {
                    let mut row = m.clone();
                    row.provider_message_id = Some(provider_id.clone());
                    pending.push(row);
                    sent.push((m.id, provider_id));
                    if sent.len() >= STORE_EVERY {
                        self.store_sent(&mut sent, &mut pending, &mut stored)
                            .await?;
                    }
                }
                Ok(Attempt::Outcome(JobOutcome::Retry { retry_after, .. })) => {
                    waiting.push((m.id, retry_after));
                }
                Ok(Attempt::Outcome(_)) => {}
                // Not sent (the failure could not be recorded): its own job tries again.
                Err(p) => {
                    waiting.push((m.id, None));
                    errors.push(p);
                }
            }
        }
        drop(stream);
        self.store_sent(&mut sent, &mut pending, &mut stored)
            .await?;
        if let Some(e) = errors.first() {
            tracing::warn!(error = %e, failed = errors.len(), "batch sends hit errors; their messages get their own jobs");
        }
        // Messages that must wait get their own jobs, each due when its wait is over.
        self.hand_off(msgs[0].org_id, &waiting).await?;
        if !stored.is_empty() {
            for c in channels.values().flatten() {
                if stored.iter().any(|m| m.channel_id == c.id) {
                    self.channels.note_send_ok(c).await;
                }
            }
            self.publish_sent(stored).await;
        }
        Ok(JobOutcome::Done)
    }

    /// Stores accepted sends (`sent`, their rows in `pending`) and moves the rows, as now
    /// stored, to `stored`.
    async fn store_sent(
        &self,
        sent: &mut Vec<(MessageId, String)>,
        pending: &mut Vec<MessageRow>,
        stored: &mut Vec<MessageRow>,
    ) -> Result<(), Problem> {
        if sent.is_empty() {
            return Ok(());
        }
        let writer = self
            .sent_writer
            .get_or_init(|| SentWriter::start(self.db.clone(), self.clock.clone()));
        let (done, stored_at) = tokio::sync::oneshot::channel();
        let batch = SentBatch {
            rows: std::mem::take(sent),
            done,
        };
        let now = match writer.0.send(batch) {
            Ok(()) => stored_at
                .await
                .unwrap_or_else(|_| Err(Problem::unavailable("The sent-message writer stopped")))?,
            // The writer is gone (the runtime is stopping): store them here.
            Err(back) => {
                let now = self.now();
                store::mark_sent_many(&self.db, &back.0.rows, now)
                    .await
                    .map_err(db_err)?;
                now
            }
        };
        for mut m in pending.drain(..) {
            m.status = "sent".to_owned();
            m.sent_at = Some(now);
            m.updated_at = now;
            stored.push(m);
        }
        Ok(())
    }

    /// One message of an `inbox.send_many` job: [`Inbox::attempt`] when its conversation and
    /// channel still exist.
    async fn attempt_queued<'m>(
        &self,
        m: &'m MessageRow,
        conv: Option<&ConversationRow>,
        channel: Option<&Channel>,
    ) -> (&'m MessageRow, Result<Attempt, Problem>) {
        let Some(conv) = conv else {
            return (m, Ok(Attempt::Outcome(JobOutcome::Done)));
        };
        let Some(channel) = channel else {
            let r = self
                .fail(m.org_id, m, 0, "Channel disconnected", None, "permanent")
                .await
                .map(|()| Attempt::Outcome(JobOutcome::fail("channel gone")));
            return (m, r);
        };
        // On a paced channel no more sends wait for their slot than a tenth of a second's
        // worth, across all batch jobs of this process: fewer timers racing for the same
        // cores keep the slots precise (a strict provider counts every sliding second).
        let _slot = if self.channels.config().pacing {
            let slots = {
                let mut all = self
                    .send_slots
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let permits = (channel.messages_per_second / 10).max(4) as usize;
                Arc::clone(
                    all.entry(channel.id)
                        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(permits))),
                )
            };
            slots.acquire_owned().await.ok()
        } else {
            None
        };
        (m, self.attempt(m, conv, channel, false).await)
    }

    /// Gives messages their own `inbox.send` jobs, each due after its wait (or now).
    async fn hand_off(
        &self,
        org: OrgId,
        messages: &[(MessageId, Option<Duration>)],
    ) -> Result<(), Problem> {
        if messages.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let jobs: Vec<NewJob> = messages
            .iter()
            .map(|(id, after)| {
                NewJob::new(SEND_JOB, json!({ "message_id": id }))
                    .with_org(org)
                    .with_priority(5)
                    .with_run_at(after.map_or(now, |d| now.plus(d)))
            })
            .collect();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        self.jobs
            .enqueue_many(&mut tx, jobs)
            .await
            .map_err(|e| Problem::internal(format_args!("enqueue sends: {e}")))?;
        tx.commit().await.map_err(db_err)?;
        self.jobs.notify();
        Ok(())
    }

    /// Publishes `wamage.message.sent` for messages just stored as sent (rendered from the
    /// rows with what was stored, not read back).
    async fn publish_sent(&self, msgs: Vec<MessageRow>) {
        self.publish_message_rows("wamage.message.sent", msgs).await;
    }
}

#[derive(Deserialize)]
struct ManyPayload {
    message_ids: Vec<MessageId>,
}

/// Runs `inbox.send_many` jobs.
pub struct SendManyJob(pub Arc<Inbox>);

#[async_trait::async_trait]
impl JobHandler for SendManyJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        let p: ManyPayload = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid send payload: {e}")),
        };
        match self
            .0
            .deliver_many(&p.message_ids, job.is_last_attempt())
            .await
        {
            Ok(o) => o,
            Err(e) => JobOutcome::retry(e.to_string()),
        }
    }
}
