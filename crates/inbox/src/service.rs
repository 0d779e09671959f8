//! Inbox use cases. Reads render conversations and messages with the names of their channel,
//! contact (from the contacts façade) and agents (from identity). Every write commits first
//! and then publishes its event to the organisation's room (`org:{org}`) and, for messages, the
//! conversation's room (`conversation:{id}`), so every agent's screen follows live.
//!
//! - `service/ingest.rs`: processing stored webhook events (customer messages, delivery
//!   reports, blocks, opt-out keywords).
//! - `service/send.rs`: the outbound pipeline (message row + `inbox.send` job in one
//!   transaction, the 24-hour window, consent, pacing, breaker, error classification) and the
//!   media download job.

mod ingest;
mod send;

use std::{collections::HashMap, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json, value::RawValue};
use uuid::Uuid;
use wamage_channels::{Channel, ChannelId, ChannelKind, Channels, sandbox};
use wamage_contacts::{ContactId, Contacts, IdentityKind, http::ContactOut};
use wamage_identity::{Identity, MemberCard, Principal, Role};
use wamage_kernel::{Clock, OrgId, Problem, Timestamp, UserId, validate::Validator};
use wamage_platform::{
    Db, blob::SharedBlobStore, bus::SharedBus, db::is_unique_violation, jobs::JobQueue,
};
use wamage_realtime::{Realtime, Room, event_for_rooms};

pub use self::{
    ingest::IngestJob,
    send::{
        MEDIA_JOB, MediaJob, READ_JOB, ReadJob, SEND_JOB, SEND_MANY_JOB, SNOOZE_JOB, SendJob,
        SendManyJob, SnoozeJob,
    },
};
use crate::{
    http::{
        AssignIn, AttachmentOut, CannedIn, CannedOut, CannedPatch, ChannelRef, ContactRef,
        ConversationOut, ConversationPage, ConversationPatch, CountsOut, ErrorOut, LastMessage,
        ListQuery, MediaOut, MessageOut, MessagePage, PageQuery, ReactionOut, ReplyRef, SimulateIn,
        SimulateOut, TeamRef, UserRef, WindowOut,
    },
    model::{
        AttachmentId, CannedId, ConversationId, ConversationStatus, Direction, LABELS_MAX,
        MessageId, Priority, WINDOW, preview, valid_label, valid_shortcut,
    },
    store::{self, ConversationRow, ListFilter, MessageRow},
};

pub const SOURCE: &str = "/wamage/inbox";
/// Room kind of conversations in the realtime gateway.
pub const ROOM_KIND: &str = "conversation";
/// Largest upload.
pub const ATTACHMENT_MAX: usize = 16 * 1024 * 1024;
/// Open conversations an agent takes before round-robin skips them.
pub const DEFAULT_CAPACITY: i64 = 20;

/// An uploaded file.
pub struct Upload {
    pub filename: String,
    pub declared: Option<String>,
    pub bytes: Bytes,
}

pub struct InboxDeps {
    pub db: Db,
    pub bus: SharedBus,
    pub blobs: SharedBlobStore,
    pub jobs: JobQueue,
    pub clock: Clock,
    pub identity: Arc<Identity>,
    pub contacts: Arc<Contacts>,
    pub channels: Arc<Channels>,
    pub realtime: Arc<Realtime>,
    /// Public base URL (links providers fetch outbound media from).
    pub public_url: String,
}

/// The inbox service.
pub struct Inbox {
    db: Db,
    bus: SharedBus,
    blobs: SharedBlobStore,
    jobs: JobQueue,
    clock: Clock,
    identity: Arc<Identity>,
    contacts: Arc<Contacts>,
    channels: Arc<Channels>,
    realtime: Arc<Realtime>,
    public_url: String,
    hooks: std::sync::RwLock<Vec<Arc<dyn IngestHook>>>,
    /// Paced channels: sends of `inbox.send_many` jobs in flight (waiting for their slot
    /// included), shared by every job of this process (see `send::bulk`).
    send_slots: std::sync::Mutex<HashMap<ChannelId, Arc<tokio::sync::Semaphore>>>,
    /// The writer storing the accepted sends of every `inbox.send_many` job of this process
    /// together, started on first use (see `send::bulk`).
    sent_writer: std::sync::OnceLock<send::bulk::SentWriter>,
    /// The writer of batch sends' fast-path items, started on first use (see `send::bulk`).
    bulk_writer: std::sync::OnceLock<send::bulk::BulkWriter>,
    /// This service, for the writers it starts (they hold it weakly).
    me: std::sync::Weak<Inbox>,
}

/// What other domains learn from stored webhook events, called by the ingest job after the
/// inbox applied (or could not place) an item. Errors make the ingest job retry the event,
/// so a hook must be idempotent.
#[async_trait::async_trait]
pub trait IngestHook: Send + Sync + 'static {
    /// A delivery report for a message the inbox did not send (a campaign's, found by the
    /// report's `callback_data`); `true` when the hook placed it.
    async fn status(
        &self,
        _channel: &Channel,
        _status: &wamage_channels::provider::StatusUpdate,
    ) -> Result<bool, Problem> {
        Ok(false)
    }

    /// A template of the channel's business account changed state
    /// (`message_template_status_update`).
    async fn template_status(
        &self,
        _channel: &Channel,
        _change: &TemplateStatusChange,
    ) -> Result<(), Problem> {
        Ok(())
    }

    /// Customers wrote (new messages stored together; redeliveries are not reported): the
    /// senders' contacts, and `at`, when the messages were received.
    async fn customer_messages(
        &self,
        _channel: &Channel,
        _contacts: &[wamage_contacts::ContactId],
        _at: Timestamp,
    ) -> Result<(), Problem> {
        Ok(())
    }
}

