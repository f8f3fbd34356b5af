//! The engine trait: turn one resolved resource into one IaC tool's native
//! artifacts (docs/src/plugins/sdk.md). WebAssembly components and native libraries both
//! implement it in `nestor-engines`; the core only knows this trait.
//!
//! Outputs cross engines as typed references ([`Reach`]): a value known at
//! render time, a Kubernetes Secret key, or a Pulumi stack output. A
//! consumer receives each as an [`InputReference`] and renders what its
//! tool resolves, or refuses it (an [`Error::Validation`] whose field is
//! the reference's [`InputReference::field`]); the orchestrator turns a
//! refusal into `VALIDATION_FAILED` at plan time, naming both sides.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, FieldError, Result};
use crate::model::{Artifact, ResourceDefinition};

/// What an engine says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// The name compositions and `supported_engines` use (`terraform`).
    pub name: String,
    /// The engine's own version.
    pub version: String,
    /// One line for `nestor engines list`.
    pub description: String,
}

/// Where a render happens: the deployment around the resource, its wave,
/// and the names Nestor gives its objects ([`crate::naming`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderContext {
    /// The team that owns the deployment.
    pub team: String,
    /// The environment (`staging`).
    pub environment: String,
    /// The deployment's name.
    pub deployment: String,
    /// The revision being rendered.
    pub revision: u64,
    /// The resource's wave, 1-based: the `argocd.argoproj.io/sync-wave` of
    /// every Kubernetes object it writes (0: outside a deployment).
    #[serde(default)]
    pub wave: u32,
    /// The team's namespace in this environment (`alpha--staging`).
    #[serde(default)]
    pub namespace: String,
    /// The name of the resource's objects (`checkout--database`).
    #[serde(default)]
    pub object_name: String,
    /// The team's Argo CD AppProject (`nestor-alpha`).
    #[serde(default)]
    pub project: String,
}

impl RenderContext {
    /// The context of `resource` in wave `wave` of a deployment, with the
    /// names of [`crate::naming`].
    pub fn for_resource(
        team: &str,
        environment: &str,
        deployment: &str,
        resource: &str,
        revision: u64,
        wave: u32,
    ) -> RenderContext {
        let names = crate::naming::cluster_names(team, environment);
        RenderContext {
            team: team.into(),
            environment: environment.into(),
            deployment: deployment.into(),
            revision,
            wave,
            namespace: names.namespace,
            object_name: crate::naming::object_name(deployment, resource),
            project: names.project,
        }
    }
}

/// A key of a Kubernetes Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The key inside it.
    pub key: String,
}

impl SecretKeyRef {
    /// `namespace/name/key`: how a run's sensitive values are keyed.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.name, self.key)
    }
}

/// An output of a Pulumi stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct StackOutputRef {
    /// `organization/project/stack`.
    pub stack: String,
    /// The stack output's name.
    pub output: String,
}

/// Where one output of a rendered resource is found at run time. Each field
/// that is set is one way to reach the same value; a consumer uses one its
/// tool resolves. Serialised as it is stored in a deployment, e.g.
/// `{"secret_key_ref": {"name": "checkout--db-outputs", "namespace": "alpha--dev", "key": "endpoint"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Reach {
    /// The value itself, known at render time (a Helm release's service
    /// address): any consumer inlines it, templates may embed it in text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A key of a Secret the producing tool writes (a Crossplane or
    /// provider-terraform connection secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// An output of the Pulumi stack the producing tool runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_output: Option<StackOutputRef>,
    /// A reference only the producing tool resolves inside its own files
    /// (`${module.db.endpoint}` from a 0.1.0 engine): never passed to
    /// another resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal: Option<String>,
}

impl Reach {
    /// A value known at render time.
    pub fn value(value: impl Into<Value>) -> Reach {
        Reach {
            value: Some(value.into()),
            ..Reach::default()
        }
    }

    /// A Secret key.
    pub fn secret_key(
        name: impl Into<String>,
        namespace: impl Into<String>,
        key: impl Into<String>,
    ) -> Reach {
        Reach {
            secret_key_ref: Some(SecretKeyRef {
                name: name.into(),
                namespace: namespace.into(),
                key: key.into(),
            }),
            ..Reach::default()
        }
    }

    /// A Pulumi stack output.
    pub fn stack_output(stack: impl Into<String>, output: impl Into<String>) -> Reach {
        Reach {
            stack_output: Some(StackOutputRef {
                stack: stack.into(),
                output: output.into(),
            }),
            ..Reach::default()
        }
    }

