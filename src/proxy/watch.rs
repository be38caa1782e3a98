//! Every client connection, watched below pingora's HTTP layer.
//!
//! Pingora reads a request head with no overall deadline and keeps an HTTP/1.1 connection
//! alive between requests for as long as the client likes, so idle clients, clients that
//! send a header byte now and then, and clients that open a cleartext connection and never
//! send the HTTP/2 preface each hold a connection (and its buffers) forever. It has no cap
//! on connections either. The gateway wraps each connection's stream to add what is missing:
//!
//! - **request-head deadline**: a head must arrive whole within `limits.request_header_timeout`
//!   of its first byte; a new connection's first request (or HTTP/2 preface) within the same
//!   time of the connection's start;
//! - **keep-alive idle timeout**: no new request within `limits.keepalive_timeout` of the last
//!   response closes the connection;
//! - **connection cap**: past `limits.max_connections` open connections on a listener, new
//!   ones are closed as they arrive (and counted);
//! - **pingora's own refusals** are answered, logged and counted by the gateway
//!   ([`super::refusals`]).
//!
//! The proxy tells the stream when a request head has been read and when its response is
//! done ([`request_started`], [`request_finished`]); between the two no deadline applies, so
//! slow origins, long polls and WebSocket tunnels are never cut. HTTP/2 connections (ALPN or
//! the h2c preface) are left to pingora's HTTP/2 handling once they are recognised.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::refusals::{pingora_refusal, replacement};
use crate::config::Gateway;
use crate::metrics::Metrics;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A pingora server app whose connections are watched (see the module documentation).
pub struct ConnectionWatch<A> {
    inner: Arc<A>,
    metrics: Arc<Metrics>,
    config: Arc<ArcSwap<Gateway>>,
    open: Arc<AtomicUsize>,
}

