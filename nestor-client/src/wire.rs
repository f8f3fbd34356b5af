//! Answers of the API that are not a core type: they describe the server
//! (its engines, status, readiness) or a request shape only HTTP has.

use std::collections::BTreeMap;

use nestor_core::{FieldError, PublishedVersion, SyncReport};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The verdict on one validated document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DocumentReport {
    /// Position in the body (0-based).
    pub index: usize,
    /// `definition`, `composition`, `foreign` (not a Nestor document) or
    /// `invalid`.
    pub kind: String,
    /// `name:version` when the document has one.
    pub name: String,
    /// Every problem, each with its field path; empty when valid.
    pub errors: Vec<FieldError>,
}

/// What a yank or unyank did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct YankOutcome {
    /// Whether the flag changed (`false`: it already was so).
    pub changed: bool,
    /// The version as it is now.
    pub version: PublishedVersion,
}

/// `POST /api/v1/teams/{team}/deploy`: a team composition with parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TeamDeploy {
    /// The composition's name.
    pub composition: String,
    /// A version or requirement of it (default: its latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_version: Option<String>,
    /// Its parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// The environment (default: the server's `defaults.environment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The deployment's name (default: the composition's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels of the deployment.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl TeamDeploy {
    /// A deployment of `composition` with no parameters yet.
    pub fn new(composition: impl Into<String>) -> Self {
        TeamDeploy {
            composition: composition.into(),
            ..TeamDeploy::default()
        }
    }

    /// Sets a parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }

    /// Sets the environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Sets the deployment's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Pins a version or requirement of the composition.
    pub fn composition_version(mut self, version: impl Into<String>) -> Self {
        self.composition_version = Some(version.into());
        self
    }
}
