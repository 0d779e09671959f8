//! The façade channels use when a customer writes: find the contact that has any of the
//! sender's identities, or create one, and record consent changes the provider reported.
//!
//! Resolution never stores the same identity twice: every identity the sender brings that no
//! contact has yet is attached to the contact found (a WhatsApp user who first wrote with a
//! phone number and later also shows a business-scoped user id keeps one contact). When two
//! of the sender's identities belong to two different contacts, the first one found wins and
//! the other identity stays where it is (merging is an agent's decision). A concurrent insert
//! of the same new identity (two webhooks of one new customer at once) loses the unique key
//! race and resolves again, so both end on the same contact.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use sqlx::types::Json;
use wamage_kernel::{OrgId, Problem};
use wamage_platform::Tx;

use super::{Contacts, db_err, is_identity_clash};
use crate::{
    consent::{ConsentChannel, ConsentId, ConsentPurpose, ConsentSource, ConsentStatus},
    http::ContactOut,
    model::{ContactId, IdentityId, IdentityKind},
    store::{self, ContactRow},
};

/// Longest display name taken from a provider profile.
const NAME_MAX: usize = 200;

/// The contact an inbound sender resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedContact {
    pub id: ContactId,
    pub name: String,
    /// True when this message created the contact.
    pub created: bool,
}

/// Senders resolved inside a caller's transaction
/// ([`Contacts::resolve_inbound_many_in`]): the answers, and what
/// [`Contacts::inbound_committed`] announces once that transaction has committed.
#[derive(Debug)]
pub struct InboundResolution {
    /// Answer `i` is for sender `i`.
    pub contacts: Vec<ResolvedContact>,
    created: Vec<ContactRow>,
    new_identities: Vec<store::IdentityRow>,
    extended: bool,
}

/// The code of the problem [`Contacts::resolve_inbound_many_in`] answers when a concurrent
/// writer stored one of the senders' new identities first: roll back and resolve again.
pub const IDENTITY_TAKEN: &str = "identity_taken";

impl Contacts {
    /// The contact of `org` with any of `identities` (canonical values: E.164 phones, decimal
    /// Telegram ids), created with `name` (or the first identity's value) when there is none.
    pub async fn resolve_inbound(
        &self,
        org: OrgId,
        identities: &[(IdentityKind, String)],
        name: Option<&str>,
    ) -> Result<ResolvedContact, Problem> {
        if identities.is_empty() {
            return Err(Problem::invalid_field(
                "identities",
                "an inbound sender needs at least one identity",
            ));
        }
        // One retry covers the race where another writer inserted the same identity between
        // our lookup and our insert.
        let mut last = None;
        for _ in 0..3 {
            match self.try_resolve(org, identities, name).await {
                Ok(r) => {
                    if r.created {
                        self.forget(org).await;
                        if let Ok(out) = self.contact_in(org, r.id).await {
                            self.publish(org, "wamage.contact.created", json!({ "contact": out }))
                                .await;
                        }
                    }
                    return Ok(r);
                }
                Err(Retry::Clash) => last = Some(Problem::conflict("identity_taken", "retry")),
                Err(Retry::Problem(p)) => return Err(p),
            }
        }
        Err(last.unwrap_or_else(|| Problem::internal("inbound contact resolution failed")))
    }

    /// [`Self::resolve_inbound`] for many senders at once (a batch of sends to addresses, the
    /// customer messages of a batch of webhooks): one transaction, one lookup of every
    /// identity, new contacts (named `names[i]` when given, else after their first identity)
    /// and identities written together. Answer `i` is for `senders[i]`; senders sharing an
    /// identity end on the same contact (`created` only for the first of them). A concurrent
    /// insert of the same identity resolves the whole batch again.
    pub async fn resolve_inbound_many(
        &self,
        org: OrgId,
        senders: &[Vec<(IdentityKind, String)>],
        names: &[Option<&str>],
    ) -> Result<Vec<ResolvedContact>, Problem> {
        Ok(self
            .resolve_inbound_many_with_new(org, senders, names)
            .await?
            .0)
    }

    /// [`Self::resolve_inbound_many`], with the contacts it created as rendered for
    /// `wamage.contact.created` (their identities; no tags or groups yet), so that a caller
    /// can show them without reading them back.
    pub async fn resolve_inbound_many_with_new(
        &self,
        org: OrgId,
        senders: &[Vec<(IdentityKind, String)>],
        names: &[Option<&str>],
    ) -> Result<(Vec<ResolvedContact>, Vec<ContactOut>), Problem> {
        every_sender_identified(senders)?;
        if senders.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut last = None;
        for _ in 0..3 {
            let mut tx = self.begin().await?;
            let resolved = match self.try_resolve_many(&mut tx, org, senders, names).await {
                Ok(r) => r,
                Err(Retry::Clash) => {
                    last = Some(identity_taken());
                    continue;
                }
                Err(Retry::Problem(p)) => return Err(p),
            };
            match tx.commit().await {
                Ok(()) => {}
                Err(e) if is_identity_clash(&e) => {
                    last = Some(identity_taken());
                    continue;
                }
                Err(e) => return Err(db_err(e)),
            }
            return Ok(self.inbound_committed(org, resolved).await);
        }
        Err(last.unwrap_or_else(|| Problem::internal("inbound contact resolution failed")))
    }

