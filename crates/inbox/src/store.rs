//! Inbox persistence: one function per use case, every one scoped to the organisation (or to a
//! conversation/message id the service resolved inside it). SQL is shared by SQLite and
//! PostgreSQL; JSON columns are TEXT.

use sqlx::FromRow;
use uuid::Uuid;
use wamage_channels::ChannelId;
use wamage_contacts::ContactId;
use wamage_kernel::{OrgId, Timestamp, UserId};
use wamage_platform::{Backend, Db, Tx, db::placeholders, with_db, with_tx, with_write};

use crate::model::{AttachmentId, CannedId, ConversationId, MessageId};

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

macro_rules! on {
    ($ex:expr, |$e:ident| $body:expr) => {
        match $ex {
            Ex::Db(db) => with_db!(db, |$e| $body),
            Ex::Tx(tx) => with_tx!(tx, |$e| $body),
        }
    };
}

/// Placeholders for statements with many values, in the order they are bound: `$1, $2, …` on
/// PostgreSQL, plain `?` on SQLite (SQLite finds a numbered parameter's name by walking a list,
/// so binding thousands of `$n` costs time quadratic in their number).
struct Params {
    numbered: bool,
    n: usize,
}

impl Params {
    fn new(backend: Backend) -> Self {
        Self {
            numbered: backend == Backend::Postgres,
            n: 0,
        }
    }

    fn next(&mut self) -> String {
        self.n += 1;
        if self.numbered {
            format!("${}", self.n)
        } else {
            "?".to_owned()
        }
    }