impl<A> ConnectionWatch<A> {
    /// Wraps `inner` (the proxy); limits are read from the running `config` per connection.
    pub fn new(
        inner: A,
        metrics: Arc<Metrics>,
        config: Arc<ArcSwap<Gateway>>,
    ) -> ConnectionWatch<A> {
        ConnectionWatch {
            inner: Arc::new(inner),
            metrics,
            config,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionWatch<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limits = &self.config.load().limits;
        let (header_timeout, keepalive) = (limits.request_header_timeout, limits.keepalive_timeout);
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Slot(self.open.clone());
        if open > limits.max_connections {
            self.metrics.connection_refused();
            tracing::warn!(
                open = open - 1,
                max_connections = limits.max_connections,
                "connection closed: the listener is at limits.max_connections"
            );
            return None;
        }
        let h2 = matches!(stream.selected_alpn_proto(), Some(ALPN::H2));
        let watched = Watched {
            inner: stream,
            metrics: self.metrics.clone(),
            replacing: None,
            phase: AtomicU8::new(if h2 { UNWATCHED } else { AWAITING_HEAD }),
            clock: Mutex::new(Clock {
                waiting_since: Instant::now(),
                head_started: None,
                first: true,
            }),
            timer: None,
            pending: Vec::new(),
            header_timeout,
            keepalive,
            websocket: std::sync::atomic::AtomicBool::new(false),
            going_away: None,
            said_going_away: false,
            shutdown: shutdown.clone(),
            _slot: slot,
        };
        self.inner.process_new(Box::new(watched), shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// Frees a connection's place under the cap when the connection ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waiting for a request head (or the first one, or the HTTP/2 preface): deadlines apply.
const AWAITING_HEAD: u8 = 0;
/// A request is being served: no deadline from here.
const SERVING: u8 = 1;
/// HTTP/2: pingora's HTTP/2 handling owns the connection.
const UNWATCHED: u8 = 2;

/// When the connection started waiting, and when the head being read began.
struct Clock {
    waiting_since: Instant,
    head_started: Option<Instant>,
    /// No request has been read on this connection yet.
    first: bool,
}

/// The gateway's answer being written in place of pingora's: the bytes, how many are out,
/// and how many bytes of pingora's answer to report written once they all are.
struct Replacing {
    bytes: Vec<u8>,
    written: usize,
    stands_for: usize,
}

/// A connection's stream, watched.
pub struct Watched {
    inner: Stream,
    metrics: Arc<Metrics>,
    replacing: Option<Replacing>,
    phase: AtomicU8,
    clock: Mutex<Clock>,
    timer: Option<(Instant, Pin<Box<Sleep>>)>,
    /// Bytes a peek took off the connection, read out before anything else.
    pending: Vec<u8>,
    header_timeout: Duration,
    keepalive: Duration,
    /// The connection is an open WebSocket tunnel.
    websocket: std::sync::atomic::AtomicBool,
    /// Resolves when the server starts shutting down (made when a tunnel first waits).
    going_away: Option<Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>>,
    /// The close frame has been written.
    said_going_away: bool,
    /// The server is shutting down.
    shutdown: ShutdownWatch,
    _slot: Slot,
}

impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("inner", &self.inner)
            .finish()
    }
}

/// The watched stream under a pingora session, if it is one of the gateway's (HTTP/1).
fn watched(session: &pingora::proxy::Session) -> Option<&Watched> {
    session
        .as_downstream()
        .stream()
        .and_then(|s| s.as_any().downcast_ref::<Watched>())
}

/// Called by the proxy once a request head has been read: no deadline until its response is
/// done.
pub fn request_started(session: &pingora::proxy::Session) {
    if let Some(w) = watched(session) {
        if w.phase.load(Ordering::Acquire) == AWAITING_HEAD {
            w.phase.store(SERVING, Ordering::Release);
        }
        w.websocket.store(false, Ordering::Release);
    }
}

/// Called by the proxy when the origin switches a WebSocket request's protocol (101): from
/// here the connection is a tunnel, told to go away when the gateway shuts down.
pub fn websocket_opened(session: &pingora::proxy::Session) {
    let upgrade = session
        .req_header()
        .headers
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if let (true, Some(w)) = (upgrade, watched(session)) {
        w.websocket.store(true, Ordering::Release);
    }
}

/// Called by the proxy when a response is done: the keep-alive idle timer starts.
pub fn request_finished(session: &pingora::proxy::Session) {
    if let Some(w) = watched(session) {
        if w.phase.load(Ordering::Acquire) == SERVING {
            if let Ok(mut clock) = w.clock.lock() {
                *clock = Clock {
                    waiting_since: Instant::now(),
                    head_started: None,
                    first: false,
                };
            }
            w.phase.store(AWAITING_HEAD, Ordering::Release);
        }
    }
}

impl Watched {
    fn peer(&self) -> Option<IpAddr> {
        self.inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
    }

    /// Logs and counts a refusal, and returns the answer to write instead.
    fn refuse(&self, status: u16, decision: &'static str, message: &str) -> Vec<u8> {
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        self.metrics.request("-", "-", decision, status);
        tracing::info!(
            target: "authgate::access",
            request_id = %request_id,
            app = "-",
            route = "-",
            decision,
            status,
            peer = self.peer().map(|ip| ip.to_string()),
            "request refused before it could be read"
        );
        replacement(status, decision, message, &request_id)
    }

    /// When waiting must end, and why.
    fn deadline(&self) -> (Instant, Wait) {
        let clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        match clock.head_started {
            Some(started) => (started + self.header_timeout, Wait::Head),
            None if clock.first => (clock.waiting_since + self.header_timeout, Wait::First),
            None => (clock.waiting_since + self.keepalive, Wait::KeepAlive),
        }
    }

    /// Notes bytes read while waiting for a head: the head has begun (or it is HTTP/2).
    fn saw_bytes(&self, bytes: &[u8]) {
        let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
        if clock.head_started.is_none() {
            clock.head_started = Some(Instant::now());
            if clock.first && bytes.starts_with(H2_PREFACE) {
                // Cleartext HTTP/2 (h2c): its own idle handling applies from here.
                self.phase.store(UNWATCHED, Ordering::Release);
            }
        }
    }

    /// A head that started but did not finish in time is a refusal worth counting; a
    /// connection that never sent anything, or went quiet after its last response, just ends.
    fn timed_out(&self, why: Wait) {
        match why {
            Wait::Head => {
                self.metrics
                    .request("-", "-", "request_header_timeout", 408);
                tracing::info!(
                    target: "authgate::access",
                    decision = "request_header_timeout",
                    peer = self.peer().map(|ip| ip.to_string()),
                    "connection closed: the request head did not arrive in time"
                );
            }
            Wait::First | Wait::KeepAlive => {
                tracing::debug!(?why, "idle connection closed");
            }
        }
    }
}

/// What a connection is waiting for.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// The rest of a request head whose first bytes came.
    Head,
    /// A new connection's first bytes.
    First,
    /// The next request on a kept-alive connection.
    KeepAlive,
}

/// A WebSocket close frame from the server (unmasked), status 1001 "going away".
const WEBSOCKET_GOING_AWAY: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];

impl Watched {
    /// An open WebSocket tunnel whose server has begun shutting down (registers `cx` to be
    /// woken when it does).
    fn tunnel_must_close(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.websocket.load(Ordering::Acquire) || self.phase.load(Ordering::Acquire) != SERVING
        {
            return false;
        }
        let mut shutdown = self.shutdown.clone();
        let going_away = self.going_away.get_or_insert_with(|| {
            Mutex::new(Box::pin(async move {
                let _ = shutdown.wait_for(|down| *down).await;
            }))
        });
        let going_away = going_away.get_mut().unwrap_or_else(|e| e.into_inner());
        going_away.as_mut().poll(cx).is_ready()
    }

