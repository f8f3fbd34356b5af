//! Catalog syncs in the background (SPEC §3): one runner per source with
//! coalescing (triggers during a running sync become one follow-up), a
//! poller per source at its `poll_interval`, `POST /api/v1/sync`, and the
//! git webhook with GitHub (`X-Hub-Signature-256`) and GitLab
//! (`X-Gitlab-Token`) verification.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nestor_core::{CatalogSource, Error, SourceConfig, SyncReport, SyncService};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::error::ApiResult;
use super::events::EventHub;
use super::extract::{Payload, Query};
use super::metrics::Metrics;
use super::AppState;

/// One source and its runner state.
struct Entry {
    /// The source (a git clone or a folder), opened once.
    source: Arc<dyn CatalogSource>,
    /// Whether a sync runs, and whether another was asked for meanwhile.
    state: Mutex<RunState>,
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
    service: SyncService,
    /// Where git sources are cloned.
    cache_dir: PathBuf,
    /// Sources by name.
    sources: Mutex<BTreeMap<String, Arc<Entry>>>,
    metrics: Arc<Metrics>,
    /// Woken after each sync so its events reach SSE at once.
    events: EventHub,
    /// Poller tasks, aborted on shutdown.
    pollers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl SyncManager {
    pub(super) fn new(
        service: SyncService,
        cache_dir: PathBuf,
        metrics: Arc<Metrics>,
        events: EventHub,
        sources: &[SourceConfig],
    ) -> SyncManager {
        let manager = SyncManager {
            inner: Arc::new(ManagerInner {
                service,
                cache_dir,
                sources: Mutex::new(BTreeMap::new()),
                metrics,
                events,
                pollers: Mutex::new(Vec::new()),
            }),
        };
        for s in sources {
            manager.add(s.clone());
        }
        manager
    }

    /// Adds (or replaces) a source.
    pub fn add(&self, config: SourceConfig) {
        let source: Arc<dyn CatalogSource> = Arc::from(nestor_storage::open_source(
            config.clone(),
            &self.inner.cache_dir,
        ));
        let entry = Arc::new(Entry {
            source,
            state: Mutex::new(RunState::default()),
        });
        self.inner
            .sources
            .lock()
            .unwrap()
            .insert(config.name, entry);
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
            .map(|e| e.source.config().clone())
            .collect()
    }

    /// Syncs one source now and waits for it (start-up). Coalesces with a
    /// running sync like any trigger would not: it simply runs.
    pub async fn sync_now(&self, name: &str) -> nestor_core::Result<SyncReport> {
        let entry = self
            .entry(name)
            .ok_or_else(|| Error::bad_request(format!("no source named {name:?}")))?;
        self.run_once(name, &entry).await
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        self.inner.sources.lock().unwrap().get(name).cloned()
    }

    async fn run_once(&self, name: &str, entry: &Entry) -> nestor_core::Result<SyncReport> {
        let started = Instant::now();
        let result = self.inner.service.sync(entry.source.as_ref()).await;
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
                let _ = manager.run_once(&name, &entry).await;
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
        for config in self.configs() {
            let manager = self.clone();
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
            self.inner.pollers.lock().unwrap().push(handle);
        }
    }

    /// Stops the pollers.
    pub fn stop(&self) {
        for handle in self.inner.pollers.lock().unwrap().drain(..) {
            handle.abort();
        }
    }
}

/// `POST /api/v1/sync?source=NAME` (platform role): 202, the sync runs in
/// the background. Without `source`, every source. With `source` and
/// `wait=true`, the sync runs before the answer: 200 with its report.
#[utoipa::path(post, path = "/api/v1/sync", params(("source" = Option<String>, Query), ("wait" = Option<bool>, Query)),
    responses((status = 202, description = "{accepted: [names]}"), (status = 200, description = "the sync report (wait=true)"),
              (status = 400, description = "unknown source")))]
pub(super) async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
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
            return Err(Error::bad_request(format!(
                "no source named {name:?} (known: {})",
                state.syncs().names().join(", ")
            ))
            .into());
        }
        let report = state.syncs().sync_now(name).await?;
        return Ok(Json(report).into_response());
    }
    let names = match query.get("source") {
        Some(name) => vec![name.to_string()],
        None => state.syncs().names(),
    };
    for name in &names {
        if !state.syncs().trigger(name) {
            return Err(Error::bad_request(format!(
                "no source named {name:?} (known: {})",
                state.syncs().names().join(", ")
            ))
            .into());
        }
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": names}))).into_response())
}

/// HMAC-SHA256 (RFC 2104) over `sha2`: eight lines do not justify a crate.
pub(super) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Hex HMAC-SHA256 of `message`: what GitHub sends after `sha256=` in
/// `X-Hub-Signature-256` (handy for clients and tests).
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    hex::encode(hmac_sha256(key, message))
}

