//! Audiences for bulk sends (campaigns): the contacts in any of some groups, tags and segments,
//! minus those in excluded ones, each with the address to reach them on one channel and the
//! facts a send must respect (blocked flag, newest consent entry for the purpose).
//!
//! An audience compiles to one segment filter (`any` of the inclusions, `all` with the negated
//! exclusions), so it is resolved by the same SQL as the contact list and segment counts:
//! [`Contacts::audience_walk`] gives it as one statement per page for a snapshot to copy,
//! [`Contacts::audience_breakdown`] counts it by what a send would do, and
//! [`Contacts::send_context`] re-reads a batch of contacts at send time (consent may change
//! after the snapshot; variables render from current data).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use wamage_kernel::{OrgId, Problem};

use super::{Contacts, db_err};
use crate::{
    consent::{ConsentChannel, ConsentPurpose, ConsentStatus},
    model::{ContactId, GroupId, IdentityKind, SegmentId, TagId},
    segment::{Cond, SegmentFilter},
    store,
};

/// Who a bulk send goes to. Inclusions are a union; a contact in any exclusion is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceSpec {
    #[serde(default)]
    pub groups: Vec<GroupId>,
    #[serde(default)]
    pub tags: Vec<TagId>,
    #[serde(default)]
    pub segments: Vec<SegmentId>,
    #[serde(default)]
    pub exclude_groups: Vec<GroupId>,
    #[serde(default)]
    pub exclude_tags: Vec<TagId>,
    #[serde(default)]
    pub exclude_segments: Vec<SegmentId>,
}

impl AudienceSpec {
    /// Whether nothing is included.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.tags.is_empty() && self.segments.is_empty()
    }
}

/// A contact field a template variable can take its value from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VarField {
    Name,
    FirstName,
    Company,
    Email,
    Phone,
    Language,
    /// A custom attribute (`attr.<key>`).
    Attr(String),
}

impl VarField {
    /// Parses `contact.name`, `contact.first_name`, … or `attr.<key>`.
    pub fn parse(source: &str) -> Option<Self> {
        Some(match source {
            "contact.name" => Self::Name,
            "contact.first_name" => Self::FirstName,
            "contact.company" => Self::Company,
            "contact.email" => Self::Email,
            "contact.phone" => Self::Phone,
            "contact.language" => Self::Language,
            s => {
                let key = s.strip_prefix("attr.")?;
                if key.is_empty() || key.len() > 64 {
                    return None;
                }
                Self::Attr(key.to_owned())
            }
        })
    }
}

/// What a send needs to know about one contact.
#[derive(Debug, Clone)]
pub struct SendContact {
    pub id: ContactId,
    pub name: String,
    pub company: Option<String>,
    pub language: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub attributes: Value,
    pub blocked: bool,
    /// The newest consent entry for the channel and purpose asked about.
    pub consent: Option<ConsentStatus>,
    /// The address on the channel asked about: the identity kind and value (first of the
    /// preferred kinds the contact has).
    pub address: Option<(IdentityKind, String)>,
}

impl SendContact {
    /// The value of a field, if the contact has one (empty strings count as none).
    pub fn field(&self, f: &VarField) -> Option<String> {
        let v = match f {
            VarField::Name => Some(self.name.clone()),
            VarField::FirstName => self.name.split_whitespace().next().map(str::to_owned),
            VarField::Company => self.company.clone(),
            VarField::Email => self.email.clone(),
            VarField::Phone => self.phone.clone(),
            VarField::Language => self.language.clone(),
            VarField::Attr(k) => match self.attributes.get(k) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Bool(b)) => Some(if *b { "yes" } else { "no" }.to_owned()),
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                Some(other) => Some(other.to_string()),
            },
        };
        v.filter(|s| !s.trim().is_empty())
    }

    /// What a send of `purpose` would do with this contact: `None` to send, or why not.
    pub fn skip_reason(&self, purpose: ConsentPurpose) -> Option<SkipReason> {
        if self.address.is_none() {
            return Some(SkipReason::NoIdentity);
        }
        if self.blocked {
            return Some(SkipReason::Blocked);
        }
        match (purpose, self.consent) {
            (_, Some(ConsentStatus::OptedOut)) => Some(SkipReason::OptedOut),
            (ConsentPurpose::Marketing, None) => Some(SkipReason::NoConsent),
            _ => None,
        }
    }
}

