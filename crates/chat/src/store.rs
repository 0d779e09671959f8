//! Chat persistence: one function per use case, each scoped to the organisation it acts in
//! (directly, or through a channel or message id the service has already resolved inside that
//! organisation). SQL is written once for SQLite and PostgreSQL; only the search index differs
//! (an FTS5 table keyed by `chat_messages.rid` in SQLite, a `tsvector` column in PostgreSQL),
//! written in the same transaction as the message.
//!
//! Functions take [`Ex`]: the pool for plain reads or the open transaction of a use case, so a
//! read inside a write sees the write's own rows. Keyset positions are `(created_at, id)`
//! compared column by column (no row values), which both engines plan on the
//! `(channel_id, created_at, id)` index. Lists of ids are bound as `$n, $n+1, …` (pages are at
//! most 100 items).

use serde_json::Value;
use sqlx::{FromRow, types::Json};
use wamage_kernel::{OrgId, Timestamp, UserId};
use wamage_platform::{Backend, Db, Tx, db::placeholders, with_write};

use crate::model::{AttachmentId, ChannelId, ChatMessageId};

type R<T> = Result<T, sqlx::Error>;

/// The pool or an open transaction.
pub enum Ex<'a> {
    Db(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Ex<'a> {
    fn from(db: &'a Db) -> Self {
        Self::Db(db)
    }
}

impl<'a> From<&'a mut Tx> for Ex<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Self::Tx(tx)
    }
}

/// Runs `$body` with `$e` bound to an executor of whichever backend and handle `$ex` holds.
macro_rules! on {
    ($ex:expr, |$e:ident| $body:expr) => {
        match $ex {
            Ex::Db(Db::Sqlite($e)) => $body,
            Ex::Db(Db::Postgres($e)) => $body,
            Ex::Tx(Tx::Sqlite(t, _)) => {
                let $e = &mut **t;
                $body
            }
            Ex::Tx(Tx::Postgres(t)) => {
                let $e = &mut **t;
                $body
            }
        }
    };
}

// ---- channels ----------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct ChannelRow {
    pub id: ChannelId,
    pub kind: String,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub archived: bool,
    pub disappearing: String,
    pub last_activity_at: Timestamp,
    pub created_at: Timestamp,
    pub member_count: i64,
}

/// A channel as one user sees it: their membership and counters (zero and `None` when they
/// are not a member).
#[derive(Debug, Clone, FromRow)]
pub struct ChannelView {
    #[sqlx(flatten)]
    pub channel: ChannelRow,
    pub my_role: Option<String>,
    pub locked: Option<bool>,
    pub last_read_id: Option<ChatMessageId>,
    pub unread_count: i64,
    pub mention_count: i64,
}

const CHANNEL_COLS: &str = "c.id, c.kind, c.name, c.topic, c.archived, c.disappearing, \
     c.last_activity_at, c.created_at, \
     (SELECT COUNT(*) FROM chat_members x WHERE x.channel_id = c.id) AS member_count";

/// Columns of a [`ChannelView`] with the viewer's membership joined as `me`; `$2` is the
/// viewer, `$3` now (expired messages do not count).
const VIEW_COLS: &str = "me.role AS my_role, me.locked AS locked, me.last_read_id AS last_read_id, \
     CASE WHEN me.user_id IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM chat_messages g \
       WHERE g.channel_id = c.id AND g.thread_id IS NULL AND g.deleted = FALSE \
       AND g.author_id <> me.user_id AND (g.expires_at IS NULL OR g.expires_at > $3) \
       AND (me.last_read_at IS NULL OR g.created_at > me.last_read_at \
            OR (g.created_at = me.last_read_at AND g.id > me.last_read_id))) END AS unread_count, \
     CASE WHEN me.user_id IS NULL THEN 0 ELSE (SELECT COUNT(*) FROM chat_mentions n \
       JOIN chat_messages g ON g.id = n.message_id \
       WHERE n.channel_id = c.id AND n.user_id = me.user_id AND g.deleted = FALSE \
       AND (g.expires_at IS NULL OR g.expires_at > $3) \
       AND (me.last_read_at IS NULL OR g.created_at > me.last_read_at \
            OR (g.created_at = me.last_read_at AND g.id > me.last_read_id))) END AS mention_count";

pub struct NewChannel<'a> {
    pub id: ChannelId,
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub name_key: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub dm_key: Option<&'a str>,
    pub created_by: UserId,
    pub now: Timestamp,
}

pub async fn insert_channel(tx: &mut Tx, org: OrgId, c: &NewChannel<'_>) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "INSERT INTO chat_channels (id, org_id, kind, name, name_key, topic, dm_key, archived, \
         disappearing, created_by, last_activity_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, 'off', $8, $9, $9, $9)"
    )
    .bind(c.id)
    .bind(org)
    .bind(c.kind)
    .bind(c.name)
    .bind(c.name_key)
    .bind(c.topic)
    .bind(c.dm_key)
    .bind(c.created_by)
    .bind(c.now)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

