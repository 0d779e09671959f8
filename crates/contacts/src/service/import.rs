//! CSV import: the upload is checked up front (UTF-8, a header, a valid mapping), stored in the
//! blob store, and recorded with a `contacts.import` job in one transaction. The job streams the
//! file from its checkpoint (byte offset and line of the next record) in batches: a batch is
//! one window of the file (never the whole of it, so memory stays flat whatever the file's
//! size), up to [`IMPORT_BATCH_ROWS`] rows parsed and checked on the blocking pool (in
//! parallel), and one transaction that writes the contacts, identities, links, search entries,
//! the rejected rows (`contact_import_errors`), the counters and the new checkpoint together.
//! While a batch is written the next one is read and parsed, and up to [`IMPORT_WRITERS`]
//! batches are in flight, each in its own transaction: a batch is planned once the one before
//! it is (against the database and that one's keys, which it cannot see yet) and commits
//! after it, or gives up with it, so the checkpoint only ever moves in file order. On
//! PostgreSQL the batches' rows (and index maintenance) go in side by side; on SQLite, which
//! has one writer, a batch is planned on a snapshot while the one before it is written.
//!
//! A run goes on for up to [`IMPORT_RUN_BUDGET`], then enqueues the next run in its last
//! batch's transaction. A batch commits only if the checkpoint is still where it was read, so
//! a retried or duplicated job never creates a contact twice.
//!
//! A batch costs a fixed number of statements whatever its size: one lookup of the identities
//! the batch names (who holds them already, and the line of this file that created them: a
//! duplicate within the file), one of the keys earlier batches accepted without creating an
//! identity (rows that updated or skipped a contact), then one multi-row insert per table. Rows are decided
//! in file order against both lookups and against the rows before them in the batch. Only rows
//! that update an existing contact are written one by one.
//!
//! Events: bulk imports publish no `wamage.contact.created`/`updated` per row; one
//! `wamage.contacts.imported` event (`import_id`, `created`, `updated`, `skipped`, `failed`)
//! is published when an import completes.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, atomic::AtomicBool},
};

use axum::body::Bytes;
use futures::StreamExt;
use tokio::sync::oneshot;
use wamage_platform::jobs::{JobContext, JobHandler, JobOutcome, NewJob};

use super::*;
use crate::{
    http::{Dedupe, ImportOut, ImportStatus, OnDuplicate},
    model::ImportId,
    store::ImportCounts,
};

/// The job kind that runs imports.
pub const IMPORT_JOB: &str = "contacts.import";
/// Largest accepted file.
pub const IMPORT_MAX_BYTES: usize = 50 * 1024 * 1024;

/// Where a column goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Name,
    Company,
    Language,
    TimeZone,
    Notes,
    Identity(IdentityKind),
    Attr(String),
    Tag,
    Ignore,
}

impl Target {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "name" => Self::Name,
            "company" => Self::Company,
            "language" => Self::Language,
            "time_zone" => Self::TimeZone,
            "notes" => Self::Notes,
            "phone" => Self::Identity(IdentityKind::Phone),
            "email" => Self::Identity(IdentityKind::Email),
            "whatsapp_phone" => Self::Identity(IdentityKind::WhatsappPhone),
            "telegram" => Self::Identity(IdentityKind::Telegram),
            "tag" => Self::Tag,
            "ignore" => Self::Ignore,
            _ => Self::Attr(
                s.strip_prefix("attr:")
                    .filter(|k| !k.is_empty())?
                    .to_owned(),
            ),
        })
    }

    /// Scalar targets take at most one column.
    fn is_scalar(&self) -> bool {
        !matches!(self, Self::Identity(_) | Self::Tag | Self::Ignore)
    }
}

/// What the job needs, stored with the import.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImportOptions {
    /// The header row as uploaded.
    header: Vec<String>,
    /// Column index → target (as given, e.g. `attr:city`).
    mapping: Vec<(usize, String)>,
    dedupe: Dedupe,
    on_duplicate: OnDuplicate,
    group_id: Option<GroupId>,
}

/// The upload as the handler read it.
pub struct ImportUpload {
    pub file_name: Option<String>,
    pub file: Option<Bytes>,
    pub mapping: Option<String>,
    pub dedupe: Option<String>,
    pub on_duplicate: Option<String>,
    pub group_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct ImportPayload {
    import_id: ImportId,
    from_byte: i64,
}

fn import_out(r: store::ImportRow) -> ImportOut {
    ImportOut {
        id: r.id,
        status: ImportStatus::from_db(&r.status),
        file_name: r.file_name,
        total_rows: r.total_rows,
        rows_done: r.rows_done,
        created: r.created,
        updated: r.updated,
        skipped: r.skipped,
        failed: r.failed,
        error: r.error,
        created_at: r.created_at,
        finished_at: r.finished_at,
    }
}

/// An attribute value from a cell: numbers and booleans parsed, multi-choice split on `;`.
fn attr_value(t: AttrType, cell: &str) -> Value {
    match t {
        AttrType::Number => {
            if let Ok(i) = cell.parse::<i64>() {
                json!(i)
            } else {
                cell.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| json!(cell), Value::Number)
            }
        }
        AttrType::Boolean => match cell.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => json!(true),
            "false" | "no" | "n" | "0" => json!(false),
            _ => json!(cell),
        },
        AttrType::MultiChoice => Value::Array(
            cell.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| json!(s))
                .collect(),
        ),
        AttrType::Text | AttrType::Date | AttrType::SingleChoice => json!(cell),
    }
}

/// One row, parsed and checked.
#[derive(Default)]
struct ParsedRow {
    name: Option<String>,
    company: Option<String>,
    language: Option<String>,
    time_zone: Option<String>,
    notes: Option<String>,
    identities: Vec<(IdentityKind, String)>,
    attributes: Map<String, Value>,
    tags: Vec<TagId>,
}

