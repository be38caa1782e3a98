//! Token refresh and provider failures through the real gateway: claims that only userinfo
//! gives survive a refresh, a refreshed ID token must describe the same sign-in, refreshes
//! keep a bounded pace, and every failure page says what actually happened.

use std::time::Duration;

use serde_json::json;

use crate::common::free_port;
use crate::signin::{setup, Setup};

async fn sign_in(s: &Setup) -> crate::browser::Browser {
    let mut b = s.browser();
    let last = s.sign_in(&mut b, "/private").await.pop().unwrap();
    assert_eq!(last.status, 200, "{}", last.body);
    b
}

#[tokio::test]
async fn claims_only_userinfo_gives_survive_a_refresh() {
    let s = setup(", userinfo: true", "", "refresh_before_expiry: 0s").await;
    s.idp.set(|k| {
        k.id_drop = vec!["groups"];
        // Userinfo may not restate how the user signed in.
        k.userinfo_extra = Some(json!({"groups": ["staff"], "auth_time": 1}));
        k.refreshed_claims = Some(json!({"groups": null}));
        k.expires_in = Some(2);
        k.refreshed_expires_in = Some(3600);
    });
    let mut b = sign_in(&s).await;
    let staff = format!("{}/staff/x", s.base);
    assert_eq!(b.get(&staff).await.status, 200, "groups from userinfo");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        b.get(&staff).await.status,
        200,
        "still there after the refresh"
    );
    assert_eq!(s.idp.refresh_calls(), 1);
    // Even when userinfo is not asked again, the session keeps what it had.
    s.idp.set(|k| k.userinfo_extra = None);
    let me: serde_json::Value =
        serde_json::from_str(&b.get(&format!("{}/_auth/me", s.base)).await.body).unwrap();
    assert_eq!(me["groups"], json!(["staff"]));
    assert_ne!(me["auth_time"], json!(1), "auth_time is the ID token's");
}

#[tokio::test]
async fn a_refreshed_id_token_for_another_sign_in_ends_the_session() {
    for (why, changes) in [
        ("azp appears", json!({"azp": "authgate-test"})),
        ("another auth_time", json!({"auth_time": 1_000_000_000u64})),
        (
            "aud gains a member",
            json!({"aud": ["authgate-test", "other"], "azp": "authgate-test"}),
        ),
    ] {
        let s = setup("", "", "refresh_before_expiry: 0s").await;
        s.idp.set(|k| {
            k.expires_in = Some(2);
            k.refreshed_claims = Some(changes.clone());
        });
        let mut b = sign_in(&s).await;
        let me = format!("{}/_auth/me", s.base);
        assert_eq!(b.get(&me).await.status, 200, "{why}");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(b.get(&me).await.status, 401, "{why}: the session ended");
        assert_eq!(s.idp.refresh_calls(), 1, "{why}");
    }
    // The same sign-in with a string `aud` in place of a list of one is the same audience.
    let s = setup("", "", "refresh_before_expiry: 0s").await;
    s.idp.set(|k| {
        k.expires_in = Some(2);
        k.refreshed_claims = Some(json!({"aud": ["authgate-test"]}));
    });
    let mut b = sign_in(&s).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.get(&format!("{}/_auth/me", s.base)).await.status, 200);
    assert_eq!(s.idp.refresh_calls(), 1);
}

