//! Forward-auth behind real ingresses: Debian's nginx (`auth_request`, `error_page 401`) and
//! Debian's Caddy (`forward_auth`), in front of a recording origin, with the certified
//! `oidc-provider` for sign-in. The gateway decides; the ingress proxies.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::assertion::verify_with_pyjwt;
use crate::browser::Browser;
use crate::certified::{sign_in_at_provider, start_provider, NodeProvider};
use crate::common::{free_port, Gateway, Origin};
use crate::tokens::{claims, TestKey};

const ISSUER: &str = "https://id.example.com";

/// An ingress process, stopped when dropped.
struct Ingress {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Ingress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ingress {
    /// Runs `command` (its files in `dir`) and waits until it listens on `port`.
    async fn spawn(mut command: Command, dir: tempfile::TempDir, port: u16, what: &str) -> Ingress {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} runs (scripts/install-deps installs it): {e}"));
        let ingress = Ingress {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(ingress.addr).await.is_ok() {
                return ingress;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what} did not start listening on {}", ingress.addr);
    }
}

/// nginx with the configuration docs/forward-auth.md gives, the ports filled in.
async fn start_nginx(gateway: SocketAddr, origin: &str) -> Ingress {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    let config = format!(
        r#"
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    # The gateway's own endpoints (sign-in, callback, sign-out, JWKS) go to authgate.
    location /_auth/ {{
      proxy_pass http://{gateway};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
    # The check: authgate decides on the request described in X-Original-URL.
    location = /_authgate_verify {{
      internal;
      proxy_pass http://{gateway}/_auth/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location / {{
      auth_request /_authgate_verify;
      auth_request_set $authgate_user $upstream_http_x_auth_request_user;
      auth_request_set $authgate_email $upstream_http_x_auth_request_email;
      auth_request_set $authgate_groups $upstream_http_x_auth_request_groups;
      auth_request_set $authgate_assertion $upstream_http_x_authgate_assertion;
      auth_request_set $authgate_login $upstream_http_x_authgate_login;
      error_page 401 = @authgate_sign_in;
      # Set from the check's answer: a client's own headers of these names never pass
      # (an empty value removes the header).
      proxy_set_header X-Auth-Request-User $authgate_user;
      proxy_set_header X-Auth-Request-Email $authgate_email;
      proxy_set_header X-Auth-Request-Groups $authgate_groups;
      proxy_set_header X-Authgate-Assertion $authgate_assertion;
      proxy_pass {origin};
    }}
    # A browser is sent to sign in; an API client keeps the 401.
    location @authgate_sign_in {{
      if ($authgate_login) {{
        return 302 $authgate_login;
      }}
      return 401;
    }}
  }}
}}
"#
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, config).unwrap();
    let mut nginx = Command::new("nginx");
    nginx.arg("-p").arg(dir.path()).arg("-c").arg(&path);
    Ingress::spawn(nginx, dir, port, "nginx").await
}

