//! The bundled Crossplane engine: one claim (namespaced, the default) or
//! composite resource (`composite: true`) manifest with `spec.parameters`
//! from the inputs, `compositionRef` or `compositionSelector`, and
//! `writeConnectionSecretToRef` so the outputs land in a secret.
//!
//! Engine config (snake_case or camelCase): `api_version` and `kind`
//! (derived from the definition when absent: `{category}.{provider}.nestor.io/v1alpha1`,
//! `PascalCase(resource_type)`), `composition_ref` (name or `{name}`),
//! `composition_selector` (labels), `composition_update_policy`,
//! `namespace` (claims; default `{team}-{environment}`), `composite`,
//! `connection_secret` (name; default `{deployment}-{resource}-conn`),
//! `connection_secret_namespace` (XRs; default `crossplane-system`),
//! `static_inputs`, `input_map` (input → parameter path, default camelCase),
//! `output_map` (definition output → connection secret key).
//!
//! Outputs are Kubernetes secret references:
//! `{"secretKeyRef": {"name", "key", "namespace"}}`.
#![deny(missing_docs)]

use nestor_engine_sdk::{
    export_engine, json, names, serde_json::Map, yaml, Engine, EngineError, EngineInfo, Rendered,
    Request, Value,
};

/// The engine.
pub struct Crossplane;

impl Engine for Crossplane {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "crossplane",
            env!("CARGO_PKG_VERSION"),
            "Crossplane claim or composite resource manifest",
        )
    }

    fn render(request: Request) -> Result<Rendered, EngineError> {
        let config = &request.engine_config;
        let definition = &request.definition;
        let composite = config.bool("composite").unwrap_or(false);
        let api_version = config.str("api_version").unwrap_or_else(|| {
            format!(
                "{}.{}.nestor.io/v1alpha1",
                names::dns_label(definition.category()),
                names::dns_label(definition.provider())
            )
        });
        if !api_version.contains('/') {
            return Err(EngineError::InvalidConfig(format!(
                "`api_version` must be group/version, not `{api_version}`"
            )));
        }
        let kind = config.str("kind").unwrap_or_else(|| {
            let base = names::pascal_case(definition.resource_type());
            if composite {
                format!("X{base}")
            } else {
                base
            }
        });

        let name = request.qualified_name();
        let namespace = config
            .str("namespace")
            .map(|n| request.expand(&n))
            .unwrap_or_else(|| {
                names::dns_label(&format!(
                    "{}-{}",
                    request.context.team, request.context.environment
                ))
            });
        let secret_name = config
            .str("connection_secret")
            .map(|n| request.expand(&n))
            .unwrap_or_else(|| names::dns_label(&format!("{name}-conn")));
        let secret_namespace = if composite {
            config
                .str("connection_secret_namespace")
                .unwrap_or_else(|| "crossplane-system".into())
        } else {
            namespace.clone()
        };

        let mut metadata = json!({
            "name": name,
            "labels": labels(&request),
            // No revision here: a manifest that changes on every apply
            // would make every plan show a change. The GitOps commit
            // message carries the revision.
            "annotations": {
                "nestor.io/definition": format!("{}:{}", definition.name(), definition.version()),
            },
        });
        if !composite {
            metadata["namespace"] = json!(namespace);
        }

        let mut spec = Map::new();
        spec.insert(
            "parameters".into(),
            Value::Object(request.arguments(names::camel_case, |_, v| v.clone())?),
        );
        match config.get("composition_ref") {
            Some(Value::String(name)) => {
                spec.insert(
                    "compositionRef".into(),
                    json!({"name": request.expand(name)}),
                );
            }
            Some(Value::Object(reference))
                if reference.get("name").is_some_and(Value::is_string) =>
            {
                spec.insert("compositionRef".into(), json!({"name": reference["name"]}));
            }
            Some(other) => {
                return Err(EngineError::InvalidConfig(format!(
                    "`composition_ref` must be a name or {{name}}, not {other}"
                )))
            }
            None => {}
        }
        if let Some(selector) = config.object("composition_selector") {
            let match_labels = selector
                .get("matchLabels")
                .and_then(Value::as_object)
                .unwrap_or(selector);
            spec.insert(
                "compositionSelector".into(),
                json!({"matchLabels": match_labels}),
            );
        }
        if let Some(policy) = config.str("composition_update_policy") {
            spec.insert("compositionUpdatePolicy".into(), json!(policy));
        }
        let mut secret_ref = json!({"name": secret_name});
        if composite {
            secret_ref["namespace"] = json!(secret_namespace);
        }
        spec.insert("writeConnectionSecretToRef".into(), secret_ref);

        let manifest =
            json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec});
        let file = format!("{}.yaml", names::dns_label(&kind));
        let mut rendered =
            Rendered::new().artifact(file, yaml::to_string(&manifest), "application/yaml");
        for output in definition.outputs() {
            let key = request.output_target(&output.name);
            rendered = rendered.output(
                output.name,
                json!({"secretKeyRef": {"name": secret_name, "key": key, "namespace": secret_namespace}}),
            );
        }
        Ok(rendered)
    }
}

/// Labels that let `kubectl get -l` find everything one deployment made.
fn labels(request: &Request) -> Value {
    let ctx = &request.context;
    let mut labels = Map::new();
    for (key, value) in [
        ("nestor.io/team", &ctx.team),
        ("nestor.io/environment", &ctx.environment),
        ("nestor.io/deployment", &ctx.deployment),
        ("nestor.io/resource", &request.resource),
    ] {
        if !value.is_empty() {
            labels.insert(key.into(), json!(names::dns_label(value)));
        }
    }
    labels.insert("app.kubernetes.io/managed-by".into(), json!("nestor"));
    Value::Object(labels)
}

export_engine!(Crossplane);