    /// `(…), (…)`: `rows` rows of `cols` placeholders.
    fn rows(&mut self, rows: usize, cols: usize) -> String {
        (0..rows)
            .map(|_| {
                let vals = (0..cols).map(|_| self.next()).collect::<Vec<_>>();
                format!("({})", vals.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `UPDATE {table} SET {column} = CASE id WHEN … THEN … END, {rest} WHERE id IN (…)` for `n`
/// ids: binds `(id, value)` pairs, then `rest`'s values, then the ids again.
fn case_update(
    backend: Backend,
    table: &str,
    column: &str,
    rest: &str,
    n: usize,
    rest_n: usize,
) -> String {
    let mut p = Params::new(backend);
    let cases: String = (0..n)
        .map(|_| format!(" WHEN {} THEN {}", p.next(), p.next()))
        .collect();
    let mut rest = rest.to_owned();
    for _ in 0..rest_n {
        rest = rest.replacen("{}", &p.next(), 1);
    }
    let ids = (0..n).map(|_| p.next()).collect::<Vec<_>>().join(", ");
    format!("UPDATE {table} SET {column} = CASE id{cases} END, {rest} WHERE id IN ({ids})")
}

// ---- conversations -------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub contact_id: ContactId,
    pub contact_name: String,
    pub recipient: String,
    pub recipient_key: String,
    pub status: String,
    pub snoozed_until: Option<Timestamp>,
    pub priority: String,
    pub assignee_id: Option<UserId>,
    pub team_id: Option<Uuid>,
    pub labels: String,
    pub last_inbound_at: Option<Timestamp>,
    pub last_message_id: Option<MessageId>,
    pub last_activity_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

impl ConversationRow {
    /// A new conversation with a customer address, `resolved` (a direct send opens one so it
    /// shows in the inbox once the customer answers; an inbound message sets it open).
    pub fn resolved(
        org: OrgId,
        channel: ChannelId,
        (contact, name): (ContactId, String),
        recipient: &wamage_channels::provider::Recipient,
        key: String,
        now: Timestamp,
    ) -> Self {
        Self {
            id: ConversationId::new(),
            org_id: org,
            channel_id: channel,
            contact_id: contact,
            contact_name: name,
            recipient: serde_json::to_string(recipient).unwrap_or_default(),
            recipient_key: key,
            status: "resolved".to_owned(),
            snoozed_until: None,
            priority: "none".to_owned(),
            assignee_id: None,
            team_id: None,
            labels: "[]".to_owned(),
            last_inbound_at: None,
            last_message_id: None,
            last_activity_at: now,
            created_at: now,
            updated_at: now,
            resolved_at: Some(now),
        }
    }
}

const CONV_COLS: &str = "c.id, c.org_id, c.channel_id, c.contact_id, c.contact_name, c.recipient, \
     c.recipient_key, c.status, c.snoozed_until, c.priority, c.assignee_id, c.team_id, c.labels, \
     c.last_inbound_at, c.last_message_id, c.last_activity_at, c.created_at, c.updated_at, \
     c.resolved_at";

pub async fn insert_conversation(tx: &mut Tx, c: &ConversationRow) -> R<()> {
    insert_conversations(tx, std::slice::from_ref(c)).await
}

/// Rows per statement of the batch writes' inserts: a batch merge's (up to 1,000 items) in a
/// few statements, each a round trip to the database (to SQLite's connection thread, where
/// the write lock is held meanwhile), well within the bound values a statement may carry
/// (22 columns × 500 rows).
const ROWS_PER_INSERT: usize = 500;

/// Inserts new conversations: on PostgreSQL in one statement of arrays, on SQLite
/// [`ROWS_PER_INSERT`] rows per statement.
pub async fn insert_conversations(tx: &mut Tx, rows: &[ConversationRow]) -> R<()> {
    if let Tx::Postgres(t) = tx {
        return insert_conversations_pg(t, rows).await;
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO inbox_conversations (id, org_id, channel_id, contact_id, contact_name, \
             recipient, recipient_key, status, snoozed_until, priority, assignee_id, team_id, labels, \
             last_inbound_at, last_message_id, last_activity_at, created_at, updated_at, resolved_at) \
             VALUES {}",
            Params::new(tx.backend()).rows(chunk.len(), 19)
        );
        with_tx!(tx, |e| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for c in chunk {
                q = q
                    .bind(c.id)
                    .bind(c.org_id)
                    .bind(c.channel_id)
                    .bind(c.contact_id)
                    .bind(&c.contact_name)
                    .bind(&c.recipient)
                    .bind(&c.recipient_key)
                    .bind(&c.status)
                    .bind(c.snoozed_until)
                    .bind(&c.priority)
                    .bind(c.assignee_id)
                    .bind(c.team_id)
                    .bind(&c.labels)
                    .bind(c.last_inbound_at)
                    .bind(c.last_message_id)
                    .bind(c.last_activity_at)
                    .bind(c.created_at)
                    .bind(c.updated_at)
                    .bind(c.resolved_at);
            }
            q.execute(e).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Ids as the `uuid[]` PostgreSQL binds.
fn uuids<T>(rows: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    rows.iter().map(id).collect()
}

/// Optional ids as a `uuid[]` with `NULL`s.
fn opt_uuids<T>(rows: &[T], id: impl Fn(&T) -> Option<Uuid>) -> Vec<Option<Uuid>> {
    rows.iter().map(id).collect()
}

/// Texts as a `text[]`.
fn texts<'r, T>(rows: &'r [T], text: impl Fn(&'r T) -> &'r str) -> Vec<&'r str> {
    rows.iter().map(text).collect()
}

/// Optional texts as a `text[]` with `NULL`s.
fn opt_texts<'r, T>(
    rows: &'r [T],
    text: impl Fn(&'r T) -> Option<&'r str>,
) -> Vec<Option<&'r str>> {
    rows.iter().map(text).collect()
}

/// Times as a `bigint[]` (milliseconds).
fn millis<T>(rows: &[T], at: impl Fn(&T) -> Timestamp) -> Vec<i64> {
    rows.iter().map(|r| at(r).millis()).collect()
}

/// Optional times as a `bigint[]` (milliseconds) with `NULL`s.
fn opt_millis<T>(rows: &[T], at: impl Fn(&T) -> Option<Timestamp>) -> Vec<Option<i64>> {
    rows.iter().map(|r| at(r).map(Timestamp::millis)).collect()
}

/// All the rows in one statement, one array per column: a single text whatever the count, so
/// each connection prepares it once (a multi-row `VALUES` is a new statement for each count,
/// parsed and planned again with its thousands of parameters).
async fn insert_conversations_pg(
    t: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    rows: &[ConversationRow],
) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO inbox_conversations (id, org_id, channel_id, contact_id, contact_name, \
         recipient, recipient_key, status, snoozed_until, priority, assignee_id, team_id, labels, \
         last_inbound_at, last_message_id, last_activity_at, created_at, updated_at, resolved_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[], $11::uuid[], $12::uuid[], \
         $13::text[], $14::bigint[], $15::uuid[], $16::bigint[], $17::bigint[], $18::bigint[], \
         $19::bigint[])",
    )
    .bind(uuids(rows, |c| c.id.as_uuid()))
    .bind(uuids(rows, |c| c.org_id.as_uuid()))
    .bind(uuids(rows, |c| c.channel_id.as_uuid()))
    .bind(uuids(rows, |c| c.contact_id.as_uuid()))
    .bind(texts(rows, |c| &c.contact_name))
    .bind(texts(rows, |c| &c.recipient))
    .bind(texts(rows, |c| &c.recipient_key))
    .bind(texts(rows, |c| &c.status))
    .bind(opt_millis(rows, |c| c.snoozed_until))
    .bind(texts(rows, |c| &c.priority))
    .bind(opt_uuids(rows, |c| c.assignee_id.map(|i| i.as_uuid())))
    .bind(opt_uuids(rows, |c| c.team_id))
    .bind(texts(rows, |c| &c.labels))
    .bind(opt_millis(rows, |c| c.last_inbound_at))
    .bind(opt_uuids(rows, |c| c.last_message_id.map(|i| i.as_uuid())))
    .bind(millis(rows, |c| c.last_activity_at))
    .bind(millis(rows, |c| c.created_at))
    .bind(millis(rows, |c| c.updated_at))
    .bind(opt_millis(rows, |c| c.resolved_at))
    .execute(&mut **t)
    .await?;
    Ok(())
}

/// Writes every mutable column back.
pub async fn save_conversation(tx: &mut Tx, c: &ConversationRow) -> R<()> {
    with_tx!(tx, |e| sqlx::query(
        "UPDATE inbox_conversations SET contact_name = $3, recipient = $4, status = $5, \
         snoozed_until = $6, priority = $7, assignee_id = $8, team_id = $9, labels = $10, \
         last_inbound_at = $11, last_message_id = $12, last_activity_at = $13, updated_at = $14, \
         resolved_at = $15 WHERE id = $1 AND org_id = $2"
    )
    .bind(c.id)
    .bind(c.org_id)
    .bind(&c.contact_name)
    .bind(&c.recipient)
    .bind(&c.status)
    .bind(c.snoozed_until)
    .bind(&c.priority)
    .bind(c.assignee_id)
    .bind(c.team_id)
    .bind(&c.labels)
    .bind(c.last_inbound_at)
    .bind(c.last_message_id)
    .bind(c.last_activity_at)
    .bind(c.updated_at)
    .bind(c.resolved_at)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn conversation<'a>(
    ex: impl Into<Ex<'a>>,
    org: OrgId,
    id: ConversationId,
) -> R<Option<ConversationRow>> {
    let sql =
        format!("SELECT {CONV_COLS} FROM inbox_conversations c WHERE c.id = $1 AND c.org_id = $2");
    on!(ex.into(), |e| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(id)
    .bind(org)
    .fetch_optional(e)
    .await)
}

/// Makes the transactions that may create a conversation for one of these customer
/// addresses (channel, address key) take turns (see [`Tx::lock_keys`]): without a row to
/// lock yet, two of them could each find none and create one. Taken first in the
/// transaction, all at once.
pub async fn lock_addresses<'k>(
    tx: &mut Tx,
    addresses: impl IntoIterator<Item = (ChannelId, &'k str)>,
) -> R<()> {
    let keys: Vec<String> = addresses
        .into_iter()
        .map(|(channel, k)| format!("inbox.conversation:{channel}:{k}"))
        .collect();
    tx.lock_keys(&keys).await
}

/// The newest conversation with this customer address on this channel.
pub async fn latest_for_address<'a>(
    ex: impl Into<Ex<'a>>,
    channel: ChannelId,
    key: &str,
) -> R<Option<ConversationRow>> {
    let sql = format!(
        "SELECT {CONV_COLS} FROM inbox_conversations c WHERE c.channel_id = $1 AND c.recipient_key = $2 \
         ORDER BY c.created_at DESC, c.id DESC LIMIT 1"
    );
    on!(ex.into(), |e| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(channel)
    .bind(key)
    .fetch_optional(e)
    .await)
}

/// The newest conversation with each of these customer addresses on this channel (addresses
/// without one are left out).
pub async fn latest_for_addresses(
    tx: &mut Tx,
    channel: ChannelId,
    keys: &[&str],
) -> R<Vec<ConversationRow>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<ConversationRow> = match tx {
        // One text whatever the count (prepared once per connection).
        Tx::Postgres(t) => {
            let sql = format!(
                "SELECT {CONV_COLS} FROM inbox_conversations c WHERE c.channel_id = $1 \
                 AND c.recipient_key = ANY($2::text[]) ORDER BY c.created_at DESC, c.id DESC"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(channel)
                .bind(keys)
                .fetch_all(&mut **t)
                .await?
        }
        Tx::Sqlite(t, _) => {
            let sql = format!(
                "SELECT {CONV_COLS} FROM inbox_conversations c WHERE c.channel_id = $1 \
                 AND c.recipient_key IN ({}) ORDER BY c.created_at DESC, c.id DESC",
                placeholders(2, keys.len())
            );
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(channel);
            for k in keys {
                q = q.bind(*k);
            }
            q.fetch_all(&mut **t).await?
        }
    };
    let mut seen = std::collections::HashSet::new();
    Ok(rows
        .into_iter()
        .filter(|c| seen.insert(c.recipient_key.clone()))
        .collect())
}

/// Messages were added to conversations: each `(conversation, message)` makes that message
/// the conversation's last one and moves the conversation up the list (one statement per
/// hundred conversations).
pub async fn touch_conversations(
    tx: &mut Tx,
    lasts: &[(ConversationId, MessageId)],
    now: Timestamp,
) -> R<()> {
    for chunk in lasts.chunks(100) {
        let sql = case_update(
            tx.backend(),
            "inbox_conversations",
            "last_message_id",
            "last_activity_at = {}, updated_at = {}",
            chunk.len(),
            2,
        );
        with_tx!(tx, |e| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for (c, m) in chunk {
                q = q.bind(*c).bind(*m);
            }
            q = q.bind(now).bind(now);
            for (c, _) in chunk {
                q = q.bind(*c);
            }
            q.execute(e).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// The provider address (`recipient`, JSON) of each of these conversations that exists.
pub async fn recipients_by_ids(
    db: &Db,
    ids: &[ConversationId],
) -> R<Vec<(ConversationId, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if let Db::Postgres(p) = db {
        return sqlx::query_as(
            "SELECT c.id, c.recipient FROM inbox_conversations c WHERE c.id = ANY($1)",
        )
        .bind(uuids(ids, |i| i.as_uuid()))
        .fetch_all(p)
        .await;
    }
    let sql = format!(
        "SELECT c.id, c.recipient FROM inbox_conversations c WHERE c.id IN ({})",
        placeholders(1, ids.len())
    );
    with_db!(db, |p| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}

/// A conversation row with what the list shows next to it.
#[derive(Debug, Clone, FromRow)]
pub struct ConversationView {
    #[sqlx(flatten)]
    pub c: ConversationRow,
    pub unread_count: i64,
}

/// Filters of the conversation list (all optional).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<String>,
    /// `Some(None)`: unassigned only.
    pub assignee: Option<Option<UserId>>,
    pub channel: Option<ChannelId>,
    pub team: Option<Uuid>,
    pub label: Option<String>,
    pub q: Option<String>,
    /// Keyset: strictly older than `(last_activity_at, id)`.
    pub before: Option<(Timestamp, ConversationId)>,
    pub limit: i64,
}

pub async fn list_conversations(
    db: &Db,
    org: OrgId,
    viewer: UserId,
    f: &ListFilter,
) -> R<Vec<ConversationView>> {
    let mut sql = format!(
        "SELECT {CONV_COLS}, (SELECT COUNT(*) FROM inbox_messages m WHERE m.conversation_id = c.id \
           AND m.direction = 'inbound' AND m.created_at > COALESCE((SELECT r.last_read_at FROM \
           inbox_reads r WHERE r.conversation_id = c.id AND r.user_id = $2), 0)) AS unread_count \
         FROM inbox_conversations c WHERE c.org_id = $1"
    );
    let mut n = 2;
    let mut next = || {
        n += 1;
        n
    };
    if f.status.is_some() {
        sql += &format!(" AND c.status = ${}", next());
    }
    match f.assignee {
        Some(Some(_)) => sql += &format!(" AND c.assignee_id = ${}", next()),
        Some(None) => sql += " AND c.assignee_id IS NULL",
        None => {}
    }
    if f.channel.is_some() {
        sql += &format!(" AND c.channel_id = ${}", next());
    }
    if f.team.is_some() {
        sql += &format!(" AND c.team_id = ${}", next());
    }
    if f.label.is_some() {
        sql += &format!(" AND c.labels LIKE ${}", next());
    }
    if f.q.is_some() {
        let i = next();
        sql += &format!(
            " AND (LOWER(c.contact_name) LIKE ${i} OR LOWER(c.recipient_key) LIKE ${i} OR EXISTS (SELECT 1 FROM \
             inbox_messages q WHERE q.conversation_id = c.id AND LOWER(q.text) LIKE ${i}))"
        );
    }
    if f.before.is_some() {
        let (a, b) = (next(), next());
        sql += &format!(
            " AND (c.last_activity_at < ${a} OR (c.last_activity_at = ${a} AND c.id < ${b}))"
        );
    }
    sql += &format!(
        " ORDER BY c.last_activity_at DESC, c.id DESC LIMIT ${}",
        next()
    );
    with_db!(db, |p| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(org)
            .bind(viewer);
        if let Some(s) = &f.status {
            q = q.bind(s.clone());
        }
        if let Some(Some(u)) = f.assignee {
            q = q.bind(u);
        }
        if let Some(ch) = f.channel {
            q = q.bind(ch);
        }
        if let Some(t) = f.team {
            q = q.bind(t);
        }
        if let Some(l) = &f.label {
            q = q.bind(format!("%{}%", serde_json::Value::String(l.clone())));
        }
        if let Some(text) = &f.q {
            let esc = text.to_lowercase().replace(['%', '_'], "");
            q = q.bind(format!("%{esc}%"));
        }
        if let Some((at, id)) = f.before {
            q = q.bind(at).bind(id);
        }
        q.bind(f.limit).fetch_all(p).await
    })
}

/// Customer messages after `user`'s read marker.
pub async fn unread_count(db: &Db, conv: ConversationId, user: UserId) -> R<i64> {
    let (n,): (i64,) = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT COUNT(*) FROM inbox_messages m WHERE m.conversation_id = $1 AND m.direction = 'inbound' \
         AND m.created_at > COALESCE((SELECT r.last_read_at FROM inbox_reads r \
         WHERE r.conversation_id = $1 AND r.user_id = $2), 0)"
    )
    .bind(conv)
    .bind(user)
    .fetch_one(p)
    .await
    })?;
    Ok(n)
}

/// Open conversations: mine, unassigned, all.
pub async fn counts(db: &Db, org: OrgId, me: UserId) -> R<(i64, i64, i64)> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN assignee_id = $2 THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN assignee_id IS NULL THEN 1 ELSE 0 END), 0), COUNT(*) \
         FROM inbox_conversations WHERE org_id = $1 AND status = 'open'"
    )
    .bind(org)
    .bind(me)
    .fetch_one(p)
    .await)
}

