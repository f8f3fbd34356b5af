//! The deployment routes — apply, plan, list, get, delete, rollback,
//! promote — rendering one resource, and the graph, engines, health and
//! readiness.

use nestor_core::{
    Deployment, DeploymentFilter, DeploymentRequest, DriftReport, Error, GraphView, Plan,
    RenderResourceRequest, RenderedResource, Result, RunLog, TeamDeploy,
};
use reqwest::Method;
use serde::Deserialize;

use crate::client::Client;
use crate::retry::{new_idempotency_key, Retry};
use crate::wire::{EngineStatus, Readiness};

impl Client {
    /// Applies a deployment request (that team's role) with a fresh
    /// `Idempotency-Key`, so a retried apply is applied once. The answer
    /// is the deployment as soon as its revision is recorded; the apply
    /// goes on on the server (follow it with [`Client::deployment`] or the
    /// event stream).
    pub async fn apply(&self, request: &DeploymentRequest) -> Result<Deployment> {
        self.apply_with_key(request, &new_idempotency_key()).await
    }

    /// [`Client::apply`] with the caller's key: the same key and body name
    /// the same deployment however often they are sent (across restarts of
    /// the caller too); the same key with another body is `CONFLICT`.
    pub async fn apply_with_key(
        &self,
        request: &DeploymentRequest,
        key: &str,
    ) -> Result<Deployment> {
        if request.dry_run {
            return Err(Error::bad_request(
                "dry_run applies nothing: use Client::plan",
            ));
        }
        let call = self
            .call(Method::POST, &["api", "v1", "deployments"], Retry::Safe)
            .json(request)?
            .idempotency_key(key.to_string())
            .long();
        self.json(call).await
    }

    /// Deploys a team composition (`POST /teams/{team}/deploy`) with a
    /// fresh `Idempotency-Key`; answered like [`Client::apply`].
    pub async fn deploy(&self, team: &str, deploy: &TeamDeploy) -> Result<Deployment> {
        self.deploy_with_key(team, deploy, &new_idempotency_key())
            .await
    }

    /// [`Client::deploy`] with the caller's `Idempotency-Key`.
    pub async fn deploy_with_key(
        &self,
        team: &str,
        deploy: &TeamDeploy,
        key: &str,
    ) -> Result<Deployment> {
        let call = self
            .call(
                Method::POST,
                &["api", "v1", "teams", team, "deploy"],
                Retry::Safe,
            )
            .json(deploy)?
            .idempotency_key(key.to_string())
            .long();
        self.json(call).await
    }

    /// What deploying a team composition would do; applies nothing.
    pub async fn plan_deploy(&self, team: &str, deploy: &TeamDeploy) -> Result<Plan> {
        let mut body = serde_json::to_value(deploy)
            .map_err(|e| Error::bad_request(format!("cannot serialise the request: {e}")))?;
        body["dry_run"] = true.into();
        let call = self
            .call(
                Method::POST,
                &["api", "v1", "teams", team, "deploy"],
                Retry::Safe,
            )
            .json(&body)?
            .long();
        self.json(call).await
    }

    /// What applying `request` would do — rendered files and a diff
    /// against the current revision; applies nothing.
    pub async fn plan(&self, request: &DeploymentRequest) -> Result<Plan> {
        let call = self
            .call(Method::POST, &["api", "v1", "plan"], Retry::Safe)
            .json(request)?
            .long();
        self.json(call).await
    }

    /// What one catalog resource renders to on its own, as a resource of
    /// a deployment of the request's team (whose role it needs) in its
    /// environment; writes nothing.
    pub async fn render(&self, request: &RenderResourceRequest) -> Result<RenderedResource> {
        let call = self
            .call(Method::POST, &["api", "v1", "render"], Retry::Safe)
            .json(request)?
            .long();
        self.json(call).await
    }

