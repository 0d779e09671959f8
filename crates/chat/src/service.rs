//! Chat use cases. Each write checks the caller's access and every field first, changes the
//! rows in one transaction, and only after the commit publishes its event to the channel's
//! room (`chat:{id}`) — one event per change whatever the member count; the gateway encodes
//! the frame once. Events carry the message or channel in its *neutral* view (no caller:
//! `read_by` empty, reactions with `me: false`), the REST answers the caller's view.
//!
//! Access, in one place ([`Chat::readable`], [`Chat::writable`]): another organisation's ids
//! are 404; a private channel or DM the caller is not in is 403 `not_a_member`; a public
//! channel can be read (and its room joined) by any member of the organisation, but only its
//! members post, react, pin or mark read. A channel the caller locked answers 403
//! `chat_locked` to message reads without a valid `X-Chat-Unlock` token.

mod attachments;
mod expire;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wamage_identity::{Identity, MemberCard, Principal, Role};
use wamage_kernel::{Clock, OrgId, Problem, Timestamp, UserId, validate::Validator};
use wamage_platform::{
    Db,
    blob::SharedBlobStore,
    bus::SharedBus,
    cache::{self, SharedCache},
    db::is_unique_violation,
    jobs::JobQueue,
};
use wamage_realtime::{Realtime, Room, event_for_rooms};

pub use self::{
    attachments::{ATTACHMENT_MAX, Upload},
    expire::{EXPIRE_JOB, ExpireJob},
};
use crate::{
    http::{
        AttachmentOut, AuthorOut, ChannelIn, ChannelMemberOut, ChannelOut, ChannelPatch, ForwardIn,
        ForwardedFrom, HistoryQuery, MemberPreview, MessageIn, MessageOut, MessagePage, QuoteOut,
        ReactionOut, ThreadOut, ThreadQuery, UnlockOut,
    },
    model::{
        self, ChannelId, ChannelKind, ChatMessageId, Disappearing, MemberRole, TEXT_MAX, TOPIC_MAX,
    },
    store::{self, ChannelRow, ChannelView, MemberRow, MessageRow, Window},
};

pub const SOURCE: &str = "/wamage/chat";
/// Room kind of channels in the realtime gateway.
pub const ROOM_KIND: &str = "chat";
const PREVIEW_MEMBERS: i64 = 5;
const MAX_DM_OTHERS: usize = 8;
const MAX_ADD_MEMBERS: usize = 1000;
const MAX_ATTACHMENTS: usize = 10;
const MAX_EMOJI_KINDS: i64 = 50;
const UNLOCK_TTL: Duration = Duration::from_secs(600);
/// Wrong passwords allowed per user in [`LOCK_WINDOW`] before lock actions answer 429.
const LOCK_ATTEMPTS: i64 = 10;
const LOCK_WINDOW: Duration = Duration::from_secs(900);

/// The chat service, shared by the HTTP handlers, the room policy and the expiry job.
pub struct Chat {
    db: Db,
    cache: SharedCache,
    bus: SharedBus,
    blobs: SharedBlobStore,
    jobs: JobQueue,
    clock: Clock,
    identity: Arc<Identity>,
    realtime: Arc<Realtime>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat").finish_non_exhaustive()
    }
}

/// Everything the chat service needs.
pub struct ChatDeps {
    pub db: Db,
    pub cache: SharedCache,
    pub bus: SharedBus,
    /// Where attachments and thumbnails are kept.
    pub blobs: SharedBlobStore,
    /// Runs the expiry of disappearing messages.
    pub jobs: JobQueue,
    pub clock: Clock,
    /// Member names and avatars, password re-checks.
    pub identity: Arc<Identity>,
    /// Takes sockets out of a channel's room when their user leaves it.
    pub realtime: Arc<Realtime>,
}

pub(crate) fn db_err(e: sqlx::Error) -> Problem {
    Problem::internal(format_args!("database: {e}"))
}

fn not_a_member() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "not_a_member",
        "You are not a member of this channel",
    )
}

fn chat_locked() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        "chat_locked",
        "This chat is locked: unlock it with your password first",
    )
}

fn archived() -> Problem {
    Problem::conflict("archived", "This channel is archived")
}

fn message_deleted() -> Problem {
    Problem::conflict("message_deleted", "This message was deleted")
}

pub(crate) fn room(id: ChannelId) -> Vec<Room> {
    Room::new(ROOM_KIND, id.as_uuid()).into_iter().collect()
}

/// Member names and avatars of an organisation, for one request.
pub(crate) struct Directory(HashMap<UserId, MemberCard>);

impl Directory {
    fn name(&self, id: UserId) -> String {
        self.0
            .get(&id)
            .map_or_else(|| "Former member".to_owned(), |m| m.name.clone())
    }

    fn avatar(&self, id: UserId) -> Option<String> {
        self.0.get(&id).and_then(|m| m.avatar_url.clone())
    }

    fn contains(&self, id: UserId) -> bool {
        self.0.contains_key(&id)
    }

    fn preview(&self, id: UserId) -> MemberPreview {
        MemberPreview {
            user_id: id,
            name: self.name(id),
            avatar_url: self.avatar(id),
        }
    }
}

/// Who reads: a user (their view) or nobody (the neutral view events carry).
#[derive(Clone, Copy)]
pub(crate) struct Viewer(Option<UserId>);

/// Read markers of a DM's members, for `read_by`.
type ReadState = HashMap<ChannelId, Vec<MemberRow>>;

/// What rendering reads besides the message rows: everything for stored messages; for one
/// written just now, only its files when it has some (nobody can have reacted to it, viewed
/// its files or read past it yet).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookups {
    Stored,
    Fresh { attachments: bool },
}

fn is_admin(who: &Principal, member: Option<&MemberRow>) -> bool {
    who.role >= Role::Admin || member.is_some_and(|m| m.role == "admin")
}

/// At or after, in (created_at, id) order.
fn read_past(m: &MemberRow, at: Timestamp, id: ChatMessageId) -> bool {
    match (m.last_read_at, m.last_read_id) {
        (Some(t), Some(i)) => t > at || (t == at && i >= id),
        _ => false,
    }
}

fn limit_of(v: &mut Validator, limit: Option<u32>, default: u32) -> i64 {
    let l = limit.unwrap_or(default);
    v.check((1..=100).contains(&l), "limit", "must be between 1 and 100");
    i64::from(l.clamp(1, 100))
}

/// Checks a message text: at most 8000 characters, empty only when `may_be_empty`.
fn check_text(v: &mut Validator, text: &str, may_be_empty: bool) {
    if text.chars().count() > TEXT_MAX {
        v.error("text", format!("must be at most {TEXT_MAX} characters"));
    } else if text.trim().is_empty() && !may_be_empty {
        v.error("text", "must not be empty");
    }
}

#[derive(Serialize, Deserialize)]
struct UnlockGrant {
    user: UserId,
    channel: ChannelId,
}

