//! The event stream (docs/src/reference/events.md).
//!
//! One background task tails the store's event log — every ~75 ms, or at
//! once when [`EventHub::wake`] is called after a local write — and fans
//! each event out over a broadcast channel whose ring holds
//! `sse.client_buffer` events. A client stream first replays the log after
//! its `Last-Event-ID` (or `?since=`), then follows the channel, skipping
//! what it already sent. The publisher never waits for anyone.
//!
//! A client that falls more than the ring behind sees `Lagged`. Two causes
//! look alike there, and are told apart by how long the stream went
//! unpolled before it: a client that was being written to all along but met
//! a burst bigger than the ring (a sync publishing a thousand versions)
//! catches up from the log at its own pace; a client whose connection
//! stalled (the socket full, so the server stopped pulling its stream for
//! longer than [`STALL`]) gets `event: resync` and the stream ends, and
//! reconnecting with `Last-Event-ID` loses nothing. A client that reads
//! nothing at all is never polled again, so it cannot be told: the
//! transport closes its connection once the socket has taken no byte for
//! `server.write_timeout` (`conn`). Because only the log
//! feeds the channel, events written by another replica sharing the store
//! arrive the same way.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use nestor_core::{Error, Event, EventSelector as Selector, EventType, Store};
use serde_json::json;
use tokio::sync::{broadcast, watch, Notify};

use super::auth::Caller;
use super::error::ApiResult;
use super::extract::Query;
use super::metrics::Metrics;
use super::AppState;

/// An event with its JSON, serialised once for every subscriber.
struct Wire {
    event: Event,
    json: String,
}

/// How often the tail reads the log when nobody wakes it.
const TAIL_INTERVAL: Duration = Duration::from_millis(75);
/// How long a stream may go unpolled between two events before a lag is
/// blamed on the client rather than on a burst.
const STALL: Duration = Duration::from_secs(2);
/// Events read from the log per query.
const READ_BATCH: usize = 500;

/// Settings of the hub, from `sse:`.
#[derive(Debug, Clone, Copy)]
pub(super) struct HubConfig {
    /// Interval of heartbeat comments.
    pub heartbeat: Duration,
    /// How long events are kept (older ones are pruned hourly).
    pub retention: Duration,
    /// Events a client may fall behind before it must resync.
    pub client_buffer: usize,
}

/// The event-log tail and its broadcast channel. Cheap to clone.
#[derive(Clone)]
pub struct EventHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    /// Where events are read from (and replayed from).
    store: Arc<dyn Store>,
    /// Fan-out to every connected client; its ring is the per-client buffer.
    sender: broadcast::Sender<Arc<Wire>>,
    /// Wakes the tail early after a local write.
    wake: Notify,
    /// The greatest sequence broadcast so far: where a new client starts.
    live: AtomicU64,
    /// Heartbeat and buffer settings.
    config: HubConfig,
    /// Counts connected clients.
    metrics: Arc<Metrics>,
    /// Ends every stream when the server shuts down.
    shutdown: watch::Receiver<bool>,
}

impl EventHub {
    /// Starts the tail task (and hourly retention pruning).
    pub(super) fn start(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        config: HubConfig,
        shutdown: watch::Receiver<bool>,
    ) -> EventHub {
        let (sender, _) = broadcast::channel(config.client_buffer);
        let hub = EventHub {
            inner: Arc::new(HubInner {
                store,
                sender,
                wake: Notify::new(),
                live: AtomicU64::new(0),
                config,
                metrics,
                shutdown,
            }),
        };
        tokio::spawn(hub.clone().tail());
        tokio::spawn(hub.clone().prune());
        hub
    }

    /// Tells the tail that the log has grown (a local write); it reads at once.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// The greatest sequence delivered to live subscribers so far.
    pub fn live_sequence(&self) -> u64 {
        self.inner.live.load(Ordering::Acquire)
    }

