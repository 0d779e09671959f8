//! An in-memory index of one organisation's contacts that counts segment filters and campaign
//! audience breakdowns without the database: a filter over a million contacts is a handful of
//! bit operations and column scans (a few milliseconds) instead of a table scan with JSON
//! extraction and per-contact identity and consent lookups (hundreds to thousands).
//!
//! The index holds, per contact position `0..len`: favorite and blocked bits, whether the name,
//! company and language are empty, `created_at`, tag and group memberships (as position lists),
//! the identity kinds the contact has, the current consent state per channel and purpose, and
//! one column per defined attribute (strings dictionary-coded, numbers as `f64`,
//! booleans and multi-choice options as bit sets). [`CountIndex::count`] evaluates a
//! [`SegmentFilter`] exactly as its SQL ([`SegmentFilter::to_sql`]) does on both backends; a
//! condition it cannot answer the same way (a case-insensitive text `contains`, whose `LOWER`
//! differs between SQLite and PostgreSQL) makes it answer `None`, and the caller asks SQL.
//!
//! Whether an index is still the truth is the service's business (`service/counts.rs`).

use std::collections::HashMap;

use serde_json::{Map, Value};
use wamage_kernel::Timestamp;

use crate::{
    consent::{ConsentChannel, ConsentPurpose, ConsentStatus},
    model::{AttrType, ContactId, GroupId, IdentityKind, TagId},
    segment::{AttrOp, Cond, ConsentState, Lit, SegmentFilter},
};

/// A fixed-length set of contact positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitSet {
    words: Vec<u64>,
    len: usize,
}