/// Caddy with the configuration docs/forward-auth.md gives.
async fn start_caddy(gateway: SocketAddr, origin: &str) -> Ingress {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let origin = origin.trim_start_matches("http://");
    let config = format!(
        r#"{{
  admin off
  auto_https off
  log {{
    level ERROR
  }}
}}
http://app.test:{port} {{
  bind 127.0.0.1
  # The gateway's own endpoints go to authgate.
  handle /_auth/* {{
    reverse_proxy {gateway}
  }}
  handle {{
    forward_auth {gateway} {{
      uri /_auth/verify
      copy_headers X-Auth-Request-User X-Auth-Request-Email X-Auth-Request-Groups X-Authgate-Assertion
    }}
    reverse_proxy {origin}
  }}
}}
"#
    );
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, config).unwrap();
    let mut caddy = Command::new("caddy");
    caddy
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&path)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"));
    Ingress::spawn(caddy, dir, port, "caddy").await
}

/// The gateway on `port` for app.test, believing forward-auth checks from `trusted`.
async fn start_gateway_at(
    port: u16,
    provider: &NodeProvider,
    origin: &Origin,
    issuer_key: &TestKey,
    dir: &std::path::Path,
    trusted: &str,
) -> Gateway {
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, json!({"keys": [issuer_key.jwk()]}).to_string()).unwrap();
    Gateway::start_at(port, &format!(
        "
trusted_proxies: [{trusted}]
oidc_providers:
  - {{id: node, issuer: '{}', client_id: authgate, client_secret: authgate-test-secret, scopes: [openid, email], userinfo: true}}
jwt_issuers:
  - {{id: main, issuer: '{ISSUER}', jwks_file: '{}', audiences: [api]}}
apps:
  - id: app
    host: app.test
    origin: {{url: '{}'}}
    assertion: {{}}
    routes:
      - {{prefix: /public, action: public}}
      - {{prefix: /admin, action: deny}}
      - {{prefix: /staff, action: session, require: {{groups: [staff]}}}}
      - {{prefix: /api, action: session_or_jwt}}
",
        provider.issuer,
        jwks_path.display(),
        origin.url()
    ))
    .await
}

/// What the origin received last.
fn last(origin: &Origin) -> crate::common::Seen {
    origin.seen().pop().expect("the origin received a request")
}

/// The whole journey through `ingress`: sign-in, identity, forgeries, bearer, deny.
async fn journey(
    ingress: &Ingress,
    gw: &Gateway,
    provider: &NodeProvider,
    origin: &Origin,
    issuer_key: &TestKey,
) {
    let base = format!("http://app.test:{}", ingress.addr.port());
    let mut b = Browser::new("app.test", ingress.addr);

    // Not signed in: the browser is sent through sign-in and lands on the page it asked for.
    let first = b.get(&format!("{base}/reports?q=1")).await;
    assert_eq!(first.status, 302, "{}", first.body);
    let landed = sign_in_at_provider(&mut b, provider, first).await;
    assert_eq!(landed.status, 200, "{} {}", landed.url, landed.body);
    assert_eq!(landed.url, format!("{base}/reports?q=1"));
    let seen = last(origin);
    assert_eq!(seen.target, "/reports?q=1");
    assert_eq!(seen.header("x-auth-request-user"), Some("alice"));
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some("alice@example.com")
    );
    let assertion = seen
        .header("x-authgate-assertion")
        .expect("an assertion")
        .to_string();
    let jwks_url = format!("http://{}/jwks.json", gw.admin);
    let claims = verify_with_pyjwt(&jwks_url, "https://app.test/_auth", "app", &assertion).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");

    // Forged identity headers and a forged or replayed assertion never reach the origin.
    let forged = [
        ("x-auth-request-user", "mallory"),
        ("x-auth-request-email", "mallory@example.com"),
        ("x-auth-request-groups", "admins"),
        ("x-authgate-assertion", "forged.assertion.value"),
    ];
    b.request("GET", &format!("{base}/reports"), &forged).await;
    let seen = last(origin);
    assert_eq!(seen.header("x-auth-request-user"), Some("alice"));
    assert_eq!(
        seen.header("x-auth-request-email"),
        Some("alice@example.com")
    );
    assert_ne!(seen.header("x-auth-request-groups"), Some("admins"));
    assert_ne!(
        seen.header("x-authgate-assertion"),
        Some("forged.assertion.value")
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("app.test", ingress.addr)
        .build()
        .unwrap();
    let mut public = client.get(format!("{base}/public/page"));
    for (k, v) in forged.iter().take(3) {
        public = public.header(*k, *v);
    }
    let resp = public
        .header("x-authgate-assertion", &assertion)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = last(origin);
    for (name, _) in forged {
        assert!(
            seen.header(name).is_none_or(str::is_empty),
            "{name} reached the origin on a public route: {:?}",
            seen.header(name)
        );
    }

    // Deny, and a requirement the user does not meet: 403.
    assert_eq!(b.get(&format!("{base}/admin/x")).await.status, 403);
    assert_eq!(b.get(&format!("{base}/staff/x")).await.status, 403);

    // An API client with a bearer token; without one, a 401 (no redirect).
    let token = issuer_key.token(&claims_of_api());
    let before = origin.seen().len();
    let resp = client
        .get(format!("{base}/api/orders"))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(origin.seen().len(), before + 1);
    assert_eq!(last(origin).header("x-auth-request-user"), Some("user-1"));
    let resp = client
        .get(format!("{base}/api/orders"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        origin.seen().len(),
        before + 1,
        "nothing reached the origin"
    );
}

fn claims_of_api() -> Value {
    claims(ISSUER)
}

/// A check sent straight to the gateway, as Traefik sends one (to the gateway's own address,
/// the request in `X-Forwarded-*`).
async fn check(gw: &Gateway, query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{}/_auth/verify{query}", gw.addr));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn checks_are_believed_from_trusted_proxies_only_and_answer_in_either_mode() {
    let origin = Origin::start().await;
    let issuer_key = TestKey::ec("issuer-1");
    let dir = tempfile::tempdir().unwrap();
    let provider = start_provider(
        "http://app.test/_auth/callback",
        "http://app.test/_auth/signed-out",
    )
    .await;
    let described = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.test"),
        ("x-forwarded-uri", "/reports?q=1"),
        ("accept", "text/html"),
    ];

    // From a peer that is not a trusted proxy, the description is not believed: 400.
    let untrusted = start_gateway_at(
        free_port(),
        &provider,
        &origin,
        &issuer_key,
        dir.path(),
        "'10.0.0.0/8'",
    )
    .await;
    let resp = check(&untrusted, "", &described).await;
    assert_eq!(resp.status(), 400);
    let token = issuer_key.token(&claims(ISSUER));
    let auth = format!("Bearer {token}");
    let resp = check(
        &untrusted,
        "",
        &[
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/api/x"),
            ("authorization", &auth),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400, "not even with a valid token");
    drop(untrusted);

    let gw = start_gateway_at(
        free_port(),
        &provider,
        &origin,
        &issuer_key,
        dir.path(),
        "'127.0.0.1'",
    )
    .await;
    // Traefik's style: redirect mode by default, to the provider, the return path kept.
    let resp = check(&gw, "", &described).await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&provider.issuer), "{location}");
    assert!(
        location.contains("redirect_uri=https%3A%2F%2Fapp.test%2F_auth%2Fcallback"),
        "{location}"
    );
    assert!(
        resp.headers().get("set-cookie").is_some(),
        "the sign-in state cookie"
    );
    // Status mode on request: 401 and where to sign in.
    let resp = check(&gw, "?mode=status", &described).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["x-authgate-login"],
        "https://app.test/_auth/login?rd=%2Freports%3Fq%3D1"
    );
    // Allowed: 200 with every identity header of the mapping (empty when there is no such
    // claim) and the assertion.
    let resp = check(
        &gw,
        "",
        &[
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/api/x"),
            ("authorization", &auth),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-auth-request-user"], "user-1");
    assert_eq!(resp.headers()["x-auth-request-groups"], "staff,ops");
    assert!(resp.headers()["x-authgate-assertion"].len() > 100);
    let resp = check(
        &gw,
        "",
        &[
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/public/x"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-auth-request-user"],
        "",
        "a public route names nobody"
    );
    // Refusals in status mode stay 401/403 (nginx reads any other status as its own error).
    let resp = check(
        &gw,
        "?mode=status",
        &[
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/a;b=c"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["x-authgate-status"], "400");
    let resp = check(
        &gw,
        "",
        &[
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/a;b=c"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400);
    // Malformed descriptions: 400, never a decision (checks sent for the app's host, as
    // nginx and Caddy send them).
    for bad in [
        &[("x-forwarded-host", "app.test")][..],
        &[("x-forwarded-uri", "/x")][..],
        &[
            ("x-forwarded-host", "app.test, other.test"),
            ("x-forwarded-uri", "/x"),
        ][..],
        &[
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/x"),
            ("x-forwarded-proto", "ftp"),
        ][..],
        &[("x-original-url", "/not-absolute")][..],
    ] {
        let with_host: Vec<(&str, &str)> =
            bad.iter().copied().chain([("host", "app.test")]).collect();
        assert_eq!(check(&gw, "", &with_host).await.status(), 400, "{bad:?}");
    }
    // An unknown host: 404; the gateway's own endpoints are never "allowed" through a check.
    let resp = check(
        &gw,
        "",
        &[
            ("x-forwarded-host", "other.test"),
            ("x-forwarded-uri", "/x"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 404);
    let resp = check(
        &gw,
        "",
        &[
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/_auth/me"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 400);
    // The origin heard none of it.
    assert!(origin.seen().is_empty());
}

/// The journey behind the ingress `start_ingress` starts (pointed at the gateway's port, which
/// is chosen first: the provider must know the callback on the ingress's port, so the ingress
/// starts before the gateway binds).
async fn behind<F, Fut>(start_ingress: F)
where
    F: FnOnce(SocketAddr, String) -> Fut,
    Fut: std::future::Future<Output = Ingress>,
{
    let origin = Origin::start().await;
    let issuer_key = TestKey::ec("issuer-1");
    let dir = tempfile::tempdir().unwrap();
    let gateway_port = free_port();
    let ingress = start_ingress(
        SocketAddr::from(([127, 0, 0, 1], gateway_port)),
        origin.url(),
    )
    .await;
    let base = format!("http://app.test:{}", ingress.addr.port());
    let provider = start_provider(
        &format!("{base}/_auth/callback"),
        &format!("{base}/_auth/signed-out"),
    )
    .await;
    let gw = start_gateway_at(
        gateway_port,
        &provider,
        &origin,
        &issuer_key,
        dir.path(),
        "'127.0.0.1'",
    )
    .await;
    journey(&ingress, &gw, &provider, &origin, &issuer_key).await;
}

#[tokio::test]
async fn nginx_auth_request_asks_the_gateway() {
    behind(|gateway, origin| async move { start_nginx(gateway, &origin).await }).await;
}

#[tokio::test]
async fn caddy_forward_auth_asks_the_gateway() {
    behind(|gateway, origin| async move { start_caddy(gateway, &origin).await }).await;
}

#[tokio::test]
async fn a_forward_auth_listener_checks_every_request_whatever_its_path() {
    let origin = Origin::start().await;
    let issuer_key = TestKey::ec("issuer-1");
    let dir = tempfile::tempdir().unwrap();
    let provider = start_provider(
        "https://app.test/_auth/callback",
        "https://app.test/_auth/signed-out",
    )
    .await;
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, json!({"keys": [issuer_key.jwk()]}).to_string()).unwrap();
    let (traffic, checks) = (free_port(), free_port());
    let gw = Gateway::start_with(
        &format!(
            "listen: [{{address: '127.0.0.1:{traffic}'}}, {{address: '127.0.0.1:{checks}', forward_auth_only: true, forward_auth_mode: status}}]"
        ),
        SocketAddr::from(([127, 0, 0, 1], traffic)),
        &format!(
            "
trusted_proxies: ['127.0.0.1']
oidc_providers:
  - {{id: node, issuer: '{}', client_id: authgate, client_secret: authgate-test-secret}}
jwt_issuers:
  - {{id: main, issuer: '{ISSUER}', jwks_file: '{}', audiences: [api]}}
apps:
  - {{id: app, host: app.test, origin: {{url: '{}'}}, routes: [{{prefix: /, action: session_or_jwt}}]}}
",
            provider.issuer,
            jwks_path.display(),
            origin.url()
        ),
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let ask = |path: &str| {
        client
            .get(format!("http://127.0.0.1:{checks}{path}"))
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "app.test")
            .header("x-forwarded-uri", "/reports")
            .header("accept", "text/html")
    };
    // The listener's mode (status), any path.
    let resp = ask("/").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["x-authgate-login"],
        "https://app.test/_auth/login?rd=%2Freports"
    );
    let resp = ask("/anything/verify").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let token = issuer_key.token(&claims(ISSUER));
    let resp = ask("/")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-auth-request-user"], "user-1");
    // The traffic listener still proxies.
    let resp = client
        .get(format!("http://127.0.0.1:{traffic}/x"))
        .header("host", "app.test")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(origin.seen().len(), 1);
    drop(gw);
}
