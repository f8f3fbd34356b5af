//! The HTTP front-end (`nestor serve`, docs/src/reference/http-api.md): an axum router over one
//! [`Nestor`], the service API the CLI calls in-process. A handler only
//! translates: it decodes the request, authorises the caller, makes one
//! `Nestor` call and encodes the answer; every rule lives in the core.
//!
//! # Layout
//! - `error`: [`ApiError`], the one way an error leaves a handler (docs/src/reference/errors.md
//!   body, 5xx details only in the log), and the request-id scope.
//! - `extract`: strict query parsing (unknown keys are refused), bounded
//!   bodies, JSON and YAML payloads.
//! - `auth`: who a caller is (static bearer tokens as SHA-256 in the
//!   config, OIDC JWTs, mapped client certificates) and the role checks.
//! - `ratelimit`: per-caller token buckets by route class (429 + `Retry-After`).
//! - `cors`: cross-origin access for browser apps (`server.cors`).
//! - `catalog`, `compositions`, `deployments`, `render`: the routes, thin.
//! - `audit`: who a request's writes are recorded as, the audit route
//!   and its retention.
//! - `events`: the event-log tail and the SSE stream (docs/src/reference/events.md).
//! - `sync`: background syncs with coalescing, pollers and git webhooks.
//! - `reload`: SIGHUP and config-file reloads of `auth:`,
//!   `server.rate_limits` and `catalog.sources`, swapped in whole or not at all.
//! - `conn`: the transport under the router: header and idle timeouts and
//!   a connection cap (`server:` limits).
//! - `tls`: HTTPS and mutual TLS (`server.tls`, rustls).
//! - `metrics`: the Prometheus metrics (`prometheus-client`), bounded labels.
//! - `openapi`: the OpenAPI 3 document, generated from the handlers.
//!
//! # Design decisions
//! - One background task tails the store's event log and fans out over a
//!   broadcast channel; SSE clients replay from the log and then follow the
//!   channel. Nothing is published to SSE except through the log, so the
//!   same path serves several replicas sharing a store.
//! - Applies run in a background task; the HTTP answer is the deployment
//!   as soon as its revision is recorded (`202`), and progress is read with
//!   `GET /deployments/{id}` or the event stream.
//! - `limit` above 500 is refused with `BAD_REQUEST` rather than clamped, so
//!   a client never silently gets fewer items than it believes it asked for.

mod audit;
mod auth;
mod catalog;
mod compositions;
mod conn;
mod cors;
mod deployments;
mod error;
mod events;
mod extract;
mod front;
mod metrics;
mod openapi;
mod ratelimit;
mod reload;
mod render;
mod routes;
mod runs;
mod sync;
mod teams;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use nestor_core::{Executor, Nestor, Store};
use nestor_engines::EngineRegistry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
pub use auth::{hash_token, new_token};
pub use error::ApiError;
pub use events::EventHub;
pub use metrics::Metrics;
pub use reload::{ConfigSource, ReloadReport};
pub use sync::{hmac_sha256_hex, SourceChanges, SyncManager};

/// Everything a handler needs, cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every operation a handler performs, over one store handle.
    nestor: Nestor,
    /// Engine list (with each plugin's source and digest) and readiness.
    engines: Arc<EngineRegistry>,
    /// The configuration the server started with: limits, SSE settings,
    /// defaults (what a reload cannot change).
    config: Config,
    /// The configuration last applied (start-up's, then each reload's),
    /// which the next reload is compared with; its lock makes reloads
    /// one at a time.
    applied: std::sync::Mutex<Config>,
    /// The `server:` limits, parsed.
    limits: crate::config::ServerLimits,
    /// Tokens, roles and rate limits: one lock-free load per request,
    /// swapped whole by a reload.
    access: arc_swap::ArcSwap<reload::Access>,
    /// `server.tls`, when the server speaks HTTPS.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// `server.cors`, when browser apps on other origins may call.
    cors: Option<tower_http::cors::CorsLayer>,
    /// Where fresh request ids come from.
    request_ids: error::RequestIds,
    /// Counters and histograms for `/metrics`.
    metrics: Arc<Metrics>,
    /// The event-log tail SSE clients follow.
    events: EventHub,
    /// Background syncs, pollers and webhook triggers.
    syncs: SyncManager,
    /// Flipped to `true` when the server shuts down, so SSE streams end.
    shutdown_tx: watch::Sender<bool>,
    /// Deployment runs in the background, drained on shutdown.
    runs: runs::Runs,
}

/// What [`AppState::new`] wires together.
pub struct Parts {
    /// The configuration (`server`, `auth`, `sse`, `catalog.sources`).
    pub config: Config,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The engine registry.
    pub engines: Arc<EngineRegistry>,
    /// Where applies are committed.
    pub executor: Arc<dyn Executor>,
    /// Folder for clones of git sources.
    pub cache_dir: std::path::PathBuf,
}

impl AppState {
    /// Wires the services and starts the background tasks (event tail,
    /// event retention). Must be called inside a Tokio runtime.
    pub fn new(parts: Parts) -> anyhow::Result<AppState> {
        Self::with_direct(parts, None)
    }

