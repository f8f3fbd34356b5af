//! [`Nestor`], the one service API, over the memory store and a real GitOps
//! repository: its dry runs are the publish path without the write, its
//! render is a deployment's render, and it answers in the order asked.

use std::collections::BTreeMap;
use std::sync::Arc;

use nestor_core::testing::definition;
use nestor_core::*;
use nestor_storage::{GitOpsConfig, GitOpsExecutor, MemoryStore};
use serde_json::json;

use super::orchestrator::JsonEngine;

fn nestor() -> (Nestor, tempfile::TempDir) {
    let repo = tempfile::tempdir().unwrap();
    let executor = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(repo.path())).unwrap());
    let engines: BTreeMap<String, Arc<dyn Engine>> = BTreeMap::from([(
        "terraform".to_string(),
        Arc::new(JsonEngine("terraform")) as Arc<dyn Engine>,
    )]);
    let nestor = Nestor::builder()
        .store(Arc::new(MemoryStore::new()))
        .engines(Arc::new(engines))
        .executor(executor)
        .build()
        .unwrap();
    (nestor, repo)
}

fn with_dependency(name: &str, version: &str, on: &str, req: &str) -> ResourceDefinition {
    let mut d = definition(name, version);
    d.spec.dependencies.push(Dependency {
        name: on.into(),
        version: req.into(),
    });
    d
}

#[tokio::test]
async fn a_check_is_the_publish_path_without_the_write() {
    let (nestor, _repo) = nestor();
    nestor
        .publish(definition("net", "1.0.0"), "t")
        .await
        .unwrap();
    let mut breaking = definition("net", "1.1.0");
    breaking.spec.required_inputs.push(Input {
        name: "zone".into(),
        ..breaking.spec.required_inputs[0].clone()
    });
    let batch = vec![
        with_dependency("db", "1.0.0", "net", "^1"),
        breaking.clone(),
        with_dependency("app", "1.0.0", "missing", "^1"),
        definition("net", "1.0.0"),
    ];
    let checked = nestor
        .check(batch.clone(), CheckScope::Catalog)
        .await
        .unwrap();
    let codes: Vec<String> = checked
        .iter()
        .map(|r| match r {
            Ok(p) => format!("{:?}", p.outcome),
            Err(e) => e.code().to_string(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "Created",
            "BREAKING_CHANGE",
            "DEPENDENCY_NOT_FOUND",
            "Unchanged"
        ],
        "answers in the order given"
    );
    assert!(
        nestor.get("db", &VersionSpec::Latest).await.is_err(),
        "a check writes nothing"
    );
    assert_eq!(nestor.events_after(0, 100).await.unwrap().len(), 1);

    // The publish of the same batch answers exactly as the check did.
    let published = nestor.publish_all(batch, "t").await.unwrap();
    let same: Vec<String> = published
        .iter()
        .map(|r| match r {
            Ok(p) => format!("{:?}", p.outcome),
            Err(e) => e.code().to_string(),
        })
        .collect();
    assert_eq!(same, codes);
}

#[tokio::test]
async fn an_offline_check_sees_only_the_batch() {
    let (nestor, _repo) = nestor();
    let checked = nestor
        .check(
            vec![
                with_dependency("app", "1.0.0", "outside", "^1"),
                with_dependency("db", "1.0.0", "net", "^2"),
                definition("net", "1.0.0"),
            ],
            CheckScope::Offline,
        )
        .await
        .unwrap();
    assert!(
        checked[0].is_ok(),
        "a name outside the batch is checked when published"
    );
    assert_eq!(
        checked[1].as_ref().unwrap_err().code(),
        ErrorCode::DependencyNotFound,
        "a name inside the batch must match"
    );
    assert!(checked[2].is_ok());
}

#[tokio::test]
async fn render_uses_the_deployment_rules() {
    let (nestor, _repo) = nestor();
    nestor
        .publish(definition("db", "1.0.0"), "t")
        .await
        .unwrap();
    let request = RenderResourceRequest {
        catalog_ref: "db".into(),
        config: BTreeMap::from([("size".to_string(), json!("small"))]),
        team: "alpha".into(),
        environment: "dev".into(),
        ..RenderResourceRequest::default()
    };
    let rendered = nestor.render(&request).await.unwrap();
    assert_eq!(rendered.resource, "db:1.0.0");
    assert_eq!(
        rendered.engine, "terraform",
        "the first supported engine loaded"
    );
    assert_eq!(rendered.artifacts[0].path, "terraform.json");

    let without_inputs = RenderResourceRequest {
        config: BTreeMap::new(),
        ..request
    };
    let err = nestor.render(&without_inputs).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed, "{err}");
    assert_eq!(
        nestor.versions("nothing").await.unwrap_err().code(),
        ErrorCode::ResourceNotFound
    );
}