impl BitSet {
    pub fn empty(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    pub fn full(len: usize) -> Self {
        let mut s = Self {
            words: vec![u64::MAX; len.div_ceil(64)],
            len,
        };
        s.clear_tail();
        s
    }

    /// The set of `positions` (each below `len`).
    pub fn from_positions(len: usize, positions: &[u32]) -> Self {
        let mut s = Self::empty(len);
        for &p in positions {
            s.insert(p as usize);
        }
        s
    }

    /// The positions `i` for which `pred(i)` holds.
    pub fn from_fn(len: usize, mut pred: impl FnMut(usize) -> bool) -> Self {
        let mut s = Self::empty(len);
        for (w, word) in s.words.iter_mut().enumerate() {
            let base = w * 64;
            let mut bits = 0u64;
            for b in 0..64.min(len - base) {
                bits |= u64::from(pred(base + b)) << b;
            }
            *word = bits;
        }
        s
    }

    pub fn insert(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    #[cfg(test)]
    pub fn contains(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// How many positions are in the set.
    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn and_with(&mut self, other: &Self) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    pub fn or_with(&mut self, other: &Self) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// Every position not in the set.
    pub fn negate(&mut self) {
        for w in &mut self.words {
            *w = !*w;
        }
        self.clear_tail();
    }

    fn negated(mut self) -> Self {
        self.negate();
        self
    }

    fn clear_tail(&mut self) {
        let rest = self.len % 64;
        if rest != 0
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << rest) - 1;
        }
    }

    /// Bytes held.
    fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// One attribute's values, typed as its definition.
#[derive(Debug)]
struct AttrColumn {
    ty: AttrType,
    /// Contacts with a value that is not JSON `null` (`is_set`).
    set: BitSet,
    values: Values,
}

#[derive(Debug)]
enum Values {
    /// Text, date and single choice: the code of each contact's string value in `dict`
    /// (0: no string value).
    Str {
        codes: Vec<u32>,
        dict: Vec<String>,
        lookup: HashMap<String, u32>,
    },
    /// Number: each contact's value, NaN when it has no number.
    Num(Vec<f64>),
    /// Boolean: contacts whose value is `true`, and `false`.
    Bool { yes: BitSet, no: BitSet },
    /// Multi choice: the contacts whose list holds each option.
    Multi(HashMap<String, Vec<u32>>),
}

/// The current consent state of one channel and purpose.
#[derive(Debug)]
struct ConsentColumn {
    /// Contacts with any ledger entry.
    any: BitSet,
    opted_in: BitSet,
    opted_out: BitSet,
}

/// The count index of one organisation (see the module docs).
#[derive(Debug)]
pub struct CountIndex {
    len: usize,
    favorite: BitSet,
    blocked: BitSet,
    /// Contacts without a name, company or language (for template variables).
    no_name: BitSet,
    no_company: BitSet,
    no_language: BitSet,
    created_at: Vec<i64>,
    groups: HashMap<GroupId, Vec<u32>>,
    tags: HashMap<TagId, Vec<u32>>,
    attrs: HashMap<String, AttrColumn>,
    consent: HashMap<(ConsentChannel, ConsentPurpose), ConsentColumn>,
    /// Contacts with at least one identity of each kind.
    kinds: HashMap<IdentityKind, BitSet>,
}

/// What [`CountIndex::breakdown`] counts of an audience (see `store::audience_breakdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakdownCounts {
    pub total: u64,
    /// No identity of the channel's kinds.
    pub no_identity: u64,
    /// Reachable but blocked.
    pub blocked: u64,
    /// Reachable, not blocked, opted out of the purpose on the channel.
    pub opted_out: u64,
    /// Reachable, not blocked, no ledger entry (counted for marketing on channels with consent).
    pub no_consent: u64,
    /// Eligible but without a value for one of the required fields.
    pub missing: u64,
}

/// A contact field a template variable needs (see `VarField`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needed {
    Name,
    Company,
    Language,
    /// An identity of one of these kinds.
    Identity(&'static [IdentityKind]),
    /// A custom attribute with a non-empty value.
    Attr(String),
}

impl CountIndex {
    /// Contacts indexed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Roughly how many bytes the index holds.
    pub fn bytes(&self) -> usize {
        let mut n = self.favorite.bytes() + self.blocked.bytes() + self.created_at.len() * 8;
        n += self.groups.values().map(|v| v.len() * 4).sum::<usize>();
        n += self.tags.values().map(|v| v.len() * 4).sum::<usize>();
        for c in self.attrs.values() {
            n += c.set.bytes()
                + match &c.values {
                    Values::Str { codes, dict, .. } => {
                        codes.len() * 4 + dict.iter().map(|s| s.len() * 2 + 48).sum::<usize>()
                    }
                    Values::Num(v) => v.len() * 8,
                    Values::Bool { yes, no } => yes.bytes() + no.bytes(),
                    Values::Multi(m) => m.values().map(|v| v.len() * 4 + 32).sum(),
                };
        }
        n + (self.consent.len() * 3 + self.kinds.len() + 3) * self.favorite.bytes()
    }

    /// How many contacts `filter` matches, or `None` when the index cannot answer it exactly
    /// as SQL would (ask the database).
    pub fn count(&self, filter: &SegmentFilter) -> Option<u64> {
        self.eval(filter).map(|s| s.count())
    }

