//! The orchestrator over a real store and the real GitOps executor (a git
//! repository in a temp dir, checked with git2). Engines here are small
//! in-process ones so each test controls exactly what renders and what
//! fails; the bundled WebAssembly engines are exercised end to end in
//! nestor-server's tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use nestor_core::*;
use nestor_storage::{GitOpsConfig, GitOpsExecutor, MemoryStore};
use serde_json::{json, Value};

/// Renders `{resource}.json` with the inputs; its outputs are references
/// named after the resource. Fails when an input `fail` is true.
pub(crate) struct JsonEngine(pub(crate) &'static str);

#[async_trait]
impl Engine for JsonEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: self.0.into(),
            version: "1.0.0".into(),
            description: "test engine".into(),
        }
    }

    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput> {
        if request.inputs.get("fail") == Some(&Value::Bool(true)) {
            return Err(Error::EngineFailed {
                engine: self.0.into(),
                message: format!("{} cannot be rendered", request.resource),
            });
        }
        let content = serde_json::to_string_pretty(&json!({"resource": request.resource, "inputs": request.inputs, "env": request.context.environment})).unwrap();
        let outputs = request
            .definition
            .spec
            .outputs
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    nestor_core::Reach::value(format!("ref://{}/{}", request.resource, o.name)),
                )
            })
            .collect();
        Ok(RenderOutput {
            artifacts: vec![Artifact {
                path: format!("{}.json", self.0),
                content,
                media_type: "application/json".into(),
            }],
            outputs,
        })
    }
}

pub(crate) struct Env {
    pub(crate) store: Arc<MemoryStore>,
    pub(crate) orchestrator: Orchestrator,
    pub(crate) composer: Composer,
    pub(crate) repo: tempfile::TempDir,
}

fn def(name: &str, version: &str, inputs: &str, outputs: &str) -> ResourceDefinition {
    let yaml = format!(
        "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata: {{name: {name}, version: \"{version}\", provider: aws, category: test, resource_type: {name}}}\nspec:\n  supported_engines: [terraform, helm]\n  inputs: {inputs}\n  outputs: {outputs}\n"
    );
    parse_definition_yaml(&yaml).unwrap_or_else(|e| panic!("{e}: {:?}", e.field_errors()))
}

pub(crate) async fn env() -> Env {
    let store = Arc::new(MemoryStore::new());
    let catalog = CatalogService::new(store.clone());
    let defs = [
        def("database", "1.0.0", "[{name: size, type: string, validation: {enum: [small, large]}}, {name: fail, type: boolean, default: false}]", "[{name: endpoint, type: string}]"),
        def("cache", "1.0.0", "[{name: fail, type: boolean, default: false}]", "[{name: host, type: string}]"),
        def("app", "1.0.0", "[{name: replicas, type: integer, default: 1, validation: {min: 1, max: 10}}, {name: env, type: object, default: {}}, {name: fail, type: boolean, default: false}]", "[]"),
    ];
    for d in defs {
        catalog.publish(d, None, "test").await.unwrap();
    }
    let repo = tempfile::tempdir().unwrap();
    let executor = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(repo.path())).unwrap());
    let engines: BTreeMap<String, Arc<dyn Engine>> = BTreeMap::from([
        (
            "terraform".to_string(),
            Arc::new(JsonEngine("terraform")) as Arc<dyn Engine>,
        ),
        (
            "helm".to_string(),
            Arc::new(JsonEngine("helm")) as Arc<dyn Engine>,
        ),
    ]);
    let orchestrator = Orchestrator::new(store.clone(), Arc::new(engines), executor);
    let composer = Composer::new(store.clone());
    Env {
        store,
        orchestrator,
        composer,
        repo,
    }
}

const WEB_APP: &str = r#"
apiVersion: composer.nestor.io/v1
kind: Composition
metadata: {name: web-app, team: alpha, version: "1.0.0"}
spec:
  parameters:
    - {name: size, type: string, default: small, validation: {enum: [small, large]}}
    - {name: replicas, type: integer, default: 2}
  resources:
    - name: db
      type: database:^1
      engine: terraform
      config: {size: "{{ .params.size }}"}
    - name: cache
      catalogRef: cache
    - name: app
      catalog_ref: app:1.0.0
      engine: helm
      config:
        replicas: "{{ params.replicas }}"
        env: {DB: "{{ resources.db.outputs.endpoint }}", TEAM: "{{ team }}-{{ environment }}"}
      dependsOn: [cache]
