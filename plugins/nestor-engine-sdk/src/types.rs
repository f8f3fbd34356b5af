//! The request an engine receives and the answer it gives.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names;

/// What an engine says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// The name compositions and `supported_engines` use (`terraform`).
    pub name: String,
    /// The engine's version; `env!("CARGO_PKG_VERSION")` is the usual choice.
    pub version: String,
    /// One line for `nestor engines list`.
    pub description: String,
}

impl EngineInfo {
    /// An info record.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        EngineInfo {
            name: name.into(),
            version: version.into(),
            description: description.into(),
        }
    }
}

/// One resolved resource to render.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Request {
    /// The resource's name inside its deployment (`database`).
    pub resource: String,
    /// The pinned resource definition.
    pub definition: Definition,
    /// Every input, validated by the host, with defaults applied.
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
    /// This engine's `engine_configs` entry of the definition.
    #[serde(default)]
    pub engine_config: Config,
    /// Other resources' outputs wired into the inputs: at each one's place
    /// in its input the value is a placeholder; render what the tool
    /// resolves there ([`Request::inputs_with_references`]) or refuse it.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// The engine's own placeholders (`{release}`), expanded by
    /// [`Request::expand`] beside the host's; see [`Request::placeholder`].
    #[serde(skip)]
    pub placeholders: Vec<(String, String)>,
    /// The deployment around the resource.
    #[serde(default)]
    pub context: Context,
}

impl Request {
    /// The name of the resource's objects: the host's `object_name`
    /// (`checkout--database`), else `{deployment}-{resource}` as a DNS
    /// label (a 0.1.0 host).
    pub fn qualified_name(&self) -> String {
        if !self.context.object_name.is_empty() {
            self.context.object_name.clone()
        } else if self.context.deployment.is_empty() {
            names::dns_label(&self.resource)
        } else {
            names::dns_label(&format!("{}-{}", self.context.deployment, self.resource))
        }
    }

    /// The namespace of the resource's objects: the engine config's
    /// `namespace` (placeholders expanded), else the host's, else
    /// `{team}-{environment}` (a 0.1.0 host).
    pub fn namespace(&self) -> String {
        if let Some(namespace) = self.engine_config.str("namespace") {
            return self.expand_with(&namespace, &[("namespace", &self.context.namespace)]);
        }
        if !self.context.namespace.is_empty() {
            return self.context.namespace.clone();
        }
        names::dns_label(&format!(
            "{}-{}",
            self.context.team, self.context.environment
        ))
    }

    /// `metadata` for a Kubernetes object of this resource: `name`,
    /// `namespace` (for namespaced kinds), the `nestor.io/*` labels that let
    /// `kubectl get -l` find a deployment's objects, and the annotations:
    /// `argocd.argoproj.io/sync-wave` (the resource's wave, so Argo CD
    /// applies wave n+1 only once wave n is healthy) and the definition.
    pub fn object_metadata(&self, name: &str, namespace: Option<&str>) -> Value {
        let ctx = &self.context;
        let mut labels = serde_json::Map::new();
        for (key, value) in [
            ("nestor.io/team", &ctx.team),
            ("nestor.io/environment", &ctx.environment),
            ("nestor.io/deployment", &ctx.deployment),
            ("nestor.io/resource", &self.resource),
        ] {
            if !value.is_empty() {
                labels.insert(key.into(), Value::String(names::dns_label(value)));
            }
        }
        labels.insert(
            "app.kubernetes.io/managed-by".into(),
            Value::String("nestor".into()),
        );
        let mut annotations = serde_json::Map::new();
        annotations.insert(
            "argocd.argoproj.io/sync-wave".into(),
            Value::String(self.sync_wave()),
        );
        annotations.insert(
            "nestor.io/definition".into(),
            Value::String(format!(
                "{}:{}",
                self.definition.name(),
                self.definition.version()
            )),
        );
        let mut metadata = serde_json::Map::new();
        metadata.insert("name".into(), Value::String(name.to_string()));
        if let Some(namespace) = namespace {
            metadata.insert("namespace".into(), Value::String(namespace.to_string()));
        }
        metadata.insert("labels".into(), Value::Object(labels));
        metadata.insert("annotations".into(), Value::Object(annotations));
        Value::Object(metadata)
    }

    /// A name for a cluster-scoped object of this resource, unique across
    /// teams: `{namespace}--{object name}` (`alpha--dev--checkout--db`).
    pub fn cluster_name(&self) -> String {
        format!("{}--{}", self.namespace(), self.qualified_name())
    }

