//! A plugin dropped into, replaced in, or removed from the plugins
//! directory is picked up without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use nestor_core::ErrorCode;
use nestor_engines::{EngineRegistry, HostConfig};
use serde_json::json;

use crate::support::{definition, guest, request};

/// Writes `bytes` to `dir/name` atomically, as the docs ask plugin installers to.
fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let temp = dir.join(format!(".{name}.partial"));
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, dir.join(name)).unwrap();
}

async fn served_version(registry: &EngineRegistry) -> String {
    let def = definition("mysql");
    let out = registry
        .render("echo", &request(&def, "db", "echo", json!({"x": 1})))
        .await
        .unwrap();
    out.outputs["version"]
        .value
        .as_ref()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_replaced_plugin_is_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "echo.wasm", &guest("nestor_test_echo"));
    let registry =
        EngineRegistry::with_plugins_dir(HostConfig::default(), Some(dir.path())).unwrap();
    let _watch = registry.watch(Duration::from_millis(25));
    assert_eq!(served_version(&registry).await, "1.0.0");
    let status = registry
        .list()
        .into_iter()
        .find(|s| s.name == "echo")
        .unwrap();
    assert!(
        status.healthy && status.source.starts_with("wasm:"),
        "{status:?}"
    );

    install(dir.path(), "echo.wasm", &guest("nestor_test_echo_v2"));
    wait_for("version 2.0.0", || {
        registry
            .list()
            .iter()
            .any(|s| s.name == "echo" && s.version == "2.0.0")
    });
    assert_eq!(served_version(&registry).await, "2.0.0");
    // The bundled engines are still there.
    assert!(registry.get("terraform").is_ok());

    std::fs::remove_file(dir.path().join("echo.wasm")).unwrap();
    wait_for("removal", || registry.get("echo").is_err());
    assert_eq!(
        registry.get("echo").err().unwrap().code(),
        ErrorCode::EngineNotFound
    );
}

#[tokio::test]
async fn a_broken_file_is_unhealthy_until_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let registry =
        EngineRegistry::with_plugins_dir(HostConfig::default(), Some(dir.path())).unwrap();
    install(dir.path(), "echo.wasm", b"\0asm garbage");
    let report = registry.refresh();
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let status = registry
        .list()
        .into_iter()
        .find(|s| s.name == "echo")
        .unwrap();
    assert!(
        !status.healthy
            && status
                .error
                .as_deref()
                .unwrap()
                .contains("not a valid component"),
        "{status:?}"
    );
    assert_eq!(
        registry.get("echo").err().unwrap().code(),
        ErrorCode::EngineFailed
    );

    install(dir.path(), "echo.wasm", &guest("nestor_test_echo"));
    let report = registry.refresh();
    assert_eq!(report.loaded.len(), 1, "{report:?}");
    assert_eq!(served_version(&registry).await, "1.0.0");
    assert!(
        registry.refresh().is_empty(),
        "an unchanged directory reloads nothing"
    );
}

#[tokio::test]
async fn a_plugin_file_overrides_the_bundled_engine_of_its_name() {
    // The echo guest under another file name still registers as `echo`:
    // names come from info(), not from file names.
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "terraform.wasm", &guest("nestor_test_echo"));
    let registry =
        EngineRegistry::with_plugins_dir(HostConfig::default(), Some(dir.path())).unwrap();
    let names: Vec<String> = registry.list().into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"echo".to_string()) && names.contains(&"terraform".to_string()),
        "{names:?}"
    );
}
