//! The admin API's session endpoints:
//!
//! - `GET /api/users/{sub}/sessions[?provider=ID]`: the user's live sessions (never their ids
//!   or tokens; each has a handle)
//! - `DELETE /api/users/{sub}/sessions[?provider=ID]`: ends them all, on every replica
//! - `DELETE /api/sessions/{handle}`: ends one
//!
//! `{sub}` is percent-encoded (a `sub` may hold any character).

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::Response;
use serde_json::json;

use super::{error, reply, ApiContext};
use crate::store::StoreError;

/// Longest `sub` or handle read.
const MAX_SEGMENT: usize = 1024;

/// Answers a session endpoint, or `None` when `path` is not one.
pub async fn handle(
    api: &ApiContext,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Option<Response<Full<Bytes>>> {
    if let Some(handle) = path.strip_prefix("/api/sessions/") {
        return Some(match *method {
            Method::DELETE => end_one(api, handle).await,
            _ => not_allowed(),
        });
    }
    let sub = path
        .strip_prefix("/api/users/")?
        .strip_suffix("/sessions")?;
    let Some(sub) = decode(sub) else {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "malformed_sub",
            "the user's sub must be percent-encoded UTF-8 of 1 to 1024 bytes",
        ));
    };
    let provider = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "provider")
            .map(|(_, v)| v.into_owned())
    });
    let provider = provider.as_deref();
    let gw = api.snapshot.load();
    Some(match *method {
        Method::GET => match api.sign_in.user_sessions(&gw, &sub, provider).await {
            Ok(sessions) => reply(StatusCode::OK, json!({ "sessions": sessions })),
            Err(e) => unavailable(e),
        },
        Method::DELETE => match api.sign_in.end_user_sessions(&sub, provider).await {
            Ok(ended) => {
                tracing::info!(sessions = ended, "admin API: a user's sessions ended");
                reply(StatusCode::OK, json!({ "ended": ended }))
            }
            Err(e) => unavailable(e),
        },
        _ => not_allowed(),
    })
}

async fn end_one(api: &ApiContext, handle: &str) -> Response<Full<Bytes>> {
    let gw = api.snapshot.load();
    if handle.is_empty() || handle.len() > MAX_SEGMENT {
        return no_such_session();
    }
    match api.sign_in.end_session(&gw, handle).await {
        Ok(true) => {
            tracing::info!("admin API: a session ended");
            reply(StatusCode::OK, json!({ "ended": 1 }))
        }
        Ok(false) => no_such_session(),
        Err(e) => unavailable(e),
    }
}

fn decode(segment: &str) -> Option<String> {
    let text = percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()?;
    (!text.is_empty() && text.len() <= MAX_SEGMENT).then(|| text.into_owned())
}

fn no_such_session() -> Response<Full<Bytes>> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such session (it ended, or the handle is not one)",
    )
}

fn not_allowed() -> Response<Full<Bytes>> {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed",
    )
}

fn unavailable(e: StoreError) -> Response<Full<Bytes>> {
    tracing::error!(error = %e, "admin API: session store unavailable");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "session_store_unavailable",
        "sessions cannot be read or ended right now",
    )
}
