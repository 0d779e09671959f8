//! Contacts persistence: one function per use case, each taking the organisation it acts in.
//! SQL is written once and compiled for SQLite and PostgreSQL by `with_tx!`/`with_db!`; only the
//! search index differs (an FTS5 table keyed by `contacts.rid` in SQLite, a `tsvector` column in
//! PostgreSQL), and both are written in the same transaction as the contact.

use serde_json::Value;
use sqlx::{FromRow, types::Json};
use wamage_kernel::{OrgId, Timestamp};
use wamage_platform::{Backend, Db, Tx, db::placeholders, with_db, with_tx, with_write};

use wamage_kernel::UserId;

use crate::{
    consent::ConsentId,
    model::{ContactId, GroupId, IdentityId, IdentityKind, ImportId, MergeId, SegmentId, TagId},
    segment::SegmentFilter,
};

type R<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone, FromRow)]
pub struct ContactRow {
    pub id: ContactId,
    pub name: String,
    pub sort_name: String,
    pub company: Option<String>,
    pub language: Option<String>,
    pub time_zone: Option<String>,
    pub notes: Option<String>,
    pub favorite: bool,
    pub blocked: bool,
    pub attributes: Json<Value>,
    /// Blob key of the contact's photo (written only by [`set_avatar`]).
    pub avatar_key: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, FromRow)]
pub struct IdentityRow {
    pub id: IdentityId,
    pub contact_id: ContactId,
    pub kind: String,
    pub value: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, FromRow)]
pub struct AttrDefRow {
    pub attr_key: String,
    pub label: String,
    pub attr_type: String,
    pub options: Json<Vec<String>>,
    pub required: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, FromRow)]
pub struct TagRow {
    pub id: TagId,
    pub name: String,
    pub color: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, FromRow)]
pub struct GroupRow {
    pub id: GroupId,
    pub name: String,
    pub description: Option<String>,
    pub member_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A tag of a contact.
#[derive(Debug, Clone, FromRow)]
pub struct ContactTagRow {
    pub contact_id: ContactId,
    pub id: TagId,
    pub name: String,
    pub color: String,
}

/// A group a contact is in.
#[derive(Debug, Clone, FromRow)]
pub struct ContactGroupRow {
    pub contact_id: ContactId,
    pub id: GroupId,
    pub name: String,
}

// ---- settings ------------------------------------------------------------------------------

pub async fn default_country(db: &Db, org: OrgId) -> R<Option<String>> {
    let row: Option<(String,)> = with_db!(db, |p| sqlx::query_as(
        "SELECT default_country FROM contact_settings WHERE org_id = $1"
    )
    .bind(org)
    .fetch_optional(p)
    .await)?;
    Ok(row.map(|(c,)| c))
}

pub async fn set_default_country(db: &Db, org: OrgId, country: &str, now: Timestamp) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO contact_settings (org_id, default_country, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id) DO UPDATE SET default_country = excluded.default_country, \
         updated_at = excluded.updated_at"
    )
    .bind(org)
    .bind(country)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

// ---- attribute definitions -------------------------------------------------------------------

const DEF_COLS: &str = "attr_key, label, attr_type, options, required, created_at, updated_at";

pub async fn attr_defs(db: &Db, org: OrgId) -> R<Vec<AttrDefRow>> {
    with_db!(db, |p| sqlx::query_as::<_, AttrDefRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {DEF_COLS} FROM contact_attribute_defs WHERE org_id = $1 ORDER BY attr_key"
        ))
    )
    .bind(org)
    .fetch_all(p)
    .await)
}

pub async fn attr_defs_tx(tx: &mut Tx, org: OrgId) -> R<Vec<AttrDefRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, AttrDefRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {DEF_COLS} FROM contact_attribute_defs WHERE org_id = $1 ORDER BY attr_key"
        ))
    )
    .bind(org)
    .fetch_all(c)
    .await)
}

pub struct NewAttrDef<'a> {
    pub key: &'a str,
    pub label: &'a str,
    pub attr_type: &'a str,
    pub options: &'a [String],
    pub required: bool,
}

pub async fn insert_attr_def(db: &Db, org: OrgId, d: &NewAttrDef<'_>, now: Timestamp) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO contact_attribute_defs \
         (org_id, attr_key, label, attr_type, options, required, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)"
    )
    .bind(org)
    .bind(d.key)
    .bind(d.label)
    .bind(d.attr_type)
    .bind(Json(d.options))
    .bind(d.required)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes label, options and required of an existing definition; false when there is none.
pub async fn update_attr_def(
    tx: &mut Tx,
    org: OrgId,
    key: &str,
    label: &str,
    options: &[String],
    required: bool,
    now: Timestamp,
) -> R<bool> {
    let n = with_tx!(tx, |c| sqlx::query(
        "UPDATE contact_attribute_defs SET label = $3, options = $4, required = $5, \
         updated_at = $6 WHERE org_id = $1 AND attr_key = $2"
    )
    .bind(org)
    .bind(key)
    .bind(label)
    .bind(Json(options))
    .bind(required)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

pub async fn delete_attr_def(tx: &mut Tx, org: OrgId, key: &str) -> R<bool> {
    let n = with_tx!(tx, |c| sqlx::query(
        "DELETE FROM contact_attribute_defs WHERE org_id = $1 AND attr_key = $2"
    )
    .bind(org)
    .bind(key)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Contacts that hold a value for attribute `key`.
pub async fn contacts_with_attr(tx: &mut Tx, org: OrgId, key: &str) -> R<Vec<ContactRow>> {
    match tx {
        Tx::Sqlite(t, _) => {
            sqlx::query_as::<_, ContactRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {CONTACT_COLS} FROM contacts c WHERE c.org_id = $1 \
                 AND json_type(c.attributes, $2) IS NOT NULL"
            )))
            .bind(org)
            .bind(format!("$.\"{key}\""))
            .fetch_all(&mut **t)
            .await
        }
        Tx::Postgres(t) => {
            sqlx::query_as::<_, ContactRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {CONTACT_COLS} FROM contacts c WHERE c.org_id = $1 AND c.attributes ? $2"
            )))
            .bind(org)
            .bind(key)
            .fetch_all(&mut **t)
            .await
        }
    }
}

// ---- contacts ----------------------------------------------------------------------------------

const CONTACT_COLS: &str = "c.id, c.name, c.sort_name, c.company, c.language, c.time_zone, \
    c.notes, c.favorite, c.blocked, c.attributes, c.avatar_key, c.created_at, c.updated_at";

