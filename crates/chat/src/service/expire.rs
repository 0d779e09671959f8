//! Disappearing messages: the `chat.expire` job.
//!
//! A message sent while its channel has `disappearing` on gets `expires_at`; readers stop
//! seeing it at that moment (every read filters on it), and a `chat.expire` job deletes it
//! for good — row, search entry, mentions, reactions, attachment rows and files — and
//! publishes `chat.message.deleted`.
//!
//! Scheduling: the transaction that writes such a message also enqueues a `chat.expire` job
//! due at its `expires_at` rounded up to the minute, with that minute as the dedupe key: at
//! most one job is queued per minute that has messages to expire, and none at all while
//! nothing disappears (a self re-enqueueing sweeper would wake up forever for nothing, and
//! could not re-enqueue itself under its own dedupe key while it runs). Each run deletes
//! everything due by then, in batches, so a late or retried job catches up with earlier
//! minutes too; running it twice is harmless.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::Arc,
};

use serde_json::json;
use wamage_kernel::{OrgId, Timestamp};
use wamage_platform::{
    Tx,
    jobs::{JobContext, JobHandler, JobOutcome, JobQueue, NewJob},
};

use super::{Chat, Directory, Lookups, MessageEvent, ReadState, Viewer, room};
use crate::store::{self, ExpiredRow};

/// The job kind.
pub const EXPIRE_JOB: &str = "chat.expire";
const BATCH: i64 = 500;
const MINUTE_MS: i64 = 60_000;

/// Makes sure a `chat.expire` job runs at (or just after) `at`, in the caller's transaction.
pub(super) async fn schedule(jobs: &JobQueue, tx: &mut Tx, at: Timestamp) -> anyhow::Result<()> {
    let minute = at.millis().div_euclid(MINUTE_MS) * MINUTE_MS;
    let due = if minute < at.millis() {
        minute + MINUTE_MS
    } else {
        minute
    };
    jobs.enqueue(
        tx,
        NewJob::new(EXPIRE_JOB, json!({}))
            .with_run_at(Timestamp::from_millis(due))
            .with_dedupe_key(format!("at:{due}")),
    )
    .await?;
    Ok(())
}

/// Runs `chat.expire` jobs.
pub struct ExpireJob(pub Arc<Chat>);

#[async_trait::async_trait]
impl JobHandler for ExpireJob {
    async fn run(&self, _job: &JobContext) -> JobOutcome {
        match self.0.expire_due().await {
            Ok(n) => {
                tracing::debug!(deleted = n, "expired chat messages");
                JobOutcome::Done
            }
            Err(e) => JobOutcome::retry(format!("failed to expire chat messages: {e:#}")),
        }
    }
}

impl Chat {
    /// Deletes every message whose `expires_at` has passed; returns how many.
    pub async fn expire_due(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        let mut dirs: HashMap<OrgId, Directory> = HashMap::new();
        loop {
            let now = self.now();
            let due = store::expired(&self.db, now, BATCH).await?;
            if due.is_empty() {
                return Ok(total);
            }
            for m in &due {
                self.expire_one(m, &mut dirs).await?;
                total += 1;
            }
        }
    }

    async fn expire_one(
        &self,
        m: &ExpiredRow,
        dirs: &mut HashMap<OrgId, Directory>,
    ) -> anyhow::Result<()> {
        let row = store::message(&self.db, m.org_id, m.id).await?;
        let mut tx = self.db.begin().await?;
        let keys = store::detach_all(&mut tx, m.id).await?;
        store::delete_message(&mut tx, m).await?;
        tx.commit().await?;
        self.delete_blobs(&keys).await;
        let Some(mut row) = row else { return Ok(()) };
        let dir = match dirs.entry(m.org_id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.directory(m.org_id).await.map_err(|p| {
                anyhow::anyhow!("failed to read the member directory: {}", p.title)
            })?),
        };
        // What clients get is the tombstone of the message that is now gone.
        row.text.clear();
        row.deleted = true;
        row.mentions.0.clear();
        row.mentions_channel = false;
        row.pinned_at = None;
        let out = self
            .render(
                m.org_id,
                Viewer(None),
                vec![row],
                dir,
                &ReadState::new(),
                Lookups::Stored,
            )
            .await
            .map_err(|p| anyhow::anyhow!("failed to render an expired message: {}", p.title))?;
        if let Some(msg) = out.into_iter().next() {
            self.publish(
                m.org_id,
                "wamage.chat.message.deleted",
                &room(m.channel_id),
                MessageEvent {
                    channel_id: m.channel_id,
                    message: &msg,
                },
            )
            .await;
        }
        Ok(())
    }
}
