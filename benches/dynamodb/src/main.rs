//! Run with: eval "$(.ci/dynamodb.sh start)" && cargo run --release -p nestor-bench-dynamodb [-- DEFINITIONS]
//!
//! Latency of the catalog operations a server performs most, on the
//! DynamoDB store against the DynamoDB Local that `NESTOR_TEST_DYNAMODB_ENDPOINT`
//! names (on loopback: these figures are the store's own overhead plus a
//! local HTTP round trip, not what AWS would show), next to SQLite (a file
//! in a temporary directory) and the in-memory store measured in the same run:
//! - `get_version` with a cold and a warm cache, `latest`;
//! - a page of 50 from `list_latest`, from the start and from a cursor;
//! - `publish` through the catalog service (validation, predecessor read,
//!   conditional write, event append);
//! - `search` over the latest versions.
//!
//! Each store holds DEFINITIONS names (default 1,000). Prints one Markdown
//! table row per store and operation: median, p99, mean.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nestor_core::{
    parse_definition_yaml, CatalogService, CatalogStore, ListFilter, PageRequest, PublishedVersion,
    ResourceDefinition,
};
use nestor_storage::{DynamoConfig, DynamoStore, MemoryStore, SqliteStore};
use semver::Version;

const POINT_READS: usize = 1000;
const LIST_PAGES: usize = 100;
const PUBLISHES: usize = 200;
const SEARCHES: usize = 100;

fn definition(i: usize, version: &str, description: &str) -> Result<ResourceDefinition> {
    let provider = ["aws", "gcp", "k8s"][i % 3];
    let yaml = format!(
        r#"apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata:
  name: res-{i:05}
  version: "{version}"
  provider: {provider}
  category: database
  resource_type: mysql
  description: "{description} {i}"
  maintainers: [platform-team@company.com]
  labels: {{tier: data, index: "{i}"}}
  maturity: stable
spec:
  supported_engines: [terraform, crossplane]
  required_inputs:
    - name: instance_class
      type: string
      description: "DB instance class"
      validation:
        pattern: "^db\\.[a-z0-9]+\\.[a-z]+$"
  optional_inputs:
    - name: backup_retention_period
      type: integer
      default: 7
      validation: {{min: 1, max: 35}}
  outputs:
    - name: endpoint
      type: string
  engine_configs:
    terraform: {{module_source: "terraform-aws-modules/rds/aws", module_version: "~> 6.0"}}
"#
    );
    Ok(parse_definition_yaml(&yaml)?)
}

/// Latencies of one operation.
struct Sample {
    op: &'static str,
    times: Vec<Duration>,
}

