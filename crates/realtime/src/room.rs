//! Room names and the policies that decide who may join them.
//!
//! A room is `kind:uuid` (`user:…`, `org:…`, `chat:…`, `conversation:…`). That is the name
//! clients and publishers use. Inside the Socket.IO adapter every room is stored under its
//! organisation (`{org}/{kind}:{id}`, see [`Room::key`]), so a room name can never reach a socket
//! of another organisation: the organisation part comes from the socket's credentials or from the
//! event envelope, never from what a client or an event's data says.

use std::{collections::HashMap, fmt, sync::Arc};

use uuid::Uuid;
use wamage_identity::Principal;
use wamage_kernel::{OrgId, UserId};

/// The room of one user (all their tabs and devices).
pub const USER: &str = "user";
/// The room of a whole organisation.
pub const ORG: &str = "org";

const KIND_MAX: usize = 32;

/// A room name: a kind (`[a-z_]`, 1–32 characters) and a UUID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Room {
    kind: String,
    id: Uuid,
}

/// Why a string is not a room name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a room is `kind:uuid`, e.g. `chat:0190a1b2-…`")]
pub struct InvalidRoom;

impl Room {
    /// A room of `kind` (lower-case letters and `_`, 1–32 characters).
    pub fn new(kind: &str, id: Uuid) -> Result<Self, InvalidRoom> {
        let valid = !kind.is_empty()
            && kind.len() <= KIND_MAX
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if !valid {
            return Err(InvalidRoom);
        }
        Ok(Self {
            kind: kind.to_owned(),
            id,
        })
    }

    /// The room every socket of `user` joins.
    pub fn user(user: UserId) -> Self {
        Self {
            kind: USER.to_owned(),
            id: user.as_uuid(),
        }
    }

    /// The room every socket of the organisation joins.
    pub fn org(org: OrgId) -> Self {
        Self {
            kind: ORG.to_owned(),
            id: org.as_uuid(),
        }
    }

    /// Parses `kind:uuid`.
    pub fn parse(raw: &str) -> Result<Self, InvalidRoom> {
        if raw.len() > KIND_MAX + 1 + 36 {
            return Err(InvalidRoom);
        }
        let (kind, id) = raw.split_once(':').ok_or(InvalidRoom)?;
        let id = Uuid::parse_str(id).map_err(|_| InvalidRoom)?;
        Self::new(kind, id)
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The adapter key of this room inside `org`: `{org}/{kind}:{id}`.
    pub fn key(&self, org: OrgId) -> String {
        format!("{org}/{self}")
    }
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// Decides whether a caller may join the rooms of one kind. Domain crates implement it for
/// their rooms (chat for `chat:…`, inbox for `conversation:…`) and the server registers it with
/// [`Realtime::register_policy`](crate::Realtime::register_policy).
///
/// It runs once per `join` request, never per delivered event, so it may read the database. The
/// room's organisation is always the viewer's: answer for `viewer.org_id` only.
#[async_trait::async_trait]
pub trait RoomPolicy: Send + Sync + 'static {
    /// Whether `viewer` may see room `id` (of the kind this policy is registered for). An error
    /// is reported to the client as "unavailable" and logged; it is not a refusal.
    async fn may_join(&self, viewer: &Principal, id: Uuid) -> anyhow::Result<bool>;
}

/// The policies per room kind, with the two built-in kinds answered here.
#[derive(Default)]
pub(crate) struct Policies {
    by_kind: std::sync::RwLock<HashMap<String, Arc<dyn RoomPolicy>>>,
}

/// The answer to a join request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    Denied,
    Unavailable,
}

impl Policies {
    pub(crate) fn register(&self, kind: &str, policy: Arc<dyn RoomPolicy>) {
        if let Ok(mut map) = self.by_kind.write() {
            map.insert(kind.to_owned(), policy);
        }
    }

    pub(crate) async fn decide(&self, viewer: &Principal, room: &Room) -> Decision {
        match room.kind() {
            USER => return allow(room.id() == viewer.user_id.as_uuid()),
            ORG => return allow(room.id() == viewer.org_id.as_uuid()),
            _ => {}
        }
        let policy = self
            .by_kind
            .read()
            .ok()
            .and_then(|map| map.get(room.kind()).cloned());
        // No policy for a kind means nobody may join it: deny by default.
        let Some(policy) = policy else {
            return Decision::Denied;
        };
        match policy.may_join(viewer, room.id()).await {
            Ok(ok) => allow(ok),
            Err(e) => {
                tracing::warn!(error = %e, room = %room, "room policy failed");
                Decision::Unavailable
            }
        }
    }
}

fn allow(ok: bool) -> Decision {
    if ok {
        Decision::Allowed
    } else {
        Decision::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_parse_and_print() {
        let id = Uuid::now_v7();
        let room = Room::parse(&format!("chat:{id}")).unwrap();
        assert_eq!(room.kind(), "chat");
        assert_eq!(room.id(), id);
        assert_eq!(room.to_string(), format!("chat:{id}"));
        let org = OrgId::new();
        assert_eq!(room.key(org), format!("{org}/chat:{id}"));
        for bad in [
            "",
            "chat",
            "chat:",
            ":0190",
            "Chat:00000000-0000-0000-0000-000000000000",
            "chat/x:00000000-0000-0000-0000-000000000000",
            "chat:not-a-uuid",
            &format!("{}:{id}", "a".repeat(40)),
            &format!("chat:{id}:extra"),
        ] {
            assert_eq!(Room::parse(bad), Err(InvalidRoom), "{bad:?}");
        }
    }
}