"#;

fn request(env: &str, params: Value) -> DeploymentRequest {
    serde_json::from_value(json!({"team": "alpha", "environment": env, "name": "checkout", "composition": "web-app", "params": params})).unwrap()
}

fn read(repo: &std::path::Path, path: &str) -> Option<String> {
    let repo = git2::Repository::open(repo).unwrap();
    let tree = repo.head().ok()?.peel_to_tree().ok()?;
    let entry = tree.get_path(std::path::Path::new(path)).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    Some(String::from_utf8_lossy(blob.content()).into_owned())
}

pub(crate) fn commits(repo: &std::path::Path) -> Vec<String> {
    let repo = git2::Repository::open(repo).unwrap();
    let mut walk = repo.revwalk().unwrap();
    if walk.push_head().is_err() {
        return vec![];
    }
    walk.map(|id| {
        repo.find_commit(id.unwrap())
            .unwrap()
            .message()
            .unwrap()
            .to_string()
    })
    .collect()
}

#[tokio::test]
async fn plan_apply_change_rollback_and_promote() {
    let e = env().await;
    let published = e
        .composer
        .publish(parse_composition_yaml(WEB_APP).unwrap(), None, "test")
        .await
        .unwrap();
    assert_eq!(
        published.waves,
        vec![vec!["cache".to_string(), "db".into()], vec!["app".into()]],
        "implicit and dependsOn edges"
    );

    let plan = e
        .orchestrator
        .plan(&request("staging", json!({})))
        .await
        .unwrap();
    assert_eq!(plan.diff.added, ["app", "cache", "db"]);
    assert!(plan.diff.changed.is_empty() && plan.diff.base_revision.is_none());
    assert!(commits(e.repo.path()).is_empty(), "a plan writes nothing");
    let app = &plan.artifacts["app"][0].content;
    assert!(
        app.contains("\"DB\": \"ref://db/endpoint\"")
            && app.contains("\"replicas\": 2")
            && app.contains("alpha-staging"),
        "{app}"
    );

    let d1 = e
        .orchestrator
        .apply(&request("staging", json!({})), None)
        .await
        .unwrap();
    assert_eq!(
        (d1.revision, d1.status),
        (1, DeploymentStatus::Succeeded),
        "{:?}",
        d1.error
    );
    assert!(d1
        .resources
        .iter()
        .all(|r| r.status == ResourceStatus::Applied));
    assert_eq!(
        d1.resources
            .iter()
            .find(|r| r.name == "db")
            .unwrap()
            .catalog_ref,
        "database:1.0.0",
        "versions are pinned"
    );
    let log = commits(e.repo.path());
    assert_eq!(
        log,
        [format!(
            "nestor: alpha/staging/checkout revision 1 ({})",
            d1.id
        )]
    );
    let db_v1 = read(e.repo.path(), "alpha/staging/checkout/db/terraform.json")
        .expect("layout team/env/name/resource/file");
    assert!(db_v1.contains("\"size\": \"small\""));
    let argo = read(e.repo.path(), "argocd/alpha--staging.yaml")
        .expect("an Argo CD Application per team and environment");
    assert!(argo.contains("kind: Application") && argo.contains("path: alpha/staging"));

    let plan2 = e
        .orchestrator
        .plan(&request("staging", json!({"size": "large"})))
        .await
        .unwrap();
    assert_eq!(
        (
            plan2.diff.changed.clone(),
            plan2.diff.added.len(),
            plan2.diff.base_revision
        ),
        (vec!["db".to_string()], 0, Some(1))
    );
    assert_eq!(plan2.diff.files.len(), 1);
    assert!(
        plan2.diff.files[0]
            .diff
            .contains("-    \"size\": \"small\"")
            && plan2.diff.files[0]
                .diff
                .contains("+    \"size\": \"large\""),
        "{}",
        plan2.diff.files[0].diff
    );

    let d2 = e
        .orchestrator
        .apply(&request("staging", json!({"size": "large"})), None)
        .await
        .unwrap();
    assert_eq!(d2.revision, 2);
    assert!(
        read(e.repo.path(), "alpha/staging/checkout/db/terraform.json")
            .unwrap()
            .contains("large")
    );

    let d3 = e.orchestrator.rollback(&d2.id, Some(1)).await.unwrap();
    assert_eq!(
        (d3.revision, d3.status, d3.rollback_of),
        (3, DeploymentStatus::Succeeded, Some(1))
    );
    assert_eq!(
        read(e.repo.path(), "alpha/staging/checkout/db/terraform.json").unwrap(),
        db_v1,
        "revision 1's files are back"
    );
    assert_eq!(
        commits(e.repo.path()).len(),
        3,
        "a rollback is a new commit, history is kept"
    );
    assert_eq!(
        e.orchestrator.get(&d2.id).await.unwrap().status,
        DeploymentStatus::RolledBack
    );

    // A newer definition must not leak into the promotion: versions are pinned.
    let catalog = CatalogService::new(e.store.clone());
    let mut newer = def("database", "1.1.0", "[{name: size, type: string, validation: {enum: [small, large]}}, {name: fail, type: boolean, default: false}, {name: tier, type: string, default: gold}]", "[{name: endpoint, type: string}]");
    newer.metadata.description = "newer".into();
    catalog.publish(newer, None, "test").await.unwrap();
    let prod = e
        .orchestrator
        .promote("alpha", "checkout", "staging", "production")
        .await
        .unwrap();
    assert_eq!(prod.status, DeploymentStatus::Succeeded, "{:?}", prod.error);
    assert_eq!(
        prod.resources
            .iter()
            .find(|r| r.name == "db")
            .unwrap()
            .catalog_ref,
        "database:1.0.0"
    );
    assert_eq!(
        prod.params["size"], "small",
        "params of the latest succeeded staging revision (3 = revision 1's content)"
    );
    let prod_app = read(e.repo.path(), "alpha/production/checkout/app/helm.json").unwrap();
    assert!(
        prod_app.contains("alpha-production"),
        "templates re-render for the new environment"
    );
    assert!(read(e.repo.path(), "argocd/alpha--production.yaml").is_some());

    let events: Vec<String> = e
        .store
        .read_after(0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_type.as_str().to_string())
        .collect();
    assert!(
        events.contains(&"deployment.started".to_string())
            && events.contains(&"deployment.completed".to_string())
    );
}