impl Sample {
    fn row(&mut self, store: &str) -> String {
        self.times.sort();
        let n = self.times.len().max(1);
        let median = self.times.get(n / 2).copied().unwrap_or_default();
        let p99 = self
            .times
            .get((n * 99 / 100).min(n - 1))
            .copied()
            .unwrap_or_default();
        let mean = self.times.iter().sum::<Duration>() / n as u32;
        format!(
            "| {store} | {} | {} | {} | {} | {} |",
            self.op,
            n,
            ms(median),
            ms(p99),
            ms(mean)
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn time<F, Fut, T>(op: &'static str, count: usize, mut f: F) -> Result<Sample>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = nestor_core::Result<T>>,
{
    let mut times = Vec::with_capacity(count);
    for i in 0..count {
        let start = Instant::now();
        f(i).await.with_context(|| format!("{op} #{i}"))?;
        times.push(start.elapsed());
    }
    Ok(Sample { op, times })
}

/// Spreads `i` over the names without a pattern a cache could exploit.
fn pick(i: usize, names: usize) -> String {
    format!("res-{:05}", (i * 7919) % names)
}

async fn seed(store: &Arc<dyn CatalogStore>, names: usize) -> Result<()> {
    for i in 0..names {
        let def = definition(i, "1.0.0", "Generated definition number")?;
        store
            .insert_version(PublishedVersion::new(def, 0, None))
            .await?;
    }
    Ok(())
}

/// Runs every operation on `store`; `fresh` opens another handle on the
/// same data with an empty cache, for the cold reads.
async fn bench(
    label: &str,
    store: Arc<dyn CatalogStore>,
    fresh: Arc<dyn CatalogStore>,
    names: usize,
) -> Result<Vec<String>> {
    let started = Instant::now();
    seed(&store, names).await?;
    eprintln!(
        "{label}: seeded {names} definitions in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let v1: Version = "1.0.0".parse()?;
    let mut samples = vec![
        time("get_version, cold cache", POINT_READS.min(names), |i| {
            let (store, v) = (fresh.clone(), v1.clone());
            async move { store.get_version(&pick(i, names), &v).await }
        })
        .await?,
        time("get_version, warm cache", POINT_READS, |i| {
            let (store, v) = (fresh.clone(), v1.clone());
            async move { store.get_version(&pick(i, names), &v).await }
        })
        .await?,
        time("latest", POINT_READS, |i| {
            let store = fresh.clone();
            async move { store.latest(&pick(i, names)).await }
        })
        .await?,
        time("list page of 50, first", LIST_PAGES, |_| {
            let store = store.clone();
            async move {
                store
                    .list_latest(&ListFilter::default(), &PageRequest::first(50))
                    .await
            }
        })
        .await?,
        time("list page of 50, from a cursor", LIST_PAGES, |i| {
            let store = store.clone();
            let page = PageRequest {
                limit: 50,
                cursor: Some(pick(i, names.saturating_sub(50).max(1))),
            };
            async move { store.list_latest(&ListFilter::default(), &page).await }
        })
        .await?,
        time("list page of 50, provider filter", LIST_PAGES, |i| {
            let store = store.clone();
            let filter = ListFilter {
                provider: Some("gcp".into()),
                ..Default::default()
            };
            let page = PageRequest {
                limit: 50,
                cursor: (i % 2 == 1).then(|| pick(i, names / 2 + 1)),
            };
            async move { store.list_latest(&filter, &page).await }
        })
        .await?,
    ];
    let service = CatalogService::new(store.clone());
    let publishes = PUBLISHES.min(names);
    let mut defs = Vec::with_capacity(publishes);
    for i in 0..publishes {
        defs.push(definition(i, "1.0.1", "Patched definition number")?);
    }
    let mut defs = defs.into_iter();
    samples.push(
        time(
            "publish (service: validate, write, event)",
            publishes,
            |_| {
                let service = &service;
                let def = defs.next();
                async move {
                    let def =
                        def.ok_or_else(|| nestor_core::Error::internal("out of definitions"))?;
                    service.publish(def, None, "bench").await
                }
            },
        )
        .await?,
    );
    // The first search builds the snapshot; measure steady state after it.
    store.search("res", &ListFilter::default(), 20).await?;
    samples.push(
        time("search, 20 hits", SEARCHES, |i| {
            let store = store.clone();
            let query = format!("res-{:03}", i % 100);
            async move { store.search(&query, &ListFilter::default(), 20).await }
        })
        .await?,
    );
    Ok(samples.iter_mut().map(|s| s.row(label)).collect())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let names: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let endpoint = std::env::var("NESTOR_TEST_DYNAMODB_ENDPOINT").context(
        "NESTOR_TEST_DYNAMODB_ENDPOINT is not set: run eval \"$(.ci/dynamodb.sh start)\" first",
    )?;
    let mut rows = Vec::new();

    let memory: Arc<dyn CatalogStore> = Arc::new(MemoryStore::new());
    rows.extend(bench("memory", memory.clone(), memory, names).await?);

    let dir = tempfile::tempdir()?;
    let db = dir.path().join("nestor.db");
    let sqlite: Arc<dyn CatalogStore> = Arc::new(SqliteStore::open(&db)?);
    let sqlite_fresh: Arc<dyn CatalogStore> = Arc::new(SqliteStore::open(&db)?);
    rows.extend(bench("SQLite (file, WAL)", sqlite, sqlite_fresh, names).await?);

    let config = DynamoConfig {
        table_prefix: format!("bench-{}", std::process::id()),
        region: "us-east-1".into(),
        endpoint_url: Some(endpoint),
    };
    let dynamo = DynamoStore::connect(config.clone()).await?;
    dynamo.migrate().await?;
    let dynamo = Arc::new(dynamo);
    let dynamo_fresh: Arc<dyn CatalogStore> = Arc::new(DynamoStore::connect(config).await?);
    let result = bench(
        "DynamoDB Local (loopback)",
        dynamo.clone(),
        dynamo_fresh,
        names,
    )
    .await;
    dynamo.delete_tables().await?;
    rows.extend(result?);

    println!("{names} definitions; sequential calls, one at a time.\n");
    println!("| store | operation | calls | median | p99 | mean |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}
