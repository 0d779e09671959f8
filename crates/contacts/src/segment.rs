//! The segment filter language: one JSON shape used by saved segments (`/api/v1/segments`),
//! their previews and the contact list (`?segment=`), and later by campaigns.
//!
//! A filter is a tree. A **group** is `{ "all": [..] }` (every child matches) or
//! `{ "any": [..] }` (at least one child matches; an empty `any` matches nobody, an empty `all`
//! everybody). A **condition** is an object with a `field` and an `op`:
//!
//! | field | op | value |
//! |---|---|---|
//! | `tag` | `has`, `has_not` | a tag id of the organisation |
//! | `group` | `in`, `not_in` | a group id of the organisation |
//! | `favorite`, `blocked` | `is` | `true` / `false` |
//! | `attr:<key>` | see below | per the attribute's type |
//! | `consent` | `opted_in`, `opted_out`, `no_consent` | — (takes `channel` and `purpose`) |
//! | `created_at` | `before`, `after` | an RFC 3339 time |
//!
//! Attribute conditions are checked against the organisation's definition of `<key>`:
//! `is_set` / `is_not_set` (no value) work for every type; `text`: `eq`, `neq`, `contains`
//! (case-insensitive substring); `number`: `eq`, `neq`, `gt`, `lt` (a number); `date`: `eq`,
//! `neq`, `gt`, `lt` (`YYYY-MM-DD`); `boolean`: `eq`, `neq` (a boolean); `single_choice`: `eq`,
//! `neq` (one of the options); `multi_choice`: `contains` (one of the options). `neq` also
//! matches contacts without a value. Consent conditions look at the current state of the
//! channel and purpose (the newest ledger entry); `no_consent` means there is no entry at all.
//!
//! At most [`MAX_DEPTH`] levels of groups and [`MAX_CONDITIONS`] conditions. A filter is parsed
//! once into a [`SegmentFilter`] (every error carries its path, e.g. `filter.all[1].value`), then
//! compiled to a SQL condition on `contacts c` whose values are all bound parameters; the only
//! backend difference (JSON attribute access) is in [`attr_sql`].

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use wamage_kernel::{Timestamp, validate::Validator};
use wamage_platform::Backend;

use crate::{
    consent::{ConsentChannel, ConsentPurpose},
    model::{AttrDef, AttrType, GroupId, TagId},
    store::Arg,
};

/// Deepest nesting of groups (the top-level group is level 1).
pub const MAX_DEPTH: usize = 4;
/// Most conditions in one filter.
pub const MAX_CONDITIONS: usize = 50;

/// A parsed, valid filter.
#[derive(Debug, Clone, PartialEq)]
pub enum SegmentFilter {
    All(Vec<SegmentFilter>),
    Any(Vec<SegmentFilter>),
    Cond(Cond),
    /// Everybody the inner filter does not match (built by audiences for exclusions; not part
    /// of the JSON language).
    Not(Box<SegmentFilter>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Tag {
        id: TagId,
        has: bool,
    },
    Group {
        id: GroupId,
        member: bool,
    },
    Favorite(bool),
    Blocked(bool),
    Attr {
        key: String,
        ty: AttrType,
        op: AttrOp,
    },
    Consent {
        channel: ConsentChannel,
        purpose: ConsentPurpose,
        state: ConsentState,
    },
    CreatedBefore(Timestamp),
    CreatedAfter(Timestamp),
    /// Membership as a per-contact probe (`EXISTS`) rather than a list: for walks in id order
    /// (audiences), where a list would be built again for every page. Not part of the JSON
    /// language.
    GroupProbe {
        id: GroupId,
        member: bool,
    },
    TagProbe {
        id: TagId,
        has: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AttrOp {
    Eq(Lit),
    Neq(Lit),
    Gt(Lit),
    Lt(Lit),
    /// Text: a case-insensitive substring; multi_choice: one of the chosen options.
    Contains(String),
    IsSet,
    IsNotSet,
}

/// A value compared with an attribute, typed as the attribute is.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentState {
    OptedIn,
    OptedOut,
    None,
}

/// What a filter may refer to in the organisation.
pub struct FilterContext<'a> {
    pub defs: &'a HashMap<String, AttrDef>,
    pub tags: &'a HashSet<TagId>,
    pub groups: &'a HashSet<GroupId>,
    /// Whether unknown tag and group ids are errors (when saving) or simply match nobody
    /// (when resolving a saved segment whose tag or group was deleted since).
    pub strict_refs: bool,
}

struct Parser<'a, 'b> {
    ctx: &'a FilterContext<'b>,
    v: Validator,
    conditions: usize,
}

impl SegmentFilter {
    /// Parses and checks a filter; errors name their path under `root` (e.g. `filter`).
    pub fn parse(
        raw: &Value,
        root: &str,
        ctx: &FilterContext<'_>,
    ) -> Result<Self, wamage_kernel::Problem> {
        let mut p = Parser {
            ctx,
            v: Validator::new(),
            conditions: 0,
        };
        let out = p.node(raw, root, 1);
        if p.conditions > MAX_CONDITIONS {
            p.v.error(
                root,
                format!("must have at most {MAX_CONDITIONS} conditions"),
            );
        }
        p.v.finish()?;
        // Without errors every node parsed.
        Ok(out.unwrap_or(SegmentFilter::All(Vec::new())))
    }

