//! The CLI's one way to the data: [`Backend`], implemented in-process on
//! the local store ([`Embedded`]) and over HTTP against `nestor serve`
//! through `nestor-client` ([`Remote`]). Commands that use it print the
//! same output either way, because both hand back the same core types and
//! the same [`nestor_core::Error`] (a server's error body decodes into the
//! error a local call returns), and the printing is shared.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt as _, StreamExt as _};
use nestor_client::EventQuery;
use nestor_core::{
    CatalogService, Composer, Composition, Deployment, DeploymentFilter, DeploymentRequest,
    ErrorCode, Event, FieldError, ListFilter, Page, PageRequest, Plan, PublishOutcome,
    PublishedComposition, PublishedVersion, ResourceDefinition, SearchHit, Shared, Store,
    VersionSpec, VersionSummary,
};
use semver::Version;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What the remote-capable commands need.
#[async_trait]
pub(super) trait Backend: Send + Sync {
    /// The latest version of each name, one page.
    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> anyhow::Result<Page<Shared<PublishedVersion>>>;
    /// A version spec of a name.
    async fn resolve(
        &self,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<Shared<PublishedVersion>>;
    /// Every version of a name, newest first (empty when unknown).
    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionSummary>>;
    /// Ranked matches.
    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<SearchHit>>;
    /// Yanks or restores; whether anything changed.
    async fn set_yanked(&self, name: &str, version: &Version, yanked: bool)
        -> anyhow::Result<bool>;
    /// One deployment.
    async fn deployment(&self, id: &str) -> anyhow::Result<Deployment>;
    /// Deployments passing a filter, newest first.
    async fn deployments(&self, filter: &DeploymentFilter) -> anyhow::Result<Vec<Deployment>>;
    /// The greatest event sequence so far.
    async fn last_event(&self) -> anyhow::Result<u64>;
    /// Events after `after`, oldest first, waiting up to `wait` for some.
    async fn events_after(&self, after: u64, wait: Duration) -> anyhow::Result<Vec<Event>>;
    /// Publishes one definition: `Ok(Ok(outcome))`, `Ok(Err(refusal))` for
    /// an error about this definition, `Err` when the catalog itself failed
    /// (storage, internal, unreachable, not allowed).
    async fn publish(
        &self,
        definition: ResourceDefinition,
    ) -> anyhow::Result<Result<PublishOutcome, Refusal>>;
    /// The newest version of each composition of a team (`None`: every team).
    async fn compositions(&self, team: Option<&str>) -> anyhow::Result<Vec<PublishedComposition>>;
    /// A version spec of a team's composition.
    async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<PublishedComposition>;
    /// Publishes a composition under its `metadata.team`: the outcome and
    /// its waves, or why it was refused (like [`Backend::publish`]).
    async fn publish_composition(
        &self,
        composition: Composition,
    ) -> anyhow::Result<Result<(PublishOutcome, Vec<Vec<String>>), Refusal>>;
}

/// Why one definition was not published: its error body.
#[derive(Debug, Clone)]
pub(super) struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub details: Value,
    /// The field errors it carries (the message alone when none).
    pub field_errors: Vec<FieldError>,
}

impl From<&nestor_core::Error> for Refusal {
    fn from(e: &nestor_core::Error) -> Refusal {
        Refusal {
            code: e.code(),
            message: e.to_string(),
            details: e.details(),
            field_errors: e.field_errors(),
        }
    }
}

/// The one rule of both backends: an error about the item sent is its
/// refusal (`Ok(Err(refusal))`), reported in its line while the command
/// goes on; one about the service or the caller
/// ([`ErrorCode::aborts_batch`]) stops the command.
fn refusal<T>(result: nestor_core::Result<T>) -> anyhow::Result<Result<T, Refusal>> {
    match result {
        Ok(t) => Ok(Ok(t)),
        Err(e) if e.code().aborts_batch() => Err(e.into()),
        Err(e) => Ok(Err((&e).into())),
    }
}

impl Refusal {
    /// The error body `{code, message, details}`.
    pub(super) fn to_json(&self) -> Value {
        serde_json::json!({"code": self.code, "message": self.message, "details": self.details})
    }
}

