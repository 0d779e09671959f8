//! The batch send API's fast path and its sender.
//!
//! `POST /api/v1/messages/batch` items addressed to a phone, Telegram chat id or Sandbox handle
//! that quote no message and attach no upload (the bulk case: templates and texts to many
//! customers) are written together, in one transaction: one contact resolution for all of
//! them, one consent query, the new conversations, the messages, one `inbox.send_many` job
//! per channel and the conversations' last-message updates. Every other
//! item goes through the single-send path, one at a time. Each item keeps its own result,
//! refused items with their own problem.
//!
//! Those writes are made by one writer per process ([`BulkWriter`]): the batch requests that
//! arrived while its last write was waiting for the database are written together, in one
//! transaction with one contact resolution per organisation, and each request is answered
//! with its own items' outcomes. On SQLite one such write at a time; on PostgreSQL, whose
//! writes overlap, two.
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
use serde_json::json;
use wamage_channels::{Channel, ChannelId, ChannelKind};
use wamage_contacts::{ConsentPurpose, ContactId, Contacts, SendPermission, http::ContactOut};
use wamage_identity::Principal;
use wamage_kernel::{Clock, OrgId, Problem, Timestamp};
use wamage_platform::{
    Backend, Db, Tx,
    jobs::{JobContext, JobHandler, JobOutcome, NewJob},
};

use super::{
    Address, Attempt, Prepared, SEND_JOB, SendOutcome, address_of, consent_denied, direct_purpose,
    one_address, window_closed,
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
                let mut batches = with_waiting(&mut rx, first, WRITE_MOST, |b| b.rows.len());
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

/// `first` and what is already waiting behind it in `rx`, taken while their `size` adds up to
/// less than `most` (a writer's next group commit).
fn with_waiting<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    first: T,
    most: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut total = size(&first);
    let mut all = vec![first];
    while total < most {
        match rx.try_recv() {
            Ok(next) => {
                total += size(&next);
                all.push(next);
            }
            Err(_) => break,
        }
    }
    all
}

/// Sends in flight per `inbox.send_many` job when pacing is off (a setting for measuring raw
/// throughput). With the worker's 16 jobs at once that is 128 provider calls open, enough to
/// keep a provider answering within a millisecond or so busy. More only queue: 64 per job
/// (1,024 connections to the benchmark's fake Graph API) cost ~6 % more server CPU per send
/// and were slower (`bench/RESULTS.md`, 2026-12-07).
const IN_FLIGHT: usize = 8;

/// True when a batch item can take the fast path.
pub(super) fn is_bulk(b: &DirectSendIn) -> bool {
    b.to.contact_id.is_none()
        && b.message.reply_to_id.is_none()
        && b.message.attachment_id.is_none()
        && !matches!(b.message.kind.as_str(), "note" | "reaction")
}

/// The contacts of an organisation's merged items (in order) and who of them may not be
/// sent what.
struct Resolution {
    contacts: std::vec::IntoIter<wamage_contacts::ResolvedContact>,
    denied: HashMap<(ChannelKind, ConsentPurpose, ContactId), String>,
}

/// A fast-path item that passed its checks.
struct Item {
    index: usize,
    channel: ChannelId,
    purpose: ConsentPurpose,
    address: Address,
    prepared: Prepared,
}

/// Checked fast-path items of one batch request waiting for the [`BulkWriter`].
struct BulkRequest {
    who: Principal,
    items: Vec<Item>,
    channels: HashMap<ChannelId, Channel>,
    reply: tokio::sync::oneshot::Sender<Result<Written, Problem>>,
}

/// What the writer did with one request's items: those it refused, and the rows it wrote
/// for the others (in request order) with what the request's events show.
struct Written {
    refused: Vec<(usize, SendOutcome)>,
    accepted: Vec<usize>,
    rows: Vec<MessageRow>,
    /// The conversations the request wrote to, as now stored (their last message may be
    /// another request's when several wrote to one conversation together).
    conversations: Vec<ConversationRow>,
    /// The rows of those conversations' last messages.
    lasts: HashMap<MessageId, MessageRow>,
    /// Contacts created by the writes the request was part of (as written).
    known: HashMap<ContactId, ContactOut>,
}

/// Items the writer takes together at most (several batch requests).
const MERGE_MOST: usize = 1000;
/// Merges written at once on PostgreSQL (SQLite writes one at a time).
const MERGES_AT_ONCE_POSTGRES: usize = 2;

