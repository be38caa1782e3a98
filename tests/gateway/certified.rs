//! Sign-in against the certified OpenID Connect provider from npm (`oidc-provider`), run with
//! Node.js on loopback: discovery, its own login and consent pages, code + PKCE, ID token,
//! sessions, RP-initiated logout, and Back-Channel Logout to two replicas sharing Redis,
//! exactly as a browser (and the provider) would go through them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::browser::Browser;
use crate::common::{free_port, Gateway, Origin};

pub struct NodeProvider {
    child: Child,
    pub issuer: String,
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_provider(redirect_uri: &str, post_logout_uri: &str) -> NodeProvider {
    start_provider_with(redirect_uri, post_logout_uri, &[]).await
}

async fn start_provider_with(
    redirect_uri: &str,
    post_logout_uri: &str,
    env: &[(&str, &str)],
) -> NodeProvider {
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
        .envs(env.iter().copied())
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

/// Signs in at the provider's own pages (login, then consent) from where the gateway sent
/// the browser (its login page, then its consent page); returns the page the browser lands on
/// back at the app.
pub async fn sign_in_at_provider(
    b: &mut Browser,
    provider: &NodeProvider,
    first: crate::browser::Hop,
) -> crate::browser::Hop {
    let login_page = settle(b, first).await;
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
    let consent_page = settle(b, consent_page).await;
    assert!(
        consent_page.body.contains("consent"),
        "{}",
        consent_page.body
    );
    let action = form_action(&consent_page.url, &consent_page.body);
    let back = b.post_form(&action, &[("prompt", "consent")]).await;
    settle(b, back).await
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

    // The gateway sends the browser to the provider's login page; the user signs in and
    // consents there.
    let first = b.get(&format!("{base}/reports?q=1")).await;
    let landed = sign_in_at_provider(&mut b, &provider, first).await;

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

#[tokio::test]
async fn back_channel_logout_from_the_certified_provider_ends_the_session_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    let redis = crate::store_redis::start(dir.path(), &[]);
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://app.test:{port_a}"),
        format!("http://app.test:{port_b}"),
    );
    let provider = start_provider_with(
        &format!("{base_a}/_auth/callback,{base_b}/_auth/callback"),
        &format!("{base_a}/_auth/signed-out"),
        &[(
            "BACKCHANNEL_LOGOUT_URI",
            &format!("{base_a}/_auth/backchannel-logout"),
        )],
    )
    .await;
    let origin = Origin::start().await;
    let config = format!(
        "
oidc_providers:
  - {{id: node, issuer: '{}', client_id: authgate, client_secret: authgate-test-secret}}
sessions:
  cookie_keys: ['a-cookie-key-shared-by-the-replicas-0123456789']
  store: redis
  redis: {{url: 'redis://127.0.0.1:{}/'}}
apps:
  - {{id: app, host: app.test, origin: {{url: '{}'}}}}
",
        provider.issuer,
        redis.port,
        origin.url()
    );
    let a = Gateway::start_at(port_a, &config).await;
    let b = Gateway::start_at(port_b, &config).await;

    // Signed in through A, and so on B too.
    let mut on_a = Browser::new("app.test", a.addr);
    let first = on_a.get(&format!("{base_a}/reports")).await;
    let landed = sign_in_at_provider(&mut on_a, &provider, first).await;
    assert_eq!(landed.status, 200, "{} {}", landed.url, landed.body);
    let me = on_a.get(&format!("{base_a}/_auth/me")).await;
    let claims: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert!(
        claims["sid"].is_string(),
        "the provider names its session in the ID token: {claims}"
    );
    let mut on_b = Browser::new("app.test", b.addr);
    on_b.jar = on_a.jar.clone();
    assert_eq!(on_b.get(&format!("{base_b}/_auth/me")).await.status, 200);

    // The user signs out at the provider itself (not through the app): the provider asks to
    // confirm, then POSTs a logout token to A's back-channel endpoint before it answers.
    let confirm = on_a.get(&format!("{}/session/end", provider.issuer)).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let xsrf_at = confirm
        .body
        .find("name=\"xsrf\" value=\"")
        .expect("an xsrf field")
        + "name=\"xsrf\" value=\"".len();
    let xsrf = &confirm.body[xsrf_at..xsrf_at + confirm.body[xsrf_at..].find('"').unwrap()];
    let action = form_action(&confirm.url, &confirm.body);
    let signed_out_at = std::time::Instant::now();
    let done = on_a
        .post_form(&action, &[("xsrf", xsrf), ("logout", "yes")])
        .await;
    assert!(done.status < 400, "{} {}", done.status, done.body);

    // Ended on both replicas (A took the request; B within a second).
    let mut on_b = Browser::new("app.test", b.addr);
    on_b.jar = on_a.jar.clone();
    loop {
        if on_b.get(&format!("{base_b}/_auth/me")).await.status == 401 {
            break;
        }
        assert!(
            signed_out_at.elapsed() < Duration::from_secs(1),
            "B still honours the session a second after the provider's logout"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(on_a.get(&format!("{base_a}/_auth/me")).await.status, 401);
    let metrics = a.metrics().await;
    assert!(
        metrics.contains(r#"authgate_backchannel_logouts_total{app="app",outcome="ended"} 1"#),
        "{metrics}"
    );
}
