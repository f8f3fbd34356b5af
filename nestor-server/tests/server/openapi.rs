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
