//! The bundled Pulumi engine: a Pulumi YAML program (`Pulumi.yaml`) with one
//! resource whose properties read the inputs from typed project config, and
//! the stack file `Pulumi.{environment}.yaml` holding their values.
//!
//! Inputs that are strings, integers, booleans or arrays of one scalar type
//! become config entries (so a stack can override them with `pulumi config
//! set`); objects and mixed arrays are written into the program as literals.
//! Sensitive inputs are declared `secret: true` and left out of the stack
//! file: set them with `pulumi config set --secret`.
//!
//! Engine config (snake_case or camelCase): `type` (required, the Pulumi
//! resource token, e.g. `aws:rds:Instance`), `project` (default
//! `{deployment}-{resource}`), `stack` (default the environment),
//! `organization` (default `organization`), `name` (the logical name;
//! default the resource), `options` (resource options), `static_inputs`
//! (literal properties), `input_map` (input → property path, default
//! camelCase), `output_map` (output → property path).
//!
//! Outputs are stack references, `{"stackReference": "org/project/stack", "output": name}`.
#![deny(missing_docs)]

use nestor_engine_sdk::{
    export_engine, json, names, serde_json::Map, yaml, Engine, EngineError, EngineInfo, Rendered,
    Request, Value,
};

/// The engine.
pub struct Pulumi;

impl Engine for Pulumi {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "pulumi",
            env!("CARGO_PKG_VERSION"),
            "Pulumi YAML program and stack config",
        )
    }

    fn render(request: Request) -> Result<Rendered, EngineError> {
        let config = &request.engine_config;
        let resource_type = config.require_str("type")?;
        if resource_type.split(':').count() != 3 {
            return Err(EngineError::InvalidConfig(format!(
                "`type` must be a Pulumi type token `package:module:Type`, not `{resource_type}`"
            )));
        }
        let project = config
            .str("project")
            .map(|p| request.expand(&p))
            .unwrap_or_else(|| request.qualified_name());
        let stack = config
            .str("stack")
            .map(|s| request.expand(&s))
            .unwrap_or_else(|| {
                if request.context.environment.is_empty() {
                    "dev".into()
                } else {
                    names::dns_label(&request.context.environment)
                }
            });
        let logical = config
            .str("name")
            .map(|n| request.expand(&n))
            .unwrap_or_else(|| request.resource.clone());

        let mut declarations = Map::new();
        let mut stack_values = Map::new();
        let properties = request.arguments(names::camel_case, |name, value| {
            let Some(declared_type) = config_type(value) else {
                return value.clone();
            };
            let key = names::camel_case(name);
            let mut declaration = json!({"type": declared_type});
            if let Some(items) = value
                .as_array()
                .and_then(|a| a.first())
                .and_then(config_type)
            {
                declaration["items"] = json!({"type": items});
            }
            if request.is_sensitive(name) {
                declaration["secret"] = json!(true);
            } else {
                stack_values.insert(format!("{project}:{key}"), value.clone());
            }
            declarations.insert(key.clone(), declaration);
            json!(format!("${{{key}}}"))
        })?;

        let mut resource = Map::new();
        resource.insert("type".into(), json!(resource_type));
        if !properties.is_empty() {
            resource.insert("properties".into(), Value::Object(properties));
        }
        if let Some(options) = config.object("options") {
            resource.insert("options".into(), Value::Object(options.clone()));
        }

        let mut program = Map::new();
        program.insert("name".into(), json!(project));
        program.insert("runtime".into(), json!("yaml"));
        let description = request.definition.description();
        if !description.is_empty() {
            program.insert("description".into(), json!(description));
        }
        if !declarations.is_empty() {
            program.insert("config".into(), Value::Object(declarations));
        }
        program.insert("resources".into(), json!({ logical.clone(): resource }));

        let organization = config
            .str("organization")
            .unwrap_or_else(|| "organization".into());
        let mut outputs = Map::new();
        let mut rendered = Rendered::new();
        for output in request.definition.outputs() {
            let target = request.output_target(&output.name);
            outputs.insert(
                output.name.clone(),
                json!(format!("${{{logical}.{target}}}")),
            );
            rendered = rendered.output(
                output.name.clone(),
                json!({"stackReference": format!("{organization}/{project}/{stack}"), "output": output.name}),
            );
        }
        if !outputs.is_empty() {
            program.insert("outputs".into(), Value::Object(outputs));
        }

        let stack_file = json!({"config": stack_values});
        Ok(rendered
            .artifact(
                "Pulumi.yaml",
                yaml::to_string(&Value::Object(program)),
                "application/yaml",
            )
            .artifact(
                format!("Pulumi.{stack}.yaml"),
                yaml::to_string(&stack_file),
                "application/yaml",
            ))
    }
}

/// The Pulumi config type that holds `value`, when one does.
fn config_type(value: &Value) -> Option<&'static str> {
    match value {
        Value::String(_) => Some("string"),
        Value::Bool(_) => Some("boolean"),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some("integer"),
        Value::Array(items) if !items.is_empty() => {
            let first = config_type(&items[0]).filter(|t| *t != "array")?;
            items
                .iter()
                .all(|i| config_type(i) == Some(first))
                .then_some("array")
        }
        _ => None,
    }
}

export_engine!(Pulumi);
