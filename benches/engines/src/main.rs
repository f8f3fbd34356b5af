//! Run with: cargo run --release -p nestor-bench-engines
//!
//! Prints, for the bundled Terraform engine:
//! - warm render: one `Engine::render` through the WebAssembly component
//!   (a warm instance, call, output checks; and with a fresh store and
//!   instance from `InstancePre` per call) against
//!   the same engine crate compiled natively and loaded through the C ABI
//!   (same request, same trait, same output checks); the ratio is the goal
//!   (≤ 3×);
//! - cold load from the on-disk cache: a new host deserialising the
//!   compiled component (goal < 5 ms), and the full plugin load on top
//!   (link, pre-instantiate, `info()`);
//! - first compile: a new host compiling the component from wasm.
//!
//! Figures go to benches/README.md ("## Engines").

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nestor_core::{Engine, RenderContext, RenderRequest, ResourceDefinition};
use nestor_engines::{build_artifacts, CompileSource, HostConfig, NativeEngine, WasmHost, BUNDLED};
use serde_json::json;

const WARM_CALLS: usize = 2_000;
const COLD_LOADS: usize = 20;
const COMPILES: usize = 3;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let wasm = BUNDLED
        .iter()
        .find(|b| b.name == "terraform")
        .context("terraform is bundled")?
        .wasm;
    let request = request()?;

    // Warm render, WASM.
    let host = WasmHost::new(HostConfig {
        cache_dir: None,
        ..HostConfig::default()
    })?;
    let component = host.load(wasm, "bundled:terraform")?;
    let wasm_times = runtime.block_on(time_renders(&component, &request))?;
    let fresh_host = WasmHost::new(HostConfig {
        cache_dir: None,
        warm_instances: 0,
        ..HostConfig::default()
    })?;
    let fresh = fresh_host.load(wasm, "bundled:terraform")?;
    let fresh_times = runtime.block_on(time_renders(&fresh, &request))?;

    // Warm render, native (the same crate built as a shared library).
    let stage = tempfile::tempdir()?;
    let native = NativeEngine::load(
        Path::new(build_artifacts::NATIVE_EXAMPLE),
        stage.path(),
        16 << 20,
    )?;
    let native_times = runtime.block_on(time_renders(&native, &request))?;
    let same = runtime.block_on(async {
        Ok::<_, nestor_core::Error>(
            component.render(&request).await? == native.render(&request).await?,
        )
    })?;
    anyhow::ensure!(same, "the WASM and native engines disagree");

    // Cold load from the disk cache: a new host each time (no memory cache).
    let cache = tempfile::tempdir()?;
    let cached_config = || HostConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..HostConfig::default()
    };
    WasmHost::new(cached_config())?
        .compile(wasm)
        .map_err(anyhow::Error::msg)?;
    let mut deserialize = Vec::new();
    let mut full_load = Vec::new();
    for _ in 0..COLD_LOADS {
        let host = WasmHost::new(cached_config())?;
        let started = Instant::now();
        let (_, source) = host.compile(wasm).map_err(anyhow::Error::msg)?;
        deserialize.push(started.elapsed());
        anyhow::ensure!(
            source == CompileSource::DiskCache,
            "expected a disk-cache hit, got {source:?}"
        );
        let host = WasmHost::new(cached_config())?;
        let started = Instant::now();
        host.load(wasm, "bundled:terraform")?;
        full_load.push(started.elapsed());
    }

    // First compile: no cache at all.
    let mut compiles = Vec::new();
    for _ in 0..COMPILES {
        let host = WasmHost::new(HostConfig {
            cache_dir: None,
            ..HostConfig::default()
        })?;
        let started = Instant::now();
        let (_, source) = host.compile(wasm).map_err(anyhow::Error::msg)?;
        compiles.push(started.elapsed());
        anyhow::ensure!(source == CompileSource::Compiled);
    }

    let (wasm_median, native_median) = (median(&wasm_times), median(&native_times));
    println!(
        "engine benchmark: bundled terraform engine ({} KiB component), {WARM_CALLS} warm calls",
        wasm.len() / 1024
    );
    println!("| measure | median | p90 |");
    println!("|---|---|---|");
    println!(
        "| warm render, WASM component | {} | {} |",
        us(wasm_median),
        us(p90(&wasm_times))
    );
    println!(
        "| warm render, native (C ABI) | {} | {} |",
        us(native_median),
        us(p90(&native_times))
    );
    println!(
        "| render, WASM, fresh instance per call (`warm_instances: 0`) | {} | {} |",
        us(median(&fresh_times)),
        us(p90(&fresh_times))
    );
    println!(
        "| ratio WASM / native | {:.2}× | goal ≤ 3× |",
        wasm_median.as_secs_f64() / native_median.as_secs_f64()
    );
    println!(
        "| cold load: deserialize from disk cache | {} | {} |",
        ms(median(&deserialize)),
        ms(p90(&deserialize))
    );
    println!(
        "| cold load: full plugin load from disk cache (link, pre-instantiate, info) | {} | {} |",
        ms(median(&full_load)),
        ms(p90(&full_load))
    );
    println!(
        "| first compile (no cache) | {} | {} |",
        ms(median(&compiles)),
        ms(p90(&compiles))
    );
    Ok(())
}

async fn time_renders(engine: &dyn Engine, request: &RenderRequest) -> Result<Vec<Duration>> {
    for _ in 0..WARM_CALLS / 10 {
        engine.render(request).await?;
    }
    let mut times = Vec::with_capacity(WARM_CALLS);
    for _ in 0..WARM_CALLS {
        let started = Instant::now();
        let output = engine.render(request).await?;
        times.push(started.elapsed());
        std::hint::black_box(output);
    }
    Ok(times)
}

fn request() -> Result<RenderRequest> {
    let definition: ResourceDefinition = nestor_core::parse_definition_yaml(include_str!(
        "../../../nestor-engines/tests/data/definitions/mysql.yaml"
    ))?;
    let inputs: BTreeMap<String, serde_json::Value> = serde_json::from_value(json!({
        "instance_class": "db.t3.micro",
        "allocated_storage": 50,
        "engine_version": "8.0",
        "multi_az": true,
        "vpc_security_group_ids": ["sg-1", "sg-2"],
        "tags": {"team": "alpha"},
    }))?;
    Ok(RenderRequest {
        resource: "database".into(),
        engine_config: definition.spec.engine_configs["terraform"].clone(),
        definition,
        inputs,
        references: vec![],
        context: RenderContext::for_resource("alpha", "staging", "shop", "database", 1, 1),
    })
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn p90(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
