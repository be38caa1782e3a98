//! The browser sign-in flow and the gateway's own endpoints under the app's `auth_prefix`:
//! `login` and `me` here, `callback` in `callback.rs`, `logout` and `signed-out` in
//! `sign_out.rs`, `backchannel-logout` in `backchannel.rs`; the answers they give in
//! `answer.rs`. Token refresh is `oidc::refresh`.
//!
//! State that outlives a configuration reload — the session store (with its single-use sign-in
//! states), the process's own cookie key, and the token refresher — lives in [`SignIn`], owned by the
//! proxy.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use pingora::http::RequestHeader;
use serde::{Deserialize, Serialize};

mod admin_sessions;
mod answer;
pub mod backchannel;
mod callback;
mod sign_out;

pub use admin_sessions::SessionView;
pub use answer::{page, Answer};
use callback::provider_problem;
use sign_out::{signed_out, store_unavailable_json};

use super::refresh::Refresher;
use super::return_to;
use crate::config::{App, Gateway};
use crate::session::cookie::{each_request_cookie, request_cookies, CookieKeys, CookieNames};
use crate::session::{Session, SessionId, SessionStore};

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
