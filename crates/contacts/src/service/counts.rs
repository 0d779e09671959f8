//! Segment counts and audience breakdowns from the in-memory count index
//! ([`crate::count_index`]).
//!
//! **When an organisation gets an index.** When a count of its book by SQL took at least
//! `count_index_after` (a large book), and after an import that wrote at least
//! [`INDEX_AFTER_IMPORT_ROWS`] rows (in a process that serves the API, where counts are asked).
//! And at start-up, for every organisation with that many contacts
//! ([`Contacts::warm_count_indexes`]). Small books keep counting in SQL.
//!
//! **Why an index is never stale.** Every write to an organisation's contacts drops the cache
//! prefix `contacts:{org}:` after it commits (`Contacts::forget`), or, when it only added
//! contacts, the token alone (`Contacts::forget_counts`). A build takes the token under
//! `contacts:{org}:count-index` (storing a fresh one when there is none) and keeps the index
//! only if the token is still there after it has read everything; a count uses the index only
//! while the cache still holds the index's token. A write that lands during or after a build
//! drops the token, the count goes to SQL and a new build starts. With Redis as the cache this
//! holds across processes: each keeps its own index under the one shared token. The guarantee
//! is that of every cached contact read: a count is never older than the last write whose cache
//! drop has happened.
//!
//! **Builds wait for a quiet book.** A build takes its token, waits [`QUIET`] and reads nothing
//! if a write dropped the token meanwhile, so a book being written to (an import running) costs
//! a cache round trip per count, not a scan.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use wamage_kernel::{OrgId, Problem};
use wamage_platform::{Db, cache::SharedCache};

use super::{Contacts, db_err};
use crate::{
    count_index::{Builder, CountIndex},
    segment::SegmentFilter,
    store,
};

/// An import that wrote this many rows builds its organisation's index when it completes.
pub const INDEX_AFTER_IMPORT_ROWS: i64 = 20_000;
/// How long a book must see no write before its index is built.
const QUIET: Duration = Duration::from_secs(1);
/// How long an index token lives in the cache without writes. It bounds how long a write whose
/// cache drop was lost (the process died between its commit and the drop) can go unseen by
/// the indexes; after it, the next count goes to SQL once and the index is built again.
const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// An index not used for this long is dropped.
const IDLE: Duration = Duration::from_secs(3600);

/// `/metrics`: contacts held in this process's count indexes and the memory they take.
fn gauge(slots: &HashMap<OrgId, Slot>) {
    let held = slots.values().filter_map(|s| s.index.as_ref());
    let (contacts, bytes) = held.fold((0, 0), |(c, b), (_, ix)| (c + ix.len(), b + ix.bytes()));
    metrics::gauge!("wamage_contacts_count_index_contacts").set(contacts as f64);
    metrics::gauge!("wamage_contacts_count_index_bytes").set(bytes as f64);
}

/// Counts a segment count by where it was answered (`cache`, `index`, `database`).
pub(crate) fn counted(source: &'static str) {
    metrics::counter!("wamage_contacts_segment_counts_total", "source" => source).increment(1);
}

fn token_key(org: OrgId) -> String {
    format!("contacts:{org}:count-index")
}

/// Drops the organisation's count index token: every index built under it is stale.
pub(crate) async fn forget_index(cache: &dyn wamage_platform::cache::Cache, org: OrgId) {
    if let Err(e) = cache.delete(&token_key(org)).await {
        tracing::warn!(error = %e, "failed to drop a count index token");
    }
}

/// The indexes of this process, per organisation.
#[derive(Debug, Default)]
pub(crate) struct CountIndexes {
    slots: Mutex<HashMap<OrgId, Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// The index and the cache token it is valid under.
    index: Option<(String, Arc<CountIndex>)>,
    building: bool,
    used: Instant,
}

