//! Outbound pacing and the circuit breaker, per channel, in this process.
//!
//! **Pacing** is GCRA (a token bucket expressed as a "theoretical arrival time"): one send per
//! `1/rate` seconds with a burst of one, so a channel configured at 80 msg/s emits at 80 msg/s
//! evenly instead of in bursts that trip the provider's own limiter. WhatsApp also limits the
//! pair (business number, customer): each recipient gets its own GCRA ([`PAIR_INTERVAL`] with a
//! burst of [`PAIR_BURST`], Meta's documented allowance; Telegram chats get about one per second). A provider rate-limit answer
//! (130429, 131056, Telegram 429) pushes the channel's (or the pair's) next slot past its
//! `retry_after`, so nothing hammers a limiter that already said no. A caller that would wait
//! longer than [`MAX_INLINE_WAIT`] gets the delay back instead, to reschedule its job rather
//! than hold a worker.
//!
//! The **circuit breaker** counts consecutive provider failures that are the provider's fault
//! (5xx, timeouts, connection errors). At [`FAILURE_THRESHOLD`] it opens: sends wait (their
//! jobs are rescheduled for when it half-opens, nothing is dropped). Half-open lets one probe
//! through; success closes the circuit, failure opens it again for twice as long (up to
//! [`MAX_OPEN`]).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::Serialize;
use utoipa::ToSchema;
use wamage_kernel::Timestamp;

use crate::model::ChannelId;

/// Meta allows roughly one message every 6 seconds per customer, after a burst.
pub const PAIR_INTERVAL: Duration = Duration::from_secs(6);
pub const PAIR_BURST: u32 = 45;
/// Telegram: about one message per second in one chat (a short burst passes).
pub const TELEGRAM_CHAT_INTERVAL: Duration = Duration::from_secs(1);
pub const TELEGRAM_CHAT_BURST: u32 = 3;

/// Per-recipient pacing: one send per `interval` after a burst of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairLimit {
    pub interval: Duration,
    pub burst: u32,
}

impl PairLimit {
    pub const WHATSAPP: Self = Self {
        interval: PAIR_INTERVAL,
        burst: PAIR_BURST,
    };
    pub const TELEGRAM: Self = Self {
        interval: TELEGRAM_CHAT_INTERVAL,
        burst: TELEGRAM_CHAT_BURST,
    };
}
/// Headroom kept below a channel's configured rate (1.5 %).
pub const RATE_MARGIN: f64 = 0.015;
/// Longer waits are handed back to the caller to reschedule.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);
pub const FAILURE_THRESHOLD: u32 = 5;
pub const FIRST_OPEN: Duration = Duration::from_secs(30);
pub const MAX_OPEN: Duration = Duration::from_secs(300);
/// Pair limiters kept before idle ones are dropped.
const MAX_PAIRS: usize = 50_000;

/// The span `rate` sends take at the GCRA's planned pace (a second plus [`RATE_MARGIN`]).
/// The window never holds a send that left on its planned slot, and a provider counting a
/// strict second still sees at most `rate` even when sends reach it up to 15 ms apart from
/// the way they left (a request waiting for a core, the provider parsing it).
const WINDOW_SPAN: Duration = Duration::from_nanos((1e9 / (1.0 - RATE_MARGIN)) as u64);

/// Rates above this are "unpaced" (pacing off) and keep no send window.
const MAX_WINDOW_RATE: u32 = 100_000;

/// The last `limit` send instants of a channel: the hard ceiling behind the GCRA. The GCRA
/// plans slots [`RATE_MARGIN`] apart; when the process wakes late (a busy core, a long
/// database write) several planned sends leave together, and a provider counting a strict
/// sliding second could see `rate + 1`. The window holds a send until the one `limit` sends
/// before it is [`WINDOW_SPAN`] old, so no second ever holds more than `limit` sends from here.
#[derive(Debug, Default)]
struct SendWindow {
    limit: usize,
    sent: VecDeque<Instant>,
}

