//! Nestor's engine host: runs the engines that turn one resolved resource
//! into one IaC tool's native files (docs/src/plugins/sdk.md).
//!
//! Engines are WebAssembly components speaking the `nestor:engine@0.1.0`
//! WIT package (owned and frozen by `plugins/nestor-engine-sdk`), so a new
//! tool ships as a `.wasm` file without rebuilding Nestor; or, for engines
//! that need host access, native shared libraries speaking a small
//! versioned C ABI. Both implement [`nestor_core::Engine`]; the rest of
//! Nestor never knows which it calls.
//!
//! # Using it
//! ```no_run
//! # async fn demo(request: nestor_core::RenderRequest) -> nestor_core::Result<()> {
//! use std::time::Duration;
//! use nestor_engines::{EngineRegistry, HostConfig};
//!
//! // `engines: {plugins_dir, timeout_ms, memory_limit_mb}` of nestor.yaml:
//! let config = HostConfig::from_limits(1000, 64);
//! let registry = EngineRegistry::with_plugins_dir(config, Some("./plugins".as_ref()))?;
//! let _watch = registry.watch(Duration::from_secs(1)); // hot reload while held
//! for status in registry.list() {
//!     println!("{} {} {} {}", status.name, status.version, status.source, status.healthy);
//! }
//! let output = registry.render("terraform", &request).await?;
//! # Ok(()) }
//! ```
//! [`EngineRegistry`] implements [`nestor_core::EngineProvider`], so the
//! orchestrator takes it as it is.
//!
//! # Layout
//! - [`WasmHost`] / [`WasmEngine`] (`host`): one wasmtime engine and linker
//!   per process (pooling allocator), components compiled once (memory,
//!   then an on-disk cache keyed by the wasm's SHA-256 and the wasmtime
//!   version and settings) and pre-instantiated.
//! - `sandbox`: what a store grants (nothing, by default: no files,
//!   network, environment or clock), the per-call CPU budget (epoch ticks)
//!   and memory cap, and the translation of a failure into a message
//!   naming the plugin and the cause.
//! - `output`: the checks on what a plugin returns (size cap, paths that
//!   stay inside the resource's folder, JSON outputs).
//! - `abi`: one binding module per supported WIT version.
//! - `cache`: the compiled-component cache (one of two `unsafe` modules).
//! - [`NativeEngine`] (`native`): the libloading loader (the other).
//! - [`EngineRegistry`] (`registry`): engines by name from the bundled set
//!   ([`BUNDLED`]) and a plugins directory, with polling hot reload.
//! - [`inspect_component`] (`inspect`): what a `.wasm` file is.
//!
//! # Design decisions
//! - **Fresh instances, reused only after success.** A plugin is
//!   pre-instantiated once; a call takes an idle warm instance of it or
//!   instantiates a fresh one (a store of its own, 15 µs with the pooling
//!   allocator). After a normal return the instance goes back to a small
//!   per-plugin pool (`HostConfig::warm_instances`, default 2), which halves
//!   the cost of a render; an instance whose call trapped, exceeded its
//!   budget or memory, or was cancelled is dropped with its store, so a
//!   following call, to the same plugin or another, starts clean. Budgets
//!   and the memory-cap flag are reset per call. `warm_instances: 0` gives
//!   every call a fresh instance.
//! - **Epoch interruption, not fuel.** Fuel slows every instruction; an
//!   epoch check is a load and a compare at loop heads. A ticker thread
//!   advances the epoch every 10 ms; each store counts the ticks it runs
//!   through and traps past its budget, yielding to the executor at every
//!   tick so one long render never starves the others. A wall-clock
//!   backstop (2 × budget + 250 ms) cancels a call stuck in a host call.
//! - **Imports are checked before linking.** The standard library imports
//!   WASI's cli, io, clocks, random and filesystem interfaces even when
//!   unused, so those link against a context that grants nothing;
//!   `wasi:sockets` links only when the network is granted, and anything
//!   else is refused at load with the import named.
//! - **Async calls.** A plugin blocked in a WASI call (a sleep) is not in
//!   wasm, so only cancelling the future stops it; async calls make that
//!   possible. Loading (which asks `info()`) runs on a private runtime so
//!   the synchronous registry API works inside and outside Tokio.
//!
//! # Lints
//! The workspace forbids `unsafe_code`, and a forbid cannot be relaxed
//! for one module, so this crate repeats the workspace lints with
//! `unsafe_code = "deny"` and allows it in exactly two modules, `cache`
//! (deserialising compiled code) and `native` (calling a foreign library),
//! each explaining why.
#![deny(missing_docs)]

mod abi;
mod bundled;
mod cache;
mod config;
mod host;
mod inspect;
mod native;
mod output;
mod registry;
mod sandbox;

pub use abi::SUPPORTED_ABI_VERSIONS;
pub use bundled::{build_artifacts, BundledPlugin, BUNDLED};
pub use config::{default_cache_dir, Grants, HostConfig};
pub use host::{sha256_hex, CompileSource, WasmEngine, WasmHost};
pub use inspect::{inspect_component, inspect_component_bytes, ComponentInspection};
pub use native::{NativeEngine, NATIVE_ABI_VERSION};
pub use registry::{EngineRegistry, EngineStatus, ReloadReport, WatchHandle};