#[tokio::test]
async fn a_failed_resource_skips_its_dependents_and_nothing_else() {
    let e = env().await;
    let request: DeploymentRequest = serde_json::from_value(json!({
        "team": "alpha", "environment": "dev", "name": "broken",
        "resources": [
            {"name": "db", "catalog_ref": "database", "engine": "terraform", "config": {"size": "small", "fail": true}},
            {"name": "app", "catalog_ref": "app", "config": {"env": {"DB": "{{ resources.db.outputs.endpoint }}"}}},
            {"name": "cache", "catalog_ref": "cache"}
        ]
    }))
    .unwrap();
    let d = e.orchestrator.apply(&request, None).await.unwrap();
    let status = |n: &str| d.resources.iter().find(|r| r.name == n).unwrap().status;
    assert_eq!(d.status, DeploymentStatus::Failed);
    assert_eq!(
        (status("db"), status("app"), status("cache")),
        (
            ResourceStatus::Failed,
            ResourceStatus::Skipped,
            ResourceStatus::Applied
        )
    );
    assert!(
        d.error
            .as_deref()
            .unwrap()
            .contains("db cannot be rendered"),
        "{:?}",
        d.error
    );
    assert!(
        read(e.repo.path(), "alpha/dev/broken/cache/terraform.json").is_some(),
        "the independent branch is committed"
    );
    assert!(
        read(e.repo.path(), "alpha/dev/broken/app/terraform.json").is_none(),
        "nothing of a skipped resource"
    );
    assert!(read(e.repo.path(), "alpha/dev/broken/db/terraform.json").is_none());
}