    /// Deployments passing `filter`, newest first; a team token sees only
    /// its teams'.
    pub async fn deployments(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>> {
        #[derive(Deserialize)]
        struct Items {
            items: Vec<Deployment>,
        }
        let mut q: Vec<(&str, String)> = Vec::new();
        for (key, value) in [
            ("team", &filter.team),
            ("environment", &filter.environment),
            ("name", &filter.name),
        ] {
            if let Some(v) = value {
                q.push((key, v.clone()));
            }
        }
        if let Some(status) = filter.status {
            q.push(("status", status.as_str().to_string()));
        }
        let call = self.get(&["api", "v1", "deployments"]).query(q);
        Ok(self.json::<Items>(call).await?.items)
    }

    /// One deployment with its progress.
    pub async fn deployment(&self, id: &str) -> Result<Deployment> {
        self.json(self.get(&["api", "v1", "deployments", id])).await
    }

    /// Cancels a deployment in progress, or rolls a finished one back (for
    /// revision 1: removes its files). Sent once: on a finished deployment
    /// a second delete would roll back again.
    pub async fn delete_deployment(&self, id: &str) -> Result<Deployment> {
        let call = self
            .call(
                Method::DELETE,
                &["api", "v1", "deployments", id],
                Retry::Never,
            )
            .long();
        self.json(call).await
    }

    /// A new revision with revision `to`'s content (default: the one
    /// before); answers when it is applied. Sent once.
    pub async fn rollback(&self, id: &str, to: Option<u64>) -> Result<Deployment> {
        let mut call = self
            .call(
                Method::POST,
                &["api", "v1", "deployments", id, "rollback"],
                Retry::Never,
            )
            .long();
        if let Some(to) = to {
            call = call.query([("to", to.to_string())]);
        }
        self.json(call).await
    }

    /// Deploys to environment `to` exactly what last succeeded in `from`;
    /// answers when it is applied. Sent once.
    pub async fn promote(
        &self,
        team: &str,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<Deployment> {
        let body = serde_json::json!({"team": team, "name": name, "from": from, "to": to});
        let call = self
            .call(
                Method::POST,
                &["api", "v1", "deployments", "promote"],
                Retry::Never,
            )
            .json(&body)?
            .long();
        self.json(call).await
    }

    /// The logs of deployment `id`'s Terraform runs (sensitive values left
    /// out); empty for a deployment that went through GitOps only.
    pub async fn logs(&self, id: &str) -> Result<Vec<RunLog>> {
        #[derive(Deserialize)]
        struct Items {
            items: Vec<RunLog>,
        }
        let call = self.get(&["api", "v1", "deployments", id, "logs"]);
        Ok(self.json::<Items>(call).await?.items)
    }

    /// Checks succeeded deployment `id` for drift now (`None`: it has no
    /// resource Nestor runs itself). Sent once: a check may record a
    /// `deployment.drifted` event.
    pub async fn drift(&self, id: &str) -> Result<Option<DriftReport>> {
        let call = self
            .call(
                Method::POST,
                &["api", "v1", "deployments", id, "drift"],
                Retry::Never,
            )
            .long();
        self.json(call).await
    }

    /// The dependency graph of the latest revision of each deployment
    /// (of `team` and `environment` when given) and their catalog
    /// dependencies.
    pub async fn graph(&self, team: Option<&str>, environment: Option<&str>) -> Result<GraphView> {
        self.json(self.graph_call(team, environment, "json")).await
    }

    /// The same graph as Graphviz text.
    pub async fn graph_dot(&self, team: Option<&str>, environment: Option<&str>) -> Result<String> {
        self.text(self.graph_call(team, environment, "dot")).await
    }

    fn graph_call(
        &self,
        team: Option<&str>,
        environment: Option<&str>,
        format: &str,
    ) -> crate::client::Call {
        let mut q = vec![("format", format)];
        q.extend(team.map(|t| ("team", t)));
        q.extend(environment.map(|e| ("environment", e)));
        self.get(&["api", "v1", "graph"]).query(q)
    }

    /// Every engine the server has loaded.
    pub async fn engines(&self) -> Result<Vec<EngineStatus>> {
        self.json(self.get(&["api", "v1", "engines"])).await
    }

    /// `Ok` when the server process answers (`GET /health`).
    pub async fn health(&self) -> Result<()> {
        self.send(&self.get(&["health"])).await.map(drop)
    }

    /// Whether the server is ready: its store answers and an engine is
    /// loaded. A server that is not ready answers `Ok` with `ready: false`
    /// (its 503 is an answer here, not a failure, and is not retried).
    pub async fn ready(&self) -> Result<Readiness> {
        let call = self.call(Method::GET, &["ready"], Retry::Never);
        let resp = self
            .request(&call, Some(std::time::Duration::from_secs(10)))
            .send()
            .await
            .map_err(|e| crate::client::unreachable(self.url(), e))?;
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return crate::client::decode(resp).await;
        }
        Err(crate::client::error_of(resp).await)
    }

    /// The server's OpenAPI 3 document.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.json(self.get(&["api", "v1", "openapi.json"])).await
    }

    /// The server's Prometheus metrics, as text.
    pub async fn metrics(&self) -> Result<String> {
        self.text(self.get(&["metrics"])).await
    }
}
