//! Campaign persistence. Campaign rows are scoped to the organisation; recipient rows to a
//! campaign the service resolved inside it. Bulk writes are one statement per batch: SQLite
//! reads one JSON parameter with `json_each` (ids as hex, turned back into blobs by `unhex`),
//! PostgreSQL gets column arrays (`UNNEST`).

use serde_json::json;
use sqlx::FromRow;
use uuid::Uuid;
use wamage_channels::ChannelId;
use wamage_contacts::ContactId;
use wamage_kernel::{OrgId, Timestamp, UserId};
use wamage_platform::{Db, Tx, with_db, with_tx, with_write};
use wamage_templates::TemplateId;

use crate::model::CampaignId;

type R<T> = Result<T, sqlx::Error>;

#[derive(Debug, Clone, FromRow)]
pub struct CampaignRow {
    pub id: CampaignId,
    pub org_id: OrgId,
    pub channel_id: ChannelId,
    pub template_id: Option<TemplateId>,
    pub name: String,
    pub variables: String,
    pub audience: String,
    pub status: String,
    pub pause_reason: Option<String>,
    pub scheduled_at: Option<Timestamp>,
    pub time_zone: Option<String>,
    pub failure_threshold: f64,
    pub total: i64,
    pub snapshot_at: Option<Timestamp>,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub launched_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

const COLS: &str = "id, org_id, channel_id, template_id, name, variables, audience, status, \
    pause_reason, scheduled_at, time_zone, failure_threshold, total, snapshot_at, created_by, \
    created_at, updated_at, launched_at, completed_at";

pub async fn list(db: &Db, org: OrgId, status: Option<&str>) -> R<Vec<CampaignRow>> {
    with_db!(db, |p| sqlx::query_as::<_, CampaignRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM campaigns WHERE org_id = $1 AND ($2 IS NULL OR status = $2) \
         ORDER BY created_at DESC, id LIMIT 500"
        ))
    )
    .bind(org)
    .bind(status)
    .fetch_all(p)
    .await)
}

pub async fn get(db: &Db, org: OrgId, id: CampaignId) -> R<Option<CampaignRow>> {
    with_db!(db, |p| sqlx::query_as::<_, CampaignRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM campaigns WHERE org_id = $1 AND id = $2"
        ))
    )
    .bind(org)
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn get_any(db: &Db, id: CampaignId) -> R<Option<CampaignRow>> {
    with_db!(db, |p| sqlx::query_as::<_, CampaignRow>(
        sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM campaigns WHERE id = $1"))
    )
    .bind(id)
    .fetch_optional(p)
    .await)
}

pub async fn insert(db: &Db, c: &CampaignRow) -> R<()> {
    with_write!(db, |p| sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO campaigns ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19)"
    )))
    .bind(c.id)
    .bind(c.org_id)
    .bind(c.channel_id)
    .bind(c.template_id)
    .bind(&c.name)
    .bind(&c.variables)
    .bind(&c.audience)
    .bind(&c.status)
    .bind(&c.pause_reason)
    .bind(c.scheduled_at)
    .bind(&c.time_zone)
    .bind(c.failure_threshold)
    .bind(c.total)
    .bind(c.snapshot_at)
    .bind(c.created_by)
    .bind(c.created_at)
    .bind(c.updated_at)
    .bind(c.launched_at)
    .bind(c.completed_at)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Saves the editable columns of a draft or scheduled campaign.
