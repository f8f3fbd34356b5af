//! The bundled Terraform engine: `main.tf.json` holding a `module` block
//! (source and version from the engine config, the inputs as arguments), an
//! `output` block per definition output and the backend when the engine
//! config names one; and beside it `workspace.yaml`, a provider-terraform
//! `Workspace` (`tf.upbound.io/v1beta1`) that runs that very module in the
//! cluster.
//!
//! The Workspace carries the module inline (`source: Inline`,
//! `inlineFormat: JSON`, `module` = the main.tf.json text): a git source
//! would have to be pinned to the commit that holds the Workspace itself,
//! which does not exist yet when the engine renders. It writes the
//! module's outputs to its connection secret (`writeConnectionSecretToRef`:
//! provider-terraform publishes every output there, strings as they are and
//! other types as JSON), so other resources reach them as Secret keys.
//!
//! Engine config (snake_case or camelCase): `module_source` (required),
//! `module_version`, `backend` (`"s3"`, `{type: s3, config: {...}}` or
//! `{s3: {...}}`; `{team}`-style placeholders expanded), `required_version`,
//! `provider_config` (the Workspace's ProviderConfig, default `default`),
//! `connection_secret` (default `{object_name}-outputs`), `static_inputs`,
//! `input_map` and `output_map` (definition output → module output).
//!
//! Another resource's output arrives as a Secret key: it becomes a root
//! `variable` (`ref_<producer>_<output>`), the module argument reads
//! `${var.…}`, and the Workspace sets `TF_VAR_…` from the Secret key
//! (`env[].secretKeyRef`), which Terraform reads as the variable's value.
//! A Pulumi stack output is refused: Terraform cannot read one.
#![deny(missing_docs)]

use nestor_engine_sdk::check::{ConfigSpec, Key, Kind, COMMON_KEYS};
use nestor_engine_sdk::{
    export_engine, json, names, yaml, Config, ConfigProblem, Definition, Engine, EngineError,
    EngineInfo, Reach, Reference, Rendered, Request, Value,
};

/// The keys the engine understands.
const CONFIG: ConfigSpec = ConfigSpec {
    engine: "terraform",
    keys: &[
        Key::required("module_source", Kind::Text).or(&["source", "module"]),
        Key::optional("module_version", Kind::Text).or(&["version"]),
        Key::optional("backend", Kind::TextOrMap),
        Key::optional("required_version", Kind::Text),
        Key::optional("provider_config", Kind::Text).or(&["provider_config_ref"]),
        Key::optional("connection_secret", Kind::Text),
        COMMON_KEYS[0],
        COMMON_KEYS[1],
        COMMON_KEYS[2],
    ],
};

/// The engine.
pub struct Terraform;

