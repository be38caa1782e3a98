//! The admin API on the admin listener (modelled on the Logto management API): protected
//! apps can be listed, created, changed and deleted without a restart.
//!
//! - `GET /api/apps`, `POST /api/apps`
//! - `GET /api/apps/{id}`, `PATCH /api/apps/{id}` (JSON merge patch), `DELETE /api/apps/{id}`
//! - `GET/POST /api/apps/{id}/custom-domains`, `DELETE /api/apps/{id}/custom-domains/{domain}`
//!   (a removed domain stops serving at once; an app's domains go with it)
//! - `GET /api/unserved`: stored apps and domains that do not compile and are not served
//! - `GET/DELETE /api/users/{sub}/sessions`, `DELETE /api/sessions/{handle}`: a user's
//!   sessions, listed and ended ([`sessions`])
//!
//! Every call needs `Authorization: Bearer <admin.api_token>` (compared in constant time).
//! Errors are JSON: 400 malformed JSON, 401 no or wrong token, 404 unknown app, 409 id or host
//! taken (or an app of the config file, or a domain in use), 422 invalid fields, each named (or
//! an invalid domain, or the domain limit reached). The description is
//! `docs/admin-api.openapi.yaml`.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use std::sync::Arc;

use arc_swap::ArcSwap;

mod keys;
mod sessions;

use crate::config::{Gateway, Secret};
use crate::domains::{DomainBook, DomainError};
use crate::registry::{ChangeError, Registry};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON answer that is never cached.
pub(crate) fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    reply(status, json!({"error": code, "message": message}))
}

/// True when `authorization` carries the API token.
pub fn authorized(authorization: Option<&str>, token: &Secret) -> bool {
    let given = authorization
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, t)| t.trim());
    bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
}

/// What the admin API works on.
pub struct ApiContext {
    /// Config-file and API apps.
    pub registry: Arc<Registry>,
    /// Custom domains.
    pub domains: Arc<DomainBook>,
    /// The running snapshot (domain settings, host names in use).
    pub snapshot: Arc<ArcSwap<Gateway>>,
    /// Sessions (listed and ended by user).
    pub sign_in: Arc<crate::oidc::flow::SignIn>,
    /// The signing keys (listed and rotated).
    pub keys: Arc<crate::keys::SigningKeys>,
}