/// A template's new state, as the provider reported it.
#[derive(Debug, Clone)]
pub struct TemplateStatusChange {
    pub template_id: String,
    pub name: String,
    pub language: String,
    /// The provider's event (`APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`, …).
    pub status: String,
    pub reason: Option<String>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox").finish_non_exhaustive()
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> Problem {
    Problem::internal(format_args!("database: {e}"))
}

pub(crate) fn rooms(org: OrgId, conv: Option<ConversationId>) -> Vec<Room> {
    let mut r: Vec<Room> = Room::new("org", org.as_uuid()).into_iter().collect();
    if let Some(c) = conv {
        r.extend(Room::new(ROOM_KIND, c.as_uuid()));
    }
    r
}

fn encode_cursor(at: Timestamp, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", at.millis()))
}

fn decode_cursor(s: &str) -> Option<(Timestamp, Uuid)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (ms, id) = raw.split_once(':')?;
    Some((Timestamp::from_millis(ms.parse().ok()?), id.parse().ok()?))
}

/// Member names for one request.
pub(crate) struct Directory(HashMap<UserId, MemberCard>);

impl Directory {
    fn user(&self, id: UserId) -> UserRef {
        match self.0.get(&id) {
            Some(m) => UserRef {
                id,
                name: m.name.clone(),
                avatar_url: m.avatar_url.clone(),
            },
            None => UserRef {
                id,
                name: "Former member".to_owned(),
                avatar_url: None,
            },
        }
    }

    fn has(&self, id: UserId) -> bool {
        self.0.contains_key(&id)
    }
}

/// The consent ledger's channel of a channel kind (the Sandbox has no consent to keep).
pub(crate) fn consent_channel(kind: ChannelKind) -> Option<wamage_contacts::ConsentChannel> {
    match kind {
        ChannelKind::Whatsapp => Some(wamage_contacts::ConsentChannel::Whatsapp),
        ChannelKind::Telegram => Some(wamage_contacts::ConsentChannel::Telegram),
        ChannelKind::Sandbox => None,
    }
}

/// The JSON error stored on a failed message.
pub(crate) fn error_json(code: i64, title: &str, detail: Option<&str>, class: &str) -> String {
    json!({"code": code, "title": title, "detail": detail, "class": class}).to_string()
}

/// The data of a `wamage.message.*` event: the message as the API shows it, and its
/// conversation.
#[derive(Serialize)]
pub(crate) struct MessageEvent<'a> {
    pub message: &'a MessageOut,
    pub conversation_id: ConversationId,
}

impl<'a> MessageEvent<'a> {
    pub fn of(message: &'a MessageOut) -> Self {
        Self {
            message,
            conversation_id: message.conversation_id,
        }
    }
}

/// [`MessageEvent`] of a message already encoded (as its answer shows it): the same data.
#[derive(Serialize)]
pub(crate) struct EncodedMessageEvent<'a> {
    pub message: &'a RawValue,
    pub conversation_id: ConversationId,
}

/// The data of a `wamage.conversation.*` event.
#[derive(Serialize)]
pub(crate) struct ConversationEvent<'a> {
    pub conversation: &'a ConversationOut,
}