    /// Compiles to a SQL condition on `contacts c` (organisation bound as `$1`), binding every
    /// value through `push`, which returns the placeholder.
    pub fn to_sql(&self, backend: Backend, push: &mut dyn FnMut(Arg) -> String) -> String {
        match self {
            Self::All(items) if items.is_empty() => "TRUE".to_owned(),
            Self::Any(items) if items.is_empty() => "FALSE".to_owned(),
            Self::All(items) => join(items, " AND ", backend, push),
            Self::Any(items) => join(items, " OR ", backend, push),
            Self::Cond(c) => c.to_sql(backend, push),
            Self::Not(inner) => format!("NOT COALESCE({}, FALSE)", inner.to_sql(backend, push)),
        }
    }
}

fn join(
    items: &[SegmentFilter],
    sep: &str,
    backend: Backend,
    push: &mut dyn FnMut(Arg) -> String,
) -> String {
    let parts: Vec<String> = items.iter().map(|i| i.to_sql(backend, push)).collect();
    format!("({})", parts.join(sep))
}

impl Parser<'_, '_> {
    fn node(&mut self, raw: &Value, path: &str, depth: usize) -> Option<SegmentFilter> {
        let Value::Object(map) = raw else {
            self.v
                .error(path, "must be an object: a group (all/any) or a condition");
            return None;
        };
        let group = if map.contains_key("all") {
            Some("all")
        } else if map.contains_key("any") {
            Some("any")
        } else {
            None
        };
        let Some(kind) = group else {
            self.conditions += 1;
            return self.cond(map, path).map(SegmentFilter::Cond);
        };
        if map.len() != 1 {
            self.v
                .error(path, "a group has exactly one key, all or any");
            return None;
        }
        if depth > MAX_DEPTH {
            self.v
                .error(path, format!("groups nest at most {MAX_DEPTH} levels deep"));
            return None;
        }
        let Some(Value::Array(items)) = map.get(kind) else {
            self.v.error(&format!("{path}.{kind}"), "must be a list");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(n) = self.node(item, &format!("{path}.{kind}[{i}]"), depth + 1) {
                out.push(n);
            }
        }
        Some(if kind == "all" {
            SegmentFilter::All(out)
        } else {
            SegmentFilter::Any(out)
        })
    }

