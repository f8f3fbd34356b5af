//! A small hand-written Prometheus registry (SPEC §13): a few counters,
//! gauges and histograms behind mutexes, rendered as text at `/metrics`.
//! Small enough that a metrics crate would cost more than it saves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use nestor_core::{Engine, EngineInfo, EngineProvider, Nestor, RenderOutput, RenderRequest};
use nestor_engines::EngineRegistry;

use super::AppState;

/// Latency buckets (seconds) shared by every histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How long a computed catalog version count is reused.
const COUNT_TTL: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Cumulative per bucket, as Prometheus expects.
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}",
                self.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Every metric of the server.
#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → request latency.
    durations: Mutex<BTreeMap<String, Histogram>>,
    /// source → sync duration.
    syncs: Mutex<BTreeMap<String, Histogram>>,
    /// Connected SSE clients.
    sse: AtomicI64,
    /// Final deployment status → count.
    deployments: Mutex<BTreeMap<String, u64>>,
    /// Deployments this replica took over from a runner that stopped.
    taken_over: AtomicI64,
    /// engine → render latency.
    renders: Mutex<BTreeMap<String, Histogram>>,
    /// The last catalog version count and when it was taken.
    versions: Mutex<Option<(Instant, u64)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sse", &self.sse)
            .finish_non_exhaustive()
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The method as a label: the standard methods by name, anything else
/// (a client can send any token, 50 KB long) as `other`, so request data
/// never makes a new series (issue 11).
pub(super) fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// The status as a label: a status the server answers, else its class.
fn status_label(status: u16) -> u16 {
    if (100..600).contains(&status) {
        status
    } else {
        0
    }
}

impl Metrics {
    /// Counts a served request. `route` is a route template (or
    /// `unmatched`), never the path a client sent.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((
                route.to_string(),
                method_label(method).to_string(),
                status_label(status),
            ))
            .or_default() += 1;
        self.durations
            .lock()
            .unwrap()
            .entry(route.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Records one sync's duration.
    pub fn observe_sync(&self, source: &str, elapsed: Duration) {
        self.syncs
            .lock()
            .unwrap()
            .entry(source.to_string())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a finished deployment by status.
    pub fn deployment_finished(&self, status: &str) {
        *self
            .deployments
            .lock()
            .unwrap()
            .entry(status.to_string())
            .or_default() += 1;
    }

    /// Counts a deployment taken over from a runner that stopped.
    pub(super) fn deployment_taken_over(&self) {
        self.taken_over.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn sse_connected(&self) {
        self.sse.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn sse_disconnected(&self) {
        self.sse.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connected SSE clients.
    pub fn sse_connections(&self) -> i64 {
        self.sse.load(Ordering::Relaxed)
    }

    /// The number of published versions, recounted when the last count
    /// is older than 15 s (a count lists every name); `None` when the
    /// store has not answered yet.
    pub async fn catalog_versions(&self, nestor: &Nestor) -> Option<u64> {
        let fresh = *self.versions.lock().unwrap();
        if let Some((at, n)) = fresh {
            if at.elapsed() < COUNT_TTL {
                return Some(n);
            }
        }
        match nestor.version_count().await {
            Ok(n) => {
                *self.versions.lock().unwrap() = Some((Instant::now(), n));
                Some(n)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot count the catalog's versions");
                fresh.map(|(_, n)| n)
            }
        }
    }

    fn render_text(&self, versions: Option<u64>) -> String {
        let mut out = String::new();
        out.push_str("# HELP nestor_http_requests_total HTTP requests served.\n# TYPE nestor_http_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(out, "nestor_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}", escape(route));
        }
        out.push_str("# HELP nestor_http_request_duration_seconds HTTP request latency.\n# TYPE nestor_http_request_duration_seconds histogram\n");
        for (route, h) in self.durations.lock().unwrap().iter() {
            h.render(
                &mut out,
                "nestor_http_request_duration_seconds",
                &format!("route=\"{}\"", escape(route)),
            );
        }
        out.push_str("# HELP nestor_catalog_versions Published definition versions.\n# TYPE nestor_catalog_versions gauge\n");
        let _ = writeln!(out, "nestor_catalog_versions {}", versions.unwrap_or(0));
        out.push_str("# HELP nestor_sync_duration_seconds Catalog source sync duration.\n# TYPE nestor_sync_duration_seconds histogram\n");
        for (source, h) in self.syncs.lock().unwrap().iter() {
            h.render(
                &mut out,
                "nestor_sync_duration_seconds",
                &format!("source=\"{}\"", escape(source)),
            );
        }
        out.push_str("# HELP nestor_sse_connections Connected event-stream clients.\n# TYPE nestor_sse_connections gauge\n");
        let _ = writeln!(out, "nestor_sse_connections {}", self.sse_connections());
        out.push_str("# HELP nestor_deployments_total Finished deployments by status.\n# TYPE nestor_deployments_total counter\n");
        for (status, n) in self.deployments.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "nestor_deployments_total{{status=\"{}\"}} {n}",
                escape(status)
            );
        }
        let _ = writeln!(
            out,
            "# HELP nestor_deployments_taken_over_total Deployments this replica resumed after their runner stopped.\n# TYPE nestor_deployments_taken_over_total counter\nnestor_deployments_taken_over_total {}",
            self.taken_over.load(Ordering::Relaxed)
        );
        out.push_str("# HELP nestor_engine_render_seconds Engine render duration.\n# TYPE nestor_engine_render_seconds histogram\n");
        for (engine, h) in self.renders.lock().unwrap().iter() {
            h.render(
                &mut out,
                "nestor_engine_render_seconds",
                &format!("engine=\"{}\"", escape(engine)),
            );
        }
        out
    }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
pub(super) async fn render(State(state): State<AppState>) -> Response {
    let metrics = state.metrics().clone();
    let versions = metrics.catalog_versions(state.nestor()).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render_text(versions),
    )
        .into_response()
}

/// The engine registry with render timing.
pub(super) struct MeteredEngines {
    registry: Arc<EngineRegistry>,
    metrics: Arc<Metrics>,
}

impl MeteredEngines {
    pub(super) fn new(registry: Arc<EngineRegistry>, metrics: Arc<Metrics>) -> Self {
        MeteredEngines { registry, metrics }
    }
}

impl EngineProvider for MeteredEngines {
    fn engine(&self, name: &str) -> Option<Arc<dyn Engine>> {
        let inner = self.registry.engine(name)?;
        Some(Arc::new(MeteredEngine {
            name: name.to_string(),
            inner,
            metrics: self.metrics.clone(),
        }))
    }

    fn engine_names(&self) -> Vec<String> {
        self.registry.engine_names()
    }
}

struct MeteredEngine {
    name: String,
    inner: Arc<dyn Engine>,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl Engine for MeteredEngine {
    fn info(&self) -> EngineInfo {
        self.inner.info()
    }

    async fn render(&self, request: &RenderRequest) -> nestor_core::Result<RenderOutput> {
        let started = Instant::now();
        let result = self.inner.render(request).await;
        self.metrics
            .renders
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default()
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn validate_config(
        &self,
        definition: &nestor_core::ResourceDefinition,
        config: &serde_json::Value,
    ) -> nestor_core::Result<Vec<nestor_core::FieldError>> {
        self.inner.validate_config(definition, config).await
    }
}
