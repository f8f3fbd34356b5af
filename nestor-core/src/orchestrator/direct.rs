//! Resources a tool runs directly (Terraform through a
//! [`DirectExecutor`]): applied wave by wave, each wave's real outputs
//! rendered into the next, destroyed when the deployment goes, rolled back
//! by applying the earlier configuration, and checked for drift.
//!
//! The GitOps path renders every wave up front and commits once, because
//! the cluster resolves cross-resource values itself (Secret keys). A tool
//! run here has no such indirection: a wave's resources are applied as
//! soon as they are rendered, `terraform output -json` becomes their
//! outputs (values a template sees like any literal), and only then is the
//! next wave rendered. The orchestrator knows no process: the executor
//! runs the tool.
//!
//! Sensitive outputs never become values: they keep the Secret key the
//! engine gave them (what the deployment records, events and API responses
//! show), consumers render a reference to that key (Terraform: a variable
//! set from `TF_VAR_…`), and the real value is kept in memory only, handed
//! to the executor when it runs a consumer. A resumed run reads them again
//! from the tool.

use serde::{Deserialize, Serialize};

use super::*;
use crate::engine::Reach;
use crate::executor::{ResourceDrift, RunLog, RunReceipt};
use crate::store::DeploymentFilter;

/// What a sensitive output without a Secret key to stand for it is
/// recorded as (its consumers cannot read it).
pub(super) const SENSITIVE: &str = "***";

/// What a drift check found in one deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DriftReport {
    /// The deployment checked.
    pub deployment: String,
    /// Its status after the check (`drifted` when anything drifted).
    pub status: DeploymentStatus,
    /// The resources that drifted and their addresses (empty: none).
    pub resources: Vec<ResourceDrift>,
}

impl Orchestrator {
    /// The direct executor that runs resource `engine` in `environment`, if any.
    pub(super) fn direct_for(
        &self,
        environment: &str,
        engine: &str,
    ) -> Option<&Arc<dyn DirectExecutor>> {
        self.direct
            .as_ref()
            .filter(|x| x.handles(environment, engine))
    }

    /// Whether `name` of `resolved` runs through the direct executor.
    pub(super) fn is_direct(&self, key: &DeploymentKey, resolved: &Resolved, name: &str) -> bool {
        resolved
            .get(name)
            .is_some_and(|p| self.direct_for(&key.environment, &p.engine).is_some())
    }

