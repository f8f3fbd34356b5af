//! What every operation of the document states beyond its handler's own
//! attribute: rules by route, applied to the generated document as JSON.
//!
//! Why rules instead of thirty annotations: the error statuses, the
//! security requirement and the parameter constraints follow from a few
//! facts of a route (does it take a body, a path parameter, a token, does
//! it render through engines), and a rule cannot be forgotten on the next
//! handler someone adds; a route with no operationId in [`OPERATION_IDS`]
//! still gets a unique one derived from its method and path.

use serde_json::{json, Map, Value};

use crate::schema::SchemaKind;
use nestor_core::ErrorCode;

/// operationIds by method and path, in the words client generators turn
/// into method names.
const OPERATION_IDS: &[(&str, &str, &str)] = &[
    ("get", "/api/v1/resources", "listResources"),
    ("post", "/api/v1/resources", "publishResources"),
    ("get", "/api/v1/resources/{name}", "getLatestResource"),
    (
        "get",
        "/api/v1/resources/{name}/versions",
        "listResourceVersions",
    ),
    (
        "get",
        "/api/v1/resources/{name}/{version}",
        "getResourceVersion",
    ),
    (
        "post",
        "/api/v1/resources/{name}/{version}/yank",
        "yankResourceVersion",
    ),
    (
        "post",
        "/api/v1/resources/{name}/{version}/unyank",
        "unyankResourceVersion",
    ),
    ("get", "/api/v1/search", "searchResources"),
    ("post", "/api/v1/validate", "validateDocuments"),
    ("get", "/api/v1/status", "getStatus"),
    ("post", "/api/v1/sync", "triggerSync"),
    ("post", "/webhooks/git", "receiveGitWebhook"),
    ("get", "/api/v1/events", "streamEvents"),
    (
        "get",
        "/api/v1/teams/{team}/compositions",
        "listCompositions",
    ),
    (
        "post",
        "/api/v1/teams/{team}/compositions",
        "publishComposition",
    ),
    (
        "get",
        "/api/v1/teams/{team}/compositions/{name}",
        "getLatestComposition",
    ),
    (
        "get",
        "/api/v1/teams/{team}/compositions/{name}/{version}",
        "getCompositionVersion",
    ),
    ("post", "/api/v1/teams/{team}/deploy", "deployComposition"),
    ("get", "/api/v1/deployments", "listDeployments"),
    ("post", "/api/v1/deployments", "createDeployment"),
    ("get", "/api/v1/deployments/{id}", "getDeployment"),
    ("delete", "/api/v1/deployments/{id}", "deleteDeployment"),
    (
        "post",
        "/api/v1/deployments/{id}/rollback",
        "rollbackDeployment",
    ),
    ("post", "/api/v1/deployments/promote", "promoteDeployment"),
    ("post", "/api/v1/plan", "planDeployment"),
    ("post", "/api/v1/render", "renderResource"),
    ("get", "/api/v1/engines", "listEngines"),
    ("get", "/api/v1/audit", "listAuditRecords"),
    ("get", "/api/v1/graph", "getGraph"),
    ("get", "/api/v1/openapi.json", "getOpenApiDocument"),
    ("get", "/api/v1/deployments/{id}/logs", "getDeploymentLogs"),
    (
        "post",
        "/api/v1/deployments/{id}/drift",
        "checkDeploymentDrift",
    ),
    ("get", "/api/v1/teams", "listTeams"),
    ("get", "/api/v1/teams/{team}", "getTeam"),
    ("get", "/api/v1/teams/{team}/quotas", "getTeamQuotas"),
    ("post", "/api/v1/teams/{team}/validate", "checkTeamPolicies"),
    ("get", "/health", "health"),
    ("get", "/ready", "ready"),
    ("get", "/metrics", "metrics"),
];

/// Routes anyone may call: probes, the document, and webhooks (which carry
/// their own signature instead of a token).
const OPEN: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/api/v1/openapi.json",
    "/webhooks/git",
];

