//! The provider sends the browser back: the sign-in state is checked and used up, the code
//! exchanged, the ID token validated, and the session created.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use super::sign_out::store_unavailable_page;
use super::{request_cookies, unix_now, Answer, PendingLogin, RequestFacts, SignIn};
use crate::config::{App, Gateway};
use crate::oidc::provider::{Provider, ProviderError, SignedIn};
use crate::session::{new_id, Session, SessionId};

impl SignIn {
    pub(super) async fn callback(&self, gw: &Gateway, f: &RequestFacts<'_>) -> Answer {
        let names = f.names();
        // A parameter given twice is refused before anything else: which copy the provider
        // meant cannot be known, and an attacker's `code` placed first must never be sent to
        // the token endpoint.
        let params = match callback_params(f.req.uri.query()) {
            Ok(params) => params,
            Err(repeated) => {
                tracing::info!(app = %f.app.id, parameter = %repeated, "callback with a repeated parameter");
                return f.page(
                    400,
                    "bad_callback",
                    "Sign-in failed",
                    "The sign-in response is malformed. Please start again.",
                );
            }
        };
        let param = |name: &str| params.get(name).map(String::as_str);
        let state = param("state").unwrap_or_default().to_string();
        let cookie_name = names.login(&state);
        let clear = names.clear(cookie_name.clone());
        let fail = |status: u16, decision: &'static str, text: &str| {
            f.page(status, decision, "Sign-in failed", text)
                .header(http::header::SET_COOKIE, clear.clone())
        };
        let Some(provider) = &f.app.provider else {
            return fail(404, "not_found", "This app has no sign-in configured.");
        };
        // The login cookie for this state, opened and checked, before anything the response
        // says is believed (an error included: its text is shown only for a real sign-in).
        let sealed = request_cookies(f.req)
            .into_iter()
            .find(|(n, _)| *n == cookie_name.as_bytes())
            .and_then(|(_, v)| std::str::from_utf8(v).ok());
        let pending: Option<PendingLogin> = sealed
            .and_then(|v| self.keys(gw).open(&f.app.id, &cookie_name, v))
            .and_then(|plain| serde_json::from_slice(&plain).ok());
        let unknown = "This sign-in is unknown or has expired. Please start again.";
        let Some(pending) = pending else {
            return fail(400, "bad_state", unknown);
        };
        let same_state = aws_lc_rs::constant_time::verify_slices_are_equal(
            pending.s.as_bytes(),
            state.as_bytes(),
        )
        .is_ok();
        let fresh = unix_now() <= pending.t + gw.sessions.login_timeout.as_secs();
        if state.is_empty() || !same_state || !fresh || pending.p != *provider.id {
            return fail(400, "bad_state", unknown);
        }
        // Single use, on every replica, whatever happens next: an error answer consumes the
        // state too.
        let first_use = self
            .store
            .single_use()
            .claim(&format!("state:{state}"), gw.sessions.login_timeout)
            .await;
        let first_use = match first_use {
            Ok(first) => first,
            Err(e) => {
                tracing::error!(app = %f.app.id, error = %e, "sign-in state not checked: session store unavailable");
                return store_unavailable_page(f).header(http::header::SET_COOKIE, clear);
            }
        };
        if !first_use {
            return fail(
                400,
                "bad_state",
                "This sign-in was already used. Please start again.",
            );
        }
        if let Some(error) = param("error") {
            let description = param("error_description").unwrap_or_default();
            tracing::info!(app = %f.app.id, error, description, "the provider refused the sign-in");
            let status = if error == "access_denied" { 403 } else { 400 };
            let text = if description.is_empty() {
                format!("The identity provider answered: {error}.")
            } else {
                format!("The identity provider answered: {error}: {description}")
            };
            return fail(status, "provider_error", &text);
        }
        let discovered = match provider.discovered().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(app = %f.app.id, provider = %provider.id, error = %e, "sign-in cannot finish");
                return provider_problem(f, &e).header(http::header::SET_COOKIE, clear.clone());
            }
        };
        let iss = param("iss");
        if (discovered.sends_iss && iss.is_none()) || iss.is_some_and(|i| i != provider.issuer) {
            return fail(
                400,
                "bad_issuer",
                "The sign-in response came from another identity provider.",
            );
        }
        let Some(code) = param("code").filter(|c| !c.is_empty()) else {
            return fail(
                400,
                "bad_callback",
                "The sign-in response has no authorization code.",
            );
        };
        let signed = match provider
            .exchange_code(code, &pending.v, &pending.u, &pending.n)
            .await
        {
            Ok(signed) => signed,
            Err(e) => {
                tracing::warn!(app = %f.app.id, provider = %provider.id, error = %e, "sign-in failed");
                return provider_problem(f, &e).header(http::header::SET_COOKIE, clear);
            }
        };
        // A browser that signs in while it holds another session (another user's, or a
        // planted one) keeps only the new one.
        let stored = async {
            for previous in self.presented_sessions(gw, f) {
                self.store.remove(&previous).await?;
            }
            self.create_session(f.app, provider, signed).await
        };
        let id = match stored.await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(app = %f.app.id, error = %e, "sign-in not stored: session store unavailable");
                return store_unavailable_page(f).header(http::header::SET_COOKIE, clear);
            }
        };
        let value = self.keys(gw).sign_session(&f.app.id, &id);
        Answer::redirect(&pending.r, "signed_in")
            .header(http::header::SET_COOKIE, clear)
            .header(
                http::header::SET_COOKIE,
                names.set(
                    names.session().to_string(),
                    value,
                    f.app.session_duration.as_secs() as i64,
                ),
            )
    }

    async fn create_session(
        &self,
        app: &App,
        provider: &Provider,
        signed: SignedIn,
    ) -> crate::store::StoreResult<SessionId> {
        let id = new_id();
        let now = SystemTime::now();
        let session = Session::new(
            app.id.clone(),
            provider.id.clone(),
            signed.user,
            now + signed.expires_in,
            now + app.session_duration,
        );
        self.store.put(id, Arc::new(session)).await?;
        Ok(id)
    }
}

/// The callback's query parameters, or the name of one given more than once.
fn callback_params(query: Option<&str>) -> Result<HashMap<String, String>, String> {
    let mut params = HashMap::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if params.contains_key(name.as_ref()) {
            return Err(name.into_owned());
        }
        params.insert(name.into_owned(), value.into_owned());
    }
    Ok(params)
}

/// The page for a failed exchange with the provider: it says which kind of failure it was
/// (the details are in the log).
pub(super) fn provider_problem(f: &RequestFacts, e: &ProviderError) -> Answer {
    let (status, decision, title, text) = match e {
        ProviderError::Unreachable(_) => (
            503,
            "provider_unreachable",
            "Sign-in unavailable",
            "The identity provider cannot be reached right now. Please try again shortly.",
        ),
        ProviderError::Misconfigured(_) => (
            502,
            "provider_misconfigured",
            "Sign-in unavailable",
            "The identity provider's settings do not match this app's configuration. \
             Please tell the app's administrator.",
        ),
        ProviderError::Refused(_) => (
            400,
            "provider_refused",
            "Sign-in failed",
            "The identity provider refused this sign-in. Please start again.",
        ),
        ProviderError::Exchange(_) => (
            502,
            "provider_bad_answer",
            "Sign-in failed",
            "The identity provider's answer could not be read.",
        ),
        ProviderError::IdToken(_) | ProviderError::UserInfo(_) => (
            401,
            "sign_in_failed",
            "Sign-in failed",
            "The identity provider's answer could not be verified.",
        ),
    };
    f.page(status, decision, title, text)
}
