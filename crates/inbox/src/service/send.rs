//! The outbound pipeline. A send validates the message for its channel, checks the WhatsApp
//! 24-hour window (free-form refused with 409 `window_closed` once the customer's last message
//! is older than 24 hours; templates always allowed) and consent (utility unless opted out,
//! marketing only after an opt-in; a blocked contact gets nothing), then writes the message as
//! `queued` **and** its `inbox.send` job in one transaction (with the `Idempotency-Key` record
//! when given) and answers. The job ([`SendJob`]) asks the channel's guard (breaker, pair and
//! channel pacing), calls the provider and classifies the outcome:
//!
//! - accepted → `sent` with the provider id (later reports move it on);
//! - retryable (rate limits, 5xx, timeouts) → retried, honouring `retry_after`; rate limits
//!   push the channel's or the pair's pacing; 5xx/timeouts count towards the breaker;
//! - permanent → `failed` with the provider's code and reason;
//! - needs action → `failed`; an expired token or a restricted account marks the channel
//!   unhealthy; 131047 says the window closed; 131050 records a marketing opt-out.
//!
//! A job that finds its message no longer `queued` does nothing (at-least-once delivery of
//! jobs never sends a message twice once its result is stored). Batch items to addresses take
//! a faster path with one job per batch and channel ([`bulk`]).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json, value::RawValue};
use sha2::{Digest, Sha256};
use wamage_channels::{
    Channel, ChannelKind, SendError, describe,
    pacing::Gate,
    provider::{
        ActionNeeded, ListRow, ListSection, Location, MediaKind, Outbound, OutboundContent,
        OutboundMedia, Recipient, ReplyButton, TemplateButtonParam, TemplateMessage, TemplateParam,
    },
    recipient_key,
};
use wamage_contacts::{ConsentPurpose, ContactId, Contacts, IdentityKind, SendPermission};
use wamage_identity::Principal;
use wamage_kernel::{OrgId, Problem, validate::Validator};
use wamage_platform::{
    idempotency,
    jobs::{JobContext, JobHandler, JobOutcome, NewJob},
};

use super::{Inbox, consent_channel, db_err, error_json, media_kind_of, random_hex};
use crate::{
    http::{BatchOut, BatchResult, DirectSendIn, SendIn, ToIn},
    model::{ConversationId, MessageId, TEXT_MAX, WINDOW},
    store::{self, ConversationRow, MessageRow},
};

pub(crate) mod bulk;

pub use bulk::{SEND_MANY_JOB, SendManyJob};

pub const SEND_JOB: &str = "inbox.send";
pub const MEDIA_JOB: &str = "inbox.media";
pub const SNOOZE_JOB: &str = "inbox.wake";
pub const READ_JOB: &str = "inbox.mark_read";
const BATCH_MAX: usize = 100;
/// Sends of one batch request in flight at once.
const BATCH_CONCURRENCY: usize = 8;

/// What a validated send turns into.
struct Prepared {
    kind: String,
    text: Option<String>,
    content: Option<Value>,
    media: Option<Value>,
    reply_to_id: Option<MessageId>,
    note: bool,
    template: bool,
    /// The provider message, stored in `content.outbound` for the job.
    outbound: Option<OutboundContent>,
    /// The reaction's target and emoji (shown on the target at once).
    reaction: Option<(MessageId, String)>,
}

impl Prepared {
    /// The new message's row in `(organisation, conversation, channel)`: `queued` for the
    /// sender (a private note is stored as a note, with no purpose).
    fn row(
        &self,
        (org, conversation, channel): (OrgId, ConversationId, wamage_channels::ChannelId),
        author: wamage_kernel::UserId,
        purpose: ConsentPurpose,
        now: wamage_kernel::Timestamp,
    ) -> MessageRow {
        MessageRow {
            id: MessageId::new(),
            org_id: org,
            conversation_id: conversation,
            channel_id: channel,
            direction: "outbound".to_owned(),
            kind: self.kind.clone(),
            text: self.text.clone(),
            content: self.content.as_ref().map(wamage_kernel::json::to_text),
            media: self.media.as_ref().map(wamage_kernel::json::to_text),
            reply_to_id: self.reply_to_id,
            provider_message_id: None,
            status: if self.note { "note" } else { "queued" }.to_owned(),
            error: None,
            author_id: Some(author),
            private: self.note,
            purpose: (!self.note).then(|| purpose.as_str().to_owned()),
            edited: false,
            created_at: now,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            updated_at: now,
        }
    }
}

