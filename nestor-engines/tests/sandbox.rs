//! Hostile plugins fail cleanly, within budget, with ENGINE_FAILED naming
//! the plugin and the cause; the host and other plugins carry on.

use std::time::{Duration, Instant};

use nestor_core::{Engine, ErrorCode, Reach, RenderOutput, Result};
use nestor_engines::{HostConfig, WasmEngine, WasmHost};
use serde_json::{json, Value};

use crate::support::{definition, guest, mysql_inputs, registry, request};

fn host(config: HostConfig) -> WasmHost {
    WasmHost::new(config).unwrap()
}

fn hostile(host: &WasmHost) -> WasmEngine {
    host.load(&guest("nestor_test_hostile"), "hostile.wasm")
        .unwrap()
}

async fn misbehave(engine: &WasmEngine, mode: &str) -> (Result<RenderOutput>, Duration) {
    let def = definition("mysql");
    let mut req = request(&def, "db", "hostile", json!({}));
    req.engine_config = json!({"mode": mode});
    let started = Instant::now();
    let result = engine.render(&req).await;
    (result, started.elapsed())
}

/// The failure message for `mode`, after checking it is ENGINE_FAILED and
/// that a good plugin still renders afterwards.
async fn fails_cleanly(engine: &WasmEngine, mode: &str, within: Duration) -> String {
    let (result, elapsed) = misbehave(engine, mode).await;
    let err = result.expect_err(mode);
    assert_eq!(err.code(), ErrorCode::EngineFailed, "{mode}: {err}");
    assert!(elapsed < within, "{mode} took {elapsed:?}");
    let message = err.to_string();
    assert!(
        message.contains("hostile") && message.contains("hostile.wasm"),
        "{mode}: names the plugin: {message}"
    );

    let (ok, _) = misbehave(engine, "ok").await;
    assert_eq!(
        ok.unwrap().artifacts[0].path,
        "ok.txt",
        "{mode}: the same plugin renders again"
    );
    let def = definition("mysql");
    registry()
        .render(
            "terraform",
            &request(&def, "database", "terraform", mysql_inputs()),
        )
        .await
        .unwrap();
    message
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_the_cpu_budget() {
    let host = host(HostConfig::default());
    let message = fails_cleanly(&hostile(&host), "loop", Duration::from_secs(3)).await;
    // On a starved machine the wall-clock backstop (2 × budget + 250 ms)
    // can fire before the guest has run through its CPU budget: either way
    // the loop is stopped within the bound.
    assert!(
        message.contains("CPU budget of 1000 ms")
            || message.contains("did not finish within 2250 ms"),
        "{message}"
    );
}

#[tokio::test]
async fn a_1_gib_allocation_hits_the_memory_limit() {
    let host = host(HostConfig::default());
    let message = fails_cleanly(&hostile(&host), "alloc", Duration::from_secs(2)).await;
    assert!(message.contains("memory limit of 64 MiB"), "{message}");
}

#[tokio::test]
async fn a_trap_is_reported() {
    let host = host(HostConfig::default());
    let message = fails_cleanly(&hostile(&host), "trap", Duration::from_secs(2)).await;
    assert!(message.contains("trapped"), "{message}");
}

#[tokio::test]
async fn a_panic_is_reported_with_its_message() {
    let host = host(HostConfig::default());
    let message = fails_cleanly(&hostile(&host), "panic", Duration::from_secs(2)).await;
    assert!(
        message.contains("hostile guest panicked on purpose"),
        "{message}"
    );
}

#[tokio::test]
async fn runaway_recursion_traps() {
    // Rust keeps large frames on a shadow stack in linear memory, so this
    // ends as an out-of-bounds access rather than wasmtime's stack guard.
    let host = host(HostConfig::default());
    let message = fails_cleanly(&hostile(&host), "stack", Duration::from_secs(2)).await;
    assert!(
        message.contains("trapped") || message.contains("stack"),
        "{message}"
    );
}

#[tokio::test]
async fn a_100_mb_output_cannot_get_out() {
    // Under the default 64 MiB cap the guest cannot even build it...
    let host64 = host(HostConfig::default());
    let message = fails_cleanly(&hostile(&host64), "flood", Duration::from_secs(3)).await;
    assert!(message.contains("memory limit"), "{message}");
    // ...and with memory to spare, the output cap stops it.
    let roomy = host(HostConfig {
        memory_limit: 512 << 20,
        cache_dir: None,
        ..HostConfig::default()
    });
    let message = fails_cleanly(&hostile(&roomy), "flood", Duration::from_secs(5)).await;
    assert!(message.contains("over the cap of 16.0 MiB"), "{message}");
}

#[tokio::test]
async fn an_artifact_path_leaving_the_resource_folder_is_refused() {
    let host = host(HostConfig::default());
    let message = fails_cleanly(&hostile(&host), "garbage", Duration::from_secs(2)).await;
    assert!(
        message.contains("leaves the resource's folder"),
        "{message}"
    );
}

#[tokio::test]
async fn files_environment_and_clocks_are_not_granted() {
    let host = host(HostConfig::default());
    let engine = hostile(&host);
    let message = fails_cleanly(&engine, "fs", Duration::from_secs(2)).await;
    assert!(message.contains("filesystem denied"), "{message}");

    let (env, _) = misbehave(&engine, "env").await;
    assert_eq!(
        env.unwrap().outputs["env"],
        Reach::value(json!([])),
        "the host environment stays invisible"
    );
    let (clock, _) = misbehave(&engine, "clock").await;
    assert_eq!(
        clock.unwrap().outputs["now"],
        Reach::value(0),
        "clocks are frozen at the epoch"
    );
}

#[tokio::test]
async fn granted_environment_and_clocks_are_visible() {
    let mut config = HostConfig {
        cache_dir: None,
        ..HostConfig::default()
    };
    config.grants.env = vec![("REGION".into(), "eu-west-1".into())];
    config.grants.clocks = true;
    let engine = hostile(&host(config));
    let (env, _) = misbehave(&engine, "env").await;
    assert_eq!(env.unwrap().outputs["env"], Reach::value(json!(["REGION"])));
    let (clock, _) = misbehave(&engine, "clock").await;
    let now = clock.unwrap().outputs["now"].value.clone().unwrap();
    assert!(now.as_u64().unwrap() > 1_600_000_000);
}

#[tokio::test]
async fn a_plugin_importing_sockets_is_refused_at_load() {
    let host = host(HostConfig::default());
    let err = host
        .load(&guest("nestor_test_hostile_net"), "phone-home.wasm")
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::EngineFailed);
    let message = err.to_string();
    assert!(
        message.contains("phone-home.wasm")
            && message.contains("wasi:sockets")
            && message.contains("not grant"),
        "{message}"
    );

    // With the network granted it loads, and the guest's connection attempt
    // is its own business.
    let mut config = HostConfig {
        cache_dir: None,
        ..HostConfig::default()
    };
    config.grants.network = true;
    let engine = WasmHost::new(config)
        .unwrap()
        .load(&guest("nestor_test_hostile_net"), "phone-home.wasm")
        .unwrap();
    assert_eq!(engine.info().name, "hostile-net");
}