pub async fn channel<'a>(
    ex: impl Into<Ex<'a>>,
    org: OrgId,
    id: ChannelId,
) -> R<Option<ChannelRow>> {
    on!(ex.into(), |e| sqlx::query_as::<_, ChannelRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLS} FROM chat_channels c WHERE c.org_id = $1 AND c.id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(e)
    .await)
}

pub async fn dm_by_key(tx: &mut Tx, org: OrgId, key: &str) -> R<Option<ChannelId>> {
    let row: Option<(ChannelId,)> = on!(Ex::Tx(tx), |e| sqlx::query_as(
        "SELECT id FROM chat_channels WHERE org_id = $1 AND dm_key = $2"
    )
    .bind(org)
    .bind(key)
    .fetch_optional(e)
    .await)?;
    Ok(row.map(|(id,)| id))
}

/// One channel as `viewer` sees it.
pub async fn channel_view(
    db: &Db,
    org: OrgId,
    viewer: UserId,
    now: Timestamp,
    id: ChannelId,
) -> R<Option<ChannelView>> {
    on!(Ex::Db(db), |e| sqlx::query_as::<_, ChannelView>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLS}, {VIEW_COLS} FROM chat_channels c \
         LEFT JOIN chat_members me ON me.channel_id = c.id AND me.user_id = $2 \
         WHERE c.org_id = $1 AND c.id = $4"
        ))
    )
    .bind(org)
    .bind(viewer)
    .bind(now)
    .bind(id)
    .fetch_optional(e)
    .await)
}

/// The channels and DMs `viewer` is a member of, most recently active first.
pub async fn member_channels(
    db: &Db,
    org: OrgId,
    viewer: UserId,
    now: Timestamp,
    include_archived: bool,
) -> R<Vec<ChannelView>> {
    on!(Ex::Db(db), |e| sqlx::query_as::<_, ChannelView>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLS}, {VIEW_COLS} FROM chat_channels c \
         JOIN chat_members me ON me.channel_id = c.id AND me.user_id = $2 \
         WHERE c.org_id = $1 AND ($4 OR c.archived = FALSE) \
         ORDER BY c.last_activity_at DESC, c.id DESC"
        ))
    )
    .bind(org)
    .bind(viewer)
    .bind(now)
    .bind(include_archived)
    .fetch_all(e)
    .await)
}

/// The organisation's public channels (joined or not) whose name contains `needle`
/// (lower-case), by name; at most 200.
pub async fn public_channels(
    db: &Db,
    org: OrgId,
    viewer: UserId,
    now: Timestamp,
    needle: Option<&str>,
) -> R<Vec<ChannelView>> {
    let pattern = needle.map(|n| {
        let escaped = n
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    on!(Ex::Db(db), |e| sqlx::query_as::<_, ChannelView>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLS}, {VIEW_COLS} FROM chat_channels c \
         LEFT JOIN chat_members me ON me.channel_id = c.id AND me.user_id = $2 \
         WHERE c.org_id = $1 AND c.kind = 'public' AND c.archived = FALSE \
         AND ($4 IS NULL OR c.name_key LIKE $4 ESCAPE '\\') \
         ORDER BY c.name_key, c.id LIMIT 200"
        ))
    )
    .bind(org)
    .bind(viewer)
    .bind(now)
    .bind(pattern)
    .fetch_all(e)
    .await)
}

pub struct ChannelChange<'a> {
    pub name: Option<&'a str>,
    pub name_key: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub archived: bool,
    pub disappearing: &'a str,
}

pub async fn update_channel(
    tx: &mut Tx,
    org: OrgId,
    id: ChannelId,
    c: &ChannelChange<'_>,
    now: Timestamp,
) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "UPDATE chat_channels SET name = $3, name_key = $4, topic = $5, archived = $6, \
         disappearing = $7, updated_at = $8 WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .bind(c.name)
    .bind(c.name_key)
    .bind(c.topic)
    .bind(c.archived)
    .bind(c.disappearing)
    .bind(now)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

pub async fn touch_channel(tx: &mut Tx, id: ChannelId, now: Timestamp) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "UPDATE chat_channels SET last_activity_at = $2 WHERE id = $1 AND last_activity_at < $2"
    )
    .bind(id)
    .bind(now)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

// ---- members -----------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: UserId,
    pub role: String,
    pub joined_at: Timestamp,
    pub last_read_at: Option<Timestamp>,
    pub last_read_id: Option<ChatMessageId>,
    pub locked: bool,
}

const MEMBER_COLS: &str = "user_id, role, joined_at, last_read_at, last_read_id, locked";

