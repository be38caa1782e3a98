//! Per-request state, shared across pingora's phases. Nothing about a request lives anywhere
//! else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::{Error, ErrorSource, ErrorType};

use crate::config::{App, Gateway};
use crate::proxy::admission::Admitted;

/// Everything the gateway knows about one request.
pub struct RequestCtx {
    /// The configuration snapshot this request is served under, from start to end.
    pub snapshot: Arc<Gateway>,
    /// When the request arrived.
    pub started: Instant,
    /// The id sent to the origin and back to the client as `X-Request-Id`.
    pub request_id: String,
    /// Set once admission accepted the request head.
    pub admitted: Option<Admitted>,
    /// Facts about the downstream connection, once the request was admitted.
    pub connection: Option<crate::proxy::connection::Connection>,
    /// The verified identity, on authenticated routes.
    pub identity: Option<crate::authn::Identity>,
    /// The app of a refused request, when its host was known.
    pub refused_app: Option<Arc<App>>,
    /// The metric/log label of what the gateway decided (`allow`, `unauthenticated`, …).
    pub decision: &'static str,
    /// A forward-auth check: `admitted` is the request the calling proxy described.
    pub forward_auth: bool,
    /// Request body bytes seen so far.
    pub request_body_bytes: u64,
    /// Response body bytes seen so far.
    pub response_body_bytes: u64,
    /// When the request was handed to the origin.
    pub upstream_started: Option<Instant>,
    /// Origin round trip, once the response ended.
    pub upstream_duration: Option<Duration>,
    /// Counts this request as in flight until the context is dropped (after its log line, or
    /// when its WebSocket tunnel closes).
    pub in_flight: Option<InFlight>,
}

/// One request in flight: counted on the gauge a shutdown waits on, until dropped.
pub struct InFlight(Arc<crate::metrics::Metrics>);

impl InFlight {
    /// Counts a request in flight.
    pub fn start(metrics: &Arc<crate::metrics::Metrics>) -> InFlight {
        metrics.request_started();
        InFlight(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

impl RequestCtx {
    /// A fresh context for a request served under `snapshot`.
    pub fn new(snapshot: Arc<Gateway>) -> RequestCtx {
        RequestCtx {
            snapshot,
            started: Instant::now(),
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            admitted: None,
            connection: None,
            identity: None,
            refused_app: None,
            decision: "",
            forward_auth: false,
            request_body_bytes: 0,
            response_body_bytes: 0,
            upstream_started: None,
            upstream_duration: None,
            in_flight: None,
        }
    }

    /// Records the end of the origin round trip (first call wins).
    pub fn finish_upstream(&mut self) {
        if self.upstream_duration.is_none() {
            self.upstream_duration = self.upstream_started.map(|t| t.elapsed());
        }
    }

    /// The app id for logs and metrics, `-` when no app was found.
    pub fn app_id(&self) -> &str {
        match (&self.admitted, &self.refused_app) {
            (Some(a), _) => &a.app.id,
            (None, Some(app)) => &app.id,
            (None, None) => "-",
        }
    }
}

/// Maps a proxying failure to (status, code, message) for the client. Status 0 means the
/// client is gone and nothing can be written.
pub fn classify(e: &Error) -> (u16, &'static str, &'static str) {
    use ErrorType::*;
    match e.etype() {
        HTTPStatus(413) => (413, "body_too_large", "request body too large"),
        HTTPStatus(502) => (502, "bad_gateway", "the origin's response was refused"),
        HTTPStatus(code) if (400..600).contains(code) => (*code, "error", "request failed"),
        ConnectTimedout | TLSHandshakeTimedout | ReadTimedout | WriteTimedout
            if *e.esource() == ErrorSource::Upstream =>
        {
            (504, "origin_timeout", "the origin did not answer in time")
        }
        _ => match e.esource() {
            ErrorSource::Upstream => (502, "origin_unavailable", "the origin could not be reached"),
            ErrorSource::Downstream => match e.etype() {
                WriteError | ReadError | ConnectionClosed => (0, "client_gone", ""),
                _ => (400, "bad_request", "malformed request"),
            },
            ErrorSource::Internal | ErrorSource::Unset => {
                (502, "gateway_error", "the request could not be forwarded")
            }
        },
    }
}
