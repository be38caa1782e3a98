//! Sign-in against the certified OpenID Connect provider from npm (`oidc-provider`), run with
//! Node.js on loopback: discovery, its own login and consent pages, code + PKCE, ID token,
//! sessions, and RP-initiated logout, exactly as a browser would go through them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::browser::Browser;
use crate::common::{free_port, Gateway, Origin};

struct NodeProvider {
    child: Child,
    issuer: String,
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_provider(redirect_uri: &str, post_logout_uri: &str) -> NodeProvider {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/oidc-provider")
            .exists(),
        "run `npm ci --prefix tests/oidc-provider` (scripts/test does) before the tests"
    );
    let port = free_port();
    let child = Command::new("node")
        .arg("server.mjs")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .env("REDIRECT_URI", redirect_uri)
        .env("POST_LOGOUT_URI", post_logout_uri)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node is installed (scripts/install-deps installs it)");
    let provider = NodeProvider {
        child,
        issuer: format!("http://127.0.0.1:{port}"),
    };
    let discovery = format!("{}/.well-known/openid-configuration", provider.issuer);
    for _ in 0..200 {
        if reqwest::get(&discovery)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return provider;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("oidc-provider did not start");
}

/// The `action` of the first form on a page, resolved against the page's URL.
fn form_action(page_url: &str, html: &str) -> String {
    let start = html.find("action=\"").expect("a form") + "action=\"".len();
    let end = start + html[start..].find('"').unwrap();
    let action = html[start..end].replace("&amp;", "&");
    url::Url::parse(page_url)
        .unwrap()
        .join(&action)
        .unwrap()
        .to_string()
}

/// Follows redirects from `hop` (already fetched) to the next page.
async fn settle(b: &mut Browser, mut hop: crate::browser::Hop) -> crate::browser::Hop {
    while let Some(location) = hop.location.clone() {
        let next = url::Url::parse(&hop.url)
            .unwrap()
            .join(&location)
            .unwrap()
            .to_string();
        hop = b.get(&next).await;
    }
    hop
}

#[tokio::test]
async fn sign_in_and_out_with_the_certified_provider() {
    let port = free_port();
    let base = format!("http://app.test:{port}");
    let provider = start_provider(
        &format!("{base}/_auth/callback"),
        &format!("{base}/_auth/signed-out"),
    )
    .await;
    let origin = Origin::start().await;
    let gw = Gateway::start_at(
        port,
        &format!(
            "
oidc_providers:
  - {{id: node, issuer: '{}', client_id: authgate, client_secret: authgate-test-secret, scopes: [openid, email], userinfo: true}}
apps:
  - id: app
    host: app.test
    origin: {{url: '{}'}}
    routes: [{{prefix: /public, action: public}}]
",
            provider.issuer,
            origin.url()
        ),
    )
    .await;
    let mut b = Browser::new("app.test", gw.addr);

    // The gateway sends the browser to the provider's login page.
    let first = b.get(&format!("{base}/reports?q=1")).await;
    let login_page = settle(&mut b, first).await;
    assert_eq!(login_page.status, 200, "{}", login_page.body);
    assert!(
        login_page.url.starts_with(&provider.issuer),
        "{}",
        login_page.url
    );
    let action = form_action(&login_page.url, &login_page.body);
    let consent_page = b
        .post_form(
            &action,
            &[("prompt", "login"), ("login", "alice"), ("password", "any")],
        )
        .await;
    let consent_page = settle(&mut b, consent_page).await;
    assert!(
        consent_page.body.contains("consent"),
        "{}",
        consent_page.body
    );
    let action = form_action(&consent_page.url, &consent_page.body);
    let back = b.post_form(&action, &[("prompt", "consent")]).await;
    let landed = settle(&mut b, back).await;

    assert_eq!(landed.status, 200, "{} {}", landed.url, landed.body);
    assert_eq!(landed.url, format!("{base}/reports?q=1"));
    let seen = origin.only();
    assert_eq!(seen.header("x-auth-request-user"), Some("alice"));
    // oidc-provider keeps scope claims out of the ID token when it issues an access token;
    // `email` arrives through userinfo, whose `sub` the gateway checked.
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some("alice@example.com")
    );

    let me = b.get(&format!("{base}/_auth/me")).await;
    let claims: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["iss"], provider.issuer);

    // Sign out: the session ends here and the browser is sent to the provider's end-session
    // endpoint with the ID token hint. The button is on the app's own page (same origin).
    let out = b
        .request(
            "POST",
            &format!("{base}/_auth/logout"),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(out.status, 302);
    let location = out.location.unwrap();
    assert!(
        location.starts_with(&format!("{}/session/end", provider.issuer)),
        "{location}"
    );
    assert!(location.contains("id_token_hint="));
    assert_eq!(b.get(&format!("{base}/_auth/me")).await.status, 401);
    // The provider accepts the hint (it checks the signature and that it issued the token)
    // and asks the user to confirm signing out there too.
    let end = b.get(&location).await;
    assert_eq!(end.status, 200, "{}", end.body);
    assert!(end.body.contains("/session/end/confirm"), "{}", end.body);
}
