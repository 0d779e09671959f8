//! Team chat: the organisation's own messenger, next to the customer inbox.
//!
//! Channels are public (any member of the organisation may read and join them), private
//! (members only), DMs and group DMs (the same set of people always gets the same DM). Each
//! channel has members with a role (`admin` or `member`) and a read marker; the caller's
//! unread and mention counts are computed from it. Messages keep their markdown as written
//! and carry mentions as `@[Name](user:<uuid>)` tokens (plus `@channel`/`@here`); they can
//! be replies in a thread (the parent counts them), quote another message, be forwarded
//! (marked with where they came from), pinned, reacted to, edited (`edited_at`) and deleted
//! (a tombstone stays). History pages by keyset `(created_at, id)` in both directions and
//! around a message; search is full text (SQLite FTS5 / PostgreSQL `tsvector`) over the
//! channels the caller is in. The API is described in the OpenAPI document; `http.rs` has the
//! routes, `service.rs` the access rules.
//!
//! Attachments (`service/attachments.rs`) are typed by their bytes, thumbnailed, and may be
//! voice notes or view-once. Disappearing messages (`service/expire.rs`) are deleted by the
//! `chat.expire` job ([`EXPIRE_JOB`], handler [`ExpireJob`]). A user may lock a channel for
//! themselves: reading it then needs a short-lived token got by re-entering their password.
//!
//! Live updates go through the realtime gateway: the server registers [`ChatRooms`] as the
//! room policy of kind `chat`, and every change is published after its commit to the room
//! `chat:{channel_id}` (membership changes also to the user's room) as
//! `wamage.chat.message.created|updated|deleted`, `wamage.chat.reaction.added|removed`,
//! `wamage.chat.read`, `wamage.chat.channel.created|updated|archived` and
//! `wamage.chat.member.added|removed`.

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
pub use model::{AttachmentId, ChannelId, ChannelKind, ChatMessageId, Disappearing, MemberRole};
pub use service::{Chat, ChatDeps, EXPIRE_JOB, ExpireJob, ROOM_KIND, SOURCE};

/// This crate's migrations.
pub fn migrations() -> MigrationSet {
    migration_set!()
}

/// Who may join `chat:{id}` rooms: the channel's members, and for a public channel any member
/// of the organisation.
pub struct ChatRooms(pub Arc<Chat>);

#[async_trait::async_trait]
impl RoomPolicy for ChatRooms {
    async fn may_join(&self, viewer: &Principal, id: Uuid) -> anyhow::Result<bool> {
        self.0.may_join_room(viewer, ChannelId(id)).await
    }
}
