//! The `server:` keys that protect a shared server from its callers:
//! TLS (`server.tls`), per-caller rate limits (`server.rate_limits`) and the
//! origins a browser app may call from (`server.cors`). All are off when absent. Kept apart
//! from the listener's limits because they are policy an operator tunes,
//! not transport settings.

use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// `server.rate_limits`: one token bucket per caller (the token's name, or
/// the client's IP address when anonymous) for each class of route. A
/// class left out is not limited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// `GET`/`HEAD` requests (the event stream counts once, when it opens).
    pub reads: Option<RateConfig>,
    /// Other writes: publish, yank, sync, compositions.
    pub writes: Option<RateConfig>,
    /// Deploys, plans, rollbacks, promotions, drift checks and deletes of
    /// deployments: the requests that run engines.
    pub deploys: Option<RateConfig>,
    /// `POST /webhooks/git`.
    pub webhooks: Option<RateConfig>,
}

/// One class's bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Requests per second a caller may sustain (at least 1).
    pub per_second: u32,
    /// Requests a caller may send at once after a pause (default: `per_second`).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateConfig {
    /// The rate and burst, checked; `key` names the class in errors.
    pub fn checked(&self, key: &str) -> anyhow::Result<(u32, u32)> {
        if self.per_second == 0 {
            bail!("server.rate_limits.{key}.per_second must be at least 1");
        }
        let burst = self.burst.unwrap_or(self.per_second);
        if burst == 0 {
            bail!("server.rate_limits.{key}.burst must be at least 1");
        }
        Ok((self.per_second, burst))
    }
}

/// `server.cors`: which browser origins may call the API, and with what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed, exactly as a browser sends them
    /// (`https://portal.example.com`); `*` allows any origin.
    pub allowed_origins: Vec<String>,
    /// Methods a cross-origin request may use (default `GET`, `HEAD`).
    pub allowed_methods: Option<Vec<String>>,
    /// Request headers it may send (default `authorization`,
    /// `content-type`, `x-request-id`).
    pub allowed_headers: Option<Vec<String>>,
    /// How long a browser may cache a preflight answer (e.g. `10m`;
    /// default: the browser's own).
    pub max_age: Option<String>,
}

/// `server.tls`: serve HTTPS instead of HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// A CA (PEM) whose certificates clients must present (mutual TLS);
    /// a client without one is refused during the handshake (unless
    /// `client_cert_optional`).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: let a client connect without a certificate (it is
    /// then known by its bearer token alone, or anonymous); a certificate
    /// it does present must still verify. Default `false`: required.
    #[serde(default)]
    pub client_cert_optional: bool,
}
