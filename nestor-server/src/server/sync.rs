//! Catalog syncs in the background (docs/src/platform/git-sources.md): one runner per source with
//! coalescing (triggers during a running sync become one follow-up), a
//! poller per source at its `poll_interval`, `POST /api/v1/sync`, and the
//! git webhook (`webhook`: how each provider signs, and which sources a
//! push is for).
//!
//! A configuration reload hands the manager the new `catalog.sources`
//! ([`SyncManager::reconcile`]): added sources start syncing and polling,
//! removed ones stop, changed ones restart, unchanged ones go on untouched.
//! Sources added ad hoc (`serve --catalog`) are not the file's and stay.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use nestor_core::{Actor, AuditOutcome, CatalogSource, Error, Nestor, SourceConfig, SyncReport};
use serde_json::json;

use super::audit::Acting;
use super::auth::Caller;
use super::error::ApiResult;
use super::events::EventHub;
use super::extract::Query;
use super::metrics::Metrics;
use super::AppState;

mod webhook;
pub use webhook::hmac_sha256_hex;
pub(super) use webhook::{__path_webhook, webhook};

/// One source and its runner state.
struct Entry {
    /// The source (a git clone or a folder), opened once; replaced in
    /// place when a reload changes its settings, so a sync running then
    /// coalesces with the restart instead of racing it on the same clone.
    source: Mutex<Arc<dyn CatalogSource>>,
    /// Whether a sync runs, and whether another was asked for meanwhile.
    state: Mutex<RunState>,
    /// Whether it comes from `catalog.sources` (a reload may change or
    /// remove it) rather than being added ad hoc (`serve --catalog`).
    configured: bool,
}

impl Entry {
    fn new(source: Arc<dyn CatalogSource>, configured: bool) -> Arc<Entry> {
        Arc::new(Entry {
            source: Mutex::new(source),
            state: Mutex::new(RunState::default()),
            configured,
        })
    }

    fn source(&self) -> Arc<dyn CatalogSource> {
        self.source.lock().unwrap().clone()
    }
}

/// What a new `catalog.sources` changed, by source name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceChanges {
    /// New sources: synced at once, then polled.
    pub added: Vec<String>,
    /// Sources whose settings changed: synced again at once, polled at
    /// their new interval.
    pub changed: Vec<String>,
    /// Sources no longer configured: no more syncs or polls (what they
    /// published stays in the catalog).
    pub removed: Vec<String>,
}

impl SourceChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

#[derive(Default)]
struct RunState {
    running: bool,
    again: bool,
}

/// Runs syncs in the background, one at a time per source.
#[derive(Clone)]
pub struct SyncManager {
    inner: Arc<ManagerInner>,
}

struct ManagerInner {
    /// Runs each sync (definitions and compositions).
    nestor: Nestor,
    /// Where git sources are cloned.
    cache_dir: PathBuf,
    /// Sources by name.
    sources: Mutex<BTreeMap<String, Arc<Entry>>>,
    metrics: Arc<Metrics>,
    /// Woken after each sync so its events reach SSE at once.
    events: EventHub,
    /// Poller tasks by source, aborted on shutdown or when a reload
    /// removes or changes their source.
    pollers: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    /// Set by [`SyncManager::start_pollers`]: sources a reload adds get a
    /// poller of their own from then on.
    polling: AtomicBool,
}

impl SyncManager {
    pub(super) fn new(
        nestor: Nestor,
        cache_dir: PathBuf,
        metrics: Arc<Metrics>,
        events: EventHub,
        sources: &[SourceConfig],
    ) -> SyncManager {
        let manager = SyncManager {
            inner: Arc::new(ManagerInner {
                // Pollers, start-up and background syncs: the server's own work.
                nestor: nestor.acting_as(Actor::new("server", vec![])),
                cache_dir,
                sources: Mutex::new(BTreeMap::new()),
                metrics,
                events,
                pollers: Mutex::new(BTreeMap::new()),
                polling: AtomicBool::new(false),
            }),
        };
        for s in sources {
            let entry = Entry::new(manager.open(s), true);
            manager
                .inner
                .sources
                .lock()
                .unwrap()
                .insert(s.name.clone(), entry);
        }
        manager
    }

