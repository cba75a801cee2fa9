//! What a server does when a handler fails: the retry policy.
//!
//! Like Spring Kafka's `DefaultErrorHandler`, the policy is an object, not branches in the
//! consume loop: which error codes are worth another attempt, how many attempts, and the
//! backoff between them. Retries happen *in place*: the failed message keeps its slot in its
//! partition's lane, so with one handler per partition (`KAFKA_MAX_IN_FLIGHT_PER_PARTITION=1`)
//! nothing behind it overtakes it; the partition's queue fills and the partition is paused
//! while every other partition goes on. When the attempts are used up (or the code is not
//! retriable) the recoverer runs: an event is copied to its dead-letter topic
//! (`<pattern>.dlq`, with `axion-dlq-attempts`), a request gets its error reply. A failed event
//! is never just dropped.

use std::time::Duration;

use crate::{codes, RpcError};

use super::config::ConfigError;

/// Retry policy for handler failures. [`RetryPolicy::default`]: 5 attempts, backoff 200 ms
/// doubling to at most 10 s with ±20 % jitter, on `UNAVAILABLE`, `DEADLINE_EXCEEDED` and
/// `INTERNAL` (errors without a code, like a panic's, count as `INTERNAL`), events only.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Error codes worth another attempt.
    pub retriable: Vec<String>,
    /// Attempts in all, the first one included (1 = no retries).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
    /// Growth of the wait from one attempt to the next.
    pub multiplier: f64,
    /// Random spread of each wait, as a fraction of it (0.2 = ±20 %), so that many
    /// consumers failing together do not retry in lockstep.
    pub jitter: f64,
    /// Whether failed *requests* are retried too, before their error reply is sent. Off by
    /// default: the caller gets the error and decides (it may have given up already).
    pub retry_requests: bool,
}

/// Default attempts of [`RetryPolicy`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default first backoff of [`RetryPolicy`].
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Default longest backoff of [`RetryPolicy`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Codes retried by default.
pub const DEFAULT_RETRIABLE: [&str; 3] = [
    codes::UNAVAILABLE,
    codes::DEADLINE_EXCEEDED,
    codes::INTERNAL,
];

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retriable: DEFAULT_RETRIABLE.iter().map(|c| (*c).to_owned()).collect(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            multiplier: 2.0,
            jitter: 0.2,
            retry_requests: false,
        }
    }
}

/// What to do after attempt `n` failed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Try again after this wait.
    RetryAfter(Duration),
    /// Stop: hand the message to the recoverer (dead-letter topic or error reply).
    GiveUp,
}

impl RetryPolicy {
    /// No retries at all: every failure goes straight to the recoverer.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Whether `error` is worth another attempt (ignoring the attempt count).
    pub fn is_retriable(&self, error: &RpcError) -> bool {
        let code = error.code().unwrap_or(codes::INTERNAL);
        self.retriable.iter().any(|c| c == code)
    }

    /// The verdict after `attempt` (1-based) failed with `error`; `request` says whether the
    /// message is a request (retried only with [`RetryPolicy::retry_requests`]).
    pub fn verdict(&self, error: &RpcError, attempt: u32, request: bool) -> Verdict {
        if (request && !self.retry_requests)
            || attempt >= self.max_attempts
            || !self.is_retriable(error)
        {
            return Verdict::GiveUp;
        }
        Verdict::RetryAfter(self.backoff(attempt, rand_unit()))
    }

    /// The wait after `attempt` (1-based) failed, with `unit` in `[0, 1)` choosing the jitter.
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self
            .multiplier
            .max(1.0)
            .powi(attempt.saturating_sub(1).min(64) as i32);
        let base = (self.initial_backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        let spread = self.jitter.clamp(0.0, 1.0) * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((base * (1.0 + spread)).max(0.0))
    }

    /// Checks the policy (what the builder and the environment give).
    pub(crate) fn validate(&self, name: &str) -> Result<(), ConfigError> {
        let bad = |problem: String| ConfigError {
            name: name.to_owned(),
            problem,
        };
        if self.max_attempts == 0 {
            return Err(bad("max_attempts must be at least 1".into()));
        }
        if self.max_attempts > 1000 {
            return Err(bad(format!(
                "max_attempts is {}; at most 1000 (a bound, not a loop)",
                self.max_attempts
            )));
        }
        if self.initial_backoff > self.max_backoff {
            return Err(bad("initial_backoff is longer than max_backoff".into()));
        }
        if !(1.0..=100.0).contains(&self.multiplier) || !(0.0..=1.0).contains(&self.jitter) {
            return Err(bad(
                "multiplier must be within 1–100 and jitter within 0–1".into()
            ));
        }
        Ok(())
    }
}

/// A number in `[0, 1)`, good enough for jitter (no cryptographic use): the standard
/// library's randomly keyed hasher over a counter.
fn rand_unit() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_codes_and_bounds() {
        let p = RetryPolicy::default();
        let unavailable = RpcError::unavailable("db down");
        assert!(matches!(
            p.verdict(&unavailable, 1, false),
            Verdict::RetryAfter(_)
        ));
        assert_eq!(p.verdict(&unavailable, 5, false), Verdict::GiveUp);
        assert_eq!(
            p.verdict(&RpcError::invalid_argument("bad"), 1, false),
            Verdict::GiveUp
        );
        assert!(
            p.is_retriable(&RpcError::message_only("Internal server error")),
            "no code counts as INTERNAL"
        );
        assert_eq!(
            p.verdict(&unavailable, 1, true),
            Verdict::GiveUp,
            "requests are not retried unless asked"
        );
        let requests = RetryPolicy {
            retry_requests: true,
            ..p.clone()
        };
        assert!(matches!(
            requests.verdict(&unavailable, 1, true),
            Verdict::RetryAfter(_)
        ));
        assert_eq!(
            RetryPolicy::none().verdict(&unavailable, 1, false),
            Verdict::GiveUp
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        let mid = |n| p.backoff(n, 0.5);
        assert_eq!(mid(1), Duration::from_millis(200));
        assert_eq!(mid(2), Duration::from_millis(400));
        assert_eq!(mid(3), Duration::from_millis(800));
        assert_eq!(mid(40), Duration::from_secs(10), "capped");
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(160));
        assert!(p.backoff(1, 0.999_999) > Duration::from_millis(239));
        let spread: std::collections::BTreeSet<_> =
            (0..50).map(|_| p.backoff(2, rand_unit())).collect();
        assert!(spread.len() > 10, "jitter spreads the waits: {spread:?}");
        assert!(spread
            .iter()
            .all(|d| *d >= Duration::from_millis(320) && *d <= Duration::from_millis(480)));
    }

    #[test]
    fn validation() {
        assert!(RetryPolicy::default().validate("retry").is_ok());
        for broken in [
            RetryPolicy {
                max_attempts: 0,
                ..Default::default()
            },
            RetryPolicy {
                initial_backoff: Duration::from_secs(60),
                ..Default::default()
            },
            RetryPolicy {
                jitter: 2.0,
                ..Default::default()
            },
        ] {
            assert_eq!(
                broken.validate("KAFKA_RETRY_ATTEMPTS").unwrap_err().name,
                "KAFKA_RETRY_ATTEMPTS"
            );
        }
    }
}