impl Chat {
    pub fn new(deps: ChatDeps) -> Arc<Self> {
        Arc::new(Self {
            db: deps.db,
            cache: deps.cache,
            bus: deps.bus,
            blobs: deps.blobs,
            jobs: deps.jobs,
            clock: deps.clock,
            identity: deps.identity,
            realtime: deps.realtime,
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn directory(&self, org: OrgId) -> Result<Directory, Problem> {
        let cards = self.identity.member_cards(org).await?;
        Ok(Directory(
            cards.iter().map(|c| (c.user_id, c.clone())).collect(),
        ))
    }

    /// Publishes after a commit; a failure is logged (the change itself is done, and live
    /// clients reload over REST when they reconnect).
    async fn publish(&self, org: OrgId, type_: &str, rooms: &[Room], data: impl Serialize) {
        let event = event_for_rooms(SOURCE, type_, org, self.now(), rooms, data);
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(error = %e, event = type_, "failed to publish a chat event");
        }
    }

    // ---- access ------------------------------------------------------------------------

    async fn channel_row(&self, org: OrgId, id: ChannelId) -> Result<ChannelRow, Problem> {
        store::channel(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("channel"))
    }

    async fn member_row(
        &self,
        channel: ChannelId,
        user: UserId,
    ) -> Result<Option<MemberRow>, Problem> {
        store::member(&self.db, channel, user).await.map_err(db_err)
    }

    /// A channel the caller may read: a member (its lock checked against `unlock`), or any
    /// member of the organisation for a public channel.
    async fn readable(
        &self,
        who: &Principal,
        id: ChannelId,
        unlock: &[String],
    ) -> Result<(ChannelRow, Option<MemberRow>), Problem> {
        let channel = self.channel_row(who.org_id, id).await?;
        let member = self.member_row(id, who.user_id).await?;
        match &member {
            Some(m) if m.locked => {
                if !self.unlocked(who, id, unlock).await {
                    return Err(chat_locked());
                }
            }
            Some(_) => {}
            None if ChannelKind::from_db(&channel.kind) == ChannelKind::Public => {}
            None => return Err(not_a_member()),
        }
        Ok((channel, member))
    }

    /// A channel the caller may post in: a member, not archived.
    async fn writable(
        &self,
        who: &Principal,
        id: ChannelId,
    ) -> Result<(ChannelRow, MemberRow), Problem> {
        let channel = self.channel_row(who.org_id, id).await?;
        let member = self
            .member_row(id, who.user_id)
            .await?
            .ok_or_else(not_a_member)?;
        if channel.archived {
            return Err(archived());
        }
        Ok((channel, member))
    }

    /// A message of the caller's organisation with its channel, which the caller may read.
    async fn readable_message(
        &self,
        who: &Principal,
        id: ChatMessageId,
        unlock: &[String],
    ) -> Result<(MessageRow, ChannelRow, Option<MemberRow>), Problem> {
        let msg = store::message(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("message"))?;
        let (channel, member) = self.readable(who, msg.channel_id, unlock).await?;
        Ok((msg, channel, member))
    }

    /// Whether one of `tokens` unlocks `channel` for the caller.
    async fn unlocked(&self, who: &Principal, channel: ChannelId, tokens: &[String]) -> bool {
        for t in tokens {
            let key = unlock_key(who.org_id, t);
            if let Ok(Some(g)) = cache::get_json::<UnlockGrant>(self.cache.as_ref(), &key).await
                && g.user == who.user_id
                && g.channel == channel
            {
                return true;
            }
        }
        false
    }

    // ---- views -------------------------------------------------------------------------

    /// Renders messages for `viewer` (quotes, reactions, attachments, `read_by` from `reads`).
    async fn render(
        &self,
        org: OrgId,
        viewer: Viewer,
        rows: Vec<MessageRow>,
        dir: &Directory,
        reads: &ReadState,
        lookups: Lookups,
    ) -> Result<Vec<MessageOut>, Problem> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<ChatMessageId> = rows.iter().map(|m| m.id).collect();
        let quote_ids: Vec<ChatMessageId> = rows
            .iter()
            .filter_map(|m| m.quote_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let quoted: HashMap<ChatMessageId, MessageRow> =
            store::messages_by_ids(&self.db, org, &quote_ids)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|m| (m.id, m))
                .collect();
        let mut reactions: HashMap<ChatMessageId, Vec<store::ReactionRow>> = HashMap::new();
        if lookups == Lookups::Stored {
            for r in store::reactions(&self.db, &ids).await.map_err(db_err)? {
                reactions.entry(r.message_id).or_default().push(r);
            }
        }
        let atts = match lookups {
            Lookups::Stored | Lookups::Fresh { attachments: true } => {
                store::attachments_of(&self.db, &ids)
                    .await
                    .map_err(db_err)?
            }
            Lookups::Fresh { attachments: false } => Vec::new(),
        };
        let viewed: HashSet<_> = match viewer.0 {
            Some(u) if lookups == Lookups::Stored => {
                let once: Vec<_> = atts.iter().filter(|a| a.view_once).map(|a| a.id).collect();
                store::viewed_by(&self.db, u, &once)
                    .await
                    .map_err(db_err)?
                    .into_iter()
                    .collect()
            }
            _ => HashSet::new(),
        };
        let mut by_msg: HashMap<ChatMessageId, Vec<AttachmentOut>> = HashMap::new();
        for a in atts {
            if let Some(m) = a.message_id {
                let seen = viewed.contains(&a.id);
                by_msg.entry(m).or_default().push(attachments::out(a, seen));
            }
        }
        let now = self.now();
        Ok(rows
            .into_iter()
            .map(|m| {
                let quote = m.quote_id.map(|q| match quoted.get(&q) {
                    Some(qm) if qm.expires_at.is_none_or(|e| e > now) => QuoteOut {
                        id: q,
                        author_name: dir.name(qm.author_id),
                        text: qm.text.clone(),
                        deleted: qm.deleted,
                    },
                    _ => QuoteOut {
                        id: q,
                        author_name: String::new(),
                        text: String::new(),
                        deleted: true,
                    },
                });
                let reactions =
                    group_reactions(reactions.remove(&m.id).unwrap_or_default(), viewer);
                let read_by = reads
                    .get(&m.channel_id)
                    .map(|members| {
                        members
                            .iter()
                            .filter(|r| {
                                r.user_id != m.author_id && read_past(r, m.created_at, m.id)
                            })
                            .map(|r| r.user_id)
                            .collect()
                    })
                    .unwrap_or_default();
                let forwarded_from = m
                    .forwarded_from
                    .and_then(|j| serde_json::from_value::<ForwardedFrom>(j.0).ok());
                MessageOut {
                    id: m.id,
                    channel_id: m.channel_id,
                    author: AuthorOut {
                        id: m.author_id,
                        name: dir.name(m.author_id),
                        avatar_url: dir.avatar(m.author_id),
                    },
                    text: m.text,
                    mentions: m.mentions.0,
                    mentions_channel: m.mentions_channel,
                    thread_id: m.thread_id,
                    reply_count: m.reply_count,
                    last_reply_at: m.last_reply_at,
                    quote,
                    forwarded_from,
                    attachments: by_msg.remove(&m.id).unwrap_or_default(),
                    reactions,
                    pinned: m.pinned_at.is_some(),
                    edited_at: m.edited_at,
                    deleted: m.deleted,
                    created_at: m.created_at,
                    expires_at: m.expires_at,
                    read_by,
                }
            })
            .collect())
    }

    /// Read markers for `read_by`, when the channel is a DM or group DM.
    async fn read_state(&self, channel: &ChannelRow, viewer: Viewer) -> Result<ReadState, Problem> {
        let mut out = ReadState::new();
        if viewer.0.is_some() && ChannelKind::from_db(&channel.kind).is_dm() {
            out.insert(
                channel.id,
                store::members(&self.db, channel.id).await.map_err(db_err)?,
            );
        }
        Ok(out)
    }

    async fn render_one(
        &self,
        org: OrgId,
        viewer: Viewer,
        row: MessageRow,
        channel: &ChannelRow,
        dir: &Directory,
    ) -> Result<MessageOut, Problem> {
        let reads = self.read_state(channel, viewer).await?;
        self.render(org, viewer, vec![row], dir, &reads, Lookups::Stored)
            .await?
            .pop()
            .ok_or_else(|| Problem::internal("rendering a message gave nothing"))
    }

    fn channel_out(
        v: ChannelView,
        preview: Vec<MemberPreview>,
        last_message: Option<MessageOut>,
    ) -> ChannelOut {
        let c = v.channel;
        let locked = v.locked.unwrap_or(false);
        ChannelOut {
            id: c.id,
            kind: ChannelKind::from_db(&c.kind),
            name: c.name,
            topic: c.topic,
            archived: c.archived,
            disappearing: Disappearing::from_db(&c.disappearing),
            member_count: c.member_count,
            members_preview: preview,
            my_role: v.my_role.as_deref().map(MemberRole::from_db),
            joined: v.my_role.is_some(),
            unread_count: v.unread_count,
            mention_count: v.mention_count,
            last_read_id: v.last_read_id,
            last_message: if locked {
                None
            } else {
                last_message.map(Box::new)
            },
            last_activity_at: c.last_activity_at,
            locked,
            created_at: c.created_at,
        }
    }

    /// One channel as `viewer` sees it (the neutral view for `Viewer(None)`).
    async fn channel_view(
        &self,
        org: OrgId,
        viewer: Viewer,
        id: ChannelId,
        dir: &Directory,
    ) -> Result<ChannelOut, Problem> {
        let now = self.now();
        let as_user = viewer.0.unwrap_or(UserId(uuid::Uuid::nil()));
        let v = store::channel_view(&self.db, org, as_user, now, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("channel"))?;
        let members = store::members(&self.db, id).await.map_err(db_err)?;
        let preview = members
            .iter()
            .filter(|m| Some(m.user_id) != viewer.0)
            .take(PREVIEW_MEMBERS as usize)
            .map(|m| dir.preview(m.user_id))
            .collect();
        let last = store::history(&self.db, id, now, Window::Latest, 1)
            .await
            .map_err(db_err)?;
        let last = match last.into_iter().next() {
            Some(row) if !v.locked.unwrap_or(false) => {
                let reads = if viewer.0.is_some() && ChannelKind::from_db(&v.channel.kind).is_dm() {
                    HashMap::from([(id, members)])
                } else {
                    ReadState::new()
                };
                self.render(org, viewer, vec![row], dir, &reads, Lookups::Stored)
                    .await?
                    .pop()
            }
            _ => None,
        };
        Ok(Self::channel_out(v, preview, last))
    }

    // ---- channels ----------------------------------------------------------------------

    /// The caller's channels and DMs, most recently active first.
    pub async fn channels(
        &self,
        who: &Principal,
        include_archived: bool,
    ) -> Result<Vec<ChannelOut>, Problem> {
        let now = self.now();
        let dir = self.directory(who.org_id).await?;
        let views =
            store::member_channels(&self.db, who.org_id, who.user_id, now, include_archived)
                .await
                .map_err(db_err)?;
        let mut previews = self.previews(who, &dir).await?;
        let locked: HashSet<ChannelId> = views
            .iter()
            .filter(|v| v.locked == Some(true))
            .map(|v| v.channel.id)
            .collect();
        let lasts: Vec<MessageRow> = store::last_messages(&self.db, who.org_id, who.user_id, now)
            .await
            .map_err(db_err)?
            .into_iter()
            .filter(|m| !locked.contains(&m.channel_id))
            .collect();
        let mut reads = ReadState::new();
        for r in store::dm_members(&self.db, who.org_id, who.user_id)
            .await
            .map_err(db_err)?
        {
            reads.entry(r.channel_id).or_default().push(r.member);
        }
        let mut lasts: HashMap<ChannelId, MessageOut> = self
            .render(
                who.org_id,
                Viewer(Some(who.user_id)),
                lasts,
                &dir,
                &reads,
                Lookups::Stored,
            )
            .await?
            .into_iter()
            .map(|m| (m.channel_id, m))
            .collect();
        Ok(views
            .into_iter()
            .map(|v| {
                let id = v.channel.id;
                Self::channel_out(
                    v,
                    previews.remove(&id).unwrap_or_default(),
                    lasts.remove(&id),
                )
            })
            .collect())
    }

    async fn previews(
        &self,
        who: &Principal,
        dir: &Directory,
    ) -> Result<HashMap<ChannelId, Vec<MemberPreview>>, Problem> {
        let mut out: HashMap<ChannelId, Vec<MemberPreview>> = HashMap::new();
        for (c, u) in store::previews_for(&self.db, who.org_id, who.user_id, PREVIEW_MEMBERS)
            .await
            .map_err(db_err)?
        {
            out.entry(c).or_default().push(dir.preview(u));
        }
        Ok(out)
    }

    /// Public channels of the organisation, joined or not, whose name contains `q`.
    pub async fn browse(
        &self,
        who: &Principal,
        q: Option<&str>,
    ) -> Result<Vec<ChannelOut>, Problem> {
        let needle = q.map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty());
        if needle.as_ref().is_some_and(|n| n.chars().count() > 80) {
            return Err(Problem::invalid_field("q", "must be at most 80 characters"));
        }
        let dir = self.directory(who.org_id).await?;
        let views = store::public_channels(
            &self.db,
            who.org_id,
            who.user_id,
            self.now(),
            needle.as_deref(),
        )
        .await
        .map_err(db_err)?;
        let mut previews = self.previews(who, &dir).await?;
        Ok(views
            .into_iter()
            .map(|v| {
                let id = v.channel.id;
                Self::channel_out(v, previews.remove(&id).unwrap_or_default(), None)
            })
            .collect())
    }