pub async fn save_draft(db: &Db, c: &CampaignRow) -> R<bool> {
    let n = with_write!(db, |p| sqlx::query(
        "UPDATE campaigns SET name = $2, channel_id = $3, template_id = $4, variables = $5, \
         audience = $6, failure_threshold = $7, updated_at = $8 \
         WHERE id = $1 AND status IN ('draft', 'scheduled')"
    )
    .bind(c.id)
    .bind(&c.name)
    .bind(c.channel_id)
    .bind(c.template_id)
    .bind(&c.variables)
    .bind(&c.audience)
    .bind(c.failure_threshold)
    .bind(c.updated_at)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Moves a campaign from one of `from` to `to` (with the pause reason); `false` when it was in
/// none of them (another request or worker moved it first). `from` are the code's own state
/// names, never input.
pub async fn transition(
    db: &Db,
    id: CampaignId,
    from: &[&'static str],
    to: &str,
    reason: Option<&str>,
    now: Timestamp,
) -> R<bool> {
    let from = from
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let n = with_write!(db, |p| {
        sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE campaigns SET status = $2, pause_reason = $3, updated_at = $4, \
         completed_at = CASE WHEN $2 IN ('completed', 'cancelled', 'failed') THEN $4 ELSE completed_at END \
         WHERE id = $1 AND status IN ({from})"
    )))
    .bind(id)
    .bind(to)
    .bind(reason)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(n > 0)
}

/// Launch: draft → running/scheduled, once.
pub async fn launch(
    db: &Db,
    id: CampaignId,
    to: &str,
    scheduled_at: Option<Timestamp>,
    time_zone: Option<&str>,
    now: Timestamp,
) -> R<bool> {
    let n = with_write!(db, |p| {
        sqlx::query(
        "UPDATE campaigns SET status = $2, scheduled_at = $3, time_zone = $4, launched_at = $5, \
         updated_at = $5, pause_reason = NULL WHERE id = $1 AND status = 'draft'"
    )
    .bind(id)
    .bind(to)
    .bind(scheduled_at)
    .bind(time_zone)
    .bind(now)
    .execute(p)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(n > 0)
}

pub async fn set_snapshot(tx: &mut Tx, id: CampaignId, total: i64, now: Timestamp) -> R<()> {
    with_tx!(tx, |c| sqlx::query(
        "UPDATE campaigns SET total = $2, snapshot_at = $3, updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(total)
    .bind(now)
    .execute(c)
    .await
    .map(|_| ()))
}

/// Deletes a campaign and its recipients (PostgreSQL has no foreign key to cascade them: see
/// its migration 80002).
pub async fn delete(db: &Db, org: OrgId, id: CampaignId) -> R<()> {
    let mut tx = db.begin().await?;
    let gone = with_tx!(&mut tx, |c| sqlx::query(
        "DELETE FROM campaigns WHERE org_id = $1 AND id = $2"
    )
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    if gone > 0 {
        with_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM campaign_recipients WHERE campaign_id = $1"
        )
        .bind(id)
        .execute(c)
        .await
        .map(|_| ()))?;
    }
    tx.commit().await
}

// ---- recipients ------------------------------------------------------------------------------

/// A recipient row as written by the snapshot.
#[derive(Debug, Clone)]
pub struct NewRecipient {
    pub seq: i64,
    pub contact_id: ContactId,
    pub name: String,
    pub address: Option<String>,
    pub address_kind: Option<String>,
    /// `pending` or `skipped`.
    pub state: &'static str,
    pub skip_reason: Option<String>,
}

/// Deletes a campaign's recipients and leases (a snapshot starting over); numbering starts
/// again from 1.
pub async fn clear_recipients(db: &Db, id: CampaignId) -> R<()> {
    let mut tx = db.begin().await?;
    for sql in [
        "DELETE FROM campaign_recipients WHERE campaign_id = $1",
        "DELETE FROM campaign_leases WHERE campaign_id = $1",
        "UPDATE campaigns SET next_seq = 1 WHERE id = $1",
    ] {
        with_tx!(&mut tx, |c| sqlx::query(sql)
            .bind(id)
            .execute(c)
            .await
            .map(|_| ()))?;
    }
    tx.commit().await
}

/// Copies one audience page into the campaign's recipients in one statement (`seq` from
/// `after_seq + 1` in contact order; `skipped` with the page's reason, else `pending`).
/// Returns how many rows it wrote and, when the page was full, the last contact (the walk's
/// next cursor).
pub async fn snapshot_page(
    db: &Db,
    id: CampaignId,
    page: wamage_contacts::AudiencePage,
    limit: usize,
    after_seq: i64,
    now: Timestamp,
) -> R<(u64, Option<ContactId>)> {
    // The page is materialised first: its per-contact reads run once, not once per use.
    let sql = format!(
        "WITH p AS MATERIALIZED ({}) \
         INSERT INTO campaign_recipients (campaign_id, seq, contact_id, name, address, \
         address_kind, state, skip_reason, updated_at) \
         SELECT $1, $2 + row_number() OVER (ORDER BY p.contact_id), p.contact_id, p.name, \
         p.address, p.address_kind, \
         CASE WHEN p.skip_reason IS NULL THEN 'pending' ELSE 'skipped' END, p.skip_reason, $3 \
         FROM p ORDER BY p.contact_id",
        page.sql
    );
    let n = match db {
        Db::Sqlite(p) => {
            let mut write = wamage_platform::db::sqlite_write(p, false).await?;
            let q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(after_seq)
                .bind(now);
            page.bind(q).execute(write.conn()).await?.rows_affected()
        }
        Db::Postgres(p) => {
            // The plan is a walk in contact order probing each contact's rows: a merge join
            // would read the audience's groups from their start for every page, and compiling
            // the statement (JIT) costs more than running it. The snapshot starts over after a
            // crash, so its pages need not wait for the disk (the final commit does).
            let mut tx = p.begin().await?;
            sqlx::query(
                "SELECT set_config('enable_mergejoin', 'off', true), \
                 set_config('enable_hashjoin', 'off', true), set_config('jit', 'off', true), \
                 set_config('synchronous_commit', 'off', true)",
            )
            .execute(&mut *tx)
            .await?;
            let q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .bind(after_seq)
                .bind(now);
            let n = page.bind(q).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        }
    };
    if usize::try_from(n).unwrap_or(usize::MAX) < limit {
        return Ok((n, None));
    }
    let last: Option<ContactId> = with_db!(db, |p| sqlx::query_scalar(
        "SELECT contact_id FROM campaign_recipients WHERE campaign_id = $1 AND seq = $2"
    )
    .bind(id)
    .bind(after_seq + i64::try_from(n).unwrap_or(i64::MAX))
    .fetch_optional(p)
    .await)?;
    Ok((n, last))
}

/// Skips (`duplicate_address`) every pending recipient whose address an earlier one has: two
/// contacts can share an address only through different identity kinds (a kind's values are
/// unique in an organisation), so nothing is read twice when all have the same kind.
pub async fn skip_duplicate_addresses(db: &Db, id: CampaignId, now: Timestamp) -> R<u64> {
    let by_state = recipients_by_state(db);
    let kinds: (Option<String>, Option<String>) =
        with_db!(db, |p| sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT MIN(address_kind), MAX(address_kind) FROM {by_state} \
             WHERE campaign_id = $1 AND state = 'pending'"
        )))
        .bind(id)
        .fetch_one(p)
        .await)?;
    if kinds.0 == kinds.1 {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE campaign_recipients SET state = 'skipped', skip_reason = 'duplicate_address', \
         updated_at = $2 WHERE campaign_id = $1 AND seq IN (SELECT d.seq FROM \
         (SELECT seq, row_number() OVER (PARTITION BY address ORDER BY seq) AS n \
          FROM {by_state} WHERE campaign_id = $1 AND state = 'pending') d WHERE d.n > 1)"
    );
    update_recipients(db, sql, id, now).await
}

/// Inserts a batch of recipients in one statement (a contact already in the campaign is kept
/// as it was).
pub async fn insert_recipients(
    db: &Db,
    id: CampaignId,
    rows: &[NewRecipient],
    now: Timestamp,
) -> R<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    match db {
        Db::Sqlite(p) => {
            let mut write = wamage_platform::db::sqlite_write(p, false).await?;
            let items: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    json!([
                        r.seq,
                        r.contact_id.as_uuid().simple().to_string(),
                        r.name,
                        r.address,
                        r.address_kind,
                        r.state,
                        r.skip_reason
                    ])
                })
                .collect();
            sqlx::query(
                "INSERT INTO campaign_recipients (campaign_id, seq, contact_id, name, address, \
                 address_kind, state, skip_reason, updated_at) \
                 SELECT $1, j.value ->> 0, unhex(j.value ->> 1), j.value ->> 2, j.value ->> 3, \
                 j.value ->> 4, j.value ->> 5, j.value ->> 6, $2 FROM json_each($3) j WHERE true \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(now)
            .bind(serde_json::Value::Array(items).to_string())
            .execute(write.conn())
            .await
            .map(|r| r.rows_affected())
        }
        Db::Postgres(p) => {
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let contacts: Vec<Uuid> = rows.iter().map(|r| r.contact_id.as_uuid()).collect();
            let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
            let addresses: Vec<Option<String>> = rows.iter().map(|r| r.address.clone()).collect();
            let kinds: Vec<Option<String>> = rows.iter().map(|r| r.address_kind.clone()).collect();
            let states: Vec<String> = rows.iter().map(|r| r.state.to_owned()).collect();
            let reasons: Vec<Option<String>> = rows.iter().map(|r| r.skip_reason.clone()).collect();
            sqlx::query(
                "INSERT INTO campaign_recipients (campaign_id, seq, contact_id, name, address, \
                 address_kind, state, skip_reason, updated_at) \
                 SELECT $1, u.seq, u.contact, u.name, u.address, u.kind, u.state, u.reason, $2 \
                 FROM UNNEST($3::int8[], $4::uuid[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[]) AS u(seq, contact, name, address, kind, state, reason) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(now)
            .bind(seqs)
            .bind(contacts)
            .bind(names)
            .bind(addresses)
            .bind(kinds)
            .bind(states)
            .bind(reasons)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        }
    }
}

