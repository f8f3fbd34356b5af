//! Sensitive inputs at plan and apply: refused before anything is recorded
//! when they would carry a literal, and handed to engines as references
//! (the same [`InputReference`]s other resources' outputs travel as), so
//! each engine renders what its tool resolves at run time. An external
//! store reference adds the `ExternalSecret` that materialises it.

use super::*;
use crate::engine::InputReference;
use crate::secret::{check_sensitive, external_secret_name, secret_input_reference, SecretRef};
use crate::template::{references, render_value};

impl Orchestrator {
    /// Every templated sensitive input rendered over the request's params
    /// (other resources' outputs as the markers references become): a
    /// value that is not a secret reference or an output is refused with
    /// `VALIDATION_FAILED` here, before the request is recorded (literal
    /// values were checked when the spec was resolved).
    pub(super) fn check_secrets(&self, spec: &Spec, resolved: &Resolved) -> Result<()> {
        let ctx = TemplateContext {
            params: spec.params.clone(),
            resources: resolved.resources.iter().map(marker_outputs).collect(),
            team: spec.key.team.clone(),
            environment: spec.key.environment.clone(),
            deployment: spec.key.name.clone(),
            budget: TemplateBudget::new(self.template_limits),
        };
        let mut errors = Vec::new();
        for p in resolved.resources.iter() {
            for (key, value) in &p.resource.config {
                let Some((input, _)) = p.definition.definition.input(key) else {
                    continue;
                };
                if !input.sensitive || !references(value).outputs.is_empty() {
                    continue;
                }
                let field = format!("resources.{}.config.{key}", p.resource.name);
                // Template failures are reported by the render itself.
                if let Ok(v) = render_value(value, &ctx) {
                    errors.extend(check_sensitive(&v, &field));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation { errors })
        }
    }
}

/// Replaces every sensitive input given as a secret reference by the reach
/// its engine receives, returning the references and the `ExternalSecret`
/// objects (one per resource with external references) to commit beside
/// the engine's files.
pub(super) fn secret_references(
    def: &ResourceDefinition,
    inputs: &mut BTreeMap<String, serde_json::Value>,
    context: &RenderContext,
) -> (Vec<InputReference>, Option<Artifact>) {
    let mut found = Vec::new();
    let mut external = Vec::new();
    for (name, value) in inputs.iter_mut() {
        let Some((input, _)) = def.input(name) else {
            continue;
        };
        if !input.sensitive {
            continue;
        }
        let Some(secret) = SecretRef::from_value(value) else {
            continue;
        };
        let reference = secret_input_reference(
            name,
            input.value_type.as_str(),
            &secret,
            &context.namespace,
            &context.object_name,
        );
        *value = serde_json::to_value(&reference.reach).unwrap_or_default();
        if let SecretRef::External { store, path, key } = &secret {
            let mut remote = json!({"key": path});
            if let Some(key) = key {
                remote["property"] = json!(key);
            }
            external.push((
                store.clone(),
                json!({"secretKey": name, "remoteRef": remote}),
            ));
        }
        found.push(reference);
    }
    (found, external_secrets(context, external))
}

/// The `ExternalSecret` (external-secrets.io/v1beta1) syncing a resource's
/// external references into the one Secret its engine reads, in the
/// resource's sync wave. The first store is the object's; an entry from
/// another store names its own (`sourceRef.storeRef`).
fn external_secrets(
    context: &RenderContext,
    entries: Vec<(String, serde_json::Value)>,
) -> Option<Artifact> {
    let first = entries.first()?.0.clone();
    let data: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|(store, mut entry)| {
            if store != first {
                entry["sourceRef"] =
                    json!({"storeRef": {"kind": "ClusterSecretStore", "name": store}});
            }
            entry
        })
        .collect();
    let name = external_secret_name(&context.object_name);
    let object = json!({
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ExternalSecret",
        "metadata": {
            "name": name,
            "namespace": context.namespace,
            "annotations": {"argocd.argoproj.io/sync-wave": context.wave.to_string()},
        },
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": first},
            "target": {"name": name, "creationPolicy": "Owner"},
            "data": data,
        },
    });
    Some(Artifact {
        path: "external-secrets.yaml".into(),
        content: serde_yaml::to_string(&object).unwrap_or_default(),
        media_type: "application/yaml".into(),
    })
}

/// What a template sees of `p`'s outputs before they exist: each output
/// as the marker its value will replace.
pub(super) fn marker_outputs(p: &PinnedResource) -> (String, ResourceOutputs) {
    let outputs = p
        .definition
        .definition
        .spec
        .outputs
        .iter()
        .map(|o| {
            let marker = wiring::template_value(&p.resource.name, &o.name, &Default::default());
            (o.name.clone(), marker)
        })
        .collect();
    (p.resource.name.clone(), ResourceOutputs { outputs })
}