    pub async fn channel(&self, who: &Principal, id: ChannelId) -> Result<ChannelOut, Problem> {
        let channel = self.channel_row(who.org_id, id).await?;
        let member = self.member_row(id, who.user_id).await?;
        if member.is_none() && ChannelKind::from_db(&channel.kind) != ChannelKind::Public {
            return Err(not_a_member());
        }
        let dir = self.directory(who.org_id).await?;
        self.channel_view(who.org_id, Viewer(Some(who.user_id)), id, &dir)
            .await
    }

    /// Checks user ids named in `field`: distinct members of the organisation.
    fn check_users(v: &mut Validator, dir: &Directory, field: &str, ids: &[UserId], max: usize) {
        if ids.len() > max {
            v.error(field, format!("must list at most {max} users"));
            return;
        }
        let mut seen = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            if !dir.contains(*id) {
                v.error(
                    &format!("{field}[{i}]"),
                    "is not a member of this organisation",
                );
            } else if !seen.insert(*id) {
                v.error(&format!("{field}[{i}]"), "is listed twice");
            }
        }
    }

    pub async fn create_channel(
        &self,
        who: &Principal,
        b: &ChannelIn,
    ) -> Result<ChannelOut, Problem> {
        let dir = self.directory(who.org_id).await?;
        let mut v = Validator::new();
        if b.kind.is_dm() {
            v.error(
                "kind",
                "must be public or private (open DMs with POST /api/v1/chat/dms)",
            );
        }
        let name = match model::parse_channel_name(&b.name) {
            Ok(n) => Some(n),
            Err(m) => {
                v.error("name", m);
                None
            }
        };
        let topic = b.topic.as_deref().map(str::trim).filter(|t| !t.is_empty());
        if let Some(t) = topic {
            v.length("topic", t, 0, TOPIC_MAX);
        }
        let members = b.member_ids.clone().unwrap_or_default();
        Self::check_users(&mut v, &dir, "member_ids", &members, MAX_ADD_MEMBERS);
        v.finish()?;
        let (name, key) = name.ok_or_else(|| Problem::internal("name checked above"))?;
        let now = self.now();
        let id = ChannelId::new();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let inserted = store::insert_channel(
            &mut tx,
            who.org_id,
            &store::NewChannel {
                id,
                kind: b.kind.as_str(),
                name: Some(&name),
                name_key: Some(&key),
                topic,
                dm_key: None,
                created_by: who.user_id,
                now,
            },
        )
        .await;
        if let Err(e) = inserted {
            return Err(if is_unique_violation(&e) {
                Problem::conflict("name_taken", "A channel with this name exists")
                    .with_field("name", "is already used by another channel")
            } else {
                db_err(e)
            });
        }
        store::add_member(&mut tx, who.org_id, id, who.user_id, "admin", now)
            .await
            .map_err(db_err)?;
        for m in &members {
            store::add_member(&mut tx, who.org_id, id, *m, "member", now)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        let mut rooms: Vec<Room> = std::iter::once(who.user_id)
            .chain(members.iter().copied())
            .map(Room::user)
            .collect();
        if b.kind == ChannelKind::Public {
            rooms.push(Room::org(who.org_id));
        }
        self.channel_event(who.org_id, "wamage.chat.channel.created", id, &rooms, &dir)
            .await;
        self.channel_view(who.org_id, Viewer(Some(who.user_id)), id, &dir)
            .await
    }

    async fn channel_event(
        &self,
        org: OrgId,
        type_: &str,
        id: ChannelId,
        rooms: &[Room],
        dir: &Directory,
    ) {
        match self.channel_view(org, Viewer(None), id, dir).await {
            Ok(c) => {
                self.publish(org, type_, rooms, json!({ "channel": c }))
                    .await
            }
            Err(e) => tracing::warn!(code = e.code, "failed to render a channel event"),
        }
    }

    /// Opens the DM or group DM of the caller and `user_ids`: the existing one (false) or a
    /// new one (true).
    pub async fn open_dm(
        &self,
        who: &Principal,
        user_ids: &[UserId],
    ) -> Result<(bool, ChannelOut), Problem> {
        let dir = self.directory(who.org_id).await?;
        let others: Vec<UserId> = user_ids
            .iter()
            .copied()
            .filter(|u| *u != who.user_id)
            .collect();
        let mut v = Validator::new();
        if others.is_empty() {
            v.error("user_ids", "must name at least one other member");
        }
        Self::check_users(&mut v, &dir, "user_ids", &others, MAX_DM_OTHERS);
        v.finish()?;
        let mut all: Vec<UserId> = others.clone();
        all.push(who.user_id);
        all.sort();
        let key = all
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let kind = if others.len() == 1 {
            ChannelKind::Dm
        } else {
            ChannelKind::GroupDm
        };
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        if let Some(id) = store::dm_by_key(&mut tx, who.org_id, &key)
            .await
            .map_err(db_err)?
        {
            drop(tx);
            let out = self
                .channel_view(who.org_id, Viewer(Some(who.user_id)), id, &dir)
                .await?;
            return Ok((false, out));
        }
        let id = ChannelId::new();
        let inserted = store::insert_channel(
            &mut tx,
            who.org_id,
            &store::NewChannel {
                id,
                kind: kind.as_str(),
                name: None,
                name_key: None,
                topic: None,
                dm_key: Some(&key),
                created_by: who.user_id,
                now,
            },
        )
        .await;
        match inserted {
            Ok(()) => {}
            // Both people opened it at once: the other request made it.
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                let mut tx = self.db.begin().await.map_err(db_err)?;
                let id = store::dm_by_key(&mut tx, who.org_id, &key)
                    .await
                    .map_err(db_err)?
                    .ok_or_else(|| Problem::internal("dm vanished after a unique violation"))?;
                drop(tx);
                let out = self
                    .channel_view(who.org_id, Viewer(Some(who.user_id)), id, &dir)
                    .await?;
                return Ok((false, out));
            }
            Err(e) => return Err(db_err(e)),
        }
        for u in &all {
            store::add_member(&mut tx, who.org_id, id, *u, "member", now)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        let rooms: Vec<Room> = all.iter().copied().map(Room::user).collect();
        self.channel_event(who.org_id, "wamage.chat.channel.created", id, &rooms, &dir)
            .await;
        let out = self
            .channel_view(who.org_id, Viewer(Some(who.user_id)), id, &dir)
            .await?;
        Ok((true, out))
    }

    pub async fn update_channel(
        &self,
        who: &Principal,
        id: ChannelId,
        b: &ChannelPatch,
    ) -> Result<ChannelOut, Problem> {
        let channel = self.channel_row(who.org_id, id).await?;
        let member = self.member_row(id, who.user_id).await?;
        let kind = ChannelKind::from_db(&channel.kind);
        if kind.is_dm() {
            if member.is_none() {
                return Err(not_a_member());
            }
        } else if !is_admin(who, member.as_ref()) {
            if member.is_none() && kind != ChannelKind::Public {
                return Err(not_a_member());
            }
            return Err(Problem::forbidden(
                "Only a channel admin or an organisation admin may change this channel",
            ));
        }
        let mut v = Validator::new();
        let mut name = channel.name.clone();
        let mut key = name.as_deref().map(str::to_lowercase);
        let mut topic = channel.topic.clone();
        if kind.is_dm() {
            for (field, given) in [
                ("name", b.name.is_some()),
                ("topic", b.topic.is_some()),
                ("archived", b.archived.is_some()),
            ] {
                if given {
                    v.error(field, "cannot be changed on a direct message");
                }
            }
        } else {
            if let Some(n) = &b.name {
                match model::parse_channel_name(n) {
                    Ok((n, k)) => {
                        name = Some(n);
                        key = Some(k);
                    }
                    Err(m) => v.error("name", m),
                }
            }
            if let Some(t) = &b.topic {
                let t = t.as_deref().map(str::trim).filter(|t| !t.is_empty());
                if let Some(t) = t {
                    v.length("topic", t, 0, TOPIC_MAX);
                }
                topic = t.map(str::to_owned);
            }
        }
        v.finish()?;
        let archive = b.archived.unwrap_or(channel.archived);
        let disappearing = b
            .disappearing
            .unwrap_or_else(|| Disappearing::from_db(&channel.disappearing));
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let res = store::update_channel(
            &mut tx,
            who.org_id,
            id,
            &store::ChannelChange {
                name: name.as_deref(),
                name_key: key.as_deref(),
                topic: topic.as_deref(),
                archived: archive,
                disappearing: disappearing.as_str(),
            },
            self.now(),
        )
        .await;
        if let Err(e) = res {
            return Err(if is_unique_violation(&e) {
                Problem::conflict("name_taken", "A channel with this name exists")
                    .with_field("name", "is already used by another channel")
            } else {
                db_err(e)
            });
        }
        tx.commit().await.map_err(db_err)?;
        let dir = self.directory(who.org_id).await?;
        let type_ = if archive && !channel.archived {
            "wamage.chat.channel.archived"
        } else {
            "wamage.chat.channel.updated"
        };
        self.channel_event(who.org_id, type_, id, &room(id), &dir)
            .await;
        self.channel_view(who.org_id, Viewer(Some(who.user_id)), id, &dir)
            .await
    }

    // ---- members -----------------------------------------------------------------------

    pub async fn members(
        &self,
        who: &Principal,
        id: ChannelId,
    ) -> Result<Vec<ChannelMemberOut>, Problem> {
        match self.readable(who, id, &[]).await {
            // The member list is not message content: a locked channel still lists it.
            Err(e) if e.code != "chat_locked" => return Err(e),
            _ => {}
        }
        self.member_list(who.org_id, id).await
    }

    async fn member_list(
        &self,
        org: OrgId,
        id: ChannelId,
    ) -> Result<Vec<ChannelMemberOut>, Problem> {
        let dir = self.directory(org).await?;
        let rows = store::members(&self.db, id).await.map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|m| ChannelMemberOut {
                user_id: m.user_id,
                name: dir.name(m.user_id),
                avatar_url: dir.avatar(m.user_id),
                role: MemberRole::from_db(&m.role),
                joined_at: m.joined_at,
            })
            .collect())
    }

    pub async fn add_members(
        &self,
        who: &Principal,
        id: ChannelId,
        user_ids: &[UserId],
        role: Option<MemberRole>,
    ) -> Result<Vec<ChannelMemberOut>, Problem> {
        let channel = self.channel_row(who.org_id, id).await?;
        let member = self.member_row(id, who.user_id).await?;
        if ChannelKind::from_db(&channel.kind).is_dm() {
            return Err(Problem::conflict(
                "dm_members_fixed",
                "The members of a DM are fixed: open a new DM with everyone instead",
            ));
        }
        if !is_admin(who, member.as_ref()) {
            return Err(Problem::forbidden(
                "Only a channel admin or an organisation admin may add members",
            ));
        }
        if channel.archived {
            return Err(archived());
        }
        let dir = self.directory(who.org_id).await?;
        let mut v = Validator::new();
        if user_ids.is_empty() {
            v.error("user_ids", "must name at least one member");
        }
        Self::check_users(&mut v, &dir, "user_ids", user_ids, MAX_ADD_MEMBERS);
        v.finish()?;
        let now = self.now();
        let role_str = role.unwrap_or(MemberRole::Member).as_str();
        let mut added = Vec::new();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        for u in user_ids {
            if store::add_member(&mut tx, who.org_id, id, *u, role_str, now)
                .await
                .map_err(db_err)?
            {
                added.push(*u);
            } else if role.is_some() {
                store::set_member_role(&mut tx, id, *u, role_str)
                    .await
                    .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        for u in &added {
            self.member_event(who.org_id, "wamage.chat.member.added", id, *u)
                .await;
        }
        self.member_list(who.org_id, id).await
    }

    async fn member_event(&self, org: OrgId, type_: &str, channel: ChannelId, user: UserId) {
        let mut rooms = room(channel);
        rooms.push(Room::user(user));
        self.publish(
            org,
            type_,
            &rooms,
            json!({ "channel_id": channel, "user_id": user }),
        )
        .await;
    }

    /// Removes `user` from a channel: themselves (leaving) or, for a channel or
    /// organisation admin, anyone.
    pub async fn remove_member(
        &self,
        who: &Principal,
        id: ChannelId,
        user: UserId,
    ) -> Result<(), Problem> {
        let channel = self.channel_row(who.org_id, id).await?;
        let member = self.member_row(id, who.user_id).await?;
        if ChannelKind::from_db(&channel.kind).is_dm() {
            return Err(Problem::conflict(
                "dm_members_fixed",
                "The members of a DM are fixed",
            ));
        }
        if user == who.user_id {
            if member.is_none() {
                return Err(not_a_member());
            }
        } else if !is_admin(who, member.as_ref()) {
            return Err(Problem::forbidden(
                "Only a channel admin or an organisation admin may remove members",
            ));
        }
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let removed = store::remove_member(&mut tx, id, user)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        if !removed {
            return Err(Problem::not_found("member"));
        }
        self.member_event(who.org_id, "wamage.chat.member.removed", id, user)
            .await;
        // A public channel's room stays open to every member of the organisation.
        if ChannelKind::from_db(&channel.kind) != ChannelKind::Public
            && let Some(r) = room(id).first()
        {
            self.realtime
                .remove_user_from_room(who.org_id, user, r)
                .await;
        }
        Ok(())
    }

    pub async fn join(&self, who: &Principal, id: ChannelId) -> Result<ChannelOut, Problem> {
        let channel = self.channel_row(who.org_id, id).await?;
        if ChannelKind::from_db(&channel.kind) != ChannelKind::Public {
            if self.member_row(id, who.user_id).await?.is_none() {
                return Err(not_a_member());
            }
        } else {
            if channel.archived {
                return Err(archived());
            }
            let mut tx = self.db.begin().await.map_err(db_err)?;
            let added =
                store::add_member(&mut tx, who.org_id, id, who.user_id, "member", self.now())
                    .await
                    .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            if added {
                self.member_event(who.org_id, "wamage.chat.member.added", id, who.user_id)
                    .await;
            }
        }
        let dir = self.directory(who.org_id).await?;
        self.channel_view(who.org_id, Viewer(Some(who.user_id)), id, &dir)
            .await
    }

    pub async fn leave(&self, who: &Principal, id: ChannelId) -> Result<(), Problem> {
        self.remove_member(who, id, who.user_id).await
    }

    // ---- lock ----------------------------------------------------------------------------

    /// Re-checks the caller's password, with a per-user limit on wrong guesses.
    async fn check_password(&self, who: &Principal, password: &str) -> Result<(), Problem> {
        let key = format!("chat:{}:lock-attempts:{}", who.org_id, who.user_id);
        if let Ok(Some(n)) = cache::get_json::<i64>(self.cache.as_ref(), &key).await
            && n >= LOCK_ATTEMPTS
        {
            return Err(Problem::too_many_requests(LOCK_WINDOW.as_secs()));
        }
        if password.is_empty() || password.len() > 1024 {
            return Err(Problem::invalid_field("password", "is not your password"));
        }
        if self.identity.verify_password(who.user_id, password).await? {
            return Ok(());
        }
        if let Err(e) = self.cache.add(&key, 1, LOCK_WINDOW).await {
            tracing::warn!(error = %e, "failed to count a wrong chat-lock password");
        }
        Err(Problem::invalid_field("password", "is not your password"))
    }

    async fn lockable(&self, who: &Principal, id: ChannelId) -> Result<MemberRow, Problem> {
        self.channel_row(who.org_id, id).await?;
        self.member_row(id, who.user_id)
            .await?
            .ok_or_else(not_a_member)
    }

    /// Locks (or unlocks, `locked: false`) a channel for the caller after checking their
    /// password.
    pub async fn set_lock(
        &self,
        who: &Principal,
        id: ChannelId,
        password: &str,
        locked: bool,
    ) -> Result<ChannelOut, Problem> {
        self.lockable(who, id).await?;
        self.check_password(who, password).await?;
        store::set_locked(&self.db, id, who.user_id, locked)
            .await
            .map_err(db_err)?;
        let dir = self.directory(who.org_id).await?;
        self.channel_view(who.org_id, Viewer(Some(who.user_id)), id, &dir)
            .await
    }

    /// A token that opens a locked channel for 10 minutes (header `X-Chat-Unlock`).
    pub async fn unlock(
        &self,
        who: &Principal,
        id: ChannelId,
        password: &str,
    ) -> Result<UnlockOut, Problem> {
        self.lockable(who, id).await?;
        self.check_password(who, password).await?;
        let token = hex::encode(rand::random::<[u8; 32]>());
        cache::set_json(
            self.cache.as_ref(),
            &unlock_key(who.org_id, &token),
            &UnlockGrant {
                user: who.user_id,
                channel: id,
            },
            UNLOCK_TTL,
        )
        .await
        .map_err(Problem::internal)?;
        Ok(UnlockOut {
            unlock_token: token,
            expires_in: UNLOCK_TTL.as_secs(),
        })
    }

    // ---- messages ----------------------------------------------------------------------

    /// Resolves a message id given as a position in a channel's top-level history.
    async fn anchor(
        &self,
        who: &Principal,
        channel: ChannelId,
        id: ChatMessageId,
        field: &str,
    ) -> Result<MessageRow, Problem> {
        let m = store::message(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .filter(|m| m.channel_id == channel)
            .ok_or_else(|| Problem::invalid_field(field, "is not a message of this channel"))?;
        Ok(m)
    }

    pub async fn history(
        &self,
        who: &Principal,
        id: ChannelId,
        q: &HistoryQuery,
        unlock: &[String],
    ) -> Result<MessagePage, Problem> {
        let (channel, _) = self.readable(who, id, unlock).await?;
        let mut v = Validator::new();
        let limit = limit_of(&mut v, q.limit, 50);
        let given = [q.before.is_some(), q.after.is_some(), q.around.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if given > 1 {
            v.error("before", "give at most one of before, after and around");
        }
        v.finish()?;
        let now = self.now();
        let fetch = |w: Window, n: i64| store::history(&self.db, id, now, w, n);
        let (rows, before, after) = if let Some(a) = q.around {
            let a = self.anchor(who, id, a, "around").await?;
            // Jumping to a thread reply shows its parent.
            let a = match a.thread_id {
                Some(p) => self.anchor(who, id, p, "around").await?,
                None => a,
            };
            let half = limit / 2;
            let mut older = fetch(Window::Before(a.created_at, a.id), half + 1)
                .await
                .map_err(db_err)?;
            let more_before = older.len() as i64 > half;
            if more_before {
                older.remove(0);
            }
            // Fewer older messages than half a page: the rest of the page is newer ones.
            let take = limit - older.len() as i64;
            let mut newer = fetch(Window::From(a.created_at, a.id), take + 1)
                .await
                .map_err(db_err)?;
            let more_after = newer.len() as i64 > take;
            newer.truncate(take as usize);
            older.extend(newer);
            (older, more_before, more_after)
        } else if let Some(b) = q.before {
            let a = self.anchor(who, id, b, "before").await?;
            let mut rows = fetch(Window::Before(a.created_at, a.id), limit + 1)
                .await
                .map_err(db_err)?;
            let more = rows.len() as i64 > limit;
            if more {
                rows.remove(0);
            }
            let after = !fetch(Window::From(a.created_at, a.id), 1)
                .await
                .map_err(db_err)?
                .is_empty();
            (rows, more, after)
        } else if let Some(x) = q.after {
            let a = self.anchor(who, id, x, "after").await?;
            let mut rows = fetch(Window::After(a.created_at, a.id), limit + 1)
                .await
                .map_err(db_err)?;
            let more = rows.len() as i64 > limit;
            rows.truncate(limit as usize);
            let first = rows
                .first()
                .map_or((a.created_at, a.id), |m| (m.created_at, m.id));
            let before = !fetch(Window::Before(first.0, first.1), 1)
                .await
                .map_err(db_err)?
                .is_empty();
            (rows, before, more)
        } else {
            let mut rows = fetch(Window::Latest, limit + 1).await.map_err(db_err)?;
            let more = rows.len() as i64 > limit;
            if more {
                rows.remove(0);
            }
            (rows, more, false)
        };
        let dir = self.directory(who.org_id).await?;
        let viewer = Viewer(Some(who.user_id));
        let reads = self.read_state(&channel, viewer).await?;
        Ok(MessagePage {
            items: self
                .render(who.org_id, viewer, rows, &dir, &reads, Lookups::Stored)
                .await?,
            has_more_before: before,
            has_more_after: after,
        })
    }

    pub async fn post(
        &self,
        who: &Principal,
        id: ChannelId,
        b: &MessageIn,
    ) -> Result<MessageOut, Problem> {
        let (channel, _) = self.writable(who, id).await?;
        let attachment_ids = b.attachment_ids.clone().unwrap_or_default();
        let mut v = Validator::new();
        check_text(&mut v, &b.text, !attachment_ids.is_empty());
        if attachment_ids.len() > MAX_ATTACHMENTS {
            v.error(
                "attachment_ids",
                format!("must list at most {MAX_ATTACHMENTS} files"),
            );
        } else if attachment_ids.iter().collect::<HashSet<_>>().len() != attachment_ids.len() {
            v.error("attachment_ids", "must not list a file twice");
        }
        let mut parent = None;
        if let Some(t) = b.thread_id {
            match store::message(&self.db, who.org_id, t)
                .await
                .map_err(db_err)?
            {
                Some(p) if p.channel_id == id && p.thread_id.is_none() && !p.deleted => {
                    parent = Some(p);
                }
                Some(p) if p.channel_id == id && p.thread_id.is_some() => {
                    v.error("thread_id", "must be a top-level message, not a reply")
                }
                Some(p) if p.channel_id == id => v.error("thread_id", "was deleted"),
                _ => v.error("thread_id", "is not a message of this channel"),
            }
        }
        if let Some(qid) = b.quote_id {
            match store::message(&self.db, who.org_id, qid)
                .await
                .map_err(db_err)?
            {
                Some(q) if q.channel_id == id => {}
                _ => v.error("quote_id", "is not a message of this channel"),
            }
        }
        v.finish()?;
        let dir = self.directory(who.org_id).await?;
        let msg = self
            .insert(
                who,
                &channel,
                &dir,
                NewPost {
                    text: &b.text,
                    thread: parent.as_ref().map(|p| p.id),
                    quote: b.quote_id,
                    forwarded_from: None,
                    attachments: &attachment_ids,
                    copies: &[],
                },
            )
            .await?;
        if let Some(p) = parent {
            self.message_event(
                who.org_id,
                "wamage.chat.message.updated",
                p.id,
                &channel,
                &dir,
            )
            .await;
        }
        Ok(msg)
    }

    /// Writes a new message (checked by the caller) with its mentions, search words,
    /// attachments and expiry, publishes `chat.message.created` and returns the message as
    /// published. Its author sees the same: nobody has reacted to it, read it or opened its
    /// files yet.
    async fn insert(
        &self,
        who: &Principal,
        channel: &ChannelRow,
        dir: &Directory,
        p: NewPost<'_>,
    ) -> Result<MessageOut, Problem> {
        let now = self.now();
        let mentions = model::parse_mentions(p.text);
        let users: Vec<UserId> = mentions
            .users
            .into_iter()
            .filter(|u| dir.contains(*u))
            .collect();
        let expires_at = Disappearing::from_db(&channel.disappearing)
            .lifetime()
            .map(|d| now.plus(d));
        let id = ChatMessageId::new();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::insert_message(
            &mut tx,
            who.org_id,
            &store::NewMessage {
                id,
                channel_id: channel.id,
                author_id: who.user_id,
                text: p.text,
                mentions: &users,
                mentions_channel: mentions.channel,
                thread_id: p.thread,
                quote_id: p.quote,
                forwarded_from: p.forwarded_from,
                expires_at,
                created_at: now,
            },
        )
        .await
        .map_err(db_err)?;
        let words: Vec<String> = model::words(p.text).collect();
        store::add_search_words(&mut tx, id, &words)
            .await
            .map_err(db_err)?;
        store::insert_mentions(
            &mut tx,
            id,
            channel.id,
            who.user_id,
            &users,
            mentions.channel,
        )
        .await
        .map_err(db_err)?;
        for (i, a) in p.attachments.iter().enumerate() {
            if !store::attach(&mut tx, who.org_id, who.user_id, *a, id, i as i64)
                .await
                .map_err(db_err)?
            {
                return Err(Problem::invalid_field(
                    format!("attachment_ids[{i}]"),
                    "is not a file you uploaded and have not sent yet",
                ));
            }
        }
        for (i, source) in p.copies.iter().enumerate() {
            let position = (p.attachments.len() + i) as i64;
            store::copy_attachment(
                &mut tx,
                who.org_id,
                *source,
                crate::model::AttachmentId::new(),
                who.user_id,
                id,
                position,
                now,
            )
            .await
            .map_err(db_err)?;
        }
        match p.thread {
            Some(parent) => store::bump_thread(&mut tx, parent, now)
                .await
                .map_err(db_err)?,
            None => {
                // Your own message is read.
                store::set_read(&mut tx, channel.id, who.user_id, now, id)
                    .await
                    .map_err(db_err)?;
            }
        }
        store::touch_channel(&mut tx, channel.id, now)
            .await
            .map_err(db_err)?;
        if let Some(at) = expires_at {
            expire::schedule(&self.jobs, &mut tx, at)
                .await
                .map_err(Problem::internal)?;
        }
        tx.commit().await.map_err(db_err)?;
        // The row as written (nothing in the database adds to a new message), so the event
        // goes out without reading it back.
        let row = MessageRow {
            id,
            channel_id: channel.id,
            author_id: who.user_id,
            text: p.text.to_owned(),
            mentions: sqlx::types::Json(users),
            mentions_channel: mentions.channel,
            thread_id: p.thread,
            reply_count: 0,
            last_reply_at: None,
            quote_id: p.quote,
            forwarded_from: p.forwarded_from.cloned().map(sqlx::types::Json),
            pinned_at: None,
            edited_at: None,
            deleted: false,
            expires_at,
            created_at: now,
        };
        let fresh = Lookups::Fresh {
            attachments: !p.attachments.is_empty() || !p.copies.is_empty(),
        };
        let out = self
            .render(
                who.org_id,
                Viewer(None),
                vec![row],
                dir,
                &ReadState::new(),
                fresh,
            )
            .await?
            .pop()
            .ok_or_else(|| Problem::internal("rendering a message gave nothing"))?;
        self.publish(
            who.org_id,
            "wamage.chat.message.created",
            &room(channel.id),
            MessageEvent {
                channel_id: channel.id,
                message: &out,
            },
        )
        .await;
        Ok(out)
    }

    async fn publish_message(
        &self,
        org: OrgId,
        type_: &str,
        row: MessageRow,
        channel: &ChannelRow,
        dir: &Directory,
    ) {
        match self
            .render(
                org,
                Viewer(None),
                vec![row],
                dir,
                &ReadState::new(),
                Lookups::Stored,
            )
            .await
        {
            Ok(mut out) => {
                if let Some(m) = out.pop() {
                    self.publish(
                        org,
                        type_,
                        &room(channel.id),
                        MessageEvent {
                            channel_id: channel.id,
                            message: &m,
                        },
                    )
                    .await;
                }
            }
            Err(e) => tracing::warn!(code = e.code, "failed to render a message event"),
        }
    }

    /// After a change to a message: publishes `chat.message.updated` and returns the message
    /// as the caller sees it, from one read.
    async fn updated_message(
        &self,
        who: &Principal,
        id: ChatMessageId,
        channel: &ChannelRow,
        dir: &Directory,
    ) -> Result<MessageOut, Problem> {
        let row = store::message(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("message"))?;
        self.publish_message(
            who.org_id,
            "wamage.chat.message.updated",
            row.clone(),
            channel,
            dir,
        )
        .await;
        self.render_one(who.org_id, Viewer(Some(who.user_id)), row, channel, dir)
            .await
    }

    async fn message_event(
        &self,
        org: OrgId,
        type_: &str,
        id: ChatMessageId,
        channel: &ChannelRow,
        dir: &Directory,
    ) {
        match store::message(&self.db, org, id).await {
            Ok(Some(row)) => self.publish_message(org, type_, row, channel, dir).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "failed to read a message for its event"),
        }
    }

    pub async fn thread(
        &self,
        who: &Principal,
        id: ChatMessageId,
        q: &ThreadQuery,
        unlock: &[String],
    ) -> Result<ThreadOut, Problem> {
        let (msg, channel, _) = self.readable_message(who, id, unlock).await?;
        let mut v = Validator::new();
        let limit = limit_of(&mut v, q.limit, 50);
        v.finish()?;
        let parent = match msg.thread_id {
            Some(p) => store::message(&self.db, who.org_id, p)
                .await
                .map_err(db_err)?
                .ok_or_else(|| Problem::not_found("message"))?,
            None => msg,
        };
        let now = self.now();
        let window = match q.after {
            Some(a) => {
                let a = store::message(&self.db, who.org_id, a)
                    .await
                    .map_err(db_err)?
                    .filter(|m| m.thread_id == Some(parent.id))
                    .ok_or_else(|| {
                        Problem::invalid_field("after", "is not a reply of this thread")
                    })?;
                Window::After(a.created_at, a.id)
            }
            None => from_start(),
        };
        let mut rows = store::replies(&self.db, parent.id, now, window, limit + 1)
            .await
            .map_err(db_err)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let dir = self.directory(who.org_id).await?;
        let viewer = Viewer(Some(who.user_id));
        let reads = self.read_state(&channel, viewer).await?;
        let mut parent = self
            .render(
                who.org_id,
                viewer,
                vec![parent],
                &dir,
                &reads,
                Lookups::Stored,
            )
            .await?;
        Ok(ThreadOut {
            parent: parent
                .pop()
                .ok_or_else(|| Problem::internal("rendering a message gave nothing"))?,
            items: self
                .render(who.org_id, viewer, rows, &dir, &reads, Lookups::Stored)
                .await?,
            has_more_after: more,
        })
    }

    pub async fn edit(
        &self,
        who: &Principal,
        id: ChatMessageId,
        text: &str,
    ) -> Result<MessageOut, Problem> {
        let msg = store::message(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("message"))?;
        let (channel, _) = self.writable(who, msg.channel_id).await?;
        if msg.author_id != who.user_id {
            return Err(Problem::forbidden("Only its author may edit a message"));
        }
        if msg.deleted {
            return Err(message_deleted());
        }
        let has_files = !store::attachments_of(&self.db, &[id])
            .await
            .map_err(db_err)?
            .is_empty();
        let mut v = Validator::new();
        check_text(&mut v, text, has_files);
        v.finish()?;
        let dir = self.directory(who.org_id).await?;
        let mentions = model::parse_mentions(text);
        let users: Vec<UserId> = mentions
            .users
            .into_iter()
            .filter(|u| dir.contains(*u))
            .collect();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::set_text(&mut tx, id, text, &users, mentions.channel, self.now())
            .await
            .map_err(db_err)?;
        let words: Vec<String> = model::words(text).collect();
        store::set_search_words(&mut tx, id, &words)
            .await
            .map_err(db_err)?;
        store::clear_mentions(&mut tx, id).await.map_err(db_err)?;
        store::insert_mentions(
            &mut tx,
            id,
            channel.id,
            who.user_id,
            &users,
            mentions.channel,
        )
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.updated_message(who, id, &channel, &dir).await
    }

    /// Deletes a message: it stays as a tombstone (no text, files, reactions or pin).
    pub async fn delete(&self, who: &Principal, id: ChatMessageId) -> Result<(), Problem> {
        let msg = store::message(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("message"))?;
        let channel = self.channel_row(who.org_id, msg.channel_id).await?;
        let member = self.member_row(channel.id, who.user_id).await?;
        if member.is_none() && !is_admin(who, None) {
            return Err(not_a_member());
        }
        if msg.author_id != who.user_id && !is_admin(who, member.as_ref()) {
            return Err(Problem::forbidden(
                "Only its author or an admin may delete a message",
            ));
        }
        if msg.deleted {
            return Ok(());
        }
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::tombstone(&mut tx, id).await.map_err(db_err)?;
        let keys = store::detach_all(&mut tx, id).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.delete_blobs(&keys).await;
        let dir = self.directory(who.org_id).await?;
        self.message_event(
            who.org_id,
            "wamage.chat.message.deleted",
            id,
            &channel,
            &dir,
        )
        .await;
        Ok(())
    }

    /// Deletes the files of removed attachment rows, except those a forwarded copy still uses
    /// (a thumbnail `{key}-thumb` goes with its file).
    async fn delete_blobs(&self, keys: &[String]) {
        for k in keys {
            let file = k.strip_suffix("-thumb").unwrap_or(k);
            match store::blob_in_use(&self.db, file).await {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, key = %k, "failed to check whether a chat file is shared");
                    continue;
                }
            }
            if let Err(e) = self.blobs.delete(k).await {
                tracing::warn!(error = %e, key = %k, "failed to delete a chat file");
            }
        }
    }

    /// Forwards a message to another channel the caller may post in. The copy keeps the text
    /// and the files (sharing their blobs) and says where it came from; `text`, when given, is
    /// sent just before it as a comment.
    pub async fn forward(
        &self,
        who: &Principal,
        id: ChatMessageId,
        b: &ForwardIn,
        unlock: &[String],
    ) -> Result<MessageOut, Problem> {
        let (msg, _, _) = self.readable_message(who, id, unlock).await?;
        let target = match self.channel_row(who.org_id, b.channel_id).await {
            Ok(c) => c,
            Err(e) if e.status == StatusCode::NOT_FOUND => {
                return Err(Problem::invalid_field("channel_id", "is not a channel"));
            }
            Err(e) => return Err(e),
        };
        let (target, _) = self.writable(who, target.id).await?;
        if msg.deleted {
            return Err(message_deleted());
        }
        let comment = b.text.as_deref().filter(|t| !t.trim().is_empty());
        let mut v = Validator::new();
        if let Some(c) = comment {
            check_text(&mut v, c, false);
        }
        v.finish()?;
        let dir = self.directory(who.org_id).await?;
        if let Some(c) = comment {
            self.insert(
                who,
                &target,
                &dir,
                NewPost {
                    text: c,
                    thread: None,
                    quote: None,
                    forwarded_from: None,
                    attachments: &[],
                    copies: &[],
                },
            )
            .await?;
        }
        // The files go along, except view-once ones (they were meant for the original
        // recipients, once).
        let files: Vec<crate::model::AttachmentId> = store::attachments_of(&self.db, &[msg.id])
            .await
            .map_err(db_err)?
            .into_iter()
            .filter(|a| !a.view_once)
            .map(|a| a.id)
            .collect();
        let origin = serde_json::to_value(ForwardedFrom {
            channel_id: msg.channel_id,
            message_id: msg.id,
            author_id: msg.author_id,
            author_name: dir.name(msg.author_id),
            created_at: msg.created_at,
        })
        .map_err(Problem::internal)?;
        self.insert(
            who,
            &target,
            &dir,
            NewPost {
                text: &msg.text,
                thread: None,
                quote: None,
                forwarded_from: Some(&origin),
                attachments: &[],
                copies: &files,
            },
        )
        .await
    }

    /// Adds (`on`) or removes the caller's reaction; returns the message's reactions.
    pub async fn react(
        &self,
        who: &Principal,
        id: ChatMessageId,
        emoji: &str,
        on: bool,
    ) -> Result<Vec<ReactionOut>, Problem> {
        let emoji = model::parse_emoji(emoji).map_err(|m| Problem::invalid_field("emoji", m))?;
        let msg = store::message(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("message"))?;
        let (channel, _) = self.writable(who, msg.channel_id).await?;
        if msg.deleted {
            return Err(message_deleted());
        }
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let changed = if on {
            let added = store::add_reaction(&mut tx, id, &emoji, who.user_id, self.now())
                .await
                .map_err(db_err)?;
            if added && store::emoji_count(&mut tx, id).await.map_err(db_err)? > MAX_EMOJI_KINDS {
                return Err(Problem::invalid_field(
                    "emoji",
                    format!("a message holds at most {MAX_EMOJI_KINDS} different reactions"),
                ));
            }
            added
        } else {
            store::remove_reaction(&mut tx, id, &emoji, who.user_id)
                .await
                .map_err(db_err)?
        };
        let rows = store::reactions(&mut tx, &[id]).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        if changed {
            let neutral = group_reactions(rows.clone(), Viewer(None));
            let type_ = if on {
                "wamage.chat.reaction.added"
            } else {
                "wamage.chat.reaction.removed"
            };
            self.publish(
                who.org_id,
                type_,
                &room(channel.id),
                json!({
                    "channel_id": channel.id, "message_id": id, "emoji": emoji,
                    "user_id": who.user_id, "reactions": neutral,
                }),
            )
            .await;
        }
        Ok(group_reactions(rows, Viewer(Some(who.user_id))))
    }

    pub async fn pin(
        &self,
        who: &Principal,
        id: ChatMessageId,
        on: bool,
    ) -> Result<MessageOut, Problem> {
        let msg = store::message(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("message"))?;
        let (channel, _) = self.writable(who, msg.channel_id).await?;
        if msg.deleted {
            return Err(message_deleted());
        }
        if on == msg.pinned_at.is_none() {
            let mut tx = self.db.begin().await.map_err(db_err)?;
            store::set_pinned(&mut tx, id, on.then(|| self.now()))
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
        }
        let dir = self.directory(who.org_id).await?;
        self.updated_message(who, id, &channel, &dir).await
    }

    pub async fn pins(
        &self,
        who: &Principal,
        id: ChannelId,
        unlock: &[String],
    ) -> Result<Vec<MessageOut>, Problem> {
        let (channel, _) = self.readable(who, id, unlock).await?;
        let rows = store::pins(&self.db, id, self.now())
            .await
            .map_err(db_err)?;
        let dir = self.directory(who.org_id).await?;
        let viewer = Viewer(Some(who.user_id));
        let reads = self.read_state(&channel, viewer).await?;
        self.render(who.org_id, viewer, rows, &dir, &reads, Lookups::Stored)
            .await
    }

    /// Moves the caller's read marker forward to `message` (never back).
    pub async fn mark_read(
        &self,
        who: &Principal,
        id: ChannelId,
        message: ChatMessageId,
    ) -> Result<(), Problem> {
        self.channel_row(who.org_id, id).await?;
        self.member_row(id, who.user_id)
            .await?
            .ok_or_else(not_a_member)?;
        let m = self.anchor(who, id, message, "message_id").await?;
        let mut tx = self.db.begin().await.map_err(db_err)?;
        let moved = store::set_read(&mut tx, id, who.user_id, m.created_at, m.id)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        if moved {
            self.publish(
                who.org_id,
                "wamage.chat.read",
                &room(id),
                json!({ "channel_id": id, "user_id": who.user_id, "message_id": m.id }),
            )
            .await;
        }
        Ok(())
    }

    pub async fn search(
        &self,
        who: &Principal,
        q: &str,
        channel: Option<ChannelId>,
        limit: Option<u32>,
        unlock: &[String],
    ) -> Result<Vec<MessageOut>, Problem> {
        let words = model::query_words(q);
        let mut v = Validator::new();
        if words.is_empty() {
            v.error("q", "must contain at least one word");
        }
        let limit = limit_of(&mut v, limit, 20);
        v.finish()?;
        if let Some(c) = channel {
            // Another organisation's channel id is not found, like everywhere else.
            self.channel_row(who.org_id, c).await?;
        }
        let mut open = Vec::new();
        for c in store::locked_channels(&self.db, who.org_id, who.user_id)
            .await
            .map_err(db_err)?
        {
            if self.unlocked(who, c, unlock).await {
                open.push(c);
            }
        }
        let rows = store::search(
            &self.db,
            who.org_id,
            who.user_id,
            self.now(),
            &words,
            channel,
            &open,
            limit,
        )
        .await
        .map_err(db_err)?;
        let dir = self.directory(who.org_id).await?;
        self.render(
            who.org_id,
            Viewer(Some(who.user_id)),
            rows,
            &dir,
            &ReadState::new(),
            Lookups::Stored,
        )
        .await
    }

    /// Whether `viewer` may join the room of channel `id`: members, and for a public channel
    /// any member of the organisation.
    pub async fn may_join_room(&self, viewer: &Principal, id: ChannelId) -> anyhow::Result<bool> {
        let Some(channel) = store::channel(&self.db, viewer.org_id, id).await? else {
            return Ok(false);
        };
        if ChannelKind::from_db(&channel.kind) == ChannelKind::Public {
            return Ok(true);
        }
        Ok(store::member(&self.db, id, viewer.user_id).await?.is_some())
    }
}

