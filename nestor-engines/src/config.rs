//! What the host allows a plugin: time, memory, output, capabilities.

use std::path::PathBuf;
use std::time::Duration;

/// Limits and grants for every plugin of one host (docs/src/plugins/sandbox.md; `engines:` in the configuration).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// CPU budget of one call (`engines.timeout_ms`): an epoch deadline, so
    /// a looping plugin is interrupted, not waited for.
    pub timeout: Duration,
    /// Linear-memory cap of one call's instance (`engines.memory_limit_mb`).
    pub memory_limit: usize,
    /// Cap on one render's artifacts and outputs, in bytes: what a plugin
    /// hands on is bounded even when its memory cap is raised.
    pub output_limit: usize,
    /// Cap on what a plugin may write to stderr (kept to explain a panic).
    pub stderr_limit: usize,
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Idle instances kept per plugin for the next calls. A call on a warm
    /// instance skips instantiation and the guest's memory growth (about
    /// half the cost of a render); an instance whose call trapped, ran out
    /// of budget or was cancelled is never reused. `0` gives every call a
    /// fresh instance, for plugins that must not see earlier requests.
    pub warm_instances: usize,
    /// Capabilities granted to every WASM plugin; none by default.
    pub grants: Grants,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            timeout: Duration::from_millis(1000),
            memory_limit: 64 << 20,
            output_limit: 16 << 20,
            stderr_limit: 64 << 10,
            cache_dir: default_cache_dir(),
            warm_instances: 2,
            grants: Grants::default(),
        }
    }
}

impl HostConfig {
    /// The defaults with `engines.timeout_ms` and `engines.memory_limit_mb`.
    pub fn from_limits(timeout_ms: u64, memory_limit_mb: u64) -> Self {
        HostConfig {
            timeout: Duration::from_millis(timeout_ms.max(1)),
            memory_limit: usize::try_from(memory_limit_mb.max(1) << 20).unwrap_or(usize::MAX),
            ..HostConfig::default()
        }
    }
}

/// WASI capabilities a plugin may use. Everything is denied by default:
/// no files, no network, no environment, and clocks frozen at the epoch.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Environment variables the plugin sees (none by default).
    pub env: Vec<(String, String)>,
    /// Host directories mounted read-only: `(host path, guest path)`.
    pub read_only_dirs: Vec<(PathBuf, String)>,
    /// Real wall and monotonic clocks (frozen at zero otherwise, so renders
    /// stay deterministic).
    pub clocks: bool,
    /// `wasi:sockets`. Without it a plugin importing sockets is refused at load.
    pub network: bool,
}

/// `$NESTOR_ENGINE_CACHE`, else `$XDG_CACHE_HOME/nestor/engines`, else
/// `$HOME/.cache/nestor/engines`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NESTOR_ENGINE_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("nestor").join("engines"))
}