/// Contacts of a campaign's slice, in seq order after `after` (retargeting reads them).
pub async fn slice_contacts(
    db: &Db,
    id: CampaignId,
    slice_sql: &str,
    after: i64,
    limit: i64,
) -> R<Vec<(i64, ContactId)>> {
    with_db!(db, |p| sqlx::query_as::<_, (i64, ContactId)>(
        sqlx::AssertSqlSafe(format!(
            "SELECT seq, contact_id FROM campaign_recipients WHERE campaign_id = $1 AND seq > $2 \
         AND ({slice_sql}) ORDER BY seq LIMIT $3"
        ))
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(p)
    .await)
}

/// A claimed recipient.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub seq: i64,
    pub contact_id: ContactId,
    pub attempts: i64,
}

/// A range claim's row: the range's first `seq`, then one pending recipient (`seq`, contact,
/// attempts) or none.
type RangeRow = (i64, Option<i64>, Option<ContactId>, Option<i64>);

/// Leases the campaign's next `size` recipients in `seq` order (whatever their state), from
/// `campaigns.next_seq` to the last of them, until `lease_until`; returns the range's first
/// `seq` and its pending recipients (their `attempts` counting this claim). `None` once every
/// recipient has been in a range. Nothing is written to the recipients: the lease row holds
/// them, and their outcomes are recorded with it released (`record`). (`seq` need not be
/// dense: a PostgreSQL snapshot numbers each of its ranges of contacts from its own base.)
pub async fn claim_range(
    db: &Db,
    id: CampaignId,
    size: i64,
    lease_until: Timestamp,
) -> R<Option<(i64, Vec<Claimed>)>> {
    match db {
        Db::Sqlite(_) => claim_range_sqlite(db, id, size, lease_until).await,
        Db::Postgres(p) => {
            // One statement. Concurrent claims queue on the campaign's row (a claim that
            // waited reads the row as the one before left it); each then reads only its own
            // range, which nobody else writes while ranges remain (`claim` runs only after
            // that, and skips live leases).
            let rows: Vec<RangeRow> = sqlx::query_as(
                "WITH c AS (SELECT next_seq FROM campaigns WHERE id = $1 FOR UPDATE), \
                 r AS (SELECT MIN(c.next_seq) AS first_seq, MAX(s.seq) AS last_seq FROM c, \
                 LATERAL (SELECT seq FROM campaign_recipients WHERE campaign_id = $1 \
                 AND seq >= c.next_seq ORDER BY seq LIMIT $2) s), \
                 u AS (UPDATE campaigns SET next_seq = r.last_seq + 1 FROM r \
                 WHERE campaigns.id = $1 AND r.last_seq IS NOT NULL \
                 RETURNING r.first_seq, r.last_seq), \
                 l AS (INSERT INTO campaign_leases (campaign_id, first_seq, last_seq, lease_until) \
                 SELECT $1, first_seq, last_seq, $3 FROM u RETURNING first_seq, last_seq) \
                 SELECT l.first_seq, x.seq, x.contact_id, x.attempts FROM l \
                 LEFT JOIN LATERAL (SELECT seq, contact_id, attempts FROM campaign_recipients \
                 WHERE campaign_id = $1 AND seq BETWEEN l.first_seq AND l.last_seq \
                 AND state = 'pending' ORDER BY seq) x ON TRUE",
            )
            .bind(id)
            .bind(size)
            .bind(lease_until)
            .fetch_all(p)
            .await?;
            let Some(first) = rows.first().map(|r| r.0) else {
                return Ok(None);
            };
            let claimed = rows
                .into_iter()
                .filter_map(|(_, seq, contact, attempts)| {
                    Some(Claimed {
                        seq: seq?,
                        contact_id: contact?,
                        attempts: attempts? + 1,
                    })
                })
                .collect();
            Ok(Some((first, claimed)))
        }
    }
}