/// Inserts a contact row (every field as given).
pub async fn insert_contact(tx: &mut Tx, org: OrgId, c: &ContactRow) -> R<()> {
    with_tx!(tx, |conn| sqlx::query(
        "INSERT INTO contacts (id, org_id, name, sort_name, company, language, time_zone, notes, \
         favorite, blocked, attributes, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    )
    .bind(c.id)
    .bind(org)
    .bind(&c.name)
    .bind(&c.sort_name)
    .bind(&c.company)
    .bind(&c.language)
    .bind(&c.time_zone)
    .bind(&c.notes)
    .bind(c.favorite)
    .bind(c.blocked)
    .bind(&c.attributes)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes every field of an existing contact; false when it is not in `org`.
pub async fn update_contact(tx: &mut Tx, org: OrgId, c: &ContactRow) -> R<bool> {
    let n = with_tx!(tx, |conn| sqlx::query(
        "UPDATE contacts SET name = $3, sort_name = $4, company = $5, language = $6, \
         time_zone = $7, notes = $8, favorite = $9, blocked = $10, attributes = $11, \
         updated_at = $12 WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(c.id)
    .bind(&c.name)
    .bind(&c.sort_name)
    .bind(&c.company)
    .bind(&c.language)
    .bind(&c.time_zone)
    .bind(&c.notes)
    .bind(c.favorite)
    .bind(c.blocked)
    .bind(&c.attributes)
    .bind(c.updated_at)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Marks a contact changed (an identity was added or removed).
pub async fn touch_contact(tx: &mut Tx, org: OrgId, id: ContactId, now: Timestamp) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE contacts SET updated_at = $3 WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get_contact(db: &Db, org: OrgId, id: ContactId) -> R<Option<ContactRow>> {
    with_db!(db, |p| sqlx::query_as::<_, ContactRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {CONTACT_COLS} FROM contacts c WHERE c.org_id = $1 AND c.id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(p)
    .await)
}

/// These contacts of `org` (missing ones are left out).
pub async fn get_contacts(db: &Db, org: OrgId, ids: &[ContactId]) -> R<Vec<ContactRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {CONTACT_COLS} FROM contacts c WHERE c.org_id = $1 AND c.id IN ({})",
        placeholders(2, ids.len())
    );
    with_db!(db, |p| {
        let mut q = sqlx::query_as::<_, ContactRow>(sqlx::AssertSqlSafe(sql)).bind(org);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}

pub async fn get_contact_tx(tx: &mut Tx, org: OrgId, id: ContactId) -> R<Option<ContactRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, ContactRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {CONTACT_COLS} FROM contacts c WHERE c.org_id = $1 AND c.id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(c)
    .await)
}

/// The names of these contacts of `org` (missing ones are left out).
pub async fn contact_names_tx(
    tx: &mut Tx,
    org: OrgId,
    ids: &[ContactId],
) -> R<Vec<(ContactId, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    if let Tx::Postgres(t) = tx {
        // One text whatever the count (prepared once per connection).
        let ids: Vec<uuid::Uuid> = ids.iter().map(|i| i.as_uuid()).collect();
        return sqlx::query_as(
            "SELECT c.id, c.name FROM contacts c WHERE c.org_id = $1 AND c.id = ANY($2)",
        )
        .bind(org)
        .bind(ids)
        .fetch_all(&mut **t)
        .await;
    }
    let sql = format!(
        "SELECT c.id, c.name FROM contacts c WHERE c.org_id = $1 AND c.id IN ({})",
        placeholders(2, ids.len())
    );
    with_tx!(tx, |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(org);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(c).await
    })
}

/// Sets a contact's photo (`None` removes it) and returns the previous key, so its blob can be
/// deleted; `None` when the contact is not in `org`. The row is written first so a concurrent
/// change waits for this transaction and no previous key is ever lost (a lost key is an orphaned
/// blob). Rolling back leaves everything as it was.
pub async fn set_avatar(
    tx: &mut Tx,
    org: OrgId,
    id: ContactId,
    key: Option<&str>,
    now: Timestamp,
) -> R<Option<Option<String>>> {
    let n = with_tx!(tx, |c| sqlx::query(
        "UPDATE contacts SET updated_at = $3 WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    if n == 0 {
        return Ok(None);
    }
    let old = avatar_key(tx, org, id).await?;
    with_tx!(tx, |c| sqlx::query(
        "UPDATE contacts SET avatar_key = $3 WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .bind(key)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(Some(old))
}

/// The blob key of a contact's photo, if it has one.
pub async fn avatar_key(tx: &mut Tx, org: OrgId, id: ContactId) -> R<Option<String>> {
    let row: Option<(Option<String>,)> = with_tx!(tx, |c| sqlx::query_as(
        "SELECT avatar_key FROM contacts WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .fetch_optional(c)
    .await)?;
    Ok(row.and_then(|(k,)| k))
}

/// Deletes a contact with its identities and its search entry; false when it is not in `org`.
pub async fn delete_contact(tx: &mut Tx, org: OrgId, id: ContactId) -> R<bool> {
    if tx.backend() == Backend::Sqlite {
        with_tx!(tx, |c| sqlx::query(
            "DELETE FROM contacts_fts WHERE rowid = \
             (SELECT rid FROM contacts WHERE org_id = $1 AND id = $2)"
        )
        .bind(org)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    for table in [
        "contact_identities",
        "contact_tag_links",
        "contact_group_members",
        "contact_consents",
    ] {
        with_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE org_id = $1 AND contact_id = $2"
        )))
        .bind(org)
        .bind(id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    let n = with_tx!(tx, |c| sqlx::query(
        "DELETE FROM contacts WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Replaces the search words of a contact.
pub async fn set_search_words(tx: &mut Tx, id: ContactId, words: &[String]) -> R<()> {
    match tx {
        Tx::Sqlite(t, _) => {
            sqlx::query(
                "DELETE FROM contacts_fts WHERE rowid = (SELECT rid FROM contacts WHERE id = $1)",
            )
            .bind(id)
            .execute(&mut **t)
            .await?;
            sqlx::query(
                "INSERT INTO contacts_fts (rowid, body) SELECT rid, $2 FROM contacts WHERE id = $1",
            )
            .bind(id)
            .bind(words.join(" "))
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            sqlx::query("UPDATE contacts SET search = array_to_tsvector($2::text[]) WHERE id = $1")
                .bind(id)
                .bind(words)
                .execute(&mut **t)
                .await?;
        }
    }
    Ok(())
}

/// Which order a list is in, with the position after which a page starts.
#[derive(Debug, Clone)]
pub enum After {
    Name(String, ContactId),
    CreatedAt(Timestamp, ContactId),
    UpdatedAt(Timestamp, ContactId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Name,
    CreatedDesc,
    UpdatedDesc,
}

pub struct ListFilter {
    /// Lower-cased search words, each matched as a prefix (all must match).
    pub words: Vec<String>,
    pub favorite: Option<bool>,
    pub blocked: Option<bool>,
    /// Only contacts with this tag.
    pub tag: Option<TagId>,
    /// Only contacts in this group.
    pub group: Option<GroupId>,
    /// Only contacts the segment filter matches.
    pub segment: Option<SegmentFilter>,
    pub sort: Sort,
    pub after: Option<After>,
    /// Rows to fetch (the page size plus one).
    pub fetch: i64,
}

/// A value bound to a built query.
pub enum Arg {
    Str(String),
    Float(f64),
    Bool(bool),
    Time(Timestamp),
    Id(ContactId),
    Int(i64),
    Tag(TagId),
    Group(GroupId),
}

/// A page of contacts in the filter's order.
pub async fn list_contacts(db: &Db, org: OrgId, f: &ListFilter) -> R<Vec<ContactRow>> {
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |a: Arg| {
        args.push(a);
        format!("${}", args.len() + 1)
    };
    // SQLite plans a search one of two ways and cannot tell which is cheaper: walk the list's
    // index in order and test each contact against the matches (fast when most contacts match,
    // e.g. a one-letter prefix), or look up the matches by rowid and sort them (fast when few
    // do — a name or phone number being typed). A capped count of the matches picks: under
    // `SPARSE_MATCHES`, `+c.org_id` keeps SQLite off the ordered index and on the matches.
    const SPARSE_MATCHES: i64 = 2_000;
    let fts_query = (db.backend() == Backend::Sqlite && !f.words.is_empty()).then(|| {
        f.words
            .iter()
            .map(|w| format!("\"{w}\"*"))
            .collect::<Vec<_>>()
            .join(" AND ")
    });
    let ts_query = (db.backend() == Backend::Postgres && !f.words.is_empty()).then(|| {
        f.words
            .iter()
            .map(|w| format!("'{w}':*"))
            .collect::<Vec<_>>()
            .join(" & ")
    });
    let sparse = match (&fts_query, &ts_query, db) {
        (Some(q), _, Db::Sqlite(pool)) => {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM (SELECT 1 FROM contacts_fts WHERE contacts_fts MATCH $1 \
                 LIMIT $2)",
            )
            .bind(q)
            .bind(SPARSE_MATCHES + 1)
            .fetch_one(pool)
            .await?;
            n <= SPARSE_MATCHES
        }
        (_, Some(q), Db::Postgres(pool)) => {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM (SELECT 1 FROM contacts WHERE org_id = $1 \
                 AND search @@ $2::tsquery LIMIT $3) s",
            )
            .bind(org)
            .bind(q)
            .bind(SPARSE_MATCHES + 1)
            .fetch_one(pool)
            .await?;
            n <= SPARSE_MATCHES
        }
        _ => false,
    };
    // PostgreSQL: the same choice, made with an `OFFSET 0` fence — the matches are found by the
    // GIN index inside it and sorted outside.
    let pg_fence = sparse && db.backend() == Backend::Postgres;
    let org_term = if sparse && !pg_fence {
        "+c.org_id"
    } else {
        "c.org_id"
    };
    let mut sql = format!("SELECT {CONTACT_COLS} FROM contacts c WHERE {org_term} = $1");
    if !f.words.is_empty() {
        match db.backend() {
            Backend::Sqlite => {
                let p = push(Arg::Str(fts_query.clone().unwrap_or_default()));
                sql.push_str(&format!(
                    " AND c.rid IN (SELECT rowid FROM contacts_fts WHERE contacts_fts MATCH {p})"
                ));
            }
            Backend::Postgres => {
                let p = push(Arg::Str(ts_query.clone().unwrap_or_default()));
                sql.push_str(&format!(" AND c.search @@ {p}::tsquery"));
            }
        }
    }
    if let Some(v) = f.favorite {
        let p = push(Arg::Bool(v));
        sql.push_str(&format!(" AND c.favorite = {p}"));
    }
    if let Some(v) = f.blocked {
        let p = push(Arg::Bool(v));
        sql.push_str(&format!(" AND c.blocked = {p}"));
    }
    if let Some(t) = f.tag {
        let p = push(Arg::Tag(t));
        sql.push_str(&format!(
            " AND c.id IN (SELECT contact_id FROM contact_tag_links WHERE org_id = $1 AND tag_id = {p})"
        ));
    }
    if let Some(g) = f.group {
        let p = push(Arg::Group(g));
        sql.push_str(&format!(
            " AND c.id IN (SELECT contact_id FROM contact_group_members \
             WHERE org_id = $1 AND group_id = {p})"
        ));
    }
    if let Some(seg) = &f.segment {
        let cond = seg.to_sql(db.backend(), &mut push);
        sql.push_str(&format!(" AND {cond}"));
    }
    match &f.after {
        None => {}
        Some(After::Name(k, id)) => {
            let (a, b) = (push(Arg::Str(k.clone())), push(Arg::Id(*id)));
            sql.push_str(&format!(" AND (c.sort_name, c.id) > ({a}, {b})"));
        }
        Some(After::CreatedAt(t, id)) => {
            let (a, b) = (push(Arg::Time(*t)), push(Arg::Id(*id)));
            sql.push_str(&format!(" AND (c.created_at, c.id) < ({a}, {b})"));
        }
        Some(After::UpdatedAt(t, id)) => {
            let (a, b) = (push(Arg::Time(*t)), push(Arg::Id(*id)));
            sql.push_str(&format!(" AND (c.updated_at, c.id) < ({a}, {b})"));
        }
    }
    if pg_fence {
        sql = format!("SELECT c.* FROM ({sql} OFFSET 0) c");
    }
    sql.push_str(match f.sort {
        Sort::Name => " ORDER BY c.sort_name, c.id",
        Sort::CreatedDesc => " ORDER BY c.created_at DESC, c.id DESC",
        Sort::UpdatedDesc => " ORDER BY c.updated_at DESC, c.id DESC",
    });
    let p = push(Arg::Int(f.fetch));
    sql.push_str(&format!(" LIMIT {p}"));
    with_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, ContactRow>(sqlx::AssertSqlSafe(sql)).bind(org);
        for a in args {
            q = match a {
                Arg::Str(s) => q.bind(s),
                Arg::Float(n) => q.bind(n),
                Arg::Bool(b) => q.bind(b),
                Arg::Time(t) => q.bind(t),
                Arg::Id(id) => q.bind(id),
                Arg::Int(n) => q.bind(n),
                Arg::Tag(t) => q.bind(t),
                Arg::Group(g) => q.bind(g),
            };
        }
        q.fetch_all(pool).await
    })
}

/// How many contacts of `org` the filter matches.
pub async fn count_contacts(db: &Db, org: OrgId, filter: &SegmentFilter) -> R<i64> {
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |a: Arg| {
        args.push(a);
        format!("${}", args.len() + 1)
    };
    let cond = filter.to_sql(db.backend(), &mut push);
    let sql = format!("SELECT COUNT(*) FROM contacts c WHERE c.org_id = $1 AND {cond}");
    let (n,): (i64,) = with_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql)).bind(org);
        for a in args {
            q = match a {
                Arg::Str(s) => q.bind(s),
                Arg::Float(n) => q.bind(n),
                Arg::Bool(b) => q.bind(b),
                Arg::Time(t) => q.bind(t),
                Arg::Id(id) => q.bind(id),
                Arg::Int(n) => q.bind(n),
                Arg::Tag(t) => q.bind(t),
                Arg::Group(g) => q.bind(g),
            };
        }
        q.fetch_one(pool).await
    })?;
    Ok(n)
}

/// The organisations with at least `min` contacts.
pub async fn orgs_with_contacts(db: &Db, min: i64) -> R<Vec<OrgId>> {
    with_db!(db, |p| sqlx::query_scalar::<_, OrgId>(
        "SELECT org_id FROM contacts GROUP BY org_id HAVING COUNT(*) >= $1"
    )
    .bind(min)
    .fetch_all(p)
    .await)
}

/// Feeds a count index builder every contact of `org`, then its group memberships, tag links,
/// identity kinds and consent ledger (oldest entry first), and gives it back. Nothing but the index being built
/// is held: PostgreSQL streams rows; SQLite reads pages of thousands of rows as one JSON row
/// each (sqlx hands every result row of SQLite to another thread and back: per row, that was
/// half the build), and the pages are fed to the builder on the blocking pool.
pub async fn load_count_index(db: &Db, org: OrgId, b: CountBuilder) -> R<CountBuilder> {
    let started = std::time::Instant::now();
    let mut b = match db {
        Db::Sqlite(pool) => load_count_index_sqlite(pool, org, b).await?,
        Db::Postgres(pool) => load_count_index_postgres(pool, org, b).await?,
    };
    let lists_at = started.elapsed();
    load_consents(db, org, &mut b).await?;
    tracing::debug!(
        consents_ms = (started.elapsed() - lists_at).as_millis() as u64,
        "count index consents read"
    );
    Ok(b)
}

type CountBuilder = crate::count_index::Builder;
use crate::count_index::ContactFacts;

/// Runs `feed` on the builder on the blocking pool; a page it cannot read fails the load (an
/// index missing rows would count wrong).
async fn feed_blocking(
    mut b: CountBuilder,
    feed: impl FnOnce(&mut CountBuilder) -> Result<(), serde_json::Error> + Send + 'static,
) -> R<CountBuilder> {
    tokio::task::spawn_blocking(move || feed(&mut b).map(|()| b))
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("count index builder: {e}")))?
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Rows of SQLite per page of a count index load (tests make pages small to cross them).
static COUNT_PAGE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(20_000);

#[doc(hidden)]
pub fn set_count_index_page_rows(n: i64) {
    COUNT_PAGE.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

fn count_page() -> i64 {
    COUNT_PAGE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Feeds `b` the pages `sql` reads (`COUNT(*)`, the page's last rowid and its rows as one JSON
/// array, given the organisation, the rowid to start after and the page size), each through
/// `feed` on the blocking pool.
async fn sqlite_rowid_pages(
    pool: &sqlx::SqlitePool,
    org: OrgId,
    page_rows: i64,
    sql: &'static str,
    mut b: CountBuilder,
    feed: fn(&mut CountBuilder, &str) -> Result<(), serde_json::Error>,
) -> R<CountBuilder> {
    let mut after = 0i64;
    loop {
        let (n, last, page): (i64, Option<i64>, String) = sqlx::query_as(sql)
            .bind(org)
            .bind(after)
            .bind(page_rows)
            .fetch_one(pool)
            .await?;
        let Some(last) = last.filter(|_| n > 0) else {
            return Ok(b);
        };
        after = last;
        b = feed_blocking(b, move |b| feed(b, &page)).await?;
        if n < page_rows {
            return Ok(b);
        }
    }
}

async fn load_count_index_sqlite(
    pool: &sqlx::SqlitePool,
    org: OrgId,
    mut b: CountBuilder,
) -> R<CountBuilder> {
    // (id, favorite, blocked, created_at, attributes) per contact. Pages walk the rowid
    // (`+org_id`: through an organisation index the planner sorted every page).
    type ContactJson = (
        uuid::Uuid,
        u8,
        u8,
        i64,
        serde_json::Map<String, Value>,
        u8,
        u8,
        u8,
    );
    let started = std::time::Instant::now();
    let page_rows = count_page();
    b = sqlite_rowid_pages(
        pool,
        org,
        page_rows,
        "SELECT COUNT(*), MAX(rid), json_group_array(json_array(lower(hex(id)), favorite, \
         blocked, created_at, json(attributes), name = '', COALESCE(company, '') = '', \
         COALESCE(language, '') = '')) FROM (SELECT rid, id, favorite, blocked, created_at, \
         attributes, name, company, language FROM contacts WHERE +org_id = ? AND rid > ? \
         ORDER BY rid LIMIT ?)",
        b,
        |b, page| {
            for (id, favorite, blocked, created_at, attrs, no_name, no_company, no_language) in
                serde_json::from_str::<Vec<ContactJson>>(page)?
            {
                b.contact(&ContactFacts {
                    id: ContactId(id),
                    favorite: favorite != 0,
                    blocked: blocked != 0,
                    created_at: Timestamp(created_at),
                    attributes: &attrs,
                    no_name: no_name != 0,
                    no_company: no_company != 0,
                    no_language: no_language != 0,
                });
            }
            Ok(())
        },
    )
    .await?;
    let contacts_at = started.elapsed();
    // Members of each group and tag, in pages along their `(group_id, contact_id)` and
    // `(tag_id, contact_id)` indexes.
    let groups: Vec<(GroupId,)> = sqlx::query_as("SELECT id FROM contact_groups WHERE org_id = ?")
        .bind(org)
        .fetch_all(pool)
        .await?;
    let tags: Vec<(TagId,)> = sqlx::query_as("SELECT id FROM contact_tags WHERE org_id = ?")
        .bind(org)
        .fetch_all(pool)
        .await?;
    let lists = groups
        .into_iter()
        .map(|(g,)| (g.0, "contact_group_members", "group_id", true))
        .chain(
            tags.into_iter()
                .map(|(t,)| (t.0, "contact_tag_links", "tag_id", false)),
        );
    for (list, table, column, is_group) in lists {
        let mut after = ContactId(uuid::Uuid::nil());
        loop {
            let (n, page): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*), json_group_array(lower(hex(contact_id))) FROM (SELECT \
                 contact_id FROM {table} WHERE {column} = ? AND contact_id > ? \
                 ORDER BY contact_id LIMIT ?)"
            )))
            .bind(list)
            .bind(after)
            .bind(page_rows)
            .fetch_one(pool)
            .await?;
            if n == 0 {
                break;
            }
            let ids: Vec<uuid::Uuid> =
                serde_json::from_str(&page).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let Some(last) = ids.last() else { break };
            after = ContactId(*last);
            b = feed_blocking(b, move |b| {
                for id in ids {
                    if is_group {
                        b.group_member(GroupId(list), ContactId(id));
                    } else {
                        b.tag_link(TagId(list), ContactId(id));
                    }
                }
                Ok(())
            })
            .await?;
            if n < page_rows {
                break;
            }
        }
    }
    // Identity kinds, in pages along the rowid.
    b = sqlite_rowid_pages(
        pool,
        org,
        page_rows,
        "SELECT COUNT(*), MAX(r), json_group_array(json_array(lower(hex(contact_id)), kind)) \
         FROM (SELECT rowid AS r, contact_id, kind FROM contact_identities \
         WHERE +org_id = ? AND rowid > ? ORDER BY rowid LIMIT ?)",
        b,
        |b, page| {
            for (contact, kind) in serde_json::from_str::<Vec<(uuid::Uuid, String)>>(page)? {
                if let Some(kind) = IdentityKind::from_db(&kind) {
                    b.identity(ContactId(contact), kind);
                }
            }
            Ok(())
        },
    )
    .await?;
    tracing::debug!(
        contacts_ms = contacts_at.as_millis() as u64,
        rest_ms = (started.elapsed() - contacts_at).as_millis() as u64,
        "count index contacts, lists and identities read"
    );
    Ok(b)
}

async fn load_count_index_postgres(
    pool: &sqlx::PgPool,
    org: OrgId,
    mut b: CountBuilder,
) -> R<CountBuilder> {
    use futures::TryStreamExt as _;
    type ContactCols = (
        ContactId,
        bool,
        bool,
        Timestamp,
        Json<serde_json::Map<String, Value>>,
        bool,
        bool,
        bool,
    );
    let started = std::time::Instant::now();
    let mut rows = sqlx::query_as::<_, ContactCols>(
        "SELECT id, favorite, blocked, created_at, attributes, name = '', \
         COALESCE(company, '') = '', COALESCE(language, '') = '' FROM contacts WHERE org_id = $1",
    )
    .bind(org)
    .fetch(pool);
    while let Some((id, favorite, blocked, created_at, attrs, no_name, no_company, no_language)) =
        rows.try_next().await?
    {
        b.contact(&ContactFacts {
            id,
            favorite,
            blocked,
            created_at,
            attributes: &attrs.0,
            no_name,
            no_company,
            no_language,
        });
    }
    drop(rows);
    let contacts_at = started.elapsed();
    // Through the organisation's groups and tags: their indexes lead with the id.
    let mut rows = sqlx::query_as::<_, (bool, uuid::Uuid, ContactId)>(
        "SELECT TRUE, m.group_id, m.contact_id FROM contact_groups g \
         JOIN contact_group_members m ON m.group_id = g.id WHERE g.org_id = $1 \
         UNION ALL SELECT FALSE, l.tag_id, l.contact_id FROM contact_tags t \
         JOIN contact_tag_links l ON l.tag_id = t.id WHERE t.org_id = $1",
    )
    .bind(org)
    .fetch(pool);
    while let Some((is_group, list, contact)) = rows.try_next().await? {
        if is_group {
            b.group_member(GroupId(list), contact);
        } else {
            b.tag_link(TagId(list), contact);
        }
    }
    drop(rows);
    let mut rows = sqlx::query_as::<_, (ContactId, String)>(
        "SELECT contact_id, kind FROM contact_identities WHERE org_id = $1",
    )
    .bind(org)
    .fetch(pool);
    while let Some((contact, kind)) = rows.try_next().await? {
        if let Some(kind) = IdentityKind::from_db(&kind) {
            b.identity(contact, kind);
        }
    }
    drop(rows);
    tracing::debug!(
        contacts_ms = contacts_at.as_millis() as u64,
        rest_ms = (started.elapsed() - contacts_at).as_millis() as u64,
        "count index contacts, lists and identities read"
    );
    Ok(b)
}

/// The consent ledger of `org`, oldest entry first (the last entry per contact, channel and
/// purpose is its state).
async fn load_consents(db: &Db, org: OrgId, b: &mut CountBuilder) -> R<()> {
    use futures::TryStreamExt as _;

    use crate::consent::{ConsentChannel, ConsentPurpose, ConsentStatus};
    with_db!(db, |pool| {
        let mut rows = sqlx::query_as::<_, (ContactId, String, String, String)>(
            "SELECT contact_id, channel, purpose, status FROM contact_consents \
             WHERE org_id = $1 ORDER BY seq",
        )
        .bind(org)
        .fetch(pool);
        while let Some((contact, channel, purpose, status)) = rows.try_next().await? {
            // CHECK constraints keep these valid.
            if let (Some(c), Some(p), Some(s)) = (
                ConsentChannel::from_db(&channel),
                ConsentPurpose::from_db(&purpose),
                ConsentStatus::from_db(&status),
            ) {
                b.consent(contact, c, p, s);
            }
        }
        Ok(())
    })
}

// ---- segments --------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct SegmentRow {
    pub id: SegmentId,
    pub name: String,
    pub description: Option<String>,
    pub filter: Json<Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const SEGMENT_COLS: &str = "id, name, description, filter, created_at, updated_at";

pub async fn segments(db: &Db, org: OrgId) -> R<Vec<SegmentRow>> {
    with_db!(db, |p| sqlx::query_as::<_, SegmentRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {SEGMENT_COLS} FROM contact_segments WHERE org_id = $1 ORDER BY name_key, id"
        ))
    )
    .bind(org)
    .fetch_all(p)
    .await)
}

