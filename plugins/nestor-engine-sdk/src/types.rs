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
    /// The deployment around the resource.
    #[serde(default)]
    pub context: Context,
}

impl Request {
    /// `{deployment}-{resource}` as a DNS label: a name unique per
    /// deployment that Kubernetes and most tools accept.
    pub fn qualified_name(&self) -> String {
        if self.context.deployment.is_empty() {
            names::dns_label(&self.resource)
        } else {
            names::dns_label(&format!("{}-{}", self.context.deployment, self.resource))
        }
    }

    /// Replaces `{team}`, `{environment}`, `{deployment}`, `{resource}`,
    /// `{revision}`, `{name}` (the definition's) and `{version}` in `text`.
    pub fn expand(&self, text: &str) -> String {
        if !text.contains('{') {
            return text.to_string();
        }
        let ctx = &self.context;
        text.replace("{team}", &ctx.team)
            .replace("{environment}", &ctx.environment)
            .replace("{deployment}", &ctx.deployment)
            .replace("{resource}", &self.resource)
            .replace("{revision}", &ctx.revision.to_string())
            .replace("{name}", self.definition.name())
            .replace("{version}", self.definition.version())
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

    /// The tool-side arguments: the engine config's `static_inputs` (placeholders
    /// expanded), then every input under the key `input_map` names for it
    /// (a dotted key nests: `network.subnetGroup`) or else `default_key(name)`;
    /// `value` transforms each input value (escaping, say). Inputs win over
    /// static inputs.
    pub fn arguments(
        &self,
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
        for (name, v) in &self.inputs {
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

/// The deployment around a resource.
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
}

/// The resource definition (SPEC §1, canonical form) with typed accessors;
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
    /// Output name → a value or reference the tool resolves.
    pub outputs: BTreeMap<String, Value>,
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

    /// Adds an output.
    pub fn output(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.outputs.insert(name.into(), value.into());
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
}

impl EngineError {
    /// The WIT case name (`invalid-config`).
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::InvalidConfig(_) => "invalid-config",
            EngineError::InvalidInput(_) => "invalid-input",
            EngineError::Unsupported(_) => "unsupported",
            EngineError::Internal(_) => "internal",
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            EngineError::InvalidConfig(m)
            | EngineError::InvalidInput(m)
            | EngineError::Unsupported(m)
            | EngineError::Internal(m) => m,
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for EngineError {}

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