    /// The breakdown of the audience `filter` for a send on a channel reaching contacts through
    /// `kinds`, with consent kept in the ledger under `consent` (`None`: a channel without
    /// one); `no_consent` is counted only when `marketing`. `None` when the filter is not one
    /// the index answers.
    pub fn breakdown(
        &self,
        filter: &SegmentFilter,
        kinds: &[IdentityKind],
        consent: Option<(ConsentChannel, ConsentPurpose)>,
        marketing: bool,
        needed: &[Needed],
    ) -> Option<BreakdownCounts> {
        let mut missing_any = BitSet::empty(self.len);
        for n in needed {
            missing_any.or_with(&self.missing(n)?);
        }
        let audience = self.eval(filter)?;
        let mut reachable = BitSet::empty(self.len);
        for k in kinds {
            if let Some(s) = self.kinds.get(k) {
                reachable.or_with(s);
            }
        }
        reachable.and_with(&audience);
        let mut blocked = reachable.clone();
        blocked.and_with(&self.blocked);
        let mut ok = reachable.clone();
        ok.and_with(&self.blocked.clone().negated());
        let col = consent.and_then(|key| self.consent.get(&key));
        let opted_out = col.map_or(0, |c| {
            let mut s = ok.clone();
            s.and_with(&c.opted_out);
            s.count()
        });
        // Eligible: not opted out and, where consent is needed, with an entry.
        let mut eligible = ok.clone();
        if let Some(c) = col {
            eligible.and_with(&c.opted_out.clone().negated());
        }
        let no_consent = match (consent, marketing) {
            (Some(_), true) => {
                let mut s = ok;
                match col {
                    Some(c) => {
                        s.and_with(&c.any.clone().negated());
                        eligible.and_with(&c.any);
                    }
                    None => eligible = BitSet::empty(self.len),
                }
                s.count()
            }
            _ => 0,
        };
        eligible.and_with(&missing_any);
        let missing = eligible.count();
        let total = audience.count();
        Some(BreakdownCounts {
            total,
            no_identity: total - reachable.count(),
            blocked: blocked.count(),
            opted_out,
            no_consent,
            missing,
        })
    }

    /// The contacts without a value for `n`; `None` for an attribute the index does not hold.
    fn missing(&self, n: &Needed) -> Option<BitSet> {
        Some(match n {
            Needed::Name => self.no_name.clone(),
            Needed::Company => self.no_company.clone(),
            Needed::Language => self.no_language.clone(),
            Needed::Identity(kinds) => {
                let mut has = BitSet::empty(self.len);
                for k in *kinds {
                    if let Some(s) = self.kinds.get(k) {
                        has.or_with(s);
                    }
                }
                has.negated()
            }
            Needed::Attr(key) => {
                // Absent, JSON null or the empty string (a value of another type is never
                // empty as text).
                let col = self.attrs.get(key)?;
                let mut out = col.set.clone().negated();
                if let Values::Str { codes, lookup, .. } = &col.values
                    && let Some(&empty) = lookup.get("")
                {
                    out.or_with(&BitSet::from_fn(self.len, |i| codes[i] == empty));
                }
                out
            }
        })
    }

    fn eval(&self, f: &SegmentFilter) -> Option<BitSet> {
        Some(match f {
            SegmentFilter::All(items) => {
                let mut acc = BitSet::full(self.len);
                for i in items {
                    acc.and_with(&self.eval(i)?);
                }
                acc
            }
            SegmentFilter::Any(items) => {
                let mut acc = BitSet::empty(self.len);
                for i in items {
                    acc.or_with(&self.eval(i)?);
                }
                acc
            }
            SegmentFilter::Not(inner) => self.eval(inner)?.negated(),
            SegmentFilter::Cond(c) => self.cond(c)?,
        })
    }

    fn members(&self, list: Option<&Vec<u32>>, yes: bool) -> BitSet {
        let s = BitSet::from_positions(self.len, list.map_or(&[][..], Vec::as_slice));
        if yes { s } else { s.negated() }
    }

