//! Per-caller rate limits (`server.rate_limits`): one keyed token bucket
//! (`governor`) per route class, keyed by the caller — a token's name, or
//! the client's IP address when the request carries no token. Over the
//! limit the front layer answers 429 `RATE_LIMITED` with `Retry-After`
//! before the handler runs, so a flood costs a hash lookup per request.
//!
//! Health, readiness and metrics are never limited: probes and scrapers
//! must not be turned away by a busy caller sharing their address.

use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::auth::Principal;
use crate::config::{RateConfig, RateLimitsConfig};

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// `GET` and `HEAD`.
    Reads,
    /// Writes that run no engine.
    Writes,
    /// Requests that run engines.
    Deploys,
    /// Git webhooks.
    Webhooks,
}

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Token(Arc<str>),
    Ip(IpAddr),
}

/// How many checks pass between sweeps of buckets that are full again.
const SWEEP_EVERY: u64 = 4096;

/// The configured limiters, one per class that has a limit.
pub(super) struct RateLimits {
    classes: [Option<DefaultKeyedRateLimiter<Key>>; 4],
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").finish_non_exhaustive()
    }
}

impl RateLimits {
    /// The limiters of `config`; `None` when no class is limited.
    pub(super) fn from_config(config: Option<&RateLimitsConfig>) -> anyhow::Result<Option<Self>> {
        let Some(config) = config else {
            return Ok(None);
        };
        let make = |key: &str, rate: &Option<RateConfig>| -> anyhow::Result<_> {
            let Some(rate) = rate else { return Ok(None) };
            let (per_second, burst) = rate.checked(key)?;
            let quota = Quota::per_second(NonZeroU32::new(per_second).expect("checked"))
                .allow_burst(NonZeroU32::new(burst).expect("checked"));
            Ok(Some(RateLimiter::keyed(quota)))
        };
        let classes = [
            make("reads", &config.reads)?,
            make("writes", &config.writes)?,
            make("deploys", &config.deploys)?,
            make("webhooks", &config.webhooks)?,
        ];
        if classes.iter().all(Option::is_none) {
            return Ok(None);
        }
        Ok(Some(RateLimits {
            classes,
            checks: AtomicU64::new(0),
        }))
    }

    /// `Ok` when the caller may go on, else how long until it may retry.
    pub(super) fn check(
        &self,
        class: Class,
        principal: &Principal,
        peer: Option<IpAddr>,
    ) -> Result<(), Duration> {
        let Some(limiter) = &self.classes[class as usize] else {
            return Ok(());
        };
        let key = match principal {
            Principal::Token { name, .. } => Key::Token(Arc::from(name.as_str())),
            Principal::Anonymous => Key::Ip(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Forget callers whose bucket has refilled, so the maps stay bounded.
            for l in self.classes.iter().flatten() {
                l.retain_recent();
            }
        }
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The class of a request, `None` for the routes never limited.
pub(super) fn classify(method: &Method, route: &str) -> Option<Class> {
    if matches!(route, "/health" | "/ready" | "/metrics") {
        return None;
    }
    if route.starts_with("/webhooks/") {
        return Some(Class::Webhooks);
    }
    if method == Method::GET || method == Method::HEAD {
        return Some(Class::Reads);
    }
    let runs_engines = route == "/api/v1/plan"
        || route == "/api/v1/teams/{team}/deploy"
        || route.starts_with("/api/v1/deployments");
    Some(if runs_engines {
        Class::Deploys
    } else {
        Class::Writes
    })
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub(super) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn routes_fall_in_their_class() {
        assert_eq!(classify(&Method::GET, "/health"), None);
        assert_eq!(
            classify(&Method::POST, "/webhooks/git"),
            Some(Class::Webhooks)
        );
        assert_eq!(
            classify(&Method::GET, "/api/v1/deployments/{id}"),
            Some(Class::Reads)
        );
        assert_eq!(
            classify(&Method::POST, "/api/v1/plan"),
            Some(Class::Deploys)
        );
        assert_eq!(
            classify(&Method::POST, "/api/v1/resources"),
            Some(Class::Writes)
        );
    }
}
