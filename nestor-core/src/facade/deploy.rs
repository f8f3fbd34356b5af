//! The deployments' operations, rendering one resource, the graph and the
//! engines.

use super::Nestor;
use crate::engine::EngineInfo;
use crate::error::Result;
use crate::executor::RunLog;
use crate::model::{Deployment, DeploymentRequest};
use crate::orchestrator::{
    deployment_graph, DriftReport, GraphView, Plan, RenderResourceRequest, RenderedResource,
    Started,
};
use crate::store::DeploymentFilter;
use crate::validate::check_name;

impl Nestor {
    /// Checks deployment `id` (or, with `None`, the latest succeeded
    /// revision of every deployment) for drift in the resources a tool runs
    /// directly (Terraform): a drifted one becomes `drifted` and
    /// `deployment.drifted` is appended with the drifted addresses.
    pub async fn drift(&self, id: Option<&str>) -> Result<Vec<DriftReport>> {
        self.inner.orchestrator.drift(id).await
    }

    /// The logs of deployment `id`'s tool runs, one per resource a tool
    /// ran directly (sensitive values left out); empty for a deployment
    /// that went through GitOps only.
    pub async fn logs(&self, id: &str) -> Result<Vec<RunLog>> {
        self.inner.orchestrator.logs(id).await
    }

    /// Everything an apply would do, nothing done: rendered files and the
    /// diff against the current revision.
    pub async fn plan(&self, request: &DeploymentRequest) -> Result<Plan> {
        self.policies_ready().await?;
        self.inner.orchestrator.plan(request).await
    }

    /// Applies a request to the end (every wave, the commit) and returns
    /// the finished deployment. The same `idempotency_key` with the same
    /// request returns the first deployment and applies nothing twice.
    pub async fn apply(
        &self,
        request: &DeploymentRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Deployment> {
        self.policies_ready().await?;
        let result = self
            .inner
            .orchestrator
            .apply(request, idempotency_key)
            .await;
        self.audited(
            "deployment.apply",
            &request_subject(request, &result),
            &result,
            |_| vec![],
        )
        .await;
        result
    }

    /// The first half of [`Nestor::apply`]: every request error surfaces
    /// here and the revision is recorded; [`Nestor::finish`] runs the rest
    /// (a server answers in between).
    pub async fn start(
        &self,
        request: &DeploymentRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Started> {
        self.policies_ready().await?;
        let result = self
            .inner
            .orchestrator
            .start(request, idempotency_key)
            .await;
        let subject = match &result {
            Ok(started) => started.deployment.id.clone(),
            Err(_) => key_of(request),
        };
        self.audited("deployment.apply", &subject, &result, |_| vec![])
            .await;
        result
    }

    /// The second half of [`Nestor::apply`].
    pub async fn finish(&self, started: Started) -> Result<Deployment> {
        self.inner.orchestrator.finish(started).await
    }

    /// One deployment by id.
    pub async fn deployment(&self, id: &str) -> Result<Deployment> {
        self.inner.orchestrator.get(id).await
    }

    /// Deployments passing `filter`, newest first.
    pub async fn deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>> {
        self.inner.store.list_deployments(filter).await
    }

    /// A new revision whose content equals revision `to` (default: the one
    /// before `id`).
    pub async fn rollback(&self, id: &str, to: Option<u64>) -> Result<Deployment> {
        self.policies_ready().await?;
        let result = self.inner.orchestrator.rollback(id, to).await;
        self.audited("deployment.rollback", id, &result, |_| vec![])
            .await;
        result
    }

    /// Cancels a deployment in progress; on a finished one, rolls back to
    /// the previous revision (for revision 1, removes its artifacts).
    pub async fn delete(&self, id: &str) -> Result<Deployment> {
        let result = self.inner.orchestrator.delete(id).await;
        self.audited("deployment.delete", id, &result, |_| vec![])
            .await;
        result
    }

    /// Deploys to `to` the pinned versions and params of the latest
    /// succeeded revision of `team/from/name`.
    pub async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<Deployment> {
        for (kind, value) in [
            ("team", team),
            ("deployment", name),
            ("environment", from),
            ("environment", to),
        ] {
            check_name(kind, value)?;
        }
        self.policies_ready().await?;
        let result = self.inner.orchestrator.promote(team, name, from, to).await;
        self.audited(
            "deployment.promote",
            &format!("{team}.{from}.{name} -> {to}"),
            &result,
            |_| vec![],
        )
        .await;
        result
    }

    /// What one resource renders to (`nestor render`), as the resource of
    /// a deployment of the request's team in its environment.
    pub async fn render(&self, request: &RenderResourceRequest) -> Result<RenderedResource> {
        self.inner.orchestrator.render_resource(request).await
    }

    /// The dependency graph of the latest revision of every deployment
    /// passing `filter` and `visible` (a caller's team scope).
    pub async fn graph(
        &self,
        filter: &DeploymentFilter,
        visible: impl Fn(&Deployment) -> bool,
    ) -> Result<GraphView> {
        deployment_graph(self.inner.store.as_ref(), filter, visible).await
    }

    /// Every loaded engine, by name.
    pub fn engines(&self) -> Vec<EngineInfo> {
        let engines = &self.inner.engines;
        engines
            .engine_names()
            .iter()
            .filter_map(|name| engines.engine(name))
            .map(|e| e.info())
            .collect()
    }
}

/// The subject of a deployment write: the deployment's id once there is
/// one, else `team.environment.name` (what the ids start with).
fn request_subject(request: &DeploymentRequest, result: &Result<Deployment>) -> String {
    match result {
        Ok(d) => d.id.clone(),
        Err(_) => key_of(request),
    }
}

fn key_of(request: &DeploymentRequest) -> String {
    format!("{}.{}.{}", request.team, request.environment, request.name)
}
