//! The registry: every engine by name, from the bundled set and the plugins
//! directory, with hot reload.
//!
//! A plugin file overrides a bundled engine of the same name (a platform
//! team can ship a newer `terraform` without rebuilding Nestor). Reloading
//! polls the directory's modification times and sizes, and re-reads a file
//! only when they change; an unchanged hash is not reloaded. Loading happens
//! outside the registry's lock, so renders never wait for a compile, and a
//! render that started on the old version finishes on it.
//!
//! Write plugin files atomically (write elsewhere, then rename into the
//! folder): a file caught half-written fails to load, is reported unhealthy,
//! and is retried as soon as it changes again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use nestor_core::{Engine, EngineInfo, EngineProvider, Error, RenderOutput, RenderRequest, Result};
use serde::Serialize;

use crate::bundled::BUNDLED;
use crate::config::HostConfig;
use crate::host::{sha256_hex, WasmHost};
use crate::native::NativeEngine;

/// What `nestor engines list` and `GET /api/v1/engines` show per engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStatus {
    /// The engine name (for a plugin that failed to load: its file stem).
    pub name: String,
    /// The version `info()` reports (empty when it failed to load).
    pub version: String,
    /// `bundled`, `wasm:<path>` or `native:<path>`.
    pub source: String,
    /// Hex SHA-256 of the component or library.
    pub sha256: String,
    /// Whether it loaded and answers.
    pub healthy: bool,
    /// One line from the engine.
    pub description: String,
    /// Why it is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one [`EngineRegistry::refresh`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Files (re)loaded successfully.
    pub loaded: Vec<PathBuf>,
    /// Files that failed to load, with the cause.
    pub failed: Vec<(PathBuf, String)>,
    /// Files that disappeared.
    pub removed: Vec<PathBuf>,
}

impl ReloadReport {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.loaded.is_empty() && self.failed.is_empty() && self.removed.is_empty()
    }
}

/// Every loaded engine by name. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct EngineRegistry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    /// Runs every WASM plugin.
    host: WasmHost,
    /// Where native libraries are staged before loading.
    native_stage: PathBuf,
    /// The engines; written only by the (serialised) reload paths.
    state: RwLock<State>,
    /// Serialises refreshes (the watcher's and explicit ones).
    refresh_lock: Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Bundled or programmatically inserted engines, by name.
    builtin: BTreeMap<String, Slot>,
    /// The watched plugins directory.
    dir: Option<PathBuf>,
    /// Plugin files by path, in path order.
    files: BTreeMap<PathBuf, FileSlot>,
}

#[derive(Clone)]
struct Slot {
    /// `None` when loading failed (the status says why).
    engine: Option<Arc<dyn Engine>>,
    /// What `list()` reports.
    status: EngineStatus,
}

#[derive(Clone)]
struct FileSlot {
    /// Modification time and size when last read: the cheap change check.
    stamp: (Option<SystemTime>, u64),
    slot: Slot,
}

impl EngineRegistry {
    /// An empty registry whose WASM plugins run under `config`.
    pub fn new(config: HostConfig) -> Result<EngineRegistry> {
        let native_stage = config
            .cache_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join("native");
        Ok(EngineRegistry {
            inner: Arc::new(RegistryInner {
                host: WasmHost::new(config)?,
                native_stage,
                state: RwLock::new(State::default()),
                refresh_lock: Mutex::new(()),
            }),
        })
    }

    /// The default limits and the four bundled engines.
    pub fn with_bundled() -> Result<EngineRegistry> {
        let registry = EngineRegistry::new(HostConfig::default())?;
        registry.load_bundled()?;
        Ok(registry)
    }

    /// `config`'s limits, the bundled engines, and every plugin in
    /// `plugins_dir` (a missing directory is watched until it appears).
    pub fn with_plugins_dir(
        config: HostConfig,
        plugins_dir: Option<&Path>,
    ) -> Result<EngineRegistry> {
        let registry = EngineRegistry::new(config)?;
        registry.load_bundled()?;
        if let Some(dir) = plugins_dir {
            registry.set_plugins_dir(dir);
        }
        Ok(registry)
    }

    /// The WebAssembly host the plugins run on.
    pub fn host(&self) -> &WasmHost {
        &self.inner.host
    }

    /// Loads the bundled engines. A bundled engine that fails to load is a
    /// build defect, so this fails rather than reporting it unhealthy.
    pub fn load_bundled(&self) -> Result<()> {
        for plugin in BUNDLED {
            let engine = self
                .inner
                .host
                .load(plugin.wasm, &format!("bundled:{}", plugin.name))?;
            let sha256 = engine.sha256().to_string();
            self.insert(Arc::new(engine), "bundled", &sha256);
        }
        Ok(())
    }

