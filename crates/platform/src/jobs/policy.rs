//! Retry policies: data, per job kind.

use std::{collections::HashMap, sync::Arc, time::Duration};

/// How a job kind is retried after a retryable failure.
///
/// The delay before try `n + 1` (after `n` failed tries) is `base_delay * factor^(n-1)`, capped
/// at `max_delay`, then jittered down by up to `jitter` of itself (`jitter = 1.0` is "full
/// jitter", `0.0` none), and finally never shorter than a `Retry-After` the handler reported.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total tries, the first included. After the last one fails the job is dead.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub factor: f64,
    pub max_delay: Duration,
    /// Fraction of the delay that is randomised away, `0.0..=1.0`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 8 tries over roughly four minutes (1 s, 2 s, 4 s … 64 s, ±20 %).
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            factor: 2.0,
            max_delay: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// A policy without jitter (deterministic delays), handy for tests.
    pub fn fixed_exponential(max_attempts: u32, base_delay: Duration, factor: f64) -> Self {
        Self {
            max_attempts,
            base_delay,
            factor,
            max_delay: Duration::from_secs(24 * 3600),
            jitter: 0.0,
        }
    }

    /// The delay after `failed_attempts` failed tries (1 for the first failure), with random
    /// jitter.
    pub fn delay(&self, failed_attempts: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(failed_attempts, retry_after, rand::random::<f64>())
    }

    /// [`delay`](Self::delay) with the random draw given (`unit` in `0.0..1.0`).
    pub fn delay_with(
        &self,
        failed_attempts: u32,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Duration {
        let exp = i32::try_from(failed_attempts.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.base_delay.as_secs_f64() * self.factor.max(1.0).powi(exp);
        let capped = base.min(self.max_delay.as_secs_f64()).max(0.0);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let secs = capped * (1.0 - jitter * unit.clamp(0.0, 1.0));
        let delay = Duration::try_from_secs_f64(secs).unwrap_or(self.max_delay);
        match retry_after {
            Some(after) => delay.max(after),
            None => delay,
        }
    }
}

/// The policy per job kind, with a default for kinds that have none.
#[derive(Debug, Clone, Default)]
pub struct RetryPolicies {
    default: RetryPolicy,
    by_kind: Arc<HashMap<String, RetryPolicy>>,
}

impl RetryPolicies {
    pub fn new(default: RetryPolicy) -> Self {
        Self {
            default,
            by_kind: Arc::default(),
        }
    }

    #[must_use]
    pub fn with(mut self, kind: impl Into<String>, policy: RetryPolicy) -> Self {
        Arc::make_mut(&mut self.by_kind).insert(kind.into(), policy);
        self
    }

    #[must_use]
    pub fn with_default(mut self, policy: RetryPolicy) -> Self {
        self.default = policy;
        self
    }

    pub fn for_kind(&self, kind: &str) -> &RetryPolicy {
        self.by_kind.get(kind).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_honour_retry_after() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            factor: 2.0,
            max_delay: Duration::from_secs(10),
            jitter: 0.5,
        };
        assert_eq!(p.delay_with(1, None, 0.0), Duration::from_secs(1));
        assert_eq!(p.delay_with(2, None, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay_with(3, None, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay_with(9, None, 0.0), Duration::from_secs(10));
        assert_eq!(p.delay_with(9, None, 1.0), Duration::from_secs(5));
        assert_eq!(
            p.delay_with(1, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
        for _ in 0..100 {
            let d = p.delay(3, None);
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(4));
        }
    }

    #[test]
    fn unknown_kinds_use_the_default() {
        let special = RetryPolicy::fixed_exponential(3, Duration::from_secs(5), 3.0);
        let p = RetryPolicies::default().with("webhook.send", special.clone());
        assert_eq!(p.for_kind("webhook.send"), &special);
        assert_eq!(p.for_kind("other"), &RetryPolicy::default());
    }
}