    /// The `argocd.argoproj.io/sync-wave` annotation every Kubernetes
    /// object of this resource carries: its wave, as text.
    pub fn sync_wave(&self) -> String {
        self.context.wave.to_string()
    }

    /// Replaces `{team}`, `{environment}`, `{deployment}`, `{resource}`,
    /// `{revision}`, `{name}` (the definition's), `{version}`,
    /// `{namespace}`, `{object_name}` and `{wave}` in `text`.
    pub fn expand(&self, text: &str) -> String {
        self.expand_with(text, &[])
    }

    /// Adds a placeholder of the engine's own: `{name}` expands to `value`
    /// everywhere [`Request::expand`] runs (static inputs, base values,
    /// output templates).
    pub fn placeholder(&mut self, name: &str, value: &str) {
        self.placeholders.retain(|(n, _)| n != name);
        self.placeholders
            .push((name.to_string(), value.to_string()));
    }

    /// [`Request::expand`] plus `extra` placeholders, substituted in one
    /// pass so a value is never expanded twice.
    pub fn expand_with(&self, text: &str, extra: &[(&str, &str)]) -> String {
        if !text.contains('{') {
            return text.to_string();
        }
        let ctx = &self.context;
        let revision = ctx.revision.to_string();
        let wave = ctx.wave.to_string();
        let overridden = |name: &str| {
            extra.iter().any(|(n, _)| *n == name)
                || self.placeholders.iter().any(|(n, _)| n == name)
        };
        let namespace = if text.contains("{namespace}") && !overridden("namespace") {
            self.namespace()
        } else {
            String::new()
        };
        let object_name = self.qualified_name();
        let fixed: [(&str, &str); 10] = [
            ("team", &ctx.team),
            ("environment", &ctx.environment),
            ("deployment", &ctx.deployment),
            ("resource", &self.resource),
            ("revision", &revision),
            ("name", self.definition.name()),
            ("version", self.definition.version()),
            ("namespace", &namespace),
            ("object_name", &object_name),
            ("wave", &wave),
        ];
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}');
            let key = close.map(|c| &after[..c]);
            let value = key.and_then(|k| {
                extra
                    .iter()
                    .copied()
                    .chain(
                        self.placeholders
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str())),
                    )
                    .chain(fixed.iter().copied())
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v)
            });
            match (value, close) {
                (Some(v), Some(c)) => {
                    out.push_str(v);
                    rest = &after[c + 1..];
                }
                _ => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// [`Request::expand`] on every string inside `value`.
    pub fn expand_value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.expand(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| self.expand_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), self.expand_value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The inputs with every reference replaced by what `resolve` renders
    /// for it (`Err(reason)` refuses it). Every refusal is collected into
    /// one [`EngineError::RefusedReferences`], which the host reports as
    /// `VALIDATION_FAILED` naming both resources and engines.
    pub fn inputs_with_references(
        &self,
        mut resolve: impl FnMut(&Reference) -> Result<Value, String>,
    ) -> Result<BTreeMap<String, Value>, EngineError> {
        let mut inputs = self.inputs.clone();
        let mut refused = Vec::new();
        for reference in &self.references {
            match resolve(reference) {
                Ok(rendered) => {
                    let Some(slot) = inputs
                        .get_mut(&reference.input)
                        .and_then(|v| pointer_mut(v, &reference.path))
                    else {
                        refused.push(RefusedReference {
                            input: reference.input.clone(),
                            path: reference.path.clone(),
                            reason: "the host placed it where the input has no value".into(),
                        });
                        continue;
                    };
                    *slot = rendered;
                }
                Err(reason) => refused.push(RefusedReference {
                    input: reference.input.clone(),
                    path: reference.path.clone(),
                    reason,
                }),
            }
        }
        if refused.is_empty() {
            Ok(inputs)
        } else {
            Err(EngineError::RefusedReferences(refused))
        }
    }

    /// The declared type at a reference's place: the input's type for a
    /// whole input, `None` inside an input (free-form objects and arrays
    /// declare no type for their parts).
    pub fn declared_type(&self, reference: &Reference) -> Option<String> {
        if !reference.path.is_empty() {
            return None;
        }
        self.definition
            .input_spec(&reference.input)
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Whether a Kubernetes reference object (`{secretKeyRef: ...}`) may
    /// go at the reference's place: inside a free-form input, or as a whole
    /// input declared `object`. A `string` input must get a string, which a
    /// Secret key is not until a controller reads it.
    pub fn admits_object(&self, reference: &Reference) -> Result<(), String> {
        match self.declared_type(reference) {
            None => Ok(()),
            Some(t) if t == "object" => Ok(()),
            Some(t) => Err(format!(
                "input {} is declared `{t}`, and a Secret key reaches it only as a reference object,                  which a `{t}` field does not hold; wire it into a free-form `object` input (such as an env map) instead",
                reference.input
            )),
        }
    }

    /// The tool-side arguments: the engine config's `static_inputs` (placeholders
    /// expanded), then every input under the key `input_map` names for it
    /// (a dotted key nests: `network.subnetGroup`) or else `default_key(name)`;
    /// `value` transforms each input value (escaping, say). Inputs win over
    /// static inputs.
    pub fn arguments(
        &self,
        default_key: impl Fn(&str) -> String,
        value: impl FnMut(&str, &Value) -> Value,
    ) -> Result<serde_json::Map<String, Value>, EngineError> {
        self.arguments_from(&self.inputs, default_key, value)
    }

    /// [`Request::arguments`] over `inputs` (say, those of
    /// [`Request::inputs_with_references`]).
    pub fn arguments_from(
        &self,
        inputs: &BTreeMap<String, Value>,
        default_key: impl Fn(&str) -> String,
        mut value: impl FnMut(&str, &Value) -> Value,
    ) -> Result<serde_json::Map<String, Value>, EngineError> {
        let mut args = serde_json::Map::new();
        if let Some(statics) = self.engine_config.get("static_inputs") {
            let statics = statics.as_object().ok_or_else(|| {
                EngineError::InvalidConfig("`static_inputs` must be a map".into())
            })?;
            for (key, v) in statics {
                insert_path(&mut args, key, self.expand_value(v))?;
            }
        }
        let input_map = self.engine_config.object("input_map");
        for (name, v) in inputs {
            let key = match input_map.and_then(|m| m.get(name)) {
                Some(Value::String(target)) if !target.is_empty() => target.clone(),
                Some(Value::Null) | None => default_key(name),
                Some(other) => {
                    return Err(EngineError::InvalidConfig(format!(
                        "`input_map.{name}` must be a string, not {other}"
                    )))
                }
            };
            insert_path(&mut args, &key, value(name, v))?;
        }
        Ok(args)
    }

    /// The tool-side name of definition output `name`: its `output_map`
    /// entry, else `name`.
    pub fn output_target(&self, name: &str) -> String {
        self.engine_config
            .object("output_map")
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| name.to_string())
    }

    /// Whether the definition marks input `name` as sensitive.
    pub fn is_sensitive(&self, name: &str) -> bool {
        self.definition
            .input_spec(name)
            .and_then(|i| i.get("sensitive"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// The deployment around a resource, its wave and the names the host gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Context {
    /// The team that owns the deployment.
    #[serde(default)]
    pub team: String,
    /// The environment (`staging`).
    #[serde(default)]
    pub environment: String,
    /// The deployment's name.
    #[serde(default)]
    pub deployment: String,
    /// The revision being rendered.
    #[serde(default)]
    pub revision: u64,
    /// The resource's wave, 1-based (0 from a 0.1.0 host).
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

/// A key of a Kubernetes Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The key.
    pub key: String,
}

/// An output of a Pulumi stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackOutputRef {
    /// `organization/project/stack`.
    pub stack: String,
    /// The output's name.
    pub output: String,
}

/// Where an output is found at run time; each field set is one way to reach it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reach {
    /// The value, known at render time: consumers inline it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// A key of a Secret the tool writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// An output of the Pulumi stack the tool runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_output: Option<StackOutputRef>,
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
}

/// Another resource's output wired into one of this resource's inputs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Reference {
    /// The input it goes into.
    pub input: String,
    /// Where inside the input's value (keys and decimal indices); empty: the whole input.
    #[serde(default)]
    pub path: Vec<String>,
    /// The producing resource.
    pub producer: String,
    /// Its engine.
    pub producer_engine: String,
    /// Its output.
    pub output: String,
    /// The output's declared type.
    #[serde(default)]
    pub output_type: String,
    /// Whether the output is sensitive.
    #[serde(default)]
    pub sensitive: bool,
    /// Where the value is found.
    pub reach: Reach,
}

