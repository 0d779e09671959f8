//! Presence: online / away / offline with last-seen, kept in the platform cache so every node
//! (and the REST endpoint) sees the same answer.
//!
//! Per user and organisation two cache entries:
//!
//! - `realtime:{org}:conns:{user}` — how many sockets the user has open, across tabs, devices
//!   and nodes: a sliding counter ([`Cache::add`]) incremented on connect, decremented on
//!   disconnect, refreshed by a heartbeat of every node that holds one of the sockets. A node that
//!   dies stops refreshing and its share expires with the key ([`CONN_TTL`]).
//! - `realtime:{org}:presence:{user}` — the last status and when it changed (`last_seen`).
//!
//! A user is online from their first socket until their last one closes; `away` is set by a
//! client and lasts until that user's next status change (a new first socket, or `online` from a
//! client). Transitions of one user are serialised in this process (striped locks) so that a tab
//! closing while another opens cannot leave a wrong status behind; across nodes the heartbeat
//! repairs what a race could leave (it re-asserts online for users with local sockets).
//!
//! Sockets authenticated with an API key are programs, not people: they never count.

use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wamage_kernel::{Clock, OrgId, Timestamp, UserId};
use wamage_platform::cache::{self, SharedCache};

/// How long a connection count lives without a heartbeat.
pub(crate) const CONN_TTL: Duration = Duration::from_secs(5 * 60);
/// How often each node refreshes the counts of its sockets.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(60);
/// How long the last status (and so last-seen) is remembered.
const RECORD_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
const STRIPES: usize = 64;

/// A user's presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Away,
    Offline,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    status: Status,
    /// When the status last changed (for offline: when the last socket closed).
    last_seen: Timestamp,
}

/// One user's presence as the API and the `presence.changed` event show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PresenceOut {
    pub user_id: UserId,
    pub status: Status,
    /// When the status last changed; for an offline user, when their last socket closed.
    /// `null` when they never connected (or too long ago).
    pub last_seen: Option<Timestamp>,
}

pub(crate) struct Presence {
    cache: SharedCache,
    clock: Clock,
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Sockets of each user held by this node (for the heartbeat).
    local: std::sync::Mutex<HashMap<(OrgId, UserId), i64>>,
}

fn conns_key(org: OrgId, user: UserId) -> String {
    format!("realtime:{org}:conns:{user}")
}

fn record_key(org: OrgId, user: UserId) -> String {
    format!("realtime:{org}:presence:{user}")
}

impl Presence {
    pub(crate) fn new(cache: SharedCache, clock: Clock) -> Self {
        Self {
            cache,
            clock,
            locks: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            local: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self, user: UserId) -> &tokio::sync::Mutex<()> {
        let n = user.as_uuid().as_u128() as usize % STRIPES;
        &self.locks[n]
    }

    fn local_add(&self, org: OrgId, user: UserId, delta: i64) {
        if let Ok(mut local) = self.local.lock() {
            let n = local.entry((org, user)).or_insert(0);
            *n += delta;
            if *n <= 0 {
                local.remove(&(org, user));
            }
        }
    }

    async fn record(&self, org: OrgId, user: UserId) -> Option<Record> {
        cache::get_json(self.cache.as_ref(), &record_key(org, user))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "failed to read presence");
                None
            })
    }

    /// Writes the new status; returns it as the change to announce.
    async fn write(&self, org: OrgId, user: UserId, status: Status) -> anyhow::Result<PresenceOut> {
        let record = Record {
            status,
            last_seen: self.clock.now(),
        };
        cache::set_json(
            self.cache.as_ref(),
            &record_key(org, user),
            &record,
            RECORD_TTL,
        )
        .await?;
        Ok(PresenceOut {
            user_id: user,
            status,
            last_seen: Some(record.last_seen),
        })
    }

    /// A socket of `user` connected. Returns the change to announce, if any.
    pub(crate) async fn connected(
        &self,
        org: OrgId,
        user: UserId,
    ) -> anyhow::Result<Option<PresenceOut>> {
        let _guard = self.lock(user).lock().await;
        self.local_add(org, user, 1);
        let n = self.cache.add(&conns_key(org, user), 1, CONN_TTL).await?;
        let current = self.record(org, user).await;
        let stale = current.is_none_or(|r| r.status == Status::Offline);
        if n == 1 || stale {
            return self.write(org, user, Status::Online).await.map(Some);
        }
        Ok(None)
    }

    /// A socket of `user` closed. Returns the change to announce, if any.
    pub(crate) async fn disconnected(
        &self,
        org: OrgId,
        user: UserId,
    ) -> anyhow::Result<Option<PresenceOut>> {
        let _guard = self.lock(user).lock().await;
        self.local_add(org, user, -1);
        let key = conns_key(org, user);
        let n = self.cache.add(&key, -1, CONN_TTL).await?;
        if n > 0 {
            return Ok(None);
        }
        // Below zero only after the count expired or was lost: the user has no socket we know.
        self.cache.delete(&key).await?;
        self.write(org, user, Status::Offline).await.map(Some)
    }

    /// A client set its user's status (`online` or `away`; offline is not something one sets).
    pub(crate) async fn set(
        &self,
        org: OrgId,
        user: UserId,
        status: Status,
    ) -> anyhow::Result<Option<PresenceOut>> {
        let _guard = self.lock(user).lock().await;
        let current = self.record(org, user).await.map(|r| r.status);
        if current == Some(status) {
            return Ok(None);
        }
        self.write(org, user, status).await.map(Some)
    }

    /// The presence of each of `users` (offline when they have no live socket).
    pub(crate) async fn of(
        &self,
        org: OrgId,
        users: &[UserId],
    ) -> anyhow::Result<Vec<PresenceOut>> {
        let mut out = Vec::with_capacity(users.len());
        for &user in users {
            let record = self.record(org, user).await;
            let live = match self.cache.get(&conns_key(org, user)).await? {
                Some(bytes) => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .is_some_and(|n| n > 0),
                None => false,
            };
            let status = match record {
                Some(r) if live && r.status != Status::Offline => r.status,
                _ => Status::Offline,
            };
            out.push(PresenceOut {
                user_id: user,
                status,
                last_seen: record.map(|r| r.last_seen),
            });
        }
        Ok(out)
    }

    /// Refreshes the counts of this node's users and repairs what a lost count or a cross-node
    /// race left behind. Returns the changes to announce.
    pub(crate) async fn heartbeat(&self) -> Vec<(OrgId, PresenceOut)> {
        let users: Vec<((OrgId, UserId), i64)> = match self.local.lock() {
            Ok(local) => local.iter().map(|(k, v)| (*k, *v)).collect(),
            Err(_) => return Vec::new(),
        };
        let mut changes = Vec::new();
        for ((org, user), mine) in users {
            let _guard = self.lock(user).lock().await;
            let key = conns_key(org, user);
            let result = async {
                let n = self.cache.add(&key, 0, CONN_TTL).await?;
                if n < mine {
                    self.cache.add(&key, mine - n, CONN_TTL).await?;
                }
                let stale = self
                    .record(org, user)
                    .await
                    .is_none_or(|r| r.status == Status::Offline);
                if stale {
                    return self.write(org, user, Status::Online).await.map(Some);
                }
                anyhow::Ok(None)
            }
            .await;
            match result {
                Ok(Some(change)) => changes.push((org, change)),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "presence heartbeat failed"),
            }
        }
        changes
    }
}

