//! The bundled Helm engine: the release's `values.yaml` and an Argo CD
//! `Application` (`application.yaml`) whose helm source installs the chart
//! with those values inline (`helm.valuesObject`), so the Application alone
//! is enough for Argo CD and `values.yaml` serves `helm template` and review.
//!
//! Engine config (snake_case or camelCase): `chart` (or `path`, a chart
//! inside a git repository), `repo_url` (required), `target_revision`
//! (also spelled `chart_version` or `version`; default `*`, every new chart
//! version), `namespace` (default the team's namespace from the host),
//! `release_name` (default the host's object name), `project` (default the
//! team's AppProject from the host), `argocd_namespace` (where the
//! Application itself lives; default the team's namespace, see below),
//! `destination_server` or `destination_name`, `automated` (default true),
//! `values` or `static_inputs` (base values), `input_map` (input → dotted
//! values path), `output_map` (output → template over `{release}`,
//! `{namespace}`, ...). `{release}` expands in base values and static inputs
//! too (`fullnameOverride: "{release}"`).
//!
//! The Application lives in the team's namespace, named like the
//! resource's other objects (`checkout--cache`): Argo CD's "applications in
//! any namespace" lets the team's AppProject accept it there, where a
//! project accepting Applications in Argo CD's own namespace would be an
//! admin project. With `argocd_namespace` set it lives there instead,
//! named `{namespace}--{object_name}` so teams sharing it never collide.
//!
//! Outputs are known at render time: the release's in-cluster service
//! address, `{release}.{namespace}.svc.cluster.local`, by default. Another
//! resource's output reached as a Secret key is passed as the Kubernetes
//! `EnvVarSource` `{secretKeyRef: {name, key}}` (what a chart puts under an
//! env var's `valueFrom`), which only works in the release's own namespace
//! and only in a free-form (`object`) input; anything else is refused.
#![deny(missing_docs)]

use nestor_engine_sdk::check::{ConfigSpec, Key, Kind, COMMON_KEYS};
use nestor_engine_sdk::{
    export_engine, json, serde_json::Map, yaml, Config, ConfigProblem, Definition, Engine,
    EngineError, EngineInfo, Rendered, Request, Value,
};

/// The keys the engine understands.
const CONFIG: ConfigSpec = ConfigSpec {
    engine: "helm",
    keys: &[
        Key::optional("chart", Kind::Text).or(&["chart_name"]),
        Key::required("repo_url", Kind::Text).or(&["repository", "repo"]),
        Key::optional("target_revision", Kind::Text).or(&["chart_version", "version"]),
        Key::optional("path", Kind::Text),
        Key::optional("namespace", Kind::Text),
        Key::optional("release_name", Kind::Text).or(&["release"]),
        Key::optional("project", Kind::Text),
        Key::optional("argocd_namespace", Kind::Text),
        Key::optional("destination_server", Kind::Text),
        Key::optional("destination_name", Kind::Text),
        Key::optional("automated", Kind::Bool),
        Key::optional("values", Kind::Map),
        COMMON_KEYS[0],
        COMMON_KEYS[1],
        COMMON_KEYS[2],
    ],
};

/// The engine.
pub struct Helm;

