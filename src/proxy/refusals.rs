//! Requests pingora refuses before the gateway sees them.
//!
//! When an HTTP/1 request head cannot be parsed (bad framing, a malformed request line or
//! header, a head over pingora's size limit) or uses `CONNECT`, pingora answers by itself —
//! a bare 400 or 405 with `Server: Pingora` — and no `ProxyHttp` phase runs: no request id,
//! no access-log event, no metric. Pingora offers no hook there, so the connection's stream
//! is watched instead: the exact answer pingora writes for such a refusal is replaced with
//! the gateway's own (JSON body, request id, no `Server` header), and the refusal is logged
//! and counted like every other one. Everything else passes through untouched.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

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

use crate::metrics::Metrics;

/// A pingora server app whose connections are watched for pingora's own refusals.
pub struct VisibleRefusals<A> {
    inner: Arc<A>,
    metrics: Arc<Metrics>,
}

impl<A> VisibleRefusals<A> {
    /// Wraps `inner` (the proxy), recording refusals into `metrics`.
    pub fn new(inner: A, metrics: Arc<Metrics>) -> VisibleRefusals<A> {
        VisibleRefusals {
            inner: Arc::new(inner),
            metrics,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for VisibleRefusals<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let watched = Watched {
            inner: stream,
            metrics: self.metrics.clone(),
            replacing: None,
        };
        self.inner.process_new(Box::new(watched), shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// A refusal pingora writes by itself: the status it carries, and the decision label the
/// gateway logs it under.
fn pingora_refusal(head: &[u8]) -> Option<(u16, &'static str, &'static str)> {
    // The whole head, as pingora's `gen_error_response` builds it: nothing an origin's
    // response would be mistaken for (those keep their own headers and reach the client
    // through the gateway's filters).
    let (status, decision, message) = if head.starts_with(b"HTTP/1.1 400 Bad Request\r\n") {
        (400, "malformed_request", "the request could not be parsed")
    } else if head.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\n") {
        (405, "method_not_allowed", "CONNECT is not supported")
    } else {
        return None;
    };
    let rest = &head[head.iter().position(|b| *b == b'\n')? + 1..];
    let shaped = rest.starts_with(b"Server: Pingora\r\nDate: ")
        && head.ends_with(b"\r\n\r\n")
        && contains(rest, b"\r\nContent-Length: 0\r\n")
        && contains(rest, b"\r\nCache-Control: private, no-store\r\n");
    shaped.then_some((status, decision, message))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The gateway's answer in place of pingora's.
fn replacement(status: u16, code: &str, message: &str, request_id: &str) -> Vec<u8> {
    let body = crate::respond::body(code, message);
    let reason = if status == 405 {
        "Method Not Allowed"
    } else {
        "Bad Request"
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The gateway's answer being written in place of pingora's: the bytes, how many are out,
/// and how many bytes of pingora's answer to report written once they all are.
struct Replacing {
    bytes: Vec<u8>,
    written: usize,
    stands_for: usize,
}

/// A connection's stream, watched for pingora's own refusals.
struct Watched {
    inner: Stream,
    metrics: Arc<Metrics>,
    replacing: Option<Replacing>,
}

impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("inner", &self.inner)
            .finish()
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
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
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
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pingoras_own_refusals_are_recognised() {
        let pingora = b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nDate: Sun, 29 Nov 2026 16:16:43 GMT\r\nContent-Length: 0\r\nCache-Control: private, no-store\r\nConnection: close\r\n\r\n";
        assert_eq!(pingora_refusal(pingora).map(|r| r.0), Some(400));
        let connect =
            String::from_utf8_lossy(pingora).replace("400 Bad Request", "405 Method Not Allowed");
        assert_eq!(pingora_refusal(connect.as_bytes()).map(|r| r.0), Some(405));
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nDate: x\r\nContent-Length: 12\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: Pingora\r\n\r\n",
            b"\x00\x00\x04\x08\x00",
        ] {
            assert_eq!(pingora_refusal(other), None, "{:?}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn the_replacement_is_json_with_a_request_id() {
        let text = String::from_utf8(replacement(400, "malformed_request", "m", "rid")).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("x-request-id: rid\r\n"));
        assert!(!text.to_ascii_lowercase().contains("server:"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).unwrap()["error"],
            "malformed_request"
        );
    }
}
