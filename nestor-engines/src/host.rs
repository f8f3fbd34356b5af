//! The WebAssembly component host: one wasmtime `Engine` and `Linker` for
//! the process, a pre-instantiated component per plugin, a store per
//! instance, and instances reused only after a call that returned normally.
//!
//! Whatever a failed call did to its instance (exhausted memory, trapped
//! half-way) cannot leak into the next call: that instance is dropped. Calls run asynchronously so a plugin stuck in a host call (a
//! WASI sleep) is cancelled by a wall-clock backstop, while pure wasm is
//! stopped by the epoch-based CPU budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nestor_core::{Engine, EngineInfo, Error, RenderOutput, RenderRequest, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Store, UpdateDeadline};

use crate::abi::{self, Instance, Pre};
use crate::cache::DiskCache;
use crate::config::HostConfig;
use crate::sandbox::{check_imports, describe_failure, CpuBudgetExceeded, StoreState};

/// How often the epoch advances: the granularity of the CPU budget.
const TICK: Duration = Duration::from_millis(10);

/// The process-wide WebAssembly host. Cheap to clone.
#[derive(Clone)]
pub struct WasmHost {
    inner: Arc<HostInner>,
}

struct HostInner {
    /// Compiles and runs every component; its epoch is the CPU clock.
    engine: wasmtime::Engine,
    /// WASI, linked once; what a plugin may actually use is decided by
    /// its store's context and by [`check_imports`].
    linker: Linker<StoreState>,
    /// Limits and grants.
    config: HostConfig,
    /// Compiled components on disk, when a cache directory is configured.
    disk: Option<DiskCache>,
    /// Compiled components in memory by wasm sha256, so a reload of an
    /// unchanged file or a second registry costs nothing.
    compiled: Mutex<HashMap<String, Component>>,
    /// One permit per pooled instance slot: a call beyond the pool waits
    /// for a slot instead of failing.
    slots: tokio::sync::Semaphore,
}

/// How a component was obtained, for the benchmark and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Already compiled in this process.
    Memory,
    /// Deserialized from the on-disk cache.
    DiskCache,
    /// Compiled from the wasm bytes.
    Compiled,
}

impl WasmHost {
    /// A host with these limits; starts the epoch ticker thread.
    pub fn new(config: HostConfig) -> Result<WasmHost> {
        let engine = new_engine(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::internal(format!("cannot link WASI: {e}")))?;
        let disk = config
            .cache_dir
            .as_deref()
            .and_then(|dir| DiskCache::open(dir, &engine));
        start_ticker(&engine);
        Ok(WasmHost {
            inner: Arc::new(HostInner {
                engine,
                linker,
                config,
                disk,
                compiled: Mutex::new(HashMap::new()),
                slots: tokio::sync::Semaphore::new(CONCURRENT_CALLS as usize),
            }),
        })
    }

