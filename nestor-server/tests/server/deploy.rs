//! Deploying through the API with the bundled engines, followed over SSE;
//! team A's deployments stay invisible to team B.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{code, Body, Setup, SseClient, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_deploy_is_followed_to_succeeded_over_sse() {
    let s = TestServer::with(Setup {
        engines: true,
        ..Setup::default()
    })
    .await;
    let web_app =
        std::fs::read_to_string(super::root().join("examples/compositions/alpha/web-app.yaml"))
            .unwrap();
    let (status, body) = s
        .post(
            "/api/v1/teams/alpha/compositions",
            "alpha",
            Body::Yaml(web_app),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let mut events = SseClient::connect(
        &s,
        "?types=deployment.*&filter=team:alpha",
        None,
        Some("alpha"),
    )
    .await;
    let mut beta_events = SseClient::connect(&s, "?types=deployment.*", None, Some("beta")).await;
    let request = json!({"composition": "web-app", "environment": "staging", "name": "checkout", "params": {"size": "small", "image": "registry.example.com/checkout:1.0.0"}});

    // A plan first: rendered files, nothing applied.
    let mut dry = request.clone();
    dry["dry_run"] = json!(true);
    let (status, plan) = s
        .post("/api/v1/teams/alpha/deploy", "alpha", Body::Json(dry))
        .await;
    assert_eq!(status, 200, "{plan}");
    assert!(
        plan["artifacts"]["database"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("main.tf.json"),
        "{plan}"
    );

    let resp = s
        .client
        .post(format!("{}/api/v1/teams/alpha/deploy", s.url))
        .bearer_auth("alpha")
        .header("idempotency-key", "deploy-1")
        .json(&request)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let created: serde_json::Value = resp.json().await.unwrap();
    assert!(status == 202 || status == 201, "{status} {created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(id, "alpha.staging.checkout.r1");

    let mut seen = Vec::new();
    let done = loop {
        let f = events
            .next(Duration::from_secs(60))
            .await
            .expect("deployment events");
        assert_eq!(f.data["data"]["id"], id.as_str());
        seen.push(f.event.clone());
        if f.event == "deployment.completed" || f.event == "deployment.failed" {
            break f;
        }
    };
    assert_eq!(
        seen.first().map(String::as_str),
        Some("deployment.started"),
        "{seen:?}"
    );
    assert_eq!(done.event, "deployment.completed", "{:?}", done.data);
    assert_eq!(done.data["data"]["status"], "succeeded");
    let (status, got) = s
        .get_as(&format!("/api/v1/deployments/{id}"), "alpha")
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["status"], "succeeded");
    assert!(
        got["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "applied"),
        "{got}"
    );

    // The same Idempotency-Key and body: the same deployment, nothing applied twice.
    let again = s
        .client
        .post(format!("{}/api/v1/teams/alpha/deploy", s.url))
        .bearer_auth("alpha")
        .header("idempotency-key", "deploy-1")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["id"],
        id.as_str()
    );
    let mut other = request.clone();
    other["params"]["size"] = json!("large");
    let conflict = s
        .client
        .post(format!("{}/api/v1/teams/alpha/deploy", s.url))
        .bearer_auth("alpha")
        .header("idempotency-key", "deploy-1")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status().as_u16(), 409);

    // Team B sees none of it: another team's id is answered like a
    // missing one, so ids cannot be found by trying.
    assert!(beta_events.next(Duration::from_millis(300)).await.is_none());
    let (status, body) = s.get_as(&format!("/api/v1/deployments/{id}"), "beta").await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (404, "DEPLOYMENT_NOT_FOUND")
    );
    let (status, missing) = s
        .get_as("/api/v1/deployments/alpha.staging.nope.r1", "beta")
        .await;
    assert_eq!(
        (status.as_u16(), code(&missing)),
        (404, "DEPLOYMENT_NOT_FOUND")
    );
    // Idempotency keys are each team's own: B's "deploy-1" is not A's.
    let pipeline = std::fs::read_to_string(
        super::root().join("examples/compositions/beta/data-pipeline.yaml"),
    )
    .unwrap();
    let (status, body) = s
        .post(
            "/api/v1/teams/beta/compositions",
            "beta",
            Body::Yaml(pipeline),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let resp = s
        .client
        .post(format!("{}/api/v1/teams/beta/deploy", s.url))
        .bearer_auth("beta")
        .header("idempotency-key", "deploy-1")
        .json(&json!({"composition": "data-pipeline", "environment": "dev", "name": "etl", "params": {"image": "registry.example.com/etl:1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        202,
        "{}",
        resp.text().await.unwrap()
    );
    let beta_sees = s.get_as("/api/v1/deployments", "beta").await.1;
    assert!(
        beta_sees["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["team"] == "beta"),
        "{beta_sees}"
    );
    let (_, mine) = s
        .get_as("/api/v1/deployments?team=alpha&status=succeeded", "alpha")
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.send(
            Method::DELETE,
            &format!("/api/v1/deployments/{id}"),
            Some("beta"),
            None
        )
        .await
        .0,
        404
    );

    // Promote and roll back.
    let (status, promoted) = s
        .post(
            "/api/v1/deployments/promote",
            "alpha",
            Body::Json(
                json!({"team": "alpha", "name": "checkout", "from": "staging", "to": "prod"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{promoted}");
    assert_eq!(promoted["environment"], "prod");
    let (status, missing) = s
        .get_as("/api/v1/deployments/alpha.staging.checkout.r9", "alpha")
        .await;
    assert_eq!(
        (status.as_u16(), code(&missing)),
        (404, "DEPLOYMENT_NOT_FOUND")
    );
    let (status, graph) = s.get_as("/api/v1/graph?team=alpha", "alpha").await;
    assert_eq!(status, 200);
    assert!(!graph["nodes"].as_array().unwrap().is_empty());
    // The answer is the core's graph as it serialises, JSON and DOT alike.
    let filter = nestor_core::DeploymentFilter {
        team: Some("alpha".into()),
        ..Default::default()
    };
    let core = nestor_core::deployment_graph(s.store.as_ref(), &filter, |_| true)
        .await
        .unwrap();
    assert_eq!(graph, serde_json::to_value(&core).unwrap());
    let dot = s
        .client
        .get(format!("{}/api/v1/graph?team=alpha&format=dot", s.url))
        .bearer_auth("alpha")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(dot, core.to_dot());

    let metrics = s.metrics().await;
    assert!(
        metrics.contains("nestor_deployments_total{status=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("nestor_engine_render_seconds_count{engine=\"terraform\"}"),
        "{metrics}"
    );
    let (status, engines) = s.get("/api/v1/engines").await;
    assert_eq!(status, 200);
    assert!(engines
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "terraform" && e["healthy"] == true));
    assert_eq!(s.get("/ready").await.0, 200);
    s.stop().await;
}
