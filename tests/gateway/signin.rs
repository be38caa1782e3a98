//! Browser sign-in through the real gateway against an OIDC provider on loopback: the whole
//! flow, and every way it must fail safely.

use std::time::Duration;

use serde_json::json;

use crate::browser::Browser;
use crate::common::{Gateway, Origin};
use crate::idp::TestIdp;

pub(crate) struct Setup {
    pub origin: Origin,
    pub idp: TestIdp,
    pub gw: Gateway,
    pub base: String,
}

pub(crate) async fn setup(provider_extra: &str, app_extra: &str, sessions_extra: &str) -> Setup {
    let origin = Origin::start().await;
    let idp = TestIdp::start().await;
    let gw = Gateway::start(&format!(
        "oidc_providers:
{}
sessions:
  cookie_keys: ['a-cookie-key-for-the-tests-0123456789']
  {sessions_extra}
apps:
  - id: app
    host: app.test
    origin: {{url: '{}'}}
    {app_extra}
    routes:
      - {{prefix: /public, action: public}}
      - {{prefix: /staff, action: session, require: {{groups: [staff]}}}}
      - {{prefix: /admins, action: session, require: {{groups: [admins]}}}}
  - id: other
    host: other.test
    origin: {{url: '{}'}}
",
        idp.provider_yaml(provider_extra),
        origin.url(),
        origin.url()
    ))
    .await;
    let base = format!("http://app.test:{}", gw.addr.port());
    Setup {
        origin,
        idp,
        gw,
        base,
    }
}

impl Setup {
    pub fn browser(&self) -> Browser {
        let mut b = Browser::new("app.test", self.gw.addr);
        b.jar.clear();
        b
    }

    /// Signs in by visiting `path`; returns the hops.
    pub async fn sign_in(&self, b: &mut Browser, path: &str) -> Vec<crate::browser::Hop> {
        b.follow(&format!("{}{path}", self.base)).await
    }
}

#[tokio::test]
async fn a_browser_signs_in_and_lands_where_it_was_going() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    let hops = s.sign_in(&mut b, "/private/page?x=1").await;
    let statuses: Vec<u16> = hops.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        [302, 302, 302, 200],
        "{:?}",
        hops.iter().map(|h| &h.url).collect::<Vec<_>>()
    );
    assert!(hops[0]
        .location
        .as_ref()
        .unwrap()
        .starts_with(&s.idp.issuer()));
    assert!(hops[1]
        .location
        .as_ref()
        .unwrap()
        .contains("/_auth/callback?"));
    assert_eq!(hops[2].location.as_deref(), Some("/private/page?x=1"));
    let session_cookie = hops[2]
        .set_cookies
        .iter()
        .find(|c| c.starts_with("authgate="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session_cookie.contains(attr), "{session_cookie}");
    }
    let seen = s.origin.only();
    assert_eq!(seen.target, "/private/page?x=1");
    assert_eq!(seen.header("x-auth-request-user"), Some("user-1"));
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some("user@example.com")
    );
    assert!(
        seen.header("cookie")
            .is_none_or(|c| !c.contains("authgate")),
        "the gateway's cookies never reach the origin: {seen:?}"
    );

    // /_auth/me shows claims, never tokens.
    let me = b.get(&format!("{}/_auth/me", s.base)).await;
    assert_eq!(me.status, 200);
    let claims: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(claims["sub"], "user-1");
    assert!(
        !me.body.contains("refresh-") && !me.body.contains("access-") && !me.body.contains("eyJ")
    );

    // Requirements apply to sessions too.
    assert_eq!(b.get(&format!("{}/staff/x", s.base)).await.status, 200);
    assert_eq!(b.get(&format!("{}/admins/x", s.base)).await.status, 403);

    // The cookie is worthless on another app's host.
    let value = b.jar["authgate"].clone();
    let req = format!("GET /private HTTP/1.1\r\nHost: other.test\r\nCookie: authgate={value}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    assert_eq!(
        crate::common::raw(s.gw.addr, req.as_bytes()).await.status,
        401
    );
}