#[tokio::test]
async fn a_plugin_in_the_plugins_dir_that_imports_sockets_is_unhealthy_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hostile-net.wasm"),
        guest("nestor_test_hostile_net"),
    )
    .unwrap();
    let registry =
        nestor_engines::EngineRegistry::with_plugins_dir(HostConfig::default(), Some(dir.path()))
            .unwrap();
    let status = registry
        .list()
        .into_iter()
        .find(|s| s.name == "hostile-net")
        .unwrap();
    assert!(!status.healthy);
    assert!(
        status.error.as_deref().unwrap().contains("wasi:sockets"),
        "{status:?}"
    );
    let err = registry.get("hostile-net").err().unwrap();
    assert_eq!(err.code(), ErrorCode::EngineFailed);
    // What the orchestrator sees: an engine that fails with the cause, and
    // not one to pick by default.
    use nestor_core::EngineProvider;
    assert!(!registry.engine_names().contains(&"hostile-net".to_string()));
    assert!(registry.engine_names().contains(&"terraform".to_string()));
    let stand_in = registry.engine("hostile-net").unwrap();
    let def = definition("mysql");
    let err = stand_in
        .render(&request(&def, "db", "hostile-net", json!({})))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("wasi:sockets"), "{err}");
    assert!(registry.engine("nope").is_none());
    let def = definition("mysql");
    registry
        .render(
            "terraform",
            &request(&def, "database", "terraform", mysql_inputs()),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_does_not_hold_up_other_renders() {
    let host = host(HostConfig::default());
    let engine = hostile(&host);
    let looping = tokio::spawn(async move { misbehave(&engine, "loop").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let def = definition("mysql");
    let started = Instant::now();
    for _ in 0..10 {
        registry()
            .render(
                "terraform",
                &request(&def, "database", "terraform", mysql_inputs()),
            )
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "renders waited {:?}",
        started.elapsed()
    );
    let (result, _) = looping.await.unwrap();
    assert_eq!(result.unwrap_err().code(), ErrorCode::EngineFailed);
}

#[tokio::test]
async fn engine_info_and_errors_are_typed() {
    let host = host(HostConfig::default());
    let engine = hostile(&host);
    assert_eq!(engine.abi_version(), "0.2.0");
    assert_eq!(engine.info().name, "hostile");
    let garbage: Value = json!("not a component");
    let err = host
        .load(garbage.to_string().as_bytes(), "junk.wasm")
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::EngineFailed);
    assert!(err.to_string().contains("junk.wasm"), "{err}");
}

#[tokio::test]
async fn warm_and_fresh_instances_render_the_same() {
    let def = definition("mysql");
    let req = request(&def, "database", "terraform", mysql_inputs());
    let wasm = nestor_engines::BUNDLED
        .iter()
        .find(|b| b.name == "terraform")
        .unwrap()
        .wasm;
    let fresh = host(HostConfig {
        warm_instances: 0,
        ..HostConfig::default()
    })
    .load(wasm, "fresh")
    .unwrap();
    let warm = host(HostConfig::default()).load(wasm, "warm").unwrap();
    let expected = fresh.render(&req).await.unwrap();
    for _ in 0..5 {
        assert_eq!(warm.render(&req).await.unwrap(), expected);
        assert_eq!(fresh.render(&req).await.unwrap(), expected);
    }
    // A failing call in between does not poison the warm instance's successors.
    let mut bad = req.clone();
    bad.engine_config = json!({});
    assert!(warm.render(&bad).await.is_err());
    assert_eq!(warm.render(&req).await.unwrap(), expected);
}