    fn cond(&mut self, map: &serde_json::Map<String, Value>, path: &str) -> Option<Cond> {
        let Some(Value::String(field)) = map.get("field") else {
            self.v
                .error(&format!("{path}.field"), "must be a field name");
            return None;
        };
        let Some(Value::String(op)) = map.get("op") else {
            self.v.error(&format!("{path}.op"), "must be an operator");
            return None;
        };
        let allowed: &[&str] = match field.as_str() {
            "consent" => &["field", "op", "channel", "purpose"],
            _ => &["field", "op", "value"],
        };
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                self.v
                    .error(&format!("{path}.{k}"), "is not a key of this condition");
            }
        }
        let op_path = format!("{path}.op");
        let val_path = format!("{path}.value");
        let value = map.get("value");
        let bad_op = |v: &mut Validator, ops: &[&str]| {
            v.error(&op_path, format!("must be one of: {}", ops.join(", ")));
            None
        };
        match field.as_str() {
            "tag" => {
                let has = match op.as_str() {
                    "has" => true,
                    "has_not" => false,
                    _ => return bad_op(&mut self.v, &["has", "has_not"]),
                };
                let id = self.id::<TagId>(value, &val_path, "tag")?;
                self.unknown(self.ctx.tags.contains(&id), &val_path, "tag")?;
                Some(Cond::Tag { id, has })
            }
            "group" => {
                let member = match op.as_str() {
                    "in" => true,
                    "not_in" => false,
                    _ => return bad_op(&mut self.v, &["in", "not_in"]),
                };
                let id = self.id::<GroupId>(value, &val_path, "group")?;
                self.unknown(self.ctx.groups.contains(&id), &val_path, "group")?;
                Some(Cond::Group { id, member })
            }
            "favorite" | "blocked" => {
                if op != "is" {
                    return bad_op(&mut self.v, &["is"]);
                }
                let Some(Value::Bool(b)) = value else {
                    self.v.error(&val_path, "must be true or false");
                    return None;
                };
                Some(if field == "favorite" {
                    Cond::Favorite(*b)
                } else {
                    Cond::Blocked(*b)
                })
            }
            "created_at" => {
                let before = match op.as_str() {
                    "before" => true,
                    "after" => false,
                    _ => return bad_op(&mut self.v, &["before", "after"]),
                };
                let t = match value {
                    Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).ok(),
                    _ => None,
                };
                let Some(t) = t else {
                    self.v.error(&val_path, "must be an RFC 3339 time");
                    return None;
                };
                let t = Timestamp::from(t.with_timezone(&chrono::Utc));
                Some(if before {
                    Cond::CreatedBefore(t)
                } else {
                    Cond::CreatedAfter(t)
                })
            }
            "consent" => {
                let state = match op.as_str() {
                    "opted_in" => ConsentState::OptedIn,
                    "opted_out" => ConsentState::OptedOut,
                    "no_consent" => ConsentState::None,
                    _ => return bad_op(&mut self.v, &["opted_in", "opted_out", "no_consent"]),
                };
                let channel = self.db_enum(
                    map.get("channel"),
                    &format!("{path}.channel"),
                    ConsentChannel::ALL,
                    |c| c.as_str(),
                );
                let purpose = self.db_enum(
                    map.get("purpose"),
                    &format!("{path}.purpose"),
                    ConsentPurpose::ALL,
                    |p| p.as_str(),
                );
                Some(Cond::Consent {
                    channel: channel?,
                    purpose: purpose?,
                    state,
                })
            }
            f => {
                let Some(key) = f.strip_prefix("attr:") else {
                    self.v.error(
                        &format!("{path}.field"),
                        "must be tag, group, favorite, blocked, consent, created_at or attr:<key>",
                    );
                    return None;
                };
                let Some(def) = self.ctx.defs.get(key) else {
                    self.v.error(
                        &format!("{path}.field"),
                        format!("there is no attribute {key:?}"),
                    );
                    return None;
                };
                let op = self.attr_op(def, op, value, &op_path, &val_path)?;
                Some(Cond::Attr {
                    key: key.to_owned(),
                    ty: def.attr_type,
                    op,
                })
            }
        }
    }

    fn id<T: std::str::FromStr>(
        &mut self,
        value: Option<&Value>,
        path: &str,
        what: &str,
    ) -> Option<T> {
        let id = match value {
            Some(Value::String(s)) => s.parse::<T>().ok(),
            _ => None,
        };
        if id.is_none() {
            self.v.error(path, format!("must be a {what} id"));
        }
        id
    }

    fn unknown(&mut self, known: bool, path: &str, what: &str) -> Option<()> {
        if self.ctx.strict_refs && !known {
            self.v.error(path, format!("there is no such {what}"));
            return None;
        }
        Some(())
    }

    fn db_enum<T: Copy>(
        &mut self,
        value: Option<&Value>,
        path: &str,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Option<T> {
        let found = match value {
            Some(Value::String(s)) => all.iter().copied().find(|v| name(*v) == s),
            _ => None,
        };
        if found.is_none() {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            self.v
                .error(path, format!("must be one of: {}", names.join(", ")));
        }
        found
    }

    fn attr_op(
        &mut self,
        def: &AttrDef,
        op: &str,
        value: Option<&Value>,
        op_path: &str,
        val_path: &str,
    ) -> Option<AttrOp> {
        let ty = def.attr_type;
        let ops: &[&str] = match ty {
            AttrType::Text => &["eq", "neq", "contains", "is_set", "is_not_set"],
            AttrType::Number | AttrType::Date => &["eq", "neq", "gt", "lt", "is_set", "is_not_set"],
            AttrType::Boolean | AttrType::SingleChoice => &["eq", "neq", "is_set", "is_not_set"],
            AttrType::MultiChoice => &["contains", "is_set", "is_not_set"],
        };
        if !ops.contains(&op) {
            self.v.error(
                op_path,
                format!(
                    "for a {} attribute must be one of: {}",
                    ty.as_str(),
                    ops.join(", ")
                ),
            );
            return None;
        }
        if op == "is_set" || op == "is_not_set" {
            if value.is_some() {
                self.v.error(val_path, "is not taken by this operator");
                return None;
            }
            return Some(if op == "is_set" {
                AttrOp::IsSet
            } else {
                AttrOp::IsNotSet
            });
        }
        let Some(value) = value else {
            self.v.error(val_path, "is required");
            return None;
        };
        if op == "contains" {
            let Value::String(s) = value else {
                self.v.error(val_path, "must be a string");
                return None;
            };
            if ty == AttrType::MultiChoice && !def.options.contains(s) {
                self.v.error(
                    val_path,
                    format!(
                        "{s:?} is not one of the options: {}",
                        def.options.join(", ")
                    ),
                );
                return None;
            }
            if s.is_empty() || s.chars().count() > crate::model::ATTR_TEXT_MAX {
                self.v.error(val_path, "must be 1–1000 characters");
                return None;
            }
            return Some(AttrOp::Contains(s.clone()));
        }
        // A comparison value must be a valid value of the attribute.
        if let Err(e) = def.check_value(value) {
            self.v.error(val_path, e);
            return None;
        }
        let lit = match value {
            Value::String(s) => Lit::Str(s.clone()),
            Value::Bool(b) => Lit::Bool(*b),
            Value::Number(n) => match n.as_f64() {
                Some(f) => Lit::Num(f),
                None => {
                    self.v.error(val_path, "must be a number");
                    return None;
                }
            },
            _ => {
                self.v
                    .error(val_path, "must be a value of the attribute's type");
                return None;
            }
        };
        Some(match op {
            "eq" => AttrOp::Eq(lit),
            "neq" => AttrOp::Neq(lit),
            "gt" => AttrOp::Gt(lit),
            _ => AttrOp::Lt(lit),
        })
    }
}