    /// Reads an output as an engine or a stored deployment gives it: the
    /// typed form above, or the untyped values of the 0.1.0 ABI — a
    /// `{"secretKeyRef": {name, key, namespace}}` object, a
    /// `{"stackReference", "output"}` object, a string holding `${`
    /// (an engine-internal reference), or any other value (a literal).
    pub fn from_json(value: Value) -> Reach {
        const TYPED: [&str; 4] = ["value", "secret_key_ref", "stack_output", "internal"];
        if let Value::Object(map) = &value {
            if !map.is_empty() && map.keys().all(|k| TYPED.contains(&k.as_str())) {
                #[derive(Deserialize)]
                struct Typed {
                    value: Option<Value>,
                    secret_key_ref: Option<SecretKeyRef>,
                    stack_output: Option<StackOutputRef>,
                    internal: Option<String>,
                }
                if let Ok(t) = serde_json::from_value::<Typed>(value.clone()) {
                    return Reach {
                        value: t.value,
                        secret_key_ref: t.secret_key_ref,
                        stack_output: t.stack_output,
                        internal: t.internal,
                    };
                }
            }
            if let Some(Value::Object(r)) = map.get("secretKeyRef").filter(|_| map.len() == 1) {
                let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
                if let (Some(name), Some(key)) = (text("name"), text("key")) {
                    return Reach::secret_key(name, text("namespace").unwrap_or_default(), key);
                }
            }
            if let (Some(Value::String(stack)), Some(Value::String(output)), 2) =
                (map.get("stackReference"), map.get("output"), map.len())
            {
                return Reach::stack_output(stack.clone(), output.clone());
            }
        }
        match value {
            Value::String(s) if s.contains("${") => Reach {
                internal: Some(s),
                ..Reach::default()
            },
            other => Reach::value(other),
        }
    }

    /// Whether another resource can use it (it is not only engine-internal).
    /// A redacted value (a sensitive output's) reaches nothing.
    pub fn is_reachable(&self) -> bool {
        self.value
            .as_ref()
            .is_some_and(|v| !crate::redact::is_redacted(v))
            || self.secret_key_ref.is_some()
            || self.stack_output.is_some()
    }

    /// Where it is found, for messages: `Secret alpha--dev/checkout--db-outputs key endpoint`.
    pub fn describe(&self) -> String {
        let mut ways = Vec::new();
        if let Some(v) = &self.value {
            ways.push(format!("the value {v}"));
        }
        if let Some(s) = &self.secret_key_ref {
            ways.push(format!("Secret {}/{} key {}", s.namespace, s.name, s.key));
        }
        if let Some(s) = &self.stack_output {
            ways.push(format!("output {} of Pulumi stack {}", s.output, s.stack));
        }
        if let Some(i) = &self.internal {
            ways.push(format!(
                "{i} (resolved only inside the producer's own files)"
            ));
        }
        ways.join(" or ")
    }

    /// The reference without its literal value (what a consumer is sent).
    pub fn without_value(&self) -> Reach {
        Reach {
            value: None,
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl<'de> Deserialize<'de> for Reach {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Reach::from_json)
    }
}

impl From<Value> for Reach {
    fn from(value: Value) -> Reach {
        Reach::from_json(value)
    }
}

/// Another resource's output wired into one of this resource's inputs. The
/// input's value holds the reach (as JSON) at [`InputReference::path`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputReference {
    /// The input it is passed into.
    pub input: String,
    /// Where inside the input's value: object keys and array indices
    /// (decimal); empty when it is the whole value.
    #[serde(default)]
    pub path: Vec<String>,
    /// The producing resource.
    pub producer: String,
    /// The producer's engine.
    pub producer_engine: String,
    /// The producer's output.
    pub output: String,
    /// The output's declared type (`string`, `integer`, ...).
    pub output_type: String,
    /// Whether the output is sensitive.
    #[serde(default)]
    pub sensitive: bool,
    /// Where it is found.
    pub reach: Reach,
}

impl InputReference {
    /// The input and path as a field (`env.DB_HOST`, `hosts[0]`): what an
    /// engine's refusal names in [`Error::Validation`].
    pub fn field(&self) -> String {
        field_path(&self.input, &self.path)
    }
}

/// `input` followed by `path` as a field path: keys joined with `.`,
/// indices as `[i]`.
pub fn field_path(input: &str, path: &[String]) -> String {
    let mut field = input.to_string();
    for part in path {
        if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
            field.push_str(&format!("[{part}]"));
        } else {
            field.push('.');
            field.push_str(part);
        }
    }
    field
}