    /// The wasmtime engine every plugin of this host runs on.
    pub fn wasmtime_engine(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// The limits and grants in force.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// The compiled component for `bytes`: from memory, the disk cache, or
    /// a fresh compile (then cached).
    pub fn compile(&self, bytes: &[u8]) -> Result<(Component, CompileSource), String> {
        let sha256 = sha256_hex(bytes);
        let inner = &self.inner;
        if let Some(component) = inner
            .compiled
            .lock()
            .expect("compiled cache lock")
            .get(&sha256)
        {
            return Ok((component.clone(), CompileSource::Memory));
        }
        let (component, source) = match inner
            .disk
            .as_ref()
            .and_then(|d| d.load(&inner.engine, &sha256))
        {
            Some(component) => (component, CompileSource::DiskCache),
            None => {
                let component = Component::new(&inner.engine, bytes)
                    .map_err(|e| format!("is not a valid component: {e:#}"))?;
                if let Some(disk) = &inner.disk {
                    disk.store(&sha256, &component);
                }
                (component, CompileSource::Compiled)
            }
        };
        inner
            .compiled
            .lock()
            .expect("compiled cache lock")
            .insert(sha256, component.clone());
        Ok((component, source))
    }

    /// Loads a plugin: compile (or fetch from cache), check its imports and
    /// ABI version, pre-instantiate, and ask its `info()`. `label` names the
    /// plugin in errors (a file name, `bundled:terraform`).
    pub fn load(&self, bytes: &[u8], label: &str) -> Result<WasmEngine> {
        let fail = |message: String| Error::EngineFailed {
            engine: label.to_string(),
            message: format!("plugin {label} {message}"),
        };
        let sha256 = sha256_hex(bytes);
        let (component, _) = self.compile(bytes).map_err(fail)?;
        let abi_version = abi_version(&self.inner.engine, &component).map_err(fail)?;
        if !abi::SUPPORTED_ABI_VERSIONS.contains(&abi_version.as_str()) {
            return Err(fail(format!(
                "speaks nestor:engine@{abi_version}; this host supports {}",
                abi::SUPPORTED_ABI_VERSIONS.join(", ")
            )));
        }
        check_imports(&self.inner.engine, &component, &self.inner.config.grants).map_err(fail)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .and_then(|pre| Pre::new(&abi_version, pre))
            .map_err(|e| fail(format!("cannot be linked: {e:#}")))?;
        let mut engine = WasmEngine {
            host: self.clone(),
            pre,
            label: label.to_string(),
            sha256,
            abi_version,
            warm: Arc::new(Mutex::new(Vec::new())),
            info: EngineInfo {
                name: String::new(),
                version: String::new(),
                description: String::new(),
            },
        };
        engine.info = block_on_fresh_runtime(engine.call_info()).map_err(|e| match e {
            Error::EngineFailed { message, .. } => fail(format!("failed in info(): {message}")),
            other => other,
        })?;
        if engine.info.name.is_empty() {
            return Err(fail("reports an empty engine name".into()));
        }
        Ok(engine)
    }

    /// Waits for a free instance slot.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.inner
            .slots
            .acquire()
            .await
            .map_err(|_| Error::internal("the engine host is shutting down"))
    }

    fn new_store(&self) -> Store<StoreState> {
        let config = &self.inner.config;
        let mut store = Store::new(&self.inner.engine, StoreState::new(config));
        store.limiter(|state| &mut state.limiter);
        let budget = budget_ticks(config.timeout);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            state.ticks_used += 1;
            if state.ticks_used > budget {
                Err(wasmtime::Error::new(CpuBudgetExceeded))
            } else {
                // Yield so a long render shares its executor thread.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// The wall-clock backstop of one call: the CPU budget only counts time
    /// spent in wasm, so a call blocked in a host call is cut off here.
    fn wall_limit(&self) -> Duration {
        self.inner.config.timeout * 2 + Duration::from_millis(250)
    }
}

/// How many calls may run at once; more wait for a slot (see `slots`).
const CONCURRENT_CALLS: u32 = 128;

/// Instances the pooling allocator pre-reserves memories and stacks for:
/// the running calls plus the idle warm instances of every plugin
/// ([`HostConfig::warm_instances`] each).
const POOLED_INSTANCES: u32 = 2 * CONCURRENT_CALLS;

/// The wasmtime engine: epoch interruption, and the pooling allocator so a
/// call's instance reuses a memory and a fiber stack instead of mapping
/// fresh ones (that is most of the per-call cost otherwise). Where the pool
/// cannot be reserved (a low virtual-memory ulimit) the on-demand allocator
/// is used instead.
fn new_engine(config: &HostConfig) -> Result<wasmtime::Engine> {
    let mut wasm_config = wasmtime::Config::new();
    wasm_config.epoch_interruption(true);
    wasm_config.max_wasm_stack(1 << 20);
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * 8)
        .total_memories(POOLED_INSTANCES)
        .total_tables(POOLED_INSTANCES * 8)
        .total_stacks(POOLED_INSTANCES)
        .max_memories_per_component(4)
        .max_tables_per_component(16)
        .max_memory_size(config.memory_limit.max(1 << 20))
        .linear_memory_keep_resident(1 << 20)
        .async_stack_keep_resident(64 << 10);
    let mut pooled = wasm_config.clone();
    pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    match wasmtime::Engine::new(&pooled) {
        Ok(engine) => Ok(engine),
        Err(e) => {
            tracing::warn!(error = %e, "wasmtime pooling allocator unavailable; allocating per call");
            wasmtime::Engine::new(&wasm_config)
                .map_err(|e| Error::internal(format!("cannot create the wasmtime engine: {e}")))
        }
    }
}

fn budget_ticks(timeout: Duration) -> u64 {
    (timeout.as_millis().div_ceil(TICK.as_millis()) as u64).max(1)
}

/// Advances the engine's epoch every [`TICK`] until the engine is dropped.
fn start_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("nestor-engine-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the engine epoch thread: CPU budgets will not be enforced");
    }
}

