//! [`Backend`] in-process: every operation is one call of the one
//! `nestor_core::Nestor`, built on first use over the configured store
//! (see `super::lazy`), so a command opens the store once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use nestor_client::EngineStatus;
use nestor_core::{
    AuditPage, AuditQuery, CheckScope, Composition, Deployment, DeploymentFilter,
    DeploymentRequest, Document, DocumentCheck, DriftReport, Error, ErrorCode, Event, GraphView,
    ListFilter, Nestor, Page, PageRequest, Plan, PolicyCheck, PolicySubject, PublishOutcome,
    PublishedComposition, PublishedVersion, RenderResourceRequest, RenderedResource,
    ResourceDefinition, RunLog, SearchHit, Shared, SourceConfig, SyncReport, Team, VersionSpec,
    VersionSummary,
};
use semver::Version;

use super::backend::{is_source_name, refusal, Backend, Refusal};
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

    async fn check_composition(&self, composition: &Composition) -> anyhow::Result<DocumentCheck> {
        let document = Document::Composition(Box::new(composition.clone()));
        let nestor = self.nestor().await?;
        let mut checked = nestor
            .check_documents(vec![(0, document)], CheckScope::Catalog)
            .await?;
        Ok(checked.remove(0))
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
            None if is_source_name(source) && !std::path::Path::new(source).exists() => {
                // A name, not a folder here: unknown, as a server says.
                let known: Vec<&str> = self
                    .config
                    .catalog
                    .sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                return Err(Error::no_source(source, &known).into());
            }
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
        if quiet {
            return Ok(nestor.apply(request, None).await?);
        }
        let after = nestor.store().last_sequence().await?;
        let (done, finished) = tokio::sync::oneshot::channel();
        let progress = follow(nestor.clone(), request.clone(), after, finished);
        let outcome = nestor.apply(request, None).await;
        let _ = done.send(());
        let _ = progress.await;
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

    async fn render(&self, request: &RenderResourceRequest) -> anyhow::Result<RenderedResource> {
        Ok(self.nestor().await?.render(request).await?)
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
/// apply of `request` runs, from event `after` on: one line per change,
/// from the events a remote apply follows too (the log is the stream SSE
/// serves). Once `finished` fires it prints what is left and ends, so
/// every change is printed whatever the timing.
fn follow(
    nestor: Nestor,
    request: DeploymentRequest,
    mut after: u64,
    mut finished: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = BTreeMap::new();
        loop {
            let over = tokio::time::timeout(Duration::from_millis(100), &mut finished)
                .await
                .is_ok();
            loop {
                let Ok(events) = nestor.events_after(after, 100).await else {
                    return;
                };
                let Some(last) = events.last() else { break };
                after = last.id;
                for e in events
                    .iter()
                    .filter(|e| super::deploy::is_progress(e, &request))
                {
                    super::deploy::print_progress(&e.data, &mut seen);
                }
            }
            if over {
                return;
            }
        }
    })
}
