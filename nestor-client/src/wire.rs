//! Answers of the API that are not a core type: they describe the server
//! (its engines, status, readiness) or what a call did (a validation, a
//! yank).

use nestor_core::{PublishedVersion, SyncReport};
use serde::{Deserialize, Serialize};

/// One engine the server has loaded (`GET /api/v1/engines`). The server's
/// own type lives in `nestor-engines`, which this crate does not depend on
/// (it carries wasmtime); the fields are the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EngineStatus {
    /// The engine name (for a plugin that failed to load: its file stem).
    pub name: String,
    /// The version the engine reports (empty when it failed to load).
    pub version: String,
    /// `bundled`, `wasm:<path>` or `native:<path>`.
    pub source: String,
    /// Hex SHA-256 of the component or library.
    pub sha256: String,
    /// Whether it loaded and answers.
    pub healthy: bool,
    /// One line from the engine.
    #[serde(default)]
    pub description: String,
    /// Why it is unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/status`: counts and each source's last sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerStatus {
    /// Versions in the catalog (absent until the server has counted them).
    pub versions: Option<u64>,
    /// The greatest event sequence so far: where a stream "from now" starts.
    pub last_event: u64,
    /// Healthy engines.
    #[serde(default)]
    pub engines: usize,
    /// The configured catalog sources.
    #[serde(default)]
    pub sources: Vec<String>,
    /// The last sync report of each source.
    #[serde(default)]
    pub syncs: Vec<SyncReport>,
}

/// `GET /ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Store reachable and at least one engine healthy.
    pub ready: bool,
    /// Whether the store answered.
    pub store: bool,
    /// Healthy engines.
    pub engines: usize,
}

/// `POST /api/v1/validate`: every document's verdict; nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ValidationReport {
    /// No document has an error.
    pub valid: bool,
    /// One entry per document, in order.
    pub documents: Vec<DocumentReport>,
}

/// The verdict on one validated document: the core's own type (its
/// error code, and a valid composition's waves, included).
pub type DocumentReport = nestor_core::DocumentCheck;

/// What a yank or unyank did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct YankOutcome {
    /// Whether the flag changed (`false`: it already was so).
    pub changed: bool,
    /// The version as it is now.
    pub version: PublishedVersion,
}