/// What a direct send's address names: identities, provider recipient, recipient key and the
/// request field it came from.
type Address = (Vec<(IdentityKind, String)>, Recipient, String, &'static str);

/// Whom a direct send is for: a known contact (id, name), or an address to find or create
/// the contact by (its identities, and the request's field for an invalid one).
enum To {
    Contact(ContactId, String),
    Address(Vec<(IdentityKind, String)>, &'static str),
}

/// A send's answer: status and JSON body, or the problem.
type SendOutcome = Result<(StatusCode, String), Problem>;

/// Where a send goes.
enum Target<'a> {
    Conversation(ConversationId),
    Direct(&'a DirectSendIn, ConsentPurpose),
}

fn fingerprint(scope: &str, v: &impl serde::Serialize) -> String {
    let body = serde_json::to_vec(v).unwrap_or_default();
    hex::encode(
        Sha256::new()
            .chain_update(scope)
            .chain_update(body)
            .finalize(),
    )
}

fn window_closed() -> Problem {
    Problem::conflict(
        "window_closed",
        "The 24-hour customer service window is closed: only templates can be sent",
    )
    .with_detail("The customer has not written in the last 24 hours. Send an approved template to re-open the conversation.")
}

/// The consent ledger's refusal of a send, with its reason.
fn consent_denied(reason: impl ToString) -> Problem {
    Problem::conflict(
        "consent_denied",
        "This contact may not be sent this message",
    )
    .with_detail(reason.to_string())
}

fn channel_disabled() -> Problem {
    Problem::conflict("channel_disabled", "This channel is disabled")
}

fn is_template_name(s: &str) -> bool {
    (1..=512).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Inbox {
    /// Validates a message for the conversation's channel.
    async fn prepare(
        &self,
        org: OrgId,
        conv: Option<ConversationId>,
        channel: &Channel,
        b: &SendIn,
    ) -> Result<Prepared, Problem> {
        let mut v = Validator::new();
        let text = b.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let check_text =
            |v: &mut Validator, field: &str, t: Option<&str>, max: usize, required: bool| match t {
                Some(t) if t.chars().count() > max => {
                    v.error(field, format!("must be at most {max} characters"));
                }
                None if required => v.error(field, "is required"),
                _ => {}
            };
        let reply_to = match b.reply_to_id {
            Some(id) => {
                let m = store::message(&self.db, org, id)
                    .await
                    .map_err(db_err)?
                    .filter(|m| Some(m.conversation_id) == conv && !m.private);
                if m.is_none() {
                    v.error("reply_to_id", "is not a message of this conversation");
                }
                m
            }
            None => None,
        };
        let mut p = Prepared {
            kind: b.kind.clone(),
            text: text.map(str::to_owned),
            content: None,
            media: None,
            reply_to_id: reply_to.as_ref().map(|m| m.id),
            note: false,
            template: false,
            outbound: None,
            reaction: None,
        };
        match b.kind.as_str() {
            "text" => {
                check_text(&mut v, "text", text, TEXT_MAX, true);
                p.outbound = Some(OutboundContent::Text {
                    body: text.unwrap_or_default().to_owned(),
                    preview_url: b.preview_url.unwrap_or(true),
                    buttons: Vec::new(),
                });
            }
            "note" => {
                check_text(&mut v, "text", text, TEXT_MAX, true);
                p.note = true;
            }
            "media" => {
                check_text(&mut v, "caption", b.caption.as_deref(), 1024, false);
                p.text = b.caption.clone().filter(|c| !c.trim().is_empty());
                let (kind, link, filename, mime, size, key) = match (&b.attachment_id, &b.media_url)
                {
                    (Some(id), None) => match store::attachment(&self.db, org, *id)
                        .await
                        .map_err(db_err)?
                    {
                        Some(a) if Some(a.conversation_id) == conv => (
                            a.kind.clone(),
                            self.media_url(&a.blob_key.replace('/', "~")),
                            Some(a.filename.clone()),
                            Some(a.mime_type.clone()),
                            Some(a.size),
                            Some(a.blob_key.replace('/', "~")),
                        ),
                        _ => {
                            v.error("attachment_id", "is not an upload of this conversation");
                            ("document".to_owned(), String::new(), None, None, None, None)
                        }
                    },
                    (None, Some(url)) => {
                        if !(url.starts_with("https://") || url.starts_with("http://"))
                            || url.len() > 2000
                        {
                            v.error("media_url", "must be an http(s) URL");
                        }
                        let kind = b
                            .media_kind
                            .clone()
                            .unwrap_or_else(|| "document".to_owned());
                        if !["image", "video", "audio", "voice", "document", "sticker"]
                            .contains(&kind.as_str())
                        {
                            v.error(
                                "media_kind",
                                "must be image, video, audio, voice, document or sticker",
                            );
                        }
                        (kind, url.clone(), None, None, None, None)
                    }
                    _ => {
                        v.error(
                            "attachment_id",
                            "give exactly one of attachment_id or media_url",
                        );
                        ("document".to_owned(), String::new(), None, None, None, None)
                    }
                };
                let mk = match kind.as_str() {
                    "image" => MediaKind::Image,
                    "video" => MediaKind::Video,
                    "audio" => MediaKind::Audio,
                    "voice" => MediaKind::Voice,
                    "sticker" => MediaKind::Sticker,
                    _ => MediaKind::Document,
                };
                p.kind = mk.as_str().to_owned();
                p.media = Some(
                    json!({"kind": mk.as_str(), "key": key, "link": if key.is_none() { Some(&link) } else { None },
                    "filename": filename, "mime_type": mime, "size": size, "state": "ready"}),
                );
                p.outbound = Some(OutboundContent::Media(OutboundMedia {
                    kind: mk,
                    provider_media_id: None,
                    link: Some(link),
                    caption: p.text.clone(),
                    filename,
                }));
            }
            "buttons" => {
                check_text(&mut v, "text", text, 1024, true);
                let buttons = b.buttons.clone().unwrap_or_default();
                v.check(
                    (1..=3).contains(&buttons.len()),
                    "buttons",
                    "must have 1 to 3 buttons",
                );
                for (i, x) in buttons.iter().enumerate() {
                    v.length(&format!("buttons[{i}].title"), x.title.trim(), 1, 20);
                    v.length(&format!("buttons[{i}].id"), &x.id, 1, 256);
                    if buttons[..i].iter().any(|y| y.id == x.id) {
                        v.error(&format!("buttons[{i}].id"), "must be unique");
                    }
                }
                p.content =
                    Some(json!({"buttons": buttons, "header": b.header, "footer": b.footer}));
                p.outbound = Some(OutboundContent::Buttons {
                    body: text.unwrap_or_default().to_owned(),
                    header: b.header.clone(),
                    footer: b.footer.clone(),
                    buttons: buttons
                        .iter()
                        .map(|x| ReplyButton {
                            id: x.id.clone(),
                            title: x.title.trim().to_owned(),
                        })
                        .collect(),
                });
            }
            "list" => {
                check_text(&mut v, "text", text, 1024, true);
                let button = b.button.clone().unwrap_or_default();
                v.length("button", button.trim(), 1, 20);
                let sections = b.sections.clone().unwrap_or_default();
                v.check(
                    (1..=10).contains(&sections.len()),
                    "sections",
                    "must have 1 to 10 sections",
                );
                let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
                v.check(
                    (1..=10).contains(&rows),
                    "sections",
                    "must have 1 to 10 rows in all",
                );
                for (i, s) in sections.iter().enumerate() {
                    v.length(&format!("sections[{i}].title"), &s.title, 0, 24);
                    for (j, r) in s.rows.iter().enumerate() {
                        v.length(
                            &format!("sections[{i}].rows[{j}].title"),
                            r.title.trim(),
                            1,
                            24,
                        );
                        v.length(&format!("sections[{i}].rows[{j}].id"), &r.id, 1, 200);
                        if let Some(d) = &r.description {
                            v.length(&format!("sections[{i}].rows[{j}].description"), d, 0, 72);
                        }
                    }
                }
                p.content = Some(json!({"button": button, "sections": sections}));
                p.outbound = Some(OutboundContent::List {
                    body: text.unwrap_or_default().to_owned(),
                    header: b.header.clone(),
                    footer: b.footer.clone(),
                    button,
                    sections: sections
                        .iter()
                        .map(|s| ListSection {
                            title: s.title.clone(),
                            rows: s
                                .rows
                                .iter()
                                .map(|r| ListRow {
                                    id: r.id.clone(),
                                    title: r.title.trim().to_owned(),
                                    description: r.description.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                });
            }
            "location" => {
                let (lat, lng) = (
                    b.latitude.unwrap_or(f64::NAN),
                    b.longitude.unwrap_or(f64::NAN),
                );
                v.check(
                    (-90.0..=90.0).contains(&lat),
                    "latitude",
                    "must be between -90 and 90",
                );
                v.check(
                    (-180.0..=180.0).contains(&lng),
                    "longitude",
                    "must be between -180 and 180",
                );
                p.text = b.name.clone();
                p.content = Some(
                    json!({"latitude": lat, "longitude": lng, "name": b.name, "address": b.address}),
                );
                p.outbound = Some(OutboundContent::Location(Location {
                    latitude: lat,
                    longitude: lng,
                    name: b.name.clone(),
                    address: b.address.clone(),
                }));
            }
            "reaction" => {
                let emoji = b.emoji.clone().unwrap_or_default();
                v.check(emoji.chars().count() <= 10, "emoji", "must be one emoji");
                match &reply_to {
                    Some(m) if m.provider_message_id.is_some() => {
                        p.reaction = Some((m.id, emoji.clone()));
                        p.text = Some(emoji.clone());
                        p.outbound = Some(OutboundContent::Reaction {
                            to_provider_message_id: m
                                .provider_message_id
                                .clone()
                                .unwrap_or_default(),
                            emoji,
                        });
                        p.reply_to_id = Some(m.id);
                    }
                    Some(_) => v.error(
                        "reply_to_id",
                        "this message has not reached the provider yet",
                    ),
                    None => v.error("reply_to_id", "is required: the message to react to"),
                }
            }
            "template" => match &b.template {
                Some(t) => {
                    v.check(
                        is_template_name(&t.name),
                        "template.name",
                        "must be lower-case letters, digits and _",
                    );
                    v.length("template.language", &t.language, 2, 15);
                    for (i, x) in t.body.iter().enumerate() {
                        v.length(&format!("template.body[{i}]"), x, 1, 1024);
                    }
                    p.template = true;
                    let mut rendered = format!("Template {} ({})", t.name, t.language);
                    if !t.body.is_empty() {
                        rendered = format!("{rendered}: {}", t.body.join(" · "));
                    }
                    p.text = Some(rendered);
                    p.content = Some(json!({"template": t}));
                    if !t.body_names.is_empty() && t.body_names.len() != t.body.len() {
                        v.error("template.body_names", "needs one name per body parameter");
                    }
                    for (i, b) in t.button_params.iter().enumerate() {
                        if !["url", "copy_code", "quick_reply"].contains(&b.sub_type.as_str()) {
                            v.error(
                                &format!("template.button_params[{i}].sub_type"),
                                "must be url, copy_code or quick_reply",
                            );
                        }
                        if b.index > 9 {
                            v.error(
                                &format!("template.button_params[{i}].index"),
                                "must be 0 to 9",
                            );
                        }
                        v.length(
                            &format!("template.button_params[{i}].value"),
                            &b.value,
                            1,
                            1024,
                        );
                    }
                    let text_param = |s: &String| TemplateParam::Text {
                        text: s.clone(),
                        parameter_name: None,
                    };
                    let buttons = if t.button_params.is_empty() {
                        t.buttons
                            .iter()
                            .enumerate()
                            .map(|(i, x)| TemplateButtonParam {
                                sub_type: "quick_reply".to_owned(),
                                index: u32::try_from(i).unwrap_or(0),
                                value: x.clone(),
                            })
                            .collect()
                    } else {
                        t.button_params
                            .iter()
                            .map(|b| TemplateButtonParam {
                                sub_type: b.sub_type.clone(),
                                index: b.index,
                                value: b.value.clone(),
                            })
                            .collect()
                    };
                    p.outbound = Some(OutboundContent::Template(TemplateMessage {
                        name: t.name.clone(),
                        language: t.language.clone(),
                        header: t.header.iter().map(text_param).collect(),
                        body: t
                            .body
                            .iter()
                            .enumerate()
                            .map(|(i, s)| TemplateParam::Text {
                                text: s.clone(),
                                parameter_name: t.body_names.get(i).cloned(),
                            })
                            .collect(),
                        buttons,
                    }));
                }
                None => v.error("template", "is required"),
            },
            _ => v.error(
                "type",
                "must be text, note, media, buttons, list, location, reaction or template",
            ),
        }
        if channel.kind == ChannelKind::Telegram && p.template {
            v.error("type", "Telegram has no templates: send text");
        }
        v.finish()?;
        if let Some(out) = &p.outbound {
            let mut content = p.content.take().unwrap_or_else(|| json!({}));
            if let Value::Object(m) = &mut content {
                m.insert(
                    "outbound".to_owned(),
                    serde_json::to_value(out).unwrap_or(Value::Null),
                );
            }
            p.content = Some(content);
        }
        Ok(p)
    }

    /// Sends into a conversation (or adds a note): `(status, JSON body)`.
    pub async fn send(
        &self,
        who: &Principal,
        id: ConversationId,
        b: &SendIn,
        key: Option<&str>,
    ) -> Result<(StatusCode, String), Problem> {
        let scope = format!("inbox.send:{}", who.user_id);
        let fp = fingerprint(&id.to_string(), b);
        self.send_core(who, &scope, &fp, key, Target::Conversation(id), b)
            .await
    }

    async fn send_core(
        &self,
        who: &Principal,
        scope: &str,
        fp: &str,
        key: Option<&str>,
        target: Target<'_>,
        b: &SendIn,
    ) -> Result<(StatusCode, String), Problem> {
        let org = who.org_id;
        let now = self.now();
        if let Some(k) = key
            && let Some(prev) = idempotency::lookup(&self.db, org, scope, k, now)
                .await
                .map_err(db_err)?
        {
            return replay(prev, fp);
        }
        let (conv, purpose) = match target {
            Target::Conversation(id) => (self.conv_row(org, id).await?, ConsentPurpose::Utility),
            Target::Direct(d, purpose) => (self.conversation_for(who, d).await?, purpose),
        };
        let channel = self.channels.get(org, conv.channel_id).await.map_err(|p| {
            if p.code == "not_found" {
                Problem::conflict(
                    "channel_gone",
                    "This conversation's channel was disconnected",
                )
            } else {
                p
            }
        })?;
        let p = self.prepare(org, Some(conv.id), &channel, b).await?;
        if !p.note {
            if !channel.enabled {
                return Err(channel_disabled());
            }
            if channel.kind == ChannelKind::Whatsapp && !p.template {
                let open = conv.last_inbound_at.is_some_and(|t| t.plus(WINDOW) > now);
                if !open {
                    return Err(window_closed());
                }
            }
            if let Some(cc) = consent_channel(channel.kind)
                && let SendPermission::Denied { reason } = self
                    .contacts
                    .may_send(org, conv.contact_id, cc, purpose)
                    .await?
            {
                return Err(consent_denied(reason));
            }
        }
        let row = p.row((org, conv.id, channel.id), who.user_id, purpose, now);
        let out = self
            .render_messages(org, vec![row.clone()])
            .await?
            .remove(0);
        let status = if p.note {
            StatusCode::CREATED
        } else {
            StatusCode::ACCEPTED
        };
        let body = serde_json::to_string(&out).unwrap_or_default();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::insert_message(&mut tx, &row).await.map_err(db_err)?;
        if let Some((target, emoji)) = &p.reaction {
            store::set_reaction(&mut tx, *target, &who.user_id.to_string(), emoji, now)
                .await
                .map_err(db_err)?;
        }
        if !p.note {
            self.jobs
                .enqueue(
                    &mut tx,
                    NewJob::new(SEND_JOB, json!({ "message_id": row.id }))
                        .with_org(org)
                        .with_priority(5),
                )
                .await
                .map_err(|e| Problem::internal(format_args!("enqueue send: {e}")))?;
        }
        let mut c = store::conversation(&mut tx, org, conv.id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Problem::not_found("conversation"))?;
        if p.reaction.is_none() {
            c.last_message_id = Some(row.id);
        }
        c.last_activity_at = now;
        c.updated_at = now;
        store::save_conversation(&mut tx, &c)
            .await
            .map_err(db_err)?;
        if let Some(k) = key
            && let Err(e) =
                idempotency::save(&mut tx, org, scope, k, fp, status.as_u16(), &body, now).await
        {
            if wamage_platform::db::is_unique_violation(&e) {
                tx.rollback().await.map_err(db_err)?;
                if let Some(prev) = idempotency::lookup(&self.db, org, scope, k, now)
                    .await
                    .map_err(db_err)?
                {
                    return replay(prev, fp);
                }
            }
            return Err(db_err(e));
        }
        tx.commit().await.map_err(db_err)?;
        if !p.note {
            self.jobs.notify();
        }
        self.publish(
            org,
            "wamage.message.created",
            Some(conv.id),
            super::MessageEvent::of(&out),
        )
        .await;
        if let Some((target, _)) = p.reaction {
            self.publish_message(org, "wamage.message.updated", target)
                .await;
        }
        if p.note {
            self.notify_mentions(
                org,
                who,
                conv.id,
                row.id,
                p.text.as_deref().unwrap_or_default(),
            )
            .await;
        }
        self.publish_conversation(org, "wamage.conversation.updated", conv.id)
            .await;
        Ok((status, body))
    }

    async fn notify_mentions(
        &self,
        org: OrgId,
        who: &Principal,
        conv: ConversationId,
        msg: MessageId,
        text: &str,
    ) {
        let mut rest = text;
        let mut users = Vec::new();
        while let Some(i) = rest.find("](user:") {
            let tail = &rest[i + 7..];
            if let Some(end) = tail.find(')')
                && let Ok(u) = tail[..end].parse::<uuid::Uuid>()
            {
                users.push(u);
            }
            rest = &rest[i + 7..];
        }
        users.sort();
        users.dedup();
        for u in users {
            if u == who.user_id.as_uuid() {
                continue;
            }
            let ev = wamage_realtime::event_for_rooms(
                super::SOURCE,
                "wamage.inbox.mention",
                org,
                self.now(),
                &wamage_realtime::Room::new("user", u)
                    .into_iter()
                    .collect::<Vec<_>>(),
                json!({"conversation_id": conv, "message_id": msg, "by": who.user_id}),
            );
            if let Err(e) = self.bus.publish(ev).await {
                tracing::warn!(error = %e, "failed to publish a mention");
            }
        }
    }

    /// The single-send API.
    pub async fn send_direct(
        &self,
        who: &Principal,
        b: &DirectSendIn,
        key: Option<&str>,
    ) -> Result<(StatusCode, String), Problem> {
        let scope = format!("inbox.direct:{}", who.user_id);
        let fp = fingerprint("direct", b);
        let purpose = direct_purpose(b)?;
        self.send_core(
            who,
            &scope,
            &fp,
            key,
            Target::Direct(b, purpose),
            &b.message,
        )
        .await
    }

    /// The conversation a direct send goes to: the newest with that address on the channel,
    /// or a new one (created `resolved`, so it shows in the inbox once the customer answers).
    /// A send that would start a conversation is checked first (see
    /// [`Self::check_first_send`]): refused, it leaves no contact and no conversation behind.
    async fn conversation_for(
        &self,
        who: &Principal,
        b: &DirectSendIn,
    ) -> Result<ConversationRow, Problem> {
        let org = who.org_id;
        let channel = self.channels.get(org, b.channel_id).await.map_err(|_| {
            Problem::invalid_field("channel_id", "is not a channel of this organisation")
        })?;
        one_address(&b.to)?;
        let (to, recipient, key) = if let Some(cid) = b.to.contact_id {
            let c = self.contacts.contact_in(org, cid).await.map_err(|_| {
                Problem::invalid_field("to.contact_id", "is not a contact of this organisation")
            })?;
            let find = |k: IdentityKind| {
                c.identities
                    .iter()
                    .find(|i| i.kind == k)
                    .map(|i| i.value.clone())
            };
            let (recipient, key) = match channel.kind {
                ChannelKind::Whatsapp => {
                    let phone =
                        find(IdentityKind::WhatsappPhone).or_else(|| find(IdentityKind::Phone));
                    let user = find(IdentityKind::WhatsappUser);
                    let key = phone.clone().or_else(|| user.clone()).ok_or_else(|| {
                        Problem::invalid_field("to.contact_id", "has no WhatsApp number or user id")
                    })?;
                    (
                        Recipient::Whatsapp {
                            phone,
                            user_id: user,
                        },
                        key,
                    )
                }
                ChannelKind::Telegram => {
                    let id = find(IdentityKind::Telegram)
                        .and_then(|v| v.parse::<i64>().ok())
                        .ok_or_else(|| {
                            Problem::invalid_field("to.contact_id", "has no Telegram id")
                        })?;
                    (Recipient::Telegram { chat_id: id }, id.to_string())
                }
                ChannelKind::Sandbox => {
                    let h = find(IdentityKind::Sandbox).ok_or_else(|| {
                        Problem::invalid_field("to.contact_id", "has no Sandbox handle")
                    })?;
                    (Recipient::Sandbox { handle: h.clone() }, h)
                }
            };
            (To::Contact(c.id, c.name), recipient, key)
        } else {
            let (ids, recipient, key, field) = address_of(channel.kind, &b.to)?;
            (To::Address(ids, field), recipient, key)
        };
        if let Some(c) = store::latest_for_address(&self.db, channel.id, &key)
            .await
            .map_err(db_err)?
        {
            return Ok(c);
        }
        self.check_first_send(org, &channel, &b.message).await?;
        // The consent ledger is asked before anything is created: a contact it refuses this
        // send (opted out, blocked), or a number no contact holds when a new contact would be
        // refused (marketing without an opt-in), gets no conversation and no new contact.
        if let Some(cc) = consent_channel(channel.kind) {
            let purpose = direct_purpose(b)?;
            let known = match &to {
                To::Contact(id, _) => Some(*id),
                To::Address(ids, _) => self
                    .contacts
                    .owners(org, std::slice::from_ref(ids))
                    .await?
                    .into_iter()
                    .next()
                    .flatten(),
            };
            let verdict = match known {
                Some(id) => self.contacts.may_send(org, id, cc, purpose).await?,
                None => Contacts::may_send_new(purpose),
            };
            if let SendPermission::Denied { reason } = verdict {
                return Err(consent_denied(reason));
            }
        }
        let (contact_id, name) = match to {
            To::Contact(id, name) => (id, name),
            To::Address(ids, field) => {
                let r = self
                    .contacts
                    .resolve_inbound(org, &ids, None)
                    .await
                    .map_err(|p| {
                        if p.status == StatusCode::UNPROCESSABLE_ENTITY {
                            Problem::invalid_field(field, "is not a valid address")
                        } else {
                            p
                        }
                    })?;
                (r.id, r.name)
            }
        };
        let now = self.now();
        let mut tx = self.db.begin().await.map_err(db_err)?;
        store::lock_addresses(&mut tx, [(channel.id, key.as_str())])
            .await
            .map_err(db_err)?;
        // Another send or the customer's first message may have started it meanwhile.
        let conv = match store::latest_for_address(&mut tx, channel.id, &key)
            .await
            .map_err(db_err)?
        {
            Some(c) => c,
            None => {
                let c = ConversationRow::resolved(
                    org,
                    channel.id,
                    (contact_id, name),
                    &recipient,
                    key,
                    now,
                );
                store::insert_conversation(&mut tx, &c)
                    .await
                    .map_err(db_err)?;
                c
            }
        };
        tx.commit().await.map_err(db_err)?;
        Ok(conv)
    }

    /// A message for a conversation not known yet (a send to an address): validated for the
    /// channel, which must be enabled.
    async fn prepare_new(
        &self,
        org: OrgId,
        channel: &Channel,
        m: &SendIn,
    ) -> Result<Prepared, Problem> {
        let p = self.prepare(org, None, channel, m).await?;
        if !channel.enabled {
            return Err(channel_disabled());
        }
        Ok(p)
    }

    /// The checks of a direct send that would start a conversation, made before anything is
    /// created for it: the message itself, the channel enabled, and on WhatsApp a template
    /// (a customer who never wrote on this channel has no open window).
    async fn check_first_send(
        &self,
        org: OrgId,
        channel: &Channel,
        m: &SendIn,
    ) -> Result<(), Problem> {
        let p = self.prepare_new(org, channel, m).await?;
        if channel.kind == ChannelKind::Whatsapp && !p.template {
            return Err(window_closed());
        }
        Ok(())
    }

    pub async fn send_batch(
        &self,
        who: &Principal,
        items: Vec<Box<RawValue>>,
    ) -> Result<BatchOut, Problem> {
        if items.is_empty() || items.len() > BATCH_MAX {
            return Err(Problem::invalid_field(
                "messages",
                format!("must have 1 to {BATCH_MAX} messages"),
            ));
        }
        // Items to addresses go together (see `bulk`); the others a few at once, each its
        // own send. Results keep the request's order.
        let mut outcomes: Vec<(usize, SendOutcome)> = Vec::with_capacity(items.len());
        let mut together = Vec::new();
        let mut alone = Vec::new();
        for (index, v) in items.into_iter().enumerate() {
            match DirectSendIn::from_json(&v, &format!("messages[{index}].")) {
                Ok(b) if bulk::is_bulk(&b) => together.push((index, b)),
                Ok(b) => alone.push((index, b)),
                Err(p) => outcomes.push((index, Err(p))),
            }
        }
        if !together.is_empty() {
            outcomes.extend(self.send_bulk(who, together).await);
        }
        let singles: Vec<(usize, SendOutcome)> = futures::stream::iter(
            alone
                .into_iter()
                .map(|(index, b)| async move { (index, self.send_direct(who, &b, None).await) }),
        )
        .buffered(BATCH_CONCURRENCY)
        .collect()
        .await;
        outcomes.extend(singles);
        outcomes.sort_by_key(|(index, _)| *index);
        let mut results = Vec::with_capacity(outcomes.len());
        for (index, res) in outcomes {
            results.push(match res {
                Ok((status, body)) => BatchResult {
                    index,
                    status: status.as_u16(),
                    message: RawValue::from_string(body).ok(),
                    problem: None,
                },
                Err(p) => BatchResult {
                    index,
                    status: p.status.as_u16(),
                    message: None,
                    problem: serde_json::to_value(p.body(None)).ok(),
                },
            });
        }
        Ok(BatchOut { results })
    }
}

/// The purpose of a direct send (utility unless marketing is asked for); notes are refused.
fn direct_purpose(b: &DirectSendIn) -> Result<ConsentPurpose, Problem> {
    let purpose = match b.purpose.as_deref() {
        None | Some("utility") => ConsentPurpose::Utility,
        Some("marketing") => ConsentPurpose::Marketing,
        Some(_) => {
            return Err(Problem::invalid_field(
                "purpose",
                "must be utility or marketing",
            ));
        }
    };
    if b.message.kind == "note" {
        return Err(Problem::invalid_field(
            "type",
            "notes belong to a conversation",
        ));
    }
    Ok(purpose)
}

/// A direct send names exactly one of a contact or an address.
fn one_address(to: &ToIn) -> Result<(), Problem> {
    let given = [
        to.contact_id.is_some(),
        to.phone.is_some(),
        to.telegram_chat_id.is_some(),
        to.handle.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given == 1 {
        Ok(())
    } else {
        Err(Problem::invalid_field(
            "to",
            "give exactly one of contact_id, phone, telegram_chat_id or handle",
        ))
    }
}

/// An address of a direct send (not a contact id): the identities it names, the provider
/// recipient, the conversation's recipient key and the field a bad address is reported on.
fn address_of(kind: ChannelKind, to: &ToIn) -> Result<Address, Problem> {
    Ok(match (kind, to) {
        (ChannelKind::Whatsapp, t) if t.phone.is_some() => {
            let raw = t.phone.clone().unwrap_or_default();
            let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
            if !raw.trim().starts_with('+') || !(8..=15).contains(&digits.len()) {
                return Err(Problem::invalid_field(
                    "to.phone",
                    "must be an E.164 number like +4915123456789",
                ));
            }
            let e164 = format!("+{digits}");
            (
                vec![(IdentityKind::WhatsappPhone, e164.clone())],
                Recipient::Whatsapp {
                    phone: Some(e164.clone()),
                    user_id: None,
                },
                e164,
                "to.phone",
            )
        }
        (ChannelKind::Telegram, t) if t.telegram_chat_id.is_some() => {
            let id = t.telegram_chat_id.unwrap_or_default();
            (
                vec![(IdentityKind::Telegram, id.to_string())],
                Recipient::Telegram { chat_id: id },
                id.to_string(),
                "to.telegram_chat_id",
            )
        }
        (ChannelKind::Sandbox, t) if t.handle.is_some() => {
            let h = t.handle.clone().unwrap_or_default();
            if !wamage_channels::sandbox::valid_handle(&h) {
                return Err(Problem::invalid_field(
                    "to.handle",
                    "must be 1 to 64 letters, digits or . _ + -",
                ));
            }
            (
                vec![(IdentityKind::Sandbox, h.clone())],
                Recipient::Sandbox { handle: h.clone() },
                h,
                "to.handle",
            )
        }
        _ => {
            return Err(Problem::invalid_field(
                "to",
                "this address does not fit the channel's kind",
            ));
        }
    })
}

fn replay(prev: idempotency::Stored, fp: &str) -> Result<(StatusCode, String), Problem> {
    if prev.fingerprint != fp {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request",
        )
        .with_field("Idempotency-Key", "was already used for another request"));
    }
    Ok((
        StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK),
        prev.body,
    ))
}

/// What one provider attempt came to.
enum Attempt {
    /// The provider accepted it: its message id, still to be stored.
    Sent(String),
    /// Nothing more to store: what the message's job should do (done, retry, failed).
    Outcome(JobOutcome),
}

#[derive(Deserialize)]
struct MessagePayload {
    message_id: MessageId,
}

/// Runs `inbox.send` jobs.
pub struct SendJob(pub Arc<Inbox>);

#[async_trait::async_trait]
impl JobHandler for SendJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        let p: MessagePayload = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid send payload: {e}")),
        };
        match self.0.deliver(p.message_id, job.is_last_attempt()).await {
            Ok(o) => o,
            Err(e) => JobOutcome::retry(e.to_string()),
        }
    }
}

impl Inbox {
    async fn deliver(&self, id: MessageId, last: bool) -> Result<JobOutcome, Problem> {
        let Some(m) = store::message_any(&self.db, id).await.map_err(db_err)? else {
            return Ok(JobOutcome::Done);
        };
        if m.status != "queued" {
            return Ok(JobOutcome::Done);
        }
        let org = m.org_id;
        let Some(conv) = store::conversation(&self.db, org, m.conversation_id)
            .await
            .map_err(db_err)?
        else {
            return Ok(JobOutcome::Done);
        };
        let Some(channel) = self.channels.get_any(m.channel_id).await? else {
            self.fail(org, &m, 0, "Channel disconnected", None, "permanent")
                .await?;
            return Ok(JobOutcome::fail("channel gone"));
        };
        match self.attempt(&m, &conv.recipient, &channel, last).await? {
            Attempt::Sent(provider_id) => {
                store::mark_sent(&self.db, m.id, &provider_id, self.now())
                    .await
                    .map_err(db_err)?;
                self.channels.note_send_ok(&channel).await;
                self.publish_message(org, "wamage.message.sent", m.id).await;
                Ok(JobOutcome::Done)
            }
            Attempt::Outcome(o) => Ok(o),
        }
    }

    /// One provider attempt for a queued message: pacing and breaker first, then the send and
    /// the classification of its outcome. Failures are recorded here; an accepted send is
    /// returned for the caller to store (one at a time or a batch together).
    async fn attempt(
        &self,
        m: &MessageRow,
        recipient: &str,
        channel: &Channel,
        last: bool,
    ) -> Result<Attempt, Problem> {
        let org = m.org_id;
        /// A stored message's content, of which the sender reads only the provider message.
        #[derive(Deserialize)]
        struct Stored {
            outbound: OutboundContent,
        }
        let content: OutboundContent = match m
            .content
            .as_deref()
            .and_then(|c| serde_json::from_str::<Stored>(c).ok())
        {
            Some(c) => c.outbound,
            None => {
                self.fail(org, m, 0, "Message cannot be sent", None, "permanent")
                    .await?;
                return Ok(Attempt::Outcome(JobOutcome::fail("no outbound content")));
            }
        };
        let to: Recipient = serde_json::from_str(recipient)
            .map_err(|e| Problem::internal(format_args!("recipient: {e}")))?;
        let reply_to = match m.reply_to_id {
            Some(r) if m.kind != "reaction" => store::message_any(&self.db, r)
                .await
                .map_err(db_err)?
                .and_then(|x| x.provider_message_id),
            _ => None,
        };
        let out = Outbound {
            to,
            content,
            reply_to,
            callback_data: None,
        };
        let rkey = recipient_key(&out.to);
        let guard = self.channels.guard(channel);
        match guard.admit(&rkey, std::time::Instant::now()) {
            Gate::Later(d) => {
                return Ok(Attempt::Outcome(JobOutcome::retry_after(
                    "paced: waiting for a send slot",
                    d,
                )));
            }
            Gate::Go(d) => {
                if !d.is_zero() {
                    tokio::time::sleep(d).await;
                }
                while let Err(d) = guard.window_admit(std::time::Instant::now()) {
                    tokio::time::sleep(d).await;
                }
            }
        }
        let client = self.channels.client(channel);
        let started = std::time::Instant::now();
        let res = client.send(&out).await;
        metrics::histogram!("wamage_provider_send_seconds", "kind" => channel.kind.as_str())
            .record(started.elapsed().as_secs_f64());
        match res {
            Ok(sent) => {
                guard.succeeded();
                metrics::counter!("wamage_sends_total", "kind" => channel.kind.as_str(), "outcome" => "sent")
                    .increment(1);
                Ok(Attempt::Sent(sent.provider_message_id))
            }
            Err(e) => {
                let code = e.code();
                metrics::counter!("wamage_sends_total", "kind" => channel.kind.as_str(), "outcome" => "error", "code" => code.to_string())
                    .increment(1);
                match &e {
                    SendError::Retryable { retry_after, .. } => {
                        let now = std::time::Instant::now();
                        let wait = retry_after.unwrap_or(Duration::from_secs(1));
                        match code {
                            130429 | 429 | 4 | 80007 => guard.throttle_channel(wait, now),
                            131056 => {
                                guard.throttle_pair(&rkey, wait.max(Duration::from_secs(6)), now)
                            }
                            _ => {
                                if guard.failed(now, self.now()) {
                                    tracing::warn!(channel = %channel.id, "circuit opened after repeated provider failures");
                                    metrics::counter!("wamage_circuit_opened_total", "kind" => channel.kind.as_str()).increment(1);
                                }
                            }
                        }
                        if last {
                            self.fail(
                                org,
                                m,
                                code,
                                e.message(),
                                Some("Gave up after repeated retryable errors"),
                                "retryable",
                            )
                            .await?;
                        }
                        Ok(Attempt::Outcome(JobOutcome::Retry {
                            error: describe(&e),
                            retry_after: *retry_after,
                        }))
                    }
                    SendError::Permanent { message, .. } => {
                        guard.succeeded();
                        self.fail(org, m, code, message, None, "permanent").await?;
                        Ok(Attempt::Outcome(JobOutcome::fail(describe(&e))))
                    }
                    SendError::NeedsAction {
                        message, action, ..
                    } => {
                        guard.succeeded();
                        self.channels.note_send_error(channel, &e).await;
                        let detail = match action {
                            ActionNeeded::OutsideWindow => Some(
                                "More than 24 hours passed since the customer's last message: send a template",
                            ),
                            ActionNeeded::ExpiredToken => Some(
                                "The channel's access token expired: update it in the channel settings",
                            ),
                            ActionNeeded::BlockedByUser => Some("The customer blocked the bot"),
                            _ => None,
                        };
                        self.fail(org, m, code, message, detail, "needs_action")
                            .await?;
                        Ok(Attempt::Outcome(JobOutcome::fail(describe(&e))))
                    }
                }
            }
        }
    }

    async fn fail(
        &self,
        org: OrgId,
        m: &MessageRow,
        code: i64,
        title: &str,
        detail: Option<&str>,
        class: &str,
    ) -> Result<(), Problem> {
        store::mark_failed(
            &self.db,
            m.id,
            &error_json(code, title, detail, class),
            self.now(),
        )
        .await
        .map_err(db_err)?;
        self.publish_message(org, "wamage.message.status.updated", m.id)
            .await;
        Ok(())
    }
}

/// Downloads customer media into the blob store (`inbox.media` jobs).
pub struct MediaJob(pub Arc<Inbox>);

#[async_trait::async_trait]
impl JobHandler for MediaJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        let p: MessagePayload = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid media payload: {e}")),
        };
        match self.0.download(p.message_id, job.is_last_attempt()).await {
            Ok(o) => o,
            Err(e) => JobOutcome::retry(e.to_string()),
        }
    }
}