async fn claim_range_sqlite(
    db: &Db,
    id: CampaignId,
    size: i64,
    lease_until: Timestamp,
) -> R<Option<(i64, Vec<Claimed>)>> {
    let mut tx = db.begin().await?;
    let Tx::Sqlite(t, _) = &mut tx else {
        return Ok(None);
    };
    let (first, last): (i64, Option<i64>) = sqlx::query_as(
        "SELECT c.next_seq, (SELECT MAX(seq) FROM (SELECT seq FROM campaign_recipients \
         WHERE campaign_id = c.id AND seq >= c.next_seq ORDER BY seq LIMIT ?)) \
         FROM campaigns c WHERE c.id = ?",
    )
    .bind(size)
    .bind(id)
    .fetch_one(&mut **t)
    .await?;
    let Some(last) = last else {
        return Ok(None); // nothing was written
    };
    sqlx::query("UPDATE campaigns SET next_seq = ? WHERE id = ?")
        .bind(last + 1)
        .bind(id)
        .execute(&mut **t)
        .await?;
    let (picked,): (String,) = sqlx::query_as(
        "SELECT json_group_array(json_array(seq, hex(contact_id), attempts)) FROM \
         (SELECT seq, contact_id, attempts FROM campaign_recipients \
         WHERE campaign_id = ? AND seq BETWEEN ? AND ? AND state = 'pending' ORDER BY seq)",
    )
    .bind(id)
    .bind(first)
    .bind(last)
    .fetch_one(&mut **t)
    .await?;
    let claimed = parse_picked(&picked)?;
    // A range with nothing to send needs no lease (releasing it finds none).
    if !claimed.is_empty() {
        sqlx::query(
            "INSERT INTO campaign_leases (campaign_id, first_seq, last_seq, lease_until) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(first)
        .bind(last)
        .bind(lease_until)
        .execute(&mut **t)
        .await?;
    }
    tx.commit().await?;
    Ok(Some((first, claimed)))
}

/// Recipients read as one `json_group_array` of `[seq, hex(contact_id), attempts]` (sqlx hands
/// SQLite's result rows over one by one), with `attempts` counting the claim.
fn parse_picked(picked: &str) -> R<Vec<Claimed>> {
    let rows: Vec<(i64, String, i64)> =
        serde_json::from_str(picked).map_err(|e| sqlx::Error::Decode(e.into()))?;
    let mut claimed = Vec::with_capacity(rows.len());
    for (seq, contact, attempts) in rows {
        let contact = uuid::Uuid::parse_str(&contact).map_err(|e| sqlx::Error::Decode(e.into()))?;
        claimed.push(Claimed {
            seq,
            contact_id: ContactId::from(contact),
            attempts: attempts + 1,
        });
    }
    Ok(claimed)
}

/// Gives a range lease up (its recipients were all done when it was taken).
pub async fn release_lease(db: &Db, id: CampaignId, first_seq: i64) -> R<()> {
    with_write!(db, |p| sqlx::query(
        "DELETE FROM campaign_leases WHERE campaign_id = $1 AND first_seq = $2"
    )
    .bind(id)
    .bind(first_seq)
    .execute(p)
    .await
    .map(|_| ()))
}

/// Pending recipients inside live range leases: being sent now.
pub async fn leased_pending(db: &Db, id: CampaignId) -> R<i64> {
    with_db!(db, |p| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM campaign_leases l JOIN campaign_recipients r \
         ON r.campaign_id = l.campaign_id AND r.seq BETWEEN l.first_seq AND l.last_seq \
         WHERE l.campaign_id = $1 AND r.state = 'pending'"
    )
    .bind(id)
    .fetch_one(p)
    .await)
}

/// Claims up to `limit` pending recipients after `after` (in `seq` order) with a lease; each
/// row goes to one claimer. Dispatchers pass the last `seq` they claimed: on PostgreSQL every
/// claimed row leaves a dead index entry behind it until vacuum, and a scan from the start
/// would step over all of them (a second per claim at a million). Rows that went back to
/// `pending` behind the cursor are found by a claim from 0 once the cursor's run is empty.
pub async fn claim(
    db: &Db,
    id: CampaignId,
    limit: i64,
    after: i64,
    lease_until: Timestamp,
    now: Timestamp,
) -> R<Vec<Claimed>> {
    match db {
        Db::Sqlite(_) => claim_sqlite(db, id, limit, after, lease_until, now).await,
        Db::Postgres(p) => {
            // The picked rows are joined back by primary key (a plan on the state index with
            // `seq = ANY(…)` as a filter reads every pending row when the statistics are stale).
            sqlx::query_as::<_, Claimed>(
                "WITH picked AS (SELECT p.seq FROM campaign_recipients p \
                 WHERE p.campaign_id = $1 AND p.state = 'pending' AND p.seq > $5 \
                 AND NOT EXISTS (SELECT 1 FROM campaign_leases l WHERE l.campaign_id = $1 \
                 AND p.seq BETWEEN l.first_seq AND l.last_seq) \
                 ORDER BY p.seq LIMIT $2 FOR UPDATE OF p SKIP LOCKED) \
                 UPDATE campaign_recipients r SET state = 'sending', lease_until = $3, \
                 attempts = r.attempts + 1, updated_at = $4 \
                 FROM picked WHERE r.campaign_id = $1 AND r.seq = picked.seq \
                 RETURNING r.seq, r.contact_id, r.attempts",
            )
            .bind(id)
            .bind(limit)
            .bind(lease_until)
            .bind(now)
            .bind(after)
            .fetch_all(p)
            .await
        }
    }
}

/// SQLite: the picked rows come back as one JSON row and are leased by one update (sqlx
/// hands each result row over from SQLite's worker thread on its own: `RETURNING` 500 rows
/// was 500 hand-offs).
async fn claim_sqlite(
    db: &Db,
    id: CampaignId,
    limit: i64,
    after: i64,
    lease_until: Timestamp,
    now: Timestamp,
) -> R<Vec<Claimed>> {
    let mut tx = db.begin().await?;
    let Tx::Sqlite(t, _) = &mut tx else {
        return Ok(Vec::new());
    };
    let (picked,): (String,) = sqlx::query_as(
        "SELECT json_group_array(json_array(seq, hex(contact_id), attempts)) FROM \
         (SELECT r.seq, r.contact_id, r.attempts FROM campaign_recipients r \
         INDEXED BY campaign_recipients_state_idx \
         WHERE r.campaign_id = ? AND r.state = 'pending' AND r.seq > ? \
         AND NOT EXISTS (SELECT 1 FROM campaign_leases l WHERE l.campaign_id = ? \
         AND r.seq BETWEEN l.first_seq AND l.last_seq) ORDER BY r.seq LIMIT ?)",
    )
    .bind(id)
    .bind(after)
    .bind(id)
    .bind(limit)
    .fetch_one(&mut **t)
    .await?;
    let claimed = parse_picked(&picked)?;
    for chunk in claimed.chunks(500) {
        let sql = format!(
            "UPDATE campaign_recipients SET state = 'sending', lease_until = ?, \
             attempts = attempts + 1, updated_at = ? WHERE campaign_id = ? AND seq IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_until)
            .bind(now)
            .bind(id);
        for c in chunk {
            q = q.bind(c.seq);
        }
        q.execute(&mut **t).await?;
    }
    tx.commit().await?;
    Ok(claimed)
}

/// Fresh planner statistics for the recipients (PostgreSQL; SQLite's claims and sweeps are
/// pinned to the state index instead). Run after a large snapshot: without them the planner
/// takes a new campaign's million pending rows for a handful.
pub async fn analyze_recipients(db: &Db) -> R<()> {
    if let Db::Postgres(p) = db {
        sqlx::query("ANALYZE campaign_recipients")
            .execute(p)
            .await?;
    }
    Ok(())
}

/// The outcome of one claimed send.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        provider_message_id: String,
    },
    Failed {
        code: i64,
        title: String,
    },
    Skipped {
        reason: String,
    },
    /// Not sent (paced, breaker open, paused): back to pending.
    Retry,
}