impl SendWindow {
    fn for_rate(rate: u32) -> Self {
        Self {
            limit: if rate > MAX_WINDOW_RATE {
                0
            } else {
                rate.max(1) as usize
            },
            sent: VecDeque::new(),
        }
    }

    /// Records a send at `now`, or says how long until one may go.
    fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        while self.sent.len() > self.limit {
            self.sent.pop_front();
        }
        if self.sent.len() == self.limit
            && let Some(oldest) = self.sent.front()
        {
            let free_at = *oldest + WINDOW_SPAN;
            if free_at > now {
                return Err(free_at - now);
            }
            self.sent.pop_front();
        }
        self.sent.push_back(now);
        Ok(())
    }
}

/// One GCRA limiter.
#[derive(Debug, Clone)]
pub struct Gcra {
    interval: Duration,
    tolerance: Duration,
    tat: Option<Instant>,
}

impl Gcra {
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            tolerance: interval * burst.saturating_sub(1),
            tat: None,
        }
    }

    /// `rate` sends per second, less [`RATE_MARGIN`]: a send planned for its slot reaches the
    /// provider a few milliseconds late or early, and a limiter that counts a strict sliding
    /// second (Meta's 130429) must never see `rate + 1` of them.
    pub fn per_second(rate: u32) -> Self {
        let effective = f64::from(rate.max(1)) * (1.0 - RATE_MARGIN);
        Self::new(Duration::from_secs_f64(1.0 / effective), 1)
    }

    /// How long until a send may go, without reserving it.
    pub fn wait(&self, now: Instant) -> Duration {
        let tat = self.tat.map_or(now, |t| t.max(now));
        (tat.checked_sub(self.tolerance).unwrap_or(now)).saturating_duration_since(now)
    }

    /// Reserves the next slot: `Ok(wait)` to sleep before sending, or `Err(wait)` (nothing
    /// reserved) when that is longer than `max_wait`.
    pub fn reserve(&mut self, now: Instant, max_wait: Duration) -> Result<Duration, Duration> {
        let wait = self.wait(now);
        if wait > max_wait {
            return Err(wait);
        }
        let tat = self.tat.map_or(now, |t| t.max(now));
        self.tat = Some(tat + self.interval);
        Ok(wait)
    }

    /// Gives back a reservation that was not used.
    pub fn release(&mut self) {
        if let Some(t) = self.tat {
            self.tat = t.checked_sub(self.interval);
        }
    }

    /// No send before `until` (a provider's `retry_after`).
    pub fn block_until(&mut self, until: Instant) {
        let t = until + self.tolerance;
        self.tat = Some(self.tat.map_or(t, |x| x.max(t)));
    }

    fn idle(&self, now: Instant) -> bool {
        self.tat.is_none_or(|t| t <= now)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// The breaker as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CircuitOut {
    pub state: CircuitState,
    /// Consecutive provider failures.
    pub failures: u32,
    pub opened_at: Option<Timestamp>,
    /// When the next probe may go (open circuits).
    pub retry_at: Option<Timestamp>,
}

impl Default for CircuitOut {
    fn default() -> Self {
        Self {
            state: CircuitState::Closed,
            failures: 0,
            opened_at: None,
            retry_at: None,
        }
    }
}

#[derive(Debug)]
struct Breaker {
    state: CircuitState,
    failures: u32,
    opened: Option<(Instant, Timestamp)>,
    open_for: Duration,
    probing: bool,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            state: CircuitState::Closed,
            failures: 0,
            opened: None,
            open_for: FIRST_OPEN,
            probing: false,
        }
    }
}

/// What a sender may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send after sleeping this long (already reserved; call [`Guard::release`] when not sent).
    Go(Duration),
    /// Do not send; try again after this long.
    Later(Duration),
}

/// Pacing and breaker of one channel.
#[derive(Debug)]
pub struct Guard {
    channel: Mutex<Gcra>,
    window: Mutex<SendWindow>,
    pairs: Mutex<HashMap<String, Gcra>>,
    breaker: Mutex<Breaker>,
    pair: Option<PairLimit>,
}