    /// Writes the WebSocket close frame (1001, going away) once, if the connection takes it
    /// at once.
    fn say_going_away(&mut self, cx: &mut Context<'_>) {
        if self.said_going_away {
            return;
        }
        self.said_going_away = true;
        let mut inner = Pin::new(&mut self.inner);
        if let Poll::Ready(Ok(_)) = inner.as_mut().poll_write(cx, &WEBSOCKET_GOING_AWAY) {
            let _ = inner.as_mut().poll_flush(cx);
        }
    }
}

impl Drop for Watched {
    /// A WebSocket still open when the process ends is told so (see `poll_read`, which does
    /// it as soon as a shutdown starts), rather than cut. Best effort: the frame is written
    /// only if the connection takes it at once.
    fn drop(&mut self) {
        let open_websocket =
            self.websocket.load(Ordering::Acquire) && self.phase.load(Ordering::Acquire) == SERVING;
        if !open_websocket || !*self.shutdown.borrow() {
            return;
        }
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        self.say_going_away(&mut cx);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            let n = self.pending.len().min(buf.remaining());
            let bytes: Vec<u8> = self.pending.drain(..n).collect();
            buf.put_slice(&bytes);
            if self.phase.load(Ordering::Acquire) == AWAITING_HEAD {
                self.saw_bytes(&bytes);
            }
            return Poll::Ready(Ok(()));
        }
        if self.phase.load(Ordering::Acquire) != AWAITING_HEAD {
            self.timer = None;
            if self.tunnel_must_close(cx) {
                // The gateway is shutting down: the WebSocket's client is told to go away
                // (and reconnect elsewhere), and the tunnel ends as if the client had closed
                // it, so the drain does not wait for it.
                self.say_going_away(cx);
                return Poll::Ready(Ok(()));
            }
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.saw_bytes(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let (deadline, why) = self.deadline();
                let this = &mut *self;
                let timer = match &mut this.timer {
                    Some((at, sleep)) if *at == deadline => sleep,
                    slot => {
                        *slot = Some((deadline, Box::pin(tokio::time::sleep_until(deadline))));
                        &mut slot.as_mut().expect("just set").1
                    }
                };
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.timer = None;
                        this.timed_out(why);
                        // End of stream: pingora closes the connection quietly.
                        Poll::Ready(Ok(()))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            let Some((status, decision, message)) = pingora_refusal(buf) else {
                return Pin::new(&mut self.inner).poll_write(cx, buf);
            };
            let bytes = self.refuse(status, decision, message);
            self.replacing = Some(Replacing {
                bytes,
                written: 0,
                stands_for: buf.len(),
            });
        }
        let this = &mut *self;
        let Some(r) = this.replacing.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while r.written < r.bytes.len() {
            match Pin::new(&mut this.inner).poll_write(cx, &r.bytes[r.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => r.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let stands_for = r.stands_for;
        this.replacing = None;
        Poll::Ready(Ok(stands_for))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Watched {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Watched {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Watched {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Watched {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Watched {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Watched {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Watched {
    /// Pingora peeks for the h2c preface before anything else; that wait has the first
    /// request's deadline too. The bytes are read here and kept to be read again, so the
    /// watch knows whether a slow client sent anything at all.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        use tokio::io::AsyncReadExt;
        let (deadline, why) = self.deadline();
        let mut got = self.pending.len().min(buf.len());
        buf[..got].copy_from_slice(&self.pending[..got]);
        while got < buf.len() {
            match tokio::time::timeout_at(deadline, self.inner.read(&mut buf[got..])).await {
                Ok(Ok(0)) => {
                    self.keep_for_reading(&buf[..got]);
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(Ok(n)) => got += n,
                Ok(Err(e)) => {
                    self.keep_for_reading(&buf[..got]);
                    return Err(e);
                }
                Err(_) => {
                    self.keep_for_reading(&buf[..got]);
                    self.timed_out(if got > 0 { Wait::Head } else { why });
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
        }
        self.keep_for_reading(&buf[..got]);
        if buf.starts_with(H2_PREFACE) {
            // Cleartext HTTP/2 (h2c): its own idle handling applies from here.
            self.phase.store(UNWATCHED, Ordering::Release);
        }
        Ok(true)
    }
}

impl Watched {
    /// Bytes taken off the connection by a peek, to be read again (they replace any kept
    /// before: a peek starts from them).
    fn keep_for_reading(&mut self, bytes: &[u8]) {
        self.pending.clear();
        self.pending.extend_from_slice(bytes);
    }
}
