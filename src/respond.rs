//! The one place where a refusal becomes a response: status, short JSON body, metric label.
//! Details stay in the logs; the client gets a code and one sentence.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::authz::Unmet;
use crate::jwt::TokenError;
use crate::route::path::PathError;

/// Why the gateway answered a request itself instead of forwarding it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// No app is configured for the requested host.
    #[error("no app is served on this host")]
    UnknownHost,
    /// The `Host` header is missing, repeated, malformed, or disagrees with the request URI.
    #[error("missing or ambiguous Host")]
    BadHost,
    /// The request path cannot be normalised safely.
    #[error("{0}")]
    BadPath(PathError),
    /// The TLS connection was opened for a name (SNI) of another app than the `Host` asks for.
    #[error("this connection is for another host")]
    Misdirected,
    /// The request's framing is ambiguous (a request-smuggling shape).
    #[error("{0}")]
    BadFraming(&'static str),
    /// The request headers are larger than allowed.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// The request body is larger than allowed.
    #[error("request body too large")]
    BodyTooLarge,
    /// A request shape the gateway refuses to interpret (two `Authorization` headers, a
    /// token in the query…).
    #[error("{0}")]
    BadRequest(&'static str),
    /// The route needs an identity the request does not carry.
    #[error("authentication required")]
    Unauthenticated,
    /// The `Authorization` header is not a well-formed bearer credential.
    #[error("malformed bearer credentials")]
    MalformedCredentials,
    /// The bearer token did not verify.
    #[error("{0}")]
    InvalidToken(TokenError),
    /// The token verified but a claim cannot be passed to the origin safely.
    #[error("identity claims cannot be forwarded")]
    UnsafeIdentity,
    /// The identity does not meet the route's requirements.
    #[error("{0}")]
    Insufficient(Unmet),
    /// The route refuses every request.
    #[error("access denied")]
    Denied,
    /// The session store cannot be reached: whether the request has a session is unknown.
    #[error("sessions cannot be checked right now")]
    SessionStoreUnavailable,
    /// The app sends its origin a signed assertion, and there is no key to sign it with
    /// (the key store has not been read yet).
    #[error("the identity assertion cannot be signed right now")]
    AssertionUnavailable,
}

impl Reject {
    /// The HTTP status of the answer.
    pub fn status(&self) -> u16 {
        match self {
            Reject::UnknownHost => 404,
            Reject::BadHost
            | Reject::BadPath(_)
            | Reject::BadFraming(_)
            | Reject::BadRequest(_) => 400,
            Reject::HeadersTooLarge => 431,
            Reject::Misdirected => 421,
            Reject::BodyTooLarge => 413,
            Reject::Unauthenticated
            | Reject::MalformedCredentials
            | Reject::InvalidToken(_)
            | Reject::UnsafeIdentity => 401,
            Reject::Denied | Reject::Insufficient(_) => 403,
            Reject::SessionStoreUnavailable | Reject::AssertionUnavailable => 503,
        }
    }

    /// The short machine-readable code in the body, and the `decision` label in metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::UnknownHost => "unknown_host",
            Reject::BadHost => "bad_host",
            Reject::BadPath(_) => "bad_path",
            Reject::BadFraming(_) => "bad_framing",
            Reject::Misdirected => "misdirected",
            Reject::HeadersTooLarge => "headers_too_large",
            Reject::BodyTooLarge => "body_too_large",
            Reject::BadRequest(_) => "bad_request",
            Reject::Unauthenticated => "unauthenticated",
            Reject::MalformedCredentials | Reject::InvalidToken(_) | Reject::UnsafeIdentity => {
                "invalid_token"
            }
            Reject::Insufficient(Unmet::Scope) => "insufficient_scope",
            Reject::Insufficient(_) => "forbidden",
            Reject::Denied => "denied",
            Reject::SessionStoreUnavailable => "session_store_unavailable",
            Reject::AssertionUnavailable => "assertion_unavailable",
        }
    }

    /// Whether the connection must close afterwards: after a framing error the rest of the
    /// stream cannot be trusted, and an unread body would be read as the next request.
    fn closes_connection(&self) -> bool {
        matches!(
            self,
            Reject::BadFraming(_) | Reject::BodyTooLarge | Reject::HeadersTooLarge
        )
    }
}