/// Adds a member (or does nothing when they already are one); true when added.
pub async fn add_member(
    tx: &mut Tx,
    org: OrgId,
    channel: ChannelId,
    user: UserId,
    role: &str,
    now: Timestamp,
) -> R<bool> {
    let n = on!(Ex::Tx(tx), |e| sqlx::query(
        "INSERT INTO chat_members (channel_id, user_id, org_id, role, joined_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel_id, user_id) DO NOTHING"
    )
    .bind(channel)
    .bind(user)
    .bind(org)
    .bind(role)
    .bind(now)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

pub async fn set_member_role(tx: &mut Tx, channel: ChannelId, user: UserId, role: &str) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "UPDATE chat_members SET role = $3 WHERE channel_id = $1 AND user_id = $2"
    )
    .bind(channel)
    .bind(user)
    .bind(role)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

pub async fn remove_member(tx: &mut Tx, channel: ChannelId, user: UserId) -> R<bool> {
    let n = on!(Ex::Tx(tx), |e| sqlx::query(
        "DELETE FROM chat_members WHERE channel_id = $1 AND user_id = $2"
    )
    .bind(channel)
    .bind(user)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

pub async fn member<'a>(
    ex: impl Into<Ex<'a>>,
    channel: ChannelId,
    user: UserId,
) -> R<Option<MemberRow>> {
    on!(ex.into(), |e| sqlx::query_as::<_, MemberRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLS} FROM chat_members WHERE channel_id = $1 AND user_id = $2"
        ))
    )
    .bind(channel)
    .bind(user)
    .fetch_optional(e)
    .await)
}

/// Every member of a channel, oldest first.
pub async fn members<'a>(ex: impl Into<Ex<'a>>, channel: ChannelId) -> R<Vec<MemberRow>> {
    on!(ex.into(), |e| {
        sqlx::query_as::<_, MemberRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {MEMBER_COLS} FROM chat_members WHERE channel_id = $1 ORDER BY joined_at, user_id"
    )))
    .bind(channel)
    .fetch_all(e)
    .await
    })
}

#[derive(Debug, Clone, FromRow)]
pub struct ChannelMemberRow {
    pub channel_id: ChannelId,
    #[sqlx(flatten)]
    pub member: MemberRow,
}

/// The members of every DM and group DM `viewer` is in (their read markers give `read_by`).
pub async fn dm_members(db: &Db, org: OrgId, viewer: UserId) -> R<Vec<ChannelMemberRow>> {
    on!(Ex::Db(db), |e| sqlx::query_as::<_, ChannelMemberRow>(
        "SELECT x.channel_id, x.user_id, x.role, x.joined_at, x.last_read_at, x.last_read_id, \
         x.locked FROM chat_members x \
         JOIN chat_channels c ON c.id = x.channel_id AND c.kind IN ('dm', 'group_dm') \
         JOIN chat_members me ON me.channel_id = x.channel_id AND me.user_id = $2 \
         WHERE c.org_id = $1"
    )
    .bind(org)
    .bind(viewer)
    .fetch_all(e)
    .await)
}

/// Up to `n` members of each channel `viewer` belongs to (other than the viewer), oldest
/// first: the names a DM is titled with.
pub async fn previews_for(
    db: &Db,
    org: OrgId,
    viewer: UserId,
    n: i64,
) -> R<Vec<(ChannelId, UserId)>> {
    on!(Ex::Db(db), |e| sqlx::query_as(
        "SELECT channel_id, user_id FROM (SELECT x.channel_id, x.user_id, ROW_NUMBER() OVER \
         (PARTITION BY x.channel_id ORDER BY x.joined_at, x.user_id) AS rn \
         FROM chat_members x JOIN chat_members me ON me.channel_id = x.channel_id \
         AND me.user_id = $2 WHERE x.org_id = $1 AND x.user_id <> $2) t WHERE rn <= $3"
    )
    .bind(org)
    .bind(viewer)
    .bind(n)
    .fetch_all(e)
    .await)
}