fn lit_arg(l: &Lit) -> Arg {
    match l {
        Lit::Str(s) => Arg::Str(s.clone()),
        Lit::Num(n) => Arg::Float(*n),
        Lit::Bool(b) => Arg::Bool(*b),
    }
}

/// `%text%` for LIKE, with `\` escaping the wildcards.
fn like_pattern(s: &str) -> String {
    let mut out = String::from("%");
    for ch in s.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// The SQL for an attribute of `contacts c`: `(raw, typed)` where `raw` is the value as text or
/// NULL when absent (for is_set) and `typed` the value typed as `ty` compares (NULL when it has
/// another JSON type), plus the multi-choice membership test. The one place the backends differ.
struct AttrSql {
    raw: String,
    typed: String,
    /// The key's placeholder.
    path: String,
    /// For multi_choice `contains`: a condition given the option's placeholder.
    has_option: fn(&str, &str) -> String,
}

fn attr_sql(
    backend: Backend,
    key: &str,
    ty: AttrType,
    push: &mut dyn FnMut(Arg) -> String,
) -> AttrSql {
    match backend {
        Backend::Sqlite => {
            let p = push(Arg::Str(format!("$.{key}")));
            let e = format!("json_extract(c.attributes, {p})");
            let typed = match ty {
                AttrType::Number => format!(
                    "(CASE WHEN json_type(c.attributes, {p}) IN ('integer', 'real') THEN {e} END)"
                ),
                AttrType::Boolean => format!(
                    "(CASE WHEN json_type(c.attributes, {p}) IN ('true', 'false') THEN {e} END)"
                ),
                _ => format!("(CASE WHEN json_type(c.attributes, {p}) = 'text' THEN {e} END)"),
            };
            AttrSql {
                raw: e,
                path: p,
                typed,
                has_option: |path, opt| {
                    format!(
                        "EXISTS (SELECT 1 FROM json_each(c.attributes, {path}) j WHERE j.value = {opt})"
                    )
                },
            }
        }
        Backend::Postgres => {
            let p = push(Arg::Str(key.to_owned()));
            let typed = match ty {
                AttrType::Number => format!(
                    "(CASE WHEN jsonb_typeof(c.attributes->{p}) = 'number' \
                     THEN (c.attributes->>{p})::double precision END)"
                ),
                AttrType::Boolean => format!(
                    "(CASE WHEN jsonb_typeof(c.attributes->{p}) = 'boolean' \
                     THEN (c.attributes->>{p})::boolean END)"
                ),
                _ => format!(
                    "(CASE WHEN jsonb_typeof(c.attributes->{p}) = 'string' THEN c.attributes->>{p} END)"
                ),
            };
            AttrSql {
                raw: format!("(c.attributes->>{p})"),
                path: p,
                typed,
                has_option: |path, opt| {
                    format!(
                        "(jsonb_typeof(c.attributes->{path}) = 'array' \
                         AND (c.attributes->{path}) @> jsonb_build_array({opt}::text))"
                    )
                },
            }
        }
    }
}

impl Cond {
    fn to_sql(&self, backend: Backend, push: &mut dyn FnMut(Arg) -> String) -> String {
        match self {
            Self::Tag { id, has } => {
                let p = push(Arg::Tag(*id));
                let not = if *has { "" } else { "NOT " };
                format!(
                    "c.id {not}IN (SELECT contact_id FROM contact_tag_links \
                     WHERE org_id = $1 AND tag_id = {p})"
                )
            }
            Self::Group { id, member } => {
                let p = push(Arg::Group(*id));
                let not = if *member { "" } else { "NOT " };
                format!(
                    "c.id {not}IN (SELECT contact_id FROM contact_group_members \
                     WHERE org_id = $1 AND group_id = {p})"
                )
            }
            Self::GroupProbe { id, member } => {
                let p = push(Arg::Group(*id));
                let not = if *member { "" } else { "NOT " };
                format!(
                    "{not}EXISTS (SELECT 1 FROM contact_group_members m \
                     WHERE m.group_id = {p} AND m.contact_id = c.id)"
                )
            }
            Self::TagProbe { id, has } => {
                let p = push(Arg::Tag(*id));
                let not = if *has { "" } else { "NOT " };
                format!(
                    "{not}EXISTS (SELECT 1 FROM contact_tag_links l \
                     WHERE l.tag_id = {p} AND l.contact_id = c.id)"
                )
            }
            Self::Favorite(b) => format!("c.favorite = {}", push(Arg::Bool(*b))),
            Self::Blocked(b) => format!("c.blocked = {}", push(Arg::Bool(*b))),
            Self::CreatedBefore(t) => format!("c.created_at < {}", push(Arg::Time(*t))),
            Self::CreatedAfter(t) => format!("c.created_at > {}", push(Arg::Time(*t))),
            Self::Consent {
                channel,
                purpose,
                state,
            } => {
                let ch = push(Arg::Str(channel.as_str().to_owned()));
                let pu = push(Arg::Str(purpose.as_str().to_owned()));
                let entries = format!(
                    "FROM contact_consents k WHERE k.org_id = $1 AND k.contact_id = c.id \
                     AND k.channel = {ch} AND k.purpose = {pu}"
                );
                match state {
                    ConsentState::None => format!("NOT EXISTS (SELECT 1 {entries})"),
                    ConsentState::OptedIn | ConsentState::OptedOut => {
                        let status = push(Arg::Str(
                            if *state == ConsentState::OptedIn {
                                "opted_in"
                            } else {
                                "opted_out"
                            }
                            .to_owned(),
                        ));
                        format!(
                            "(SELECT k.status {entries} ORDER BY k.seq DESC LIMIT 1) = {status}"
                        )
                    }
                }
            }
            Self::Attr { key, ty, op } => {
                let sql = attr_sql(backend, key, *ty, push);
                match op {
                    AttrOp::IsSet => format!("{} IS NOT NULL", sql.raw),
                    AttrOp::IsNotSet => format!("{} IS NULL", sql.raw),
                    AttrOp::Eq(l) => format!("{} = {}", sql.typed, push(lit_arg(l))),
                    AttrOp::Neq(l) => {
                        format!("NOT COALESCE({} = {}, FALSE)", sql.typed, push(lit_arg(l)))
                    }
                    AttrOp::Gt(l) => format!("{} > {}", sql.typed, push(lit_arg(l))),
                    AttrOp::Lt(l) => format!("{} < {}", sql.typed, push(lit_arg(l))),
                    AttrOp::Contains(s) if *ty == AttrType::MultiChoice => {
                        let opt = push(Arg::Str(s.clone()));
                        (sql.has_option)(&sql.path, &opt)
                    }
                    AttrOp::Contains(s) => {
                        let p = push(Arg::Str(like_pattern(s)));
                        format!("LOWER({}) LIKE {p} ESCAPE '\\'", sql.typed)
                    }
                }
            }
        }
    }
}