fn parse_row(
    opts: &ImportOptions,
    defs: &HashMap<String, AttrDef>,
    country: Country,
    tags: &HashMap<String, TagId>,
    rec: &csv::StringRecord,
) -> Result<ParsedRow, String> {
    if rec.len() != opts.header.len() {
        return Err(format!(
            "has {} columns, the header has {}",
            rec.len(),
            opts.header.len()
        ));
    }
    let mut out = ParsedRow::default();
    let mut errors: Vec<String> = Vec::new();
    for (col, target) in &opts.mapping {
        let cell = rec.get(*col).unwrap_or("").trim();
        if cell.is_empty() {
            continue;
        }
        let head = &opts.header[*col];
        match Target::parse(target).unwrap_or(Target::Ignore) {
            Target::Name => {
                if cell.chars().count() > NAME_MAX {
                    errors.push(format!(
                        "{head}: name must be at most {NAME_MAX} characters"
                    ));
                }
                out.name = Some(cell.to_owned());
            }
            Target::Company => {
                if cell.chars().count() > COMPANY_MAX {
                    errors.push(format!(
                        "{head}: company must be at most {COMPANY_MAX} characters"
                    ));
                }
                out.company = Some(cell.to_owned());
            }
            Target::Language => {
                if !model::is_language_tag(cell) {
                    errors.push(format!("{head}: must be a language tag like en or pt-BR"));
                }
                out.language = Some(cell.to_owned());
            }
            Target::TimeZone => {
                if !model::is_time_zone(cell) {
                    errors.push(format!("{head}: must be an IANA time zone name"));
                }
                out.time_zone = Some(cell.to_owned());
            }
            Target::Notes => {
                if cell.chars().count() > NOTES_MAX {
                    errors.push(format!(
                        "{head}: notes must be at most {NOTES_MAX} characters"
                    ));
                }
                out.notes = Some(cell.to_owned());
            }
            Target::Identity(kind) => match model::parse_identity(kind, cell, country) {
                Ok(v) => {
                    if !out.identities.iter().any(|(k, x)| *k == kind && *x == v) {
                        out.identities.push((kind, v));
                    }
                }
                Err(m) => errors.push(format!("{head}: {} {cell:?} {m}", kind.as_str())),
            },
            Target::Attr(key) => {
                let Some(def) = defs.get(&key) else {
                    errors.push(format!("{head}: {key} is not a defined contact attribute"));
                    continue;
                };
                let value = attr_value(def.attr_type, cell);
                match def.check_value(&value) {
                    Ok(()) => {
                        out.attributes.insert(key, value);
                    }
                    Err(m) => errors.push(format!("{head}: attributes.{key} {m}")),
                }
            }
            Target::Tag => {
                for name in cell.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                    match tags.get(&name.to_lowercase()) {
                        Some(t) if !out.tags.contains(t) => out.tags.push(*t),
                        Some(_) => {}
                        None => errors.push(format!("{head}: tag {name:?} does not exist")),
                    }
                }
            }
            Target::Ignore => {}
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("; "))
    }
}

impl Contacts {
    /// Checks an upload, stores the file and queues the import (202).
    pub async fn create_import(
        &self,
        who: &Principal,
        up: ImportUpload,
    ) -> Result<ImportOut, Problem> {
        let org = who.org_id;
        let defs = self.defs(org).await?;
        let mut v = Validator::new();
        let file = up.file.unwrap_or_default();
        let mut header: Vec<String> = Vec::new();
        let mut total_rows = None;
        if file.is_empty() {
            v.error("file", "is required: a CSV file with a header row");
        } else if file.len() > IMPORT_MAX_BYTES {
            return Err(Problem::payload_too_large(IMPORT_MAX_BYTES)
                .with_field("file", "must be at most 50 MB"));
        } else {
            // Checking up to 50 MB of UTF-8 and parsing the header is CPU work: off the runtime.
            let bytes = file.clone();
            match tokio::task::spawn_blocking(move || read_header(&bytes))
                .await
                .map_err(Problem::internal)?
            {
                Ok((h, rows)) => {
                    header = h;
                    total_rows = Some(rows);
                }
                Err(message) => v.error("file", message),
            }
        }
        let mut mapping: Vec<(usize, String)> = Vec::new();
        let mut targets: Vec<Target> = Vec::new();
        match up
            .mapping
            .as_deref()
            .map(serde_json::from_str::<Map<String, Value>>)
        {
            None => v.error("mapping", "is required"),
            Some(Err(_)) => v.error(
                "mapping",
                "must be a JSON object of CSV column header to field",
            ),
            Some(Ok(m)) => {
                for (col, target) in &m {
                    let field = format!("mapping.{col}");
                    let Some(t) = target.as_str().and_then(Target::parse) else {
                        v.error(
                            &field,
                            "must be one of name, company, language, time_zone, notes, phone, \
                             email, whatsapp_phone, telegram, attr:<key>, tag, ignore",
                        );
                        continue;
                    };
                    if let Target::Attr(k) = &t
                        && !defs.contains_key(k)
                    {
                        v.error(&field, format!("{k} is not a defined contact attribute"));
                        continue;
                    }
                    if t.is_scalar() && targets.contains(&t) {
                        v.error(&field, "maps a field another column already maps");
                        continue;
                    }
                    if !header.is_empty() {
                        match header.iter().position(|h| h == col) {
                            Some(i) => mapping.push((i, target.as_str().unwrap_or("").to_owned())),
                            None => v.error(&field, "is not a column of the file's header"),
                        }
                    }
                    targets.push(t);
                }
                v.check(
                    !m.is_empty()
                        && targets
                            .iter()
                            .any(|t| matches!(t, Target::Name | Target::Identity(_))),
                    "mapping",
                    "must map a name or an identity (phone, email, whatsapp_phone, telegram) column",
                );
            }
        }
        let dedupe = match up.dedupe.as_deref().unwrap_or("phone") {
            "phone" => Dedupe::Phone,
            "email" => Dedupe::Email,
            "none" => Dedupe::None,
            _ => {
                v.error("dedupe", "must be one of phone, email, none");
                Dedupe::None
            }
        };
        let on_duplicate = match up.on_duplicate.as_deref().unwrap_or("skip") {
            "update" => OnDuplicate::Update,
            "skip" => OnDuplicate::Skip,
            _ => {
                v.error("on_duplicate", "must be update or skip");
                OnDuplicate::Skip
            }
        };
        let group_id = match up
            .group_id
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
        {
            None => None,
            Some(g) => match g.parse::<GroupId>() {
                Ok(id) => {
                    if store::get_group(&self.db, org, id)
                        .await
                        .map_err(db_err)?
                        .is_none()
                    {
                        v.error("group_id", "is not a group of this organisation");
                    }
                    Some(id)
                }
                Err(_) => {
                    v.error("group_id", "must be a group id");
                    None
                }
            },
        };
        let file_name = up
            .file_name
            .map(|n| n.chars().take(200).collect::<String>())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "import.csv".to_owned());
        v.finish()?;

