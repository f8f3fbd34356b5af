//! The `nestor.deployment` policies at plan and apply: the input document
//! built from the resolved request, evaluated before anything renders or
//! is recorded.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;

use super::resolve::{contains_template, render_config, Wired};
use super::*;
use crate::policy::{
    deployment_input_on, DeploymentFields, PolicyHook, PolicyInput, PolicyMessage, PolicyResource,
    PolicyVerdict, ResourceInputs, ResourceList,
};
use crate::template::references;

impl Orchestrator {
    /// Evaluates the deployment policies covering the request's team and
    /// environment: `POLICY_VIOLATION` when one denies, else the warnings.
    pub(super) async fn check_policies(
        &self,
        spec: &Spec,
        resolved: &Resolved,
    ) -> Result<Vec<PolicyMessage>> {
        self.policy_verdict(spec, resolved)
            .await?
            .into_result(&spec.key.to_string())
    }

    /// What the deployment policies say about `request`, nothing planned
    /// or recorded (`POST /api/v1/teams/{team}/validate`, `nestor policy
    /// check`): the request must resolve as a plan's would.
    pub async fn evaluate_policies(&self, request: &DeploymentRequest) -> Result<PolicyVerdict> {
        let spec = self.spec(request).await?;
        let resolved = self.resolve(&spec).await?;
        self.policy_verdict(&spec, &resolved).await
    }

    /// The verdict of the deployment policies, spread over the offload's
    /// lanes for a large plan.
    async fn policy_verdict(&self, spec: &Spec, resolved: &Resolved) -> Result<PolicyVerdict> {
        let set = self.policies.current();
        let key = &spec.key;
        let (team, env) = (Some(key.team.as_str()), Some(key.environment.as_str()));
        if !set.applies(PolicyHook::Deployment, team, env) {
            return Ok(PolicyVerdict::default());
        }
        let offload = self.offload.clone().unwrap_or_else(crate::default_offload);
        let input = self.policy_input(&*offload, spec, resolved).await?;
        Ok(set
            .evaluate_on(&*offload, PolicyHook::Deployment, team, env, &input)
            .await)
    }

    /// The `nestor.deployment` input document of a resolved request (a
    /// large one built on `offload`'s lanes).
    async fn policy_input(
        &self,
        offload: &dyn crate::cpu::Offload,
        spec: &Spec,
        resolved: &Resolved,
    ) -> Result<PolicyInput> {
        let key = &spec.key;
        // One budget for the request's templates; each resource renders
        // with the outputs of only the resources it names, so building the
        // input stays linear in the number of resources.
        let producers = Producers {
            resolved,
            by_name: OnceCell::new(),
        };
        let budget = TemplateBudget::new(self.template_limits);
        let rendered = resolved
            .resources
            .iter()
            .map(|p| self.rendered_inputs(spec, p, &producers, &budget))
            .collect();
        let listed = Listed {
            resources: resolved.resources.clone(),
            rendered,
        };
        let fields = DeploymentFields {
            team: &key.team,
            environment: &key.environment,
            name: &key.name,
            labels: &spec.labels,
            composition: spec.composition.as_deref(),
            params: &spec.params,
        };
        deployment_input_on(offload, &fields, Arc::new(listed), &self.documents).await
    }

    /// A resource's inputs with templates rendered and defaults applied; an
    /// input wired from an output keeps its template text (it is not
    /// rendered: its value exists only once the producer has rendered).
    /// When rendering fails (the render reports it later), the config as
    /// written. `None` for a config with nothing to render: the policy
    /// input shows it as written with its definition's defaults, which is
    /// what rendering it gives (the resolve has checked it).
    fn rendered_inputs(
        &self,
        spec: &Spec,
        p: &PinnedResource,
        producers: &Producers<'_>,
        budget: &TemplateBudget,
    ) -> Option<BTreeMap<String, serde_json::Value>> {
        let wired = &p.wired;
        let renders = p
            .resource
            .config
            .iter()
            .any(|(key, value)| !wired.contains(key) && contains_template(value));
        if !renders {
            return None;
        }
        // The resources whose outputs the wired inputs name.
        let named: BTreeSet<String> = wired
            .iter()
            .filter_map(|key| p.resource.config.get(key))
            .flat_map(|v| references(v).outputs)
            .map(|(from, _)| from)
            .collect();
        let ctx = self.policy_context(spec, &named, producers.by_name(), budget);
        let def = &p.definition.definition;
        Some(
            render_config(&p.resource, def, &ctx, Wired::AsWritten(wired))
                .unwrap_or_else(|_| p.resource.config.clone()),
        )
    }

    /// Params and names as a render sees them; the outputs of `producers`
    /// (the resources it names) are stand-ins (their values exist only
    /// once those resources have rendered).
    fn policy_context(
        &self,
        spec: &Spec,
        producers: &BTreeSet<String>,
        by_name: &HashMap<&str, &PinnedResource>,
        budget: &TemplateBudget,
    ) -> TemplateContext {
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

/// The resources of a resolve by name, looked up only once some config
/// renders (most plans' configs render nothing).
struct Producers<'a> {
    resolved: &'a Resolved,
    by_name: OnceCell<HashMap<&'a str, &'a PinnedResource>>,
}

impl<'a> Producers<'a> {
    fn by_name(&self) -> &HashMap<&'a str, &'a PinnedResource> {
        self.by_name.get_or_init(|| {
            self.resolved
                .resources
                .iter()
                .map(|p| (p.resource.name.as_str(), p))
                .collect()
        })
    }
}

/// A resolve's resources as the policy input lists them, shared with the
/// lanes that build a large input.
struct Listed {
    resources: Arc<[PinnedResource]>,
    /// Each resource's rendered inputs; `None`: its config as written.
    rendered: Vec<Option<BTreeMap<String, serde_json::Value>>>,
}

impl ResourceList for Listed {
    fn len(&self) -> usize {
        self.resources.len()
    }

    fn resource(&self, i: usize) -> PolicyResource<'_> {
        let p = &self.resources[i];
        PolicyResource {
            name: &p.resource.name,
            engine: &p.engine,
            inputs: match &self.rendered[i] {
                Some(values) => ResourceInputs::Rendered(Cow::Borrowed(values)),
                None => ResourceInputs::AsWritten(&p.resource.config),
            },
            pinned: &p.definition,
        }
    }
}
