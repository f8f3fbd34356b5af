//! [`Backend`] over HTTP, against `nestor serve`, through `nestor-client`:
//! the wire shapes and the error decoding live there once; a server's
//! error arrives as the same [`nestor_core::Error`] a local call returns.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt as _, StreamExt as _};
use nestor_client::{EngineStatus, EventQuery};
use nestor_core::{
    AuditPage, AuditQuery, Composition, Deployment, DeploymentFilter, DeploymentRequest,
    DocumentCheck, DriftReport, Error, ErrorCode, Event, EventType, GraphView, ListFilter, Page,
    PageRequest, Plan, PolicyCheck, PolicySubject, PublishOutcome, PublishedComposition,
    PublishedVersion, RenderResourceRequest, RenderedResource, ResourceDefinition, RunLog,
    SearchHit, Shared, SyncReport, Team, VersionSpec, VersionSummary,
};
use semver::Version;

use super::backend::{is_source_name, refusal, Backend, Refusal};

/// Over HTTP, against `nestor serve`.
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
            return Err(Error::bad_request(
                "--all works only on the local store: the server lists one team's compositions at a time (--team)",
            )
            .into());
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

    async fn check_composition(&self, composition: &Composition) -> anyhow::Result<DocumentCheck> {
        // The server's one check of documents, as `POST /api/v1/validate`
        // answers it for any document.
        let body = serde_json::to_value(composition)?;
        let mut report = self.client.validate_json(&body).await?;
        if report.documents.len() != 1 {
            return Err(Error::internal(format!(
                "the server answered {} verdicts for one composition",
                report.documents.len()
            ))
            .into());
        }
        Ok(report.documents.remove(0))
    }

    async fn sync(
        &self,
        source: &str,
        branch: Option<String>,
        path: Option<String>,
    ) -> anyhow::Result<SyncReport> {
        if branch.is_some() || path.is_some() {
            return Err(Error::bad_request("--branch and --path apply to local syncs only: with --server the source's configuration on the server decides").into());
        }
        if !is_source_name(source) {
            return Err(Error::bad_request(format!("{source:?} is not a source name: with --server only sources configured on the server (catalog.sources in its nestor.yaml) can be synced; configure it there, or sync without --server")).into());
        }
        Ok(self.client.sync(source).await?)
    }

    async fn plan(&self, request: &DeploymentRequest) -> anyhow::Result<Plan> {
        Ok(self.client.plan(request).await?)
    }

    async fn apply(
        &self,
        request: &DeploymentRequest,
        wait: bool,
        quiet: bool,
    ) -> anyhow::Result<Deployment> {
        // The start carries an `Idempotency-Key`, so the client's retries
        // apply it once; the server answers once its revision is recorded.
        let after = self.last_event().await?;
        let started = self.client.apply(request).await?;
        if !wait {
            return Ok(started);
        }
        self.wait_for(request, &started.id, after, quiet).await
    }

    async fn rollback(&self, id: &str, to: Option<u64>) -> anyhow::Result<Deployment> {
        Ok(self.client.rollback(id, to).await?)
    }

    async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<Deployment> {
        Ok(self.client.promote(team, name, from, to).await?)
    }

    async fn graph(&self, team: &str, environment: Option<&str>) -> anyhow::Result<GraphView> {
        Ok(self.client.graph(Some(team), environment).await?)
    }

    async fn engines(&self) -> anyhow::Result<Vec<EngineStatus>> {
        Ok(self.client.engines().await?)
    }

    async fn drift(&self, id: Option<&str>) -> anyhow::Result<Vec<DriftReport>> {
        let Some(id) = id else {
            return Err(Error::bad_request(
                "with --server, drift checks one deployment at a time: pass its ID",
            )
            .into());
        };
        Ok(self.client.drift(id).await?.into_iter().collect())
    }

    async fn logs(&self, id: &str) -> anyhow::Result<Vec<RunLog>> {
        Ok(self.client.logs(id).await?)
    }

    async fn audit(&self, query: &AuditQuery) -> anyhow::Result<AuditPage> {
        Ok(self.client.audit(query).await?)
    }

    async fn render(&self, request: &RenderResourceRequest) -> anyhow::Result<RenderedResource> {
        Ok(self.client.render(request).await?)
    }

    async fn evaluate_policies(&self, subject: PolicySubject) -> anyhow::Result<PolicyCheck> {
        match subject {
            PolicySubject::Deployment(request) => Ok(self.client.validate(&request).await?),
            // The server judges deployments only.
            PolicySubject::Definition(_) | PolicySubject::Composition(_) => {
                Err(local_only("policy check of definitions and compositions"))
            }
        }
    }

    async fn teams(&self) -> anyhow::Result<Vec<Team>> {
        Ok(self.client.teams().await?)
    }

    async fn team(&self, name: &str) -> anyhow::Result<Team> {
        Ok(self.client.team(name).await?)
    }
}

/// An operation the HTTP API does not offer yet: a usage error naming it.
fn local_only(command: &str) -> anyhow::Error {
    Error::bad_request(format!(
        "`nestor {command}` works only on the local store (the server has no route for it yet): run it without --server"
    ))
    .into()
}

/// How long `apply --wait` follows one deployment on a server.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

impl Remote {
    /// Follows deployment `id` on the server from event `after` until it
    /// is over (bounded by [`WAIT_LIMIT`]), printing resource status
    /// changes like an embedded apply, and answers it as finally recorded.
    async fn wait_for(
        &self,
        request: &DeploymentRequest,
        id: &str,
        mut after: u64,
        quiet: bool,
    ) -> anyhow::Result<Deployment> {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        let mut seen = BTreeMap::new();
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                anyhow::bail!(
                    "deployment {id} did not finish within {} s; it goes on on the server: follow it with `nestor status {id}`",
                    WAIT_LIMIT.as_secs()
                );
            }
            let slice = (deadline - now).min(Duration::from_secs(2));
            let events = self.events_after(after, slice).await?;
            let mut over = false;
            let mut about_it = false;
            for e in &events {
                after = after.max(e.id);
                if e.data["id"].as_str() != Some(id) {
                    continue;
                }
                about_it = true;
                over |= matches!(
                    e.event_type,
                    EventType::DeploymentCompleted | EventType::DeploymentFailed
                );
                if !quiet && super::deploy::is_progress(e, request) {
                    super::deploy::print_progress(&e.data, &mut seen);
                }
            }
            if over {
                return self.deployment(id).await;
            }
            // Nothing about it in this slice: events can be missed (a
            // resync), so the record decides.
            if !about_it {
                let d = self.deployment(id).await?;
                if d.status.is_final() {
                    return Ok(d);
                }
            }
        }
    }
}
