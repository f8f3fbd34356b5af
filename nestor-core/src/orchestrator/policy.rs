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
        // One budget for the request's templates; each resource renders
        // with the outputs of only the resources it names, so building the
        // input stays linear in the number of resources.
        let by_name: std::collections::HashMap<&str, &PinnedResource> = resolved
            .resources
            .iter()
            .map(|p| (p.resource.name.as_str(), p))
            .collect();
        let budget = TemplateBudget::new(self.template_limits);
        let resources: Vec<PolicyResource<'_>> = resolved
            .resources
            .iter()
            .map(|p| PolicyResource {
                name: &p.resource.name,
                catalog_ref: p.definition.definition.subject(),
                engine: &p.engine,
                inputs: Some(final_inputs(
                    p,
                    &self.policy_context(spec, p, &by_name, &budget),
                )),
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

    /// Params and names as a render of `p` sees them; the outputs of the
    /// resources it names are stand-ins (their values exist only once
    /// those resources have rendered).
    fn policy_context(
        &self,
        spec: &Spec,
        p: &PinnedResource,
        by_name: &std::collections::HashMap<&str, &PinnedResource>,
        budget: &TemplateBudget,
    ) -> TemplateContext {
        let producers: BTreeSet<String> = p
            .resource
            .config
            .values()
            .flat_map(|v| references(v).outputs)
            .map(|(from, _)| from)
            .collect();
        TemplateContext {
            params: spec.params.clone(),
            resources: producers
                .iter()
                .filter_map(|name| by_name.get(name.as_str()))
                .map(|q| super::secrets::marker_outputs(q))
                .collect(),
            team: spec.key.team.clone(),
            environment: spec.key.environment.clone(),
            deployment: spec.key.name.clone(),
            budget: budget.clone(),
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
