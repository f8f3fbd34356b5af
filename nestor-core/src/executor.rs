//! The executor trait: what happens to rendered artifacts. The default is
//! the GitOps executor in `nestor-storage` (one commit per apply); a plan
//! uses no executor at all.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::Artifact;
use crate::model::DeploymentKey;

/// One apply: which deployment, which revision, and the commit message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyTarget {
    /// Team, environment and name.
    pub key: DeploymentKey,
    /// The revision being applied.
    pub revision: u64,
    /// The deployment's id.
    pub deployment_id: String,
}

impl ApplyTarget {
    /// The commit message (docs/src/product/deploying.md): `nestor: {team}/{environment}/{name} revision {n} ({id})`.
    pub fn message(&self) -> String {
        format!(
            "nestor: {} revision {} ({})",
            self.key, self.revision, self.deployment_id
        )
    }
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReceipt {
    /// The commit made, if the executor makes commits.
    pub commit: Option<String>,
    /// Resource → paths of its files where the executor put them.
    pub paths: BTreeMap<String, Vec<String>>,
    /// Nothing changed: the files were already there exactly, so nothing
    /// was committed (`commit` names the commit already holding them).
    #[serde(default)]
    pub unchanged: bool,
}

/// Applies a deployment revision's artifacts.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Makes `files` (resource → artifacts) the whole content of the
    /// deployment: resources absent from `files` are removed. All or
    /// nothing: on error nothing is left changed.
    async fn apply(
        &self,
        target: &ApplyTarget,
        files: &BTreeMap<String, Vec<Artifact>>,
    ) -> Result<ApplyReceipt>;

    /// Whether `revision` (as a cluster reports having synced it) holds
    /// `commit`: the same commit or a later one on the branch. Argo CD
    /// reports the branch head, which moves with every team's commits, so
    /// an observer needs this to know its commit was seen. By default only
    /// the same commit counts.
    async fn contains(&self, revision: &str, commit: &str) -> Result<bool> {
        Ok(revision == commit)
    }
}

/// Sensitive values by the Secret key that stands for them
/// (`namespace/name/key`); see [`DirectExecutor::apply`].
pub type RunSecrets = BTreeMap<String, serde_json::Value>;

/// One resource a [`DirectExecutor`] runs: the deployment it belongs to,
/// the revision being run and the resource's name. The executor keeps
/// one workspace per (team, environment, deployment name, resource), so
/// every revision of a deployment runs against the same state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTarget {
    /// Team, environment and name.
    pub key: DeploymentKey,
    /// The revision being run.
    pub revision: u64,
    /// The deployment's id.
    pub deployment_id: String,
    /// The resource's name inside the deployment.
    pub resource: String,
}

/// One output a run produced, as the tool reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    /// The value.
    pub value: serde_json::Value,
    /// The tool marks it sensitive: it is passed to the resources that
    /// read it and never recorded, logged or returned.
    #[serde(default)]
    pub sensitive: bool,
}

/// What the tool's own plan says it will do to one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ToolPlan {
    /// Objects it will create.
    pub add: u64,
    /// Objects it will change in place.
    pub change: u64,
    /// Objects it will destroy (a replacement counts as one add and one destroy).
    pub destroy: u64,
    /// The addresses of every object it will touch, with the action
    /// (`create`, `update`, `delete`, `replace`): `module.db.aws_db_instance.this (update)`.
    #[serde(default)]
    pub changes: Vec<String>,
    /// Why the tool could not plan (its diagnostics); the counts are then zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a run of one resource did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReceipt {
    /// The outputs the tool reported after applying.
    pub outputs: BTreeMap<String, RunOutput>,
    /// What the applied plan changed.
    pub plan: ToolPlan,
    /// Where the resource's workspace is (shown as its artifact path).
    pub workspace: String,
}

/// A run's log for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunLog {
    /// The resource.
    pub resource: String,
    /// The commands run and what they printed, sensitive values left out.
    pub text: String,
}

/// Drift found in one resource's workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResourceDrift {
    /// The resource.
    pub resource: String,
    /// The addresses whose real state no longer matches the configuration.
    pub addresses: Vec<String>,
}

/// An executor that runs a tool itself (Terraform) instead of handing
/// files to GitOps: it applies one resource at a time, in wave order, and
/// returns the tool's real outputs, so the next wave is rendered with the
/// values the tool produced. The orchestrator sends it the resources it
/// [`handles`](DirectExecutor::handles) and every other resource to the
/// [`Executor`]. Implementations keep the tool's state between revisions
/// and make two runs of one workspace wait for each other.
#[async_trait]
pub trait DirectExecutor: Send + Sync {
    /// Whether this executor runs resources of `engine` in `environment`.
    fn handles(&self, environment: &str, engine: &str) -> bool;

    /// Plans and applies `artifacts` (the engine's files for the resource)
    /// and returns the outputs. A tool failure is
    /// [`Error::EngineFailed`](crate::Error::EngineFailed) carrying its diagnostics.
    ///
    /// `secrets` holds the values of sensitive outputs of resources applied
    /// before, by the Secret key the artifacts read them from
    /// ([`SecretKeyRef::path`](crate::SecretKeyRef::path)): they are never written
    /// into files, so the executor hands them to the tool at run time
    /// (Terraform: the `TF_VAR_` variables the engine's Workspace sets from
    /// those keys).
    async fn apply(
        &self,
        target: &RunTarget,
        artifacts: &[Artifact],
        secrets: &RunSecrets,
    ) -> Result<RunReceipt>;

    /// What applying `artifacts` would change; writes no state.
    async fn plan(
        &self,
        target: &RunTarget,
        artifacts: &[Artifact],
        secrets: &RunSecrets,
    ) -> Result<ToolPlan>;

    /// The outputs of the resource's last apply; `None` when it was never applied.
    async fn outputs(&self, target: &RunTarget) -> Result<Option<BTreeMap<String, RunOutput>>>;

    /// Destroys everything the resource's workspace manages.
    async fn destroy(&self, target: &RunTarget) -> Result<()>;

    /// The addresses whose real state differs from the last applied
    /// configuration (`artifacts`, the resource's files of that apply);
    /// empty when nothing drifted or it was never applied. `secrets` are
    /// the values of the sensitive outputs it reads, as for
    /// [`DirectExecutor::apply`]: the tool needs them to plan.
    async fn drift(
        &self,
        target: &RunTarget,
        artifacts: &[Artifact],
        secrets: &RunSecrets,
    ) -> Result<Vec<String>>;

    /// The logs of revision `revision`'s runs of `resources`
    /// (those it has a log for).
    async fn logs(
        &self,
        key: &DeploymentKey,
        revision: u64,
        resources: &[String],
    ) -> Result<Vec<RunLog>>;
}
