//! Reloading access without a restart (docs/src/operator/configuration.md,
//! "Reloading"): on SIGHUP, or when the configuration file changes, `auth:`,
//! `server.rate_limits` and `catalog.sources` take their new values.
//!
//! A reload reads, parses and validates the whole file the way start-up
//! does (`${VAR}` substitution and `NESTOR_*` overrides included, then the
//! `serve` flags laid over it), builds the new [`Access`] and checks the new
//! source set; only when all of that succeeds is anything swapped in. A
//! refused reload changes nothing: the old tokens, limits and sources stay,
//! and the error is logged (`config reload refused: …`).
//!
//! # Design decisions
//! - The reloadable request-path state is one [`Access`] behind an
//!   [`ArcSwap`]: a request does one lock-free `load()` (no allocation), a
//!   reload one `store()`; requests in flight finish with the access they
//!   started with.
//! - The file is re-read every `server.config_watch_interval` (2 s) and its
//!   SHA-256 compared, rather than watched with inotify: a Kubernetes
//!   ConfigMap is updated by swapping a symlink (`..data`) in the
//!   directory, which an inotify watch on the file misses, while re-reading
//!   the path follows whatever it points to now. One small read every 2 s
//!   costs nothing, and a content hash ignores a `touch`.
//! - What cannot change under a running server (the listener, the store,
//!   TLS, limits, engines, policies…) is compared too and logged as needing
//!   a restart; the rest of the reload still applies.
//! - Rate-limit buckets are kept when `server.rate_limits` is unchanged and
//!   start full again when it changes: a limiter is built for its quota.
//! - The event hub is not touched, so open SSE streams go on.
//! - Each outcome is in the audit trail (`config.reload`, actor `server`):
//!   a token or role change made by editing the file is a write like any other.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use nestor_core::{Actor, AuditOutcome, ErrorCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::sync::SourceChanges;
use super::{auth, ratelimit, AppState};
use crate::config::Config;

/// What each request consults before its handler runs, swapped whole by a
/// reload.
#[derive(Debug)]
pub(super) struct Access {
    /// Who callers are, from `auth:`: static tokens, OIDC issuers (with
    /// their cached keys), client certificates, anonymous access.
    pub(super) auth: Arc<auth::Auth>,
    /// `server.rate_limits`, when any class is limited; shared with the
    /// previous [`Access`] when unchanged, so buckets survive a reload.
    pub(super) rate_limits: Option<Arc<ratelimit::RateLimits>>,
}

impl Access {
    /// The access `config` describes.
    pub(super) fn from_config(config: &Config) -> anyhow::Result<Access> {
        Ok(Access {
            auth: Arc::new(auth::Auth::from_config(&config.auth)?),
            rate_limits: ratelimit::RateLimits::from_config(config.server.rate_limits.as_ref())?
                .map(Arc::new),
        })
    }

    /// Holds the current [`Access`] for lock-free loads.
    pub(super) fn swappable(self) -> ArcSwap<Access> {
        ArcSwap::from_pointee(self)
    }

    /// The rate limiters, when any class is limited.
    pub(super) fn rate_limits(&self) -> Option<&ratelimit::RateLimits> {
        self.rate_limits.as_deref()
    }
}

/// Where a reload reads the configuration: the file and environment
/// `nestor serve` started with, and the command-line flags laid over them
/// (`--listen`, the `--dev` token), so a reload sees what start-up saw.
pub struct ConfigSource {
    /// `--config`; `None` reads `./nestor.yaml` when it exists.
    path: Option<PathBuf>,
    /// The environment for `${VAR}` and `NESTOR_*` overrides.
    env: Vec<(String, String)>,
    /// The `serve` flags, applied after each load.
    overlay: Box<dyn Fn(&mut Config) + Send + Sync>,
}

impl ConfigSource {
    /// The file at `path` (or `./nestor.yaml`) with `env`.
    pub fn new(path: Option<PathBuf>, env: impl IntoIterator<Item = (String, String)>) -> Self {
        ConfigSource {
            path,
            env: env.into_iter().collect(),
            overlay: Box::new(|_| {}),
        }
    }

    /// Lays `overlay` (the `serve` flags) over every loaded configuration.
    pub fn with_overlay(mut self, overlay: impl Fn(&mut Config) + Send + Sync + 'static) -> Self {
        self.overlay = Box::new(overlay);
        self
    }

