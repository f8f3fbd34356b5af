//! The transport: accepting connections and serving HTTP/1.1 on them, with
//! the limits no caller may exceed (issue 11): a request head must arrive
//! within `server.header_read_timeout` of the connection opening or its
//! first byte, a kept-alive connection idle for `server.idle_timeout` is
//! closed, and at most `server.max_connections` are served at once.
//!
//! Why not `axum::serve`: it has no header or idle timeout and no cap, and
//! ~20,000 idle sockets exhausted the file descriptors. hyper's own header
//! timer also runs while a connection waits between requests, so it cannot
//! tell a slow head from an idle keep-alive; each connection here carries a
//! small tracker instead (bytes read, requests in flight, since when idle)
//! that its task checks, and the accept loop uses to close an idle
//! connection when the cap is reached (one that never sent a request
//! first, then the one idle the longest). A head that times out is answered
//! `408 REQUEST_TIMEOUT`, a connection over the cap with no idle one to
//! close `503 SERVICE_UNAVAILABLE`, both with the error body.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

use crate::config::ServerLimits;

/// How long a graceful shutdown waits for open connections to finish.
const CLOSE_LIMIT: Duration = Duration::from_secs(30);

/// What one connection is doing, shared by its task and the accept loop.
struct Tracker {
    /// When its last request finished (or it opened).
    idle_since: Mutex<Instant>,
    /// When the first byte of the next request head arrived, if it has.
    head_started: Mutex<Option<Instant>>,
    /// Requests whose response has not been sent to the end.
    in_flight: AtomicUsize,
    /// Requests served so far.
    served: AtomicU64,
    /// Tells its task to close it (the cap needs its slot).
    evict: Notify,
    /// Bytes read since the last request started: the next request's head
    /// (and whatever follows it in the same reads).
    head_bytes: AtomicUsize,
    /// Set when a head reached the cap and reading stopped.
    head_too_large: AtomicBool,
    /// Since when a write has waited for the socket to take bytes (the
    /// client reads nothing); cleared by every write that goes through.
    write_blocked_since: Mutex<Option<Instant>>,
}

impl Tracker {
    fn new() -> Self {
        Tracker {
            idle_since: Mutex::new(Instant::now()),
            head_started: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            evict: Notify::new(),
            head_bytes: AtomicUsize::new(0),
            head_too_large: AtomicBool::new(false),
            write_blocked_since: Mutex::new(None),
        }
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_bytes.store(0, Ordering::Release);
        *self.head_started.lock().unwrap() = None;
    }

    fn request_finished(&self) {
        *self.idle_since.lock().unwrap() = Instant::now();
        self.served.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn bytes_read(&self, n: usize) {
        if self.idle() {
            self.head_bytes.fetch_add(n, Ordering::AcqRel);
            self.head_started
                .lock()
                .unwrap()
                .get_or_insert_with(Instant::now);
        }
    }

    fn write_blocked(&self) {
        self.write_blocked_since
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
    }

    fn wrote(&self) {
        *self.write_blocked_since.lock().unwrap() = None;
    }

    /// Whether the client has taken no byte for `limit` while a write waits.
    fn stalled(&self, limit: Duration) -> bool {
        self.write_blocked_since
            .lock()
            .unwrap()
            .is_some_and(|since| since.elapsed() >= limit)
    }

    /// Whether a head being read has reached `cap` bytes without ending
    /// (hyper asks for more only when what it holds is not a whole head).
    fn head_over(&self, cap: usize) -> bool {
        let over = self.idle() && self.head_bytes.load(Ordering::Acquire) >= cap;
        if over {
            self.head_too_large.store(true, Ordering::Release);
        }
        over
    }

    /// When the connection must be closed if nothing changes, and whether
    /// that is for a late head (answered 408) rather than idleness.
    fn deadline(&self, limits: &ServerLimits) -> Option<(Instant, bool)> {
        if !self.idle() {
            return None;
        }
        if let Some(started) = *self.head_started.lock().unwrap() {
            return Some((started + limits.header_read_timeout, true));
        }
        let since = *self.idle_since.lock().unwrap();
        if self.served.load(Ordering::Relaxed) == 0 {
            // A connection that never sent a head waits no longer than a head may take.
            Some((since + limits.header_read_timeout, true))
        } else {
            Some((since + limits.idle_timeout, false))
        }
    }
}

/// The open connections.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Tracker>>>,
    /// Signalled when a connection closes (shutdown waits on it).
    closed: Notify,
}