/// Open conversations per assignee among `users` (round-robin capacity).
pub async fn open_load(db: &Db, org: OrgId) -> R<Vec<(UserId, i64)>> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT assignee_id, COUNT(*) FROM inbox_conversations WHERE org_id = $1 \
         AND status IN ('open', 'pending') AND assignee_id IS NOT NULL GROUP BY assignee_id"
    )
    .bind(org)
    .fetch_all(p)
    .await)
}

/// Snoozed conversations whose time has come, across organisations.
pub async fn wake_snoozed(db: &Db, now: Timestamp) -> R<Vec<(OrgId, ConversationId)>> {
    with_write!(db, |p| sqlx::query_as(
        "UPDATE inbox_conversations SET status = 'open', snoozed_until = NULL, updated_at = $1 \
         WHERE status = 'snoozed' AND snoozed_until <= $1 RETURNING org_id, id"
    )
    .bind(now)
    .fetch_all(p)
    .await)
}

pub async fn mark_read(db: &Db, conv: ConversationId, user: UserId, at: Timestamp) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO inbox_reads (conversation_id, user_id, last_read_at) VALUES ($1, $2, $3) \
         ON CONFLICT (conversation_id, user_id) DO UPDATE SET last_read_at = excluded.last_read_at \
         WHERE inbox_reads.last_read_at < excluded.last_read_at"
    )
    .bind(conv)
    .bind(user)
    .bind(at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

// ---- messages ------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct MessageRow {
    pub id: MessageId,
    pub org_id: OrgId,
    pub conversation_id: ConversationId,
    pub channel_id: ChannelId,
    pub direction: String,
    pub kind: String,
    pub text: Option<String>,
    pub content: Option<String>,
    pub media: Option<String>,
    pub reply_to_id: Option<MessageId>,
    pub provider_message_id: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub author_id: Option<UserId>,
    pub private: bool,
    pub purpose: Option<String>,
    pub edited: bool,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

const MSG_COLS: &str = "m.id, m.org_id, m.conversation_id, m.channel_id, m.direction, m.kind, \
     m.text, m.content, m.media, m.reply_to_id, m.provider_message_id, m.status, m.error, \
     m.author_id, m.private, m.purpose, m.edited, m.created_at, m.sent_at, m.delivered_at, \
     m.read_at, m.updated_at";

/// [`MSG_COLS`] without the table alias (for `RETURNING`).
const MSG_COLS_BARE: &str = "id, org_id, conversation_id, channel_id, direction, kind, \
     text, content, media, reply_to_id, provider_message_id, status, error, \
     author_id, private, purpose, edited, created_at, sent_at, delivered_at, \
     read_at, updated_at";

/// Inserts a message; `false` when a message with the same provider id exists on the channel
/// (a redelivered webhook).
pub async fn insert_message(tx: &mut Tx, m: &MessageRow) -> R<bool> {
    Ok(insert_messages_once(tx, std::slice::from_ref(m)).await? == 1)
}

/// Inserts messages, leaving out any whose provider id is already stored on its channel
/// (redelivered webhooks); how many were inserted. On PostgreSQL in one statement of arrays,
/// on SQLite a hundred rows per statement.
pub async fn insert_messages_once(tx: &mut Tx, rows: &[MessageRow]) -> R<u64> {
    if let Tx::Postgres(t) = tx {
        return insert_messages_pg(t, rows, true).await;
    }
    let mut inserted = 0;
    for chunk in rows.chunks(100) {
        inserted += insert_message_rows(tx, chunk, " ON CONFLICT DO NOTHING").await?;
    }
    Ok(inserted)
}

/// Inserts new messages (ids known to be fresh): on PostgreSQL in one statement of arrays, on
/// SQLite [`ROWS_PER_INSERT`] rows per statement.
pub async fn insert_messages(tx: &mut Tx, rows: &[MessageRow]) -> R<()> {
    if let Tx::Postgres(t) = tx {
        insert_messages_pg(t, rows, false).await?;
        return Ok(());
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        insert_message_rows(tx, chunk, "").await?;
    }
    Ok(())
}

/// The messages in one statement, one array per column (see [`insert_conversations_pg`]);
/// `once`: leaving out those whose provider id is already stored. How many were inserted.
async fn insert_messages_pg(
    t: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    rows: &[MessageRow],
    once: bool,
) -> R<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let sql = if once {
        MSG_INSERT_ONCE_PG
    } else {
        MSG_INSERT_PG
    };
    let r = sqlx::query(sql)
        .bind(uuids(rows, |m| m.id.as_uuid()))
        .bind(uuids(rows, |m| m.org_id.as_uuid()))
        .bind(uuids(rows, |m| m.conversation_id.as_uuid()))
        .bind(uuids(rows, |m| m.channel_id.as_uuid()))
        .bind(texts(rows, |m| &m.direction))
        .bind(texts(rows, |m| &m.kind))
        .bind(opt_texts(rows, |m| m.text.as_deref()))
        .bind(opt_texts(rows, |m| m.content.as_deref()))
        .bind(opt_texts(rows, |m| m.media.as_deref()))
        .bind(opt_uuids(rows, |m| m.reply_to_id.map(|i| i.as_uuid())))
        .bind(opt_texts(rows, |m| m.provider_message_id.as_deref()))
        .bind(texts(rows, |m| &m.status))
        .bind(opt_texts(rows, |m| m.error.as_deref()))
        .bind(opt_uuids(rows, |m| m.author_id.map(|i| i.as_uuid())))
        .bind(rows.iter().map(|m| m.private).collect::<Vec<_>>())
        .bind(opt_texts(rows, |m| m.purpose.as_deref()))
        .bind(rows.iter().map(|m| m.edited).collect::<Vec<_>>())
        .bind(millis(rows, |m| m.created_at))
        .bind(opt_millis(rows, |m| m.sent_at))
        .bind(opt_millis(rows, |m| m.delivered_at))
        .bind(opt_millis(rows, |m| m.read_at))
        .bind(millis(rows, |m| m.updated_at))
        .execute(&mut **t)
        .await?;
    Ok(r.rows_affected())
}

