//! The orchestrator (docs/src/product/deploying.md): resolve → render templates → validate inputs
//! → graph and waves → render each wave through the engines in parallel →
//! hand the artifacts to the executor → record outputs and statuses.
//!
//! A plan is the same walk without the executor and without writes. Every
//! state change of a deployment is a conditional write (the store's
//! generation counter), so a cancel racing a running apply is never lost,
//! and every change appends an event.

mod direct;
mod history;
mod lease;
mod observe;
mod plan;
mod policy;
mod render;
mod request;
mod resolve;
mod run;
mod secrets;
mod single;
mod view;
mod wiring;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

pub use direct::DriftReport;
pub use lease::{LeaseScan, LeaseSettings};
pub use plan::{diff_artifacts, planned_resources, FileDiff, Plan, PlanDiff, PlannedResource};
pub use resolve::{render_inputs, resolve_params, resolve_resources, PinnedResource, Resolved};
pub use single::{RenderResourceRequest, RenderedResource};
pub use view::{deployment_graph, GraphEdge, GraphNode, GraphView};

use crate::clock::{Clock, SystemClock};
use crate::engine::{EngineProvider, RenderContext, RenderOutput, RenderRequest};
use crate::error::{Error, FieldError, Result};
use crate::executor::{ApplyTarget, DirectExecutor, Executor, RunTarget};
use crate::model::Artifact;
use crate::model::*;
use crate::observer::Observer;
use crate::parse::check_resources;
use crate::store::{CreateOutcome, Store};
use crate::template::{ResourceOutputs, TemplateBudget, TemplateContext, TemplateLimits};
use crate::validate::is_valid_name;
use crate::versioning::{CatalogRef, VersionSpec};
use wiring::{stored_outputs, template_outputs, Producer};

use history::pinned_requests;
use request::{check_spec_names, Spec};
pub use run::Started;
use run::{error_text, Recorded, RenderFailure, Rendered};

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
    /// Who runs a tool itself for the resources it handles (Terraform),
    /// wave by wave; none by default, and everything goes to `executor`.
    direct: Option<Arc<dyn DirectExecutor>>,
    clock: Arc<dyn Clock>,
    leases: LeaseSettings,
    wave_delay: Duration,
    /// Who tells how the cluster is doing after a commit (Argo CD); none
    /// by default, and deployments then say they are not observed.
    observer: Option<Arc<dyn Observer>>,
    /// What the templates of one plan or apply may cost together.
    template_limits: TemplateLimits,
    /// The `nestor.deployment` policies every plan and apply must pass.
    policies: crate::policy::Policies,
    /// The definition documents of their inputs, kept from plan to plan.
    documents: crate::policy::DefinitionDocuments,
    /// The team quotas every new revision must fit in (the store checks).
    quotas: Arc<[crate::quota::Quota]>,
    /// Where the policies of a large plan evaluate, in parallel;
    /// [`default_offload`](crate::default_offload) when unset.
    offload: Option<Arc<dyn crate::cpu::Offload>>,
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
            direct: None,
            clock: Arc::new(SystemClock),
            leases: LeaseSettings::default(),
            wave_delay: Duration::ZERO,
            observer: None,
            template_limits: TemplateLimits::default(),
            policies: crate::policy::Policies::none(),
            documents: Default::default(),
            quotas: Arc::new([]),
            offload: None,
        }
    }

    /// Evaluates the policies of large plans on `offload` instead of
    /// [`default_offload`](crate::default_offload)'s choice.
    pub fn with_offload(mut self, offload: Arc<dyn crate::cpu::Offload>) -> Self {
        self.offload = Some(offload);
        self
    }

    /// Has every new revision fit in the team quotas of `quotas`
    /// (`QUOTA_EXCEEDED` otherwise, nothing recorded).
    pub fn with_quotas(mut self, quotas: Vec<crate::quota::Quota>) -> Self {
        self.quotas = quotas.into();
        self
    }

    /// The team quotas new revisions must fit in.
    pub fn quotas(&self) -> &[crate::quota::Quota] {
        &self.quotas
    }

    /// Has every plan and apply pass the `nestor.deployment` policies
    /// covering its team and environment (`POLICY_VIOLATION` otherwise);
    /// their warnings go into the plan and the recorded deployment.
    pub fn with_policies(mut self, policies: crate::policy::Policies) -> Self {
        self.policies = policies;
        self
    }

    /// Replaces the limits on what the templates of one plan or apply may
    /// cost together (fuel, rendered bytes, longest string).
    pub fn with_template_limits(mut self, limits: TemplateLimits) -> Self {
        self.template_limits = limits;
        self
    }

    /// Runs the resources `direct` handles through it, wave by wave, with
    /// each wave's real outputs rendered into the next (see the `direct`
    /// module); every other resource still goes to the executor.
    pub fn with_direct(mut self, direct: Arc<dyn DirectExecutor>) -> Self {
        self.direct = Some(direct);
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

    /// Everything but the executor: the rendered files and a diff against
    /// the current revision. Writes nothing.
    pub async fn plan(&self, request: &DeploymentRequest) -> Result<Plan> {
        let spec = self.spec(request).await?;
        let resolved = self.resolve(&spec).await?;
        self.check_secrets(&spec, &resolved)?;
        let warnings = self.check_policies(&spec, &resolved).await?;
        let revision = self.next_revision(&spec.key).await?;
        let mut deployment = self.draft(&spec, &resolved, revision);
        deployment.policy_warnings = warnings.clone();
        let rendered = self
            .render_waves(
                &spec,
                &resolved,
                &mut deployment,
                None,
                Rendered::default(),
                true,
            )
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
        let mut resources = planned_resources(&deployment, &artifacts);
        let mut tool_plans = self.tool_plans(&deployment, &rendered).await;
        for r in &mut resources {
            r.tool_plan = tool_plans.remove(&r.name);
        }
        Ok(Plan {
            deployment,
            artifacts,
            diff,
            resources,
            warnings,
        })
    }

    fn artifacts_of(rendered: &Rendered) -> BTreeMap<String, Vec<Artifact>> {
        rendered
            .outputs
            .iter()
            .map(|(name, out)| (name.clone(), out.artifacts.clone()))
            .collect()
    }
}
