//! The one error type of Nestor's library, carrying the error codes every
//! front-end shows (the book's error reference lists them).
//!
//! Backends keep their private errors and convert them into [`Error`]; the
//! HTTP front-end maps [`Error::code`] to a status and [`Error::details`] to
//! the body, and the CLI prints the code.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::{Change, ChangeKind};

/// A `Result` with Nestor's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error codes, the same in the library, on the wire and in the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400
    BadRequest,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    ResourceNotFound,
    /// 404
    VersionNotFound,
    /// 404
    CompositionNotFound,
    /// 404
    DeploymentNotFound,
    /// 409
    VersionImmutable,
    /// 409
    Conflict,
    /// 422
    ValidationFailed,
    /// 422
    BreakingChange,
    /// 422
    DependencyCycle,
    /// 422
    DependencyNotFound,
    /// 422
    EngineNotFound,
    /// 422: a policy (`deny`, `violation`) refused the definition,
    /// composition or deployment.
    PolicyViolation,
    /// 422: the apply would take the team past one of its quotas.
    QuotaExceeded,
    /// 502
    EngineFailed,
    /// 429
    RateLimited,
    /// 503
    StorageUnavailable,
    /// 500
    InternalError,
    /// 404: no such route (not a catalog object).
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 408: the client did not send its request in time.
    RequestTimeout,
    /// 413: the body is larger than the server accepts.
    PayloadTooLarge,
    /// 431: the request's headers are larger than the server accepts.
    RequestHeaderFieldsTooLarge,
    /// 503: the server cannot take the request now (connection limit,
    /// shutting down); not the store.
    ServiceUnavailable,
}

impl ErrorCode {
    /// The wire spelling, e.g. `VERSION_IMMUTABLE`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::ResourceNotFound => "RESOURCE_NOT_FOUND",
            ErrorCode::VersionNotFound => "VERSION_NOT_FOUND",
            ErrorCode::CompositionNotFound => "COMPOSITION_NOT_FOUND",
            ErrorCode::DeploymentNotFound => "DEPLOYMENT_NOT_FOUND",
            ErrorCode::VersionImmutable => "VERSION_IMMUTABLE",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::ValidationFailed => "VALIDATION_FAILED",
            ErrorCode::BreakingChange => "BREAKING_CHANGE",
            ErrorCode::DependencyCycle => "DEPENDENCY_CYCLE",
            ErrorCode::DependencyNotFound => "DEPENDENCY_NOT_FOUND",
            ErrorCode::EngineNotFound => "ENGINE_NOT_FOUND",
            ErrorCode::PolicyViolation => "POLICY_VIOLATION",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::EngineFailed => "ENGINE_FAILED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::StorageUnavailable => "STORAGE_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::RequestHeaderFieldsTooLarge => "REQUEST_HEADER_FIELDS_TOO_LARGE",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// The HTTP status of the code (docs/src/reference/errors.md).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::ResourceNotFound
            | ErrorCode::VersionNotFound
            | ErrorCode::CompositionNotFound
            | ErrorCode::DeploymentNotFound => 404,
            ErrorCode::VersionImmutable | ErrorCode::Conflict => 409,
            ErrorCode::ValidationFailed
            | ErrorCode::BreakingChange
            | ErrorCode::DependencyCycle
            | ErrorCode::DependencyNotFound
            | ErrorCode::EngineNotFound
            | ErrorCode::PolicyViolation
            | ErrorCode::QuotaExceeded => 422,
            ErrorCode::EngineFailed => 502,
            ErrorCode::RateLimited => 429,
            ErrorCode::StorageUnavailable => 503,
            ErrorCode::InternalError => 500,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RequestHeaderFieldsTooLarge => 431,
            ErrorCode::ServiceUnavailable => 503,
        }
    }
}

