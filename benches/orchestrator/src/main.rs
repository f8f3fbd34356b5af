//! Run with: cargo run --release -p nestor-bench-orchestrator [-- RESOURCES]
//!
//! Orchestrator benchmarks, each printed with a baseline from the same run:
//! - planning a generated graph of N resources (default 10,000) without
//!   rendering — pinning every catalog reference, checking every config,
//!   building the graph and its waves (goal < 200 ms) — against the graph
//!   and waves alone;
//! - a 200-resource plan rendered through the bundled WebAssembly engines
//!   (mixed terraform, helm, crossplane, pulumi) against the same plan
//!   without rendering.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use nestor_core::*;
use nestor_engines::EngineRegistry;
use nestor_storage::{GitOpsConfig, GitOpsExecutor, MemoryStore};
use serde_json::json;

const ENGINES: [&str; 4] = ["terraform", "helm", "crossplane", "pulumi"];

fn definition(i: usize) -> ResourceDefinition {
    let yaml = format!(
        r#"apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {{name: def-{i:03}, version: "1.0.0", provider: aws, category: test, resource_type: thing}}
spec:
  supported_engines: [terraform, helm, crossplane, pulumi]
  required_inputs:
    - {{name: size, type: string, validation: {{enum: [small, large]}}}}
  optional_inputs:
    - {{name: replicas, type: integer, default: 1, validation: {{min: 1, max: 100}}}}
    - {{name: upstream, type: string, default: ""}}
  outputs:
    - {{name: endpoint, type: string}}
  engine_configs:
    terraform: {{module_source: "./modules/thing", module_version: "1.0.0"}}
    helm: {{chart: thing, repo_url: "https://charts.example.com", target_revision: "1.0.0"}}
    crossplane: {{api_version: "example.org/v1alpha1", kind: Thing}}
    pulumi: {{type: "aws:s3:Bucket"}}
"#
    );
    parse_definition_yaml(&yaml).expect("generated definition is valid")
}

/// N resources over 100 definitions; resource i uses the output of i-1 and
/// depends on i-7, giving long chains and wide waves.
fn resources(n: usize) -> Vec<CompositionResource> {
    (0..n)
        .map(|i| {
            let mut config = BTreeMap::from([
                ("size".to_string(), json!("small")),
                ("replicas".to_string(), json!(2)),
            ]);
            if i > 0 {
                config.insert(
                    "upstream".into(),
                    json!(format!("{{{{ resources.r{}.outputs.endpoint }}}}", i - 1)),
                );
            }
            CompositionResource {
                name: format!("r{i}"),
                catalog_ref: format!("def-{:03}:^1", i % 100),
                engine: Some(ENGINES[i % 4].into()),
                config,
                depends_on: if i >= 7 {
                    vec![format!("r{}", i - 7)]
                } else {
                    vec![]
                },
            }
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn best_of<T>(rounds: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..rounds {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        last = Some(v);
    }
    (best, last.expect("at least one round"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let store = Arc::new(MemoryStore::new());
    let catalog = CatalogService::new(store.clone());
    catalog
        .publish_many((0..100).map(|i| (definition(i), None)).collect(), "bench")
        .await?;

    let big = resources(n);
    let edges: Vec<Edge> = big
        .iter()
        .flat_map(|r| {
            let refs = references(&serde_json::to_value(&r.config).expect("config serialises"));
            let implicit = refs.outputs.into_iter().map(|(from, _)| from);
            r.depends_on
                .iter()
                .cloned()
                .chain(implicit)
                .map(|from| Edge {
                    from,
                    to: r.name.clone(),
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let (graph_only, waves) = best_of(5, || {
        let g = DependencyGraph::new(big.iter().map(|r| r.name.as_str()), &edges).expect("graph");
        g.waves().expect("acyclic")
    });
    let mut plan_times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let resolved = resolve_resources(
            store.as_ref(),
            &big,
            &[],
            "resources",
            Some(&ENGINES.map(String::from)),
        )
        .await?;
        plan_times.push(t.elapsed());
        anyhow::ensure!(resolved.waves.len() == waves.len());
    }
    let plan = plan_times.into_iter().min().expect("rounds");
    println!(
        "planning {n} resources without rendering ({} waves):",
        waves.len()
    );
    println!(
        "  resolve + validate + graph + waves {:>9.1} ms   (goal < 200 ms)",
        ms(plan)
    );
    println!(
        "  graph + waves alone (baseline)     {:>9.1} ms",
        ms(graph_only)
    );
    println!(
        "  ratio                              {:>9.1}×\n",
        plan.as_secs_f64() / graph_only.as_secs_f64()
    );

    // 200 resources rendered through the real WASM engines.
    let tmp = std::env::temp_dir().join(format!("nestor-bench-orch-{}", std::process::id()));
    let executor = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(
        tmp.join("gitops"),
    ))?);
    let engines = Arc::new(EngineRegistry::with_bundled()?);
    let orchestrator = Orchestrator::new(store.clone(), engines, executor);
    let request = DeploymentRequest {
        team: "bench".into(),
        environment: "dev".into(),
        name: "two-hundred".into(),
        resources: resources(200),
        ..Default::default()
    };
    // Warm up: compile (or load from the cache) every engine once.
    let warm = orchestrator.plan(&request).await?;
    if let Some(failed) = warm.deployment.resources.iter().find(|r| r.error.is_some()) {
        anyhow::bail!("{} did not render: {:?}", failed.name, failed.error);
    }
    let mut rendered = Duration::MAX;
    let mut artifacts = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let p = orchestrator.plan(&request).await?;
        rendered = rendered.min(t.elapsed());
        artifacts = p.artifacts.values().map(Vec::len).sum();
    }
    let mut bare = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        resolve_resources(
            store.as_ref(),
            &request.resources,
            &[],
            "resources",
            Some(&ENGINES.map(String::from)),
        )
        .await?;
        bare = bare.min(t.elapsed());
    }
    println!("plan of 200 resources rendered through the WASM engines ({artifacts} files):");
    println!(
        "  with rendering                     {:>9.1} ms   ({:.0} µs per resource)",
        ms(rendered),
        rendered.as_secs_f64() * 1e6 / 200.0
    );
    println!("  without rendering (baseline)       {:>9.1} ms", ms(bare));
    println!(
        "  ratio                              {:>9.1}×",
        rendered.as_secs_f64() / bare.as_secs_f64()
    );
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}