    async fn tail(self) {
        let inner = &self.inner;
        let mut shutdown = inner.shutdown.clone();
        let mut last = loop {
            match inner.store.last_sequence().await {
                Ok(n) => break n,
                Err(e) => {
                    tracing::warn!(error = %e, "event tail: cannot read the log; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        };
        inner.live.store(last, Ordering::Release);
        loop {
            loop {
                match inner.store.read_after(last, READ_BATCH).await {
                    Ok(batch) => {
                        let full = batch.len() == READ_BATCH;
                        for event in batch {
                            last = event.id;
                            // No receiver is fine: nobody is listening.
                            let json =
                                serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
                            let _ = inner.sender.send(Arc::new(Wire { event, json }));
                            inner.live.store(last, Ordering::Release);
                        }
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event tail: read failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = inner.wake.notified() => {}
                _ = tokio::time::sleep(TAIL_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn prune(self) {
        let mut shutdown = self.inner.shutdown.clone();
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            let before = now - self.inner.config.retention.as_secs() as i64;
            match self.inner.store.prune_before(before).await {
                Ok(n) if n > 0 => tracing::info!(pruned = n, "event log retention"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "event log retention failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The `filter` and `types` query keys as the core's selector.
fn selector(query: &Query) -> ApiResult<Selector> {
    let filters: Vec<&str> = query.all("filter").collect();
    let types: Vec<&str> = query.all("types").collect();
    Selector::from_parts(&filters, &types).map_err(|m| Error::bad_request(m).into())
}

/// Team-scoped events (deployments, compositions) only reach callers who
/// may see that team; catalog and sync events reach every reader.
fn visible_to(caller: &Caller, e: &Event) -> bool {
    !e.event_type.is_team_scoped() || e.team().is_some_and(|t| caller.sees_team(t))
}

/// A `sync.completed` event as `caller` may read it: other teams'
/// compositions left out of its report. `None` when nothing is hidden.
fn redact_sync(caller: &Caller, e: &Event) -> Option<Event> {
    if e.event_type != EventType::SyncCompleted {
        return None;
    }
    let report: nestor_core::SyncReport = serde_json::from_value(e.data.clone()).ok()?;
    let visible = report.clone().visible_to(|team| caller.sees_team(team));
    if visible == report {
        return None;
    }
    let mut redacted = e.clone();
    redacted.data = json!(visible);
    Some(redacted)
}

fn to_sse(e: &Event, json: &str) -> SseEvent {
    SseEvent::default()
        .id(e.id.to_string())
        .event(e.event_type.as_str())
        .data(json)
}

/// One client's position in the stream.
struct Client {
    hub: EventHub,
    caller: Caller,
    selector: Selector,
    rx: broadcast::Receiver<Arc<Wire>>,
    /// The greatest sequence examined (sent or filtered out).
    last: u64,
    /// Still reading the log before following the channel.
    replaying: bool,
    /// Events read from the log, not yet examined.
    pending: VecDeque<Event>,
    shutdown: watch::Receiver<bool>,
    done: bool,
    /// When the last event was handed to the connection; the gap until the
    /// next poll tells a stalled client from a burst.
    yielded_at: Option<std::time::Instant>,
    /// Decrements the connection gauge when the stream is dropped.
    _gauge: GaugeGuard,
}

struct GaugeGuard(Arc<Metrics>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.sse_disconnected();
    }
}

impl Client {
    /// The next SSE event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<SseEvent> {
        if self.done {
            return None;
        }
        let stalled = self.yielded_at.is_some_and(|t| t.elapsed() > STALL);
        let out = self.next_inner(stalled).await;
        self.yielded_at = Some(std::time::Instant::now());
        out
    }

    async fn next_inner(&mut self, stalled: bool) -> Option<SseEvent> {
        let behind = self.hub.live_sequence().saturating_sub(self.last);
        if stalled && behind > self.hub.inner.config.client_buffer as u64 {
            // Stalled while catching up (from a burst or a replay) and still
            // more than a buffer behind: the same verdict as a lag.
            return Some(self.resync(behind));
        }
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            if let Some(e) = self.pending.pop_front() {
                if let Some(out) = self.examine(&e, None) {
                    return Some(out);
                }
                continue;
            }
            if self.replaying {
                match self.hub.inner.store.read_after(self.last, READ_BATCH).await {
                    Ok(batch) if !batch.is_empty() => self.pending.extend(batch),
                    Ok(_) => self.replaying = false,
                    Err(e) => {
                        tracing::warn!(error = %e, "event replay failed");
                        self.done = true;
                        return Some(
                            SseEvent::default().event("resync").data(
                                json!({"last_event_id": self.last, "reason": "replay failed"})
                                    .to_string(),
                            ),
                        );
                    }
                }
                continue;
            }
            tokio::select! {
                received = self.rx.recv() => match received {
                    Ok(wire) => {
                        if let Some(out) = self.examine(&wire.event, Some(&wire.json)) {
                            return Some(out);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) if !stalled => {
                        // A burst, not a slow client: catch up from the log.
                        tracing::debug!(missed, last = self.last, "SSE client catches up from the log");
                        self.replaying = true;
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => return Some(self.resync(missed)),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = self.shutdown.changed() => return None,
            }
        }
    }

    /// Ends the stream with `event: resync`, naming the last event sent.
    fn resync(&mut self, missed: u64) -> SseEvent {
        tracing::info!(missed, last = self.last, "slow SSE client told to resync");
        self.done = true;
        SseEvent::default()
            .event("resync")
            .id(self.last.to_string())
            .data(json!({"last_event_id": self.last, "missed": missed}).to_string())
    }

    /// The SSE form of `e` if this client has not seen it and wants it;
    /// `json` is the hub's serialisation, shared by every subscriber.
    fn examine(&mut self, e: &Event, json: Option<&str>) -> Option<SseEvent> {
        if e.id <= self.last {
            return None;
        }
        self.last = e.id;
        if !(visible_to(&self.caller, e) && self.selector.matches(e)) {
            return None;
        }
        if let Some(redacted) = redact_sync(&self.caller, e) {
            return Some(to_sse(
                &redacted,
                &serde_json::to_string(&redacted).unwrap_or_else(|_| "{}".into()),
            ));
        }
        Some(match json {
            Some(json) => to_sse(e, json),
            None => to_sse(e, &serde_json::to_string(e).unwrap_or_else(|_| "{}".into())),
        })
    }
}

/// The SSE stream: `filter=KEY:VALUE` (repeatable), `types=resource.*,…`,
/// `since=SEQ` or `Last-Event-ID` to replay.
#[utoipa::path(get, path = "/api/v1/events",
    params(("filter" = Option<String>, Query, description = "KEY:VALUE, repeatable (provider, category, resource_type, name, team, environment, source, subject)"),
           ("types" = Option<String>, Query, description = "comma-separated types or prefixes ending in *"),
           ("since" = Option<u64>, Query), ("Last-Event-ID" = Option<u64>, Header)),
    responses((status = 200, description = "text/event-stream")))]
pub(super) async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    query: Query,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.read_catalog(&state)?;
    query.allow(&["filter", "types", "since"])?;
    let selector = selector(&query)?;
    let resume = match headers
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()))
    {
        Some(Some(n)) => Some(n),
        Some(None) => {
            return Err(Error::bad_request("Last-Event-ID must be an event sequence number").into())
        }
        None => query.number("since")?,
    };
    let hub = state.events().clone();
    if let Some(n) = resume {
        let end = hub.inner.store.last_sequence().await?;
        if n > end {
            // A cursor from another store, or a made-up one: replaying from
            // it would silently deliver nothing.
            return Err(Error::bad_request(format!(
                "Last-Event-ID {n} is beyond the end of the event log ({end}); reconnect without it to start from now"
            ))
            .into());
        }
    }
    // Subscribe before reading the live point, so nothing falls in between.
    let rx = hub.inner.sender.subscribe();
    let (last, replaying) = match resume {
        Some(n) => (n, true),
        // "From now on" is the log's end, not how far the tail has got.
        None => match hub.inner.store.last_sequence().await {
            Ok(n) => (n.max(hub.live_sequence()), false),
            Err(e) => return Err(e.into()),
        },
    };
    hub.inner.metrics.sse_connected();
    let client = Client {
        hub: hub.clone(),
        caller,
        selector,
        rx,
        last,
        replaying,
        pending: VecDeque::new(),
        shutdown: hub.inner.shutdown.clone(),
        done: false,
        yielded_at: None,
        _gauge: GaugeGuard(hub.inner.metrics.clone()),
    };
    let events = stream::unfold(client, |mut c| async move {
        c.next().await.map(|e| (Ok::<_, Infallible>(e), c))
    });
    let sse: Sse<_> = Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(hub.inner.config.heartbeat)
            .text("heartbeat"),
    );
    Ok(sse.into_response())
}