#[tokio::test]
async fn api_calls_without_a_session_get_401_with_the_login_url() {
    let s = setup("", "", "").await;
    let req = "GET /private/data HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n";
    let resp = crate::common::raw(s.gw.addr, req.as_bytes()).await;
    assert_eq!(resp.status, 401);
    let body: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    assert!(body["login_url"]
        .as_str()
        .unwrap()
        .ends_with("/_auth/login?rd=%2Fprivate%2Fdata"));
    let req = "GET /private/data HTTP/1.1\r\nHost: app.test\r\nAccept: text/html\r\nX-Requested-With: XMLHttpRequest\r\nConnection: close\r\n\r\n";
    assert_eq!(
        crate::common::raw(s.gw.addr, req.as_bytes()).await.status,
        401
    );
    assert!(s.origin.seen().is_empty());
}

/// Runs the flow up to the callback and returns its URL without visiting it.
pub(crate) async fn callback_url(s: &Setup, b: &mut Browser, path: &str) -> String {
    let first = b.get(&format!("{}{path}", s.base)).await;
    let authorize = b.get(first.location.as_ref().unwrap()).await;
    authorize.location.unwrap()
}

#[tokio::test]
async fn state_must_match_and_is_single_use() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    let callback = callback_url(&s, &mut b, "/private").await;

    // Wrong state: no cookie for it.
    let wrong = callback.replace("state=", "state=x");
    assert_eq!(b.get(&wrong).await.status, 400);
    // Missing state.
    let url = url::Url::parse(&callback).unwrap();
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let missing = format!("{}/_auth/callback?code={code}", s.base);
    assert_eq!(b.get(&missing).await.status, 400);
    assert_eq!(
        s.idp.token_calls(),
        0,
        "no call to the provider on a bad state"
    );

    // The real one works once...
    let jar_before = b.jar.clone();
    let ok = b.get(&callback).await;
    assert_eq!(ok.status, 302);
    assert_eq!(s.idp.token_calls(), 1);
    // ...and a replay, even with the login cookie put back, does not.
    b.jar = jar_before;
    let replay = b.get(&callback).await;
    assert_eq!(replay.status, 400);
    assert_eq!(
        s.idp.token_calls(),
        1,
        "a replayed state makes no further call"
    );
}

async fn assert_sign_in_refused(s: &Setup, expected: u16) {
    let mut b = s.browser();
    let hops = s.sign_in(&mut b, "/private").await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, expected, "{}", last.body);
    assert!(
        !b.jar.contains_key("authgate"),
        "no session cookie: {:?}",
        b.jar
    );
    assert_eq!(b.get(&format!("{}/_auth/me", s.base)).await.status, 401);
    assert!(s.origin.seen().is_empty());
}

#[tokio::test]
async fn id_token_problems_make_no_session() {
    type Misbehave = Box<dyn Fn(&mut crate::idp::Knobs)>;
    let cases: Vec<(&str, Misbehave)> = vec![
        (
            "wrong nonce",
            Box::new(|k| k.id_nonce = Some("other-nonce".into())),
        ),
        ("bad signature", Box::new(|k| k.id_bad_signature = true)),
        (
            "wrong aud",
            Box::new(|k| k.id_aud = Some(json!("someone-else"))),
        ),
        ("expired", Box::new(|k| k.id_exp_offset = Some(-3600))),
        ("alg none", Box::new(|k| k.id_alg_none = true)),
        (
            "iss of another provider",
            Box::new(|k| k.id_iss = Some("https://evil.test".into())),
        ),
        (
            "two audiences, no azp",
            Box::new(|k| k.id_aud = Some(json!(["authgate-test", "other"]))),
        ),
    ];
    for (why, knob) in cases {
        let s = setup("", "", "").await;
        s.idp.set(|k| knob(k));
        let mut b = s.browser();
        let hops = s.sign_in(&mut b, "/private").await;
        let last = hops.last().unwrap();
        assert!(
            matches!(last.status, 401 | 502),
            "{why}: {} {}",
            last.status,
            last.body
        );
        assert!(!b.jar.contains_key("authgate"), "{why}: no session cookie");
        assert!(s.origin.seen().is_empty(), "{why}");
    }
}

