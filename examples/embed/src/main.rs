//! Run with: cargo run -p nestor-example-embed
//!
//! Nestor as a library, with no CLI and no server: one `Nestor` over an
//! in-memory store, the bundled WebAssembly engines and a GitOps repository
//! in a temporary folder; sync the example catalog and the teams'
//! compositions, then plan and apply team alpha's `web-app`.

use std::path::Path;
use std::sync::Arc;

use nestor_core::{DeploymentRequest, Nestor, SourceConfig};
use nestor_engines::EngineRegistry;
use nestor_storage::{open_source, GitOpsConfig, GitOpsExecutor, MemoryStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let work = tempfile::tempdir()?;
    let nestor = Nestor::builder()
        .store(Arc::new(MemoryStore::new()))
        .engines(Arc::new(EngineRegistry::with_bundled()?))
        .executor(Arc::new(GitOpsExecutor::open(GitOpsConfig::local(
            work.path().join("gitops"),
        ))?))
        .build()?;

    for (name, folder) in [
        ("catalog", "examples/catalog"),
        ("teams", "examples/compositions"),
    ] {
        let config = SourceConfig::new(name, root.join(folder).to_string_lossy());
        let report = nestor
            .sync(open_source(config, work.path()).as_ref())
            .await?;
        println!(
            "{folder}: {} published, {} errors",
            report.published.len(),
            report.errors.len()
        );
    }

    let request: DeploymentRequest = serde_json::from_value(serde_json::json!({
        "team": "alpha", "environment": "staging", "name": "checkout", "composition": "web-app",
        "params": {"image": "registry.example.com/checkout:1.4.2"},
    }))?;
    println!("plan: add {:?}", nestor.plan(&request).await?.diff.added);
    let deployment = nestor.apply(&request, None).await?;
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
    Ok(())
}
