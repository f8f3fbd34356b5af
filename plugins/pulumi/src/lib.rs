//! The bundled Pulumi engine: what the Pulumi Kubernetes Operator runs, and
//! the same program as files for the `pulumi` CLI.
//!
//! - `program.yaml`: a `Program` (`pulumi.com/v1`) holding the Pulumi YAML
//!   program: one resource of the engine config's `type` whose properties
//!   are the inputs, and the definition's outputs;
//! - `stack.yaml`: a `Stack` (`pulumi.com/v1`) running that Program as the
//!   stack of this environment (one stack per environment), with the
//!   backend, secrets provider and service account from the engine config;
//! - `Pulumi.yaml` and `Pulumi.{stack}.yaml`: the same program as a project
//!   (inputs as typed config) and its stack config, for `pulumi preview`.
//!
//! Sensitive inputs are never written: in the Program they are config the
//! Stack reads from the Secret `{object_name}-secrets` (`secretsRef`, key =
//! the input's name), in the project they are left for `pulumi config set
//! --secret`.
//!
//! Engine config (snake_case or camelCase): `type` (required, the Pulumi
//! resource token, e.g. `aws:rds:Instance`), `project` (default the host's
//! object name), `stack` (default the environment), `organization` (default
//! `organization`), `name` (the logical name; default the resource),
//! `options` (resource options), `backend` (state URL, e.g.
//! `s3://bucket`), `secrets_provider`, `service_account` (the Stack's
//! workspace identity), `publish_outputs` (default true), `static_inputs`,
//! `input_map` (input → property path, default camelCase), `output_map`
//! (output → property path).
//!
//! Outputs are the stack's outputs, and (with `publish_outputs`) also keys
//! of the Secret `{object_name}-outputs` the program writes in the team's
//! namespace, so Kubernetes consumers (Helm, Crossplane, Terraform) can read
//! them. Another resource's output arrives as a stack output (read through
//! a `pulumi:pulumi:StackReference`) or as a Secret key in the Stack's
//! namespace (config the Stack reads through `secretsRef`).
#![deny(missing_docs)]

use nestor_engine_sdk::check::{ConfigSpec, Key, Kind, COMMON_KEYS};
use nestor_engine_sdk::{
    export_engine, json, names, serde_json::Map, yaml, Config, ConfigProblem, Definition, Engine,
    EngineError, EngineInfo, Reach, Reference, Rendered, Request, Value,
};

/// The keys the engine understands.
const CONFIG: ConfigSpec = ConfigSpec {
    engine: "pulumi",
    keys: &[
        Key::required("type", Kind::Text).or(&["type_token"]),
        Key::optional("project", Kind::Text),
        Key::optional("stack", Kind::Text),
        Key::optional("organization", Kind::Text).or(&["org"]),
        Key::optional("name", Kind::Text),
        Key::optional("options", Kind::Map),
        Key::optional("backend", Kind::Text),
        Key::optional("secrets_provider", Kind::Text),
        Key::optional("service_account", Kind::Text).or(&["service_account_name"]),
        Key::optional("publish_outputs", Kind::Bool),
        COMMON_KEYS[0],
        COMMON_KEYS[1],
        COMMON_KEYS[2],
    ],
};

/// The engine.
pub struct Pulumi;

impl Engine for Pulumi {
    fn info() -> EngineInfo {
        EngineInfo::new(
            "pulumi",
            env!("CARGO_PKG_VERSION"),
            "Pulumi Kubernetes Operator Program and Stack, and the Pulumi YAML project",
        )
    }

