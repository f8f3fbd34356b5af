//! Run with: cargo run --release -p nestor-bench-terraform [-- RESOURCES [PARALLELISM [ROUNDS]]]
//!
//! The Terraform executor's overhead: `nestor plan` then `nestor apply` of
//! one deployment of N (default 50) independent Terraform resources,
//! through the facade with the Terraform executor on SQLite, against the
//! baseline of the same terraform commands, with the same flags, on the
//! same `main.tf.json` files, run directly with the same parallelism
//! (default 4) in the same run. Goal: Nestor / direct ≤ 1.1×.
//!
//! The commands per resource are the executor's: for the plan, `init`,
//! `plan -out` and `show -json` in a scratch folder; for the apply,
//! `init`, `plan -out`, `apply` of that plan and `output -json`. Modules
//! use built-in resources only (`terraform_data`), so nothing is
//! downloaded. Rounds alternate Nestor and direct so both see the same
//! machine; each round applies a fresh deployment into fresh folders.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use nestor_core::*;
use nestor_storage::{GitOpsConfig, GitOpsExecutor, SqliteStore};
use nestor_terraform::{TerraformConfig, TerraformExecutor};
use serde_json::json;

/// A module with one built-in resource and an output only Terraform computes.
const MODULE: &str = r#"
variable "name" { type = string }
resource "terraform_data" "x" { input = "${var.name}-real" }
output "id" { value = terraform_data.x.output }
"#;

/// The terraform wrapper `.ci/engine-checkers.sh` installs (or `NESTOR_TERRAFORM`).
fn terraform() -> Result<PathBuf> {
    let candidates = [
        std::env::var_os("NESTOR_TERRAFORM").map(PathBuf::from),
        std::env::var_os("NESTOR_TOOLS_DIR").map(|d| PathBuf::from(d).join("bin/terraform")),
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/nestor/tools/bin/terraform")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .context("no terraform: run .ci/engine-checkers.sh or set NESTOR_TERRAFORM")
}

struct Args {
    resources: usize,
    parallelism: usize,
    rounds: usize,
}

fn args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let mut next = |default: usize| -> Result<usize> {
        Ok(it.next().map(|a| a.parse()).transpose()?.unwrap_or(default))
    };
    Ok(Args {
        resources: next(50)?,
        parallelism: next(4)?.max(1),
        rounds: next(2)?.max(1),
    })
}

/// Nestor over a SQLite file, GitOps for what Terraform does not run, and
/// the Terraform executor for environment `bench`.
async fn nestor(root: &Path, binary: &Path, parallelism: usize) -> Result<Nestor> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(root.join("nestor.db"))?);
    let engines = Arc::new(nestor_engines::EngineRegistry::with_bundled()?);
    let gitops = Arc::new(GitOpsExecutor::open(GitOpsConfig::local(
        root.join("gitops"),
    ))?);
    let mut config = TerraformConfig::new(root.join("data/terraform"), vec!["bench".into()]);
    config.binary = binary.to_path_buf();
    config.parallelism = parallelism;
    let nestor = Nestor::builder()
        .store(store)
        .engines(engines)
        .executor(gitops)
        .direct_executor(Arc::new(TerraformExecutor::new(config)))
        .build()?;
    let module = root.join("modules/bench");
    std::fs::create_dir_all(&module)?;
    std::fs::write(module.join("main.tf"), MODULE)?;
    let yaml = format!(
        "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\n\
         metadata: {{name: tf-bench, version: \"1.0.0\", provider: test, category: test, resource_type: bench}}\n\
         spec:\n  supported_engines: [terraform]\n  inputs: [{{name: name, type: string}}]\n\
         \x20 outputs: [{{name: id, type: string}}]\n\
         \x20 engine_configs:\n    terraform: {{module_source: \"{}\"}}\n",
        module.display()
    );
    nestor
        .catalog()
        .publish(parse_definition_yaml(&yaml)?, None, "bench")
        .await?;
    Ok(nestor)
}

fn request(name: &str, n: usize) -> Result<DeploymentRequest> {
    let resources: Vec<_> = (0..n)
        .map(|i| json!({"name": format!("r{i:03}"), "catalog_ref": "tf-bench", "engine": "terraform", "config": {"name": format!("r{i:03}")}}))
        .collect();
    Ok(serde_json::from_value(json!({
        "team": "bench", "environment": "bench", "name": name, "resources": resources,
    }))?)
}

