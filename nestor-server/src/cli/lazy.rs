//! The embedded CLI's wiring, built once and only when a command needs it:
//! the store is opened on first use and shared by every service, the
//! engines are loaded once, and the GitOps repository is opened (created
//! when missing) only when something is applied — so `catalog list` on a
//! fresh folder creates no GitOps repository.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use nestor_core::{ApplyReceipt, ApplyTarget, Artifact, Executor, Nestor, Store};
use nestor_engines::{EngineRegistry, HostConfig};
use nestor_storage::{GitOpsConfig, GitOpsExecutor, MemoryStore};
use tokio::sync::OnceCell;

use crate::config::{Config, StorageKind};

/// One `Nestor` over the configured store, built on first use.
pub(super) struct LazyNestor {
    config: Config,
    data_dir: PathBuf,
    nestor: OnceCell<Nestor>,
    engines: std::sync::OnceLock<Arc<EngineRegistry>>,
}

impl LazyNestor {
    /// Nothing is opened yet.
    pub(super) fn new(config: Config, data_dir: PathBuf) -> LazyNestor {
        LazyNestor {
            config,
            data_dir,
            nestor: OnceCell::new(),
            engines: std::sync::OnceLock::new(),
        }
    }

    /// The facade: the store, the engines, the GitOps executor (opened on
    /// first apply), the Argo CD observer and the direct (Terraform)
    /// executor when configured, the lease and wave settings.
    pub(super) async fn get(&self) -> anyhow::Result<&Nestor> {
        self.nestor.get_or_try_init(|| self.build()).await
    }

    /// The engine registry the facade uses (its `list` reports failed
    /// plugins too).
    pub(super) fn engines(&self) -> anyhow::Result<&Arc<EngineRegistry>> {
        if let Some(e) = self.engines.get() {
            return Ok(e);
        }
        let registry = engines(&self.config)?;
        Ok(self.engines.get_or_init(|| registry))
    }

    async fn build(&self) -> anyhow::Result<Nestor> {
        let (leases, wave_delay) = self.config.deployments.settings()?;
        let executor = Arc::new(LazyGitOps {
            config: gitops_config(&self.config),
            executor: OnceCell::new(),
        });
        let mut builder = Nestor::builder()
            .store(open_store(&self.config, &self.data_dir).await?)
            .engines(self.engines()?.clone())
            .executor(executor)
            .leases(leases)
            .wave_delay(wave_delay);
        if let Some(argo) = &self.config.argocd {
            builder = builder.observer(argo.observer()?);
        }
        if let Some(direct) = self.config.executors.direct(&self.data_dir)? {
            builder = builder.direct_executor(direct);
        }
        Ok(self.config.with_governance(builder)?.build()?)
    }
}

/// A `Nestor` that judges documents by themselves (`nestor catalog
/// validate` on files): the configured engines over an empty memory
/// store, which an offline check does not read, and a GitOps executor that
/// is never opened (nothing is applied).
pub(super) fn offline(config: &Config) -> anyhow::Result<Nestor> {
    let executor = Arc::new(LazyGitOps {
        config: gitops_config(config),
        executor: OnceCell::new(),
    });
    Ok(Nestor::builder()
        .store(Arc::new(MemoryStore::new()))
        .engines(engines(config)?)
        .executor(executor)
        .audit(Arc::new(nestor_core::NoAudit))
        .build()?)
}

/// The GitOps executor, opened on its first use.
struct LazyGitOps {
    config: GitOpsConfig,
    executor: OnceCell<GitOpsExecutor>,
}

impl LazyGitOps {
    async fn get(&self) -> nestor_core::Result<&GitOpsExecutor> {
        self.executor
            .get_or_try_init(|| async { GitOpsExecutor::open(self.config.clone()) })
            .await
    }
}

#[async_trait]
impl Executor for LazyGitOps {
    async fn apply(
        &self,
        target: &ApplyTarget,
        files: &std::collections::BTreeMap<String, Vec<Artifact>>,
    ) -> nestor_core::Result<ApplyReceipt> {
        self.get().await?.apply(target, files).await
    }

    async fn contains(&self, revision: &str, commit: &str) -> nestor_core::Result<bool> {
        self.get().await?.contains(revision, commit).await
    }
}

/// Opens the configured store.
pub(super) async fn open_store(config: &Config, data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    match config.storage.kind {
        StorageKind::Memory => Ok(Arc::new(MemoryStore::new())),
        StorageKind::Sqlite => {
            let path = config.sqlite_path(data_dir);
            let store = nestor_storage::SqliteStore::open(&path)
                .with_context(|| format!("opening the store at {}", path.display()))?;
            Ok(Arc::new(store))
        }
        StorageKind::Dynamodb => Ok(Arc::new(dynamodb(config).await?)),
    }
}

/// The DynamoDB store of `storage.dynamodb` (tables made by `nestor migrate`).
pub(super) async fn dynamodb(config: &Config) -> anyhow::Result<nestor_storage::DynamoStore> {
    let d = &config.storage.dynamodb;
    let config = nestor_storage::DynamoConfig {
        table_prefix: d.table_prefix.clone(),
        region: d.region.clone(),
        endpoint_url: d.endpoint_url.clone(),
    };
    Ok(nestor_storage::DynamoStore::connect(config).await?)
}

/// The bundled engines plus `engines.plugins_dir`, with the configured limits.
pub(super) fn engines(config: &Config) -> anyhow::Result<Arc<EngineRegistry>> {
    let e = &config.engines;
    let host = HostConfig {
        timeout: std::time::Duration::from_millis(e.timeout_ms),
        memory_limit: (e.memory_limit_mb as usize) << 20,
        ..HostConfig::default()
    };
    let dir = e.plugins_dir.is_dir().then_some(e.plugins_dir.as_path());
    Ok(Arc::new(EngineRegistry::with_plugins_dir(host, dir)?))
}

/// The GitOps settings of `gitops:` (and the Argo CD namespace).
pub(super) fn gitops_config(config: &Config) -> GitOpsConfig {
    let g = &config.gitops;
    GitOpsConfig {
        repo: g.repo.clone(),
        branch: g.branch.clone(),
        remote: g.remote.clone(),
        author_name: g.author_name.clone(),
        author_email: g.author_email.clone(),
        argocd_namespace: config
            .argocd
            .as_ref()
            .map_or_else(|| "argocd".into(), |a| a.namespace.clone()),
    }
}
