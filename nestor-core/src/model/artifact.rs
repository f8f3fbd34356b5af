//! A file an engine rendered: what executors commit and deployments record.

use serde::{Deserialize, Serialize};

/// One file an engine produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Artifact {
    /// Relative path inside the resource's folder (`main.tf.json`).
    pub path: String,
    /// The file's content.
    pub content: String,
    /// Its media type (`application/json`, `application/yaml`).
    pub media_type: String,
}