/// Moves a member's read marker forward to `(at, id)`; never back. True when it moved.
pub async fn set_read(
    tx: &mut Tx,
    channel: ChannelId,
    user: UserId,
    at: Timestamp,
    id: ChatMessageId,
) -> R<bool> {
    let n = on!(Ex::Tx(tx), |e| sqlx::query(
        "UPDATE chat_members SET last_read_at = $3, last_read_id = $4 \
         WHERE channel_id = $1 AND user_id = $2 AND (last_read_at IS NULL OR last_read_at < $3 \
         OR (last_read_at = $3 AND last_read_id < $4))"
    )
    .bind(channel)
    .bind(user)
    .bind(at)
    .bind(id)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

pub async fn set_locked(db: &Db, channel: ChannelId, user: UserId, locked: bool) -> R<()> {
    with_write!(db, |e| sqlx::query(
        "UPDATE chat_members SET locked = $3 WHERE channel_id = $1 AND user_id = $2"
    )
    .bind(channel)
    .bind(user)
    .bind(locked)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// The channels `user` has locked.
pub async fn locked_channels(db: &Db, org: OrgId, user: UserId) -> R<Vec<ChannelId>> {
    let rows: Vec<(ChannelId,)> = on!(Ex::Db(db), |e| {
        sqlx::query_as(
        "SELECT channel_id FROM chat_members WHERE org_id = $1 AND user_id = $2 AND locked = TRUE"
    )
    .bind(org)
    .bind(user)
    .fetch_all(e)
    .await
    })?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

// ---- messages ----------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub id: ChatMessageId,
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub text: String,
    pub mentions: Json<Vec<UserId>>,
    pub mentions_channel: bool,
    pub thread_id: Option<ChatMessageId>,
    pub reply_count: i64,
    pub last_reply_at: Option<Timestamp>,
    pub quote_id: Option<ChatMessageId>,
    pub forwarded_from: Option<Json<Value>>,
    pub pinned_at: Option<Timestamp>,
    pub edited_at: Option<Timestamp>,
    pub deleted: bool,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

const MSG_COLS: &str = "g.id, g.channel_id, g.author_id, g.text, g.mentions, g.mentions_channel, \
     g.thread_id, g.reply_count, g.last_reply_at, g.quote_id, g.forwarded_from, g.pinned_at, \
     g.edited_at, g.deleted, g.expires_at, g.created_at";

/// Messages past their `expires_at` are gone for readers even before the job deletes them.
const LIVE: &str = "(g.expires_at IS NULL OR g.expires_at > $2)";

pub struct NewMessage<'a> {
    pub id: ChatMessageId,
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub text: &'a str,
    pub mentions: &'a [UserId],
    pub mentions_channel: bool,
    pub thread_id: Option<ChatMessageId>,
    pub quote_id: Option<ChatMessageId>,
    pub forwarded_from: Option<&'a Value>,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

pub async fn insert_message(tx: &mut Tx, org: OrgId, m: &NewMessage<'_>) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "INSERT INTO chat_messages (id, org_id, channel_id, author_id, text, mentions, \
         mentions_channel, thread_id, quote_id, forwarded_from, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )
    .bind(m.id)
    .bind(org)
    .bind(m.channel_id)
    .bind(m.author_id)
    .bind(m.text)
    .bind(Json(m.mentions))
    .bind(m.mentions_channel)
    .bind(m.thread_id)
    .bind(m.quote_id)
    .bind(m.forwarded_from.map(Json))
    .bind(m.expires_at)
    .bind(m.created_at)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Replaces the search words of a message (none: removes it from the index).
pub async fn set_search_words(tx: &mut Tx, id: ChatMessageId, words: &[String]) -> R<()> {
    // PostgreSQL overwrites the column; SQLite's index needs the old entry removed first.
    if let Tx::Sqlite(t, _) = tx {
        sqlx::query(
            "DELETE FROM chat_messages_fts WHERE rowid = \
             (SELECT rid FROM chat_messages WHERE id = $1)",
        )
        .bind(id)
        .execute(&mut **t)
        .await?;
    }
    add_search_words(tx, id, words).await
}

/// The search words of a message written in the same transaction (it has none yet, so
/// nothing to remove first).
pub async fn add_search_words(tx: &mut Tx, id: ChatMessageId, words: &[String]) -> R<()> {
    match tx {
        Tx::Sqlite(t, _) => {
            if !words.is_empty() {
                sqlx::query(
                    "INSERT INTO chat_messages_fts (rowid, body) \
                     SELECT rid, $2 FROM chat_messages WHERE id = $1",
                )
                .bind(id)
                .bind(words.join(" "))
                .execute(&mut **t)
                .await?;
            }
        }
        Tx::Postgres(t) => {
            sqlx::query(
                "UPDATE chat_messages SET search = array_to_tsvector($2::text[]) WHERE id = $1",
            )
            .bind(id)
            .bind(words)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// Records who a message mentions, among the channel's members: `users`, and every member but
/// the author when `everyone`.
pub async fn insert_mentions(
    tx: &mut Tx,
    message: ChatMessageId,
    channel: ChannelId,
    author: UserId,
    users: &[UserId],
    everyone: bool,
) -> R<()> {
    if everyone {
        on!(Ex::Tx(tx), |e| sqlx::query(
            "INSERT INTO chat_mentions (message_id, user_id, channel_id) \
             SELECT $1, user_id, channel_id FROM chat_members \
             WHERE channel_id = $2 AND user_id <> $3 ON CONFLICT DO NOTHING"
        )
        .bind(message)
        .bind(channel)
        .bind(author)
        .execute(e)
        .await
        .map(|_| ()))?;
    }
    for user in users.iter().filter(|u| **u != author) {
        on!(Ex::Tx(&mut *tx), |e| sqlx::query(
            "INSERT INTO chat_mentions (message_id, user_id, channel_id) \
             SELECT $1, user_id, channel_id FROM chat_members \
             WHERE channel_id = $2 AND user_id = $3 ON CONFLICT DO NOTHING"
        )
        .bind(message)
        .bind(channel)
        .bind(*user)
        .execute(e)
        .await
        .map(|_| ()))?;
    }
    Ok(())
}

pub async fn clear_mentions(tx: &mut Tx, message: ChatMessageId) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "DELETE FROM chat_mentions WHERE message_id = $1"
    )
    .bind(message)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

pub async fn bump_thread(tx: &mut Tx, parent: ChatMessageId, now: Timestamp) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "UPDATE chat_messages SET reply_count = reply_count + 1, last_reply_at = $2 WHERE id = $1"
    )
    .bind(parent)
    .bind(now)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

pub async fn message<'a>(
    ex: impl Into<Ex<'a>>,
    org: OrgId,
    id: ChatMessageId,
) -> R<Option<MessageRow>> {
    on!(ex.into(), |e| sqlx::query_as::<_, MessageRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {MSG_COLS} FROM chat_messages g WHERE g.org_id = $1 AND g.id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(e)
    .await)
}

pub async fn messages_by_ids(db: &Db, org: OrgId, ids: &[ChatMessageId]) -> R<Vec<MessageRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {MSG_COLS} FROM chat_messages g WHERE g.org_id = $1 AND g.id IN ({})",
        placeholders(2, ids.len())
    );
    on!(Ex::Db(db), |e| {
        let mut q = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(sql)).bind(org);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(e).await
    })
}

/// The latest top-level message of every channel `viewer` is a member of.
pub async fn last_messages(
    db: &Db,
    org: OrgId,
    viewer: UserId,
    now: Timestamp,
) -> R<Vec<MessageRow>> {
    on!(Ex::Db(db), |e| sqlx::query_as::<_, MessageRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {MSG_COLS} FROM chat_messages g WHERE g.org_id = $1 AND g.id IN \
         (SELECT (SELECT g2.id FROM chat_messages g2 WHERE g2.channel_id = m.channel_id \
           AND g2.thread_id IS NULL AND (g2.expires_at IS NULL OR g2.expires_at > $2) \
           ORDER BY g2.created_at DESC, g2.id DESC LIMIT 1) \
          FROM chat_members m WHERE m.org_id = $1 AND m.user_id = $3)"
        ))
    )
    .bind(org)
    .bind(now)
    .bind(viewer)
    .fetch_all(e)
    .await)
}