/// Records a batch of outcomes and releases the batch's range lease (`lease`: its first
/// `seq`), together. Only rows still claimed are written: `sending` (claimed row by row) or
/// `pending` (inside a range lease; its attempt is counted now), or `unconfirmed` (not by a
/// retry), so a late writer cannot undo a newer state. PostgreSQL gets one statement for the
/// whole batch: the outcomes as parallel arrays joined on the primary key, a single round trip
/// and commit. SQLite, in process, runs one statement per kind of outcome and hundred rows
/// (see `record_sqlite`).
pub async fn record(
    db: &Db,
    id: CampaignId,
    outcomes: &[(i64, Outcome)],
    lease: Option<i64>,
    now: Timestamp,
) -> R<()> {
    let Db::Postgres(p) = db else {
        return record_sqlite(db, id, outcomes, lease, now).await;
    };
    if outcomes.is_empty() {
        if let Some(first) = lease {
            return release_lease(db, id, first).await;
        }
        return Ok(());
    }
    let n = outcomes.len();
    let mut seqs = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut pids: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut codes: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut texts: Vec<Option<&str>> = Vec::with_capacity(n);
    for (seq, o) in outcomes {
        seqs.push(*seq);
        let (state, pid, code, text) = match o {
            Outcome::Sent {
                provider_message_id,
            } => ("sent", Some(provider_message_id.as_str()), None, None),
            Outcome::Failed { code, title } => ("failed", None, Some(*code), Some(title.as_str())),
            Outcome::Skipped { reason } => ("skipped", None, None, Some(reason.as_str())),
            Outcome::Retry => ("pending", None, None, None),
        };
        states.push(state);
        pids.push(pid);
        codes.push(code);
        texts.push(text);
    }
    sqlx::query(
        "WITH released AS (DELETE FROM campaign_leases WHERE campaign_id = $1 AND first_seq = $8) \
         UPDATE campaign_recipients r SET state = x.state, \
         attempts = r.attempts + CASE WHEN r.state = 'pending' THEN 1 ELSE 0 END, \
         provider_message_id = CASE WHEN x.state = 'sent' THEN x.pid ELSE r.provider_message_id END, \
         sent_at = CASE WHEN x.state = 'sent' THEN $2 ELSE r.sent_at END, \
         error_code = CASE WHEN x.state = 'failed' THEN x.code ELSE r.error_code END, \
         error_title = CASE WHEN x.state = 'failed' THEN x.text ELSE r.error_title END, \
         failed_at = CASE WHEN x.state = 'failed' THEN $2 ELSE r.failed_at END, \
         skip_reason = CASE WHEN x.state = 'skipped' THEN x.text ELSE r.skip_reason END, \
         lease_until = NULL, updated_at = $2 \
         FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::text[]) \
         AS x(seq, state, pid, code, text) \
         WHERE r.campaign_id = $1 AND r.seq = x.seq \
         AND (r.state IN ('sending', 'pending') \
         OR (r.state = 'unconfirmed' AND x.state <> 'pending'))",
    )
    .bind(id)
    .bind(now)
    .bind(seqs)
    .bind(states)
    .bind(pids)
    .bind(codes)
    .bind(texts)
    .bind(lease)
    .execute(p)
    .await?;
    Ok(())
}

