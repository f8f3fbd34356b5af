//! The one layer in front of every route: the request id, the head-size
//! check, authentication, the request's tracing span and its metrics.
//!
//! Why one hand-written tower service rather than a stack of
//! `middleware::from_fn` layers: each `from_fn` layer boxes its future and
//! clones the service under it for every request (a boxed service, so an
//! allocation), and the work of these steps is mostly synchronous (the
//! principal is a hash lookup). Here everything before the handler runs in
//! [`Service::call`] itself, the route under it is called without being
//! cloned (axum's routes are always ready), and one boxed future awaits
//! the handler and counts the answer. The route's metric series are
//! resolved once ([`RouteMetrics`]) and request ids come from a counter
//! ([`RequestIds`]). Measured in benches/README.md (server).
//!
//! Order, as before: request id and head size first (a 431 carries the
//! request id), then the principal (a 401 for an unknown token on every
//! route, before any body is read), then the caller's rate limit for the
//! route's class (a 429 with `Retry-After`, ratelimit.rs), then the handler.
//! The principal is known without waiting for a static token, a client
//! certificate or a JWT whose issuer's keys are cached; only a JWT with a
//! key id not cached waits (auth/oidc.rs fetches the key set), and only
//! that request clones the route to call it after the wait.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use super::auth::{self, Lookup, Origin, Principal};
use super::error::{self, ApiError};
use super::metrics::{method_label, RouteMetrics};
use super::ratelimit;
use super::AppState;

/// The header a request id travels in, both ways.
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// Wraps each route (and the fallbacks) in a [`Front`].
#[derive(Clone)]
pub(super) struct FrontLayer {
    state: AppState,
}

impl FrontLayer {
    pub(super) fn new(state: AppState) -> Self {
        FrontLayer { state }
    }
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front {
            inner,
            state: self.state.clone(),
        }
    }
}

/// A route behind the front steps.
#[derive(Clone)]
pub(super) struct Front<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Front<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let state = &self.state;
        let request_id = request_id(&request, state);
        let route: Arc<RouteMetrics> = match request.extensions().get::<MatchedPath>() {
            Some(m) => state.metrics().route(m.as_str()),
            None => state.metrics().route(UNMATCHED),
        };
        let method = method_label(request.method().as_str());
        let wakes_events = request.method() != Method::GET && request.method() != Method::HEAD;
        let span = tracing::info_span!("request", method = %method, route = %route.route(), request_id = request_id.to_str().unwrap_or_default());
        let refused = match refusal(&mut request, state, route.route()) {
            Step::Go => Ok(Handler::Now(span.in_scope(|| self.inner.call(request)))),
            Step::Refuse(refusal) => Err(refusal),
            Step::Wait(pending) => {
                // Only a JWT whose issuer's keys must be fetched waits: the
                // route is cloned for it alone.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                Ok(Handler::Later(Box::pin(admit_later(
                    pending,
                    request,
                    state.clone(),
                    route.route().to_string(),
                    inner,
                ))))
            }
        };
        let state = state.clone();
        Box::pin(async move {
            let id = request_id.clone();
            let mut response = error::with_request_id(id, async {
                let refused = match refused {
                    Ok(Handler::Now(handler)) => Ok(handler),
                    Ok(Handler::Later(later)) => {
                        tracing::Instrument::instrument(later, span.clone()).await
                    }
                    Err(refusal) => Err(refusal),
                };
                match refused {
                    Ok(handler) => tracing::Instrument::instrument(handler, span.clone())
                        .await
                        .unwrap_or_else(|never| match never {}),
                    Err(Refusal { error, retry_after }) => {
                        let mut response = error.into_response();
                        if let Some(secs) = retry_after {
                            response
                                .headers_mut()
                                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                        }
                        response
                    }
                }
            })
            .await;
            let status = response.status();
            let elapsed = started.elapsed();
            span.in_scope(|| {
                tracing::info!(
                    status = status.as_u16(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    "served"
                )
            });
            route.observe(method, status.as_u16(), elapsed);
            if wakes_events {
                // A write may have appended events: deliver them now, not at the next tick.
                state.events().wake();
            }
            response
                .headers_mut()
                .insert(X_REQUEST_ID.clone(), request_id);
            Ok(response)
        })
    }
}

