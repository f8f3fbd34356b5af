//! [`ApiError`]: every error leaves a handler through it, as the error reference (docs/src/reference/errors.md)
//! body `{"error": {code, message, details, trace_id}}`. A 5xx body stays
//! generic; the detail goes to the log under the same trace id.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nestor_core::{Error, ErrorCode};
use serde_json::json;

tokio::task_local! {
    /// The request id of the request being served (the error body's trace id),
    /// as the header value it is echoed in (a clone shares its bytes).
    static REQUEST_ID: HeaderValue;
}

/// Runs `fut` with `id` as the current request id.
pub(super) async fn with_request_id<F: Future>(id: HeaderValue, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The current request id, or an empty string outside a request.
pub(super) fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.to_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Request ids: 32 hex digits, a random prefix drawn once per process and
/// a counter. Unique per process by construction and across processes
/// with the probability of two 64-bit random draws colliding, at the cost
/// of an increment: drawing 16 random bytes per request was a `getrandom`
/// system call on every request.
pub(super) struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    /// A generator with a fresh random prefix (the clock's nanoseconds and
    /// the process id when the system has no entropy source).
    pub(super) fn new() -> Self {
        let mut bytes = [0u8; 8];
        let prefix = match getrandom::getrandom(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                nanos ^ (u64::from(std::process::id()) << 32)
            }
        };
        RequestIds {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    /// The next id, as a header value.
    pub(super) fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut text = [0u8; 32];
        hex::encode_to_slice(self.prefix.to_be_bytes(), &mut text[..16])
            .expect("16 hex digits for 8 bytes");
        hex::encode_to_slice(n.to_be_bytes(), &mut text[16..]).expect("16 hex digits for 8 bytes");
        HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
    }
}

/// An error answer: a core error, answered with its code's status (error codes,
/// ), so the status and the code of a body never disagree.
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong, with its error code (boxed, so handler results
    /// stay small on the happy path).
    error: Box<Error>,
}

impl ApiError {
    /// The core error inside.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            error: Box::new(error),
        }
    }
}

/// Longest message an error body carries; field errors are cut likewise.
/// The core quotes values short already; this bounds what serde or a
/// store might quote.
const MESSAGE_LIMIT: usize = 1024;
/// Most field errors an error body lists.
const FIELD_ERRORS_LIMIT: usize = 100;

fn cut(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let total = text.len();
        text.truncate(end);
        text.push_str(&format!("… ({total} bytes)"));
    }
}

/// The details object with every string cut to size and lists bounded.
fn bounded(mut details: serde_json::Value) -> serde_json::Value {
    if let Some(errors) = details
        .get_mut("validation_errors")
        .and_then(serde_json::Value::as_array_mut)
    {
        errors.truncate(FIELD_ERRORS_LIMIT);
    }
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => cut(s, MESSAGE_LIMIT / 2),
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut details);
    details
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.error.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let trace_id = current_request_id();
        let (message, details) = if status.is_server_error()
            && !matches!(
                code,
                ErrorCode::EngineFailed | ErrorCode::ServiceUnavailable
            ) {
            // The detail may name files, queries or hosts: log it, don't send it.
            tracing::error!(trace_id = %trace_id, code = %code, error = %self.error, cause = ?std::error::Error::source(&self.error), "request failed");
            (generic_message(code).to_string(), json!({}))
        } else {
            let mut message = self.error.to_string();
            cut(&mut message, MESSAGE_LIMIT);
            tracing::debug!(trace_id = %trace_id, code = %code, error = %message, "request refused");
            (message, bounded(self.error.details()))
        };
        let mut response = (status, Json(json!({"error": {"code": code, "message": message, "details": details, "trace_id": trace_id}}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn generic_message(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::StorageUnavailable => "the store is unavailable; try again later",
        _ => "internal error; the server log has the details under this trace_id",
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
