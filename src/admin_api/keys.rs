//! The admin API's signing-key endpoints (Logto's `/api/configs/oidc/private-keys` model):
//!
//! - `GET /api/keys`: every key — `id` (the `kid`), `algorithm`, `status` (`Next`,
//!   `Current`, `Previous`), `created_at`, `effective_at`; never the private half
//! - `POST /api/keys/rotate`: publishes a new key now that signs after `publish_before_use`
//!   (`{"algorithm": "EdDSA", "publish_before_use": 0}` in an optional JSON body overrides
//!   the configured values); 409 while a new key is already waiting, or when the keys are
//!   files.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::Response;
use serde::Deserialize;
use serde_json::json;

use super::{error, reply, ApiContext};
use crate::keys::material::SigningAlgorithm;
use crate::keys::RotateFailure;

/// Longest lead a rotation may ask for (a year).
const MAX_LEAD: u64 = 365 * 24 * 3600;

/// What a rotation may ask for.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    algorithm: Option<String>,
    publish_before_use: Option<u64>,
}

/// Answers a key endpoint, or `None` when `path` is not one.
pub async fn handle(
    api: &ApiContext,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Option<Response<Full<Bytes>>> {
    Some(match (path, method) {
        ("/api/keys", &Method::GET) => reply(
            StatusCode::OK,
            json!({ "keys": api.keys.loaded().views.clone() }),
        ),
        ("/api/keys/rotate", &Method::POST) => rotate(api, body).await,
        ("/api/keys" | "/api/keys/rotate", _) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        ),
        _ => return None,
    })
}

async fn rotate(api: &ApiContext, body: &[u8]) -> Response<Full<Bytes>> {
    let asked: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(asked) => asked,
            Err(e) => {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    &format!("the body must be {{\"algorithm\", \"publish_before_use\"}}: {e}"),
                )
            }
        }
    };
    let algorithm = match asked.algorithm.as_deref().map(SigningAlgorithm::parse) {
        None => None,
        Some(Some(algorithm)) => Some(algorithm),
        Some(None) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_algorithm",
                "algorithm must be ES256 or EdDSA",
            )
        }
    };
    if asked.publish_before_use.is_some_and(|s| s > MAX_LEAD) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_publish_before_use",
            "publish_before_use is in seconds, at most a year",
        );
    }
    let gw = api.snapshot.load_full();
    let lead = asked.publish_before_use.map(Duration::from_secs);
    match api.keys.rotate(&gw, algorithm, lead).await {
        Ok(keys) => reply(StatusCode::OK, json!({ "keys": keys })),
        Err(e @ (RotateFailure::FromFiles | RotateFailure::Refused(_))) => {
            error(StatusCode::CONFLICT, "cannot_rotate", &e.to_string())
        }
        Err(RotateFailure::Unavailable(detail)) => {
            tracing::error!(error = %detail, "a key rotation could not be stored");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the key store cannot be reached; try again",
            )
        }
    }
}
