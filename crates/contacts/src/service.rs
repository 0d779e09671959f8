//! Contact use cases. Each write validates everything first (collecting every wrong field), then
//! changes the contact, its identities and its search entry in one transaction, then drops the
//! organisation's cached contacts (`contacts:{org}:`) and publishes its event carrying the
//! contact as the API shows it, so a workflow trigger needs no read-back.
//!
//! The same identity (kind + canonical value) is never stored twice in an organisation: the
//! unique key `(org_id, kind, value)` enforces it, and a clash answers 409 `identity_taken`
//! naming the contact that already has it.

use std::{collections::HashMap, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::types::Json;
use wamage_identity::{Principal, Role, Via};
use wamage_kernel::{Clock, Event, OrgId, Problem, Timestamp, validate::Validator};
use wamage_platform::{
    Db, Tx,
    blob::SharedBlobStore,
    bus::SharedBus,
    cache::{self, SharedCache},
    db::{is_unique_violation, violated_constraint},
    jobs::JobQueue,
};

use crate::{
    consent::{
        self, ConsentChannel, ConsentId, ConsentPurpose, ConsentSource, ConsentStatus,
        SendPermission,
    },
    http::{
        AttrDefIn, AttrDefOut, AttrDefPatch, BulkAction, BulkIn, BulkOut, ConsentIn,
        ConsentLedgerOut, ConsentOut, ConsentStateOut, ContactGroupOut, ContactIn,
        ContactListQuery, ContactOut, ContactPage, ContactPatch, ContactTagOut, ExportQuery,
        GroupIn, GroupOut, GroupPatch, IdentityIn, IdentityOut, SettingsOut, TagIn, TagOut,
        TagPatch,
    },
    model::{
        self, AttrDef, AttrType, ContactId, Country, DEFAULT_COUNTRY, GroupId, IdentityId,
        IdentityKind, MergeId, TagId,
    },
    store::{self, After, ContactRow, GroupRow, Link, ListFilter, Sort, TagRow},
};

mod audience;
mod avatar;
mod counts;
mod import;
mod inbound;
mod segments;

pub use audience::{
    AudienceSpec, AudienceWalk, Breakdown, SendChannel, SendContact, SkipReason, VarField,
    address_kinds,
};
pub use avatar::AVATAR_MAX_BYTES;
pub use counts::INDEX_AFTER_IMPORT_ROWS;
pub use import::{
    IMPORT_BATCH_ROWS, IMPORT_JOB, IMPORT_MAX_BYTES, IMPORT_RUN_BUDGET, IMPORT_WRITERS, ImportJob,
    ImportUpload,
};
pub use inbound::{IDENTITY_TAKEN, InboundResolution, ResolvedContact, SystemConsent};

pub const SOURCE: &str = "/wamage/contacts";
const CONTACT_TTL: Duration = Duration::from_secs(300);
/// A segment count by SQL at least this slow builds the organisation's count index.
pub const COUNT_INDEX_AFTER: Duration = Duration::from_millis(25);
pub const NAME_MAX: usize = 200;
pub const COMPANY_MAX: usize = 200;
pub const NOTES_MAX: usize = 10_000;
pub const MAX_IDENTITIES: usize = 50;
const LABEL_MAX: usize = 80;
const OPTIONS_MAX: usize = 100;
const TAG_NAME_MAX: usize = 80;
const GROUP_DESCRIPTION_MAX: usize = 1000;
pub const BULK_MAX: usize = 1000;

/// The contacts service, shared by the HTTP handlers.
#[derive(Debug)]
pub struct Contacts {
    db: Db,
    cache: SharedCache,
    bus: SharedBus,
    blobs: SharedBlobStore,
    jobs: JobQueue,
    clock: Clock,
    import_batch_rows: usize,
    import_run_budget: std::time::Duration,
    /// Batches of one import run in flight at once.
    import_writers: usize,
    /// Test hook: how long a batch waits before committing (see `hold_import_commits`).
    import_commit_hold: std::sync::atomic::AtomicU64,
    counts: std::sync::Arc<counts::CountIndexes>,
    count_index_after: Duration,
    count_index_on_import: bool,
}

/// Everything the contacts service needs from the platform.
pub struct ContactsDeps {
    pub db: Db,
    pub cache: SharedCache,
    pub bus: SharedBus,
    /// Where uploaded import files are kept.
    pub blobs: SharedBlobStore,
    /// Runs imports in the background.
    pub jobs: JobQueue,
    pub clock: Clock,
    /// Rows an import writes per transaction (`None`: [`IMPORT_BATCH_ROWS`]).
    pub import_batch_rows: Option<usize>,
    /// How long one run of an import job goes on taking batches (`None`:
    /// [`IMPORT_RUN_BUDGET`]; zero: one batch per run).
    pub import_run_budget: Option<std::time::Duration>,
    /// Batches of one import run in flight at once, each in its own transaction (`None`:
    /// [`IMPORT_WRITERS`]); see [`IMPORT_WRITERS`].
    pub import_writers: Option<usize>,
    /// A segment count or audience breakdown by SQL this slow gives the organisation an
    /// in-memory count index (`None`: [`COUNT_INDEX_AFTER`]; zero: after any count).
    pub count_index_after: Option<Duration>,
    /// Whether a large import builds its organisation's count index when it completes (in the
    /// processes that answer counts: the ones serving the API).
    pub count_index_on_import: bool,
}

fn db_err(e: sqlx::Error) -> Problem {
    Problem::internal(format_args!("database: {e}"))
}

fn contact_key(org: OrgId, id: ContactId) -> String {
    format!("contacts:{org}:contact:{id}")
}

fn identity_taken(field: &str, owner: Option<ContactId>) -> Problem {
    let p = Problem::conflict(
        "identity_taken",
        "This identity already belongs to a contact",
    );
    match owner {
        Some(owner) => p
            .with_detail(format!("contact_id: {owner}"))
            .with_field(field, format!("already belongs to contact {owner}")),
        None => p.with_field(field, "already belongs to another contact"),
    }
}

fn is_identity_clash(e: &sqlx::Error) -> bool {
    is_unique_violation(e)
        && violated_constraint(e).is_some_and(|c| {
            c.contains("contact_identities_org_kind_value_key") || c.contains("contact_identities.")
        })
}

/// Trims an optional text; empty means absent.
fn clean(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn defs_of(rows: Vec<store::AttrDefRow>) -> HashMap<String, AttrDef> {
    rows.into_iter()
        .map(|r| {
            let def = AttrDef {
                key: r.attr_key.clone(),
                attr_type: AttrType::from_db(&r.attr_type),
                options: r.options.0,
                required: r.required,
            };
            (r.attr_key, def)
        })
        .collect()
}

/// Checks the optional profile fields shared by create and update.
fn check_profile(
    v: &mut Validator,
    company: Option<&str>,
    language: Option<&str>,
    time_zone: Option<&str>,
    notes: Option<&str>,
) {
    if let Some(c) = company {
        v.length("company", c, 0, COMPANY_MAX);
    }
    if let Some(n) = notes {
        v.length("notes", n, 0, NOTES_MAX);
    }
    if let Some(l) = language.map(str::trim).filter(|l| !l.is_empty()) {
        v.check(
            model::is_language_tag(l),
            "language",
            "must be a language tag like en, pt-BR or zh-Hant",
        );
    }
    if let Some(tz) = time_zone.map(str::trim).filter(|t| !t.is_empty()) {
        v.check(
            model::is_time_zone(tz),
            "time_zone",
            "must be an IANA time zone name like Europe/Lisbon or America/New_York",
        );
    }
}

/// Checks attribute values against the definitions. `current` is the contact's present values
/// (None when creating); a `null` value removes the attribute. Returns the resulting object.
fn check_attributes(
    v: &mut Validator,
    defs: &HashMap<String, AttrDef>,
    given: Option<&Map<String, Value>>,
    current: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut out = current.cloned().unwrap_or_default();
    let empty = Map::new();
    let given = given.unwrap_or(&empty);
    let mut keys: Vec<&String> = given.keys().collect();
    keys.sort();
    for key in keys {
        let value = &given[key];
        let field = format!("attributes.{key}");
        let Some(def) = defs.get(key) else {
            v.error(&field, "is not a defined contact attribute");
            continue;
        };
        if value.is_null() {
            if def.required {
                v.error(&field, "is required");
            }
            out.remove(key);
            continue;
        }
        match def.check_value(value) {
            Ok(()) => {
                out.insert(key.clone(), value.clone());
            }
            Err(m) => v.error(&field, m),
        }
    }
    if current.is_none() {
        let mut required: Vec<&AttrDef> = defs.values().filter(|d| d.required).collect();
        required.sort_by(|a, b| a.key.cmp(&b.key));
        for d in required {
            if !out.contains_key(&d.key) {
                v.error(&format!("attributes.{}", d.key), "is required");
            }
        }
    }
    out
}

/// The words a contact is found by: its name, company, identities (phones also by their
/// digits with and without the country code) and text or choice attribute values.
fn search_words(
    c: &ContactRow,
    identities: &[store::IdentityRow],
    defs: &HashMap<String, AttrDef>,
) -> Vec<String> {
    let ids: Vec<(Option<IdentityKind>, &str)> = identities
        .iter()
        .map(|i| (IdentityKind::from_db(&i.kind), i.value.as_str()))
        .collect();
    search_words_of(
        &c.name,
        c.company.as_deref(),
        &ids,
        c.attributes.0.as_object(),
        defs,
    )
}

/// The search words of a contact's name, company, identities and searchable attributes.
fn search_words_of(
    name: &str,
    company: Option<&str>,
    identities: &[(Option<IdentityKind>, &str)],
    attributes: Option<&Map<String, Value>>,
    defs: &HashMap<String, AttrDef>,
) -> Vec<String> {
    let mut out: Vec<String> = model::words(name).collect();
    out.extend(company.map(model::words).into_iter().flatten());
    for (kind, value) in identities {
        if kind.is_some_and(IdentityKind::is_phone) {
            out.push(value.trim_start_matches('+').to_owned());
            out.extend(model::national_number(value));
        } else {
            out.extend(model::words(value));
        }
    }
    if let Some(attrs) = attributes {
        for (k, val) in attrs {
            if !defs.get(k).is_some_and(|d| d.attr_type.is_searchable()) {
                continue;
            }
            match val {
                Value::String(s) => out.extend(model::words(s)),
                Value::Array(items) => {
                    for s in items.iter().filter_map(Value::as_str) {
                        out.extend(model::words(s));
                    }
                }
                _ => {}
            }
        }
    }
    // PostgreSQL refuses lexemes past 2 KB; nobody types 100 characters of one word.
    for w in &mut out {
        if let Some((i, _)) = w.char_indices().nth(100) {
            w.truncate(i);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A contact's identities, tags and groups, as read alongside it.
#[derive(Default)]
struct Related {
    identities: Vec<store::IdentityRow>,
    tags: Vec<store::ContactTagRow>,
    groups: Vec<store::ContactGroupRow>,
}

fn to_out(c: ContactRow, rel: Related) -> ContactOut {
    ContactOut {
        id: c.id,
        name: c.name,
        company: c.company,
        language: c.language,
        time_zone: c.time_zone,
        notes: c.notes,
        favorite: c.favorite,
        blocked: c.blocked,
        attributes: match c.attributes.0 {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        identities: rel.identities.into_iter().map(IdentityOut::from).collect(),
        tags: rel
            .tags
            .into_iter()
            .map(|t| ContactTagOut {
                id: t.id,
                name: t.name,
                color: t.color,
            })
            .collect(),
        groups: rel
            .groups
            .into_iter()
            .map(|g| ContactGroupOut {
                id: g.id,
                name: g.name,
            })
            .collect(),
        avatar_url: avatar::avatar_url(c.avatar_key.as_deref()),
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// A position in a list, opaque to clients.
#[derive(Serialize, Deserialize)]
struct Cursor {
    s: String,
    k: Value,
    id: ContactId,
}

impl Sort {
    fn parse(s: Option<&str>) -> Result<Self, Problem> {
        match s.unwrap_or("name") {
            "name" => Ok(Self::Name),
            "-created_at" => Ok(Self::CreatedDesc),
            "-updated_at" => Ok(Self::UpdatedDesc),
            _ => Err(Problem::invalid_field(
                "sort",
                "must be one of name, -created_at, -updated_at",
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::CreatedDesc => "-created_at",
            Self::UpdatedDesc => "-updated_at",
        }
    }

    fn cursor(self, c: &ContactRow) -> String {
        let k = match self {
            Self::Name => json!(c.sort_name),
            Self::CreatedDesc => json!(c.created_at.millis()),
            Self::UpdatedDesc => json!(c.updated_at.millis()),
        };
        let cur = Cursor {
            s: self.as_str().to_owned(),
            k,
            id: c.id,
        };
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cur).unwrap_or_default())
    }

    fn after(self, cursor: &str) -> Result<After, Problem> {
        let bad = || Problem::invalid_field("cursor", "is not a cursor from this list and sort");
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
        let cur: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cur.s != self.as_str() {
            return Err(bad());
        }
        match (self, cur.k) {
            (Self::Name, Value::String(k)) => Ok(After::Name(k, cur.id)),
            (Self::CreatedDesc, Value::Number(n)) => n
                .as_i64()
                .map(|ms| After::CreatedAt(Timestamp::from_millis(ms), cur.id))
                .ok_or_else(bad),
            (Self::UpdatedDesc, Value::Number(n)) => n
                .as_i64()
                .map(|ms| After::UpdatedAt(Timestamp::from_millis(ms), cur.id))
                .ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

impl Contacts {
    pub fn new(deps: ContactsDeps) -> std::sync::Arc<Self> {
        let import_writers = deps.import_writers.unwrap_or(IMPORT_WRITERS).clamp(1, 16);
        std::sync::Arc::new(Self {
            db: deps.db,
            cache: deps.cache,
            bus: deps.bus,
            blobs: deps.blobs,
            jobs: deps.jobs,
            clock: deps.clock,
            import_batch_rows: deps
                .import_batch_rows
                .unwrap_or(IMPORT_BATCH_ROWS)
                .clamp(1, 50_000),
            import_run_budget: deps.import_run_budget.unwrap_or(IMPORT_RUN_BUDGET),
            import_writers,
            import_commit_hold: std::sync::atomic::AtomicU64::new(0),
            counts: std::sync::Arc::default(),
            count_index_after: deps.count_index_after.unwrap_or(COUNT_INDEX_AFTER),
            count_index_on_import: deps.count_index_on_import,
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    async fn publish(&self, org: OrgId, type_: &str, data: Value) {
        let event = Event::new(SOURCE, type_, org, self.now(), data);
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(error = %e, event_type = type_, "failed to publish event");
        }
    }

    /// Caches `contact` as read or just written (what [`Self::contacts_in`] serves).
    async fn remember(&self, org: OrgId, contact: &ContactOut) {
        let key = contact_key(org, contact.id);
        if let Err(e) = cache::set_json(self.cache.as_ref(), &key, contact, CONTACT_TTL).await {
            tracing::warn!(error = %e, key, "failed to cache contact");
        }
    }

    /// Drops every cached contact read of the organisation.
    async fn forget(&self, org: OrgId) {
        let prefix = format!("contacts:{org}:");
        if let Err(e) = self.cache.delete_prefix(&prefix).await {
            tracing::warn!(error = %e, prefix, "failed to invalidate cached contacts");
        }
    }

    async fn begin(&self) -> Result<Tx, Problem> {
        self.db.begin().await.map_err(db_err)
    }

    async fn defs(&self, org: OrgId) -> Result<HashMap<String, AttrDef>, Problem> {
        Ok(defs_of(
            store::attr_defs(&self.db, org).await.map_err(db_err)?,
        ))
    }

    async fn country(&self, org: OrgId) -> Result<Country, Problem> {
        let c = store::default_country(&self.db, org)
            .await
            .map_err(db_err)?
            .unwrap_or_else(|| DEFAULT_COUNTRY.to_owned());
        Country::parse(&c).map_err(Problem::internal)
    }

    /// Rewrites the contact's search entry from what is in the transaction now.
    async fn reindex(&self, tx: &mut Tx, org: OrgId, id: ContactId) -> Result<(), Problem> {
        let Some(c) = store::get_contact_tx(tx, org, id).await.map_err(db_err)? else {
            return Ok(());
        };
        let identities = store::identities_of_tx(tx, org, id).await.map_err(db_err)?;
        let defs = defs_of(store::attr_defs_tx(tx, org).await.map_err(db_err)?);
        let words = search_words(&c, &identities, &defs);
        store::set_search_words(tx, id, &words)
            .await
            .map_err(db_err)
    }

    /// Reads a contact with its identities inside a transaction.
    async fn load_tx(&self, tx: &mut Tx, org: OrgId, id: ContactId) -> Result<ContactOut, Problem> {
        let c = store::get_contact_tx(tx, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let rel = Related {
            identities: store::identities_of_tx(tx, org, id).await.map_err(db_err)?,
            tags: store::tags_of_tx(tx, org, id).await.map_err(db_err)?,
            groups: store::groups_of_tx(tx, org, id).await.map_err(db_err)?,
        };
        Ok(to_out(c, rel))
    }

    /// The identities, tags and groups of these contacts.
    async fn related(
        &self,
        org: OrgId,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, Related>, Problem> {
        let mut out: HashMap<ContactId, Related> = HashMap::new();
        for i in store::identities_of(&self.db, org, ids)
            .await
            .map_err(db_err)?
        {
            out.entry(i.contact_id).or_default().identities.push(i);
        }
        for t in store::tags_of(&self.db, org, ids).await.map_err(db_err)? {
            out.entry(t.contact_id).or_default().tags.push(t);
        }
        for g in store::groups_of(&self.db, org, ids).await.map_err(db_err)? {
            out.entry(g.contact_id).or_default().groups.push(g);
        }
        Ok(out)
    }

    // ---- settings -----------------------------------------------------------------------------

    pub async fn settings(&self, who: &Principal) -> Result<SettingsOut, Problem> {
        Ok(SettingsOut {
            default_country: self.country(who.org_id).await?.as_str().to_owned(),
        })
    }

    pub async fn set_settings(
        &self,
        who: &Principal,
        default_country: &str,
    ) -> Result<SettingsOut, Problem> {
        let country = Country::parse(default_country)
            .map_err(|m| Problem::invalid_field("default_country", m))?;
        store::set_default_country(&self.db, who.org_id, country.as_str(), self.now())
            .await
            .map_err(db_err)?;
        self.forget(who.org_id).await;
        Ok(SettingsOut {
            default_country: country.as_str().to_owned(),
        })
    }

    // ---- attribute definitions -------------------------------------------------------------

    pub async fn attribute_defs(&self, who: &Principal) -> Result<Vec<AttrDefOut>, Problem> {
        Ok(store::attr_defs(&self.db, who.org_id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(AttrDefOut::from)
            .collect())
    }

    fn check_def(v: &mut Validator, label: &str, attr_type: AttrType, options: &[String]) {
        v.length("label", label, 1, LABEL_MAX);
        if attr_type.has_options() {
            v.check(
                (1..=OPTIONS_MAX).contains(&options.len()),
                "options",
                format!("must list 1 to {OPTIONS_MAX} options for a choice attribute"),
            );
        } else {
            v.check(
                options.is_empty(),
                "options",
                "must be empty: only choice attributes have options",
            );
        }
        for (i, o) in options.iter().enumerate() {
            let field = format!("options[{i}]");
            v.length(&field, o, 1, LABEL_MAX);
            if options[..i].contains(o) {
                v.error(&field, "is listed twice");
            }
        }
    }

    pub async fn create_attribute_def(
        &self,
        who: &Principal,
        b: &AttrDefIn,
    ) -> Result<AttrDefOut, Problem> {
        let mut v = Validator::new();
        v.check(
            model::is_attr_key(&b.key),
            "key",
            "must be snake_case: a lower-case letter, then letters, digits or _, at most 40",
        );
        let options: Vec<String> = b.options.iter().map(|o| o.trim().to_owned()).collect();
        Self::check_def(&mut v, &b.label, b.attr_type, &options);
        v.finish()?;
        let new = store::NewAttrDef {
            key: &b.key,
            label: b.label.trim(),
            attr_type: b.attr_type.as_str(),
            options: &options,
            required: b.required,
        };
        store::insert_attr_def(&self.db, who.org_id, &new, self.now())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Problem::conflict(
                        "attribute_key_taken",
                        "An attribute with this key already exists",
                    )
                    .with_field("key", "is already used by another attribute")
                } else {
                    db_err(e)
                }
            })?;
        self.forget(who.org_id).await;
        self.attribute_def(who.org_id, &b.key).await
    }

    async fn attribute_def(&self, org: OrgId, key: &str) -> Result<AttrDefOut, Problem> {
        store::attr_defs(&self.db, org)
            .await
            .map_err(db_err)?
            .into_iter()
            .find(|d| d.attr_key == key)
            .map(AttrDefOut::from)
            .ok_or_else(|| Problem::not_found("contact attribute"))
    }

    pub async fn update_attribute_def(
        &self,
        who: &Principal,
        key: &str,
        b: &AttrDefPatch,
    ) -> Result<AttrDefOut, Problem> {
        let current = self.attribute_def(who.org_id, key).await?;
        let label = b.label.clone().unwrap_or(current.label);
        let options: Vec<String> = b
            .options
            .as_ref()
            .map(|o| o.iter().map(|s| s.trim().to_owned()).collect())
            .unwrap_or(current.options);
        let mut v = Validator::new();
        Self::check_def(&mut v, &label, current.attr_type, &options);
        v.finish()?;
        let mut tx = self.begin().await?;
        let found = store::update_attr_def(
            &mut tx,
            who.org_id,
            key,
            label.trim(),
            &options,
            b.required.unwrap_or(current.required),
            self.now(),
        )
        .await
        .map_err(db_err)?;
        if !found {
            return Err(Problem::not_found("contact attribute"));
        }
        tx.commit().await.map_err(db_err)?;
        self.forget(who.org_id).await;
        self.attribute_def(who.org_id, key).await
    }

    /// Deletes a definition and the values contacts hold for it (their search entries follow).
    pub async fn delete_attribute_def(&self, who: &Principal, key: &str) -> Result<(), Problem> {
        let org = who.org_id;
        let mut tx = self.begin().await?;
        if !store::delete_attr_def(&mut tx, org, key)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("contact attribute"));
        }
        let affected = store::contacts_with_attr(&mut tx, org, key)
            .await
            .map_err(db_err)?;
        let now = self.now();
        for mut c in affected {
            if let Value::Object(m) = &mut c.attributes.0 {
                m.remove(key);
            }
            c.updated_at = now;
            store::update_contact(&mut tx, org, &c)
                .await
                .map_err(db_err)?;
            self.reindex(&mut tx, org, c.id).await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.forget(org).await;
        Ok(())
    }

    // ---- contacts -------------------------------------------------------------------------------

    /// Parses the identities of a request; field errors go to `v` under `{prefix}[i]`.
    fn parse_identities(
        v: &mut Validator,
        prefix: &str,
        given: &[IdentityIn],
        country: Country,
    ) -> Vec<(IdentityKind, String, String)> {
        let mut out: Vec<(IdentityKind, String, String)> = Vec::new();
        if given.len() > MAX_IDENTITIES {
            v.error(
                prefix,
                format!("must list at most {MAX_IDENTITIES} identities"),
            );
            return out;
        }
        for (i, ident) in given.iter().enumerate() {
            let field = format!("{prefix}[{i}].value");
            match model::parse_identity(ident.kind, &ident.value, country) {
                Ok(value) => {
                    if out
                        .iter()
                        .any(|(k, val, _)| *k == ident.kind && *val == value)
                    {
                        v.error(&field, "is listed twice");
                    } else {
                        out.push((ident.kind, value, field));
                    }
                }
                Err(m) => v.error(&field, m),
            }
        }
        out
    }

    /// Inserts identities of a contact in `tx`; a clash answers 409 naming the other contact.
    async fn insert_identities(
        &self,
        tx: &mut Tx,
        org: OrgId,
        contact: ContactId,
        identities: &[(IdentityKind, String, String)],
    ) -> Result<Vec<IdentityId>, Problem> {
        let now = self.now();
        let mut ids = Vec::new();
        for (kind, value, field) in identities {
            if let Some(owner) = store::identity_owner_tx(tx, org, kind.as_str(), value)
                .await
                .map_err(db_err)?
            {
                return Err(identity_taken(field, Some(owner)));
            }
            let id = IdentityId::new();
            store::insert_identity(tx, org, contact, id, kind.as_str(), value, now)
                .await
                .map_err(|e| {
                    if is_identity_clash(&e) {
                        identity_taken(field, None)
                    } else {
                        db_err(e)
                    }
                })?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// After a lost race on the identity key (PostgreSQL, concurrent writers), name the owner.
    async fn name_owner(
        &self,
        org: OrgId,
        p: Problem,
        given: &[(IdentityKind, String, String)],
    ) -> Problem {
        if p.code != "identity_taken" || p.detail.is_some() {
            return p;
        }
        for (kind, value, field) in given {
            if let Ok(Some(owner)) =
                store::identity_owner(&self.db, org, kind.as_str(), value).await
                && p.errors.iter().any(|e| &e.field == field)
            {
                return identity_taken(field, Some(owner));
            }
        }
        p
    }

    pub async fn create_contact(
        &self,
        who: &Principal,
        b: &ContactIn,
    ) -> Result<ContactOut, Problem> {
        let org = who.org_id;
        let (defs, country) = (self.defs(org).await?, self.country(org).await?);
        let mut v = Validator::new();
        v.length("name", &b.name, 1, NAME_MAX);
        check_profile(
            &mut v,
            b.company.as_deref(),
            b.language.as_deref(),
            b.time_zone.as_deref(),
            b.notes.as_deref(),
        );
        let attributes = check_attributes(&mut v, &defs, b.attributes.as_ref(), None);
        let identities = Self::parse_identities(&mut v, "identities", &b.identities, country);
        v.finish()?;

        let now = self.now();
        let name = b.name.trim().to_owned();
        let row = ContactRow {
            id: ContactId::new(),
            sort_name: name.to_lowercase(),
            name,
            company: clean(b.company.as_deref()),
            language: clean(b.language.as_deref()),
            time_zone: clean(b.time_zone.as_deref()),
            notes: clean(b.notes.as_deref()),
            favorite: b.favorite,
            blocked: b.blocked,
            attributes: Json(Value::Object(attributes)),
            avatar_key: None,
            created_at: now,
            updated_at: now,
        };
        let result: Result<ContactOut, Problem> = async {
            let mut tx = self.begin().await?;
            store::insert_contact(&mut tx, org, &row)
                .await
                .map_err(db_err)?;
            self.insert_identities(&mut tx, org, row.id, &identities)
                .await?;
            self.reindex(&mut tx, org, row.id).await?;
            let out = self.load_tx(&mut tx, org, row.id).await?;
            tx.commit().await.map_err(|e| {
                if is_identity_clash(&e) {
                    identity_taken("identities", None)
                } else {
                    db_err(e)
                }
            })?;
            Ok(out)
        }
        .await;
        let out = match result {
            Ok(out) => out,
            Err(p) => return Err(self.name_owner(org, p, &identities).await),
        };
        self.forget(org).await;
        self.publish(org, "wamage.contact.created", json!({ "contact": out }))
            .await;
        Ok(out)
    }

    /// A contact with its identities (served from the cache when warm).
    pub async fn contact(&self, who: &Principal, id: ContactId) -> Result<ContactOut, Problem> {
        self.contact_in(who.org_id, id).await
    }

    /// A contact of `org` as the API shows it, for other domains (the inbox's side panel and
    /// conversation cards); served from the cache when warm. 404 when `org` has no such contact.
    pub async fn contact_in(&self, org: OrgId, id: ContactId) -> Result<ContactOut, Problem> {
        let key = contact_key(org, id);
        match cache::get_json::<ContactOut>(self.cache.as_ref(), &key).await {
            Ok(Some(c)) => return Ok(c),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, key, "failed to read cached contact"),
        }
        let c = store::get_contact(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let out = to_out(
            c,
            self.related(org, &[id])
                .await?
                .remove(&id)
                .unwrap_or_default(),
        );
        self.remember(org, &out).await;
        Ok(out)
    }

    /// [`Self::contact_in`] for many contacts: the cached ones from the cache, the others read
    /// together (three queries) and cached. Contacts not in `org` are left out.
    pub async fn contacts_in(
        &self,
        org: OrgId,
        ids: &[ContactId],
    ) -> Result<HashMap<ContactId, ContactOut>, Problem> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            if out.contains_key(id) || missing.contains(id) {
                continue;
            }
            let key = contact_key(org, *id);
            match cache::get_json::<ContactOut>(self.cache.as_ref(), &key).await {
                Ok(Some(c)) => {
                    out.insert(*id, c);
                }
                Ok(None) => missing.push(*id),
                Err(e) => {
                    tracing::warn!(error = %e, key, "failed to read cached contact");
                    missing.push(*id);
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let rows = store::get_contacts(&self.db, org, &missing)
            .await
            .map_err(db_err)?;
        let mut related = self.related(org, &missing).await?;
        for c in rows {
            let id = c.id;
            let contact = to_out(c, related.remove(&id).unwrap_or_default());
            self.remember(org, &contact).await;
            out.insert(id, contact);
        }
        Ok(out)
    }

    pub async fn update_contact(
        &self,
        who: &Principal,
        id: ContactId,
        b: &ContactPatch,
    ) -> Result<ContactOut, Problem> {
        let org = who.org_id;
        let defs = self.defs(org).await?;
        let mut tx = self.begin().await?;
        let mut row = store::get_contact_tx(&mut tx, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let mut v = Validator::new();
        if let Some(n) = &b.name {
            v.length("name", n, 1, NAME_MAX);
        }
        check_profile(
            &mut v,
            b.company.as_ref().and_then(|c| c.as_deref()),
            b.language.as_ref().and_then(|c| c.as_deref()),
            b.time_zone.as_ref().and_then(|c| c.as_deref()),
            b.notes.as_ref().and_then(|c| c.as_deref()),
        );
        let current = match &row.attributes.0 {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let attributes = check_attributes(&mut v, &defs, b.attributes.as_ref(), Some(&current));
        v.finish()?;

        let mut changed: Vec<&str> = Vec::new();
        if let Some(n) = &b.name {
            let n = n.trim().to_owned();
            if n != row.name {
                changed.push("name");
                row.sort_name = n.to_lowercase();
                row.name = n;
            }
        }
        let mut set =
            |field: &'static str, slot: &mut Option<String>, given: &Option<Option<String>>| {
                if let Some(g) = given {
                    let g = clean(g.as_deref());
                    if *slot != g {
                        changed.push(field);
                        *slot = g;
                    }
                }
            };
        set("company", &mut row.company, &b.company);
        set("language", &mut row.language, &b.language);
        set("time_zone", &mut row.time_zone, &b.time_zone);
        set("notes", &mut row.notes, &b.notes);
        if let Some(f) = b.favorite
            && f != row.favorite
        {
            changed.push("favorite");
            row.favorite = f;
        }
        if let Some(bl) = b.blocked
            && bl != row.blocked
        {
            changed.push("blocked");
            row.blocked = bl;
        }
        if attributes != current {
            changed.push("attributes");
            row.attributes = Json(Value::Object(attributes));
        }
        if changed.is_empty() {
            // Nothing to write: no new `updated_at`, no event.
            drop(tx);
            return self.contact(who, id).await;
        }
        row.updated_at = self.now();
        store::update_contact(&mut tx, org, &row)
            .await
            .map_err(db_err)?;
        self.reindex(&mut tx, org, id).await?;
        let out = self.load_tx(&mut tx, org, id).await?;
        tx.commit().await.map_err(db_err)?;
        self.forget(org).await;
        self.publish(
            org,
            "wamage.contact.updated",
            json!({ "contact": out, "changed": changed }),
        )
        .await;
        Ok(out)
    }

    pub async fn delete_contact(&self, who: &Principal, id: ContactId) -> Result<(), Problem> {
        let org = who.org_id;
        let mut tx = self.begin().await?;
        let out = self.load_tx(&mut tx, org, id).await?;
        let photo = store::avatar_key(&mut tx, org, id).await.map_err(db_err)?;
        if !store::delete_contact(&mut tx, org, id)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("contact"));
        }
        tx.commit().await.map_err(db_err)?;
        if let Some(k) = photo {
            self.drop_blob(&k).await;
        }
        self.forget(org).await;
        self.publish(org, "wamage.contact.deleted", json!({ "contact": out }))
            .await;
        Ok(())
    }

    pub async fn add_identity(
        &self,
        who: &Principal,
        id: ContactId,
        b: &IdentityIn,
    ) -> Result<IdentityOut, Problem> {
        let org = who.org_id;
        let country = self.country(org).await?;
        let mut v = Validator::new();
        let parsed = Self::parse_identities(&mut v, "identity", std::slice::from_ref(b), country);
        // A single identity: name the field `value`, as the request body does.
        let parsed: Vec<_> = parsed
            .into_iter()
            .map(|(k, val, _)| (k, val, "value".to_owned()))
            .collect();
        if let Err(mut p) = v.finish() {
            for e in &mut p.errors {
                e.field = "value".to_owned();
            }
            return Err(p);
        }
        let result: Result<(ContactOut, IdentityId), Problem> = async {
            let mut tx = self.begin().await?;
            store::get_contact_tx(&mut tx, org, id)
                .await
                .map_err(db_err)?
                .ok_or_else(|| Problem::not_found("contact"))?;
            let ids = self.insert_identities(&mut tx, org, id, &parsed).await?;
            store::touch_contact(&mut tx, org, id, self.now())
                .await
                .map_err(db_err)?;
            self.reindex(&mut tx, org, id).await?;
            let out = self.load_tx(&mut tx, org, id).await?;
            tx.commit().await.map_err(db_err)?;
            Ok((out, ids[0]))
        }
        .await;
        let (out, new_id) = match result {
            Ok(r) => r,
            Err(p) => return Err(self.name_owner(org, p, &parsed).await),
        };
        self.forget(org).await;
        let created = out
            .identities
            .iter()
            .find(|i| i.id == new_id)
            .cloned()
            .ok_or_else(|| Problem::internal("identity vanished after insert"))?;
        self.publish(
            org,
            "wamage.contact.updated",
            json!({ "contact": out, "changed": ["identities"] }),
        )
        .await;
        Ok(created)
    }

    pub async fn remove_identity(
        &self,
        who: &Principal,
        id: ContactId,
        identity: IdentityId,
    ) -> Result<(), Problem> {
        let org = who.org_id;
        let mut tx = self.begin().await?;
        if !store::delete_identity(&mut tx, org, id, identity)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("identity"));
        }
        store::touch_contact(&mut tx, org, id, self.now())
            .await
            .map_err(db_err)?;
        self.reindex(&mut tx, org, id).await?;
        let out = self.load_tx(&mut tx, org, id).await?;
        tx.commit().await.map_err(db_err)?;
        self.forget(org).await;
        self.publish(
            org,
            "wamage.contact.updated",
            json!({ "contact": out, "changed": ["identities"] }),
        )
        .await;
        Ok(())
    }

    /// A page of contacts: search words (prefixes, all must match), flags, sort and keyset cursor.
    pub async fn list(
        &self,
        who: &Principal,
        q: &ContactListQuery,
    ) -> Result<ContactPage, Problem> {
        let limit = match q.limit {
            None => wamage_kernel::paging::DEFAULT_LIMIT,
            Some(n) if (1..=wamage_kernel::paging::MAX_LIMIT).contains(&n) => n,
            Some(_) => {
                return Err(Problem::invalid_field(
                    "limit",
                    format!("must be between 1 and {}", wamage_kernel::paging::MAX_LIMIT),
                ));
            }
        };
        let sort = Sort::parse(q.sort.as_deref())?;
        let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) => Some(sort.after(c)?),
            None => None,
        };
        let words = match q.q.as_deref() {
            Some(s) if s.chars().count() > 200 => {
                return Err(Problem::invalid_field(
                    "q",
                    "must be at most 200 characters",
                ));
            }
            Some(s) => model::query_words(s),
            None => Vec::new(),
        };
        let segment = self.list_segment(who.org_id, q.segment).await?;
        let filter = ListFilter {
            words,
            favorite: q.favorite,
            blocked: q.blocked,
            tag: q.tag,
            group: q.group,
            segment,
            sort,
            after,
            fetch: i64::from(limit) + 1,
        };
        let mut rows = store::list_contacts(&self.db, who.org_id, &filter)
            .await
            .map_err(db_err)?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| sort.cursor(r))
        } else {
            None
        };
        let ids: Vec<ContactId> = rows.iter().map(|r| r.id).collect();
        let mut by_contact = self.related(who.org_id, &ids).await?;
        let items = rows
            .into_iter()
            .map(|r| {
                let idents = by_contact.remove(&r.id).unwrap_or_default();
                to_out(r, idents)
            })
            .collect();
        Ok(ContactPage { items, next_cursor })
    }
}

/// One page of an export, in rows.
const EXPORT_BATCH: i64 = 500;

/// A cell for an attribute value: text as is, lists joined with `; `.
fn attr_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
    }
}

/// What an export reads, page after page.
struct ExportState {
    contacts: std::sync::Arc<Contacts>,
    org: OrgId,
    words: Vec<String>,
    q: ExportQuery,
    segment: Option<crate::segment::SegmentFilter>,
    keys: Vec<String>,
    /// `None` once the last page was sent.
    after: Option<Option<After>>,
}

/// CSV export of a filtered view.
impl Contacts {
    /// The contacts of the filtered view (`q`, `tag`, `group`, `segment`, `favorite`,
    /// `blocked`, as the list takes them) as CSV: `id, name, company, language, time_zone,
    /// phones, emails, tags, groups`, one column per custom attribute (headed by its key),
    /// `created_at`. Lists inside a cell are joined with `; `. Every cell that a spreadsheet
    /// would run as a formula is neutralised with a leading `'` (the phones column holds only
    /// E.164 numbers we wrote).
    ///
    /// Streamed: the header and the first keyset page of 500 are read before answering (so a
    /// bad filter or a database error is still a problem response), the rest page by page as
    /// the client reads. Returns the file name (`contacts-YYYY-MM-DD.csv`) and the chunks.
    pub async fn export_csv(
        self: std::sync::Arc<Self>,
        who: &Principal,
        q: ExportQuery,
    ) -> Result<
        (
            String,
            impl futures::Stream<Item = Result<String, Problem>> + Send + 'static,
        ),
        Problem,
    > {
        let org = who.org_id;
        let words = match q.q.as_deref() {
            Some(s) if s.chars().count() > 200 => {
                return Err(Problem::invalid_field(
                    "q",
                    "must be at most 200 characters",
                ));
            }
            Some(s) => model::query_words(s),
            None => Vec::new(),
        };
        let segment = self.list_segment(org, q.segment).await?;
        let mut keys: Vec<String> = self.defs(org).await?.into_keys().collect();
        keys.sort();
        let mut first = String::new();
        let mut header: Vec<String> = [
            "id",
            "name",
            "company",
            "language",
            "time_zone",
            "phones",
            "emails",
            "tags",
            "groups",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        header.extend(keys.iter().cloned());
        header.push("created_at".to_owned());
        crate::csvfmt::push_record(&mut first, &header);
        let name = format!(
            "contacts-{}.csv",
            self.now().to_datetime().format("%Y-%m-%d")
        );
        let mut state = ExportState {
            contacts: self,
            org,
            words,
            q,
            segment,
            keys,
            after: Some(None),
        };
        first.push_str(&state.next_page().await?);
        let rest = futures::stream::unfold(state, |mut st| async move {
            st.after.as_ref()?;
            match st.next_page().await {
                Ok(chunk) => Some((Ok(chunk), st)),
                Err(e) => {
                    st.after = None;
                    Some((Err(e), st))
                }
            }
        });
        Ok((
            name,
            // Fused: the compression layer polls once more after the end, and `unfold`
            // panics if polled after it finished.
            futures::StreamExt::fuse(futures::StreamExt::chain(
                futures::stream::once(async { Ok(first) }),
                rest,
            )),
        ))
    }
}

impl ExportState {
    /// The next page of rows as CSV; the last page sets `after` to `None`.
    async fn next_page(&mut self) -> Result<String, Problem> {
        let Some(after) = self.after.take() else {
            return Ok(String::new());
        };
        let filter = ListFilter {
            words: self.words.clone(),
            favorite: self.q.favorite,
            blocked: self.q.blocked,
            tag: self.q.tag,
            group: self.q.group,
            segment: self.segment.clone(),
            sort: Sort::Name,
            after,
            fetch: EXPORT_BATCH,
        };
        let c = &self.contacts;
        let rows = store::list_contacts(&c.db, self.org, &filter)
            .await
            .map_err(db_err)?;
        let ids: Vec<ContactId> = rows.iter().map(|r| r.id).collect();
        let mut rel = c.related(self.org, &ids).await?;
        let mut out = String::new();
        for r in &rows {
            let x = rel.remove(&r.id).unwrap_or_default();
            let of = |pred: fn(IdentityKind) -> bool| {
                x.identities
                    .iter()
                    .filter(|i| IdentityKind::from_db(&i.kind).is_some_and(pred))
                    .map(|i| i.value.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let attrs = match &r.attributes.0 {
                Value::Object(m) => Some(m),
                _ => None,
            };
            let mut cells = vec![
                r.id.to_string(),
                r.name.clone(),
                r.company.clone().unwrap_or_default(),
                r.language.clone().unwrap_or_default(),
                r.time_zone.clone().unwrap_or_default(),
                of(IdentityKind::is_phone),
                of(|k| k == IdentityKind::Email),
                x.tags
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                x.groups
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ];
            cells.extend(
                self.keys
                    .iter()
                    .map(|k| attr_cell(attrs.and_then(|m| m.get(k)))),
            );
            cells.push(r.created_at.to_rfc3339());
            crate::csvfmt::push_record_except(&mut out, &cells, Some(5));
        }
        self.after = match rows.last() {
            Some(last) if rows.len() as i64 == EXPORT_BATCH => {
                Some(Some(After::Name(last.sort_name.clone(), last.id)))
            }
            _ => None,
        };
        Ok(out)
    }
}

fn tag_name_taken() -> Problem {
    Problem::conflict("tag_name_taken", "A tag with this name already exists")
        .with_field("name", "is already used by another tag")
}

fn group_name_taken() -> Problem {
    Problem::conflict("group_name_taken", "A group with this name already exists")
        .with_field("name", "is already used by another group")
}

/// Drops repeated ids, keeping the first of each.
fn unique<T: Copy + Eq + std::hash::Hash>(ids: &[T]) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().copied().filter(|i| seen.insert(*i)).collect()
}

/// Tags, groups and bulk membership. Names are unique per organisation ignoring case; deleting a
/// tag or group drops its memberships, never its contacts.
impl Contacts {
    pub async fn tags(&self, who: &Principal) -> Result<Vec<TagOut>, Problem> {
        Ok(store::tags(&self.db, who.org_id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(TagOut::from)
            .collect())
    }

    fn check_tag(v: &mut Validator, name: &str, color: &str) {
        v.length("name", name, 1, TAG_NAME_MAX);
        v.check(
            model::is_hex_color(color.trim()),
            "color",
            "must be a colour written #RRGGBB, like #1f77b4",
        );
    }

    pub async fn create_tag(&self, who: &Principal, b: &TagIn) -> Result<TagOut, Problem> {
        let mut v = Validator::new();
        Self::check_tag(&mut v, &b.name, &b.color);
        v.finish()?;
        let now = self.now();
        let row = TagRow {
            id: TagId::new(),
            name: b.name.trim().to_owned(),
            color: b.color.trim().to_lowercase(),
            created_at: now,
            updated_at: now,
        };
        store::insert_tag(&self.db, who.org_id, &row)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    tag_name_taken()
                } else {
                    db_err(e)
                }
            })?;
        Ok(TagOut::from(row))
    }

    pub async fn update_tag(
        &self,
        who: &Principal,
        id: TagId,
        b: &TagPatch,
    ) -> Result<TagOut, Problem> {
        let org = who.org_id;
        let mut row = store::get_tag(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("tag"))?;
        let name = b.name.as_deref().unwrap_or(&row.name).to_owned();
        let color = b.color.as_deref().unwrap_or(&row.color).to_owned();
        let mut v = Validator::new();
        Self::check_tag(&mut v, &name, &color);
        v.finish()?;
        row.name = name.trim().to_owned();
        row.color = color.trim().to_lowercase();
        row.updated_at = self.now();
        let found = store::update_tag(&self.db, org, &row).await.map_err(|e| {
            if is_unique_violation(&e) {
                tag_name_taken()
            } else {
                db_err(e)
            }
        })?;
        if !found {
            return Err(Problem::not_found("tag"));
        }
        // Contacts show the tag's name and colour.
        self.forget(org).await;
        Ok(TagOut::from(row))
    }

    pub async fn delete_tag(&self, who: &Principal, id: TagId) -> Result<(), Problem> {
        let mut tx = self.begin().await?;
        if !store::delete_tag(&mut tx, who.org_id, id)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("tag"));
        }
        tx.commit().await.map_err(db_err)?;
        self.forget(who.org_id).await;
        Ok(())
    }

    pub async fn groups(&self, who: &Principal) -> Result<Vec<GroupOut>, Problem> {
        Ok(store::groups(&self.db, who.org_id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(GroupOut::from)
            .collect())
    }

    pub async fn group(&self, who: &Principal, id: GroupId) -> Result<GroupOut, Problem> {
        store::get_group(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .map(GroupOut::from)
            .ok_or_else(|| Problem::not_found("group"))
    }

    fn check_group(v: &mut Validator, name: &str, description: Option<&str>) {
        v.length("name", name, 1, TAG_NAME_MAX);
        if let Some(d) = description {
            v.length("description", d, 0, GROUP_DESCRIPTION_MAX);
        }
    }

    pub async fn create_group(&self, who: &Principal, b: &GroupIn) -> Result<GroupOut, Problem> {
        let mut v = Validator::new();
        Self::check_group(&mut v, &b.name, b.description.as_deref());
        v.finish()?;
        let now = self.now();
        let row = GroupRow {
            id: GroupId::new(),
            name: b.name.trim().to_owned(),
            description: clean(b.description.as_deref()),
            member_count: 0,
            created_at: now,
            updated_at: now,
        };
        store::insert_group(&self.db, who.org_id, &row)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    group_name_taken()
                } else {
                    db_err(e)
                }
            })?;
        Ok(GroupOut::from(row))
    }

    pub async fn update_group(
        &self,
        who: &Principal,
        id: GroupId,
        b: &GroupPatch,
    ) -> Result<GroupOut, Problem> {
        let org = who.org_id;
        let mut row = store::get_group(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("group"))?;
        let name = b.name.as_deref().unwrap_or(&row.name).to_owned();
        let mut v = Validator::new();
        Self::check_group(
            &mut v,
            &name,
            b.description.as_ref().and_then(|d| d.as_deref()),
        );
        v.finish()?;
        row.name = name.trim().to_owned();
        if let Some(d) = &b.description {
            row.description = clean(d.as_deref());
        }
        row.updated_at = self.now();
        let found = store::update_group(&self.db, org, &row)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    group_name_taken()
                } else {
                    db_err(e)
                }
            })?;
        if !found {
            return Err(Problem::not_found("group"));
        }
        self.forget(org).await;
        self.group(who, id).await
    }

    pub async fn delete_group(&self, who: &Principal, id: GroupId) -> Result<(), Problem> {
        let mut tx = self.begin().await?;
        if !store::delete_group(&mut tx, who.org_id, id)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("group"));
        }
        tx.commit().await.map_err(db_err)?;
        self.forget(who.org_id).await;
        Ok(())
    }

    /// One action on many contacts, in one transaction. Every id must be of the caller's
    /// organisation, or nothing is written (404). Publishes one event per contact that changed.
    pub async fn bulk(&self, who: &Principal, b: &BulkIn) -> Result<BulkOut, Problem> {
        let org = who.org_id;
        // The one role check outside an extractor: which role is needed depends on the body.
        if b.action == BulkAction::Delete && who.role < Role::Admin {
            return Err(Problem::forbidden(
                "Deleting contacts needs the admin or owner role",
            ));
        }
        let contacts = unique(&b.contact_ids);
        let tags = unique(b.tag_ids.as_deref().unwrap_or_default());
        let groups = unique(b.group_ids.as_deref().unwrap_or_default());
        let mut v = Validator::new();
        v.check(
            (1..=BULK_MAX).contains(&contacts.len()),
            "contact_ids",
            format!("must list 1 to {BULK_MAX} contacts"),
        );
        let (wants_tags, wants_groups) = match b.action {
            BulkAction::AddTags | BulkAction::RemoveTags => (true, false),
            BulkAction::AddToGroups | BulkAction::RemoveFromGroups => (false, true),
            BulkAction::Delete => (false, false),
        };
        let check_list = |v: &mut Validator, field: &str, given: bool, n: usize, wanted: bool| {
            if wanted {
                v.check(
                    (1..=100).contains(&n),
                    field,
                    "must list 1 to 100 ids for this action",
                );
            } else {
                v.check(!given, field, "does not apply to this action");
            }
        };
        check_list(
            &mut v,
            "tag_ids",
            b.tag_ids.is_some(),
            tags.len(),
            wants_tags,
        );
        check_list(
            &mut v,
            "group_ids",
            b.group_ids.is_some(),
            groups.len(),
            wants_groups,
        );
        v.finish()?;

        let mut tx = self.begin().await?;
        let known = |n: i64, len: usize| usize::try_from(n).is_ok_and(|n| n == len);
        let n = store::count_ids(&mut tx, org, "contacts", &contacts)
            .await
            .map_err(db_err)?;
        if !known(n, contacts.len()) {
            return Err(Problem::not_found("contact"));
        }
        if wants_tags {
            let n = store::count_ids(&mut tx, org, "contact_tags", &tags)
                .await
                .map_err(db_err)?;
            if !known(n, tags.len()) {
                return Err(Problem::not_found("tag"));
            }
        }
        if wants_groups {
            let n = store::count_ids(&mut tx, org, "contact_groups", &groups)
                .await
                .map_err(db_err)?;
            if !known(n, groups.len()) {
                return Err(Problem::not_found("group"));
            }
        }
        let now = self.now();
        let mut outs = Vec::new();
        let mut photos = Vec::new();
        for &c in &contacts {
            let n = match b.action {
                BulkAction::AddTags => store::add_links(&mut tx, org, Link::Tag, c, &tags).await,
                BulkAction::RemoveTags => {
                    store::remove_links(&mut tx, org, Link::Tag, c, &tags).await
                }
                BulkAction::AddToGroups => {
                    store::add_links(&mut tx, org, Link::Group, c, &groups).await
                }
                BulkAction::RemoveFromGroups => {
                    store::remove_links(&mut tx, org, Link::Group, c, &groups).await
                }
                BulkAction::Delete => {
                    let out = self.load_tx(&mut tx, org, c).await?;
                    photos.extend(store::avatar_key(&mut tx, org, c).await.map_err(db_err)?);
                    store::delete_contact(&mut tx, org, c)
                        .await
                        .map_err(db_err)?;
                    outs.push(out);
                    continue;
                }
            }
            .map_err(db_err)?;
            if n > 0 {
                store::touch_contact(&mut tx, org, c, now)
                    .await
                    .map_err(db_err)?;
                outs.push(self.load_tx(&mut tx, org, c).await?);
            }
        }
        tx.commit().await.map_err(db_err)?;
        for k in &photos {
            self.drop_blob(k).await;
        }
        self.forget(org).await;
        let (type_, changed) = match b.action {
            BulkAction::Delete => ("wamage.contact.deleted", None),
            BulkAction::AddTags | BulkAction::RemoveTags => {
                ("wamage.contact.updated", Some("tags"))
            }
            BulkAction::AddToGroups | BulkAction::RemoveFromGroups => {
                ("wamage.contact.updated", Some("groups"))
            }
        };
        let affected = outs.len() as u64;
        for out in outs {
            let data = match changed {
                Some(f) => json!({ "contact": out, "changed": [f] }),
                None => json!({ "contact": out }),
            };
            self.publish(org, type_, data).await;
        }
        Ok(BulkOut { affected })
    }
}