impl Inbox {
    async fn download(&self, id: MessageId, last: bool) -> Result<JobOutcome, Problem> {
        let Some(m) = store::message_any(&self.db, id).await.map_err(db_err)? else {
            return Ok(JobOutcome::Done);
        };
        let Some(mut media) = m
            .media
            .as_deref()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
        else {
            return Ok(JobOutcome::Done);
        };
        if media.get("state").and_then(Value::as_str) != Some("pending") {
            return Ok(JobOutcome::Done);
        }
        let Some(media_id) = media
            .get("provider_media_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Ok(JobOutcome::Done);
        };
        let Some(channel) = self.channels.get_any(m.channel_id).await? else {
            return Ok(JobOutcome::Done);
        };
        let res = self
            .channels
            .client(&channel)
            .download_media(&media_id)
            .await;
        let now = self.now();
        let outcome = match res {
            Ok(bytes) => {
                let mime = bytes
                    .mime_type
                    .clone()
                    .or_else(|| {
                        media
                            .get("mime_type")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| "application/octet-stream".to_owned());
                let key = format!("inbox/{}/{}", m.id.as_uuid().simple(), random_hex(16));
                self.blobs
                    .put(&key, bytes.bytes.clone(), &mime)
                    .await
                    .map_err(|e| Problem::internal(format_args!("blob put: {e:#}")))?;
                media["state"] = json!("ready");
                media["key"] = json!(key.replace('/', "~"));
                media["mime_type"] = json!(mime);
                media["size"] = json!(bytes.bytes.len());
                if media.get("kind").is_none() {
                    media["kind"] = json!(media_kind_of(&mime));
                }
                JobOutcome::Done
            }
            Err(e @ SendError::Retryable { .. }) if !last => {
                return Ok(JobOutcome::Retry {
                    error: describe(&e),
                    retry_after: match &e {
                        SendError::Retryable { retry_after, .. } => *retry_after,
                        _ => None,
                    },
                });
            }
            Err(e) => {
                media["state"] = json!("failed");
                media["error"] = json!(describe(&e));
                JobOutcome::Done
            }
        };
        store::set_media(&self.db, m.id, &media.to_string(), now)
            .await
            .map_err(db_err)?;
        self.publish_message(m.org_id, "wamage.message.updated", m.id)
            .await;
        Ok(outcome)
    }
}

/// Re-opens snoozed conversations whose time has come (`inbox.wake` jobs).
pub struct SnoozeJob(pub Arc<Inbox>);

#[async_trait::async_trait]
impl JobHandler for SnoozeJob {
    async fn run(&self, _job: &JobContext) -> JobOutcome {
        let inbox = &self.0;
        match store::wake_snoozed(&inbox.db, inbox.now()).await {
            Ok(woken) => {
                for (org, id) in woken {
                    inbox
                        .publish_conversation(org, "wamage.conversation.updated", id)
                        .await;
                }
                JobOutcome::Done
            }
            Err(e) => JobOutcome::retry(e.to_string()),
        }
    }
}

/// Sends the provider's read receipt for a customer message (`inbox.mark_read` jobs).
pub struct ReadJob(pub Arc<Inbox>);

#[async_trait::async_trait]
impl JobHandler for ReadJob {
    async fn run(&self, job: &JobContext) -> JobOutcome {
        let p: MessagePayload = match job.payload_as() {
            Ok(p) => p,
            Err(e) => return JobOutcome::fail(format!("invalid read payload: {e}")),
        };
        let inbox = &self.0;
        let m = match store::message_any(&inbox.db, p.message_id).await {
            Ok(Some(m)) => m,
            Ok(None) => return JobOutcome::Done,
            Err(e) => return JobOutcome::retry(e.to_string()),
        };
        let (Some(pid), Ok(Some(channel))) = (
            m.provider_message_id.as_deref(),
            inbox.channels.get_any(m.channel_id).await,
        ) else {
            return JobOutcome::Done;
        };
        match inbox.channels.client(&channel).mark_read(pid).await {
            Ok(()) => JobOutcome::Done,
            Err(e @ SendError::Retryable { .. }) => JobOutcome::Retry {
                error: describe(&e),
                retry_after: e.retry_after(),
            },
            // A receipt is a courtesy: a refused one is not retried.
            Err(e) => JobOutcome::fail(describe(&e)),
        }
    }
}
