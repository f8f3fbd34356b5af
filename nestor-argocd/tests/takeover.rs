//! A replica that dies while waiting on Argo CD is taken over like any
//! other run: two orchestrators share one SQLite file and one GitOps
//! repository; the first commits and starts waiting on the stand-in Argo
//! CD (see the crate's test module docs), then stops without releasing its
//! lease; the second takes the deployment over once the lease lapses,
//! resumes the wait without committing again and finishes `succeeded`,
//! with the health deadline still counted from the first replica's commit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nestor_argocd::{ArgoCdObserver, ArgoCdSettings};
use nestor_core::*;
use nestor_storage::{GitOpsConfig, GitOpsExecutor, SqliteStore};
use serde_json::json;

use super::{application, tree, Answer, ManifestEngine, StandIn, HEALTHY};

const TTL: Duration = Duration::from_millis(300);
const ID: &str = "alpha.dev.web.r1";

/// A replica over the shared SQLite file and repository, observing the
/// stand-in at `server`.
fn replica(
    db: &std::path::Path,
    repo: &std::path::Path,
    server: &str,
    owner: &str,
) -> Orchestrator {
    let store = Arc::new(SqliteStore::open(db).unwrap());
    let executor = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(repo)).unwrap());
    let engines: std::collections::BTreeMap<String, Arc<dyn Engine>> =
        std::collections::BTreeMap::from([(
            "terraform".to_string(),
            Arc::new(ManifestEngine) as Arc<dyn Engine>,
        )]);
    let observer = ArgoCdObserver::new(ArgoCdSettings {
        server: server.to_string(),
        token: Some("s3cr3t".into()),
        namespace: "argocd".into(),
        insecure_tls: false,
        poll: Duration::from_millis(20),
        health_timeout: Duration::from_secs(20),
    })
    .unwrap();
    Orchestrator::new(store, Arc::new(engines), executor)
        .with_observer(Arc::new(observer))
        .with_leases(LeaseSettings {
            owner: owner.into(),
            ttl: TTL,
        })
}

/// Polls until `ok` holds, for at most 10 s.
async fn until(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_replica_dying_while_waiting_is_taken_over_and_the_wait_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (db, repo) = (dir.path().join("nestor.db"), dir.path().join("gitops"));
    std::fs::create_dir_all(&repo).unwrap();
    // Argo CD reports the Workspace progressing for six looks, then
    // everything healthy: the first replica dies somewhere in between.
    let progressing = vec![
        (
            "Workspace",
            "Progressing",
            "Reconciling: terraform apply running",
        ),
        ("Deployment", "Missing", ""),
    ];
    let mut answers = vec![Answer::App("Synced", progressing); 6];
    answers.push(Answer::App("Synced", HEALTHY.to_vec()));
    let looks = Arc::new(Mutex::new(Vec::new()));
    let stand_in = StandIn {
        answers: Arc::new(answers),
        looks: looks.clone(),
        repo: repo.clone(),
    };
    let app = axum::Router::new()
        .route(
            "/api/v1/applications/{name}",
            axum::routing::get(application),
        )
        .route(
            "/api/v1/applications/{name}/resource-tree",
            axum::routing::get(tree),
        )
        .with_state(stand_in);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let a = replica(&db, &repo, &server, "replica-a");
    let b = replica(&db, &repo, &server, "replica-b");
    let catalog = CatalogService::new(Arc::new(SqliteStore::open(&db).unwrap()));
    for name in ["database", "web"] {
        let yaml = format!("apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata: {{name: {name}, version: \"1.0.0\", provider: aws, category: test, resource_type: {name}}}\nspec:\n  supported_engines: [terraform]\n  inputs: []\n  outputs: []\n");
        catalog
            .publish(parse_definition_yaml(&yaml).unwrap(), None, "test")
            .await
            .unwrap();
    }
    let request: DeploymentRequest = serde_json::from_value(json!({
        "team": "alpha", "environment": "dev", "name": "web",
        "resources": [
            {"name": "db", "catalog_ref": "database"},
            {"name": "app", "catalog_ref": "web", "depends_on": ["db"]}
        ]
    }))
    .unwrap();
    let running = tokio::spawn(async move { a.apply(&request, None).await });

    // Replica A committed and waits: Argo CD was asked at least twice.
    let store = SqliteStore::open(&db).unwrap();
    until("replica A to wait on Argo CD", async || {
        looks.lock().unwrap().len() >= 2
    })
    .await;
    let waiting = store.get_deployment(ID).await.unwrap().unwrap();
    assert_eq!(waiting.status, DeploymentStatus::Applying);
    let cluster = waiting.cluster.clone().expect("observing");
    assert_eq!(cluster.state, ClusterState::Waiting);
    let commit = waiting.commit.clone().expect("committed");
    // Replica A dies: no more heartbeats, its lease is never released.
    running.abort();
    let seen_by_a = looks.lock().unwrap().len();

    assert_eq!(b.resume(ID).await.unwrap(), None, "a live lease is kept");
    until("the lease to lapse", async || {
        b.orphans(false).await.unwrap() == [ID]
    })
    .await;
    let d = tokio::time::timeout(Duration::from_secs(30), b.resume(ID))
        .await
        .expect("the wait ends")
        .unwrap()
        .expect("replica B takes it over");
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert!(
        looks.lock().unwrap().len() > seen_by_a,
        "replica B asked Argo CD itself"
    );
    let after = d.cluster.clone().unwrap();
    assert_eq!(after.state, ClusterState::Healthy);
    assert_eq!(
        after.since, cluster.since,
        "the health deadline still counts from replica A's commit"
    );
    assert_eq!(
        d.commit.as_deref(),
        Some(commit.as_str()),
        "no second commit"
    );
    let stored = store.get_deployment(ID).await.unwrap().unwrap();
    assert_eq!(stored.status, DeploymentStatus::Succeeded);
    let history = GitOpsExecutor::open(GitOpsConfig::local(&repo))
        .unwrap()
        .history(&waiting.key(), 10)
        .unwrap();
    assert_eq!(history.len(), 1, "one commit in all: {history:?}");
}