/// The PostgreSQL message insert of [`insert_messages_pg`], as a literal for `concat!`.
macro_rules! msg_insert_pg {
    () => {
        "INSERT INTO inbox_messages (id, org_id, conversation_id, channel_id, direction, kind, \
         text, content, media, reply_to_id, provider_message_id, status, error, author_id, \
         private, purpose, edited, created_at, sent_at, delivered_at, read_at, updated_at) \
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], \
         $6::text[], $7::text[], $8::text[], $9::text[], $10::uuid[], $11::text[], $12::text[], \
         $13::text[], $14::uuid[], $15::bool[], $16::text[], $17::bool[], $18::bigint[], \
         $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[])"
    };
}

const MSG_INSERT_PG: &str = msg_insert_pg!();

/// [`MSG_INSERT_PG`] leaving out messages whose provider id is already stored.
const MSG_INSERT_ONCE_PG: &str = concat!(msg_insert_pg!(), " ON CONFLICT DO NOTHING");

/// One `INSERT` of `rows` with `tail` after the values; how many were inserted.
async fn insert_message_rows(tx: &mut Tx, rows: &[MessageRow], tail: &str) -> R<u64> {
    let sql = format!(
        "INSERT INTO inbox_messages (id, org_id, conversation_id, channel_id, direction, kind, \
         text, content, media, reply_to_id, provider_message_id, status, error, author_id, \
         private, purpose, edited, created_at, sent_at, delivered_at, read_at, updated_at) \
         VALUES {}{tail}",
        Params::new(tx.backend()).rows(rows.len(), 22)
    );
    with_tx!(tx, |e| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
        for m in rows {
            q = q
                .bind(m.id)
                .bind(m.org_id)
                .bind(m.conversation_id)
                .bind(m.channel_id)
                .bind(&m.direction)
                .bind(&m.kind)
                .bind(&m.text)
                .bind(&m.content)
                .bind(&m.media)
                .bind(m.reply_to_id)
                .bind(&m.provider_message_id)
                .bind(&m.status)
                .bind(&m.error)
                .bind(m.author_id)
                .bind(m.private)
                .bind(&m.purpose)
                .bind(m.edited)
                .bind(m.created_at)
                .bind(m.sent_at)
                .bind(m.delivered_at)
                .bind(m.read_at)
                .bind(m.updated_at);
        }
        q.execute(e).await.map(|r| r.rows_affected())
    })
}

