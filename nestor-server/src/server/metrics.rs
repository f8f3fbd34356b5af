//! The server's Prometheus metrics (docs/src/reference/metrics.md), kept in a
//! [`prometheus_client`] registry and served at `/metrics`: the Prometheus
//! text format (0.0.4) by default, OpenMetrics when the scraper asks for it
//! (`Accept: application/openmetrics-text`, as Prometheus does).
//!
//! Every label value comes from a bounded set, never from request data as
//! sent (issue 11): `route` is a route template or `unmatched`, `method` a
//! standard method or `other`, `status` the answered status; `source` a
//! configured source, `engine` a loaded engine, `status` of a deployment
//! one of its states.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use nestor_core::{Engine, EngineInfo, EngineProvider, Nestor, RenderOutput, RenderRequest};
use nestor_engines::EngineRegistry;
use prometheus_client::encoding::{prometheus_text, text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::error::ApiError;
use super::AppState;

/// Latency buckets (seconds) shared by every histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// How long a computed catalog version count is reused.
const COUNT_TTL: Duration = Duration::from_secs(15);

/// The OpenMetrics media type a scraper names in `Accept` to get it.
const OPENMETRICS: &str = "application/openmetrics-text";

fn latency() -> Histogram {
    Histogram::new(BUCKETS)
}

/// A histogram per label set, each with [`BUCKETS`].
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EngineLabel {
    engine: String,
}

/// Every metric of the server, and the registry that encodes them.
pub struct Metrics {
    /// What `/metrics` encodes; holds a handle to each metric below.
    registry: Registry,
    /// `nestor_http_requests_total{route,method,status}`.
    requests: Family<RequestLabels, Counter>,
    /// `nestor_http_request_duration_seconds{route}`.
    durations: Histograms<RouteLabel>,
    /// `nestor_catalog_versions`, set from the count at each scrape.
    versions_gauge: Gauge,
    /// `nestor_sync_duration_seconds{source}`.
    syncs: Histograms<SourceLabel>,
    /// `nestor_sse_connections`.
    sse: Gauge,
    /// `nestor_deployments_total{status}`: finished deployments.
    deployments: Family<StatusLabel, Counter>,
    /// `nestor_deployments_taken_over_total`: resumed after their runner stopped.
    taken_over: Counter,
    /// `nestor_engine_render_seconds{engine}`.
    renders: Histograms<EngineLabel>,
    /// `nestor_config_reloads_total{outcome}`: `applied` or `refused`.
    reloads: Family<OutcomeLabel, Counter>,
    /// The last catalog version count and when it was taken (a count
    /// lists every name, so scrapes and `/status` share one for a while).
    versions: Mutex<Option<(Instant, u64)>>,
    /// Each route's series, resolved once (see [`RouteMetrics`]).
    routes: RwLock<HashMap<String, Arc<RouteMetrics>>>,
}

/// The request series of one route, resolved once and kept, so serving a
/// request neither allocates label values nor hashes them into the
/// families: its duration histogram, and its counters by method and status
/// (a handful per route), found by a scan of a short list. They are the
/// families' own series (a metric handle shares its value), so `/metrics`
/// encodes them as before.
pub(super) struct RouteMetrics {
    route: String,
    duration: Histogram,
    counters: RwLock<Vec<(&'static str, u16, Counter)>>,
    /// The family the counters belong to, for a method and status not seen yet.
    family: Family<RequestLabels, Counter>,
}

impl RouteMetrics {
    /// The route template (or `unmatched`).
    pub(super) fn route(&self) -> &str {
        &self.route
    }

    /// Counts one answered request and its latency.
    pub(super) fn observe(&self, method: &'static str, status: u16, elapsed: Duration) {
        let status = status_label(status);
        self.duration.observe(elapsed.as_secs_f64());
        let found = self
            .counters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(m, s, _)| *m == method && *s == status)
            .map(|(_, _, c)| c.inc())
            .is_some();
        if !found {
            let counter = self
                .family
                .get_or_create(&RequestLabels {
                    route: self.route.clone(),
                    method,
                    status,
                })
                .clone();
            counter.inc();
            let mut counters = self.counters.write().unwrap_or_else(|p| p.into_inner());
            if !counters
                .iter()
                .any(|(m, s, _)| *m == method && *s == status)
            {
                counters.push((method, status, counter));
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: Histograms<RouteLabel> = Family::new_with_constructor(latency);
        let versions_gauge = Gauge::default();
        let syncs: Histograms<SourceLabel> = Family::new_with_constructor(latency);
        let sse = Gauge::default();
        let deployments = Family::<StatusLabel, Counter>::default();
        let taken_over = Counter::default();
        let renders: Histograms<EngineLabel> = Family::new_with_constructor(latency);
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "nestor_http_requests",
            "HTTP requests served",
            requests.clone(),
        );
        registry.register(
            "nestor_http_request_duration_seconds",
            "HTTP request latency",
            durations.clone(),
        );
        registry.register(
            "nestor_catalog_versions",
            "Published definition versions",
            versions_gauge.clone(),
        );
        registry.register(
            "nestor_sync_duration_seconds",
            "Catalog source sync duration",
            syncs.clone(),
        );
        registry.register(
            "nestor_sse_connections",
            "Connected event-stream clients",
            sse.clone(),
        );
        registry.register(
            "nestor_deployments",
            "Finished deployments by status",
            deployments.clone(),
        );
        registry.register(
            "nestor_deployments_taken_over",
            "Deployments this replica resumed after their runner stopped",
            taken_over.clone(),
        );
        registry.register(
            "nestor_engine_render_seconds",
            "Engine render duration",
            renders.clone(),
        );
        registry.register(
            "nestor_config_reloads",
            "Configuration reloads (SIGHUP or file change) by outcome",
            reloads.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            versions_gauge,
            syncs,
            sse,
            deployments,
            taken_over,
            renders,
            reloads,
            versions: Mutex::new(None),
            routes: RwLock::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sse", &self.sse.get())
            .finish_non_exhaustive()
    }
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

/// The status as a label: a status the server answers, else 0.
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
        self.route(route)
            .observe(method_label(method), status, elapsed);
    }

    /// The series of `route` (a route template or `unmatched`).
    pub(super) fn route(&self, route: &str) -> Arc<RouteMetrics> {
        if let Some(r) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
        {
            return r.clone();
        }
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        routes
            .entry(route.to_string())
            .or_insert_with(|| {
                Arc::new(RouteMetrics {
                    route: route.to_string(),
                    duration: self
                        .durations
                        .get_or_create(&RouteLabel {
                            route: route.to_string(),
                        })
                        .clone(),
                    counters: RwLock::new(Vec::new()),
                    family: self.requests.clone(),
                })
            })
            .clone()
    }

    /// Records one sync's duration.
    pub fn observe_sync(&self, source: &str, elapsed: Duration) {
        self.syncs
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a finished deployment by status.
    pub fn deployment_finished(&self, status: &str) {
        self.deployments
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
    }

    /// Counts a deployment taken over from a runner that stopped.
    pub(super) fn deployment_taken_over(&self) {
        self.taken_over.inc();
    }

    /// Counts a configuration reload, applied or refused.
    pub(super) fn config_reload(&self, applied: bool) {
        let outcome = if applied { "applied" } else { "refused" };
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub(super) fn sse_connected(&self) {
        self.sse.inc();
    }

    pub(super) fn sse_disconnected(&self) {
        self.sse.dec();
    }

    /// Connected SSE clients.
    pub fn sse_connections(&self) -> i64 {
        self.sse.get()
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

    /// Every metric in the Prometheus text format, or in OpenMetrics.
    fn encode(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        if openmetrics {
            text::encode(&mut out, &self.registry)?;
        } else {
            prometheus_text::encode(&mut out, &self.registry)?;
        }
        Ok(out)
    }
}

/// `GET /metrics`: the Prometheus text format, or OpenMetrics when the
/// `Accept` header names it.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format (0.0.4), or OpenMetrics 1.0 when Accept names application/openmetrics-text")))]
pub(super) async fn render(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let metrics = state.metrics().clone();
    let versions = metrics.catalog_versions(state.nestor()).await;
    metrics
        .versions_gauge
        .set(versions.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)));
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(OPENMETRICS));
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        prometheus_text::CONTENT_TYPE
    };
    match metrics.encode(openmetrics) {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => ApiError::from(nestor_core::Error::internal(format!(
            "cannot encode the metrics: {e}"
        )))
        .into_response(),
    }
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
            .get_or_create(&EngineLabel {
                engine: self.name.clone(),
            })
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