/// Compares in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the call carries a valid signature for `secret`.
fn signed(headers: &HeaderMap, body: &[u8], secret: &str) -> bool {
    if let Some(sig) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
    {
        let Some(hex_sig) = sig.trim().strip_prefix("sha256=") else {
            return false;
        };
        let Ok(given) = hex::decode(hex_sig) else {
            return false;
        };
        return constant_time_eq(&given, &hmac_sha256(secret.as_bytes(), body));
    }
    if let Some(token) = headers.get("x-gitlab-token").and_then(|v| v.to_str().ok()) {
        // Hash both sides so the comparison length does not leak the secret's.
        return constant_time_eq(
            &Sha256::digest(token.as_bytes()),
            &Sha256::digest(secret.as_bytes()),
        );
    }
    false
}

/// A repository URL reduced to host and path, so `https://h/o/r.git`,
/// `git@h:o/r` and `ssh://git@h/o/r` compare equal.
fn normalize_url(url: &str) -> String {
    let mut u = url.trim().to_ascii_lowercase();
    for scheme in ["https://", "http://", "ssh://", "git://", "file://"] {
        if let Some(rest) = u.strip_prefix(scheme) {
            u = rest.to_string();
        }
    }
    if let Some((user, rest)) = u.split_once('@') {
        if !user.contains('/') {
            u = rest.to_string();
        }
    }
    if !u.starts_with('/') {
        if let Some((host, path)) = u.split_once(':') {
            if !path.starts_with("//") && !host.contains('/') {
                u = format!(
                    "{host}/{}",
                    path.trim_start_matches(|c: char| c.is_ascii_digit())
                        .trim_start_matches('/')
                );
            }
        }
    }
    u.trim_end_matches('/')
        .trim_end_matches(".git")
        .trim_end_matches('/')
        .to_string()
}

/// Every repository URL a GitHub or GitLab payload names.
fn payload_urls(payload: &Value) -> Vec<String> {
    let mut urls = Vec::new();
    for base in ["/repository", "/project"] {
        for key in [
            "clone_url",
            "html_url",
            "ssh_url",
            "git_url",
            "url",
            "git_http_url",
            "git_ssh_url",
            "web_url",
            "http_url",
            "homepage",
        ] {
            if let Some(u) = payload
                .pointer(&format!("{base}/{key}"))
                .and_then(Value::as_str)
            {
                urls.push(normalize_url(u));
            }
        }
    }
    urls
}

/// `POST /webhooks/git`: verifies, answers 202 at once, syncs in the
/// background. A source with a secret refuses unsigned or mis-signed calls
/// with 401 and nothing is synced.
#[utoipa::path(post, path = "/webhooks/git", params(("source" = Option<String>, Query), ("X-Hub-Signature-256" = Option<String>, Header), ("X-Gitlab-Token" = Option<String>, Header)),
    request_body(content = Object, description = "a GitHub or GitLab push payload"),
    responses((status = 202, description = "{accepted: [sources]}"), (status = 401, description = "UNAUTHORIZED: missing or wrong signature"), (status = 404, description = "no source matches")))]
pub(super) async fn webhook(
    State(state): State<AppState>,
    query: Query,
    headers: HeaderMap,
    payload: Payload,
) -> ApiResult<Response> {
    query.allow(&["source"])?;
    let body: Value = if payload.bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&payload.bytes)
            .map_err(|e| Error::bad_request(format!("invalid JSON payload: {e}")))?
    };
    let configs = state.syncs().configs();
    let matched: Vec<&SourceConfig> = match query.get("source") {
        Some(name) => configs.iter().filter(|c| c.name == name).collect(),
        None => {
            let urls = payload_urls(&body);
            configs
                .iter()
                .filter(|c| urls.contains(&normalize_url(&c.url)))
                .collect()
        }
    };
    if matched.is_empty() {
        return Err(nestor_api_not_found());
    }
    // Every matched source with a secret must accept the signature; else nothing syncs.
    for c in &matched {
        if let Some(secret) = c.webhook_secret.as_deref().filter(|s| !s.is_empty()) {
            if !signed(&headers, &payload.bytes, secret) {
                tracing::warn!(source = %c.name, "webhook refused: missing or wrong signature");
                return Err(Error::Unauthorized {
                    message: "missing or wrong webhook signature".into(),
                }
                .into());
            }
        }
    }
    let branch = body
        .get("ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("refs/heads/"));
    let mut accepted = Vec::new();
    let mut ignored = Vec::new();
    for c in matched {
        if branch.is_some_and(|b| b != c.branch) {
            ignored.push(c.name.clone());
        } else if state.syncs().trigger(&c.name) {
            accepted.push(c.name.clone());
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"accepted": accepted, "ignored_other_branch": ignored})),
    )
        .into_response())
}

fn nestor_api_not_found() -> super::error::ApiError {
    super::error::ApiError::with_status(
        StatusCode::NOT_FOUND,
        Error::bad_request("no catalog source matches this repository; add ?source=NAME"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaau8; 131];
        assert_eq!(
            hex::encode(hmac_sha256(
                &long_key,
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn urls_compare_by_host_and_path() {
        let a = normalize_url("https://github.com/Acme/catalog.git");
        assert_eq!(a, normalize_url("git@github.com:acme/catalog"));
        assert_eq!(a, normalize_url("ssh://git@github.com/acme/catalog/"));
        assert_eq!(normalize_url("/tmp/x/repo"), "/tmp/x/repo");
    }
}