pub async fn message<'a>(
    ex: impl Into<Ex<'a>>,
    org: OrgId,
    id: MessageId,
) -> R<Option<MessageRow>> {
    let sql = format!("SELECT {MSG_COLS} FROM inbox_messages m WHERE m.id = $1 AND m.org_id = $2");
    on!(ex.into(), |e| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(id)
    .bind(org)
    .fetch_optional(e)
    .await)
}

/// A message by id alone (jobs).
pub async fn message_any(db: &Db, id: MessageId) -> R<Option<MessageRow>> {
    let sql = format!("SELECT {MSG_COLS} FROM inbox_messages m WHERE m.id = $1");
    with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(id)
        .fetch_optional(p)
        .await)
}

pub async fn message_by_provider<'a>(
    ex: impl Into<Ex<'a>>,
    channel: ChannelId,
    provider_id: &str,
) -> R<Option<MessageRow>> {
    let sql = format!(
        "SELECT {MSG_COLS} FROM inbox_messages m WHERE m.channel_id = $1 AND m.provider_message_id = $2"
    );
    on!(ex.into(), |e| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(channel)
    .bind(provider_id)
    .fetch_optional(e)
    .await)
}

/// The ids of the messages stored on `channel` under these provider ids, with those ids.
pub async fn ids_by_provider<'a>(
    ex: impl Into<Ex<'a>>,
    channel: ChannelId,
    provider_ids: &[&str],
) -> R<Vec<(String, MessageId)>> {
    let mut ex = ex.into();
    // PostgreSQL: all of them in one array, one text whatever the count.
    const PG: &str = "SELECT provider_message_id, id FROM inbox_messages WHERE channel_id = $1 \
                      AND provider_message_id = ANY($2::text[])";
    match &mut ex {
        Ex::Db(Db::Postgres(p)) => {
            return sqlx::query_as(PG)
                .bind(channel)
                .bind(provider_ids)
                .fetch_all(p)
                .await;
        }
        Ex::Tx(Tx::Postgres(t)) => {
            return sqlx::query_as(PG)
                .bind(channel)
                .bind(provider_ids)
                .fetch_all(&mut **t)
                .await;
        }
        _ => {}
    }
    let mut out = Vec::with_capacity(provider_ids.len());
    for chunk in provider_ids.chunks(500) {
        let sql = format!(
            "SELECT provider_message_id, id FROM inbox_messages WHERE channel_id = $1 \
             AND provider_message_id IN ({})",
            placeholders(2, chunk.len())
        );
        let rows: Vec<(String, MessageId)> = on!(&mut ex, |e| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(channel);
            for p in chunk {
                q = q.bind(*p);
            }
            q.fetch_all(e).await
        })?;
        out.extend(rows);
    }
    Ok(out)
}