/// Why a contact of an audience gets nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    NoIdentity,
    Blocked,
    OptedOut,
    /// Marketing needs an opt-in; the contact has no entry for the channel.
    NoConsent,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoIdentity => "no_identity",
            Self::Blocked => "blocked",
            Self::OptedOut => "opted_out",
            Self::NoConsent => "no_consent",
        }
    }
}

/// An audience counted by what a send would do (each contact in exactly one bucket, checked
/// in this order: no identity, blocked, opted out, no consent, then eligible; eligible
/// contacts missing a required variable are also counted in `missing_variables`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Breakdown {
    pub total: i64,
    pub eligible: i64,
    pub opted_out: i64,
    pub no_consent: i64,
    pub blocked: i64,
    pub no_identity: i64,
    /// Eligible contacts without a value for a variable that has no fallback.
    pub missing_variables: i64,
}

/// Where a channel reaches a contact, in order of preference.
pub fn address_kinds(channel: ConsentChannel) -> &'static [IdentityKind] {
    match channel {
        ConsentChannel::Whatsapp => &[
            IdentityKind::WhatsappPhone,
            IdentityKind::Phone,
            IdentityKind::WhatsappUser,
        ],
        ConsentChannel::Telegram => &[IdentityKind::Telegram],
        ConsentChannel::Email => &[IdentityKind::Email],
        ConsentChannel::Sms => &[IdentityKind::Phone],
    }
}

/// The channel of a send: for consent (`None` for channels without a ledger, like the Sandbox)
/// and the identity kinds that address it.
#[derive(Debug, Clone, Copy)]
pub struct SendChannel {
    pub consent: Option<ConsentChannel>,
    pub kinds: &'static [IdentityKind],
}

/// An audience compiled for a snapshot (see [`Contacts::audience_walk`]).
pub struct AudienceWalk {
    cuts: Vec<ContactId>,
    backend: wamage_platform::Backend,
    org: OrgId,
    filter: SegmentFilter,
    channel: SendChannel,
    purpose: ConsentPurpose,
}

impl AudienceWalk {
    /// Splits the walk into about `parts` contact-id ranges of the organisation's contacts
    /// (for writers that can run side by side); see [`AudienceWalk::ranges`].
    pub async fn split(&mut self, contacts: &Contacts, parts: usize) -> Result<(), Problem> {
        self.cuts = if parts > 1 {
            store::contact_id_cuts(&contacts.db, self.org, parts)
                .await
                .map_err(db_err)?
        } else {
            Vec::new()
        };
        Ok(())
    }

    /// The walk's ranges as `(after, until)` bounds: one unbounded range unless split.
    pub fn ranges(&self) -> Vec<(Option<ContactId>, Option<ContactId>)> {
        let mut out = Vec::with_capacity(self.cuts.len() + 1);
        let mut lo = None;
        for c in &self.cuts {
            out.push((lo, Some(*c)));
            lo = Some(*c);
        }
        out.push((lo, None));
        out
    }

    /// The page of at most `limit` contacts after `after` and up to `until` (in contact-id
    /// order) as one statement whose placeholders start at `$first` (see
    /// [`store::AudiencePage`]).
    pub fn page(
        &self,
        after: Option<ContactId>,
        until: Option<ContactId>,
        limit: usize,
        first: usize,
    ) -> store::AudiencePage {
        store::audience_page_sql(
            self.backend,
            self.org,
            &self.filter,
            &store::AudienceAsk {
                consent: self
                    .channel
                    .consent
                    .map(|c| (c.as_str(), self.purpose.as_str())),
                kinds: self.channel.kinds,
            },
            self.purpose == ConsentPurpose::Marketing,
            after,
            until,
            limit,
            first,
        )
    }
}