    /// Loads and validates the configuration, as start-up does.
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.path.as_deref(), self.env.iter().cloned())?;
        (self.overlay)(&mut config);
        Ok(config)
    }

    /// The file a change of which means a reload, if there is one.
    fn watched(&self) -> Option<PathBuf> {
        match &self.path {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from("nestor.yaml")).filter(|p| p.exists()),
        }
    }
}

/// What an applied reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Whether `auth:` changed (tokens, OIDC issuers, client certificates,
    /// anonymous access).
    pub auth: bool,
    /// Whether `server.rate_limits` changed (its buckets start full).
    pub rate_limits: bool,
    /// What changed in `catalog.sources`.
    pub sources: SourceChanges,
    /// Settings that changed but only take effect after a restart, by key.
    pub needs_restart: Vec<String>,
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.auth {
            parts.push("auth".to_string());
        }
        if self.rate_limits {
            parts.push("server.rate_limits".to_string());
        }
        let s = &self.sources;
        for (what, names) in [
            ("added", &s.added),
            ("changed", &s.changed),
            ("removed", &s.removed),
        ] {
            if !names.is_empty() {
                parts.push(format!("catalog.sources {what}: {}", names.join(", ")));
            }
        }
        if parts.is_empty() {
            parts.push("nothing that reloads changed".into());
        }
        f.write_str(&parts.join("; "))
    }
}

impl AppState {
    /// Applies the reloadable parts of `config` (`auth:`,
    /// `server.rate_limits`, `catalog.sources`): builds them all first and
    /// swaps them in only when every one is valid; else changes nothing.
    pub fn apply_config(&self, config: Config) -> anyhow::Result<ReloadReport> {
        // Held throughout: one reload at a time, each diffed against the last.
        let mut applied = self.inner.applied.lock().unwrap_or_else(|p| p.into_inner());
        let auth_changed = applied.auth != config.auth;
        let limits_changed = applied.server.rate_limits != config.server.rate_limits;
        let current = self.access();
        let access = Access {
            auth: if auth_changed {
                Arc::new(auth::Auth::from_config(&config.auth)?)
            } else {
                current.auth.clone()
            },
            rate_limits: if limits_changed {
                ratelimit::RateLimits::from_config(config.server.rate_limits.as_ref())?
                    .map(Arc::new)
            } else {
                current.rate_limits.clone()
            },
        };
        self.syncs().check(&config.catalog.sources)?;
        // Everything is valid: from here on nothing fails.
        self.inner.access.store(Arc::new(access));
        let sources = self.syncs().reconcile(&config.catalog.sources);
        let report = ReloadReport {
            auth: auth_changed,
            rate_limits: limits_changed,
            sources,
            needs_restart: needs_restart(&applied, &config),
        };
        *applied = config;
        Ok(report)
    }

    /// Loads `source` and applies it ([`AppState::apply_config`]), logging
    /// and counting the outcome (`nestor_config_reloads_total{outcome}`).
    pub fn reload(&self, source: &ConfigSource) -> anyhow::Result<ReloadReport> {
        let result = source.load().and_then(|c| self.apply_config(c));
        match &result {
            Ok(report) => {
                tracing::info!("config reloaded: {report}");
                if !report.needs_restart.is_empty() {
                    tracing::warn!(
                        "config reload: {} changed but needs a restart; the running values stay",
                        report.needs_restart.join(", ")
                    );
                }
            }
            Err(e) => {
                tracing::error!("config reload refused: {e:#}; the running configuration stays")
            }
        }
        self.metrics().config_reload(result.is_ok());
        self.audit_reload(&result);
        result
    }

    /// Records the reload in the audit trail, in the background: one
    /// `config.reload` record per part it changed, or one `failed` record
    /// (subject `config`) when it was refused.
    fn audit_reload(&self, result: &anyhow::Result<ReloadReport>) {
        let records: Vec<(&'static str, AuditOutcome, Option<String>)> = match result {
            Ok(r) => [
                ("auth", r.auth),
                ("server.rate_limits", r.rate_limits),
                ("catalog.sources", !r.sources.is_empty()),
            ]
            .into_iter()
            .filter(|(_, changed)| *changed)
            .map(|(part, _)| (part, AuditOutcome::Succeeded, None))
            .collect(),
            Err(_) => vec![(
                "config",
                AuditOutcome::Failed,
                Some(ErrorCode::ValidationFailed.as_str().to_string()),
            )],
        };
        if records.is_empty() {
            return;
        }
        let server = self.nestor().acting_as(Actor::new("server", vec![]));
        tokio::spawn(async move {
            for (subject, outcome, error) in records {
                server
                    .record_write("config.reload", subject, outcome, error)
                    .await;
            }
        });
    }

