//! A configuration change keeps what is not configuration: issuers' keys and the
//! verified-token cache survive a reload whose issuer settings did not change, so bearer
//! tokens keep passing even when the JWKS endpoint is down at that moment.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use crate::common::{raw, Gateway, Origin, Resp};
use crate::tokens::{claims, JwksServer, TestKey};

async fn call(gw: &Gateway, token: &str) -> Resp {
    let req = format!(
        "GET /api/x HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    raw(gw.addr, req.as_bytes()).await
}

/// Sends SIGHUP and waits until the new snapshot serves `host`.
async fn reload_until_served(gw: &Gateway, host: &str) {
    crate::common::sighup(gw.pid());
    for _ in 0..100 {
        if crate::common::get(gw.addr, "/", host).await.unwrap().status != 404 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the reload did not take effect");
}

#[tokio::test]
async fn keys_and_verified_tokens_survive_a_reload_while_the_jwks_is_down() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let app = |id: &str, host: &str, action: &str| {
        format!(
            "  - {{id: {id}, host: {host}, default_action: {action}, origin: {{url: '{}'}}}}\n",
            origin.url()
        )
    };
    let head = format!(
        "jwt_issuers:\n  - {{id: main, issuer: '{}', jwks_uri: '{}', audiences: [api]}}\napps:\n{}",
        idp.issuer(),
        idp.jwks_uri(),
        app("api", "api.test", "jwt")
    );
    let gw = Gateway::start(&head).await;
    let first = key.token(&claims(&idp.issuer()));
    assert_eq!(call(&gw, &first).await.status, 200);
    // The start-up warm-up may still be fetching too: let it settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fetches = idp.fetch_count();

    // The operator adds an app; the issuer's settings stay.
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        format!("{text}{}", app("second", "second.test", "public")),
    )
    .unwrap();
    reload_until_served(&gw, "second.test").await;
    assert_eq!(call(&gw, &first).await.status, 200);
    assert_eq!(
        idp.fetch_count(),
        fetches,
        "no fetch: the keys were carried over"
    );

    // The JWKS endpoint goes down, then another change: a new token still verifies.
    idp.down.store(true, Ordering::SeqCst);
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        format!("{text}{}", app("third", "third.test", "public")),
    )
    .unwrap();
    reload_until_served(&gw, "third.test").await;
    let mut other = claims(&idp.issuer());
    other["sub"] = json!("user-2");
    let second = key.token(&other);
    assert_eq!(
        call(&gw, &second).await.status,
        200,
        "keys carried across the reload"
    );
    assert_eq!(call(&gw, &first).await.status, 200);

    // Changing the issuer's own settings builds it afresh (and the endpoint is down).
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace("audiences: [api]", "audiences: [api, more]"),
    )
    .unwrap();
    crate::common::sighup(gw.pid());
    let mut status = 0;
    for _ in 0..100 {
        let mut fresh = claims(&idp.issuer());
        fresh["sub"] = json!(format!("user-{}", crate::tokens::now_nanos()));
        status = call(&gw, &key.token(&fresh)).await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 401, "a changed issuer starts with no keys");
}
