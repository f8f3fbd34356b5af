//! The bundled Terraform engine: one `main.tf.json` holding a `module` block
//! (source and version from the engine config, the inputs as arguments), an
//! `output` block per definition output, and the backend when the engine
//! config names one.
//!
//! Engine config (snake_case or camelCase): `module_source` (required),
//! `module_version`, `backend` (`"s3"`, `{type: s3, config: {...}}` or
//! `{s3: {...}}`; `{team}`-style placeholders expanded), `required_version`,
//! `static_inputs` (fixed module arguments), `input_map` (input → argument
//! name) and `output_map` (definition output → module output).
//!
//! Outputs are Terraform references, `${module.<resource>.<module output>}`.
#![deny(missing_docs)]

use nestor_engine_sdk::{
    export_engine, json, names, Engine, EngineError, EngineInfo, Rendered, Request, Value,
};

/// The engine.
pub struct Terraform;

impl Engine for Terraform {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "terraform",
            env!("CARGO_PKG_VERSION"),
            "Terraform module call as main.tf.json",
        )
    }

    fn render(request: Request) -> Result<Rendered, EngineError> {
        let config = &request.engine_config;
        let source = config.require_str("module_source")?;
        let module_name = names::identifier(&request.resource);

        let mut module = serde_json_map();
        module.insert("source".into(), json!(source));
        if let Some(version) = config.str("module_version") {
            // Terraform refuses a version on anything but a registry source.
            if is_registry_source(&source) {
                module.insert("version".into(), json!(version));
            }
        }
        for (name, value) in request.arguments(str::to_string, |_, v| escape_templates(v))? {
            if matches!(
                name.as_str(),
                "source" | "version" | "providers" | "count" | "for_each" | "depends_on"
            ) {
                return Err(EngineError::InvalidInput(format!(
                    "argument `{name}` collides with a Terraform module meta-argument"
                )));
            }
            module.insert(name, value);
        }

        let mut outputs = serde_json_map();
        let mut rendered = Rendered::new();
        for output in request.definition.outputs() {
            let reference = format!(
                "${{module.{module_name}.{}}}",
                request.output_target(&output.name)
            );
            let mut block = json!({"value": reference});
            if !output.description.is_empty() {
                block["description"] = json!(output.description);
            }
            if output.sensitive {
                block["sensitive"] = json!(true);
            }
            outputs.insert(output.name.clone(), block);
            rendered = rendered.output(output.name, reference);
        }

        let mut document = json!({"module": {module_name: module}});
        if !outputs.is_empty() {
            document["output"] = Value::Object(outputs);
        }
        let mut terraform = serde_json_map();
        if let Some(required) = config.str("required_version") {
            terraform.insert("required_version".into(), json!(required));
        }
        if let Some(backend) = backend(&request)? {
            terraform.insert("backend".into(), backend);
        }
        if !terraform.is_empty() {
            document["terraform"] = Value::Object(terraform);
        }

        let content = nestor_engine_sdk::serde_json::to_string_pretty(&document)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(rendered.artifact("main.tf.json", content + "\n", "application/json"))
    }
}

fn serde_json_map() -> nestor_engine_sdk::serde_json::Map<String, Value> {
    nestor_engine_sdk::serde_json::Map::new()
}

/// `namespace/name/provider` or `host/namespace/name/provider`, optionally
/// with a `//subdir`: the only sources `version` applies to.
fn is_registry_source(source: &str) -> bool {
    if source.starts_with('.')
        || source.starts_with('/')
        || source.contains("::")
        || source.contains("://")
    {
        return false;
    }
    let base = source.split("//").next().unwrap_or(source);
    let parts = base.split('/').count();
    let vcs_host = ["github.com/", "bitbucket.org/", "gitlab.com/"]
        .iter()
        .any(|h| base.starts_with(h));
    (parts == 3 || parts == 4) && !vcs_host && !base.contains('?')
}

/// Terraform's JSON syntax reads `${` and `%{` in strings as templates; input
/// values are data, so escape them.
fn escape_templates(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace("${", "$${").replace("%{", "%%{")),
        Value::Array(items) => Value::Array(items.iter().map(escape_templates).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), escape_templates(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn backend(request: &Request) -> Result<Option<Value>, EngineError> {
    let Some(raw) = request.engine_config.get("backend") else {
        return Ok(None);
    };
    let (kind, mut settings) = match raw {
        Value::String(kind) => (kind.clone(), serde_json_map()),
        Value::Object(map) if map.contains_key("type") => {
            let kind = map["type"]
                .as_str()
                .ok_or_else(|| {
                    EngineError::InvalidConfig("`backend.type` must be a string".into())
                })?
                .to_string();
            let settings = map
                .get("config")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_else(|| {
                    map.iter()
                        .filter(|(k, _)| k.as_str() != "type")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                });
            (kind, settings)
        }
        Value::Object(map) if map.len() == 1 => {
            let (kind, settings) = map.iter().next().expect("one entry");
            (
                kind.clone(),
                settings.as_object().cloned().unwrap_or_default(),
            )
        }
        _ => {
            return Err(EngineError::InvalidConfig(
                "`backend` must be a name (`s3`), `{type, config}` or `{<type>: {...}}`".into(),
            ))
        }
    };
    // One state per resource of a deployment unless the config says otherwise.
    let ctx = &request.context;
    let state_path = format!(
        "{}/{}/{}/{}.tfstate",
        ctx.team, ctx.environment, ctx.deployment, request.resource
    );
    match kind.as_str() {
        "s3" | "oss" | "cos" => {
            settings.entry("key").or_insert_with(|| json!(state_path));
        }
        "gcs" => {
            settings
                .entry("prefix")
                .or_insert_with(|| json!(state_path.trim_end_matches(".tfstate")));
        }
        "azurerm" => {
            settings.entry("key").or_insert_with(|| json!(state_path));
        }
        _ => {}
    }
    let settings = request.expand_value(&Value::Object(settings));
    Ok(Some(json!({ kind: settings })))
}

export_engine!(Terraform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_sources() {
        assert!(is_registry_source("terraform-aws-modules/rds/aws"));
        assert!(is_registry_source(
            "app.terraform.io/acme/rds/aws//modules/db"
        ));
        assert!(!is_registry_source("./modules/rds"));
        assert!(!is_registry_source("git::https://example.com/x.git"));
        assert!(!is_registry_source("github.com/acme/rds"));
    }
}
