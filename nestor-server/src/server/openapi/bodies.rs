//! The success bodies of the document: a schema per body the server
//! answers with, and which operation answers which. The server test
//! `openapi` validates real answers against these schemas, so a body that
//! changes without its schema fails there (and schemathesis' response
//! conformance check).

use serde_json::{json, Value};

/// Component schemas of success bodies, by name.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Change",
            json!({
                "type": "object",
                "required": ["kind", "field", "message"],
                "properties": {
                    "kind": {"type": "string", "enum": ["cosmetic", "additive", "breaking"]},
                    "field": {"type": "string"},
                    "message": {"type": "string"}
                }
            }),
        ),
        (
            "Actor",
            json!({
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "description": "The token's name, the OIDC subject, `local`, `server`, `webhook` or `anonymous`."},
                    "roles": {"type": "array", "items": {"type": "string"}},
                    "request_id": {"type": "string"},
                    "client": {"type": "string", "description": "The client's IP address."}
                }
            }),
        ),
        (
            "AuditRecord",
            json!({
                "type": "object",
                "required": ["id", "timestamp", "actor", "action", "subject", "outcome"],
                "properties": {
                    "id": {"type": "string"},
                    "timestamp": {"type": "integer", "description": "Seconds since the epoch."},
                    "actor": {"$ref": "#/components/schemas/Actor"},
                    "action": {"type": "string", "description": "`resource.publish`, `deployment.apply`, ..."},
                    "subject": {"type": "string"},
                    "outcome": {"type": "string", "enum": ["succeeded", "failed", "denied"]},
                    "error": {"type": "string", "description": "The error code of a failed write."},
                    "changes": {"type": "array", "items": {"$ref": "#/components/schemas/Change"}}
                }
            }),
        ),
        (
            "AuditPage",
            json!({
                "type": "object",
                "required": ["items"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRecord"}},
                    "next_cursor": {"type": "string", "description": "Give it as `cursor` for the next page; absent on the last one."}
                }
            }),
        ),
    ]
}

/// Which schema each operation's success status answers with.
pub(super) const RESPONSES: &[(&str, &str, &str, &str)] =
    &[("get", "/api/v1/audit", "200", "AuditPage")];

/// Types the success responses of `op` (at `method` `path`).
pub(super) fn type_responses(method: &str, path: &str, op: &mut Value) {
    for (m, p, status, schema) in RESPONSES {
        if *m == method && *p == path {
            op["responses"][*status]["content"] = json!({"application/json": {
                "schema": {"$ref": format!("#/components/schemas/{schema}")}
            }});
        }
    }
}
