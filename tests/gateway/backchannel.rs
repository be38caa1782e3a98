//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0) through the real gateway with
//! the in-memory store: a logout token the provider signed ends the sessions it names; a
//! forged, replayed or malformed one gets a 400 and ends nothing.

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::common::{raw, Gateway, Resp};
use crate::idp::{TestIdp, CLIENT_ID};
use crate::signin::{setup, Setup};
use crate::tokens::TestKey;

/// POSTs `body` to the app's back-channel logout endpoint.
pub(crate) async fn post(gw: &Gateway, content_type: &str, body: &str) -> Resp {
    let request = format!(
        "POST /_auth/backchannel-logout HTTP/1.1\r\nHost: app.test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(gw.addr, request.as_bytes()).await
}

/// POSTs a logout token as the provider does.
pub(crate) async fn send_token(gw: &Gateway, token: &str) -> Resp {
    post(
        gw,
        "application/x-www-form-urlencoded",
        &format!("logout_token={token}"),
    )
    .await
}

async fn signed_in(s: &Setup) -> Browser {
    let mut b = s.browser();
    let hops = s.sign_in(&mut b, "/private").await;
    assert_eq!(hops.last().unwrap().status, 200);
    b
}

async fn is_signed_in(s: &Setup, b: &mut Browser) -> bool {
    match b.get(&format!("{}/_auth/me", s.base)).await.status {
        200 => true,
        401 => false,
        other => panic!("/_auth/me answered {other}"),
    }
}

fn with(mut claims: Value, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    edit(claims.as_object_mut().unwrap());
    claims
}

#[tokio::test]
async fn a_logout_token_for_the_provider_session_ends_it_and_only_it() {
    let s = setup("", "", "").await;
    s.idp.set(|k| k.sid = Some("sid-1".into()));
    let mut first = signed_in(&s).await;
    s.idp.set(|k| k.sid = Some("sid-2".into()));
    let mut second = signed_in(&s).await;

    let token = s
        .idp
        .logout_token(&s.idp.logout_claims(Some("user-1"), Some("sid-1")));
    let answer = send_token(&s.gw, &token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert!(!is_signed_in(&s, &mut first).await, "sid-1's session ended");
    assert!(
        is_signed_in(&s, &mut second).await,
        "another provider session of the same user goes on"
    );

    // The same token again is refused (and would end nothing).
    let again = send_token(&s.gw, &token).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);

    // A token naming only the user ends all of the user's sessions.
    let mut third = signed_in(&s).await;
    let token = s
        .idp
        .logout_token(&s.idp.logout_claims(Some("user-1"), None));
    assert_eq!(send_token(&s.gw, &token).await.status, 200);
    assert!(!is_signed_in(&s, &mut second).await);
    assert!(!is_signed_in(&s, &mut third).await);

    // A token for a session that is not here is still a success: there is nothing to end.
    let token = s
        .idp
        .logout_token(&s.idp.logout_claims(Some("user-1"), Some("sid-unknown")));
    assert_eq!(send_token(&s.gw, &token).await.status, 200);
}

#[tokio::test]
async fn forged_replayed_and_malformed_logout_requests_end_nothing() {
    let s = setup("", "", "").await;
    s.idp.set(|k| k.sid = Some("sid-1".into()));
    let mut b = signed_in(&s).await;
    let idp: &TestIdp = &s.idp;
    let good = || idp.logout_claims(Some("user-1"), Some("sid-1"));
    let header = json!({"alg": "RS256", "typ": "logout+jwt", "kid": "idp-key"});
    let stranger = TestKey::rsa("idp-key");

    let mut forged: Vec<(&str, String)> = vec![
        (
            "signed by another key under the provider's kid",
            stranger.token_with_header(&header, &good()),
        ),
        (
            "another audience",
            idp.logout_token(&with(good(), |c| {
                c.insert("aud".into(), json!("another-client"));
            })),
        ),
        (
            "another issuer",
            idp.logout_token(&with(good(), |c| {
                c.insert("iss".into(), json!("https://evil.example"));
            })),
        ),
        (
            "expired",
            idp.logout_token(&with(good(), |c| {
                c.insert("exp".into(), json!(crate::tokens::now() - 3600));
            })),
        ),
        (
            "no exp",
            idp.logout_token(&with(good(), |c| {
                c.remove("exp");
            })),
        ),
        (
            "issued in the future",
            idp.logout_token(&with(good(), |c| {
                c.insert("iat".into(), json!(crate::tokens::now() + 3600));
            })),
        ),
        (
            "no iat",
            idp.logout_token(&with(good(), |c| {
                c.remove("iat");
            })),
        ),
        (
            "a nonce (an ID token)",
            idp.logout_token(&with(good(), |c| {
                c.insert("nonce".into(), json!("n"));
            })),
        ),
        (
            "no events",
            idp.logout_token(&with(good(), |c| {
                c.remove("events");
            })),
        ),
        (
            "another event",
            idp.logout_token(&with(good(), |c| {
                c.insert(
                    "events".into(),
                    json!({"http://schemas.openid.net/event/other": {}}),
                );
            })),
        ),
        (
            "no jti",
            idp.logout_token(&with(good(), |c| {
                c.remove("jti");
            })),
        ),
        (
            "neither sid nor sub",
            idp.logout_token(&with(good(), |c| {
                c.remove("sid");
                c.remove("sub");
            })),
        ),
        (
            "typ JWT",
            idp.signed(
                &json!({"alg": "RS256", "typ": "JWT", "kid": "idp-key"}),
                &good(),
            ),
        ),
        ("alg none", {
            let b64 = |v: &Value| crate::tokens::b64(v.to_string().as_bytes());
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "logout+jwt"})),
                b64(&good())
            )
        }),
        (
            "HS256 signed with the client id",
            crate::tokens::hs256(
                &json!({"alg": "HS256", "typ": "logout+jwt"}),
                &good(),
                CLIENT_ID.as_bytes(),
            ),
        ),
        ("not a JWT", "not-a-token".into()),
    ];
    // The provider's own ID token is not a logout token.
    forged.push((
        "an ID token",
        s.idp.issued_id_tokens().last().unwrap().clone(),
    ));
    for (what, token) in &forged {
        let answer = send_token(&s.gw, token).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["error"], "invalid_request", "{what}");
        assert!(is_signed_in(&s, &mut b).await, "{what} ended the session");
    }

    let token = idp.logout_token(&good());
    let requests: Vec<(&str, Resp)> = vec![
        (
            "JSON instead of a form",
            post(
                &s.gw,
                "application/json",
                &json!({"logout_token": token}).to_string(),
            )
            .await,
        ),
        (
            "no logout_token",
            post(&s.gw, "application/x-www-form-urlencoded", "token=x").await,
        ),
        (
            "logout_token twice",
            post(
                &s.gw,
                "application/x-www-form-urlencoded",
                &format!("logout_token={token}&logout_token={token}"),
            )
            .await,
        ),
    ];
    for (what, answer) in requests {
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        assert!(is_signed_in(&s, &mut b).await, "{what} ended the session");
    }
    let huge = post(
        &s.gw,
        "application/x-www-form-urlencoded",
        &format!("logout_token={}", "a".repeat(40_000)),
    )
    .await;
    assert_eq!(huge.status, 413, "{}", huge.body);
    let get = crate::common::get(s.gw.addr, "/_auth/backchannel-logout", "app.test")
        .await
        .unwrap();
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));
    assert!(is_signed_in(&s, &mut b).await);
    assert!(
        s.origin
            .seen()
            .iter()
            .all(|r| !r.target.contains("backchannel")),
        "the endpoint is the gateway's own; nothing reaches the origin"
    );

    // The real token still works after all that.
    assert_eq!(send_token(&s.gw, &token).await.status, 200);
    assert!(!is_signed_in(&s, &mut b).await);
    let metrics = s.gw.metrics().await;
    assert!(
        metrics.contains(r#"authgate_backchannel_logouts_total{app="app",outcome="ended"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_logout_body_that_trickles_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = setup("", "", "").await;
    let mut stream = tokio::net::TcpStream::connect(s.gw.addr).await.unwrap();
    stream
        .write_all(b"POST /_auth/backchannel-logout HTTP/1.1\r\nHost: app.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nlogout_tok")
        .await
        .unwrap();
    // The rest never comes: the gateway answers rather than wait for ever.
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read(&mut head))
        .await
        .expect("an answer within 20 s")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
}
