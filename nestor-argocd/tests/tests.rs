//! The Argo CD observer end to end: the orchestrator over the memory
//! store commits to a real GitOps repository (git2), then waits on Argo
//! CD's answers.
//!
//! No Argo CD can run here, so — the one stand-in these tests allow —
//! Argo CD's API is an HTTP server on 127.0.0.1 answering
//! `GET /api/v1/applications/{name}` (and `/resource-tree`) with Argo
//! CD's own Application JSON: tests/data/application.yaml, vendored from
//! argoproj/argo-cd's test data, with each case's name, revision, sync
//! status and per-object health set on top, field names as in Argo CD's
//! types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nestor_argocd::{ArgoCdObserver, ArgoCdSettings};
use nestor_core::*;
use nestor_storage::{GitOpsConfig, GitOpsExecutor, MemoryStore};
use serde_json::{json, Value};

mod takeover;

/// Renders one manifest per resource: a provider-terraform Workspace for
/// `db` (cluster-scoped), a Deployment for the others.
struct ManifestEngine;

#[async_trait]
impl Engine for ManifestEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: "terraform".into(),
            version: "1.0.0".into(),
            description: "test".into(),
        }
    }

    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput> {
        let c = &request.context;
        let key = DeploymentKey {
            team: c.team.clone(),
            environment: c.environment.clone(),
            name: c.deployment.clone(),
        };
        let content = if request.resource == "db" {
            format!(
                "apiVersion: tf.upbound.io/v1beta1\nkind: Workspace\nmetadata:\n  name: {}\nspec:\n  forProvider: {{source: Inline, module: \"{{}}\"}}\n",
                cluster_object_name(&key, "db")
            )
        } else {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {}\n  namespace: {}\n",
                object_name(&c.deployment, &request.resource),
                cluster_names(&c.team, &c.environment).namespace
            )
        };
        Ok(RenderOutput {
            artifacts: vec![Artifact {
                path: "manifest.yaml".into(),
                content,
                media_type: "application/yaml".into(),
            }],
            outputs: BTreeMap::new(),
        })
    }
}

