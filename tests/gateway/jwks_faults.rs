//! A JWKS endpoint that hangs or has gone quiet: waiting requests share one fetch and its
//! result, and keys that went stale are fetched anew instead of refusing tokens.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::{raw, Gateway, Origin, Resp};
use crate::tokens::{claims, JwksServer, TestKey};

async fn gateway(origin: &Origin, idp: &JwksServer, issuer_extra: &str) -> Gateway {
    Gateway::start(&format!(
        "jwt_issuers:\n  - {{id: main, issuer: '{}', jwks_uri: '{}', audiences: [api]{issuer_extra}}}\napps:\n  - {{id: api, host: api.test, default_action: jwt, origin: {{url: '{}'}}}}\n",
        idp.issuer(),
        idp.jwks_uri(),
        origin.url()
    ))
    .await
}

async fn call(gw: &Gateway, token: &str) -> Resp {
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    raw(gw.addr, req.as_bytes()).await
}

#[tokio::test]
async fn requests_waiting_on_a_hanging_jwks_share_one_fetch() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    idp.hang.store(true, Ordering::SeqCst);
    let origin = Origin::start().await;
    let gw = gateway(&origin, &idp, ", fetch_timeout: 1s").await;
    let token = key.token(&claims(&idp.issuer()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (addr, token) = (gw.addr, token.clone());
        tasks.push(tokio::spawn(async move {
            let req = format!(
                "GET /x HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            );
            raw(addr, req.as_bytes()).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    // Serialised, ten requests would queue ten 1 s timeouts one after another.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        idp.fetch_count() <= 3,
        "{} fetches for 10 requests",
        idp.fetch_count()
    );
    assert!(origin.seen().is_empty());
}

#[tokio::test]
async fn stale_keys_are_fetched_anew_before_a_token_is_refused() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    // Keys go stale after 2 s; nothing else would fetch before the next refresh.
    let gw = gateway(
        &origin,
        &idp,
        ", min_refresh: 1s, max_refresh: 2s, stale_max_age: 2s",
    )
    .await;
    assert_eq!(
        call(&gw, &key.token(&claims(&idp.issuer()))).await.status,
        200
    );
    // Idle past the stale age; the endpoint is healthy all along.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let mut fresh = claims(&idp.issuer());
    fresh["sub"] = serde_json::json!("user-2");
    assert_eq!(call(&gw, &key.token(&fresh)).await.status, 200);
}

#[test]
fn check_refuses_keys_that_go_stale_before_their_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authgate.yaml");
    std::fs::write(
        &path,
        "jwt_issuers:\n  - {id: a, issuer: 'https://id.test', jwks_uri: 'https://id.test/k', audiences: [api], max_refresh: 1h, stale_max_age: 10m}\napps:\n  - {id: app, host: app.test, origin: {url: 'http://127.0.0.1:9'}}\n",
    )
    .unwrap();
    let (passed, stderr) = crate::common::check(&path);
    assert!(!passed);
    assert!(stderr.contains("jwt_issuers[0].stale_max_age"), "{stderr}");
}
