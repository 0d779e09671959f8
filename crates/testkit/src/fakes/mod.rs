//! Fake messaging providers: real HTTP servers on `127.0.0.1:0` that answer like the WhatsApp
//! Cloud API ([`FakeMeta`]) and the Telegram Bot API ([`FakeTelegram`]) do, check request shapes
//! the way they do, and can be told to fail, throttle or hang.
//!
//! They are written from the providers' documentation, independently of `wamage-channels`, so a
//! test of an adapter against a fake checks the adapter against the documented API rather than
//! against itself. Knobs are methods on the handle and take effect for the next request; every
//! accepted message is recorded for assertions.
//!
//! The `fake-providers` binary serves both on fixed addresses for tests outside this process
//! (browser tests, benchmarks); see [`meta`] for its control API.

pub mod meta;
pub mod telegram;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    time::{Duration, Instant},
};

pub use meta::FakeMeta;
pub use telegram::FakeTelegram;

/// Stops the fake's server when the last handle is dropped.
#[derive(Debug)]
pub(crate) struct ServerGuard(tokio::task::JoinHandle<()>);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `router` on `addr` (port 0: a fresh one); fails when the address cannot be bound.
pub(crate) async fn serve_on(
    router: axum::Router,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, ServerGuard)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, ServerGuard(task)))
}

/// A sliding-window counter: at most `max` hits per `per`.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub max: u32,
    pub per: Duration,
    hits: VecDeque<Instant>,
}

impl Window {
    /// An empty window.
    pub fn new(max: u32, per: Duration) -> Self {
        Self {
            max,
            per,
            hits: VecDeque::new(),
        }
    }

    /// Records a hit if the window has room; otherwise how long until it has.
    pub fn hit(&mut self, now: Instant) -> Result<(), Duration> {
        while self
            .hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.per)
        {
            self.hits.pop_front();
        }
        if self.hits.len() < self.max as usize {
            self.hits.push_back(now);
            Ok(())
        } else {
            let oldest = self.hits.front().copied().unwrap_or(now);
            Err(self.per.saturating_sub(now.duration_since(oldest)))
        }
    }
}

/// Seconds since the epoch, as providers stamp their payloads.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
