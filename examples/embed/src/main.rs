//! Run with: cargo run -p nestor-example-embed
//!
//! Nestor as a library, with no CLI and no server: sync the example catalog
//! into an in-memory store, publish team alpha's `web-app` composition, plan
//! a deployment, apply it through the bundled WebAssembly engines into a
//! GitOps repository in a temporary folder, and print what was committed.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use nestor_core::{
    parse_composition_yaml, CatalogService, Composer, DeploymentRequest, Orchestrator,
    SourceConfig, Store, SyncService,
};
use nestor_engines::EngineRegistry;
use nestor_storage::{open_source, GitOpsConfig, GitOpsExecutor, MemoryStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let work = std::env::temp_dir().join(format!("nestor-embed-{}", std::process::id()));

    // 1. A store, and the catalog synced into it from a folder source.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let catalog = CatalogService::new(store.clone());
    let source = open_source(
        SourceConfig::new("examples", root.join("examples/catalog").to_string_lossy()),
        &work.join("sources"),
    );
    let report = SyncService::new(catalog).sync(source.as_ref()).await?;
    println!(
        "synced {} definitions ({} errors)",
        report.published.len(),
        report.errors.len()
    );

    // 2. A team composition, validated against that catalog.
    let text = std::fs::read_to_string(root.join("examples/compositions/alpha/web-app.yaml"))?;
    let published = Composer::new(store.clone())
        .publish(parse_composition_yaml(&text)?, None, "embed")
        .await?;
    println!(
        "published {} with waves {:?}",
        published.composition.composition.subject(),
        published.waves
    );

    // 3. The orchestrator: the bundled engines and a GitOps repository.
    let engines = Arc::new(EngineRegistry::with_bundled()?);
    let executor = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(
        work.join("gitops"),
    ))?);
    let orchestrator = Orchestrator::new(store.clone(), engines, executor);

    let request = DeploymentRequest {
        team: "alpha".into(),
        environment: "staging".into(),
        name: "checkout".into(),
        composition: Some("web-app".into()),
        params: BTreeMap::from([(
            "image".into(),
            serde_json::json!("registry.example.com/checkout:1.4.2"),
        )]),
        ..Default::default()
    };
    let plan = orchestrator.plan(&request).await?;
    println!("plan: add {:?}", plan.diff.added);

    let deployment = orchestrator.apply(&request, None).await?;
    println!(
        "{} is {} at commit {}",
        deployment.id,
        deployment.status.as_str(),
        deployment.commit.as_deref().unwrap_or("-")
    );
    for r in &deployment.resources {
        println!(
            "  {:<10} {:<24} {:<11} {:?}",
            r.name, r.catalog_ref, r.engine, r.artifacts
        );
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}
