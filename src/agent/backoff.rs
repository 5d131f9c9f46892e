//! Exponential back-off with jitter, shared by the HTTP sender and the local sinks' retries.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// First retry delay; doubles per consecutive failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts, also the cap on a collector's `Retry-After`.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub(crate) struct Backoff {
    failures: u32,
    jitter: std::collections::hash_map::DefaultHasher,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff {
            failures: 0,
            jitter: std::collections::hash_map::RandomState::new().build_hasher(),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// Records one more failure and returns the wait before the next attempt: uniform in
    /// [d/2, d], d = 500 ms × 2^(failures-1), at most [`MAX_BACKOFF`].
    pub(crate) fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exp = (self.failures - 1).min(16);
        let d = FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF);
        self.jitter.write_u32(self.failures);
        let unit = (self.jitter.finish() >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.5 + unit / 2.0)
    }
}
