//! The constraints the server enforces on what a caller sends, stated in
//! the document as JSON Schema: names, versions and requirements, catalog
//! references, audit times and cursors, filters, page sizes, enums, the
//! `Idempotency-Key`, and the request bodies the handlers decode into
//! types of their own (a promotion, a team's deploy, a team's policy
//! check).
//!
//! Each pattern admits only what the server reads: a value that matches it
//! is never refused as malformed (`scripts/schemathesis.sh` checks both
//! ways: that values inside the document are accepted and values outside
//! it refused). Where the server accepts a little more than a pattern
//! states (a 17-digit version number, a requirement with `x` wildcards),
//! the document is the stricter of the two, on purpose: a client generated
//! from it stays inside what every version of the server reads.

use serde_json::{json, Value};

/// A resource, composition, team, environment or deployment name
/// (`nestor_core::is_valid_name`).
pub(super) const NAME: &str = "[a-z][a-z0-9-]{0,61}[a-z0-9]";

/// A version number: no leading zero, small enough for every store.
const NUMBER: &str = "(0|[1-9][0-9]{0,15})";

/// A pre-release identifier: a number without a leading zero, or
/// alphanumerics with at least one non-digit.
const PRE: &str = "(0|[1-9][0-9]{0,15}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";

/// `1.2.0`, `v1.2.0`, `1.2.0-rc.1+build.5`: a SemVer 2.0 version.
fn exact_version() -> String {
    format!(
        "v?{NUMBER}\\.{NUMBER}\\.{NUMBER}(-{PRE}(\\.{PRE})*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?"
    )
}

/// One comparator of a Cargo requirement: `^1.2`, `>=1.0.0`, `~2`, `1.*`.
fn comparator() -> String {
    format!("(=|>=|<=|>|<|~|\\^)?{NUMBER}(\\.\\*|\\.{NUMBER}(\\.\\*|\\.{NUMBER}(-{PRE}(\\.{PRE})*)?)?)?")
}

/// What a version segment of a path or a reference may say: `latest`, an
/// exact version, or a requirement (up to eight comparators, or `*`).
fn version_spec() -> String {
    let c = comparator();
    format!("(latest|{}|\\*|{c}(, ?{c}){{0,7}})", exact_version())
}

/// `NAME`, `NAME:VERSION` or `NAME:REQUIREMENT` (`aws-rds-mysql:^2`).
pub(super) fn catalog_ref_pattern() -> String {
    format!("^{NAME}(:{})?$", version_spec())
}

/// An audit time: seconds since the epoch, or an RFC 3339 UTC time
/// (`T` or a space, optional fraction and `Z`); empty is no bound. Days
/// stop at 28 so every date the pattern admits exists.
const AUDIT_TIME: &str = "^(-?[0-9]{1,15}|(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?Z?)?$";

/// Names, versions, limits and enums the server enforces, stated on the
/// parameters of the operation at `path`.
pub(super) fn constrain_parameters(path: &str, op: &mut Value) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for p in params {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let location = p["in"].as_str().unwrap_or_default().to_string();
        if let Some(schema) = parameter_schema(path, &name, &location) {
            p["schema"] = schema;
        }
        if location == "header" {
            p["required"] = json!(false);
        }
    }
}

