//! The server's defences against its callers (docs/src/operator/security.md):
//! rate limits per caller and route class, cross-origin access, TLS, and
//! who a caller is over HTTPS (tokens, OIDC, client certificates).

mod auth_matrix;
mod cors;
mod identity_config;
mod rate_limits;
mod tls;
