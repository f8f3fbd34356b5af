//! The native loader: the Terraform engine built as a shared library
//! renders exactly what its component does.

use nestor_core::{Engine, ErrorCode};
use nestor_engines::{build_artifacts, EngineRegistry, HostConfig, NativeEngine};
use serde_json::json;

use crate::support::{definition, mysql_inputs, registry, request};

fn native() -> NativeEngine {
    let stage = tempfile::tempdir().unwrap();
    NativeEngine::load(
        std::path::Path::new(build_artifacts::NATIVE_EXAMPLE),
        stage.path(),
        16 << 20,
    )
    .unwrap()
}

#[tokio::test]
async fn the_native_engine_renders_what_the_component_renders() {
    let engine = native();
    assert_eq!(engine.info().name, "terraform");
    let def = definition("mysql");
    let req = request(&def, "database", "terraform", mysql_inputs());
    let natively = engine.render(&req).await.unwrap();
    let in_wasm = registry().render("terraform", &req).await.unwrap();
    assert_eq!(natively, in_wasm);
}

#[tokio::test]
async fn native_engine_refusals_keep_their_code() {
    let engine = native();
    let def = definition("mysql");
    let mut req = request(&def, "database", "terraform", mysql_inputs());
    req.engine_config = json!({});
    let err = engine.render(&req).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ValidationFailed);
    assert!(err.to_string().contains("module_source"), "{err}");
    // The native ABI 2 also validates.
    let problems = engine
        .validate_config(&def, &json!({"module_sourse": "x"}))
        .await
        .unwrap();
    assert!(
        problems[0]
            .message
            .contains("did you mean `module_source`?"),
        "{problems:?}"
    );
}

#[test]
fn a_file_that_is_not_a_library_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libbogus.so");
    std::fs::write(&path, b"not an ELF file").unwrap();
    let err = NativeEngine::load(&path, dir.path(), 1 << 20).unwrap_err();
    assert_eq!(err.code(), ErrorCode::EngineFailed);
    assert!(err.to_string().contains("libbogus.so"), "{err}");
}

#[tokio::test]
async fn native_libraries_load_from_the_plugins_dir_and_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join(format!(
        "{}nestor_engine_terraform{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(build_artifacts::NATIVE_EXAMPLE, &lib).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = HostConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..HostConfig::default()
    };
    let registry = EngineRegistry::with_plugins_dir(config, Some(dir.path())).unwrap();
    let status = registry
        .list()
        .into_iter()
        .find(|s| s.name == "terraform")
        .unwrap();
    assert!(
        status.source.starts_with("native:") && status.healthy,
        "{status:?}"
    );
    let def = definition("mysql");
    registry
        .render(
            "terraform",
            &request(&def, "database", "terraform", mysql_inputs()),
        )
        .await
        .unwrap();

    let by_hand = EngineRegistry::new(HostConfig::default()).unwrap();
    let status = by_hand
        .load_native(std::path::Path::new(build_artifacts::NATIVE_EXAMPLE))
        .unwrap();
    assert_eq!(status.name, "terraform");
}
