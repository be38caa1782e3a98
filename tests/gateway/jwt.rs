//! JWT bearer routes through the real gateway: valid tokens per algorithm, every known attack,
//! JWKS caching, rotation and outages, requirements, and what the origin receives.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{get, raw, Gateway, Origin, Resp};
use crate::tokens::{b64, claims, hs256, now, JwksServer, TestKey};

/// A gateway with issuer `main` (served by `idp`) and app `api.test`:
/// `/api` needs a JWT, `/orders` needs scope `orders.write`, `/open` is public.
async fn gateway(origin: &Origin, idp: &JwksServer, issuer_extra: &str, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "{extra}
jwt_issuers:
  - id: main
    issuer: '{}'
    jwks_uri: '{}'
    audiences: [api]
    {issuer_extra}
apps:
  - id: api
    host: api.test
    origin: {{url: '{}'}}
    routes:
      - {{prefix: /api, action: jwt}}
      - {{prefix: /orders, action: jwt, require: {{scopes: [orders.write]}}}}
      - {{prefix: /open, action: public}}
",
        idp.issuer(),
        idp.jwks_uri(),
        origin.url()
    ))
    .await
}

async fn call(addr: SocketAddr, path: &str, token: &str) -> Resp {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    raw(addr, req.as_bytes()).await
}

fn assert_invalid(resp: &Resp, why: &str) {
    assert_eq!(resp.status, 401, "{why}: {resp:?}");
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{why}: {challenge}"
    );
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_pass_with_identity_headers() {
    let keys = [TestKey::rsa("r1"), TestKey::ec("e1"), TestKey::ed("d1")];
    let idp = JwksServer::start(&keys.iter().collect::<Vec<_>>()).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp, "", "").await;
    for key in &keys {
        let token = key.token(&claims(&idp.issuer()));
        let resp = call(gw.addr, "/api/x", &token).await;
        assert_eq!(resp.status, 200, "{}: {resp:?}", key.alg());
    }
    // The scheme name is case-insensitive.
    let token = keys[0].token(&claims(&idp.issuer()));
    let req = format!("GET /api/y HTTP/1.1\r\nHost: api.test\r\nAuthorization: bEaReR {token}\r\nX-Auth-Request-User: forged\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 200);
    let seen = origin.seen();
    assert_eq!(seen.len(), 4);
    for s in &seen {
        assert_eq!(s.all("x-auth-request-user"), ["user-1"]);
        assert_eq!(s.header("x-auth-request-email"), Some("user@example.com"));
        assert_eq!(s.header("x-auth-request-groups"), Some("staff,ops"));
        assert!(
            s.header("authorization").is_some(),
            "forwarded by default on jwt routes"
        );
    }
}

#[tokio::test]
async fn attacks_on_the_token_are_refused() {
    let key = TestKey::rsa("r1");
    let ec = TestKey::ec("e1");
    let idp = JwksServer::start(&[&key, &ec]).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp, "", "").await;
    let iss = idp.issuer();
    let good = claims(&iss);
    let with = |patch: Value| {
        let mut c = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };

    let mut cases: Vec<(String, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
        let payload = b64(good.to_string().as_bytes());
        cases.push((format!("alg {alg}"), format!("{header}.{payload}.")));
    }
    cases.push((
        "HS256 signed with the RSA public key".into(),
        hs256(
            &json!({"alg": "HS256", "kid": "r1"}),
            &good,
            &key.public_bytes(),
        ),
    ));
    cases.push((
        "wrong iss".into(),
        key.token(&with(json!({"iss": "https://evil.test"}))),
    ));
    cases.push((
        "wrong aud".into(),
        key.token(&with(json!({"aud": "other-api"}))),
    ));
    cases.push((
        "aud array without ours".into(),
        key.token(&with(json!({"aud": ["a", "b"]}))),
    ));
    cases.push((
        "expired".into(),
        key.token(&with(json!({"exp": now() - 3600}))),
    ));
    cases.push((
        "future nbf".into(),
        key.token(&with(json!({"nbf": now() + 3600}))),
    ));
    cases.push((
        "future iat".into(),
        key.token(&with(json!({"iat": now() + 3600}))),
    ));
    cases.push(("missing exp".into(), key.token(&with(json!({"exp": null})))));
    cases.push((
        "exp as string".into(),
        key.token(&with(json!({"exp": (now() + 600).to_string()}))),
    ));
    cases.push((
        "crit header".into(),
        key.token_with_header(
            &json!({"alg": "RS256", "kid": "r1", "crit": ["exp"]}),
            &good,
        ),
    ));
    cases.push((
        "alg not matching the key type".into(),
        key.token_with_header(&json!({"alg": "ES256", "kid": "r1"}), &good),
    ));
    let token = key.token(&good);
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = b64(with(json!({"sub": "admin"})).to_string().as_bytes());
    cases.push((
        "tampered payload".into(),
        format!("{}.{tampered}.{}", parts[0], parts[2]),
    ));
    let ec_token = ec.token(&good);
    let ec_parts: Vec<&str> = ec_token.split('.').collect();
    cases.push((
        "ES256 all-zero signature".into(),
        format!("{}.{}.{}", ec_parts[0], ec_parts[1], b64(&[0u8; 64])),
    ));
    cases.push(("not a JWT".into(), "abc.def".into()));
    cases.push(("garbage parts".into(), "!!!.???.***".into()));

    for (why, token) in &cases {
        assert_invalid(&call(gw.addr, "/api/x", token).await, why);
    }
    assert!(
        origin.seen().is_empty(),
        "nothing reached the origin: {:?}",
        origin.seen()
    );

    // A valid one still passes, so the refusals above are about the attacks.
    assert_eq!(call(gw.addr, "/api/x", &key.token(&good)).await.status, 200);
}