impl CountIndexes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The organisation's index and its token, marking it used (and dropping idle ones).
    fn get(&self, org: OrgId) -> Option<(String, Arc<CountIndex>)> {
        let mut slots = self.lock();
        let now = Instant::now();
        let before = slots.len();
        slots.retain(|o, s| *o == org || s.building || now.duration_since(s.used) < IDLE);
        if slots.len() != before {
            gauge(&slots);
        }
        let slot = slots.get_mut(&org)?;
        slot.used = now;
        slot.index.clone()
    }

    fn has_index(&self, org: OrgId) -> bool {
        self.lock().get(&org).is_some_and(|s| s.index.is_some())
    }

    /// Whether the organisation has (or is building) an index.
    fn known(&self, org: OrgId) -> bool {
        self.lock().contains_key(&org)
    }

    /// Forgets an index found stale.
    fn drop_stale(&self, org: OrgId, token: &str) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(&org)
            && slot.index.as_ref().is_some_and(|(t, _)| t == token)
        {
            slot.index = None;
        }
        gauge(&slots);
    }

    /// Marks a build started; false when one already runs.
    fn start(&self, org: OrgId) -> bool {
        let mut slots = self.lock();
        let slot = slots.entry(org).or_insert(Slot {
            index: None,
            building: false,
            used: Instant::now(),
        });
        !std::mem::replace(&mut slot.building, true)
    }

    fn done(&self, org: OrgId, built: Option<(String, Arc<CountIndex>)>) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(&org) {
            slot.building = false;
            if built.is_some() {
                slot.index = built;
            }
        }
        gauge(&slots);
    }
}

/// Reads the organisation's book into a new index under the cache's token (a fresh one when
/// there is none); `None` when a write dropped the token during the quiet wait or the reading.
async fn build(
    db: &Db,
    cache: &SharedCache,
    org: OrgId,
) -> Result<Option<(String, Arc<CountIndex>)>, Problem> {
    let key = token_key(org);
    let cache_err = |e: anyhow::Error| Problem::internal(format_args!("cache: {e:#}"));
    // The token in the cache when there is one (another process's index, or ours being
    // replaced): no write has landed since it was stored, and replacing it would make the other
    // processes' indexes look stale and build again, in turn.
    let token = match cache.get(&key).await.map_err(cache_err)? {
        Some(t) => String::from_utf8_lossy(&t).into_owned(),
        None => {
            let t = uuid::Uuid::now_v7().simple().to_string();
            cache
                .set(&key, t.clone().into_bytes(), TOKEN_TTL)
                .await
                .map_err(cache_err)?;
            t
        }
    };
    let still = || async {
        let now = cache.get(&key).await.map_err(cache_err)?;
        Ok::<bool, Problem>(now.as_deref() == Some(token.as_bytes()))
    };
    tokio::time::sleep(QUIET).await;
    if !still().await? {
        return Ok(None);
    }
    let started = Instant::now();
    let defs = super::defs_of(store::attr_defs(db, org).await.map_err(db_err)?)
        .into_iter()
        .map(|(k, d)| (k, d.attr_type))
        .collect();
    let b = store::load_count_index(db, org, Builder::new(defs))
        .await
        .map_err(db_err)?;
    let read_ms = started.elapsed().as_millis() as u64;
    let index = tokio::task::spawn_blocking(move || b.finish())
        .await
        .map_err(|e| Problem::internal(format_args!("count index: {e}")))?;
    if !still().await? {
        tracing::debug!(%org, "a write landed while the count index was built; dropped");
        metrics::counter!("wamage_contacts_count_index_builds_total", "outcome" => "dropped")
            .increment(1);
        return Ok(None);
    }
    metrics::counter!("wamage_contacts_count_index_builds_total", "outcome" => "kept").increment(1);
    metrics::histogram!("wamage_contacts_count_index_build_seconds")
        .record(started.elapsed().as_secs_f64());
    tracing::info!(
        %org,
        contacts = index.len(),
        mib = index.bytes() / (1 << 20),
        read_ms,
        ms = started.elapsed().as_millis() as u64,
        "segment count index built"
    );
    Ok(Some((token, Arc::new(index))))
}

/// A build started with [`CountIndexes::start`], after the quiet wait; the index is kept when
/// it is current.
async fn build_and_keep(db: &Db, cache: &SharedCache, counts: &CountIndexes, org: OrgId) {
    let built = match build(db, cache, org).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(%org, error = %e, "failed to build a segment count index");
            None
        }
    };
    counts.done(org, built);
}

impl Contacts {
    /// The count of `filter` from the organisation's index, when it has a current one that can
    /// answer it.
    pub(crate) async fn indexed_count(&self, org: OrgId, filter: &SegmentFilter) -> Option<i64> {
        let filter = filter.clone();
        self.with_current_index(org, move |index| index.count(&filter))
            .await
            .map(|n| n as i64)
    }

