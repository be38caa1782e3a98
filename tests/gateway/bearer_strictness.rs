//! Bearer tokens and their issuers' keys read strictly: repeated member names, keys whose
//! `key_ops` forbid verifying, tokens without `kid`, RFC 6750 challenges on 400 and 403,
//! and one config entry per issuer.

use std::net::SocketAddr;

use serde_json::json;

use crate::common::{raw, Gateway, Origin, Resp};
use crate::tokens::{claims, JwksServer, TestKey};

/// A gateway for the issuer `idp` serves: `/api` needs a JWT, `/orders` scope
/// `orders.write`, `/admins` group `admins`.
async fn gateway(origin: &Origin, idp: &JwksServer) -> Gateway {
    Gateway::start(&format!(
        "
jwt_issuers:
  - {{id: main, issuer: '{}', jwks_uri: '{}', audiences: [api]}}
apps:
  - id: api
    host: api.test
    origin: {{url: '{}'}}
    routes:
      - {{prefix: /api, action: jwt}}
      - {{prefix: /orders, action: jwt, require: {{scopes: [orders.write]}}}}
      - {{prefix: /admins, action: jwt, require: {{groups: [admins]}}}}
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

/// The valid claims for `iss`, without `scope`, as JSON text with `extra` members appended
/// verbatim.
fn claims_text(iss: &str, extra: &str) -> String {
    let mut claims = claims(iss);
    claims.as_object_mut().unwrap().remove("scope");
    let text = claims.to_string();
    format!("{}{extra}}}", &text[..text.len() - 1])
}

#[tokio::test]
async fn repeated_member_names_make_a_token_invalid() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp).await;
    let iss = idp.issuer();
    let header = r#"{"alg":"RS256","typ":"JWT","kid":"r1"}"#;
    // The same token without the repeat passes: only the repeat is refused.
    let plain = key.sign_texts(header, &claims_text(&iss, r#","scope":"orders.write""#));
    assert_eq!(call(gw.addr, "/orders/1", &plain).await.status, 200);
    let before = origin.seen().len();
    for (why, token) in [
        (
            "scope twice",
            key.sign_texts(
                header,
                &claims_text(&iss, r#","scope":"orders.read","scope":"orders.write""#),
            ),
        ),
        (
            "sub twice",
            key.sign_texts(
                header,
                &claims_text(&iss, r#","scope":"orders.write","sub":"admin""#),
            ),
        ),
        (
            "kid twice in the header",
            key.sign_texts(
                r#"{"alg":"RS256","typ":"JWT","kid":"r1","kid":"r1"}"#,
                &claims(&iss).to_string(),
            ),
        ),
    ] {
        let resp = call(gw.addr, "/orders/1", &token).await;
        assert_eq!(resp.status, 401, "{why}: {resp:?}");
        assert!(
            resp.header("www-authenticate")
                .is_some_and(|c| c.contains("invalid_token")),
            "{why}"
        );
    }
    assert_eq!(origin.seen().len(), before);
}

#[tokio::test]
async fn a_key_whose_key_ops_do_not_include_verify_verifies_nothing() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let mut jwk = key.jwk();
    jwk["key_ops"] = json!(["encrypt", "wrapKey"]);
    idp.set_jwks(json!({"keys": [jwk]}));
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp).await;
    let token = key.token(&claims(&idp.issuer()));
    assert_eq!(call(gw.addr, "/api/x", &token).await.status, 401);
    assert!(origin.seen().is_empty());

    // The same key marked for verifying works.
    let idp = JwksServer::start(&[&key]).await;
    let mut jwk = key.jwk();
    jwk["key_ops"] = json!(["verify"]);
    idp.set_jwks(json!({"keys": [jwk]}));
    let gw = gateway(&origin, &idp).await;
    let token = key.token(&claims(&idp.issuer()));
    assert_eq!(call(gw.addr, "/api/x", &token).await.status, 200);
}

#[tokio::test]
async fn a_token_without_kid_uses_the_one_key_that_fits() {
    let rsa = TestKey::rsa("r1");
    let ec = TestKey::ec("e1");
    let idp = JwksServer::start(&[&rsa, &ec]).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp).await;
    let no_kid = |key: &TestKey| {
        key.token_with_header(
            &json!({"alg": key.alg(), "typ": "JWT"}),
            &claims(&idp.issuer()),
        )
    };
    // One RSA key and one EC key: each algorithm has exactly one key.
    assert_eq!(call(gw.addr, "/api/x", &no_kid(&rsa)).await.status, 200);
    assert_eq!(call(gw.addr, "/api/x", &no_kid(&ec)).await.status, 200);

    // Two RSA keys: which one was meant is ambiguous.
    let other = TestKey::rsa("r2");
    let idp = JwksServer::start(&[&rsa, &other]).await;
    let gw = gateway(&origin, &idp).await;
    let token = rsa.token_with_header(&json!({"alg": "RS256"}), &claims(&idp.issuer()));
    let resp = call(gw.addr, "/api/x", &token).await;
    assert_eq!(resp.status, 401, "{resp:?}");
    assert!(resp.body.contains("several fit"), "{}", resp.body);
    // With its kid, the same key works.
    assert_eq!(
        call(gw.addr, "/api/x", &rsa.token(&claims(&idp.issuer())))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn refusals_carry_the_rfc_6750_challenges() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp).await;
    let token = key.token(&claims(&idp.issuer()));
    let twice = format!(
        "GET /api/x HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let resp = raw(gw.addr, twice.as_bytes()).await;
    assert_eq!(resp.status, 400);
    let challenge = resp.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_request\""),
        "{resp:?}"
    );
    for path in ["/admins/x", "/orders/x"] {
        let resp = call(gw.addr, path, &token).await;
        assert_eq!(resp.status, 403, "{path}");
        let challenge = resp.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{path}: {resp:?}"
        );
    }
}

#[test]
fn two_entries_for_one_issuer_are_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authgate.yaml");
    std::fs::write(
        &path,
        "
jwt_issuers:
  - {id: a, issuer: 'https://id.test', jwks_uri: 'https://id.test/jwks', audiences: [api]}
  - {id: b, issuer: 'https://id.test', jwks_uri: 'https://id.test/jwks', audiences: [admin]}
apps:
  - {id: app, host: app.test, origin: {url: 'http://127.0.0.1:9'}}
",
    )
    .unwrap();
    let (passed, stderr) = crate::common::check(&path);
    assert!(!passed);
    assert!(stderr.contains("jwt_issuers[1].issuer"), "{stderr}");
}
