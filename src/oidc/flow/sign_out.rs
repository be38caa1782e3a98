//! Signing out: the confirmation page (unless the request is the app's own), the end of every
//! session the browser presented, the provider's end-session redirect, and the signed-out page.

use super::{display_name, is_same_origin, Answer, Lookup, RequestFacts, SignIn};
use crate::config::Gateway;

impl SignIn {
    pub(super) async fn logout(&self, gw: &Gateway, f: &RequestFacts<'_>) -> Answer {
        let post = f.req.method == http::Method::POST;
        let id = self.session_id(gw, f);
        // A POST from the confirmation page carries its token; a same-origin request (the app's
        // own sign-out link or button) needs none. A sibling origin is same-site, not
        // same-origin, and gets the confirmation page like any other site.
        let token_ok = id
            .zip(f.query_param("token"))
            .is_some_and(|(id, token)| self.keys(gw).check_form_token(&f.app.id, &id, &token));
        if !(is_same_origin(f) || (post && token_ok)) {
            let action = match &id {
                Some(id) => format!(
                    "{}/logout?token={}",
                    f.app.auth_prefix,
                    self.keys(gw).form_token(&f.app.id, id)
                ),
                None => format!("{}/logout", f.app.auth_prefix),
            };
            let user = match self.session(gw, f).await {
                Lookup::Valid(session) => Some(display_name(&session.user.claims())),
                Lookup::Missing | Lookup::Unavailable => None,
            };
            let ends_provider_session = match &f.app.provider {
                Some(p) => p
                    .discovered()
                    .await
                    .is_ok_and(|d| d.end_session_endpoint.is_some()),
                None => false,
            };
            let view = crate::pages::View {
                heading: "Sign out",
                user,
                form_action: Some(action),
                ends_provider_session,
                home_url: "/",
                request_id: f.request_id,
                ..Default::default()
            };
            return f.pages.answer(
                "signout.html",
                200,
                "logout_confirm",
                &f.app.branding,
                &view,
            );
        }
        let names = f.names();
        // Every session the browser presented ends (two, when one was tossed beside it).
        let ended = async {
            let mut session = None;
            for presented in self.presented_sessions(gw, f) {
                if session.is_none() {
                    session = self.store.get(&presented).await?;
                }
                self.store.remove(&presented).await?;
            }
            Ok::<_, crate::store::StoreError>(session)
        };
        // A sign-out that cannot reach the store says so: the session is not ended.
        let session = match ended.await {
            Ok(session) => session,
            Err(e) => {
                tracing::error!(app = %f.app.id, error = %e, "sign-out failed: session store unavailable");
                return store_unavailable_page(f);
            }
        };
        let signed_out_page = format!("{}/signed-out", f.app.auth_prefix);
        let landing = f
            .app
            .provider
            .as_ref()
            .and_then(|p| p.post_logout_redirect.as_deref())
            .unwrap_or(&signed_out_page);
        let landing_url = format!("{}{landing}", f.origin());
        let mut location = landing.to_string();
        if let (Some(provider), Some(session)) = (&f.app.provider, &session) {
            if let Ok(d) = provider.discovered().await {
                if let Some(end) = &d.end_session_endpoint {
                    if let Ok(mut url) = url::Url::parse(end) {
                        url.query_pairs_mut()
                            .append_pair("id_token_hint", &session.user.id_token())
                            .append_pair("post_logout_redirect_uri", &landing_url);
                        location = url.to_string();
                    }
                }
            }
        }
        Answer::redirect(&location, "signed_out").header(
            http::header::SET_COOKIE,
            names.clear(names.session().to_string()),
        )
    }
}

/// The session store cannot be reached (a page for a browser).
pub(super) fn store_unavailable_page(f: &RequestFacts) -> Answer {
    f.page(
        503,
        "session_store_unavailable",
        "Sign-in unavailable",
        "Sessions cannot be checked right now. Please try again in a moment.",
    )
}

/// The session store cannot be reached (JSON for an API client).
pub(super) fn store_unavailable_json() -> Answer {
    Answer::json(
        503,
        "session_store_unavailable",
        serde_json::json!({"error": "session_store_unavailable", "message": "sessions cannot be checked right now"}),
    )
}

/// The page after sign-out: it says so, and offers to sign in again.
pub(super) fn signed_out(f: &RequestFacts) -> Answer {
    let view = crate::pages::View {
        heading: "Signed out",
        message: format!("You have signed out of {}.", f.app.branding.title),
        sign_in_url: f
            .app
            .provider
            .is_some()
            .then(|| format!("{}/login?rd=%2F", f.app.auth_prefix)),
        home_url: "/",
        request_id: f.request_id,
        ..Default::default()
    };
    f.pages.answer(
        "signed_out.html",
        200,
        "signed_out_page",
        &f.app.branding,
        &view,
    )
}