/// Runs `future` to completion on a private runtime in a scoped thread, so
/// the synchronous loaders work whether or not the caller is inside Tokio.
fn block_on_fresh_runtime<F: std::future::Future + Send>(future: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime builds")
                    .block_on(future)
            })
            .join()
            .expect("the loader thread does not panic")
    })
}

/// The version in the component's `nestor:engine/engine-api@X` export.
pub(crate) fn abi_version(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<String, String> {
    component
        .component_type()
        .exports(engine)
        .find_map(|(name, _)| {
            let (interface, version) = name.split_once('@')?;
            (interface == abi::ENGINE_INTERFACE).then(|| version.to_string())
        })
        .ok_or_else(|| {
            format!(
                "does not export {}@<version>: not a Nestor engine plugin",
                abi::ENGINE_INTERFACE
            )
        })
}

/// Hex SHA-256 of `bytes`: the identity of a plugin file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One loaded WebAssembly engine plugin.
#[derive(Clone)]
pub struct WasmEngine {
    /// The host whose limits every call runs under.
    host: WasmHost,
    /// Linked once at load (bindings of its ABI version); instantiated per call.
    pre: Pre,
    /// Names the plugin in error messages (`bundled:terraform`, a file name).
    label: String,
    /// Hex SHA-256 of the wasm.
    sha256: String,
    /// The `nestor:engine` version it exports.
    abi_version: String,
    /// What `info()` said at load.
    info: EngineInfo,
    /// Idle instances whose last call succeeded, reused by the next calls
    /// (see [`HostConfig::warm_instances`]); shared by clones.
    warm: Arc<Mutex<Vec<WarmInstance>>>,
}

/// An instantiated plugin with its store, ready for another call.
struct WarmInstance {
    store: Store<StoreState>,
    plugin: Instance,
}

impl std::fmt::Debug for WasmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmEngine")
            .field("label", &self.label)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl WasmEngine {
    /// Hex SHA-256 of the plugin's wasm.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The `nestor:engine` ABI version the plugin exports.
    pub fn abi_version(&self) -> &str {
        &self.abi_version
    }

    /// The label errors name the plugin by.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn failed(&self, message: impl std::fmt::Display) -> Error {
        let engine = if self.info.name.is_empty() {
            self.label.clone()
        } else {
            self.info.name.clone()
        };
        Error::EngineFailed {
            engine,
            message: format!("plugin {} {message}", self.label),
        }
    }

    async fn call_info(&self) -> Result<EngineInfo> {
        let _slot = self.host.slot().await?;
        let mut store = self.host.new_store();
        let call = async {
            let plugin = self.pre.instantiate(&mut store).await?;
            plugin.info(&mut store).await
        };
        match tokio::time::timeout(self.host.wall_limit(), call).await {
            Err(_) => Err(self.failed(format!(
                "did not answer within {} ms",
                self.host.wall_limit().as_millis()
            ))),
            Ok(Err(e)) => Err(self.failed(describe_failure(&e, store.data(), self.host.config()))),
            Ok(Ok(info)) => Ok(info),
        }
    }

    /// Asks the plugin to check an engine config (`validate`, ABI 0.2.0;
    /// a 0.1.0 plugin accepts every config). Each problem's field is the
    /// key's path inside the config.
    pub async fn validate_request(
        &self,
        definition: &nestor_core::ResourceDefinition,
        config: &serde_json::Value,
    ) -> Result<Vec<nestor_core::FieldError>> {
        if matches!(self.pre, Pre::V0_1(_)) {
            return Ok(Vec::new());
        }
        let (definition, config) = (abi::json_text(definition), abi::json_text(config));
        let _slot = self.host.slot().await?;
        let mut store = self.host.new_store();
        let call = async {
            let plugin = self.pre.instantiate(&mut store).await?;
            plugin.validate(&mut store, &definition, &config).await
        };
        match tokio::time::timeout(self.host.wall_limit(), call).await {
            Err(_) => Err(self.failed(format!(
                "did not validate within {} ms",
                self.host.wall_limit().as_millis()
            ))),
            Ok(Err(e)) => Err(self.failed(describe_failure(&e, store.data(), self.host.config()))),
            Ok(Ok(problems)) => Ok(problems
                .into_iter()
                .map(|(field, message)| nestor_core::FieldError::new(field, message))
                .collect()),
        }
    }

    /// Renders through the plugin in a fresh sandbox.
    pub async fn render_request(&self, request: &RenderRequest) -> Result<RenderOutput> {
        let started = Instant::now();
        let _slot = self.host.slot().await?;
        let warm = self.warm.lock().expect("warm instances lock").pop();
        let (mut store, plugin) = match warm {
            Some(WarmInstance { mut store, plugin }) => {
                store.data_mut().begin_call();
                store.set_epoch_deadline(1);
                (store, Some(plugin))
            }
            None => (self.host.new_store(), None),
        };
        let call = async {
            let plugin = match plugin {
                Some(plugin) => plugin,
                None => self.pre.instantiate(&mut store).await?,
            };
            let result = plugin.render(&mut store, request).await;
            result.map(|answer| (answer, plugin))
        };
        let result = tokio::time::timeout(self.host.wall_limit(), call).await;
        let output = match result {
            Err(_) => {
                return Err(self.failed(format!(
                    "did not finish within {} ms (blocked outside wasm) and was cancelled",
                    self.host.wall_limit().as_millis()
                )))
            }
            Ok(Err(e)) => {
                return Err(self.failed(describe_failure(&e, store.data(), self.host.config())))
            }
            Ok(Ok((answer, plugin))) => {
                // Only an instance whose call returned normally is reused;
                // one that trapped or was cut off is dropped with its store.
                let mut warm = self.warm.lock().expect("warm instances lock");
                if warm.len() < self.host.config().warm_instances {
                    warm.push(WarmInstance { store, plugin });
                }
                answer
            }
        };
        let output = match output {
            Err(refusal) => {
                let engine = if self.info.name.is_empty() {
                    &self.label
                } else {
                    &self.info.name
                };
                return Err(abi::refusal_error(
                    engine,
                    &format!("plugin {}", self.label),
                    &request.resource,
                    refusal,
                ));
            }
            Ok(output) => output,
        };
        let (artifacts, outputs) = (output.artifacts, output.outputs);
        let rendered = crate::output::validate(artifacts, outputs, self.host.config().output_limit)
            .map_err(|e| self.failed(e))?;
        tracing::debug!(engine = %self.info.name, elapsed_us = started.elapsed().as_micros() as u64, "rendered");
        Ok(rendered)
    }
}

#[async_trait]
impl Engine for WasmEngine {
    fn info(&self) -> EngineInfo {
        self.info.clone()
    }

    async fn render(&self, request: &RenderRequest) -> Result<RenderOutput> {
        self.render_request(request).await
    }

    async fn validate_config(
        &self,
        definition: &nestor_core::ResourceDefinition,
        config: &serde_json::Value,
    ) -> Result<Vec<nestor_core::FieldError>> {
        self.validate_request(definition, config).await
    }
}