impl Contacts {
    /// Compiles an audience into one filter; unknown (deleted) groups, tags and segments match
    /// nobody. 404 `segment` when a segment id is not the organisation's.
    pub(crate) async fn audience_filter(
        &self,
        org: OrgId,
        spec: &AudienceSpec,
    ) -> Result<SegmentFilter, Problem> {
        let mut any = Vec::new();
        for g in &spec.groups {
            any.push(SegmentFilter::Cond(Cond::GroupProbe {
                id: *g,
                member: true,
            }));
        }
        for t in &spec.tags {
            any.push(SegmentFilter::Cond(Cond::TagProbe { id: *t, has: true }));
        }
        for s in &spec.segments {
            any.push(self.segment_filter(org, *s, "audience.segments").await?);
        }
        let mut all = vec![SegmentFilter::Any(any)];
        for g in &spec.exclude_groups {
            all.push(SegmentFilter::Cond(Cond::GroupProbe {
                id: *g,
                member: false,
            }));
        }
        for t in &spec.exclude_tags {
            all.push(SegmentFilter::Cond(Cond::TagProbe { id: *t, has: false }));
        }
        for s in &spec.exclude_segments {
            let f = self
                .segment_filter(org, *s, "audience.exclude_segments")
                .await?;
            all.push(SegmentFilter::Not(Box::new(f)));
        }
        Ok(SegmentFilter::All(all))
    }

    /// Checks that every group, tag and segment of `spec` is the organisation's; errors name
    /// the field (`audience.groups[0]`).
    pub async fn check_audience(&self, org: OrgId, spec: &AudienceSpec) -> Result<(), Problem> {
        let mut v = wamage_kernel::validate::Validator::new();
        // Only the ids: listing groups and tags with their member counts counts every
        // membership of the organisation.
        let (groups, tags) = store::group_and_tag_ids(&self.db, org)
            .await
            .map_err(db_err)?;
        let groups: std::collections::HashSet<GroupId> = groups.into_iter().collect();
        let tags: std::collections::HashSet<TagId> = tags.into_iter().collect();
        for (field, ids) in [
            ("audience.groups", &spec.groups),
            ("audience.exclude_groups", &spec.exclude_groups),
        ] {
            for (i, g) in ids.iter().enumerate() {
                if !groups.contains(g) {
                    v.error(
                        &format!("{field}[{i}]"),
                        "is not a group of this organisation",
                    );
                }
            }
        }
        for (field, ids) in [
            ("audience.tags", &spec.tags),
            ("audience.exclude_tags", &spec.exclude_tags),
        ] {
            for (i, t) in ids.iter().enumerate() {
                if !tags.contains(t) {
                    v.error(
                        &format!("{field}[{i}]"),
                        "is not a tag of this organisation",
                    );
                }
            }
        }
        for (field, ids) in [
            ("audience.segments", &spec.segments),
            ("audience.exclude_segments", &spec.exclude_segments),
        ] {
            for (i, s) in ids.iter().enumerate() {
                if store::get_segment(&self.db, org, *s)
                    .await
                    .map_err(db_err)?
                    .is_none()
                {
                    v.error(
                        &format!("{field}[{i}]"),
                        "is not a segment of this organisation",
                    );
                }
            }
        }
        let total = spec.groups.len()
            + spec.tags.len()
            + spec.segments.len()
            + spec.exclude_groups.len()
            + spec.exclude_tags.len()
            + spec.exclude_segments.len();
        if total > 100 {
            v.error("audience", "may name at most 100 groups, tags and segments");
        }
        v.finish()
    }

    /// The audience compiled once for a snapshot's walk: [`AudienceWalk::page`] gives each page
    /// as one statement.
    pub async fn audience_walk(
        &self,
        org: OrgId,
        spec: &AudienceSpec,
        channel: SendChannel,
        purpose: ConsentPurpose,
    ) -> Result<AudienceWalk, Problem> {
        Ok(AudienceWalk {
            cuts: Vec::new(),
            backend: self.db.backend(),
            org,
            filter: self.audience_filter(org, spec).await?,
            channel,
            purpose,
        })
    }

