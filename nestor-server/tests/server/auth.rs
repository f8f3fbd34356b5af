//! The auth matrix (docs/src/operator/security.md): anonymous, reader, platform, team A vs team
//! B, admin, and unknown tokens.

use reqwest::Method;
use serde_json::json;

use super::{code, definition, Body, Setup, TestServer};

fn web_app() -> String {
    std::fs::read_to_string(super::root().join("examples/compositions/alpha/web-app.yaml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_team_scoping() {
    let s = TestServer::start().await;
    let publish = |token: Option<&'static str>, version: &'static str| {
        let body = Body::Yaml(definition("authz", version, "auth", &[]));
        let s = &s;
        async move {
            s.send(Method::POST, "/api/v1/resources", token, Some(body))
                .await
        }
    };
    // Catalog writes: platform and admin only; anonymous is 401, others 403.
    assert_eq!(publish(None, "1.0.0").await.0, 401);
    assert_eq!(publish(Some("reader"), "1.0.0").await.0, 403);
    assert_eq!(publish(Some("alpha"), "1.0.0").await.0, 403);
    assert_eq!(publish(Some("platform"), "1.0.0").await.0, 201);
    assert_eq!(publish(Some("admin"), "1.1.0").await.0, 201);
    let (status, body) = publish(Some("not-a-token"), "1.2.0").await;
    assert_eq!((status.as_u16(), code(&body)), (401, "UNAUTHORIZED"));
    // An unknown token is refused even where anonymous reads are allowed.
    assert_eq!(s.get_as("/api/v1/resources", "not-a-token").await.0, 401);
    // Anonymous catalog reads are allowed by default.
    assert_eq!(s.get("/api/v1/resources").await.0, 200);
    assert_eq!(s.get_as("/api/v1/resources/authz", "reader").await.0, 200);

    // Compositions: team alpha publishes its own, not beta's.
    let (status, body) = s
        .post(
            "/api/v1/teams/alpha/compositions",
            "alpha",
            Body::Yaml(web_app()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = s
        .post(
            "/api/v1/teams/alpha/compositions",
            "beta",
            Body::Yaml(web_app()),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        s.get("/api/v1/teams/alpha/compositions").await.0,
        401,
        "compositions are not anonymous"
    );
    assert_eq!(
        s.get_as("/api/v1/teams/alpha/compositions", "beta").await.0,
        403
    );
    assert_eq!(
        s.get_as("/api/v1/teams/alpha/compositions/web-app", "alpha")
            .await
            .0,
        200
    );
    assert_eq!(
        s.get_as("/api/v1/teams/alpha/compositions/web-app/1.0.0", "reader")
            .await
            .0,
        200
    );
    assert_eq!(
        s.get_as("/api/v1/teams/alpha/compositions/web-app", "admin")
            .await
            .0,
        200
    );
    assert_eq!(
        s.get_as("/api/v1/teams/alpha/compositions/web-app", "platform")
            .await
            .0,
        403
    );
    let (status, body) = s
        .post(
            "/api/v1/teams/beta/compositions",
            "beta",
            Body::Yaml(web_app()),
        )
        .await;
    assert_eq!(
        (status.as_u16(), code(&body)),
        (422, "VALIDATION_FAILED"),
        "metadata.team must match the path: {body}"
    );

    // Deployments: a resources-only request needs no engine to be refused or scoped.
    let request = |team: &str| json!({"team": team, "environment": "dev", "name": "svc", "resources": [{"name": "q", "catalog_ref": "aws-sqs-queue:1.1.0", "config": {}}]});
    assert_eq!(
        s.send(
            Method::POST,
            "/api/v1/deployments",
            None,
            Some(Body::Json(request("alpha")))
        )
        .await
        .0,
        401
    );
    assert_eq!(
        s.post("/api/v1/deployments", "beta", Body::Json(request("alpha")))
            .await
            .0,
        403
    );
    assert_eq!(
        s.post(
            "/api/v1/deployments",
            "reader",
            Body::Json(request("alpha"))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        s.post(
            "/api/v1/deployments",
            "platform",
            Body::Json(request("alpha"))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        s.post(
            "/api/v1/teams/alpha/deploy",
            "beta",
            Body::Json(json!({"composition": "web-app"}))
        )
        .await
        .0,
        403
    );

    // Listings filter to the caller's teams; asking for another team is 403.
    assert_eq!(s.get("/api/v1/deployments").await.0, 401);
    assert_eq!(
        s.get_as("/api/v1/deployments?team=alpha", "beta").await.0,
        403
    );
    assert_eq!(
        s.get_as("/api/v1/deployments", "beta").await.1["items"],
        json!([])
    );
    assert_eq!(s.get_as("/api/v1/deployments", "admin").await.0, 200);
    assert_eq!(s.get_as("/api/v1/graph", "beta").await.0, 200);
    assert_eq!(s.get_as("/api/v1/graph?team=alpha", "beta").await.0, 403);

    // Without anonymous reads, the catalog needs a token too.
    let mut setup = Setup {
        catalog: false,
        ..Setup::default()
    };
    setup.config.auth.anonymous_read = false;
    let closed = TestServer::with(setup).await;
    assert_eq!(closed.get("/api/v1/resources").await.0, 401);
    assert_eq!(closed.get("/api/v1/events").await.0, 401);
    assert_eq!(closed.get_as("/api/v1/resources", "reader").await.0, 200);
    assert_eq!(closed.get("/health").await.0, 200, "liveness stays open");
    closed.stop().await;
    s.stop().await;
}