/// Routes readable without a token while `auth.anonymous_read` is true.
fn anonymous_read(method: &str, path: &str) -> bool {
    (method == "get"
        && (path.starts_with("/api/v1/resources")
            || [
                "/api/v1/search",
                "/api/v1/status",
                "/api/v1/events",
                "/api/v1/engines",
            ]
            .contains(&path)))
        || (method == "post" && path == "/api/v1/validate")
}

/// Operations that render through engines, so an engine's failure shows.
fn renders(method: &str, path: &str) -> bool {
    matches!(
        (method, path),
        ("post", "/api/v1/deployments")
            | ("post", "/api/v1/plan")
            | ("post", "/api/v1/render")
            | ("post", "/api/v1/teams/{team}/deploy")
            | ("post", "/api/v1/deployments/promote")
            | ("post", "/api/v1/deployments/{id}/rollback")
            | ("delete", "/api/v1/deployments/{id}")
    )
}

/// Operations that write a document checked against rules (422) or an
/// existing state (409).
fn judges(method: &str, path: &str) -> bool {
    method != "get" && !OPEN.contains(&path) && path != "/api/v1/sync"
}

/// Completes the generated document in place.
pub(super) fn complete(doc: &mut Value) {
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    let components = doc["components"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut components = Value::Object(components);
    components["schemas"]["Error"] = error_schema();
    components["schemas"]["RenderResourceRequest"] = render_request_schema();
    for (name, kind) in [
        ("ResourceDefinition", SchemaKind::Definition),
        ("Composition", SchemaKind::Composition),
        ("DeploymentRequest", SchemaKind::DeploymentRequest),
    ] {
        add_published_schema(&mut components, name, kind);
    }
    super::constraints::request_schemas(&mut components);
    super::bodies::generated(&mut components);
    doc["components"] = components;
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    let mut seen = std::collections::BTreeSet::new();
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let id = operation_id(method, path);
            let id = if seen.insert(id.clone()) {
                id
            } else {
                format!("{id}_{method}")
            };
            seen.insert(id.clone());
            complete_operation(method, path, op, id);
        }
    }
}

fn operation_id(method: &str, path: &str) -> String {
    if let Some((_, _, id)) = OPERATION_IDS
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
    {
        return (*id).to_string();
    }
    let mut id = method.to_string();
    for part in path
        .split(['/', '{', '}', '.', '-'])
        .filter(|p| !p.is_empty())
    {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            id.extend(first.to_uppercase());
            id.push_str(chars.as_str());
        }
    }
    id
}