    /// The audience counted by what a send of `purpose` would do; `required` lists the fields
    /// variables without a fallback need.
    pub async fn audience_breakdown(
        &self,
        org: OrgId,
        spec: &AudienceSpec,
        channel: SendChannel,
        purpose: ConsentPurpose,
        required: &[VarField],
    ) -> Result<Breakdown, Problem> {
        let filter = self.audience_filter(org, spec).await?;
        // A current count index answers, variables included.
        if let Some(b) = self
            .indexed_breakdown(org, &filter, channel, purpose, required)
            .await
        {
            return Ok(b);
        }
        self.breakdown_in_sql(org, &filter, channel, purpose, required)
            .await
    }

    /// The breakdown from the organisation's count index, when it has a current one.
    pub(crate) async fn indexed_breakdown(
        &self,
        org: OrgId,
        filter: &SegmentFilter,
        channel: SendChannel,
        purpose: ConsentPurpose,
        required: &[VarField],
    ) -> Option<Breakdown> {
        use crate::count_index::Needed;
        let (kinds, consent) = (channel.kinds, channel.consent.map(|c| (c, purpose)));
        let marketing = purpose == ConsentPurpose::Marketing;
        let needed: Vec<Needed> = required
            .iter()
            .map(|f| match f {
                VarField::Name | VarField::FirstName => Needed::Name,
                VarField::Company => Needed::Company,
                VarField::Language => Needed::Language,
                VarField::Email => Needed::Identity(&[IdentityKind::Email]),
                VarField::Phone => {
                    Needed::Identity(&[IdentityKind::Phone, IdentityKind::WhatsappPhone])
                }
                VarField::Attr(key) => Needed::Attr(key.clone()),
            })
            .collect();
        let f = filter.clone();
        let b = self
            .with_current_index(org, move |ix| {
                ix.breakdown(&f, kinds, consent, marketing, &needed)
            })
            .await?;
        let n = |v: u64| v as i64;
        Some(Breakdown {
            total: n(b.total),
            eligible: n(b.total - b.no_identity - b.blocked - b.opted_out - b.no_consent),
            opted_out: n(b.opted_out),
            no_consent: n(b.no_consent),
            blocked: n(b.blocked),
            no_identity: n(b.no_identity),
            missing_variables: n(b.missing),
        })
    }

    /// The breakdown by SQL (a slow one earns the organisation a count index).
    pub(crate) async fn breakdown_in_sql(
        &self,
        org: OrgId,
        filter: &SegmentFilter,
        channel: SendChannel,
        purpose: ConsentPurpose,
        required: &[VarField],
    ) -> Result<Breakdown, Problem> {
        let started = std::time::Instant::now();
        let b = store::audience_breakdown(
            &self.db,
            org,
            filter,
            &store::AudienceAsk {
                consent: channel.consent.map(|c| (c.as_str(), purpose.as_str())),
                kinds: channel.kinds,
            },
            purpose == ConsentPurpose::Marketing,
            required,
        )
        .await
        .map_err(db_err)?;
        self.counted_in_sql(org, started.elapsed());
        Ok(b)
    }

    /// Whether anyone in the audience may receive a send of `purpose` (stops at the first).
    pub async fn audience_any_eligible(
        &self,
        org: OrgId,
        spec: &AudienceSpec,
        channel: SendChannel,
        purpose: ConsentPurpose,
    ) -> Result<bool, Problem> {
        let filter = self.audience_filter(org, spec).await?;
        store::audience_any_eligible(
            &self.db,
            org,
            &filter,
            &store::AudienceAsk {
                consent: channel.consent.map(|c| (c.as_str(), purpose.as_str())),
                kinds: channel.kinds,
            },
            purpose == ConsentPurpose::Marketing,
        )
        .await
        .map_err(db_err)
    }

    /// The current facts of these contacts for a send (contacts deleted since are absent).
    pub async fn send_context(
        &self,
        org: OrgId,
        ids: &[ContactId],
        channel: SendChannel,
        purpose: ConsentPurpose,
    ) -> Result<HashMap<ContactId, SendContact>, Problem> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = store::send_context(
            &self.db,
            org,
            ids,
            &store::AudienceAsk {
                consent: channel.consent.map(|c| (c.as_str(), purpose.as_str())),
                kinds: channel.kinds,
            },
        )
        .await
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|c| (c.id, c)).collect())
    }
}
