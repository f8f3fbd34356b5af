//! Where services read the time. The core performs no I/O, but records need
//! timestamps and leases need milliseconds; tests fix both through [`Clock`].

use crate::model::Timestamp;

/// Where a service reads the time.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> Timestamp;

    /// Milliseconds since the Unix epoch (leases need sub-second time).
    fn now_millis(&self) -> i64 {
        self.now() * 1000
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as Timestamp)
            .unwrap_or(0)
    }

    fn now_millis(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