    /// Reloads from `source` on SIGHUP, and whenever the file's content
    /// changes (re-read every `interval`; `None` watches signals only),
    /// until the server shuts down.
    pub fn watch_config(
        &self,
        source: ConfigSource,
        interval: Option<Duration>,
    ) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        let mut stopping = self.inner.shutdown_tx.subscribe();
        // Installed now, not in the task: from here on SIGHUP no longer
        // ends the process (its default) but reloads.
        let mut hup = hangups();
        tokio::spawn(async move {
            let watched = interval.and(source.watched());
            let mut seen = watched.as_deref().map(fingerprint);
            let mut ticker = tokio::time::interval(interval.unwrap_or(Duration::from_secs(3600)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = stopping.changed() => break,
                    Some(()) = next_hangup(&mut hup) => {
                        tracing::info!("SIGHUP: reloading the configuration");
                        seen = watched.as_deref().map(fingerprint);
                        let _ = state.reload(&source);
                    }
                    _ = ticker.tick() => {
                        let Some(path) = &watched else { continue };
                        let now = Some(fingerprint(path));
                        if now != seen {
                            seen = now;
                            tracing::info!(file = %path.display(), "the configuration file changed: reloading");
                            let _ = state.reload(&source);
                        }
                    }
                }
            }
        })
    }
}

/// The SHA-256 of what `path` (followed through symlinks) holds now, or
/// `None` while it cannot be read (a refused reload says why).
fn fingerprint(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|b| Sha256::digest(&b).into())
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

/// The SIGHUP stream (none off Unix, or if it cannot be installed).
fn hangups() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup())
            .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP: reload by editing the file"))
            .ok()
    }
    #[cfg(not(unix))]
    None
}

/// The next SIGHUP; pending forever when there is no stream.
async fn next_hangup(hup: &mut Hangups) -> Option<()> {
    #[cfg(unix)]
    if let Some(s) = hup {
        return s.recv().await;
    }
    let _ = hup;
    std::future::pending().await
}

/// The keys outside the reloadable parts whose values differ, as
/// `server.listen`, `storage`…: each needs a restart to take effect.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let strip = |c: &Config| {
        let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
        v["auth"] = Value::Null;
        v["catalog"]["sources"] = Value::Null;
        v["server"]["rate_limits"] = Value::Null;
        v
    };
    let (old, new) = (strip(old), strip(new));
    let mut keys = Vec::new();
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return keys;
    };
    for (key, value) in n {
        if o.get(key) == Some(value) {
            continue;
        }
        match (o.get(key).and_then(Value::as_object), value.as_object()) {
            // One level down for the sections that mix the two kinds.
            (Some(os), Some(ns)) if key == "server" || key == "catalog" => {
                for (sub, v) in ns {
                    if os.get(sub) != Some(v) {
                        keys.push(format!("{key}.{sub}"));
                    }
                }
            }
            _ => keys.push(key.clone()),
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_settings_that_do_not_reload_need_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        new.auth.anonymous_read = !new.auth.anonymous_read;
        new.server.rate_limits = Some(Default::default());
        new.catalog
            .sources
            .push(nestor_core::SourceConfig::new("a", "/tmp/a"));
        assert!(needs_restart(&old, &new).is_empty());
        new.server.listen = "127.0.0.1:9".into();
        new.sse.heartbeat = "3s".into();
        assert_eq!(needs_restart(&old, &new), ["server.listen", "sse"]);
    }

    #[test]
    fn a_report_says_what_changed() {
        let report = ReloadReport {
            auth: true,
            sources: SourceChanges {
                added: vec!["a".into()],
                removed: vec!["b".into(), "c".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            report.to_string(),
            "auth; catalog.sources added: a; catalog.sources removed: b, c"
        );
        assert_eq!(
            ReloadReport::default().to_string(),
            "nothing that reloads changed"
        );
    }
}
