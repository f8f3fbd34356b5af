//! Which calls are retried, on which failures, and how long to wait.
//!
//! A call is retried only when sending it twice cannot do twice what it
//! does once: reads, the read-only POSTs (validate, plan), writes whose
//! repeat the server answers "unchanged" (publish: versions are
//! immutable; yank and unyank set a flag), and applies, which carry an
//! `Idempotency-Key` the server deduplicates on. Sync triggers, rollbacks,
//! promotions and deletes (a delete of a finished deployment rolls it back)
//! are sent once.

use std::time::Duration;

use reqwest::StatusCode;

/// Whether a call may be sent again after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Idempotent: retried on transient failures.
    Safe,
    /// Sent once.
    Never,
}

/// Retry count and delays: `first`, doubling up to `max`, each with jitter
/// (a random delay in its upper half), so clients that failed together do
/// not come back together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// How many times a call is tried again.
    pub retries: u32,
    /// The first delay.
    pub first: Duration,
    /// The largest delay, also the cap of a server's `Retry-After`.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            retries: 3,
            first: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based); a server's
    /// `Retry-After` is honoured up to `max`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max);
        }
        let full = self
            .first
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let half = full / 2;
        half + half.mul_f64(random_unit())
    }
}

/// A number in `[0, 1)`.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Statuses worth another try: the server or a proxy in front of it is
/// overloaded, restarting or briefly unable to reach its store.
pub(crate) fn retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Transport failures worth another try: no connection, a reset, a
/// timeout. A request the client could not even build is not one.
pub(crate) fn retryable_transport(e: &reqwest::Error) -> bool {
    !(e.is_builder() || e.is_redirect() || e.is_decode())
}

/// `Retry-After` in seconds (the HTTP-date form is rare for APIs and is
/// ignored: the backoff applies then).
pub(crate) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A fresh `Idempotency-Key`: 128 random bits as 32 hex digits.
pub(crate) fn new_idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No entropy source: time and a process counter are still unique
        // for this client.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        bytes[..8].copy_from_slice(&now.to_le_bytes());
        bytes[8..].copy_from_slice(
            &NEXT
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_le_bytes(),
        );
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_honour_retry_after() {
        let b = Backoff {
            retries: 10,
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for (attempt, full) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (30, 1000),
        ] {
            let d = b.delay(attempt, None);
            let full = Duration::from_millis(full);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(1)
        );
        assert_eq!(
            b.delay(0, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn idempotency_keys_differ() {
        let (a, b) = (new_idempotency_key(), new_idempotency_key());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
