//! The server's defences against its callers (docs/src/operator/security.md):
//! rate limits per caller and route class, and cross-origin access.

mod cors;
mod rate_limits;
mod tls;