fn complete_operation(method: &str, path: &str, op: &mut Value, id: String) {
    op["operationId"] = json!(id);
    op["security"] = if OPEN.contains(&path) {
        json!([])
    } else if anonymous_read(method, path) {
        json!([{}, {"bearer": []}])
    } else {
        json!([{"bearer": []}])
    };
    super::constraints::constrain_parameters(path, op);
    super::bodies::type_responses(method, path, op);
    let has_body = op.get("requestBody").is_some();
    if has_body {
        type_request_body(method, path, op);
    }
    let mut statuses: Vec<(u16, &str)> = vec![
        (400, "The request cannot be read: a malformed body, an unknown query key, a bad parameter (`BAD_REQUEST`)."),
        (429, "Too many requests (`RATE_LIMITED`); see `Retry-After`."),
        (500, "An unexpected failure (`INTERNAL_ERROR`); the log has the detail under `trace_id`."),
        (503, "The store is unavailable (`STORAGE_UNAVAILABLE`) or the server cannot take the request now (`SERVICE_UNAVAILABLE`)."),
    ];
    if !OPEN.contains(&path) {
        statuses.push((401, "No token, or an unknown one (`UNAUTHORIZED`)."));
        statuses.push((403, "The token's roles do not allow this (`FORBIDDEN`)."));
    }
    if path.contains('{')
        || path == "/webhooks/git"
        || path == "/api/v1/sync"
        || renders(method, path)
    {
        statuses.push((404, "Not found: `RESOURCE_NOT_FOUND`, `VERSION_NOT_FOUND`, `COMPOSITION_NOT_FOUND`, `DEPLOYMENT_NOT_FOUND` or `NOT_FOUND`."));
    }
    if path == "/webhooks/git" {
        statuses.push((
            401,
            "A source with a secret refuses an unsigned or mis-signed call (`UNAUTHORIZED`).",
        ));
    }
    if has_body {
        statuses.push((408, "The body did not arrive in time (`REQUEST_TIMEOUT`)."));
        statuses.push((
            413,
            "The body is larger than `server.max_body_bytes` (`PAYLOAD_TOO_LARGE`).",
        ));
    }
    if judges(method, path) {
        statuses.push((409, "`VERSION_IMMUTABLE`, or `CONFLICT` (an `Idempotency-Key` reused with another body, a state that does not allow it)."));
        statuses.push((422, "The document breaks a rule: `VALIDATION_FAILED` (every problem in `details.validation_errors`), `BREAKING_CHANGE`, `DEPENDENCY_CYCLE`, `DEPENDENCY_NOT_FOUND`, `ENGINE_NOT_FOUND`, `POLICY_VIOLATION` (every refusing policy message in `details.violations`), `QUOTA_EXCEEDED` (an apply past a team quota)."));
    }
    if renders(method, path) {
        statuses.push((
            502,
            "An engine failed to render a resource (`ENGINE_FAILED`).",
        ));
    }
    let responses = op["responses"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut responses = Value::Object(responses);
    for (status, description) in statuses {
        let key = status.to_string();
        if responses.get(key.as_str()).is_none() {
            responses[key.as_str()] = json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            });
        }
    }
    op["responses"] = responses;
}

/// JSON bodies typed with the published schemas; YAML beside JSON where
/// the server reads it.
fn type_request_body(method: &str, path: &str, op: &mut Value) {
    let schema = match (method, path) {
        ("post", "/api/v1/resources") => json!({"oneOf": [
            {"$ref": "#/components/schemas/ResourceDefinition"},
            {"type": "array", "items": {"$ref": "#/components/schemas/ResourceDefinition"}}
        ]}),
        ("post", "/api/v1/teams/{team}/compositions") => {
            json!({"$ref": "#/components/schemas/Composition"})
        }
        ("post", "/api/v1/deployments") | ("post", "/api/v1/plan") => {
            json!({"$ref": "#/components/schemas/DeploymentRequest"})
        }
        ("post", "/api/v1/render") => json!({"$ref": "#/components/schemas/RenderResourceRequest"}),
        ("post", "/api/v1/deployments/promote") => {
            json!({"$ref": "#/components/schemas/PromoteRequest"})
        }
        ("post", "/api/v1/teams/{team}/deploy") => {
            json!({"$ref": "#/components/schemas/TeamDeployRequest"})
        }
        ("post", "/api/v1/teams/{team}/validate") => {
            json!({"$ref": "#/components/schemas/TeamDeploymentRequest"})
        }
        // Any document: each is judged and the verdict is the answer.
        ("post", "/api/v1/validate") => json!({
            "description": "A definition or composition, or an array of them; any other value is answered as an invalid document."
        }),
        _ => op["requestBody"]["content"]["application/json"]["schema"].clone(),
    };
    // YAML: one document of the same shape (or several, separated by `---`,
    // which a schema cannot state).
    let yaml = match (method, path) {
        ("post", "/api/v1/resources") => {
            Some(json!({"$ref": "#/components/schemas/ResourceDefinition"}))
        }
        ("post", "/api/v1/teams/{team}/compositions") => {
            Some(json!({"$ref": "#/components/schemas/Composition"}))
        }
        ("post", "/api/v1/validate") => Some(schema.clone()),
        _ => None,
    };
    let mut content = json!({"application/json": {"schema": schema}});
    if let Some(mut yaml) = yaml {
        yaml["description"] = json!("One or more YAML documents separated by `---`.");
        content["application/yaml"] = json!({ "schema": yaml });
    }
    op["requestBody"]["content"] = content;
    // A webhook without a body is a bare trigger of `?source=NAME`.
    op["requestBody"]["required"] = json!(path != "/webhooks/git");
}