#[tokio::test]
async fn embedded_keys_in_the_header_are_never_used_or_fetched() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let attacker = TestKey::rsa("attacker");
    let attacker_jwks = JwksServer::start(&[&attacker]).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp, "", "").await;
    let good = claims(&idp.issuer());
    let header = json!({"alg": "RS256", "kid": "attacker", "jwk": attacker.jwk(),
                        "jku": attacker_jwks.jwks_uri(), "x5u": attacker_jwks.jwks_uri()});
    assert_invalid(
        &call(
            gw.addr,
            "/api/x",
            &attacker.token_with_header(&header, &good),
        )
        .await,
        "jwk/jku",
    );
    let header = json!({"alg": "RS256", "jwk": attacker.jwk(), "jku": attacker_jwks.jwks_uri()});
    assert_invalid(
        &call(
            gw.addr,
            "/api/x",
            &attacker.token_with_header(&header, &good),
        )
        .await,
        "no kid",
    );
    assert_eq!(
        attacker_jwks.fetch_count(),
        0,
        "the gateway never fetched the attacker's keys"
    );
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn a_kid_of_another_issuer_never_verifies() {
    let a = TestKey::rsa("shared-looking-kid-a");
    let b = TestKey::rsa("kid-b");
    let idp_a = JwksServer::start(&[&a]).await;
    let idp_b = JwksServer::start(&[&b]).await;
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "
jwt_issuers:
  - {{id: a, issuer: '{}', jwks_uri: '{}', audiences: [api]}}
  - {{id: b, issuer: '{}', jwks_uri: '{}', audiences: [api]}}
apps:
  - id: api
    host: api.test
    origin: {{url: '{}'}}
    routes: [{{prefix: /api, action: jwt}}]
",
        idp_a.issuer(),
        idp_a.jwks_uri(),
        idp_b.issuer(),
        idp_b.jwks_uri(),
        origin.url()
    ))
    .await;
    // Claims say issuer A; kid and signature are B's.
    let forged = b.token(&claims(&idp_a.issuer()));
    assert_invalid(
        &call(gw.addr, "/api/x", &forged).await,
        "kid of issuer b for issuer a",
    );
    // Each issuer's own tokens pass.
    assert_eq!(
        call(gw.addr, "/api/x", &a.token(&claims(&idp_a.issuer())))
            .await
            .status,
        200
    );
    assert_eq!(
        call(gw.addr, "/api/x", &b.token(&claims(&idp_b.issuer())))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn oversized_tokens_are_refused_before_parsing() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let gw = gateway(
        &origin,
        &idp,
        "",
        "limits: {max_request_header_bytes: 131072}",
    )
    .await;
    let mut c = claims(&idp.issuer());
    c["padding"] = json!("x".repeat(64 * 1024));
    let resp = call(gw.addr, "/api/x", &key.token(&c)).await;
    assert_invalid(&resp, "64 KiB token");
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .contains("token too large"));
}

