//! Posting the webhooks the fake generates, the way Meta posts them.
//!
//! Statuses go through one queue: a batcher task takes the first one, collects whatever else
//! arrives within 50 ms (at most 100) and posts them as one webhook, as Meta puts several
//! statuses in one post under load. Template updates are posted on their own at once.
//!
//! Every post runs in its own task and is retried on a non-2xx answer or a connection error with
//! doubling backoff ([`WebhookRetry`]) until it is answered 2xx or the retry window is over, so
//! a receiving server that is down for a while gets them when it is back. At most 32 posts are in
//! flight at once (a slow receiver is not flooded with connections). Tasks hold only weak
//! references: dropping the fake stops them, and a reset makes queued and retrying posts give up.

use std::{
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{body::Bytes, http::header};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use super::FakeMeta;

/// Statuses per webhook post, at most.
const MAX_STATUSES_PER_POST: usize = 100;
/// How long the batcher waits for more statuses after the first.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Posts in flight at once.
const MAX_IN_FLIGHT: usize = 32;
/// One attempt's timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How a webhook post is retried: after `first`, doubling up to `max`, while less than
/// `give_up_after` has passed since the first attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookRetry {
    pub first: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl Default for WebhookRetry {
    /// 200 ms doubling to 5 s, for 10 minutes.
    fn default() -> Self {
        Self {
            first: Duration::from_millis(200),
            max: Duration::from_secs(5),
            give_up_after: Duration::from_secs(600),
        }
    }
}

/// Counters of the webhooks the fake generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Posts answered 2xx.
    pub posts: u64,
    /// Attempts answered otherwise or not at all (each one retried or given up).
    pub failed_attempts: u64,
    /// Statuses and template updates queued or awaiting a retry.
    pub pending: u64,
    /// Statuses and template updates given up after the retry window.
    pub dropped: u64,
}

#[derive(Debug, Clone)]
struct Target {
    url: String,
    app_secret: String,
}

/// A status waiting for the batcher, with the reset epoch it was queued in.
#[derive(Debug)]
struct Queued {
    epoch: u64,
    status: Value,
}

