//! Run with: cargo run --release -p nestor-bench-catalog [-- DEFINITIONS]
//! (`BENCH_ROUNDS`, default 3, sets how many cold rounds run).
//!
//! Catalog benchmarks, each against a baseline measured in the same run:
//! - cold sync of a generated git repository of N definitions (default
//!   10,000) into SQLite vs. bare YAML parsing of the same files, in
//!   alternating rounds, judged on the median ratio (goal ≤ 1.5×);
//! - incremental sync of one changed file (goal < 100 ms);
//! - `get` and `latest` point reads on SQLite holding N definitions (goal
//!   well under 1 ms).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use nestor_core::{CatalogService, CatalogSource, CatalogStore, SourceConfig, SyncService};
use nestor_storage::{open_source, SqliteStore};

fn definition(i: usize, version: &str) -> String {
    let provider = ["aws", "gcp", "k8s"][i % 3];
    format!(
        r#"apiVersion: catalog.nestor.io/v1
kind: ResourceDefinition
metadata:
  name: res-{i:05}
  version: "{version}"
  provider: {provider}
  category: database
  resource_type: mysql
  description: "Generated definition number {i} for the catalog benchmark"
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
    - name: engine_version
      type: string
      default: "8.0"
      validation: {{enum: ["5.7", "8.0"]}}
  outputs:
    - name: endpoint
      type: string
  engine_configs:
    terraform: {{module_source: "terraform-aws-modules/rds/aws", module_version: "~> 6.0"}}
"#
    )
}

fn commit_all(repo: &git2::Repository, message: &str) -> Result<()> {
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::now("bench", "bench@localhost")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?;
    Ok(())
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The times of one round.
struct Times {
    bare: Duration,
    memory: Duration,
    sqlite: Duration,
}

/// What a round's cold sync into SQLite leaves for the later measures.
struct Cold {
    store: Arc<dyn CatalogStore>,
    sync: SyncService,
    source: Box<dyn CatalogSource>,
    db: std::path::PathBuf,
}

/// One round: the baseline (read every file and parse it as YAML, nothing
/// else), the cold sync into the memory store (what the SQLite writes
/// cost, by difference), then the cold sync into a new SQLite file.
async fn cold_round(
    repo_dir: &Path,
    files: &[std::path::PathBuf],
    tmp: &Path,
    round: usize,
) -> Result<(Times, Cold)> {
    let n = files.len();
    let started = Instant::now();
    for f in files {
        let text = std::fs::read_to_string(f)?;
        let value: serde_yaml::Value = serde_yaml::from_str(&text)?;
        std::hint::black_box(value);
    }
    let bare = started.elapsed();

    // The memory store is dropped before the SQLite sync starts, so that
    // sync runs beside no more unrelated data than the bare parse does (the
    // previous round's SQLite store); it used to live to the round's end.
    let memory = {
        let memory: Arc<dyn CatalogStore> = Arc::new(nestor_storage::MemoryStore::new());
        let memory_sync = SyncService::new(CatalogService::new(memory));
        let source = open_source(
            SourceConfig::new("bench-mem", repo_dir.to_string_lossy()),
            &tmp.join(format!("sources-mem-{round}")),
        );
        let started = Instant::now();
        memory_sync.sync(source.as_ref()).await?;
        started.elapsed()
    };

    let db = tmp.join(format!("nestor-{round}.db"));
    let store: Arc<dyn CatalogStore> = Arc::new(SqliteStore::open(&db)?);
    let sync = SyncService::new(CatalogService::new(store.clone()));
    let config = SourceConfig::new("bench", repo_dir.to_string_lossy());
    let source = open_source(config, &tmp.join(format!("sources-{round}")));
    let started = Instant::now();
    let report = sync.sync(source.as_ref()).await?;
    let sqlite = started.elapsed();
    anyhow::ensure!(
        report.published.len() == n && report.errors.is_empty(),
        "cold sync published {} of {n}",
        report.published.len()
    );
    let times = Times {
        bare,
        memory,
        sqlite,
    };
    Ok((
        times,
        Cold {
            store,
            sync,
            source,
            db,
        },
    ))
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir()?;
    let repo_dir = tmp.path().join("catalog");
    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = git2::Repository::init_opts(&repo_dir, &opts)?;
    for i in 0..n {
        let dir = repo_dir.join(format!("resources/{}", i % 100));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("res-{i:05}.yaml")), definition(i, "1.0.0"))?;
    }
    commit_all(&repo, "generated catalog")?;
    println!("catalog benchmark: {n} definitions in one git repository\n");

    let files: Vec<std::path::PathBuf> = (0..n)
        .map(|i| repo_dir.join(format!("resources/{}/res-{i:05}.yaml", i % 100)))
        .collect();
    // Rounds alternate the baseline and the syncs, so a change of this
    // machine's speed during the run moves both; the goal is judged on the
    // median ratio.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(3)
        .max(1);
    let mut ratios = Vec::with_capacity(rounds);
    let mut last = None;
    for round in 1..=rounds {
        // Each round starts without the last one's store: kept alive, its
        // 10,000 cached definitions slowed every later round's sync (not the
        // bare parse), so rounds were not repetitions of one measurement.
        drop(last.take());
        let (times, cold) = cold_round(&repo_dir, &files, tmp.path(), round).await?;
        let ratio = times.sqlite.as_secs_f64() / times.bare.as_secs_f64();
        println!(
            "round {round}: cold sync into SQLite {:>7.1} ms, into memory {:>7.1} ms, \
             bare YAML parse {:>7.1} ms, ratio {ratio:.2}×",
            ms(times.sqlite),
            ms(times.memory),
            ms(times.bare),
        );
        ratios.push(ratio);
        last = Some(cold);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "ratio cold sync (SQLite) / bare parse, median of {rounds}: {:.2}×   (goal ≤ 1.5×)\n",
        ratios[rounds / 2]
    );
    let Cold {
        store,
        sync,
        source,
        db,
    } = last.expect("at least one round");

    // Incremental: one file gains a new version.
    let changed = &files[n / 2];
    let text = std::fs::read_to_string(changed)?;
    let i = n / 2;
    std::fs::write(
        changed,
        format!(
            "{text}---\n{}",
            definition(i, "1.0.1").replace("for the catalog benchmark", "(patched)")
        ),
    )?;
    commit_all(&repo, "one change")?;
    let started = Instant::now();
    let report = sync.sync(source.as_ref()).await?;
    let incremental = started.elapsed();
    anyhow::ensure!(
        report.published.len() == 1 && report.files_read == 1,
        "incremental sync: {report:?}"
    );
    let started = Instant::now();
    let unchanged = sync.sync(source.as_ref()).await?;
    let noop = started.elapsed();
    anyhow::ensure!(unchanged.files_read == 0);
    println!(
        "incremental sync, 1 file   {:>10.1} ms   (goal < 100 ms)",
        incremental.as_secs_f64() * 1e3
    );
    println!(
        "sync of an unchanged head  {:>10.1} ms\n",
        noop.as_secs_f64() * 1e3
    );

    point_reads(&store, n).await?;
    drop(store);
    report_file_size(&db);
    Ok(())
}

