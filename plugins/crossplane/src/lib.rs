//! The bundled Crossplane engine: one claim (namespaced, the default) or
//! composite resource (`composite: true`) manifest with `spec.parameters`
//! from the inputs, `compositionRef` or `compositionSelector`, and
//! `writeConnectionSecretToRef` so the outputs land in a secret.
//!
//! Engine config (snake_case or camelCase): `api_version` and `kind`
//! (derived from the definition when absent: `{category}.{provider}.nestor.io/v1alpha1`,
//! `PascalCase(resource_type)`), `composition_ref` (name or `{name}`),
//! `composition_selector` (labels), `composition_update_policy`,
//! `namespace` (claims; default the team's namespace from the host),
//! `composite`, `connection_secret` (name; default `{object_name}-conn`),
//! `connection_secret_namespace` (XRs; default `crossplane-system`),
//! `static_inputs`, `input_map` (input → parameter path, default camelCase),
//! `output_map` (definition output → connection secret key).
//!
//! Outputs are keys of the connection secret. Another resource's output
//! reached as a Secret key is passed as a parameter holding Crossplane's
//! secret key selector, `{secretKeyRef: {name, namespace, key}}`, which the
//! Composition resolves; only a free-form (`object`) parameter can hold it,
//! so wiring it into a `string` input is refused (an XRD mirroring the
//! definition would reject the claim). A Pulumi stack output only is
//! refused: a Composition cannot read one.
#![deny(missing_docs)]

use nestor_engine_sdk::check::{ConfigSpec, Key, Kind, COMMON_KEYS};
use nestor_engine_sdk::{
    export_engine, json, names, serde_json::Map, yaml, Config, ConfigProblem, Definition, Engine,
    EngineError, EngineInfo, Reach, Rendered, Request, Value,
};

/// The keys the engine understands.
const CONFIG: ConfigSpec = ConfigSpec {
    engine: "crossplane",
    keys: &[
        Key::optional("api_version", Kind::Text),
        Key::optional("kind", Kind::Text),
        Key::optional("composition_ref", Kind::TextOrMap).or(&["composition"]),
        Key::optional("composition_selector", Kind::Map),
        Key::optional("composition_update_policy", Kind::Text),
        Key::optional("composite", Kind::Bool),
        Key::optional("namespace", Kind::Text),
        Key::optional("connection_secret", Kind::Text),
        Key::optional("connection_secret_namespace", Kind::Text),
        COMMON_KEYS[0],
        COMMON_KEYS[1],
        COMMON_KEYS[2],
    ],
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

    fn validate(definition: &Definition, config: &Config) -> Vec<ConfigProblem> {
        let mut problems = CONFIG.check(config, definition);
        let config = CONFIG.normalize(config);
        if let Some(api_version) = config.str("api_version") {
            if !api_version.contains('/') {
                problems.push(ConfigProblem::new(
                    "api_version",
                    format!("must be group/version, not `{api_version}`"),
                ));
            }
        }
        problems
    }

    fn render(mut request: Request) -> Result<Rendered, EngineError> {
        let problems = Self::validate(&request.definition, &request.engine_config);
        if !problems.is_empty() {
            return Err(EngineError::ConfigProblems(problems));
        }
        request.engine_config = CONFIG.normalize(&request.engine_config);
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
        let kind = config.str("kind").unwrap_or_else(|| {
            let base = names::pascal_case(definition.resource_type());
            if composite {
                format!("X{base}")
            } else {
                base
            }
        });

        let name = request.qualified_name();
        let namespace = request.namespace();
        let secret_name = config
            .str("connection_secret")
            .map(|n| request.expand(&n))
            .unwrap_or_else(|| format!("{name}-conn"));
        let secret_namespace = if composite {
            config
                .str("connection_secret_namespace")
                .unwrap_or_else(|| "crossplane-system".into())
        } else {
            namespace.clone()
        };

        let inputs = request.inputs_with_references(|reference| {
            request.admits_object(reference)?;
            let secret = reference.reach.secret_key_ref.as_ref().ok_or_else(|| {
                "a Composition reads another resource's output only from a Kubernetes Secret key; \
                 this output is only a Pulumi stack output"
                    .to_string()
            })?;
            Ok(json!({"secretKeyRef": {"name": secret.name, "namespace": secret.namespace, "key": secret.key}}))
        })?;

        // Composite resources are cluster-scoped: their name carries the namespace.
        let metadata = if composite {
            request.object_metadata(&request.cluster_name(), None)
        } else {
            request.object_metadata(&name, Some(&namespace))
        };

        let mut spec = Map::new();
        spec.insert(
            "parameters".into(),
            Value::Object(request.arguments_from(&inputs, names::camel_case, |_, v| v.clone())?),
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
            let reach = Reach::secret_key(&secret_name, &secret_namespace, key);
            rendered = rendered.output_at(output.name, reach);
        }
        Ok(rendered)
    }
}

export_engine!(Crossplane);