/// SQLite: one update per kind of outcome and hundred rows, in one transaction. Each is a
/// primary-key lookup per listed `seq` (`seq IN (…)`; the state test is kept off the state
/// index with `+`), per-row values picked with `CASE seq`. SQLite hands every statement to its
/// worker thread and back: one statement per row made those hand-offs the sender's main cost.
/// Parameters are plain `?` (a numbered one's name is found by walking a list).
async fn record_sqlite(
    db: &Db,
    id: CampaignId,
    outcomes: &[(i64, Outcome)],
    lease: Option<i64>,
    now: Timestamp,
) -> R<()> {
    let mut sent: Vec<(i64, &str)> = Vec::new();
    let mut failed: Vec<(i64, i64, &str)> = Vec::new();
    let mut skipped: Vec<(i64, &str)> = Vec::new();
    let mut retry: Vec<i64> = Vec::new();
    for (seq, o) in outcomes {
        match o {
            Outcome::Sent {
                provider_message_id,
            } => sent.push((*seq, provider_message_id)),
            Outcome::Failed { code, title } => failed.push((*seq, *code, title)),
            Outcome::Skipped { reason } => skipped.push((*seq, reason)),
            Outcome::Retry => retry.push(*seq),
        }
    }
    let cases = |n: usize| " WHEN ? THEN ?".repeat(n);
    let list = |n: usize| vec!["?"; n].join(", ");
    let mut tx = db.begin().await?;
    let Tx::Sqlite(t, _) = &mut tx else {
        return Ok(());
    };
    for chunk in sent.chunks(100) {
        let n = chunk.len();
        let sql = format!(
            "UPDATE campaign_recipients SET state = 'sent', provider_message_id = CASE seq{} END, \
             sent_at = ?, lease_until = NULL, updated_at = ?, attempts = attempts + (state = 'pending') \
             WHERE campaign_id = ? AND seq IN ({}) AND +state IN ('sending', 'pending', 'unconfirmed')",
            cases(n),
            list(n)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, pid) in chunk {
            q = q.bind(*seq).bind(*pid);
        }
        q = q.bind(now).bind(now).bind(id);
        for (seq, _) in chunk {
            q = q.bind(*seq);
        }
        q.execute(&mut **t).await?;
    }
    for chunk in failed.chunks(100) {
        let n = chunk.len();
        let sql = format!(
            "UPDATE campaign_recipients SET state = 'failed', error_code = CASE seq{} END, \
             error_title = CASE seq{} END, failed_at = ?, lease_until = NULL, updated_at = ?, \
             attempts = attempts + (state = 'pending') \
             WHERE campaign_id = ? AND seq IN ({}) AND +state IN ('sending', 'pending', 'unconfirmed')",
            cases(n),
            cases(n),
            list(n)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, code, _) in chunk {
            q = q.bind(*seq).bind(*code);
        }
        for (seq, _, title) in chunk {
            q = q.bind(*seq).bind(*title);
        }
        q = q.bind(now).bind(now).bind(id);
        for (seq, _, _) in chunk {
            q = q.bind(*seq);
        }
        q.execute(&mut **t).await?;
    }
    for chunk in skipped.chunks(100) {
        let n = chunk.len();
        let sql = format!(
            "UPDATE campaign_recipients SET state = 'skipped', skip_reason = CASE seq{} END, \
             lease_until = NULL, updated_at = ?, attempts = attempts + (state = 'pending') \
             WHERE campaign_id = ? AND seq IN ({}) AND +state IN ('sending', 'pending', 'unconfirmed')",
            cases(n),
            list(n)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, reason) in chunk {
            q = q.bind(*seq).bind(*reason);
        }
        q = q.bind(now).bind(id);
        for (seq, _) in chunk {
            q = q.bind(*seq);
        }
        q.execute(&mut **t).await?;
    }
    for chunk in retry.chunks(100) {
        let sql = format!(
            "UPDATE campaign_recipients SET state = 'pending', lease_until = NULL, updated_at = ?, \
             attempts = attempts + (state = 'pending') \
             WHERE campaign_id = ? AND seq IN ({}) AND +state IN ('sending', 'pending')",
            list(chunk.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(id);
        for seq in chunk {
            q = q.bind(*seq);
        }
        q.execute(&mut **t).await?;
    }
    if let Some(first) = lease {
        sqlx::query("DELETE FROM campaign_leases WHERE campaign_id = ? AND first_seq = ?")
            .bind(id)
            .bind(first)
            .execute(&mut **t)
            .await?;
    }
    tx.commit().await
}

/// `campaign_recipients` pinned to its state index on SQLite. Without statistics SQLite's
/// planner answers `campaign_id = ? AND state = ?` from the primary key (every row of the
/// campaign: over a second per sweep at a million recipients); the state index reads only the
/// rows in that state.
fn recipients_by_state(db: &Db) -> &'static str {
    match db {
        Db::Sqlite(_) => "campaign_recipients INDEXED BY campaign_recipients_state_idx",
        Db::Postgres(_) => "campaign_recipients",
    }
}

/// Runs an update of a campaign's recipients bound to `($1 campaign, $2 now)`; returns how
/// many rows it changed.
async fn update_recipients(db: &Db, sql: String, id: CampaignId, now: Timestamp) -> R<u64> {
    with_write!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(id)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

/// Leases that ran out mid-send: their recipients become `unconfirmed` (a range lease's
/// still-pending ones, with the attempt counted), and the range leases go. Returns how many
/// recipients.
pub async fn expire_leases(db: &Db, id: CampaignId, now: Timestamp) -> R<u64> {
    let sql = format!(
        "UPDATE {} SET state = 'unconfirmed', updated_at = $2 \
         WHERE campaign_id = $1 AND state = 'sending' AND lease_until < $2",
        recipients_by_state(db)
    );
    let mut n = update_recipients(db, sql, id, now).await?;
    let mut tx = db.begin().await?;
    let expired: Vec<(i64, i64)> = with_tx!(&mut tx, |c| sqlx::query_as(
        "DELETE FROM campaign_leases WHERE campaign_id = $1 AND lease_until < $2 \
         RETURNING first_seq, last_seq"
    )
    .bind(id)
    .bind(now)
    .fetch_all(c)
    .await)?;
    for (first, last) in expired {
        n += with_tx!(&mut tx, |c| sqlx::query(
            "UPDATE campaign_recipients SET state = 'unconfirmed', attempts = attempts + 1, \
             updated_at = $2 WHERE campaign_id = $1 AND seq BETWEEN $3 AND $4 \
             AND state = 'pending'"
        )
        .bind(id)
        .bind(now)
        .bind(first)
        .bind(last)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    tx.commit().await?;
    Ok(n)
}

/// Unconfirmed rows older than `before`: sent again (`resend`) or failed as unconfirmable.
pub async fn settle_unconfirmed(
    db: &Db,
    id: CampaignId,
    before: Timestamp,
    resend: bool,
    now: Timestamp,
) -> R<u64> {
    let set = if resend {
        "state = 'pending', lease_until = NULL, updated_at = $3"
    } else {
        "state = 'failed', error_code = 0, \
         error_title = 'Unconfirmed: the sender stopped during the send; not retried to avoid a duplicate', \
         failed_at = $3, lease_until = NULL, updated_at = $3"
    };
    let sql = format!(
        "UPDATE {} SET {set} WHERE campaign_id = $1 AND state = 'unconfirmed' AND updated_at < $2",
        recipients_by_state(db)
    );
    with_write!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(id)
        .bind(before)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

/// Recipients in each state.
pub async fn state_counts(db: &Db, id: CampaignId) -> R<Vec<(String, i64)>> {
    with_db!(db, |p| sqlx::query_as::<_, (String, i64)>(
        "SELECT state, COUNT(*) FROM campaign_recipients WHERE campaign_id = $1 GROUP BY state"
    )
    .bind(id)
    .fetch_all(p)
    .await)
}

/// Recipients who replied (a partial index keeps this off the campaign's other rows).
pub async fn replied_count(db: &Db, id: CampaignId) -> R<i64> {
    let (n,): (i64,) = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = $1 AND replied_at IS NOT NULL"
    )
    .bind(id)
    .fetch_one(p)
    .await
    })?;
    Ok(n)
}

pub async fn failed_by_code(db: &Db, id: CampaignId) -> R<Vec<(i64, String, i64)>> {
    with_db!(db, |p| sqlx::query_as::<_, (i64, String, i64)>(
        "SELECT COALESCE(error_code, 0), COALESCE(MIN(error_title), ''), COUNT(*) \
         FROM campaign_recipients WHERE campaign_id = $1 AND state = 'failed' \
         GROUP BY COALESCE(error_code, 0) ORDER BY 3 DESC"
    )
    .bind(id)
    .fetch_all(p)
    .await)
}

pub async fn skipped_by_reason(db: &Db, id: CampaignId) -> R<Vec<(String, i64)>> {
    with_db!(db, |p| sqlx::query_as::<_, (String, i64)>(
        "SELECT COALESCE(skip_reason, 'unknown'), COUNT(*) FROM campaign_recipients \
         WHERE campaign_id = $1 AND state = 'skipped' GROUP BY COALESCE(skip_reason, 'unknown') \
         ORDER BY 2 DESC"
    )
    .bind(id)
    .fetch_all(p)
    .await)
}

/// Per-minute counts of sends, deliveries, reads and failures.
pub async fn series(db: &Db, id: CampaignId) -> R<Vec<(i64, i64, i64, i64, i64)>> {
    with_db!(db, |p| sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(
        "SELECT m, SUM(s), SUM(d), SUM(r), SUM(f) FROM ( \
           SELECT sent_at / 60000 AS m, 1 AS s, 0 AS d, 0 AS r, 0 AS f FROM campaign_recipients \
             WHERE campaign_id = $1 AND sent_at IS NOT NULL \
           UNION ALL SELECT delivered_at / 60000, 0, 1, 0, 0 FROM campaign_recipients \
             WHERE campaign_id = $1 AND delivered_at IS NOT NULL \
           UNION ALL SELECT read_at / 60000, 0, 0, 1, 0 FROM campaign_recipients \
             WHERE campaign_id = $1 AND read_at IS NOT NULL \
           UNION ALL SELECT failed_at / 60000, 0, 0, 0, 1 FROM campaign_recipients \
             WHERE campaign_id = $1 AND failed_at IS NOT NULL \
         ) x GROUP BY m ORDER BY m"
    )
    .bind(id)
    .fetch_all(p)
    .await)
}

/// Sends in the last `since` window (for the live rate).
pub async fn sent_since(db: &Db, id: CampaignId, since: Timestamp) -> R<i64> {
    let (n,): (i64,) = with_db!(db, |p| sqlx::query_as(
        "SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = $1 AND sent_at >= $2 \
         AND state IN ('sent', 'delivered', 'read')"
    )
    .bind(id)
    .bind(since)
    .fetch_one(p)
    .await)?;
    Ok(n)
}

#[derive(Debug, Clone, FromRow)]
pub struct RecipientRow {
    pub seq: i64,
    pub contact_id: ContactId,
    pub name: String,
    pub address: Option<String>,
    pub state: String,
    pub error_code: Option<i64>,
    pub error_title: Option<String>,
    pub skip_reason: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    pub replied_at: Option<Timestamp>,
    pub failed_at: Option<Timestamp>,
}

/// Which pending recipients a recipients page keeps: those in a live range lease are being
/// sent, and are listed as `sending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leased {
    /// All of them.
    Any,
    /// Only those in a lease (the `sending` filter).
    Only,
    /// Only those in none (the `pending` filter).
    Not,
}

/// A page of a campaign's recipients in `seq` order after `after`, in `states` (all when
/// empty); a pending one inside a range lease reads as `sending`.
pub async fn recipients(
    db: &Db,
    id: CampaignId,
    states: &[&str],
    leased: Leased,
    after: i64,
    limit: i64,
) -> R<Vec<RecipientRow>> {
    let states = serde_json::to_string(states).unwrap_or_default();
    let filter = match db {
        Db::Sqlite(_) => "($3 = '[]' OR state IN (SELECT value FROM json_each($3)))",
        Db::Postgres(_) => {
            "($3 = '[]' OR state IN (SELECT value FROM jsonb_array_elements_text($3::jsonb)))"
        }
    };
    let in_lease = "EXISTS (SELECT 1 FROM campaign_leases l WHERE l.campaign_id = $1 \
         AND campaign_recipients.seq BETWEEN l.first_seq AND l.last_seq)";
    let mode: i64 = match leased {
        Leased::Any => 0,
        Leased::Only => 1,
        Leased::Not => 2,
    };
    with_db!(db, |p| sqlx::query_as::<_, RecipientRow>(
        sqlx::AssertSqlSafe(format!(
            "SELECT seq, contact_id, name, address, \
         CASE WHEN state = 'pending' AND {in_lease} THEN 'sending' ELSE state END AS state, \
         error_code, error_title, skip_reason, \
         sent_at, delivered_at, read_at, replied_at, failed_at FROM campaign_recipients \
         WHERE campaign_id = $1 AND seq > $2 AND {filter} \
         AND ($5 = 0 OR state <> 'pending' OR ({in_lease}) = ($5 = 1)) ORDER BY seq LIMIT $4"
        ))
    )
    .bind(id)
    .bind(after)
    .bind(states)
    .bind(limit)
    .bind(mode)
    .fetch_all(p)
    .await)
}

/// The recipient a report refers to: by its key (`seq`) or by the provider's message id.
pub async fn recipient_for_report(
    db: &Db,
    key: Option<(CampaignId, i64)>,
    provider_message_id: &str,
) -> R<Option<(CampaignId, i64, OrgId)>> {
    let row: Option<(CampaignId, i64, OrgId)> = match key {
        Some((c, seq)) => with_db!(db, |p| sqlx::query_as(
            "SELECT r.campaign_id, r.seq, c.org_id FROM campaign_recipients r \
             JOIN campaigns c ON c.id = r.campaign_id WHERE r.campaign_id = $1 AND r.seq = $2"
        )
        .bind(c)
        .bind(seq)
        .fetch_optional(p)
        .await)?,
        None => with_db!(db, |p| sqlx::query_as(
            "SELECT r.campaign_id, r.seq, c.org_id FROM campaign_recipients r \
             JOIN campaigns c ON c.id = r.campaign_id WHERE r.provider_message_id = $1 LIMIT 1"
        )
        .bind(provider_message_id)
        .fetch_optional(p)
        .await)?,
    };
    Ok(row)
}

/// Applies a delivery report to a recipient. `sent` confirms an unconfirmed send; delivered
/// and read only move forward (a read also fills a missing delivered time); `failed` after
/// acceptance records the provider's error.
#[allow(clippy::too_many_arguments)]
pub async fn apply_report(
    db: &Db,
    id: CampaignId,
    seq: i64,
    status: &str,
    provider_message_id: &str,
    at: Timestamp,
    error: Option<(i64, &str)>,
    now: Timestamp,
) -> R<u64> {
    let sql = match status {
        "sent" => {
            "UPDATE campaign_recipients SET state = CASE WHEN state IN ('sending', 'unconfirmed', 'pending') \
             THEN 'sent' ELSE state END, provider_message_id = COALESCE(provider_message_id, $3), \
             sent_at = COALESCE(sent_at, $4), lease_until = NULL, updated_at = $5 \
             WHERE campaign_id = $1 AND seq = $2 AND state IN ('sending', 'unconfirmed', 'pending', 'sent')"
        }
        "delivered" => {
            "UPDATE campaign_recipients SET state = CASE WHEN state = 'read' THEN 'read' ELSE 'delivered' END, \
             provider_message_id = COALESCE(provider_message_id, $3), \
             sent_at = COALESCE(sent_at, $4), delivered_at = COALESCE(delivered_at, $4), \
             lease_until = NULL, updated_at = $5 \
             WHERE campaign_id = $1 AND seq = $2 AND state IN ('sending', 'unconfirmed', 'pending', 'sent', 'delivered', 'read')"
        }
        "read" | "played" => {
            "UPDATE campaign_recipients SET state = 'read', \
             provider_message_id = COALESCE(provider_message_id, $3), \
             sent_at = COALESCE(sent_at, $4), delivered_at = COALESCE(delivered_at, $4), \
             read_at = COALESCE(read_at, $4), lease_until = NULL, updated_at = $5 \
             WHERE campaign_id = $1 AND seq = $2 AND state IN ('sending', 'unconfirmed', 'pending', 'sent', 'delivered', 'read')"
        }
        "failed" => {
            "UPDATE campaign_recipients SET state = 'failed', \
             provider_message_id = COALESCE(provider_message_id, $3), error_code = $6, \
             error_title = $7, failed_at = $4, lease_until = NULL, updated_at = $5 \
             WHERE campaign_id = $1 AND seq = $2 AND state IN ('sending', 'unconfirmed', 'pending', 'sent')"
        }
        _ => return Ok(0),
    };
    let failed = status == "failed";
    let (code, title) = error.unwrap_or((0, ""));
    with_db!(db, |p| {
        let q = sqlx::query(sql)
            .bind(id)
            .bind(seq)
            .bind(provider_message_id)
            .bind(at)
            .bind(now);
        let q = if failed { q.bind(code).bind(title) } else { q };
        q.execute(p).await.map(|r| r.rows_affected())
    })
}

/// How long after its campaign ended a send may still be recorded (one in flight when the
/// campaign was cancelled): such campaigns are still looked at for replies.
const LATE_SEND_SLACK: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether a campaign on `channel` could have sent in `since ..= at` (the campaigns
/// [`mark_replied`] looks at).
pub async fn replies_possible(
    db: &Db,
    channel: ChannelId,
    since: Timestamp,
    at: Timestamp,
) -> R<bool> {
    let row: Option<(i64,)> = with_db!(db, |p| {
        sqlx::query_as(
        "SELECT CAST(1 AS BIGINT) FROM campaigns WHERE channel_id = $1 AND launched_at IS NOT NULL \
         AND launched_at <= $2 AND (completed_at IS NULL OR completed_at >= $3) LIMIT 1"
    )
    .bind(channel)
    .bind(at)
    .bind(since.minus(LATE_SEND_SLACK))
    .fetch_optional(p)
    .await
    })?;
    Ok(row.is_some())
}

/// A customer message arrived at `at`: every send to them on this channel from `since` until
/// then counts as replied. The recipient is found through its campaign: the channel's
/// campaigns that were sending in that period (a handful), each probed on its
/// `(campaign, contact)` key. An index by contact would cost every send a write of its own.
/// A campaign that ended before `since` (less `LATE_SEND_SLACK`) sent nothing after it.
pub async fn mark_replied(
    db: &Db,
    channel: ChannelId,
    contact: ContactId,
    since: Timestamp,
    at: Timestamp,
) -> R<u64> {
    with_write!(db, |p| sqlx::query(
        "UPDATE campaign_recipients SET replied_at = $4, updated_at = $4 \
         WHERE campaign_id IN (SELECT id FROM campaigns WHERE channel_id = $1 \
         AND launched_at IS NOT NULL AND launched_at <= $4 \
         AND (completed_at IS NULL OR completed_at >= $5)) \
         AND contact_id = $2 AND sent_at IS NOT NULL AND replied_at IS NULL \
         AND sent_at >= $3 AND sent_at <= $4"
    )
    .bind(channel)
    .bind(contact)
    .bind(since)
    .bind(at)
    .bind(since.minus(LATE_SEND_SLACK))
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
}

/// Pending recipients of a cancelled campaign become skipped with `reason`, except those in
/// a live range lease: they may be at the provider now, and their dispatcher records them.
pub async fn skip_pending(db: &Db, id: CampaignId, reason: &str, now: Timestamp) -> R<u64> {
    let sql = format!(
        "UPDATE {} SET state = 'skipped', skip_reason = $2, updated_at = $3 \
         WHERE campaign_id = $1 AND state = 'pending' \
         AND NOT EXISTS (SELECT 1 FROM campaign_leases l WHERE l.campaign_id = $1 \
         AND campaign_recipients.seq BETWEEN l.first_seq AND l.last_seq)",
        recipients_by_state(db)
    );
    with_write!(db, |p| sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(id)
        .bind(reason)
        .bind(now)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

/// Running campaigns whose snapshot is done (the watchdog keeps their dispatchers alive).
pub async fn running(db: &Db) -> R<Vec<(CampaignId, OrgId)>> {
    with_db!(db, |p| sqlx::query_as::<_, (CampaignId, OrgId)>(
        "SELECT id, org_id FROM campaigns WHERE status = 'running' AND snapshot_at IS NOT NULL"
    )
    .fetch_all(p)
    .await)
}
