//! Team compositions (docs/src/product/compositions.md): a team's own abstraction over catalog
//! resources, e.g. `web-app` = database + deployment + cache.

use std::collections::BTreeMap;

use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Origin, Timestamp, Validation, ValueType};

/// The `apiVersion` of compositions.
pub const COMPOSITION_API_VERSION: &str = "composer.nestor.io/v1";
/// The canonical `kind` of compositions.
pub const COMPOSITION_KIND: &str = "Composition";

/// A composition in its canonical form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Composition {
    /// Always [`COMPOSITION_API_VERSION`].
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always [`COMPOSITION_KIND`] (`ComposedResource` is normalised).
    pub kind: String,
    /// Name, team and version.
    pub metadata: CompositionMetadata,
    /// Parameters, resources and edges.
    pub spec: CompositionSpec,
}

/// Identity of a composition: `team/name@version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CompositionMetadata {
    /// DNS-1123 label, unique within the team.
    #[cfg_attr(
        feature = "schema",
        schemars(regex(pattern = r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$"))
    )]
    pub name: String,
    /// The owning team: its namespace (`alpha/web-app` ≠ `beta/web-app`).
    pub team: String,
    /// SemVer; `0.1.0` when not given. Immutable like definitions.
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub version: Version,
}

/// What a composition takes and what it is made of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CompositionSpec {
    /// Shown to the teams using it.
    #[serde(default)]
    pub description: String,
    /// The knobs a deployment sets (`size`, `replicas`).
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// The catalog resources it instantiates.
    pub resources: Vec<CompositionResource>,
    /// Explicit edges `from -> to` (`from` is applied first).
    #[serde(default)]
    pub dependencies: Vec<Edge>,
}

/// A composition parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Parameter {
    /// snake_case name, used as `params.NAME` in templates.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// For humans.
    #[serde(default)]
    pub description: String,
    /// Used when the deployment does not set it; without one the parameter is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Constraints, with the same keys as definition inputs.
    #[serde(default, skip_serializing_if = "Validation::is_empty")]
    pub validation: Validation,
    /// A secret: its value is never quoted in an error or a log. Not
    /// serialised when false, so existing compositions keep their hashes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

/// One catalog resource inside a composition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CompositionResource {
    /// Unique within the composition; `resources.NAME.outputs.X` in templates.
    pub name: String,
    /// `NAME`, `NAME:VERSION` or `NAME:REQUIREMENT`.
    pub catalog_ref: String,
    /// The engine to render with; default: the first supported engine that is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Input values: literals or templates.
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
    /// Resources this one needs first (adds edges into it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// A dependency edge: `from` is applied before `to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Edge {
    /// Applied first.
    pub from: String,
    /// Applied after `from` succeeded.
    pub to: String,
}

impl Edge {
    /// Parses `a -> b` (or `a → b`).
    pub fn parse(text: &str) -> Option<Edge> {
        let (from, to) = text.split_once("->").or_else(|| text.split_once('→'))?;
        let (from, to) = (from.trim(), to.trim());
        (!from.is_empty() && !to.is_empty() && !to.contains("->")).then(|| Edge {
            from: from.into(),
            to: to.into(),
        })
    }
}

impl std::fmt::Display for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.from, self.to)
    }
}

impl Composition {
    /// `team/name:version`, the subject of events.
    pub fn subject(&self) -> String {
        format!(
            "{}/{}:{}",
            self.metadata.team, self.metadata.name, self.metadata.version
        )
    }

    /// Content hash over the canonical JSON, for immutability checks.
    pub fn content_hash(&self) -> String {
        use sha2::Digest;
        let json = serde_json::to_vec(self).expect("a composition always serialises");
        hex::encode(sha2::Sha256::digest(json))
    }
}

/// A composition as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PublishedComposition {
    /// The immutable content.
    pub composition: Composition,
    /// SHA-256 of the canonical JSON.
    pub content_hash: String,
    /// When it was first published.
    pub published_at: Timestamp,
    /// Where it came from, if synced from git.
    pub origin: Option<Origin>,
}
