//! The resumable event stream: `GET /api/v1/events` as a
//! [`Stream`] of core [`Event`]s that survives dropped connections and
//! server restarts.
//!
//! The stream always knows its position: the sequence of the last event it
//! handed out (or, before the first, the log's end when it was opened, read
//! from `/status`, or the caller's `since`). Every connection asks to
//! replay from there with `Last-Event-ID`, so whatever happened while it
//! was away — a dropped connection, a restarted server, a replica behind a
//! load balancer — is replayed from the store's log, and anything at or
//! below the position is dropped, so nothing is handed out twice. An
//! `event: resync` (the server found the client too slow) moves the
//! position to what the server had examined and reconnects at once.
//! Connection failures back off exponentially up to the client's largest
//! delay. The SSE framing is parsed by `eventsource-stream`.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use nestor_core::{Error, Event, EventType, Result};

use crate::client::{error_of, unreachable, Client};
use crate::retry::{retryable_status, Retry};

/// Which events to follow and from where: `filter=KEY:VALUE` (keys
/// `provider category resource_type name team environment source subject`;
/// values of one key are alternatives, keys must all match) and type
/// patterns (`resource.*`, `deployment.completed`).
#[derive(Debug, Clone)]
#[must_use]
pub struct EventQuery {
    /// `KEY:VALUE` filters, sent as repeated `filter=`.
    filters: Vec<String>,
    /// Type patterns, sent as `types=`.
    types: Vec<String>,
    /// Replay after this sequence; `None`: from now on.
    since: Option<u64>,
    /// A connection silent for this long (no event, no heartbeat) is
    /// taken for dead and replaced.
    idle_timeout: Duration,
    /// Consecutive failed connection attempts before the stream gives up;
    /// `None`: it never does.
    reconnect_limit: Option<u32>,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            filters: Vec::new(),
            types: Vec::new(),
            since: None,
            idle_timeout: Duration::from_secs(60),
            reconnect_limit: None,
        }
    }
}

impl EventQuery {
    /// Every event from now on.
    pub fn new() -> Self {
        EventQuery::default()
    }

    /// Only events whose `key` is `value` (repeatable).
    pub fn filter(mut self, key: &str, value: &str) -> Self {
        self.filters.push(format!("{key}:{value}"));
        self
    }

    /// Only events whose type matches `pattern` (`resource.*`,
    /// `sync.completed`); repeatable, patterns are alternatives.
    pub fn types(mut self, pattern: &str) -> Self {
        self.types.push(pattern.to_string());
        self
    }

    /// Only events of this type (repeatable, like [`EventQuery::types`]).
    pub fn event_type(self, event_type: EventType) -> Self {
        self.types(event_type.as_str())
    }

    /// Replays every event after sequence `since` first (within the
    /// server's retention); `since(0)` replays the whole log. A processor
    /// that stored [`EventStream::position`] resumes from it here.
    pub fn since(mut self, since: u64) -> Self {
        self.since = Some(since);
        self
    }

    /// How long a connection may stay silent before it is replaced
    /// (default 60 s; the server sends a heartbeat every 15 s by default).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Gives up after this many consecutive failed connection attempts,
    /// yielding the last error (default: never gives up).
    pub fn reconnect_limit(mut self, attempts: u32) -> Self {
        self.reconnect_limit = Some(attempts);
        self
    }
}

/// A stream of events that reconnects by itself. Each item is an event the
/// stream had not yielded before, in sequence order. It ends only after
/// yielding an error that reconnecting cannot cure: a refused query
/// (`BAD_REQUEST`), a token refused (`UNAUTHORIZED`, `FORBIDDEN`), a body
/// that is not an event, or the reconnect limit reached.
pub struct EventStream {
    /// The reconnecting machinery.
    inner: BoxStream<'static, Result<Event>>,
    /// The position, shared with the machinery.
    position: Arc<AtomicU64>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("position", &self.position())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// The sequence the stream resumes after: the last event yielded (or
    /// the server had examined, after a resync). Store it to resume later
    /// with [`EventQuery::since`].
    pub fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }
}

impl Stream for EventStream {
    type Item = Result<Event>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Client {
    /// Follows the event stream (see [`EventStream`]). "From now on" means
    /// from this call: without [`EventQuery::since`] the position is the
    /// log's end read before the first connection. The first connection
    /// is opened here, so a refused query or token fails at once; a server
    /// that is down or restarting is not an error once the position is
    /// known — the stream connects when it can.
    pub async fn events(&self, query: EventQuery) -> Result<EventStream> {
        let position = Arc::new(AtomicU64::new(query.since.unwrap_or(0)));
        let mut state = Follow {
            client: self.clone(),
            known: query.since.is_some(),
            query,
            position: position.clone(),
            conn: None,
            failures: 0,
            done: false,
        };
        match state.connect().await {
            Ok(frames) => state.conn = Some(frames),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient(e)) if !state.known => return Err(e),
            Err(Failure::Transient(e)) => {
                tracing::debug!(error = %e, "event stream: first connection failed; retrying");
            }
        }
        Ok(EventStream {
            inner: stream::unfold(state, |mut s| async move {
                let item = s.next().await?;
                Some((item, s))
            })
            .boxed(),
            position,
        })
    }
}

