//! [`Backend`] in-process: every operation is one call of the one
//! `nestor_core::Nestor`, built on first use over the configured store
//! (see `super::lazy`), so a command opens the store once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use nestor_client::EngineStatus;
use nestor_core::{
    AuditPage, AuditQuery, Composition, Deployment, DeploymentFilter, DeploymentRequest,
    DriftReport, ErrorCode, Event, EventType, GraphView, ListFilter, Nestor, Page, PageRequest,
    Plan, PolicyCheck, PolicySubject, PublishOutcome, PublishedComposition, PublishedVersion,
    RenderedResource, ResourceDefinition, RunLog, SearchHit, Shared, SourceConfig, SyncReport,
    Team, VersionSpec, VersionSummary,
};
use semver::Version;
use serde_json::Value;

use super::backend::{refusal, Backend, Refusal};
use super::lazy::LazyNestor;
use crate::config::Config;

/// The events' source of what the CLI writes.
const ACTOR: &str = "cli";

/// In-process, over the local store.
pub(super) struct Embedded {
    nestor: LazyNestor,
    config: Config,
    data_dir: PathBuf,
}

impl Embedded {
    /// Nothing is opened until a command asks.
    pub(super) fn new(config: Config, data_dir: PathBuf) -> Embedded {
        Embedded {
            nestor: LazyNestor::new(config.clone(), data_dir.clone()),
            config,
            data_dir,
        }
    }

    async fn nestor(&self) -> anyhow::Result<&Nestor> {
        self.nestor.get().await
    }
}

#[async_trait]
impl Backend for Embedded {
    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> anyhow::Result<Page<Shared<PublishedVersion>>> {
        Ok(self.nestor().await?.list(filter, page).await?)
    }