    /// Registers an engine under its `info().name`, replacing one of the
    /// same name that was bundled or inserted (plugin files still win).
    pub fn insert(&self, engine: Arc<dyn Engine>, source: &str, sha256: &str) {
        let info = engine.info();
        let status = EngineStatus {
            name: info.name.clone(),
            version: info.version,
            source: source.to_string(),
            sha256: sha256.to_string(),
            healthy: true,
            description: info.description,
            error: None,
        };
        let mut state = self.inner.state.write().expect("registry lock");
        state.builtin.insert(
            info.name,
            Slot {
                engine: Some(engine),
                status,
            },
        );
    }

    /// Loads a native engine library and registers it.
    pub fn load_native(&self, path: &Path) -> Result<EngineStatus> {
        let engine = NativeEngine::load(
            path,
            &self.inner.native_stage,
            self.inner.host.config().output_limit,
        )?;
        let sha256 = engine.sha256().to_string();
        let source = format!("native:{}", path.display());
        self.insert(Arc::new(engine.clone()), &source, &sha256);
        let name = engine.info().name;
        Ok(self
            .list()
            .into_iter()
            .find(|s| s.name == name && s.source == source)
            .expect("just inserted"))
    }

    /// Watches `dir` for plugins (`*.wasm`, and native `*.so`, `*.dylib`,
    /// `*.dll`) and loads what it holds now.
    pub fn set_plugins_dir(&self, dir: &Path) -> ReloadReport {
        {
            let mut state = self.inner.state.write().expect("registry lock");
            state.dir = Some(dir.to_path_buf());
            state.files.clear();
        }
        self.refresh()
    }

    /// Brings the registry in line with the plugins directory: loads new and
    /// changed files, drops removed ones. Returns what changed.
    pub fn refresh(&self) -> ReloadReport {
        let _serial = self.inner.refresh_lock.lock().expect("refresh lock");
        let (dir, known) = {
            let state = self.inner.state.read().expect("registry lock");
            (state.dir.clone(), state.files.clone())
        };
        let mut report = ReloadReport::default();
        let Some(dir) = dir else { return report };
        let present = plugin_files(&dir);
        let mut files = BTreeMap::new();
        for (path, stamp) in present {
            match known.get(&path) {
                Some(old) if old.stamp == stamp => {
                    files.insert(path, old.clone());
                }
                old => {
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    let sha256 = sha256_hex(&bytes);
                    if let Some(old) = old.filter(|o| o.slot.status.sha256 == sha256) {
                        files.insert(
                            path,
                            FileSlot {
                                stamp,
                                slot: old.slot.clone(),
                            },
                        );
                        continue;
                    }
                    let slot = self.load_file(&path, &bytes, sha256);
                    match &slot.status.error {
                        None => report.loaded.push(path.clone()),
                        Some(e) => report.failed.push((path.clone(), e.clone())),
                    }
                    files.insert(path, FileSlot { stamp, slot });
                }
            }
        }
        report.removed = known
            .keys()
            .filter(|p| !files.contains_key(*p))
            .cloned()
            .collect();
        for (path, error) in &report.failed {
            tracing::warn!(plugin = %path.display(), %error, "engine plugin failed to load");
        }
        for path in &report.loaded {
            tracing::info!(plugin = %path.display(), "engine plugin loaded");
        }
        let mut state = self.inner.state.write().expect("registry lock");
        if state.dir.as_deref() == Some(dir.as_path()) {
            state.files = files;
        }
        report
    }

    fn load_file(&self, path: &Path, bytes: &[u8], sha256: String) -> Slot {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let is_wasm = path.extension().is_some_and(|e| e == "wasm");
        let source = format!(
            "{}:{}",
            if is_wasm { "wasm" } else { "native" },
            path.display()
        );
        let loaded: Result<Arc<dyn Engine>> = if is_wasm {
            let label = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.inner
                .host
                .load(bytes, &label)
                .map(|e| Arc::new(e) as Arc<dyn Engine>)
        } else {
            NativeEngine::load(
                path,
                &self.inner.native_stage,
                self.inner.host.config().output_limit,
            )
            .map(|e| Arc::new(e) as Arc<dyn Engine>)
        };
        match loaded {
            Ok(engine) => {
                let info = engine.info();
                Slot {
                    status: EngineStatus {
                        name: info.name,
                        version: info.version,
                        source,
                        sha256,
                        healthy: true,
                        description: info.description,
                        error: None,
                    },
                    engine: Some(engine),
                }
            }
            Err(error) => Slot {
                engine: None,
                status: EngineStatus {
                    name: stem,
                    version: String::new(),
                    source,
                    sha256,
                    healthy: false,
                    description: String::new(),
                    error: Some(match error {
                        Error::EngineFailed { message, .. } => message,
                        other => other.to_string(),
                    }),
                },
            },
        }
    }