/// Where a page of history starts.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    /// The newest messages.
    Latest,
    /// Strictly older than the position.
    Before(Timestamp, ChatMessageId),
    /// Strictly newer than the position.
    After(Timestamp, ChatMessageId),
    /// At or newer than the position.
    From(Timestamp, ChatMessageId),
}

/// Up to `limit` top-level messages of a channel in `window`, oldest first.
pub async fn history(
    db: &Db,
    channel: ChannelId,
    now: Timestamp,
    window: Window,
    limit: i64,
) -> R<Vec<MessageRow>> {
    scan(
        db,
        "g.channel_id = $1 AND g.thread_id IS NULL",
        channel.as_uuid(),
        now,
        window,
        limit,
    )
    .await
}

/// Up to `limit` replies of a thread in `window`, oldest first.
pub async fn replies(
    db: &Db,
    parent: ChatMessageId,
    now: Timestamp,
    window: Window,
    limit: i64,
) -> R<Vec<MessageRow>> {
    scan(db, "g.thread_id = $1", parent.as_uuid(), now, window, limit).await
}

async fn scan(
    db: &Db,
    scope: &str,
    key: uuid::Uuid,
    now: Timestamp,
    window: Window,
    limit: i64,
) -> R<Vec<MessageRow>> {
    let (cond, desc, pos) = match window {
        Window::Latest => ("", true, None),
        Window::Before(at, id) => (
            " AND (g.created_at < $3 OR (g.created_at = $3 AND g.id < $4))",
            true,
            Some((at, id)),
        ),
        Window::After(at, id) => (
            " AND (g.created_at > $3 OR (g.created_at = $3 AND g.id > $4))",
            false,
            Some((at, id)),
        ),
        Window::From(at, id) => (
            " AND (g.created_at > $3 OR (g.created_at = $3 AND g.id >= $4))",
            false,
            Some((at, id)),
        ),
    };
    let order = if desc { "DESC" } else { "ASC" };
    let lim = if pos.is_some() { "$5" } else { "$3" };
    let sql = format!(
        "SELECT {MSG_COLS} FROM chat_messages g WHERE {scope} AND {LIVE}{cond} \
         ORDER BY g.created_at {order}, g.id {order} LIMIT {lim}"
    );
    let mut rows = on!(Ex::Db(db), |e| {
        let mut q = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(now);
        if let Some((at, id)) = pos {
            q = q.bind(at).bind(id);
        }
        q.bind(limit).fetch_all(e).await
    })?;
    if desc {
        rows.reverse();
    }
    Ok(rows)
}