    /// [`Self::resolve_inbound_many`] inside the caller's transaction `tx` (a caller writing
    /// what the senders are resolved for in the same transaction). When that transaction
    /// commits, hand the answer to [`Self::inbound_committed`]. A problem with code
    /// [`IDENTITY_TAKEN`] means a concurrent writer stored one of the new identities first:
    /// roll back and resolve again.
    pub async fn resolve_inbound_many_in(
        &self,
        tx: &mut Tx,
        org: OrgId,
        senders: &[Vec<(IdentityKind, String)>],
        names: &[Option<&str>],
    ) -> Result<InboundResolution, Problem> {
        every_sender_identified(senders)?;
        match self.try_resolve_many(tx, org, senders, names).await {
            Ok(r) => Ok(r),
            Err(Retry::Clash) => Err(identity_taken()),
            Err(Retry::Problem(p)) => Err(p),
        }
    }

    /// The contacts that already hold an identity of each sender (in order; `None` where no
    /// contact does), read in `tx`. Creates nothing: a writer that must not create a contact
    /// for a sender (a marketing send to a number nobody opted in from) asks this first.
    pub async fn owners_in(
        &self,
        tx: &mut Tx,
        org: OrgId,
        senders: &[Vec<(IdentityKind, String)>],
    ) -> Result<Vec<Option<ContactId>>, Problem> {
        let held = stored_owners(tx, org, senders).await.map_err(db_err)?;
        Ok(senders.iter().map(|s| owner_of(&held, s)).collect())
    }

    /// [`Self::owners_in`] in a read transaction of its own.
    pub async fn owners(
        &self,
        org: OrgId,
        senders: &[Vec<(IdentityKind, String)>],
    ) -> Result<Vec<Option<ContactId>>, Problem> {
        let mut tx = self.db.begin_read().await.map_err(db_err)?;
        let owners = self.owners_in(&mut tx, org, senders).await?;
        tx.rollback().await.map_err(db_err)?;
        Ok(owners)
    }

    /// Announces a committed resolution: the cache forgets what it changed, and each new
    /// contact, rendered from what was written (its identities; no tags or groups yet), is
    /// published (`wamage.contact.created`) and cached for the caller's next read (an inbox
    /// rendering the conversation's contact). The answers, and the new contacts as rendered.
    ///
    /// Contacts that were only created change the counts, not the contacts already cached:
    /// only the counts are forgotten then ([`Contacts::forget_counts`], two cache writes), so
    /// a webhook batch or a bulk send to new numbers neither walks the cache nor empties the
    /// organisation's cached contacts.
    pub async fn inbound_committed(
        &self,
        org: OrgId,
        r: InboundResolution,
    ) -> (Vec<ResolvedContact>, Vec<ContactOut>) {
        if r.extended {
            self.forget(org).await;
        } else if !r.created.is_empty() {
            self.forget_counts(org).await;
        }
        let mut related: HashMap<ContactId, super::Related> = HashMap::new();
        for i in r.new_identities {
            related.entry(i.contact_id).or_default().identities.push(i);
        }
        let mut new = Vec::with_capacity(r.created.len());
        for row in r.created {
            let rel = related.remove(&row.id).unwrap_or_default();
            let contact = super::to_out(row, rel);
            self.publish(
                org,
                "wamage.contact.created",
                json!({ "contact": &contact }),
            )
            .await;
            self.remember(org, &contact).await;
            new.push(contact);
        }
        (r.contacts, new)
    }