impl Registry {
    fn len(&self) -> usize {
        self.open.lock().unwrap().len()
    }

    /// Closes an idle connection — one that never sent a request first (the
    /// likeliest to be hostile), else the one idle the longest; false when
    /// none is idle.
    fn evict_oldest_idle(&self) -> bool {
        let mut open = self.open.lock().unwrap();
        let oldest = open
            .iter()
            .filter(|(_, t)| t.idle())
            .min_by_key(|(_, t)| {
                (
                    t.served.load(Ordering::Relaxed) > 0,
                    *t.idle_since.lock().unwrap(),
                )
            })
            .map(|(id, _)| *id);
        match oldest.and_then(|id| open.remove(&id)) {
            Some(t) => {
                t.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A socket shared between hyper and the connection task, so the task can
/// still answer 408 after taking the connection from hyper.
struct Shared {
    stream: Arc<TcpStream>,
    tracker: Arc<Tracker>,
    /// The most a request head may take before reading stops.
    head_cap: usize,
}

impl AsyncRead for Shared {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.tracker.head_over(self.head_cap) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            )));
        }
        loop {
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            match read_once(&self.stream, buf) {
                Ok(n) => {
                    if n > 0 {
                        self.tracker.bytes_read(n);
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// The most one read asks for. hyper hands a fresh, uninitialised
/// buffer over its whole spare capacity (8 KiB and up) per read, and a
/// safe read must zero what it reads into first: zeroing all of it was 3%
/// of the server's CPU at 100k requests/s (benches/server), for request
/// heads that are a few hundred bytes. Bodies larger than this take more
/// reads. Over TLS each read zeroes what it may fill; plain connections
/// read into a buffer zeroed once per worker thread instead ([`Plain`]).
const READ_CHUNK: usize = 4096;

thread_local! {
    /// What a plain connection reads into before handing the bytes to
    /// hyper: zeroed once per thread, so no read zeroes anything.
    static SCRATCH: std::cell::RefCell<[u8; READ_CHUNK]> =
        const { std::cell::RefCell::new([0; READ_CHUNK]) };
}

/// A plain connection's socket as hyper reads and writes it: [`Shared`]
/// through hyper's own I/O traits rather than `TokioIo`'s adapter. The
/// adapter hands each read a fresh uninitialised buffer, which a safe read
/// must zero before the kernel fills it — 4 KiB zeroed per request for
/// heads of a few hundred bytes (13% of a cached GET's instructions,
/// callgrind, benches/README.md). Here the kernel fills the thread's
/// [`SCRATCH`] buffer and hyper gets a copy of what was read.
struct Plain(Shared);

impl hyper::rt::Read for Plain {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let wanted = buf.remaining().min(READ_CHUNK);
        SCRATCH.with_borrow_mut(|scratch| {
            let mut read = ReadBuf::new(&mut scratch[..wanted]);
            let polled = Pin::new(&mut self.0).poll_read(cx, &mut read);
            if let Poll::Ready(Ok(())) = polled {
                buf.put_slice(read.filled());
            }
            polled
        })
    }
}

impl hyper::rt::Write for Plain {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// One `recv` into `buf`, like tokio's own `TcpStream` reads: a short
/// read clears the socket's readiness, so the next read waits for epoll
/// instead of asking the kernel for an `EAGAIN` first (one `recvfrom` less
/// per request). Returns the bytes read (0 at end of stream) or
/// `WouldBlock` when nothing was ready.
fn read_once(stream: &TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    let dst = buf.initialize_unfilled_to(buf.remaining().min(READ_CHUNK));
    let wanted = dst.len();
    let mut got = None;
    let result = stream.try_io(Interest::READABLE, || {
        let n = stream.try_read(dst)?;
        got = Some(n);
        // A short read drained the socket: report `WouldBlock` so tokio
        // clears the readiness it cached (what its own reads do).
        if n > 0 && n < wanted {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match got {
        Some(n) => {
            buf.advance(n);
            Ok(n)
        }
        // The read failed: not ready, or a real error.
        None => result,
    }
}

impl Shared {
    /// One write through `write` once the socket takes bytes, the tracker
    /// told whether the write waits (the client reads nothing) or went
    /// through.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.tracker.write_blocked();
                    return Poll::Pending;
                }
            }
            match write(&self.stream) {
                Ok(n) => {
                    self.tracker.wrote();
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Writes are vectored, as tokio's own `TcpStream`'s: hyper then sends a
/// response's head and body in one `writev` without first copying the
/// body behind the head.
impl AsyncWrite for Shared {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |stream| stream.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |stream| stream.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets open
/// connections finish (for at most 30 s).
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let registry = Arc::new(Registry::default());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or a transient error: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if registry.len() >= limits.max_connections && !registry.evict_oldest_idle() {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        }
        let tracker = Arc::new(Tracker::new());
        let id = registry.next.fetch_add(1, Ordering::Relaxed);
        registry.open.lock().unwrap().insert(id, tracker.clone());
        let (app, registry, shutdown) = (app.clone(), registry.clone(), shutdown.clone());
        let tls = tls.clone();
        tokio::spawn(async move {
            let conn = Conn {
                stream: Arc::new(stream),
                peer: peer.ip(),
                tracker,
                app,
                limits,
                shutdown,
                identity: None,
            };
            match tls {
                None => conn.plain().await,
                Some(acceptor) => conn.tls(acceptor).await,
            }
            registry.open.lock().unwrap().remove(&id);
            registry.closed.notify_waiters();
        });
    }
    let deadline = tokio::time::Instant::now() + CLOSE_LIMIT;
    while registry.len() > 0 {
        let closed = registry.closed.notified();
        if tokio::time::timeout_at(deadline, closed).await.is_err() {
            tracing::warn!(
                open = registry.len(),
                "connections still open after {CLOSE_LIMIT:?}"
            );
            break;
        }
    }
    Ok(())
}

/// One accepted connection, before it is served.
struct Conn {
    stream: Arc<TcpStream>,
    peer: std::net::IpAddr,
    tracker: Arc<Tracker>,
    app: Router,
    limits: ServerLimits,
    shutdown: watch::Receiver<bool>,
    /// The client certificate verified in the TLS handshake, parsed once;
    /// every request on the connection carries it (auth/certs.rs).
    identity: Option<Arc<super::auth::PeerIdentity>>,
}

impl Conn {
    /// The socket hyper reads and writes, counted by the tracker.
    fn shared(&self) -> Shared {
        Shared {
            stream: self.stream.clone(),
            tracker: self.tracker.clone(),
            head_cap: self.limits.max_header_bytes * 4,
        }
    }

    /// Plain HTTP.
    async fn plain(self) {
        let io = Plain(self.shared());
        connection(io, true, self).await;
    }

    /// HTTPS: the handshake must end within `header_read_timeout`. The
    /// canned 408 and 431 answers are plain bytes, so over TLS such a
    /// connection is closed without one.
    async fn tls(mut self, acceptor: tokio_rustls::TlsAcceptor) {
        let handshake = acceptor.accept(self.shared());
        match tokio::time::timeout(self.limits.header_read_timeout, handshake).await {
            Ok(Ok(tls)) => {
                self.identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| super::auth::PeerIdentity::from_der(leaf))
                    .map(Arc::new);
                connection(TokioIo::new(tls), false, self).await
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!("TLS handshake did not finish in time"),
        }
    }
}

/// Serves one connection until it closes, times out, is evicted, or the
/// server shuts down (then in-flight requests finish). `plain`: whether a
/// canned answer may be written on the raw socket.
async fn connection<I>(io: I, plain: bool, conn: Conn)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Conn {
        stream,
        peer,
        tracker,
        app,
        limits,
        mut shutdown,
        identity,
    } = conn;
    let head_cap = limits.max_header_bytes * 4;
    let service_tracker = tracker.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // The rate limits key anonymous callers by their address; the
        // front layer adds the principal to the same extension.
        request.extensions_mut().insert(super::auth::Origin {
            ip: Some(peer),
            identity: identity.clone(),
            principal: None,
        });
        let tracker = service_tracker.clone();
        tracker.request_started();
        let app = app.clone();
        async move {
            let response = app.oneshot(request.map(Body::new)).await?;
            // The request counts as in flight until its body is sent (or dropped).
            let guard = Finished(tracker);
            Ok::<_, std::convert::Infallible>(response.map(|body| Tracked {
                body,
                _guard: guard,
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        // No hyper timer: the tracker applies the head and idle limits (see
        // the module docs), and hyper's own header timer re-armed a tokio
        // sleep for every request head read, a timer-wheel update per
        // request for a backstop that never fired first.
        .header_read_timeout(None)
        // A backstop only: hyper would refuse a head over its buffer with a
        // bodiless 431; the tracker stops reading at `head_cap`.
        .max_buf_size((head_cap * 2).max(16 * 1024))
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut shutting_down = *shutdown.borrow();
    if shutting_down {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        // Checked at least this often: whether the client stalled.
        let tick = Instant::now() + Duration::from_secs(1).min(limits.write_timeout / 4);
        let wake = tracker
            .deadline(&limits)
            .map_or(tick, |(at, _)| at.min(tick));
        tokio::select! {
            _ = conn.as_mut() => {
                if plain && tracker.head_too_large.load(Ordering::Acquire) {
                    head_too_large(&stream, &limits).await;
                }
                return;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if tracker.stalled(limits.write_timeout) {
                    tracing::info!(
                        "closing a connection whose client read nothing for {:?}",
                        limits.write_timeout
                    );
                    return;
                }
                if let Some((at, head)) = tracker.deadline(&limits) {
                    if Instant::now() >= at {
                        if head && plain {
                            late_head(&stream, &limits).await;
                        }
                        return;
                    }
                }
            }
            _ = tracker.evict.notified() => return,
            _ = shutdown.changed(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A response body that keeps its request counted in flight until it is
/// sent or dropped; frames and size hints pass through untouched.
struct Tracked {
    body: Body,
    _guard: Finished,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Counts a request finished when dropped (its response sent or abandoned).
struct Finished(Arc<Tracker>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A canned error response with the error body.
fn canned(status: &str, code: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({"error": {"code": code, "message": message, "details": {}, "trace_id": ""}})
        .to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes `bytes` and closes, within a second.
async fn answer_and_close(stream: &TcpStream, bytes: &[u8]) {
    let write = async {
        let mut sent = 0;
        while sent < bytes.len() {
            stream.writable().await?;
            match stream.try_write(&bytes[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        // Read what the client still sends for a moment, so closing does
        // not reset the connection before it reads the answer.
        let mut sink = [0u8; 4096];
        let drain = async {
            loop {
                stream.readable().await?;
                match stream.try_read(&mut sink) {
                    Ok(0) => return Ok::<_, io::Error>(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
        Ok::<_, io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

async fn late_head(stream: &TcpStream, limits: &ServerLimits) {
    tracing::debug!("closing a connection whose request head was late");
    let message = format!(
        "the request head did not arrive within {:?}",
        limits.header_read_timeout
    );
    answer_and_close(
        stream,
        &canned("408 Request Timeout", "REQUEST_TIMEOUT", &message),
    )
    .await;
}

async fn head_too_large(stream: &TcpStream, limits: &ServerLimits) {
    tracing::debug!("closing a connection whose request head is too large");
    let message = format!(
        "the request line and headers are larger than {} bytes",
        limits.max_header_bytes
    );
    answer_and_close(
        stream,
        &canned(
            "431 Request Header Fields Too Large",
            "REQUEST_HEADER_FIELDS_TOO_LARGE",
            &message,
        ),
    )
    .await;
}

async fn refuse(stream: TcpStream, cap: usize) {
    tracing::warn!(cap, "connection refused: every connection slot is busy");
    let message = format!("the server is serving its {cap} connections; try again shortly");
    answer_and_close(
        &stream,
        &canned("503 Service Unavailable", "SERVICE_UNAVAILABLE", &message),
    )
    .await;
}
