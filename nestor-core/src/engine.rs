//! The engine trait: turn one resolved resource into one IaC tool's native
//! artifacts (SPEC §6). WebAssembly components and native libraries both
//! implement it in `nestor-engines`; the core only knows this trait.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::model::ResourceDefinition;

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

/// Where a render happens: the deployment around the resource.
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
    /// The definition's `engine_configs` entry for this engine (`null` when absent).
    pub engine_config: Value,
    /// The deployment around it.
    pub context: RenderContext,
}

/// One file an engine produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Relative path inside the resource's folder (`main.tf.json`).
    pub path: String,
    /// The file's content.
    pub content: String,
    /// Its media type (`application/json`, `application/yaml`).
    pub media_type: String,
}

/// What a render produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RenderOutput {
    /// The native files.
    pub artifacts: Vec<Artifact>,
    /// Output name → value the next wave can use (a reference the tool resolves).
    pub outputs: BTreeMap<String, Value>,
}

/// A deployment engine. Implementations must be cheap to call concurrently:
/// a wave renders all its resources in parallel.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Name, version and description.
    fn info(&self) -> EngineInfo;

    /// Renders one resource. Failures are [`crate::Error::EngineFailed`]
    /// naming the engine and the cause.
    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput>;
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