const CONSENT_NOTE_MAX: usize = 1000;

fn consent_out(r: store::ConsentRow) -> Result<ConsentOut, Problem> {
    let bad = || Problem::internal(format_args!("unknown consent value in entry {}", r.id));
    Ok(ConsentOut {
        id: r.id,
        channel: ConsentChannel::from_db(&r.channel).ok_or_else(bad)?,
        purpose: ConsentPurpose::from_db(&r.purpose).ok_or_else(bad)?,
        status: ConsentStatus::from_db(&r.status).ok_or_else(bad)?,
        source: ConsentSource::from_db(&r.source).ok_or_else(bad)?,
        note: r.note.clone(),
        recorded_by: r.recorded_by,
        at: r.created_at,
    })
}

/// The consent ledger and the sending rule.
impl Contacts {
    /// A contact's ledger: the newest entry per channel and purpose, then every entry newest
    /// first.
    pub async fn consent(
        &self,
        who: &Principal,
        id: ContactId,
    ) -> Result<ConsentLedgerOut, Problem> {
        let org = who.org_id;
        store::get_contact(&self.db, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let history = store::consents_of(&self.db, org, id)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(consent_out)
            .collect::<Result<Vec<_>, _>>()?;
        let mut current: Vec<ConsentStateOut> = Vec::new();
        for e in &history {
            if !current
                .iter()
                .any(|c| c.channel == e.channel && c.purpose == e.purpose)
            {
                current.push(ConsentStateOut {
                    channel: e.channel,
                    purpose: e.purpose,
                    status: e.status,
                    source: e.source,
                    at: e.at,
                });
            }
        }
        current.sort_by_key(|c| (c.channel, c.purpose));
        Ok(ConsentLedgerOut { current, history })
    }

    /// Appends an opt-in or opt-out. The source defaults to who is asking: `agent` for a member
    /// in the app, `api` for an API key.
    pub async fn record_consent(
        &self,
        who: &Principal,
        id: ContactId,
        b: &ConsentIn,
    ) -> Result<ConsentOut, Problem> {
        let org = who.org_id;
        let mut v = Validator::new();
        if let Some(n) = &b.note {
            v.length("note", n, 0, CONSENT_NOTE_MAX);
        }
        v.finish()?;
        let (default_source, recorded_by) = match who.via {
            Via::Session(_) => (ConsentSource::Agent, Some(who.user_id)),
            Via::ApiKey(_) => (ConsentSource::Api, None),
        };
        let row = store::ConsentRow {
            id: ConsentId::new(),
            contact_id: id,
            channel: b.channel.as_str().to_owned(),
            purpose: b.purpose.as_str().to_owned(),
            status: b.status.as_str().to_owned(),
            source: b.source.unwrap_or(default_source).as_str().to_owned(),
            note: clean(b.note.as_deref()),
            recorded_by,
            created_at: self.now(),
        };
        let mut tx = self.begin().await?;
        store::get_contact_tx(&mut tx, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        store::insert_consent(&mut tx, org, &row)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.forget(org).await;
        let out = consent_out(row)?;
        self.publish(
            org,
            "wamage.consent.changed",
            json!({
                "contact_id": id,
                "channel": out.channel,
                "purpose": out.purpose,
                "status": out.status,
                "source": out.source,
            }),
        )
        .await;
        Ok(out)
    }

    /// May `purpose` be sent on `channel` to `contact`? Every send path asks this first.
    ///
    /// The rule: a blocked contact gets nothing; utility is allowed unless the newest ledger
    /// entry for the channel and purpose is an opt-out; marketing is allowed only when that
    /// newest entry is an opt-in. A contact the organisation does not have answers 404.
    pub async fn may_send(
        &self,
        org: OrgId,
        contact: ContactId,
        channel: ConsentChannel,
        purpose: ConsentPurpose,
    ) -> Result<SendPermission, Problem> {
        let c = store::get_contact(&self.db, org, contact)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let latest =
            store::latest_consent(&self.db, org, contact, channel.as_str(), purpose.as_str())
                .await
                .map_err(db_err)?
                .as_deref()
                .and_then(ConsentStatus::from_db);
        Ok(consent::decide(c.blocked, purpose, latest))
    }

    /// What [`Self::may_send_many_in`] answers for a contact created a moment ago by
    /// [`Self::resolve_inbound_many`] (`created`): not blocked and nothing in its ledger yet,
    /// so nothing needs to be read.
    pub fn may_send_new(purpose: ConsentPurpose) -> SendPermission {
        consent::decide(false, purpose, None)
    }

    /// [`Self::may_send`] for many contacts in one query, in `tx` (a writer holding locks
    /// asks without taking a second connection); a contact not in `org` is missing from the
    /// answer.
    pub async fn may_send_many_in(
        &self,
        tx: &mut Tx,
        org: OrgId,
        contacts: &[ContactId],
        channel: ConsentChannel,
        purpose: ConsentPurpose,
    ) -> Result<HashMap<ContactId, SendPermission>, Problem> {
        let mut ids = contacts.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let rows = store::consent_states(tx, org, &ids, channel.as_str(), purpose.as_str())
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, blocked, latest)| {
                let latest = latest.as_deref().and_then(ConsentStatus::from_db);
                (id, consent::decide(blocked, purpose, latest))
            })
            .collect())
    }
}