pub async fn set_text(
    tx: &mut Tx,
    id: ChatMessageId,
    text: &str,
    mentions: &[UserId],
    mentions_channel: bool,
    now: Timestamp,
) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "UPDATE chat_messages SET text = $2, mentions = $3, mentions_channel = $4, edited_at = $5 \
         WHERE id = $1"
    )
    .bind(id)
    .bind(text)
    .bind(Json(mentions))
    .bind(mentions_channel)
    .bind(now)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Turns a message into a tombstone: no text, mentions, reactions, pin or search entry.
/// Its attachments are removed by the caller (it needs their blob keys).
pub async fn tombstone(tx: &mut Tx, id: ChatMessageId) -> R<()> {
    on!(Ex::Tx(&mut *tx), |e| sqlx::query(
        "UPDATE chat_messages SET text = '', mentions = '[]', mentions_channel = FALSE, \
         deleted = TRUE, pinned_at = NULL WHERE id = $1"
    )
    .bind(id)
    .execute(e)
    .await
    .map(|_| ()))?;
    on!(Ex::Tx(&mut *tx), |e| sqlx::query(
        "DELETE FROM chat_reactions WHERE message_id = $1"
    )
    .bind(id)
    .execute(e)
    .await
    .map(|_| ()))?;
    clear_mentions(tx, id).await?;
    set_search_words(tx, id, &[]).await
}

pub async fn set_pinned(tx: &mut Tx, id: ChatMessageId, at: Option<Timestamp>) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "UPDATE chat_messages SET pinned_at = $2 WHERE id = $1"
    )
    .bind(id)
    .bind(at)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// The pinned messages of a channel, most recently pinned first (at most 100).
pub async fn pins(db: &Db, channel: ChannelId, now: Timestamp) -> R<Vec<MessageRow>> {
    on!(Ex::Db(db), |e| sqlx::query_as::<_, MessageRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {MSG_COLS} FROM chat_messages g WHERE g.channel_id = $1 AND {LIVE} \
         AND g.pinned_at IS NOT NULL ORDER BY g.pinned_at DESC, g.id DESC LIMIT 100"
        ))
    )
    .bind(channel)
    .bind(now)
    .fetch_all(e)
    .await)
}

/// Full-text search over the channels `viewer` is a member of: every word must prefix-match.
/// Channels the viewer locked are skipped unless listed in `unlocked`.
#[allow(clippy::too_many_arguments)]
pub async fn search(
    db: &Db,
    org: OrgId,
    viewer: UserId,
    now: Timestamp,
    words: &[String],
    channel: Option<ChannelId>,
    unlocked: &[ChannelId],
    limit: i64,
) -> R<Vec<MessageRow>> {
    let (query, matcher) = match db.backend() {
        Backend::Sqlite => (
            words
                .iter()
                .map(|w| format!("\"{}\"*", w.replace('"', "")))
                .collect::<Vec<_>>()
                .join(" AND "),
            "g.rid IN (SELECT rowid FROM chat_messages_fts WHERE chat_messages_fts MATCH $4)",
        ),
        Backend::Postgres => (
            words
                .iter()
                .map(|w| format!("'{}':*", w.replace(['\'', '\\'], "")))
                .collect::<Vec<_>>()
                .join(" & "),
            "g.search @@ $4::tsquery",
        ),
    };
    let unlocked_sql = if unlocked.is_empty() {
        String::new()
    } else {
        format!(" OR g.channel_id IN ({})", placeholders(7, unlocked.len()))
    };
    let sql = format!(
        "SELECT {MSG_COLS} FROM chat_messages g \
         JOIN chat_members me ON me.channel_id = g.channel_id AND me.user_id = $3 \
         WHERE g.org_id = $1 AND {LIVE} AND g.deleted = FALSE AND {matcher} \
         AND ($5 IS NULL OR g.channel_id = $5) AND (me.locked = FALSE{unlocked_sql}) \
         ORDER BY g.created_at DESC, g.id DESC LIMIT $6"
    );
    on!(Ex::Db(db), |e| {
        let mut q = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(now)
            .bind(viewer)
            .bind(query)
            .bind(channel)
            .bind(limit);
        for c in unlocked {
            q = q.bind(*c);
        }
        q.fetch_all(e).await
    })
}

/// A message to delete for good because it expired.
#[derive(Debug, Clone, FromRow)]
pub struct ExpiredRow {
    pub org_id: OrgId,
    pub id: ChatMessageId,
    pub channel_id: ChannelId,
    pub thread_id: Option<ChatMessageId>,
}