/// In-process, on the local store.
pub(super) struct Embedded {
    pub store: Arc<dyn Store>,
    pub catalog: CatalogService,
    pub composer: Composer,
}

#[async_trait]
impl Backend for Embedded {
    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> anyhow::Result<Page<Shared<PublishedVersion>>> {
        Ok(self.store.list_latest(filter, page).await?)
    }

    async fn resolve(
        &self,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<Shared<PublishedVersion>> {
        Ok(self.store.resolve(name, spec).await?)
    }

    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionSummary>> {
        Ok(self.store.versions(name).await?)
    }

    async fn search(
        &self,
        query: &str,
        filter: &ListFilter,
        limit: usize,
    ) -> anyhow::Result<Vec<SearchHit>> {
        Ok(self.store.search(query, filter, limit).await?)
    }

    async fn set_yanked(
        &self,
        name: &str,
        version: &Version,
        yanked: bool,
    ) -> anyhow::Result<bool> {
        Ok(self
            .catalog
            .set_yanked(name, version, yanked, "cli")
            .await?)
    }

    async fn deployment(&self, id: &str) -> anyhow::Result<Deployment> {
        Ok(self
            .store
            .get_deployment(id)
            .await?
            .ok_or_else(|| nestor_core::Error::DeploymentNotFound { id: id.into() })?)
    }

    async fn deployments(&self, filter: &DeploymentFilter) -> anyhow::Result<Vec<Deployment>> {
        Ok(self.store.list_deployments(filter).await?)
    }

    async fn last_event(&self) -> anyhow::Result<u64> {
        Ok(self.store.last_sequence().await?)
    }

    async fn events_after(&self, after: u64, wait: Duration) -> anyhow::Result<Vec<Event>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let events = self.store.read_after(after, 500).await?;
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
        refusal(
            self.catalog
                .publish(definition, None, "cli")
                .await
                .map(|r| r.outcome),
        )
    }

    async fn compositions(&self, team: Option<&str>) -> anyhow::Result<Vec<PublishedComposition>> {
        Ok(self.store.list_compositions(team).await?)
    }

    async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<PublishedComposition> {
        Ok(self.composer.get(team, name, spec).await?)
    }

    async fn publish_composition(
        &self,
        composition: Composition,
    ) -> anyhow::Result<Result<(PublishOutcome, Vec<Vec<String>>), Refusal>> {
        refusal(
            self.composer
                .publish(composition, None, "cli")
                .await
                .map(|p| (p.outcome, p.waves)),
        )
    }
}

/// Over HTTP, against `nestor serve`, through `nestor-client`: the wire
/// shapes and the error decoding live there once; a server's error arrives
/// as the same [`nestor_core::Error`] a local call returns.
pub(super) struct Remote {
    client: nestor_client::Client,
}

impl Remote {
    pub(super) fn new(base: &str, token: Option<String>) -> anyhow::Result<Remote> {
        let mut builder = nestor_client::Client::builder(base).timeout(Duration::from_secs(60));
        if let Some(token) = token {
            builder = builder.token(token);
        }
        Ok(Remote {
            client: builder.build()?,
        })
    }

    /// Syncs a source configured on the server and answers its report.
    pub(super) async fn sync(&self, source: &str) -> anyhow::Result<nestor_core::SyncReport> {
        Ok(self.client.sync(source).await?)
    }

    /// Plans a deployment request on the server.
    pub(super) async fn plan(&self, request: &DeploymentRequest) -> anyhow::Result<Plan> {
        Ok(self.client.plan(request).await?)
    }

    /// Starts a deployment: the server answers as soon as its revision is
    /// recorded (the apply goes on there). It carries an `Idempotency-Key`,
    /// so the client's retries apply it once.
    pub(super) async fn start_deployment(
        &self,
        request: &DeploymentRequest,
    ) -> anyhow::Result<Deployment> {
        Ok(self.client.apply(request).await?)
    }

    /// Rolls a deployment back (the server answers when it is done).
    pub(super) async fn rollback(&self, id: &str, to: Option<u64>) -> anyhow::Result<Deployment> {
        Ok(self.client.rollback(id, to).await?)
    }