impl ErrorCode {
    /// Every code, in the order of the error reference
    /// (`docs/src/reference/errors.md`, generated from this list and
    /// [`ErrorCode::help`] by `cargo run -p xtask --features schemas -- docs`).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::ResourceNotFound,
        ErrorCode::VersionNotFound,
        ErrorCode::CompositionNotFound,
        ErrorCode::DeploymentNotFound,
        ErrorCode::VersionImmutable,
        ErrorCode::Conflict,
        ErrorCode::ValidationFailed,
        ErrorCode::BreakingChange,
        ErrorCode::DependencyCycle,
        ErrorCode::DependencyNotFound,
        ErrorCode::EngineNotFound,
        ErrorCode::PolicyViolation,
        ErrorCode::QuotaExceeded,
        ErrorCode::EngineFailed,
        ErrorCode::RateLimited,
        ErrorCode::StorageUnavailable,
        ErrorCode::InternalError,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RequestHeaderFieldsTooLarge,
        ErrorCode::ServiceUnavailable,
    ];

    /// What causes an error with this code and what to do about it, for
    /// the error reference. The match is exhaustive on purpose: a new code
    /// does not compile until it says what it means.
    pub fn help(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "The request cannot be read: malformed JSON or YAML, YAML nested too deep or an alias bomb, an unknown query key, a bad cursor or `Last-Event-ID`. Fix the request; the message names what is wrong.",
            ErrorCode::Unauthorized => "No token, or a token the server does not know, on a call that needs one. Send `Authorization: Bearer <token>` (the CLI: `--token` or `NESTOR_TOKEN`).",
            ErrorCode::Forbidden => "The token is known but its roles do not allow this call (catalog writes need `platform` or `admin`; a team's compositions and deployments need `team:<name>`).",
            ErrorCode::ResourceNotFound => "No resource definition has this name. Check the spelling with `nestor catalog search`, or sync the source that holds it.",
            ErrorCode::VersionNotFound => "The definition exists but no published, non-yanked version matches the version or requirement asked for. `nestor catalog versions NAME` lists them.",
            ErrorCode::CompositionNotFound => "The team has no composition with this name (or version). Teams never see each other's compositions.",
            ErrorCode::DeploymentNotFound => "No deployment has this id, or it belongs to a team the caller cannot see (answered the same on purpose).",
            ErrorCode::VersionImmutable => "This name@version is already published with other content. Versions never change: publish a new version.",
            ErrorCode::Conflict => "The write lost a race or repeats an `Idempotency-Key` with another body, or the deployment is in a state that does not allow it. Re-read and retry, or use a new key.",
            ErrorCode::ValidationFailed => "The document or request breaks a rule; `details.validation_errors` lists every problem with its field path. Fix them all and resend.",
            ErrorCode::BreakingChange => "The new version changes its predecessor more than its version bump allows; `details` lists every change and the smallest valid version.",
            ErrorCode::DependencyCycle => "The resources depend on each other in a circle; the message names the cycle (`a -> b -> a`). Remove one edge.",
            ErrorCode::DependencyNotFound => "A dependency names a definition or version that is not published (or only yanked). Publish it first or loosen the requirement.",
            ErrorCode::EngineNotFound => "The engine asked for is not loaded, or the definition does not support it. `nestor engines list` shows the loaded ones.",
            ErrorCode::PolicyViolation => "A policy refused the definition, composition or deployment: `details.violations` lists every message with its policy file and rule (`deny`, `violation`). Change what the policy objects to, or ask the platform team about the policy.",
            ErrorCode::QuotaExceeded => "The apply would take the team past one of its quotas (`quotas:` in `nestor.yaml`): `details` names the limit (`max_deployments`, `max_resources`, `max_per_category.<category>`), its maximum and the usage the apply would reach. Nothing was recorded; delete a deployment of the team to free its share, or ask the platform team for a larger quota.",
            ErrorCode::EngineFailed => "An engine plugin failed to render a resource: it returned an error, trapped, ran out of its CPU budget or its memory cap. The message says which; other resources and plugins are unaffected.",
            ErrorCode::RateLimited => "Too many requests from this caller; wait for `Retry-After` and retry.",
            ErrorCode::StorageUnavailable => "The store cannot be reached or refused the write (SQLite file locked or unreadable, DynamoDB unreachable or throttling). Nothing was written; retry once the store is back.",
            ErrorCode::InternalError => "A bug or an unexpected failure inside Nestor. The body stays generic; the server log has the detail under the same `trace_id`.",
            ErrorCode::NotFound => "No such route, a catalog source the configuration does not name, or a webhook for a repository no source names.",
            ErrorCode::MethodNotAllowed => "The route exists but not with this HTTP method.",
            ErrorCode::RequestTimeout => "The client did not send its request head (`server.header_read_timeout`) or body (`server.body_read_timeout`) in time.",
            ErrorCode::PayloadTooLarge => "The body is larger than `server.max_body_bytes` (1 MiB by default).",
            ErrorCode::RequestHeaderFieldsTooLarge => "The request line and headers are larger than `server.max_header_bytes` (16 KiB by default).",
            ErrorCode::ServiceUnavailable => "The server cannot take the request now: every connection slot is busy (`server.max_connections`) or it is shutting down. Retry shortly.",
        }
    }
}