pub async fn expired(db: &Db, now: Timestamp, limit: i64) -> R<Vec<ExpiredRow>> {
    on!(Ex::Db(db), |e| sqlx::query_as::<_, ExpiredRow>(
        "SELECT org_id, id, channel_id, thread_id FROM chat_messages \
         WHERE expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
    )
    .bind(now)
    .bind(limit)
    .fetch_all(e)
    .await)
}

/// Deletes a message row for good (its mentions, reactions and attachment rows go with it).
pub async fn delete_message(tx: &mut Tx, m: &ExpiredRow) -> R<()> {
    set_search_words(tx, m.id, &[]).await?;
    on!(Ex::Tx(&mut *tx), |e| sqlx::query(
        "DELETE FROM chat_messages WHERE id = $1"
    )
    .bind(m.id)
    .execute(e)
    .await
    .map(|_| ()))?;
    if let Some(parent) = m.thread_id {
        on!(Ex::Tx(&mut *tx), |e| sqlx::query(
            "UPDATE chat_messages SET reply_count = reply_count - 1 \
             WHERE id = $1 AND reply_count > 0"
        )
        .bind(parent)
        .execute(e)
        .await
        .map(|_| ()))?;
    }
    Ok(())
}

// ---- reactions ---------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct ReactionRow {
    pub message_id: ChatMessageId,
    pub emoji: String,
    pub user_id: UserId,
}

/// The reactions of some messages, in the order they were first given.
pub async fn reactions<'a>(ex: impl Into<Ex<'a>>, ids: &[ChatMessageId]) -> R<Vec<ReactionRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT message_id, emoji, user_id FROM chat_reactions WHERE message_id IN ({}) \
         ORDER BY created_at, emoji, user_id",
        placeholders(1, ids.len())
    );
    on!(ex.into(), |e| {
        let mut q = sqlx::query_as::<_, ReactionRow>(sqlx::AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(e).await
    })
}