impl Reference {
    /// A name for the reference unique in the request, usable as an
    /// identifier: `{producer}_{output}` with `-` turned into `_`.
    pub fn identifier(&self) -> String {
        format!("{}_{}", self.producer, self.output).replace('-', "_")
    }
}

/// A problem with one key of an engine config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigProblem {
    /// The key's path inside the config (`target_revision`); empty for the whole config.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigProblem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A reference an engine cannot render into what its tool resolves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedReference {
    /// The reference's input.
    pub input: String,
    /// And its path.
    pub path: Vec<String>,
    /// Why.
    pub reason: String,
}

/// The resource definition (canonical form, docs/src/reference/formats.md) with typed accessors;
/// the raw document stays available as `.0`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Definition(pub Value);

impl Definition {
    fn metadata_str(&self, key: &str) -> &str {
        self.0
            .pointer(&format!("/metadata/{key}"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.metadata_str("name")
    }

    /// `metadata.version`.
    pub fn version(&self) -> &str {
        self.metadata_str("version")
    }

    /// `metadata.provider`.
    pub fn provider(&self) -> &str {
        self.metadata_str("provider")
    }

    /// `metadata.category`.
    pub fn category(&self) -> &str {
        self.metadata_str("category")
    }

    /// `metadata.resource_type`.
    pub fn resource_type(&self) -> &str {
        self.metadata_str("resource_type")
    }

    /// `metadata.description`.
    pub fn description(&self) -> &str {
        self.metadata_str("description")
    }

    /// The declared outputs, in order.
    pub fn outputs(&self) -> Vec<OutputSpec> {
        self.0
            .pointer("/spec/outputs")
            .and_then(Value::as_array)
            .map(|outputs| {
                outputs
                    .iter()
                    .filter_map(|o| {
                        Some(OutputSpec {
                            name: o.get("name")?.as_str()?.to_string(),
                            value_type: o
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                            description: o
                                .get("description")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_string(),
                            sensitive: o.get("sensitive").and_then(Value::as_bool).unwrap_or(false),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The names of every input, required then optional.
    pub fn input_names(&self) -> Vec<String> {
        ["/spec/required_inputs", "/spec/optional_inputs"]
            .iter()
            .filter_map(|p| self.0.pointer(p).and_then(Value::as_array))
            .flatten()
            .filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// The declaration of input `name` (required or optional), raw.
    pub fn input_spec(&self, name: &str) -> Option<&Value> {
        ["/spec/required_inputs", "/spec/optional_inputs"]
            .iter()
            .filter_map(|p| self.0.pointer(p).and_then(Value::as_array))
            .flatten()
            .find(|i| i.get("name").and_then(Value::as_str) == Some(name))
    }
}

/// A declared output of the definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSpec {
    /// snake_case name.
    pub name: String,
    /// One of the six value types.
    pub value_type: String,
    /// For humans.
    pub description: String,
    /// Sensitive outputs travel as references only.
    pub sensitive: bool,
}

/// The engine's `engine_configs` entry, with lenient key lookup: `get("module_source")`
/// also finds `moduleSource`, and `get("repoURL")` finds `repo_url`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Config(pub Value);

impl Config {
    /// The value under `key`, its camelCase or its snake_case spelling
    /// (`null` counts as absent).
    pub fn get(&self, key: &str) -> Option<&Value> {
        let map = self.0.as_object()?;
        [
            key.to_string(),
            names::camel_case(key),
            names::snake_case(key),
        ]
        .iter()
        .find_map(|k| map.get(k))
        .or_else(|| {
            // `repoURL` and friends: compare case-insensitively without separators.
            let wanted = names::loose_key(key);
            map.iter()
                .find(|(k, _)| names::loose_key(k) == wanted)
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
    }

    /// A string value; numbers and booleans are accepted and written as text.
    pub fn str(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A string value that must be present.
    pub fn require_str(&self, key: &str) -> Result<String, EngineError> {
        self.str(key).ok_or_else(|| {
            EngineError::InvalidConfig(format!("`{key}` is required in the engine config"))
        })
    }

    /// A boolean value (`true`, `"true"`, `"yes"`).
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Some(true),
                "false" | "no" | "off" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// An object value.
    pub fn object(&self, key: &str) -> Option<&serde_json::Map<String, Value>> {
        self.get(key)?.as_object()
    }
}

/// One file an engine produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Relative path inside the resource's folder, `/`-separated, no `..`.
    pub path: String,
    /// The file's content.
    pub content: String,
    /// Its media type.
    pub media_type: String,
}

/// What a render produced: files, and outputs for the next wave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rendered {
    /// The native files.
    pub artifacts: Vec<Artifact>,
    /// Output name → where the value is found.
    pub outputs: BTreeMap<String, Reach>,
}

impl Rendered {
    /// Nothing yet.
    pub fn new() -> Self {
        Rendered::default()
    }

    /// Adds a file.
    pub fn artifact(
        mut self,
        path: impl Into<String>,
        content: impl Into<String>,
        media_type: impl Into<String>,
    ) -> Self {
        self.artifacts.push(Artifact {
            path: path.into(),
            content: content.into(),
            media_type: media_type.into(),
        });
        self
    }

    /// Adds an output whose value is known at render time.
    pub fn output(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.outputs.insert(name.into(), Reach::value(value));
        self
    }

    /// Adds an output found at `reach`.
    pub fn output_at(mut self, name: impl Into<String>, reach: Reach) -> Self {
        self.outputs.insert(name.into(), reach);
        self
    }
}

/// Why a render failed; the host reports it as `ENGINE_FAILED` with the
/// kind and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The engine config is missing a key or malformed.
    InvalidConfig(String),
    /// An input has a value the engine cannot express.
    InvalidInput(String),
    /// The request asks for something the engine does not support.
    Unsupported(String),
    /// A bug or unexpected condition.
    Internal(String),
    /// The engine config breaks its rules (what [`crate::Engine::validate`] finds).
    ConfigProblems(Vec<ConfigProblem>),
    /// References the engine cannot resolve.
    RefusedReferences(Vec<RefusedReference>),
}

impl EngineError {
    /// The WIT case name (`invalid-config`).
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::InvalidConfig(_) => "invalid-config",
            EngineError::InvalidInput(_) => "invalid-input",
            EngineError::Unsupported(_) => "unsupported",
            EngineError::Internal(_) => "internal",
            EngineError::ConfigProblems(_) => "config-problems",
            EngineError::RefusedReferences(_) => "refused-references",
        }
    }

    /// The message (the problems joined with `; `).
    pub fn message(&self) -> String {
        match self {
            EngineError::InvalidConfig(m)
            | EngineError::InvalidInput(m)
            | EngineError::Unsupported(m)
            | EngineError::Internal(m) => m.clone(),
            EngineError::ConfigProblems(problems) => problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; "),
            EngineError::RefusedReferences(refused) => refused
                .iter()
                .map(|r| format!("{}: {}", r.input, r.reason))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for EngineError {}

/// The value at `path` (keys and decimal indices) inside `value`.
fn pointer_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut current = value;
    for part in path {
        current = match current {
            Value::Object(map) => map.get_mut(part)?,
            Value::Array(items) => items.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Sets `path` (dotted: `a.b.c`) in `map`, creating objects on the way.
fn insert_path(
    map: &mut serde_json::Map<String, Value>,
    path: &str,
    value: Value,
) -> Result<(), EngineError> {
    let mut parts = path.split('.').peekable();
    let mut current = map;
    while let Some(part) = parts.next() {
        if part.is_empty() {
            return Err(EngineError::InvalidConfig(format!(
                "`{path}` is not a valid argument path"
            )));
        }
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        current = entry.as_object_mut().ok_or_else(|| {
            EngineError::InvalidConfig(format!(
                "`{path}` nests inside `{part}`, which is not a map"
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arguments_follow_maps_and_statics() {
        let request: Request = serde_json::from_value(json!({
            "resource": "db",
            "definition": {"metadata": {"name": "mysql", "version": "1.0.0"}},
            "inputs": {"instance_class": "db.t3.micro", "subnet": "s-1"},
            "engine_config": {
                "inputMap": {"subnet": "network.subnetGroup"},
                "static_inputs": {"identifier": "{team}-{environment}-{resource}", "instance_class": "x"},
            },
            "context": {"team": "alpha", "environment": "dev", "deployment": "shop", "revision": 1},
        }))
        .unwrap();
        let args = request
            .arguments(crate::names::camel_case, |_, v| v.clone())
            .unwrap();
        assert_eq!(
            Value::Object(args),
            json!({"identifier": "alpha-dev-db", "instance_class": "x", "instanceClass": "db.t3.micro",
                   "network": {"subnetGroup": "s-1"}})
        );
        assert_eq!(request.output_target("endpoint"), "endpoint");
    }
}
