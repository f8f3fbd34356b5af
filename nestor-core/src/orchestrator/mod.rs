//! The orchestrator (SPEC §5): resolve → render templates → validate inputs
//! → graph and waves → render each wave through the engines in parallel →
//! hand the artifacts to the executor → record outputs and statuses.
//!
//! A plan is the same walk without the executor and without writes. Every
//! state change of a deployment is a conditional write (the store's
//! generation counter), so a cancel racing a running apply is never lost,
//! and every change appends an event.

mod lease;
mod observe;
mod plan;
mod resolve;
mod single;
mod view;
mod wiring;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

pub use lease::{LeaseScan, LeaseSettings};
pub use plan::{diff_artifacts, FileDiff, Plan, PlanDiff};
pub use resolve::{render_inputs, resolve_params, resolve_resources, PinnedResource, Resolved};
pub use single::RenderedResource;
pub use view::{deployment_graph, GraphEdge, GraphNode, GraphView};

use crate::catalog::{Clock, SystemClock};
use crate::engine::{Artifact, EngineProvider, RenderContext, RenderOutput, RenderRequest};
use crate::error::{Error, FieldError, Result};
use crate::executor::{ApplyTarget, Executor};
use crate::model::*;
use crate::observer::Observer;
use crate::parse::check_resources;
use crate::store::{CreateOutcome, Store};
use crate::template::{ResourceOutputs, TemplateBudget, TemplateContext, TemplateLimits};
use crate::validate::is_valid_name;
use crate::versioning::{CatalogRef, VersionSpec};
use wiring::{stored_outputs, template_outputs, Producer};

/// What to deploy, after the request was understood: the resources with
/// their (template) configs, the parameters with defaults, the edges.
#[derive(Debug, Clone)]
struct Spec {
    key: DeploymentKey,
    composition: Option<String>,
    params: BTreeMap<String, serde_json::Value>,
    resources: Vec<CompositionResource>,
    edges: Vec<Edge>,
    labels: BTreeMap<String, String>,
    /// Field path prefix for errors about resources.
    base: &'static str,
}

/// A deployment recorded by [`Orchestrator::start`], to be finished by
/// [`Orchestrator::finish`].
pub struct Started {
    /// The recorded deployment (`pending`), or for an idempotent repeat the
    /// one the first request created.
    pub deployment: Deployment,
    /// What is left to do; `None` for an idempotent repeat.
    run: Option<Box<Run>>,
}

impl Started {
    /// Whether this call recorded a new revision (false: an idempotent
    /// repeat of an earlier request).
    pub fn is_new(&self) -> bool {
        self.run.is_some()
    }
}

/// The resolved request a started deployment still has to run, and the
/// lease under which it runs.
struct Run {
    spec: Spec,
    resolved: Resolved,
    content: RevisionContent,
    lease: Lease,
}

/// The outcome of rendering every wave (or, when resuming, of the waves
/// rendered before).
#[derive(Default)]
struct Rendered {
    outputs: BTreeMap<String, RenderOutput>,
    /// Resource → why it failed, was skipped or cancelled.
    problems: BTreeMap<String, (ResourceStatus, String)>,
    /// Wirings a consumer cannot resolve (also among `problems`): a plan
    /// or an apply refuses the whole request with these.
    wiring: Vec<FieldError>,
}

/// Why one resource did not render.
enum RenderFailure {
    /// Its inputs wire in outputs it cannot resolve.
    Wiring(Vec<FieldError>),
    /// Anything else.
    Other(Error),
}

/// What [`Orchestrator::record`] did.
enum Recorded {
    /// A new revision, with the lease to run it.
    New(Deployment, Lease),
    /// An idempotent repeat: the deployment the first request created.
    Existing(Deployment),
}

impl Rendered {
    /// Marks every resource of `names` not rendered (and not already
    /// failed or skipped) as cancelled.
    fn cancel_unrendered<'a>(&mut self, names: impl Iterator<Item = &'a String>) {
        for name in names.filter(|n| !self.outputs.contains_key(*n)) {
            self.problems
                .entry(name.clone())
                .or_insert((ResourceStatus::Cancelled, "deployment cancelled".into()));
        }
    }
}

/// Plans, applies, rolls back and promotes deployments.
///
/// Every revision is run under a lease in the store (claimed before the
/// revision is recorded, renewed by heartbeat, released at the end), so a
/// deployment whose runner stops can be resumed by another replica with
/// [`Orchestrator::resume`]; see the `lease` module.
#[derive(Clone)]
pub struct Orchestrator {
    store: Arc<dyn Store>,
    engines: Arc<dyn EngineProvider>,
    executor: Arc<dyn Executor>,
    clock: Arc<dyn Clock>,
    leases: LeaseSettings,
    wave_delay: Duration,
    /// Who tells how the cluster is doing after a commit (Argo CD); none
    /// by default, and deployments then say they are not observed.
    observer: Option<Arc<dyn Observer>>,
    /// What the templates of one plan or apply may cost together.
    template_limits: TemplateLimits,
}