impl ErrorCode {
    /// Whether an error with this code is about the request as a whole —
    /// the service, its store, the caller's credentials or the transport —
    /// rather than about one document in it. A front-end working through
    /// several documents (`catalog publish` of many files, locally or
    /// against a server) stops at such an error instead of reporting it
    /// for one document and going on: every next document would meet it
    /// too. Every other code is a verdict on the document itself.
    pub fn aborts_batch(self) -> bool {
        matches!(
            self,
            ErrorCode::StorageUnavailable
                | ErrorCode::InternalError
                | ErrorCode::Unauthorized
                | ErrorCode::Forbidden
                | ErrorCode::BadRequest
                | ErrorCode::RateLimited
                | ErrorCode::NotFound
                | ErrorCode::MethodNotAllowed
                | ErrorCode::RequestTimeout
                | ErrorCode::PayloadTooLarge
                | ErrorCode::RequestHeaderFieldsTooLarge
                | ErrorCode::ServiceUnavailable
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one field of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FieldError {
    /// Path such as `spec.required_inputs[0].name`; empty for the whole document.
    pub field: String,
    /// What is wrong, for a human.
    pub message: String,
    /// Line in the source file, when the error came from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl FieldError {
    /// An error on `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            line: None,
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Nestor's error. Each variant maps to one error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request itself is malformed (bad YAML, bad query...).
    #[error("bad request: {message}")]
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// No credentials, or unknown ones.
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// Why.
        message: String,
    },
    /// Credentials without the needed role.
    #[error("forbidden: {message}")]
    Forbidden {
        /// Why.
        message: String,
    },
    /// No definition of that name.
    #[error("resource not found: {name}")]
    ResourceNotFound {
        /// The name asked for.
        name: String,
    },
    /// The name exists, but no version matches.
    #[error("version not found: {name}@{version}")]
    VersionNotFound {
        /// The name asked for.
        name: String,
        /// The version or requirement asked for.
        version: String,
    },
    /// No composition of that name in that team.
    #[error("composition not found: {team}/{name}")]
    CompositionNotFound {
        /// The team.
        team: String,
        /// The composition.
        name: String,
    },
    /// No deployment with that id.
    #[error("deployment not found: {id}")]
    DeploymentNotFound {
        /// The id asked for.
        id: String,
    },
    /// name@version exists with other content.
    #[error("{name}@{version} is already published with different content; versions are immutable, publish a new version")]
    VersionImmutable {
        /// The name.
        name: String,
        /// The version.
        version: String,
    },
    /// A concurrent or conflicting write (idempotency key reuse, state race...).
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicted.
        message: String,
    },
    /// The document breaks validity rules; every violation is listed.
    #[error("validation failed: {}", summarize(.errors))]
    Validation {
        /// Every violation, each with its field path.
        errors: Vec<FieldError>,
    },
    /// The version bump is too small for the changes it carries.
    #[error(
        "{name}@{version}: breaking or additive changes need at least version {minimum_version}"
    )]
    BreakingChange {
        /// The name.
        name: String,
        /// The version that was attempted.
        version: String,
        /// The version it was compared against.
        predecessor: String,
        /// The smallest acceptable version.
        minimum_version: String,
        /// Every classified change.
        changes: Vec<Change>,
    },
    /// A dependency graph has a cycle.
    #[error("dependency cycle: {}", .path.join(" -> "))]
    DependencyCycle {
        /// The cycle, first node repeated at the end.
        path: Vec<String>,
    },
    /// A named dependency does not resolve.
    #[error("dependency not found: {}", summarize(.errors))]
    DependencyNotFound {
        /// Every unresolved dependency, each with its field path.
        errors: Vec<FieldError>,
    },
    /// No engine of that name is loaded.
    #[error("engine not found: {name}")]
    EngineNotFound {
        /// The engine asked for.
        name: String,
    },
    /// Policies refused the subject; every message is listed.
    #[error("policy violation: {subject}: {}", summarize_violations(.violations))]
    PolicyViolation {
        /// What was refused (`aws-rds-mysql:1.2.0`, `alpha/prod/shop`).
        subject: String,
        /// Every refusing message, with its file and rule.
        violations: Vec<crate::policy::PolicyMessage>,
    },
    /// The apply would take a team past one of its quotas.
    #[error("quota exceeded: {}: {limit} is {max}, the apply would make it {usage}", quota_scope(.team, .environment))]
    QuotaExceeded {
        /// The team.
        team: String,
        /// The quota's environment; `None` for a team-wide quota.
        environment: Option<String>,
        /// `max_deployments`, `max_resources` or `max_per_category.<category>`.
        limit: String,
        /// The quota's maximum.
        max: u64,
        /// The usage the apply would reach.
        usage: u64,
    },
    /// An engine failed to render.
    #[error("engine {engine} failed: {message}")]
    EngineFailed {
        /// The engine.
        engine: String,
        /// The cause.
        message: String,
    },
    /// Too many requests.
    #[error("rate limited")]
    RateLimited,
    /// The store cannot be reached or answered with an error.
    #[error("storage unavailable: {message}")]
    StorageUnavailable {
        /// What failed.
        message: String,
        /// The backend's own error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A bug or an unexpected condition.
    #[error("internal error: {message}")]
    Internal {
        /// What happened.
        message: String,
    },
    /// No such route, or what was asked for is not there (outside the
    /// catalog, compositions and deployments, which have their own codes).
    #[error("not found: {message}")]
    NotFound {
        /// What was not found.
        message: String,
    },
    /// The route does not take this method.
    #[error("method not allowed: {message}")]
    MethodNotAllowed {
        /// Which methods it takes.
        message: String,
    },
    /// The client was too slow sending its request.
    #[error("request timeout: {message}")]
    RequestTimeout {
        /// What was late.
        message: String,
    },
    /// The request body is larger than allowed.
    #[error("payload too large: the body is larger than the {limit} byte limit")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The request's headers are larger than allowed.
    #[error("request header fields too large: {message}")]
    RequestHeaderFieldsTooLarge {
        /// Which limit.
        message: String,
    },
    /// The server cannot take the request now.
    #[error("service unavailable: {message}")]
    ServiceUnavailable {
        /// Why, and when to retry.
        message: String,
    },
}