struct NewPost<'a> {
    text: &'a str,
    thread: Option<ChatMessageId>,
    quote: Option<ChatMessageId>,
    forwarded_from: Option<&'a Value>,
    attachments: &'a [crate::model::AttachmentId],
    /// Attachments of the forwarded message, copied onto the new one.
    copies: &'a [crate::model::AttachmentId],
}

/// Everything from the beginning (the first replies of a thread).
fn from_start() -> Window {
    Window::From(
        Timestamp::from_millis(i64::MIN),
        ChatMessageId(uuid::Uuid::nil()),
    )
}

fn unlock_key(org: OrgId, token: &str) -> String {
    // Only a hash of the token is a key: a cache dump does not hand out unlock tokens.
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    format!("chat:{org}:unlock:{digest}")
}

/// Groups reaction rows by emoji, in the order each emoji was first given.
fn group_reactions(rows: Vec<store::ReactionRow>, viewer: Viewer) -> Vec<ReactionOut> {
    let mut out: Vec<ReactionOut> = Vec::new();
    for r in rows {
        let me = viewer.0 == Some(r.user_id);
        match out.iter_mut().find(|o| o.emoji == r.emoji) {
            Some(o) => {
                o.count += 1;
                o.me |= me;
                o.user_ids.push(r.user_id);
            }
            None => out.push(ReactionOut {
                emoji: r.emoji,
                count: 1,
                me,
                user_ids: vec![r.user_id],
            }),
        }
    }
    out
}

/// The data of a message event (`wamage.chat.message.created|updated|deleted`): the message as
/// the API renders it, serialized once into the event.
#[derive(Serialize)]
pub(crate) struct MessageEvent<'a> {
    pub channel_id: ChannelId,
    pub message: &'a MessageOut,
}
