//! Segments: saved filters (see `segment.rs` for the language) that resolve to a live audience.
//! A filter is checked against the organisation's tags, groups and attribute definitions when it
//! is saved or previewed; a saved segment whose tag or group was deleted since simply matches
//! nobody for that condition.

use std::collections::HashSet;

use serde_json::Value;
use sqlx::types::Json;
use wamage_identity::Principal;
use wamage_kernel::{OrgId, Problem, validate::Validator};
use wamage_platform::{cache, db::is_unique_violation};

use super::{Contacts, GROUP_DESCRIPTION_MAX, TAG_NAME_MAX, clean, db_err};
use crate::{
    http::{SegmentIn, SegmentOut, SegmentPatch},
    model::SegmentId,
    segment::{FilterContext, SegmentFilter},
    store::{self, SegmentRow},
};

fn segment_name_taken() -> Problem {
    Problem::conflict(
        "segment_name_taken",
        "A segment with this name already exists",
    )
    .with_field("name", "is already used by another segment")
}

/// Both checks' field errors together, or the first other problem.
fn both<T>(a: Result<(), Problem>, b: Result<T, Problem>) -> Result<(), Problem> {
    match (a, b) {
        (Ok(()), Ok(_)) => Ok(()),
        (Err(mut a), Err(b)) if a.code == b.code && !b.errors.is_empty() => {
            a.errors.extend(b.errors);
            Err(a)
        }
        (Err(a), _) => Err(a),
        (Ok(()), Err(b)) => Err(b),
    }
}

fn name_err(e: sqlx::Error) -> Problem {
    if is_unique_violation(&e) {
        segment_name_taken()
    } else {
        db_err(e)
    }
}

impl Contacts {
    /// Parses a filter in the organisation; errors are under `root`. `strict` refuses unknown
    /// tag and group ids (when saving or previewing).
    pub(crate) async fn parse_filter(
        &self,
        org: OrgId,
        raw: &Value,
        root: &str,
        strict: bool,
    ) -> Result<SegmentFilter, Problem> {
        let defs = self.defs(org).await?;
        let (groups, tags) = store::group_and_tag_ids(&self.db, org)
            .await
            .map_err(db_err)?;
        let tags: HashSet<_> = tags.into_iter().collect();
        let groups: HashSet<_> = groups.into_iter().collect();
        let ctx = FilterContext {
            defs: &defs,
            tags: &tags,
            groups: &groups,
            strict_refs: strict,
        };
        SegmentFilter::parse(raw, root, &ctx)
    }

    /// The filter of a saved segment, for resolving it (`field` names the segment in errors).
    pub(crate) async fn segment_filter(
        &self,
        org: OrgId,
        id: SegmentId,
        field: &str,
    ) -> Result<SegmentFilter, Problem> {
        let row = store::get_segment(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("segment"))?;
        self.parse_filter(org, &row.filter.0, "filter", false)
            .await
            .map_err(|_| {
                Problem::invalid_field(
                    field,
                    "the segment's filter no longer fits the attribute definitions; edit it",
                )
            })
    }

    /// The filter of the `segment` a list or export asks for; an unknown one is a wrong field.
    pub(crate) async fn list_segment(
        &self,
        org: OrgId,
        id: Option<SegmentId>,
    ) -> Result<Option<SegmentFilter>, Problem> {
        let Some(id) = id else {
            return Ok(None);
        };
        self.segment_filter(org, id, "segment")
            .await
            .map(Some)
            .map_err(|p| {
                if p.status == 404 {
                    Problem::invalid_field("segment", "there is no such segment")
                } else {
                    p
                }
            })
    }