/// Shared so the gateway, the forwarder and the REST handler use one instance.
pub(crate) type SharedPresence = Arc<Presence>;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use wamage_platform::cache::MemoryCache;

    use super::*;

    fn presence() -> (Presence, SharedCache) {
        let cache: SharedCache = Arc::new(MemoryCache::new(1000));
        let clock = Clock::manual(Timestamp::from_millis(1_000_000));
        (Presence::new(cache.clone(), clock), cache)
    }

    #[tokio::test]
    async fn heartbeat_repairs_a_lost_count() {
        let (p, cache) = presence();
        let (org, user) = (OrgId::new(), UserId::new());
        assert!(p.connected(org, user).await.unwrap().is_some());
        assert!(p.connected(org, user).await.unwrap().is_none());
        // The shared count vanished (Redis flushed, or it expired while this node was stalled).
        cache.delete(&conns_key(org, user)).await.unwrap();
        assert_eq!(p.of(org, &[user]).await.unwrap()[0].status, Status::Offline);
        // Nothing to announce (the record still says online), but the count is back.
        assert!(p.heartbeat().await.is_empty());
        assert_eq!(p.of(org, &[user]).await.unwrap()[0].status, Status::Online);
        assert_eq!(
            cache.add(&conns_key(org, user), 0, CONN_TTL).await.unwrap(),
            2
        );
        // Both sockets close: offline exactly at the last one.
        assert!(p.disconnected(org, user).await.unwrap().is_none());
        let change = p.disconnected(org, user).await.unwrap().unwrap();
        assert_eq!(change.status, Status::Offline);
        // A node with no sockets left has nothing to refresh.
        assert!(p.heartbeat().await.is_empty());
    }

    #[tokio::test]
    async fn heartbeat_brings_back_a_user_marked_offline_by_a_race() {
        let (p, _) = presence();
        let (org, user) = (OrgId::new(), UserId::new());
        p.connected(org, user).await.unwrap();
        // Another node wrote "offline" after this node's socket connected.
        p.write(org, user, Status::Offline).await.unwrap();
        let changes = p.heartbeat().await;
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1.status, Status::Online);
    }

    #[tokio::test]
    async fn a_disconnect_without_a_count_goes_offline_and_cleans_up() {
        let (p, cache) = presence();
        let (org, user) = (OrgId::new(), UserId::new());
        let change = p.disconnected(org, user).await.unwrap().unwrap();
        assert_eq!(change.status, Status::Offline);
        assert_eq!(cache.get(&conns_key(org, user)).await.unwrap(), None);
    }
}
