//! CSV import: the upload is checked up front (UTF-8, a header, a valid mapping), stored in the
//! blob store, and recorded with a `contacts.import` job in one transaction. The job streams the
//! file from its checkpoint (byte offset and line of the next record), processes one batch of
//! [`IMPORT_BATCH`] rows per run in one transaction — the rows, the rejected rows
//! (`contact_import_errors`), the counters and the new checkpoint together — and enqueues the
//! next batch in that same transaction. A run whose checkpoint moved on does nothing, so a
//! retried or duplicated job never creates a contact twice.
//!
//! Events: bulk imports publish no `wamage.contact.created`/`updated` per row; one
//! `wamage.contacts.imported` event (`import_id`, `created`, `updated`, `skipped`, `failed`)
//! is published when an import completes.

use std::collections::HashSet;

use axum::body::Bytes;
use wamage_platform::jobs::{JobContext, JobHandler, JobOutcome, NewJob};

use super::*;
use crate::{
    http::{Dedupe, ImportOut, ImportStatus, OnDuplicate},
    model::ImportId,
    store::ImportCounts,
};

/// The job kind that runs imports.
pub const IMPORT_JOB: &str = "contacts.import";
/// Rows per batch (and per transaction).
pub const IMPORT_BATCH: usize = 500;
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

enum RowOutcome {
    Created,
    Updated,
    Skipped,
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
                Ok(h) => header = h,
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
            total_rows: None,
            next_byte: 0,
            next_line: 1,
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

