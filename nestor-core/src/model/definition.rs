//! The canonical form of a resource definition (docs/src/reference/formats.md).
//!
//! Every alias the parser accepts is normalised into these types, so the rest
//! of Nestor only ever sees one spelling. Serialising a definition yields the
//! canonical document, and the canonical JSON of two definitions is what the
//! immutability rule compares.

use std::collections::BTreeMap;

use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `apiVersion` of resource definitions.
pub const DEFINITION_API_VERSION: &str = "catalog.nestor.io/v1";
/// The canonical `kind` of resource definitions.
pub const DEFINITION_KIND: &str = "ResourceDefinition";

/// A versioned infrastructure resource definition: one catalog entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ResourceDefinition {
    /// Always [`DEFINITION_API_VERSION`]; kept so the canonical form is a
    /// complete document that can be written back to a catalog repository.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always [`DEFINITION_KIND`] (the `ComponentDefinition` alias is normalised).
    pub kind: String,
    /// Identity, classification and lifecycle flags.
    pub metadata: Metadata,
    /// Inputs, outputs, engines and dependencies.
    pub spec: DefinitionSpec,
}

/// Identity and classification of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Metadata {
    /// DNS-1123 label; together with `version` the definition's identity.
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$"))
    )]
    pub name: String,
    /// SemVer 2.0 version; immutable once published.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub version: Version,
    /// Cloud or platform (`aws`, `gcp`, `k8s`...): a list filter and a
    /// breaking field (changing it is a breaking change).
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))
    )]
    pub provider: String,
    /// Broad kind of resource (`database`, `cache`...): a list filter.
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))
    )]
    pub category: String,
    /// Specific kind within the category (`mysql`); changing it is breaking.
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))
    )]
    pub resource_type: String,
    /// Free text, searched by `/search`.
    #[serde(default)]
    pub description: String,
    /// Who to ask about this definition.
    #[serde(default)]
    pub maintainers: Vec<String>,
    /// Searchable, filterable key/value pairs.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Free-form metadata that Nestor stores but does not interpret.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// How battle-tested the definition is.
    #[serde(default)]
    pub maturity: Maturity,
    /// Who supports it.
    #[serde(default)]
    pub support_level: SupportLevel,
    /// A deprecated definition is still served, flagged with its message.
    #[serde(default)]
    pub deprecated: bool,
    /// Why it is deprecated and what to use instead.
    #[serde(default)]
    pub deprecation_message: String,
}

/// Maturity of a definition (`alpha` by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Maturity {
    /// Experimental.
    #[default]
    Alpha,
    /// Feature complete, still settling.
    Beta,
    /// Production ready.
    Stable,
}

/// Support level of a definition (`community` by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SupportLevel {
    /// Best effort.
    #[default]
    Community,
    /// Supported by the platform team.
    Supported,
}

/// What a definition takes, gives and needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DefinitionSpec {
    /// Engines able to render this definition; never empty.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub supported_engines: Vec<String>,
    /// Inputs a user must set; they have no default.
    #[serde(default)]
    pub required_inputs: Vec<Input>,
    /// Inputs a user may set; usually with a default.
    #[serde(default)]
    pub optional_inputs: Vec<Input>,
    /// Values the deployed resource offers to the next wave.
    #[serde(default)]
    pub outputs: Vec<Output>,
    /// Direct dependencies (transitive ones are never checked).
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// Free-form configuration, one map per supported engine.
    #[serde(default)]
    pub engine_configs: BTreeMap<String, Value>,
}

impl ResourceDefinition {
    /// `name:version`, the subject of events and the key of reports.
    pub fn subject(&self) -> String {
        format!("{}:{}", self.metadata.name, self.metadata.version)
    }

    /// Every input, required first, with whether it is required.
    pub fn inputs(&self) -> impl Iterator<Item = (&Input, bool)> {
        self.spec
            .required_inputs
            .iter()
            .map(|i| (i, true))
            .chain(self.spec.optional_inputs.iter().map(|i| (i, false)))
    }

    /// The input called `name`, with whether it is required.
    pub fn input(&self, name: &str) -> Option<(&Input, bool)> {
        self.inputs().find(|(i, _)| i.name == name)
    }

    /// The canonical JSON value: what immutability compares and what is stored.
    pub fn canonical_json(&self) -> Value {
        serde_json::to_value(self).expect("a definition always serialises")
    }

    /// A SHA-256 over the canonical JSON, so stores can compare content
    /// without loading it. Serialising the struct directly is canonical:
    /// fields come in declaration order and every map is ordered (a
    /// `BTreeMap`, or a `serde_json` map, which sorts its keys).
    pub fn content_hash(&self) -> String {
        use sha2::Digest;
        let json = serde_json::to_vec(self).expect("a definition always serialises");
        hex::encode(sha2::Sha256::digest(json))
    }
}

/// An input of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Input {
    /// snake_case, unique across required and optional inputs.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[a-z][a-z0-9_]*$")))]
    pub name: String,
    /// The value's type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Shown to users composing the resource.
    #[serde(default)]
    pub description: String,
    /// Sensitive values are redacted in plans and logs.
    #[serde(default)]
    pub sensitive: bool,
    /// Default for optional inputs; required inputs have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Constraints a value must satisfy.
    #[serde(default, skip_serializing_if = "Validation::is_empty")]
    pub validation: Validation,
}

/// An output of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Output {
    /// snake_case, unique.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^[a-z][a-z0-9_]*$")))]
    pub name: String,
    /// The value's type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Shown to users wiring outputs into other resources.
    #[serde(default)]
    pub description: String,
    /// Sensitive outputs travel as secret references only.
    #[serde(default)]
    pub sensitive: bool,
}

/// A direct dependency on another definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Dependency {
    /// The definition depended upon.
    pub name: String,
    /// A Cargo-syntax requirement (`^1.5`).
    pub version: String,
}

/// The six value types of inputs and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ValueType {
    /// UTF-8 text.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// true or false.
    Boolean,
    /// A list.
    Array,
    /// A map.
    Object,
}

impl ValueType {
    /// Every type, in the documented order.
    pub const ALL: [ValueType; 6] = [
        ValueType::String,
        ValueType::Integer,
        ValueType::Number,
        ValueType::Boolean,
        ValueType::Array,
        ValueType::Object,
    ];

    /// The spelling used in documents.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Number => "number",
            ValueType::Boolean => "boolean",
            ValueType::Array => "array",
            ValueType::Object => "object",
        }
    }

    /// Parses the document spelling.
    pub fn parse(s: &str) -> Option<ValueType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether `value` is of this type (an integer is also a number).
    pub fn matches(self, value: &Value) -> bool {
        match self {
            ValueType::String => value.is_string(),
            ValueType::Integer => value.is_i64() || value.is_u64(),
            ValueType::Number => value.is_number(),
            ValueType::Boolean => value.is_boolean(),
            ValueType::Array => value.is_array(),
            ValueType::Object => value.is_object(),
        }
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Constraints on an input's value. Which keys fit which type is checked by
/// the validator: `pattern` (string), `min_length`/`max_length` (string,
/// array), `min`/`max` (integer, number), `enum` (any scalar).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Validation {
    /// A regular expression the whole value must match somewhere (applied as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Smallest length (characters or items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// Largest length (characters or items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// Smallest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<serde_json::Number>,
    /// Largest value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<serde_json::Number>,
    /// The allowed values.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
}

impl Validation {
    /// True when no constraint is set.
    pub fn is_empty(&self) -> bool {
        *self == Validation::default()
    }
}