        let id = ImportId::new();
        let blob_key = format!("contact-imports/{org}/{id}.csv");
        self.blobs
            .put(&blob_key, file, "text/csv")
            .await
            .map_err(|e| Problem::internal(format_args!("blob store: {e:#}")))?;
        let opts = ImportOptions {
            header,
            mapping,
            dedupe,
            on_duplicate,
            group_id,
        };
        let row = store::ImportRow {
            id,
            status: "queued".to_owned(),
            file_name,
            blob_key,
            options: Json(serde_json::to_value(&opts).map_err(Problem::internal)?),
            total_rows,
            next_byte: 0,
            next_line: 1,
            run_from: 0,
            rows_done: 0,
            created: 0,
            updated: 0,
            skipped: 0,
            failed: 0,
            error: None,
            created_at: self.now(),
            finished_at: None,
        };
        let mut tx = self.begin().await?;
        store::insert_import(&mut tx, org, &row, Some(who.user_id))
            .await
            .map_err(db_err)?;
        self.enqueue_batch(&mut tx, org, id, 0).await?;
        tx.commit().await.map_err(db_err)?;
        self.jobs.notify();
        Ok(import_out(row))
    }

    async fn enqueue_batch(
        &self,
        tx: &mut Tx,
        org: OrgId,
        id: ImportId,
        from_byte: i64,
    ) -> Result<(), Problem> {
        let payload = json!(ImportPayload {
            import_id: id,
            from_byte
        });
        self.jobs
            .enqueue(tx, NewJob::new(IMPORT_JOB, payload).with_org(org))
            .await
            .map_err(|e| Problem::internal(format_args!("job queue: {e}")))?;
        Ok(())
    }

    pub async fn import(&self, who: &Principal, id: ImportId) -> Result<ImportOut, Problem> {
        store::get_import(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .map(import_out)
            .ok_or_else(|| Problem::not_found("import"))
    }

    /// The latest 100 imports, newest first.
    pub async fn imports(&self, who: &Principal) -> Result<Vec<ImportOut>, Problem> {
        Ok(store::list_imports(&self.db, who.org_id, 100)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(import_out)
            .collect())
    }

    /// The rejected rows as CSV: `line`, `reason`, then the row's cells under the file's header
    /// (formula cells neutralised). Returns the file name and body.
    pub async fn import_errors_csv(
        &self,
        who: &Principal,
        id: ImportId,
    ) -> Result<(String, String), Problem> {
        let imp = store::get_import(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("import"))?;
        let opts: ImportOptions =
            serde_json::from_value(imp.options.0).map_err(Problem::internal)?;
        let mut out = String::new();
        let mut header = vec!["line".to_owned(), "reason".to_owned()];
        header.extend(opts.header);
        crate::csvfmt::push_record(&mut out, &header);
        for (line, reason, raw) in store::import_errors(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
        {
            let mut cells = vec![line.to_string(), reason];
            cells.extend(raw.0);
            crate::csvfmt::push_record(&mut out, &cells);
        }
        Ok((format!("import-{id}-errors.csv"), out))
    }

    /// Marks an import failed with the reason.
    async fn fail_import(&self, org: OrgId, id: ImportId, reason: &str) -> Result<(), Problem> {
        let mut tx = self.begin().await?;
        store::finish_import(&mut tx, org, id, "failed", Some(reason), self.now())
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// Runs an import from its checkpoint: batch after batch, each written in its own
    /// transaction with the new checkpoint, while the next batch is read and parsed on the
    /// blocking pool (parsing and checking rows — phone numbers above all — is most of the CPU
    /// an import costs; overlapping it with the write keeps both the database and the other
    /// core busy). After [`IMPORT_RUN_BUDGET`] the run hands over to a new job, enqueued in the
    /// transaction of its last batch, so one import never holds a worker indefinitely
    /// (configurable; zero writes one batch per run).
    ///
    /// The job's `from_byte` says where its run was queued. Only the newest run
    /// (`run_from`) works, and it resumes from the stored checkpoint, so a retried try goes on
    /// where its crashed try stopped, and a stale or duplicated job does nothing. Each batch
    /// commits only if the checkpoint is still where it was read, so no batch is written twice
    /// even if two tries of the same run meet (a try presumed lost that was still working).
    async fn import_run(
        self: &Arc<Self>,
        org: OrgId,
        id: ImportId,
        from_byte: i64,
    ) -> Result<(), Problem> {
        let Some(imp) = store::get_import(&self.db, org, id).await.map_err(db_err)? else {
            return Ok(());
        };
        if !matches!(imp.status.as_str(), "queued" | "running") || imp.run_from != from_byte {
            return Ok(()); // finished (or failed), or a stale job: a newer run has the import
        }
        let opts: ImportOptions =
            serde_json::from_value(imp.options.0.clone()).map_err(Problem::internal)?;
        let run_started = std::time::Instant::now();
        let ctx = ParseCtx {
            opts,
            defs: defs_of(store::attr_defs(&self.db, org).await.map_err(db_err)?),
            country: self.country(org).await?,
            tags: store::tags(&self.db, org)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|t| (t.name.to_lowercase(), t.id))
                .collect(),
        };
        let ctx = Arc::new(ctx);
        let mut at = (imp.next_byte, imp.next_line);
        let mut moved = 0;
        loop {
            match self
                .run_batches(org, id, &imp.blob_key, &ctx, at, run_started)
                .await?
            {
                RunEnd::Stopped => return Ok(()),
                RunEnd::Moved => {}
            }
            // A batch found the checkpoint moved: a write of another try of this run landed
            // (one presumed lost, or a cancelled try's last commit). While this run is still
            // the import's newest, it goes on from there, so the import never stalls; if a
            // newer run has it (or it is over), that one goes on.
            let Some(now) = store::get_import(&self.db, org, id).await.map_err(db_err)? else {
                return Ok(());
            };
            moved += 1;
            if !matches!(now.status.as_str(), "queued" | "running")
                || now.run_from != from_byte
                || moved > MOVED_RESUMES
            {
                return Ok(());
            }
            at = (now.next_byte, now.next_line);
        }
    }

    /// Writes batches from `at` until the file ends or the run's budget is spent (the last
    /// batch then queues the next run), with up to `import_writers` batches in flight. Each
    /// write is a task of its own, aborted with the run: a run that is dropped drops its
    /// transactions.
    async fn run_batches(
        self: &Arc<Self>,
        org: OrgId,
        id: ImportId,
        key: &str,
        ctx: &Arc<ParseCtx>,
        mut at: (i64, i64),
        run_started: std::time::Instant,
    ) -> Result<RunEnd, Problem> {
        let mut window = IMPORT_WINDOW;
        let mut writes = InFlight::default();
        let mut before: Option<Handoff> = None;
        let mut ready = self.prepare_batch(key, at, window, ctx).await?;
        loop {
            let batch = match ready {
                Ok(batch) => batch,
                Err(reason) => {
                    if !writes.finish().await? {
                        return Ok(RunEnd::Moved);
                    }
                    self.fail_import(org, id, &reason).await?;
                    return Ok(RunEnd::Stopped);
                }
            };
            let from = at.0;
            at = (batch.chunk.next_byte, batch.chunk.next_line);
            window = batch.next_window;
            let end = batch.chunk.end;
            let more = !end && run_started.elapsed() < self.import_run_budget;
            let (after, handoff) = Handoff::next(before.take(), self.import_writers);
            before = Some(handoff);
            let (this, ctx_, dropped) = (self.clone(), ctx.clone(), writes.dropped.clone());
            writes.running.push_back(Write(tokio::spawn(async move {
                this.write_batch(org, id, &ctx_, from, batch, !more, after, &dropped)
                    .await
            })));
            if !more {
                if !writes.finish().await? {
                    return Ok(RunEnd::Moved);
                }
                if end {
                    self.import_completed(org, id, key).await;
                }
                return Ok(RunEnd::Stopped);
            }
            // The next batch is read while these are written; with as many batches in flight
            // as there are writers, the oldest has to finish before another starts.
            let read = writes
                .meanwhile(self.prepare_batch(key, at, window, ctx))
                .await;
            let settled = writes.settle(self.import_writers).await;
            match (settled, read) {
                (Ok(true), Ok(r)) => ready = r,
                (Ok(false), _) => {
                    writes.finish().await?;
                    return Ok(RunEnd::Moved);
                }
                (Err(e), _) | (_, Err(e)) => {
                    writes.finish().await?;
                    return Err(e);
                }
            }
        }
    }

    /// Test hook: every import batch waits this long before it commits, so the batches after
    /// it are planned and written while it is still open.
    #[doc(hidden)]
    pub fn hold_import_commits(&self, hold: Duration) {
        self.import_commit_hold.store(
            u64::try_from(hold.as_millis()).unwrap_or(u64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Reads the records of the next batch from `at` (byte, line) and parses them on the
    /// blocking pool. `Ok(Err(reason))` fails the import.
    async fn prepare_batch(
        &self,
        key: &str,
        at: (i64, i64),
        window: usize,
        ctx: &std::sync::Arc<ParseCtx>,
    ) -> Result<Result<Prepared, String>, Problem> {
        let started = std::time::Instant::now();
        let mut chunk = match self.read_chunk(key, at.0, at.1, window).await? {
            Ok(chunk) => chunk,
            Err(reason) => return Ok(Err(reason)),
        };
        // The next window: what these rows took, with a margin, so a batch reads about what
        // it uses instead of the largest window every time.
        let rows = chunk.records.len().max(1);
        let used = usize::try_from(chunk.next_byte - at.0).unwrap_or(IMPORT_WINDOW);
        let per_row = used.div_ceil(rows);
        let next_window =
            (per_row * self.import_batch_rows * 5 / 4).clamp(IMPORT_MIN_WINDOW, IMPORT_WINDOW);
        let records = std::mem::take(&mut chunk.records);
        let ctx = ctx.clone();
        let parsed = tokio::task::spawn_blocking(move || {
            parse_rows(&ctx.opts, &ctx.defs, ctx.country, &ctx.tags, records)
        })
        .await
        .map_err(Problem::internal)?;
        Ok(Ok(Prepared {
            chunk,
            parsed,
            next_window,
            took: started.elapsed(),
        }))
    }

    /// Writes one parsed batch in one transaction: its contacts, identities, links, rejected
    /// rows, counters and the checkpoint `from` → the chunk's end, and either completes the
    /// import or (`hand_over`) enqueues the job that goes on from there. `false` when the
    /// checkpoint had moved (another run wrote this batch) or the run was dropped
    /// (`run_dropped`); nothing is written then.
    #[allow(clippy::too_many_arguments)]
    async fn write_batch(
        &self,
        org: OrgId,
        id: ImportId,
        ctx: &ParseCtx,
        from: i64,
        batch: Prepared,
        hand_over: bool,
        mut after: After,
        run_dropped: &AtomicBool,
    ) -> Result<bool, Problem> {
        let Prepared {
            chunk,
            parsed,
            took,
            ..
        } = batch;
        // The batches still in flight before this one: their keys (to find duplicates within
        // the file that this transaction cannot see yet), or `None` if one gave up.
        let Some(prior) = after.planned().await else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        // PostgreSQL plans in the batch's own transaction (its rows go in while the batch
        // before commits). SQLite has one writer: the batch is planned on a snapshot while the
        // one before is written, and its transaction starts once that one has committed.
        let sqlite = self.db.backend() == wamage_platform::Backend::Sqlite;
        let mut tx = if sqlite {
            self.db.begin_read().await.map_err(db_err)?
        } else {
            self.begin().await?
        };
        let mut plan = self
            .plan_batch(&mut tx, org, id, ctx, parsed, &prior)
            .await?;
        let planned_at = started.elapsed();
        after.plan_done(&prior, std::mem::take(&mut plan.batch_keys));
        // SQLite: the statements' JSON is built before the write lock is waited for, so the
        // writer's turn holds only the statements.
        let mut prebuilt = (None, None);
        if sqlite {
            tx.rollback().await.map_err(db_err)?;
            if !plan.creates.is_empty() {
                prebuilt.0 = Some(store::contacts_json(&plan.creates).map_err(db_err)?);
            }
            if !plan.identities.is_empty() {
                prebuilt.1 = Some(store::identities_json(&plan.identities).map_err(db_err)?);
            }
            if !after.earlier_committed().await {
                return Ok(false);
            }
            tx = self.begin().await?;
        }
        // SQLite's wait for the batch before (PostgreSQL waits at the checkpoint, in `rest`).
        let writing_at = started.elapsed();
        let n = plan.counts;
        let now = self.now();
        store::insert_contacts_bulk(&mut tx, org, &plan.creates, now, prebuilt.0)
            .await
            .map_err(db_err)?;
        let contacts_at = started.elapsed();
        store::insert_identities_bulk(&mut tx, org, &plan.identities, Some(id), now, prebuilt.1)
            .await
            .map_err(db_err)?;
        let identities_at = started.elapsed();
        // Links of the contacts this batch creates go in apart: none can exist yet.
        let fresh: std::collections::HashSet<ContactId> =
            plan.creates.iter().map(|n| n.row.id).collect();
        let groups: Vec<(ContactId, uuid::Uuid)> = ctx.opts.group_id.map_or_else(Vec::new, |g| {
            plan.touched.iter().map(|c| (*c, g.as_uuid())).collect()
        });
        for (link, pairs) in [(Link::Tag, plan.tag_links), (Link::Group, groups)] {
            let (new, old): (Vec<_>, Vec<_>) =
                pairs.into_iter().partition(|(c, _)| fresh.contains(c));
            for (pairs, fresh) in [(new, true), (old, false)] {
                store::add_links_bulk(&mut tx, org, link, &pairs, fresh)
                    .await
                    .map_err(db_err)?;
            }
        }
        for (cid, row) in plan.updates {
            if let Some(mut c) = store::get_contact_tx(&mut tx, org, cid)
                .await
                .map_err(db_err)?
            {
                apply_update(&mut c, row, now);
                store::update_contact(&mut tx, org, &c)
                    .await
                    .map_err(db_err)?;
                self.reindex(&mut tx, org, cid).await?;
            }
        }
        store::insert_import_keys_bulk(&mut tx, id, &plan.keys)
            .await
            .map_err(db_err)?;
        store::insert_import_errors_bulk(&mut tx, id, &plan.errors)
            .await
            .map_err(db_err)?;
        let hands_over = hand_over && !chunk.end;
        let hold = self
            .import_commit_hold
            .load(std::sync::atomic::Ordering::Relaxed);
        if hold > 0 {
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        // Batches commit in file order: this one waits for the one before it (its rows are
        // written meanwhile), and gives up with it.
        if !after.earlier_committed().await {
            return Ok(false); // rolled back when `tx` drops
        }
        if !store::advance_import(
            &mut tx,
            org,
            id,
            from,
            chunk.next_byte,
            chunk.next_line,
            n,
            hands_over,
        )
        .await
        .map_err(db_err)?
        {
            return Ok(false); // rolled back when `tx` drops
        }
        if chunk.end {
            store::settle_after_bulk_load(&mut tx)
                .await
                .map_err(db_err)?;
            store::finish_import(&mut tx, org, id, "completed", None, self.now())
                .await
                .map_err(db_err)?;
        } else if hands_over {
            self.enqueue_batch(&mut tx, org, id, chunk.next_byte)
                .await?;
        }
        // The task is aborted with its run, but may be past its last await when that happens:
        // a dropped run commits nothing more.
        if run_dropped.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(false);
        }
        let commit_start = started.elapsed();
        tx.commit().await.map_err(db_err)?;
        let commit_ms = (started.elapsed() - commit_start).as_millis() as u64;
        after.committed();
        tracing::debug!(
            import_id = %id,
            rows = n.rows,
            read_parse_ms = took.as_millis() as u64,
            plan_ms = planned_at.as_millis() as u64,
            wait_ms = (writing_at - planned_at).as_millis() as u64,
            contacts_ms = (contacts_at - writing_at).as_millis() as u64,
            identities_ms = (identities_at - contacts_at).as_millis() as u64,
            rest_ms = (started.elapsed() - identities_at).as_millis() as u64,
            commit_ms,
            "import batch written"
        );
        if hands_over {
            self.jobs.notify();
        }
        if n.created + n.updated > 0 {
            self.forget(org).await;
        }
        Ok(true)
    }

    /// After the last batch: the file deleted, and the `wamage.contacts.imported` event.
    async fn import_completed(&self, org: OrgId, id: ImportId, blob_key: &str) {
        // The file is not needed any more: the error report keeps the rejected rows.
        if let Err(e) = self.blobs.delete(blob_key).await {
            tracing::warn!(error = %e, import_id = %id, "failed to delete an import file");
        }
        if let Ok(Some(done)) = store::get_import(&self.db, org, id).await {
            self.imported(org, done.created + done.updated);
            self.publish(
                org,
                "wamage.contacts.imported",
                json!({
                    "import_id": id,
                    "created": done.created,
                    "updated": done.updated,
                    "skipped": done.skipped,
                    "failed": done.failed,
                }),
            )
            .await;
        }
    }

    /// The next records of the stored file from `from_byte`, read in windows of `window`
    /// bytes (doubled until it holds a whole record), at most `import_batch_rows` of them.
    /// `Err(reason)` fails the import.
    async fn read_chunk(
        &self,
        key: &str,
        from_byte: i64,
        first_line: i64,
        window: usize,
    ) -> Result<Result<Chunk, String>, Problem> {
        let offset = u64::try_from(from_byte).unwrap_or(0);
        let mut window = window.max(IMPORT_MIN_WINDOW);
        loop {
            let Some(bytes) = self
                .blobs
                .get_range(key, offset, window)
                .await
                .map_err(|e| Problem::internal(format_args!("blob store: {e:#}")))?
            else {
                return Ok(Err("the uploaded file is no longer stored".to_owned()));
            };
            let eof = bytes.len() < window;
            let max_rows = self.import_batch_rows;
            let split = tokio::task::spawn_blocking(move || {
                split_records(&bytes, eof, offset == 0, max_rows, first_line)
            })
            .await
            .map_err(Problem::internal)?;
            match split {
                Err(reason) => return Ok(Err(reason)),
                Ok(None) if window < IMPORT_MAX_BYTES * 2 => window *= 2,
                Ok(None) => {
                    return Ok(Err(format!(
                        "line {first_line}: a record is longer than the largest file"
                    )));
                }
                Ok(Some(mut chunk)) => {
                    chunk.next_byte += from_byte;
                    return Ok(Ok(chunk));
                }
            }
        }
    }

    /// Decides every row of a batch against the database (two lookups for the whole batch),
    /// the keys of the batches still in flight before it (`prior`: the database may not show
    /// their rows yet) and the rows before it, in file order.
    async fn plan_batch(
        &self,
        tx: &mut Tx,
        org: OrgId,
        id: ImportId,
        ctx: &ParseCtx,
        rows: Vec<Parsed>,
        prior: &[BatchKeys],
    ) -> Result<BatchPlan, Problem> {
        let (opts, defs) = (&ctx.opts, &ctx.defs);
        // Each row's identity keys (none for a row that did not parse), computed once.
        let row_keys: Vec<Vec<String>> = rows
            .iter()
            .map(|p| match &p.row {
                Ok(r) => r
                    .identities
                    .iter()
                    .map(|(k, v)| identity_key(k.as_str(), v))
                    .collect(),
                Err(_) => Vec::new(),
            })
            .collect();
        let pairs: Vec<(&'static str, &str)> = rows
            .iter()
            .filter_map(|p| p.row.as_ref().ok())
            .flat_map(|r| r.identities.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect();
        let key_refs: Vec<&str> = row_keys.iter().flatten().map(String::as_str).collect();
        let mut earlier: HashMap<String, i64> = store::import_key_lines(tx, id, &key_refs)
            .await
            .map_err(db_err)?
            .into_iter()
            .collect();
        // Keyed like the import keys (`kind:value`), so a row looks its identities up with the
        // keys it computes anyway. An identity an earlier batch of this file created carries
        // its line: the row is a duplicate within the file, not of an existing contact.
        let mut owners: HashMap<String, ContactId> = HashMap::new();
        for (k, v, c, line) in store::identity_owners_for_import(tx, org, id, &pairs)
            .await
            .map_err(db_err)?
        {
            let key = identity_key(&k, &v);
            if let Some(line) = line {
                earlier.insert(key.clone(), line);
            }
            owners.insert(key, c);
        }

        let mut plan = BatchPlan::default();
        let mut this_batch: HashMap<String, i64> = HashMap::new();
        let mut required: Vec<&str> = defs
            .values()
            .filter(|d| d.required)
            .map(|d| d.key.as_str())
            .collect();
        required.sort_unstable();
        for (p, keys) in rows.into_iter().zip(row_keys) {
            plan.counts.rows += 1;
            let row = match p.row {
                Ok(row) => row,
                Err(reason) => {
                    plan.reject(p.line, reason, p.raw);
                    continue;
                }
            };
            if let Some((l, (kind, value))) = keys.iter().zip(&row.identities).find_map(|(k, i)| {
                earlier
                    .get(k)
                    .or_else(|| prior.iter().find_map(|p| p.get(k)))
                    .or_else(|| this_batch.get(k))
                    .map(|l| (l, i))
            }) {
                let reason = format!(
                    "duplicate of line {l} in this file ({} {value})",
                    kind.as_str()
                );
                plan.reject(p.line, reason, p.raw);
                continue;
            }
            let dedupe_on = match opts.dedupe {
                Dedupe::Phone => row.identities.iter().position(|(k, _)| k.is_phone()),
                Dedupe::Email => row
                    .identities
                    .iter()
                    .position(|(k, _)| *k == IdentityKind::Email),
                Dedupe::None => None,
            };
            let existing = dedupe_on.and_then(|i| owners.get(&keys[i]).copied());
            let mut new_identities: Vec<(IdentityKind, String)> = Vec::new();
            let mut taken = None;
            for ((kind, value), key) in row.identities.iter().zip(&keys) {
                match owners.get(key).copied() {
                    None => new_identities.push((*kind, value.clone())),
                    Some(o) if Some(o) == existing => {}
                    Some(o) => {
                        taken = Some(format!(
                            "{} {value} already belongs to contact {o}",
                            kind.as_str()
                        ));
                        break;
                    }
                }
            }
            if let Some(reason) = taken {
                plan.reject(p.line, reason, p.raw);
                continue;
            }
            let contact = match existing {
                Some(_) if opts.on_duplicate == OnDuplicate::Skip => {
                    plan.counts.skipped += 1;
                    // Nothing of the row is written: all its keys are remembered apart.
                    plan.remember(&mut this_batch, keys, p.line, |_| true);
                    continue;
                }
                Some(cid) => {
                    plan.counts.updated += 1;
                    plan.updates.push((cid, row.fields));
                    cid
                }
                None => {
                    let missing: Vec<&str> = required
                        .iter()
                        .copied()
                        .filter(|k| !row.fields.attributes.contains_key(*k))
                        .collect();
                    if !missing.is_empty() {
                        let reason = format!("attributes {} are required", missing.join(", "));
                        plan.reject(p.line, reason, p.raw);
                        continue;
                    }
                    let Some(name) = row.fields.name.clone() else {
                        plan.reject(p.line, "has no name and no identity".to_owned(), p.raw);
                        continue;
                    };
                    plan.counts.created += 1;
                    let f = row.fields;
                    let c = ContactRow {
                        id: ContactId::new(),
                        sort_name: name.to_lowercase(),
                        name,
                        company: f.company,
                        language: f.language,
                        time_zone: f.time_zone,
                        notes: f.notes,
                        favorite: false,
                        blocked: false,
                        attributes: Json(Value::Object(f.attributes)),
                        avatar_key: None,
                        created_at: self.now(),
                        updated_at: self.now(),
                    };
                    let cid = c.id;
                    plan.creates.push(store::NewImported {
                        row: c,
                        words: row.words,
                    });
                    cid
                }
            };
            plan.identities
                .extend(
                    new_identities
                        .into_iter()
                        .map(|(kind, value)| store::NewIdentity {
                            id: IdentityId::new(),
                            contact,
                            kind: kind.as_str(),
                            value,
                            line: Some(p.line),
                        }),
                );
            plan.tag_links
                .extend(row.tags.iter().map(|t| (contact, t.as_uuid())));
            plan.touched.push(contact);
            // The identities written now carry the line; the ones the contact had already are
            // remembered apart.
            plan.remember(&mut this_batch, keys, p.line, |k| owners.contains_key(k));
        }
        plan.batch_keys = this_batch;
        Ok(plan)
    }
}

/// Rows per batch (and per transaction) unless configured.
pub const IMPORT_BATCH_ROWS: usize = 5_000;
/// The most bytes of the file read for a batch (more only when one record is longer); a run
/// reads about what its rows took in the batch before, and at least [`IMPORT_MIN_WINDOW`].
const IMPORT_WINDOW: usize = 4 * 1024 * 1024;
const IMPORT_MIN_WINDOW: usize = 64 * 1024;
/// How long one run of an import job goes on taking batches before it hands over to a new job,
/// unless configured.
pub const IMPORT_RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// Batches of one import run in flight at once unless configured. Each is planned after the
/// one before it (with that one's keys, which it cannot see in the database yet) and commits
/// after it. On PostgreSQL their rows go in side by side; on SQLite, which has one writer, a
/// batch is planned while the one before is written.
pub const IMPORT_WRITERS: usize = 2;

/// How many times a run goes on from a checkpoint another try moved before it leaves the
/// import to that try (which is then alive and writing).
const MOVED_RESUMES: usize = 3;

/// How [`Contacts::run_batches`] ended.
enum RunEnd {
    /// The file is done, the run handed over, or the import failed.
    Stopped,
    /// A batch found the checkpoint where it did not read it.
    Moved,
}

/// The keys a batch's rows accepted (`kind:value` → line).
type BatchKeys = Arc<HashMap<String, i64>>;

/// What a batch of a run hands the next one: the keys of the batches that may still be in
/// flight when that one is planned, then whether it committed. A dropped sender means the
/// batch gave up (an error, a stale checkpoint, an aborted run): the next one gives up too.
struct Handoff {
    planned: oneshot::Receiver<Vec<BatchKeys>>,
    committed: oneshot::Receiver<()>,
}

/// One batch's side of the hand-offs: the one before it (none for a run's first batch) and
/// the one it gives the next.
struct After {
    before: Option<Handoff>,
    /// How many batches' keys the next batch needs: those that can be in flight with it.
    keep: usize,
    planned: Option<oneshot::Sender<Vec<BatchKeys>>>,
    committed: Option<oneshot::Sender<()>>,
    /// Whether the batch before committed, once known (`true` for a run's first batch).
    earlier: bool,
}

impl Handoff {
    /// The hand-offs of the batch after `before`, with `writers` batches in flight at most.
    fn next(before: Option<Handoff>, writers: usize) -> (After, Handoff) {
        let (planned_tx, planned) = oneshot::channel();
        let (committed_tx, committed) = oneshot::channel();
        let after = After {
            before,
            keep: writers.saturating_sub(1),
            planned: Some(planned_tx),
            committed: Some(committed_tx),
            earlier: true,
        };
        (after, Handoff { planned, committed })
    }
}

impl After {
    /// Waits until the batch before is planned: the keys of the batches in flight before this
    /// one, or `None` if it gave up. Called once, before [`After::earlier_committed`].
    async fn planned(&mut self) -> Option<Vec<BatchKeys>> {
        match &mut self.before {
            None => Some(Vec::new()),
            Some(b) => (&mut b.planned).await.ok(),
        }
    }

    /// Hands the next batch the keys it has to check besides the database's.
    fn plan_done(&mut self, prior: &[BatchKeys], own: HashMap<String, i64>) {
        let mut keys: Vec<BatchKeys> = prior.to_vec();
        keys.push(Arc::new(own));
        let drop = keys.len().saturating_sub(self.keep);
        keys.drain(..drop);
        if let Some(tx) = self.planned.take() {
            let _ = tx.send(keys); // a run that stopped has no next batch
        }
    }

    /// Waits until the batch before has committed: `false` if it gave up.
    async fn earlier_committed(&mut self) -> bool {
        match self.before.take() {
            None => self.earlier,
            Some(b) => {
                self.earlier = b.committed.await.is_ok();
                self.earlier
            }
        }
    }

    fn committed(&mut self) {
        if let Some(tx) = self.committed.take() {
            let _ = tx.send(());
        }
    }
}

/// A batch's write, running as a task of its own: one batch's planning (CPU work between its
/// queries) does not hold up the statements of the batch before it. Aborted when dropped, so
/// a dropped run drops its batches' transactions (rolled back).
struct Write(tokio::task::JoinHandle<Result<bool, Problem>>);

impl Future for Write {
    type Output = Result<bool, Problem>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // A panicking write fails the run (the job retries from the checkpoint).
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|e| Err(Problem::internal(e))))
    }
}

impl Drop for Write {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The batches of a run being written, oldest first, and the outcomes of those that finished
/// and have not been looked at yet.
#[derive(Default)]
struct InFlight {
    running: futures::stream::FuturesOrdered<Write>,
    finished: VecDeque<Result<bool, Problem>>,
    /// Set when the run drops its writes: a write past its last await does not commit.
    dropped: Arc<AtomicBool>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.dropped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl InFlight {
    /// Runs `work` while the writes go on.
    async fn meanwhile<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                Some(w) = self.running.next(), if !self.running.is_empty() => {
                    self.finished.push_back(w);
                }
            }
        }
    }

    /// Waits until fewer than `writers` batches are in flight: whether every batch that
    /// finished was written, or the first error.
    async fn settle(&mut self, writers: usize) -> Result<bool, Problem> {
        while self.running.len() >= writers {
            match self.running.next().await {
                Some(w) => self.finished.push_back(w),
                None => break,
            }
        }
        let mut all = true;
        while let Some(w) = self.finished.pop_front() {
            all &= w?;
        }
        Ok(all)
    }

    /// Waits for every batch in flight: whether all were written, or the first error once
    /// all have finished (no write of a run outlives it).
    async fn finish(&mut self) -> Result<bool, Problem> {
        while let Some(w) = self.running.next().await {
            self.finished.push_back(w);
        }
        let mut all = Ok(true);
        while let Some(w) = self.finished.pop_front() {
            match (w, &mut all) {
                (Ok(w), Ok(a)) => *a &= w,
                (Err(e), Ok(_)) => all = Err(e),
                (_, Err(_)) => {}
            }
        }
        all
    }
}

/// What parsing a batch needs, loaded once per run.
struct ParseCtx {
    opts: ImportOptions,
    defs: HashMap<String, AttrDef>,
    country: Country,
    tags: HashMap<String, TagId>,
}

/// A batch read and parsed, ready to be written.
struct Prepared {
    chunk: Chunk,
    parsed: Vec<Parsed>,
    /// The window to read the batch after this one with.
    next_window: usize,
    /// Reading and parsing it took this long.
    took: std::time::Duration,
}

/// `kind:value`, the key of an identity in `contact_import_keys`.
fn identity_key(kind: &str, value: &str) -> String {
    format!("{kind}:{value}")
}

/// The records of one batch and where the next batch starts.
struct Chunk {
    records: Vec<(i64, csv::StringRecord)>,
    /// Relative to the window until `read_chunk` makes it absolute.
    next_byte: i64,
    next_line: i64,
    /// The file has no records after these.
    end: bool,
}

/// Splits a window of the file into whole records. A record that reaches the end of a window
/// that is not the end of the file may be cut short, so it is left for the next batch;
/// `Ok(None)` means the window holds no whole record and must grow.
fn split_records(
    buf: &[u8],
    eof: bool,
    skip_header: bool,
    max_rows: usize,
    first_line: i64,
) -> Result<Option<Chunk>, String> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(buf);
    let mut rec = csv::ByteRecord::new();
    let mut records = Vec::new();
    // Line numbers are counted here from the bytes: the reader's own line counts attribute
    // the `\n` of a `\r\n` ending to the next record.
    let mut newlines = Newlines::default();
    let mut next_byte = 0usize;
    let mut skip = skip_header;
    let mut end = false;
    let mut seen_any = false;
    while records.len() < max_rows {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => {
                let after = usize::try_from(rdr.position().byte()).unwrap_or(usize::MAX);
                if !eof && after >= buf.len() {
                    break; // maybe cut at the window's edge
                }
                seen_any = true;
                // The reader reports a record from the blank line ends it skipped before it.
                let mut start = rec
                    .position()
                    .map_or(0, |p| usize::try_from(p.byte()).unwrap_or(0));
                while start < buf.len() && matches!(buf[start], b'\r' | b'\n') {
                    start += 1;
                }
                let line = first_line + newlines.upto(buf, start);
                next_byte = after;
                if skip {
                    skip = false;
                    continue;
                }
                match csv::StringRecord::from_byte_record(rec.clone()) {
                    Ok(r) => records.push((line, r)),
                    Err(_) => return Err(format!("line {line}: the file is not UTF-8")),
                }
            }
            Ok(false) => {
                end = eof;
                if eof {
                    next_byte = buf.len();
                }
                break;
            }
            Err(e) => {
                let at = usize::try_from(rdr.position().byte()).unwrap_or(0);
                let line = first_line + newlines.upto(buf, at.min(buf.len()));
                return Err(format!("line {line}: the file is not CSV: {e}"));
            }
        }
    }
    if !seen_any && !end {
        return Ok(None);
    }
    let next_line = first_line + newlines.upto(buf, next_byte);
    Ok(Some(Chunk {
        records,
        next_byte: i64::try_from(next_byte).unwrap_or(i64::MAX),
        next_line,
        end,
    }))
}