impl Orchestrator {
    /// An orchestrator over a store, the engines and an executor.
    pub fn new(
        store: Arc<dyn Store>,
        engines: Arc<dyn EngineProvider>,
        executor: Arc<dyn Executor>,
    ) -> Self {
        Orchestrator {
            store,
            engines,
            executor,
            clock: Arc::new(SystemClock),
            leases: LeaseSettings::default(),
            wave_delay: Duration::ZERO,
            observer: None,
            template_limits: TemplateLimits::default(),
        }
    }

    /// Replaces the limits on what the templates of one plan or apply may
    /// cost together (fuel, rendered bytes, longest string).
    pub fn with_template_limits(mut self, limits: TemplateLimits) -> Self {
        self.template_limits = limits;
        self
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the lease settings (who this runner is, how long a lease lasts).
    pub fn with_leases(mut self, leases: LeaseSettings) -> Self {
        self.leases = leases;
        self
    }

    /// Pauses this long between two waves of a deployment (like Argo CD's
    /// sync-wave delay), giving what a wave created time to settle before
    /// its dependents render. Default: none.
    pub fn with_wave_delay(mut self, delay: Duration) -> Self {
        self.wave_delay = delay;
        self
    }

    /// The lease settings.
    pub fn lease_settings(&self) -> &LeaseSettings {
        &self.leases
    }

    /// One deployment by id.
    pub async fn get(&self, id: &str) -> Result<Deployment> {
        self.store
            .get_deployment(id)
            .await?
            .ok_or_else(|| Error::DeploymentNotFound { id: id.into() })
    }

    /// The request understood, with every name it will take outside Nestor
    /// checked (`naming::check_names`) before anything is resolved or rendered.
    async fn spec(&self, request: &DeploymentRequest) -> Result<Spec> {
        let spec = self.parse_spec(request).await?;
        check_spec_names(&spec)?;
        Ok(spec)
    }

    async fn parse_spec(&self, request: &DeploymentRequest) -> Result<Spec> {
        let mut errors = Vec::new();
        for (field, value) in [
            ("team", &request.team),
            ("environment", &request.environment),
            ("name", &request.name),
        ] {
            if !is_valid_name(value) {
                errors.push(FieldError::new(
                    field,
                    format!("{value:?} is not a valid {field} (lowercase letters, digits and '-')"),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation { errors });
        }
        let key = DeploymentKey {
            team: request.team.clone(),
            environment: request.environment.clone(),
            name: request.name.clone(),
        };
        match (&request.composition, request.resources.is_empty()) {
            (Some(_), false) => Err(Error::bad_request(
                "give either a composition with params, or resources, not both",
            )),
            (None, true) => Err(Error::bad_request(
                "nothing to deploy: give a composition or resources",
            )),
            (Some(name), true) => {
                let spec = VersionSpec::parse(request.composition_version.as_deref().unwrap_or(""))
                    .map_err(|e| Error::invalid("composition_version", e))?;
                let published = self
                    .store
                    .resolve_composition(&request.team, name, &spec)
                    .await?;
                let c = published.composition;
                let params = resolve_params(&c.spec.parameters, &request.params)?;
                Ok(Spec {
                    key,
                    composition: Some(c.subject()),
                    params,
                    resources: c.spec.resources,
                    edges: c.spec.dependencies,
                    labels: request.labels.clone(),
                    base: "spec.resources",
                })
            }
            (None, false) => {
                if !request.params.is_empty() {
                    return Err(Error::invalid(
                        "params",
                        "params need a composition; resources take literal config",
                    ));
                }
                let mut edges = Vec::new();
                for (i, text) in request.dependencies.iter().enumerate() {
                    match Edge::parse(text) {
                        Some(e) => edges.push(e),
                        None => errors.push(FieldError::new(
                            format!("dependencies[{i}]"),
                            format!("{text:?} is not an edge: write \"from -> to\""),
                        )),
                    }
                }
                errors.extend(check_resources(
                    &request.resources,
                    &BTreeSet::new(),
                    "resources",
                ));
                if !errors.is_empty() {
                    return Err(Error::Validation { errors });
                }
                Ok(Spec {
                    key,
                    composition: None,
                    params: BTreeMap::new(),
                    resources: request.resources.clone(),
                    edges,
                    labels: request.labels.clone(),
                    base: "resources",
                })
            }
        }
    }

    async fn resolve(&self, spec: &Spec) -> Result<Resolved> {
        let loaded = self.engines.engine_names();
        resolve_resources(
            self.store.as_ref(),
            &spec.resources,
            &spec.edges,
            spec.base,
            Some(&loaded),
        )
        .await
    }

    fn draft(&self, spec: &Spec, resolved: &Resolved, revision: u64) -> Deployment {
        let now = self.clock.now();
        let k = &spec.key;
        let resources = resolved
            .waves
            .iter()
            .flatten()
            .filter_map(|name| resolved.get(name))
            .map(|p| DeployedResource {
                name: p.resource.name.clone(),
                catalog_ref: p.definition.definition.subject(),
                engine: p.engine.clone(),
                status: ResourceStatus::Pending,
                outputs: BTreeMap::new(),
                artifacts: vec![],
                error: None,
                health: None,
            })
            .collect();
        Deployment {
            id: format!("{}.{}.{}.r{revision}", k.team, k.environment, k.name),
            team: k.team.clone(),
            environment: k.environment.clone(),
            name: k.name.clone(),
            revision,
            status: DeploymentStatus::Pending,
            created_at: now,
            updated_at: now,
            waves: resolved.waves.clone(),
            resources,
            error: None,
            composition: spec.composition.clone(),
            params: spec.params.clone(),
            labels: spec.labels.clone(),
            commit: None,
            rollback_of: None,
            unchanged: false,
            cluster: None,
            generation: 0,
        }
    }

    fn content(resolved: &Resolved) -> RevisionContent {
        RevisionContent {
            resources: resolved
                .resources
                .iter()
                .map(|p| ResolvedResource {
                    name: p.resource.name.clone(),
                    definition: p.definition.name().to_string(),
                    version: p.definition.version().clone(),
                    engine: p.engine.clone(),
                    config: p.resource.config.clone(),
                })
                .collect(),
            edges: resolved.edges.clone(),
            artifacts: BTreeMap::new(),
        }
    }

    async fn next_revision(&self, key: &DeploymentKey) -> Result<u64> {
        Ok(self
            .store
            .revisions(key)
            .await?
            .last()
            .map_or(1, |d| d.revision + 1))
    }

    /// The artifacts of the last succeeded revision of `key`, if any.
    async fn current(
        &self,
        key: &DeploymentKey,
    ) -> Result<(Option<u64>, BTreeMap<String, Vec<Artifact>>)> {
        let revisions = self.store.revisions(key).await?;
        match revisions
            .iter()
            .rev()
            .find(|d| d.status == DeploymentStatus::Succeeded)
        {
            Some(d) => {
                let content = self
                    .store
                    .revision_content(&d.id)
                    .await?
                    .unwrap_or_default();
                Ok((Some(d.revision), content.artifacts))
            }
            None => Ok((None, BTreeMap::new())),
        }
    }

    /// Everything but the executor: the rendered files and a diff against
    /// the current revision. Writes nothing.
    pub async fn plan(&self, request: &DeploymentRequest) -> Result<Plan> {
        let spec = self.spec(request).await?;
        let resolved = self.resolve(&spec).await?;
        let revision = self.next_revision(&spec.key).await?;
        let mut deployment = self.draft(&spec, &resolved, revision);
        let rendered = self
            .render_waves(&spec, &resolved, &mut deployment, None, Rendered::default())
            .await?;
        if !rendered.wiring.is_empty() {
            return Err(Error::Validation {
                errors: rendered.wiring,
            });
        }
        let artifacts = Self::artifacts_of(&rendered);
        for r in &mut deployment.resources {
            if let Some(out) = rendered.outputs.get(&r.name) {
                r.outputs = stored_outputs(out);
                r.artifacts = out.artifacts.iter().map(|a| a.path.clone()).collect();
            }
        }
        Self::finish_statuses(&mut deployment, &rendered, false);
        let (base, current) = self.current(&spec.key).await?;
        let diff = diff_artifacts(base, &current, &artifacts);
        Ok(Plan {
            deployment,
            artifacts,
            diff,
        })
    }

    fn artifacts_of(rendered: &Rendered) -> BTreeMap<String, Vec<Artifact>> {
        rendered
            .outputs
            .iter()
            .map(|(name, out)| (name.clone(), out.artifacts.clone()))
            .collect()
    }

    /// Applies a request: records revision n+1, renders wave by wave, commits
    /// through the executor, and returns the finished deployment. With an
    /// idempotency key, the same key and request return the deployment the
    /// first call created and apply nothing; another request is a conflict.
    pub async fn apply(
        &self,
        request: &DeploymentRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Deployment> {
        if request.dry_run {
            return Ok(self.plan(request).await?.deployment);
        }
        let started = self.start(request, idempotency_key).await?;
        self.finish(started).await
    }

    /// The first half of [`Orchestrator::apply`]: validates the request,
    /// records revision n+1 (`pending`) and appends `deployment.started`,
    /// so a server can answer with the recorded deployment at once and run
    /// [`Orchestrator::finish`] in the background. Every request error
    /// surfaces here, before anything is recorded.
    pub async fn start(
        &self,
        request: &DeploymentRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Started> {
        let spec = self.spec(request).await?;
        let resolved = self.resolve(&spec).await?;
        self.check_wiring(&spec, &resolved).await?;
        let request_hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(
                serde_json::to_vec(request).map_err(|e| Error::internal(e.to_string()))?,
            ))
        };
        let content = Self::content(&resolved);
        // Keys are the team's own: another team using the same key neither
        // sees nor blocks this one's deployment (issue 11).
        let scoped_key = idempotency_key.map(|k| format!("{}/{k}", request.team));
        let recorded = self
            .record(
                &spec.key,
                &content,
                scoped_key.as_deref().map(|k| (k, request_hash.as_str())),
                |revision| self.draft(&spec, &resolved, revision),
            )
            .await?;
        Ok(match recorded {
            Recorded::New(deployment, lease) => Started {
                deployment,
                run: Some(Box::new(Run {
                    spec,
                    resolved,
                    content,
                    lease,
                })),
            },
            Recorded::Existing(deployment) => Started {
                deployment,
                run: None,
            },
        })
    }

    /// Records revision n+1 of `key` (the deployment built by `draft(n)`)
    /// under a fresh lease and appends `deployment.started`. The lease is
    /// claimed before the revision is written, so no other replica can take
    /// a just-recorded revision for an abandoned one. Retries when another
    /// writer took revision n.
    async fn record(
        &self,
        key: &DeploymentKey,
        content: &RevisionContent,
        idempotency: Option<(&str, &str)>,
        draft: impl Fn(u64) -> Deployment,
    ) -> Result<Recorded> {
        let mut floor = 0;
        for attempt in 0..16u64 {
            let revision = self.next_revision(key).await?.max(floor);
            let d = draft(revision);
            let Some(lease) = self.claim(&d.id).await? else {
                // Someone is recording this very revision right now.
                floor = revision + 1;
                continue;
            };
            match self.store.create_deployment(&d, content, idempotency).await {
                Ok(CreateOutcome::Created) => {
                    self.emit(EventType::DeploymentStarted, &d).await?;
                    return Ok(Recorded::New(d, lease));
                }
                Ok(CreateOutcome::Existing(existing)) => {
                    self.store.release_lease(&lease).await?;
                    return Ok(Recorded::Existing(*existing));
                }
                // Another apply of the same deployment took this revision number.
                Err(Error::Conflict { .. })
                    if idempotency.is_none()
                        || self.store.get_deployment(&d.id).await?.is_some() =>
                {
                    self.store.release_lease(&lease).await?;
                    floor = revision + 1;
                    tokio::time::sleep(Duration::from_millis(attempt * 5)).await;
                }
                Err(e) => {
                    self.store.release_lease(&lease).await?;
                    return Err(e);
                }
            }
        }
        Err(Error::Conflict {
            message: format!("{key} is being applied concurrently; try again"),
        })
    }

    /// The second half of [`Orchestrator::apply`]: renders, commits and
    /// records a started deployment; an idempotent repeat returns the
    /// deployment it names as stored.
    pub async fn finish(&self, started: Started) -> Result<Deployment> {
        let Started {
            mut deployment,
            run,
        } = started;
        match run {
            Some(run) => {
                let Run {
                    spec,
                    resolved,
                    content,
                    lease,
                } = *run;
                let seed = Rendered::default();
                self.leased(
                    lease,
                    self.run(&spec, &resolved, &mut deployment, content, seed),
                )
                .await?;
                Ok(deployment)
            }
            None => self.get(&deployment.id).await,
        }
    }

    /// Renders, commits and records one revision that is already stored,
    /// starting from what `seed` says was rendered before (resuming).
    async fn run(
        &self,
        spec: &Spec,
        resolved: &Resolved,
        d: &mut Deployment,
        mut content: RevisionContent,
        seed: Rendered,
    ) -> Result<()> {
        if d.status == DeploymentStatus::Pending {
            d.status = DeploymentStatus::Planning;
            self.save(d).await?;
        }
        let rendered = self
            .render_waves(spec, resolved, d, Some(&mut content), seed)
            .await?;
        let artifacts = Self::artifacts_of(&rendered);
        if d.status == DeploymentStatus::Cancelled {
            Self::finish_statuses(d, &rendered, false);
            content.artifacts = artifacts;
            self.store.save_revision_content(&d.id, &content).await?;
            self.save(d).await?;
            return self.emit(EventType::DeploymentFailed, d).await;
        }
        d.status = DeploymentStatus::Applying;
        self.save(d).await?;
        let target = ApplyTarget {
            key: spec.key.clone(),
            revision: d.revision,
            deployment_id: d.id.clone(),
        };
        let applied = self.executor.apply(&target, &artifacts).await;
        match applied {
            Ok(receipt) => {
                for r in &mut d.resources {
                    if let Some(paths) = receipt.paths.get(&r.name) {
                        r.artifacts = paths.clone();
                    }
                }
                d.commit = receipt.commit;
                d.unchanged = receipt.unchanged;
                Self::finish_statuses(d, &rendered, true);
                if d.status == DeploymentStatus::Succeeded {
                    self.after_commit(d, &artifacts).await?;
                }
            }
            Err(e) => {
                Self::finish_statuses(d, &rendered, false);
                for r in d
                    .resources
                    .iter_mut()
                    .filter(|r| rendered.outputs.contains_key(&r.name))
                {
                    r.status = ResourceStatus::Failed;
                    r.error = Some(format!("executor failed: {e}"));
                }
                d.status = DeploymentStatus::Failed;
                d.error = Some(Self::causes(d));
            }
        }
        content.artifacts = artifacts;
        self.store.save_revision_content(&d.id, &content).await?;
        self.save_final(d).await
    }

    /// Records a finished deployment and appends `deployment.completed` or
    /// `deployment.failed`.
    async fn save_final(&self, d: &mut Deployment) -> Result<()> {
        self.save(d).await?;
        let kind = if d.status == DeploymentStatus::Succeeded {
            EventType::DeploymentCompleted
        } else {
            EventType::DeploymentFailed
        };
        self.emit(kind, d).await
    }

    /// Sets final resource statuses and the deployment's status and error.
    fn finish_statuses(d: &mut Deployment, rendered: &Rendered, committed: bool) {
        for r in &mut d.resources {
            if let Some((status, why)) = rendered.problems.get(&r.name) {
                r.status = *status;
                r.error = Some(why.clone());
            } else if let Some(out) = rendered.outputs.get(&r.name) {
                r.outputs = stored_outputs(out);
                r.status = if committed {
                    ResourceStatus::Applied
                } else {
                    ResourceStatus::Rendering
                };
            }
        }
        if d.status == DeploymentStatus::Cancelled {
            d.error = Some("cancelled".into());
            return;
        }
        if rendered.problems.is_empty() {
            d.status = if committed {
                DeploymentStatus::Succeeded
            } else {
                d.status
            };
            d.error = None;
        } else {
            d.status = if committed {
                DeploymentStatus::Failed
            } else {
                d.status
            };
            d.error = Some(Self::causes(d));
        }
    }

    fn causes(d: &Deployment) -> String {
        d.resources
            .iter()
            .filter(|r| r.status == ResourceStatus::Failed)
            .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.name)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Renders every wave in order, each wave's resources in parallel. A
    /// failed resource skips its dependents; independent ones carry on.
    /// Resources `seed` already rendered (or failed) are not rendered again,
    /// so a resumed deployment starts at the first wave not yet done.
    /// With `persist` (the revision's content), statuses, outputs and
    /// artifacts are saved after each wave and a cancel seen in the store
    /// stops before the next wave.
    async fn render_waves(
        &self,
        spec: &Spec,
        resolved: &Resolved,
        d: &mut Deployment,
        mut persist: Option<&mut RevisionContent>,
        seed: Rendered,
    ) -> Result<Rendered> {
        let mut rendered = seed;
        let mut ctx = TemplateContext {
            params: spec.params.clone(),
            resources: rendered
                .outputs
                .iter()
                .map(|(name, out)| {
                    let outputs = template_outputs(name, out);
                    (name.clone(), ResourceOutputs { outputs })
                })
                .collect(),
            team: spec.key.team.clone(),
            environment: spec.key.environment.clone(),
            deployment: spec.key.name.clone(),
            budget: TemplateBudget::new(self.template_limits),
        };
        let mut waves_run = 0;
        for (index, wave) in resolved.waves.iter().enumerate() {
            let runnable: Vec<&String> = wave
                .iter()
                .filter(|n| {
                    !rendered.problems.contains_key(*n) && !rendered.outputs.contains_key(*n)
                })
                .collect();
            if runnable.is_empty() {
                continue;
            }
            if waves_run > 0 && !self.wave_delay.is_zero() && persist.is_some() {
                tokio::time::sleep(self.wave_delay).await;
            }
            waves_run += 1;
            if persist.is_some() && self.cancelled(d).await? {
                rendered.cancel_unrendered(resolved.waves.iter().flatten());
                return Ok(rendered);
            }
            if persist.is_some() {
                tracing::debug!(deployment = %d.id, wave = index + 1, "rendering wave");
                for name in &runnable {
                    if let Some(r) = d.resource_mut(name) {
                        r.status = ResourceStatus::Rendering;
                    }
                }
                self.save(d).await?;
                self.emit(EventType::DeploymentUpdated, d).await?;
            }
            let wave_number = index as u32 + 1;
            let jobs = runnable.iter().map(|name| {
                let pinned = resolved.get(name).expect("wave names are resources");
                self.render_one(pinned, &ctx, d.revision, wave_number, resolved, &rendered)
            });
            let results = join_all(jobs).await;
            if persist.is_none() && ctx.budget.is_exhausted() {
                // A plan past its template budget is refused as a whole.
                return Err(Error::invalid("", ctx.budget.exhausted_message()));
            }
            for (name, result) in runnable.into_iter().zip(results) {
                match result {
                    Ok(out) => {
                        ctx.resources.insert(
                            name.clone(),
                            ResourceOutputs {
                                outputs: template_outputs(name, &out),
                            },
                        );
                        if let Some(r) = d.resource_mut(name) {
                            r.outputs = stored_outputs(&out);
                        }
                        rendered.outputs.insert(name.clone(), out);
                    }
                    Err(failure) => {
                        let why = match failure {
                            RenderFailure::Other(e) => error_text(&e),
                            RenderFailure::Wiring(errors) => {
                                let why = error_text(&Error::Validation {
                                    errors: errors.clone(),
                                });
                                rendered.wiring.extend(errors);
                                why
                            }
                        };
                        rendered
                            .problems
                            .insert(name.clone(), (ResourceStatus::Failed, why));
                        for dependent in resolved.graph.dependents_of(name) {
                            rendered.problems.entry(dependent).or_insert((
                                ResourceStatus::Skipped,
                                format!("skipped: {name} failed"),
                            ));
                        }
                    }
                }
            }
            if let Some(content) = persist.as_deref_mut() {
                for (name, (status, why)) in &rendered.problems {
                    if let Some(r) = d.resource_mut(name) {
                        r.status = *status;
                        r.error = Some(why.clone());
                    }
                }
                // Outputs first, then artifacts: a resource counts as
                // rendered on resume only once its artifacts are stored.
                self.save(d).await?;
                content.artifacts = Self::artifacts_of(&rendered);
                self.store.save_revision_content(&d.id, content).await?;
                self.emit(EventType::DeploymentUpdated, d).await?;
            }
        }
        Ok(rendered)
    }

    /// Renders one resource: its templates over the outputs of the waves
    /// before, the references among them typed, the context with its wave
    /// and names; a reference its engine refuses is a wiring failure.
    async fn render_one(
        &self,
        pinned: &PinnedResource,
        ctx: &TemplateContext,
        revision: u64,
        wave: u32,
        resolved: &Resolved,
        rendered: &Rendered,
    ) -> Result<RenderOutput, RenderFailure> {
        let def = &pinned.definition.definition;
        let name = &pinned.resource.name;
        let mut inputs = render_inputs(&pinned.resource, def, ctx).map_err(RenderFailure::Other)?;
        let producers: BTreeMap<&str, Producer<'_>> = rendered
            .outputs
            .iter()
            .filter_map(|(producer, output)| {
                let p = resolved.get(producer)?;
                Some((
                    producer.as_str(),
                    Producer {
                        engine: &p.engine,
                        definition: &p.definition.definition,
                        output,
                    },
                ))
            })
            .collect();
        let references = wiring::extract(name, &pinned.engine, &mut inputs, &producers)
            .map_err(RenderFailure::Wiring)?;
        let engine = self.engines.engine(&pinned.engine).ok_or_else(|| {
            RenderFailure::Other(Error::EngineNotFound {
                name: pinned.engine.clone(),
            })
        })?;
        let request = RenderRequest {
            resource: name.clone(),
            definition: def.clone(),
            inputs,
            references,
            engine_config: def
                .spec
                .engine_configs
                .get(&pinned.engine)
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            context: RenderContext::for_resource(
                &ctx.team,
                &ctx.environment,
                &ctx.deployment,
                name,
                revision,
                wave,
            ),
        };
        match engine.render(&request).await {
            Ok(out) => Ok(out),
            Err(Error::Validation { errors }) => {
                let (refused, errors) =
                    wiring::explain_refusals(name, &pinned.engine, &request.references, errors);
                Err(if refused {
                    RenderFailure::Wiring(errors)
                } else {
                    RenderFailure::Other(Error::Validation { errors })
                })
            }
            Err(e) => Err(RenderFailure::Other(e)),
        }
    }

    /// Refuses a request one of whose resources wires in an output its
    /// engine cannot resolve, before anything is recorded: the waves are
    /// rendered in memory (only when some output crosses resources) and
    /// every refusal is returned as `VALIDATION_FAILED`.
    async fn check_wiring(&self, spec: &Spec, resolved: &Resolved) -> Result<()> {
        let wired = spec.resources.iter().any(|r| {
            r.config
                .values()
                .any(|v| !crate::template::references(v).outputs.is_empty())
        });
        if !wired {
            return Ok(());
        }
        let mut draft = self.draft(spec, resolved, 0);
        let rendered = self
            .render_waves(spec, resolved, &mut draft, None, Rendered::default())
            .await?;
        if rendered.wiring.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation {
                errors: rendered.wiring,
            })
        }
    }

    /// Whether someone cancelled `d` in the store; adopts the stored generation.
    async fn cancelled(&self, d: &mut Deployment) -> Result<bool> {
        let stored = self.get(&d.id).await?;
        if stored.status == DeploymentStatus::Cancelled {
            d.status = DeploymentStatus::Cancelled;
            d.generation = stored.generation;
            return Ok(true);
        }
        Ok(false)
    }

    /// Saves `d` conditionally. A concurrent cancel wins: its status is
    /// adopted and the save retried with our resource states. Any other
    /// concurrent write to an unfinished deployment can only come from
    /// another runner (this one lost its lease while paused): the save
    /// fails rather than overwrite that runner's progress.
    async fn save(&self, d: &mut Deployment) -> Result<()> {
        for _ in 0..8 {
            d.updated_at = self.clock.now();
            match self.store.update_deployment(d, d.generation).await {
                Ok(()) => {
                    d.generation += 1;
                    return Ok(());
                }
                Err(Error::Conflict { .. }) => {
                    let stored = self.get(&d.id).await?;
                    if stored.status == DeploymentStatus::Cancelled {
                        if !d.status.is_final() {
                            d.status = DeploymentStatus::Cancelled;
                        }
                    } else if !stored.status.is_final() || !d.status.is_final() {
                        return Err(Error::Conflict {
                            message: format!("deployment {} is being run by another replica", d.id),
                        });
                    }
                    d.generation = stored.generation;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            message: format!("deployment {} keeps changing concurrently", d.id),
        })
    }

    async fn emit(&self, event_type: EventType, d: &Deployment) -> Result<()> {
        self.store
            .append(NewEvent {
                event_type,
                source: "orchestrator".into(),
                subject: format!("{}@{}", d.key(), d.revision),
                timestamp: self.clock.now(),
                data: json!(d),
            })
            .await?;
        Ok(())
    }

    /// Rolls `id`'s deployment back: a new revision whose content equals
    /// revision `to` (default: the one before `id`), committed as a new
    /// commit; `id` becomes `rolled_back`.
    pub async fn rollback(&self, id: &str, to: Option<u64>) -> Result<Deployment> {
        let current = self.get(id).await?;
        if !current.status.is_final() {
            return Err(Error::Conflict {
                message: format!(
                    "deployment {id} is still {}; cancel it first",
                    current.status.as_str()
                ),
            });
        }
        let target_rev = match to {
            Some(r) => r,
            None if current.revision > 1 => current.revision - 1,
            None => {
                return Err(Error::bad_request(format!(
                    "{id} is revision 1: there is nothing to roll back to"
                )))
            }
        };
        let revisions = self.store.revisions(&current.key()).await?;
        let target = revisions
            .iter()
            .find(|d| d.revision == target_rev)
            .ok_or_else(|| {
                Error::bad_request(format!("{} has no revision {target_rev}", current.key()))
            })?;
        let content = self
            .store
            .revision_content(&target.id)
            .await?
            .unwrap_or_default();
        let mut restored = self.restore(target, content, Some(target_rev)).await?;
        let mut old = current;
        old.status = DeploymentStatus::RolledBack;
        self.save(&mut old).await?;
        self.emit(EventType::DeploymentUpdated, &old).await?;
        restored.generation = self.get(&restored.id).await?.generation;
        Ok(restored)
    }

    /// Records and commits a new revision with exactly `content`'s files.
    async fn restore(
        &self,
        template: &Deployment,
        content: RevisionContent,
        rollback_of: Option<u64>,
    ) -> Result<Deployment> {
        let key = template.key();
        let draft = |revision: u64| {
            let now = self.clock.now();
            let mut d = Deployment {
                id: format!("{}.{}.{}.r{revision}", key.team, key.environment, key.name),
                revision,
                status: DeploymentStatus::Applying,
                created_at: now,
                updated_at: now,
                error: None,
                commit: None,
                rollback_of,
                unchanged: false,
                cluster: None,
                generation: 0,
                ..template.clone()
            };
            d.resources
                .retain(|r| content.artifacts.contains_key(&r.name));
            for r in &mut d.resources {
                r.health = None;
            }
            d
        };
        let Recorded::New(mut d, lease) = self.record(&key, &content, None, draft).await? else {
            return Err(Error::internal("a restore has no idempotency key"));
        };
        self.leased(lease, self.commit_restored(&mut d, &content))
            .await?;
        Ok(d)
    }

    /// Commits a recorded restore (rollback, or removal of revision 1) and
    /// records the outcome.
    async fn commit_restored(&self, d: &mut Deployment, content: &RevisionContent) -> Result<()> {
        let target = ApplyTarget {
            key: d.key(),
            revision: d.revision,
            deployment_id: d.id.clone(),
        };
        match self.executor.apply(&target, &content.artifacts).await {
            Ok(receipt) => {
                d.commit = receipt.commit;
                d.unchanged = receipt.unchanged;
                for r in &mut d.resources {
                    r.status = ResourceStatus::Applied;
                    r.error = None;
                    r.artifacts = receipt.paths.get(&r.name).cloned().unwrap_or_default();
                }
                d.status = DeploymentStatus::Succeeded;
                self.after_commit(d, &content.artifacts).await?;
            }
            Err(e) => {
                d.status = DeploymentStatus::Failed;
                d.error = Some(format!("executor failed: {e}"));
            }
        }
        self.save_final(d).await
    }

    /// `DELETE /deployments/{id}`: cancels one in progress (no new wave
    /// starts); on a finished one rolls back to the previous revision, or
    /// for revision 1 removes its files.
    pub async fn delete(&self, id: &str) -> Result<Deployment> {
        let mut d = self.get(id).await?;
        for _ in 0..8 {
            if d.status.is_final() {
                break;
            }
            d.status = DeploymentStatus::Cancelled;
            d.updated_at = self.clock.now();
            match self.store.update_deployment(&d, d.generation).await {
                Ok(()) => {
                    d.generation += 1;
                    self.emit(EventType::DeploymentUpdated, &d).await?;
                    return Ok(d);
                }
                // The runner moved on meanwhile: cancel what it wrote.
                Err(Error::Conflict { .. }) => d = self.get(id).await?,
                Err(e) => return Err(e),
            }
        }
        if !d.status.is_final() {
            return Err(Error::Conflict {
                message: format!("deployment {id} keeps changing; try again"),
            });
        }
        if d.revision > 1 {
            return self.rollback(id, None).await;
        }
        let mut empty = d.clone();
        empty.resources.clear();
        let removed = self
            .restore(&empty, RevisionContent::default(), Some(0))
            .await?;
        d.status = DeploymentStatus::RolledBack;
        self.save(&mut d).await?;
        Ok(removed)
    }

    /// Deploys to `to` exactly the pinned versions, configs and params of
    /// the latest succeeded revision of `team/from/name`.
    pub async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<Deployment> {
        let key = DeploymentKey {
            team: team.into(),
            environment: from.into(),
            name: name.into(),
        };
        let revisions = self.store.revisions(&key).await?;
        let source = revisions
            .iter()
            .rev()
            .find(|d| d.status == DeploymentStatus::Succeeded)
            .ok_or_else(|| Error::DeploymentNotFound {
                id: format!("{key} (no succeeded revision)"),
            })?;
        let content = self
            .store
            .revision_content(&source.id)
            .await?
            .unwrap_or_default();
        let resources = pinned_requests(&content);
        let spec = Spec {
            key: DeploymentKey {
                team: team.into(),
                environment: to.into(),
                name: name.into(),
            },
            composition: source.composition.clone(),
            params: source.params.clone(),
            resources,
            edges: content.edges.clone(),
            labels: source.labels.clone(),
            base: "resources",
        };
        if !is_valid_name(to) {
            return Err(Error::invalid(
                "to",
                format!("{to:?} is not a valid environment"),
            ));
        }
        check_spec_names(&spec)?;
        let resolved = self.resolve(&spec).await?;
        let content = Self::content(&resolved);
        let draft = |revision| self.draft(&spec, &resolved, revision);
        let Recorded::New(mut d, lease) = self.record(&spec.key, &content, None, draft).await?
        else {
            return Err(Error::internal("a promotion has no idempotency key"));
        };
        let seed = Rendered::default();
        self.leased(lease, self.run(&spec, &resolved, &mut d, content, seed))
            .await?;
        Ok(d)
    }
}

/// Refuses a deployment whose names cannot all be used in the cluster, in
/// Argo CD and in the GitOps repository (`naming::check_names`), with the
/// fields named as in the request (`spec.resources[1].name` for a
/// composition's resource).
fn check_spec_names(spec: &Spec) -> Result<()> {
    let errors: Vec<FieldError> =
        crate::naming::check_names(&spec.key, spec.resources.iter().map(|r| r.name.as_str()))
            .into_iter()
            .map(|mut e| {
                if let Some(rest) = e.field.strip_prefix("resources[") {
                    e.field = format!("{}[{rest}", spec.base);
                }
                e
            })
            .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation { errors })
    }
}

/// A revision's pinned resources as requests for exactly those versions,
/// engines and configs (promotion and resuming start from these).
fn pinned_requests(content: &RevisionContent) -> Vec<CompositionResource> {
    content
        .resources
        .iter()
        .map(|r| CompositionResource {
            name: r.name.clone(),
            catalog_ref: CatalogRef {
                name: r.definition.clone(),
                version: VersionSpec::Exact(r.version.clone()),
            }
            .to_string(),
            engine: Some(r.engine.clone()),
            config: r.config.clone(),
            depends_on: vec![],
        })
        .collect()
}

fn error_text(e: &Error) -> String {
    match e {
        Error::Validation { errors } => errors
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        other => format!("[{}] {other}", other.code()),
    }
}
