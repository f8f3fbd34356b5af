//! The ABI versions side by side: a component built against the frozen
//! `nestor:engine@0.1.0` WIT (the `echo-v0-1` guest, which does not use the
//! SDK) still loads and renders on a host whose engines speak 0.2.0, and it
//! gets references and gives outputs in the 0.1.0 shapes.

use nestor_core::{Engine, InputReference, Reach};
use nestor_engines::{inspect_component, HostConfig, WasmHost, SUPPORTED_ABI_VERSIONS};
use serde_json::{json, Value};

use crate::support::{definition, guest, request};

#[test]
fn the_host_supports_both_versions() {
    assert_eq!(SUPPORTED_ABI_VERSIONS, ["0.2.0", "0.1.0"]);
}

#[tokio::test]
async fn a_0_1_0_component_loads_and_renders() {
    let wasm = guest("nestor_test_echo_v0_1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo-v0-1.wasm");
    std::fs::write(&path, &wasm).unwrap();
    let inspection = inspect_component(&path).unwrap();
    assert_eq!(inspection.abi_version.as_deref(), Some("0.1.0"));
    assert!(!inspection.exports.iter().any(|e| e.ends_with("#validate")));

    let host = WasmHost::new(HostConfig::default()).unwrap();
    let engine = host.load(&wasm, "echo-v0-1.wasm").unwrap();
    assert_eq!(engine.abi_version(), "0.1.0");
    assert_eq!(engine.info().name, "echo-v0-1");

    let def = definition("web-app");
    let mut req = request(
        &def,
        "web",
        "echo-v0-1",
        json!({"env": {"DB": null}, "replicas": 2}),
    );
    let secret = Reach::secret_key("shop--db-outputs", "alpha--staging", "endpoint");
    req.inputs.insert(
        "env".into(),
        json!({"DB": serde_json::to_value(&secret).unwrap()}),
    );
    req.references.push(InputReference {
        input: "env".into(),
        path: vec!["DB".into()],
        producer: "db".into(),
        producer_engine: "terraform".into(),
        output: "endpoint".into(),
        output_type: "string".into(),
        sensitive: false,
        reach: secret,
    });
    let out = engine.render(&req).await.unwrap();
    let echoed: Value = serde_json::from_str(&out.artifacts[0].content).unwrap();
    assert_eq!(
        echoed["inputs"]["env"]["DB"],
        json!({"secretKeyRef": {"name": "shop--db-outputs", "key": "endpoint", "namespace": "alpha--staging"}}),
        "a 0.1.0 engine sees a reference in the 0.1.0 shape"
    );
    assert_eq!(echoed["revision"], 3);
    assert_eq!(out.outputs["greeting"], Reach::value("hello"));
    assert_eq!(
        out.outputs["password"],
        Reach::secret_key("echo-conn", "alpha", "password"),
        "a 0.1.0 secret reference object is read as a Secret key"
    );
    assert!(
        !out.outputs["internal"].is_reachable(),
        "`${{module...}}` from a 0.1.0 engine is internal to its files: {:?}",
        out.outputs["internal"]
    );
    // No `validate` in 0.1.0: every config is accepted, as before.
    let problems = engine
        .validate_config(&def, &json!({"anything": 1}))
        .await
        .unwrap();
    assert!(problems.is_empty());
}

#[tokio::test]
async fn a_0_2_0_engine_validates_its_config() {
    let registry = crate::support::registry();
    let engine = registry.get("helm").unwrap();
    let def = definition("web-app");
    let problems = engine
        .validate_config(
            &def,
            &json!({"repo_url": "https://charts.example.com", "chart": "web", "chart_version": "15.14.0", "valuse": {}}),
        )
        .await
        .unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].field, "valuse");
    assert!(problems[0].message.contains("did you mean `values`?"));
}