    /// The files that go to the GitOps executor: every resource's but
    /// those a tool runs directly.
    pub(super) fn gitops_artifacts(
        &self,
        d: &Deployment,
        artifacts: &BTreeMap<String, Vec<Artifact>>,
    ) -> BTreeMap<String, Vec<Artifact>> {
        artifacts
            .iter()
            .filter(|(name, _)| {
                d.resources
                    .iter()
                    .find(|r| &r.name == *name)
                    .is_none_or(|r| self.direct_for(&d.environment, &r.engine).is_none())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether the GitOps executor has anything to do for `d`: files of
    /// its own now, or resources of its own in the revision before (whose
    /// files it must remove). A deployment a tool ran entirely makes no
    /// commit.
    pub(super) async fn needs_gitops(
        &self,
        d: &Deployment,
        gitops: &BTreeMap<String, Vec<Artifact>>,
    ) -> Result<bool> {
        if !gitops.is_empty() || self.direct.is_none() {
            return Ok(true);
        }
        let previous = self
            .store
            .revisions(&d.key())
            .await?
            .into_iter()
            .filter(|p| p.revision < d.revision)
            .max_by_key(|p| p.revision);
        Ok(previous.is_some_and(|p| {
            p.resources
                .iter()
                .any(|r| self.direct_for(&p.environment, &r.engine).is_none())
        }))
    }

    /// Applies `names` (rendered resources of one wave the direct executor
    /// runs) in parallel; their real outputs replace the rendered ones in
    /// `rendered` and `ctx`. A failure fails the resource and skips its
    /// dependents.
    pub(super) async fn apply_direct_wave(
        &self,
        d: &mut Deployment,
        names: &[String],
        resolved: &Resolved,
        rendered: &mut Rendered,
        ctx: &mut TemplateContext,
    ) {
        let direct = self
            .direct
            .clone()
            .expect("direct resources need a direct executor");
        let jobs = names.iter().map(|name| {
            let target = run_target(d, name);
            let artifacts = rendered
                .outputs
                .get(name)
                .map(|o| o.artifacts.clone())
                .unwrap_or_default();
            let direct = direct.clone();
            let secrets = rendered.secrets.clone();
            async move { direct.apply(&target, &artifacts, &secrets).await }
        });
        let results = join_all(jobs).await;
        for (name, result) in names.iter().zip(results) {
            match result {
                Ok(receipt) => {
                    tracing::debug!(deployment = %d.id, resource = %name, plan = ?receipt.plan, "applied");
                    let workspace = receipt.workspace.clone();
                    self.adopt_outputs(name, receipt.outputs, rendered, ctx);
                    rendered.applied.insert(name.clone());
                    if let Some(r) = d.resource_mut(name) {
                        r.status = ResourceStatus::Applied;
                        r.error = None;
                        r.artifacts = vec![workspace];
                        if let Some(out) = rendered.outputs.get(name) {
                            r.outputs = stored_outputs(out);
                        }
                    }
                }
                Err(e) => {
                    rendered
                        .problems
                        .insert(name.clone(), (ResourceStatus::Failed, error_text(&e)));
                    for dependent in resolved.graph.dependents_of(name) {
                        rendered.problems.entry(dependent).or_insert((
                            ResourceStatus::Skipped,
                            format!("skipped: {name} failed"),
                        ));
                    }
                }
            }
        }
    }

    /// Makes a tool's outputs those of `name`: values in `rendered` and in
    /// the templates' context; a sensitive one keeps the Secret key its
    /// engine gave it, its value kept in `rendered.secrets` under that key.
    pub(super) fn adopt_outputs(
        &self,
        name: &str,
        outputs: BTreeMap<String, crate::executor::RunOutput>,
        rendered: &mut Rendered,
        ctx: &mut TemplateContext,
    ) {
        let entry = rendered.outputs.entry(name.to_string()).or_default();
        for (output, o) in outputs {
            if !o.sensitive {
                entry.outputs.insert(output, Reach::value(o.value));
                continue;
            }
            let rendered_reach = entry.outputs.get(&output).cloned().unwrap_or_default();
            match rendered_reach.secret_key_ref {
                Some(key) => {
                    rendered.secrets.insert(key.path(), o.value);
                    entry
                        .outputs
                        .insert(output, Reach::secret_key(key.name, key.namespace, key.key));
                }
                None => {
                    entry.outputs.insert(output, Reach::value(SENSITIVE));
                }
            }
        }
        let outputs = template_outputs(name, entry);
        ctx.resources
            .insert(name.to_string(), ResourceOutputs { outputs });
    }

    /// Reads again the outputs of direct resources a resumed run had
    /// applied (their sensitive values were never stored).
    pub(super) async fn refresh_applied(
        &self,
        d: &Deployment,
        rendered: &mut Rendered,
    ) -> Result<()> {
        let Some(direct) = self.direct.clone() else {
            return Ok(());
        };
        let names: Vec<String> = rendered.applied.iter().cloned().collect();
        for name in names {
            if let Some(outputs) = direct.outputs(&run_target(d, &name)).await? {
                let mut scratch = TemplateContext::default();
                self.adopt_outputs(&name, outputs, rendered, &mut scratch);
            }
        }
        Ok(())
    }

    /// A plan's view of direct resources of one wave: the outputs their
    /// last apply produced, so the next wave renders with real values
    /// where they exist.
    pub(super) async fn plan_outputs(
        &self,
        d: &Deployment,
        names: &[String],
        rendered: &mut Rendered,
        ctx: &mut TemplateContext,
    ) -> Result<()> {
        let Some(direct) = self.direct.clone() else {
            return Ok(());
        };
        for name in names {
            if let Some(outputs) = direct.outputs(&run_target(d, name)).await? {
                self.adopt_outputs(name, outputs, rendered, ctx);
            }
        }
        Ok(())
    }

    /// The tool's own plan of every direct resource `rendered` holds, all
    /// asked at once: each plans in its own scratch folder, and the
    /// executor bounds how many run together (one by one, 50 Terraform
    /// plans took 1.5× as long as the same commands at the executor's
    /// parallelism; benches/terraform).
    pub(super) async fn tool_plans(
        &self,
        d: &Deployment,
        rendered: &Rendered,
    ) -> BTreeMap<String, crate::executor::ToolPlan> {
        let Some(direct) = self.direct.clone() else {
            return BTreeMap::new();
        };
        let jobs = d
            .resources
            .iter()
            .filter(|r| self.direct_for(&d.environment, &r.engine).is_some())
            .filter_map(|r| Some((r, rendered.outputs.get(&r.name)?)))
            .map(|(r, out)| {
                let target = run_target(d, &r.name);
                let direct = direct.clone();
                async move {
                    let plan = direct
                        .plan(&target, &out.artifacts, &rendered.secrets)
                        .await
                        .unwrap_or_else(|e| crate::executor::ToolPlan {
                            error: Some(error_text(&e)),
                            ..Default::default()
                        });
                    (r.name.clone(), plan)
                }
            });
        join_all(jobs).await.into_iter().collect()
    }

    /// A restore's direct part: applies the restored configuration of its
    /// direct resources in wave order, then destroys those the revision
    /// before had and the restored one has not (in reverse wave order).
    /// Returns the receipts by resource.
    pub(super) async fn restore_direct(
        &self,
        d: &Deployment,
        content: &RevisionContent,
    ) -> Result<BTreeMap<String, RunReceipt>> {
        let Some(direct) = self.direct.clone() else {
            return Ok(BTreeMap::new());
        };
        let mut receipts = BTreeMap::new();
        let mut secrets = crate::executor::RunSecrets::new();
        for name in d.waves.iter().flatten() {
            let Some(r) = d.resources.iter().find(|r| &r.name == name) else {
                continue;
            };
            let Some(artifacts) = content.artifacts.get(name) else {
                continue;
            };
            if self.direct_for(&d.environment, &r.engine).is_none() {
                continue;
            }
            let receipt = direct
                .apply(&run_target(d, name), artifacts, &secrets)
                .await?;
            for (output, o) in receipt.outputs.iter().filter(|(_, o)| o.sensitive) {
                let recorded = r.outputs.get(output).cloned().unwrap_or_default();
                if let Some(key) = Reach::from_json(recorded).secret_key_ref {
                    secrets.insert(key.path(), o.value.clone());
                }
            }
            receipts.insert(name.clone(), receipt);
        }
        let previous = self
            .store
            .revisions(&d.key())
            .await?
            .into_iter()
            .filter(|p| p.revision < d.revision)
            .max_by_key(|p| p.revision);
        if let Some(previous) = previous {
            for name in previous.waves.iter().flatten().rev() {
                let Some(r) = previous.resources.iter().find(|r| &r.name == name) else {
                    continue;
                };
                if content.artifacts.contains_key(name)
                    || self.direct_for(&d.environment, &r.engine).is_none()
                {
                    continue;
                }
                direct.destroy(&run_target(d, name)).await?;
            }
        }
        Ok(receipts)
    }

    /// Checks the succeeded deployment `id` (or, with `None`, the latest
    /// succeeded revision of every deployment) for drift in the resources
    /// a tool runs directly. A deployment found drifted becomes `drifted`
    /// and `deployment.drifted` is appended, listing the addresses.
    pub async fn drift(&self, id: Option<&str>) -> Result<Vec<DriftReport>> {
        let candidates = match id {
            Some(id) => {
                let d = self.get(id).await?;
                if !matches!(
                    d.status,
                    DeploymentStatus::Succeeded | DeploymentStatus::Drifted
                ) {
                    return Err(Error::Conflict {
                        message: format!(
                            "deployment {id} is {}: only a succeeded deployment is checked for drift",
                            d.status.as_str()
                        ),
                    });
                }
                vec![d]
            }
            None => self.drift_candidates().await?,
        };
        let mut reports = Vec::new();
        for d in candidates {
            if let Some(report) = self.drift_one(d).await? {
                reports.push(report);
            }
        }
        Ok(reports)
    }

    /// The latest revision of every deployment, when it succeeded and has
    /// resources a tool runs directly.
    async fn drift_candidates(&self) -> Result<Vec<Deployment>> {
        let filter = DeploymentFilter::default();
        let mut latest: BTreeMap<DeploymentKey, Deployment> = BTreeMap::new();
        for d in self.store.list_deployments(&filter).await? {
            let key = d.key();
            if latest.get(&key).is_none_or(|l| l.revision < d.revision) {
                latest.insert(key, d);
            }
        }
        Ok(latest
            .into_values()
            .filter(|d| d.status == DeploymentStatus::Succeeded)
            .filter(|d| {
                d.resources
                    .iter()
                    .any(|r| self.direct_for(&d.environment, &r.engine).is_some())
            })
            .collect())
    }

    async fn drift_one(&self, mut d: Deployment) -> Result<Option<DriftReport>> {
        let Some(direct) = self.direct.clone() else {
            return Ok(None);
        };
        let content = self
            .store
            .revision_content(&d.id)
            .await?
            .unwrap_or_default();
        // Wave by wave, as an apply: a resource reading an earlier one's
        // sensitive output is planned with its value (from the tool's state).
        let mut secrets = crate::executor::RunSecrets::new();
        let mut resources = Vec::new();
        for r in &d.resources {
            if r.status != ResourceStatus::Applied
                || self.direct_for(&d.environment, &r.engine).is_none()
            {
                continue;
            }
            let target = run_target(&d, &r.name);
            let artifacts = content
                .artifacts
                .get(&r.name)
                .map_or(&[][..], Vec::as_slice);
            let addresses = direct.drift(&target, artifacts, &secrets).await?;
            let outputs = direct.outputs(&target).await?.unwrap_or_default();
            for (output, o) in outputs.iter().filter(|(_, o)| o.sensitive) {
                let recorded = r.outputs.get(output).cloned().unwrap_or_default();
                if let Some(key) = Reach::from_json(recorded).secret_key_ref {
                    secrets.insert(key.path(), o.value.clone());
                }
            }
            if !addresses.is_empty() {
                resources.push(ResourceDrift {
                    resource: r.name.clone(),
                    addresses,
                });
            }
        }
        if resources.is_empty() && d.status == DeploymentStatus::Succeeded {
            return Ok(Some(DriftReport {
                deployment: d.id,
                status: DeploymentStatus::Succeeded,
                resources,
            }));
        }
        if !resources.is_empty() && d.status != DeploymentStatus::Drifted {
            d.status = DeploymentStatus::Drifted;
            self.save(&mut d).await?;
            let mut data = json!(d);
            data["drift"] = json!(resources);
            self.store
                .append(NewEvent {
                    event_type: EventType::DeploymentDrifted,
                    source: "orchestrator".into(),
                    subject: format!("{}@{}", d.key(), d.revision),
                    timestamp: self.clock.now(),
                    data,
                })
                .await?;
        }
        Ok(Some(DriftReport {
            deployment: d.id,
            status: d.status,
            resources,
        }))
    }

    /// The logs of deployment `id`'s runs of its direct resources.
    pub async fn logs(&self, id: &str) -> Result<Vec<RunLog>> {
        let d = self.get(id).await?;
        let Some(direct) = self.direct.clone() else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = d
            .waves
            .iter()
            .flatten()
            .filter(|n| {
                d.resources
                    .iter()
                    .any(|r| &r.name == *n && self.direct_for(&d.environment, &r.engine).is_some())
            })
            .cloned()
            .collect();
        direct.logs(&d.key(), d.revision, &names).await
    }
}

/// The direct executor's target for resource `name` of `d`.
pub(super) fn run_target(d: &Deployment, name: &str) -> RunTarget {
    RunTarget {
        key: d.key(),
        revision: d.revision,
        deployment_id: d.id.clone(),
        resource: name.to_string(),
    }
}
