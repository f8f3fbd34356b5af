//! The schemas of the bodies the HTTP API answers with (feature `schema`),
//! generated from the core's types like the file formats' schemas, so a
//! field added to a deployment or a plan is in the OpenAPI document
//! without anyone editing a schema. `xtask docs` writes them into
//! `docs/src/schemas/api-responses.schema.json`, which the server embeds
//! (`server::openapi`) and CI keeps current.

use nestor_core::*;
use schemars::{generate::SchemaSettings, JsonSchema};
use serde_json::{json, Value};

/// One field per body type, so one generation collects every type's
/// schema (and the schemas they use) under `$defs`. Never built.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Bodies {
    published_version: PublishedVersion,
    version_summary: VersionSummary,
    search_hit: SearchHit,
    publish_result: PublishResult,
    yank_outcome: YankOutcome,
    document_check: DocumentCheck,
    sync_report: SyncReport,
    published_composition: PublishedComposition,
    composition_published: CompositionPublished,
    deployment: Deployment,
    plan: Plan,
    run_log: RunLog,
    drift_report: DriftReport,
    graph_view: GraphView,
    audit_page: AuditPage,
    team: Team,
    quota_usage: QuotaUsage,
    policy_check: PolicyCheck,
    rendered_resource: RenderedResource,
}

/// `{"$defs": {...}}`: every body type's schema by its type's name.
pub fn responses() -> Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let root = generator.into_root_schema_for::<Bodies>().to_value();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "The bodies the Nestor HTTP API answers with, by type (the OpenAPI document's success schemas). Generated; do not edit.",
        "$defs": root.get("$defs").cloned().unwrap_or_else(|| json!({})),
    })
}