impl Guard {
    fn new(rate: u32, pair: Option<PairLimit>) -> Self {
        Self {
            channel: Mutex::new(Gcra::per_second(rate)),
            window: Mutex::new(SendWindow::for_rate(rate)),
            pairs: Mutex::new(HashMap::new()),
            breaker: Mutex::new(Breaker::default()),
            pair,
        }
    }

    fn set_rate(&self, rate: u32) {
        if let Ok(mut g) = self.channel.lock() {
            let tat = g.tat;
            *g = Gcra::per_second(rate);
            g.tat = tat;
        }
        if let Ok(mut w) = self.window.lock() {
            w.limit = SendWindow::for_rate(rate).limit;
        }
    }

    /// The last gate before a paced send leaves, right before the request: `Err(wait)` when
    /// `rate` sends already left in the last second (sleep and ask again); `Ok` records this
    /// send. Only sends that really go are recorded (call it after any reason to drop one).
    pub fn window_admit(&self, now: Instant) -> Result<(), Duration> {
        match self.window.lock() {
            Ok(mut w) => w.admit(now),
            Err(w) => w.into_inner().admit(now),
        }
    }

    /// Breaker first, then the pair, then the channel; reservations are only taken when the
    /// send can go.
    pub fn admit(&self, recipient: &str, now: Instant) -> Gate {
        if let Err(wait) = self.breaker_allow(now) {
            return Gate::Later(wait);
        }
        let mut pairs = match self.pairs.lock() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        let pair_wait = if let Some(limit) = self.pair {
            let g = pairs
                .entry(recipient.to_owned())
                .or_insert_with(|| Gcra::new(limit.interval, limit.burst));
            let w = g.wait(now);
            if w > MAX_INLINE_WAIT {
                self.probe_done();
                return Gate::Later(w);
            }
            w
        } else {
            Duration::ZERO
        };
        let mut ch = match self.channel.lock() {
            Ok(c) => c,
            Err(c) => c.into_inner(),
        };
        match ch.reserve(now + pair_wait, MAX_INLINE_WAIT) {
            Ok(w) => {
                if self.pair.is_some() {
                    if let Some(g) = pairs.get_mut(recipient) {
                        let _ = g.reserve(now, MAX_INLINE_WAIT);
                    }
                    if pairs.len() > MAX_PAIRS {
                        pairs.retain(|_, g| !g.idle(now));
                    }
                }
                Gate::Go(w + pair_wait)
            }
            Err(w) => {
                self.probe_done();
                Gate::Later(w + pair_wait)
            }
        }
    }

    /// A reserved slot that was not used (the send was refused before reaching the provider).
    pub fn release(&self, recipient: &str) {
        if let Ok(mut c) = self.channel.lock() {
            c.release();
        }
        if self.pair.is_some()
            && let Ok(mut p) = self.pairs.lock()
            && let Some(g) = p.get_mut(recipient)
        {
            g.release();
        }
    }

    /// The provider said "too many" for the whole channel.
    pub fn throttle_channel(&self, retry_after: Duration, now: Instant) {
        if let Ok(mut c) = self.channel.lock() {
            c.block_until(now + retry_after);
        }
    }

    /// The provider said "too many" for this recipient.
    pub fn throttle_pair(&self, recipient: &str, retry_after: Duration, now: Instant) {
        let limit = self.pair.unwrap_or(PairLimit::WHATSAPP);
        if let Ok(mut p) = self.pairs.lock() {
            p.entry(recipient.to_owned())
                .or_insert_with(|| Gcra::new(limit.interval, limit.burst))
                .block_until(now + retry_after);
        }
    }

