//! The browser sign-in flow and the gateway's own endpoints under the app's `auth_prefix`:
//! `login`, `callback`, `logout`, `me`.
//!
//! State that outlives a configuration reload — the session store, the process's own cookie
//! key, the used-state list, and the token refresher — lives in [`SignIn`], owned by the
//! proxy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use serde::{Deserialize, Serialize};

use super::provider::{Provider, ProviderError, SignedIn};
use super::refresh::Refresher;
use super::return_to;
use crate::config::{App, Gateway};
use crate::session::cookie::{each_request_cookie, request_cookies, CookieKeys, CookieNames};
use crate::session::{new_id, Session, SessionId, SessionStore};

/// A response the gateway writes itself.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers (content type included).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body.
    pub body: Bytes,
    /// Label for logs and metrics.
    pub decision: &'static str,
}

impl Answer {
    fn new(status: u16, decision: &'static str) -> Answer {
        Answer {
            status,
            headers: vec![(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            )],
            body: Bytes::new(),
            decision,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Answer {
        self.headers.push((name, value));
        self
    }

    /// An answer with no body.
    pub fn empty(status: u16, decision: &'static str) -> Answer {
        Answer::new(status, decision)
    }

    /// An HTML page.
    pub fn html(status: u16, decision: &'static str, body: Bytes) -> Answer {
        let mut a = Answer::new(status, decision).header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        a.body = body;
        a
    }

    fn redirect(location: &str, decision: &'static str) -> Answer {
        match HeaderValue::from_str(location) {
            Ok(v) => Answer::new(302, decision).header(http::header::LOCATION, v),
            Err(_) => page(
                400,
                "bad_redirect",
                "Sign-in failed",
                "The redirect address is invalid.",
            ),
        }
    }

    /// A plain-text answer.
    pub fn text(status: u16, decision: &'static str, body: String) -> Answer {
        let mut a = Answer::new(status, decision).header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        a.body = Bytes::from(body);
        a
    }

    /// A 308 to `location` (same method and body on the new address).
    pub fn permanent_redirect(location: &str) -> Answer {
        match HeaderValue::from_str(location) {
            Ok(v) => Answer::new(308, "redirect_https").header(http::header::LOCATION, v),
            Err(_) => page(
                400,
                "bad_redirect",
                "Bad request",
                "The address cannot be redirected.",
            ),
        }
    }

    fn json(status: u16, decision: &'static str, body: serde_json::Value) -> Answer {
        let mut a = Answer::new(status, decision).header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        a.body = Bytes::from(body.to_string() + "\n");
        a
    }
}

/// A small HTML page; `title` and `text` are escaped.
pub fn page(status: u16, decision: &'static str, title: &str, text: &str) -> Answer {
    let mut a = Answer::new(status, decision).header(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    a.body = Bytes::from(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{x}</p><p><a href=\"/\">Back to the start page</a></p></body></html>\n",
        t = escape(title),
        x = escape(text)
    ));
    a
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// What the login cookie holds.
#[derive(Serialize, Deserialize)]
struct PendingLogin {
    /// state
    s: String,
    /// nonce
    n: String,
    /// PKCE verifier
    v: String,
    /// return path
    r: String,
    /// redirect URI used
    u: String,
    /// provider id
    p: String,
    /// created, unix seconds
    t: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The result of looking up a request's session.
pub enum Lookup {
    /// A live session of this app.
    Valid(Arc<Session>),
    /// No session cookie, or one that is forged, of another app, expired or ended.
    Missing,
    /// The session store cannot be reached: whether there is a session is unknown (a 503,
    /// never a sign-in that would loop).
    Unavailable,
}

/// Sign-in state that lives as long as the process.
pub struct SignIn {
    store: Arc<dyn SessionStore>,
    ephemeral_keys: Arc<CookieKeys>,
    used_states: moka::sync::Cache<String, ()>,
    refresher: Refresher,
}

/// Facts about the request the flow needs.
pub struct RequestFacts<'a> {
    /// The request head.
    pub req: &'a RequestHeader,
    /// The app.
    pub app: &'a Arc<App>,
    /// The host as the client wrote it.
    pub host: &'a str,
    /// The request arrived over TLS.
    pub tls: bool,
    /// The request's id, shown on pages.
    pub request_id: &'a str,
    /// The gateway's page templates.
    pub pages: &'a crate::pages::Pages,
}

impl RequestFacts<'_> {
    fn names(&self) -> CookieNames {
        CookieNames { tls: self.tls }
    }

    fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.host
        )
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}{}/{name}", self.origin(), self.app.auth_prefix)
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.req.uri.query()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.req.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A page in this app's branding saying what went wrong, with a way to start again.
    fn page(&self, status: u16, decision: &'static str, heading: &str, text: &str) -> Answer {
        let sign_in_url = self
            .app
            .provider
            .is_some()
            .then(|| format!("{}/login?rd=%2F", self.app.auth_prefix));
        let view = crate::pages::View {
            heading,
            message: text.to_string(),
            sign_in_url,
            home_url: "/",
            request_id: self.request_id,
            ..Default::default()
        };
        self.pages
            .answer("refusal.html", status, decision, &self.app.branding, &view)
    }
}