pub async fn messages_by_ids(db: &Db, ids: &[MessageId]) -> R<Vec<MessageRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if let Db::Postgres(p) = db {
        let sql = format!("SELECT {MSG_COLS} FROM inbox_messages m WHERE m.id = ANY($1)");
        return sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(uuids(ids, |i| i.as_uuid()))
            .fetch_all(p)
            .await;
    }
    let sql = format!(
        "SELECT {MSG_COLS} FROM inbox_messages m WHERE m.id IN ({})",
        placeholders(1, ids.len())
    );
    with_db!(db, |p| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}

/// A page of a conversation, newest first, older than `before` when given.
pub async fn page(
    db: &Db,
    conv: ConversationId,
    before: Option<(Timestamp, MessageId)>,
    limit: i64,
) -> R<Vec<MessageRow>> {
    let sql = if before.is_some() {
        format!(
            "SELECT {MSG_COLS} FROM inbox_messages m WHERE m.conversation_id = $1 AND (m.created_at < $2 \
             OR (m.created_at = $2 AND m.id < $3)) ORDER BY m.created_at DESC, m.id DESC LIMIT $4"
        )
    } else {
        format!(
            "SELECT {MSG_COLS} FROM inbox_messages m WHERE m.conversation_id = $1 \
             ORDER BY m.created_at DESC, m.id DESC LIMIT $2"
        )
    };
    with_db!(db, |p| {
        let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(conv);
        match before {
            Some((at, id)) => q.bind(at).bind(id).bind(limit).fetch_all(p).await,
            None => q.bind(limit).fetch_all(p).await,
        }
    })
}

/// The newest customer message of a conversation that the provider knows.
pub async fn last_inbound(db: &Db, conv: ConversationId) -> R<Option<(MessageId, String)>> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT id, provider_message_id FROM inbox_messages WHERE conversation_id = $1 \
         AND direction = 'inbound' AND provider_message_id IS NOT NULL \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    )
    .bind(conv)
    .fetch_optional(p)
    .await)
}

/// Outbound messages of a conversation not yet read (the Sandbox's "customer reads all").
pub async fn unread_outbound(db: &Db, conv: ConversationId) -> R<Vec<String>> {
    let rows: Vec<(String,)> = with_db!(db, |p| sqlx::query_as(
        "SELECT provider_message_id FROM inbox_messages WHERE conversation_id = $1 \
         AND direction = 'outbound' AND provider_message_id IS NOT NULL \
         AND status IN ('sent', 'delivered')"
    )
    .bind(conv)
    .fetch_all(p)
    .await)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Moves a message's delivery status forward: only from one of `from`; sets the time column
/// of the new status and the error. Returns the updated row, `None` when the move does not
/// apply (duplicate, older, or unknown message).
#[allow(clippy::too_many_arguments)]
pub async fn advance_status<'a>(
    ex: impl Into<Ex<'a>>,
    channel: ChannelId,
    provider_id: &str,
    to: &str,
    from: &[&str],
    at: Timestamp,
    error: Option<&str>,
    now: Timestamp,
) -> R<Option<MessageRow>> {
    // The status's own time column (failed has none: `updated_at` says when).
    let stamp = match to {
        "sent" => "sent_at = COALESCE(sent_at, $4), ",
        "delivered" => "delivered_at = COALESCE(delivered_at, $4), ",
        "read" | "played" => "read_at = COALESCE(read_at, $4), ",
        _ => "",
    };
    let from_list = from
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // Reaching delivered/read implies the earlier steps: fill their times when skipped.
    let fill = match to {
        "delivered" => ", sent_at = COALESCE(sent_at, $4)",
        "read" | "played" => {
            ", sent_at = COALESCE(sent_at, $4), delivered_at = COALESCE(delivered_at, $4)"
        }
        _ => "",
    };
    let sql = format!(
        "UPDATE inbox_messages SET status = $3, {stamp}error = COALESCE($5, error), \
         updated_at = $6{fill} WHERE channel_id = $1 AND provider_message_id = $2 \
         AND direction = 'outbound' AND status IN ({from_list}) RETURNING {MSG_COLS_BARE}"
    );
    on!(ex.into(), |p| sqlx::query_as(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(channel)
    .bind(provider_id)
    .bind(to)
    .bind(at)
    .bind(error)
    .bind(now)
    .fetch_optional(p)
    .await)
}

/// A delivery report to apply with [`advance_statuses_pg`]: the message (channel and provider
/// id) moves to `to` only from one of `from`, with the report's time `at` and `error`.
pub struct StatusMove<'a> {
    pub channel: ChannelId,
    pub provider_id: &'a str,
    pub to: &'a str,
    pub from: Vec<&'a str>,
    pub at: Timestamp,
    pub error: Option<String>,
}

