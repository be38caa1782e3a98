//! The pingora `ProxyHttp` implementation. Each phase is short and delegates: admission
//! decides what the request is, `gate` what happens to it, `respond` answers refusals,
//! `headers` prepares what the origin sees, and `logging` records one access-log event and the
//! metrics.

pub mod admission;
mod backchannel;
pub mod connection;
pub mod ctx;
pub mod forward_auth;
pub mod framing;
pub mod gate;
pub mod headers;
pub mod pages;
pub mod refusals;
pub mod watch;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use pingora::ErrorType;

use crate::acme::Challenges;
use crate::config::{Gateway, Listener, ListenerRole};
use crate::keys::SigningKeys;
use crate::metrics::Metrics;
use crate::oidc::flow::SignIn;
use crate::respond::{self, Reject};
use crate::session::cookie::{strip_gateway_cookies, strip_gateway_set_cookies};
use connection::Connection;
pub use ctx::RequestCtx;
use gate::Verdict;
use headers::{prepare_upstream, Forwarding};

/// What every listener's gate shares: the configuration, metrics, sign-in state, signing
/// keys and pending ACME challenges.
#[derive(Clone)]
pub struct Shared {
    /// The running configuration snapshot.
    pub config: Arc<ArcSwap<Gateway>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Sessions and the sign-in flow.
    pub sign_in: Arc<SignIn>,
    /// The keys identity assertions are signed with.
    pub keys: Arc<SigningKeys>,
    /// HTTP-01 answers for certificate orders.
    pub challenges: Arc<Challenges>,
}

/// The gateway's request path: admission, the gate, then forwarding to the app's origin.
pub struct AuthGate {
    config: Arc<ArcSwap<Gateway>>,
    metrics: Arc<Metrics>,
    sign_in: Arc<SignIn>,
    keys: Arc<SigningKeys>,
    role: ListenerRole,
    challenges: Arc<Challenges>,
    /// Every request here is a forward-auth check.
    forward_auth_only: bool,
    /// This listener's forward-auth mode, if set.
    forward_auth_mode: Option<crate::config::model_signing::ForwardAuthModeFile>,
}

impl AuthGate {
    /// The gate of `listener`.
    pub fn new(shared: Shared, listener: &Listener) -> AuthGate {
        AuthGate {
            config: shared.config,
            metrics: shared.metrics,
            sign_in: shared.sign_in,
            keys: shared.keys,
            role: listener.role,
            challenges: shared.challenges,
            forward_auth_only: listener.forward_auth_only,
            forward_auth_mode: listener.forward_auth_mode,
        }
    }

    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        reject: Reject,
    ) -> Result<bool> {
        ctx.decision = reject.code();
        if crate::pages::wants_html(session.req_header()) {
            let page = pages::refusal_page(&self.sign_in, session, ctx, &reject).await;
            respond::send_page(session, &reject, page, &ctx.request_id).await?;
        } else {
            respond::send(session, &reject, &ctx.request_id).await?;
        }
        Ok(true)
    }

    /// An HTTP/1 request that came with both `Transfer-Encoding` and `Content-Length`
    /// (pingora keeps only the former in the parsed header). Checked only when
    /// `Transfer-Encoding` is present, so plain requests pay nothing.
    fn dropped_content_length(&self, session: &Session) -> bool {
        !session.is_http2()
            && session
                .req_header()
                .headers
                .contains_key(http::header::TRANSFER_ENCODING)
            && framing::raw_head_has_content_length(&session.as_downstream().to_h1_raw())
    }
}

/// A duration in milliseconds, to the microsecond (`2.686`, not `2.6857740000000003`).
fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn too_large(what: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(413), what)
}

