//! The bundled Helm engine: the release's `values.yaml` and an Argo CD
//! `Application` (`application.yaml`) whose helm source installs the chart
//! with those values inline (`helm.valuesObject`), so the Application alone
//! is enough for Argo CD and `values.yaml` serves `helm template` and review.
//!
//! Engine config (snake_case or camelCase): `chart` (required), `repo_url`
//! (required), `target_revision` (default `*`), `path` (a chart inside a git
//! repository instead of `chart`), `namespace` (default `{team}-{environment}`),
//! `release_name` (default `{deployment}-{resource}`), `project` (default
//! `default`), `argocd_namespace` (default `argocd`), `destination_server` or
//! `destination_name`, `automated` (default true), `values` or
//! `static_inputs` (base values), `input_map` (input → dotted values path),
//! `output_map` (output → template over `{release}`, `{namespace}`, ...).
//!
//! Outputs default to the release's in-cluster service address,
//! `{release}.{namespace}.svc.cluster.local`.
#![deny(missing_docs)]

use nestor_engine_sdk::{
    export_engine, json, names, serde_json::Map, yaml, Engine, EngineError, EngineInfo, Rendered,
    Request, Value,
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

    fn render(request: Request) -> Result<Rendered, EngineError> {
        let config = &request.engine_config;
        let repo_url = config.require_str("repo_url")?;
        let path = config.str("path");
        let chart = match (&path, config.str("chart")) {
            (_, Some(chart)) => Some(chart),
            (Some(_), None) => None,
            (None, None) => {
                return Err(EngineError::InvalidConfig(
                    "`chart` (or `path`) is required".into(),
                ))
            }
        };
        let target_revision = config.str("target_revision").unwrap_or_else(|| "*".into());
        let namespace = config
            .str("namespace")
            .map(|n| request.expand(&n))
            .unwrap_or_else(|| {
                names::dns_label(&format!(
                    "{}-{}",
                    request.context.team, request.context.environment
                ))
            });
        let release = config
            .str("release_name")
            .map(|n| request.expand(&n))
            .unwrap_or_else(|| request.qualified_name());

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
            request.arguments(str::to_string, |_, v| v.clone())?,
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
        let ctx = &request.context;
        let app_name = names::dns_label(&format!(
            "{}-{}-{}",
            ctx.team,
            ctx.environment,
            request.qualified_name()
        ));
        let application = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {
                "name": app_name,
                "namespace": config.str("argocd_namespace").unwrap_or_else(|| "argocd".into()),
                "labels": {
                    "app.kubernetes.io/managed-by": "nestor",
                    "nestor.io/team": names::dns_label(&ctx.team),
                    "nestor.io/environment": names::dns_label(&ctx.environment),
                    "nestor.io/resource": names::dns_label(&request.resource),
                },
                "annotations": {
                    "nestor.io/definition": format!("{}:{}", request.definition.name(), request.definition.version()),
                },
                "finalizers": ["resources-finalizer.argocd.argoproj.io"],
            },
            "spec": {
                "project": config.str("project").unwrap_or_else(|| "default".into()),
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
            let value = request.expand(
                &template
                    .replace("{release}", &release)
                    .replace("{namespace}", &namespace),
            );
            rendered = rendered.output(output.name, value);
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
