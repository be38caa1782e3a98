//! What `/metrics` tells an operator beyond request counts: the build, sessions held,
//! sign-ins, sign-outs and refreshes by outcome, each provider's discovery and keys (with
//! their age), and how often the verified-token cache answered.

use std::time::Duration;

use crate::common::{raw, Gateway, Origin};
use crate::signin::setup;
use crate::tokens::{claims, JwksServer, TestKey};

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn sign_ins_sign_outs_refreshes_and_sessions_are_counted() {
    let s = setup("", "", "refresh_before_expiry: 0s").await;
    s.idp.set(|k| {
        k.expires_in = Some(2);
        k.refreshed_expires_in = Some(3600);
    });
    let scrape = || s.gw.metrics();
    let before = scrape().await;
    assert_eq!(value(&before, "authgate_sessions"), Some(0.0), "{before}");
    let version = format!(
        "authgate_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&before, &version), Some(1.0), "{before}");

    let mut b = s.browser();
    let last = s.sign_in(&mut b, "/private").await.pop().unwrap();
    assert_eq!(last.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(b.get(&format!("{}/private", s.base)).await.status, 200);
    let during = scrape().await;
    for (series, expected) in [
        ("authgate_sessions", 1.0),
        (
            "authgate_sign_ins_total{app=\"app\",outcome=\"signed_in\"}",
            1.0,
        ),
        (
            "authgate_session_refreshes_total{app=\"app\",outcome=\"ok\"}",
            1.0,
        ),
        ("authgate_provider_discovered{provider=\"test-idp\"}", 1.0),
        ("authgate_jwks_keys{issuer=\"provider:test-idp\"}", 1.0),
    ] {
        assert_eq!(
            value(&during, series),
            Some(expected),
            "{series} in:\n{during}"
        );
    }
    assert!(
        value(
            &during,
            "authgate_jwks_key_age_seconds{issuer=\"provider:test-idp\"}"
        )
        .is_some_and(|age| (0.0..60.0).contains(&age)),
        "{during}"
    );
    let out = b
        .request(
            "GET",
            &format!("{}/_auth/logout", s.base),
            &[("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(out.status, 302);
    let after = scrape().await;
    assert_eq!(value(&after, "authgate_sessions"), Some(0.0));
    assert_eq!(
        value(&after, "authgate_sign_outs_total{app=\"app\"}"),
        Some(1.0),
        "{after}"
    );

    // Every metric the shipped Grafana dashboard charts is one the gateway exposes.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/authgate-dashboard.json"
    ))
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let mut charted: Vec<&str> = dashboard
        .match_indices("authgate_")
        .map(|(at, _)| {
            let rest = &dashboard[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    charted.sort_unstable();
    charted.dedup();
    assert!(charted.len() >= 12, "{charted:?}");
    for name in charted {
        let family = name.trim_end_matches("_bucket");
        assert!(
            after.contains(&format!("# TYPE {family} ")),
            "the dashboard charts {name}, which /metrics does not expose:\n{after}"
        );
    }
}

#[tokio::test]
async fn the_token_cache_hits_are_counted() {
    let key = TestKey::rsa("k1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "jwt_issuers:\n  - {{id: main, issuer: '{}', jwks_uri: '{}', audiences: [api]}}\napps:\n  - {{id: api, host: api.test, default_action: jwt, origin: {{url: '{}'}}}}\n",
        idp.issuer(),
        idp.jwks_uri(),
        origin.url()
    ))
    .await;
    let token = key.token(&claims(&idp.issuer()));
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..3 {
        assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 200);
    }
    let metrics = gw.metrics().await;
    assert_eq!(
        value(
            &metrics,
            "authgate_token_cache_lookups_total{result=\"miss\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        value(
            &metrics,
            "authgate_token_cache_lookups_total{result=\"hit\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&metrics, "authgate_jwks_keys{issuer=\"main\"}"),
        Some(1.0)
    );
}