/// The RFC 6750 `WWW-Authenticate` challenge for a refusal, if it has one. Descriptions are
/// fixed strings, never token or claim content.
fn challenge(reject: &Reject) -> Option<String> {
    const REALM: &str = "Bearer realm=\"authgate\"";
    match reject {
        Reject::Unauthenticated => Some(REALM.to_string()),
        Reject::MalformedCredentials | Reject::InvalidToken(_) | Reject::UnsafeIdentity => Some(
            format!("{REALM}, error=\"invalid_token\", error_description=\"{reject}\""),
        ),
        // §3.1: a malformed request (two `Authorization` headers, a token in the query).
        Reject::BadRequest(_) => Some(format!(
            "{REALM}, error=\"invalid_request\", error_description=\"{reject}\""
        )),
        // §3.1: the identity lacks what the route requires (a scope, a group, a claim value).
        Reject::Insufficient(_) => Some(format!(
            "{REALM}, error=\"insufficient_scope\", error_description=\"{reject}\""
        )),
        _ => None,
    }
}

/// The JSON body for a gateway-made answer.
pub fn body(code: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "error": code, "message": message }).to_string() + "\n")
}

/// A response header for a gateway-made JSON answer.
pub fn json_header(status: u16, len: usize, request_id: &str) -> pingora::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(5))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", len)?;
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("x-request-id", request_id)?;
    Ok(resp)
}

/// Writes the answer for `reject` and ends the response.
pub async fn send(session: &mut Session, reject: &Reject, request_id: &str) -> pingora::Result<()> {
    let body = body(reject.code(), &reject.to_string());
    let mut resp = json_header(reject.status(), body.len(), request_id)?;
    if let Some(challenge) = challenge(reject) {
        resp.insert_header("www-authenticate", challenge)?;
    }
    let has_body = session.req_header().headers.contains_key("content-length")
        || session
            .req_header()
            .headers
            .contains_key("transfer-encoding");
    if reject.closes_connection() || has_body {
        session.set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Writes the page for `reject` (a browser navigation's answer): the refusal's status, its
/// challenge, and its connection handling, with the page's headers and body.
pub async fn send_page(
    session: &mut Session,
    reject: &Reject,
    mut page: crate::oidc::flow::Answer,
    request_id: &str,
) -> pingora::Result<()> {
    page.status = reject.status();
    if let Some(challenge) = challenge(reject) {
        if let Ok(value) = http::HeaderValue::from_str(&challenge) {
            page.headers.push((http::header::WWW_AUTHENTICATE, value));
        }
    }
    if reject.closes_connection() {
        session.set_keepalive(None);
    }
    send_answer(session, page, request_id).await
}

/// A 200 `text/plain` answer.
pub fn plain(text: String) -> crate::oidc::flow::Answer {
    crate::oidc::flow::Answer::text(200, "acme_challenge", text)
}

/// The response header of a gateway-made answer (its own headers, length and request id).
pub fn answer_header(
    answer: &crate::oidc::flow::Answer,
    request_id: &str,
) -> pingora::Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(answer.status, Some(answer.headers.len() + 3))?;
    for (name, value) in &answer.headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    resp.insert_header("content-length", answer.body.len())?;
    resp.insert_header("x-request-id", request_id)?;
    Ok(resp)
}

/// Writes a gateway-made answer (endpoint, sign-in redirect, error page) and ends it.
pub async fn send_answer(
    session: &mut Session,
    answer: crate::oidc::flow::Answer,
    request_id: &str,
) -> pingora::Result<()> {
    let resp = answer_header(&answer, request_id)?;
    let has_body = session.req_header().headers.contains_key("content-length")
        || session
            .req_header()
            .headers
            .contains_key("transfer-encoding");
    if has_body {
        session.set_keepalive(None);
    }
    let head_only = session.req_header().method == http::Method::HEAD || answer.body.is_empty();
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(answer.body), true).await?;
    }
    Ok(())
}