/// What the stand-in answers, look after look (the last repeats).
#[derive(Clone)]
enum Answer {
    /// The Application: sync status, then per object (kind) its health
    /// and message.
    App(
        &'static str,
        Vec<(&'static str, &'static str, &'static str)>,
    ),
    /// The same, with object health only in the resource tree.
    Tree(Vec<(&'static str, &'static str, &'static str)>),
    /// A failed sync operation of the commit, for the Workspace.
    SyncFailed(&'static str),
    /// An HTTP status without a body.
    Status(u16),
}

/// Every request the stand-in got: path, query, `Authorization` header.
type Looks = Arc<Mutex<Vec<(String, BTreeMap<String, String>, Option<String>)>>>;

#[derive(Clone)]
struct StandIn {
    answers: Arc<Vec<Answer>>,
    looks: Looks,
    repo: PathBuf,
}

impl StandIn {
    fn head(&self) -> String {
        std::fs::read_to_string(self.repo.join(".git/refs/heads/main"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn answer(&self, tree: bool) -> Answer {
        let looks = self.looks.lock().unwrap();
        let apps = looks
            .iter()
            .filter(|(p, _, _)| !p.ends_with("resource-tree"))
            .count();
        let _ = tree;
        let i = apps.saturating_sub(1);
        self.answers[i.min(self.answers.len() - 1)].clone()
    }
}

/// `a=1&b=2` as a map (the names and values the observer sends are plain).
fn pairs(query: Option<String>) -> BTreeMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn vendored() -> Value {
    let text = include_str!("data/application.yaml");
    serde_yaml::from_str(text).unwrap()
}

fn objects(health: &[(&str, &str, &str)], with_health: bool) -> Vec<Value> {
    health
        .iter()
        .map(|(kind, status, message)| {
            let mut o = match *kind {
                "Workspace" => {
                    json!({"group": "tf.upbound.io", "version": "v1beta1", "kind": "Workspace",
                    "name": "alpha--dev--web--db", "status": "Synced"})
                }
                _ => json!({"group": "apps", "version": "v1", "kind": "Deployment",
                    "namespace": "alpha--dev", "name": "web--app", "status": "Synced"}),
            };
            if with_health {
                o["health"] = json!({"status": status});
                if !message.is_empty() {
                    o["health"]["message"] = json!(message);
                }
            }
            o
        })
        .collect()
}

async fn application(
    State(s): State<StandIn>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    s.looks
        .lock()
        .unwrap()
        .push((format!("/api/v1/applications/{name}"), pairs(query), auth));
    let head = s.head();
    let mut app = vendored();
    app["metadata"]["name"] = json!(name);
    app["metadata"]["namespace"] = json!("argocd");
    app["status"]["sync"]["revision"] = json!(head);
    app["status"]["operationState"]["syncResult"]["revision"] = json!(head);
    app["status"]["operationState"]["operation"]["sync"]["revision"] = json!(head);
    match s.answer(false) {
        Answer::Status(code) => return StatusCode::from_u16(code).unwrap().into_response(),
        Answer::App(sync, health) => {
            app["status"]["sync"]["status"] = json!(sync);
            app["status"]["resources"] = json!(objects(&health, true));
        }
        Answer::Tree(health) => {
            app["status"]["resourceHealthSource"] = json!("appTree");
            app["status"]["resources"] = json!(objects(&health, false));
        }
        Answer::SyncFailed(message) => {
            let op = &mut app["status"]["operationState"];
            op["phase"] = json!("Failed");
            op["message"] = json!("one or more objects failed to apply");
            op["syncResult"]["resources"] = json!([{"group": "tf.upbound.io", "version": "v1beta1",
                "kind": "Workspace", "namespace": "", "name": "alpha--dev--web--db",
                "status": "SyncFailed", "message": message, "syncPhase": "Sync"}]);
            app["status"]["sync"]["status"] = json!("OutOfSync");
            app["status"]["resources"] = json!(objects(&[("Workspace", "Missing", "")], true));
        }
    }
    Json(app).into_response()
}

async fn tree(
    State(s): State<StandIn>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    s.looks.lock().unwrap().push((
        format!("/api/v1/applications/{name}/resource-tree"),
        pairs(query),
        None,
    ));
    let Answer::Tree(health) = s.answer(true) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let nodes: Vec<Value> = objects(&health, true)
        .into_iter()
        .map(|mut n| {
            n.as_object_mut().unwrap().remove("status");
            n["uid"] = json!("4a5b");
            n
        })
        .collect();
    Json(json!({"nodes": nodes})).into_response()
}

struct Case {
    orchestrator: Orchestrator,
    store: Arc<MemoryStore>,
    looks: Looks,
    _repo: tempfile::TempDir,
}

async fn case(answers: Vec<Answer>, timeout: Duration) -> Case {
    let repo = tempfile::tempdir().unwrap();
    let executor = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(repo.path())).unwrap());
    let looks = Arc::new(Mutex::new(Vec::new()));
    let stand_in = StandIn {
        answers: Arc::new(answers),
        looks: looks.clone(),
        repo: repo.path().to_path_buf(),
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
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let store = Arc::new(MemoryStore::new());
    let catalog = CatalogService::new(store.clone());
    for name in ["database", "web"] {
        let yaml = format!("apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata: {{name: {name}, version: \"1.0.0\", provider: aws, category: test, resource_type: {name}}}\nspec:\n  supported_engines: [terraform]\n  inputs: []\n  outputs: []\n");
        catalog
            .publish(parse_definition_yaml(&yaml).unwrap(), None, "test")
            .await
            .unwrap();
    }
    let engines: BTreeMap<String, Arc<dyn Engine>> = BTreeMap::from([(
        "terraform".to_string(),
        Arc::new(ManifestEngine) as Arc<dyn Engine>,
    )]);
    let observer = ArgoCdObserver::new(ArgoCdSettings {
        server: format!("http://{addr}"),
        token: Some("s3cr3t".into()),
        namespace: "argocd".into(),
        insecure_tls: false,
        poll: Duration::from_millis(20),
        health_timeout: timeout,
    })
    .unwrap();
    let orchestrator = Orchestrator::new(store.clone(), Arc::new(engines), executor)
        .with_observer(Arc::new(observer));
    Case {
        orchestrator,
        store,
        looks,
        _repo: repo,
    }
}

async fn deploy(c: &Case) -> Deployment {
    let request: DeploymentRequest = serde_json::from_value(json!({
        "team": "alpha", "environment": "dev", "name": "web",
        "resources": [
            {"name": "db", "catalog_ref": "database"},
            {"name": "app", "catalog_ref": "web", "depends_on": ["db"]}
        ]
    }))
    .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        c.orchestrator.apply(&request, None),
    )
    .await
    .expect("the observation ends")
    .unwrap()
}

fn health(d: &Deployment, resource: &str) -> (Health, Option<String>) {
    let h = d
        .resources
        .iter()
        .find(|r| r.name == resource)
        .unwrap()
        .health
        .clone()
        .unwrap();
    (h.status, h.message)
}

const HEALTHY: &[(&str, &str, &str)] =
    &[("Workspace", "Healthy", ""), ("Deployment", "Healthy", "")];

#[tokio::test]
async fn synced_and_healthy_succeeds() {
    let c = case(
        vec![Answer::App("Synced", HEALTHY.to_vec())],
        Duration::from_secs(10),
    )
    .await;
    let d = deploy(&c).await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    let cluster = d.cluster.clone().unwrap();
    assert_eq!(
        (cluster.state, cluster.observer.as_deref()),
        (ClusterState::Healthy, Some("argocd"))
    );
    assert_eq!(cluster.revision, d.commit);
    assert_eq!(health(&d, "db").0, Health::Healthy);
    assert_eq!(health(&d, "app").0, Health::Healthy);
    let looks = c.looks.lock().unwrap();
    let (path, query, auth) = &looks[0];
    assert_eq!(path, "/api/v1/applications/alpha--dev");
    assert_eq!(
        query.get("appNamespace").map(String::as_str),
        Some("argocd")
    );
    assert_eq!(
        query.get("refresh").map(String::as_str),
        Some("normal"),
        "the first look refreshes"
    );
    assert_eq!(auth.as_deref(), Some("Bearer s3cr3t"));
}

#[tokio::test]
async fn progressing_then_healthy_succeeds_after_the_change() {
    let progressing = vec![
        (
            "Workspace",
            "Progressing",
            "Reconciling: terraform apply running",
        ),
        ("Deployment", "Missing", ""),
    ];
    let c = case(
        vec![
            Answer::App("OutOfSync", progressing.clone()),
            Answer::App("Synced", progressing),
            Answer::App("Synced", HEALTHY.to_vec()),
        ],
        Duration::from_secs(10),
    )
    .await;
    let d = deploy(&c).await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert!(c.looks.lock().unwrap().len() >= 3);
    // While it waited, the deployment said so: applying, with db's health
    // and Argo CD's message.
    let events = c.store.read_after(0, 1000).await.unwrap();
    let waiting = events
        .iter()
        .filter_map(|e| serde_json::from_value::<Deployment>(e.data.clone()).ok())
        .find(|d| {
            d.status == DeploymentStatus::Applying
                && d.resources.iter().any(|r| {
                    r.health
                        .as_ref()
                        .is_some_and(|h| h.status == Health::Progressing)
                })
        })
        .expect("an update while progressing");
    let (h, message) = health(&waiting, "db");
    assert_eq!(h, Health::Progressing);
    assert!(message.unwrap().contains("terraform apply running"));
    assert_eq!(waiting.cluster.unwrap().state, ClusterState::Waiting);
}

#[tokio::test]
async fn degraded_fails_naming_the_resource_and_the_message() {
    let c = case(
        vec![Answer::App(
            "Synced",
            vec![
                (
                    "Workspace",
                    "Degraded",
                    "apply failed: Error: creating RDS instance: InvalidParameterValue",
                ),
                ("Deployment", "Progressing", ""),
            ],
        )],
        Duration::from_secs(10),
    )
    .await;
    let d = deploy(&c).await;
    assert_eq!(d.status, DeploymentStatus::Failed);
    let error = d.error.clone().unwrap();
    assert!(
        error.contains("db is Degraded") && error.contains("InvalidParameterValue"),
        "{error}"
    );
    let db = d.resources.iter().find(|r| r.name == "db").unwrap();
    assert_eq!(db.status, ResourceStatus::Failed);
    assert_eq!(d.cluster.unwrap().state, ClusterState::Degraded);
}

#[tokio::test]
async fn a_failed_sync_fails_naming_the_object() {
    let c = case(
        vec![Answer::SyncFailed(
            "the server could not find the requested resource (tf.upbound.io/v1beta1)",
        )],
        Duration::from_secs(10),
    )
    .await;
    let d = deploy(&c).await;
    assert_eq!(d.status, DeploymentStatus::Failed);
    let error = d.error.unwrap();
    assert!(
        error.contains("db: Workspace/alpha--dev--web--db") && error.contains("could not find"),
        "{error}"
    );
    assert_eq!(d.cluster.unwrap().state, ClusterState::SyncFailed);
}

#[tokio::test]
async fn not_healthy_in_time_fails_with_what_was_last_seen() {
    let c = case(
        vec![Answer::App(
            "Synced",
            vec![
                ("Workspace", "Progressing", "Reconciling"),
                ("Deployment", "Healthy", ""),
            ],
        )],
        Duration::from_millis(600),
    )
    .await;
    let started = std::time::Instant::now();
    let d = deploy(&c).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(d.status, DeploymentStatus::Failed);
    let error = d.error.unwrap();
    assert!(
        error.contains("not healthy within 600ms") && error.contains("db (Progressing"),
        "{error}"
    );
    assert_eq!(d.cluster.unwrap().state, ClusterState::TimedOut);
    let looks = c.looks.lock().unwrap().len();
    assert!(
        (3..30).contains(&looks),
        "polls back off: {looks} looks in 600ms at 20ms first"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_fail_with_a_clear_message() {
    let c = case(
        vec![
            Answer::Status(503),
            Answer::Status(502),
            Answer::App("Synced", HEALTHY.to_vec()),
        ],
        Duration::from_secs(10),
    )
    .await;
    let d = deploy(&c).await;
    assert_eq!(
        d.status,
        DeploymentStatus::Succeeded,
        "retried: {:?}",
        d.error
    );

    let c = case(vec![Answer::Status(503)], Duration::from_secs(10)).await;
    let d = deploy(&c).await;
    assert_eq!(d.status, DeploymentStatus::Failed);
    let error = d.error.unwrap();
    assert!(
        error.contains("503 Service Unavailable")
            && error.contains("/api/v1/applications/alpha--dev")
            && error.contains("5 attempts in a row"),
        "{error}"
    );
    assert_eq!(d.cluster.unwrap().state, ClusterState::Unreachable);
    assert_eq!(c.looks.lock().unwrap().len(), 5);

    let c = case(vec![Answer::Status(401)], Duration::from_secs(10)).await;
    let d = deploy(&c).await;
    assert!(d.error.unwrap().contains("refused the token"));
    assert_eq!(
        c.looks.lock().unwrap().len(),
        1,
        "a refused token is not retried"
    );
}

#[tokio::test]
async fn health_from_the_resource_tree_when_argo_cd_keeps_it_there() {
    let c = case(
        vec![
            Answer::Tree(vec![
                ("Workspace", "Progressing", "Reconciling"),
                ("Deployment", "Healthy", ""),
            ]),
            Answer::Tree(HEALTHY.to_vec()),
        ],
        Duration::from_secs(10),
    )
    .await;
    let d = deploy(&c).await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert!(c
        .looks
        .lock()
        .unwrap()
        .iter()
        .any(|(p, _, _)| p == "/api/v1/applications/alpha--dev/resource-tree"));
}