fn summarize(errors: &[FieldError]) -> String {
    match errors {
        [] => "no details".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

fn summarize_violations(violations: &[crate::policy::PolicyMessage]) -> String {
    match violations {
        [] => "no details".into(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

impl Error {
    /// A validation error with one field problem.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Validation {
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// A storage error wrapping a backend's error.
    pub fn storage(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::StorageUnavailable {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A bad-request error.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::BadRequest {
            message: message.into(),
        }
    }

    /// `NOT_FOUND` for a catalog source `name` that is not configured,
    /// listing the `known` ones (a lookup of a named thing, like any other).
    pub fn no_source<S: AsRef<str>>(name: &str, known: &[S]) -> Error {
        let known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
        Error::NotFound {
            message: format!(
                "no source named {} (known: {})",
                crate::validate::excerpt(name),
                known.join(", ")
            ),
        }
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal {
            message: message.into(),
        }
    }

    /// The error an error body describes: `code`, `message` and `details`
    /// as [`Error::code`], [`Error::to_string`] and [`Error::details`] wrote
    /// them. A client rebuilds a remote error with it, so callers match the
    /// same variant, code, fields and message as for a local one. Details a
    /// body lacks become empty fields; a 5xx body's generic message is kept.
    pub fn from_code(code: ErrorCode, message: &str, details: &Value) -> Error {
        let text = |key: &str| details[key].as_str().unwrap_or_default().to_string();
        let list = |key: &str| -> Vec<FieldError> {
            serde_json::from_value(details[key].clone())
                .unwrap_or_else(|_| vec![FieldError::new("", message)])
        };
        // The variant's own prefix, so that `to_string` gives `message` back.
        let bare = |prefix: &str| message.strip_prefix(prefix).unwrap_or(message).to_string();
        match code {
            ErrorCode::BadRequest => Error::BadRequest {
                message: bare("bad request: "),
            },
            ErrorCode::Unauthorized => Error::Unauthorized {
                message: bare("unauthorized: "),
            },
            ErrorCode::Forbidden => Error::Forbidden {
                message: bare("forbidden: "),
            },
            ErrorCode::ResourceNotFound => Error::ResourceNotFound {
                name: text("resource_name"),
            },
            ErrorCode::VersionNotFound => Error::VersionNotFound {
                name: text("resource_name"),
                version: text("version"),
            },
            ErrorCode::CompositionNotFound => Error::CompositionNotFound {
                team: text("team"),
                name: text("composition"),
            },
            ErrorCode::DeploymentNotFound => Error::DeploymentNotFound {
                id: text("deployment_id"),
            },
            ErrorCode::VersionImmutable => Error::VersionImmutable {
                name: text("resource_name"),
                version: text("version"),
            },
            ErrorCode::Conflict => Error::Conflict {
                message: bare("conflict: "),
            },
            ErrorCode::ValidationFailed => Error::Validation {
                errors: list("validation_errors"),
            },
            ErrorCode::BreakingChange => Error::BreakingChange {
                name: text("resource_name"),
                version: text("version"),
                predecessor: text("predecessor"),
                minimum_version: text("minimum_version"),
                changes: serde_json::from_value(details["changes"].clone()).unwrap_or_default(),
            },
            ErrorCode::DependencyCycle => Error::DependencyCycle {
                path: serde_json::from_value(details["cycle"].clone()).unwrap_or_default(),
            },
            ErrorCode::DependencyNotFound => Error::DependencyNotFound {
                errors: list("validation_errors"),
            },
            ErrorCode::EngineNotFound => Error::EngineNotFound {
                name: text("engine"),
            },
            ErrorCode::PolicyViolation => Error::PolicyViolation {
                subject: text("subject"),
                violations: serde_json::from_value(details["violations"].clone())
                    .unwrap_or_default(),
            },
            ErrorCode::QuotaExceeded => Error::QuotaExceeded {
                team: text("team"),
                environment: details["environment"].as_str().map(str::to_string),
                limit: text("limit"),
                max: details["max"].as_u64().unwrap_or_default(),
                usage: details["usage"].as_u64().unwrap_or_default(),
            },
            ErrorCode::EngineFailed => {
                let engine = text("engine");
                Error::EngineFailed {
                    message: bare(&format!("engine {engine} failed: ")),
                    engine,
                }
            }
            ErrorCode::RateLimited => Error::RateLimited,
            ErrorCode::StorageUnavailable => Error::StorageUnavailable {
                message: bare("storage unavailable: "),
                source: None,
            },
            ErrorCode::InternalError => Error::Internal {
                message: bare("internal error: "),
            },
            ErrorCode::NotFound => Error::NotFound {
                message: bare("not found: "),
            },
            ErrorCode::MethodNotAllowed => Error::MethodNotAllowed {
                message: bare("method not allowed: "),
            },
            ErrorCode::RequestTimeout => Error::RequestTimeout {
                message: bare("request timeout: "),
            },
            ErrorCode::PayloadTooLarge => Error::PayloadTooLarge {
                limit: details["limit_bytes"].as_u64().unwrap_or_default(),
            },
            ErrorCode::RequestHeaderFieldsTooLarge => Error::RequestHeaderFieldsTooLarge {
                message: bare("request header fields too large: "),
            },
            ErrorCode::ServiceUnavailable => Error::ServiceUnavailable {
                message: bare("service unavailable: "),
            },
        }
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRequest { .. } => ErrorCode::BadRequest,
            Error::Unauthorized { .. } => ErrorCode::Unauthorized,
            Error::Forbidden { .. } => ErrorCode::Forbidden,
            Error::ResourceNotFound { .. } => ErrorCode::ResourceNotFound,
            Error::VersionNotFound { .. } => ErrorCode::VersionNotFound,
            Error::CompositionNotFound { .. } => ErrorCode::CompositionNotFound,
            Error::DeploymentNotFound { .. } => ErrorCode::DeploymentNotFound,
            Error::VersionImmutable { .. } => ErrorCode::VersionImmutable,
            Error::Conflict { .. } => ErrorCode::Conflict,
            Error::Validation { .. } => ErrorCode::ValidationFailed,
            Error::BreakingChange { .. } => ErrorCode::BreakingChange,
            Error::DependencyCycle { .. } => ErrorCode::DependencyCycle,
            Error::DependencyNotFound { .. } => ErrorCode::DependencyNotFound,
            Error::EngineNotFound { .. } => ErrorCode::EngineNotFound,
            Error::EngineFailed { .. } => ErrorCode::EngineFailed,
            Error::PolicyViolation { .. } => ErrorCode::PolicyViolation,
            Error::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            Error::RateLimited => ErrorCode::RateLimited,
            Error::StorageUnavailable { .. } => ErrorCode::StorageUnavailable,
            Error::Internal { .. } => ErrorCode::InternalError,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
            Error::RequestTimeout { .. } => ErrorCode::RequestTimeout,
            Error::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::RequestHeaderFieldsTooLarge { .. } => ErrorCode::RequestHeaderFieldsTooLarge,
            Error::ServiceUnavailable { .. } => ErrorCode::ServiceUnavailable,
        }
    }

    /// The `details` object of the error body.
    pub fn details(&self) -> Value {
        match self {
            Error::ResourceNotFound { name } => json!({"resource_name": name}),
            Error::VersionNotFound { name, version } => {
                json!({"resource_name": name, "version": version})
            }
            Error::CompositionNotFound { team, name } => json!({"team": team, "composition": name}),
            Error::DeploymentNotFound { id } => json!({"deployment_id": id}),
            Error::VersionImmutable { name, version } => {
                json!({"resource_name": name, "version": version})
            }
            Error::Validation { errors } => json!({"validation_errors": errors}),
            Error::DependencyNotFound { errors } => json!({"validation_errors": errors}),
            Error::BreakingChange {
                name,
                version,
                predecessor,
                minimum_version,
                changes,
            } => json!({
                "resource_name": name, "version": version, "predecessor": predecessor,
                "minimum_version": minimum_version, "changes": changes,
            }),
            Error::DependencyCycle { path } => json!({"cycle": path}),
            Error::EngineNotFound { name } => json!({"engine": name}),
            Error::EngineFailed { engine, .. } => json!({"engine": engine}),
            Error::PayloadTooLarge { limit } => json!({"limit_bytes": limit}),
            Error::PolicyViolation {
                subject,
                violations,
            } => json!({"subject": subject, "violations": violations}),
            Error::QuotaExceeded {
                team,
                environment,
                limit,
                max,
                usage,
            } => json!({
                "team": team, "environment": environment, "limit": limit,
                "max": max, "usage": usage,
            }),
            _ => json!({}),
        }
    }

    /// The field errors carried by this error, if any (validation and dependency errors).
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Error::Validation { errors } | Error::DependencyNotFound { errors } => errors.clone(),
            Error::BreakingChange {
                changes,
                minimum_version,
                ..
            } => changes
                .iter()
                .filter(|c| c.kind != ChangeKind::Cosmetic)
                .map(|c| {
                    FieldError::new(
                        &c.field,
                        format!("{} change: {}", c.kind.as_str(), c.message),
                    )
                })
                .chain(std::iter::once(FieldError::new(
                    "metadata.version",
                    format!(
                        "version bump too small: the smallest valid version is {minimum_version}"
                    ),
                )))
                .collect(),
            Error::PolicyViolation { violations, .. } => violations
                .iter()
                .map(|v| {
                    FieldError::new(
                        format!("policy {}", v.policy),
                        format!("{}: {}", v.rule, v.message),
                    )
                })
                .collect(),
            other => vec![FieldError::new("", other.to_string())],
        }
    }
}

/// `team alpha` or `team alpha in production`.
fn quota_scope(team: &str, environment: &Option<String>) -> String {
    match environment {
        Some(e) => format!("team {team} in {e}"),
        None => format!("team {team}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_spec_statuses() {
        assert_eq!(ErrorCode::VersionImmutable.http_status(), 409);
        assert_eq!(ErrorCode::BreakingChange.http_status(), 422);
        assert_eq!(ErrorCode::EngineFailed.http_status(), 502);
        let e = Error::VersionNotFound {
            name: "x".into(),
            version: "2.0.0".into(),
        };
        assert_eq!(e.code().as_str(), "VERSION_NOT_FOUND");
        assert_eq!(e.details()["version"], "2.0.0");
        assert_eq!(
            serde_json::to_value(ErrorCode::StorageUnavailable).unwrap(),
            "STORAGE_UNAVAILABLE"
        );
    }

    #[test]
    fn every_code_spells_and_serialises_the_same() {
        for code in [
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::RequestTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RequestHeaderFieldsTooLarge,
            ErrorCode::ServiceUnavailable,
            ErrorCode::BadRequest,
        ] {
            let wire = serde_json::to_value(code).unwrap();
            assert_eq!(wire, code.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(wire).unwrap(), code);
        }
        assert_eq!(
            (
                ErrorCode::NotFound.http_status(),
                ErrorCode::PayloadTooLarge.http_status(),
                ErrorCode::RequestHeaderFieldsTooLarge.http_status()
            ),
            (404, 413, 431)
        );
    }

    #[test]
    fn only_errors_about_the_whole_request_abort_a_batch() {
        let document = [
            ErrorCode::ResourceNotFound,
            ErrorCode::VersionNotFound,
            ErrorCode::CompositionNotFound,
            ErrorCode::DeploymentNotFound,
            ErrorCode::VersionImmutable,
            ErrorCode::Conflict,
            ErrorCode::ValidationFailed,
            ErrorCode::BreakingChange,
            ErrorCode::DependencyCycle,
            ErrorCode::DependencyNotFound,
            ErrorCode::EngineNotFound,
            ErrorCode::EngineFailed,
            ErrorCode::PolicyViolation,
            ErrorCode::QuotaExceeded,
        ];
        for code in document {
            assert!(!code.aborts_batch(), "{code}");
        }
        for code in [
            ErrorCode::StorageUnavailable,
            ErrorCode::InternalError,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::RateLimited,
            ErrorCode::ServiceUnavailable,
            ErrorCode::PayloadTooLarge,
        ] {
            assert!(code.aborts_batch(), "{code}");
        }
    }

    #[test]
    fn an_error_body_rebuilds_the_error_it_came_from() {
        let errors = || vec![FieldError::new("spec.outputs[0].name", "must not be empty")];
        let all = vec![
            Error::bad_request("limit must be between 1 and 500"),
            Error::Unauthorized {
                message: "no token".into(),
            },
            Error::Forbidden {
                message: "platform role needed".into(),
            },
            Error::ResourceNotFound {
                name: "aws-vpc".into(),
            },
            Error::VersionNotFound {
                name: "aws-vpc".into(),
                version: "^2".into(),
            },
            Error::CompositionNotFound {
                team: "alpha".into(),
                name: "web".into(),
            },
            Error::DeploymentNotFound {
                id: "alpha.staging.web.r9".into(),
            },
            Error::VersionImmutable {
                name: "aws-vpc".into(),
                version: "1.0.0".into(),
            },
            Error::Conflict {
                message: "key reused".into(),
            },
            Error::Validation { errors: errors() },
            Error::BreakingChange {
                name: "aws-vpc".into(),
                version: "1.0.1".into(),
                predecessor: "1.0.0".into(),
                minimum_version: "2.0.0".into(),
                changes: vec![Change {
                    kind: ChangeKind::Breaking,
                    field: "spec.outputs".into(),
                    message: "output id removed".into(),
                }],
            },
            Error::DependencyCycle {
                path: vec!["a".into(), "b".into(), "a".into()],
            },
            Error::DependencyNotFound { errors: errors() },
            Error::EngineNotFound {
                name: "pulumi".into(),
            },
            Error::EngineFailed {
                engine: "helm".into(),
                message: "chart missing".into(),
            },
            Error::PolicyViolation {
                subject: "alpha/prod/shop".into(),
                violations: vec![crate::policy::PolicyMessage {
                    policy: "policies/labels.rego".into(),
                    rule: "deny".into(),
                    message: "cost-center label missing".into(),
                    source: Some("platform".into()),
                }],
            },
            Error::QuotaExceeded {
                team: "alpha".into(),
                environment: Some("production".into()),
                limit: "max_per_category.database".into(),
                max: 3,
                usage: 4,
            },
            Error::QuotaExceeded {
                team: "alpha".into(),
                environment: None,
                limit: "max_deployments".into(),
                max: 5,
                usage: 6,
            },
            Error::RateLimited,
            Error::StorageUnavailable {
                message: "the store is unavailable; try again later".into(),
                source: None,
            },
            Error::internal("boom"),
            Error::NotFound {
                message: "no route GET /api/v1/nope".into(),
            },
            Error::MethodNotAllowed {
                message: "GET, POST".into(),
            },
            Error::RequestTimeout {
                message: "headers".into(),
            },
            Error::PayloadTooLarge { limit: 1024 },
            Error::RequestHeaderFieldsTooLarge {
                message: "16 KiB".into(),
            },
            Error::ServiceUnavailable {
                message: "shutting down".into(),
            },
        ];
        for e in all {
            let back = Error::from_code(e.code(), &e.to_string(), &e.details());
            assert_eq!(back.code(), e.code());
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(back.details(), e.details());
            assert_eq!(back.field_errors(), e.field_errors());
        }
        // A body without details still keeps its code and message.
        let bare = Error::from_code(
            ErrorCode::ValidationFailed,
            "validation failed: x",
            &json!({}),
        );
        assert_eq!(
            bare.field_errors(),
            vec![FieldError::new("", "validation failed: x")]
        );
    }

    #[test]
    fn validation_message_summarises_every_error() {
        let e = Error::Validation {
            errors: vec![
                FieldError::new("metadata.name", "bad"),
                FieldError::new("spec", "worse"),
            ],
        };
        assert_eq!(
            e.to_string(),
            "validation failed: metadata.name: bad (and 1 more)"
        );
    }
}
