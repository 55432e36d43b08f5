//! How long to wait before trying again: exponential backoff with jitter,
//! or what the server asked for with `Retry-After`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::Duration;

/// Backoff settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backoff {
    /// Wait before the first retry (before jitter).
    pub base: Duration,
    /// Longest backoff wait.
    pub max: Duration,
    /// Longest `Retry-After` wait honoured.
    pub max_retry_after: Duration,
}

impl Backoff {
    /// The wait after failed attempt `attempt` (from 1): `base · 2^(n-1)`
    /// capped at `max`, of which a random half is dropped ("equal
    /// jitter", so parallel clients spread out), and never less than the
    /// server's `Retry-After` (itself capped at `max_retry_after`).
    pub(crate) fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        let full = self.base.saturating_mul(factor).min(self.max);
        let half = full / 2;
        let jittered = half + half.mul_f64(unit_random());
        match retry_after {
            Some(r) => jittered.max(r.min(self.max_retry_after)),
            None => jittered,
        }
    }
}

/// A number in `[0, 1)`, different on every call; good enough to spread
/// retries, not for anything secret.
fn unit_random() -> f64 {
    let bits = RandomState::new().hash_one(std::time::Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(1000),
        max_retry_after: Duration::from_secs(5),
    };

    #[test]
    fn doubles_with_jitter_and_cap() {
        for _ in 0..50 {
            for (attempt, full) in [(1, 100), (2, 200), (3, 400), (4, 800)] {
                let d = B.delay(attempt, None).as_millis();
                assert!(d >= full / 2 && d <= full, "{attempt}: {d}");
            }
            let d = B.delay(40, None).as_millis();
            assert!((500..=1000).contains(&d), "{d}");
        }
    }

    #[test]
    fn honours_retry_after_up_to_a_limit() {
        let d = B.delay(1, Some(Duration::from_secs(2)));
        assert_eq!(d, Duration::from_secs(2));
        let d = B.delay(1, Some(Duration::from_secs(3600)));
        assert_eq!(d, Duration::from_secs(5));
        let d = B.delay(4, Some(Duration::ZERO));
        assert!(d >= Duration::from_millis(400));
    }
}
