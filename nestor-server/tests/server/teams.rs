//! Governance over HTTP: the example policies (configured under
//! `policies:`) judge `POST /teams/{team}/validate` and deploys, a team
//! quota refuses the apply past it, and the teams routes show each team
//! what it owns, its quota usage and its policies — never another team's.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{code, root, Body, Setup, TestServer};

async fn governed() -> TestServer {
    let mut setup = Setup {
        engines: true,
        ..Setup::default()
    };
    setup.config.policies = vec![nestor_server::PolicyConfig {
        path: root().join("examples/policies/policies"),
        team: None,
        environment: None,
    }];
    setup.config.quotas = vec![nestor_core::Quota {
        team: "alpha".into(),
        environment: None,
        max_deployments: Some(1),
        max_resources: None,
        max_per_category: [("database".to_string(), 1)].into(),
    }];
    let s = TestServer::with(setup).await;
    let web_app =
        std::fs::read_to_string(root().join("examples/compositions/alpha/web-app.yaml")).unwrap();
    let (status, body) = s
        .post(
            "/api/v1/teams/alpha/compositions",
            "alpha",
            Body::Yaml(web_app),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    s
}

fn deployment(name: &str, labels: Value) -> Value {
    json!({"composition": "web-app", "environment": "staging", "name": name,
           "params": {"image": "registry.example.com/shop:1.0.0"}, "labels": labels})
}

fn messages(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_answers_what_the_policies_say_without_deploying() {
    let s = governed().await;
    let (status, check) = s
        .post(
            "/api/v1/teams/alpha/validate",
            "alpha",
            Body::Json(deployment("shop", json!({"owner": "alice"}))),
        )
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["subject"], "alpha/staging/shop");
    assert_eq!(check["allowed"], false);
    assert_eq!(
        messages(&check["denials"]),
        vec!["alpha/shop needs the label cost-center"]
    );
    assert_eq!(
        check["denials"][0]["policy"],
        json!(root()
            .join("examples/policies/policies/required_labels.rego")
            .display()
            .to_string())
    );
    assert_eq!(
        messages(&check["warnings"]),
        vec!["database: instance class db.t3.micro is not a staging class"]
    );
    let labels = json!({"owner": "alice", "cost-center": "cc-42"});
    let (_, check) = s
        .post(
            "/api/v1/teams/alpha/validate",
            "alpha",
            Body::Json(deployment("shop", labels)),
        )
        .await;
    assert_eq!(check["allowed"], true, "{check}");
    // Nothing was deployed.
    let (_, list) = s.get_as("/api/v1/deployments", "alpha").await;
    assert_eq!(list["items"], json!([]));
    // Another team's token, and a body naming another team, are refused.
    let (status, body) = s
        .post(
            "/api/v1/teams/alpha/validate",
            "beta",
            Body::Json(deployment("shop", json!({}))),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let mut other = deployment("shop", json!({}));
    other["team"] = json!("beta");
    let (status, body) = s
        .post("/api/v1/teams/alpha/validate", "alpha", Body::Json(other))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
        "{body}"
    );
    // A deploy the policies refuse is 422 POLICY_VIOLATION, recorded nowhere.
    let (status, body) = s
        .post(
            "/api/v1/teams/alpha/deploy",
            "alpha",
            Body::Json(deployment("shop", json!({}))),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "POLICY_VIOLATION");
    assert_eq!(
        body["error"]["details"]["violations"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refuses_the_second_deployment_and_the_teams_routes_show_usage() {
    let s = governed().await;
    let labels = json!({"owner": "alice", "cost-center": "cc-42"});
    let (status, body) = s
        .post(
            "/api/v1/teams/alpha/deploy",
            "alpha",
            Body::Json(deployment("shop", labels.clone())),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = s
        .post(
            "/api/v1/teams/alpha/deploy",
            "alpha",
            Body::Json(deployment("checkout", labels)),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(&body), "QUOTA_EXCEEDED");
    let details = &body["error"]["details"];
    assert_eq!(details["team"], "alpha");
    assert_eq!(details["max"], 1);
    assert_eq!(details["usage"], 2);
    assert!(
        ["max_deployments", "max_per_category.database"]
            .contains(&details["limit"].as_str().unwrap()),
        "{details}"
    );

    let (status, quotas) = s.get_as("/api/v1/teams/alpha/quotas", "alpha").await;
    assert_eq!(status, 200, "{quotas}");
    assert_eq!(quotas["items"][0]["usage"]["deployments"], 1);
    assert_eq!(quotas["items"][0]["usage"]["per_category"]["database"], 1);
    let (status, team) = s.get_as("/api/v1/teams/alpha", "alpha").await;
    assert_eq!(status, 200, "{team}");
    assert_eq!(team["compositions"], json!(["web-app:1.0.0"]));
    assert_eq!(team["deployments"], json!({"staging": ["shop"]}));
    assert_eq!(team["policies"].as_array().unwrap().len(), 4, "{team}");

    let (status, teams) = s.get_as("/api/v1/teams", "admin").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = teams["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alpha"]);
    let (_, teams) = s.get_as("/api/v1/teams", "beta").await;
    assert_eq!(teams["items"], json!([]), "beta sees no other team");
    let (status, body) = s.get_as("/api/v1/teams/alpha/quotas", "beta").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "FORBIDDEN"));
    let (status, _) = s.get("/api/v1/teams").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