    /// Runs one batch of an import from the checkpoint `from_byte`.
    async fn import_batch(&self, org: OrgId, id: ImportId, from_byte: i64) -> Result<(), Problem> {
        let Some(imp) = store::get_import(&self.db, org, id).await.map_err(db_err)? else {
            return Ok(());
        };
        if !matches!(imp.status.as_str(), "queued" | "running") || imp.next_byte != from_byte {
            return Ok(()); // finished, or this batch was done by an earlier run
        }
        let opts: ImportOptions =
            serde_json::from_value(imp.options.0.clone()).map_err(Problem::internal)?;
        let blob = self
            .blobs
            .get(&imp.blob_key)
            .await
            .map_err(|e| Problem::internal(format_args!("blob store: {e:#}")))?;
        let Some(blob) = blob else {
            return self
                .fail_import(org, id, "the uploaded file is no longer stored")
                .await;
        };
        let start = usize::try_from(from_byte).unwrap_or(usize::MAX);
        let Some(rest) = blob.bytes.get(start..) else {
            return self
                .fail_import(org, id, "the checkpoint is past the end of the file")
                .await;
        };
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(rest);
        let mut batch: Vec<(i64, csv::StringRecord)> = Vec::with_capacity(IMPORT_BATCH);
        let mut rec = csv::StringRecord::new();
        let mut first = start == 0;
        let mut end = false;
        while batch.len() < IMPORT_BATCH {
            match rdr.read_record(&mut rec) {
                Ok(true) if first => first = false, // the header
                Ok(true) => {
                    let line = rec.position().map_or(0, |p| p.line() as i64);
                    batch.push((imp.next_line + line - 1, rec.clone()));
                }
                Ok(false) => {
                    end = true;
                    break;
                }
                Err(e) => {
                    let line = imp.next_line + rdr.position().line() as i64 - 1;
                    return self
                        .fail_import(org, id, &format!("line {line}: the file is not CSV: {e}"))
                        .await;
                }
            }
        }
        let pos = rdr.position();
        let next_byte = from_byte + pos.byte() as i64;
        let next_line = imp.next_line + pos.line() as i64 - 1;

        let mut tx = self.begin().await?;
        let defs = defs_of(store::attr_defs_tx(&mut tx, org).await.map_err(db_err)?);
        let country = self.country(org).await?;
        let tags: HashMap<String, TagId> = store::tags(&self.db, org)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|t| (t.name.to_lowercase(), t.id))
            .collect();
        let mut n = ImportCounts::default();
        for (line, rec) in &batch {
            n.rows += 1;
            let outcome = match parse_row(&opts, &defs, country, &tags, rec) {
                Ok(row) => {
                    self.import_row(&mut tx, org, id, &opts, &defs, *line, row)
                        .await?
                }
                Err(reason) => Err(reason),
            };
            match outcome {
                Ok(RowOutcome::Created) => n.created += 1,
                Ok(RowOutcome::Updated) => n.updated += 1,
                Ok(RowOutcome::Skipped) => n.skipped += 1,
                Err(reason) => {
                    n.failed += 1;
                    let raw: Vec<String> = rec.iter().map(str::to_owned).collect();
                    store::insert_import_error(&mut tx, id, *line, &reason, &raw)
                        .await
                        .map_err(db_err)?;
                }
            }
        }
        if !store::advance_import(&mut tx, org, id, from_byte, next_byte, next_line, n)
            .await
            .map_err(db_err)?
        {
            return Ok(()); // another run did this batch; roll back
        }
        if end {
            store::finish_import(&mut tx, org, id, "completed", None, self.now())
                .await
                .map_err(db_err)?;
        } else {
            self.enqueue_batch(&mut tx, org, id, next_byte).await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.jobs.notify();
        if n.created + n.updated > 0 {
            self.forget(org).await;
        }
        if end
            && let Ok(done) = store::get_import(&self.db, org, id).await.map_err(db_err)
            && let Some(done) = done
        {
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
        Ok(())
    }

    /// Writes one checked row; `Err(reason)` rejects it (nothing of it is written).
    #[allow(clippy::too_many_arguments)]
    async fn import_row(
        &self,
        tx: &mut Tx,
        org: OrgId,
        id: ImportId,
        opts: &ImportOptions,
        defs: &HashMap<String, AttrDef>,
        line: i64,
        row: ParsedRow,
    ) -> Result<Result<RowOutcome, String>, Problem> {
        let keys: Vec<String> = row
            .identities
            .iter()
            .map(|(k, v)| format!("{}:{v}", k.as_str()))
            .collect();
        for (key, (kind, value)) in keys.iter().zip(&row.identities) {
            if let Some(l) = store::import_key_line(tx, id, key).await.map_err(db_err)? {
                return Ok(Err(format!(
                    "duplicate of line {l} in this file ({} {value})",
                    kind.as_str()
                )));
            }
        }
        let dedupe_on = match opts.dedupe {
            Dedupe::Phone => row.identities.iter().find(|(k, _)| k.is_phone()),
            Dedupe::Email => row
                .identities
                .iter()
                .find(|(k, _)| *k == IdentityKind::Email),
            Dedupe::None => None,
        };
        let existing = match dedupe_on {
            Some((kind, value)) => store::identity_owner_tx(tx, org, kind.as_str(), value)
                .await
                .map_err(db_err)?,
            None => None,
        };
        let mut seen = HashSet::new();
        let mut new_identities = Vec::new();
        for (kind, value) in &row.identities {
            match store::identity_owner_tx(tx, org, kind.as_str(), value)
                .await
                .map_err(db_err)?
            {
                None => {
                    if seen.insert((kind.as_str(), value.as_str())) {
                        new_identities.push((*kind, value.clone()));
                    }
                }
                Some(owner) if Some(owner) == existing => {}
                Some(owner) => {
                    return Ok(Err(format!(
                        "{} {value} already belongs to contact {owner}",
                        kind.as_str()
                    )));
                }
            }
        }
        let now = self.now();
        let contact = match existing {
            Some(_) if opts.on_duplicate == OnDuplicate::Skip => {
                self.remember_keys(tx, id, &keys, line).await?;
                return Ok(Ok(RowOutcome::Skipped));
            }
            Some(cid) => {
                let Some(mut c) = store::get_contact_tx(tx, org, cid).await.map_err(db_err)? else {
                    return Ok(Err("the matching contact was deleted".to_owned()));
                };
                if let Some(n) = row.name {
                    c.sort_name = n.to_lowercase();
                    c.name = n;
                }
                for (slot, given) in [
                    (&mut c.company, row.company),
                    (&mut c.language, row.language),
                    (&mut c.time_zone, row.time_zone),
                    (&mut c.notes, row.notes),
                ] {
                    if given.is_some() {
                        *slot = given;
                    }
                }
                if !row.attributes.is_empty() {
                    let mut attrs = match &c.attributes.0 {
                        Value::Object(m) => m.clone(),
                        _ => Map::new(),
                    };
                    attrs.extend(row.attributes);
                    c.attributes = Json(Value::Object(attrs));
                }
                c.updated_at = now;
                store::update_contact(tx, org, &c).await.map_err(db_err)?;
                cid
            }
            None => {
                let mut missing: Vec<&str> = defs
                    .values()
                    .filter(|d| d.required && !row.attributes.contains_key(&d.key))
                    .map(|d| d.key.as_str())
                    .collect();
                if !missing.is_empty() {
                    missing.sort_unstable();
                    return Ok(Err(format!(
                        "attributes {} are required",
                        missing.join(", ")
                    )));
                }
                let Some(name) = row
                    .name
                    .or_else(|| row.identities.first().map(|(_, v)| v.clone()))
                else {
                    return Ok(Err("has no name and no identity".to_owned()));
                };
                let c = ContactRow {
                    id: ContactId::new(),
                    sort_name: name.to_lowercase(),
                    name,
                    company: row.company,
                    language: row.language,
                    time_zone: row.time_zone,
                    notes: row.notes,
                    favorite: false,
                    blocked: false,
                    attributes: Json(Value::Object(row.attributes)),
                    created_at: now,
                    updated_at: now,
                };
                store::insert_contact(tx, org, &c).await.map_err(db_err)?;
                c.id
            }
        };
        for (kind, value) in &new_identities {
            store::insert_identity(
                tx,
                org,
                contact,
                IdentityId::new(),
                kind.as_str(),
                value,
                now,
            )
            .await
            .map_err(db_err)?;
        }
        if !row.tags.is_empty() {
            store::add_links(tx, org, Link::Tag, contact, &row.tags)
                .await
                .map_err(db_err)?;
        }
        if let Some(g) = opts.group_id {
            store::add_links(tx, org, Link::Group, contact, &[g])
                .await
                .map_err(db_err)?;
        }
        self.reindex(tx, org, contact).await?;
        self.remember_keys(tx, id, &keys, line).await?;
        Ok(Ok(if existing.is_some() {
            RowOutcome::Updated
        } else {
            RowOutcome::Created
        }))
    }

    async fn remember_keys(
        &self,
        tx: &mut Tx,
        id: ImportId,
        keys: &[String],
        line: i64,
    ) -> Result<(), Problem> {
        for k in keys {
            store::insert_import_key(tx, id, k, line)
                .await
                .map_err(db_err)?;
        }
        Ok(())
    }
}

/// Runs `contacts.import` jobs: one batch per run.
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
        match self.0.import_batch(org, p.import_id, p.from_byte).await {
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

/// Checks an upload is UTF-8 CSV and returns its header (BOM and spaces trimmed), or what is
/// wrong with it for the `file` field. Blocking: call it on the blocking pool.
fn read_header(file: &[u8]) -> Result<Vec<String>, String> {
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
    let mut rec = csv::StringRecord::new();
    match rdr.read_record(&mut rec) {
        Ok(true) => Ok(rec
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
            .collect()),
        Ok(false) => Err("has no header row".to_owned()),
        Err(e) => Err(format!("is not CSV: {e}")),
    }
}