    /// `ask` of the organisation's index on the blocking pool, when it has a current one (a
    /// stale one is dropped and built again).
    pub(crate) async fn with_current_index<T: Send + 'static>(
        &self,
        org: OrgId,
        ask: impl FnOnce(&CountIndex) -> Option<T> + Send + 'static,
    ) -> Option<T> {
        let (token, index) = self.counts.get(org)?;
        match self.cache.get(&token_key(org)).await {
            Ok(Some(t)) if t == token.as_bytes() => {}
            Ok(_) => {
                self.counts.drop_stale(org, &token);
                self.build_count_index_soon(org);
                return None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "failed to check the count index token");
                return None;
            }
        }
        tokio::task::spawn_blocking(move || ask(&index))
            .await
            .ok()
            .flatten()
    }

    /// Counts `filter` in SQL; a slow count starts a build.
    pub(crate) async fn count_in_sql(
        &self,
        org: OrgId,
        filter: &SegmentFilter,
    ) -> Result<i64, Problem> {
        let started = Instant::now();
        let n = store::count_contacts(&self.db, org, filter)
            .await
            .map_err(db_err)?;
        self.counted_in_sql(org, started.elapsed());
        Ok(n)
    }

    /// A SQL count of `took` happened: a slow one earns the organisation an index.
    /// (A count the index could not answer leaves a current index alone: a build would replace
    /// its token.)
    pub(crate) fn counted_in_sql(&self, org: OrgId, took: Duration) {
        if took >= self.count_index_after && !self.counts.has_index(org) {
            self.build_count_index_soon(org);
        }
    }

    /// After an import: a large one (or one into a book that already has an index) builds it,
    /// in a process that answers counts.
    pub(crate) fn imported(&self, org: OrgId, rows_written: i64) {
        if !self.count_index_on_import {
            return;
        }
        if rows_written >= INDEX_AFTER_IMPORT_ROWS || self.counts.known(org) {
            self.build_count_index_soon(org);
        }
    }

    /// Starts a build in the background unless one runs.
    fn build_count_index_soon(&self, org: OrgId) {
        if !self.counts.start(org) {
            return;
        }
        let (db, cache, counts) = (self.db.clone(), self.cache.clone(), self.counts.clone());
        tokio::spawn(async move { build_and_keep(&db, &cache, &counts, org).await });
    }

    /// At start-up (in a process serving the API): builds the count index of every
    /// organisation with at least `min_contacts` contacts, one after another in the background,
    /// so the first counts after a restart do not scan. An index not used within the hour is
    /// dropped again. Answers how many organisations it queued.
    pub async fn warm_count_indexes(&self, min_contacts: i64) -> Result<usize, Problem> {
        let orgs = store::orgs_with_contacts(&self.db, min_contacts)
            .await
            .map_err(db_err)?;
        let n = orgs.len();
        let (db, cache, counts) = (self.db.clone(), self.cache.clone(), self.counts.clone());
        tokio::spawn(async move {
            for org in orgs {
                if counts.start(org) {
                    build_and_keep(&db, &cache, &counts, org).await;
                }
            }
        });
        Ok(n)
    }

    /// The breakdown of an audience from the index (`None`: no current index) and from SQL;
    /// for tests that hold the two to each other.
    #[doc(hidden)]
    pub async fn breakdown_both_ways(
        &self,
        org: OrgId,
        spec: &super::AudienceSpec,
        channel: super::SendChannel,
        purpose: crate::consent::ConsentPurpose,
        required: &[super::VarField],
    ) -> Result<(Option<super::Breakdown>, super::Breakdown), Problem> {
        let filter = self.audience_filter(org, spec).await?;
        let indexed = self
            .indexed_breakdown(org, &filter, channel, purpose, required)
            .await;
        let sql = self
            .breakdown_in_sql(org, &filter, channel, purpose, required)
            .await?;
        Ok((indexed, sql))
    }

    /// The count of a filter (as JSON) from the index (`None`: no current index, or it cannot
    /// answer) and from SQL, which may start a build as any SQL count does; for tests that
    /// hold the two to each other.
    #[doc(hidden)]
    pub async fn count_both_ways(
        &self,
        org: OrgId,
        filter: &serde_json::Value,
    ) -> Result<(Option<i64>, i64), Problem> {
        let filter = self.parse_filter(org, filter, "filter", true).await?;
        let indexed = self.indexed_count(org, &filter).await;
        Ok((indexed, self.count_in_sql(org, &filter).await?))
    }
}
