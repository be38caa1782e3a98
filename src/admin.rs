//! The admin listener: `/healthz`, `/readyz` and `/metrics`, on its own address (loopback by
//! default) so that none of it is reachable through an app's host name.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Whether the gateway should receive traffic: its listeners accept connections and it is not
/// shutting down.
#[derive(Debug)]
pub struct Readiness {
    probe: Vec<SocketAddr>,
    listening: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    /// Readiness that probes these traffic listener addresses.
    pub fn new(listeners: impl IntoIterator<Item = SocketAddr>) -> Readiness {
        let probe = listeners
            .into_iter()
            .map(|mut addr| {
                // A wildcard bind is reached through loopback.
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                addr
            })
            .collect();
        Readiness {
            probe,
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// Marks the gateway as draining: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    async fn is_ready(&self) -> bool {
        if self.draining.load(Ordering::SeqCst) {
            return false;
        }
        if self.listening.load(Ordering::SeqCst) {
            return true;
        }
        for addr in &self.probe {
            let connect = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_secs(1), connect).await {
                Ok(Ok(_)) => {}
                _ => return false,
            }
        }
        self.listening.store(true, Ordering::SeqCst);
        true
    }
}

/// The admin HTTP server, run as a pingora background service.
pub struct AdminService {
    listener: std::sync::Mutex<Option<std::net::TcpListener>>,
    state: Arc<AdminState>,
}

struct AdminState {
    config: Arc<ArcSwap<Gateway>>,
    metrics: Arc<Metrics>,
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
        config: Arc<ArcSwap<Gateway>>,
        metrics: Arc<Metrics>,
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
                config,
                metrics,
                readiness,
                metrics_token,
                api,
                registry,
            }),
        })
    }
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let std_listener = self.listener.lock().ok().and_then(|mut guard| guard.take());
        let Some(listener) = std_listener.and_then(|l| tokio::net::TcpListener::from_std(l).ok())
        else {
            tracing::error!("admin listener unavailable");
            return;
        };
        let mut watching_shutdown = true;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let state = self.state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(answer(&state, req).await) }
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
                    self.state.readiness.start_draining();
                }
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
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.readiness.is_ready().await {
                // Ready: everything that compiles is served. Stored apps or domains that do
                // not are named, so a probe's log shows what is missing.
                let unserved = state
                    .registry
                    .as_ref()
                    .map(|r| r.unserved())
                    .unwrap_or_default();
                let mut body = String::from("ready\n");
                for item in unserved.iter() {
                    body.push_str(&format!("{item}\n"));
                }
                text(StatusCode::OK, body)
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
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
            let mut body = state.metrics.render();
            jwks_metrics(&state.config.load(), &mut body);
            let mut resp = text(StatusCode::OK, body);
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
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
    crate::admin_api::handle(&api.context, &method, &path, &body).await
}

/// JWKS health per issuer, counted since the running configuration was loaded.
fn jwks_metrics(gateway: &Gateway, out: &mut String) {
    use std::fmt::Write;
    let mut issuers: Vec<_> = gateway.verifier.issuers().collect();
    issuers.sort_by(|a, b| a.id.cmp(&b.id));
    type Read = fn(&crate::jwt::jwks::IssuerKeys) -> u64;
    let families: [(&str, &str, &str, Read); 3] = [
        (
            "authgate_jwks_fetches_total",
            "counter",
            "JWKS fetches attempted.",
            |k| k.fetch_count(),
        ),
        (
            "authgate_jwks_fetch_failures_total",
            "counter",
            "JWKS fetches that failed (stale keys kept serving).",
            |k| k.failure_count(),
        ),
        (
            "authgate_jwks_keys",
            "gauge",
            "Usable keys held per issuer.",
            |k| k.key_count() as u64,
        ),
    ];
    for (name, kind, help, read) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for issuer in &issuers {
            let label = issuer.id.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "{name}{{issuer=\"{label}\"}} {}", read(&issuer.keys));
        }
    }
}
