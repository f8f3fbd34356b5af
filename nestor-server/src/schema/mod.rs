//! JSON Schemas of the files users write: resource definitions,
//! compositions, deployment files and `nestor.yaml`.
//!
//! `cargo run -p xtask --features schemas -- docs` generates them from the types (module
//! `generate`, feature `schema`) into `docs/src/schemas/`, where CI checks
//! they are current; the binary embeds those files, so `nestor schema
//! KIND` prints exactly what the docs publish and what every example's
//! `# yaml-language-server: $schema=…` line names, without the schema
//! generator in every build.

#[cfg(feature = "schema")]
mod generate;

#[cfg(feature = "schema")]
mod responses;

#[cfg(feature = "schema")]
pub use generate::generate;
#[cfg(feature = "schema")]
pub use responses::responses;

/// The schemas of the API's response bodies as published under
/// `docs/src/schemas/` (JSON text): `{"$defs": {TypeName: schema}}`.
pub fn published_responses() -> &'static str {
    include_str!("../../../docs/src/schemas/api-responses.schema.json")
}

/// A file format with a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// A resource definition (`catalog.nestor.io/v1`).
    Definition,
    /// A team composition (`composer.nestor.io/v1`).
    Composition,
    /// A deployment file, `nestor.deploy.yaml` (`deploy.nestor.io/v1`).
    Deployment,
    /// The configuration file, `nestor.yaml`.
    Config,
    /// The body of `POST /api/v1/deployments` and `POST /api/v1/plan`.
    DeploymentRequest,
}

impl SchemaKind {
    /// Every kind, in the order of the docs.
    pub const ALL: [SchemaKind; 5] = [
        SchemaKind::Definition,
        SchemaKind::Composition,
        SchemaKind::Deployment,
        SchemaKind::Config,
        SchemaKind::DeploymentRequest,
    ];

    /// The schema's file name under `docs/src/schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::Definition => "definition.schema.json",
            SchemaKind::Composition => "composition.schema.json",
            SchemaKind::Deployment => "deployment.schema.json",
            SchemaKind::Config => "config.schema.json",
            SchemaKind::DeploymentRequest => "deployment-request.schema.json",
        }
    }

    /// The schema as published under `docs/src/schemas/` (JSON text).
    pub fn published(self) -> &'static str {
        match self {
            SchemaKind::Definition => {
                include_str!("../../../docs/src/schemas/definition.schema.json")
            }
            SchemaKind::Composition => {
                include_str!("../../../docs/src/schemas/composition.schema.json")
            }
            SchemaKind::Deployment => {
                include_str!("../../../docs/src/schemas/deployment.schema.json")
            }
            SchemaKind::Config => include_str!("../../../docs/src/schemas/config.schema.json"),
            SchemaKind::DeploymentRequest => {
                include_str!("../../../docs/src/schemas/deployment-request.schema.json")
            }
        }
    }
}