/// Answers one admin API request (already authorized).
pub async fn handle(
    api: &ApiContext,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let registry = &*api.registry;
    let rest = path.trim_end_matches('/');
    if let Some(answer) = sessions::handle(api, method, rest, query).await {
        return answer;
    }
    if let Some(answer) = keys::handle(api, method, rest, body).await {
        return answer;
    }
    if let Some((id, domain)) = domain_path(rest) {
        return custom_domains(api, method, id, domain, body).await;
    }
    if rest == "/api/unserved" {
        return match *method {
            Method::GET => reply(
                StatusCode::OK,
                serde_json::to_value(&*registry.unserved()).unwrap_or(Value::Null),
            ),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed",
            ),
        };
    }
    match (method, rest.strip_prefix("/api/apps")) {
        (&Method::GET, Some("")) => {
            let apps: Vec<Value> = registry
                .list()
                .await
                .into_iter()
                .map(|(source, app)| with_source(app, source))
                .collect();
            reply(StatusCode::OK, Value::Array(apps))
        }
        (&Method::POST, Some("")) => match parse_body(body) {
            Ok(app) => outcome(
                registry.create(app).await.map(|(_, app)| app),
                StatusCode::CREATED,
            ),
            Err(message) => malformed(message),
        },
        (method, Some(id)) if id.starts_with('/') && !id[1..].contains('/') => {
            let id = &id[1..];
            match *method {
                Method::GET => match registry.get(id).await {
                    Some((source, app)) => reply(StatusCode::OK, with_source(app, source)),
                    None => error(StatusCode::NOT_FOUND, "not_found", "no such app"),
                },
                Method::PATCH => match parse_body(body) {
                    Ok(patch) => outcome(
                        registry.patch(id, patch).await.map(|(_, app)| app),
                        StatusCode::OK,
                    ),
                    Err(message) => malformed(message),
                },
                Method::DELETE => match registry.delete(id).await {
                    Ok(_) => {
                        let mut resp = Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = StatusCode::NO_CONTENT;
                        resp
                    }
                    Err(e) => change_error(e),
                },
                _ => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "method not allowed",
                ),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

/// `/api/apps/{id}/custom-domains[/{domain}]` → (id, domain).
fn domain_path(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix("/api/apps/")?;
    let (id, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("custom-domains")?;
    match rest {
        "" => Some((id, None)),
        _ => rest
            .strip_prefix('/')
            .filter(|d| !d.is_empty() && !d.contains('/'))
            .map(|d| (id, Some(d))),
    }
}

async fn custom_domains(
    api: &ApiContext,
    method: &Method,
    id: &str,
    domain: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    if api.registry.get(id).await.is_none() {
        return error(StatusCode::NOT_FOUND, "not_found", "no such app");
    }
    let domain_error = |e: DomainError| {
        let status = match e {
            DomainError::Invalid(_) | DomainError::LimitReached(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            DomainError::InUse(_) => StatusCode::CONFLICT,
            DomainError::NotFound => StatusCode::NOT_FOUND,
            DomainError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        error(status, "custom_domain", &e.to_string())
    };
    match (method, domain) {
        (&Method::GET, None) => {
            let list = api.domains.of_app(id);
            reply(
                StatusCode::OK,
                serde_json::to_value(list).unwrap_or(Value::Null),
            )
        }
        (&Method::POST, None) => {
            let requested = match parse_body(body) {
                Ok(v) => v.get("domain").and_then(Value::as_str).map(str::to_string),
                Err(message) => return malformed(message),
            };
            let Some(requested) = requested else {
                return malformed("the body needs a `domain` string".into());
            };
            let snapshot = api.snapshot.load();
            if snapshot.domains.public_name.is_empty() {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "custom_domain",
                    "custom domains are off: set domains.public_name",
                );
            }
            let taken = |d: &str| snapshot.hosts.lookup(d).is_some();
            match api
                .domains
                .add(id, &requested, &snapshot.domains, taken)
                .await
            {
                Ok(entry) => reply(
                    StatusCode::CREATED,
                    serde_json::to_value(entry).unwrap_or(Value::Null),
                ),
                Err(e) => domain_error(e),
            }
        }
        (&Method::DELETE, Some(domain)) => match api.registry.remove_domain(id, domain).await {
            Ok(()) => {
                let mut resp = Response::new(Full::new(Bytes::new()));
                *resp.status_mut() = StatusCode::NO_CONTENT;
                resp
            }
            Err(e) => domain_error(e),
        },
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        ),
    }
}

fn with_source(mut app: Value, source: &str) -> Value {
    if let Value::Object(map) = &mut app {
        map.insert("source".into(), json!(source));
    }
    app
}

/// The body as a JSON object, or why it is not one.
fn parse_body(body: &[u8]) -> Result<Value, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if !value.is_object() {
        return Err("the body must be a JSON object".into());
    }
    Ok(value)
}

fn malformed(message: String) -> Response<Full<Bytes>> {
    error(StatusCode::BAD_REQUEST, "malformed_json", &message)
}

fn outcome(result: Result<Value, ChangeError>, ok: StatusCode) -> Response<Full<Bytes>> {
    match result {
        Ok(app) => reply(ok, with_source(app, "api")),
        Err(e) => change_error(e),
    }
}

fn change_error(e: ChangeError) -> Response<Full<Bytes>> {
    match e {
        ChangeError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &e.to_string()),
        ChangeError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", &m),
        ChangeError::Malformed(m) => error(StatusCode::BAD_REQUEST, "malformed_app", &m),
        ChangeError::Invalid(problems) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "error": "invalid_app",
                "message": "the app has invalid fields",
                "problems": problems.0.iter().map(|p| json!({"field": p.field, "message": p.message})).collect::<Vec<_>>(),
            }),
        ),
        ChangeError::Storage(m) => {
            tracing::error!(error = %m, "admin API change not stored");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the change could not be stored",
            )
        }
    }
}