/// The schema of parameter `name` in `location` of `path`, where the
/// server holds it to more than "a string".
fn parameter_schema(path: &str, name: &str, location: &str) -> Option<Value> {
    let audit = path == "/api/v1/audit";
    Some(match (name, location) {
        ("name" | "team", "path") => json!({"type": "string", "pattern": format!("^{NAME}$")}),
        ("version", "path") if path.ends_with("/yank") || path.ends_with("/unyank") => {
            json!({"type": "string", "pattern": format!("^{}$", exact_version())})
        }
        ("version", "path") => {
            json!({"type": "string", "pattern": format!("^{}$", version_spec())})
        }
        ("id", "path") => {
            json!({"type": "string", "minLength": 1, "maxLength": 300, "pattern": "^[^/]+$"})
        }
        ("limit", "query") if audit => json!({"type": "integer", "minimum": 1,
            "maximum": nestor_core::AuditQuery::MAX_LIMIT,
            "default": nestor_core::AuditQuery::DEFAULT_LIMIT}),
        ("limit", "query") => {
            json!({"type": "integer", "minimum": 1, "maximum": 500, "default": 50})
        }
        ("since" | "until", "query") if audit => json!({"type": "string", "pattern": AUDIT_TIME}),
        ("cursor", "query") if audit => {
            json!({"type": "string", "pattern": "^(-?[0-9]{1,18}\\.[0-9]{1,40})?$",
                "description": "`next_cursor` of the previous page"})
        }
        ("cursor", "query") => json!({"type": "string", "pattern": format!("^({NAME})?$"),
            "description": "`next_cursor` of the previous page"}),
        ("label", "query") => json!({"type": "string", "pattern": "^[^=]{0,256}=.{0,256}$",
            "description": "KEY=VALUE (at most 16 labels, 256 bytes each side)"}),
        ("provider" | "category" | "resource_type" | "engine", "query")
            if !path.contains("deployments") =>
        {
            json!({"type": "string", "maxLength": 256})
        }
        ("q", "query") => json!({"type": "string", "maxLength": nestor_core::MAX_SEARCH_BYTES,
            "pattern": format!("^\\s*(\\S+\\s+){{0,{}}}\\S*\\s*$", nestor_core::MAX_SEARCH_TERMS - 1),
            "description": format!("at most {} words", nestor_core::MAX_SEARCH_TERMS)}),
        ("status", "query") => json!({"type": "string", "enum": [
            "pending", "planning", "applying", "succeeded", "failed", "cancelled", "rolled_back"
        ]}),
        ("format", "query") => {
            json!({"type": "string", "enum": ["json", "dot"], "default": "json"})
        }
        ("to", "query") => json!({"type": "integer", "minimum": 1}),
        ("Idempotency-Key", "header") => json!({"type": "string", "minLength": 1, "maxLength": 255,
            "pattern": "^[!-~]([ -~]*[!-~])?$",
            "description": "1 to 255 visible ASCII characters: a repeat with the same key and body answers the first deployment"}),
        _ => return None,
    })
}

/// The bodies of `POST /api/v1/deployments/promote`,
/// `POST /api/v1/teams/{team}/deploy` and `POST /api/v1/teams/{team}/validate`,
/// by component name.
pub(super) fn request_schemas(components: &mut Value) {
    let name = || json!({"type": "string", "pattern": format!("^{NAME}$")});
    let optional_name = || json!({"type": ["string", "null"], "pattern": format!("^{NAME}$")});
    components["schemas"]["PromoteRequest"] = json!({
        "type": "object",
        "description": "Deploys to `to` exactly what last succeeded in `from`.",
        "additionalProperties": false,
        "required": ["team", "name", "from", "to"],
        "properties": {"team": name(), "name": name(), "from": name(), "to": name()}
    });
    components["schemas"]["TeamDeployRequest"] = json!({
        "type": "object",
        "description": "A deployment of one of the team's compositions (the team is the path's).",
        "additionalProperties": false,
        "required": ["composition"],
        "properties": {
            "composition": name(),
            "composition_version": {"type": ["string", "null"], "pattern": format!("^{}$", version_spec()),
                "description": "A version or requirement (default: the latest)."},
            "params": {"type": "object"},
            "environment": optional_name(),
            "name": optional_name(),
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "dry_run": {"type": "boolean", "default": false}
        }
    });
    let mut request = components["schemas"]["DeploymentRequest"].clone();
    constrain_deployment_request(&mut request);
    components["schemas"]["DeploymentRequest"] = request.clone();
    if let Some(required) = request["required"].as_array_mut() {
        required.retain(|r| r != "team");
    }
    request["title"] = json!("TeamDeploymentRequest");
    request["description"] = json!("A deployment request whose `team` may be left out (it is the path's; another team is refused).");
    components["schemas"]["TeamDeploymentRequest"] = request;
    if let Some(resource) = components["schemas"].get_mut("DeploymentRequest.CompositionResource") {
        resource["properties"]["catalog_ref"]["pattern"] = json!(catalog_ref_pattern());
    }
}

/// The names of a deployment request and its composition's version.
fn constrain_deployment_request(request: &mut Value) {
    for field in ["team", "environment", "name"] {
        request["properties"][field]["pattern"] = json!(format!("^{NAME}$"));
    }
    request["properties"]["composition"]["pattern"] = json!(format!("^{NAME}$"));
    request["properties"]["composition_version"]["pattern"] =
        json!(format!("^{}$", version_spec()));
    // Either a composition with its params, or resources (and their
    // edges) without params; never both, never neither.
    request["oneOf"] = json!([
        {"required": ["composition"], "properties": {
            "composition": {"type": "string"}, "resources": {"maxItems": 0}
        }},
        {"required": ["resources"], "properties": {
            "composition": {"type": "null"}, "resources": {"minItems": 1},
            "params": {"maxProperties": 0}
        }}
    ]);
}
