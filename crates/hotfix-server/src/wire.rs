//! The accept loop of `hotfix serve`: HTTP/1.1 connections with the limits
//! `axum::serve` does not have.
//!
//! Without them a socket that sends nothing, or half a request line, holds
//! a file descriptor (and a task) for ever, and enough of them stop the
//! server from accepting anyone. So every connection has:
//!
//! - a **header-read timeout**: the request's head must be complete within
//!   `header_read_timeout_s`, counted from the connection's accept for the
//!   first request and from the first byte of a later one;
//! - an **idle timeout**: a kept-alive connection may wait `idle_timeout_s`
//!   between a response and the next request's first byte;
//! - no timeout while a request is being answered: the dashboard's event
//!   stream and any slow response run as long as they need (idle means
//!   between requests, never during one).
//!
//! A connection past its deadline is closed without an answer (no request
//! was read that could be answered).
//!
//! hyper's own `header_read_timeout` is not used: it restarts when a
//! response ends, so it also cuts every kept-alive connection after the
//! header timeout, and an idle timeout longer than it could not be had.
//!
//! And at most `max_connections` are served at once. Beyond the cap the
//! loop stops accepting: new connections wait in the kernel's listen
//! backlog (they are not refused) and are served in order as slots free
//! up. Idle sockets cannot hold the slots for long: the timeouts above
//! close them, so a flood of them delays real requests by at most the
//! header-read timeout instead of starving them.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response};
use hotfix_core::config::ServerConfig;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// The connection limits, from `[server]` (validated there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(s: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(s.header_read_timeout_s),
            idle_timeout: Duration::from_secs(s.idle_timeout_s),
            // At least one: a zero cap would accept nobody (the config
            // refuses it; this keeps a hand-built config from hanging).
            max_connections: usize::try_from(s.max_connections)
                .unwrap_or(usize::MAX)
                .clamp(1, MAX_SLOTS),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&ServerConfig::default())
    }
}

/// More slots than a semaphore or a `u32` take is no cap anyway.
const MAX_SLOTS: usize = u32::MAX as usize >> 4;

/// Waits until `rx` says stop (or its sender is gone, which means the same).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Serves `app` on `listener` until `shutdown` says stop, then waits for
/// the requests in flight (connections between requests are closed at once).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // A slot first: while none is free, nothing is accepted and new
        // connections wait in the listen backlog.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            () = stopped(&mut shutdown) => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        // Answers are small and written whole: do not wait to batch them.
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            app.clone(),
            limits,
            shutdown.clone(),
            slot,
        ));
    }
    // Nobody new from here on; every connection holds its slot until it
    // ends, so having all of them back means every connection is done.
    drop(listener);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// A failed accept: the peer gave up (try the next one at once), or the
/// process is out of file descriptors or memory (wait a little: retrying
/// at once would spin, and connections ending will free some).
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "cannot accept a connection (retrying in 1 s)");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// One connection, from accept to close.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let track = Arc::new(Track::new(limits));
    let io = TokioIo::new(Watched {
        io: stream,
        track: track.clone(),
    });
    let svc = Tracked {
        inner: TowerToHyperService::new(app),
        track: track.clone(),
    };
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, svc);
    let mut conn = std::pin::pin!(conn);
    let mut draining = false;
    loop {
        let deadline = track.deadline();
        tokio::select! {
            // hyper's errors here are the peer's (a reset, a malformed
            // request already answered 400): nothing to tell anyone.
            _ = conn.as_mut() => return,
            () = track.changed.notified() => {}
            () = until(deadline) => {
                if track.expired() {
                    // Dropping the connection closes the socket.
                    return;
                }
            }
            () = stopped(&mut shutdown), if !draining => {
                draining = true;
                if !track.busy() {
                    // Between requests, or halfway through a head: nothing
                    // is owed to it, and waiting would hold up the stop.
                    return;
                }
                // Finish the response in flight, then close.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Where one connection is: answering (no deadline), reading a head, or
/// idle between requests.
struct Track {
    limits: Limits,
    state: Mutex<State>,
    /// Woken when the deadline may have moved earlier or appeared.
    changed: Notify,
}

struct State {
    /// Requests taken by the router whose response body has not ended.
    in_flight: usize,
    /// When the current request's head began: the accept for the first
    /// request, the first byte for a later one. `None` while idle.
    head_since: Option<Instant>,
    /// When the last response ended.
    idle_since: Instant,
}

impl Track {
    fn new(limits: Limits) -> Track {
        let now = Instant::now();
        Track {
            limits,
            state: Mutex::new(State {
                in_flight: 0,
                head_since: Some(now),
                idle_since: now,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few numbers, consistent after every statement.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deadline(&self) -> Option<Instant> {
        let s = self.lock();
        if s.in_flight > 0 {
            None
        } else if let Some(h) = s.head_since {
            Some(h + self.limits.header_read_timeout)
        } else {
            Some(s.idle_since + self.limits.idle_timeout)
        }
    }

    fn expired(&self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }

    fn busy(&self) -> bool {
        self.lock().in_flight > 0
    }

    /// Bytes came in: if the connection was idle, a new head begins.
    fn read_some(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.head_since.is_none() {
            s.head_since = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    /// The router took a request: no deadline until its response ends.
    fn begin(self: &Arc<Self>) -> InFlight {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_since = None;
        InFlight(self.clone())
    }
}

/// A request being answered; dropped when its response body ends (or the
/// response is abandoned), which starts the idle time.
struct InFlight(Arc<Track>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
            s.head_since = None;
        }
        drop(s);
        self.0.changed.notify_one();
    }
}

/// The router, counting the requests in flight.
#[derive(Clone)]
struct Tracked {
    inner: TowerToHyperService<Router>,
    track: Arc<Track>,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl Service<Request<Incoming>> for Tracked {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, req: Request<Incoming>) -> Answer {
        let guard = self.track.begin();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let res = answer.await?;
            Ok(res.map(|body| TrackedBody {
                body,
                _guard: guard,
            }))
        })
    }
}

/// A response body that keeps its request in flight until hyper has
/// written it to the end and dropped it.
struct TrackedBody {
    body: Body,
    _guard: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, telling [`Track`] when bytes come in.
struct Watched {
    io: TcpStream,
    track: Arc<Track>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            me.track.read_some();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