#[tokio::test]
async fn unknown_kids_cause_at_most_one_fetch_per_cooldown() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp, "unknown_kid_cooldown: 60s", "").await;
    // Warm-up fetched once; let it land.
    assert_eq!(
        call(gw.addr, "/api/x", &key.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );
    let before = idp.fetch_count();
    let good = claims(&idp.issuer());
    let addr = gw.addr;
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let token = key.token_with_header(
            &json!({"alg": "RS256", "kid": format!("random-{i}-{}", now())}),
            &good,
        );
        tasks.push(tokio::spawn(async move {
            call(addr, "/api/x", &token).await.status
        }));
        if tasks.len() == 50 {
            for t in tasks.drain(..) {
                assert_eq!(t.await.unwrap(), 401);
            }
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    let extra = idp.fetch_count() - before;
    assert!(extra <= 1, "{extra} JWKS fetches for 1000 unknown kids");
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch() {
    let old = TestKey::rsa("old");
    let idp = JwksServer::start(&[&old]).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp, "", "").await;
    assert_eq!(
        call(gw.addr, "/api/x", &old.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );
    let new = TestKey::ed("new");
    idp.set_keys(&[&old, &new]);
    let before = idp.fetch_count();
    assert_eq!(
        call(gw.addr, "/api/x", &new.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );
    assert_eq!(idp.fetch_count() - before, 1);
    assert_eq!(
        call(gw.addr, "/api/y", &new.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );
    assert_eq!(idp.fetch_count() - before, 1, "known now: no further fetch");
}

#[tokio::test]
async fn a_jwks_outage_keeps_the_last_good_keys_serving() {
    let key = TestKey::ec("e1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    // Refresh every second so the outage is noticed during the test.
    let gw = gateway(&origin, &idp, "min_refresh: 1s\n    max_refresh: 1s", "").await;
    assert_eq!(
        call(gw.addr, "/api/x", &key.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );
    idp.down.store(true, std::sync::atomic::Ordering::SeqCst);
    // Different tokens each time, so the verified-token cache does not answer.
    for i in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut c = claims(&idp.issuer());
        c["jti"] = json!(i);
        assert_eq!(
            call(gw.addr, "/api/x", &key.token(&c)).await.status,
            200,
            "round {i}"
        );
    }
    let metrics = get(gw.admin, "/metrics", "x").await.unwrap().body;
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("authgate_jwks_fetch_failures_total{issuer=\"main\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(failures >= 1, "{metrics}");
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    // The provider answers discovery under any path, always naming its root as the issuer:
    // configured as its root it is believed, configured as `/tenant` it is not.
    let gw = Gateway::start(&format!(
        "
jwt_issuers:
  - {{id: ok, issuer: '{iss}', audiences: [api]}}
apps:
  - {{id: api, host: api.test, origin: {{url: '{}'}}, routes: [{{prefix: /api, action: jwt}}]}}
",
        origin.url(),
        iss = idp.issuer()
    ))
    .await;
    assert_eq!(
        call(gw.addr, "/api/x", &key.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );

    let origin = Origin::start().await;
    let lying = format!("{}/tenant", idp.issuer());
    let gw = Gateway::start(&format!(
        "
jwt_issuers:
  - {{id: lying, issuer: '{lying}', audiences: [api]}}
apps:
  - {{id: api, host: api.test, origin: {{url: '{}'}}, routes: [{{prefix: /api, action: jwt}}]}}
",
        origin.url()
    ))
    .await;
    assert_invalid(
        &call(gw.addr, "/api/x", &key.token(&claims(&lying))).await,
        "discovery issuer mismatch",
    );
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn requirements_ambiguity_and_header_safety() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp, "", "").await;
    let iss = idp.issuer();

    // No token: 401 with a bare challenge.
    let resp = get(gw.addr, "/api/x", "api.test").await.unwrap();
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"authgate\"")
    );

    // Lacking a scope: 403 insufficient_scope; with it: 200.
    let resp = call(gw.addr, "/orders/1", &key.token(&claims(&iss))).await;
    assert_eq!(resp.status, 403);
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .contains("insufficient_scope"));
    let mut c = claims(&iss);
    c["scope"] = json!("orders.read orders.write");
    assert_eq!(call(gw.addr, "/orders/1", &key.token(&c)).await.status, 200);

    // Two Authorization headers, or a token in the query: 400.
    let token = key.token(&claims(&iss));
    let req = format!("GET /api/x HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 400);
    let req = format!(
        "GET /api/x?access_token={token} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 400);

    // A claim that would inject a header refuses the request.
    let mut c = claims(&iss);
    c["email"] = json!("a@b.test\r\nX-Auth-Request-User: admin");
    assert_invalid(
        &call(gw.addr, "/api/x", &key.token(&c)).await,
        "CRLF in a claim",
    );

    let targets: Vec<String> = origin.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(
        targets,
        ["/orders/1"],
        "only the request meeting the requirement arrived"
    );
}

#[tokio::test]
async fn authorization_can_be_withheld_from_the_origin() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "
jwt_issuers:
  - {{id: main, issuer: '{}', jwks_uri: '{}', audiences: [api]}}
apps:
  - id: api
    host: api.test
    origin: {{url: '{}'}}
    jwt: {{forward_authorization: false}}
    routes: [{{prefix: /api, action: jwt}}]
",
        idp.issuer(),
        idp.jwks_uri(),
        origin.url()
    ))
    .await;
    assert_eq!(
        call(gw.addr, "/api/x", &key.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );
    let seen = origin.only();
    assert!(seen.header("authorization").is_none());
    assert_eq!(seen.header("x-auth-request-user"), Some("user-1"));
}

#[tokio::test]
async fn a_shared_secret_issuer_with_a_required_type() {
    let origin = Origin::start().await;
    let secret = "a-shared-secret-of-at-least-thirty-two-bytes";
    let gw = Gateway::start(&format!(
        "
jwt_issuers:
  - id: hs
    issuer: https://hs.test
    jwks_file: '{}/tests/gateway/empty-jwks.json'
    algorithms: [HS256]
    shared_secret: '{secret}'
    required_typ: at+jwt
    audiences: [api]
apps:
  - {{id: api, host: api.test, origin: {{url: '{}'}}, routes: [{{prefix: /api, action: jwt}}]}}
",
        env!("CARGO_MANIFEST_DIR"),
        origin.url()
    ))
    .await;
    let c = claims("https://hs.test");
    let ok = hs256(
        &json!({"alg": "HS256", "typ": "at+jwt"}),
        &c,
        secret.as_bytes(),
    );
    assert_eq!(call(gw.addr, "/api/x", &ok).await.status, 200);
    let app_typ = hs256(
        &json!({"alg": "HS256", "typ": "application/at+jwt"}),
        &c,
        secret.as_bytes(),
    );
    assert_eq!(call(gw.addr, "/api/x", &app_typ).await.status, 200);
    let plain = hs256(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &c,
        secret.as_bytes(),
    );
    assert_invalid(
        &call(gw.addr, "/api/x", &plain).await,
        "typ JWT where at+jwt is required",
    );
    let wrong_secret = hs256(
        &json!({"alg": "HS256", "typ": "at+jwt"}),
        &c,
        b"another-secret-of-at-least-thirty-two-bytes",
    );
    assert_invalid(
        &call(gw.addr, "/api/x", &wrong_secret).await,
        "wrong secret",
    );
    assert_eq!(origin.seen().len(), 2);
}

#[tokio::test]
async fn an_app_can_choose_its_own_identity_headers() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "
jwt_issuers:
  - {{id: main, issuer: '{}', jwks_uri: '{}', audiences: [api]}}
apps:
  - id: api
    host: api.test
    origin: {{url: '{}'}}
    identity_headers: {{X-Auth-Request-Subject: sub, Remote-User: email}}
    routes: [{{prefix: /api, action: jwt}}]
",
        idp.issuer(),
        idp.jwks_uri(),
        origin.url()
    ))
    .await;
    assert_eq!(
        call(gw.addr, "/api/x", &key.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );
    let seen = origin.only();
    assert_eq!(seen.header("x-auth-request-subject"), Some("user-1"));
    assert_eq!(seen.header("remote-user"), Some("user@example.com"));
    assert!(
        seen.header("x-auth-request-email").is_none(),
        "the global mapping is replaced"
    );
}