#[async_trait]
impl ProxyHttp for AuthGate {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.config.load_full())
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // The head is in: the connection's deadlines pause until the response is done, and a
        // shutdown waits for it.
        watch::request_started(session);
        ctx.in_flight = Some(ctx::InFlight::start(&self.metrics));
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // An ACME CA validating a custom domain's certificate order (HTTP-01). Answered for
        // any host: the domain is not served yet, and a key authorization is no secret.
        let challenge = self
            .challenges
            .answer(session.req_header().uri.path())
            .await;
        if let Some(key_authorization) = challenge {
            ctx.decision = "acme_challenge";
            respond::send_answer(session, respond::plain(key_authorization), &ctx.request_id)
                .await?;
            return Ok(true);
        }
        if self.dropped_content_length(session) {
            let reject = Reject::BadFraming("both Content-Length and Transfer-Encoding");
            return self.refuse(session, ctx, reject).await;
        }
        if forward_auth::is_check(self.forward_auth_only, &ctx.snapshot, session.req_header()) {
            return self.forward_auth(session, ctx).await;
        }
        let admitted = match admission::admit(&ctx.snapshot, session.req_header()) {
            Ok(admitted) => admitted,
            Err((reject, app)) => {
                ctx.refused_app = app;
                return self.refuse(session, ctx, reject).await;
            }
        };
        if let ListenerRole::RedirectToHttps(port) = self.role {
            let answer = gate::to_https(&admitted, session.req_header(), port);
            ctx.admitted = Some(admitted);
            ctx.decision = answer.decision;
            respond::send_answer(session, answer, &ctx.request_id).await?;
            return Ok(true);
        }
        if !connection::sni_matches(session, &ctx.snapshot, &admitted.app) {
            ctx.admitted = Some(admitted);
            return self.refuse(session, ctx, Reject::Misdirected).await;
        }
        let conn = Connection::of(session, &ctx.snapshot);
        ctx.connection = Some(conn);
        if admitted
            .path
            .strip_prefix(admitted.app.auth_prefix.as_str())
            == Some("/backchannel-logout")
        {
            let app = admitted.app.clone();
            ctx.admitted = Some(admitted);
            let answer = self.backchannel_logout(session, &app).await?;
            ctx.decision = answer.decision;
            respond::send_answer(session, answer, &ctx.request_id).await?;
            return Ok(true);
        }
        let verdict = gate::decide(
            &self.sign_in,
            &self.keys,
            &ctx.snapshot,
            session.req_header(),
            &admitted,
            conn.tls,
            &ctx.request_id,
        )
        .await;
        ctx.admitted = Some(admitted);
        match verdict {
            Verdict::Forward(identity) => {
                ctx.identity = identity;
                ctx.decision = "allow";
                Ok(false)
            }
            Verdict::Refuse(reject) => self.refuse(session, ctx, reject).await,
            Verdict::Answer(answer) => {
                ctx.decision = answer.decision;
                if let Some(a) = &ctx.admitted {
                    match a.path.strip_prefix(a.app.auth_prefix.as_str()) {
                        Some("/callback") => self.metrics.sign_in(&a.app.id, answer.decision),
                        Some("/logout") if answer.decision == "signed_out" => {
                            self.metrics.sign_out(&a.app.id)
                        }
                        _ => {}
                    }
                }
                respond::send_answer(session, answer, &ctx.request_id).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let admitted = ctx
            .admitted
            .as_ref()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no app chosen"))?;
        Ok(Box::new(admitted.app.origin.peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(admitted) = ctx.admitted.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no app chosen");
        };
        let uri = admitted
            .upstream_uri
            .parse::<http::Uri>()
            .map_err(|e| Error::because(ErrorType::InternalError, "upstream uri", e))?;
        upstream.set_uri(uri);
        match &admitted.app.origin.host_header {
            Some(host) => upstream.insert_header(http::header::HOST, host.clone())?,
            None => upstream.insert_header(http::header::HOST, admitted.client_host.as_str())?,
        }
        let conn = ctx
            .connection
            .unwrap_or_else(|| Connection::of(session, &ctx.snapshot));
        let fwd = Forwarding {
            peer: conn.peer,
            peer_trusted: conn.peer_trusted,
            proto: if conn.direct_tls { "https" } else { "http" },
            host: &admitted.client_host,
            request_id: &ctx.request_id,
        };
        prepare_upstream(upstream, &ctx.snapshot.managed_headers, &fwd);
        strip_gateway_cookies(upstream);
        if let Some(identity) = &ctx.identity {
            for (name, value) in &identity.headers {
                upstream.insert_header(name.clone(), value.clone())?;
            }
            if !identity.forward_authorization {
                upstream.remove_header(&http::header::AUTHORIZATION);
            }
        }
        ctx.upstream_started = Some(Instant::now());
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(chunk) = body {
            ctx.request_body_bytes += chunk.len() as u64;
            if ctx.request_body_bytes > ctx.snapshot.limits.max_request_body_bytes {
                ctx.decision = Reject::BodyTooLarge.code();
                return Err(too_large("request body too large"));
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(limit) = ctx.snapshot.limits.max_response_body_bytes {
            let declared = upstream
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > limit) {
                return Error::e_explain(ErrorType::HTTPStatus(502), "origin response too large");
            }
        }
        let planted = strip_gateway_set_cookies(upstream);
        if planted > 0 {
            tracing::warn!(
                request_id = %ctx.request_id,
                app = ctx.app_id(),
                removed = planted,
                "the origin tried to set the gateway's cookies; removed"
            );
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if response.status == http::StatusCode::SWITCHING_PROTOCOLS {
            watch::websocket_opened(session);
        }
        response.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(chunk) = body {
            ctx.response_body_bytes += chunk.len() as u64;
            if let Some(limit) = ctx.snapshot.limits.max_response_body_bytes {
                if ctx.response_body_bytes > limit {
                    return Error::e_explain(
                        ErrorType::HTTPStatus(502),
                        "origin response too large",
                    );
                }
            }
        }
        if end_of_stream {
            ctx.finish_upstream();
        }
        Ok(None)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, code, message) = ctx::classify(e);
        if ctx.decision == "allow" || ctx.decision.is_empty() {
            ctx.decision = code;
        }
        if status > 0 && session.response_written().is_none() {
            let (resp, body) = if crate::pages::wants_html(session.req_header()) {
                let page = pages::upstream_page(ctx, status, code);
                (respond::answer_header(&page, &ctx.request_id), page.body)
            } else {
                let body = respond::body(code, message);
                (
                    respond::json_header(status, body.len(), &ctx.request_id),
                    body,
                )
            };
            if let Ok(resp) = resp {
                let _ = session
                    .as_downstream_mut()
                    .write_error_response(resp, body)
                    .await;
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// A request the client broke (closed its connection, sent a malformed body, a protocol
    /// error) is the client's mistake, not the gateway's: pingora's ERROR line is replaced by
    /// the gateway's own at DEBUG or WARN, with the request id (see `logging`).
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        *e.esource() == pingora::ErrorSource::Downstream
    }

    /// What pingora's own error lines say about the request: never the query string, which
    /// may carry secrets (`?api_key=`).
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        let host = req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        format!("{} {}, Host: {host}", req.method, req.uri.path())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        watch::request_finished(session);
        ctx.finish_upstream();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let app = ctx.app_id();
        let route = ctx.admitted.as_ref().map_or("-", |a| &a.route);
        let decision = if ctx.decision.is_empty() {
            "error"
        } else {
            ctx.decision
        };
        self.metrics.request(app, route, decision, status);
        if let Some(upstream) = ctx.upstream_duration {
            self.metrics.upstream(app, upstream.as_secs_f64());
        }
        let req = session.req_header();
        if let Some(e) = e.filter(|e| *e.esource() == pingora::ErrorSource::Downstream) {
            let gone = matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            );
            if gone {
                tracing::debug!(request_id = %ctx.request_id, error = %e.etype().as_str(), "the client went away");
            } else {
                tracing::warn!(request_id = %ctx.request_id, error = %e.etype().as_str(), "the client's request broke the protocol");
            }
        }
        let identity = ctx.identity.as_ref();
        tracing::info!(
            target: "authgate::access",
            request_id = %ctx.request_id,
            app,
            route,
            decision,
            status,
            method = %req.method,
            path = req.uri.path(),
            // A forward-auth check names the request it decided on.
            checked = ctx
                .admitted
                .as_ref()
                .filter(|_| ctx.forward_auth)
                .map(|a| a.path.as_str()),
            user = identity.and_then(|i| i.user.as_deref()),
            auth = identity.map(|i| i.via),
            duration_ms = millis(ctx.started.elapsed()),
            upstream_ms = ctx.upstream_duration.map(millis),
            error = e.map(|e| e.etype().as_str()),
            "request"
        );
    }
}
