//! Template persistence: every query scoped to the organisation (or to a channel the service
//! resolved inside it). SQL is shared by SQLite and PostgreSQL; JSON columns are TEXT.

use sqlx::FromRow;
use wamage_channels::ChannelId;
use wamage_kernel::{OrgId, Timestamp};
use wamage_platform::{Db, with_db, with_write};

use crate::model::TemplateId;

type R<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone, FromRow)]
pub struct TemplateRow {
    pub id: TemplateId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub kind: String,
    pub name: String,
    pub language: String,
    pub category: String,
    pub status: String,
    pub rejected_reason: Option<String>,
    pub quality: Option<String>,
    pub provider_template_id: Option<String>,
    pub components: String,
    pub mapping: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub submitted_at: Option<Timestamp>,
    pub synced_at: Option<Timestamp>,
}

const COLS: &str = "id, org_id, channel_id, kind, name, language, category, status, \
    rejected_reason, quality, provider_template_id, components, mapping, created_at, \
    updated_at, submitted_at, synced_at";

/// The organisation's templates, newest first, optionally of one channel and status.
pub async fn list(
    db: &Db,
    org: OrgId,
    channel: Option<ChannelId>,
    status: Option<&str>,
    q: Option<&str>,
) -> R<Vec<TemplateRow>> {
    let like = q.map(|q| format!("%{}%", q.to_lowercase().replace(['%', '_'], "")));
    with_db!(db, |p| sqlx::query_as::<_, TemplateRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM message_templates WHERE org_id = $1 \
         AND ($2 IS NULL OR channel_id = $2) AND ($3 IS NULL OR status = $3) \
         AND ($4 IS NULL OR name LIKE $4) ORDER BY updated_at DESC, id LIMIT 1000"
        ))
    )
    .bind(org)
    .bind(channel)
    .bind(status)
    .bind(like)
    .fetch_all(p)
    .await)
}

pub async fn get(db: &Db, org: OrgId, id: TemplateId) -> R<Option<TemplateRow>> {
    with_db!(db, |p| sqlx::query_as::<_, TemplateRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM message_templates WHERE org_id = $1 AND id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(p)
    .await)
}

/// A channel's template by Meta's id, or else by name and language.
pub async fn by_provider(
    db: &Db,
    channel: ChannelId,
    provider_id: &str,
    name: &str,
    language: &str,
) -> R<Option<TemplateRow>> {
    with_db!(db, |p| sqlx::query_as::<_, TemplateRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM message_templates WHERE channel_id = $1 \
         AND (provider_template_id = $2 OR (name = $3 AND language = $4)) \
         ORDER BY CASE WHEN provider_template_id = $2 THEN 0 ELSE 1 END LIMIT 1"
        ))
    )
    .bind(channel)
    .bind(provider_id)
    .bind(name)
    .bind(language)
    .fetch_optional(p)
    .await)
}

/// Inserts a template; `false` when the channel already has that name and language.
pub async fn insert(db: &Db, t: &TemplateRow) -> R<bool> {
    let res = with_write!(db, |p| sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO message_templates ({COLS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    )))
    .bind(t.id)
    .bind(t.org_id)
    .bind(t.channel_id)
    .bind(&t.kind)
    .bind(&t.name)
    .bind(&t.language)
    .bind(&t.category)
    .bind(&t.status)
    .bind(&t.rejected_reason)
    .bind(&t.quality)
    .bind(&t.provider_template_id)
    .bind(&t.components)
    .bind(&t.mapping)
    .bind(t.created_at)
    .bind(t.updated_at)
    .bind(t.submitted_at)
    .bind(t.synced_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()));
    match res {
        Ok(_) => Ok(true),
        Err(e) if wamage_platform::db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Saves every mutable column; `false` when the new name and language are taken.
pub async fn save(db: &Db, t: &TemplateRow) -> R<bool> {
    let res = with_write!(db, |p| sqlx::query(
        "UPDATE message_templates SET name = $2, language = $3, category = $4, status = $5, \
         rejected_reason = $6, quality = $7, provider_template_id = $8, components = $9, \
         mapping = $10, updated_at = $11, submitted_at = $12, synced_at = $13 WHERE id = $1"
    )
    .bind(t.id)
    .bind(&t.name)
    .bind(&t.language)
    .bind(&t.category)
    .bind(&t.status)
    .bind(&t.rejected_reason)
    .bind(&t.quality)
    .bind(&t.provider_template_id)
    .bind(&t.components)
    .bind(&t.mapping)
    .bind(t.updated_at)
    .bind(t.submitted_at)
    .bind(t.synced_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()));
    match res {
        Ok(_) => Ok(true),
        Err(e) if wamage_platform::db::is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn delete(db: &Db, org: OrgId, id: TemplateId) -> R<bool> {
    let n = with_write!(db, |p| sqlx::query(
        "DELETE FROM message_templates WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}