impl SignIn {
    /// Sign-in state over `store`.
    pub fn new(store: Arc<dyn SessionStore>, metrics: Arc<crate::metrics::Metrics>) -> SignIn {
        SignIn {
            store,
            ephemeral_keys: Arc::new(CookieKeys::ephemeral()),
            // Bounded: a flood of sign-ins cannot grow it without limit. An evicted state is
            // still single-use in effect, because the provider accepts each code once.
            used_states: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            refresher: Refresher::new(metrics),
        }
    }

    fn keys<'g>(&'g self, gw: &'g Gateway) -> &'g CookieKeys {
        gw.sessions
            .cookie_keys
            .as_deref()
            .unwrap_or(&self.ephemeral_keys)
    }

    /// Every session id the request's session cookies carry that verifies for this app.
    fn presented_sessions(&self, gw: &Gateway, f: &RequestFacts) -> Vec<SessionId> {
        let name = f.names().session().as_bytes();
        each_request_cookie(f.req)
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .filter_map(|v| self.keys(gw).open_session(&f.app.id, v))
            .collect()
    }

    /// The request's session id. Two cookies under the session cookie's name (in one header or
    /// two) are refused whole: one of them was planted (cookie tossing from a sibling host),
    /// and the gateway cannot tell which.
    fn session_id(&self, gw: &Gateway, f: &RequestFacts) -> Option<SessionId> {
        let name = f.names().session().as_bytes();
        let mut values = each_request_cookie(f.req).filter(|(n, _)| *n == name);
        let (_, value) = values.next()?;
        if values.next().is_some() {
            return None;
        }
        self.keys(gw)
            .open_session(&f.app.id, std::str::from_utf8(value).ok()?)
    }

    /// The request's live session, refreshing its tokens first when they are about to
    /// expire (once per session, however many requests arrive meanwhile). A failed refresh
    /// ends the session.
    pub async fn session(&self, gw: &Gateway, f: &RequestFacts<'_>) -> Lookup {
        let Some(id) = self.session_id(gw, f) else {
            return Lookup::Missing;
        };
        let session = match self.store.get(&id).await {
            Ok(Some(session)) => session,
            Ok(None) => return Lookup::Missing,
            Err(e) => {
                tracing::error!(app = %f.app.id, error = %e, "session store unavailable");
                return Lookup::Unavailable;
            }
        };
        // A session is worthless on another app, and once the app signs in with another
        // provider (a reload changed it), its sessions from the old one end.
        let same_provider = f
            .app
            .provider
            .as_ref()
            .is_some_and(|p| *p.id == *session.provider);
        if *session.app != *f.app.id || !same_provider {
            return Lookup::Missing;
        }
        self.refresher
            .refresh_if_due(gw, f.app, &*self.store, id, session)
            .await
    }