#[tokio::test]
async fn the_iss_parameter_must_name_the_provider() {
    let s = setup("", "", "").await;
    s.idp
        .set(|k| k.callback_iss = Some("https://evil.test".into()));
    assert_sign_in_refused(&s, 400).await;
    assert_eq!(s.idp.token_calls(), 0);

    // A provider that advertises RFC 9207 must send it.
    let s = setup("", "", "").await;
    s.idp.set(|k| k.advertise_iss = true);
    let mut b = s.browser();
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
}

#[tokio::test]
async fn a_provider_error_is_shown_on_a_page() {
    let s = setup("", "", "").await;
    s.idp
        .set(|k| k.authorize_error = Some(("access_denied".into(), "<b>User said no</b>".into())));
    let mut b = s.browser();
    let last = s.sign_in(&mut b, "/private").await.pop().unwrap();
    assert_eq!(last.status, 403);
    assert!(last.body.contains("access_denied"));
    assert!(
        last.body.contains("&lt;b&gt;User said no&lt;&#x2f;b&gt;"),
        "{}",
        last.body
    );
    assert!(!last.body.contains("<b>"));
    assert_eq!(s.idp.token_calls(), 0);
}

#[tokio::test]
async fn userinfo_must_name_the_same_subject() {
    let s = setup(", userinfo: true", "", "").await;
    let mut b = s.browser();
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
    let me: serde_json::Value =
        serde_json::from_str(&b.get(&format!("{}/_auth/me", s.base)).await.body).unwrap();
    assert_eq!(me["name"], "Test User", "userinfo claims are merged");

    let s = setup(", userinfo: true", "", "").await;
    s.idp.set(|k| k.userinfo_sub = Some("someone-else".into()));
    assert_sign_in_refused(&s, 401).await;
}

#[tokio::test]
async fn discovery_naming_another_issuer_refuses_the_provider() {
    let s = setup("", "", "").await;
    s.idp
        .set(|k| k.discovery_issuer = Some("https://evil.test".into()));
    // The warm-up may have discovered already; a fresh gateway proves the check.
    let gw = Gateway::start(&format!(
        "oidc_providers:\n{}\napps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}}}\n",
        s.idp.provider_yaml(""),
        s.origin.url()
    ))
    .await;
    let mut b = Browser::new("app.test", gw.addr);
    let hop = b
        .get(&format!("http://app.test:{}/private", gw.addr.port()))
        .await;
    assert_eq!(hop.status, 502);
    assert!(hop.body.contains("identity provider"));
    assert_eq!(s.idp.token_calls(), 0);
}

#[tokio::test]
async fn return_paths_cannot_leave_the_app() {
    let s = setup("", "", "").await;
    for rd in [
        "//evil.test",
        "/\\evil.test",
        "https://evil.test",
        "/%2F%2Fevil.test",
        "/%09/evil.test",
        "javascript:alert(1)",
    ] {
        let mut b = s.browser();
        let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let hops = s
            .sign_in(&mut b, &format!("/_auth/login?rd={encoded}"))
            .await;
        let back = hops
            .iter()
            .find(|h| h.url.contains("/_auth/callback"))
            .unwrap();
        assert_eq!(back.location.as_deref(), Some("/"), "{rd}");
    }
}

#[tokio::test]
async fn return_paths_are_normalised_before_they_are_judged() {
    let s = setup("", "", "").await;
    for (rd, expected) in [
        ("/ /evil.test", "/"),
        ("/\t/evil.test", "/"),
        ("/.//evil.test", "/evil.test"),
        ("/..//evil.test", "/evil.test"),
        ("/%2e%2e//evil.test", "/evil.test"),
        ("/a/./b/../c?x=1", "/a/c?x=1"),
    ] {
        let mut b = s.browser();
        let encoded: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let hops = s
            .sign_in(&mut b, &format!("/_auth/login?rd={encoded}"))
            .await;
        let back = hops
            .iter()
            .find(|h| h.url.contains("/_auth/callback"))
            .unwrap();
        assert_eq!(back.location.as_deref(), Some(expected), "{rd:?}");
    }
}

