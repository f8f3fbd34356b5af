//! [`ApiError`]: every error leaves a handler through it, as the SPEC §12
//! body `{"error": {code, message, details, trace_id}}`. A 5xx body stays
//! generic; the detail goes to the log under the same trace id.

use std::future::Future;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nestor_core::{Error, ErrorCode};
use serde_json::json;

tokio::task_local! {
    /// The request id of the request being served (the SPEC §12 trace id).
    static REQUEST_ID: String;
}

/// Runs `fut` with `id` as the current request id.
pub(super) async fn with_request_id<F: Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// The current request id, or an empty string outside a request.
pub(super) fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// A fresh random request id (32 hex digits).
pub(super) fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No entropy source: a counter is still unique per process.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        return format!(
            "{:032x}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
    }
    hex::encode(bytes)
}

/// An error answer: a core error, and the status when it is not the code's
/// own (413 for a body too large, 404 for an unknown route).
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong, with its SPEC §12 code (boxed, so handler results
    /// stay small on the happy path).
    error: Box<Error>,
    /// A status overriding the code's, for transport-level problems.
    status: Option<StatusCode>,
}

impl ApiError {
    /// An error answered with an explicit status.
    pub fn with_status(status: StatusCode, error: Error) -> Self {
        ApiError {
            error: Box::new(error),
            status: Some(status),
        }
    }

    /// The core error inside.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            error: Box::new(error),
            status: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.error.code();
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        let trace_id = current_request_id();
        let (message, details) = if status.is_server_error() && code != ErrorCode::EngineFailed {
            // The detail may name files, queries or hosts: log it, don't send it.
            tracing::error!(trace_id = %trace_id, code = %code, error = %self.error, cause = ?std::error::Error::source(&self.error), "request failed");
            (generic_message(code).to_string(), json!({}))
        } else {
            tracing::debug!(trace_id = %trace_id, code = %code, error = %self.error, "request refused");
            (self.error.to_string(), self.error.details())
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