    fn cond(&self, c: &Cond) -> Option<BitSet> {
        let len = self.len;
        Some(match c {
            Cond::Tag { id, has } | Cond::TagProbe { id, has } => {
                self.members(self.tags.get(id), *has)
            }
            Cond::Group { id, member } | Cond::GroupProbe { id, member } => {
                self.members(self.groups.get(id), *member)
            }
            Cond::Favorite(b) => pick(&self.favorite, *b),
            Cond::Blocked(b) => pick(&self.blocked, *b),
            Cond::CreatedBefore(t) => BitSet::from_fn(len, |i| self.created_at[i] < t.0),
            Cond::CreatedAfter(t) => BitSet::from_fn(len, |i| self.created_at[i] > t.0),
            Cond::Consent {
                channel,
                purpose,
                state,
            } => match (self.consent.get(&(*channel, *purpose)), state) {
                (None, ConsentState::None) => BitSet::full(len),
                (None, _) => BitSet::empty(len),
                (Some(c), ConsentState::None) => c.any.clone().negated(),
                (Some(c), ConsentState::OptedIn) => c.opted_in.clone(),
                (Some(c), ConsentState::OptedOut) => c.opted_out.clone(),
            },
            Cond::Attr { key, ty, op } => {
                // A definition made (or made again with another type) since the index was
                // built: the database knows better.
                let col = self.attrs.get(key).filter(|c| c.ty == *ty)?;
                self.attr(col, op)?
            }
        })
    }

    fn attr(&self, col: &AttrColumn, op: &AttrOp) -> Option<BitSet> {
        let len = self.len;
        Some(match (op, &col.values) {
            (AttrOp::IsSet, _) => col.set.clone(),
            (AttrOp::IsNotSet, _) => col.set.clone().negated(),
            (AttrOp::Neq(l), _) => self.attr(col, &AttrOp::Eq(l.clone()))?.negated(),
            (AttrOp::Eq(Lit::Str(s)), Values::Str { codes, lookup, .. }) => match lookup.get(s) {
                Some(&code) => BitSet::from_fn(len, |i| codes[i] == code),
                None => BitSet::empty(len),
            },
            (
                AttrOp::Gt(Lit::Str(s)) | AttrOp::Lt(Lit::Str(s)),
                Values::Str { codes, dict, .. },
            ) => {
                let gt = matches!(op, AttrOp::Gt(_));
                // Which codes pass, then one pass over the contacts. Code 0 (no string)
                // never does: SQL compares NULL.
                let pass: Vec<bool> = dict
                    .iter()
                    .enumerate()
                    .map(|(code, v)| {
                        code != 0
                            && if gt {
                                v.as_str() > s.as_str()
                            } else {
                                v.as_str() < s.as_str()
                            }
                    })
                    .collect();
                BitSet::from_fn(len, |i| pass[codes[i] as usize])
            }
            (AttrOp::Eq(Lit::Num(x)), Values::Num(v)) => BitSet::from_fn(len, |i| v[i] == *x),
            (AttrOp::Gt(Lit::Num(x)), Values::Num(v)) => BitSet::from_fn(len, |i| v[i] > *x),
            (AttrOp::Lt(Lit::Num(x)), Values::Num(v)) => BitSet::from_fn(len, |i| v[i] < *x),
            (AttrOp::Eq(Lit::Bool(b)), Values::Bool { yes, no }) => {
                if *b {
                    yes.clone()
                } else {
                    no.clone()
                }
            }
            (AttrOp::Contains(opt), Values::Multi(m)) => self.members(m.get(opt), true),
            // Text `contains` (LOWER is ASCII-only on SQLite, Unicode on PostgreSQL) and
            // anything typed unlike the column.
            _ => return None,
        })
    }
}

fn pick(set: &BitSet, yes: bool) -> BitSet {
    if yes {
        set.clone()
    } else {
        set.clone().negated()
    }
}

/// What the index keeps of one contact's row.
pub struct ContactFacts<'a> {
    pub id: ContactId,
    pub favorite: bool,
    pub blocked: bool,
    pub created_at: Timestamp,
    pub attributes: &'a Map<String, Value>,
    /// `name` is empty; `company` and `language` are absent or empty.
    pub no_name: bool,
    pub no_company: bool,
    pub no_language: bool,
}

