//! The domain model: definitions, published versions, sources, sync reports
//! and events, and [`Shared`], how reads hand records out. Plain data; the
//! rules live in `validate`, `versioning` and the services.

mod artifact;
mod change;
mod composition;
mod definition;
mod deployment;
mod event;
mod shared;
mod source;
mod team_deploy;

pub use artifact::*;
pub use change::*;
pub use composition::*;
pub use definition::*;
pub use deployment::*;
pub use event::*;
pub use shared::{Shared, SharedJson};
pub use source::*;
pub use team_deploy::TeamDeploy;

use semver::Version;
use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch, in UTC. The core has no clock: callers pass
/// timestamps in, which keeps the rules deterministic under test.
pub type Timestamp = i64;

/// Where a published version came from, when it came from a catalog source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Origin {
    /// The source's name in the configuration.
    pub source: String,
    /// Repository URL or folder path, as configured.
    pub git_repository: String,
    /// The commit the file was read at; `None` for plain folders.
    pub git_commit: Option<String>,
    /// Path of the file inside the repository.
    pub git_path: String,
}

/// A definition as the catalog holds it: the immutable content plus the
/// mutable lifecycle state around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PublishedVersion {
    /// The immutable content.
    pub definition: ResourceDefinition,
    /// SHA-256 of the canonical JSON; equal hashes mean equal content.
    pub content_hash: String,
    /// When the version was first published.
    pub published_at: Timestamp,
    /// A yanked version stays readable by exact version but is never chosen
    /// for `latest` or a requirement.
    pub yanked: bool,
    /// The catalog source and file it came from, if any.
    pub origin: Option<Origin>,
}

impl PublishedVersion {
    /// Wraps a definition about to be published.
    pub fn new(
        definition: ResourceDefinition,
        published_at: Timestamp,
        origin: Option<Origin>,
    ) -> Self {
        let content_hash = definition.content_hash();
        PublishedVersion {
            definition,
            content_hash,
            published_at,
            yanked: false,
            origin,
        }
    }

    /// The definition's name.
    pub fn name(&self) -> &str {
        &self.definition.metadata.name
    }

    /// The definition's version.
    pub fn version(&self) -> &Version {
        &self.definition.metadata.version
    }

    /// The summary row of `GET /resources/{name}/versions`.
    pub fn summary(&self) -> VersionSummary {
        VersionSummary {
            version: self.version().clone(),
            published_at: self.published_at,
            yanked: self.yanked,
            deprecated: self.definition.metadata.deprecated,
            git_commit: self.origin.as_ref().and_then(|o| o.git_commit.clone()),
        }
    }
}

/// One row of a name's version history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VersionSummary {
    /// The version.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub version: Version,
    /// When it was published.
    pub published_at: Timestamp,
    /// Whether it is yanked.
    pub yanked: bool,
    /// Whether the definition is deprecated.
    pub deprecated: bool,
    /// The commit it was published from, if any.
    pub git_commit: Option<String>,
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PublishOutcome {
    /// A new version was written.
    Created,
    /// The same content was already there: nothing changed.
    Unchanged,
}