#[tokio::test]
async fn each_sign_in_issues_a_new_session_id() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    // A value planted before sign-in (session fixation) is neither kept nor honoured.
    b.jar
        .insert("authgate".into(), "planted-by-an-attacker".into());
    s.sign_in(&mut b, "/private").await;
    let first = b.jar["authgate"].clone();
    assert_ne!(first, "planted-by-an-attacker");
    s.sign_in(&mut b, "/_auth/login?rd=/private").await;
    assert_ne!(b.jar["authgate"], first, "signing in again rotates the id");
}

#[tokio::test]
async fn sessions_end_when_the_app_switches_provider() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    s.sign_in(&mut b, "/private").await;
    let me = format!("{}/_auth/me", s.base);
    assert_eq!(b.get(&me).await.status, 200);
    // The operator points the app at another provider and reloads: identities vouched for
    // by the old one are not carried over.
    let text = std::fs::read_to_string(&s.gw.config_path).unwrap();
    std::fs::write(
        &s.gw.config_path,
        text.replace("test-idp", "replacement-idp"),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &s.gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut status = 0;
    for _ in 0..100 {
        status = b.get(&me).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 401, "the old provider's session ended");
}

#[tokio::test]
async fn sessions_end_at_their_duration_and_when_idle() {
    let s = setup("", "session_duration: 2s", "").await;
    let mut b = s.browser();
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        b.get(&format!("{}/private", s.base)).await.status,
        302,
        "absolute expiry"
    );

    let s = setup("", "", "").await;
    let gw_idle = Gateway::start(&format!(
        "oidc_providers:\n{}\nsessions: {{idle_timeout: 1s}}\napps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}}}\n",
        s.idp.provider_yaml(""),
        s.origin.url()
    ))
    .await;
    let base = format!("http://app.test:{}", gw_idle.addr.port());
    let mut b = Browser::new("app.test", gw_idle.addr);
    assert_eq!(
        b.follow(&format!("{base}/private"))
            .await
            .last()
            .unwrap()
            .status,
        200
    );
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            b.get(&format!("{base}/private")).await.status,
            200,
            "used, so not idle"
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        b.get(&format!("{base}/private")).await.status,
        302,
        "idle timeout"
    );
}