/// One resolved resource to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderRequest {
    /// The resource's name inside its deployment (`database`).
    pub resource: String,
    /// The pinned definition.
    pub definition: ResourceDefinition,
    /// Every input, validated, with defaults applied.
    pub inputs: BTreeMap<String, Value>,
    /// The other resources' outputs inside those inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<InputReference>,
    /// The definition's `engine_configs` entry for this engine (`null` when absent).
    pub engine_config: Value,
    /// The deployment around it.
    pub context: RenderContext,
}

/// What a render produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenderOutput {
    /// The native files.
    pub artifacts: Vec<Artifact>,
    /// Output name → where the next wave finds it.
    pub outputs: BTreeMap<String, Reach>,
}

/// A deployment engine. Implementations must be cheap to call concurrently:
/// a wave renders all its resources in parallel.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Name, version and description.
    fn info(&self) -> EngineInfo;

    /// Renders one resource. An engine config or input the engine refuses
    /// is [`Error::Validation`] (a refused reference names
    /// [`InputReference::field`]); a failure of the engine itself is
    /// [`Error::EngineFailed`] naming the engine and the cause.
    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput>;

    /// Checks `config`, the definition's `engine_configs` entry for this
    /// engine: unknown keys, required keys, types. Each problem's field is
    /// the key's path inside the config. Engines that cannot check (0.1.0
    /// plugins) accept everything.
    async fn validate_config(
        &self,
        definition: &ResourceDefinition,
        config: &Value,
    ) -> Result<Vec<FieldError>> {
        let _ = (definition, config);
        Ok(Vec::new())
    }
}

/// Where the orchestrator finds engines by name (the registry in
/// `nestor-engines` implements it; tests may use a map).
pub trait EngineProvider: Send + Sync {
    /// The engine called `name`, if loaded.
    fn engine(&self, name: &str) -> Option<std::sync::Arc<dyn Engine>>;
    /// Names of every loaded engine.
    fn engine_names(&self) -> Vec<String>;
}

impl EngineProvider for BTreeMap<String, std::sync::Arc<dyn Engine>> {
    fn engine(&self, name: &str) -> Option<std::sync::Arc<dyn Engine>> {
        self.get(name).cloned()
    }

    fn engine_names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Asks each loaded engine to check its `engine_configs` entry of `def`
/// (entries of engines that are not loaded are left alone). Fields are
/// `spec.engine_configs.<engine>.<key>`. Used on publish and by offline
/// validation.
pub async fn check_engine_configs(
    engines: &dyn EngineProvider,
    def: &ResourceDefinition,
) -> Result<Vec<FieldError>> {
    let mut errors = Vec::new();
    for (name, config) in &def.spec.engine_configs {
        let Some(engine) = engines.engine(name) else {
            continue;
        };
        match engine.validate_config(def, config).await {
            Ok(problems) => errors.extend(problems.into_iter().map(|p| {
                let field = if p.field.is_empty() {
                    format!("spec.engine_configs.{name}")
                } else {
                    format!("spec.engine_configs.{name}.{}", p.field)
                };
                FieldError::new(field, p.message)
            })),
            // An engine that failed to load cannot judge; publishing is not
            // blocked by a broken plugin (its renders fail with the cause).
            Err(Error::EngineFailed { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reach_reads_typed_and_untyped_outputs() {
        let typed = Reach::secret_key("db-conn", "alpha--dev", "endpoint");
        let text = serde_json::to_value(&typed).unwrap();
        assert_eq!(
            text,
            json!({"secret_key_ref": {"name": "db-conn", "namespace": "alpha--dev", "key": "endpoint"}})
        );
        assert_eq!(Reach::from_json(text), typed);
        assert_eq!(
            Reach::from_json(
                json!({"secretKeyRef": {"name": "db-conn", "key": "endpoint", "namespace": "ns"}})
            ),
            Reach::secret_key("db-conn", "ns", "endpoint")
        );
        assert_eq!(
            Reach::from_json(json!({"stackReference": "o/p/s", "output": "url"})),
            Reach::stack_output("o/p/s", "url")
        );
        let internal = Reach::from_json(json!("${module.db.endpoint}"));
        assert!(!internal.is_reachable());
        assert_eq!(
            Reach::from_json(json!("cache.ns.svc")),
            Reach::value("cache.ns.svc")
        );
        assert_eq!(
            Reach::from_json(json!({"a": 1})),
            Reach::value(json!({"a": 1}))
        );
        assert_eq!(
            field_path("env", &["DB_HOST".into()]),
            "env.DB_HOST".to_string()
        );
        assert_eq!(field_path("hosts", &["0".into()]), "hosts[0]".to_string());
    }
}
