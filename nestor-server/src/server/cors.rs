//! Cross-origin access (`server.cors`), so a browser app served from
//! another origin (a developer portal) can read the catalog. Off when the
//! key is absent: a browser then refuses to hand any answer to a script
//! from another origin. Built on tower-http's CORS layer, which answers
//! preflights itself, before authentication and rate limits (a preflight
//! carries no token), and adds the allow headers to every other answer,
//! errors included, so the app can read a 401 or a 429.

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// The layer for `config`, `None` when CORS is off; a bad value names its key.
pub(super) fn layer(config: Option<&CorsConfig>) -> anyhow::Result<Option<CorsLayer>> {
    let Some(config) = config else {
        return Ok(None);
    };
    if config.allowed_origins.is_empty() {
        anyhow::bail!("server.cors.allowed_origins must name at least one origin (or `*`)");
    }
    let origins = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = config
            .allowed_origins
            .iter()
            .map(|o| origin(o))
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    let methods = match &config.allowed_methods {
        None => vec![Method::GET, Method::HEAD],
        Some(list) => list
            .iter()
            .map(|m| {
                Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).map_err(|_| {
                    anyhow::anyhow!("server.cors.allowed_methods: {m:?} is not an HTTP method")
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let headers = match &config.allowed_headers {
        None => vec![
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
        ],
        Some(list) => list
            .iter()
            .map(|h| {
                HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
                    anyhow::anyhow!("server.cors.allowed_headers: {h:?} is not a header name")
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let mut layer = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(headers)
        .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")]);
    if let Some(max_age) = &config.max_age {
        let d = nestor_core::parse_duration(max_age)
            .map_err(|e| anyhow::anyhow!("server.cors.max_age: {e}"))?;
        layer = layer.max_age(d);
    }
    Ok(Some(layer))
}

/// An origin as a browser sends it: scheme, host and optional port, no path.
fn origin(text: &str) -> anyhow::Result<HeaderValue> {
    let t = text.trim();
    let rest = t
        .strip_prefix("https://")
        .or_else(|| t.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('/') => HeaderValue::from_str(t)
            .map_err(|_| anyhow::anyhow!("server.cors.allowed_origins: {text:?} is not a valid origin")),
        _ => anyhow::bail!(
            "server.cors.allowed_origins: {text:?} is not an origin (`https://host[:port]`, no path, or `*`)"
        ),
    }
}
