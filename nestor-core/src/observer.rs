//! The observer trait: what became of a committed revision in the cluster.
//!
//! A commit to the GitOps repository is not a deployment that took effect:
//! Argo CD still has to sync it, and each controller (provider-terraform,
//! the Pulumi operator, Crossplane, Helm through a child Application) has
//! to bring its objects up. An [`Observer`] looks once at how the cluster
//! is doing with one commit; the orchestrator calls it on a schedule that
//! backs off, keeps the deployment `applying` meanwhile, and decides the
//! outcome (see the orchestrator's `observe` module). The core knows no
//! HTTP: the Argo CD implementation lives in the `nestor-argocd` crate.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::manifests::ObjectRef;
use crate::model::{DeploymentKey, Health};

/// The revision an observer is asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveTarget {
    /// Team, environment and name (the observer derives the Argo CD
    /// Application's name from team and environment through `naming`).
    pub key: DeploymentKey,
    /// The deployment's id.
    pub deployment_id: String,
    /// The commit holding the revision's files.
    pub commit: String,
    /// Every Kubernetes object of the revision, all resources together.
    pub objects: Vec<ObjectRef>,
    /// How many looks came before this one (an observer may ask the cluster
    /// to refresh on the first).
    pub attempt: u32,
}

/// One object's state as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHealth {
    /// Which object (group, kind, namespace as reported, name).
    pub object: ObjectRef,
    /// Its health.
    pub health: Health,
    /// The cluster's message about it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A sync that failed, as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncFailure {
    /// The revision the failed sync was for, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The cluster's message.
    pub message: String,
    /// Objects whose apply failed, each with its message.
    #[serde(default)]
    pub objects: Vec<(ObjectRef, String)>,
}

/// What one look at the cluster saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The revision the cluster last compared with the repository (Argo
    /// CD's `status.sync.revision`); the commit or a later one is needed.
    pub revision: Option<String>,
    /// Whether the live state equals the repository at that revision.
    pub synced: bool,
    /// A failed sync, if the last one failed.
    pub sync_failure: Option<SyncFailure>,
    /// The health of every object the cluster knows of.
    pub objects: Vec<ObjectHealth>,
    /// Something worth showing while waiting (a comparison error).
    pub note: Option<String>,
}

/// Why a look failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObserveError {
    /// Worth another look later (a 5xx answer, a refused connection, a
    /// timeout): retried with backoff, up to [`ObserveSchedule::max_errors`]
    /// times in a row.
    #[error("{0}")]
    Transient(String),
    /// Looking again will not help (a refused token, a bad answer).
    #[error("{0}")]
    Permanent(String),
}

/// When and for how long the orchestrator looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserveSchedule {
    /// The first pause between looks; doubled after each look that saw no
    /// change, up to `max_poll`, and back to this after a change.
    pub poll: Duration,
    /// The longest pause between looks.
    pub max_poll: Duration,
    /// How long after the commit every object must be healthy.
    pub timeout: Duration,
    /// Failed looks in a row after which the deployment fails.
    pub max_errors: u32,
}

impl ObserveSchedule {
    /// `poll` doubling up to 16 times itself (at most 60 s, never less
    /// than `poll`), `timeout`, 5 failed looks in a row.
    pub fn new(poll: Duration, timeout: Duration) -> Self {
        ObserveSchedule {
            poll,
            max_poll: (poll * 16).min(Duration::from_secs(60)).max(poll),
            timeout,
            max_errors: 5,
        }
    }
}

/// Looks at how the cluster is doing with a committed revision.
#[async_trait]
pub trait Observer: Send + Sync {
    /// The observer's name as deployments show it (`argocd`).
    fn name(&self) -> &str;

    /// When to look and for how long.
    fn schedule(&self) -> ObserveSchedule;

    /// One look. Never waits for a change itself: the orchestrator decides
    /// when to look again.
    async fn observe(&self, target: &ObserveTarget) -> Result<Observation, ObserveError>;
}