/// Merging duplicates.
impl Contacts {
    /// Merges `other` into `id` in one transaction; see [`crate::http::merge_contacts`] for what
    /// moves. `blocked` and `favorite` are kept when either contact had them: merging never
    /// lifts a block.
    pub async fn merge(
        &self,
        who: &Principal,
        id: ContactId,
        other: ContactId,
    ) -> Result<ContactOut, Problem> {
        let org = who.org_id;
        if id == other {
            return Err(Problem::invalid_field(
                "other_id",
                "must be a different contact than the one merged into",
            ));
        }
        let mut tx = self.begin().await?;
        let mut row = store::get_contact_tx(&mut tx, org, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let gone = store::get_contact_tx(&mut tx, org, other)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let snapshot = serde_json::to_value(self.load_tx(&mut tx, org, other).await?)
            .map_err(Problem::internal)?;

        let fill = |slot: &mut Option<String>, from: &Option<String>| {
            if slot.is_none() {
                slot.clone_from(from);
            }
        };
        fill(&mut row.company, &gone.company);
        fill(&mut row.language, &gone.language);
        fill(&mut row.time_zone, &gone.time_zone);
        fill(&mut row.notes, &gone.notes);
        row.favorite |= gone.favorite;
        row.blocked |= gone.blocked;
        let mut attributes = match gone.attributes.0 {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if let Value::Object(mine) = &row.attributes.0 {
            attributes.extend(mine.clone());
        }
        row.attributes = Json(Value::Object(attributes));
        let now = self.now();
        row.updated_at = now;

        // The survivor keeps its photo, or takes the merged contact's (copied under its own key).
        let taken_photo = match (&row.avatar_key, &gone.avatar_key) {
            (None, Some(theirs)) => self.copy_avatar(org, id, theirs).await?,
            _ => None,
        };
        let result = self
            .merge_tx(tx, who, &row, other, taken_photo.as_deref(), &snapshot)
            .await;
        let out = match result {
            Ok(out) => out,
            Err(p) => {
                if let Some(k) = &taken_photo {
                    self.drop_blob(k).await;
                }
                return Err(p);
            }
        };
        if let Some(k) = &gone.avatar_key {
            self.drop_blob(k).await;
        }
        self.forget(org).await;
        self.publish(
            org,
            "wamage.contact.merged",
            json!({ "survivor": id, "merged_id": other, "contact": out }),
        )
        .await;
        Ok(out)
    }

    /// The writes of a merge, committed together.
    async fn merge_tx(
        &self,
        mut tx: Tx,
        who: &Principal,
        row: &ContactRow,
        other: ContactId,
        photo: Option<&str>,
        snapshot: &Value,
    ) -> Result<ContactOut, Problem> {
        let org = who.org_id;
        let id = row.id;
        let now = row.updated_at;
        if photo.is_some() {
            store::set_avatar(&mut tx, org, id, photo, now)
                .await
                .map_err(db_err)?;
        }
        store::move_related(&mut tx, org, other, id)
            .await
            .map_err(db_err)?;
        store::delete_contact(&mut tx, org, other)
            .await
            .map_err(db_err)?;
        store::update_contact(&mut tx, org, row)
            .await
            .map_err(db_err)?;
        self.reindex(&mut tx, org, id).await?;
        let record = store::NewMerge {
            id: MergeId::new(),
            survivor: id,
            merged: other,
            snapshot,
            by: who.session_id().map(|_| who.user_id),
            at: now,
        };
        store::insert_merge(&mut tx, org, &record)
            .await
            .map_err(db_err)?;
        let out = self.load_tx(&mut tx, org, id).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }
}