/// The request id the client sent, when it is a usable one (1–128
/// visible ASCII characters), else a fresh one.
fn request_id(request: &Request, state: &AppState) -> HeaderValue {
    match request.headers().get(&X_REQUEST_ID) {
        Some(v)
            if !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic) =>
        {
            v.clone()
        }
        _ => state.request_ids().next(),
    }
}

/// An answer given before the handler runs.
struct Refusal {
    error: ApiError,
    /// Seconds for `Retry-After` (rate limits).
    retry_after: Option<u64>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal {
            error,
            retry_after: None,
        }
    }
}

/// What happens to a request before its handler.
enum Step {
    /// Its principal is attached: on to the handler.
    Go,
    /// Answered now.
    Refuse(Refusal),
    /// Its JWT's issuer keys must be fetched first.
    Wait(Box<auth::Pending>),
}

/// The handler's future, now or once the principal is known.
enum Handler<F> {
    Now(F),
    Later(BoxFuture<'static, Result<F, Refusal>>),
}

/// Why the request is answered before its handler runs, if it is: a head
/// over `server.max_header_bytes` (431), an `Authorization` header that
/// names no known token or carries an invalid JWT (401), a valid JWT that
/// grants no role (403), or a caller over its rate limit for the route's
/// class (429). Otherwise the caller's principal is attached.
fn refusal(request: &mut Request, state: &AppState, route: &str) -> Step {
    let limit = state.limits().max_header_bytes;
    if head_bytes(request) > limit {
        return Step::Refuse(Refusal::from(ApiError::from(
            nestor_core::Error::RequestHeaderFieldsTooLarge {
                message: format!("the request line and headers are larger than {limit} bytes"),
            },
        )));
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let peer = Origin::of(request.extensions()).and_then(|o| o.identity.as_deref());
    // One load for the request: the tokens and limits of the same reload.
    let access = state.access();
    match access.auth.principal(header, peer) {
        Lookup::Known(Ok(principal)) => {
            match admit(request, access.rate_limits(), route, principal) {
                None => Step::Go,
                Some(refusal) => Step::Refuse(refusal),
            }
        }
        Lookup::Known(Err(e)) => Step::Refuse(Refusal::from(ApiError::from(e))),
        Lookup::Fetch(pending) => Step::Wait(pending),
    }
}

/// After [`refusal`] waited for a JWT's keys: the principal, the rate
/// limit, then the handler's future.
async fn admit_later<S>(
    pending: Box<auth::Pending>,
    mut request: Request,
    state: AppState,
    route: String,
    mut inner: S,
) -> Result<S::Future, Refusal>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let principal = pending
        .resolve()
        .await
        .map_err(|e| Refusal::from(ApiError::from(e)))?;
    // The access of now, after the wait (a reload may have come between).
    let access = state.access();
    match admit(&mut request, access.rate_limits(), &route, principal) {
        None => Ok(inner.call(request)),
        Some(refusal) => Err(refusal),
    }
}

/// The caller's rate limit for the route's class (429), then its
/// principal attached to the request.
fn admit(
    request: &mut Request,
    limits: Option<&ratelimit::RateLimits>,
    route: &str,
    principal: Arc<Principal>,
) -> Option<Refusal> {
    if let Some(limits) = limits {
        if let Some(class) = ratelimit::classify(request.method(), route) {
            let peer = Origin::of(request.extensions()).and_then(|o| o.ip);
            if let Err(wait) = limits.check(class, &principal, peer) {
                return Some(Refusal {
                    error: ApiError::from(nestor_core::Error::RateLimited),
                    retry_after: Some(ratelimit::retry_after_secs(wait)),
                });
            }
        }
    }
    Origin::admit(request.extensions_mut(), principal);
    None
}

/// The size of a request's head: its request line and headers.
fn head_bytes(request: &Request) -> usize {
    let line = request.method().as_str().len()
        + request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len())
        + 12;
    request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}
