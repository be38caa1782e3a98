//! Who is making the request: bearer tokens ([`bearer`]) and the identity headers the origin
//! receives for a verified identity ([`identity`]).

pub mod bearer;
pub mod identity;

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use crate::config::Gateway;
use crate::keys::assertion::AssertionSlot;
use crate::keys::SigningKeys;
use crate::proxy::admission::Admitted;
use crate::respond::Reject;

/// A verified identity, as the origin will see it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Identity headers to set on the upstream request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Keep the client's `Authorization` header on the upstream request.
    pub forward_authorization: bool,
    /// The user's `sub`, for the access log.
    pub user: Option<String>,
    /// How the identity was proved (`session` or `bearer`), for the access log.
    pub via: &'static str,
}

/// Adds the app's signed identity assertion, if it wants one, to `headers`.
fn add_assertion(
    keys: &SigningKeys,
    admitted: &Admitted,
    slot: &AssertionSlot,
    claims: &(impl crate::jwt::ClaimSet + ?Sized),
    not_after: u64,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
) -> Result<(), Reject> {
    if let Some(spec) = &admitted.app.assertion {
        let value = keys.assertion(spec, slot, claims, not_after).map_err(|e| {
            tracing::error!(app = %admitted.app.id, error = %e, "no identity assertion");
            Reject::AssertionUnavailable
        })?;
        headers.push((spec.header.clone(), value));
    }
    Ok(())
}

/// Authenticates a request by its bearer token and checks the route's requirements.
pub async fn by_bearer(
    gw: &Gateway,
    keys: &SigningKeys,
    req: &RequestHeader,
    admitted: &Admitted,
) -> Result<Identity, Reject> {
    let token = bearer::extract(req)?.ok_or(Reject::Unauthenticated)?;
    let verified = gw
        .verifier
        .verify(token, &admitted.app.jwt_issuers)
        .await
        .map_err(Reject::InvalidToken)?;
    crate::authz::check(&admitted.require, &verified.claims).map_err(Reject::Insufficient)?;
    let mut headers = admitted
        .app
        .identity_headers
        .as_ref()
        .unwrap_or(&gw.identity_headers)
        .render(&verified.claims)
        .map_err(|_| Reject::UnsafeIdentity)?;
    let exp = verified
        .claims
        .get("exp")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    add_assertion(
        keys,
        admitted,
        &verified.assertion,
        &verified.claims,
        exp,
        &mut headers,
    )?;
    Ok(Identity {
        headers,
        forward_authorization: admitted.app.forward_authorization,
        user: verified
            .claims
            .get("sub")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        via: "bearer",
    })
}

/// The identity of a signed-in session, after the route's requirements. The client's
/// `Authorization` header is not passed on for session-authenticated requests.
pub fn by_session(
    gw: &Gateway,
    keys: &SigningKeys,
    session: &crate::session::Session,
    admitted: &Admitted,
) -> Result<Identity, Reject> {
    crate::authz::check(&admitted.require, &session.user).map_err(Reject::Insufficient)?;
    let mut headers = admitted
        .app
        .identity_headers
        .as_ref()
        .unwrap_or(&gw.identity_headers)
        .render(&session.user)
        .map_err(|_| Reject::UnsafeIdentity)?;
    let ends = session
        .expires_at()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    add_assertion(
        keys,
        admitted,
        &session.assertion,
        &session.user,
        ends,
        &mut headers,
    )?;
    Ok(Identity {
        headers,
        forward_authorization: false,
        user: {
            let mut sub = None;
            crate::jwt::ClaimSet::claim_texts(&session.user, "sub", &mut |t| {
                sub = Some(t.to_string())
            });
            sub
        },
        via: "session",
    })
}
