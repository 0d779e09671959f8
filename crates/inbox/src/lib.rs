//! The shared inbox: conversations with customers on every channel, their messages, the
//! outbound pipeline, assignment, private notes and canned responses.
//!
//! A conversation belongs to one customer address on one channel (a WhatsApp number, a
//! Telegram chat, a Sandbox handle) and to the contact that address resolved to. Customer
//! messages arrive through the channels' stored webhook events (processed by [`IngestJob`]);
//! agents answer through the send API, which queues each message with its job in one
//! transaction ([`SendJob`] delivers it with the channel's pacing and breaker). Statuses are
//! `open` → `pending` / `snoozed` (until a time; [`SnoozeJob`] wakes them) → `resolved`; a
//! customer message reopens a resolved conversation, or starts a new one when the channel's
//! reopen policy is `new`.
//!
//! Events (to `org:{org}` and `conversation:{id}`): `wamage.conversation.created|updated|
//! assigned|resolved` (`data.conversation`), `wamage.message.received|created|sent|updated|
//! status.updated` (`data.message`, `data.conversation_id`), and `wamage.inbox.mention` to a
//! mentioned member's `user:` room.

pub mod http;
mod model;
mod service;
mod store;

use std::sync::Arc;

use uuid::Uuid;
use wamage_identity::Principal;
use wamage_platform::{MigrationSet, migration_set};
use wamage_realtime::RoomPolicy;

pub use http::routes;
pub use model::{AttachmentId, CannedId, ConversationId, ConversationStatus, MessageId, Priority};
pub use service::{
    ATTACHMENT_MAX, Inbox, InboxDeps, IngestHook, IngestJob, MEDIA_JOB, MediaJob, READ_JOB,
    ROOM_KIND, ReadJob, SEND_JOB, SEND_MANY_JOB, SNOOZE_JOB, SendJob, SendManyJob, SnoozeJob,
    TemplateStatusChange,
};

/// This crate's migrations.
pub fn migrations() -> MigrationSet {
    migration_set!()
}

/// Who may join `conversation:{id}` rooms: any member of the conversation's organisation.
pub struct ConversationRooms(pub Arc<Inbox>);

#[async_trait::async_trait]
impl RoomPolicy for ConversationRooms {
    async fn may_join(&self, viewer: &Principal, id: Uuid) -> anyhow::Result<bool> {
        self.0.may_join_room(viewer, id).await
    }
}
