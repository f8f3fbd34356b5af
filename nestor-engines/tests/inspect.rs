//! `nestor engines inspect FILE.wasm`.

use nestor_engines::{build_artifacts, inspect_component, BUNDLED};

#[test]
fn inspecting_a_bundled_engine_shows_abi_name_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("helm.wasm");
    std::fs::write(
        &path,
        BUNDLED.iter().find(|b| b.name == "helm").unwrap().wasm,
    )
    .unwrap();
    let inspection = inspect_component(&path).unwrap();
    assert_eq!(inspection.abi_version.as_deref(), Some("0.2.0"));
    assert_eq!(inspection.name.as_deref(), Some("helm"));
    assert_eq!(inspection.version.as_deref(), Some("0.1.0"));
    assert!(
        inspection
            .exports
            .contains(&"nestor:engine/engine-api@0.2.0#render".to_string()),
        "{:?}",
        inspection.exports
    );
    for function in ["info", "validate"] {
        assert!(inspection
            .exports
            .contains(&format!("nestor:engine/engine-api@0.2.0#{function}")));
    }
    assert!(inspection.load_error.is_none());
    assert_eq!(inspection.sha256.len(), 64);
}

#[test]
fn inspecting_a_plugin_that_would_be_refused_says_why() {
    let path =
        std::path::Path::new(build_artifacts::GUESTS_DIR).join("nestor_test_hostile_net.wasm");
    let inspection = inspect_component(&path).unwrap();
    assert_eq!(inspection.abi_version.as_deref(), Some("0.2.0"));
    assert!(
        inspection
            .imports
            .iter()
            .any(|i| i.starts_with("wasi:sockets/")),
        "{:?}",
        inspection.imports
    );
    assert!(inspection
        .load_error
        .as_deref()
        .unwrap()
        .contains("wasi:sockets"));
}

#[test]
fn inspecting_something_else_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.wasm");
    std::fs::write(&path, b"hello").unwrap();
    assert!(inspect_component(&path).is_err());
}