/// Why a connection's byte stream stopped.
#[derive(Debug)]
enum Interrupt {
    /// The transport failed.
    Transport(reqwest::Error),
    /// Nothing arrived within the idle timeout.
    Idle,
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupt::Transport(e) => write!(f, "{e}"),
            Interrupt::Idle => f.write_str("no event or heartbeat within the idle timeout"),
        }
    }
}

type Frames =
    BoxStream<'static, std::result::Result<eventsource_stream::Event, EventStreamError<Interrupt>>>;

/// The state of a followed stream.
struct Follow {
    client: Client,
    query: EventQuery,
    /// The last sequence yielded or skipped past.
    position: Arc<AtomicU64>,
    /// Whether `position` is known yet (a stream "from now" learns it from
    /// `/status` before its first connection).
    known: bool,
    /// The open connection's SSE frames.
    conn: Option<Frames>,
    /// Consecutive failed connection attempts.
    failures: u32,
    /// An error was yielded: the stream is over.
    done: bool,
}

impl Follow {
    /// The next event, or the error that ends the stream.
    async fn next(&mut self) -> Option<Result<Event>> {
        if self.done {
            return None;
        }
        loop {
            let Some(conn) = self.conn.as_mut() else {
                match self.connect().await {
                    Ok(frames) => {
                        self.conn = Some(frames);
                        self.failures = 0;
                    }
                    Err(Failure::Fatal(e)) => return self.end(e),
                    Err(Failure::Transient(e)) => {
                        self.failures += 1;
                        if self
                            .query
                            .reconnect_limit
                            .is_some_and(|n| self.failures > n)
                        {
                            return self.end(e);
                        }
                        let wait = self.client.inner.backoff.delay(self.failures - 1, None);
                        tracing::debug!(error = %e, ?wait, "event stream: reconnecting");
                        tokio::time::sleep(wait).await;
                    }
                }
                continue;
            };
            match conn.next().await {
                Some(Ok(frame)) if frame.event == "resync" => {
                    // The server examined up to the frame's id; go on from there.
                    if let Ok(id) = frame.id.trim().parse::<u64>() {
                        self.position.fetch_max(id, Ordering::AcqRel);
                    }
                    tracing::info!(position = self.position(), "event stream: resync");
                    self.conn = None;
                }
                Some(Ok(frame)) => match serde_json::from_str::<Event>(&frame.data) {
                    Ok(event) if event.id <= self.position() => {} // already yielded
                    Ok(event) => {
                        self.position.store(event.id, Ordering::Release);
                        return Some(Ok(event));
                    }
                    Err(e) => {
                        return self.end(Error::internal(format!(
                            "event {:?} ({}) is not an event this client can read: {e}",
                            frame.id, frame.event
                        )))
                    }
                },
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "event stream: connection lost");
                    self.conn = None;
                }
                None => {
                    tracing::debug!("event stream: the server closed the stream");
                    self.conn = None;
                }
            }
        }
    }

    fn position(&self) -> u64 {
        self.position.load(Ordering::Acquire)
    }

    fn end(&mut self, e: Error) -> Option<Result<Event>> {
        self.done = true;
        Some(Err(e))
    }

    /// Opens a connection replaying after the position.
    async fn connect(&mut self) -> std::result::Result<Frames, Failure> {
        if !self.known {
            let status = self.client.status().await.map_err(Failure::classify)?;
            self.position.store(status.last_event, Ordering::Release);
            self.known = true;
        }
        let mut call = self
            .client
            .call(reqwest::Method::GET, &["api", "v1", "events"], Retry::Never)
            .query(self.query.filters.iter().map(|f| ("filter", f.as_str())));
        if !self.query.types.is_empty() {
            call = call.query([("types", self.query.types.join(","))]);
        }
        let url = self.client.url().clone();
        let resp = self
            .client
            .request(&call, None)
            .header("last-event-id", self.position().to_string())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| Failure::Transient(unreachable(&url, e)))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let e = error_of(resp).await;
            return Err(if retryable_status(status) || status.is_server_error() {
                Failure::Transient(e)
            } else {
                Failure::Fatal(e)
            });
        }
        Ok(idle_guarded(resp.bytes_stream(), self.query.idle_timeout)
            .eventsource()
            .boxed())
    }
}

/// A failed connection attempt: worth another (server down, overloaded,
/// restarting) or not (the request itself is refused).
enum Failure {
    Transient(Error),
    Fatal(Error),
}

impl Failure {
    fn classify(e: Error) -> Failure {
        match e.code().http_status() {
            s if s >= 500 || s == 429 => Failure::Transient(e),
            _ => Failure::Fatal(e),
        }
    }
}

/// `bytes`, ending with [`Interrupt::Idle`] when nothing (not even a
/// heartbeat comment) arrives within `idle`.
fn idle_guarded(
    bytes: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    idle: Duration,
) -> impl Stream<Item = std::result::Result<Bytes, Interrupt>> + Send + 'static {
    stream::unfold(
        (Box::pin(bytes), false),
        move |(mut bytes, over)| async move {
            if over {
                return None;
            }
            match tokio::time::timeout(idle, bytes.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (bytes, false))),
                Ok(Some(Err(e))) => Some((Err(Interrupt::Transport(e)), (bytes, true))),
                Ok(None) => None,
                Err(_) => Some((Err(Interrupt::Idle), (bytes, true))),
            }
        },
    )
}