    /// One attempt of [`Self::resolve_inbound_many`]: the answers, the contacts it created with
    /// their identities, and whether an existing contact got a new identity.
    async fn try_resolve_many(
        &self,
        tx: &mut Tx,
        org: OrgId,
        senders: &[Vec<(IdentityKind, String)>],
        given: &[Option<&str>],
    ) -> Result<InboundResolution, Retry> {
        let now = self.now();
        let problem = |e: sqlx::Error| Retry::Problem(db_err(e));
        let clash = |e: sqlx::Error| {
            if is_identity_clash(&e) {
                Retry::Clash
            } else {
                Retry::Problem(db_err(e))
            }
        };
        // Who holds each identity: stored owners first, then contacts this batch creates.
        let mut held = stored_owners(tx, org, senders).await.map_err(problem)?;
        let found: Vec<ContactId> = {
            let mut ids: Vec<ContactId> = held.values().copied().collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let mut names: HashMap<ContactId, String> = store::contact_names_tx(tx, org, &found)
            .await
            .map_err(problem)?
            .into_iter()
            .collect();
        let mut out = Vec::with_capacity(senders.len());
        let mut creates: Vec<store::NewImported> = Vec::new();
        let mut identities: Vec<store::NewIdentity> = Vec::new();
        let mut extended: Vec<ContactId> = Vec::new();
        // Contacts this batch creates → their index in `creates`.
        let mut fresh: HashMap<ContactId, usize> = HashMap::new();
        let no_defs = HashMap::new();
        for (i, s) in senders.iter().enumerate() {
            let (id, created) = match owner_of(&held, s) {
                Some(id) => (id, false),
                None => {
                    let display = display_name(given.get(i).copied().flatten(), &s[0].1);
                    let ids: Vec<(Option<IdentityKind>, &str)> =
                        s.iter().map(|(k, v)| (Some(*k), v.as_str())).collect();
                    let words = super::search_words_of(&display, None, &ids, None, &no_defs);
                    let row = new_contact(&display, now);
                    names.insert(row.id, display);
                    let id = row.id;
                    fresh.insert(id, creates.len());
                    creates.push(store::NewImported { row, words });
                    (id, true)
                }
            };
            for (k, v) in s {
                let key = (k.as_str().to_owned(), v.clone());
                if held.contains_key(&key) {
                    continue;
                }
                held.insert(key, id);
                identities.push(store::NewIdentity {
                    id: IdentityId::new(),
                    contact: id,
                    kind: k.as_str(),
                    value: v.clone(),
                    line: None,
                });
                match fresh.get(&id) {
                    // A contact this batch creates: its search words get the identity too.
                    Some(&i) if !created => {
                        let ids = [(Some(*k), v.as_str())];
                        let more = super::search_words_of("", None, &ids, None, &no_defs);
                        creates[i].words.extend(more);
                    }
                    Some(_) => {}
                    None => extended.push(id),
                }
            }
            out.push(ResolvedContact {
                id,
                name: names.get(&id).cloned().unwrap_or_default(),
                created,
            });
        }
        store::insert_contacts_bulk(tx, org, &creates, now, None)
            .await
            .map_err(clash)?;
        store::insert_identities_bulk(tx, org, &identities, None, now, None)
            .await
            .map_err(clash)?;
        extended.sort_unstable();
        extended.dedup();
        for id in &extended {
            self.reindex(tx, org, *id).await.map_err(Retry::Problem)?;
        }
        let new_identities = identities
            .into_iter()
            .filter(|i| fresh.contains_key(&i.contact))
            .map(|i| store::IdentityRow {
                id: i.id,
                contact_id: i.contact,
                kind: i.kind.to_owned(),
                value: i.value,
                created_at: now,
            })
            .collect();
        Ok(InboundResolution {
            contacts: out,
            created: creates.into_iter().map(|c| c.row).collect(),
            new_identities,
            extended: !extended.is_empty(),
        })
    }

    async fn try_resolve(
        &self,
        org: OrgId,
        identities: &[(IdentityKind, String)],
        name: Option<&str>,
    ) -> Result<ResolvedContact, Retry> {
        let now = self.now();
        let mut tx = self.begin().await.map_err(Retry::Problem)?;
        let mut owner: Option<ContactId> = None;
        let mut missing = Vec::new();
        for (kind, value) in identities {
            match store::identity_owner_tx(&mut tx, org, kind.as_str(), value)
                .await
                .map_err(|e| Retry::Problem(db_err(e)))?
            {
                Some(c) if owner.is_none() => owner = Some(c),
                Some(_) => {}
                None => missing.push((*kind, value.clone())),
            }
        }
        let (id, created, display) = match owner {
            Some(id) => {
                let c = store::get_contact_tx(&mut tx, org, id)
                    .await
                    .map_err(|e| Retry::Problem(db_err(e)))?
                    .ok_or_else(|| Retry::Problem(Problem::not_found("contact")))?;
                (id, false, c.name)
            }
            None => {
                let display = display_name(name, &identities[0].1);
                let row = new_contact(&display, now);
                store::insert_contact(&mut tx, org, &row)
                    .await
                    .map_err(|e| Retry::Problem(db_err(e)))?;
                (row.id, true, display)
            }
        };
        for (kind, value) in &missing {
            store::insert_identity(
                &mut tx,
                org,
                id,
                IdentityId::new(),
                kind.as_str(),
                value,
                now,
            )
            .await
            .map_err(|e| {
                if is_identity_clash(&e) {
                    Retry::Clash
                } else {
                    Retry::Problem(db_err(e))
                }
            })?;
        }
        if created || !missing.is_empty() {
            self.reindex(&mut tx, org, id)
                .await
                .map_err(Retry::Problem)?;
        }
        tx.commit().await.map_err(|e| {
            if is_identity_clash(&e) {
                Retry::Clash
            } else {
                Retry::Problem(db_err(e))
            }
        })?;
        if !created && !missing.is_empty() {
            self.forget(org).await;
        }
        Ok(ResolvedContact {
            id,
            name: display,
            created,
        })
    }

    /// Appends a consent entry on behalf of the system (a provider report, an opt-out
    /// keyword): no member recorded it. Publishes `wamage.consent.changed`.
    pub async fn record_system_consent(
        &self,
        org: OrgId,
        contact: ContactId,
        entry: SystemConsent<'_>,
    ) -> Result<(), Problem> {
        let row = store::ConsentRow {
            id: ConsentId::new(),
            contact_id: contact,
            channel: entry.channel.as_str().to_owned(),
            purpose: entry.purpose.as_str().to_owned(),
            status: entry.status.as_str().to_owned(),
            source: entry.source.as_str().to_owned(),
            note: entry.note.map(str::to_owned),
            recorded_by: None,
            created_at: self.now(),
        };
        let mut tx = self.begin().await?;
        store::get_contact_tx(&mut tx, org, contact)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("contact"))?;
        store::insert_consent(&mut tx, org, &row)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.forget(org).await;
        self.publish(
            org,
            "wamage.consent.changed",
            json!({
                "contact_id": contact,
                "channel": entry.channel,
                "purpose": entry.purpose,
                "status": entry.status,
                "source": entry.source,
            }),
        )
        .await;
        Ok(())
    }
}

