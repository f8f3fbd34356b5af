//! [`Client`] and its builder: the connection settings (TLS roots, token,
//! timeouts, retries) and the one path every call takes — build the
//! request, send it, retry what may be retried, decode the answer or the
//! error body (`{"error": {"code", "message", "details"}}`).

use std::sync::Arc;
use std::time::Duration;

use nestor_core::{Error, Result};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::retry::{self, Backoff, Retry};

/// A client for one Nestor server. Cheap to clone (one `Arc`); clones
/// share their connection pool.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The HTTP client: the connection pool and the TLS configuration.
    pub(crate) http: reqwest::Client,
    /// The server's base URL; routes are appended to its path, so a server
    /// behind a path prefix (`https://host/nestor/`) works.
    pub(crate) base: Url,
    /// The bearer token sent with every request, if any.
    token: Option<String>,
    /// The time limit of an ordinary call.
    timeout: Duration,
    /// The time limit of a call that runs work on the server (a plan, a
    /// sync with `wait`, a rollback or a promote answers when it is done).
    long_timeout: Duration,
    /// How many times, and how far apart, a retryable call is tried again.
    pub(crate) backoff: Backoff,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("token", &self.inner.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]: `Client::builder(url).token(..).ca_cert(..).timeout(..).retries(..).build()`.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    /// The server's URL, parsed by [`ClientBuilder::build`].
    url: String,
    /// Bearer token.
    token: Option<String>,
    /// Extra trusted CA certificates (PEM), besides the system's roots:
    /// servers with a private CA.
    ca_certs: Vec<Vec<u8>>,
    /// See [`ClientBuilder::timeout`].
    timeout: Duration,
    /// See [`ClientBuilder::long_timeout`].
    long_timeout: Duration,
    /// See [`ClientBuilder::connect_timeout`].
    connect_timeout: Duration,
    /// Retry count and delays.
    backoff: Backoff,
}

impl Client {
    /// A builder for a client of the server at `url` (`http://127.0.0.1:8080`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            token: None,
            ca_certs: Vec::new(),
            timeout: Duration::from_secs(30),
            long_timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> &Url {
        &self.inner.base
    }
}