impl Inbox {
    pub fn new(deps: InboxDeps) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            db: deps.db,
            bus: deps.bus,
            blobs: deps.blobs,
            jobs: deps.jobs,
            clock: deps.clock,
            identity: deps.identity,
            contacts: deps.contacts,
            channels: deps.channels,
            realtime: deps.realtime,
            public_url: deps.public_url.trim_end_matches('/').to_owned(),
            hooks: std::sync::RwLock::new(Vec::new()),
            send_slots: std::sync::Mutex::new(HashMap::new()),
            sent_writer: std::sync::OnceLock::new(),
            bulk_writer: std::sync::OnceLock::new(),
            me: me.clone(),
        })
    }

    /// Registers a hook the ingest job reports to (see [`IngestHook`]).
    pub fn add_hook(&self, hook: Arc<dyn IngestHook>) {
        self.hooks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(hook);
    }

    pub(crate) fn hooks(&self) -> Vec<Arc<dyn IngestHook>> {
        self.hooks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) async fn publish(
        &self,
        org: OrgId,
        type_: &str,
        conv: Option<ConversationId>,
        data: impl Serialize,
    ) {
        let event = event_for_rooms(SOURCE, type_, org, self.now(), &rooms(org, conv), data);
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(error = %e, event = type_, "failed to publish an inbox event");
        }
    }

    async fn directory(&self, org: OrgId) -> Result<Directory, Problem> {
        Ok(Directory(
            self.identity
                .member_cards(org)
                .await?
                .iter()
                .map(|m| (m.user_id, m.clone()))
                .collect(),
        ))
    }

    pub(crate) fn media_url(&self, key: &str) -> String {
        format!("{}/api/v1/inbox-media/{key}", self.public_url)
    }

    /// May room `conversation:{id}` be joined by `viewer`? Any member of its organisation.
    pub async fn may_join_room(&self, viewer: &Principal, id: Uuid) -> anyhow::Result<bool> {
        Ok(
            store::conversation(&self.db, viewer.org_id, ConversationId(id))
                .await?
                .is_some(),
        )
    }

    async fn conv_row(&self, org: OrgId, id: ConversationId) -> Result<ConversationRow, Problem> {
        store::conversation(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("conversation"))
    }

    // ---- rendering ----------------------------------------------------------------------

    async fn render_conversations(
        &self,
        org: OrgId,
        rows: Vec<(ConversationRow, i64)>,
    ) -> Result<Vec<ConversationOut>, Problem> {
        self.render_conversations_with(org, rows, HashMap::new(), HashMap::new())
            .await
    }

    /// [`Self::render_conversations`] with some of their last messages and contacts already at
    /// hand (the others are read).
    async fn render_conversations_with(
        &self,
        org: OrgId,
        rows: Vec<(ConversationRow, i64)>,
        mut lasts: HashMap<MessageId, MessageRow>,
        mut contacts: HashMap<ContactId, ContactOut>,
    ) -> Result<Vec<ConversationOut>, Problem> {
        // Channels from the channels' cache (a page touches few of them).
        let mut channels: HashMap<ChannelId, Channel> = HashMap::new();
        for (c, _) in &rows {
            if !channels.contains_key(&c.channel_id)
                && let Some(ch) = self.channels.get_any(c.channel_id).await?
                && ch.org_id == org
            {
                channels.insert(ch.id, ch);
            }
        }
        let dir = self.directory(org).await?;
        let last_ids: Vec<MessageId> = rows
            .iter()
            .filter_map(|(c, _)| c.last_message_id)
            .filter(|id| !lasts.contains_key(id))
            .collect();
        lasts.extend(
            store::messages_by_ids(&self.db, &last_ids)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|m| (m.id, m)),
        );
        let teams = if rows.iter().any(|(c, _)| c.team_id.is_some()) {
            self.team_names(org).await
        } else {
            HashMap::new()
        };
        let now = self.now();
        let contact_ids: Vec<ContactId> = rows
            .iter()
            .map(|(c, _)| c.contact_id)
            .filter(|id| !contacts.contains_key(id))
            .collect();
        if !contact_ids.is_empty() {
            contacts.extend(
                self.contacts
                    .contacts_in(org, &contact_ids)
                    .await
                    .unwrap_or_default(),
            );
        }
        let mut out = Vec::with_capacity(rows.len());
        for (c, unread) in rows {
            let ch = channels.get(&c.channel_id);
            let contact = contacts.get(&c.contact_id);
            let kind = ch.map_or(ChannelKind::Sandbox, |c| c.kind);
            let window = if kind == ChannelKind::Whatsapp {
                let expires = c.last_inbound_at.map(|t| t.plus(WINDOW));
                WindowOut {
                    open: expires.is_some_and(|e| e > now),
                    expires_at: expires,
                }
            } else {
                WindowOut {
                    open: true,
                    expires_at: None,
                }
            };
            let phone = contact.as_ref().and_then(|k| {
                k.identities
                    .iter()
                    .find(|i| matches!(i.kind, IdentityKind::WhatsappPhone | IdentityKind::Phone))
                    .map(|i| i.value.clone())
            });
            out.push(ConversationOut {
                id: c.id,
                channel: ChannelRef {
                    id: c.channel_id,
                    kind,
                    name: ch.map_or_else(|| "Deleted channel".to_owned(), |c| c.name.clone()),
                },
                contact: ContactRef {
                    id: c.contact_id,
                    name: contact
                        .as_ref()
                        .map_or_else(|| c.contact_name.clone(), |k| k.name.clone()),
                    avatar_url: contact.as_ref().and_then(|k| k.avatar_url.clone()),
                    phone,
                    handle: c.recipient_key.clone(),
                },
                status: ConversationStatus::parse(&c.status).unwrap_or(ConversationStatus::Open),
                snoozed_until: c.snoozed_until,
                priority: Priority::parse(&c.priority).unwrap_or(Priority::None),
                assignee: c.assignee_id.map(|u| dir.user(u)),
                team: c.team_id.map(|t| TeamRef {
                    id: t,
                    name: teams
                        .get(&t)
                        .cloned()
                        .unwrap_or_else(|| "Deleted team".to_owned()),
                }),
                labels: serde_json::from_str(&c.labels).unwrap_or_default(),
                unread_count: unread,
                last_message: c.last_message_id.and_then(|id| lasts.get(&id)).map(|m| {
                    LastMessage {
                        id: m.id,
                        direction: Direction::parse(&m.direction).unwrap_or(Direction::Inbound),
                        kind: m.kind.clone(),
                        preview: message_preview(m),
                        status: m.status.clone(),
                        at: m.created_at,
                    }
                }),
                window,
                last_activity_at: c.last_activity_at,
                created_at: c.created_at,
                updated_at: c.updated_at,
            });
        }
        Ok(out)
    }

    async fn team_names(&self, org: OrgId) -> HashMap<Uuid, String> {
        self.identity
            .team_names(org)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect()
    }

    pub(crate) async fn render_messages(
        &self,
        org: OrgId,
        rows: Vec<MessageRow>,
    ) -> Result<Vec<MessageOut>, Problem> {
        self.render_message_rows(org, rows, true).await
    }

    /// [`Self::render_messages`] for messages this request has just inserted: nobody can have
    /// reacted to them yet, so their reactions are not looked up.
    pub(crate) async fn render_new_messages(
        &self,
        org: OrgId,
        rows: Vec<MessageRow>,
    ) -> Result<Vec<MessageOut>, Problem> {
        self.render_message_rows(org, rows, false).await
    }

    async fn render_message_rows(
        &self,
        org: OrgId,
        rows: Vec<MessageRow>,
        with_reactions: bool,
    ) -> Result<Vec<MessageOut>, Problem> {
        let dir = self.directory(org).await?;
        let ids: Vec<MessageId> = if with_reactions {
            rows.iter().map(|m| m.id).collect()
        } else {
            Vec::new()
        };
        let mut reactions: HashMap<MessageId, Vec<ReactionOut>> = HashMap::new();
        for (mid, actor, emoji) in store::reactions(&self.db, &ids).await.map_err(db_err)? {
            let user_id = actor.parse::<Uuid>().ok().map(UserId);
            reactions.entry(mid).or_default().push(ReactionOut {
                emoji,
                by: if user_id.is_some() {
                    "agent"
                } else {
                    "customer"
                }
                .to_owned(),
                user_id,
            });
        }
        let reply_ids: Vec<MessageId> = rows.iter().filter_map(|m| m.reply_to_id).collect();
        let replies: HashMap<MessageId, MessageRow> = store::messages_by_ids(&self.db, &reply_ids)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        Ok(rows
            .into_iter()
            .map(|m| {
                let reply_to = m
                    .reply_to_id
                    .and_then(|id| replies.get(&id))
                    .map(|r| ReplyRef {
                        id: r.id,
                        direction: Direction::parse(&r.direction).unwrap_or(Direction::Inbound),
                        preview: message_preview(r),
                    });
                let media = m
                    .media
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .map(|v| {
                        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
                        MediaOut {
                            kind: s("kind").unwrap_or_else(|| m.kind.clone()),
                            url: s("key").map(|k| self.media_url(&k)).or_else(|| s("link")),
                            mime_type: s("mime_type"),
                            filename: s("filename"),
                            size: v.get("size").and_then(Value::as_u64),
                            state: s("state").unwrap_or_else(|| "ready".to_owned()),
                            error: s("error"),
                        }
                    });
                let error = m
                    .error
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                    .map(|v| ErrorOut {
                        code: v.get("code").and_then(Value::as_i64).unwrap_or(0),
                        title: v
                            .get("title")
                            .and_then(Value::as_str)
                            .unwrap_or("Error")
                            .to_owned(),
                        detail: v.get("detail").and_then(Value::as_str).map(str::to_owned),
                        class: v
                            .get("class")
                            .and_then(Value::as_str)
                            .unwrap_or("permanent")
                            .to_owned(),
                    });
                MessageOut {
                    id: m.id,
                    conversation_id: m.conversation_id,
                    direction: Direction::parse(&m.direction).unwrap_or(Direction::Inbound),
                    kind: m.kind.clone(),
                    text: m.text.clone(),
                    // Checked and copied, never built into a tree of values.
                    content: m
                        .content
                        .as_deref()
                        .and_then(|s| serde_json::from_str::<Box<RawValue>>(s).ok()),
                    media,
                    reply_to,
                    reactions: reactions.remove(&m.id).unwrap_or_default(),
                    status: m.status.clone(),
                    error,
                    author: m.author_id.map(|u| dir.user(u)),
                    private: m.private,
                    edited: m.edited,
                    created_at: m.created_at,
                    sent_at: m.sent_at,
                    delivered_at: m.delivered_at,
                    read_at: m.read_at,
                }
            })
            .collect())
    }

    pub(crate) async fn render_message(
        &self,
        org: OrgId,
        m: MessageRow,
    ) -> Result<MessageOut, Problem> {
        Ok(self.render_messages(org, vec![m]).await?.remove(0))
    }

    /// Publishes a message event (and the conversation's new state).
    pub(crate) async fn publish_message(&self, org: OrgId, type_: &str, id: MessageId) {
        let Ok(Some(m)) = store::message(&self.db, org, id).await else {
            return;
        };
        self.publish_message_row(type_, m).await;
    }

    /// Publishes a `type_` event for each of these rows as just written, rendered together
    /// (one look-up of reactions and quoted messages per organisation).
    pub(crate) async fn publish_message_rows(&self, type_: &str, rows: Vec<MessageRow>) {
        let mut by_org: Vec<(OrgId, Vec<MessageRow>)> = Vec::new();
        for m in rows {
            match by_org.iter_mut().find(|(o, _)| *o == m.org_id) {
                Some((_, rows)) => rows.push(m),
                None => by_org.push((m.org_id, vec![m])),
            }
        }
        for (org, rows) in by_org {
            match self.render_messages(org, rows).await {
                Ok(outs) => {
                    for out in outs {
                        let conv = out.conversation_id;
                        self.publish(org, type_, Some(conv), MessageEvent::of(&out))
                            .await;
                    }
                }
                Err(p) => tracing::warn!(error = %p, "failed to render message events"),
            }
        }
    }

    /// Publishes a message event from the row as just written (nothing read back).
    pub(crate) async fn publish_message_row(&self, type_: &str, m: MessageRow) {
        self.publish_message_rows(type_, vec![m]).await;
    }

    pub(crate) async fn publish_conversation(
        &self,
        org: OrgId,
        type_: &'static str,
        id: ConversationId,
    ) {
        let Ok(Some(c)) = store::conversation(&self.db, org, id).await else {
            return;
        };
        self.publish_conversation_row(org, type_, c, None).await;
    }

    /// Publishes a conversation event from the row as just written, with its last message
    /// when at hand (nothing else read back).
    pub(crate) async fn publish_conversation_row(
        &self,
        org: OrgId,
        type_: &'static str,
        c: ConversationRow,
        last: Option<MessageRow>,
    ) {
        self.publish_conversation_rows(org, vec![(type_, c)], last.into_iter().collect())
            .await;
    }

    /// Publishes an event of its type for each of these conversations as just written,
    /// rendered together, with the last messages at hand (nothing else read back).
    pub(crate) async fn publish_conversation_rows(
        &self,
        org: OrgId,
        rows: Vec<(&'static str, ConversationRow)>,
        lasts: Vec<MessageRow>,
    ) {
        let types: HashMap<ConversationId, &str> = rows.iter().map(|(t, c)| (c.id, *t)).collect();
        let lasts = lasts.into_iter().map(|m| (m.id, m)).collect();
        let rows = rows.into_iter().map(|(_, c)| (c, 0)).collect();
        match self
            .render_conversations_with(org, rows, lasts, HashMap::new())
            .await
        {
            Ok(outs) => {
                for out in outs {
                    let id = out.id;
                    if let Some(type_) = types.get(&id) {
                        self.publish(
                            org,
                            type_,
                            Some(id),
                            ConversationEvent { conversation: &out },
                        )
                        .await;
                    }
                }
            }
            Err(p) => tracing::warn!(error = %p, "failed to render conversation events"),
        }
    }

    // ---- conversations ------------------------------------------------------------------

    pub async fn list(&self, who: &Principal, q: &ListQuery) -> Result<ConversationPage, Problem> {
        let mut v = Validator::new();
        let limit = q.limit.unwrap_or(30);
        v.check(
            (1..=100).contains(&limit),
            "limit",
            "must be between 1 and 100",
        );
        let status = match q.status.as_deref() {
            None => Some("open".to_owned()),
            Some("all") => None,
            Some(s) if ConversationStatus::parse(s).is_some() => Some(s.to_owned()),
            Some(_) => {
                v.error("status", "must be open, pending, snoozed, resolved or all");
                None
            }
        };
        let assignee = match q.assignee.as_deref() {
            None | Some("all") => None,
            Some("me") => Some(Some(who.user_id)),
            Some("unassigned") => Some(None),
            Some(s) => match s.parse::<Uuid>() {
                Ok(u) => Some(Some(UserId(u))),
                Err(_) => {
                    v.error("assignee", "must be me, unassigned, all or a member id");
                    None
                }
            },
        };
        let before = match q.cursor.as_deref() {
            None => None,
            Some(c) => match decode_cursor(c) {
                Some((at, id)) => Some((at, ConversationId(id))),
                None => {
                    v.error("cursor", "is not a cursor this API gave");
                    None
                }
            },
        };
        if let Some(t) = &q.q {
            v.length("q", t, 0, 200);
        }
        v.finish()?;
        let f = ListFilter {
            status,
            assignee,
            channel: q.channel_id,
            team: q.team_id,
            label: q.label.clone().filter(|l| !l.is_empty()),
            q: q.q
                .clone()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            before,
            limit: i64::from(limit) + 1,
        };
        let mut rows = store::list_conversations(&self.db, who.org_id, who.user_id, &f)
            .await
            .map_err(db_err)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last()
                .map(|r| encode_cursor(r.c.last_activity_at, r.c.id.as_uuid()))
        } else {
            None
        };
        let items = self
            .render_conversations(
                who.org_id,
                rows.into_iter().map(|r| (r.c, r.unread_count)).collect(),
            )
            .await?;
        Ok(ConversationPage { items, next_cursor })
    }

    pub async fn counts(&self, who: &Principal) -> Result<CountsOut, Problem> {
        let (mine, unassigned, all) = store::counts(&self.db, who.org_id, who.user_id)
            .await
            .map_err(db_err)?;
        Ok(CountsOut {
            mine,
            unassigned,
            all,
        })
    }

    pub async fn conversation(
        &self,
        who: &Principal,
        id: ConversationId,
    ) -> Result<ConversationOut, Problem> {
        let c = self.conv_row(who.org_id, id).await?;
        let unread = store::unread_count(&self.db, id, who.user_id)
            .await
            .map_err(db_err)?;
        Ok(self
            .render_conversations(who.org_id, vec![(c, unread)])
            .await?
            .remove(0))
    }

    pub async fn update(
        &self,
        who: &Principal,
        id: ConversationId,
        b: &ConversationPatch,
    ) -> Result<ConversationOut, Problem> {
        let org = who.org_id;
        let now = self.now();
        let mut v = Validator::new();
        if let Some(labels) = &b.labels {
            v.check(
                labels.len() <= LABELS_MAX,
                "labels",
                format!("at most {LABELS_MAX} labels"),
            );
            for (i, l) in labels.iter().enumerate() {
                if !valid_label(l) {
                    v.error(
                        &format!("labels[{i}]"),
                        "must be 1 to 40 characters without leading or trailing spaces",
                    );
                }
            }
        }
        let snooze = match (b.status, &b.snoozed_until) {
            (Some(ConversationStatus::Snoozed), Some(Some(t))) => {
                v.check(*t > now, "snoozed_until", "must be in the future");
                Some(*t)
            }
            (Some(ConversationStatus::Snoozed), _) => {
                v.error("snoozed_until", "is required to snooze");
                None
            }
            (_, Some(Some(_))) => {
                v.error("snoozed_until", "only applies with status snoozed");
                None
            }
            _ => None,
        };
        v.finish()?;
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let mut c = store::conversation(&mut tx, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("conversation"))?;
        let before = c.status.clone();
        if let Some(s) = b.status {
            c.status = s.as_str().to_owned();
            c.snoozed_until = snooze;
            c.resolved_at = (s == ConversationStatus::Resolved).then_some(now);
        }
        if let Some(p) = b.priority {
            c.priority = p.as_str().to_owned();
        }
        if let Some(labels) = &b.labels {
            let mut l = labels.clone();
            l.sort();
            l.dedup();
            c.labels = serde_json::to_string(&l).unwrap_or_else(|_| "[]".to_owned());
        }
        c.updated_at = now;
        store::save_conversation(&mut tx, &c)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        if c.status == "snoozed"
            && let Some(t) = c.snoozed_until
        {
            self.schedule_wake(org, t).await;
        }
        let type_ = if c.status == "resolved" && before != "resolved" {
            "wamage.conversation.resolved"
        } else {
            "wamage.conversation.updated"
        };
        self.publish_conversation(org, type_, id).await;
        self.conversation(who, id).await
    }

    async fn schedule_wake(&self, org: OrgId, at: Timestamp) {
        let job = wamage_platform::jobs::NewJob::new(SNOOZE_JOB, json!({}))
            .with_org(org)
            .with_run_at(at)
            .with_dedupe_key(format!("{}", at.millis() / 60_000));
        if let Err(e) = self.jobs.enqueue_now(job).await {
            tracing::warn!(error = %e, "failed to schedule waking snoozed conversations");
        }
    }

    pub async fn assign(
        &self,
        who: &Principal,
        id: ConversationId,
        b: &AssignIn,
    ) -> Result<ConversationOut, Problem> {
        let org = who.org_id;
        let dir = self.directory(org).await?;
        let mut v = Validator::new();
        if let Some(Some(u)) = b.assignee_id {
            v.check(
                dir.has(u),
                "assignee_id",
                "is not a member of this organisation",
            );
        }
        if b.auto && b.assignee_id.is_some() {
            v.error("auto", "cannot be combined with assignee_id");
        }
        let team = match b.team_id {
            Some(Some(t)) => match self.identity.team_member_ids(who, t).await {
                Ok(members) => Some(Some((t, members))),
                Err(_) => {
                    v.error("team_id", "is not a team of this organisation");
                    None
                }
            },
            Some(None) => Some(None),
            None => None,
        };
        v.finish()?;
        let mut assignee = b.assignee_id;
        if b.auto {
            let Some(Some((_, members))) = &team else {
                return Err(Problem::invalid_field(
                    "team_id",
                    "is required for automatic assignment",
                ));
            };
            assignee = Some(Some(self.pick_agent(org, members).await?));
        }
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let mut c = store::conversation(&mut tx, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("conversation"))?;
        if let Some(a) = assignee {
            c.assignee_id = a;
        }
        if let Some(t) = &team {
            c.team_id = t.as_ref().map(|(t, _)| *t);
        }
        c.updated_at = self.now();
        store::save_conversation(&mut tx, &c)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.publish_conversation(org, "wamage.conversation.assigned", id)
            .await;
        self.conversation(who, id).await
    }

    /// Hands a new conversation to the team (channel setting `assign_team_id`): to its online
    /// agent with the fewest open conversations below capacity, or to the team's unassigned
    /// queue when nobody is available.
    pub(crate) async fn auto_assign(&self, org: OrgId, id: ConversationId, team: Uuid) {
        let members = match self.identity.team_members_in(org, team).await {
            Ok(m) => m,
            Err(p) => {
                tracing::warn!(error = %p, %team, "automatic assignment: team not found");
                return;
            }
        };
        let agent = self.pick_agent(org, &members).await.ok();
        let res: Result<(), Problem> = async {
            let mut tx = self.db.begin().await.map_err(db_err)?;
            let Some(mut c) = store::conversation(&mut tx, org, id)
                .await
                .map_err(db_err)?
            else {
                return Ok(());
            };
            if c.assignee_id.is_some() {
                return Ok(());
            }
            c.assignee_id = agent;
            c.team_id = Some(team);
            c.updated_at = self.now();
            store::save_conversation(&mut tx, &c)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        }
        .await;
        match res {
            Ok(()) => {
                self.publish_conversation(org, "wamage.conversation.assigned", id)
                    .await;
            }
            Err(p) => tracing::warn!(error = %p, "automatic assignment failed"),
        }
    }

    /// Round-robin: the online team member with the fewest open conversations below
    /// [`DEFAULT_CAPACITY`] (ties: the one who has waited longest, by id order as a stable
    /// fallback).
    async fn pick_agent(&self, org: OrgId, members: &[UserId]) -> Result<UserId, Problem> {
        let online = self
            .realtime
            .online_users(org, members)
            .await
            .map_err(|e| Problem::internal(format_args!("presence: {e:#}")))?;
        let load: HashMap<UserId, i64> = store::open_load(&self.db, org)
            .await
            .map_err(db_err)?
            .into_iter()
            .collect();
        online
            .into_iter()
            .map(|u| (load.get(&u).copied().unwrap_or(0), u))
            .filter(|(n, _)| *n < DEFAULT_CAPACITY)
            .min()
            .map(|(_, u)| u)
            .ok_or_else(|| {
                Problem::conflict(
                    "no_agent_available",
                    "No agent of this team is online with free capacity",
                )
            })
    }

    /// Moves the caller's read marker; on WhatsApp the customer's last message is marked read
    /// at the provider too (blue ticks), by an `inbox.mark_read` job.
    pub async fn mark_read(&self, who: &Principal, id: ConversationId) -> Result<(), Problem> {
        let c = self.conv_row(who.org_id, id).await?;
        store::mark_read(&self.db, id, who.user_id, self.now())
            .await
            .map_err(db_err)?;
        if let Some(ch) = self.channels.get_any(c.channel_id).await?
            && ch.kind == ChannelKind::Whatsapp
            && let Some((mid, _)) = store::last_inbound(&self.db, id).await.map_err(db_err)?
        {
            let job = wamage_platform::jobs::NewJob::new(READ_JOB, json!({ "message_id": mid }))
                .with_org(who.org_id)
                .with_dedupe_key(mid.to_string());
            if let Err(e) = self.jobs.enqueue_now(job).await {
                tracing::warn!(error = %e, "failed to queue a provider read receipt");
            }
        }
        Ok(())
    }

    pub async fn messages(
        &self,
        who: &Principal,
        id: ConversationId,
        q: &PageQuery,
    ) -> Result<MessagePage, Problem> {
        let org = who.org_id;
        self.conv_row(org, id).await?;
        let limit = q.limit.unwrap_or(50);
        if !(1..=100).contains(&limit) {
            return Err(Problem::invalid_field("limit", "must be between 1 and 100"));
        }
        let before = match q.before {
            Some(b) => {
                let m = store::message(&self.db, org, b)
                    .await
                    .map_err(db_err)?
                    .filter(|m| m.conversation_id == id)
                    .ok_or_else(|| {
                        Problem::invalid_field("before", "is not a message of this conversation")
                    })?;
                Some((m.created_at, m.id))
            }
            None => None,
        };
        let mut rows = store::page(&self.db, id, before, i64::from(limit) + 1)
            .await
            .map_err(db_err)?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        rows.reverse();
        Ok(MessagePage {
            items: self.render_messages(org, rows).await?,
            has_more,
        })
    }

    pub async fn message(&self, who: &Principal, id: MessageId) -> Result<MessageOut, Problem> {
        let m = store::message(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("message"))?;
        self.render_message(who.org_id, m).await
    }

    // ---- attachments and media ----------------------------------------------------------

    pub async fn upload(
        &self,
        who: &Principal,
        conv: ConversationId,
        up: Upload,
    ) -> Result<AttachmentOut, Problem> {
        let org = who.org_id;
        self.conv_row(org, conv).await?;
        if up.bytes.is_empty() {
            return Err(Problem::invalid_field("file", "is empty"));
        }
        if up.bytes.len() > ATTACHMENT_MAX {
            return Err(
                Problem::payload_too_large(ATTACHMENT_MAX).with_field("file", "is too large")
            );
        }
        let mime = infer::get(&up.bytes)
            .map(|t| t.mime_type().to_owned())
            .or(up.declared.clone())
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let kind = media_kind_of(&mime);
        let filename: String = up
            .filename
            .chars()
            .filter(|c| !c.is_control() && *c != '/' && *c != '\\')
            .take(200)
            .collect();
        let id = AttachmentId::new();
        let key = format!("inbox/{}/{}", Uuid::now_v7().simple(), random_hex(16));
        self.blobs
            .put(&key, up.bytes.clone(), &mime)
            .await
            .map_err(|e| Problem::internal(format_args!("blob put: {e:#}")))?;
        let row = store::AttachmentRow {
            id,
            org_id: org,
            conversation_id: conv,
            blob_key: key.clone(),
            kind: kind.to_owned(),
            mime_type: mime.clone(),
            filename: if filename.is_empty() {
                "file".to_owned()
            } else {
                filename
            },
            size: i64::try_from(up.bytes.len()).unwrap_or(i64::MAX),
            created_by: who.user_id,
            created_at: self.now(),
        };
        store::insert_attachment(&self.db, &row)
            .await
            .map_err(db_err)?;
        Ok(AttachmentOut {
            id,
            kind: row.kind,
            mime_type: row.mime_type,
            filename: row.filename,
            size: row.size,
            url: self.media_url(&key.replace('/', "~")),
        })
    }

    /// Bytes of message media or an upload, by the key in its URL.
    pub async fn media(&self, key: &str) -> Result<(Bytes, String), Problem> {
        let key = key.replace('~', "/");
        if !key.starts_with("inbox/") || key.contains("..") || key.len() > 200 {
            return Err(Problem::not_found("file"));
        }
        let blob = self
            .blobs
            .get(&key)
            .await
            .map_err(|e| Problem::internal(format_args!("blob get: {e:#}")))?
            .ok_or_else(|| Problem::not_found("file"))?;
        Ok((blob.bytes, blob.content_type))
    }

    // ---- sandbox --------------------------------------------------------------------------

    async fn sandbox(&self, who: &Principal, id: ChannelId) -> Result<Channel, Problem> {
        let c = self.channels.get(who.org_id, id).await?;
        if c.kind != ChannelKind::Sandbox {
            return Err(Problem::conflict(
                "not_a_sandbox",
                "Only Sandbox channels have simulated customers",
            ));
        }
        Ok(c)
    }

    pub async fn simulate(
        &self,
        who: &Principal,
        id: ChannelId,
        b: &SimulateIn,
    ) -> Result<SimulateOut, Problem> {
        let c = self.sandbox(who, id).await?;
        let mut v = Validator::new();
        v.check(
            sandbox::valid_handle(&b.from.handle),
            "from.handle",
            "must be 1 to 64 letters, digits or . _ + -",
        );
        if let Some(n) = &b.from.name {
            v.length("from.name", n, 0, 200);
        }
        let n = b.text.chars().count();
        v.check(
            n <= crate::model::TEXT_MAX,
            "text",
            "must be at most 4096 characters",
        );
        v.check(!b.text.trim().is_empty(), "text", "must not be empty");
        v.finish()?;
        let reply_to = match b.reply_to_message_id {
            Some(m) => Some(
                store::message(&self.db, who.org_id, m)
                    .await
                    .map_err(db_err)?
                    .and_then(|m| m.provider_message_id)
                    .ok_or_else(|| {
                        Problem::invalid_field(
                            "reply_to_message_id",
                            "is not a message of this channel",
                        )
                    })?,
            ),
            None => None,
        };
        let pid = sandbox::new_message_id();
        let ev = sandbox::message_event(
            &pid,
            &b.from.handle,
            b.from.name.as_deref(),
            &b.text,
            reply_to.as_deref(),
            self.now().millis(),
        );
        self.channels.record_synthetic(c.id, &ev, None).await?;
        Ok(SimulateOut {
            provider_message_id: pid,
        })
    }

    pub async fn simulate_read(
        &self,
        who: &Principal,
        id: ChannelId,
        conv: ConversationId,
    ) -> Result<(), Problem> {
        let c = self.sandbox(who, id).await?;
        let row = self.conv_row(who.org_id, conv).await?;
        if row.channel_id != c.id {
            return Err(Problem::invalid_field(
                "conversation_id",
                "is not a conversation of this channel",
            ));
        }
        let now = self.now().millis();
        for pid in store::unread_outbound(&self.db, conv)
            .await
            .map_err(db_err)?
        {
            let ev =
                sandbox::status_event(&pid, wamage_channels::provider::DeliveryStatus::Read, now);
            self.channels.record_synthetic(c.id, &ev, None).await?;
        }
        Ok(())
    }

    // ---- canned responses -----------------------------------------------------------------

    fn canned_out(r: store::CannedRow) -> CannedOut {
        CannedOut {
            id: r.id,
            shortcut: r.shortcut,
            title: r.title,
            body: r.body,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    pub async fn canned(
        &self,
        who: &Principal,
        q: Option<&str>,
    ) -> Result<Vec<CannedOut>, Problem> {
        let q = q
            .map(|s| s.trim().trim_start_matches('/'))
            .filter(|s| !s.is_empty());
        Ok(store::canned_list(&self.db, who.org_id, q)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(Self::canned_out)
            .collect())
    }

    fn check_canned(
        v: &mut Validator,
        shortcut: Option<&str>,
        title: Option<&str>,
        body: Option<&str>,
    ) {
        if let Some(s) = shortcut {
            v.check(
                valid_shortcut(s),
                "shortcut",
                "must be 1 to 32 lower-case letters, digits, _ or -",
            );
        }
        if let Some(t) = title {
            v.length("title", t.trim(), 1, 100);
        }
        if let Some(b) = body {
            v.length("body", b.trim(), 1, crate::model::TEXT_MAX);
        }
    }

    fn shortcut_taken(e: sqlx::Error) -> Problem {
        if is_unique_violation(&e) {
            Problem::conflict(
                "shortcut_taken",
                "Another canned response has this shortcut",
            )
            .with_field("shortcut", "is already used")
        } else {
            db_err(e)
        }
    }

    pub async fn create_canned(&self, who: &Principal, b: &CannedIn) -> Result<CannedOut, Problem> {
        let mut v = Validator::new();
        Self::check_canned(&mut v, Some(&b.shortcut), Some(&b.title), Some(&b.body));
        v.finish()?;
        let now = self.now();
        let row = store::CannedRow {
            id: CannedId::new(),
            org_id: who.org_id,
            shortcut: b.shortcut.clone(),
            title: b.title.trim().to_owned(),
            body: b.body.trim().to_owned(),
            created_at: now,
            updated_at: now,
        };
        store::canned_upsert(&self.db, &row, Some(who.user_id), true)
            .await
            .map_err(Self::shortcut_taken)?;
        Ok(Self::canned_out(row))
    }

    pub async fn update_canned(
        &self,
        who: &Principal,
        id: CannedId,
        b: &CannedPatch,
    ) -> Result<CannedOut, Problem> {
        let mut v = Validator::new();
        Self::check_canned(
            &mut v,
            b.shortcut.as_deref(),
            b.title.as_deref(),
            b.body.as_deref(),
        );
        v.finish()?;
        let mut row = store::canned(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("canned response"))?;
        if let Some(s) = &b.shortcut {
            row.shortcut = s.clone();
        }
        if let Some(t) = &b.title {
            row.title = t.trim().to_owned();
        }
        if let Some(x) = &b.body {
            row.body = x.trim().to_owned();
        }
        row.updated_at = self.now();
        store::canned_upsert(&self.db, &row, None, false)
            .await
            .map_err(Self::shortcut_taken)?;
        Ok(Self::canned_out(row))
    }

    pub async fn delete_canned(&self, who: &Principal, id: CannedId) -> Result<(), Problem> {
        if who.role < Role::Agent {
            return Err(Problem::forbidden("Not allowed"));
        }
        let n = store::canned_delete(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?;
        if n == 0 {
            return Err(Problem::not_found("canned response"));
        }
        Ok(())
    }
}

/// The kind of media a MIME type is.
pub(crate) fn media_kind_of(mime: &str) -> &'static str {
    if mime == "image/webp" {
        "sticker"
    } else if mime.starts_with("image/") {
        "image"
    } else if mime.starts_with("video/") {
        "video"
    } else if mime == "audio/ogg" || mime == "audio/opus" {
        "voice"
    } else if mime.starts_with("audio/") {
        "audio"
    } else {
        "document"
    }
}

pub(crate) fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A list preview of a message.
pub(crate) fn message_preview(m: &MessageRow) -> String {
    if let Some(t) = m.text.as_deref().filter(|t| !t.trim().is_empty()) {
        return preview(t);
    }
    match m.kind.as_str() {
        "image" => "📷 Photo".to_owned(),
        "video" => "🎬 Video".to_owned(),
        "audio" => "🎵 Audio".to_owned(),
        "voice" => "🎤 Voice message".to_owned(),
        "document" => "📄 Document".to_owned(),
        "sticker" => "Sticker".to_owned(),
        "location" => "📍 Location".to_owned(),
        "contacts" => "👤 Contact".to_owned(),
        "template" => "Template message".to_owned(),
        "unsupported" => "Unsupported message".to_owned(),
        other => other.to_owned(),
    }
}
