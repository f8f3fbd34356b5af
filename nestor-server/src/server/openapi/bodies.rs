//! The success bodies of the document. The body types' schemas are the
//! ones generated from the core's types (`docs/src/schemas/
//! api-responses.schema.json`, embedded), hoisted into the components;
//! this module adds the few envelopes a handler builds around them
//! (`{items: [...]}`, the status summary) and says which operation
//! answers which body with which status. schemathesis' response checks
//! (`scripts/schemathesis.sh`) hold real answers against them.

use serde_json::{json, Value};

/// The generated body schemas, by type name, their references pointed at
/// the components. A name the document already has (the published
/// `ResourceDefinition` and `Composition`, the same types) keeps that one.
pub(super) fn generated(components: &mut Value) {
    let Ok(published) = serde_json::from_str::<Value>(crate::schema::published_responses()) else {
        return;
    };
    let Some(defs) = published.get("$defs").and_then(Value::as_object) else {
        return;
    };
    for (name, schema) in defs {
        if components["schemas"].get(name).is_some() {
            continue;
        }
        let mut schema = schema.clone();
        super::contract::rewrite_refs(&mut schema, "#/components/schemas/");
        components["schemas"][name.as_str()] = schema;
    }
    components["schemas"]["EngineStatus"] = engine_status();
}