impl Engine for Terraform {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "terraform",
            env!("CARGO_PKG_VERSION"),
            "Terraform module as main.tf.json and a provider-terraform Workspace",
        )
    }

    fn validate(definition: &Definition, config: &Config) -> Vec<ConfigProblem> {
        CONFIG.check(config, definition)
    }

    fn render(mut request: Request) -> Result<Rendered, EngineError> {
        let problems = CONFIG.check(&request.engine_config, &request.definition);
        if !problems.is_empty() {
            return Err(EngineError::ConfigProblems(problems));
        }
        request.engine_config = CONFIG.normalize(&request.engine_config);
        let config = &request.engine_config;
        let source = config.require_str("module_source")?;
        let module_name = names::identifier(&request.resource);
        let namespace = request.namespace();

        // Input values are data: `${` in them is escaped before the
        // references (which are Terraform expressions) are put in.
        let mut escaped = request.clone();
        for value in escaped.inputs.values_mut() {
            *value = escape_templates(value);
        }
        let mut variables = serde_json_map();
        let mut env = Vec::new();
        let inputs = escaped.inputs_with_references(|reference| {
            let variable = format!("ref_{}", names::identifier(&reference.identifier()));
            let secret = secret_of(reference)?;
            let mut block = json!({
                "type": variable_type(&reference.output_type),
                "description": format!("output {} of {} ({})", reference.output, reference.producer, reference.producer_engine),
            });
            if reference.sensitive {
                block["sensitive"] = json!(true);
            }
            variables.insert(variable.clone(), block);
            env.push(json!({
                "name": format!("TF_VAR_{variable}"),
                "secretKeyRef": {"name": secret.name, "namespace": secret.namespace, "key": secret.key},
            }));
            Ok(json!(format!("${{var.{variable}}}")))
        })?;

        let mut module = serde_json_map();
        module.insert("source".into(), json!(source));
        if let Some(version) = config.str("module_version") {
            // Terraform refuses a version on anything but a registry source.
            if is_registry_source(&source) {
                module.insert("version".into(), json!(version));
            }
        }
        for (name, value) in request.arguments_from(&inputs, str::to_string, |_, v| v.clone())? {
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

        let secret_name = config
            .str("connection_secret")
            .map(|n| request.expand(&n))
            .unwrap_or_else(|| format!("{}-outputs", request.qualified_name()));
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
            let reach = Reach::secret_key(&secret_name, &namespace, &output.name);
            rendered = rendered.output_at(output.name, reach);
        }

        let mut document = serde_json_map();
        if !variables.is_empty() {
            document.insert("variable".into(), Value::Object(variables));
        }
        document.insert("module".into(), json!({ module_name: module }));
        if !outputs.is_empty() {
            document.insert("output".into(), Value::Object(outputs));
        }
        let mut terraform = serde_json_map();
        if let Some(required) = config.str("required_version") {
            terraform.insert("required_version".into(), json!(required));
        }
        if let Some(backend) = backend(&request)? {
            terraform.insert("backend".into(), backend);
        }
        if !terraform.is_empty() {
            document.insert("terraform".into(), Value::Object(terraform));
        }

        let content = nestor_engine_sdk::serde_json::to_string_pretty(&Value::Object(document))
            .map_err(|e| EngineError::Internal(e.to_string()))?
            + "\n";
        let workspace = workspace(&request, &content, env, &secret_name, &namespace);
        Ok(rendered
            .artifact("main.tf.json", content, "application/json")
            .artifact(
                "workspace.yaml",
                yaml::to_string(&workspace),
                "application/yaml",
            ))
    }
}

/// The provider-terraform Workspace running `module` (the main.tf.json
/// text). Workspaces are cluster-scoped, so the name carries the namespace.
fn workspace(
    request: &Request,
    module: &str,
    env: Vec<Value>,
    secret_name: &str,
    namespace: &str,
) -> Value {
    let mut for_provider = json!({
        "source": "Inline",
        "inlineFormat": "JSON",
        "module": module,
    });
    if !env.is_empty() {
        for_provider["env"] = Value::Array(env);
    }
    let provider_config = request
        .engine_config
        .str("provider_config")
        .unwrap_or_else(|| "default".into());
    json!({
        "apiVersion": "tf.upbound.io/v1beta1",
        "kind": "Workspace",
        "metadata": request.object_metadata(&request.cluster_name(), None),
        "spec": {
            "forProvider": for_provider,
            "providerConfigRef": {"name": provider_config},
            "writeConnectionSecretToRef": {"name": secret_name, "namespace": namespace},
        },
    })
}

/// The Secret key a reference is read from; Terraform has no way to read a
/// Pulumi stack output.
fn secret_of(reference: &Reference) -> Result<nestor_engine_sdk::SecretKeyRef, String> {
    reference.reach.secret_key_ref.clone().ok_or_else(|| {
        "Terraform reads another resource's output only from a Kubernetes Secret key (as a TF_VAR_ variable set by the Workspace); \
         this output is only a Pulumi stack output"
            .to_string()
    })
}

/// The Terraform type of a variable holding an output of `output_type`
/// (`TF_VAR_` values of complex types are parsed as HCL).
fn variable_type(output_type: &str) -> &'static str {
    match output_type {
        "integer" | "number" => "number",
        "boolean" => "bool",
        "array" => "list(any)",
        "object" => "map(any)",
        _ => "string",
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
