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