pub async fn get_segment(db: &Db, org: OrgId, id: SegmentId) -> R<Option<SegmentRow>> {
    with_db!(db, |p| sqlx::query_as::<_, SegmentRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {SEGMENT_COLS} FROM contact_segments WHERE org_id = $1 AND id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn insert_segment(db: &Db, org: OrgId, s: &SegmentRow) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO contact_segments \
         (id, org_id, name, name_key, description, filter, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )
    .bind(s.id)
    .bind(org)
    .bind(&s.name)
    .bind(s.name.to_lowercase())
    .bind(&s.description)
    .bind(&s.filter)
    .bind(s.created_at)
    .bind(s.updated_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes name, description and filter of a segment; false when it is not in `org`.
pub async fn update_segment(db: &Db, org: OrgId, s: &SegmentRow) -> R<bool> {
    let n = with_write!(db, |p| sqlx::query(
        "UPDATE contact_segments SET name = $3, name_key = $4, description = $5, filter = $6, \
         updated_at = $7 WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(s.id)
    .bind(&s.name)
    .bind(s.name.to_lowercase())
    .bind(&s.description)
    .bind(&s.filter)
    .bind(s.updated_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

pub async fn delete_segment(db: &Db, org: OrgId, id: SegmentId) -> R<bool> {
    let n = with_write!(db, |p| sqlx::query(
        "DELETE FROM contact_segments WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

// ---- identities --------------------------------------------------------------------------------

pub async fn insert_identity(
    tx: &mut Tx,
    org: OrgId,
    contact: ContactId,
    id: IdentityId,
    kind: &str,
    value: &str,
    now: Timestamp,
) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO contact_identities (id, org_id, contact_id, kind, value, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(id)
    .bind(org)
    .bind(contact)
    .bind(kind)
    .bind(value)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The contact that has this identity in `org`, if any.
pub async fn identity_owner(db: &Db, org: OrgId, kind: &str, value: &str) -> R<Option<ContactId>> {
    let row: Option<(ContactId,)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT contact_id FROM contact_identities WHERE org_id = $1 AND kind = $2 AND value = $3"
    )
    .bind(org)
    .bind(kind)
    .bind(value)
    .fetch_optional(p)
    .await
    })?;
    Ok(row.map(|(c,)| c))
}

pub async fn identity_owner_tx(
    tx: &mut Tx,
    org: OrgId,
    kind: &str,
    value: &str,
) -> R<Option<ContactId>> {
    let row: Option<(ContactId,)> = with_tx!(tx, |c| {
        sqlx::query_as(
        "SELECT contact_id FROM contact_identities WHERE org_id = $1 AND kind = $2 AND value = $3"
    )
    .bind(org)
    .bind(kind)
    .bind(value)
    .fetch_optional(c)
    .await
    })?;
    Ok(row.map(|(c,)| c))
}

pub async fn delete_identity(
    tx: &mut Tx,
    org: OrgId,
    contact: ContactId,
    id: IdentityId,
) -> R<bool> {
    let n = with_tx!(tx, |c| sqlx::query(
        "DELETE FROM contact_identities WHERE org_id = $1 AND contact_id = $2 AND id = $3"
    )
    .bind(org)
    .bind(contact)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// SQLite is told which index to use: without statistics it prefers the unique
/// `(org_id, kind, value)` index for `org_id = ?` and reads every identity of the organisation
/// (seconds at a million contacts) instead of the few of these contacts.
fn identities_sql(n: usize, backend: Backend) -> String {
    let list = (0..n)
        .map(|i| format!("${}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = match backend {
        Backend::Sqlite => " INDEXED BY contact_identities_contact_idx",
        Backend::Postgres => "",
    };
    format!(
        "SELECT id, contact_id, kind, value, created_at FROM contact_identities{hint} \
         WHERE org_id = $1 AND contact_id IN ({list}) ORDER BY created_at, id"
    )
}

/// The identities of these contacts, oldest first.
pub async fn identities_of(db: &Db, org: OrgId, contacts: &[ContactId]) -> R<Vec<IdentityRow>> {
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = identities_sql(contacts.len(), db.backend());
    with_db!(db, |p| {
        let mut q = sqlx::query_as::<_, IdentityRow>(sqlx::AssertSqlSafe(sql)).bind(org);
        for c in contacts {
            q = q.bind(*c);
        }
        q.fetch_all(p).await
    })
}

pub async fn identities_of_tx(tx: &mut Tx, org: OrgId, contact: ContactId) -> R<Vec<IdentityRow>> {
    let sql = identities_sql(1, tx.backend());
    with_tx!(tx, |c| sqlx::query_as::<_, IdentityRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(org)
    .bind(contact)
    .fetch_all(c)
    .await)
}

// ---- tags and groups -------------------------------------------------------------------------

const TAG_COLS: &str = "id, name, color, created_at, updated_at";

pub async fn tags(db: &Db, org: OrgId) -> R<Vec<TagRow>> {
    with_db!(db, |p| sqlx::query_as::<_, TagRow>(sqlx::AssertSqlSafe(
        format!("SELECT {TAG_COLS} FROM contact_tags WHERE org_id = $1 ORDER BY name_key, id")
    ))
    .bind(org)
    .fetch_all(p)
    .await)
}

pub async fn get_tag(db: &Db, org: OrgId, id: TagId) -> R<Option<TagRow>> {
    with_db!(db, |p| sqlx::query_as::<_, TagRow>(sqlx::AssertSqlSafe(
        format!("SELECT {TAG_COLS} FROM contact_tags WHERE org_id = $1 AND id = $2")
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn insert_tag(db: &Db, org: OrgId, t: &TagRow) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "INSERT INTO contact_tags (id, org_id, name, name_key, color, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(t.id)
    .bind(org)
    .bind(&t.name)
    .bind(t.name.to_lowercase())
    .bind(&t.color)
    .bind(t.created_at)
    .bind(t.updated_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Writes name and colour of a tag; false when it is not in `org`.
pub async fn update_tag(db: &Db, org: OrgId, t: &TagRow) -> R<bool> {
    let n = with_write!(db, |p| sqlx::query(
        "UPDATE contact_tags SET name = $3, name_key = $4, color = $5, updated_at = $6 \
         WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(t.id)
    .bind(&t.name)
    .bind(t.name.to_lowercase())
    .bind(&t.color)
    .bind(t.updated_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Deletes a tag and every contact's link to it; false when it is not in `org`.
pub async fn delete_tag(tx: &mut Tx, org: OrgId, id: TagId) -> R<bool> {
    with_tx!(tx, |c| sqlx::query(
        "DELETE FROM contact_tag_links WHERE org_id = $1 AND tag_id = $2"
    )
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    let n = with_tx!(tx, |c| sqlx::query(
        "DELETE FROM contact_tags WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

const GROUP_COLS: &str = "g.id, g.name, g.description, \
    (SELECT COUNT(*) FROM contact_group_members m WHERE m.group_id = g.id) AS member_count, \
    g.created_at, g.updated_at";

pub async fn groups(db: &Db, org: OrgId) -> R<Vec<GroupRow>> {
    with_db!(db, |p| {
        sqlx::query_as::<_, GroupRow>(sqlx::AssertSqlSafe(
        format!("SELECT {GROUP_COLS} FROM contact_groups g WHERE g.org_id = $1 ORDER BY g.name_key, g.id")
    ))
    .bind(org)
    .fetch_all(p)
    .await
    })
}

/// The ids of the organisation's groups and tags (no member counts: checking a filter's
/// references must not count a million memberships).
pub async fn group_and_tag_ids(db: &Db, org: OrgId) -> R<(Vec<GroupId>, Vec<TagId>)> {
    let groups: Vec<(GroupId,)> = with_db!(db, |p| sqlx::query_as(
        "SELECT id FROM contact_groups WHERE org_id = $1"
    )
    .bind(org)
    .fetch_all(p)
    .await)?;
    let tags: Vec<(TagId,)> = with_db!(db, |p| sqlx::query_as(
        "SELECT id FROM contact_tags WHERE org_id = $1"
    )
    .bind(org)
    .fetch_all(p)
    .await)?;
    Ok((
        groups.into_iter().map(|(g,)| g).collect(),
        tags.into_iter().map(|(t,)| t).collect(),
    ))
}

pub async fn get_group(db: &Db, org: OrgId, id: GroupId) -> R<Option<GroupRow>> {
    with_db!(db, |p| sqlx::query_as::<_, GroupRow>(sqlx::AssertSqlSafe(
        format!("SELECT {GROUP_COLS} FROM contact_groups g WHERE g.org_id = $1 AND g.id = $2")
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn insert_group(db: &Db, org: OrgId, g: &GroupRow) -> R<()> {
    with_write!(db, |p| {
        sqlx::query(
        "INSERT INTO contact_groups (id, org_id, name, name_key, description, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(g.id)
    .bind(org)
    .bind(&g.name)
    .bind(g.name.to_lowercase())
    .bind(&g.description)
    .bind(g.created_at)
    .bind(g.updated_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Writes name and description of a group; false when it is not in `org`.
pub async fn update_group(db: &Db, org: OrgId, g: &GroupRow) -> R<bool> {
    let n = with_write!(db, |p| sqlx::query(
        "UPDATE contact_groups SET name = $3, name_key = $4, description = $5, updated_at = $6 \
         WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(g.id)
    .bind(&g.name)
    .bind(g.name.to_lowercase())
    .bind(&g.description)
    .bind(g.updated_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Deletes a group and its memberships; false when it is not in `org`.
pub async fn delete_group(tx: &mut Tx, org: OrgId, id: GroupId) -> R<bool> {
    with_tx!(tx, |c| sqlx::query(
        "DELETE FROM contact_group_members WHERE org_id = $1 AND group_id = $2"
    )
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    let n = with_tx!(tx, |c| sqlx::query(
        "DELETE FROM contact_groups WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

fn contact_tags_sql(n: usize) -> String {
    format!(
        "SELECT l.contact_id, t.id, t.name, t.color FROM contact_tag_links l \
         JOIN contact_tags t ON t.id = l.tag_id \
         WHERE l.org_id = $1 AND l.contact_id IN ({}) ORDER BY t.name_key, t.id",
        placeholders(2, n)
    )
}

fn contact_groups_sql(n: usize) -> String {
    format!(
        "SELECT m.contact_id, g.id, g.name FROM contact_group_members m \
         JOIN contact_groups g ON g.id = m.group_id \
         WHERE m.org_id = $1 AND m.contact_id IN ({}) ORDER BY g.name_key, g.id",
        placeholders(2, n)
    )
}

/// The tags of these contacts, by tag name.
pub async fn tags_of(db: &Db, org: OrgId, contacts: &[ContactId]) -> R<Vec<ContactTagRow>> {
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = contact_tags_sql(contacts.len());
    with_db!(db, |p| {
        let mut q = sqlx::query_as::<_, ContactTagRow>(sqlx::AssertSqlSafe(sql)).bind(org);
        for c in contacts {
            q = q.bind(*c);
        }
        q.fetch_all(p).await
    })
}

pub async fn tags_of_tx(tx: &mut Tx, org: OrgId, contact: ContactId) -> R<Vec<ContactTagRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, ContactTagRow>(
        sqlx::AssertSqlSafe(contact_tags_sql(1))
    )
    .bind(org)
    .bind(contact)
    .fetch_all(c)
    .await)
}

/// The groups these contacts are in, by group name.
pub async fn groups_of(db: &Db, org: OrgId, contacts: &[ContactId]) -> R<Vec<ContactGroupRow>> {
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = contact_groups_sql(contacts.len());
    with_db!(db, |p| {
        let mut q = sqlx::query_as::<_, ContactGroupRow>(sqlx::AssertSqlSafe(sql)).bind(org);
        for c in contacts {
            q = q.bind(*c);
        }
        q.fetch_all(p).await
    })
}

pub async fn groups_of_tx(tx: &mut Tx, org: OrgId, contact: ContactId) -> R<Vec<ContactGroupRow>> {
    with_tx!(tx, |c| sqlx::query_as::<_, ContactGroupRow>(
        sqlx::AssertSqlSafe(contact_groups_sql(1))
    )
    .bind(org)
    .bind(contact)
    .fetch_all(c)
    .await)
}

/// How many rows of `table` (contacts, contact_tags or contact_groups) in `org` have these ids.
pub async fn count_ids<T>(tx: &mut Tx, org: OrgId, table: &'static str, ids: &[T]) -> R<i64>
where
    T: Copy
        + Send
        + for<'q> sqlx::Encode<'q, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>,
{
    let sql = format!(
        "SELECT COUNT(*) FROM {table} WHERE org_id = $1 AND id IN ({})",
        placeholders(2, ids.len())
    );
    let (n,): (i64,) = with_tx!(tx, |c| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(org);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_one(c).await
    })?;
    Ok(n)
}

/// Links `contact` to those of `ids` in `link_table` it is not linked to yet (the ids are known
/// to be of `org`); returns how many links were added.
pub async fn add_links<T>(
    tx: &mut Tx,
    org: OrgId,
    link: Link,
    contact: ContactId,
    ids: &[T],
) -> R<u64>
where
    T: Copy
        + Send
        + for<'q> sqlx::Encode<'q, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>,
{
    let (table, column, target) = link.names();
    let sql = format!(
        "INSERT INTO {table} (org_id, contact_id, {column}) \
         SELECT $1, $2, x.id FROM {target} x WHERE x.org_id = $1 AND x.id IN ({}) \
         ON CONFLICT DO NOTHING",
        placeholders(3, ids.len())
    );
    with_tx!(tx, |c| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(contact);
        for id in ids {
            q = q.bind(*id);
        }
        q.execute(c).await.map(|r| r.rows_affected())
    })
}

/// Unlinks `contact` from `ids`; returns how many links were removed.
pub async fn remove_links<T>(
    tx: &mut Tx,
    org: OrgId,
    link: Link,
    contact: ContactId,
    ids: &[T],
) -> R<u64>
where
    T: Copy
        + Send
        + for<'q> sqlx::Encode<'q, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'q> sqlx::Encode<'q, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>,
{
    let (table, column, _) = link.names();
    let sql = format!(
        "DELETE FROM {table} WHERE org_id = $1 AND contact_id = $2 AND {column} IN ({})",
        placeholders(3, ids.len())
    );
    with_tx!(tx, |c| {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(contact);
        for id in ids {
            q = q.bind(*id);
        }
        q.execute(c).await.map(|r| r.rows_affected())
    })
}

/// A membership kind: contact–tag or contact–group.
#[derive(Debug, Clone, Copy)]
pub enum Link {
    Tag,
    Group,
}

impl Link {
    /// (link table, its id column, the table the id points at).
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Tag => ("contact_tag_links", "tag_id", "contact_tags"),
            Self::Group => ("contact_group_members", "group_id", "contact_groups"),
        }
    }
}

// ---- consent ledger --------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct ConsentRow {
    pub id: ConsentId,
    pub contact_id: ContactId,
    pub channel: String,
    pub purpose: String,
    pub status: String,
    pub source: String,
    pub note: Option<String>,
    pub recorded_by: Option<UserId>,
    pub created_at: Timestamp,
}

/// Appends one entry to the ledger.
pub async fn insert_consent(tx: &mut Tx, org: OrgId, r: &ConsentRow) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO contact_consents (id, org_id, contact_id, channel, purpose, status, source, \
         note, recorded_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )
    .bind(r.id)
    .bind(org)
    .bind(r.contact_id)
    .bind(&r.channel)
    .bind(&r.purpose)
    .bind(&r.status)
    .bind(&r.source)
    .bind(&r.note)
    .bind(r.recorded_by)
    .bind(r.created_at)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// A contact's ledger, newest first.
pub async fn consents_of(db: &Db, org: OrgId, contact: ContactId) -> R<Vec<ConsentRow>> {
    with_db!(db, |p| sqlx::query_as::<_, ConsentRow>(
        "SELECT id, contact_id, channel, purpose, status, source, note, recorded_by, created_at \
         FROM contact_consents WHERE org_id = $1 AND contact_id = $2 ORDER BY seq DESC"
    )
    .bind(org)
    .bind(contact)
    .fetch_all(p)
    .await)
}

/// The newest status recorded for a contact, channel and purpose.
pub async fn latest_consent(
    db: &Db,
    org: OrgId,
    contact: ContactId,
    channel: &str,
    purpose: &str,
) -> R<Option<String>> {
    let row: Option<(String,)> = with_db!(db, |p| sqlx::query_as(
        "SELECT status FROM contact_consents WHERE org_id = $1 AND contact_id = $2 \
         AND channel = $3 AND purpose = $4 ORDER BY seq DESC LIMIT 1"
    )
    .bind(org)
    .bind(contact)
    .bind(channel)
    .bind(purpose)
    .fetch_optional(p)
    .await)?;
    Ok(row.map(|(s,)| s))
}

/// For each of these contacts of `org`: its blocked flag and the newest consent status for
/// `channel` and `purpose` (missing contacts are left out).
pub async fn consent_states(
    tx: &mut Tx,
    org: OrgId,
    ids: &[ContactId],
    channel: &str,
    purpose: &str,
) -> R<Vec<(ContactId, bool, Option<String>)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT c.id, c.blocked, (SELECT s.status FROM contact_consents s \
           WHERE s.org_id = c.org_id AND s.contact_id = c.id AND s.channel = $2 \
           AND s.purpose = $3 ORDER BY s.seq DESC LIMIT 1) \
         FROM contacts c WHERE c.org_id = $1 AND c.id IN ({})",
        placeholders(4, ids.len())
    );
    with_tx!(tx, |p| {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(channel)
            .bind(purpose);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}

// ---- merges ----------------------------------------------------------------------------------

/// Moves identities, consent entries, tags and groups of `from` to `to` (a tag or group both
/// have stays once).
pub async fn move_related(tx: &mut Tx, org: OrgId, from: ContactId, to: ContactId) -> R<()> {
    for table in ["contact_identities", "contact_consents"] {
        with_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET contact_id = $3 WHERE org_id = $1 AND contact_id = $2"
        )))
        .bind(org)
        .bind(from)
        .bind(to)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    for link in [Link::Tag, Link::Group] {
        let (table, column, _) = link.names();
        with_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (org_id, contact_id, {column}) \
             SELECT org_id, $3, {column} FROM {table} WHERE org_id = $1 AND contact_id = $2 \
             ON CONFLICT DO NOTHING"
        )))
        .bind(org)
        .bind(from)
        .bind(to)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        with_tx!(tx, |c| sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE org_id = $1 AND contact_id = $2"
        )))
        .bind(org)
        .bind(from)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

pub struct NewMerge<'a> {
    pub id: MergeId,
    pub survivor: ContactId,
    pub merged: ContactId,
    pub snapshot: &'a Value,
    pub by: Option<UserId>,
    pub at: Timestamp,
}

pub async fn insert_merge(tx: &mut Tx, org: OrgId, m: &NewMerge<'_>) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO contact_merges (id, org_id, survivor_id, merged_id, snapshot, merged_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(m.id)
    .bind(org)
    .bind(m.survivor)
    .bind(m.merged)
    .bind(Json(m.snapshot))
    .bind(m.by)
    .bind(m.at)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

// ---- imports -----------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct ImportRow {
    pub id: ImportId,
    pub status: String,
    pub file_name: String,
    pub blob_key: String,
    pub options: Json<Value>,
    pub total_rows: Option<i64>,
    pub next_byte: i64,
    pub next_line: i64,
    /// Where the newest run of the import's job was queued.
    pub run_from: i64,
    pub rows_done: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

const IMPORT_COLS: &str = "id, status, file_name, blob_key, options, total_rows, next_byte, \
    next_line, run_from, rows_done, created, updated, skipped, failed, error, created_at, finished_at";

pub async fn insert_import(tx: &mut Tx, org: OrgId, r: &ImportRow, by: Option<UserId>) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "INSERT INTO contact_imports (id, org_id, status, file_name, blob_key, options, \
         created_by, created_at, total_rows) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(r.id)
    .bind(org)
    .bind(&r.status)
    .bind(&r.file_name)
    .bind(&r.blob_key)
    .bind(&r.options)
    .bind(by)
    .bind(r.created_at)
    .bind(r.total_rows)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get_import(db: &Db, org: OrgId, id: ImportId) -> R<Option<ImportRow>> {
    with_db!(db, |p| sqlx::query_as::<_, ImportRow>(sqlx::AssertSqlSafe(
        format!("SELECT {IMPORT_COLS} FROM contact_imports WHERE org_id = $1 AND id = $2")
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(p)
    .await)
}

/// The organisation's latest imports, newest first.
pub async fn list_imports(db: &Db, org: OrgId, limit: i64) -> R<Vec<ImportRow>> {
    with_db!(db, |p| sqlx::query_as::<_, ImportRow>(sqlx::AssertSqlSafe(
        format!(
            "SELECT {IMPORT_COLS} FROM contact_imports WHERE org_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2"
        )
    ))
    .bind(org)
    .bind(limit)
    .fetch_all(p)
    .await)
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportCounts {
    pub rows: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub failed: i64,
}

/// Moves the checkpoint from `from_byte` to `next_byte`/`next_line` and adds the batch's counts;
/// false when the checkpoint is not at `from_byte` any more (another run did this batch).
/// `hand_over`: a new run of the job is queued from `next_byte` (it becomes `run_from`).
#[allow(clippy::too_many_arguments)]
pub async fn advance_import(
    tx: &mut Tx,
    org: OrgId,
    id: ImportId,
    from_byte: i64,
    next_byte: i64,
    next_line: i64,
    n: ImportCounts,
    hand_over: bool,
) -> R<bool> {
    let changed = with_tx!(tx, |c| sqlx::query(
        "UPDATE contact_imports SET status = 'running', next_byte = $4, next_line = $5, \
         rows_done = rows_done + $6, created = created + $7, updated = updated + $8, \
         skipped = skipped + $9, failed = failed + $10, \
         run_from = CASE WHEN $11 THEN $4 ELSE run_from END \
         WHERE org_id = $1 AND id = $2 AND next_byte = $3 AND status IN ('queued', 'running')"
    )
    .bind(org)
    .bind(id)
    .bind(from_byte)
    .bind(next_byte)
    .bind(next_line)
    .bind(n.rows)
    .bind(n.created)
    .bind(n.updated)
    .bind(n.skipped)
    .bind(n.failed)
    .bind(hand_over)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(changed > 0)
}

/// Ends an import (`completed` with its total, or `failed` with the reason) and drops its
/// duplicate keys.
pub async fn finish_import(
    tx: &mut Tx,
    org: OrgId,
    id: ImportId,
    status: &str,
    error: Option<&str>,
    now: Timestamp,
) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE contact_imports SET status = $3, error = $4, finished_at = $5, \
         total_rows = CASE WHEN $3 = 'completed' THEN rows_done ELSE total_rows END \
         WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    with_tx!(tx, |c| sqlx::query(
        "DELETE FROM contact_import_keys WHERE import_id = $1"
    )
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The rejected rows of an import, by line.
pub async fn import_errors(
    db: &Db,
    org: OrgId,
    id: ImportId,
) -> R<Vec<(i64, String, Json<Vec<String>>)>> {
    with_db!(db, |p| sqlx::query_as(
        "SELECT e.line, e.reason, e.raw FROM contact_import_errors e \
         JOIN contact_imports i ON i.id = e.import_id \
         WHERE i.org_id = $1 AND e.import_id = $2 ORDER BY e.line"
    )
    .bind(org)
    .bind(id)
    .fetch_all(p)
    .await)
}

// ---- bulk import -----------------------------------------------------------------------------
//
// An import batch writes thousands of rows per transaction, so these take whole batches: one
// statement per table, whatever the batch size. PostgreSQL gets column arrays (`UNNEST`);
// SQLite gets one JSON array parameter read with `json_each` (no bound-parameter limit), with
// ids as 32-digit hex turned back into 16-byte blobs by `unhex`. SQLite joins say `CROSS JOIN`
// to keep `json_each` as the outer loop: the planner otherwise scans the whole table (every
// identity of the organisation) once per batch row and probes the JSON.

/// A contact an import creates, with its search words.
pub struct NewImported {
    pub row: ContactRow,
    pub words: Vec<String>,
}

/// An identity an import adds.
pub struct NewIdentity {
    pub id: IdentityId,
    pub contact: ContactId,
    pub kind: &'static str,
    pub value: String,
    /// The line of the import file that brings it (imports only).
    pub line: Option<i64>,
}

fn hex(id: uuid::Uuid) -> String {
    id.simple().to_string()
}

/// Who holds each of these `(kind, value)` identities in `org`: the held ones, with their
/// contact.
pub async fn identity_owners(
    tx: &mut Tx,
    org: OrgId,
    keys: &[(&str, &str)],
) -> R<Vec<(String, String, ContactId)>> {
    // No import has the nil id: the lines are all `None`.
    let held = identity_owners_for_import(tx, org, ImportId::from(uuid::Uuid::nil()), keys).await?;
    Ok(held.into_iter().map(|(k, v, c, _)| (k, v, c)).collect())
}

/// Like [`identity_owners`], with the line of import `import` that brought each identity
/// (`None` for identities from anywhere else): `(kind, value, contact, line)`.
pub async fn identity_owners_for_import(
    tx: &mut Tx,
    org: OrgId,
    import: ImportId,
    keys: &[(&str, &str)],
) -> R<Vec<(String, String, ContactId, Option<i64>)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match tx {
        Tx::Sqlite(t, _) => {
            let json = serde_json::to_string(keys).map_err(|e| sqlx::Error::Encode(e.into()))?;
            sqlx::query_as(
                "SELECT i.kind, i.value, i.contact_id, \
                 CASE WHEN i.import_id = $3 THEN i.import_line END FROM jsonb_each($2) j \
                 CROSS JOIN contact_identities i \
                   ON i.org_id = $1 AND i.kind = j.value ->> 0 AND i.value = j.value ->> 1",
            )
            .bind(org)
            .bind(json)
            .bind(import)
            .fetch_all(&mut **t)
            .await
        }
        Tx::Postgres(t) => {
            let (kinds, values): (Vec<&str>, Vec<&str>) = keys.iter().copied().unzip();
            sqlx::query_as(
                "SELECT i.kind, i.value, i.contact_id, \
                 CASE WHEN i.import_id = $4 THEN i.import_line END FROM contact_identities i \
                 WHERE i.org_id = $1 AND (i.kind, i.value) IN \
                   (SELECT k, v FROM UNNEST($2::text[], $3::text[]) AS u(k, v))",
            )
            .bind(org)
            .bind(kinds)
            .bind(values)
            .bind(import)
            .fetch_all(&mut **t)
            .await
        }
    }
}

/// The lines of this import that already carried any of `keys`: `(key, line)`.
pub async fn import_key_lines(tx: &mut Tx, id: ImportId, keys: &[&str]) -> R<Vec<(String, i64)>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    // A file of new contacts records no keys: one probe instead of one per key.
    let (any,): (bool,) = with_tx!(tx, |c| sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM contact_import_keys WHERE import_id = $1)"
    )
    .bind(id)
    .fetch_one(c)
    .await)?;
    if !any {
        return Ok(Vec::new());
    }
    match tx {
        Tx::Sqlite(t, _) => {
            let json = serde_json::to_string(keys).map_err(|e| sqlx::Error::Encode(e.into()))?;
            sqlx::query_as(
                "SELECT k.ikey, k.line FROM json_each($2) j \
                 CROSS JOIN contact_import_keys k ON k.import_id = $1 AND k.ikey = j.value",
            )
            .bind(id)
            .bind(json)
            .fetch_all(&mut **t)
            .await
        }
        Tx::Postgres(t) => {
            sqlx::query_as(
                "SELECT ikey, line FROM contact_import_keys \
                 WHERE import_id = $1 AND ikey = ANY($2::text[])",
            )
            .bind(id)
            .bind(keys)
            .fetch_all(&mut **t)
            .await
        }
    }
}

/// The rows of [`insert_contacts_bulk`] as the JSON its SQLite statements read, so a caller can
/// build it before it takes the write lock.
pub fn contacts_json(rows: &[NewImported]) -> R<String> {
    // Tuples of borrowed fields serialize as JSON arrays without copying them.
    serde_json::to_string(
        &rows
            .iter()
            .map(|n| {
                let c = &n.row;
                (
                    hex(c.id.as_uuid()),
                    &c.name,
                    &c.sort_name,
                    &c.company,
                    &c.language,
                    &c.time_zone,
                    &c.notes,
                    wamage_kernel::json::to_text(&c.attributes.0),
                    n.words.join(" "),
                )
            })
            .collect::<Vec<_>>(),
    )
    .map_err(|e| sqlx::Error::Encode(e.into()))
}

/// Inserts new contacts with their search index entries. Favorite and blocked start off.
/// `json`: the rows from [`contacts_json`] when already built (SQLite only).
pub async fn insert_contacts_bulk(
    tx: &mut Tx,
    org: OrgId,
    rows: &[NewImported],
    now: Timestamp,
    json: Option<String>,
) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Sqlite(t, _) => {
            let json = match json {
                Some(json) => json,
                None => contacts_json(rows)?,
            };
            // The rows take the `rid`s after the largest (the transaction holds the write
            // lock), so their search entries are written without looking the rows up again:
            // after the first statement the largest `rid` is the last new row's.
            // `jsonb_each`: the batch is parsed once, each row is read from its binary form.
            // Both statements in one call to SQLite's thread.
            sqlx::query(
                "INSERT INTO contacts (rid, id, org_id, name, sort_name, company, language, \
                 time_zone, notes, favorite, blocked, attributes, created_at, updated_at) \
                 SELECT (SELECT COALESCE(MAX(rid), 0) FROM contacts) + j.key + 1, \
                 unhex(j.value ->> 0), $1, j.value ->> 1, j.value ->> 2, \
                 j.value ->> 3, j.value ->> 4, j.value ->> 5, j.value ->> 6, 0, 0, \
                 j.value ->> 7, $2, $2 FROM jsonb_each($3) j; \
                 INSERT INTO contacts_fts (rowid, body) \
                 SELECT (SELECT MAX(rid) FROM contacts) - json_array_length($3) + j.key + 1, \
                 j.value ->> 8 FROM jsonb_each($3) j",
            )
            .bind(org)
            .bind(now)
            .bind(&json)
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            let mut ids = Vec::with_capacity(rows.len());
            let mut names = Vec::with_capacity(rows.len());
            let mut sort_names = Vec::with_capacity(rows.len());
            let mut companies = Vec::with_capacity(rows.len());
            let mut languages = Vec::with_capacity(rows.len());
            let mut zones = Vec::with_capacity(rows.len());
            let mut notes = Vec::with_capacity(rows.len());
            let mut attrs = Vec::with_capacity(rows.len());
            let mut words = Vec::with_capacity(rows.len());
            for n in rows {
                let c = &n.row;
                ids.push(c.id.as_uuid());
                names.push(c.name.as_str());
                sort_names.push(c.sort_name.as_str());
                companies.push(c.company.as_deref());
                languages.push(c.language.as_deref());
                zones.push(c.time_zone.as_deref());
                notes.push(c.notes.as_deref());
                attrs.push(wamage_kernel::json::to_text(&c.attributes.0));
                words.push(n.words.join(" "));
            }
            sqlx::query(
                "INSERT INTO contacts (id, org_id, name, sort_name, company, language, \
                 time_zone, notes, favorite, blocked, attributes, search, created_at, updated_at) \
                 SELECT u.id, $1, u.name, u.sort_name, u.company, u.language, u.time_zone, \
                 u.notes, FALSE, FALSE, u.attributes::jsonb, \
                 array_to_tsvector(string_to_array(u.words, ' ')), $2, $2 \
                 FROM UNNEST($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[], $10::text[], $11::text[]) \
                 AS u(id, name, sort_name, company, language, time_zone, notes, attributes, words)",
            )
            .bind(org)
            .bind(now)
            .bind(ids)
            .bind(names)
            .bind(sort_names)
            .bind(companies)
            .bind(languages)
            .bind(zones)
            .bind(notes)
            .bind(attrs)
            .bind(words)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// The rows of [`insert_identities_bulk`] as the JSON its SQLite statement reads (with their
/// new ids), so a caller can build it before it takes the write lock.
pub fn identities_json(rows: &[NewIdentity]) -> R<String> {
    serde_json::to_string(
        &rows
            .iter()
            .map(|i| {
                (
                    hex(i.id.as_uuid()),
                    hex(i.contact.as_uuid()),
                    i.kind,
                    &i.value,
                    i.line,
                )
            })
            .collect::<Vec<_>>(),
    )
    .map_err(|e| sqlx::Error::Encode(e.into()))
}

/// Inserts identities (known to be free in `org`); those of an import (`import`) record it with
/// their line, so later batches of that import know the line that brought them. `json`: the
/// rows from [`identities_json`] when already built (SQLite only).
pub async fn insert_identities_bulk(
    tx: &mut Tx,
    org: OrgId,
    rows: &[NewIdentity],
    import: Option<ImportId>,
    now: Timestamp,
    json: Option<String>,
) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Sqlite(t, _) => {
            let json = match json {
                Some(json) => json,
                None => identities_json(rows)?,
            };
            sqlx::query(
                "INSERT INTO contact_identities (id, org_id, contact_id, kind, value, created_at, \
                 import_id, import_line) \
                 SELECT unhex(j.value ->> 0), $1, unhex(j.value ->> 1), j.value ->> 2, \
                 j.value ->> 3, $2, $4, CASE WHEN $4 IS NOT NULL THEN j.value ->> 4 END \
                 FROM jsonb_each($3) j",
            )
            .bind(org)
            .bind(now)
            .bind(json)
            .bind(import)
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            // In one order (kind, value) whoever inserts: writers that race for the same new
            // identities wait for each other at the first one and then lose the unique key
            // race, where opposite orders would deadlock.
            let ids: Vec<uuid::Uuid> = rows.iter().map(|i| i.id.as_uuid()).collect();
            let contacts: Vec<uuid::Uuid> = rows.iter().map(|i| i.contact.as_uuid()).collect();
            let kinds: Vec<&str> = rows.iter().map(|i| i.kind).collect();
            let values: Vec<&str> = rows.iter().map(|i| i.value.as_str()).collect();
            let lines: Vec<Option<i64>> = rows.iter().map(|i| i.line).collect();
            sqlx::query(
                "INSERT INTO contact_identities (id, org_id, contact_id, kind, value, created_at, \
                 import_id, import_line) \
                 SELECT u.id, $1, u.contact_id, u.kind, u.value, $2, $8, \
                 CASE WHEN $8::uuid IS NOT NULL THEN u.line END \
                 FROM UNNEST($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::bigint[]) \
                 AS u(id, contact_id, kind, value, line) ORDER BY u.kind, u.value",
            )
            .bind(org)
            .bind(now)
            .bind(ids)
            .bind(contacts)
            .bind(kinds)
            .bind(values)
            .bind(lines)
            .bind(import)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// Adds `(contact, tag or group)` links (the targets are known to be of `org`); existing
/// links are left as they are. `fresh`: the contacts were created in this transaction, so
/// none can have a link yet — PostgreSQL then inserts without `ON CONFLICT`, whose
/// speculative insertion about doubles the cost of each row.
pub async fn add_links_bulk(
    tx: &mut Tx,
    org: OrgId,
    link: Link,
    pairs: &[(ContactId, uuid::Uuid)],
    fresh: bool,
) -> R<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    // Joined with the tag or group table: one deleted since the upload is skipped, not an
    // error that would stop the import.
    let (table, column, target) = link.names();
    match tx {
        Tx::Sqlite(t, _) => {
            let json = serde_json::to_string(
                &pairs
                    .iter()
                    .map(|(c, x)| (hex(c.as_uuid()), hex(*x)))
                    .collect::<Vec<_>>(),
            )
            .map_err(|e| sqlx::Error::Encode(e.into()))?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (org_id, contact_id, {column}) \
                 SELECT $1, unhex(j.value ->> 0), x.id FROM jsonb_each($2) j \
                 CROSS JOIN {target} x ON x.id = unhex(j.value ->> 1) AND x.org_id = $1 \
                 WHERE true ON CONFLICT DO NOTHING"
            )))
            .bind(org)
            .bind(json)
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            let on_conflict = if fresh { "" } else { " ON CONFLICT DO NOTHING" };
            let (contacts, targets): (Vec<uuid::Uuid>, Vec<uuid::Uuid>) =
                pairs.iter().map(|(c, x)| (c.as_uuid(), *x)).unzip();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (org_id, contact_id, {column}) \
                 SELECT $1, u.c, x.id FROM UNNEST($2::uuid[], $3::uuid[]) AS u(c, t) \
                 JOIN {target} x ON x.id = u.t AND x.org_id = $1{on_conflict}"
            )))
            .bind(org)
            .bind(contacts)
            .bind(targets)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// Remembers which line carried each identity key of this import.
pub async fn insert_import_keys_bulk(tx: &mut Tx, id: ImportId, keys: &[(String, i64)]) -> R<()> {
    if keys.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Sqlite(t, _) => {
            let json = serde_json::to_string(keys).map_err(|e| sqlx::Error::Encode(e.into()))?;
            sqlx::query(
                "INSERT INTO contact_import_keys (import_id, ikey, line) \
                 SELECT $1, j.value ->> 0, j.value ->> 1 FROM json_each($2) j \
                 WHERE true ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(json)
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            let (k, l): (Vec<&str>, Vec<i64>) = keys.iter().map(|(k, l)| (k.as_str(), *l)).unzip();
            sqlx::query(
                "INSERT INTO contact_import_keys (import_id, ikey, line) \
                 SELECT $1, u.k, u.l FROM UNNEST($2::text[], $3::bigint[]) AS u(k, l) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(k)
            .bind(l)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// Records rejected rows: `(line, reason, raw cells)`.
pub async fn insert_import_errors_bulk(
    tx: &mut Tx,
    id: ImportId,
    rows: &[(i64, String, Vec<String>)],
) -> R<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Sqlite(t, _) => {
            let json = Value::Array(
                rows.iter()
                    .map(|(line, reason, raw)| {
                        serde_json::json!([line, reason, serde_json::to_string(raw).ok()])
                    })
                    .collect(),
            )
            .to_string();
            sqlx::query(
                "INSERT INTO contact_import_errors (import_id, line, reason, raw) \
                 SELECT $1, j.value ->> 0, j.value ->> 1, j.value ->> 2 FROM json_each($2) j \
                 WHERE true ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(json)
            .execute(&mut **t)
            .await?;
        }
        Tx::Postgres(t) => {
            let lines: Vec<i64> = rows.iter().map(|r| r.0).collect();
            let reasons: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
            let raws: Vec<String> = rows
                .iter()
                .map(|r| serde_json::to_string(&r.2).unwrap_or_else(|_| "[]".to_owned()))
                .collect();
            sqlx::query(
                "INSERT INTO contact_import_errors (import_id, line, reason, raw) \
                 SELECT $1, u.l, u.r, u.raw::jsonb \
                 FROM UNNEST($2::bigint[], $3::text[], $4::text[]) AS u(l, r, raw) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(lines)
            .bind(reasons)
            .bind(raws)
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

/// After a bulk load, in its last transaction, so the import completes ready to be searched:
/// gathers the table statistics the planner needs to choose between indexes, and on
/// PostgreSQL merges the search index's pending list. SQLite analyses only what changed
/// enough, within a bounded amount of work. PostgreSQL's autovacuum would get there too, but
/// a minute or more later: until then every search scans the GIN index's pending list (up to
/// `gin_pending_list_limit` of unsorted entries, ≈ 160 ms a search after a million-row import),
/// and a manual `ANALYZE` does not merge it. Both take about a second after a million rows.
pub async fn settle_after_bulk_load(tx: &mut Tx) -> R<()> {
    match tx {
        Tx::Sqlite(t, _) => {
            sqlx::query("PRAGMA analysis_limit = 2000")
                .execute(&mut **t)
                .await?;
            sqlx::query("PRAGMA optimize").execute(&mut **t).await?;
        }
        Tx::Postgres(t) => {
            sqlx::query("SELECT gin_clean_pending_list('contacts_search_idx'::regclass)")
                .execute(&mut **t)
                .await?;
            sqlx::query(
                "ANALYZE contacts, contact_identities, contact_tag_links, contact_group_members",
            )
            .execute(&mut **t)
            .await?;
        }
    }
    Ok(())
}

// ---- audiences (bulk sends) ------------------------------------------------------------------

/// What an audience query reads besides the contact: the consent entry for (channel, purpose)
/// and the address among these identity kinds (in order of preference).
pub struct AudienceAsk<'a> {
    pub consent: Option<(&'a str, &'a str)>,
    pub kinds: &'a [crate::model::IdentityKind],
}

#[derive(FromRow)]
struct AudienceRow {
    id: ContactId,
    name: String,
    company: Option<String>,
    language: Option<String>,
    attributes: Json<Value>,
    blocked: bool,
    email: Option<String>,
    phone: Option<String>,
    consent: Option<String>,
    addr_kind: Option<String>,
    addr: Option<String>,
}

impl From<AudienceRow> for crate::service::SendContact {
    fn from(r: AudienceRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            company: r.company,
            language: r.language,
            email: r.email,
            phone: r.phone,
            attributes: r.attributes.0,
            blocked: r.blocked,
            consent: r
                .consent
                .as_deref()
                .and_then(crate::consent::ConsentStatus::from_db),
            address: match (r.addr_kind.as_deref(), r.addr) {
                (Some(k), Some(v)) => crate::model::IdentityKind::from_db(k).map(|k| (k, v)),
                _ => None,
            },
        }
    }
}

/// The newest consent status of contact `c` for the channel and purpose asked about (`NULL`
/// when nothing is asked); `org` is the organisation's placeholder, the others go through `push`.
fn consent_probe(ask: &AudienceAsk<'_>, org: &str, push: &mut dyn FnMut(Arg) -> String) -> String {
    match ask.consent {
        Some((ch, pu)) => {
            let (ch, pu) = (push(Arg::Str(ch.to_owned())), push(Arg::Str(pu.to_owned())));
            format!(
                "(SELECT k.status FROM contact_consents k WHERE k.org_id = {org} \
                 AND k.contact_id = c.id AND k.channel = {ch} AND k.purpose = {pu} \
                 ORDER BY k.seq DESC LIMIT 1)"
            )
        }
        None => "NULL".to_owned(),
    }
}

/// The select list of an audience row on `contacts c`: identity kinds are the enum's own
/// names (never input), consent channel and purpose are bound through `push`. `full` adds the
/// e-mail and phone variables read (a snapshot does not need them).
fn audience_columns(
    ask: &AudienceAsk<'_>,
    full: bool,
    push: &mut dyn FnMut(Arg) -> String,
) -> String {
    let ident = |kinds: &str| {
        format!(
            "(SELECT i.value FROM contact_identities i WHERE i.contact_id = c.id \
             AND i.kind IN ({kinds}) ORDER BY i.created_at, i.id LIMIT 1)"
        )
    };
    let (email, phone) = if full {
        (ident("'email'"), ident("'phone', 'whatsapp_phone'"))
    } else {
        ("NULL".to_owned(), "NULL".to_owned())
    };
    let consent = consent_probe(ask, "$1", push);
    // The preferred kind the contact has, then its value: one lookup per kind, first hit wins.
    let mut kind_case = String::from("CASE");
    let mut values = Vec::new();
    for k in ask.kinds {
        let v = ident(&format!("'{}'", k.as_str()));
        kind_case.push_str(&format!(" WHEN {v} IS NOT NULL THEN '{}'", k.as_str()));
        values.push(v);
    }
    kind_case.push_str(" ELSE NULL END");
    let addr = if values.is_empty() {
        "NULL".to_owned()
    } else if values.len() == 1 {
        values.remove(0)
    } else {
        format!("COALESCE({})", values.join(", "))
    };
    format!(
        "c.id, c.name, c.company, c.language, c.attributes, c.blocked, {email} AS email, \
         {phone} AS phone, {consent} AS consent, {kind_case} AS addr_kind, {addr} AS addr"
    )
}

/// Binds the collected filter arguments, in order, to a query.
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Str(s) => q.bind(s),
                Arg::Float(n) => q.bind(n),
                Arg::Bool(b) => q.bind(b),
                Arg::Time(t) => q.bind(t),
                Arg::Id(id) => q.bind(id),
                Arg::Int(n) => q.bind(n),
                Arg::Tag(t) => q.bind(t),
                Arg::Group(g) => q.bind(g),
            };
        }
        q
    }};
}

/// One page of an audience as a statement a bulk send wraps to copy the page into its own
/// table (a campaign's recipients) without the rows passing through the application. The
/// statement selects `contact_id, name, address, address_kind, skip_reason` (`NULL` to send;
/// the reasons of [`crate::service::SkipReason`] in the same order of checks), in no particular
/// order; its placeholders start at `$first` (the caller binds its own before them).
pub struct AudiencePage {
    pub sql: String,
    org: OrgId,
    args: Vec<Arg>,
}

impl AudiencePage {
    /// Binds the page's values to `q`, which has bound the caller's `first - 1` values.
    pub fn bind<'q, DB>(
        self,
        q: sqlx::query::Query<'q, DB, DB::Arguments>,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments>
    where
        DB: sqlx::Database,
        OrgId: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        f64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        bool: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        Timestamp: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        ContactId: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        TagId: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        GroupId: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        bind_args!(q.bind(self.org), self.args)
    }
}

/// The statement of one audience page in contact-id order after `after` (see
/// [`AudiencePage`]). Every read is an index probe per contact: the filter's, the newest
/// consent entry and the preferred identity (one probe for all kinds, ranked), joined back by
/// its key.
#[allow(clippy::too_many_arguments)]
pub fn audience_page_sql(
    backend: Backend,
    org: OrgId,
    filter: &SegmentFilter,
    ask: &AudienceAsk<'_>,
    marketing: bool,
    after: Option<ContactId>,
    until: Option<ContactId>,
    limit: usize,
    first: usize,
) -> AudiencePage {
    let mut args: Vec<Arg> = Vec::new();
    let o = format!("${first}");
    let mut push = |a: Arg| {
        args.push(a);
        format!("${}", first + args.len())
    };
    let consent = consent_probe(ask, &o, &mut push);
    // The preferred identity: one probe over the contact's identities of these kinds, ranked.
    // PostgreSQL reads it in a lateral join; SQLite (no LATERAL) selects its rowid and joins it
    // back (its primary key is a separate index).
    let ident = if ask.kinds.is_empty() {
        None
    } else {
        let kinds: Vec<String> = ask
            .kinds
            .iter()
            .map(|k| format!("'{}'", k.as_str()))
            .collect();
        let rank = if ask.kinds.len() > 1 {
            let whens: String = ask
                .kinds
                .iter()
                .enumerate()
                .map(|(n, k)| format!(" WHEN '{}' THEN {n}", k.as_str()))
                .collect();
            format!("CASE i.kind{whens} END, ")
        } else {
            String::new()
        };
        Some(format!(
            "FROM contact_identities i WHERE i.contact_id = {{c}}.id AND i.kind IN ({}) \
             ORDER BY {rank}i.created_at, i.id LIMIT 1",
            kinds.join(", ")
        ))
    };
    let (ident_col, ident_join) = match (backend, ident) {
        (_, None) => (
            "NULL AS ident".to_owned(),
            "LEFT JOIN contact_identities i ON FALSE".to_owned(),
        ),
        (Backend::Sqlite, Some(from)) => (
            format!("(SELECT i.rowid {}) AS ident", from.replace("{c}", "c")),
            "LEFT JOIN contact_identities i ON i.rowid = x.ident".to_owned(),
        ),
        (Backend::Postgres, Some(from)) => (
            "NULL AS ident".to_owned(),
            format!(
                "LEFT JOIN LATERAL (SELECT i.kind, i.value {}) i ON TRUE",
                from.replace("{c}", "x")
            ),
        ),
    };
    let cond = filter.to_sql(backend, &mut push);
    let org_col = match backend {
        Backend::Sqlite => "+c.org_id",
        Backend::Postgres => "c.org_id",
    };
    let mut inner = format!(
        "SELECT c.id, c.name, c.blocked, {consent} AS consent, {ident_col} \
         FROM contacts c WHERE {org_col} = {o} AND {cond}"
    );
    if let Some(a) = after {
        let p = push(Arg::Id(a));
        inner.push_str(&format!(" AND c.id > {p}"));
    }
    if let Some(u) = until {
        let p = push(Arg::Id(u));
        inner.push_str(&format!(" AND c.id <= {p}"));
    }
    let p = push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    inner.push_str(&format!(" ORDER BY c.id LIMIT {p}"));
    let no_consent = if marketing && ask.consent.is_some() {
        "WHEN x.consent IS NULL THEN 'no_consent' "
    } else {
        ""
    };
    let sql = format!(
        "SELECT x.id AS contact_id, x.name AS name, i.value AS address, i.kind AS address_kind, \
         CASE WHEN i.value IS NULL THEN 'no_identity' WHEN x.blocked THEN 'blocked' \
         WHEN x.consent = 'opted_out' THEN 'opted_out' {no_consent}END AS skip_reason \
         FROM ({inner}) x {ident_join}"
    );
    AudiencePage { sql, org, args }
}

/// Contact ids that cut the organisation's contacts into `parts` runs of about the same size
/// (the last id of each run but the last), for walking an audience in parallel.
pub async fn contact_id_cuts(db: &Db, org: OrgId, parts: usize) -> R<Vec<ContactId>> {
    let parts = i64::try_from(parts.max(1)).unwrap_or(1);
    let n: i64 = with_db!(db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM contacts WHERE org_id = $1"
    )
    .bind(org)
    .fetch_one(pool)
    .await)?;
    // Each cut is an index walk to its offset; they run side by side.
    let offsets: Vec<i64> = (1..parts)
        .map(|k| n * k / parts - 1)
        .filter(|o| *o >= 0)
        .collect();
    let cuts = futures::future::try_join_all(offsets.into_iter().map(|off| async move {
        let id: Option<ContactId> = with_db!(db, |pool| sqlx::query_scalar(
            "SELECT id FROM contacts WHERE org_id = $1 ORDER BY id LIMIT 1 OFFSET $2"
        )
        .bind(org)
        .bind(off)
        .fetch_optional(pool)
        .await)?;
        Ok::<_, sqlx::Error>(id)
    }))
    .await?;
    let mut cuts: Vec<ContactId> = cuts.into_iter().flatten().collect();
    cuts.dedup();
    Ok(cuts)
}

/// The current facts of these contacts of `org` for a send.
pub async fn send_context(
    db: &Db,
    org: OrgId,
    ids: &[ContactId],
    ask: &AudienceAsk<'_>,
) -> R<Vec<crate::service::SendContact>> {
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |a: Arg| {
        args.push(a);
        format!("${}", args.len() + 2)
    };
    let cols = audience_columns(ask, true, &mut push);
    let rows: Vec<AudienceRow> = match db {
        Db::Sqlite(pool) => {
            let hex: Vec<String> = ids
                .iter()
                .map(|i| i.as_uuid().simple().to_string())
                .collect();
            let sql = format!(
                "SELECT {cols} FROM json_each($2) j CROSS JOIN contacts c \
                 ON c.id = unhex(j.value) WHERE c.org_id = $1"
            );
            bind_args!(
                sqlx::query_as::<_, AudienceRow>(sqlx::AssertSqlSafe(sql))
                    .bind(org)
                    .bind(serde_json::to_string(&hex).unwrap_or_default()),
                args
            )
            .fetch_all(pool)
            .await?
        }
        Db::Postgres(pool) => {
            let uuids: Vec<uuid::Uuid> = ids.iter().map(|i| i.as_uuid()).collect();
            let sql = format!(
                "SELECT {cols} FROM contacts c WHERE c.org_id = $1 AND c.id = ANY($2::uuid[])"
            );
            bind_args!(
                sqlx::query_as::<_, AudienceRow>(sqlx::AssertSqlSafe(sql))
                    .bind(org)
                    .bind(uuids),
                args
            )
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Whether some contact of the audience would be sent to: a launch's check, which stops at the
/// first such contact instead of counting them all.
pub async fn audience_any_eligible(
    db: &Db,
    org: OrgId,
    filter: &SegmentFilter,
    ask: &AudienceAsk<'_>,
    marketing: bool,
) -> R<bool> {
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |a: Arg| {
        args.push(a);
        format!("${}", args.len() + 1)
    };
    let cols = audience_columns(ask, false, &mut push);
    let cond = filter.to_sql(db.backend(), &mut push);
    let no_consent = if marketing && ask.consent.is_some() {
        "x.consent IS NULL"
    } else {
        "FALSE"
    };
    let sql = format!(
        "SELECT 1 FROM (SELECT {cols} FROM contacts c WHERE c.org_id = $1 AND {cond}) x \
         WHERE x.addr IS NOT NULL AND NOT x.blocked AND COALESCE(x.consent, '') <> 'opted_out' \
         AND NOT ({no_consent}) LIMIT 1"
    );
    let hit: Option<i32> = with_db!(db, |pool| {
        bind_args!(
            sqlx::query_scalar::<_, i32>(sqlx::AssertSqlSafe(sql)).bind(org),
            args
        )
        .fetch_optional(pool)
        .await
    })?;
    Ok(hit.is_some())
}

/// An audience counted by what a send would do (see [`crate::service::Breakdown`]).
pub async fn audience_breakdown(
    db: &Db,
    org: OrgId,
    filter: &SegmentFilter,
    ask: &AudienceAsk<'_>,
    marketing: bool,
    required: &[crate::service::VarField],
) -> R<crate::service::Breakdown> {
    use crate::service::VarField;
    let backend = db.backend();
    let mut args: Vec<Arg> = Vec::new();
    let mut push = |a: Arg| {
        args.push(a);
        format!("${}", args.len() + 1)
    };
    let cols = audience_columns(ask, false, &mut push);
    let mut missing: Vec<String> = Vec::new();
    for f in required {
        let has_ident = |kinds: &str| {
            format!(
                "NOT EXISTS (SELECT 1 FROM contact_identities i WHERE i.contact_id = c.id \
                 AND i.kind IN ({kinds}))"
            )
        };
        missing.push(match f {
            VarField::Name | VarField::FirstName => "(c.name = '')".to_owned(),
            VarField::Company => "COALESCE(c.company, '') = ''".to_owned(),
            VarField::Language => "COALESCE(c.language, '') = ''".to_owned(),
            VarField::Email => has_ident("'email'"),
            VarField::Phone => has_ident("'phone', 'whatsapp_phone'"),
            VarField::Attr(key) => match backend {
                Backend::Sqlite => {
                    let p = push(Arg::Str(format!("$.\"{}\"", key.replace('"', ""))));
                    format!("COALESCE(CAST(json_extract(c.attributes, {p}) AS TEXT), '') = ''")
                }
                Backend::Postgres => {
                    let p = push(Arg::Str(key.clone()));
                    format!("COALESCE(c.attributes ->> {p}, '') = ''")
                }
            },
        });
    }
    let missing = if missing.is_empty() {
        "FALSE".to_owned()
    } else {
        missing.join(" OR ")
    };
    let cond = filter.to_sql(backend, &mut push);
    let no_consent = if marketing && ask.consent.is_some() {
        "x.consent IS NULL"
    } else {
        "FALSE"
    };
    let sql = format!(
        "SELECT COUNT(*) AS total, \
         COALESCE(SUM(CASE WHEN x.addr IS NULL THEN 1 ELSE 0 END), 0) AS no_identity, \
         COALESCE(SUM(CASE WHEN x.addr IS NOT NULL AND x.blocked THEN 1 ELSE 0 END), 0) AS blocked, \
         COALESCE(SUM(CASE WHEN x.addr IS NOT NULL AND NOT x.blocked AND x.consent = 'opted_out' \
           THEN 1 ELSE 0 END), 0) AS opted_out, \
         COALESCE(SUM(CASE WHEN x.addr IS NOT NULL AND NOT x.blocked AND {no_consent} \
           THEN 1 ELSE 0 END), 0) AS no_consent, \
         COALESCE(SUM(CASE WHEN x.addr IS NOT NULL AND NOT x.blocked \
           AND COALESCE(x.consent, '') <> 'opted_out' AND NOT ({no_consent}) AND x.missing \
           THEN 1 ELSE 0 END), 0) AS missing \
         FROM (SELECT {cols}, ({missing}) AS missing FROM contacts c \
               WHERE c.org_id = $1 AND {cond}) x"
    );
    let (total, no_identity, blocked, opted_out, no_consent, missing): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = with_db!(db, |pool| {
        bind_args!(
            sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64)>(sqlx::AssertSqlSafe(sql)).bind(org),
            args
        )
        .fetch_one(pool)
        .await
    })?;
    Ok(crate::service::Breakdown {
        total,
        eligible: total - no_identity - blocked - opted_out - no_consent,
        opted_out,
        no_consent,
        blocked,
        no_identity,
        missing_variables: missing,
    })
}