    /// Polls the plugins directory every `interval` on a background thread
    /// until the returned handle (or the registry) is dropped.
    pub fn watch(&self, interval: Duration) -> WatchHandle {
        let weak: Weak<RegistryInner> = Arc::downgrade(&self.inner);
        let (stop, stopped) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("nestor-engine-watch".into())
            .spawn(move || {
                // A message or a dropped sender both mean stop.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let Some(inner) = weak.upgrade() else { break };
                    EngineRegistry { inner }.refresh();
                }
            });
        if let Err(e) = &spawned {
            tracing::error!(error = %e, "cannot start the plugin watcher: plugins will not hot-reload");
        }
        WatchHandle {
            stop: Some(stop),
            thread: spawned.ok(),
        }
    }

    /// Every engine, healthy or not, sorted by name; a plugin file that
    /// overrides a bundled engine hides it.
    pub fn list(&self) -> Vec<EngineStatus> {
        let state = self.inner.state.read().expect("registry lock");
        let mut by_name: BTreeMap<String, EngineStatus> = BTreeMap::new();
        for slot in state.builtin.values() {
            by_name.insert(slot.status.name.clone(), slot.status.clone());
        }
        let mut unnamed = Vec::new();
        for file in state.files.values() {
            if file.slot.status.healthy {
                by_name.insert(file.slot.status.name.clone(), file.slot.status.clone());
            } else {
                unnamed.push(file.slot.status.clone());
            }
        }
        let mut all: Vec<EngineStatus> = by_name.into_values().collect();
        all.extend(unnamed);
        all.sort_by(|a, b| a.name.cmp(&b.name).then(a.source.cmp(&b.source)));
        all
    }

    /// The engine called `name`: a healthy plugin file first, then a bundled
    /// or inserted engine. A plugin of that name that failed to load gives
    /// `ENGINE_FAILED` with the cause; no engine at all, `ENGINE_NOT_FOUND`.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Engine>> {
        let state = self.inner.state.read().expect("registry lock");
        let files = state.files.values().map(|f| &f.slot);
        if let Some(engine) = files
            .clone()
            .find(|s| s.status.healthy && s.status.name == name)
            .and_then(|s| s.engine.clone())
        {
            return Ok(engine);
        }
        if let Some(engine) = state.builtin.get(name).and_then(|s| s.engine.clone()) {
            return Ok(engine);
        }
        if let Some(broken) = files.into_iter().find(|s| s.status.name == name) {
            return Err(Error::EngineFailed {
                engine: name.to_string(),
                message: broken
                    .status
                    .error
                    .clone()
                    .unwrap_or_else(|| "failed to load".into()),
            });
        }
        Err(Error::EngineNotFound {
            name: name.to_string(),
        })
    }

    /// Renders `request` with the engine called `name`.
    pub async fn render(&self, name: &str, request: &RenderRequest) -> Result<RenderOutput> {
        let engine = self.get(name)?;
        engine.render(request).await
    }
}

/// The orchestrator's view: healthy engines by name. A plugin file that
/// failed to load is still handed out, as an engine whose every render
/// fails with the load error, so the resource fails with `ENGINE_FAILED`
/// and the cause rather than `ENGINE_NOT_FOUND`; it is not among
/// `engine_names`, so it is never picked as a default.
impl EngineProvider for EngineRegistry {
    fn engine(&self, name: &str) -> Option<Arc<dyn Engine>> {
        match self.get(name) {
            Ok(engine) => Some(engine),
            Err(Error::EngineFailed { engine, message }) => Some(Arc::new(FailedPlugin {
                info: EngineInfo {
                    name: engine,
                    version: String::new(),
                    description: "failed to load".into(),
                },
                message,
            })),
            Err(_) => None,
        }
    }

    fn engine_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .list()
            .into_iter()
            .filter(|s| s.healthy)
            .map(|s| s.name)
            .collect();
        names.dedup();
        names
    }
}

/// Stands in for a plugin that failed to load.
struct FailedPlugin {
    info: EngineInfo,
    /// The load error, repeated by every render.
    message: String,
}

#[async_trait]
impl Engine for FailedPlugin {
    fn info(&self) -> EngineInfo {
        self.info.clone()
    }

    async fn render(&self, _request: &RenderRequest) -> Result<RenderOutput> {
        Err(Error::EngineFailed {
            engine: self.info.name.clone(),
            message: self.message.clone(),
        })
    }
}

/// Stops the watcher thread when dropped.
pub struct WatchHandle {
    /// Dropping the sender wakes and ends the thread.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Plugin files in `dir` with their change stamps; hidden and temporary
/// files are skipped so an atomic write-then-rename is never seen half-done.
fn plugin_files(dir: &Path) -> Vec<(PathBuf, (Option<SystemTime>, u64))> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_name()?.to_string_lossy().into_owned();
            let ext = path.extension()?.to_string_lossy().into_owned();
            if name.starts_with('.') || !matches!(ext.as_str(), "wasm" | "so" | "dylib" | "dll") {
                return None;
            }
            let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
            Some((path, (meta.modified().ok(), meta.len())))
        })
        .collect();
    files.sort();
    files
}