/// One Nestor round: plan, then apply; the plan's files for the baseline.
async fn through_nestor(
    nestor: &Nestor,
    name: &str,
    n: usize,
) -> Result<(Duration, Duration, Vec<Vec<Artifact>>)> {
    let request = request(name, n)?;
    let started = Instant::now();
    let plan = nestor.plan(&request).await?;
    let planned = started.elapsed();
    let started = Instant::now();
    let d = nestor.apply(&request, None).await?;
    let applied = started.elapsed();
    ensure!(d.status == DeploymentStatus::Succeeded, "{d:#?}");
    for r in &d.resources {
        let id = &r.outputs["id"];
        ensure!(
            id == &json!({"value": format!("{}-real", r.name)}),
            "{}: {id}",
            r.name
        );
    }
    Ok((planned, applied, plan.artifacts.into_values().collect()))
}

/// Runs `terraform args…` in `dir`; fails on a non-zero exit.
fn run(binary: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(binary)
        .args(args)
        .current_dir(dir)
        .env("TF_IN_AUTOMATION", "1")
        .output()?;
    if !out.status.success() {
        bail!(
            "terraform {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write(dir: &Path, files: &[Artifact]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    for f in files {
        std::fs::write(dir.join(&f.path), &f.content)?;
    }
    Ok(())
}

/// Runs `job` for every index on `parallelism` threads.
fn each(n: usize, parallelism: usize, job: impl Fn(usize) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..parallelism)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        job(i)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("worker panicked"))
    })
}

/// One direct round: the executor's commands on the same files.
fn direct(
    binary: &Path,
    root: &Path,
    files: &[Vec<Artifact>],
    p: usize,
) -> Result<(Duration, Duration)> {
    let lock = "-lock-timeout=300s";
    let started = Instant::now();
    each(files.len(), p, |i| {
        let dir = root.join(format!("r{i:03}/.plan"));
        write(&dir, &files[i])?;
        run(
            binary,
            &dir,
            &["init", "-input=false", "-no-color", "-json", lock],
        )?;
        run(
            binary,
            &dir,
            &[
                "plan",
                "-input=false",
                "-json",
                "-lock=false",
                "-out=tfplan",
            ],
        )?;
        run(binary, &dir, &["show", "-json", "tfplan"]).map(drop)
    })?;
    let planned = started.elapsed();
    let started = Instant::now();
    each(files.len(), p, |i| {
        let dir = root.join(format!("r{i:03}"));
        write(&dir, &files[i])?;
        run(
            binary,
            &dir,
            &["init", "-input=false", "-no-color", "-json", lock],
        )?;
        run(
            binary,
            &dir,
            &["plan", "-input=false", "-json", lock, "-out=tfplan"],
        )?;
        run(
            binary,
            &dir,
            &[
                "apply",
                "-input=false",
                "-json",
                "-auto-approve",
                lock,
                "tfplan",
            ],
        )?;
        let outputs: serde_json::Value =
            serde_json::from_str(&run(binary, &dir, &["output", "-json"])?)?;
        ensure!(
            outputs["id"]["value"].is_string(),
            "no output in {}",
            dir.display()
        );
        Ok(())
    })?;
    Ok((planned, started.elapsed()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let binary = terraform()?;
    let tmp = tempfile::tempdir()?;
    let nestor = nestor(tmp.path(), &binary, a.parallelism).await?;
    println!(
        "terraform benchmark: {} resources, {} at once, {} rounds, {}\n",
        a.resources,
        a.parallelism,
        a.rounds,
        binary.display()
    );
    println!("round   nestor plan   apply     total   direct plan   apply     total   ratio");
    let (mut nestor_total, mut direct_total) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=a.rounds {
        let name = format!("stack-{round}");
        let (np, na, files) = through_nestor(&nestor, &name, a.resources).await?;
        let root = tmp.path().join(format!("direct-{round}"));
        let (dp, da) = direct(&binary, &root, &files, a.parallelism)?;
        let (n, d) = (np + na, dp + da);
        nestor_total += n;
        direct_total += d;
        println!(
            "{round:>5} {:>11.0} ms {:>6.0} ms {:>6.0} ms {:>9.0} ms {:>6.0} ms {:>6.0} ms {:>6.3}×",
            ms(np), ms(na), ms(n), ms(dp), ms(da), ms(d),
            n.as_secs_f64() / d.as_secs_f64()
        );
    }
    println!(
        "\nratio Nestor / direct, all rounds: {:.3}×   (goal ≤ 1.1×)",
        nestor_total.as_secs_f64() / direct_total.as_secs_f64()
    );
    Ok(())
}