#[tokio::test]
async fn cycles_are_rejected_with_their_path() {
    let e = env().await;
    let cyclic = WEB_APP.replace(
        "dependsOn: [cache]",
        "dependsOn: [cache]\n  dependencies: [\"app -> db\"]",
    );
    let err = e
        .composer
        .publish(parse_composition_yaml(&cyclic).unwrap(), None, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::DependencyCycle);
    assert_eq!(err.to_string(), "dependency cycle: app -> db -> app");

    let request: DeploymentRequest = serde_json::from_value(json!({
        "team": "alpha", "environment": "dev", "name": "loop",
        "resources": [{"name": "a", "catalog_ref": "cache"}, {"name": "b", "catalog_ref": "cache"}, {"name": "c", "catalog_ref": "cache"}],
        "dependencies": ["a -> b", "b → c", "c -> a"]
    }))
    .unwrap();
    let err = e.orchestrator.apply(&request, None).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::DependencyCycle);
    assert_eq!(err.details()["cycle"], json!(["a", "b", "c", "a"]));
    assert!(commits(e.repo.path()).is_empty());
}

#[tokio::test]
async fn bad_configs_fail_validation_with_field_paths() {
    let e = env().await;
    let bad = WEB_APP
        .replace(
            "config: {size: \"{{ .params.size }}\"}",
            "config: {sise: small}",
        )
        .replace("replicas: \"{{ params.replicas }}\"", "replicas: \"many\"");
    let err = e
        .composer
        .publish(parse_composition_yaml(&bad).unwrap(), None, "t")
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed);
    let fields: Vec<(String, String)> = err
        .field_errors()
        .into_iter()
        .map(|f| (f.field, f.message))
        .collect();
    let has =
        |field: &str, needle: &str| fields.iter().any(|(f, m)| f == field && m.contains(needle));
    assert!(
        has("spec.resources[0].config.sise", "inputs: size, fail"),
        "unknown keys name the known ones: {fields:?}"
    );
    assert!(
        has("spec.resources[0].config", "required input \"size\""),
        "{fields:?}"
    );
    assert!(
        has("spec.resources[2].config.replicas", "expected integer"),
        "{fields:?}"
    );

    let missing_output =
        WEB_APP.replace("resources.db.outputs.endpoint", "resources.db.outputs.port");
    let err = e
        .composer
        .publish(parse_composition_yaml(&missing_output).unwrap(), None, "t")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no output \"port\""), "{err}");

    e.composer
        .publish(parse_composition_yaml(WEB_APP).unwrap(), None, "t")
        .await
        .unwrap();
    let err = e
        .orchestrator
        .apply(&request("dev", json!({"size": "huge", "colour": 1})), None)
        .await
        .unwrap_err();
    let fields: Vec<String> = err.field_errors().into_iter().map(|f| f.field).collect();
    assert_eq!(fields, ["params.colour", "params.size"]);
}

#[tokio::test]
async fn idempotency_keys_apply_once() {
    let e = env().await;
    e.composer
        .publish(parse_composition_yaml(WEB_APP).unwrap(), None, "t")
        .await
        .unwrap();
    let first = e
        .orchestrator
        .apply(&request("dev", json!({})), Some("k1"))
        .await
        .unwrap();
    let again = e
        .orchestrator
        .apply(&request("dev", json!({})), Some("k1"))
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(commits(e.repo.path()).len(), 1, "nothing applied twice");
    let err = e
        .orchestrator
        .apply(&request("dev", json!({"size": "large"})), Some("k1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Conflict);
}

#[tokio::test]
async fn deleting_revision_one_removes_its_files() {
    let e = env().await;
    e.composer
        .publish(parse_composition_yaml(WEB_APP).unwrap(), None, "t")
        .await
        .unwrap();
    let d = e
        .orchestrator
        .apply(&request("dev", json!({})), None)
        .await
        .unwrap();
    assert!(read(e.repo.path(), "alpha/dev/checkout/db/terraform.json").is_some());
    let removed = e.orchestrator.delete(&d.id).await.unwrap();
    assert_eq!(removed.revision, 2);
    assert!(read(e.repo.path(), "alpha/dev/checkout/db/terraform.json").is_none());
    assert_eq!(
        e.orchestrator.get(&d.id).await.unwrap().status,
        DeploymentStatus::RolledBack
    );
    assert_eq!(
        e.orchestrator.get("nope").await.unwrap_err().code(),
        ErrorCode::DeploymentNotFound
    );
}

/// Renders only once released: lets a test act while a wave is running.
struct GateEngine(Arc<tokio::sync::Notify>);

#[async_trait]
impl Engine for GateEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: "terraform".into(),
            version: "1.0.0".into(),
            description: "gated".into(),
        }
    }

    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput> {
        self.0.notified().await;
        JsonEngine("terraform").render(request).await
    }
}