/// Builds a [`CountIndex`] from the rows of the database: contacts first, then memberships and
/// consent entries in ledger order.
pub struct Builder {
    defs: HashMap<String, AttrType>,
    pos: HashMap<ContactId, u32>,
    favorite: Vec<u32>,
    blocked: Vec<u32>,
    no_name: Vec<u32>,
    no_company: Vec<u32>,
    no_language: Vec<u32>,
    created_at: Vec<i64>,
    groups: HashMap<GroupId, Vec<u32>>,
    tags: HashMap<TagId, Vec<u32>>,
    cols: HashMap<String, ColumnBuilder>,
    /// The latest consent status per (contact position, channel, purpose).
    consent: HashMap<(ConsentChannel, ConsentPurpose), HashMap<u32, ConsentStatus>>,
    kinds: HashMap<IdentityKind, Vec<u32>>,
}

struct ColumnBuilder {
    ty: AttrType,
    set: Vec<u32>,
    values: ValuesBuilder,
}

enum ValuesBuilder {
    Str {
        codes: Vec<u32>,
        dict: Vec<String>,
        lookup: HashMap<String, u32>,
    },
    Num(Vec<f64>),
    Bool {
        yes: Vec<u32>,
        no: Vec<u32>,
    },
    Multi(HashMap<String, Vec<u32>>),
}

impl Builder {
    /// A builder for an organisation whose attribute definitions are `defs` (key → type).
    pub fn new(defs: HashMap<String, AttrType>) -> Self {
        let cols = defs
            .iter()
            .map(|(k, ty)| {
                let values = match ty {
                    AttrType::Text | AttrType::Date | AttrType::SingleChoice => {
                        ValuesBuilder::Str {
                            codes: Vec::new(),
                            dict: vec![String::new()],
                            lookup: HashMap::new(),
                        }
                    }
                    AttrType::Number => ValuesBuilder::Num(Vec::new()),
                    AttrType::Boolean => ValuesBuilder::Bool {
                        yes: Vec::new(),
                        no: Vec::new(),
                    },
                    AttrType::MultiChoice => ValuesBuilder::Multi(HashMap::new()),
                };
                (
                    k.clone(),
                    ColumnBuilder {
                        ty: *ty,
                        set: Vec::new(),
                        values,
                    },
                )
            })
            .collect();
        Self {
            defs,
            pos: HashMap::new(),
            favorite: Vec::new(),
            blocked: Vec::new(),
            no_name: Vec::new(),
            no_company: Vec::new(),
            no_language: Vec::new(),
            created_at: Vec::new(),
            groups: HashMap::new(),
            tags: HashMap::new(),
            cols,
            consent: HashMap::new(),
            kinds: HashMap::new(),
        }
    }