    /// [`AppState::new`] with a direct executor (the Terraform executor
    /// of `executors.terraform`) for the resources it handles; starts the
    /// drift checks of `deployments.drift_interval` too.
    pub fn with_direct(
        parts: Parts,
        direct: Option<Arc<dyn nestor_core::DirectExecutor>>,
    ) -> anyhow::Result<AppState> {
        let Parts {
            config,
            store,
            engines,
            executor,
            cache_dir,
        } = parts;
        let metrics = Arc::new(Metrics::default());
        let metered: Arc<dyn nestor_core::EngineProvider> = Arc::new(metrics::MeteredEngines::new(
            engines.clone(),
            metrics.clone(),
        ));
        let (leases, wave_delay) = config.deployments.settings()?;
        let mut builder = Nestor::builder()
            .store(store.clone())
            .engines(metered)
            .executor(executor)
            .leases(leases)
            .wave_delay(wave_delay);
        if let Some(argo) = &config.argocd {
            builder = builder.observer(argo.observer()?);
        }
        if let Some(direct) = direct {
            builder = builder.direct_executor(direct);
        }
        let nestor = config.with_governance(builder)?.build()?;
        let drift_interval = config.deployments.drift_interval()?;
        let access = reload::Access::from_config(&config)?.swappable();
        let limits = config.server.limits()?;
        let cors = cors::layer(config.server.cors.as_ref())?;
        let tls = tls::acceptor(config.server.tls.as_ref())?;
        config.auth.check_tls(config.server.tls.as_ref())?;
        let heartbeat =
            nestor_core::parse_duration(&config.sse.heartbeat).map_err(anyhow::Error::msg)?;
        let retention =
            nestor_core::parse_duration(&config.sse.retention).map_err(anyhow::Error::msg)?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let events = EventHub::start(
            store.clone(),
            metrics.clone(),
            events::HubConfig {
                heartbeat,
                retention,
                client_buffer: config.sse.client_buffer.max(1),
            },
            shutdown.clone(),
        );
        let syncs = SyncManager::new(
            nestor.clone(),
            cache_dir,
            metrics.clone(),
            events.clone(),
            &config.catalog.sources,
        );
        let runs = runs::Runs::default();
        runs::start_takeover(
            nestor.clone(),
            runs.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        audit::start_retention(nestor.clone(), config.audit.retention()?, shutdown.clone());
        if let Some(every) = drift_interval {
            runs::start_drift_checks(nestor.clone(), every, shutdown.clone());
        }
        Ok(AppState {
            inner: Arc::new(Inner {
                nestor,
                engines,
                applied: std::sync::Mutex::new(config.clone()),
                config,
                limits,
                access,
                tls,
                cors,
                request_ids: error::RequestIds::new(),
                metrics,
                events,
                syncs,
                shutdown_tx,
                runs,
            }),
        })
    }

    /// The sync manager (start-up syncs, pollers, ad-hoc sources).
    pub fn syncs(&self) -> &SyncManager {
        &self.inner.syncs
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The event hub (tests wake it after writing to the store directly).
    pub fn events(&self) -> &EventHub {
        &self.inner.events
    }

    /// The service API every handler calls.
    pub fn nestor(&self) -> &Nestor {
        &self.inner.nestor
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.inner.nestor.store()
    }

    fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The `server:` limits.
    pub fn limits(&self) -> &crate::config::ServerLimits {
        &self.inner.limits
    }

    /// The current tokens and rate limits (one lock-free load).
    fn access(&self) -> arc_swap::Guard<Arc<reload::Access>> {
        self.inner.access.load()
    }

    fn request_ids(&self) -> &error::RequestIds {
        &self.inner.request_ids
    }
}

/// Every route of the API and its handler, in one table ([`Routes`]
/// keeps the list [`routes`] answers).
fn api_routes(state: Option<AppState>) -> routes::Routes {
    routes::Routes::new(state)
        .get("/api/v1/resources", catalog::list)
        .post("/api/v1/resources", catalog::publish)
        .get("/api/v1/resources/{name}", catalog::latest)
        .get("/api/v1/resources/{name}/versions", catalog::versions)
        .get("/api/v1/resources/{name}/{version}", catalog::get_version)
        .post("/api/v1/resources/{name}/{version}/yank", catalog::yank)
        .post("/api/v1/resources/{name}/{version}/unyank", catalog::unyank)
        .get("/api/v1/search", catalog::search)
        .post("/api/v1/validate", catalog::validate)
        .get("/api/v1/status", catalog::status)
        .post("/api/v1/sync", sync::trigger)
        .post("/webhooks/git", sync::webhook)
        .get("/api/v1/events", events::stream)
        .get("/api/v1/teams", teams::list)
        .get("/api/v1/teams/{team}", teams::get)
        .get("/api/v1/teams/{team}/quotas", teams::quotas)
        .post("/api/v1/teams/{team}/validate", teams::validate)
        .get("/api/v1/teams/{team}/compositions", compositions::list)
        .post("/api/v1/teams/{team}/compositions", compositions::publish)
        .get(
            "/api/v1/teams/{team}/compositions/{name}",
            compositions::latest,
        )
        .get(
            "/api/v1/teams/{team}/compositions/{name}/{version}",
            compositions::get_version,
        )
        .post("/api/v1/teams/{team}/deploy", deployments::team_deploy)
        .get("/api/v1/deployments", deployments::list)
        .post("/api/v1/deployments", deployments::create)
        .post("/api/v1/deployments/promote", deployments::promote)
        .get("/api/v1/deployments/{id}", deployments::get)
        .delete("/api/v1/deployments/{id}", deployments::delete)
        .post("/api/v1/deployments/{id}/rollback", deployments::rollback)
        .get("/api/v1/deployments/{id}/logs", deployments::logs)
        .post("/api/v1/deployments/{id}/drift", deployments::drift)
        .post("/api/v1/plan", deployments::plan)
        .post("/api/v1/render", render::render)
        .get("/api/v1/engines", engines)
        .get("/api/v1/graph", deployments::graph)
        .get("/api/v1/audit", audit::list)
        .get("/api/v1/openapi.json", openapi::document)
        .get("/health", health)
        .get("/ready", ready)
        .get("/metrics", metrics::render)
}

/// Every (method, path template) the router answers, in the router's own
/// words (the OpenAPI document must name exactly these).
pub fn routes() -> Vec<(axum::http::Method, &'static str)> {
    api_routes(None).finish().1
}

/// The whole API: every route of the HTTP API (docs/src/reference/http-api.md) behind the front layer (request
/// id, auth, tracing, metrics).
pub fn router(state: AppState) -> Router {
    let (api, _) = api_routes(Some(state.clone())).finish();
    let api = api
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed);
    // One layer in front of every route and fallback (front.rs): request
    // id, head size, auth, tracing span, metrics.
    let mut api = api.layer(front::FrontLayer::new(state.clone()));
    if let Some(cors) = &state.inner.cors {
        // Outside the front layer: preflights need no token and are not counted.
        api = api.layer(cors.clone());
    }
    api.with_state(state)
}

async fn no_route() -> ApiError {
    nestor_core::Error::NotFound {
        message: "no such route; see /api/v1/openapi.json".into(),
    }
    .into()
}

async fn method_not_allowed() -> ApiError {
    nestor_core::Error::MethodNotAllowed {
        message: "this route does not take that method; see /api/v1/openapi.json".into(),
    }
    .into()
}

/// The `Content-Type` of a JSON answer, as a static header value (from a
/// `&str`, axum copies the text into a fresh allocation per response).
fn json_type() -> [(header::HeaderName, axum::http::HeaderValue); 1] {
    [(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    )]
}

#[utoipa::path(get, path = "/health", responses((status = 200, description = "the process is alive")))]
async fn health() -> Response {
    (json_type(), r#"{"status":"ok"}"#).into_response()
}

/// Ready when the store answers and at least one engine is healthy.
#[utoipa::path(get, path = "/ready", responses((status = 200, description = "store reachable, engines loaded"), (status = 503, description = "not ready")))]
async fn ready(State(state): State<AppState>) -> Response {
    let store = tokio::time::timeout(Duration::from_secs(2), state.store().last_sequence()).await;
    let store_ok = matches!(store, Ok(Ok(_)));
    match &store {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "ready: the store does not answer"),
        Err(_) => tracing::warn!("ready: the store did not answer within 2 s"),
    }
    let engines = state
        .inner
        .engines
        .list()
        .iter()
        .filter(|e| e.healthy)
        .count();
    let ready = store_ok && engines > 0;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({"ready": ready, "store": store_ok, "engines": engines});
    if !store_ok {
        // The error body every request the store fails answers with.
        body["error"] = json!({
            "code": nestor_core::ErrorCode::StorageUnavailable,
            "message": "the store is unavailable; try again later",
            "details": {},
            "trace_id": error::current_request_id(),
        });
    }
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/api/v1/engines", responses((status = 200, description = "every engine: name, version, source, sha256, healthy")))]
async fn engines(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!(state.inner.engines.list()))
}

/// Serves `state` on `listener` until `shutdown` resolves; then stops
/// accepting, ends SSE streams, and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tx = state.inner.shutdown_tx.clone();
    let app = router(state.clone());
    let stopping = tx.subscribe();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, streams end, in-flight requests finish");
        let _ = tx.send(true);
    });
    let result = conn::serve(
        listener,
        app,
        *state.limits(),
        state.inner.tls.clone(),
        stopping,
    )
    .await;
    state.inner.syncs.stop();
    let running = state.inner.runs.in_flight();
    if running > 0 {
        tracing::info!("waiting up to {DRAIN_LIMIT:?} for {running} deployment run(s) to finish");
        let left = state.inner.runs.drain(DRAIN_LIMIT).await;
        if left > 0 {
            tracing::warn!(
                "{left} deployment run(s) still going: their leases lapse and another replica (or this one, restarted) resumes them"
            );
        }
    }
    result
}

/// How long a graceful shutdown waits for deployment runs.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);
