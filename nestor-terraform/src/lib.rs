//! The Terraform executor: Nestor runs `terraform` itself for the
//! Terraform resources of the environments it is configured for, instead
//! of committing a provider-terraform Workspace for a cluster to run.
//!
//! Each resource has a workspace folder per (team, environment,
//! deployment name, resource) under [`TerraformConfig::dir`]. An apply
//! writes the engine's `main.tf.json` there and runs `terraform init`,
//! `plan -out`, `apply` of exactly that plan and `output -json`; the
//! outputs are what the orchestrator renders the next wave with. State is
//! a local file in the workspace unless the engine config gives a backend
//! block (any Terraform backend: `s3`, `gcs`, ...), and never goes to the
//! GitOps repository. Every command of a revision is logged (their human
//! messages, never output values) to `logs/r{revision}.log` in the
//! workspace.
//!
//! Two runs of one workspace never overlap: in this process a lock per
//! workspace, across processes Terraform's own state lock (waited for up
//! to [`TerraformConfig::lock_timeout`]). A runner killed mid-apply leaves
//! what Terraform wrote to the state; the replica taking the deployment
//! over plans again from that state and applies what is left.

#![deny(missing_docs)]

mod run;
mod workspace;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use nestor_core::{
    Artifact, DeploymentKey, DirectExecutor, Error, Result, RunLog, RunOutput, RunReceipt,
    RunSecrets, RunTarget, ToolPlan,
};

use run::Runner;
use workspace::Workspace;

/// How the executor runs Terraform (`executors.terraform` in nestor.yaml).
#[derive(Debug, Clone)]
pub struct TerraformConfig {
    /// The `terraform` executable (a path, or a name looked up on `PATH`).
    pub binary: PathBuf,
    /// The environments whose Terraform resources it runs; the others go
    /// to GitOps. Empty: none.
    pub environments: Vec<String>,
    /// Where the workspaces live (`{data_dir}/terraform` in the server).
    pub dir: PathBuf,
    /// The longest one terraform command may run before it is stopped.
    pub timeout: Duration,
    /// How long a command waits for a state lock another run holds.
    pub lock_timeout: Duration,
    /// Extra environment variables for every command (credentials,
    /// `TF_PLUGIN_CACHE_DIR`, ...).
    pub env: BTreeMap<String, String>,
    /// How many workspaces run terraform at once (a wave's resources run
    /// in parallel up to this many); at least 1.
    pub parallelism: usize,
}

impl TerraformConfig {
    /// `terraform` on `PATH` for `environments`, workspaces under `dir`,
    /// 30 minutes per command, 5 minutes of waiting for a lock, 4
    /// workspaces at once.
    pub fn new(dir: impl Into<PathBuf>, environments: Vec<String>) -> Self {
        TerraformConfig {
            binary: PathBuf::from("terraform"),
            environments,
            dir: dir.into(),
            timeout: Duration::from_secs(30 * 60),
            lock_timeout: Duration::from_secs(5 * 60),
            env: BTreeMap::new(),
            parallelism: 4,
        }
    }
}

/// Runs Terraform resources itself; see the crate's docs.
pub struct TerraformExecutor {
    config: TerraformConfig,
    runner: Runner,
    /// One lock per workspace folder: runs of one workspace queue.
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Bounds the workspaces running at once.
    slots: Arc<tokio::sync::Semaphore>,
}

impl TerraformExecutor {
    /// An executor with `config`.
    pub fn new(config: TerraformConfig) -> Self {
        let runner = Runner {
            binary: config.binary.clone(),
            timeout: config.timeout,
            env: config.env.clone().into_iter().collect(),
        };
        TerraformExecutor {
            slots: Arc::new(tokio::sync::Semaphore::new(config.parallelism.max(1))),
            config,
            runner,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TerraformConfig {
        &self.config
    }

    /// The workspace folder of `resource` of deployment `key`.
    pub fn workspace_dir(&self, key: &DeploymentKey, resource: &str) -> PathBuf {
        self.config
            .dir
            .join(&key.team)
            .join(&key.environment)
            .join(&key.name)
            .join(resource)
    }

    fn workspace(&self, key: &DeploymentKey, resource: &str) -> Workspace<'_> {
        Workspace {
            dir: self.workspace_dir(key, resource),
            runner: &self.runner,
            lock_timeout: format!("-lock-timeout={}s", self.config.lock_timeout.as_secs()),
            env: Vec::new(),
        }
    }

    /// Holds the workspace's in-process lock and a run slot for the
    /// returned guard's life.
    async fn lock(&self, dir: &std::path::Path) -> Held {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(dir.to_path_buf()).or_default().clone()
        };
        let workspace = lock.lock_owned().await;
        let slot = self.slots.clone().acquire_owned().await.ok();
        Held {
            _workspace: workspace,
            _slot: slot,
        }
    }
}

/// A workspace's lock and a run slot, released on drop.
struct Held {
    _workspace: tokio::sync::OwnedMutexGuard<()>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[async_trait]
impl DirectExecutor for TerraformExecutor {
    fn handles(&self, environment: &str, engine: &str) -> bool {
        engine == "terraform" && self.config.environments.iter().any(|e| e == environment)
    }

    async fn apply(
        &self,
        target: &RunTarget,
        artifacts: &[Artifact],
        secrets: &RunSecrets,
    ) -> Result<RunReceipt> {
        let mut ws = self.workspace(&target.key, &target.resource);
        ws.env = workspace::secret_env(artifacts, secrets);
        let _held = self.lock(&ws.dir).await;
        ws.apply(target.revision, artifacts).await
    }

    async fn plan(
        &self,
        target: &RunTarget,
        artifacts: &[Artifact],
        secrets: &RunSecrets,
    ) -> Result<ToolPlan> {
        let mut ws = self.workspace(&target.key, &target.resource);
        ws.env = workspace::secret_env(artifacts, secrets);
        let _held = self.lock(&ws.dir).await;
        ws.plan(artifacts).await
    }

    async fn outputs(&self, target: &RunTarget) -> Result<Option<BTreeMap<String, RunOutput>>> {
        let ws = self.workspace(&target.key, &target.resource);
        let _held = self.lock(&ws.dir).await;
        ws.outputs(None).await
    }

    async fn destroy(&self, target: &RunTarget) -> Result<()> {
        let ws = self.workspace(&target.key, &target.resource);
        let _held = self.lock(&ws.dir).await;
        ws.destroy(target.revision).await
    }

    async fn drift(
        &self,
        target: &RunTarget,
        artifacts: &[Artifact],
        secrets: &RunSecrets,
    ) -> Result<Vec<String>> {
        let mut ws = self.workspace(&target.key, &target.resource);
        ws.env = workspace::secret_env(artifacts, secrets);
        let _held = self.lock(&ws.dir).await;
        ws.drift().await
    }

    async fn logs(
        &self,
        key: &DeploymentKey,
        revision: u64,
        resources: &[String],
    ) -> Result<Vec<RunLog>> {
        let mut logs = Vec::new();
        for resource in resources {
            let path = self.workspace(key, resource).log_path(revision);
            match tokio::fs::read_to_string(&path).await {
                Ok(text) => logs.push(RunLog {
                    resource: resource.clone(),
                    text,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::internal(format!("reading {}: {e}", path.display()))),
            }
        }
        Ok(logs)
    }
}