    pub fn contact(&mut self, c: &ContactFacts<'_>) {
        let Ok(p) = u32::try_from(self.created_at.len()) else {
            return;
        };
        if self.pos.insert(c.id, p).is_some() {
            return; // never: ids are unique
        }
        for (yes, list) in [
            (c.favorite, &mut self.favorite),
            (c.blocked, &mut self.blocked),
            (c.no_name, &mut self.no_name),
            (c.no_company, &mut self.no_company),
            (c.no_language, &mut self.no_language),
        ] {
            if yes {
                list.push(p);
            }
        }
        self.created_at.push(c.created_at.0);
        for (key, col) in &mut self.cols {
            let v = c.attributes.get(key).filter(|v| !v.is_null());
            if v.is_some() {
                col.set.push(p);
            }
            match &mut col.values {
                ValuesBuilder::Str {
                    codes,
                    dict,
                    lookup,
                } => codes.push(match v {
                    Some(Value::String(s)) => match lookup.get(s.as_str()) {
                        Some(&c) => c,
                        None => {
                            let c = dict.len() as u32;
                            dict.push(s.clone());
                            lookup.insert(s.clone(), c);
                            c
                        }
                    },
                    _ => 0,
                }),
                ValuesBuilder::Num(vals) => {
                    vals.push(match v {
                        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
                        _ => f64::NAN,
                    });
                }
                ValuesBuilder::Bool { yes, no } => match v {
                    Some(Value::Bool(true)) => yes.push(p),
                    Some(Value::Bool(false)) => no.push(p),
                    _ => {}
                },
                ValuesBuilder::Multi(options) => {
                    if let Some(Value::Array(items)) = v {
                        let mut seen: Vec<&str> = Vec::new();
                        for item in items {
                            if let Value::String(s) = item
                                && !seen.contains(&s.as_str())
                            {
                                seen.push(s);
                                options.entry(s.clone()).or_default().push(p);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A group membership; contacts not seen (added since the contacts were read) are left
    /// out: the write that added them invalidates the index anyway.
    pub fn group_member(&mut self, group: GroupId, contact: ContactId) {
        if let Some(&p) = self.pos.get(&contact) {
            self.groups.entry(group).or_default().push(p);
        }
    }

    pub fn tag_link(&mut self, tag: TagId, contact: ContactId) {
        if let Some(&p) = self.pos.get(&contact) {
            self.tags.entry(tag).or_default().push(p);
        }
    }

    /// An identity of `contact`.
    pub fn identity(&mut self, contact: ContactId, kind: IdentityKind) {
        if let Some(&p) = self.pos.get(&contact) {
            self.kinds.entry(kind).or_default().push(p);
        }
    }

    /// A consent ledger entry; entries come oldest first, so the last one is the state.
    pub fn consent(
        &mut self,
        contact: ContactId,
        channel: ConsentChannel,
        purpose: ConsentPurpose,
        status: ConsentStatus,
    ) {
        if let Some(&p) = self.pos.get(&contact) {
            self.consent
                .entry((channel, purpose))
                .or_default()
                .insert(p, status);
        }
    }

    pub fn finish(self) -> CountIndex {
        let len = self.created_at.len();
        let set = |v: &[u32]| BitSet::from_positions(len, v);
        let attrs = self
            .cols
            .into_iter()
            .map(|(k, c)| {
                let values = match c.values {
                    ValuesBuilder::Str {
                        codes,
                        dict,
                        lookup,
                    } => Values::Str {
                        codes,
                        dict,
                        lookup,
                    },
                    ValuesBuilder::Num(v) => Values::Num(v),
                    ValuesBuilder::Bool { yes, no } => Values::Bool {
                        yes: set(&yes),
                        no: set(&no),
                    },
                    ValuesBuilder::Multi(m) => Values::Multi(m),
                };
                (
                    k,
                    AttrColumn {
                        ty: c.ty,
                        set: set(&c.set),
                        values,
                    },
                )
            })
            .collect();
        let consent = self
            .consent
            .into_iter()
            .map(|(key, states)| {
                let mut col = ConsentColumn {
                    any: BitSet::empty(len),
                    opted_in: BitSet::empty(len),
                    opted_out: BitSet::empty(len),
                };
                for (p, status) in states {
                    col.any.insert(p as usize);
                    match status {
                        ConsentStatus::OptedIn => col.opted_in.insert(p as usize),
                        ConsentStatus::OptedOut => col.opted_out.insert(p as usize),
                    }
                }
                (key, col)
            })
            .collect();
        drop(self.defs);
        let kinds = self.kinds.iter().map(|(k, v)| (*k, set(v))).collect();
        CountIndex {
            len,
            favorite: set(&self.favorite),
            blocked: set(&self.blocked),
            no_name: set(&self.no_name),
            no_company: set(&self.no_company),
            no_language: set(&self.no_language),
            created_at: self.created_at,
            groups: self.groups,
            tags: self.tags,
            attrs,
            consent,
            kinds,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bit_sets_keep_their_length() {
        for len in [0, 1, 63, 64, 65, 130] {
            let mut s = BitSet::empty(len);
            assert_eq!(s.count(), 0);
            s.negate();
            assert_eq!(s.count(), len as u64, "len {len}");
            assert_eq!(BitSet::full(len), s);
            let odd = BitSet::from_fn(len, |i| i % 2 == 1);
            assert_eq!(odd.count(), (len / 2) as u64);
            let mut even = odd.clone();
            even.negate();
            assert_eq!(even.count(), len.div_ceil(2) as u64);
            let mut none = odd.clone();
            none.and_with(&even);
            assert_eq!(none.count(), 0);
            let mut all = odd;
            all.or_with(&even);
            assert_eq!(all, BitSet::full(len));
        }
        let s = BitSet::from_positions(100, &[3, 64, 99]);
        assert!(s.contains(3) && s.contains(64) && s.contains(99) && !s.contains(4));
    }

    fn index() -> (CountIndex, Vec<ContactId>, GroupId, TagId) {
        let defs = HashMap::from([
            ("city".to_owned(), AttrType::Text),
            ("age".to_owned(), AttrType::Number),
            ("vip".to_owned(), AttrType::Boolean),
            ("since".to_owned(), AttrType::Date),
            ("likes".to_owned(), AttrType::MultiChoice),
        ]);
        let mut b = Builder::new(defs);
        let ids: Vec<ContactId> = (0..6).map(|_| ContactId::new()).collect();
        let attrs = [
            json!({"city": "Lagos", "age": 30, "vip": true, "since": "2024-01-05", "likes": ["a", "b"]}),
            json!({"city": "Accra", "age": 41.5, "vip": false, "likes": ["b"]}),
            json!({"city": "Lagos", "age": null}),
            json!({"city": 7, "age": "x", "vip": "yes", "since": "2023-12-31"}),
            json!({}),
            json!({"likes": []}),
        ];
        for (i, (id, a)) in ids.iter().zip(&attrs).enumerate() {
            b.contact(&ContactFacts {
                id: *id,
                favorite: i == 0,
                blocked: i == 5,
                created_at: Timestamp::from_millis(1000 * i as i64),
                attributes: a.as_object().unwrap(),
                no_name: false,
                no_company: true,
                no_language: true,
            });
        }
        let (g, t) = (GroupId::new(), TagId::new());
        for i in [0, 2, 4] {
            b.group_member(g, ids[i]);
        }
        b.group_member(g, ContactId::new()); // unknown: ignored
        b.tag_link(t, ids[1]);
        let (w, m) = (ConsentChannel::Whatsapp, ConsentPurpose::Marketing);
        b.consent(ids[0], w, m, ConsentStatus::OptedIn);
        b.consent(ids[1], w, m, ConsentStatus::OptedIn);
        b.consent(ids[1], w, m, ConsentStatus::OptedOut);
        (b.finish(), ids, g, t)
    }

    fn attr(key: &str, ty: AttrType, op: AttrOp) -> SegmentFilter {
        SegmentFilter::Cond(Cond::Attr {
            key: key.to_owned(),
            ty,
            op,
        })
    }

    #[test]
    fn conditions_count_as_their_sql_does() {
        use AttrType::*;
        let (ix, _, g, t) = index();
        let s = |v: &str| Lit::Str(v.to_owned());
        let cases: Vec<(SegmentFilter, u64)> = vec![
            (SegmentFilter::All(vec![]), 6),
            (SegmentFilter::Any(vec![]), 0),
            (attr("city", Text, AttrOp::Eq(s("Lagos"))), 2),
            (attr("city", Text, AttrOp::Eq(s("Nowhere"))), 0),
            // neq matches contacts without a (string) value too.
            (attr("city", Text, AttrOp::Neq(s("Lagos"))), 4),
            // 7 is set (not null) but not text.
            (attr("city", Text, AttrOp::IsSet), 4),
            (attr("age", Number, AttrOp::IsSet), 3),
            (attr("age", Number, AttrOp::IsNotSet), 3),
            (attr("age", Number, AttrOp::Gt(Lit::Num(30.0))), 1),
            (attr("age", Number, AttrOp::Lt(Lit::Num(100.0))), 2),
            (attr("age", Number, AttrOp::Eq(Lit::Num(30.0))), 1),
            (attr("age", Number, AttrOp::Neq(Lit::Num(30.0))), 5),
            (attr("vip", Boolean, AttrOp::Eq(Lit::Bool(false))), 1),
            (attr("vip", Boolean, AttrOp::Neq(Lit::Bool(true))), 5),
            (attr("since", Date, AttrOp::Gt(s("2023-12-31"))), 1),
            (attr("since", Date, AttrOp::Lt(s("2024-01-01"))), 1),
            (attr("likes", MultiChoice, AttrOp::Contains("b".into())), 2),
            (attr("likes", MultiChoice, AttrOp::IsSet), 3),
            (
                SegmentFilter::Cond(Cond::Group {
                    id: g,
                    member: true,
                }),
                3,
            ),
            (
                SegmentFilter::Cond(Cond::GroupProbe {
                    id: g,
                    member: false,
                }),
                3,
            ),
            (
                SegmentFilter::Cond(Cond::Tag {
                    id: TagId::new(),
                    has: true,
                }),
                0,
            ),
            (SegmentFilter::Cond(Cond::Tag { id: t, has: false }), 5),
            (SegmentFilter::Cond(Cond::Favorite(true)), 1),
            (SegmentFilter::Cond(Cond::Blocked(false)), 5),
            (
                SegmentFilter::Cond(Cond::CreatedBefore(Timestamp::from_millis(2000))),
                2,
            ),
            (
                SegmentFilter::Cond(Cond::CreatedAfter(Timestamp::from_millis(2000))),
                3,
            ),
            (
                SegmentFilter::Any(vec![
                    attr("city", Text, AttrOp::Eq(s("Accra"))),
                    SegmentFilter::All(vec![
                        SegmentFilter::Cond(Cond::Group {
                            id: g,
                            member: true,
                        }),
                        attr("city", Text, AttrOp::IsNotSet),
                    ]),
                ]),
                2,
            ),
            (
                SegmentFilter::Not(Box::new(attr("city", Text, AttrOp::Eq(s("Lagos"))))),
                4,
            ),
        ];
        for (f, want) in cases {
            assert_eq!(ix.count(&f), Some(want), "{f:?}");
        }
        let consent = |state| {
            SegmentFilter::Cond(Cond::Consent {
                channel: ConsentChannel::Whatsapp,
                purpose: ConsentPurpose::Marketing,
                state,
            })
        };
        assert_eq!(ix.count(&consent(ConsentState::OptedIn)), Some(1));
        assert_eq!(ix.count(&consent(ConsentState::OptedOut)), Some(1));
        assert_eq!(ix.count(&consent(ConsentState::None)), Some(4));
        let telegram = SegmentFilter::Cond(Cond::Consent {
            channel: ConsentChannel::Telegram,
            purpose: ConsentPurpose::Utility,
            state: ConsentState::None,
        });
        assert_eq!(ix.count(&telegram), Some(6));
    }

    #[test]
    fn what_the_index_cannot_answer_goes_to_the_database() {
        let (ix, ..) = index();
        // Case-insensitive text search, an attribute defined after the build, a type change.
        for f in [
            attr("city", AttrType::Text, AttrOp::Contains("lag".into())),
            attr("new", AttrType::Text, AttrOp::IsSet),
            attr("city", AttrType::Number, AttrOp::IsSet),
        ] {
            assert_eq!(ix.count(&f), None, "{f:?}");
            // Anywhere in the tree.
            assert_eq!(
                ix.count(&SegmentFilter::Any(vec![SegmentFilter::All(vec![]), f])),
                None
            );
        }
        assert!(ix.bytes() > 0);
        assert_eq!(ix.len(), 6);
    }
}