#[tokio::test]
async fn cancelling_a_running_deployment_starts_no_new_wave() {
    let e = env().await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let engines: BTreeMap<String, Arc<dyn Engine>> = BTreeMap::from([(
        "terraform".to_string(),
        Arc::new(GateEngine(gate.clone())) as Arc<dyn Engine>,
    )]);
    let executor = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(e.repo.path())).unwrap());
    let orchestrator = Orchestrator::new(e.store.clone(), Arc::new(engines), executor);
    let request: DeploymentRequest = serde_json::from_value(json!({
        "team": "alpha", "environment": "dev", "name": "slow",
        "resources": [
            {"name": "first", "catalog_ref": "cache", "engine": "terraform"},
            {"name": "second", "catalog_ref": "cache", "engine": "terraform", "depends_on": ["first"]}
        ]
    }))
    .unwrap();
    let running = tokio::spawn({
        let o = orchestrator.clone();
        async move { o.apply(&request, None).await }
    });
    let id = "alpha.dev.slow.r1";
    for _ in 0..200 {
        if orchestrator.get(id).await.is_ok_and(|d| {
            d.resources
                .iter()
                .any(|r| r.status == ResourceStatus::Rendering)
        }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let cancelled = orchestrator.delete(id).await.unwrap();
    assert_eq!(cancelled.status, DeploymentStatus::Cancelled);
    gate.notify_one();
    let done = tokio::time::timeout(std::time::Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.status, DeploymentStatus::Cancelled, "{done:?}");
    let second = done.resources.iter().find(|r| r.name == "second").unwrap();
    assert_eq!(
        second.status,
        ResourceStatus::Cancelled,
        "the next wave never started"
    );
    assert!(
        commits(e.repo.path()).is_empty(),
        "a cancelled deployment commits nothing"
    );
    let stored = orchestrator.get(id).await.unwrap();
    assert_eq!(stored.status, DeploymentStatus::Cancelled);
}

#[tokio::test]
async fn a_failed_push_fails_the_deployment_and_leaves_the_repository_as_it_was() {
    let e = env().await;
    e.composer
        .publish(parse_composition_yaml(WEB_APP).unwrap(), None, "t")
        .await
        .unwrap();
    e.orchestrator
        .apply(&request("dev", json!({})), None)
        .await
        .unwrap();
    let before = commits(e.repo.path());
    let mut config = GitOpsConfig::local(e.repo.path());
    config.remote = Some(
        e.repo
            .path()
            .join("no-such-remote")
            .to_string_lossy()
            .into_owned(),
    );
    let pushing = Arc::new(GitOpsExecutor::open(config).unwrap());
    let engines: BTreeMap<String, Arc<dyn Engine>> = BTreeMap::from([
        (
            "terraform".to_string(),
            Arc::new(JsonEngine("terraform")) as Arc<dyn Engine>,
        ),
        (
            "helm".to_string(),
            Arc::new(JsonEngine("helm")) as Arc<dyn Engine>,
        ),
    ]);
    let orchestrator = Orchestrator::new(e.store.clone(), Arc::new(engines), pushing);
    let d = orchestrator
        .apply(&request("dev", json!({"size": "large"})), None)
        .await
        .unwrap();
    assert_eq!(d.status, DeploymentStatus::Failed);
    assert!(
        d.error.as_deref().unwrap().contains("executor failed"),
        "{:?}",
        d.error
    );
    assert_eq!(commits(e.repo.path()), before, "the branch is where it was");
    assert!(read(e.repo.path(), "alpha/dev/checkout/db/terraform.json")
        .unwrap()
        .contains("small"));
}
