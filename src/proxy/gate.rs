//! The decision for an admitted request: answer a gateway endpoint, forward it (with the
//! identity it proved), refuse it, or send the browser to sign in.

use pingora::http::RequestHeader;

use crate::authn::{self, Identity};
use crate::config::Gateway;
use crate::keys::SigningKeys;
use crate::oidc::flow::{Answer, Lookup, RequestFacts, SignIn};
use crate::proxy::admission::Admitted;
use crate::respond::Reject;
use crate::route::rules::Action;

/// What happens to an admitted request.
pub enum Verdict {
    /// Forward it, with the identity headers it earned (none on public routes).
    Forward(Option<Identity>),
    /// Refuse it.
    Refuse(Reject),
    /// Answer it with a gateway-made response (endpoints, sign-in redirects).
    Answer(Answer),
}

/// Decides an admitted request.
pub async fn decide(
    sign_in: &SignIn,
    keys: &SigningKeys,
    gw: &Gateway,
    req: &RequestHeader,
    admitted: &Admitted,
    tls: bool,
    request_id: &str,
) -> Verdict {
    let facts = RequestFacts {
        req,
        app: &admitted.app,
        host: &admitted.client_host,
        tls,
        request_id,
        pages: &gw.pages,
    };
    if admitted
        .path
        .strip_prefix(admitted.app.auth_prefix.as_str())
        == Some("/jwks.json")
    {
        return Verdict::Answer(Answer::jwks(
            keys.loaded().jwks.clone(),
            gw.signing.jwks_max_age,
        ));
    }
    if let Some(answer) = sign_in.endpoint(gw, &facts, &admitted.path).await {
        return Verdict::Answer(answer);
    }
    let by_session = match admitted.action {
        Action::Public => return Verdict::Forward(None),
        Action::Deny => return Verdict::Refuse(Reject::Denied),
        Action::Jwt => false,
        Action::Session => true,
        // A bearer token decides when the client sends one; otherwise the session does.
        Action::SessionOrJwt => !req.headers.contains_key(http::header::AUTHORIZATION),
    };
    // A browser asks for the site's icon on every page, the gateway's own included; without
    // credentials it gets "no icon" rather than a refusal (the origin's icon once signed in).
    let icon =
        admitted.path == "/favicon.ico" && !req.headers.contains_key(http::header::AUTHORIZATION);
    if !by_session {
        return match authn::by_bearer(gw, keys, req, admitted).await {
            Ok(identity) => Verdict::Forward(Some(identity)),
            Err(Reject::Unauthenticated) if icon => Verdict::Answer(Answer::empty(204, "no_icon")),
            Err(reject) => Verdict::Refuse(reject),
        };
    }
    match sign_in.session(gw, &facts).await {
        Lookup::Valid(session) => match authn::by_session(gw, keys, &session, admitted) {
            Ok(identity) => Verdict::Forward(Some(identity)),
            Err(reject) => Verdict::Refuse(reject),
        },
        Lookup::Unavailable => Verdict::Refuse(Reject::SessionStoreUnavailable),
        Lookup::Missing if icon => Verdict::Answer(Answer::empty(204, "no_icon")),
        Lookup::Missing => {
            let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
            Verdict::Answer(sign_in.challenge(gw, &facts, target).await)
        }
    }
}

/// The redirect a plain listener with `redirect_to_https` answers with: 308 to the same host,
/// path and query over HTTPS.
pub fn to_https(admitted: &Admitted, req: &RequestHeader, port: u16) -> Answer {
    let port = if port == 443 {
        String::new()
    } else {
        format!(":{port}")
    };
    let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let location = format!("https://{}{port}{}{query}", admitted.host, admitted.path);
    Answer::permanent_redirect(&location)
}