    async fn resolve(
        &self,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<Shared<PublishedVersion>> {
        Ok(self.nestor().await?.get(name, spec).await?)
    }

    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionSummary>> {
        match self.nestor().await?.versions(name).await {
            Err(e) if e.code() == ErrorCode::ResourceNotFound => Ok(vec![]),
            other => Ok(other?),
        }
    }

    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<SearchHit>> {
        Ok(self.nestor().await?.search(query, filter, limit).await?)
    }

    async fn set_yanked(
        &self,
        name: &str,
        version: &Version,
        yanked: bool,
    ) -> anyhow::Result<bool> {
        let nestor = self.nestor().await?;
        Ok(nestor.set_yanked(name, version, yanked, ACTOR).await?)
    }

    async fn deployment(&self, id: &str) -> anyhow::Result<Deployment> {
        Ok(self.nestor().await?.deployment(id).await?)
    }

    async fn deployments(&self, filter: &DeploymentFilter) -> anyhow::Result<Vec<Deployment>> {
        Ok(self.nestor().await?.deployments(filter).await?)
    }

    async fn last_event(&self) -> anyhow::Result<u64> {
        Ok(self.nestor().await?.store().last_sequence().await?)
    }

    async fn events_after(&self, after: u64, wait: Duration) -> anyhow::Result<Vec<Event>> {
        let nestor = self.nestor().await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let events = nestor.events_after(after, 500).await?;
            if !events.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(events);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn publish(
        &self,
        definition: ResourceDefinition,
    ) -> anyhow::Result<Result<PublishOutcome, Refusal>> {
        let nestor = self.nestor().await?;
        refusal(nestor.publish(definition, ACTOR).await.map(|r| r.outcome))
    }

    async fn compositions(&self, team: Option<&str>) -> anyhow::Result<Vec<PublishedComposition>> {
        Ok(self.nestor().await?.compositions(team).await?)
    }

    async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<PublishedComposition> {
        Ok(self.nestor().await?.composition(team, name, spec).await?)
    }

    async fn publish_composition(
        &self,
        composition: Composition,
    ) -> anyhow::Result<Result<(PublishOutcome, Vec<Vec<String>>), Refusal>> {
        let nestor = self.nestor().await?;
        refusal(
            nestor
                .publish_composition(composition, None, ACTOR)
                .await
                .map(|p| (p.outcome, p.waves)),
        )
    }

    async fn check_composition(
        &self,
        composition: &Composition,
    ) -> anyhow::Result<Result<Vec<Vec<String>>, Refusal>> {
        refusal(self.nestor().await?.check_composition(composition).await)
    }

    async fn sync(
        &self,
        source: &str,
        branch: Option<String>,
        path: Option<String>,
    ) -> anyhow::Result<SyncReport> {
        let mut config = match self
            .config
            .catalog
            .sources
            .iter()
            .find(|s| s.name == source)
        {
            Some(s) => s.clone(),
            None => SourceConfig::new(super::catalog::source_name(source), source),
        };
        if let Some(b) = branch {
            config.branch = b;
        }
        if let Some(p) = path {
            config.path = p;
        }
        let opened = nestor_storage::open_source(config, &self.data_dir.join("sources"));
        Ok(self.nestor().await?.sync(opened.as_ref()).await?)
    }

    async fn plan(&self, request: &DeploymentRequest) -> anyhow::Result<Plan> {
        Ok(self.nestor().await?.plan(request).await?)
    }

    async fn apply(
        &self,
        request: &DeploymentRequest,
        _wait: bool,
        quiet: bool,
    ) -> anyhow::Result<Deployment> {
        let nestor = self.nestor().await?;
        let progress = follow(nestor.clone(), quiet);
        let outcome = nestor.apply(request, None).await;
        progress.abort();
        Ok(outcome?)
    }

    async fn rollback(&self, id: &str, to: Option<u64>) -> anyhow::Result<Deployment> {
        Ok(self.nestor().await?.rollback(id, to).await?)
    }

    async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<Deployment> {
        Ok(self.nestor().await?.promote(team, name, from, to).await?)
    }

    async fn graph(&self, team: &str, environment: Option<&str>) -> anyhow::Result<GraphView> {
        let filter = DeploymentFilter {
            team: Some(team.into()),
            environment: environment.map(str::to_string),
            ..Default::default()
        };
        Ok(self.nestor().await?.graph(&filter, |_| true).await?)
    }

    async fn engines(&self) -> anyhow::Result<Vec<EngineStatus>> {
        // The registry's own list: it names plugins that failed to load too.
        let list = self.nestor.engines()?.list();
        Ok(serde_json::from_value(serde_json::to_value(list)?)?)
    }

    async fn drift(&self, id: Option<&str>) -> anyhow::Result<Vec<DriftReport>> {
        Ok(self.nestor().await?.drift(id).await?)
    }

    async fn logs(&self, id: &str) -> anyhow::Result<Vec<RunLog>> {
        Ok(self.nestor().await?.logs(id).await?)
    }

    async fn audit(&self, query: &AuditQuery) -> anyhow::Result<AuditPage> {
        Ok(self.nestor().await?.audit(query).await?)
    }

    async fn render(
        &self,
        catalog_ref: &str,
        engine: Option<String>,
        config: BTreeMap<String, Value>,
        team: &str,
        environment: &str,
    ) -> anyhow::Result<RenderedResource> {
        let nestor = self.nestor().await?;
        Ok(nestor
            .render(catalog_ref, engine, config, team, environment)
            .await?)
    }

    async fn evaluate_policies(&self, subject: PolicySubject) -> anyhow::Result<PolicyCheck> {
        Ok(self.nestor().await?.evaluate_policies(subject).await?)
    }

    async fn teams(&self) -> anyhow::Result<Vec<Team>> {
        Ok(self.nestor().await?.teams().await?)
    }

    async fn team(&self, name: &str) -> anyhow::Result<Team> {
        Ok(self.nestor().await?.team(name).await?)
    }
}

/// Prints each resource's status changes from the event log while an
/// apply runs: one line per change (the log is the same stream SSE serves).
fn follow(nestor: Nestor, quiet: bool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let Ok(mut after) = nestor.store().last_sequence().await else {
            return;
        };
        let mut seen = BTreeMap::new();
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Ok(events) = nestor.events_after(after, 100).await else {
                return;
            };
            for e in events {
                after = e.id;
                if matches!(
                    e.event_type,
                    EventType::DeploymentUpdated | EventType::DeploymentStarted
                ) {
                    super::deploy::print_progress(&e.data, &mut seen);
                }
            }
        }
    })
}
