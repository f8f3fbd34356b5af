//! The HTTP server, tested as a client sees it: a real server on
//! `127.0.0.1:0` (`nestor_server::server::serve`) and a real HTTP client.

mod audit;
mod auth;
mod bad_requests;
mod both_ways;
mod catalog;
mod deploy;
mod events;
mod hostile;
mod metrics;
mod openapi;
mod process;
mod reload;
mod remote;
mod secrets;
mod security;
mod teams;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nestor_core::{SourceConfig, Store};
use nestor_engines::{EngineRegistry, HostConfig};
use nestor_server::server::{self, AppState, Parts};
use nestor_server::{Config, TokenConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Tokens every test server accepts: `admin`, `platform`, `reader`,
/// `alpha` (team:alpha) and `beta` (team:beta); the token is its name.
pub const TOKENS: [(&str, &str); 5] = [
    ("admin", "admin"),
    ("platform", "platform"),
    ("reader", "reader"),
    ("alpha", "team:alpha"),
    ("beta", "team:beta"),
];

/// A running server and a client for it.
pub struct TestServer {
    pub url: String,
    pub state: AppState,
    pub store: Arc<dyn Store>,
    /// Holds the GitOps repository and source clones until the server goes.
    _dir: tempfile::TempDir,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// How a test server is built.
pub struct Setup {
    pub config: Config,
    /// Load the bundled engines (deploy tests); otherwise none.
    pub engines: bool,
    /// Sync the example catalog at start.
    pub catalog: bool,
}

impl Default for Setup {
    fn default() -> Self {
        let mut config = Config::default();
        config.storage.kind = nestor_server::StorageKind::Memory;
        config.sse.heartbeat = "1s".into();
        for (name, role) in TOKENS {
            config.auth.tokens.push(TokenConfig {
                name: name.into(),
                sha256: server::hash_token(name),
                roles: vec![role.into()],
            });
        }
        Setup {
            config,
            engines: false,
            catalog: true,
        }
    }
}

impl TestServer {
    /// The example catalog on a memory store, no engines.
    pub async fn start() -> TestServer {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(nestor_storage::MemoryStore::new());
        let engines = if setup.engines {
            EngineRegistry::with_bundled().unwrap()
        } else {
            EngineRegistry::new(HostConfig::default()).unwrap()
        };
        let executor = nestor_storage::GitOpsExecutor::open(nestor_storage::GitOpsConfig::local(
            dir.path().join("gitops"),
        ))
        .unwrap();
        let state = AppState::new(Parts {
            config: setup.config,
            store: store.clone(),
            engines: Arc::new(engines),
            executor: Arc::new(executor),
            cache_dir: dir.path().join("sources"),
        })
        .unwrap();
        if setup.catalog {
            state.syncs().add(SourceConfig::new(
                "examples",
                root().join("examples/catalog").display().to_string(),
            ));
            let report = state.syncs().sync_now("examples").await.unwrap();
            assert!(report.errors.is_empty(), "{report:?}");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        TestServer {
            url,
            state,
            store,
            _dir: dir,
            client,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Sends a request; `token` is a name from [`TOKENS`] (or any string).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Body>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        match body {
            Some(Body::Json(v)) => req = req.json(&v),
            Some(Body::Yaml(text)) => {
                req = req.header("content-type", "application/yaml").body(text)
            }
            Some(Body::Raw(ct, bytes)) => req = req.header("content-type", ct).body(bytes),
            None => {}
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, Some(token), None).await
    }

    /// The `/metrics` exposition, as text.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(format!("{}/metrics", self.url)).send();
        response.await.unwrap().text().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Body) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(token), Some(body)).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), h)
                .await
                .expect("graceful shutdown is bounded")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A request body.
pub enum Body {
    Json(Value),
    Yaml(String),
    Raw(&'static str, Vec<u8>),
}

/// The error code of an error body.
pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no code>")
}

/// The fields a `VALIDATION_FAILED` body names, in order.
pub fn fields(v: &Value) -> Vec<&str> {
    v["error"]["details"]["validation_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}

/// A small valid definition; `extra` is appended under `spec` inputs.
pub fn definition(name: &str, version: &str, description: &str, required: &[&str]) -> String {
    let mut inputs = String::new();
    for r in required {
        inputs.push_str(&format!("    - {{name: {r}, type: string}}\n"));
    }
    if inputs.is_empty() {
        inputs.push_str("    []\n");
    }
    format!(
        "apiVersion: catalog.nestor.io/v1\nkind: ResourceDefinition\nmetadata:\n  name: {name}\n  version: \"{version}\"\n  provider: test\n  category: misc\n  resource_type: thing\n  description: \"{description}\"\nspec:\n  supported_engines: [terraform]\n  required_inputs:\n{inputs}  outputs:\n    - {{name: id, type: string}}\n"
    )
}

/// Polls `check` until it returns `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One SSE frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

/// A minimal SSE reader over a streaming response.
pub struct SseClient {
    resp: reqwest::Response,
    buf: String,
}

impl SseClient {
    pub async fn connect(
        server: &TestServer,
        query: &str,
        last_event_id: Option<u64>,
        token: Option<&str>,
    ) -> SseClient {
        let mut req = server
            .client
            .get(format!("{}/api/v1/events{query}", server.url))
            .timeout(Duration::from_secs(120));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        SseClient::from_response(resp)
    }

    /// A reader over an event stream response opened elsewhere.
    pub fn from_response(resp: reqwest::Response) -> SseClient {
        SseClient {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (comments skipped), `None` at the end of the stream
    /// or after `wait` without one.
    pub async fn next(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut frame = Frame {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        frame.id = v.trim().parse().ok();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        frame.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    frame.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return Some(frame);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_openapi_and_request_ids() {
    let s = TestServer::start().await;
    assert_eq!(s.get("/health").await.0, 200);
    // No engine is loaded in this server: not ready.
    let (status, body) = s.get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["store"], true);

    let resp = s
        .client
        .get(format!("{}/api/v1/resources/nope-nope", s.url))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-123");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["trace_id"], "trace-123");
    assert_eq!(code(&body), "RESOURCE_NOT_FOUND");
    let resp = s
        .client
        .get(format!("{}/health", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-request-id"].len(),
        32,
        "a request id is made when none is sent"
    );

    let (status, doc) = s.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/resources",
        "/api/v1/resources/{name}/{version}",
        "/api/v1/events",
        "/webhooks/git",
        "/api/v1/teams/{team}/deploy",
        "/api/v1/deployments/{id}/rollback",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }

    let text = s.metrics().await;
    for metric in ["nestor_http_requests_total{route=\"/api/v1/resources/{name}\",method=\"GET\",status=\"404\"} 1", "nestor_http_request_duration_seconds_bucket", "nestor_catalog_versions 26", "nestor_sync_duration_seconds_count{source=\"examples\"} 1", "nestor_sse_connections 0"] {
        assert!(text.contains(metric), "metrics lack {metric}:\n{text}");
    }
    s.stop().await;
}