/// Writes the fast-path items of every batch request of this process, one write at a time:
/// the requests waiting when it is free share one contact resolution per organisation and one
/// transaction (group commit), so concurrent batches take few turns at SQLite's write lock.
/// On PostgreSQL [`MERGES_AT_ONCE_POSTGRES`] merges are written at once: a merge spends most
/// of its time waiting for its statements' round trips, which another merge's statements
/// fill. (Conversations are created once per address across writers and processes by the
/// address locks, [`store::lock_addresses`], taken in one order: merges that share addresses
/// wait for each other, they do not deadlock.)
pub(crate) struct BulkWriter(tokio::sync::mpsc::UnboundedSender<BulkRequest>);

impl BulkWriter {
    fn start(inbox: std::sync::Weak<Inbox>, backend: Backend) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<BulkRequest>();
        let slots = Arc::new(tokio::sync::Semaphore::new(match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => MERGES_AT_ONCE_POSTGRES,
        }));
        // Its own task: a request whose client went away does not stop the others. A merge is
        // formed when a slot is free, of every request that arrived meanwhile.
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    break;
                };
                let requests = with_waiting(&mut rx, first, MERGE_MOST, |r| r.items.len());
                let Some(inbox) = inbox.upgrade() else {
                    break;
                };
                metrics::histogram!("wamage_inbox_batch_merge_requests")
                    .record(requests.len() as f64);
                tokio::spawn(async move {
                    inbox.write_merged(requests).await;
                    drop(slot);
                });
            }
        });
        Self(tx)
    }
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
        let indexes: Vec<usize> = ok.iter().map(|i| i.index).collect();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = BulkRequest {
            who: who.clone(),
            items: ok,
            channels,
            reply,
        };
        let handed = match self.me.upgrade() {
            Some(me) => self
                .bulk_writer
                .get_or_init(|| BulkWriter::start(Arc::downgrade(&me), self.db.backend()))
                .0
                .send(request)
                .map_err(|back| back.0),
            None => Err(request),
        };
        let written = match handed {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(Problem::unavailable("The batch writer stopped"))),
            // No writer (the runtime is stopping): written here, alone.
            Err(request) => {
                self.write_merged(vec![request]).await;
                answer
                    .await
                    .unwrap_or_else(|_| Err(Problem::unavailable("The batch writer stopped")))
            }
        };
        match written {
            Ok(w) => done.append(&mut self.announce_bulk(org, w).await),
            Err(p) => done.extend(indexes.into_iter().map(|i| (i, Err(p.clone())))),
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
        let prepared = self.prepare_new(org, channel, &b.message).await?;
        Ok((purpose, address, prepared))
    }

    /// Writes the items of several requests together and answers each request (see
    /// [`Self::try_write_merged`]); a merge that lost a race for a new contact identity is
    /// written again.
    async fn write_merged(&self, requests: Vec<BulkRequest>) {
        let mut outcome = self.try_write_merged(&requests).await;
        for _ in 1..3 {
            if !matches!(&outcome, Err(p) if p.code == wamage_contacts::IDENTITY_TAKEN) {
                break;
            }
            outcome = self.try_write_merged(&requests).await;
        }
        match outcome {
            Ok(written) => {
                for (r, w) in requests.into_iter().zip(written) {
                    let _ = r.reply.send(Ok(w));
                }
            }
            Err(p) => {
                for r in requests {
                    let _ = r.reply.send(Err(p.clone()));
                }
            }
        }
    }

    /// One transaction for the items of several requests: their contacts resolved once per
    /// organisation, then every request's conversations, messages and jobs. Consent is asked
    /// once per organisation, channel kind and purpose. What each request wrote, in order.
    async fn try_write_merged(&self, requests: &[BulkRequest]) -> Result<Vec<Written>, Problem> {
        let mut orgs: Vec<OrgId> = Vec::new();
        for r in requests {
            if !orgs.contains(&r.who.org_id) {
                orgs.push(r.who.org_id);
            }
        }
        let mut tx = self.db.begin().await.map_err(db_err)?;
        // Single sends and webhooks may create conversations for these addresses meanwhile.
        store::lock_addresses(
            &mut tx,
            requests
                .iter()
                .flat_map(|r| &r.items)
                .map(|i| (i.channel, i.address.2.as_str())),
        )
        .await
        .map_err(db_err)?;
        let convs = latest_conversations(&mut tx, requests).await?;
        // Free-form WhatsApp items for customers whose window is closed are refused before
        // any contact is resolved: nothing is created for them. (A customer who never wrote
        // on the channel has no conversation there, and no window.)
        let now = self.now();
        let mut refused: Vec<Vec<Option<Problem>>> = requests
            .iter()
            .map(|r| {
                r.items
                    .iter()
                    .map(|it| {
                        let kind = r.channels[&it.channel].kind;
                        let shut = kind == ChannelKind::Whatsapp
                            && !it.prepared.template
                            && convs
                                .get(&(it.channel, it.address.2.clone()))
                                .and_then(|c| c.last_inbound_at)
                                .is_none_or(|t| t.plus(WINDOW) <= now);
                        shut.then(window_closed)
                    })
                    .collect()
            })
            .collect();
        let mut resolved: HashMap<OrgId, Resolution> = HashMap::new();
        let mut announce = Vec::with_capacity(orgs.len());
        for org in orgs {
            self.refuse_unknown(&mut tx, org, requests, &mut refused)
                .await?;
            // This organisation's items that may be sent, with their requests.
            let open: Vec<(&BulkRequest, &Item)> = requests
                .iter()
                .zip(&refused)
                .filter(|(r, _)| r.who.org_id == org)
                .flat_map(|(r, no)| {
                    r.items
                        .iter()
                        .zip(no)
                        .filter(|(_, no)| no.is_none())
                        .map(move |(it, _)| (r, it))
                })
                .collect();
            let senders: Vec<Vec<_>> = open.iter().map(|(_, i)| i.address.0.clone()).collect();
            let mut r = self
                .contacts
                .resolve_inbound_many_in(&mut tx, org, &senders, &[])
                .await?;
            let contacts = std::mem::take(&mut r.contacts);
            let denied = self.denied_of(&mut tx, org, &open, &contacts).await?;
            resolved.insert(
                org,
                Resolution {
                    contacts: contacts.into_iter(),
                    denied,
                },
            );
            announce.push((org, r));
        }
        let mut written = self
            .write_resolved(&mut tx, requests, convs, &refused, &mut resolved, now)
            .await?;
        tx.commit().await.map_err(db_err)?;
        if written.iter().any(|w| !w.rows.is_empty()) {
            self.jobs.notify();
        }
        // The conversations' events show new contacts as just written, not read back.
        let mut known: HashMap<OrgId, HashMap<ContactId, ContactOut>> = HashMap::new();
        for (org, r) in announce {
            let (_, new) = self.contacts.inbound_committed(org, r).await;
            known.insert(org, new.into_iter().map(|c| (c.id, c)).collect());
        }
        for (w, r) in written.iter_mut().zip(requests) {
            w.known = known.get(&r.who.org_id).cloned().unwrap_or_default();
        }
        Ok(written)
    }

    /// Refuses (in `refused`) the items of `org` that the consent ledger refuses to every
    /// contact new to it (marketing without an opt-in) and whose number no contact holds:
    /// nothing is created for them. One read for all of them.
    async fn refuse_unknown(
        &self,
        tx: &mut Tx,
        org: OrgId,
        requests: &[BulkRequest],
        refused: &mut [Vec<Option<Problem>>],
    ) -> Result<(), Problem> {
        let mut ask: Vec<(usize, usize, String)> = Vec::new();
        for (ri, r) in requests.iter().enumerate() {
            if r.who.org_id != org {
                continue;
            }
            for (ii, it) in r.items.iter().enumerate() {
                if refused[ri][ii].is_some()
                    || consent_channel(r.channels[&it.channel].kind).is_none()
                {
                    continue;
                }
                if let SendPermission::Denied { reason } = Contacts::may_send_new(it.purpose) {
                    ask.push((ri, ii, reason.to_string()));
                }
            }
        }
        if ask.is_empty() {
            return Ok(());
        }
        let senders: Vec<Vec<_>> = ask
            .iter()
            .map(|(ri, ii, _)| requests[*ri].items[*ii].address.0.clone())
            .collect();
        let owners = self.contacts.owners_in(tx, org, &senders).await?;
        for ((ri, ii, reason), owner) in ask.into_iter().zip(owners) {
            if owner.is_none() {
                refused[ri][ii] = Some(consent_denied(reason));
            }
        }
        Ok(())
    }

    /// Which of these contacts (those of these items of one organisation, in order) may not
    /// be sent their item's purpose: consent asked once per channel kind and purpose;
    /// contacts just created have no ledger yet and are not blocked, so nothing is read for
    /// them.
    async fn denied_of(
        &self,
        tx: &mut Tx,
        org: OrgId,
        items: &[(&BulkRequest, &Item)],
        contacts: &[wamage_contacts::ResolvedContact],
    ) -> Result<HashMap<(ChannelKind, ConsentPurpose, ContactId), String>, Problem> {
        let mut groups: HashMap<(ChannelKind, ConsentPurpose), Vec<ContactId>> = HashMap::new();
        let mut denied: HashMap<(ChannelKind, ConsentPurpose, ContactId), String> = HashMap::new();
        for ((r, it), c) in items.iter().zip(contacts) {
            let kind = r.channels[&it.channel].kind;
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
            for (id, a) in self
                .contacts
                .may_send_many_in(tx, org, &ids, cc, purpose)
                .await?
            {
                if let SendPermission::Denied { reason } = a {
                    denied.insert((kind, purpose, id), reason.to_string());
                }
            }
        }
        Ok(denied)
    }

    /// Writes the items of these requests in `tx`, given the newest conversation of each
    /// address and the items refused before their contacts were resolved (a closed window, a
    /// marketing send to a number no contact holds; the others' contacts resolved): what each
    /// request wrote, in order.
    async fn write_resolved(
        &self,
        tx: &mut Tx,
        requests: &[BulkRequest],
        mut convs: Latest,
        refused: &[Vec<Option<Problem>>],
        resolved: &mut HashMap<OrgId, Resolution>,
        now: Timestamp,
    ) -> Result<Vec<Written>, Problem> {
        // Each request's outcome and the conversations it wrote to.
        let mut written: Vec<(Written, Vec<ConversationId>)> = Vec::with_capacity(requests.len());
        let mut all_rows: Vec<MessageRow> = Vec::new();
        let mut created: Vec<ConversationRow> = Vec::new();
        let mut jobs: Vec<NewJob> = Vec::new();
        for (r, no) in requests.iter().zip(refused) {
            let org = r.who.org_id;
            let Some(res) = resolved.get_mut(&org) else {
                return Err(Problem::internal("batch contacts not resolved"));
            };
            let mut w = Written {
                refused: Vec::new(),
                accepted: Vec::new(),
                rows: Vec::new(),
                conversations: Vec::new(),
                lasts: HashMap::new(),
                known: HashMap::new(),
            };
            let mut touched: Vec<ConversationId> = Vec::new();
            for (it, no) in r.items.iter().zip(no) {
                if let Some(p) = no {
                    w.refused.push((it.index, Err(p.clone())));
                    continue;
                }
                let Some(contact) = res.contacts.next() else {
                    return Err(Problem::internal("batch contacts out of step"));
                };
                let channel = &r.channels[&it.channel];
                let (_, recipient, key, _) = &it.address;
                if let Some(reason) = res.denied.get(&(channel.kind, it.purpose, contact.id)) {
                    w.refused.push((it.index, Err(consent_denied(reason))));
                    continue;
                }
                let conv = match convs.get(&(channel.id, key.clone())) {
                    Some(c) => c.id,
                    None => {
                        let c = ConversationRow::resolved(
                            org,
                            channel.id,
                            (contact.id, contact.name.clone()),
                            recipient,
                            key.clone(),
                            now,
                        );
                        let id = c.id;
                        created.push(c.clone());
                        convs.insert((channel.id, key.clone()), c);
                        id
                    }
                };
                // Fast-path items are never notes and quote nothing (`is_bulk`).
                w.rows.push(it.prepared.row(
                    (org, conv, channel.id),
                    r.who.user_id,
                    it.purpose,
                    now,
                ));
                if !touched.contains(&conv) {
                    touched.push(conv);
                }
                w.accepted.push(it.index);
            }
            // One `inbox.send_many` job per channel of the request.
            let mut per_job: Vec<(ChannelId, Vec<MessageId>)> = Vec::new();
            for m in &w.rows {
                match per_job.iter_mut().find(|(c, _)| *c == m.channel_id) {
                    Some((_, ids)) => ids.push(m.id),
                    None => per_job.push((m.channel_id, vec![m.id])),
                }
            }
            jobs.extend(per_job.into_iter().map(|(_, ids)| {
                NewJob::new(SEND_MANY_JOB, json!({ "message_ids": ids }))
                    .with_org(org)
                    .with_priority(5)
            }));
            all_rows.extend(w.rows.iter().cloned());
            written.push((w, touched));
        }
        // The last message of each conversation (rows are in arrival order). Conversations
        // created here are written with theirs; the others are touched after the messages.
        let mut lasts: HashMap<ConversationId, &MessageRow> = HashMap::new();
        for m in &all_rows {
            lasts.insert(m.conversation_id, m);
        }
        for c in &mut created {
            if let Some(m) = lasts.get(&c.id) {
                c.last_message_id = Some(m.id);
            }
        }
        store::insert_conversations(tx, &created)
            .await
            .map_err(db_err)?;
        store::insert_messages(tx, &all_rows)
            .await
            .map_err(db_err)?;
        let new: std::collections::HashSet<ConversationId> = created.iter().map(|c| c.id).collect();
        let last_ids: Vec<(ConversationId, MessageId)> = lasts
            .iter()
            .filter(|(c, _)| !new.contains(*c))
            .map(|(c, m)| (*c, m.id))
            .collect();
        store::touch_conversations(tx, &last_ids, now)
            .await
            .map_err(db_err)?;
        if !jobs.is_empty() {
            self.jobs
                .enqueue_many(tx, jobs)
                .await
                .map_err(|e| Problem::internal(format_args!("enqueue sends: {e}")))?;
        }
        // Each request's conversations as now stored, with their last messages.
        let by_id: HashMap<ConversationId, &ConversationRow> =
            convs.values().map(|c| (c.id, c)).collect();
        let mut out = Vec::with_capacity(written.len());
        for (mut w, touched) in written {
            for id in touched {
                let (Some(c), Some(m)) = (by_id.get(&id), lasts.get(&id)) else {
                    continue;
                };
                let mut c = (*c).clone();
                c.last_message_id = Some(m.id);
                c.last_activity_at = now;
                c.updated_at = now;
                w.lasts.insert(m.id, (*m).clone());
                w.conversations.push(c);
            }
            out.push(w);
        }
        Ok(out)
    }

    /// Answers and events of a request's written items: every message rendered at once,
    /// every conversation once, from the rows written (nothing read back).
    async fn announce_bulk(&self, org: OrgId, w: Written) -> Vec<(usize, SendOutcome)> {
        let mut done = w.refused;
        if w.rows.is_empty() {
            return done;
        }
        let outs = match self.render_new_messages(org, w.rows).await {
            Ok(outs) => outs,
            Err(p) => {
                tracing::warn!(error = %p, "failed to render batch-sent messages");
                Vec::new()
            }
        };
        for (index, out) in w.accepted.iter().zip(&outs) {
            // Encoded once, for the event and the answer (a message always encodes).
            let raw = serde_json::value::to_raw_value(out)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned());
            self.publish(
                org,
                "wamage.message.created",
                Some(out.conversation_id),
                crate::service::EncodedMessageEvent {
                    message: &raw,
                    conversation_id: out.conversation_id,
                },
            )
            .await;
            let body = Box::<str>::from(raw).into_string();
            done.push((*index, Ok((StatusCode::ACCEPTED, body))));
        }
        if outs.len() != w.accepted.len() {
            // Written and queued, but not rendered: say so without the message body.
            for index in &w.accepted[outs.len()..] {
                done.push((*index, Ok((StatusCode::ACCEPTED, "null".to_owned()))));
            }
        }
        let conv_rows: Vec<(ConversationRow, i64)> =
            w.conversations.into_iter().map(|c| (c, 0)).collect();
        self.publish_conversations(org, conv_rows, w.lasts, w.known)
            .await;
        done
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
                        crate::service::ConversationEvent { conversation: &out },
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
        // Where each conversation's messages go (nothing else of it is needed).
        let recipients: HashMap<ConversationId, String> =
            store::recipients_by_ids(&self.db, &conv_ids)
                .await
                .map_err(db_err)?
                .into_iter()
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
                    recipients.get(&m.conversation_id).map(String::as_str),
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

    /// One message of an `inbox.send_many` job: [`Inbox::attempt`] when its conversation (its
    /// recipient) and channel still exist.
    async fn attempt_queued<'m>(
        &self,
        m: &'m MessageRow,
        recipient: Option<&str>,
        channel: Option<&Channel>,
    ) -> (&'m MessageRow, Result<Attempt, Problem>) {
        let Some(recipient) = recipient else {
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
        (m, self.attempt(m, recipient, channel, false).await)
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

/// The newest conversation of each (channel, address).
type Latest = HashMap<(ChannelId, String), ConversationRow>;

/// The newest conversation of each address of these requests' items, per channel.
async fn latest_conversations(tx: &mut Tx, requests: &[BulkRequest]) -> Result<Latest, Problem> {
    let mut per_channel: HashMap<ChannelId, Vec<&str>> = HashMap::new();
    let mut asked: std::collections::HashSet<(ChannelId, &str)> = std::collections::HashSet::new();
    for it in requests.iter().flat_map(|r| &r.items) {
        if asked.insert((it.channel, it.address.2.as_str())) {
            per_channel
                .entry(it.channel)
                .or_default()
                .push(it.address.2.as_str());
        }
    }
    let mut convs = HashMap::new();
    for (channel, keys) in &per_channel {
        for c in store::latest_for_addresses(tx, *channel, keys)
            .await
            .map_err(db_err)?
        {
            convs.insert((c.channel_id, c.recipient_key.clone()), c);
        }
    }
    Ok(convs)
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