    pub async fn segments(&self, who: &Principal) -> Result<Vec<SegmentOut>, Problem> {
        Ok(store::segments(&self.db, who.org_id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(SegmentOut::from)
            .collect())
    }

    pub async fn segment(&self, who: &Principal, id: SegmentId) -> Result<SegmentOut, Problem> {
        store::get_segment(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .map(SegmentOut::from)
            .ok_or_else(|| Problem::not_found("segment"))
    }

    fn check_segment(v: &mut Validator, name: &str, description: Option<&str>) {
        v.length("name", name.trim(), 1, TAG_NAME_MAX);
        if let Some(d) = description {
            v.length("description", d, 0, GROUP_DESCRIPTION_MAX);
        }
    }

    pub async fn create_segment(
        &self,
        who: &Principal,
        b: &SegmentIn,
    ) -> Result<SegmentOut, Problem> {
        let mut v = Validator::new();
        Self::check_segment(&mut v, &b.name, b.description.as_deref());
        let checked = v.finish();
        let parsed = self
            .parse_filter(who.org_id, &b.filter, "filter", true)
            .await;
        both(checked, parsed)?;
        let now = self.now();
        let row = SegmentRow {
            id: SegmentId::new(),
            name: b.name.trim().to_owned(),
            description: clean(b.description.as_deref()),
            filter: Json(b.filter.clone()),
            created_at: now,
            updated_at: now,
        };
        store::insert_segment(&self.db, who.org_id, &row)
            .await
            .map_err(name_err)?;
        Ok(SegmentOut::from(row))
    }

    pub async fn update_segment(
        &self,
        who: &Principal,
        id: SegmentId,
        b: &SegmentPatch,
    ) -> Result<SegmentOut, Problem> {
        let org = who.org_id;
        let mut row = store::get_segment(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("segment"))?;
        let name = b.name.as_deref().unwrap_or(&row.name).to_owned();
        let mut v = Validator::new();
        Self::check_segment(
            &mut v,
            &name,
            b.description.as_ref().and_then(|d| d.as_deref()),
        );
        let checked = v.finish();
        if let Some(f) = &b.filter {
            let parsed = self.parse_filter(org, f, "filter", true).await;
            both(checked, parsed)?;
            row.filter = Json(f.clone());
        } else {
            checked?;
        }
        row.name = name.trim().to_owned();
        if let Some(d) = &b.description {
            row.description = clean(d.as_deref());
        }
        row.updated_at = self.now();
        if !store::update_segment(&self.db, org, &row)
            .await
            .map_err(name_err)?
        {
            return Err(Problem::not_found("segment"));
        }
        Ok(SegmentOut::from(row))
    }

    pub async fn delete_segment(&self, who: &Principal, id: SegmentId) -> Result<(), Problem> {
        if !store::delete_segment(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("segment"));
        }
        Ok(())
    }

    /// How many contacts a saved segment matches now.
    pub async fn segment_count(&self, who: &Principal, id: SegmentId) -> Result<i64, Problem> {
        let filter = self.segment_filter(who.org_id, id, "segment").await?;
        self.count_matching(who.org_id, &filter).await
    }

    /// How many contacts a filter would match, without saving it.
    pub async fn preview_segment(&self, who: &Principal, filter: &Value) -> Result<i64, Problem> {
        let filter = self
            .parse_filter(who.org_id, filter, "filter", true)
            .await?;
        self.count_matching(who.org_id, &filter).await
    }

    /// Counts the contacts a filter matches: a cached count, else the organisation's count
    /// index (`counts.rs`), else SQL. A count of a large book by SQL is a scan, so counts are
    /// cached under `contacts:{org}:count:{epoch}:…`, the organisation's current count epoch
    /// ([`Self::count_epoch`]). A write that changes contacts drops the prefix `contacts:{org}:`
    /// (like the other cached reads, the epoch with them); one that only adds contacts gives
    /// the organisation a new epoch ([`Self::forget_counts`]). Either way a cached count is
    /// never older than the last change — the TTL only bounds memory.
    pub(crate) async fn count_matching(
        &self,
        org: OrgId,
        filter: &SegmentFilter,
    ) -> Result<i64, Problem> {
        use std::hash::{Hash as _, Hasher as _};
        // `DefaultHasher::new()` has fixed keys: the same filter hashes alike in every process
        // sharing a Redis cache.
        let mut h = std::hash::DefaultHasher::new();
        format!("{filter:?}").hash(&mut h);
        let epoch = self.count_epoch(org).await;
        let key = format!("contacts:{org}:count:{epoch}:{:016x}", h.finish());
        if let Ok(Some(n)) = cache::get_json::<i64>(self.cache.as_ref(), &key).await {
            super::counts::counted("cache");
            return Ok(n);
        }
        if let Some(n) = self.indexed_count(org, filter).await {
            super::counts::counted("index");
            return Ok(n);
        }
        super::counts::counted("database");
        let n = self.count_in_sql(org, filter).await?;
        if let Err(e) = cache::set_json(self.cache.as_ref(), &key, &n, COUNT_TTL).await {
            tracing::warn!(error = %e, "failed to cache a segment count");
        }
        Ok(n)
    }
}

/// How long a segment count stays cached without writes to the contacts.
const COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// How long an organisation's count epoch lives without writes (a new one only makes the
/// counts cached under the old one unreachable).
const EPOCH_TTL: std::time::Duration = std::time::Duration::from_secs(86_400);

fn epoch_key(org: OrgId) -> String {
    format!("contacts:{org}:count-epoch")
}

impl Contacts {
    /// The organisation's current count epoch: the one in the cache, else a new random one
    /// (stored for the next count; a cache that fails gives a new one each time, so nothing
    /// cached is ever read under it).
    async fn count_epoch(&self, org: OrgId) -> String {
        let key = epoch_key(org);
        if let Ok(Some(e)) = self.cache.get(&key).await
            && let Ok(e) = String::from_utf8(e)
        {
            return e;
        }
        self.new_count_epoch(org).await
    }

    /// Gives the organisation a new count epoch: every count cached before is unreachable.
    async fn new_count_epoch(&self, org: OrgId) -> String {
        let epoch = uuid::Uuid::new_v4().simple().to_string();
        if let Err(e) = self
            .cache
            .set(&epoch_key(org), epoch.clone().into_bytes(), EPOCH_TTL)
            .await
        {
            tracing::warn!(error = %e, "failed to store a count epoch");
        }
        epoch
    }

    /// Forgets what contacts new to the organisation make stale, and only that: its cached
    /// counts (a new epoch) and its count index (the token dropped). Its cached contacts stay:
    /// no new contact changes them. Two cache writes, however many entries the cache holds.
    pub(crate) async fn forget_counts(&self, org: OrgId) {
        self.new_count_epoch(org).await;
        super::counts::forget_index(self.cache.as_ref(), org).await;
    }
}