    fn validate(definition: &Definition, config: &Config) -> Vec<ConfigProblem> {
        let mut problems = CONFIG.check(config, definition);
        if let Some(token) = CONFIG.normalize(config).str("type") {
            if token.split(':').count() != 3 {
                problems.push(ConfigProblem::new(
                    "type",
                    format!("must be a Pulumi type token `package:module:Type`, not `{token}`"),
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
        let r = &request;
        let config = &r.engine_config;
        let resource_type = config.require_str("type")?;
        let object = r.qualified_name();
        let project = config
            .str("project")
            .map(|p| names::dns_label(&r.expand(&p)))
            .unwrap_or_else(|| object.clone());
        let stack = config
            .str("stack")
            .map(|s| r.expand(&s))
            .unwrap_or_else(|| {
                if r.context.environment.is_empty() {
                    "dev".into()
                } else {
                    names::dns_label(&r.context.environment)
                }
            });
        let organization = config
            .str("organization")
            .unwrap_or_else(|| "organization".into());
        let logical = config
            .str("name")
            .map(|n| r.expand(&n))
            .unwrap_or_else(|| r.resource.clone());
        let namespace = r.namespace();

        let mut wiring = Wiring::default();
        let inputs = r.inputs_with_references(|reference| wiring.add(reference, &namespace))?;
        let referenced = |name: &str| r.references.iter().any(|x| x.input == name);

        // The project: inputs as typed config, values in the stack file.
        let mut declarations = wiring.declarations.clone();
        let mut stack_values = Map::new();
        let project_properties = r.arguments_from(&inputs, names::camel_case, |name, value| {
            let Some(declared_type) = config_type(value).filter(|_| !referenced(name)) else {
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
            if r.is_sensitive(name) {
                declaration["secret"] = json!(true);
            } else {
                stack_values.insert(format!("{project}:{key}"), value.clone());
            }
            declarations.insert(key.clone(), declaration);
            json!(format!("${{{key}}}"))
        })?;

        // The Program: values inline, sensitive ones read by the Stack.
        let mut configuration = wiring.configuration.clone();
        let mut secrets_ref = wiring.secrets_ref.clone();
        let program_properties = r.arguments_from(&inputs, names::camel_case, |name, value| {
            if !r.is_sensitive(name) || referenced(name) {
                return value.clone();
            }
            let key = names::camel_case(name);
            let kind = if value.is_number() { "Number" } else { "String" };
            configuration.insert(key.clone(), json!({"type": kind}));
            secrets_ref.insert(
                key.clone(),
                json!({"type": "Secret", "secret": {"name": format!("{object}-secrets"), "key": name}}),
            );
            json!(format!("${{{key}}}"))
        })?;

        let publish = config.bool("publish_outputs").unwrap_or(true);
        let mut outputs = Map::new();
        let mut published = Map::new();
        let mut rendered = Rendered::new();
        for output in r.definition.outputs() {
            let expression = format!("${{{logical}.{}}}", r.output_target(&output.name));
            let text = if output.value_type == "string" {
                json!(expression)
            } else {
                json!({"fn::toJSON": expression})
            };
            outputs.insert(output.name.clone(), json!(expression));
            published.insert(output.name.clone(), text);
            let mut reach =
                Reach::stack_output(format!("{organization}/{project}/{stack}"), &output.name);
            if publish {
                reach.secret_key_ref =
                    Reach::secret_key(format!("{object}-outputs"), &namespace, &output.name)
                        .secret_key_ref;
            }
            rendered = rendered.output_at(output.name, reach);
        }

        let resource = |properties: Map<String, Value>| {
            let mut resource = Map::new();
            resource.insert("type".into(), json!(resource_type));
            if !properties.is_empty() {
                resource.insert("properties".into(), Value::Object(properties));
            }
            if let Some(options) = config.object("options") {
                resource.insert("options".into(), Value::Object(options.clone()));
            }
            Value::Object(resource)
        };
        let mut resources = wiring.resources.clone();
        if publish && !published.is_empty() {
            resources.insert(
                "nestor-outputs".into(),
                json!({
                    "type": "kubernetes:core/v1:Secret",
                    "properties": {
                        "metadata": {"name": format!("{object}-outputs"), "namespace": namespace},
                        "stringData": published,
                    },
                }),
            );
        }
        let mut project_resources = resources.clone();
        project_resources.insert(logical.clone(), resource(project_properties));
        resources.insert(logical.clone(), resource(program_properties));

        let mut program = Map::new();
        program.insert("name".into(), json!(project));
        program.insert("runtime".into(), json!("yaml"));
        let description = r.definition.description();
        if !description.is_empty() {
            program.insert("description".into(), json!(description));
        }
        if !declarations.is_empty() {
            program.insert("config".into(), Value::Object(declarations));
        }
        program.insert("resources".into(), Value::Object(project_resources));
        if !outputs.is_empty() {
            program.insert("outputs".into(), Value::Object(outputs.clone()));
        }

        let mut body = Map::new();
        if !configuration.is_empty() {
            body.insert("configuration".into(), Value::Object(configuration));
        }
        body.insert("resources".into(), Value::Object(resources));
        if !outputs.is_empty() {
            body.insert("outputs".into(), Value::Object(outputs));
        }
        let program_object = json!({
            "apiVersion": "pulumi.com/v1",
            "kind": "Program",
            "metadata": r.object_metadata(&project, Some(&namespace)),
            "program": body,
        });

        let mut stack_spec = Map::new();
        stack_spec.insert("stack".into(), json!(format!("{organization}/{stack}")));
        stack_spec.insert("programRef".into(), json!({"name": project}));
        for (key, field) in [
            ("backend", "backend"),
            ("secrets_provider", "secretsProvider"),
            ("service_account", "serviceAccountName"),
        ] {
            if let Some(value) = config.str(key) {
                stack_spec.insert(field.into(), json!(r.expand(&value)));
            }
        }
        if !secrets_ref.is_empty() {
            stack_spec.insert("secretsRef".into(), Value::Object(secrets_ref));
        }
        let stack_object = json!({
            "apiVersion": "pulumi.com/v1",
            "kind": "Stack",
            "metadata": r.object_metadata(&object, Some(&namespace)),
            "spec": stack_spec,
        });

        let stack_file = json!({"config": stack_values});
        Ok(rendered
            .artifact(
                "program.yaml",
                yaml::to_string(&program_object),
                "application/yaml",
            )
            .artifact(
                "stack.yaml",
                yaml::to_string(&stack_object),
                "application/yaml",
            )
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

/// What the references add to the program: StackReference resources, and
/// config the Stack reads from Secrets.
#[derive(Default)]
struct Wiring {
    /// Extra resources (one StackReference per producing stack).
    resources: Map<String, Value>,
    /// Project config declarations (`Pulumi.yaml`).
    declarations: Map<String, Value>,
    /// Program config declarations (the `Program` object).
    configuration: Map<String, Value>,
    /// The Stack's `secretsRef`.
    secrets_ref: Map<String, Value>,
}

impl Wiring {
    /// The program expression for `reference`, or why it cannot be made.
    fn add(&mut self, reference: &Reference, namespace: &str) -> Result<Value, String> {
        if let Some(output) = &reference.reach.stack_output {
            let logical = format!("{}-stack", names::dns_label(&reference.producer));
            self.resources.insert(
                logical.clone(),
                json!({"type": "pulumi:pulumi:StackReference", "properties": {"name": output.stack}}),
            );
            return Ok(json!(format!(
                "${{{logical}.outputs[\"{}\"]}}",
                output.output
            )));
        }
        let Some(secret) = &reference.reach.secret_key_ref else {
            return Err("the Pulumi operator reads another resource's output only as a stack output or a Secret key".into());
        };
        if secret.namespace != namespace {
            return Err(format!(
                "the Secret {} is in namespace {}, and the Pulumi operator reads a Stack's secrets only in its own namespace ({namespace})",
                secret.name, secret.namespace
            ));
        }
        let (project_type, program_type) = match reference.output_type.as_str() {
            "string" | "" => ("string", "String"),
            "integer" | "number" => ("integer", "Number"),
            other => {
                return Err(format!(
                    "a Stack's config read from a Secret is a string or a number; this output is `{other}`"
                ))
            }
        };
        let key = names::camel_case(&format!("ref_{}", reference.identifier()));
        self.declarations
            .insert(key.clone(), json!({"type": project_type, "secret": true}));
        self.configuration
            .insert(key.clone(), json!({"type": program_type}));
        self.secrets_ref.insert(
            key.clone(),
            json!({"type": "Secret", "secret": {"name": secret.name, "key": secret.key}}),
        );
        Ok(json!(format!("${{{key}}}")))
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