/// [`advance_status`] for many reports on PostgreSQL: each report's moved row in order, or
/// `None` for one that changed nothing. The reports go in rounds in which each message comes
/// once (its second report goes in the second round, and so on, so they apply in order), each
/// round one statement of arrays (rows in one order, the messages' locks taken in one order).
/// More than one round share a transaction: all of them apply or none.
pub async fn advance_statuses_pg(
    pool: &sqlx::PgPool,
    moves: &[StatusMove<'_>],
    now: Timestamp,
) -> R<Vec<Option<MessageRow>>> {
    let mut round_of: std::collections::HashMap<(ChannelId, &str), usize> =
        std::collections::HashMap::with_capacity(moves.len());
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, m) in moves.iter().enumerate() {
        let n = round_of.entry((m.channel, m.provider_id)).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    let mut out: Vec<Option<MessageRow>> = (0..moves.len()).map(|_| None).collect();
    if rounds.len() <= 1 {
        for round in &mut rounds {
            let mut conn = pool.acquire().await?;
            status_round_pg(&mut conn, moves, round, now, &mut out).await?;
        }
        return Ok(out);
    }
    let mut tx = pool.begin().await?;
    for round in &mut rounds {
        status_round_pg(&mut tx, moves, round, now, &mut out).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// One round of [`advance_statuses_pg`]: the reports at `round` (each about another message)
/// in one statement; their moved rows go to `out`.
async fn status_round_pg(
    conn: &mut sqlx::PgConnection,
    moves: &[StatusMove<'_>],
    round: &mut [usize],
    now: Timestamp,
    out: &mut [Option<MessageRow>],
) -> R<()> {
    round.sort_unstable_by_key(|i| (moves[*i].channel, moves[*i].provider_id));
    let ms: Vec<&StatusMove> = round.iter().map(|i| &moves[*i]).collect();
    let sql = format!(
        "UPDATE inbox_messages m SET status = u.to_status, \
         sent_at = CASE WHEN u.to_status IN ('sent', 'delivered', 'read', 'played') \
           THEN COALESCE(m.sent_at, u.at) ELSE m.sent_at END, \
         delivered_at = CASE WHEN u.to_status IN ('delivered', 'read', 'played') \
           THEN COALESCE(m.delivered_at, u.at) ELSE m.delivered_at END, \
         read_at = CASE WHEN u.to_status IN ('read', 'played') \
           THEN COALESCE(m.read_at, u.at) ELSE m.read_at END, \
         error = COALESCE(u.error, m.error), updated_at = $7 \
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) \
           AS u(channel_id, provider_id, to_status, from_statuses, at, error) \
         WHERE m.channel_id = u.channel_id AND m.provider_message_id = u.provider_id \
         AND m.direction = 'outbound' AND m.status = ANY(string_to_array(u.from_statuses, ',')) \
         RETURNING {MSG_COLS}"
    );
    let rows: Vec<MessageRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(uuids(&ms, |m| m.channel.as_uuid()))
        .bind(texts(&ms, |m| m.provider_id))
        .bind(texts(&ms, |m| m.to))
        .bind(ms.iter().map(|m| m.from.join(",")).collect::<Vec<_>>())
        .bind(millis(&ms, |m| m.at))
        .bind(opt_texts(&ms, |m| m.error.as_deref()))
        .bind(now)
        .fetch_all(&mut *conn)
        .await?;
    let mut by_message: std::collections::HashMap<(ChannelId, String), MessageRow> = rows
        .into_iter()
        .filter_map(|r| Some(((r.channel_id, r.provider_message_id.clone()?), r)))
        .collect();
    for i in round.iter() {
        let m = &moves[*i];
        out[*i] = by_message.remove(&(m.channel, m.provider_id.to_owned()));
    }
    Ok(())
}

/// The send worker's result: `queued` → `sent` with the provider id (only from `queued`, so a
/// status report that already moved it on is kept).
pub async fn mark_sent(db: &Db, id: MessageId, provider_id: &str, now: Timestamp) -> R<u64> {
    with_write!(db, |p| sqlx::query(
        "UPDATE inbox_messages SET provider_message_id = $2, \
         status = CASE WHEN status = 'queued' THEN 'sent' ELSE status END, \
         sent_at = COALESCE(sent_at, $3), updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(provider_id)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

/// [`mark_sent`] for a batch of sends: on PostgreSQL one statement, on SQLite one per hundred
/// (more than a hundred in one transaction).
pub async fn mark_sent_many(db: &Db, sent: &[(MessageId, String)], now: Timestamp) -> R<()> {
    const CHUNK: usize = 100;
    if let Db::Postgres(pool) = db {
        // One fixed statement of arrays, whatever the count: prepared once per connection.
        let ids: Vec<Uuid> = sent.iter().map(|(id, _)| id.0).collect();
        let provider_ids: Vec<&str> = sent.iter().map(|(_, p)| p.as_str()).collect();
        sqlx::query(
            "UPDATE inbox_messages m SET provider_message_id = u.provider_id, \
             status = CASE WHEN m.status = 'queued' THEN 'sent' ELSE m.status END, \
             sent_at = COALESCE(m.sent_at, $3), updated_at = $3 \
             FROM UNNEST($1::uuid[], $2::text[]) AS u (id, provider_id) WHERE m.id = u.id",
        )
        .bind(ids)
        .bind(provider_ids)
        .bind(now)
        .execute(pool)
        .await?;
        return Ok(());
    }
    let sql_for = |n: usize| {
        case_update(
            db.backend(),
            "inbox_messages",
            "provider_message_id",
            "status = CASE WHEN status = 'queued' THEN 'sent' ELSE status END, \
             sent_at = COALESCE(sent_at, {}), updated_at = {}",
            n,
            2,
        )
    };
    macro_rules! bound {
        ($sql:expr, $chunk:expr) => {{
            let mut q = sqlx::query(sqlx::AssertSqlSafe($sql));
            for (id, provider_id) in $chunk {
                q = q.bind(*id).bind(provider_id);
            }
            q = q.bind(now).bind(now);
            for (id, _) in $chunk {
                q = q.bind(*id);
            }
            q
        }};
    }
    if sent.len() <= CHUNK {
        // One statement at the write turn.
        let sql = sql_for(sent.len());
        with_write!(db, |p| bound!(sql.as_str(), sent)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        return Ok(());
    }
    // More: one transaction, one turn.
    let mut tx = db.begin().await?;
    for chunk in sent.chunks(CHUNK) {
        let sql = sql_for(chunk.len());
        with_tx!(&mut tx, |e| bound!(sql.as_str(), chunk)
            .execute(e)
            .await
            .map(|r| r.rows_affected()))?;
    }
    tx.commit().await
}

pub async fn mark_failed(db: &Db, id: MessageId, error: &str, now: Timestamp) -> R<u64> {
    with_write!(db, |p| sqlx::query(
        "UPDATE inbox_messages SET status = 'failed', error = $2, updated_at = $3 \
         WHERE id = $1 AND status IN ('queued', 'sent')"
    )
    .bind(id)
    .bind(error)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

pub async fn set_media(db: &Db, id: MessageId, media: &str, now: Timestamp) -> R<u64> {
    with_write!(db, |p| sqlx::query(
        "UPDATE inbox_messages SET media = $2, updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(media)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

pub async fn edit_text(tx: &mut Tx, id: MessageId, text: &str, now: Timestamp) -> R<u64> {
    with_tx!(tx, |e| sqlx::query(
        "UPDATE inbox_messages SET text = $2, edited = TRUE, updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(text)
    .bind(now)
    .execute(e)
    .await
    .map(|r| r.rows_affected()))
}

// ---- reactions -----------------------------------------------------------------------------

pub async fn set_reaction(
    tx: &mut Tx,
    message: MessageId,
    actor: &str,
    emoji: &str,
    now: Timestamp,
) -> R<()> {
    if emoji.is_empty() {
        with_tx!(tx, |e| sqlx::query(
            "DELETE FROM inbox_reactions WHERE message_id = $1 AND actor = $2"
        )
        .bind(message)
        .bind(actor)
        .execute(e)
        .await
        .map(|r| r.rows_affected()))?;
    } else {
        with_tx!(tx, |e| {
            sqlx::query(
            "INSERT INTO inbox_reactions (message_id, actor, emoji, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (message_id, actor) DO UPDATE SET emoji = excluded.emoji, created_at = excluded.created_at"
        )
        .bind(message)
        .bind(actor)
        .bind(emoji)
        .bind(now)
        .execute(e)
        .await
    .map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

pub async fn reactions(db: &Db, ids: &[MessageId]) -> R<Vec<(MessageId, String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT message_id, actor, emoji FROM inbox_reactions WHERE message_id IN ({}) ORDER BY created_at",
        placeholders(1, ids.len())
    );
    with_db!(db, |p| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}

// ---- attachments ---------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct AttachmentRow {
    pub id: AttachmentId,
    pub org_id: OrgId,
    pub conversation_id: ConversationId,
    pub blob_key: String,
    pub kind: String,
    pub mime_type: String,
    pub filename: String,
    pub size: i64,
    pub created_by: UserId,
    pub created_at: Timestamp,
}

pub async fn insert_attachment(db: &Db, a: &AttachmentRow) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO inbox_attachments (id, org_id, conversation_id, blob_key, kind, mime_type, \
         filename, size, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )
    .bind(a.id)
    .bind(a.org_id)
    .bind(a.conversation_id)
    .bind(&a.blob_key)
    .bind(&a.kind)
    .bind(&a.mime_type)
    .bind(&a.filename)
    .bind(a.size)
    .bind(a.created_by)
    .bind(a.created_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn attachment(db: &Db, org: OrgId, id: AttachmentId) -> R<Option<AttachmentRow>> {
    with_db!(db, |p| {
        sqlx::query_as(
        "SELECT id, org_id, conversation_id, blob_key, kind, mime_type, filename, size, created_by, \
         created_at FROM inbox_attachments WHERE id = $1 AND org_id = $2"
    )
    .bind(id)
    .bind(org)
    .fetch_optional(p)
    .await
    })
}

// ---- canned responses ----------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct CannedRow {
    pub id: CannedId,
    pub org_id: OrgId,
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub async fn canned_list(db: &Db, org: OrgId, q: Option<&str>) -> R<Vec<CannedRow>> {
    let base = "SELECT id, org_id, shortcut, title, body, created_at, updated_at \
                FROM inbox_canned_responses WHERE org_id = $1";
    with_db!(db, |p| match q {
        Some(q) => {
            let like = format!("%{}%", q.to_lowercase().replace(['%', '_'], ""));
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{base} AND (shortcut LIKE $2 OR LOWER(title) LIKE $2) ORDER BY shortcut LIMIT 50"
            )))
            .bind(org)
            .bind(like)
            .fetch_all(p)
            .await
        }
        None =>
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{base} ORDER BY shortcut")))
                .bind(org)
                .fetch_all(p)
                .await,
    })
}

pub async fn canned(db: &Db, org: OrgId, id: CannedId) -> R<Option<CannedRow>> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT id, org_id, shortcut, title, body, created_at, updated_at \
         FROM inbox_canned_responses WHERE id = $1 AND org_id = $2"
    )
    .bind(id)
    .bind(org)
    .fetch_optional(p)
    .await)
}

pub async fn canned_upsert(db: &Db, c: &CannedRow, by: Option<UserId>, insert: bool) -> R<u64> {
    with_write!(db, |p| if insert {
        sqlx::query(
            "INSERT INTO inbox_canned_responses (id, org_id, shortcut, title, body, created_by, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.id)
        .bind(c.org_id)
        .bind(&c.shortcut)
        .bind(&c.title)
        .bind(&c.body)
        .bind(by)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
    } else {
        sqlx::query(
            "UPDATE inbox_canned_responses SET shortcut = $3, title = $4, body = $5, updated_at = $6 \
             WHERE id = $1 AND org_id = $2",
        )
        .bind(c.id)
        .bind(c.org_id)
        .bind(&c.shortcut)
        .bind(&c.title)
        .bind(&c.body)
        .bind(c.updated_at)
        .execute(p)
        .await
        .map(|r| r.rows_affected())
    })
}

pub async fn canned_delete(db: &Db, org: OrgId, id: CannedId) -> R<u64> {
    with_write!(db, |p| sqlx::query(
        "DELETE FROM inbox_canned_responses WHERE id = $1 AND org_id = $2"
    )
    .bind(id)
    .bind(org)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}