impl ClientBuilder {
    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts this CA certificate (PEM) besides the system's roots.
    /// Repeatable.
    pub fn ca_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certs.push(pem.into());
        self
    }

    /// The time limit of an ordinary call, retries excluded (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The time limit of a call that answers when server-side work is done:
    /// plan, sync with wait, rollback, promote (default 10 min).
    pub fn long_timeout(mut self, timeout: Duration) -> Self {
        self.long_timeout = timeout;
        self
    }

    /// The time limit to open a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How many times a retryable call is tried again (default 3); 0
    /// disables retries.
    pub fn retries(mut self, retries: u32) -> Self {
        self.backoff.retries = retries;
        self
    }

    /// The first retry delay and the largest one (default 100 ms and 5 s);
    /// delays double in between, with jitter.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff.first = first;
        self.backoff.max = max.max(first);
        self
    }

    /// The client; `BAD_REQUEST` for a URL that is not `http(s)://` or a
    /// certificate that is not PEM.
    pub fn build(self) -> Result<Client> {
        let mut base = Url::parse(self.url.trim())
            .map_err(|e| Error::bad_request(format!("server URL {:?}: {e}", self.url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Error::bad_request(format!(
                "server URL {:?}: expected http:// or https://",
                self.url
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(self.connect_timeout)
            .user_agent(concat!("nestor-client/", env!("CARGO_PKG_VERSION")));
        for pem in &self.ca_certs {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::bad_request(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(Error::bad_request(
                    "CA certificate: no PEM certificate found",
                ));
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| Error::bad_request(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                token: self.token,
                timeout: self.timeout,
                long_timeout: self.long_timeout,
                backoff: self.backoff,
            }),
        })
    }
}

/// A request body.
pub(crate) enum Body {
    /// `application/json`.
    Json(Vec<u8>),
    /// `application/yaml`: documents as the user wrote them.
    Yaml(String),
}

/// One API call, described once and sent as many times as its retries allow.
pub(crate) struct Call {
    method: Method,
    url: Url,
    query: Vec<(String, String)>,
    body: Option<Body>,
    /// Sent as `Idempotency-Key`, the same on every attempt.
    idempotency_key: Option<String>,
    retry: Retry,
    long: bool,
}

impl Call {
    /// Adds query pairs.
    pub(crate) fn query<K: Into<String>, V: Into<String>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.query
            .extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// A JSON body.
    pub(crate) fn json(mut self, value: &impl serde::Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::bad_request(format!("cannot serialise the request: {e}")))?;
        self.body = Some(Body::Json(bytes));
        Ok(self)
    }

    /// A YAML body.
    pub(crate) fn yaml(mut self, text: impl Into<String>) -> Self {
        self.body = Some(Body::Yaml(text.into()));
        self
    }

    /// Sent with this `Idempotency-Key` on every attempt.
    pub(crate) fn idempotency_key(mut self, key: String) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    /// Uses the long time limit.
    pub(crate) fn long(mut self) -> Self {
        self.long = true;
        self
    }
}

impl Client {
    /// A call to the route made of `segments` (each percent-encoded).
    pub(crate) fn call(&self, method: Method, segments: &[&str], retry: Retry) -> Call {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Call {
            method,
            url,
            query: Vec::new(),
            body: None,
            idempotency_key: None,
            retry,
            long: false,
        }
    }

    /// A GET of `segments`, retried.
    pub(crate) fn get(&self, segments: &[&str]) -> Call {
        self.call(Method::GET, segments, Retry::Safe)
    }

    /// The request of one attempt.
    pub(crate) fn request(
        &self,
        call: &Call,
        timeout: Option<Duration>,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone());
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(token) = &self.inner.token {
            req = req.bearer_auth(token);
        }
        if let Some(key) = &call.idempotency_key {
            req = req.header("idempotency-key", key);
        }
        match &call.body {
            Some(Body::Json(bytes)) => req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Some(Body::Yaml(text)) => req
                .header(reqwest::header::CONTENT_TYPE, "application/yaml")
                .body(text.clone()),
            None => req,
        }
    }

    /// Sends `call`, retrying as its [`Retry`] allows, and answers the
    /// successful response; an error answer becomes its core error.
    pub(crate) async fn send(&self, call: &Call) -> Result<reqwest::Response> {
        let timeout = if call.long {
            self.inner.long_timeout
        } else {
            self.inner.timeout
        };
        let backoff = &self.inner.backoff;
        let mut attempt = 0;
        loop {
            let last = call.retry == Retry::Never || attempt >= backoff.retries;
            match self.request(call, Some(timeout)).send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) if !last && retry::retryable_status(resp.status()) => {
                    let wait = backoff.delay(attempt, retry::retry_after(&resp));
                    tracing::debug!(url = %call.url, status = %resp.status(), ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) => return Err(error_of(resp).await),
                Err(e) if !last && retry::retryable_transport(&e) => {
                    let wait = backoff.delay(attempt, None);
                    tracing::debug!(url = %call.url, error = %e, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(unreachable(&call.url, e)),
            }
            attempt += 1;
        }
    }

    /// Sends `call` and decodes its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let resp = self.send(&call).await?;
        decode(resp).await
    }

    /// Sends `call` and answers its body as text.
    pub(crate) async fn text(&self, call: Call) -> Result<String> {
        let resp = self.send(&call).await?;
        let url = resp.url().clone();
        resp.text().await.map_err(|e| unreachable(&url, e))
    }
}

/// The JSON answer of a successful response.
pub(crate) async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
    let url = resp.url().clone();
    let bytes = resp.bytes().await.map_err(|e| unreachable(&url, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::internal(format!(
            "{} answered a body this client cannot read: {e}",
            route(&url)
        ))
    })
}

/// A transport failure: the server could not be reached or the answer did
/// not arrive. For the caller the server is the store behind the API, so
/// this is `STORAGE_UNAVAILABLE`, with the transport error as its source.
pub(crate) fn unreachable(url: &Url, e: reqwest::Error) -> Error {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the connection failed"
    };
    Error::storage(format!("{}: {what}", route(url)), e.without_url())
}

/// `scheme://host:port/path`, without the query.
fn route(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// The core error of an error answer: its error body decoded with its
/// real code, or — for a body that is not one (a proxy's page) — the code
/// its status means.
pub(crate) async fn error_of(resp: reqwest::Response) -> Error {
    let status = resp.status();
    let url = resp.url().clone();
    let bytes = resp.bytes().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: ErrorBody,
    }
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: nestor_core::ErrorCode,
        #[serde(default)]
        message: String,
        #[serde(default)]
        details: serde_json::Value,
    }
    if let Ok(Envelope { error }) = serde_json::from_slice::<Envelope>(&bytes) {
        return Error::from_code(error.code, &error.message, &error.details);
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    let message = format!(
        "{} answered {status}{}{}",
        route(&url),
        if text.is_empty() { "" } else { ": " },
        text.chars().take(200).collect::<String>()
    );
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthorized { message },
        StatusCode::FORBIDDEN => Error::Forbidden { message },
        StatusCode::TOO_MANY_REQUESTS => Error::RateLimited,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            Error::StorageUnavailable {
                message,
                source: None,
            }
        }
        s if s.is_client_error() => Error::bad_request(message),
        _ => Error::internal(message),
    }
}
