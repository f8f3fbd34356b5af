//! Deployments (docs/src/product/deploying.md): requests, their revisions, and statuses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CompositionResource, Timestamp};
use crate::model::Artifact;

/// What a client asks to deploy: either a composition with parameters, or
/// resources and edges directly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// Succeeded, but a drift check found the real state of a resource a
    /// tool runs directly (Terraform) no longer matching what was applied;
    /// it stays so until a new revision is applied.
    Drifted,
}

impl DeploymentStatus {
    /// Whether the deployment is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::RolledBack | Self::Drifted
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
            Self::Drifted => "drifted",
        }
    }
}

/// A resource's lifecycle inside a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeployedResource {
    /// Name inside the deployment.
    pub name: String,
    /// Pinned `name:exact-version`.
    pub catalog_ref: String,
    /// The engine that renders it.
    pub engine: String,
    /// Its definition's category (`database`): what `max_per_category`
    /// quotas count.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub category: String,
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
    /// How its objects are doing in the cluster, as the observer (Argo CD)
    /// last reported; `None` when nothing observes the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ResourceHealth>,
}

/// Argo CD's health codes, for a resource's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Health {
    /// Every object is as it should be.
    Healthy,
    /// Not healthy yet, still making progress.
    Progressing,
    /// Paused, waiting for something outside (a suspended CronJob).
    Suspended,
    /// Not in the cluster (yet).
    Missing,
    /// The observer cannot tell.
    Unknown,
    /// Failed, or cannot make progress.
    Degraded,
}

impl Health {
    /// Parses Argo CD's spelling (`Healthy`, `Progressing`, ...); anything
    /// else is `Unknown`.
    pub fn parse(text: &str) -> Health {
        match text {
            "Healthy" => Health::Healthy,
            "Progressing" => Health::Progressing,
            "Suspended" => Health::Suspended,
            "Missing" => Health::Missing,
            "Degraded" => Health::Degraded,
            _ => Health::Unknown,
        }
    }

    /// How bad it is, for taking the worst of several objects: a resource
    /// is as healthy as its least healthy object.
    pub fn severity(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Suspended => 1,
            Health::Progressing => 2,
            Health::Unknown => 3,
            Health::Missing => 4,
            Health::Degraded => 5,
        }
    }
}

/// A resource's health in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResourceHealth {
    /// The worst health of its objects.
    pub status: Health,
    /// The message of the object that decided it (`Workspace/x: apply failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What is known of a committed revision in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClusterState {
    /// Committed; no observer is configured, so nothing is known of the
    /// cluster. `succeeded` then means committed, and no more.
    NotObserved,
    /// Waiting for the cluster to sync the commit and every object to be
    /// healthy (the deployment stays `applying`).
    Waiting,
    /// Synced at the commit and every object healthy.
    Healthy,
    /// An object is degraded.
    Degraded,
    /// The sync failed.
    SyncFailed,
    /// Not healthy within the observer's timeout.
    TimedOut,
    /// The observer could not be reached or refused to answer.
    Unreachable,
    /// The deployment was cancelled while waiting.
    Cancelled,
}

/// The cluster's side of a deployment: who looks, what it saw, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClusterStatus {
    /// Who observes (`argocd`); `None` when no observer is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observer: Option<String>,
    /// What it saw last.
    pub state: ClusterState,
    /// The same, said plainly, with the observer's own message.
    pub message: String,
    /// When observing started (after the commit): the timeout counts from
    /// here, also for a replica that takes the deployment over.
    pub since: super::Timestamp,
    /// The revision the cluster reported having synced, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// A deployment revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// The apply changed nothing: its files were already committed
    /// exactly, so no commit was made (`commit` is the one holding them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    /// What the cluster made of the commit (Argo CD's view), or that
    /// nothing observes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// Optimistic-concurrency counter: every stored update must name the
    /// generation it read (see `DeploymentStore::update_deployment`).
    #[serde(default)]
    pub generation: u64,
    /// What the `warn` rules of the policies said when the revision was
    /// planned or recorded (docs/src/platform/policies.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_warnings: Vec<crate::policy::PolicyMessage>,
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

/// A replica's claim on running one deployment (docs/src/operator/storage.md: deployments
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