/// `nestor_engines::EngineStatus` (the engines crate derives no schemas).
fn engine_status() -> Value {
    json!({
        "type": "object",
        "required": ["name", "version", "source", "sha256", "healthy", "description"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "source": {"type": "string", "description": "`bundled`, `wasm:<path>` or `native:<path>`."},
            "sha256": {"type": "string"},
            "healthy": {"type": "boolean"},
            "description": {"type": "string"},
            "error": {"type": "string", "description": "Why it is unhealthy."}
        }
    })
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn list_of(name: &str) -> Value {
    json!({"type": "array", "items": r(name)})
}

/// `{items: [name]}`, with `next_cursor` when `paged`.
fn items(name: &str, paged: bool) -> Value {
    let mut body = json!({
        "type": "object",
        "required": ["items"],
        "properties": {"items": list_of(name)}
    });
    if paged {
        body["properties"]["next_cursor"] = json!({"type": ["string", "null"]});
    }
    body
}

fn names() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

/// What answers `method path` with `status`: its media type and schema.
fn body(method: &str, path: &str, status: u16) -> Option<(&'static str, Value)> {
    let json = |schema: Value| Some(("application/json", schema));
    match (method, path, status) {
        ("get", "/api/v1/resources", 200) => json(items("PublishedVersion", true)),
        ("post", "/api/v1/resources", 201) => json(r("PublishResult")),
        // One document: its result; several: one result or error each.
        ("post", "/api/v1/resources", 200) => json(json!({"oneOf": [
            r("PublishResult"),
            {"type": "object", "required": ["results"], "properties": {"results": {
                "type": "array", "items": {"anyOf": [r("PublishResult"), r("Error")]}
            }}}
        ]})),
        ("get", "/api/v1/resources/{name}" | "/api/v1/resources/{name}/{version}", 200) => {
            json(r("PublishedVersion"))
        }
        ("get", "/api/v1/resources/{name}/versions", 200) => json(list_of("VersionSummary")),
        (
            "post",
            "/api/v1/resources/{name}/{version}/yank" | "/api/v1/resources/{name}/{version}/unyank",
            200,
        ) => json(r("YankOutcome")),
        ("get", "/api/v1/search", 200) => json(items("SearchHit", false)),
        ("post", "/api/v1/validate", 200) => json(json!({
            "type": "object",
            "required": ["valid", "documents"],
            "properties": {"valid": {"type": "boolean"}, "documents": list_of("DocumentCheck")}
        })),
        ("get", "/api/v1/status", 200) => json(json!({
            "type": "object",
            "required": ["versions", "last_event", "engines", "sources", "syncs"],
            "properties": {
                "versions": {"type": "integer", "minimum": 0},
                "last_event": {"type": "integer", "minimum": 0},
                "engines": {"type": "integer", "minimum": 0, "description": "Healthy engines."},
                "sources": names(),
                "syncs": list_of("SyncReport")
            }
        })),
        ("post", "/api/v1/sync", 200) => json(r("SyncReport")),
        ("post", "/api/v1/sync", 202) => json(json!({
            "type": "object", "required": ["accepted"], "properties": {"accepted": names()}
        })),
        ("post", "/webhooks/git", 202) => json(json!({
            "type": "object",
            "required": ["accepted", "ignored_other_branch"],
            "properties": {"accepted": names(), "ignored_other_branch": names()}
        })),
        ("get", "/api/v1/teams/{team}/compositions", 200) => json(list_of("PublishedComposition")),
        (
            "get",
            "/api/v1/teams/{team}/compositions/{name}"
            | "/api/v1/teams/{team}/compositions/{name}/{version}",
            200,
        ) => json(r("PublishedComposition")),
        ("post", "/api/v1/teams/{team}/compositions", 200 | 201) => json(r("CompositionPublished")),
        ("post", "/api/v1/teams/{team}/deploy" | "/api/v1/deployments", 202) => {
            json(r("Deployment"))
        }
        // A dry run's plan, or the deployment an Idempotency-Key already made.
        ("post", "/api/v1/teams/{team}/deploy" | "/api/v1/deployments", 200) => {
            json(json!({"oneOf": [r("Deployment"), r("Plan")]}))
        }
        ("get", "/api/v1/deployments", 200) => json(items("Deployment", false)),
        ("get" | "delete", "/api/v1/deployments/{id}", 200)
        | ("post", "/api/v1/deployments/{id}/rollback" | "/api/v1/deployments/promote", 200) => {
            json(r("Deployment"))
        }
        ("get", "/api/v1/deployments/{id}/logs", 200) => json(items("RunLog", false)),
        ("post", "/api/v1/deployments/{id}/drift", 200) => {
            json(json!({"oneOf": [r("DriftReport"), {"type": "null"}]}))
        }
        ("post", "/api/v1/plan", 200) => json(r("Plan")),
        ("post", "/api/v1/render", 200) => json(r("RenderedResource")),
        ("get", "/api/v1/graph", 200) => json(r("GraphView")),
        ("get", "/api/v1/engines", 200) => json(list_of("EngineStatus")),
        ("get", "/api/v1/audit", 200) => json(r("AuditPage")),
        ("get", "/api/v1/teams", 200) => json(items("Team", false)),
        ("get", "/api/v1/teams/{team}", 200) => json(r("Team")),
        ("get", "/api/v1/teams/{team}/quotas", 200) => json(items("QuotaUsage", false)),
        ("post", "/api/v1/teams/{team}/validate", 200) => json(r("PolicyCheck")),
        ("get", "/api/v1/openapi.json", 200) => json(json!({"type": "object"})),
        ("get", "/health", 200) => json(json!({
            "type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}
        })),
        ("get", "/ready", 200 | 503) => json(json!({
            "type": "object",
            "required": ["ready", "store", "engines"],
            "properties": {
                "ready": {"type": "boolean"},
                "store": {"type": "boolean"},
                "engines": {"type": "integer", "minimum": 0},
                "error": {"type": "object"}
            }
        })),
        ("get", "/metrics", 200) => Some(("text/plain", json!({"type": "string"}))),
        ("get", "/api/v1/events", 200) => Some(("text/event-stream", json!({"type": "string"}))),
        _ => None,
    }
}

/// Statuses an operation answers that its handler's attribute does not
/// list, with their description.
fn extra_statuses(method: &str, path: &str) -> &'static [(u16, &'static str)] {
    match (method, path) {
        ("post", "/api/v1/teams/{team}/deploy" | "/api/v1/deployments") => &[(
            200,
            "A dry run's plan, or the deployment an `Idempotency-Key` already made",
        )],
        _ => &[],
    }
}

/// Types the success responses of `op` (at `method` `path`).
pub(super) fn type_responses(method: &str, path: &str, op: &mut Value) {
    for (status, description) in extra_statuses(method, path) {
        let key = status.to_string();
        if op["responses"].get(key.as_str()).is_none() {
            op["responses"][key.as_str()] = json!({"description": description});
        }
    }
    let Some(responses) = op["responses"].as_object_mut() else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let Ok(code) = status.parse::<u16>() else {
            continue;
        };
        if let Some((media, schema)) = body(method, path, code) {
            response["content"] = json!({ media: {"schema": schema} });
        }
    }
    if path == "/api/v1/graph" {
        if let Some(ok) = op["responses"].get_mut("200") {
            ok["content"]["text/vnd.graphviz"] = json!({"schema": {"type": "string"}});
        }
    }
}
