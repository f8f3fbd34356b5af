//! Outputs crossing engines, end to end through the orchestrator: the real
//! bundled components render, the real GitOps executor commits into a real
//! git repository (over the in-memory store), and the committed files are
//! what each consuming tool resolves. A wiring the consumer cannot resolve
//! is refused before anything is recorded.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use nestor_core::{
    CatalogReader, CatalogService, DeploymentRequest, DeploymentStore, Error, ErrorCode,
    Orchestrator, ResourceDefinition,
};
use nestor_storage::{GitOpsConfig, GitOpsExecutor, MemoryStore};
use serde_json::{json, Value};

use crate::support::registry;

const DEFINITIONS: &str = r#"
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: db, version: "1.0.0", provider: aws, category: database, resource_type: mysql}
spec:
  supported_engines: [terraform]
  optional_inputs:
    - {name: instance_class, type: string, default: db.t3.micro}
  outputs:
    - {name: endpoint, type: string}
    - {name: port, type: integer}
  engine_configs:
    terraform: {module_source: "./modules/rds-stub", output_map: {endpoint: db_instance_address, port: db_instance_port}}
---
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: cache, version: "1.0.0", provider: k8s, category: cache, resource_type: redis}
spec:
  supported_engines: [helm]
  optional_inputs:
    - {name: architecture, type: string, default: standalone}
  outputs:
    - {name: host, type: string}
  engine_configs:
    helm:
      repo_url: https://charts.bitnami.com/bitnami
      chart: redis
      chart_version: "15.14.0"
      values: {fullnameOverride: "{release}"}
---
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: web, version: "1.0.0", provider: k8s, category: compute, resource_type: web}
spec:
  supported_engines: [helm]
  optional_inputs:
    - {name: env, type: object, default: {}}
    - {name: db_host, type: string}
  outputs:
    - {name: url, type: string}
  engine_configs:
    helm: {repo_url: https://charts.example.com, chart: web, target_revision: "1.2.3"}
---
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: queue, version: "1.0.0", provider: aws, category: messaging, resource_type: queue}
spec:
  supported_engines: [pulumi]
  optional_inputs:
    - {name: fifo, type: boolean, default: false}
  outputs:
    - {name: url, type: string}
  engine_configs:
    pulumi: {type: "aws:sqs:Queue"}
---
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: worker, version: "1.0.0", provider: k8s, category: compute, resource_type: worker}
spec:
  supported_engines: [crossplane]
  optional_inputs:
    - {name: env, type: object, default: {}}
    - {name: queue_url, type: string}
  outputs:
    - {name: name, type: string}
  engine_configs:
    crossplane: {api_version: apps.example.org/v1, kind: Worker}
---
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: dns, version: "1.0.0", provider: aws, category: network, resource_type: record}
spec:
  supported_engines: [terraform]
  optional_inputs:
    - {name: target, type: string}
  engine_configs:
    terraform: {module_source: "./modules/dns"}
"#;

struct Env {
    store: Arc<MemoryStore>,
    orchestrator: Orchestrator,
    repo: tempfile::TempDir,
}

async fn env() -> Env {
    let store = Arc::new(MemoryStore::new());
    let engines = Arc::new(registry().clone());
    let catalog = CatalogService::new(store.clone()).with_engines(engines.clone());
    for text in DEFINITIONS.split("\n---\n") {
        let def: ResourceDefinition = nestor_core::parse_definition_yaml(text).unwrap();
        catalog.publish(def, None, "test").await.unwrap();
    }
    let repo = tempfile::tempdir().unwrap();
    let executor = GitOpsExecutor::open(GitOpsConfig::local(repo.path())).unwrap();
    let orchestrator = Orchestrator::new(store.clone(), engines, Arc::new(executor));
    Env {
        store,
        orchestrator,
        repo,
    }
}

fn request(resources: Value) -> DeploymentRequest {
    serde_json::from_value(
        json!({"team": "alpha", "environment": "dev", "name": "shop", "resources": resources}),
    )
    .unwrap()
}

/// Every file of the repository's head: path → content.
fn committed(repo: &Path) -> Vec<(String, String)> {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["ls-tree", "-r", "--name-only", "HEAD"])
        .lines()
        .map(|path| (path.to_string(), git(&["show", &format!("HEAD:{path}")])))
        .collect()
}

fn file<'a>(files: &'a [(String, String)], path: &str) -> &'a str {
    files
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, c)| c.as_str())
        .unwrap_or_else(|| {
            panic!(
                "{path} is not committed: {:?}",
                files.iter().map(|f| &f.0).collect::<Vec<_>>()
            )
        })
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

