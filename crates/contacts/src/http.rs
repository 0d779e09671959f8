//! Contacts HTTP API: DTOs (`…In`, `…Patch`, `…Out`) and thin handlers — extract, call one
//! service function, map to an `…Out`. Any member reads and writes contacts, tags, groups and
//! consent (agents work with customers); deleting or merging contacts, attribute definitions and
//! settings need an admin.

use std::sync::Arc;

use axum::{
    extract::{Multipart, Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wamage_identity::{AdminCaller, Caller};
use wamage_kernel::{ApiJson, Problem, Timestamp, UserId, problem::ProblemBody};

use crate::{
    consent::{ConsentChannel, ConsentId, ConsentPurpose, ConsentSource, ConsentStatus},
    model::{AttrType, ContactId, GroupId, IdentityId, IdentityKind, ImportId, SegmentId, TagId},
    service::{AVATAR_MAX_BYTES, Contacts, IMPORT_MAX_BYTES, ImportUpload},
    store,
};

type Svc = State<Arc<Contacts>>;

// ---- DTOs --------------------------------------------------------------------------------

/// A channel identity as given: the value is parsed and normalised per kind (phones to E.164
/// with the organisation's default country, e-mails lower-cased, Telegram ids as 64-bit integers).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityIn {
    pub kind: IdentityKind,
    /// `(415) 555-2671`, `+44 20 7946 0958`, `ana@example.com`, `123456789`, …
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IdentityOut {
    pub id: IdentityId,
    pub kind: IdentityKind,
    /// The canonical value: E.164 for phones, lower-case for e-mails.
    pub value: String,
    pub created_at: Timestamp,
}

impl From<store::IdentityRow> for IdentityOut {
    fn from(i: store::IdentityRow) -> Self {
        Self {
            id: i.id,
            // Written by us through the same enum; the CHECK constraint keeps it valid.
            kind: IdentityKind::from_db(&i.kind).unwrap_or(IdentityKind::Phone),
            value: i.value,
            created_at: i.created_at,
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    /// 1–200 characters.
    pub name: String,
    #[serde(default)]
    pub company: Option<String>,
    /// A BCP-47 language tag (`en`, `pt-BR`).
    #[serde(default)]
    pub language: Option<String>,
    /// An IANA time zone name (`Europe/Lisbon`).
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub favorite: bool,
    #[serde(default)]
    pub blocked: bool,
    /// Values of the organisation's custom attributes, by key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    #[serde(default)]
    pub identities: Vec<IdentityIn>,
}

/// Changes to a contact: absent fields stay; `null` clears an optional field. `attributes`
/// merges: each key given is set, a `null` value removes that attribute.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub company: Option<Option<String>>,
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub time_zone: Option<Option<String>>,
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    pub favorite: Option<bool>,
    pub blocked: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ContactOut {
    pub id: ContactId,
    pub name: String,
    pub company: Option<String>,
    pub language: Option<String>,
    pub time_zone: Option<String>,
    pub notes: Option<String>,
    pub favorite: bool,
    pub blocked: bool,
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    pub identities: Vec<IdentityOut>,
    /// The contact's tags, by name.
    #[serde(default)]
    pub tags: Vec<ContactTagOut>,
    /// The groups the contact is in, by name.
    #[serde(default)]
    pub groups: Vec<ContactGroupOut>,
    /// URL of the contact's photo, usable directly in `<img src>` (no token needed: the URL is
    /// unguessable); `null` when it has none.
    #[serde(default)]
    pub avatar_url: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A tag as a contact shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactTagOut {
    pub id: TagId,
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
}

/// A group as a contact shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactGroupOut {
    pub id: GroupId,
    pub name: String,
}

/// A page of contacts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactPage {
    pub items: Vec<ContactOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactListQuery {
    /// Search as you type: every word must prefix-match the name, company, an identity (phone
    /// digits, e-mail) or a text attribute value.
    pub q: Option<String>,
    pub favorite: Option<bool>,
    pub blocked: Option<bool>,
    /// Only contacts with this tag.
    pub tag: Option<TagId>,
    /// Only contacts in this group.
    pub group: Option<GroupId>,
    /// Only contacts the saved segment matches now.
    pub segment: Option<SegmentId>,
    /// `name` (default), `-created_at` or `-updated_at`.
    pub sort: Option<String>,
    /// How many items to return (1–200, default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (with the same sort).
    pub cursor: Option<String>,
}

/// How an import finds an existing contact for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dedupe {
    /// The row's first phone (or WhatsApp phone) number.
    Phone,
    /// The row's first e-mail.
    Email,
    /// Never: every row creates a contact (an identity that already exists rejects the row).
    None,
}

/// What an import does with a row that matches an existing contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDuplicate {
    /// Set the row's non-empty fields, add its identities and tags.
    Update,
    /// Leave the contact as it is (counted as skipped).
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl ImportStatus {
    pub fn from_db(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => Self::Queued,
        }
    }
}

/// A CSV import and its live progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportOut {
    pub id: ImportId,
    pub status: ImportStatus,
    pub file_name: String,
    /// Data rows in the file; known when the import has completed.
    pub total_rows: Option<i64>,
    /// Rows processed so far (created + updated + skipped + failed).
    pub rows_done: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    /// Rows rejected; each is listed with its line and reason in `errors.csv`.
    pub failed: i64,
    /// Why a `failed` import stopped.
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImportList {
    pub items: Vec<ImportOut>,
}

/// The multipart form of an import.
#[derive(Debug, Clone, ToSchema)]
#[allow(dead_code)]
pub struct ImportForm {
    /// The CSV file (UTF-8, with a header row), at most 50 MB.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// JSON object: CSV column header → `name`, `company`, `language`, `time_zone`, `notes`,
    /// `phone`, `email`, `whatsapp_phone`, `telegram`, `attr:<key>`, `tag` or `ignore`. Each
    /// scalar field takes at most one column; tag cells list tag names separated by `;`.
    pub mapping: String,
    /// `phone` (default), `email` or `none`.
    pub dedupe: Option<Dedupe>,
    /// `skip` (default) or `update`.
    pub on_duplicate: Option<OnDuplicate>,
    /// A group every imported contact is added to.
    pub group_id: Option<GroupId>,
}

/// The photo upload form.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the multipart body; read field by field in the handler
pub struct ContactAvatarUpload {
    /// PNG, JPEG, GIF or WebP (judged by the bytes), at most 2 MB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The filtered view to export (the same filters as the list).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Search words, as in the list.
    pub q: Option<String>,
    pub favorite: Option<bool>,
    pub blocked: Option<bool>,
    /// Only contacts with this tag.
    pub tag: Option<TagId>,
    /// Only contacts in this group.
    pub group: Option<GroupId>,
    /// Only contacts the saved segment matches now.
    pub segment: Option<SegmentId>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingsOut {
    /// ISO 3166-1 alpha-2 country used to read phone numbers written without `+`.
    pub default_country: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsIn {
    pub default_country: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttrDefIn {
    /// snake_case, 1–40 characters; the key in a contact's `attributes`.
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub attr_type: AttrType,
    /// The allowed values of a choice attribute (empty for other types).
    #[serde(default)]
    pub options: Vec<String>,
    /// Every contact must have a value.
    #[serde(default)]
    pub required: bool,
}

/// The type and key of a definition never change (stored values depend on them).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttrDefPatch {
    pub label: Option<String>,
    pub options: Option<Vec<String>>,
    pub required: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttrDefOut {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub attr_type: AttrType,
    pub options: Vec<String>,
    pub required: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<store::AttrDefRow> for AttrDefOut {
    fn from(d: store::AttrDefRow) -> Self {
        Self {
            attr_type: AttrType::from_db(&d.attr_type),
            key: d.attr_key,
            label: d.label,
            options: d.options.0,
            required: d.required,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttrDefList {
    pub items: Vec<AttrDefOut>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagIn {
    /// 1–80 characters, unique in the organisation (ignoring case).
    pub name: String,
    /// `#RRGGBB`; stored lower-cased.
    pub color: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagPatch {
    pub name: Option<String>,
    pub color: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagOut {
    pub id: TagId,
    pub name: String,
    pub color: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<store::TagRow> for TagOut {
    fn from(t: store::TagRow) -> Self {
        Self {
            id: t.id,
            name: t.name,
            color: t.color,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TagList {
    pub items: Vec<TagOut>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupIn {
    /// 1–80 characters, unique in the organisation (ignoring case).
    pub name: String,
    /// At most 1000 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// Absent fields stay; `null` clears the description.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupOut {
    pub id: GroupId,
    pub name: String,
    pub description: Option<String>,
    /// How many contacts are in the group.
    pub member_count: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<store::GroupRow> for GroupOut {
    fn from(g: store::GroupRow) -> Self {
        Self {
            id: g.id,
            name: g.name,
            description: g.description,
            member_count: g.member_count,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupList {
    pub items: Vec<GroupOut>,
}

/// A segment filter: a tree of groups `{"all": [..]}` / `{"any": [..]}` (at most 4 levels) and
/// conditions (at most 50) — `{"field": "tag", "op": "has"|"has_not", "value": <tag id>}`,
/// `{"field": "group", "op": "in"|"not_in", "value": <group id>}`,
/// `{"field": "favorite"|"blocked", "op": "is", "value": <bool>}`,
/// `{"field": "attr:<key>", "op": "eq"|"neq"|"gt"|"lt"|"contains"|"is_set"|"is_not_set", "value": ..}`
/// (operators and value as the attribute's type allows),
/// `{"field": "consent", "op": "opted_in"|"opted_out"|"no_consent", "channel": .., "purpose": ..}`
/// (the current state), `{"field": "created_at", "op": "before"|"after", "value": <RFC 3339>}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"all": [
    {"field": "tag", "op": "has", "value": "0193a0e0-0000-7000-8000-000000000001"},
    {"any": [
        {"field": "attr:city", "op": "eq", "value": "Lisbon"},
        {"field": "consent", "op": "opted_in", "channel": "whatsapp", "purpose": "marketing"}
    ]}
]}))]
#[serde(transparent)]
pub struct SegmentFilterJson(pub Value);

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentIn {
    /// 1–80 characters, unique in the organisation (ignoring case).
    pub name: String,
    /// At most 1000 characters.
    #[serde(default)]
    pub description: Option<String>,
    #[schema(value_type = SegmentFilterJson)]
    pub filter: Value,
}

/// Absent fields stay; `null` clears the description.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "wamage_kernel::json::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[schema(value_type = Option<SegmentFilterJson>)]
    pub filter: Option<Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SegmentOut {
    pub id: SegmentId,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = SegmentFilterJson)]
    pub filter: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<store::SegmentRow> for SegmentOut {
    fn from(r: store::SegmentRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            description: r.description,
            filter: r.filter.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SegmentList {
    pub items: Vec<SegmentOut>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentPreviewIn {
    #[schema(value_type = SegmentFilterJson)]
    pub filter: Value,
}

/// How many contacts a segment matches.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SegmentCount {
    pub count: i64,
}

/// What a bulk request does to its contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    AddTags,
    RemoveTags,
    AddToGroups,
    RemoveFromGroups,
    /// Deletes the contacts (admin).
    Delete,
}

/// One action on up to 1000 contacts, all or nothing: an id the organisation does not have
/// answers 404 and changes nothing.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkIn {
    pub action: BulkAction,
    /// 1–1000 contacts.
    pub contact_ids: Vec<ContactId>,
    /// The tags to add or remove (for `add_tags`, `remove_tags`).
    #[serde(default)]
    pub tag_ids: Option<Vec<TagId>>,
    /// The groups to add to or remove from (for `add_to_groups`, `remove_from_groups`).
    #[serde(default)]
    pub group_ids: Option<Vec<GroupId>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkOut {
    /// How many contacts changed (gained or lost a tag or group, or were deleted).
    pub affected: u64,
}

/// The contact to merge into the one in the path (which survives).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeIn {
    pub other_id: ContactId,
}

/// An opt-in or opt-out to record.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentIn {
    pub channel: ConsentChannel,
    pub purpose: ConsentPurpose,
    pub status: ConsentStatus,
    /// Defaults to `agent` for a signed-in member, `api` for an API key.
    #[serde(default)]
    pub source: Option<ConsentSource>,
    /// At most 1000 characters.
    #[serde(default)]
    pub note: Option<String>,
}

/// One entry of a contact's consent ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentOut {
    pub id: ConsentId,
    pub channel: ConsentChannel,
    pub purpose: ConsentPurpose,
    pub status: ConsentStatus,
    pub source: ConsentSource,
    pub note: Option<String>,
    /// The member who recorded it (absent for API keys).
    pub recorded_by: Option<UserId>,
    pub at: Timestamp,
}

/// The standing consent for one channel and purpose: its newest entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentStateOut {
    pub channel: ConsentChannel,
    pub purpose: ConsentPurpose,
    pub status: ConsentStatus,
    pub source: ConsentSource,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentLedgerOut {
    /// One entry per channel and purpose that has any, by channel then purpose.
    pub current: Vec<ConsentStateOut>,
    /// Every entry, newest first.
    pub history: Vec<ConsentOut>,
}

// ---- handlers: contacts ------------------------------------------------------------------------

/// Contacts of the organisation: search, filter, sort, keyset pages.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", security(("bearer" = [])),
    params(ContactListQuery), responses((status = 200, body = ContactPage), (status = 422, body = ProblemBody)))]
pub async fn list_contacts(
    State(s): Svc,
    Caller(who): Caller,
    Query(q): Query<ContactListQuery>,
) -> Result<ApiJson<ContactPage>, Problem> {
    Ok(ApiJson(s.list(&who, &q).await?))
}

/// The filtered view as a CSV download (`contacts-YYYY-MM-DD.csv`): id, name, company, language,
/// time_zone, phones, emails, tags, groups, one column per custom attribute, created_at. Cells a
/// spreadsheet would run as formulas are prefixed with `'`.
#[utoipa::path(get, path = "/api/v1/contacts/export.csv", tag = "contacts", security(("bearer" = [])),
    params(ExportQuery), responses((status = 200, content_type = "text/csv", body = String), (status = 422, body = ProblemBody)))]
pub async fn export_contacts(
    State(s): Svc,
    Caller(who): Caller,
    Query(q): Query<ExportQuery>,
) -> Result<Response, Problem> {
    let (name, chunks) = s.export_csv(&who, q).await?;
    let chunks = futures::StreamExt::map(chunks, |c| {
        c.map_err(|p| {
            // The status is sent; cut the download so the client sees it is incomplete.
            tracing::warn!(error = %p, "contact export stopped");
            std::io::Error::other(p.to_string())
        })
    });
    Ok(csv_response(&name, axum::body::Body::from_stream(chunks)))
}

/// Create a contact with its identities.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", security(("bearer" = [])), request_body = ContactIn,
    responses((status = 201, body = ContactOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_contact(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<ContactIn>,
) -> Result<(StatusCode, ApiJson<ContactOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.create_contact(&who, &b).await?),
    ))
}

/// A contact with its identities.
#[utoipa::path(get, path = "/api/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)), responses((status = 200, body = ContactOut), (status = 404, body = ProblemBody)))]
pub async fn get_contact(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ContactId>,
) -> Result<ApiJson<ContactOut>, Problem> {
    Ok(ApiJson(s.contact(&who, id).await?))
}

/// Change a contact.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)), request_body = ContactPatch,
    responses((status = 200, body = ContactOut), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_contact(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ContactId>,
    ApiJson(b): ApiJson<ContactPatch>,
) -> Result<ApiJson<ContactOut>, Problem> {
    Ok(ApiJson(s.update_contact(&who, id, &b).await?))
}

/// Delete a contact and its identities (admin).
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_contact(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(id): Path<ContactId>,
) -> Result<StatusCode, Problem> {
    s.delete_contact(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a channel identity to a contact.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/identities", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)), request_body = IdentityIn,
    responses((status = 201, body = IdentityOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn add_identity(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ContactId>,
    ApiJson(b): ApiJson<IdentityIn>,
) -> Result<(StatusCode, ApiJson<IdentityOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.add_identity(&who, id, &b).await?),
    ))
}

/// Remove a channel identity from a contact.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}/identities/{identity_id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path), ("identity_id" = IdentityId, Path)),
    responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn remove_identity(
    State(s): Svc,
    Caller(who): Caller,
    Path((id, identity_id)): Path<(ContactId, IdentityId)>,
) -> Result<StatusCode, Problem> {
    s.remove_identity(&who, id, identity_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Apply one action to many contacts in one transaction (deleting needs an admin).
#[utoipa::path(post, path = "/api/v1/contacts/bulk", tag = "contacts", security(("bearer" = [])), request_body = BulkIn,
    responses((status = 200, body = BulkOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn bulk_contacts(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<BulkIn>,
) -> Result<ApiJson<BulkOut>, Problem> {
    Ok(ApiJson(s.bulk(&who, &b).await?))
}

/// Merge another contact into this one (admin): its identities, tags, groups and consent history
/// move here, empty fields here are filled from it, attributes combine (this contact's values
/// win), this contact keeps its photo or takes the merged one's if it has none, and it is deleted. The merge is recorded with a snapshot of the merged contact.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/merge", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)), request_body = MergeIn,
    responses((status = 200, body = ContactOut), (status = 403, body = ProblemBody), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn merge_contacts(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(id): Path<ContactId>,
    ApiJson(b): ApiJson<MergeIn>,
) -> Result<ApiJson<ContactOut>, Problem> {
    Ok(ApiJson(s.merge(&who, id, b.other_id).await?))
}

/// A contact's consent: the standing state per channel and purpose, and the full history.
#[utoipa::path(get, path = "/api/v1/contacts/{id}/consent", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)), responses((status = 200, body = ConsentLedgerOut), (status = 404, body = ProblemBody)))]
pub async fn get_consent(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ContactId>,
) -> Result<ApiJson<ConsentLedgerOut>, Problem> {
    Ok(ApiJson(s.consent(&who, id).await?))
}

/// Record an opt-in or opt-out (appended to the ledger; nothing is ever overwritten).
#[utoipa::path(post, path = "/api/v1/contacts/{id}/consent", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)), request_body = ConsentIn,
    responses((status = 201, body = ConsentOut), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn record_consent(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ContactId>,
    ApiJson(b): ApiJson<ConsentIn>,
) -> Result<(StatusCode, ApiJson<ConsentOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.record_consent(&who, id, &b).await?),
    ))
}

fn avatar_upload_error(e: &axum::extract::multipart::MultipartError) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::payload_too_large(AVATAR_MAX_BYTES).with_field("file", "must be at most 2 MB")
    } else {
        Problem::bad_request("malformed_multipart", "The upload could not be read")
    }
}

/// Set a contact's photo (multipart field `file`: PNG, JPEG, GIF or WebP, at most 2 MB); the
/// photo it replaces is deleted.
#[utoipa::path(put, path = "/api/v1/contacts/{id}/avatar", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)),
    request_body(content = ContactAvatarUpload, content_type = "multipart/form-data"),
    responses((status = 200, body = ContactOut), (status = 404, body = ProblemBody), (status = 413, body = ProblemBody),
        (status = 415, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn upload_contact_avatar(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ContactId>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<ApiJson<ContactOut>, Problem> {
    let mut multipart =
        multipart.map_err(|_| Problem::unsupported_media_type("multipart/form-data"))?;
    let mut file = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| avatar_upload_error(&e))?
    {
        if field.name() == Some("file") {
            file = Some(field.bytes().await.map_err(|e| avatar_upload_error(&e))?);
        }
    }
    let file = file.ok_or_else(|| Problem::invalid_field("file", "is required"))?;
    Ok(ApiJson(s.set_avatar(&who, id, file).await?))
}

/// Remove a contact's photo.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}/avatar", tag = "contacts", security(("bearer" = [])),
    params(("id" = ContactId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_contact_avatar(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ContactId>,
) -> Result<StatusCode, Problem> {
    s.clear_avatar(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A contact's photo, at the `avatar_url` the contact shows. Public like member avatars: the
/// random name is unguessable, and an `<img>` sends no token.
#[utoipa::path(get, path = "/api/v1/contact-avatars/{org}/{contact}/{name}", tag = "contacts",
    params(("org" = String, Path), ("contact" = String, Path), ("name" = String, Path)),
    responses((status = 200, content_type = "image/*"), (status = 404, body = ProblemBody)))]
pub async fn get_contact_avatar(
    State(s): Svc,
    Path((org, contact, name)): Path<(String, String, String)>,
) -> Result<Response, Problem> {
    let blob = s.avatar(&org, &contact, &name).await?;
    Ok((
        [
            (header::CONTENT_TYPE, blob.content_type),
            // A new photo gets a new name, so a name's bytes never change.
            (
                header::CACHE_CONTROL,
                "public, max-age=31536000, immutable".to_owned(),
            ),
        ],
        blob.bytes,
    )
        .into_response())
}

// ---- handlers: tags and groups -------------------------------------------------------------------

/// Tags of the organisation, by name.
#[utoipa::path(get, path = "/api/v1/tags", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = TagList)))]
pub async fn list_tags(State(s): Svc, Caller(who): Caller) -> Result<ApiJson<TagList>, Problem> {
    Ok(ApiJson(TagList {
        items: s.tags(&who).await?,
    }))
}

/// Create a tag.
#[utoipa::path(post, path = "/api/v1/tags", tag = "contacts", security(("bearer" = [])), request_body = TagIn,
    responses((status = 201, body = TagOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_tag(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<TagIn>,
) -> Result<(StatusCode, ApiJson<TagOut>), Problem> {
    Ok((StatusCode::CREATED, ApiJson(s.create_tag(&who, &b).await?)))
}

/// Rename or recolour a tag.
#[utoipa::path(patch, path = "/api/v1/tags/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = TagId, Path)), request_body = TagPatch,
    responses((status = 200, body = TagOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_tag(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<TagId>,
    ApiJson(b): ApiJson<TagPatch>,
) -> Result<ApiJson<TagOut>, Problem> {
    Ok(ApiJson(s.update_tag(&who, id, &b).await?))
}

/// Delete a tag; contacts lose it.
#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = TagId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_tag(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<TagId>,
) -> Result<StatusCode, Problem> {
    s.delete_tag(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Groups of the organisation, by name, with their member counts.
#[utoipa::path(get, path = "/api/v1/groups", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = GroupList)))]
pub async fn list_groups(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<GroupList>, Problem> {
    Ok(ApiJson(GroupList {
        items: s.groups(&who).await?,
    }))
}

/// Create a group.
#[utoipa::path(post, path = "/api/v1/groups", tag = "contacts", security(("bearer" = [])), request_body = GroupIn,
    responses((status = 201, body = GroupOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_group(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<GroupIn>,
) -> Result<(StatusCode, ApiJson<GroupOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.create_group(&who, &b).await?),
    ))
}

/// A group with its member count.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = GroupId, Path)), responses((status = 200, body = GroupOut), (status = 404, body = ProblemBody)))]
pub async fn get_group(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<GroupId>,
) -> Result<ApiJson<GroupOut>, Problem> {
    Ok(ApiJson(s.group(&who, id).await?))
}

/// Rename a group or change its description.
#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = GroupId, Path)), request_body = GroupPatch,
    responses((status = 200, body = GroupOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_group(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<GroupId>,
    ApiJson(b): ApiJson<GroupPatch>,
) -> Result<ApiJson<GroupOut>, Problem> {
    Ok(ApiJson(s.update_group(&who, id, &b).await?))
}

/// Delete a group; its contacts stay, only the membership goes.
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = GroupId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_group(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<GroupId>,
) -> Result<StatusCode, Problem> {
    s.delete_group(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- handlers: segments ------------------------------------------------------------------------

/// Segments of the organisation, by name.
#[utoipa::path(get, path = "/api/v1/segments", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = SegmentList)))]
pub async fn list_segments(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<SegmentList>, Problem> {
    Ok(ApiJson(SegmentList {
        items: s.segments(&who).await?,
    }))
}

/// Save a segment; the filter is checked against the organisation's tags, groups and attributes.
#[utoipa::path(post, path = "/api/v1/segments", tag = "contacts", security(("bearer" = [])), request_body = SegmentIn,
    responses((status = 201, body = SegmentOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_segment(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<SegmentIn>,
) -> Result<(StatusCode, ApiJson<SegmentOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.create_segment(&who, &b).await?),
    ))
}

/// How many contacts a filter matches, without saving it.
#[utoipa::path(post, path = "/api/v1/segments/preview", tag = "contacts", security(("bearer" = [])), request_body = SegmentPreviewIn,
    responses((status = 200, body = SegmentCount), (status = 422, body = ProblemBody)))]
pub async fn preview_segment(
    State(s): Svc,
    Caller(who): Caller,
    ApiJson(b): ApiJson<SegmentPreviewIn>,
) -> Result<ApiJson<SegmentCount>, Problem> {
    Ok(ApiJson(SegmentCount {
        count: s.preview_segment(&who, &b.filter).await?,
    }))
}

/// A segment.
#[utoipa::path(get, path = "/api/v1/segments/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = SegmentId, Path)), responses((status = 200, body = SegmentOut), (status = 404, body = ProblemBody)))]
pub async fn get_segment(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<SegmentId>,
) -> Result<ApiJson<SegmentOut>, Problem> {
    Ok(ApiJson(s.segment(&who, id).await?))
}

/// Rename a segment, change its description or its filter.
#[utoipa::path(patch, path = "/api/v1/segments/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = SegmentId, Path)), request_body = SegmentPatch,
    responses((status = 200, body = SegmentOut), (status = 404, body = ProblemBody), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_segment(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<SegmentId>,
    ApiJson(b): ApiJson<SegmentPatch>,
) -> Result<ApiJson<SegmentOut>, Problem> {
    Ok(ApiJson(s.update_segment(&who, id, &b).await?))
}

/// Delete a segment; no contact changes.
#[utoipa::path(delete, path = "/api/v1/segments/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = SegmentId, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_segment(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<SegmentId>,
) -> Result<StatusCode, Problem> {
    s.delete_segment(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many contacts the segment matches now.
#[utoipa::path(get, path = "/api/v1/segments/{id}/count", tag = "contacts", security(("bearer" = [])),
    params(("id" = SegmentId, Path)), responses((status = 200, body = SegmentCount), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn count_segment(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<SegmentId>,
) -> Result<ApiJson<SegmentCount>, Problem> {
    Ok(ApiJson(SegmentCount {
        count: s.segment_count(&who, id).await?,
    }))
}

// ---- handlers: attribute definitions and settings -------------------------------------------------

/// Custom contact attributes defined by the organisation.
#[utoipa::path(get, path = "/api/v1/contact-attributes", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = AttrDefList)))]
pub async fn list_contact_attributes(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<AttrDefList>, Problem> {
    Ok(ApiJson(AttrDefList {
        items: s.attribute_defs(&who).await?,
    }))
}

/// Define a custom contact attribute (admin).
#[utoipa::path(post, path = "/api/v1/contact-attributes", tag = "contacts", security(("bearer" = [])), request_body = AttrDefIn,
    responses((status = 201, body = AttrDefOut), (status = 409, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_contact_attribute(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    ApiJson(b): ApiJson<AttrDefIn>,
) -> Result<(StatusCode, ApiJson<AttrDefOut>), Problem> {
    Ok((
        StatusCode::CREATED,
        ApiJson(s.create_attribute_def(&who, &b).await?),
    ))
}

/// Change the label, options or required flag of an attribute (admin).
#[utoipa::path(patch, path = "/api/v1/contact-attributes/{key}", tag = "contacts", security(("bearer" = [])),
    params(("key" = String, Path)), request_body = AttrDefPatch,
    responses((status = 200, body = AttrDefOut), (status = 404, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn update_contact_attribute(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(key): Path<String>,
    ApiJson(b): ApiJson<AttrDefPatch>,
) -> Result<ApiJson<AttrDefOut>, Problem> {
    Ok(ApiJson(s.update_attribute_def(&who, &key, &b).await?))
}

/// Delete an attribute and every contact's value for it (admin).
#[utoipa::path(delete, path = "/api/v1/contact-attributes/{key}", tag = "contacts", security(("bearer" = [])),
    params(("key" = String, Path)), responses((status = 204), (status = 404, body = ProblemBody)))]
pub async fn delete_contact_attribute(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    Path(key): Path<String>,
) -> Result<StatusCode, Problem> {
    s.delete_attribute_def(&who, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Contact settings of the organisation.
#[utoipa::path(get, path = "/api/v1/contact-settings", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = SettingsOut)))]
pub async fn get_contact_settings(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<SettingsOut>, Problem> {
    Ok(ApiJson(s.settings(&who).await?))
}

/// Change the contact settings (admin).
#[utoipa::path(put, path = "/api/v1/contact-settings", tag = "contacts", security(("bearer" = [])), request_body = SettingsIn,
    responses((status = 200, body = SettingsOut), (status = 422, body = ProblemBody)))]
pub async fn update_contact_settings(
    State(s): Svc,
    AdminCaller(who): AdminCaller,
    ApiJson(b): ApiJson<SettingsIn>,
) -> Result<ApiJson<SettingsOut>, Problem> {
    Ok(ApiJson(s.set_settings(&who, &b.default_country).await?))
}

fn upload_error(e: &axum::extract::multipart::MultipartError) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::payload_too_large(IMPORT_MAX_BYTES).with_field("file", "must be at most 50 MB")
    } else {
        Problem::bad_request("malformed_multipart", "The upload could not be read")
    }
}

/// Upload a CSV file and import it in the background. The file, mapping and options are
/// checked first (422 naming the field); the import then runs as a job: watch its counters
/// with `GET /api/v1/imports/{id}`, download rejected rows from `…/errors.csv`.
#[utoipa::path(post, path = "/api/v1/imports", tag = "contacts", security(("bearer" = [])),
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses((status = 202, body = ImportOut), (status = 413, body = ProblemBody), (status = 415, body = ProblemBody), (status = 422, body = ProblemBody)))]
pub async fn create_import(
    State(s): Svc,
    Caller(who): Caller,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, ApiJson<ImportOut>), Problem> {
    let mut multipart =
        multipart.map_err(|_| Problem::unsupported_media_type("multipart/form-data"))?;
    let mut up = ImportUpload {
        file_name: None,
        file: None,
        mapping: None,
        dedupe: None,
        on_duplicate: None,
        group_id: None,
    };
    while let Some(field) = multipart.next_field().await.map_err(|e| upload_error(&e))? {
        let name = field.name().unwrap_or("").to_owned();
        if name == "file" {
            up.file_name = field.file_name().map(str::to_owned);
            up.file = Some(field.bytes().await.map_err(|e| upload_error(&e))?);
            continue;
        }
        let slot = match name.as_str() {
            "mapping" => &mut up.mapping,
            "dedupe" => &mut up.dedupe,
            "on_duplicate" => &mut up.on_duplicate,
            "group_id" => &mut up.group_id,
            _ => continue,
        };
        *slot = Some(field.text().await.map_err(|e| upload_error(&e))?);
    }
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(s.create_import(&who, up).await?),
    ))
}

/// The organisation's latest 100 imports, newest first.
#[utoipa::path(get, path = "/api/v1/imports", tag = "contacts", security(("bearer" = [])),
    responses((status = 200, body = ImportList)))]
pub async fn list_imports(
    State(s): Svc,
    Caller(who): Caller,
) -> Result<ApiJson<ImportList>, Problem> {
    Ok(ApiJson(ImportList {
        items: s.imports(&who).await?,
    }))
}

/// An import and its progress.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "contacts", security(("bearer" = [])),
    params(("id" = ImportId, Path)), responses((status = 200, body = ImportOut), (status = 404, body = ProblemBody)))]
pub async fn get_import(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ImportId>,
) -> Result<ApiJson<ImportOut>, Problem> {
    Ok(ApiJson(s.import(&who, id).await?))
}

/// The rejected rows of an import as CSV: `line`, `reason`, then the row's cells under the
/// file's header (formula cells neutralised).
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.csv", tag = "contacts", security(("bearer" = [])),
    params(("id" = ImportId, Path)), responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ProblemBody)))]
pub async fn import_errors(
    State(s): Svc,
    Caller(who): Caller,
    Path(id): Path<ImportId>,
) -> Result<Response, Problem> {
    let (name, body) = s.import_errors_csv(&who, id).await?;
    Ok(csv_response(&name, axum::body::Body::from(body)))
}

fn csv_response(name: &str, body: axum::body::Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub fn routes(contacts: Arc<Contacts>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(get_contact, update_contact, delete_contact))
        .routes(routes!(bulk_contacts))
        .routes(routes!(export_contacts))
        .merge(
            // The file may be 50 MB; a little more for the multipart framing and the other fields.
            OpenApiRouter::new()
                .routes(routes!(create_import, list_imports))
                .layer(axum::extract::DefaultBodyLimit::max(
                    IMPORT_MAX_BYTES + 1024 * 1024,
                )),
        )
        .merge(
            // Photos may be up to 2 MB; the limit leaves room for the multipart framing so an
            // oversized file is answered 413 naming `file` instead of the connection being cut.
            OpenApiRouter::new()
                .routes(routes!(upload_contact_avatar, delete_contact_avatar))
                .layer(axum::extract::DefaultBodyLimit::max(
                    AVATAR_MAX_BYTES + 1024 * 1024,
                )),
        )
        .routes(routes!(get_contact_avatar))
        .routes(routes!(get_import))
        .routes(routes!(import_errors))
        .routes(routes!(get_consent, record_consent))
        .routes(routes!(merge_contacts))
        .routes(routes!(add_identity))
        .routes(routes!(remove_identity))
        .routes(routes!(list_contact_attributes, create_contact_attribute))
        .routes(routes!(update_contact_attribute, delete_contact_attribute))
        .routes(routes!(get_contact_settings, update_contact_settings))
        .routes(routes!(list_tags, create_tag))
        .routes(routes!(update_tag, delete_tag))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(list_segments, create_segment))
        .routes(routes!(preview_segment))
        .routes(routes!(get_segment, update_segment, delete_segment))
        .routes(routes!(count_segment))
        .with_state(contacts)
}