/// Counts `\n` bytes up to a position, resuming from the last one asked (positions only grow).
#[derive(Default)]
struct Newlines {
    at: usize,
    count: i64,
}

impl Newlines {
    fn upto(&mut self, buf: &[u8], pos: usize) -> i64 {
        if pos > self.at {
            self.count += buf[self.at..pos].iter().filter(|&&b| b == b'\n').count() as i64;
            self.at = pos;
        }
        self.count
    }
}

/// A row after parsing: its line, its raw cells, and the checked fields or why not.
struct Parsed {
    line: i64,
    raw: csv::StringRecord,
    row: Result<CheckedRow, String>,
}

/// A row that parsed, with the search words it would have as a new contact.
struct CheckedRow {
    identities: Vec<(IdentityKind, String)>,
    tags: Vec<TagId>,
    fields: RowFields,
    words: Vec<String>,
}

/// The contact fields a row sets. `name` is the row's name, or for a new contact its first
/// identity.
#[derive(Default)]
struct RowFields {
    name: Option<String>,
    given_name: bool,
    company: Option<String>,
    language: Option<String>,
    time_zone: Option<String>,
    notes: Option<String>,
    attributes: Map<String, Value>,
}

/// Copies the fields a row gives onto an existing contact.
fn apply_update(c: &mut ContactRow, f: RowFields, now: Timestamp) {
    if f.given_name
        && let Some(n) = f.name
    {
        c.sort_name = n.to_lowercase();
        c.name = n;
    }
    for (slot, given) in [
        (&mut c.company, f.company),
        (&mut c.language, f.language),
        (&mut c.time_zone, f.time_zone),
        (&mut c.notes, f.notes),
    ] {
        if given.is_some() {
            *slot = given;
        }
    }
    if !f.attributes.is_empty() {
        let mut attrs = match &c.attributes.0 {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        attrs.extend(f.attributes);
        c.attributes = Json(Value::Object(attrs));
    }
    c.updated_at = now;
}

/// What a batch writes.
#[derive(Default)]
struct BatchPlan {
    counts: ImportCounts,
    creates: Vec<store::NewImported>,
    /// Existing contacts to update, with the fields the row gives.
    updates: Vec<(ContactId, RowFields)>,
    identities: Vec<store::NewIdentity>,
    tag_links: Vec<(ContactId, uuid::Uuid)>,
    /// Contacts created or updated (they join the import's group).
    touched: Vec<ContactId>,
    keys: Vec<(String, i64)>,
    errors: Vec<(i64, String, Vec<String>)>,
    /// Every key the batch's rows accepted, with the row's line.
    batch_keys: HashMap<String, i64>,
}

impl BatchPlan {
    fn reject(&mut self, line: i64, reason: String, raw: csv::StringRecord) {
        self.counts.failed += 1;
        self.errors
            .push((line, reason, raw.iter().map(str::to_owned).collect()));
    }

    /// Remembers the keys a row accepted at `line`: for the rest of this batch, and in
    /// `contact_import_keys` for later ones where `apart` (the identities the batch inserts
    /// record their line themselves).
    fn remember(
        &mut self,
        batch: &mut HashMap<String, i64>,
        keys: Vec<String>,
        line: i64,
        apart: impl Fn(&str) -> bool,
    ) {
        for k in keys {
            if apart(&k) {
                self.keys.push((k.clone(), line));
            }
            batch.insert(k, line);
        }
    }
}

/// Parses and checks a batch's rows, on one thread fewer than there are cores (phone-number
/// parsing dominates; the batch before is being written meanwhile). Blocking: call it on the blocking pool.
fn parse_rows(
    opts: &ImportOptions,
    defs: &HashMap<String, AttrDef>,
    country: Country,
    tags: &HashMap<String, TagId>,
    mut records: Vec<(i64, csv::StringRecord)>,
) -> Vec<Parsed> {
    let one = |(line, rec): (i64, csv::StringRecord)| {
        let row = parse_row(opts, defs, country, tags, &rec).map(|r| {
            let ids: Vec<(Option<IdentityKind>, &str)> = r
                .identities
                .iter()
                .map(|(k, v)| (Some(*k), v.as_str()))
                .collect();
            let given_name = r.name.is_some();
            let name = r
                .name
                .or_else(|| r.identities.first().map(|(_, v)| v.clone()));
            let words = search_words_of(
                name.as_deref().unwrap_or(""),
                r.company.as_deref(),
                &ids,
                Some(&r.attributes),
                defs,
            );
            CheckedRow {
                identities: r.identities,
                tags: r.tags,
                fields: RowFields {
                    name,
                    given_name,
                    company: r.company,
                    language: r.language,
                    time_zone: r.time_zone,
                    notes: r.notes,
                    attributes: r.attributes,
                },
                words,
            }
        });
        Parsed {
            line,
            raw: rec,
            row,
        }
    };
    // One core is left to the batch being written meanwhile (and to the database).
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_sub(1)
        .clamp(1, 8);
    if threads == 1 || records.len() < 256 {
        return records.into_iter().map(one).collect();
    }
    let per = records.len().div_ceil(threads);
    let mut parts = Vec::with_capacity(threads);
    while records.len() > per {
        let rest = records.split_off(per);
        parts.push(std::mem::replace(&mut records, rest));
    }
    parts.push(records);
    let one = &one;
    std::thread::scope(|s| {
        let parts: Vec<_> = parts
            .into_iter()
            .map(|part| s.spawn(move || part.into_iter().map(one).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            // A panic in a parser thread fails the batch (and the job retries); no row is lost.
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Runs `contacts.import` jobs: batches from the checkpoint, for up to [`IMPORT_RUN_BUDGET`].
pub struct ImportJob(pub std::sync::Arc<Contacts>);

#[async_trait::async_trait]
impl JobHandler for ImportJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        let p: ImportPayload = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid import payload: {e}")),
        };
        let Some(org) = job.org_id else {
            return JobOutcome::fail("import job without an organisation");
        };
        match self.0.import_run(org, p.import_id, p.from_byte).await {
            Ok(()) => JobOutcome::Done,
            Err(e) if job.is_last_attempt() => {
                let reason = format!("the import stopped: {e}");
                if let Err(e2) = self.0.fail_import(org, p.import_id, &reason).await {
                    tracing::warn!(error = %e2, "failed to mark the import failed");
                }
                JobOutcome::fail(reason)
            }
            Err(e) => JobOutcome::retry(e.to_string()),
        }
    }
}

/// Checks an upload is UTF-8 CSV and returns its header (BOM and spaces trimmed) with the
/// number of records after it, or what is wrong with it for the `file` field. Blocking: call it
/// on the blocking pool.
fn read_header(file: &[u8]) -> Result<(Vec<String>, i64), String> {
    if let Err(e) = std::str::from_utf8(file) {
        return Err(format!(
            "is not UTF-8 text (invalid byte at offset {}); save the CSV as UTF-8",
            e.valid_up_to()
        ));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(file);
    let mut rec = csv::ByteRecord::new();
    let header = match rdr.read_byte_record(&mut rec) {
        Ok(true) => csv::StringRecord::from_byte_record(rec.clone())
            .map_err(|_| "is not UTF-8 text".to_owned())?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
            .collect(),
        Ok(false) => return Err("has no header row".to_owned()),
        Err(e) => return Err(format!("is not CSV: {e}")),
    };
    let mut rows = 0i64;
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => rows += 1,
            Ok(false) => break,
            Err(e) => return Err(format!("is not CSV: {e}")),
        }
    }
    Ok((header, rows))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Reads a whole file the way batches do: windows of `window` bytes from each checkpoint,
    /// growing a window that holds no whole record, at most `max_rows` records per batch.
    fn stream(file: &[u8], window: usize, max_rows: usize) -> Vec<(i64, Vec<String>)> {
        let (mut at, mut line) = (0usize, 1i64);
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let mut w = window;
            let chunk = loop {
                let end = (at + w).min(file.len());
                let eof = end == file.len();
                match split_records(&file[at..end], eof, at == 0, max_rows, line).unwrap() {
                    Some(c) => break c,
                    None => w *= 2,
                }
            };
            out.extend(
                chunk
                    .records
                    .iter()
                    .map(|(l, r)| (*l, r.iter().map(str::to_owned).collect())),
            );
            at += usize::try_from(chunk.next_byte).unwrap();
            line = chunk.next_line;
            if chunk.end {
                return out;
            }
        }
        panic!("the file never ended");
    }

    #[test]
    fn windows_never_cut_or_repeat_a_record() {
        let mut file = String::from("Name,Note\r\n");
        let mut want = Vec::new();
        let mut line = 2;
        for i in 0..300 {
            let (row, lines) = match i % 4 {
                0 => (format!("Ana {i},plain\r\n"), 1),
                1 => (format!("\"Quoted, {i}\",\"two\nlines\"\r\n"), 2),
                2 => (format!("Zoë {i},ünïcode ✓\n"), 1),
                _ => (format!("Long {i},{}\r\n", "x".repeat(i * 3)), 1),
            };
            let note = match i % 4 {
                0 => "plain".to_owned(),
                1 => "two\nlines".to_owned(),
                2 => "ünïcode ✓".to_owned(),
                _ => "x".repeat(i * 3),
            };
            let name = match i % 4 {
                0 => format!("Ana {i}"),
                1 => format!("Quoted, {i}"),
                2 => format!("Zoë {i}"),
                _ => format!("Long {i}"),
            };
            want.push((line, vec![name, note]));
            line += lines;
            file.push_str(&row);
        }
        for window in [7, 16, 64, 100, 1000, 1 << 20] {
            for max_rows in [1, 3, 50, 10_000] {
                assert_eq!(
                    stream(file.as_bytes(), window, max_rows),
                    want,
                    "window {window}, batch {max_rows}"
                );
            }
        }
    }

    #[test]
    fn a_file_without_a_final_newline_keeps_its_last_row() {
        let file = b"Name\nA\nB";
        assert_eq!(
            stream(file, 3, 10),
            vec![(2, vec!["A".to_owned()]), (3, vec!["B".to_owned()])]
        );
    }

    #[test]
    fn the_header_counts_rows_and_refuses_bad_files() {
        assert_eq!(
            read_header(b"\xef\xbb\xbfName , Phone\na,1\n\"b\nc\",2\n").unwrap(),
            (vec!["Name".to_owned(), "Phone".to_owned()], 2)
        );
        assert!(read_header(b"").unwrap_err().contains("no header"));
        assert!(
            read_header(b"Name\n\xff\xfe")
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