#[derive(Debug)]
pub(super) struct Delivery {
    http: reqwest::Client,
    target: Mutex<Option<Target>>,
    retry: Mutex<WebhookRetry>,
    statuses: mpsc::UnboundedSender<Queued>,
    in_flight: Semaphore,
    /// Bumped by a reset: work of an older epoch is abandoned.
    epoch: AtomicU64,
    posts: AtomicU64,
    failed_attempts: AtomicU64,
    pending: AtomicU64,
    dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Delivery {
    /// A delivery with no target, and its batcher task.
    pub(super) fn start() -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .build()
            .unwrap_or_default();
        let delivery = Arc::new(Self {
            http,
            target: Mutex::new(None),
            retry: Mutex::new(WebhookRetry::default()),
            statuses: tx,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            epoch: AtomicU64::new(0),
            posts: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(batch_statuses(Arc::downgrade(&delivery), rx));
        delivery
    }

    pub(super) fn set_target(&self, url: Option<String>, app_secret: String) {
        *lock(&self.target) = url.map(|url| Target { url, app_secret });
    }

    /// The URL webhooks go to, if any.
    pub(super) fn target_url(&self) -> Option<String> {
        lock(&self.target).as_ref().map(|t| t.url.clone())
    }

    pub(super) fn has_target(&self) -> bool {
        lock(&self.target).is_some()
    }

    /// Replaces the secret of the current target; false when there is none.
    pub(super) fn set_secret(&self, app_secret: String) -> bool {
        match lock(&self.target).as_mut() {
            Some(t) => {
                t.app_secret = app_secret;
                true
            }
            None => false,
        }
    }

    pub(super) fn set_retry(&self, retry: WebhookRetry) {
        *lock(&self.retry) = retry;
    }

    pub(super) fn stats(&self) -> WebhookStats {
        WebhookStats {
            posts: self.posts.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// Abandons queued and retrying posts and zeroes the counters (`pending` falls to 0 as the
    /// abandoned work notices).
    pub(super) fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
        self.posts.store(0, Ordering::Relaxed);
        self.failed_attempts.store(0, Ordering::Relaxed);
        self.dropped.store(0, Ordering::Relaxed);
    }

    /// Queues statuses for the next batched post; nothing without a target.
    pub(super) fn queue_statuses(&self, statuses: Vec<Value>) {
        if statuses.is_empty() || !self.has_target() {
            return;
        }
        let epoch = self.epoch.load(Ordering::Relaxed);
        for status in statuses {
            self.pending.fetch_add(1, Ordering::Relaxed);
            if self.statuses.send(Queued { epoch, status }).is_err() {
                // The batcher is gone: only while the fake shuts down.
                self.pending.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Posts one webhook now (retried like the others); nothing without a target.
    pub(super) fn post(self: &Arc<Self>, body: &Value) {
        let Some(target) = lock(&self.target).clone() else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(body) else {
            return;
        };
        self.pending.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::Relaxed);
        tokio::spawn(deliver(
            Arc::downgrade(self),
            target,
            bytes.into(),
            1,
            epoch,
        ));
    }

    /// `items` will not be delivered; `given_up`: by the retry window (not a reset).
    fn abandon(&self, items: u64, given_up: bool) {
        self.pending.fetch_sub(items, Ordering::Relaxed);
        if given_up {
            self.dropped.fetch_add(items, Ordering::Relaxed);
        }
    }
}

/// Collects queued statuses into posts of at most [`MAX_STATUSES_PER_POST`].
async fn batch_statuses(delivery: Weak<Delivery>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < MAX_STATUSES_PER_POST {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(q)) => batch.push(q),
                Ok(None) | Err(_) => break,
            }
        }
        let Some(d) = delivery.upgrade() else {
            return;
        };
        let epoch = d.epoch.load(Ordering::Relaxed);
        let total = batch.len() as u64;
        let statuses: Vec<Value> = batch
            .into_iter()
            .filter(|q| q.epoch == epoch)
            .map(|q| q.status)
            .collect();
        let live = statuses.len() as u64;
        d.abandon(total - live, false);
        if statuses.is_empty() {
            continue;
        }
        let Some(target) = lock(&d.target).clone() else {
            // The target was removed after these were queued: Meta would not deliver them.
            d.abandon(live, true);
            continue;
        };
        let body = FakeMeta::webhook_statuses(statuses);
        match serde_json::to_vec(&body) {
            Ok(bytes) => {
                tokio::spawn(deliver(
                    Arc::downgrade(&d),
                    target,
                    bytes.into(),
                    live,
                    epoch,
                ));
            }
            Err(_) => d.abandon(live, true),
        }
    }
}

/// Posts until answered 2xx, the retry window is over, the fake is dropped or reset.
async fn deliver(delivery: Weak<Delivery>, target: Target, body: Bytes, items: u64, epoch: u64) {
    let signature = FakeMeta::sign(&target.app_secret, &body);
    let started = tokio::time::Instant::now();
    let mut wait: Option<Duration> = None;
    loop {
        let Some(d) = delivery.upgrade() else {
            return;
        };
        if d.epoch.load(Ordering::Relaxed) != epoch {
            d.abandon(items, false);
            return;
        }
        let delivered = {
            let Ok(_permit) = d.in_flight.acquire().await else {
                return;
            };
            let answer = d
                .http
                .post(&target.url)
                .header(header::CONTENT_TYPE, "application/json")
                .header("X-Hub-Signature-256", &signature)
                .body(body.clone())
                .send()
                .await;
            match answer {
                Ok(res) => {
                    let ok = res.status().is_success();
                    // Read the answer so the connection can be reused.
                    let _ = res.bytes().await;
                    ok
                }
                Err(_) => false,
            }
        };
        if delivered {
            d.posts.fetch_add(1, Ordering::Relaxed);
            d.pending.fetch_sub(items, Ordering::Relaxed);
            return;
        }
        d.failed_attempts.fetch_add(1, Ordering::Relaxed);
        let retry = *lock(&d.retry);
        let next = wait.map_or(retry.first, |w| (w * 2).min(retry.max));
        if started.elapsed() + next > retry.give_up_after {
            d.abandon(items, true);
            return;
        }
        wait = Some(next);
        drop(d);
        tokio::time::sleep(next).await;
    }
}
