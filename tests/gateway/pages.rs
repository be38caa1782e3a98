//! What a person's browser sees from the gateway itself: refusals as pages (who is signed in,
//! what the page needs, sign-out and switch-user links, the request id), the sign-out
//! confirmation and the signed-out page, in the app's branding — while API clients keep
//! getting JSON for the very same refusals.

use crate::browser::{Browser, Hop};
use crate::common::{free_port, get, Gateway, Origin};
use crate::signin::setup;

const API: [(&str, &str); 1] = [("accept", "application/json")];

fn is_page(hop: &Hop) -> bool {
    hop.body.starts_with("<!doctype html>")
}

async fn api_call(b: &mut Browser, url: &str) -> Hop {
    b.request("GET", url, &API).await
}

#[tokio::test]
async fn a_signed_in_user_without_the_group_gets_a_page_naming_them_and_the_need() {
    let s = setup(
        "",
        "branding: {title: 'Staff Wiki', accent_color: '#0b7a3e'}",
        "",
    )
    .await;
    let mut b = s.browser();
    s.sign_in(&mut b, "/staff/home").await;
    let url = format!("{}/admins/panel?x=1", s.base);
    let page = b
        .request("GET", &url, &[("sec-fetch-mode", "navigate")])
        .await;
    assert_eq!(page.status, 403);
    assert!(is_page(&page), "{}", page.body);
    for shown in [
        "Access denied",
        "Signed in as <strong>user@example.com</strong>",
        "members of “admins”",
        "Staff Wiki",
        "--accent: #0b7a3e",
        "href=\"&#x2f;_auth&#x2f;logout\"",
        "switch=1&amp;rd=%2Fadmins%2Fpanel%3Fx%3D1",
    ] {
        assert!(page.body.contains(shown), "{shown} missing:\n{}", page.body);
    }
    // The request id on the page is the response's.
    let raw = reqwest_like(&s, &url, &b).await;
    assert!(
        raw.1.contains(&raw.0),
        "request id {} not on the page",
        raw.0
    );
    // The same refusal for an API client: JSON, as before.
    let json = api_call(&mut b, &url).await;
    assert_eq!(json.status, 403);
    let body: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(
        s.origin
            .seen()
            .iter()
            .filter(|r| r.target.starts_with("/admins"))
            .count(),
        0
    );
}

/// One navigation with the browser's cookies: (X-Request-Id, body).
async fn reqwest_like(s: &crate::signin::Setup, url: &str, b: &Browser) -> (String, String) {
    let cookie: Vec<String> = b.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let client = reqwest::Client::builder()
        .resolve("app.test", s.gw.addr)
        .build()
        .unwrap();
    let resp = client
        .get(url)
        .header("accept", "text/html")
        .header("cookie", cookie.join("; "))
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    (id, resp.text().await.unwrap())
}

#[tokio::test]
async fn every_refusal_is_a_page_for_a_browser_and_json_for_an_api_client() {
    let origin = Origin::start().await;
    let dead = free_port();
    let gw = Gateway::start(&format!(
        "apps:
  - id: shop
    host: shop.test
    origin: {{url: '{}'}}
    default_action: public
    routes:
      - {{prefix: /closed, action: deny}}
      - {{prefix: /api, action: jwt}}
  - id: down
    host: down.test
    default_action: public
    origin: {{url: 'http://127.0.0.1:{dead}'}}
",
        origin.url()
    ))
    .await;
    let port = gw.addr.port();
    let cases = [
        ("shop.test", "/closed/x", 403, "Access denied"),
        ("shop.test", "/api/orders", 401, "Sign-in required"),
        ("nobody.test", "/", 404, "Not found"),
        ("shop.test", "/a;b", 400, "Bad request"),
        ("down.test", "/", 502, "The app is not answering"),
    ];
    for (host, path, status, heading) in cases {
        let mut b = Browser::new(host, gw.addr);
        let url = format!("http://{host}:{port}{path}");
        let page = b.get(&url).await;
        assert_eq!(page.status, status, "{host}{path}");
        assert!(is_page(&page), "{host}{path}: {}", page.body);
        assert!(page.body.contains(heading), "{host}{path}: {}", page.body);
        let json = api_call(&mut b, &url).await;
        assert_eq!(json.status, status, "{host}{path}");
        let body: serde_json::Value = serde_json::from_str(&json.body)
            .unwrap_or_else(|e| panic!("{host}{path}: not JSON ({e}): {}", json.body));
        assert!(body["error"].is_string(), "{host}{path}: {body}");
    }
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn sign_out_asks_says_what_it_will_do_and_then_says_it_happened() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    s.sign_in(&mut b, "/staff/home").await;
    // A link from elsewhere: the confirmation page, not a sign-out.
    let confirm = b.get(&format!("{}/_auth/logout", s.base)).await;
    assert_eq!(confirm.status, 200);
    for shown in [
        "Signed in as <strong>user@example.com</strong>",
        "and at your sign-in provider",
        "method=\"post\"",
        "Cancel",
    ] {
        assert!(confirm.body.contains(shown), "{shown}:\n{}", confirm.body);
    }
    let action = crate::signin::form_action(&confirm.body);
    let out = b.post_form(&format!("{}{action}", s.base), &[]).await;
    assert_eq!(out.status, 302, "{}", out.body);
    let to_provider = out.location.unwrap();
    // The provider is asked to send the browser back to the signed-out page.
    let back = format!("{}/_auth/signed-out", s.base);
    let encoded: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    assert!(to_provider.contains(&encoded), "{to_provider}");
    let page = b.get(&back).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("You have signed out of authgate."),
        "{}",
        page.body
    );
    assert!(page.body.contains("Sign in again"));
    // And indeed signed out.
    let after = b.get(&format!("{}/staff/home", s.base)).await;
    assert_eq!(after.status, 302);
}

#[tokio::test]
async fn sign_in_as_someone_else_asks_the_provider_for_a_fresh_login() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    let hop = b
        .get(&format!("{}/_auth/login?switch=1&rd=%2Fstaff", s.base))
        .await;
    assert_eq!(hop.status, 302);
    let to = hop.location.unwrap();
    assert!(to.starts_with(&s.idp.issuer()), "{to}");
    assert!(to.contains("prompt=login"), "{to}");
    let plain = b.get(&format!("{}/_auth/login?rd=%2Fstaff", s.base)).await;
    assert!(!plain.location.unwrap().contains("prompt="));
}

#[tokio::test]
async fn the_icon_is_no_refusal_and_templates_can_be_replaced() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("refusal.html"),
        "<!doctype html><title>{{ heading }}</title><p>Ask the help desk about {{ request_id }}</p>",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "pages: {{templates_dir: '{}'}}\napps: [{{id: a, host: a.test, default_action: jwt, origin: {{url: '{}'}}}}]\njwt_issuers: [{{id: i, issuer: 'https://i.test', jwks_uri: 'http://127.0.0.1:9/k', audiences: [a]}}]\n",
        dir.path().display(),
        origin.url()
    ))
    .await;
    let icon = get(gw.addr, "/favicon.ico", "a.test").await.unwrap();
    assert_eq!(icon.status, 204);
    let mut b = Browser::new("a.test", gw.addr);
    let page = b.get(&format!("http://a.test:{}/x", gw.addr.port())).await;
    assert_eq!(page.status, 401);
    assert!(
        page.body.starts_with(
            "<!doctype html><title>Sign-in required</title><p>Ask the help desk about "
        ),
        "{}",
        page.body
    );
    assert!(origin.seen().is_empty());
}
