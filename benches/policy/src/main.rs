//! Run with: cargo run --release -p nestor-bench-policy [-- RESOURCES]
//!
//! What Rego policies cost a plan, each figure against the same plan
//! without policies measured in the same run:
//! - a 3-resource deployment planned 400 times with and without 20
//!   deployment policies: the p50 overhead (goal ≤ 1 ms);
//! - a plan of N resources (default 10,000) without rendering, as
//!   benches/orchestrator measures it (pin every reference, check every
//!   config, graph and waves), with and without the same 20 policies
//!   (their input built and evaluated): the ratio (goal ≤ 2×).
//!
//! The engine renders each resource's inputs as JSON in-process, so what
//! is measured is the orchestrator's own work (resolve, check, render
//! inputs, build the policy input, evaluate) and not a plugin's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use async_trait::async_trait;
use nestor_core::*;
use nestor_storage::MemoryStore;
use serde_json::json;

const ENGINE: &str = "terraform";

/// Renders the inputs it is given as one JSON file.
struct JsonEngine;

#[async_trait]
impl Engine for JsonEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            name: ENGINE.into(),
            version: "1.0.0".into(),
            description: "renders its inputs as JSON".into(),
        }
    }

    async fn render(&self, request: &RenderRequest) -> nestor_core::Result<RenderOutput> {
        let content = serde_json::to_string(&request.inputs).unwrap_or_default();
        let outputs = request
            .definition
            .spec
            .outputs
            .iter()
            .map(|o| {
                let reach = Reach::value(format!("ref://{}/{}", request.resource, o.name));
                (o.name.clone(), reach)
            })
            .collect();
        Ok(RenderOutput {
            artifacts: vec![Artifact {
                path: format!("{}.json", request.resource),
                content,
                media_type: "application/json".into(),
            }],
            outputs,
        })
    }
}

/// An executor that is never reached: the benchmark only plans.
struct NoApply;

#[async_trait]
impl Executor for NoApply {
    async fn apply(
        &self,
        _target: &ApplyTarget,
        _files: &BTreeMap<String, Vec<Artifact>>,
    ) -> nestor_core::Result<ApplyReceipt> {
        Err(Error::internal("the benchmark plans only"))
    }
}

fn definition(i: usize) -> ResourceDefinition {
    let yaml = format!(
        r#"apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata: {{name: def-{i:03}, version: "1.0.0", provider: aws, category: database, resource_type: thing, maturity: stable, labels: {{tier: data}}}}
spec:
  supported_engines: [terraform]
  required_inputs:
    - {{name: size, type: string, validation: {{enum: [small, large]}}}}
  optional_inputs:
    - {{name: replicas, type: integer, default: 1, validation: {{min: 1, max: 100}}}}
    - {{name: instance_class, type: string, default: db.r6g.large}}
    - {{name: upstream, type: string, default: ""}}
  outputs:
    - {{name: endpoint, type: string}}
  engine_configs:
    terraform: {{module_source: "./modules/thing", module_version: "1.0.0", static_inputs: {{block_public_acls: true}}}}
"#
    );
    parse_definition_yaml(&yaml).expect("generated definition is valid")
}

/// N resources over 100 definitions, each wired to the previous one's
/// output.
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
                engine: Some(ENGINE.into()),
                config,
                depends_on: vec![],
            }
        })
        .collect()
}

/// 20 deployment policies of the kinds examples/policies holds: labels,
/// maturity in production, instance classes, public access — each file
/// its own package, each rule passing for the benchmark's requests.
fn policies() -> Policies {
    let kinds = [
        r#"deny contains msg if {
    not input.labels["cost-center"]
    msg := sprintf("%s needs a cost-center label", [input.name])
}"#,
        r#"deny contains msg if {
    input.environment == "production"
    some r in input.resources
    r.definition.metadata.maturity != "stable"
    msg := sprintf("%s is not stable", [r.name])
}"#,
        r#"allowed := {"db.r6g.large", "db.r6g.xlarge"}

deny contains msg if {
    some r in input.resources
    not r.inputs.instance_class in allowed
    msg := sprintf("%s: instance class %s", [r.name, r.inputs.instance_class])
}"#,
        r#"deny contains msg if {
    some r in input.resources
    r.definition.spec.engine_configs.terraform.static_inputs.block_public_acls == false
    msg := sprintf("%s lifts the public access block", [r.name])
}

