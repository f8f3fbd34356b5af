//! The sandbox one call runs in: a fresh store whose WASI context grants
//! nothing unless [`Grants`] says so, a memory limiter that remembers being
//! hit, a captured stderr, and the translation of a failed call into a
//! message a person can act on.

use std::time::Duration;

use wasmtime::component::{types::ComponentItem, Component, ResourceTable};
use wasmtime::{ResourceLimiter, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use crate::config::{Grants, HostConfig};

/// The data of one call's store.
pub(crate) struct StoreState {
    /// WASI as granted: usually nothing.
    wasi: WasiCtx,
    /// WASI's resource handles (streams, pollables).
    table: ResourceTable,
    /// Enforces and reports the memory cap.
    pub(crate) limiter: MemoryCap,
    /// What the guest wrote to stderr: a panicking Rust guest explains
    /// itself there.
    pub(crate) stderr: MemoryOutputPipe,
    /// Epoch ticks the guest has run through; the CPU budget counts these.
    pub(crate) ticks_used: u64,
    /// Bytes of `stderr` written before the current call, so a reused
    /// instance's error quotes only what this call printed.
    stderr_mark: usize,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreState {
    /// A fresh state for one call.
    pub(crate) fn new(config: &HostConfig) -> StoreState {
        let stderr = MemoryOutputPipe::new(config.stderr_limit);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        apply_grants(&mut builder, &config.grants);
        StoreState {
            wasi: builder.build(),
            table: ResourceTable::new(),
            limiter: MemoryCap {
                limit: config.memory_limit,
                hit: false,
            },
            stderr,
            ticks_used: 0,
            stderr_mark: 0,
        }
    }

    /// Resets the per-call accounting before a reused instance's next call:
    /// budget and memory-cap flag are per call, not per instance.
    pub(crate) fn begin_call(&mut self) {
        self.ticks_used = 0;
        self.limiter.hit = false;
        self.stderr_mark = self.stderr.contents().len();
    }

    /// The last lines the guest wrote to stderr, for an error message.
    pub(crate) fn stderr_tail(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(bytes.get(self.stderr_mark..).unwrap_or_default());
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
        (!tail.is_empty()).then(|| tail.chars().take(600).collect())
    }
}

fn apply_grants(builder: &mut WasiCtxBuilder, grants: &Grants) {
    for (key, value) in &grants.env {
        builder.env(key, value);
    }
    for (host, guest) in &grants.read_only_dirs {
        // A directory that cannot be opened is simply not mounted; the
        // plugin then fails to read it, which names the problem.
        let _ = builder.preopened_dir(host, guest, wasmtime_wasi::FsPerms::ReadOnly);
    }
    if !grants.clocks {
        builder.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
    }
    if grants.network {
        builder
            .inherit_network()
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(true);
    }
}

/// Clocks stopped at zero: renders stay deterministic and leak no timing.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The memory cap, remembering whether a growth was refused so the error
/// says "memory limit" rather than the guest's own abort.
pub(crate) struct MemoryCap {
    /// Bytes of linear memory one instance may have.
    limit: usize,
    /// Whether a growth past `limit` was refused during this call.
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a plugin needs a few thousand.
        Ok(desired <= 1_000_000)
    }
}

/// The marker error the epoch callback traps with.
#[derive(Debug)]
pub(crate) struct CpuBudgetExceeded;

impl std::fmt::Display for CpuBudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CPU budget exceeded")
    }
}

impl std::error::Error for CpuBudgetExceeded {}

/// The interface families a plugin may import: the ABI's types, what Rust's
/// standard library links even when unused (the context behind them grants
/// nothing), plus sockets when the network is granted.
pub(crate) fn check_imports(
    engine: &wasmtime::Engine,
    component: &Component,
    grants: &Grants,
) -> Result<(), String> {
    let mut refused = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        let allowed = match name.split_once('/').map(|(package, _)| package) {
            Some("wasi:cli" | "wasi:io" | "wasi:clocks" | "wasi:random" | "wasi:filesystem") => {
                true
            }
            Some("wasi:sockets") => grants.network,
            // The ABI's own type-only interface; a function it lacks fails at link.
            Some("nestor:engine") => true,
            _ => false,
        };
        if !allowed || !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            refused.push(name.to_string());
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "imports {}, a capability the host does not grant{}",
            refused.join(", "),
            if refused.iter().any(|r| r.starts_with("wasi:sockets")) {
                " (network is off)"
            } else {
                ""
            }
        ))
    }
}

/// Turns a failed call into the cause a person needs: budget, memory,
/// stack, or the trap and what the guest printed before it.
pub(crate) fn describe_failure(
    error: &wasmtime::Error,
    state: &StoreState,
    config: &HostConfig,
) -> String {
    if error.downcast_ref::<CpuBudgetExceeded>().is_some()
        || matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt))
    {
        return format!(
            "exceeded its CPU budget of {} ms and was stopped",
            config.timeout.as_millis()
        );
    }
    if state.limiter.hit {
        return format!(
            "exceeded its memory limit of {} MiB",
            config.memory_limit >> 20
        );
    }
    let guest_said = state
        .stderr_tail()
        .map(|t| format!(" (guest stderr: {t})"))
        .unwrap_or_default();
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => "overflowed its stack".to_string(),
        Some(trap) => format!("trapped: {trap}{guest_said}"),
        None => format!("failed: {error}{guest_said}"),
    }
}