#[tokio::test]
async fn short_lived_tokens_are_not_refreshed_on_every_request() {
    // Tokens live 2 s, less than the default 60 s margin: every request used to refresh.
    let s = setup("", "", "").await;
    s.idp.set(|k| {
        k.expires_in = Some(2);
        k.refreshed_expires_in = Some(2);
    });
    let mut b = sign_in(&s).await;
    for i in 0..10 {
        assert_eq!(b.get(&format!("{}/private/{i}", s.base)).await.status, 200);
    }
    assert_eq!(
        s.idp.refresh_calls(),
        0,
        "not due before half their lifetime"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cookie = format!("authgate={}", b.jar["authgate"]);
    let client = reqwest::Client::builder()
        .resolve("app.test", s.gw.addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let request = client
            .get(format!("{}/private/{i}", s.base))
            .header("cookie", cookie.clone());
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(s.idp.refresh_calls(), 1, "one refresh for the burst");
}

#[tokio::test]
async fn a_provider_blip_at_refresh_keeps_the_session_until_its_tokens_expire() {
    // Tokens live 4 s: due for a refresh after 2 s (half their lifetime).
    let s = setup("", "", "").await;
    s.idp.set(|k| {
        k.expires_in = Some(4);
        k.refreshed_expires_in = Some(4);
        k.refresh_answer = Some((503, "<html>down for maintenance</html>".into()));
    });
    let mut b = sign_in(&s).await;
    let private = format!("{}/private", s.base);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.get(&private).await.status, 200, "kept through the blip");
    assert_eq!(s.idp.refresh_calls(), 1);
    assert_eq!(b.get(&private).await.status, 200);
    assert_eq!(s.idp.refresh_calls(), 1, "the retry waits (backoff)");
    // The provider is back: the next try after the backoff refreshes.
    s.idp.set(|k| k.refresh_answer = None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.get(&private).await.status, 200);
    assert_eq!(s.idp.refresh_calls(), 2);

    // A provider that stays away past the tokens' expiry: the session ends then.
    let s = setup("", "", "").await;
    s.idp.set(|k| {
        k.expires_in = Some(3);
        k.refresh_answer = Some((503, "down".into()));
    });
    let mut b = sign_in(&s).await;
    let private = format!("{}/private", s.base);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(b.get(&private).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        b.get(&private).await.status,
        302,
        "expired with the provider away"
    );

    // A refused refresh token ends the session at once.
    let s = setup("", "", "").await;
    s.idp.set(|k| {
        k.expires_in = Some(4);
        k.refresh_answer = Some((400, r#"{"error":"invalid_grant"}"#.into()));
    });
    let mut b = sign_in(&s).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.get(&format!("{}/private", s.base)).await.status, 302);
}

#[tokio::test]
async fn an_id_token_without_sub_or_iat_is_refused_like_any_bad_id_token() {
    for claim in ["sub", "iat"] {
        let s = setup("", "", "").await;
        s.idp.set(|k| k.id_drop = vec![claim]);
        let mut b = s.browser();
        let last = s.sign_in(&mut b, "/private").await.pop().unwrap();
        assert_eq!(last.status, 401, "no {claim}: {}", last.body);
        assert!(last.body.contains("could not be verified"), "{}", last.body);
        assert!(!b.jar.contains_key("authgate"));
        assert!(s.origin.seen().is_empty());
    }
}

#[tokio::test]
async fn an_id_token_naming_a_claim_twice_is_refused() {
    let s = setup("", "", "").await;
    s.idp
        .set(|k| k.id_raw_members = Some(r#","groups":["admins"]"#.into()));
    let mut b = s.browser();
    let last = s.sign_in(&mut b, "/admins/x").await.pop().unwrap();
    assert_eq!(last.status, 401, "{}", last.body);
    assert!(!b.jar.contains_key("authgate"));
    assert!(s.origin.seen().is_empty());
}

#[tokio::test]
async fn failure_pages_say_what_happened() {
    // The token endpoint refuses connections (set before the gateway discovers it).
    let s = setup("", "", "").await;
    let closed = format!("http://127.0.0.1:{}/token", free_port());
    s.idp.set(|k| k.token_endpoint = Some(closed));
    let gw = gateway_for(&s).await;
    let mut b = crate::browser::Browser::new("app.test", gw.addr);
    let hops = b
        .follow(&format!("http://app.test:{}/private", gw.addr.port()))
        .await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, 503, "{}", last.body);
    assert!(last.body.contains("cannot be reached"), "{}", last.body);

    // Discovery names another issuer: the provider answers, but not as configured.
    let s = setup("", "", "").await;
    s.idp
        .set(|k| k.discovery_issuer = Some("https://elsewhere.test".into()));
    let gw = gateway_for(&s).await;
    let mut b = crate::browser::Browser::new("app.test", gw.addr);
    for _ in 0..2 {
        // The second answer comes from the remembered failure, and says the same.
        let hop = b
            .get(&format!("http://app.test:{}/private", gw.addr.port()))
            .await;
        assert_eq!(hop.status, 502, "{}", hop.body);
        assert!(hop.body.contains("do not match"), "{}", hop.body);
        assert!(!hop.body.contains("cannot be reached"), "{}", hop.body);
    }
}

/// A second gateway for the set-up's provider and origin, started after a knob was set.
async fn gateway_for(s: &Setup) -> crate::common::Gateway {
    gateway_with(s, "").await
}

async fn gateway_with(s: &Setup, provider_extra: &str) -> crate::common::Gateway {
    crate::common::Gateway::start(&format!(
        "oidc_providers:\n{}\napps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}}}\n",
        s.idp.provider_yaml(provider_extra),
        s.origin.url()
    ))
    .await
}

#[tokio::test]
async fn sign_ins_waiting_on_a_hanging_provider_share_one_attempt() {
    let s = setup("", "", "").await;
    s.idp.set(|k| k.hang = true);
    let gw = gateway_with(&s, ", fetch_timeout: 1s").await;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let addr = gw.addr;
        tasks.push(tokio::spawn(async move {
            let mut b = crate::browser::Browser::new("app.test", addr);
            b.get(&format!("http://app.test:{}/private/{i}", addr.port()))
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 503);
    }
    // Serialised, ten sign-ins would queue ten 1 s timeouts one after another.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