warn contains msg if {
    some r in input.resources
    r.inputs.replicas > 50
    msg := sprintf("%s: %d replicas", [r.name, r.inputs.replicas])
}"#,
    ];
    let files = (0..20)
        .map(|i| PolicyFile {
            origin: PolicyOrigin {
                file: format!("policies/p{i:02}.rego"),
                source: None,
                commit: None,
            },
            scope: PolicyScope::global(),
            text: format!(
                "package nestor.deployment.p{i:02}\n\n{}\n",
                kinds[i % kinds.len()]
            ),
        })
        .collect();
    let set = Policies::none();
    let problems = set.set_layer("bench", files);
    assert!(problems.is_empty(), "{problems:?}");
    set
}

fn orchestrator(store: Arc<MemoryStore>, policies: Policies) -> Orchestrator {
    let engines: BTreeMap<String, Arc<dyn Engine>> =
        BTreeMap::from([(ENGINE.to_string(), Arc::new(JsonEngine) as Arc<dyn Engine>)]);
    Orchestrator::new(store, Arc::new(engines), Arc::new(NoApply)).with_policies(policies)
}

fn request(n: usize) -> DeploymentRequest {
    DeploymentRequest {
        team: "bench".into(),
        environment: "production".into(),
        name: format!("plan-{n}"),
        resources: resources(n),
        labels: BTreeMap::from([("cost-center".to_string(), "cc-1".to_string())]),
        ..Default::default()
    }
}

/// Every round's time of planning `request`, sorted.
async fn rounds(o: &Orchestrator, request: &DeploymentRequest, n: usize) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let plan = o.plan(request).await?;
        times.push(t.elapsed());
        anyhow::ensure!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }
    times.sort();
    Ok(times)
}

/// The best of 3 of resolving `request` as a plan does and evaluating the
/// deployment policies (none: the resolve alone); every policy must pass.
async fn judged(o: &Orchestrator, request: &DeploymentRequest) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let verdict = o.evaluate_policies(request).await?;
        best = best.min(t.elapsed());
        anyhow::ensure!(
            verdict.denials.is_empty() && verdict.warnings.is_empty(),
            "{verdict:?}"
        );
    }
    Ok(best)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(times: &[Duration], p: usize) -> Duration {
    times[(times.len() * p / 100).min(times.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let store = Arc::new(MemoryStore::new());
    CatalogService::new(store.clone())
        .publish_many((0..100).map(|i| (definition(i), None)).collect(), "bench")
        .await?;
    let bare = orchestrator(store.clone(), Policies::none());
    let governed = orchestrator(store.clone(), policies());

    let small = request(3);
    // Warm up both (the policies' engine clones are pooled on first use).
    rounds(&bare, &small, 20).await?;
    rounds(&governed, &small, 20).await?;
    let without = rounds(&bare, &small, 400).await?;
    let with = rounds(&governed, &small, 400).await?;
    let overhead = pct(&with, 50).saturating_sub(pct(&without, 50));
    println!("plan of 3 resources, 400 rounds each, 20 policies:");
    println!(
        "  with policies      p50 {:>8.3} ms   p99 {:>8.3} ms",
        ms(pct(&with, 50)),
        ms(pct(&with, 99))
    );
    println!(
        "  without (baseline) p50 {:>8.3} ms   p99 {:>8.3} ms",
        ms(pct(&without, 50)),
        ms(pct(&without, 99))
    );
    println!(
        "  p50 overhead           {:>8.3} ms   (goal ≤ 1 ms)\n",
        ms(overhead)
    );

    let large = request(n);
    let without = judged(&bare, &large).await?;
    let with = judged(&governed, &large).await?;
    println!("plan of {n} resources without rendering, best of 3, 20 policies:");
    println!("  with policies              {:>9.1} ms", ms(with));
    println!("  without (baseline)         {:>9.1} ms", ms(without));
    println!(
        "  ratio                      {:>9.2}×   (goal ≤ 2×)",
        with.as_secs_f64() / without.as_secs_f64()
    );
    Ok(())
}