#[tokio::test]
async fn outputs_cross_engines_as_what_the_consumer_resolves() {
    let e = env().await;
    let deployment = e
        .orchestrator
        .apply(
            &request(json!([
                {"name": "db", "catalog_ref": "db"},
                {"name": "cache", "catalog_ref": "cache"},
                {"name": "queue", "catalog_ref": "queue"},
                {"name": "app", "catalog_ref": "web", "config": {"env": {
                    "DB_HOST": "{{ resources.db.outputs.endpoint }}",
                    "DB_PORT": "{{ resources.db.outputs.port }}",
                    "REDIS_URL": "redis://{{ resources.cache.outputs.host }}:6379",
                    "QUEUE_URL": "{{ resources.queue.outputs.url }}",
                }}},
                {"name": "worker", "catalog_ref": "worker", "config": {"env": {"QUEUE": "{{ resources.queue.outputs.url }}"}}},
                {"name": "dns", "catalog_ref": "dns", "config": {"target": "{{ resources.queue.outputs.url }}"}},
            ])),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        deployment.status.as_str(),
        "succeeded",
        "{:?}",
        deployment.error
    );
    let files = committed(e.repo.path());
    let base = "alpha/dev/shop";

    // Terraform → Helm: the Workspace's connection secret, as an EnvVarSource.
    let values = yaml(file(&files, &format!("{base}/app/values.yaml")));
    assert_eq!(
        values["env"]["DB_HOST"],
        json!({"secretKeyRef": {"name": "shop--db-outputs", "key": "endpoint"}})
    );
    assert_eq!(
        values["env"]["DB_PORT"],
        json!({"secretKeyRef": {"name": "shop--db-outputs", "key": "port"}})
    );
    // Helm → Helm: known at render time, so embedded in text like any value.
    assert_eq!(
        values["env"]["REDIS_URL"],
        "redis://shop--cache.alpha--dev.svc.cluster.local:6379"
    );
    // Pulumi → Helm and → Crossplane: the Secret the program publishes.
    assert_eq!(
        values["env"]["QUEUE_URL"],
        json!({"secretKeyRef": {"name": "shop--queue-outputs", "key": "url"}})
    );
    let claim = yaml(file(&files, &format!("{base}/worker/worker.yaml")));
    assert_eq!(
        claim["spec"]["parameters"]["env"]["QUEUE"],
        json!({"secretKeyRef": {"name": "shop--queue-outputs", "namespace": "alpha--dev", "key": "url"}})
    );
    let program = yaml(file(&files, &format!("{base}/queue/program.yaml")));
    assert_eq!(
        program["program"]["resources"]["nestor-outputs"]["properties"]["stringData"]["url"],
        "${queue.url}"
    );
    // Pulumi → Terraform: a root variable the Workspace sets from the Secret key.
    let main: Value =
        serde_json::from_str(file(&files, &format!("{base}/dns/main.tf.json"))).unwrap();
    assert_eq!(main["module"]["dns"]["target"], "${var.ref_queue_url}");
    assert_eq!(main["variable"]["ref_queue_url"]["type"], "string");
    let workspace = yaml(file(&files, &format!("{base}/dns/workspace.yaml")));
    assert_eq!(
        workspace["spec"]["forProvider"]["env"],
        json!([{"name": "TF_VAR_ref_queue_url", "secretKeyRef": {"name": "shop--queue-outputs", "namespace": "alpha--dev", "key": "url"}}])
    );

    // Sync waves are the resources' waves; nothing engine-internal leaks.
    for (resource, wave) in [
        ("db", "1"),
        ("cache", "1"),
        ("queue", "1"),
        ("app", "2"),
        ("worker", "2"),
        ("dns", "2"),
    ] {
        for (path, content) in files
            .iter()
            .filter(|(p, _)| p.starts_with(&format!("{base}/{resource}/")))
        {
            if path.ends_with(".json") || path.ends_with("values.yaml") || path.contains("/Pulumi.")
            {
                continue;
            }
            let doc = yaml(content);
            assert_eq!(
                doc["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"], wave,
                "{path}"
            );
        }
    }
    for (path, content) in &files {
        if !path.ends_with(".tf.json") && !path.ends_with("workspace.yaml") {
            assert!(
                !content.contains("${module."),
                "{path} holds a module reference"
            );
        }
    }

    // The stored deployment says where each output is found.
    let stored = e
        .store
        .get_deployment(&deployment.id)
        .await
        .unwrap()
        .unwrap();
    let db = stored.resources.iter().find(|r| r.name == "db").unwrap();
    assert_eq!(
        db.outputs["endpoint"],
        json!({"secret_key_ref": {"name": "shop--db-outputs", "namespace": "alpha--dev", "key": "endpoint"}})
    );
    let cache = stored.resources.iter().find(|r| r.name == "cache").unwrap();
    assert_eq!(
        cache.outputs["host"],
        json!({"value": "shop--cache.alpha--dev.svc.cluster.local"})
    );

    // Issue 10.9: `{release}` is the release name, and the chart stays pinned
    // through the `chart_version` spelling (issue 10.3).
    let cache_values = yaml(file(&files, &format!("{base}/cache/values.yaml")));
    assert_eq!(cache_values["fullnameOverride"], "shop--cache");
    let application = yaml(file(&files, &format!("{base}/cache/application.yaml")));
    assert_eq!(application["spec"]["source"]["targetRevision"], "15.14.0");
    assert_eq!(
        application["spec"]["source"]["helm"]["valuesObject"]["fullnameOverride"],
        "shop--cache"
    );
}