/// A consent entry the system records.
#[derive(Debug, Clone, Copy)]
pub struct SystemConsent<'a> {
    pub channel: ConsentChannel,
    pub purpose: ConsentPurpose,
    pub status: ConsentStatus,
    pub source: ConsentSource,
    pub note: Option<&'a str>,
}

impl SystemConsent<'static> {
    /// The provider said the customer stopped marketing messages (Meta's 131050).
    pub fn marketing_stopped(channel: ConsentChannel) -> Self {
        Self {
            channel,
            purpose: ConsentPurpose::Marketing,
            status: ConsentStatus::OptedOut,
            source: ConsentSource::Provider,
            note: Some("The customer stopped marketing messages (131050)"),
        }
    }
}

enum Retry {
    Clash,
    Problem(Problem),
}

/// A contact created for an inbound sender: a name and nothing else yet.
fn new_contact(display: &str, now: wamage_kernel::Timestamp) -> ContactRow {
    ContactRow {
        id: ContactId::new(),
        sort_name: display.to_lowercase(),
        name: display.to_owned(),
        company: None,
        language: None,
        time_zone: None,
        notes: None,
        favorite: false,
        blocked: false,
        attributes: Json(Value::Object(Map::new())),
        avatar_key: None,
        created_at: now,
        updated_at: now,
    }
}

fn display_name(name: Option<&str>, fallback: &str) -> String {
    let n = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(fallback);
    n.chars().take(NAME_MAX).collect()
}

/// The problem of a resolution that lost the race for a new identity.
fn identity_taken() -> Problem {
    Problem::conflict(
        IDENTITY_TAKEN,
        "Another writer stored one of these identities first; resolve again",
    )
}

/// Refuses a sender without an identity (`identities[i]`).
fn every_sender_identified(senders: &[Vec<(IdentityKind, String)>]) -> Result<(), Problem> {
    match senders.iter().position(Vec::is_empty) {
        Some(i) => Err(Problem::invalid_field(
            format!("identities[{i}]"),
            "an inbound sender needs at least one identity",
        )),
        None => Ok(()),
    }
}

/// Who holds each identity of these senders, as stored: `(kind, value)` → contact.
async fn stored_owners(
    tx: &mut Tx,
    org: OrgId,
    senders: &[Vec<(IdentityKind, String)>],
) -> Result<HashMap<(String, String), ContactId>, sqlx::Error> {
    let pairs: Vec<(&str, &str)> = senders
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(store::identity_owners(tx, org, &pairs)
        .await?
        .into_iter()
        .map(|(k, v, c)| ((k, v), c))
        .collect())
}

/// The contact in `held` that holds one of this sender's identities.
fn owner_of(
    held: &HashMap<(String, String), ContactId>,
    sender: &[(IdentityKind, String)],
) -> Option<ContactId> {
    sender
        .iter()
        .find_map(|(k, v)| held.get(&(k.as_str().to_owned(), v.clone())).copied())
}
