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
use wamage_identity::Principal;
use wamage_kernel::{Clock, Event, OrgId, Problem, Timestamp, validate::Validator};
use wamage_platform::{
    Db, Tx,
    bus::SharedBus,
    cache::{self, SharedCache},
    db::{is_unique_violation, violated_constraint},
};

use crate::{
    http::{
        AttrDefIn, AttrDefOut, AttrDefPatch, ContactIn, ContactListQuery, ContactOut, ContactPage,
        ContactPatch, IdentityIn, IdentityOut, SettingsOut,
    },
    model::{
        self, AttrDef, AttrType, ContactId, Country, DEFAULT_COUNTRY, IdentityId, IdentityKind,
    },
    store::{self, After, ContactRow, ListFilter, Sort},
};

pub const SOURCE: &str = "/wamage/contacts";
const CONTACT_TTL: Duration = Duration::from_secs(300);
pub const NAME_MAX: usize = 200;
pub const COMPANY_MAX: usize = 200;
pub const NOTES_MAX: usize = 10_000;
pub const MAX_IDENTITIES: usize = 50;
const LABEL_MAX: usize = 80;
const OPTIONS_MAX: usize = 100;

/// The contacts service, shared by the HTTP handlers.
#[derive(Debug)]
pub struct Contacts {
    db: Db,
    cache: SharedCache,
    bus: SharedBus,
    clock: Clock,
}

/// Everything the contacts service needs from the platform.
pub struct ContactsDeps {
    pub db: Db,
    pub cache: SharedCache,
    pub bus: SharedBus,
    pub clock: Clock,
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
    let mut out: Vec<String> = model::words(&c.name).collect();
    out.extend(c.company.as_deref().map(model::words).into_iter().flatten());
    for i in identities {
        let kind = IdentityKind::from_db(&i.kind);
        if kind.is_some_and(IdentityKind::is_phone) {
            out.push(i.value.trim_start_matches('+').to_owned());
            if let Ok(n) = phonenumber::parse(None, &i.value) {
                out.push(n.national().value().to_string());
            }
        } else {
            out.extend(model::words(&i.value));
        }
    }
    if let Value::Object(attrs) = &c.attributes.0 {
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

fn to_out(c: ContactRow, identities: Vec<store::IdentityRow>) -> ContactOut {
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
        identities: identities.into_iter().map(IdentityOut::from).collect(),
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
        std::sync::Arc::new(Self {
            db: deps.db,
            cache: deps.cache,
            bus: deps.bus,
            clock: deps.clock,
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
        let identities = store::identities_of_tx(tx, org, id).await.map_err(db_err)?;
        Ok(to_out(c, identities))
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
        let key = contact_key(who.org_id, id);
        match cache::get_json::<ContactOut>(self.cache.as_ref(), &key).await {
            Ok(Some(c)) => return Ok(c),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, key, "failed to read cached contact"),
        }
        let c = store::get_contact(&self.db, who.org_id, id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        let identities = store::identities_of(&self.db, who.org_id, &[id])
            .await
            .map_err(db_err)?;
        let out = to_out(c, identities);
        if let Err(e) = cache::set_json(self.cache.as_ref(), &key, &out, CONTACT_TTL).await {
            tracing::warn!(error = %e, key, "failed to cache contact");
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
        if !store::delete_contact(&mut tx, org, id)
            .await
            .map_err(db_err)?
        {
            return Err(Problem::not_found("contact"));
        }
        tx.commit().await.map_err(db_err)?;
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
        let filter = ListFilter {
            words,
            favorite: q.favorite,
            blocked: q.blocked,
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
        let mut by_contact: HashMap<ContactId, Vec<store::IdentityRow>> = HashMap::new();
        for i in store::identities_of(&self.db, who.org_id, &ids)
            .await
            .map_err(db_err)?
        {
            by_contact.entry(i.contact_id).or_default().push(i);
        }
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
