//! Deployments (SPEC §5): requests, their revisions, and statuses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CompositionResource, Timestamp};
use crate::engine::Artifact;

/// What a client asks to deploy: either a composition with parameters, or
/// resources and edges directly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentRequest {
    /// The owning team.
    pub team: String,
    /// Target environment (`staging`).
    pub environment: String,
    /// The deployment's name, unique per team and environment.
    pub name: String,
    /// A team composition to instantiate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<String>,
    /// Which version of the composition (a requirement; default latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition_version: Option<String>,
    /// Composition parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Value>,
    /// Resources, when no composition is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<CompositionResource>,
    /// Edges between `resources` (`a -> b`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Labels recorded on the deployment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Plan only: render and diff, apply nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A deployment's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Accepted, not started.
    Pending,
    /// Resolving, rendering.
    Planning,
    /// Handing artifacts to the executor.
    Applying,
    /// Every resource applied.
    Succeeded,
    /// At least one resource failed (all causes listed).
    Failed,
    /// Stopped before finishing; no new wave started.
    Cancelled,
    /// Superseded by a rollback to an earlier revision.
    RolledBack,
}

impl DeploymentStatus {
    /// Whether the deployment is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::RolledBack
        )
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Planning => "planning",
            Self::Applying => "applying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::RolledBack => "rolled_back",
        }
    }
}

/// A resource's lifecycle inside a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    /// Waiting for its wave.
    Pending,
    /// Its engine is rendering it.
    Rendering,
    /// Rendered and committed.
    Applied,
    /// Its engine (or the executor) failed.
    Failed,
    /// Not attempted because something it depends on failed.
    Skipped,
    /// Not attempted because the deployment was cancelled.
    Cancelled,
}

/// One resource of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployedResource {
    /// Name inside the deployment.
    pub name: String,
    /// Pinned `name:exact-version`.
    pub catalog_ref: String,
    /// The engine that renders it.
    pub engine: String,
    /// Its status.
    pub status: ResourceStatus,
    /// Outputs the engine reported (references the tool resolves).
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// Paths of the committed files, relative to the GitOps repository.
    #[serde(default)]
    pub artifacts: Vec<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A deployment revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Unique id.
    pub id: String,
    /// The owning team.
    pub team: String,
    /// The environment.
    pub environment: String,
    /// The deployment's name.
    pub name: String,
    /// 1 for the first apply of (team, environment, name), then n+1.
    pub revision: u64,
    /// Its status.
    pub status: DeploymentStatus,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Resource names grouped by wave, in order.
    pub waves: Vec<Vec<String>>,
    /// Every resource, in wave order.
    pub resources: Vec<DeployedResource>,
    /// Every cause of failure, joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The composition and version it came from, if any (`alpha/web-app:1.0.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composition: Option<String>,
    /// The parameters it was deployed with (after defaults).
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
    /// Labels from the request.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The GitOps commit holding its files, once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// For a rollback: the revision whose content it restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
    /// Optimistic-concurrency counter: every stored update must name the
    /// generation it read (see `DeploymentStore::update_deployment`).
    #[serde(default)]
    pub generation: u64,
}

impl Deployment {
    /// `team/environment/name`.
    pub fn key(&self) -> DeploymentKey {
        DeploymentKey {
            team: self.team.clone(),
            environment: self.environment.clone(),
            name: self.name.clone(),
        }
    }

    /// The resource called `name`.
    pub fn resource_mut(&mut self, name: &str) -> Option<&mut DeployedResource> {
        self.resources.iter_mut().find(|r| r.name == name)
    }
}

/// A replica's claim on running one deployment (SPEC §10: deployments
/// survive the loss of a replica). Whoever holds an unexpired lease runs
/// the deployment and renews the lease by heartbeat; when it stops
/// renewing, another replica claims the lease and resumes the deployment.
/// A store grants a claim only when no lease exists or the last one has
/// expired, and a renewal only to the holder (same owner and epoch), with
/// conditional writes, so two replicas never both hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The deployment's id.
    pub deployment_id: String,
    /// Who holds it (a replica's id).
    pub owner: String,
    /// Raised by one on every claim of an existing lease record, so a
    /// holder that was paused and lost its lease can tell.
    pub epoch: u64,
    /// Milliseconds since the Unix epoch after which others may claim it.
    pub expires_at_ms: i64,
}

impl Lease {
    /// Whether it has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms <= now_ms
    }
}

/// Identifies a deployment across revisions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeploymentKey {
    /// The team.
    pub team: String,
    /// The environment.
    pub environment: String,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for DeploymentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.team, self.environment, self.name)
    }
}

/// Everything needed to reproduce a revision exactly: the pinned, rendered
/// resources and their files. Rollback and promotion start from this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RevisionContent {
    /// Pinned resources with their fully rendered, validated inputs.
    pub resources: Vec<ResolvedResource>,
    /// Edges between them.
    pub edges: Vec<super::Edge>,
    /// Rendered files per resource.
    pub artifacts: BTreeMap<String, Vec<Artifact>>,
}

/// A resource after resolution: exact version, engine, and inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedResource {
    /// Name inside the deployment.
    pub name: String,
    /// The definition's name.
    pub definition: String,
    /// The exact version.
    pub version: semver::Version,
    /// The engine.
    pub engine: String,
    /// Inputs as requested (templates not yet rendered).
    pub config: BTreeMap<String, Value>,
}
