//! The `nestor.deployment` policies at plan and apply: the input document
//! built from the resolved request, evaluated before anything renders or
//! is recorded.

use super::*;
use crate::policy::{deployment_input, PolicyHook, PolicyMessage, PolicyResource, PolicyVerdict};
use crate::template::references;

impl Orchestrator {
    /// Evaluates the deployment policies covering the request's team and
    /// environment: `POLICY_VIOLATION` when one denies, else the warnings.
    pub(super) fn check_policies(
        &self,
        spec: &Spec,
        resolved: &Resolved,
    ) -> Result<Vec<PolicyMessage>> {
        self.policy_verdict(spec, resolved)
            .into_result(&spec.key.to_string())
    }

    /// What the deployment policies say about `request`, nothing planned
    /// or recorded (`POST /api/v1/teams/{team}/validate`, `nestor policy
    /// check`): the request must resolve as a plan's would.
    pub async fn evaluate_policies(&self, request: &DeploymentRequest) -> Result<PolicyVerdict> {
        let spec = self.spec(request).await?;
        let resolved = self.resolve(&spec).await?;
        Ok(self.policy_verdict(&spec, &resolved))
    }

    fn policy_verdict(&self, spec: &Spec, resolved: &Resolved) -> PolicyVerdict {
        let set = self.policies.current();
        let key = &spec.key;
        let (team, env) = (Some(key.team.as_str()), Some(key.environment.as_str()));
        if !set.applies(PolicyHook::Deployment, team, env) {
            return PolicyVerdict::default();
        }
        let ctx = self.policy_context(spec, resolved);
        let resources: Vec<PolicyResource<'_>> = resolved
            .resources
            .iter()
            .map(|p| PolicyResource {
                name: &p.resource.name,
                catalog_ref: p.definition.definition.subject(),
                engine: &p.engine,
                inputs: Some(final_inputs(p, &ctx)),
                definition: &p.definition.definition,
            })
            .collect();
        let input = deployment_input(
            &key.team,
            &key.environment,
            &key.name,
            &spec.labels,
            spec.composition.as_deref(),
            &spec.params,
            &resources,
        );
        set.evaluate(PolicyHook::Deployment, team, env, &input)
    }

    /// Params and names as a render sees them; every output a stand-in
    /// (its value exists only once its resource has rendered).
    fn policy_context(&self, spec: &Spec, resolved: &Resolved) -> TemplateContext {
        TemplateContext {
            params: spec.params.clone(),
            resources: resolved
                .resources
                .iter()
                .map(|p| {
                    let outputs = p
                        .definition
                        .definition
                        .spec
                        .outputs
                        .iter()
                        .map(|o| {
                            let marker = wiring::template_value(
                                &p.resource.name,
                                &o.name,
                                &Default::default(),
                            );
                            (o.name.clone(), marker)
                        })
                        .collect();
                    (p.resource.name.clone(), ResourceOutputs { outputs })
                })
                .collect(),
            team: spec.key.team.clone(),
            environment: spec.key.environment.clone(),
            deployment: spec.key.name.clone(),
            budget: TemplateBudget::new(self.template_limits),
        }
    }
}

/// A resource's inputs with templates rendered and defaults applied; an
/// input wired from an output keeps its template text. When rendering
/// fails (the render reports it later), the config as written.
fn final_inputs(p: &PinnedResource, ctx: &TemplateContext) -> BTreeMap<String, serde_json::Value> {
    let mut inputs = render_inputs(&p.resource, &p.definition.definition, ctx)
        .unwrap_or_else(|_| p.resource.config.clone());
    for (key, value) in &p.resource.config {
        if !references(value).outputs.is_empty() {
            inputs.insert(key.clone(), value.clone());
        }
    }
    inputs
}