    /// Deploys to `to` what last succeeded in `from` (answers when done).
    pub(super) async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<Deployment> {
        Ok(self.client.promote(team, name, from, to).await?)
    }

    /// The dependency graph of a team's deployments.
    pub(super) async fn graph(
        &self,
        team: &str,
        environment: Option<&str>,
    ) -> anyhow::Result<nestor_core::GraphView> {
        Ok(self.client.graph(Some(team), environment).await?)
    }

    /// The server's engines, as the caller's line type (the same fields as
    /// [`nestor_client::EngineStatus`]).
    pub(super) async fn engines<T: DeserializeOwned>(&self) -> anyhow::Result<Vec<T>> {
        let engines = self.client.engines().await?;
        Ok(serde_json::from_value(serde_json::to_value(engines)?)?)
    }
}

#[async_trait]
impl Backend for Remote {
    async fn list_latest(
        &self,
        filter: &ListFilter,
        page: &PageRequest,
    ) -> anyhow::Result<Page<Shared<PublishedVersion>>> {
        let page = self.client.list_latest(filter, page).await?;
        Ok(Page {
            items: page.items.into_iter().map(Shared::new).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn resolve(
        &self,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<Shared<PublishedVersion>> {
        Ok(Shared::new(self.client.resolve(name, spec).await?))
    }

    async fn versions(&self, name: &str) -> anyhow::Result<Vec<VersionSummary>> {
        match self.client.versions(name).await {
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
        Ok(self.client.search(query, filter, limit).await?)
    }

    async fn set_yanked(
        &self,
        name: &str,
        version: &Version,
        yanked: bool,
    ) -> anyhow::Result<bool> {
        let outcome = if yanked {
            self.client.yank(name, version).await?
        } else {
            self.client.unyank(name, version).await?
        };
        Ok(outcome.changed)
    }

    async fn deployment(&self, id: &str) -> anyhow::Result<Deployment> {
        Ok(self.client.deployment(id).await?)
    }

    async fn deployments(&self, filter: &DeploymentFilter) -> anyhow::Result<Vec<Deployment>> {
        Ok(self.client.deployments(filter).await?)
    }

    async fn last_event(&self) -> anyhow::Result<u64> {
        Ok(self.client.last_event().await?)
    }

    async fn events_after(&self, after: u64, wait: Duration) -> anyhow::Result<Vec<Event>> {
        // One connection: what the server replays after `after`, and what
        // arrives within `wait`. The stream drops repeats and reconnects
        // once after a drop; a server that stays away is an error.
        let query = EventQuery::new().since(after).reconnect_limit(1);
        let mut stream = self.client.events(query).await?;
        let mut events = Vec::new();
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(Some(event)) => events.push(event?),
            Ok(None) | Err(_) => return Ok(events),
        }
        // Whatever else has already arrived, without waiting.
        while let Some(Some(event)) = stream.next().now_or_never() {
            events.push(event?);
        }
        Ok(events)
    }

    async fn publish(
        &self,
        definition: ResourceDefinition,
    ) -> anyhow::Result<Result<PublishOutcome, Refusal>> {
        refusal(self.client.publish(&definition).await.map(|r| r.outcome))
    }

    async fn compositions(&self, team: Option<&str>) -> anyhow::Result<Vec<PublishedComposition>> {
        let Some(team) = team else {
            anyhow::bail!("--all works only on the local store: the server lists one team's compositions at a time (--team)");
        };
        Ok(self.client.compositions(team).await?)
    }

    async fn composition(
        &self,
        team: &str,
        name: &str,
        spec: &VersionSpec,
    ) -> anyhow::Result<PublishedComposition> {
        Ok(self.client.composition(team, name, spec).await?)
    }

    async fn publish_composition(
        &self,
        composition: Composition,
    ) -> anyhow::Result<Result<(PublishOutcome, Vec<Vec<String>>), Refusal>> {
        refusal(
            self.client
                .publish_composition(&composition)
                .await
                .map(|p| (p.outcome, p.waves)),
        )
    }
}