    fn breaker_allow(&self, now: Instant) -> Result<(), Duration> {
        let mut b = match self.breaker.lock() {
            Ok(b) => b,
            Err(b) => b.into_inner(),
        };
        match b.state {
            CircuitState::Closed => Ok(()),
            CircuitState::Open => {
                let (at, _) = b.opened.unwrap_or((now, Timestamp::from_millis(0)));
                let until = at + b.open_for;
                if now >= until {
                    b.state = CircuitState::HalfOpen;
                    b.probing = true;
                    Ok(())
                } else {
                    Err(until - now)
                }
            }
            CircuitState::HalfOpen => {
                if b.probing {
                    Err(Duration::from_secs(1))
                } else {
                    b.probing = true;
                    Ok(())
                }
            }
        }
    }

    /// A half-open probe that did not go out after all.
    fn probe_done(&self) {
        if let Ok(mut b) = self.breaker.lock()
            && b.state == CircuitState::HalfOpen
        {
            b.probing = false;
        }
    }

    /// The provider accepted a send (or refused it for a reason that is not its own health).
    /// Returns true when this closed an open circuit.
    pub fn succeeded(&self) -> bool {
        let mut b = match self.breaker.lock() {
            Ok(b) => b,
            Err(b) => b.into_inner(),
        };
        let was = b.state;
        *b = Breaker::default();
        was != CircuitState::Closed
    }

    /// The provider failed (5xx, timeout, connection). Returns true when this opened the
    /// circuit.
    pub fn failed(&self, now: Instant, wall: Timestamp) -> bool {
        let mut b = match self.breaker.lock() {
            Ok(b) => b,
            Err(b) => b.into_inner(),
        };
        b.failures += 1;
        match b.state {
            CircuitState::Closed if b.failures >= FAILURE_THRESHOLD => {
                b.state = CircuitState::Open;
                b.opened = Some((now, wall));
                b.open_for = FIRST_OPEN;
                true
            }
            CircuitState::HalfOpen => {
                b.state = CircuitState::Open;
                b.opened = Some((now, wall));
                b.open_for = (b.open_for * 2).min(MAX_OPEN);
                b.probing = false;
                true
            }
            _ => false,
        }
    }

    pub fn circuit(&self) -> CircuitOut {
        let b = match self.breaker.lock() {
            Ok(b) => b,
            Err(b) => b.into_inner(),
        };
        let (opened_at, retry_at) = match b.opened {
            Some((_, wall)) if b.state != CircuitState::Closed => {
                (Some(wall), Some(wall.plus(b.open_for)))
            }
            _ => (None, None),
        };
        CircuitOut {
            state: b.state,
            failures: b.failures,
            opened_at,
            retry_at,
        }
    }
}

/// Every channel's guard in this process.
#[derive(Debug, Default)]
pub struct Guards {
    map: Mutex<HashMap<ChannelId, Arc<Guard>>>,
}

impl Guards {
    /// The guard of `channel`, created (or re-rated) for `rate` messages per second.
    pub fn get(&self, channel: ChannelId, rate: u32, pair: Option<PairLimit>) -> Arc<Guard> {
        let mut m = match self.map.lock() {
            Ok(m) => m,
            Err(m) => m.into_inner(),
        };
        let g = m
            .entry(channel)
            .or_insert_with(|| Arc::new(Guard::new(rate, pair)))
            .clone();
        g.set_rate(rate);
        g
    }