/// True when the reaction was new.
pub async fn add_reaction(
    tx: &mut Tx,
    id: ChatMessageId,
    emoji: &str,
    user: UserId,
    now: Timestamp,
) -> R<bool> {
    let n = on!(Ex::Tx(tx), |e| sqlx::query(
        "INSERT INTO chat_reactions (message_id, emoji, user_id, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
    )
    .bind(id)
    .bind(emoji)
    .bind(user)
    .bind(now)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// True when there was such a reaction.
pub async fn remove_reaction(tx: &mut Tx, id: ChatMessageId, emoji: &str, user: UserId) -> R<bool> {
    let n = on!(Ex::Tx(tx), |e| sqlx::query(
        "DELETE FROM chat_reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3"
    )
    .bind(id)
    .bind(emoji)
    .bind(user)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Distinct emoji on a message (to cap how many kinds one message collects).
pub async fn emoji_count(tx: &mut Tx, id: ChatMessageId) -> R<i64> {
    let (n,): (i64,) = on!(Ex::Tx(tx), |e| sqlx::query_as(
        "SELECT COUNT(DISTINCT emoji) FROM chat_reactions WHERE message_id = $1"
    )
    .bind(id)
    .fetch_one(e)
    .await)?;
    Ok(n)
}

// ---- attachments -------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct AttachmentRow {
    pub id: AttachmentId,
    pub uploader_id: UserId,
    pub message_id: Option<ChatMessageId>,
    /// The channel of the message using it (`None` while unsent).
    pub channel_id: Option<ChannelId>,
    pub kind: String,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_ms: Option<i64>,
    pub waveform: Option<Json<Vec<u8>>>,
    pub view_once: bool,
    pub blob_key: String,
    pub thumb_key: Option<String>,
}

const ATT_COLS: &str = "a.id, a.uploader_id, a.message_id, g.channel_id AS channel_id, a.kind, \
     a.name, a.content_type, a.size, a.width, a.height, a.duration_ms, a.waveform, a.view_once, \
     a.blob_key, a.thumb_key";

pub struct NewAttachment<'a> {
    pub id: AttachmentId,
    pub uploader_id: UserId,
    pub kind: &'a str,
    pub name: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub duration_ms: Option<i64>,
    pub waveform: Option<&'a [u8]>,
    pub view_once: bool,
    pub blob_key: &'a str,
    pub thumb_key: Option<&'a str>,
    pub now: Timestamp,
}

pub async fn insert_attachment(db: &Db, org: OrgId, a: &NewAttachment<'_>) -> R<()> {
    with_write!(db, |e| sqlx::query(
        "INSERT INTO chat_attachments (id, org_id, uploader_id, kind, name, content_type, size, \
         width, height, duration_ms, waveform, view_once, blob_key, thumb_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    )
    .bind(a.id)
    .bind(org)
    .bind(a.uploader_id)
    .bind(a.kind)
    .bind(a.name)
    .bind(a.content_type)
    .bind(a.size)
    .bind(a.width)
    .bind(a.height)
    .bind(a.duration_ms)
    .bind(a.waveform.map(Json))
    .bind(a.view_once)
    .bind(a.blob_key)
    .bind(a.thumb_key)
    .bind(a.now)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

pub async fn attachment(db: &Db, org: OrgId, id: AttachmentId) -> R<Option<AttachmentRow>> {
    on!(Ex::Db(db), |e| sqlx::query_as::<_, AttachmentRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {ATT_COLS} FROM chat_attachments a \
         LEFT JOIN chat_messages g ON g.id = a.message_id WHERE a.org_id = $1 AND a.id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(e)
    .await)
}

/// Gives an unsent attachment of `uploader` to a message; false when it is not theirs, is
/// already used or does not exist in `org`.
pub async fn attach(
    tx: &mut Tx,
    org: OrgId,
    uploader: UserId,
    id: AttachmentId,
    message: ChatMessageId,
    position: i64,
) -> R<bool> {
    let n = on!(Ex::Tx(tx), |e| sqlx::query(
        "UPDATE chat_attachments SET message_id = $4, position = $5 \
         WHERE org_id = $1 AND uploader_id = $2 AND id = $3 AND message_id IS NULL"
    )
    .bind(org)
    .bind(uploader)
    .bind(id)
    .bind(message)
    .bind(position)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// The attachments of some messages, in their order within each message.
pub async fn attachments_of<'a>(
    ex: impl Into<Ex<'a>>,
    ids: &[ChatMessageId],
) -> R<Vec<AttachmentRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {ATT_COLS} FROM chat_attachments a JOIN chat_messages g ON g.id = a.message_id \
         WHERE a.message_id IN ({}) ORDER BY a.position",
        placeholders(1, ids.len())
    );
    on!(ex.into(), |e| {
        let mut q = sqlx::query_as::<_, AttachmentRow>(sqlx::AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(e).await
    })
}

/// Deletes the attachment rows of a message; returns their blob keys (files and thumbnails).
pub async fn detach_all(tx: &mut Tx, message: ChatMessageId) -> R<Vec<String>> {
    let rows: Vec<(String, Option<String>)> = on!(Ex::Tx(&mut *tx), |e| sqlx::query_as(
        "SELECT blob_key, thumb_key FROM chat_attachments WHERE message_id = $1"
    )
    .bind(message)
    .fetch_all(e)
    .await)?;
    on!(Ex::Tx(&mut *tx), |e| sqlx::query(
        "DELETE FROM chat_attachments WHERE message_id = $1"
    )
    .bind(message)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(rows
        .into_iter()
        .flat_map(|(b, t)| std::iter::once(b).chain(t))
        .collect())
}

/// Gives a message a copy of an attachment of another message (a forward): a new row that
/// shares the original's blob and thumbnail.
#[allow(clippy::too_many_arguments)]
pub async fn copy_attachment(
    tx: &mut Tx,
    org: OrgId,
    source: AttachmentId,
    id: AttachmentId,
    uploader: UserId,
    message: ChatMessageId,
    position: i64,
    now: Timestamp,
) -> R<()> {
    on!(Ex::Tx(tx), |e| sqlx::query(
        "INSERT INTO chat_attachments (id, org_id, uploader_id, message_id, position, kind, name, \
         content_type, size, width, height, duration_ms, waveform, view_once, blob_key, \
         thumb_key, created_at) \
         SELECT $3, org_id, $4, $5, $6, kind, name, content_type, size, width, height, \
         duration_ms, waveform, view_once, blob_key, thumb_key, $7 \
         FROM chat_attachments WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(source)
    .bind(id)
    .bind(uploader)
    .bind(message)
    .bind(position)
    .bind(now)
    .execute(e)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Whether an attachment row still uses the blob `key` (forwards share blobs).
pub async fn blob_in_use(db: &Db, key: &str) -> R<bool> {
    let (n,): (i64,) = on!(Ex::Db(db), |e| sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT 1 FROM chat_attachments WHERE blob_key = $1 LIMIT 1) t"
    )
    .bind(key)
    .fetch_one(e)
    .await)?;
    Ok(n > 0)
}

/// Which of `ids` `user` has opened.
pub async fn viewed_by(db: &Db, user: UserId, ids: &[AttachmentId]) -> R<Vec<AttachmentId>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT attachment_id FROM chat_attachment_views WHERE user_id = $1 \
         AND attachment_id IN ({})",
        placeholders(2, ids.len())
    );
    let rows: Vec<(AttachmentId,)> = on!(Ex::Db(db), |e| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(e).await
    })?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Records that `user` opened a view-once attachment; false when they already had.
pub async fn record_view(db: &Db, id: AttachmentId, user: UserId, now: Timestamp) -> R<bool> {
    let n = with_write!(db, |e| sqlx::query(
        "INSERT INTO chat_attachment_views (attachment_id, user_id, viewed_at) \
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    )
    .bind(id)
    .bind(user)
    .bind(now)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}
