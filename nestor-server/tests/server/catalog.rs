//! Catalog routes: filters, pagination, exact versions and requirements,
//! search, status, and publishing with every error code.

use serde_json::{json, Value};

use super::{code, definition, fields, Body, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_and_pagination() {
    let s = TestServer::start().await;
    let (status, all) = s.get("/api/v1/resources?limit=500").await;
    assert_eq!(status, 200);
    let names: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["definition"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names.len(), 19, "{names:?}");
    assert!(all["next_cursor"].is_null());

    // Pages of 5 walk every name once, in order.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/resources?limit=5&cursor={c}"),
            None => "/api/v1/resources?limit=5".into(),
        };
        let (status, page) = s.get(&path).await;
        assert_eq!(status, 200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 5);
        paged.extend(items.iter().map(|v| {
            v["definition"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        }));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, names);

    let (_, aws) = s
        .get("/api/v1/resources?provider=aws&category=database")
        .await;
    let aws: Vec<&str> = aws["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["definition"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(aws.contains(&"aws-rds-mysql") && !aws.is_empty(), "{aws:?}");
    for item in &aws {
        assert!(item.starts_with("aws-"), "{item}");
    }
    let (_, helm) = s.get("/api/v1/resources?engine=helm").await;
    for item in helm["items"].as_array().unwrap() {
        assert!(item["definition"]["spec"]["supported_engines"]
            .as_array()
            .unwrap()
            .contains(&json!("helm")));
    }
    let (_, q) = s.get("/api/v1/resources?q=mysql").await;
    assert!(
        q["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["definition"]["metadata"]["name"] == "aws-rds-mysql"),
        "{q}"
    );
    let (_, labelled) = s.get("/api/v1/resources?label=no-such-label=x").await;
    assert_eq!(labelled["items"], json!([]));

    // Latest is the greatest; a requirement picks the best match.
    let (status, latest) = s.get("/api/v1/resources/aws-rds-mysql").await;
    assert_eq!(status, 200);
    assert_eq!(latest["definition"]["metadata"]["version"], "2.0.0");
    assert_eq!(
        s.get("/api/v1/resources/aws-rds-mysql/latest").await.1["definition"]["metadata"]
            ["version"],
        "2.0.0"
    );
    let (_, req) = s.get("/api/v1/resources/aws-rds-mysql/%5E1.1").await;
    assert_eq!(req["definition"]["metadata"]["version"], "1.2.0", "{req}");
    let (_, exact) = s.get("/api/v1/resources/aws-rds-mysql/1.0.0").await;
    assert_eq!(exact["definition"]["metadata"]["version"], "1.0.0");
    let (status, versions) = s.get("/api/v1/resources/aws-rds-mysql/versions").await;
    assert_eq!(status, 200);
    let vs: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(vs, ["2.0.0", "1.2.0", "1.1.0", "1.0.0"]);
    assert!(versions[0].get("yanked").is_some() && versions[0].get("published_at").is_some());

    let (status, missing) = s.get("/api/v1/resources/aws-rds-mysql/9.9.9").await;
    assert_eq!(
        (status.as_u16(), code(&missing)),
        (404, "VERSION_NOT_FOUND")
    );
    assert_eq!(missing["error"]["details"]["version"], "9.9.9");
    let (status, missing) = s.get("/api/v1/resources/no-such-thing").await;
    assert_eq!(
        (status.as_u16(), code(&missing)),
        (404, "RESOURCE_NOT_FOUND")
    );
    assert_eq!(
        missing["error"]["details"]["resource_name"],
        "no-such-thing"
    );

    let (status, hits) = s.get("/api/v1/search?q=redis&limit=3").await;
    assert_eq!(status, 200);
    let hits = hits["items"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 3);
    assert!(hits[0]["version"]["definition"]["metadata"]["name"]
        .as_str()
        .unwrap()
        .contains("redis"));

    let (_, status_body) = s.get("/api/v1/status").await;
    assert_eq!(status_body["syncs"][0]["source"], "examples");
    assert_eq!(status_body["sources"], json!(["examples"]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_every_error_code() {
    let s = TestServer::start().await;
    let first = definition("widget", "1.0.0", "a widget", &[]);

    // YAML: created, then unchanged.
    let (status, body) = s
        .post("/api/v1/resources", "platform", Body::Yaml(first.clone()))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["outcome"], "created");
    let (status, body) = s
        .post("/api/v1/resources", "platform", Body::Yaml(first.clone()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "unchanged");

    // JSON works as well.
    let as_json: Value = serde_json::to_value(
        serde_yaml::from_str::<serde_yaml::Value>(&definition("widget", "1.0.1", "a widget!", &[]))
            .unwrap(),
    )
    .unwrap();
    let (status, body) = s
        .post("/api/v1/resources", "platform", Body::Json(as_json))
        .await;
    assert_eq!(status, 201, "{body}");

    // Same version, other content.
    let (status, body) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Yaml(definition("widget", "1.0.0", "changed", &[])),
        )
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (409, "VERSION_IMMUTABLE"),
        "{body}"
    );

    // A required input added in a patch release.
    let (status, body) = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Yaml(definition("widget", "1.0.2", "a widget!", &["size"])),
        )
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (422, "BREAKING_CHANGE"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["minimum_version"], "2.0.0");
    assert_eq!(body["error"]["details"]["changes"][0]["kind"], "breaking");

    // Invalid documents list every problem with its field.
    let bad = definition("Widget_", "1.0.0", "x", &[]).replace(
        "supported_engines: [terraform]",
        "supported_engines: []\n  requried_inputs: []",
    );
    let (status, body) = s
        .post("/api/v1/resources", "platform", Body::Yaml(bad))
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (422, "VALIDATION_FAILED"),
        "{body}"
    );
    let fields = fields(&body);
    assert!(
        fields.contains(&"metadata.name")
            && fields.iter().any(|f| f.contains("requried_inputs"))
            && fields.contains(&"spec.supported_engines"),
        "{fields:?}"
    );

    // A dependency that does not exist.
    let dep = definition("gadget", "1.0.0", "x", &[]).replace(
        "  outputs:",
        "  dependencies:\n    - {name: no-such-dep, version: \"^1\"}\n  outputs:",
    );
    let (status, body) = s
        .post("/api/v1/resources", "platform", Body::Yaml(dep))
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (422, "DEPENDENCY_NOT_FOUND"),
        "{body}"
    );
    assert!(body["error"]["details"]["validation_errors"][0]["field"]
        .as_str()
        .unwrap()
        .starts_with("spec.dependencies[0]"));

    // Yank and unyank: latest moves back, exact reads still work.
    let (status, body) = s
        .post(
            "/api/v1/resources/widget/1.0.1/yank",
            "platform",
            Body::Json(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["changed"], true);
    assert_eq!(
        s.get("/api/v1/resources/widget").await.1["definition"]["metadata"]["version"],
        "1.0.0"
    );
    assert_eq!(
        s.get("/api/v1/resources/widget/1.0.1").await.1["yanked"],
        true
    );
    let (status, _) = s
        .post(
            "/api/v1/resources/widget/1.0.1/unyank",
            "platform",
            Body::Json(json!({})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        s.get("/api/v1/resources/widget").await.1["definition"]["metadata"]["version"],
        "1.0.1"
    );
    let (status, body) = s
        .post(
            "/api/v1/resources/widget/7.0.0/yank",
            "platform",
            Body::Json(json!({})),
        )
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (404, "VERSION_NOT_FOUND"),
        "{body}"
    );

    // Several documents at once: each its own result.
    let multi = format!(
        "{}---\n{}",
        definition("multi-a", "1.0.0", "a", &[]),
        definition("widget", "1.0.0", "changed again", &[])
    );
    let (status, body) = s
        .post("/api/v1/resources", "platform", Body::Yaml(multi))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["outcome"], "created");
    assert_eq!(body["results"][1]["error"]["code"], "VERSION_IMMUTABLE");

    // Validate writes nothing.
    let (status, body) = s
        .post(
            "/api/v1/validate",
            "reader",
            Body::Yaml(definition("never-written", "1.0.0", "x", &[])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], true);
    assert_eq!(s.get("/api/v1/resources/never-written").await.0, 404);

    // Validate answers what a publish of the same body would: a dependency
    // published in the same body is found, a missing one is named, an edit
    // of a published version is refused as immutable, and an unchanged
    // document is fine.
    let needs = |dep: &str| {
        definition("needs-base", "1.0.0", "x", &[]).replace(
            "  outputs:",
            &format!("  dependencies:\n    - {{name: {dep}, version: \"^1\"}}\n  outputs:"),
        )
    };
    let body_of = |docs: &[String]| docs.join("---\n");
    let (status, body) = s
        .post(
            "/api/v1/validate",
            "reader",
            Body::Yaml(body_of(&[
                needs("base-in-body"),
                definition("base-in-body", "1.0.0", "b", &[]),
                needs("no-such-base").replace("needs-base", "needs-missing"),
                definition("widget", "1.0.0", "an edit in place", &[]),
            ])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["valid"], false, "{body}");
    let docs = body["documents"].as_array().unwrap();
    let errors = |i: usize| docs[i]["errors"].as_array().unwrap().clone();
    assert_eq!(docs[0]["name"], "needs-base:1.0.0");
    assert!(errors(0).is_empty(), "{body}");
    assert!(errors(1).is_empty(), "{body}");
    assert!(
        errors(2)[0]["field"]
            .as_str()
            .unwrap()
            .starts_with("spec.dependencies[0]"),
        "{body}"
    );
    let publish = s
        .post(
            "/api/v1/resources",
            "platform",
            Body::Yaml(definition("widget", "1.0.0", "an edit in place", &[])),
        )
        .await;
    assert_eq!(code(&publish.1), "VERSION_IMMUTABLE", "{}", publish.1);
    assert!(!errors(3).is_empty(), "{body}");
    let (_, unchanged) = s
        .post("/api/v1/validate", "reader", Body::Yaml(first.clone()))
        .await;
    assert_eq!(unchanged["valid"], true, "{unchanged}");
    assert_eq!(s.get("/api/v1/resources/needs-base").await.0, 404);
    s.stop().await;
}
