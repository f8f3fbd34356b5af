//! Request parsing shared by the routes: strict query strings (an unknown
//! key is a `BAD_REQUEST` naming it, never silently ignored), bounded
//! bodies, and JSON or YAML payloads decoded with field paths in errors.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use nestor_core::{Error, PageRequest};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, ApiResult};
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
            return Err(Error::bad_request(format!(
                "unknown query parameter {} ({known})",
                nestor_core::excerpt(key)
            ))
            .into());
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
        let page = PageRequest {
            limit: limit as usize,
            cursor: self
                .get("cursor")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
        };
        page.check()?;
        Ok(page)
    }

    /// An unsigned integer parameter.
    pub fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                Error::bad_request(format!(
                    "{key} must be a non-negative integer, got {}",
                    nestor_core::excerpt(v)
                ))
                .into()
            }),
        }
    }
}

/// A request body not read yet: handlers check the caller first and read
/// it only then ([`Unread::read`]), so an anonymous or unauthorised
/// caller is answered before a byte of its body is taken (issue 11).
/// A declared `Content-Length` over the limit is refused at once.
#[derive(Debug)]
pub struct Unread {
    body: Body,
    yaml: bool,
    form: bool,
}

impl FromRequest<AppState> for Unread {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config().server.max_body_bytes;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(Error::PayloadTooLarge {
                limit: limit as u64,
            }
            .into());
        }
        let media = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        Ok(Unread {
            yaml: media.contains("yaml"),
            form: media.starts_with("application/x-www-form-urlencoded"),
            body: request.into_body(),
        })
    }
}

impl Unread {
    /// Reads the body: at most `server.max_body_bytes` (else
    /// `PAYLOAD_TOO_LARGE`), all of it within `server.body_read_timeout`
    /// (else `REQUEST_TIMEOUT`), so a trickling client cannot hold a
    /// handler.
    pub async fn read(self, state: &AppState) -> ApiResult<Payload> {
        let limits = state.limits();
        let read = axum::body::to_bytes(self.body, limits.max_body_bytes);
        match tokio::time::timeout(limits.body_read_timeout, read).await {
            Ok(Ok(bytes)) => Ok(Payload {
                bytes,
                yaml: self.yaml,
                form: self.form,
            }),
            Ok(Err(_)) => Err(Error::PayloadTooLarge {
                limit: limits.max_body_bytes as u64,
            }
            .into()),
            Err(_) => Err(Error::RequestTimeout {
                message: format!(
                    "the request body did not arrive within {:?}",
                    limits.body_read_timeout
                ),
            }
            .into()),
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
    /// Whether the client declared a form (`application/x-www-form-urlencoded`).
    pub form: bool,
}

/// Runs CPU work on a request's body (parsing, validation) on the blocking
/// pool rather than on an async worker, within `server.parse_timeout`. The
/// work gets a [`Cancel`] flag, set when the deadline passes or the client
/// goes away (the handler future is dropped), to check between documents.
pub async fn off_thread<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&Cancel) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let cancel = Cancel::default();
    let guard = CancelOnDrop(cancel.clone());
    let flag = cancel.clone();
    let task = tokio::task::spawn_blocking(move || work(&flag));
    let deadline = state.limits().parse_timeout;
    let outcome = tokio::time::timeout(deadline, task).await;
    drop(guard);
    match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(Error::internal(format!("request work failed: {e}")).into()),
        Err(_) => Err(Error::bad_request(format!(
            "the request body took longer than {deadline:?} to process; it is refused"
        ))
        .into()),
    }
}

/// Set when a request's work should stop.
#[derive(Debug, Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// Refuses to go on once cancelled.
    pub fn check(&self) -> ApiResult<()> {
        if self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Err(Error::bad_request("the request was abandoned").into())
        } else {
            Ok(())
        }
    }
}

/// Cancels when dropped: the handler finished, timed out, or its client left.
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0 .0.store(true, std::sync::atomic::Ordering::Relaxed);
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
/// composition) before anything else runs: the core's rule
/// ([`nestor_core::check_name`]), which the operations apply too.
pub fn check_name(kind: &str, value: &str) -> Result<(), ApiError> {
    Ok(nestor_core::check_name(kind, value)?)
}
