//! The admin API on the admin listener (modelled on the Logto management API): protected
//! apps can be listed, created, changed and deleted without a restart.
//!
//! - `GET /api/apps`, `POST /api/apps`
//! - `GET /api/apps/{id}`, `PATCH /api/apps/{id}` (JSON merge patch), `DELETE /api/apps/{id}`
//!
//! Every call needs `Authorization: Bearer <admin.api_token>` (compared in constant time).
//! Errors are JSON: 400 malformed JSON, 401 no or wrong token, 404 unknown app, 409 id or host
//! taken (or an app of the config file), 422 invalid fields, each named. The description is
//! `docs/admin-api.openapi.yaml`.

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::registry::{ChangeError, Registry};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
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

/// Answers one admin API request (already authorized).
pub async fn handle(
    registry: &Registry,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Response<Full<Bytes>> {
    let rest = path.trim_end_matches('/');
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
