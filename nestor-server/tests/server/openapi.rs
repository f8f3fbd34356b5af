//! The OpenAPI document and the router agree: every (method, path) the
//! router has is an operation of the document and every operation is a
//! route, and a real server answers each listed route with the route
//! itself (not the "no such route" fallback) and any other method on its
//! path with `405 METHOD_NOT_ALLOWED`, so the router's list is the
//! router's truth.

use std::collections::BTreeSet;

use reqwest::Method;

use super::{code, TestServer};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// The document's operations as (method, path).
fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_string(), path.clone()));
            }
        }
    }
    ops
}

/// Every `$ref` in `value`.
fn collect_refs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// A concrete path for a template.
fn concrete(template: &str) -> String {
    template
        .replace("{name}", "web-app")
        .replace("{version}", "1.0.0")
        .replace("{team}", "alpha")
        .replace("{id}", "no-such-deployment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_in_the_document_and_every_operation_is_a_route() {
    let routes: BTreeSet<(String, String)> = nestor_server::server::routes()
        .into_iter()
        .map(|(m, p)| (m.as_str().to_ascii_lowercase(), p.to_string()))
        .collect();
    assert!(routes.len() >= 30, "{routes:?}");
    let s = TestServer::start().await;
    let (status, doc) = s.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let ops = documented(&doc);
    let undocumented: Vec<_> = routes.difference(&ops).collect();
    let unrouted: Vec<_> = ops.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from the document: {undocumented:?}; operations no route serves: {unrouted:?}"
    );

    // Every success body is typed, and every reference names a component.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    let dangling: Vec<&String> = refs
        .iter()
        .filter(|r| {
            r.strip_prefix("#/components/schemas/")
                .is_none_or(|name| doc["components"]["schemas"].get(name).is_none())
        })
        .collect();
    assert!(
        dangling.is_empty(),
        "references to no component: {dangling:?}"
    );
    for (method, path) in &ops {
        let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
        for (status, response) in responses {
            if status.starts_with('2') && path != "/api/v1/openapi.json" {
                assert!(
                    response.get("content").is_some(),
                    "{method} {path} answers {status} with an untyped body"
                );
            }
        }
    }

    let paths: BTreeSet<&str> = routes.iter().map(|(_, p)| p.as_str()).collect();
    for path in paths {
        for method in METHODS {
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let resp = s
                .client
                .request(m, format!("{}{}", s.url, concrete(path)))
                .bearer_auth("admin")
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            // The event stream never ends: its head is the answer.
            let body: serde_json::Value = if path == "/api/v1/events" && status == 200 {
                serde_json::Value::Null
            } else {
                let text = resp.text().await.unwrap();
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            };
            let listed = routes.contains(&(method.to_string(), path.to_string()));
            if listed {
                let fallback = code(&body) == "NOT_FOUND"
                    && body.to_string().contains("no such route")
                    || status == 405;
                assert!(
                    !fallback,
                    "{method} {path} is listed but not routed: {status} {body}"
                );
            } else {
                assert_eq!(
                    (status, code(&body)),
                    (405, "METHOD_NOT_ALLOWED"),
                    "{method} {path} is not listed: {body}"
                );
            }
        }
    }
    s.stop().await;
}

/// `text` percent-encoded for one path segment.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The schema pattern of parameter `name` of `method path`.
fn parameter_pattern(
    doc: &serde_json::Value,
    method: &str,
    path: &str,
    name: &str,
) -> regex::Regex {
    let params = doc["paths"][path][method]["parameters"].as_array().unwrap();
    let p = params.iter().find(|p| p["name"] == name).unwrap();
    regex::Regex::new(p["schema"]["pattern"].as_str().unwrap()).unwrap()
}

/// The version segment a client reads from the document and the one the
/// server reads agree: what the pattern admits is never refused as
/// malformed, and what it excludes is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_version_forms_are_the_ones_the_server_reads() {
    let s = TestServer::start().await;
    let (_, doc) = s.get("/api/v1/openapi.json").await;
    let spec = parameter_pattern(&doc, "get", "/api/v1/resources/{name}/{version}", "version");
    let exact = parameter_pattern(
        &doc,
        "post",
        "/api/v1/resources/{name}/{version}/yank",
        "version",
    );
    for good in [
        "2.0.0",
        "v1.0.0",
        "latest",
        "^1",
        "~1.2",
        ">=1.0.0, <3.0.0",
        "1.*",
        "*",
        "1.2.3-rc.1+b.5",
    ] {
        assert!(spec.is_match(good), "{good} is a documented version form");
        let (status, body) = s
            .get(&format!(
                "/api/v1/resources/aws-rds-mysql/{}",
                segment(good)
            ))
            .await;
        assert!(
            [200, 404].contains(&status.as_u16()),
            "{good}: {status} {body}"
        );
    }
    for bad in [
        "01.0.0",
        "1.0.0-01",
        "abc",
        "^",
        "1.2.3.4",
        "1.*.3",
        "1..2",
        "99999999999999999999999.0.0",
    ] {
        assert!(!spec.is_match(bad), "{bad} is outside the documented forms");
        let (status, body) = s
            .get(&format!("/api/v1/resources/aws-rds-mysql/{}", segment(bad)))
            .await;
        assert_eq!(
            (status.as_u16(), code(&body)),
            (400, "BAD_REQUEST"),
            "{bad}"
        );
    }
    for (version, documented) in [
        ("2.0.0", true),
        ("v2.0.0", true),
        ("^2", false),
        ("2.0", false),
    ] {
        assert_eq!(exact.is_match(version), documented, "{version}");
        let path = format!(
            "/api/v1/resources/aws-rds-mysql/{}/unyank",
            segment(version)
        );
        let (status, body) = s
            .post(&path, "admin", super::Body::Json(serde_json::json!({})))
            .await;
        assert_eq!(
            status.as_u16() == 400,
            !documented,
            "{version}: {status} {body}"
        );
    }
    s.stop().await;
}

/// What schemathesis found the server doing that the document did not
/// say, each now one way in both: a YAML integer beyond 64 bits is read
/// as JSON reads it, a source that is not configured is not found, a
/// webhook payload that is not an object is refused, and a render for a
/// team that cannot exist is refused like a deployment for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_what_the_document_says_where_schemathesis_found_otherwise() {
    let s = TestServer::start().await;
    let big = "apiVersion: v1\nkind: ConfigMap\ndata: {n: 1180591620717411303424}\n";
    let (status, body) = s
        .post("/api/v1/validate", "admin", super::Body::Yaml(big.into()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["documents"][0]["kind"], "foreign", "{body}");

    let (status, body) = s
        .send(
            Method::POST,
            "/api/v1/sync?source=nope",
            Some("admin"),
            None,
        )
        .await;
    assert_eq!((status.as_u16(), code(&body)), (404, "NOT_FOUND"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("examples"),
        "{body}"
    );

    let (status, body) = s
        .send(
            Method::POST,
            "/webhooks/git?source=examples",
            None,
            Some(super::Body::Raw("application/json", b"1860080".to_vec())),
        )
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (400, "BAD_REQUEST"),
        "{body}"
    );

    let render = serde_json::json!({
        "catalog_ref": "aws-rds-mysql:^2", "team": "", "environment": "Dev",
        "config": {"identifier": "orders-db", "instance_class": "db.t3.micro"}
    });
    let (status, body) = s
        .post("/api/v1/render", "admin", super::Body::Json(render))
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (422, "VALIDATION_FAILED"),
        "{body}"
    );
    let fields = super::fields(&body);
    assert_eq!(fields, ["team", "environment"], "{body}");
    s.stop().await;
}