    /// The answer for a session route without a session: a redirect to the provider for a
    /// browser navigation, a 401 with the login URL for an API or XHR call.
    pub async fn challenge(
        &self,
        gw: &Gateway,
        f: &RequestFacts<'_>,
        path_and_query: &str,
    ) -> Answer {
        if is_browser(f.req) {
            return self.start_login(gw, f, path_and_query).await;
        }
        let login_url = format!(
            "{}{}/login?rd={}",
            f.origin(),
            f.app.auth_prefix,
            url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect::<String>()
        );
        Answer::json(
            401,
            "unauthenticated",
            serde_json::json!({"error": "unauthenticated", "message": "sign-in required", "login_url": login_url}),
        )
        .header(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"authgate\""),
        )
    }

    async fn start_login(&self, gw: &Gateway, f: &RequestFacts<'_>, return_to: &str) -> Answer {
        self.start_login_with(gw, f, return_to, None).await
    }

    async fn start_login_with(
        &self,
        gw: &Gateway,
        f: &RequestFacts<'_>,
        return_to: &str,
        prompt: Option<&str>,
    ) -> Answer {
        let Some(provider) = &f.app.provider else {
            return f.page(
                401,
                "unauthenticated",
                "Sign-in required",
                "This app has no sign-in configured.",
            );
        };
        let redirect_uri = f.endpoint("callback");
        let (url, state, nonce, verifier) = match provider
            .authorize(&redirect_uri, prompt.is_some())
            .await
        {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!(app = %f.app.id, provider = %provider.id, error = %e, "sign-in cannot start");
                return provider_problem(f, &e);
            }
        };
        let pending = PendingLogin {
            s: state.clone(),
            n: nonce,
            v: verifier,
            r: return_to::sanitize(return_to),
            u: redirect_uri,
            p: provider.id.to_string(),
            t: unix_now(),
        };
        let names = f.names();
        let name = names.login(&state);
        let sealed = self.keys(gw).seal(
            &f.app.id,
            &name,
            &serde_json::to_vec(&pending).unwrap_or_default(),
        );
        let mut answer = Answer::redirect(&url, "login_redirect").header(
            http::header::SET_COOKIE,
            names.set(name, sealed, gw.sessions.login_timeout.as_secs() as i64),
        );
        // Keep the number of pending sign-ins bounded, so cookies never outgrow header limits.
        let pending: Vec<&str> = request_cookies(f.req)
            .into_iter()
            .filter_map(|(n, _)| std::str::from_utf8(n).ok())
            .filter(|n| names.is_login(n))
            .collect();
        let keep = gw.sessions.max_pending_logins.saturating_sub(1);
        let drop = pending.len().saturating_sub(keep);
        for old in pending.into_iter().take(drop) {
            answer = answer.header(http::header::SET_COOKIE, names.clear(old.to_string()));
        }
        answer
    }

    /// Answers a request under the app's `auth_prefix`, if it is one.
    pub async fn endpoint(&self, gw: &Gateway, f: &RequestFacts<'_>, path: &str) -> Option<Answer> {
        let rest = path.strip_prefix(f.app.auth_prefix.as_str())?;
        let name = rest.strip_prefix('/')?;
        Some(match name {
            "login" => {
                let rd = f.query_param("rd").unwrap_or_else(|| "/".into());
                // `switch=1`: sign in as someone else; the provider is asked to authenticate
                // afresh instead of reusing its session.
                let prompt = f.query_param("switch").is_some().then_some("login");
                self.start_login_with(gw, f, &rd, prompt).await
            }
            "callback" => self.callback(gw, f).await,
            "logout" => self.logout(gw, f).await,
            "signed-out" => signed_out(f),
            "me" => self.me(gw, f).await,
            _ if is_browser(f.req) => {
                f.page(404, "not_found", "Not found", "There is no such page here.")
            }
            _ => Answer::json(
                404,
                "not_found",
                serde_json::json!({"error": "not_found", "message": "no such endpoint"}),
            ),
        })
    }

    async fn me(&self, gw: &Gateway, f: &RequestFacts<'_>) -> Answer {
        match self.session(gw, f).await {
            Lookup::Valid(s) => Answer::json(200, "me", serde_json::Value::Object(s.user.claims())),
            Lookup::Unavailable => store_unavailable_json(),
            Lookup::Missing => Answer::json(
                401,
                "unauthenticated",
                serde_json::json!({"error": "unauthenticated", "message": "not signed in"}),
            ),
        }
    }

    async fn callback(&self, gw: &Gateway, f: &RequestFacts<'_>) -> Answer {
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
        // Single use, whatever happens next: an error answer consumes the state too.
        let mut replayed = true;
        self.used_states.entry(state.clone()).or_insert_with(|| {
            replayed = false;
        });
        if replayed {
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

    async fn logout(&self, gw: &Gateway, f: &RequestFacts<'_>) -> Answer {
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
fn store_unavailable_page(f: &RequestFacts) -> Answer {
    f.page(
        503,
        "session_store_unavailable",
        "Sign-in unavailable",
        "Sessions cannot be checked right now. Please try again in a moment.",
    )
}

/// The session store cannot be reached (JSON for an API client).
fn store_unavailable_json() -> Answer {
    Answer::json(
        503,
        "session_store_unavailable",
        serde_json::json!({"error": "session_store_unavailable", "message": "sessions cannot be checked right now"}),
    )
}

/// The page after sign-out: it says so, and offers to sign in again.
fn signed_out(f: &RequestFacts) -> Answer {
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

/// How a page names the signed-in user: email, else name, else username, else `sub`.
pub fn display_name(claims: &serde_json::Map<String, serde_json::Value>) -> String {
    ["email", "name", "preferred_username", "sub"]
        .iter()
        .find_map(|c| claims.get(*c).and_then(|v| v.as_str()))
        .filter(|v| !v.is_empty())
        .unwrap_or("(unnamed user)")
        .to_string()
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
fn provider_problem(f: &RequestFacts, e: &ProviderError) -> Answer {
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

/// A top-level browser navigation (redirect it) rather than an API or XHR call (401 JSON).
pub fn is_browser(req: &RequestHeader) -> bool {
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if req.headers.contains_key("x-requested-with") {
        return false;
    }
    match header("sec-fetch-mode") {
        "navigate" => return true,
        "cors" | "no-cors" | "same-origin" | "websocket" => return false,
        _ => {}
    }
    let accept = header("accept");
    accept.contains("text/html") && !accept.starts_with("application/json")
}

fn is_same_origin(f: &RequestFacts) -> bool {
    // Browsers set `Sec-Fetch-Site` themselves; when it is there it decides.
    if let Some(site) = f.header("sec-fetch-site") {
        return site == "same-origin";
    }
    let origin = f.origin();
    let matches = |v: &str| v == origin || v.starts_with(&format!("{origin}/"));
    f.header("origin").is_some_and(matches)
        || (f.header("origin").is_none() && f.header("referer").is_some_and(matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn browsers_and_api_clients_are_told_apart() {
        assert!(is_browser(&req(&[(
            "accept",
            "text/html,application/xhtml+xml"
        )])));
        assert!(is_browser(&req(&[
            ("sec-fetch-mode", "navigate"),
            ("accept", "*/*")
        ])));
        assert!(!is_browser(&req(&[("accept", "application/json")])));
        assert!(!is_browser(&req(&[
            ("accept", "text/html"),
            ("x-requested-with", "XMLHttpRequest")
        ])));
        assert!(!is_browser(&req(&[
            ("accept", "text/html"),
            ("sec-fetch-mode", "cors")
        ])));
        assert!(!is_browser(&req(&[])));
    }

    #[test]
    fn pages_escape_what_the_provider_sent() {
        let a = page(400, "x", "T", "<script>alert(1)</script>");
        let body = String::from_utf8(a.body.to_vec()).unwrap();
        assert!(!body.contains("<script>"));
        assert!(body.contains("&lt;script&gt;"));
    }
}