fn refusal(err: Error) -> Vec<nestor_core::FieldError> {
    assert_eq!(err.code(), ErrorCode::ValidationFailed, "{err}");
    match err {
        Error::Validation { errors } => errors,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_wiring_the_consumer_cannot_resolve_is_refused_at_plan_and_apply() {
    let e = env().await;
    // A Secret key into a `string` input: no field of a string type can hold it.
    let wrong = request(json!([
        {"name": "db", "catalog_ref": "db"},
        {"name": "app", "catalog_ref": "web", "config": {"db_host": "{{ resources.db.outputs.endpoint }}"}},
    ]));
    let mut dry = wrong.clone();
    dry.dry_run = true;
    let errors = refusal(e.orchestrator.plan(&dry).await.unwrap_err());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "resources.app.config.db_host");
    for part in [
        "app (helm)",
        "db_host",
        "output endpoint of db (terraform)",
        "shop--db-outputs",
    ] {
        assert!(
            errors[0].message.contains(part),
            "{part}: {}",
            errors[0].message
        );
    }
    let errors = refusal(e.orchestrator.apply(&wrong, None).await.unwrap_err());
    assert_eq!(errors[0].field, "resources.app.config.db_host");
    assert!(
        e.store
            .revisions(&nestor_core::DeploymentKey {
                team: "alpha".into(),
                environment: "dev".into(),
                name: "shop".into()
            })
            .await
            .unwrap()
            .is_empty(),
        "a refused apply records nothing"
    );

    // A Secret key spliced into text: nothing could resolve it.
    let embedded = request(json!([
        {"name": "db", "catalog_ref": "db"},
        {"name": "app", "catalog_ref": "web", "config": {"env": {"URL": "mysql://{{ resources.db.outputs.endpoint }}:3306"}}},
    ]));
    let errors = refusal(e.orchestrator.apply(&embedded, None).await.unwrap_err());
    assert_eq!(errors[0].field, "resources.app.config.env.URL");
    assert!(
        errors[0]
            .message
            .contains("output endpoint of db (terraform)"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("whole value"),
        "{}",
        errors[0].message
    );

    // Crossplane → Crossplane into a `string` parameter (issue 10.14).
    let claim = request(json!([
        {"name": "w1", "catalog_ref": "worker"},
        {"name": "w2", "catalog_ref": "worker", "config": {"queue_url": "{{ resources.w1.outputs.name }}"}},
    ]));
    let errors = refusal(e.orchestrator.apply(&claim, None).await.unwrap_err());
    assert_eq!(errors[0].field, "resources.w2.config.queue_url");
    assert!(
        errors[0].message.contains("w2 (crossplane)")
            && errors[0].message.contains("w1 (crossplane)"),
        "{}",
        errors[0].message
    );
}

#[tokio::test]
async fn engine_configs_are_checked_when_published() {
    let store = Arc::new(MemoryStore::new());
    let catalog = CatalogService::new(store.clone()).with_engines(Arc::new(registry().clone()));
    let pulumi = nestor_core::parse_definition_yaml(
        r#"
apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {name: aurora, version: "1.0.0", provider: aws, category: database, resource_type: cluster}
spec:
  supported_engines: [pulumi]
  engine_configs:
    pulumi: {resource_type: "aws:rds:Cluster"}
"#,
    )
    .unwrap();
    let errors = refusal(catalog.publish(pulumi, None, "test").await.unwrap_err());
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.engine_configs.pulumi.resource_type",
            "spec.engine_configs.pulumi.type"
        ],
        "{errors:?}"
    );
    assert!(
        errors[0].message.contains("did you mean `type`?"),
        "{}",
        errors[0].message
    );
    assert!(
        store.latest("aurora").await.unwrap().is_none(),
        "nothing is published"
    );
}