/// `POST /api/v1/render`'s body, `nestor_core::RenderResourceRequest` (a test
/// below decodes the example with the type and compares the property
/// names with the type's fields, so the two cannot drift apart unnoticed).
fn render_request_schema() -> Value {
    let name = format!("^{}$", super::constraints::NAME);
    json!({
        "type": "object",
        "description": "One catalog resource to render on its own, as a resource of a deployment of `team` in `environment`.",
        "required": ["catalog_ref", "team", "environment"],
        "additionalProperties": false,
        "properties": {
            "catalog_ref": {"type": "string", "pattern": super::constraints::catalog_ref_pattern(), "description": "NAME, NAME:VERSION or NAME:REQUIREMENT."},
            "engine": {"type": ["string", "null"], "description": "Default: the definition's first supported engine that is loaded."},
            "config": {"type": "object", "description": "The resource's inputs."},
            "team": {"type": "string", "pattern": name},
            "environment": {"type": "string", "pattern": name}
        },
        "example": {"catalog_ref": "aws-rds-mysql:^2", "config": {"identifier": "orders-db", "instance_class": "db.t3.micro"}, "team": "alpha", "environment": "dev"}
    })
}

/// The one error body, its codes from `ErrorCode::ALL`.
fn error_schema() -> Value {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "type": "object",
        "description": "Every error answer (docs/src/reference/errors.md).",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": codes},
                "message": {"type": "string"},
                "details": {"type": "object", "description": "Depends on the code, e.g. `validation_errors: [{field, message}]`."},
                "trace_id": {"type": "string", "description": "The request's X-Request-Id."}
            }
        }}
    })
}

/// A published JSON Schema as a component: its `$defs` become components
/// of their own (`Name.Def`), the references rewritten to match.
fn add_published_schema(components: &mut Value, name: &str, kind: SchemaKind) {
    let Ok(mut schema) = serde_json::from_str::<Value>(kind.published()) else {
        return;
    };
    let defs = schema
        .as_object_mut()
        .and_then(|m| m.remove("$defs"))
        .and_then(|d| match d {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    if let Some(m) = schema.as_object_mut() {
        m.remove("$schema");
    }
    let prefix = format!("#/components/schemas/{name}.");
    rewrite_refs(&mut schema, &prefix);
    components["schemas"][name] = schema;
    let mut hoisted = Map::new();
    for (def, mut value) in defs {
        rewrite_refs(&mut value, &prefix);
        hoisted.insert(format!("{name}.{def}"), value);
    }
    for (k, v) in hoisted {
        components["schemas"][&k] = v;
    }
}

/// `#/$defs/X` references in `value` rewritten to `{prefix}X`.
pub(super) fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if let Some(def) = r.strip_prefix("#/$defs/") {
                    *r = format!("{prefix}{def}");
                }
            }
            map.values_mut().for_each(|v| rewrite_refs(v, prefix));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_render_body_schema_is_the_core_type() {
        let schema = render_request_schema();
        let example: nestor_core::RenderResourceRequest =
            serde_json::from_value(schema["example"].clone()).expect("the example decodes");
        let full = nestor_core::RenderResourceRequest {
            engine: Some("terraform".into()),
            ..example
        };
        let written = serde_json::to_value(&full).unwrap();
        let fields: Vec<&String> = written.as_object().unwrap().keys().collect();
        let properties: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        assert_eq!(fields, properties);
        for required in schema["required"].as_array().unwrap() {
            let mut without = written.clone();
            without
                .as_object_mut()
                .unwrap()
                .remove(required.as_str().unwrap());
            assert!(
                serde_json::from_value::<nestor_core::RenderResourceRequest>(without).is_err(),
                "{required} is required by the type too"
            );
        }
    }
}
