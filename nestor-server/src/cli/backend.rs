//! The CLI's one way to the data: [`Backend`], implemented in-process by
//! one lazily built `nestor_core::Nestor` (`super::embedded`) and over HTTP
//! against `nestor serve` through `nestor-client` (`super::remote`). Every
//! command that reads or writes the catalog or the deployments goes
//! through it; none asks which one it has. Commands that use it print the
//! same output either way, because both hand back the same core types and
//! the same [`nestor_core::Error`] (a server's error body decodes into the
//! error a local call returns), and the printing is shared.

use std::time::Duration;

use async_trait::async_trait;
use nestor_client::EngineStatus;
use nestor_core::{
    AuditPage, AuditQuery, Composition, Deployment, DeploymentFilter, DeploymentRequest,
    DocumentCheck, DriftReport, ErrorCode, Event, FieldError, GraphView, ListFilter, Page,
    PageRequest, Plan, PolicyCheck, PolicySubject, PublishOutcome, PublishedComposition,
    PublishedVersion, RenderResourceRequest, RenderedResource, ResourceDefinition, RunLog,
    SearchHit, Shared, SyncReport, Team, VersionSpec, VersionSummary,
};
use semver::Version;
use serde_json::Value;

/// Every operation a command needs, once for both ways of running.
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
    /// Every check of a composition against the catalog, nothing written:
    /// the verdict a publish would give (its waves, or its error's code and
    /// field errors).
    async fn check_composition(&self, composition: &Composition) -> anyhow::Result<DocumentCheck>;
    /// Syncs a catalog source (`--branch`/`--path` override its settings
    /// where the source is configured by the caller).
    async fn sync(
        &self,
        source: &str,
        branch: Option<String>,
        path: Option<String>,
    ) -> anyhow::Result<SyncReport>;
    /// Everything an apply of `request` would do, nothing done.
    async fn plan(&self, request: &DeploymentRequest) -> anyhow::Result<Plan>;
    /// Applies `request`. With `wait` (always, in-process) it answers the
    /// finished deployment, printing each resource's status changes to
    /// stderr unless `quiet`; without, as soon as its revision is recorded.
    async fn apply(
        &self,
        request: &DeploymentRequest,
        wait: bool,
        quiet: bool,
    ) -> anyhow::Result<Deployment>;
    /// A new revision with revision `to`'s content (default: the one before).
    async fn rollback(&self, id: &str, to: Option<u64>) -> anyhow::Result<Deployment>;
    /// Deploys to `to` what last succeeded in `from`.
    async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> anyhow::Result<Deployment>;
    /// The dependency graph of a team's deployments.
    async fn graph(&self, team: &str, environment: Option<&str>) -> anyhow::Result<GraphView>;
    /// The loaded engines.
    async fn engines(&self) -> anyhow::Result<Vec<EngineStatus>>;
    /// Checks one deployment (`None`: every succeeded one) for drift now.
    async fn drift(&self, id: Option<&str>) -> anyhow::Result<Vec<DriftReport>>;
    /// The logs of a deployment's Terraform runs.
    async fn logs(&self, id: &str) -> anyhow::Result<Vec<RunLog>>;
    /// One page of the audit trail, newest first.
    async fn audit(&self, query: &AuditQuery) -> anyhow::Result<AuditPage>;
    /// What one resource renders to, as a resource of `team` in `environment`.
    /// What one resource renders to, as a resource of the request's team
    /// in its environment.
    async fn render(&self, request: &RenderResourceRequest) -> anyhow::Result<RenderedResource>;
    /// What the policies in force say about a subject; nothing written.
    async fn evaluate_policies(&self, subject: PolicySubject) -> anyhow::Result<PolicyCheck>;
    /// Every team the caller may see.
    async fn teams(&self) -> anyhow::Result<Vec<Team>>;
    /// One team.
    async fn team(&self, name: &str) -> anyhow::Result<Team>;
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
pub(super) fn refusal<T>(result: nestor_core::Result<T>) -> anyhow::Result<Result<T, Refusal>> {
    match result {
        Ok(t) => Ok(Ok(t)),
        Err(e) if e.code().aborts_batch() => Err(e.into()),
        Err(e) => Ok(Err((&e).into())),
    }
}

/// Whether `catalog sync`'s argument is a source's name rather than a URL
/// or a folder: a server syncs only the sources it is configured with, and
/// embedded an unknown name that is no folder either is refused the same way.
pub(super) fn is_source_name(source: &str) -> bool {
    !(source.contains(['/', ':', '\\']) || source.starts_with('.'))
}

impl Refusal {
    /// The error body `{code, message, details}`.
    pub(super) fn to_json(&self) -> Value {
        serde_json::json!({"code": self.code, "message": self.message, "details": self.details})
    }
}