    /// The breaker of `channel` when this process has one.
    pub fn circuit(&self, channel: ChannelId) -> Option<CircuitOut> {
        let m = self.map.lock().ok()?;
        m.get(&channel).map(|g| g.circuit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_spaces_sends_evenly() {
        let mut g = Gcra::per_second(100);
        let t0 = Instant::now();
        let mut at = t0;
        for i in 0..10 {
            let w = g
                .reserve(at, Duration::from_secs(1))
                .expect("within max wait");
            if i == 0 {
                assert_eq!(w, Duration::ZERO);
            }
            at += w;
        }
        // Ten sends at 100/s (less the margin) take about 91 ms from the first to the last.
        let span = at - t0;
        let expected = 9.0 / (100.0 * (1.0 - RATE_MARGIN));
        assert!((span.as_secs_f64() - expected).abs() < 0.001, "{span:?}");
    }

    #[test]
    fn gcra_hands_back_long_waits_without_reserving() {
        let mut g = Gcra::new(Duration::from_secs(1), 1);
        let now = Instant::now();
        assert_eq!(g.reserve(now, Duration::ZERO), Ok(Duration::ZERO));
        let w = g
            .reserve(now, Duration::from_millis(10))
            .expect_err("too long");
        assert_eq!(w, Duration::from_secs(1));
        // Nothing was reserved: the wait is unchanged.
        assert_eq!(g.wait(now), Duration::from_secs(1));
    }

    #[test]
    fn the_send_window_never_lets_rate_plus_one_into_a_second() {
        let guard = Guard::new(3, None);
        let t0 = Instant::now();
        // Three sends that were planned apart but left together (a late wake-up)…
        for _ in 0..3 {
            assert_eq!(guard.window_admit(t0), Ok(()));
        }
        // …hold the fourth until the first is a window old.
        let ms = Duration::from_millis;
        assert_eq!(guard.window_admit(t0 + ms(400)), Err(WINDOW_SPAN - ms(400)));
        // A window later, the three may be followed by three more, and no fourth.
        for _ in 0..3 {
            assert_eq!(guard.window_admit(t0 + WINDOW_SPAN), Ok(()));
        }
        assert_eq!(guard.window_admit(t0 + WINDOW_SPAN), Err(WINDOW_SPAN));
        // Pacing off keeps no window.
        let unpaced = Guard::new(u32::MAX / 2, None);
        for _ in 0..10_000 {
            assert_eq!(unpaced.window_admit(t0), Ok(()));
        }
    }

    #[test]
    fn gcra_allows_its_burst_then_paces() {
        let mut g = Gcra::new(Duration::from_secs(6), 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(g.reserve(now, Duration::ZERO), Ok(Duration::ZERO));
        }
        assert_eq!(g.wait(now), Duration::from_secs(6));
    }

    #[test]
    fn provider_rate_limits_push_the_next_slot() {
        let mut g = Gcra::per_second(80);
        let now = Instant::now();
        g.block_until(now + Duration::from_secs(3));
        assert_eq!(g.wait(now), Duration::from_secs(3));
    }

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let guard = Guard::new(1000, None);
        let now = Instant::now();
        let wall = Timestamp::from_millis(1_000_000);
        for i in 1..FAILURE_THRESHOLD {
            assert!(!guard.failed(now, wall), "failure {i} keeps it closed");
        }
        assert!(guard.failed(now, wall));
        assert_eq!(guard.circuit().state, CircuitState::Open);
        assert!(matches!(guard.admit("x", now), Gate::Later(w) if w == FIRST_OPEN));
        // After the open period one probe goes, others wait.
        let later = now + FIRST_OPEN;
        assert!(matches!(guard.admit("x", later), Gate::Go(_)));
        assert!(matches!(guard.admit("y", later), Gate::Later(_)));
        // A failed probe opens it for twice as long.
        assert!(guard.failed(later, wall));
        assert!(matches!(guard.admit("x", later), Gate::Later(w) if w == FIRST_OPEN * 2));
        // A successful probe closes it.
        let after = later + FIRST_OPEN * 2;
        assert!(matches!(guard.admit("x", after), Gate::Go(_)));
        assert!(guard.succeeded());
        assert_eq!(guard.circuit().state, CircuitState::Closed);
    }

    #[test]
    fn pair_pacing_limits_one_recipient_not_the_others() {
        let guard = Guard::new(1000, Some(PairLimit::WHATSAPP));
        let now = Instant::now();
        for _ in 0..PAIR_BURST {
            assert!(matches!(guard.admit("+1555", now), Gate::Go(_)));
        }
        assert!(
            matches!(guard.admit("+1555", now), Gate::Later(w) if w >= PAIR_INTERVAL - Duration::from_millis(50))
        );
        assert!(matches!(guard.admit("+1666", now), Gate::Go(_)));
    }
}
