//! Request parsing shared by the routes: strict query strings (an unknown
//! key is a `BAD_REQUEST` naming it, never silently ignored), bounded
//! bodies, and JSON or YAML payloads decoded with field paths in errors.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use nestor_core::{Error, PageRequest};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::AppState;

/// The query string as ordered key/value pairs.
#[derive(Debug, Default)]
pub struct Query {
    /// Every pair, in order (keys may repeat, e.g. `filter`).
    pairs: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        Ok(Query {
            pairs: form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        })
    }
}

impl Query {
    /// Refuses any key not in `allowed`.
    pub fn allow(&self, allowed: &[&str]) -> Result<(), ApiError> {
        if let Some((key, _)) = self
            .pairs
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            let known = if allowed.is_empty() {
                "this route takes no query parameters".to_string()
            } else {
                format!("known: {}", allowed.join(", "))
            };
            return Err(
                Error::bad_request(format!("unknown query parameter {key:?} ({known})")).into(),
            );
        }
        Ok(())
    }

    /// The single value of `key` (the last one when repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `limit` and `cursor`: limit defaults to 50; 0 or above 500 is refused.
    pub fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = self
            .number("limit")?
            .unwrap_or(PageRequest::DEFAULT_LIMIT as u64);
        if limit == 0 || limit > PageRequest::MAX_LIMIT as u64 {
            return Err(Error::bad_request(format!(
                "limit must be between 1 and {}, got {limit}",
                PageRequest::MAX_LIMIT
            ))
            .into());
        }
        Ok(PageRequest {
            limit: limit as usize,
            cursor: self
                .get("cursor")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
        })
    }

    /// An unsigned integer parameter.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::bad_request(format!("{key} must be a non-negative integer, got {v:?}"))
                    .into()
            }),
        }
    }
}

/// The request body, read up to `server.max_body_bytes`, with its media type.
#[derive(Debug)]
pub struct Payload {
    /// The raw bytes (webhook signatures are computed over them).
    pub bytes: Bytes,
    /// Whether the client declared YAML (`application/yaml`, `text/yaml`...).
    pub yaml: bool,
}

impl FromRequest<AppState> for Payload {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config().server.max_body_bytes;
        let too_large = || {
            ApiError::with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                Error::bad_request(format!(
                    "request body is larger than the {limit} byte limit"
                )),
            )
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let media = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let yaml = media.contains("yaml");
        let body: Body = request.into_body();
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| too_large())?;
        Ok(Payload { bytes, yaml })
    }
}

impl Payload {
    /// The body as text.
    pub fn text(&self) -> Result<&str, ApiError> {
        std::str::from_utf8(&self.bytes).map_err(|e| {
            Error::bad_request(format!(
                "request body is not UTF-8 (at byte {})",
                e.valid_up_to()
            ))
            .into()
        })
    }

    /// The body as one value tree: YAML when declared, JSON otherwise.
    pub fn value(&self) -> Result<Value, ApiError> {
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::bad_request("request body is empty").into());
        }
        if self.yaml {
            nestor_core::parse_yaml_value(self.text()?).map_err(|e| Error::bad_request(e).into())
        } else {
            serde_json::from_slice(&self.bytes)
                .map_err(|e| Error::bad_request(format!("invalid JSON: {e}")).into())
        }
    }

    /// The body decoded into `T`; unknown or mistyped fields name their path.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        decode_value(self.value()?)
    }
}

/// Decodes a value tree into `T`, naming the field path on error.
pub fn decode_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        Error::invalid(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
        .into()
    })
}

/// Checks a path segment that names something (a resource, team,
/// composition): the DNS-1123 label rule, so `..`, `/` and control
/// characters never reach a store or a file path.
pub fn check_name(kind: &str, value: &str) -> Result<(), ApiError> {
    if nestor_core::is_valid_name(value) {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "{value:?} is not a valid {kind} name (lowercase letters, digits and '-')"
        ))
        .into())
    }
}