impl Engine for Helm {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "helm",
            env!("CARGO_PKG_VERSION"),
            "Helm values.yaml and an Argo CD Application",
        )
    }

    fn validate(definition: &Definition, config: &Config) -> Vec<ConfigProblem> {
        let mut problems = CONFIG.check(config, definition);
        let config = CONFIG.normalize(config);
        if config.str("chart").is_none() && config.str("path").is_none() {
            problems.push(ConfigProblem::new(
                "chart",
                "`chart` (a chart in a Helm repository) or `path` (a chart in a git repository) is required in the helm engine config",
            ));
        }
        problems
    }

    fn render(mut request: Request) -> Result<Rendered, EngineError> {
        let problems = Self::validate(&request.definition, &request.engine_config);
        if !problems.is_empty() {
            return Err(EngineError::ConfigProblems(problems));
        }
        request.engine_config = CONFIG.normalize(&request.engine_config);
        let namespace = request.namespace();
        let release = request
            .engine_config
            .str("release_name")
            .map(|n| request.expand(&n))
            .unwrap_or_else(|| request.qualified_name());
        request.placeholder("release", &release);
        request.placeholder("namespace", &namespace);
        let config = &request.engine_config;
        let repo_url = config.require_str("repo_url")?;
        let path = config.str("path");
        let chart = config.str("chart");
        let target_revision = config.str("target_revision").unwrap_or_else(|| "*".into());

        let inputs = request.inputs_with_references(|reference| {
            request.admits_object(reference)?;
            let secret = reference.reach.secret_key_ref.as_ref().ok_or_else(|| {
                "a Helm release reads another resource's output only from a Kubernetes Secret key; \
                 this output is only a Pulumi stack output"
                    .to_string()
            })?;
            if secret.namespace != namespace {
                return Err(format!(
                    "the Secret {} is in namespace {}, and a pod of this release (namespace {namespace}) reads Secrets only in its own",
                    secret.name, secret.namespace
                ));
            }
            Ok(json!({"secretKeyRef": {"name": secret.name, "key": secret.key}}))
        })?;

        let mut values = match config.object("values") {
            Some(base) => request
                .expand_value(&Value::Object(base.clone()))
                .as_object()
                .cloned()
                .unwrap_or_default(),
            None => Map::new(),
        };
        merge(
            &mut values,
            request.arguments_from(&inputs, str::to_string, |_, v| v.clone())?,
        );

        let mut source = Map::new();
        source.insert("repoURL".into(), json!(repo_url));
        if let Some(chart) = chart {
            source.insert("chart".into(), json!(chart));
        }
        if let Some(path) = path {
            source.insert("path".into(), json!(path));
        }
        source.insert("targetRevision".into(), json!(target_revision));
        source.insert(
            "helm".into(),
            json!({"releaseName": release, "valuesObject": values}),
        );

        let destination = match config.str("destination_name") {
            Some(name) => json!({"name": name, "namespace": namespace}),
            None => json!({
                "server": config.str("destination_server").unwrap_or_else(|| "https://kubernetes.default.svc".into()),
                "namespace": namespace,
            }),
        };
        let mut sync_policy = json!({"syncOptions": ["CreateNamespace=true"]});
        if config.bool("automated").unwrap_or(true) {
            sync_policy["automated"] = json!({"prune": true, "selfHeal": true});
        }
        let project = config.str("project").unwrap_or_else(|| {
            if request.context.project.is_empty() {
                "default".into()
            } else {
                request.context.project.clone()
            }
        });
        // The child Application lives in the team's namespace (Argo CD's
        // "applications in any namespace"), which the team's AppProject
        // accepts as a source namespace: a project that accepted
        // Applications in Argo CD's own namespace would be an admin
        // project. There the object name is unique; in a namespace set by
        // `argocd_namespace`, shared by teams, the name carries the team's.
        let (app_namespace, app_name) = match config.str("argocd_namespace") {
            Some(ns) => (ns, request.cluster_name()),
            None if !request.context.namespace.is_empty() => {
                (request.context.namespace.clone(), request.qualified_name())
            }
            None => (namespace.clone(), request.qualified_name()),
        };
        let mut metadata = request.object_metadata(&app_name, Some(&app_namespace));
        metadata["finalizers"] = json!(["resources-finalizer.argocd.argoproj.io"]);
        let application = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": metadata,
            "spec": {
                "project": project,
                "source": source,
                "destination": destination,
                "syncPolicy": sync_policy,
            },
        });

        let values_text = if values.is_empty() {
            "{}\n".to_string()
        } else {
            yaml::to_string(&Value::Object(values))
        };
        let mut rendered = Rendered::new()
            .artifact("values.yaml", values_text, "application/yaml")
            .artifact(
                "application.yaml",
                yaml::to_string(&application),
                "application/yaml",
            );
        let output_map = config.object("output_map");
        for output in request.definition.outputs() {
            let template = output_map
                .and_then(|m| m.get(&output.name))
                .and_then(Value::as_str)
                .unwrap_or("{release}.{namespace}.svc.cluster.local");
            rendered = rendered.output(output.name, request.expand(template));
        }
        Ok(rendered)
    }
}

/// Deep-merges `overlay` into `base`: maps merge, everything else replaces.
fn merge(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(more)) => merge(existing, more),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

export_engine!(Helm);