    fn open(&self, config: &SourceConfig) -> Arc<dyn CatalogSource> {
        Arc::from(nestor_storage::open_source(
            config.clone(),
            &self.inner.cache_dir,
        ))
    }

    /// Adds (or replaces) a source ad hoc: it is not `catalog.sources`'s,
    /// so a configuration reload leaves it alone.
    pub fn add(&self, config: SourceConfig) {
        let entry = Entry::new(self.open(&config), false);
        self.inner
            .sources
            .lock()
            .unwrap()
            .insert(config.name, entry);
    }

    /// Refuses a new `catalog.sources` that names a source added ad hoc
    /// (`serve --catalog`): two sources by one name cannot both sync.
    pub(super) fn check(&self, wanted: &[SourceConfig]) -> anyhow::Result<()> {
        let sources = self.inner.sources.lock().unwrap();
        for w in wanted {
            if sources.get(&w.name).is_some_and(|e| !e.configured) {
                anyhow::bail!(
                    "catalog.sources: {:?} is also the name of a `serve --catalog` source; rename one",
                    w.name
                );
            }
        }
        Ok(())
    }

    /// Makes the configured sources `wanted` (already [`SyncManager::check`]ed):
    /// starts, restarts and stops syncs and pollers for what changed.
    pub(super) fn reconcile(&self, wanted: &[SourceConfig]) -> SourceChanges {
        let mut changes = SourceChanges::default();
        {
            let mut sources = self.inner.sources.lock().unwrap();
            let gone: Vec<String> = sources
                .iter()
                .filter(|(name, e)| e.configured && !wanted.iter().any(|w| &w.name == *name))
                .map(|(name, _)| name.clone())
                .collect();
            for name in gone {
                sources.remove(&name);
                if let Some(poller) = self.inner.pollers.lock().unwrap().remove(&name) {
                    poller.abort();
                }
                changes.removed.push(name);
            }
            for w in wanted {
                match sources.get(&w.name) {
                    Some(e) if e.source().config() == w => continue,
                    Some(e) => {
                        *e.source.lock().unwrap() = self.open(w);
                        changes.changed.push(w.name.clone());
                    }
                    None => {
                        sources.insert(w.name.clone(), Entry::new(self.open(w), true));
                        changes.added.push(w.name.clone());
                    }
                }
                if self.inner.polling.load(Ordering::Relaxed) {
                    self.start_poller(w.clone());
                }
            }
        }
        for name in changes.added.iter().chain(&changes.changed) {
            self.trigger(name);
        }
        changes
    }

    /// The source names.
    pub fn names(&self) -> Vec<String> {
        self.inner.sources.lock().unwrap().keys().cloned().collect()
    }

    fn configs(&self) -> Vec<SourceConfig> {
        self.inner
            .sources
            .lock()
            .unwrap()
            .values()
            .map(|e| e.source().config().clone())
            .collect()
    }

    /// Syncs one source now and waits for it (start-up). Coalesces with a
    /// running sync like any trigger would not: it simply runs.
    pub async fn sync_now(&self, name: &str) -> nestor_core::Result<SyncReport> {
        self.sync_now_as(name, &self.inner.nestor).await
    }

    /// [`SyncManager::sync_now`] through `nestor` (a facade acting for the
    /// caller who asked, so the sync is audited under their name).
    pub(super) async fn sync_now_as(
        &self,
        name: &str,
        nestor: &Nestor,
    ) -> nestor_core::Result<SyncReport> {
        let entry = self
            .entry(name)
            .ok_or_else(|| Error::no_source(name, &self.names()))?;
        self.run_once(name, &entry, nestor).await
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        self.inner.sources.lock().unwrap().get(name).cloned()
    }