async fn point_reads(store: &Arc<dyn CatalogStore>, n: usize) -> Result<()> {
    let version: semver::Version = "1.0.0".parse()?;
    let rounds = 20_000;
    let mut get = Vec::with_capacity(rounds);
    let mut latest = Vec::with_capacity(rounds);
    // A fixed-stride walk visits names in an order unrelated to insertion.
    let mut i = 0usize;
    for _ in 0..rounds {
        i = (i + 7919) % n;
        let name = format!("res-{i:05}");
        let t = Instant::now();
        let v = store.get_version(&name, &version).await?;
        get.push(t.elapsed());
        anyhow::ensure!(v.is_some());
        let t = Instant::now();
        let v = store.latest(&name).await?;
        latest.push(t.elapsed());
        anyhow::ensure!(v.is_some());
    }
    let mean = |s: &[Duration]| micros(s.iter().sum::<Duration>() / s.len() as u32);
    let (gm, lm) = (mean(&get), mean(&latest));
    println!("point reads on SQLite with {n} definitions ({rounds} each):");
    println!(
        "  get_version  mean {gm:>8.1} µs   p99 {:>8.1} µs   (goal well under 1 ms)",
        micros(percentile(&mut get, 0.99))
    );
    println!(
        "  latest       mean {lm:>8.1} µs   p99 {:>8.1} µs",
        micros(percentile(&mut latest, 0.99))
    );
    Ok(())
}

fn report_file_size(db: &Path) {
    if let Ok(meta) = std::fs::metadata(db) {
        println!(
            "\nSQLite file: {:.1} MiB",
            meta.len() as f64 / (1024.0 * 1024.0)
        );
    }
}
