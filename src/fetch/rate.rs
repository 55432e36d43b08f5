//! One bandwidth cap shared by every download of a run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Paces received bytes to at most `bytes_per_sec` over all downloads.
///
/// Each chunk books the time it is worth at the cap after whatever was
/// booked before; the receiver sleeps until its booking ends, which also
/// stops reading the socket, so the server is slowed through TCP flow
/// control rather than data being buffered.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    bytes_per_sec: u64,
    /// When the bytes booked so far are paid for.
    booked_until: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter for `bytes_per_sec` (at least 1).
    pub(crate) fn new(bytes_per_sec: u64) -> RateLimiter {
        RateLimiter {
            bytes_per_sec: bytes_per_sec.max(1),
            booked_until: Mutex::new(None),
        }
    }

    /// Books `bytes` and returns how long to wait before reading more.
    fn book(&self, bytes: u64, now: Instant) -> Duration {
        let cost =
            Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        let mut until =
            self.booked_until.lock().unwrap_or_else(|p| p.into_inner());
        let start = until.map_or(now, |u| u.max(now));
        let end = start + cost;
        *until = Some(end);
        end.saturating_duration_since(now)
    }

    /// Waits until `bytes` more received bytes fit under the cap.
    pub(crate) async fn take(&self, bytes: u64) {
        let wait = self.book(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookings_queue_up() {
        let r = RateLimiter::new(1000);
        let now = Instant::now();
        assert_eq!(r.book(500, now), Duration::from_millis(500));
        assert_eq!(r.book(500, now), Duration::from_millis(1000));
        let later = now + Duration::from_secs(5);
        assert_eq!(r.book(100, later), Duration::from_millis(100));
    }
}
