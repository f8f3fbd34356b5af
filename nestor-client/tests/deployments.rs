//! Compositions and deployments through the client, with the bundled
//! engines: publish, plan, deploy (once per Idempotency-Key), follow,
//! list, graph, promote, roll back, delete; team scoping and not-found
//! codes.

use std::time::{Duration, Instant};

use nestor_client::{Client, TeamDeploy};
use nestor_core::{
    Deployment, DeploymentFilter, DeploymentRequest, DeploymentStatus, Error, ErrorCode,
    PublishOutcome, VersionSpec,
};

use crate::support::{root, Server};

/// Polls until the deployment is final.
async fn finished(c: &Client, id: &str) -> Deployment {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let d = c.deployment(id).await.unwrap();
        if d.status.is_final() {
            return d;
        }
        assert!(Instant::now() < deadline, "{id} still {:?}", d.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compositions_and_the_deployment_lifecycle() {
    let s = Server::with(true).await;
    let alpha = s.client(Some("alpha"));
    let beta = s.client(Some("beta"));

    let web_app =
        std::fs::read_to_string(root().join("examples/compositions/alpha/web-app.yaml")).unwrap();
    let published = alpha
        .publish_composition_yaml("alpha", &web_app)
        .await
        .unwrap();
    assert_eq!(published.outcome, PublishOutcome::Created);
    assert!(!published.waves.is_empty());
    let typed = published.composition.composition.clone();
    let again = alpha.publish_composition(&typed).await.unwrap();
    assert_eq!(again.outcome, PublishOutcome::Unchanged);
    let listed = alpha.compositions("alpha").await.unwrap();
    assert_eq!(listed.len(), 1);
    let got = alpha
        .composition("alpha", "web-app", &VersionSpec::Latest)
        .await
        .unwrap();
    assert_eq!(got, listed[0]);
    let exact = alpha
        .composition("alpha", "web-app", &VersionSpec::parse("1.0.0").unwrap())
        .await
        .unwrap();
    assert_eq!(exact, got);
    match alpha
        .composition("alpha", "nope", &VersionSpec::Latest)
        .await
        .unwrap_err()
    {
        Error::CompositionNotFound { team, name } => {
            assert_eq!((team.as_str(), name.as_str()), ("alpha", "nope"))
        }
        other => panic!("{other:?}"),
    }
    let err = beta.compositions("alpha").await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Forbidden);

    let deploy = TeamDeploy::new("web-app")
        .environment("staging")
        .name("checkout")
        .param("size", "small")
        .param("image", "registry.example.com/checkout:1.0.0");
    let plan = alpha.plan_deploy("alpha", &deploy).await.unwrap();
    assert!(plan.artifacts["database"][0].path.ends_with("main.tf.json"));
    assert_eq!(plan.diff.base_revision, None);

    let started = alpha
        .deploy_with_key("alpha", &deploy, "client-deploy-1")
        .await
        .unwrap();
    assert_eq!(started.id, "alpha.staging.checkout.r1");
    let done = finished(&alpha, &started.id).await;
    assert_eq!(done.status, DeploymentStatus::Succeeded, "{done:?}");
    // The same key and body: the same deployment, applied once.
    let repeat = alpha
        .deploy_with_key("alpha", &deploy, "client-deploy-1")
        .await
        .unwrap();
    assert_eq!(repeat.id, started.id);
    let mine = alpha
        .deployments(&DeploymentFilter {
            team: Some("alpha".into()),
            ..DeploymentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    // The same key with another body is a conflict.
    let other = deploy.clone().param("size", "large");
    let err = alpha
        .deploy_with_key("alpha", &other, "client-deploy-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);

    // A request applied through POST /deployments, with a fresh key.
    let request = DeploymentRequest {
        team: "alpha".into(),
        environment: "staging".into(),
        name: "checkout".into(),
        composition: Some("web-app".into()),
        params: deploy.params.clone(),
        ..DeploymentRequest::default()
    };
    let plan = alpha.plan(&request).await.unwrap();
    assert!(plan.diff.is_empty(), "{:?}", plan.diff);
    let mut dry = request.clone();
    dry.dry_run = true;
    assert_eq!(
        alpha.apply(&dry).await.unwrap_err().code(),
        ErrorCode::BadRequest
    );
    let mut bigger = request.clone();
    bigger.params.insert("size".into(), "large".into());
    let r2 = alpha.apply(&bigger).await.unwrap();
    assert_eq!(r2.revision, 2);
    assert_eq!(
        finished(&alpha, &r2.id).await.status,
        DeploymentStatus::Succeeded
    );

    // Team B sees none of it: another team's deployment is answered as one
    // that does not exist, so ids cannot be found by trying.
    let err = beta.deployment(&started.id).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeploymentNotFound);
    assert!(matches!(err, nestor_core::Error::DeploymentNotFound { ref id } if *id == started.id));
    assert!(beta
        .deployments(&DeploymentFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        beta.delete_deployment(&r2.id).await.unwrap_err().code(),
        ErrorCode::DeploymentNotFound
    );

    let graph = alpha.graph(Some("alpha"), None).await.unwrap();
    assert!(
        graph
            .nodes
            .iter()
            .any(|n| n.id == "alpha/staging/checkout/database"),
        "{graph:?}"
    );
    let dot = alpha
        .graph_dot(Some("alpha"), Some("staging"))
        .await
        .unwrap();
    assert!(dot.starts_with("digraph nestor {"), "{dot}");
    assert!(dot.contains("alpha/staging/checkout/database"));

    let promoted = alpha
        .promote("alpha", "checkout", "staging", "prod")
        .await
        .unwrap();
    assert_eq!(promoted.environment, "prod");
    let back = alpha.rollback(&r2.id, Some(1)).await.unwrap();
    assert_eq!(
        (back.revision, back.status),
        (3, DeploymentStatus::Succeeded)
    );
    let removed = alpha.delete_deployment(&promoted.id).await.unwrap();
    assert_eq!(removed.environment, "prod");
    match alpha
        .deployment("alpha.staging.checkout.r9")
        .await
        .unwrap_err()
    {
        Error::DeploymentNotFound { id } => assert_eq!(id, "alpha.staging.checkout.r9"),
        other => panic!("{other:?}"),
    }

    let engines = alpha.engines().await.unwrap();
    assert!(engines.iter().any(|e| e.name == "terraform" && e.healthy));
    let ready = alpha.ready().await.unwrap();
    assert!(ready.ready && ready.engines >= 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_request_errors_carry_their_codes() {
    let s = Server::with(true).await;
    let alpha = s.client(Some("alpha"));
    let err = alpha
        .deploy("alpha", &TeamDeploy::new("no-such-composition"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CompositionNotFound);
    let web_app =
        std::fs::read_to_string(root().join("examples/compositions/alpha/web-app.yaml")).unwrap();
    alpha
        .publish_composition_yaml("alpha", &web_app)
        .await
        .unwrap();
    // A parameter outside its enum: 422 naming the field.
    let bad = TeamDeploy::new("web-app")
        .param("size", "enormous")
        .param("image", "x");
    let err = alpha.plan_deploy("alpha", &bad).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed, "{err}");
    assert!(
        err.field_errors().iter().any(|f| f.field.contains("size")),
        "{:?}",
        err.field_errors()
    );
    let err = alpha
        .rollback("alpha.staging.nothing.r1", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeploymentNotFound);
    let err = alpha
        .promote("alpha", "nothing", "staging", "prod")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DeploymentNotFound, "{err}");
    s.stop().await;
}
