//! The admin listener: `/healthz`, `/readyz`, `/metrics` and the admin API, on its own address
//! (loopback by default) so that none of it is reachable through an app's host name; and the
//! optional health listener, which answers `/healthz` and `/readyz` only, for probes that come
//! from outside the machine (a container's orchestrator) without exposing the rest.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use subtle::ConstantTimeEq;

use arc_swap::ArcSwap;

use crate::config::{Gateway, Secret};
use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// The admin HTTP server, run as a pingora background service.
pub struct AdminService {
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    state: Arc<AdminState>,
}

/// The health listener: `/healthz` and `/readyz` of an [`AdminService`], nothing else.
pub struct HealthService {
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    state: Arc<AdminState>,
}

struct AdminState {
    config: Arc<ArcSwap<Gateway>>,
    metrics: Arc<Metrics>,
    keys: Arc<crate::keys::SigningKeys>,
    readiness: Arc<Readiness>,
    metrics_token: Option<Secret>,
    api: Option<AdminApi>,
    registry: Option<Arc<crate::registry::Registry>>,
}

/// The admin API's state and token.
pub struct AdminApi {
    /// What the API works on.
    pub context: crate::admin_api::ApiContext,
    /// The bearer token the API requires.
    pub token: Secret,
}

impl AdminService {
    /// Binds the admin address now, so a taken port is a start-up error, not a log line.
    pub fn bind(
        address: SocketAddr,
        shared: &crate::proxy::Shared,
        readiness: Arc<Readiness>,
        metrics_token: Option<Secret>,
        api: Option<AdminApi>,
        registry: Option<Arc<crate::registry::Registry>>,
    ) -> std::io::Result<AdminService> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(AdminService {
            listener: std::sync::Mutex::new(Some(listener)),
            state: Arc::new(AdminState {
                config: shared.config.clone(),
                metrics: shared.metrics.clone(),
                keys: shared.keys.clone(),
                readiness,
                metrics_token,
                api,
                registry,
            }),
        })
    }

    /// Binds a health listener that shares this service's readiness.
    pub fn health_listener(&self, address: SocketAddr) -> std::io::Result<HealthService> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(HealthService {
            listener: std::sync::Mutex::new(Some(listener)),
            state: self.state.clone(),
        })
    }
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let listener = self.listener.lock().ok().and_then(|mut guard| guard.take());
        serve(listener, self.state.clone(), shutdown, false).await;
    }
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, shutdown: ShutdownWatch) {
        let listener = self.listener.lock().ok().and_then(|mut guard| guard.take());
        serve(listener, self.state.clone(), shutdown, true).await;
    }
}

async fn serve(
    listener: Option<std::net::TcpListener>,
    state: Arc<AdminState>,
    mut shutdown: ShutdownWatch,
    health_only: bool,
) {
    let Some(listener) = listener.and_then(|l| tokio::net::TcpListener::from_std(l).ok()) else {
        tracing::error!("admin listener unavailable");
        return;
    };
    let mut watching_shutdown = true;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move {
                            let resp = if health_only { health(&state, &req).await } else { None };
                            Ok::<_, Infallible>(match resp {
                                Some(resp) => resp,
                                None if health_only => text(StatusCode::NOT_FOUND, "not found\n"),
                                None => answer(&state, req).await,
                            })
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = shutdown.changed(), if watching_shutdown => {
                watching_shutdown = false;
                // Keep answering (readiness says 503) while requests drain; the runtime
                // stops this task when the process exits.
                state.readiness.start_draining();
            }
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn answer(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path().starts_with("/api/") {
        return api(state, req).await;
    }
    if let Some(resp) = health(state, &req).await {
        return resp;
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/metrics" => {
            if let Some(token) = &state.metrics_token {
                let given = req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                if !bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
                    let mut resp = text(StatusCode::UNAUTHORIZED, "metrics token required\n");
                    resp.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        http::HeaderValue::from_static("Bearer realm=\"authgate-admin\""),
                    );
                    return resp;
                }
            }
            let body = state.metrics.render();
            let mut resp = text(StatusCode::OK, body);
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        // The gateway's signing keys, for origins that cannot reach an app host.
        "/jwks.json" | "/.well-known/jwks.json" => {
            let max_age = state.config.load().signing.jwks_max_age.as_secs();
            let mut resp = Response::new(Full::new(state.keys.loaded().jwks.clone()));
            let headers = resp.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/jwk-set+json"),
            );
            if let Ok(cache) = http::HeaderValue::from_str(&format!("public, max-age={max_age}")) {
                headers.insert(http::header::CACHE_CONTROL, cache);
            }
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `/healthz` (the process answers) and `/readyz` (every dependency serves: 200, else 503;
/// a JSON report either way); `None` for any other path.
async fn health<B>(state: &AdminState, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
    let path = req.uri().path();
    if path != "/healthz" && path != "/readyz" {
        return None;
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return Some(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"));
    }
    if path == "/healthz" {
        return Some(text(StatusCode::OK, "ok\n"));
    }
    let unserved = state
        .registry
        .as_ref()
        .map(|r| r.unserved().iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let report = state.readiness.report(&state.config.load(), unserved).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_value(&report).unwrap_or_default();
    Some(crate::admin_api::reply(status, body))
}

async fn api(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    use http_body_util::{BodyExt, Limited};
    let json_error = |status: StatusCode, code: &str, message: &str| {
        let mut resp = text(
            status,
            serde_json::json!({"error": code, "message": message}).to_string() + "\n",
        );
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        resp
    };
    let Some(api) = &state.api else {
        return json_error(
            StatusCode::NOT_FOUND,
            "api_disabled",
            "the admin API is off (set admin.api_token)",
        );
    };
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !crate::admin_api::authorized(authorization, &api.token) {
        let mut resp = json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin API token required",
        );
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"authgate-admin\""),
        );
        return resp;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let body = match Limited::new(req.into_body(), crate::admin_api::MAX_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the body is too large",
            )
        }
    };
    crate::admin_api::handle(&api.context, &method, &path, query.as_deref(), &body).await
}