#[tokio::test]
async fn concurrent_requests_refresh_once_and_a_failed_refresh_ends_the_session() {
    // Tokens live 2 s and are refreshed only once expired, so the sign-in itself refreshes
    // nothing and the concurrent burst below is the first to find them due.
    let s = setup("", "", "refresh_before_expiry: 0s").await;
    s.idp.set(|k| {
        k.expires_in = Some(2);
        k.refreshed_expires_in = Some(3600);
    });
    let mut b = s.browser();
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
    assert_eq!(s.idp.refresh_calls(), 0);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let cookie = format!("authgate={}", b.jar["authgate"]);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = format!("{}/private/{i}", s.base);
        let cookie = cookie.clone();
        let client = reqwest::Client::builder()
            .resolve("app.test", s.gw.addr)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        tasks.push(tokio::spawn(async move {
            client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        s.idp.refresh_calls(),
        1,
        "exactly one refresh for 20 concurrent requests"
    );

    let s = setup("", "", "refresh_before_expiry: 0s").await;
    s.idp.set(|k| k.expires_in = Some(2));
    let mut b = s.browser();
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
    s.idp.set(|k| k.refresh_fails = true);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        b.get(&format!("{}/private", s.base)).await.status,
        302,
        "sent to sign in again"
    );
    assert_eq!(b.get(&format!("{}/_auth/me", s.base)).await.status, 401);
    assert_eq!(s.idp.refresh_calls(), 1);
}

#[tokio::test]
async fn sign_out_clears_the_session_and_signs_out_at_the_provider() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );

    // A cross-site GET does not sign out; it gets a confirmation page.
    let page = b.get(&format!("{}/_auth/logout", s.base)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("method=\"post\""));
    assert_eq!(b.get(&format!("{}/_auth/me", s.base)).await.status, 200);

    // The confirmation page's form signs out.
    let out = b
        .request(
            "POST",
            &format!("{}{}", s.base, form_action(&page.body)),
            &[],
        )
        .await;
    assert_eq!(out.status, 302);
    let location = out.location.unwrap();
    assert!(
        location.starts_with(&format!("{}/end_session?", s.idp.issuer())),
        "{location}"
    );
    let url = url::Url::parse(&location).unwrap();
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    // The hint is the very ID token the provider issued, byte for byte (the session keeps
    // it packed and rebuilds it).
    assert_eq!(
        Some(&params["id_token_hint"]),
        s.idp.issued_id_tokens().last()
    );
    assert_eq!(
        params["post_logout_redirect_uri"],
        format!("{}/_auth/signed-out", s.base)
    );
    assert!(out
        .set_cookies
        .iter()
        .any(|c| c.starts_with("authgate=;") && c.contains("Max-Age=0")));
    assert_eq!(b.get(&format!("{}/_auth/me", s.base)).await.status, 401);
    assert!(
        s.idp.end_session_calls().is_empty(),
        "the browser, not the gateway, visits the provider"
    );

    // Same-origin GET signs out too.
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
    let origin = s.base.clone();
    let out = b
        .request(
            "GET",
            &format!("{}/_auth/logout", s.base),
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(out.status, 302);
    assert_eq!(b.get(&format!("{}/_auth/me", s.base)).await.status, 401);
}

/// The `action` of the one form on a gateway page.
pub(crate) fn form_action(body: &str) -> String {
    let start = body.find("action=\"").expect("a form") + "action=\"".len();
    let end = start + body[start..].find('"').unwrap();
    unescape(&body[start..end])
}

/// Undoes the HTML escaping of an attribute value.
pub(crate) fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn parallel_sign_ins_each_complete_and_pending_ones_stay_bounded() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    let first = callback_url(&s, &mut b, "/one").await;
    let second = callback_url(&s, &mut b, "/two").await;
    assert_eq!(b.get(&second).await.location.as_deref(), Some("/two"));
    assert_eq!(b.get(&first).await.location.as_deref(), Some("/one"));

    let mut b = s.browser();
    for i in 0..6 {
        b.get(&format!("{}/tab/{i}", s.base)).await;
    }
    let pending = b
        .jar
        .keys()
        .filter(|k| k.starts_with("authgate-login-"))
        .count();
    assert!(
        pending <= 3,
        "{pending} pending login cookies: {:?}",
        b.jar.keys()
    );
}

#[tokio::test]
async fn behind_a_trusted_tls_proxy_cookies_are_host_prefixed_and_secure() {
    let s = setup("", "", "").await;
    let gw = Gateway::start(&format!(
        "trusted_proxies: [127.0.0.1]\noidc_providers:\n{}\napps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}}}\n",
        s.idp.provider_yaml(""),
        s.origin.url()
    ))
    .await;
    let mut b = Browser::new("app.test", gw.addr);
    let first = b
        .request(
            "GET",
            &format!("http://app.test:{}/private", gw.addr.port()),
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert_eq!(first.status, 302);
    let login = &first.set_cookies[0];
    assert!(login.starts_with("__Host-authgate-login-"), "{login}");
    assert!(
        login.contains("Secure") && login.contains("HttpOnly") && login.contains("SameSite=Lax")
    );
    let authorize = url::Url::parse(first.location.as_ref().unwrap()).unwrap();
    let redirect_uri = authorize
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .to_string();
    assert!(
        redirect_uri.starts_with("https://app.test:"),
        "{redirect_uri}"
    );
}
