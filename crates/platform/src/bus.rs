//! The domain event bus: domains publish [`Event`]s (CloudEvents envelope) and other domains
//! subscribe by type pattern (`inbox` publishes `wamage.message.received`; `workflows` and
//! `realtime` subscribe).
//!
//! # Delivery semantics (read before relying on it)
//!
//! [`InProcessBus`] is a `tokio::sync::broadcast` channel:
//!
//! - delivery is **at most once**, and only to subscriptions that exist when `publish` runs;
//!   nothing is stored, an event published with no live subscriber is gone;
//! - every subscription has a bounded buffer (the bus capacity). A subscriber that falls more
//!   than `capacity` events behind **loses** the oldest ones: they are counted in
//!   `wamage_bus_lagged_events_total{pattern}` (and [`Subscription::lagged`]), a warning is
//!   logged, and the subscription continues with the oldest event still buffered;
//! - events reach one process only.
//!
//! So the bus is for reactions that may be lost without harm (realtime fan-out, cache
//! invalidation, waking a worker early). Anything that must happen goes through the durable job
//! queue, enqueued in the same transaction as the change (see `jobs`); cross-process, durable
//! delivery will come from NATS JetStream behind this same trait.
//!
//! `wamage_bus_published_total{type}` counts published events.

use std::{
    fmt,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use anyhow::bail;
use futures::{Stream, StreamExt, stream::BoxStream};
use tokio::sync::broadcast::{self, error::RecvError};
use wamage_kernel::Event;

#[async_trait::async_trait]
pub trait Bus: Send + Sync + fmt::Debug + 'static {
    async fn publish(&self, event: Event) -> anyhow::Result<()>;
    /// Live subscription to events whose `type_` matches `pattern` (exact, or a prefix ending in `*`, e.g. "wamage.member.*", or "*").
    fn subscribe(&self, pattern: &str) -> Subscription;
    async fn ping(&self) -> anyhow::Result<()>;
    /// `"memory"` (NATS later).
    fn backend(&self) -> &'static str;
}

pub type SharedBus = Arc<dyn Bus>;

/// Whether an event type matches a subscription pattern: `"*"` matches everything,
/// `"wamage.member.*"` every type starting with `"wamage.member."`, anything else exactly.
/// A `*` anywhere but at the end is taken literally.
pub fn pattern_matches(pattern: &str, type_: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => type_.starts_with(prefix),
        None => pattern == type_,
    }
}

/// A live subscription; read it with [`Subscription::recv`] or as a [`Stream`].
/// Dropping it unsubscribes.
pub struct Subscription {
    pattern: Arc<str>,
    lagged: Arc<AtomicU64>,
    inner: BoxStream<'static, Arc<Event>>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("pattern", &self.pattern)
            .field("lagged", &self.lagged())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next matching event; `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.inner.next().await.map(Arc::unwrap_or_clone)
    }

    /// The next matching event, shared with the other subscribers: for a reader that does not
    /// need its own copy (a copy of a large event's data is a deep clone).
    pub async fn recv_shared(&mut self) -> Option<Arc<Event>> {
        self.inner.next().await
    }

    /// The pattern this subscription was created with.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// How many events this subscription lost so far because it fell behind (all types, not
    /// only matching ones: the loss happens before filtering).
    pub fn lagged(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    fn from_broadcast(pattern: &str, rx: broadcast::Receiver<Arc<Event>>) -> Self {
        let pattern: Arc<str> = Arc::from(pattern);
        let lagged = Arc::new(AtomicU64::new(0));
        let state = (rx, Arc::clone(&pattern), Arc::clone(&lagged));
        let inner = futures::stream::unfold(state, |(mut rx, pattern, lagged)| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if pattern_matches(&pattern, &event.type_) {
                            return Some((event, (rx, pattern, lagged)));
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        lagged.fetch_add(missed, Ordering::Relaxed);
                        metrics::counter!(
                            "wamage_bus_lagged_events_total",
                            "pattern" => pattern.to_string()
                        )
                        .increment(missed);
                        tracing::warn!(
                            pattern = %pattern,
                            missed,
                            "bus subscriber fell behind, events lost"
                        );
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
        .boxed();
        Self {
            pattern,
            lagged,
            inner,
        }
    }
}

impl Stream for Subscription {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.inner
            .poll_next_unpin(cx)
            .map(|e| e.map(Arc::unwrap_or_clone))
    }
}

/// The embedded bus: one broadcast channel in this process (see the module docs for what that
/// does and does not guarantee).
#[derive(Clone)]
pub struct InProcessBus {
    tx: broadcast::Sender<Arc<Event>>,
    capacity: usize,
}

impl InProcessBus {
    /// `capacity` is how many events each subscriber may fall behind before it loses some.
    /// It is raised to at least 1.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(capacity);
        Self { tx, capacity }
    }
}

impl fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessBus")
            .field("capacity", &self.capacity)
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

#[async_trait::async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, event: Event) -> anyhow::Result<()> {
        metrics::counter!("wamage_bus_published_total", "type" => event.type_.clone()).increment(1);
        // An error only means nobody is subscribed right now: at-most-once, nothing to do.
        let _ = self.tx.send(Arc::new(event));
        Ok(())
    }

    fn subscribe(&self, pattern: &str) -> Subscription {
        Subscription::from_broadcast(pattern, self.tx.subscribe())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// Per-subscriber buffer of the bus picked by [`connect_bus`].
const DEFAULT_CAPACITY: usize = 4096;

/// "memory"/""/"memory://" → InProcessBus; "nats://…" → an error (not built yet).
pub async fn connect_bus(url: &str) -> anyhow::Result<SharedBus> {
    let url = url.trim();
    if url.is_empty() || url == "memory" || url == "memory://" {
        return Ok(Arc::new(InProcessBus::new(DEFAULT_CAPACITY)));
    }
    if url.starts_with("nats://") || url.starts_with("tls://") {
        bail!(
            "the NATS bus is not built yet: leave the bus url empty or set it to \"memory\" \
             (in-process bus, one process only)"
        );
    }
    let scheme = url.split("://").next().unwrap_or(url);
    bail!("unsupported bus url scheme {scheme:?}: use \"memory\"")
}