    async fn run_once(
        &self,
        name: &str,
        entry: &Entry,
        nestor: &Nestor,
    ) -> nestor_core::Result<SyncReport> {
        let started = Instant::now();
        let result = nestor.sync(entry.source().as_ref()).await;
        self.inner.metrics.observe_sync(name, started.elapsed());
        self.inner.events.wake();
        match &result {
            Ok(r) => tracing::info!(
                source = name,
                published = r.published.len(),
                yanked = r.yanked.len(),
                errors = r.errors.len(),
                ms = r.duration_ms,
                "synced"
            ),
            Err(e) => tracing::warn!(source = name, error = %e, "sync failed"),
        }
        result
    }

    /// Asks for a background sync of `name`. Returns `false` for an unknown
    /// source. A trigger during a running sync makes exactly one more run.
    pub fn trigger(&self, name: &str) -> bool {
        let Some(entry) = self.entry(name) else {
            return false;
        };
        {
            let mut st = entry.state.lock().unwrap();
            if st.running {
                st.again = true;
                return true;
            }
            st.running = true;
        }
        let manager = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                let _ = manager.run_once(&name, &entry, &manager.inner.nestor).await;
                let mut st = entry.state.lock().unwrap();
                if st.again {
                    st.again = false;
                } else {
                    st.running = false;
                    break;
                }
            }
        });
        true
    }

    /// Starts one poller per source at its `poll_interval`.
    pub fn start_pollers(&self) {
        self.inner.polling.store(true, Ordering::Relaxed);
        for config in self.configs() {
            self.start_poller(config);
        }
    }

    /// Starts the poller of one source, replacing the one it had.
    fn start_poller(&self, config: SourceConfig) {
        let manager = self.clone();
        let name = config.name.clone();
        let interval = config.poll_interval.max(Duration::from_secs(1));
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                manager.trigger(&config.name);
            }
        });
        if let Some(old) = self.inner.pollers.lock().unwrap().insert(name, handle) {
            old.abort();
        }
    }

    /// Stops the pollers.
    pub fn stop(&self) {
        self.inner.polling.store(false, Ordering::Relaxed);
        for (_, handle) in std::mem::take(&mut *self.inner.pollers.lock().unwrap()) {
            handle.abort();
        }
    }
}

/// `POST /api/v1/sync?source=NAME` (platform role): 202, the sync runs in
/// the background. Without `source`, every source. With `source` and
/// `wait=true`, the sync runs before the answer: 200 with its report.
#[utoipa::path(post, path = "/api/v1/sync", params(("source" = Option<String>, Query, description = "a configured source's name (default: every source)"), ("wait" = Option<bool>, Query, description = "true: sync before answering (needs `source`)")),
    responses((status = 202, description = "{accepted: [names]}"), (status = 200, description = "the sync report (wait=true)"),
              (status = 400, description = "`wait` other than true or false, or `wait=true` without `source` (BAD_REQUEST)"),
              (status = 404, description = "no source of that name (NOT_FOUND)")))]
pub(super) async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    acting: Acting,
    query: Query,
) -> ApiResult<Response> {
    caller.write_catalog()?;
    query.allow(&["source", "wait"])?;
    let wait = match query.get("wait") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Error::bad_request(format!("wait={other:?}: use true or false")).into())
        }
    };
    if wait {
        let name = query
            .get("source")
            .ok_or_else(|| Error::bad_request("wait=true needs source=NAME"))?;
        if !state.syncs().names().iter().any(|n| n == name) {
            return Err(Error::no_source(name, &state.syncs().names()).into());
        }
        let report = state.syncs().sync_now_as(name, &acting.nestor).await?;
        return Ok(Json(report).into_response());
    }
    let names = match query.get("source") {
        Some(name) => vec![name.to_string()],
        None => state.syncs().names(),
    };
    for name in &names {
        if !state.syncs().trigger(name) {
            return Err(Error::no_source(name, &state.syncs().names()).into());
        }
        acting
            .nestor
            .record_write("catalog.trigger", name, AuditOutcome::Succeeded, None)
            .await;
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": names}))).into_response())
}
